//! The one integration test binary (one link of wasmtime, one compiled component
//! per plugin). Every test drives real components in a real wasmtime.
//!
//! - `common`: the shared runtime and plugins, helpers.
//! - `mock`: every mock function through the worker traits.
//! - `concurrency`: abort/kill while waiting, wait twice, many sandboxes.
//! - `traps`: a trapping plugin fails in-flight calls; the next task succeeds.
//! - `plugin_dir`: rejected files, duplicates, overrides.
//! - `conformance`: the suite on every shipped engine and on a broken one.
//! - `display`: the mock's display through a TCP bridge, with a real VNC client.
//! - `cli`: the `enginehost` binary on the examples.
//! - `cache`: the compile cache, reused, rebuilt when bad, shared by processes.
//! - `caps`: every capability through real plugins, allowed and denied.
//! - `interactive`: the interactive server's sockets, and its pages in Chromium.
//! - `engines`: the script and native engines beyond their conformance cases.
//! - `limits`: a hostile plugin's abuses, each stopped (time, memory, size).
//! - `usage`: per-task accounting, each task charged its own time.
//! - `worker`: `enginehost worker` processes against the fake Taskcluster queue.

mod cache;
mod caps;
mod cli;
mod common;
mod concurrency;
mod conformance;
mod display;
mod distribution;
mod engines;
mod interactive;
mod limits;
mod mock;
mod plugin_dir;
mod registry;
mod traps;
mod usage;
mod worker;
