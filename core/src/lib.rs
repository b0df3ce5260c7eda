//! enginehost's leaves: what the host checks before it runs anything, with no
//! wasmtime and no runtime, so that each part can be tested and fuzzed alone
//! (`fuzz/`). The host re-exports them under the same paths (`enginehost::policy`,
//! `enginehost::schema`, ...).
//!
//! - `policy`: the operator's config, a plugin's `capabilities.toml`, and the
//!   decisions every capability asks for (leaf).
//! - `schema`: JSON Schema validation of payloads and configs (leaf).
//! - `text`: plugin-controlled text made safe to print (leaf).
//! - `metadata`: a plugin file's `enginehost:metadata` and `enginehost:capabilities`
//!   sections, read without compiling it (uses `policy`, `text`).
//! - `cases`: the conformance cases file (leaf).
//! - `endpoint`: a per-task endpoint's routes and HTTP/1.1 bounds (leaf).
//! - `beneath`: opening paths beneath a directory without following symlinks (leaf).

#![warn(missing_docs)]

pub mod beneath;
pub mod cases;
pub mod endpoint;
pub mod metadata;
pub mod policy;
pub mod schema;
pub mod text;
