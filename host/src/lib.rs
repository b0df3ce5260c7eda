//! # enginehost
//!
//! A WebAssembly plugin host for CI task-execution engines. Map of the crate:
//!
//! - [`contract`]: the worker traits (`Engine`, `SandboxBuilder`, `Sandbox`, ...),
//!   `EngineError`, the task context and task log. No wasmtime.
//! - [`runtime`]: wasmtime; loads a plugin and adapts it to the worker traits.
//! - [`plugin`]: the plugin catalog: built-in engines and a plugin directory,
//!   metadata, rejections.
//! - [`conformance`]: the engine conformance suite (the seed's enginetest).
//! - [`worker`]: running one task through the seed's stages.
//! - [`schema`], [`text`], [`policy`]: the leaves, from the `enginehost-core` crate
//!   (`core/`, no wasmtime; fuzzed in `fuzz/`): JSON Schema validation with the
//!   seed's rules, plugin-controlled text made safe to print, the operator config
//!   and the capability policy (request ∩ grant).
//! - [`caps`]: capabilities engines use on the host (processes, files, network,
//!   unix sockets, users), each behind one check of the policy: the domain layer,
//!   which never names a generated WIT type.
//! - `wit` (crate-private): the one `bindgen!` and the glue from the generated
//!   import traits to `caps` (over `caps::CapsView`) and from the exports to the
//!   contract.
//! - [`bench`]: the benchmark `enginehost bench` and `cargo bench` print, and
//!   [`bench::native_mock`], the mock engine in plain Rust (no wasm): the
//!   benchmark's yardstick.
//! - `cli` (binary only): the `enginehost` command.

pub mod bench;
pub mod caps;
pub mod conformance;
pub mod contract;
pub mod plugin;
pub mod runtime;
pub(crate) mod wit;
pub mod worker;

pub use enginehost_core::{policy, schema, text};
