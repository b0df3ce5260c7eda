//! # enginehost-sdk: write a CI task engine as a WebAssembly component
//!
//! An engine implements the traits in [`Engine`], [`SandboxBuilder`], [`Sandbox`],
//! [`Shell`], [`ResultSet`], [`Volume`] and [`VolumeBuilder`], then calls
//! [`export_engine!`] once. Every optional method already has the seed's *Base*
//! behaviour (`feature-not-supported`, or "nothing"), so a minimal engine writes
//! `Engine::new`, `Engine::new_sandbox_builder`, `SandboxBuilder::start`,
//! `Sandbox::wait_for_result` and `ResultSet::success`.
//!
//! Build with `cargo build --release --target wasm32-wasip2`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is the plugin. The contract itself, with a
//! comment on every item, is `wit/engine.wit` in the enginehost repository, and
//! `docs/writing-an-engine.md` walks through a whole engine.
//!
//! The rules every sandbox shares are written once here: [`SandboxStatus`] (the
//! resolution, and what `abort`, `kill` and `new-shell` answer after the end),
//! [`Shells`] (live shells or display connections, reaped when they end) and
//! [`io::BufReader`] (records over a stream). [`EnvVars`] collects a builder's
//! environment variables.
//!
//! Engines run single-threaded and cooperatively: every method takes `&self`, so
//! keep state in `Cell`/`RefCell` and never hold a `RefCell` borrow across an
//! `.await`. Anything that waits must await (use [`sleep`], never
//! `std::thread::sleep`), or the whole engine stalls.
#![deny(missing_docs)]

pub mod caps;
pub mod env;
mod glue;
#[cfg(feature = "http")]
pub mod http;
pub mod io;
mod lifecycle;
mod log;
mod shell;
mod sync;
mod traits;

/// The raw bindings generated from `wit/engine.wit` (for what the traits do not cover).
#[allow(missing_docs)]
pub mod wit {
    wit_bindgen::generate!({
        path: "../wit",
        world: "recoverable-engine-plugin",
        pub_export_macro: true,
        export_macro_name: "export_engine_raw",
        default_bindings_module: "enginehost_sdk::wit",
        generate_all,
    });
}

pub use env::EnvVars;
pub use glue::Exports;
pub use lifecycle::{SandboxStatus, Shells};
pub use log::write_log_bytes;
#[doc(hidden)]
pub use serde_json as __serde_json;
pub use shell::{ShellOutputs, ShellStatus};
pub use sync::{Sessions, Signal};
pub use traits::{Engine, ResultSet, Sandbox, SandboxBuilder, Shell, Unsupported, Volume, VolumeBuilder};
/// WASI 0.3 (the version this SDK is built with): `wasip3::sockets` for outbound
/// TCP/UDP and name lookups (checked against `[plugins.NAME.network]`), clocks,
/// random, filesystem.
pub use wasip3;
pub use wit::enginehost::engine::host::{FileHandler, ProxyHandler, TaskContext};
pub use wit::enginehost::engine::types::{Display, EngineCapabilities, Error, HttpRequest, HttpResponse, Section};
pub use wit_bindgen::rt::async_support::{StreamReader, StreamResult, StreamWriter};
pub use wit_bindgen::{spawn_local, yield_async};

pub use caps::CapError;

/// `Result` with the contract's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The version of the engine contract this SDK implements (the WIT package version).
pub const CONTRACT_VERSION: &str = "0.1.4";

/// A new byte stream: write into the [`StreamWriter`], hand the [`StreamReader`] to
/// the host. Dropping the writer ends the stream.
pub fn byte_stream() -> (StreamWriter<u8>, StreamReader<u8>) {
    wit::wit_stream::new::<u8>()
}

/// A stream that yields `bytes` and ends (written by a task of its own, so the
/// caller can hand the reader to the host right away).
pub fn stream_of(bytes: Vec<u8>) -> StreamReader<u8> {
    let (mut tx, rx) = byte_stream();
    spawn_local(async move {
        let _ = tx.write_all(bytes).await;
    });
    rx
}

/// A stream that is already at its end.
pub fn empty_stream() -> StreamReader<u8> {
    let (tx, rx) = byte_stream();
    drop(tx);
    rx
}

/// Reads `reader` to its end.
pub async fn read_all(mut reader: StreamReader<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let (result, chunk) = reader.read(Vec::with_capacity(16 * 1024)).await;
        out.extend_from_slice(&chunk);
        match result {
            StreamResult::Complete(_) => continue,
            StreamResult::Dropped | StreamResult::Cancelled => return out,
        }
    }
}

/// Waits `duration` without blocking the engine (other calls keep running). A zero
/// duration returns at once, without a call to the host.
pub async fn sleep(duration: std::time::Duration) {
    if duration.is_zero() {
        return;
    }
    let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    wasip3::clocks::monotonic_clock::wait_for(nanos).await;
}

/// A malformed-payload error with one message.
pub fn malformed(message: impl Into<String>) -> Error {
    Error::MalformedPayload(vec![message.into()])
}

#[doc(hidden)]
pub const fn __metadata_bytes<const N: usize>(s: &str) -> [u8; N] {
    let bytes = s.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// Exports an [`Engine`] implementation as the component's engine and embeds the
/// sections the host reads before compiling the plugin: `enginehost:metadata`
/// (name, version, contract version) and `enginehost:capabilities` (the crate's
/// `capabilities.toml`, next to its `Cargo.toml`: what the engine asks the operator
/// for; an engine that needs nothing ships a file with comments only).
///
/// `export_engine!(MyEngine)` names the engine after the library crate
/// (`[lib] name`, which is also the `.wasm` file's name); `export_engine!(MyEngine,
/// "name")` names it explicitly. The engine's version is the crate's version.
#[macro_export]
macro_rules! export_engine {
    ($engine:ty) => {
        $crate::export_engine!($engine, env!("CARGO_CRATE_NAME"));
    };
    ($engine:ty, $name:expr) => {
        #[doc(hidden)]
        type __EnginehostExports = $crate::Exports<$engine>;
        $crate::wit::export_engine_raw!(__EnginehostExports with_types_in $crate::wit);
        const _: () = {
            const META: &str = concat!(
                "{\"name\":\"", $name,
                "\",\"version\":\"", env!("CARGO_PKG_VERSION"),
                "\",\"contract\":\"0.1.4\"}"
            );
            #[cfg(target_arch = "wasm32")]
            #[unsafe(link_section = "enginehost:metadata")]
            #[allow(dead_code)]
            static ENGINEHOST_METADATA: [u8; META.len()] = $crate::__metadata_bytes::<{ META.len() }>(META);
            const CAPABILITIES: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/capabilities.toml"));
            #[cfg(target_arch = "wasm32")]
            #[unsafe(link_section = "enginehost:capabilities")]
            #[allow(dead_code)]
            static ENGINEHOST_CAPABILITIES: [u8; CAPABILITIES.len()] =
                *include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/capabilities.toml"));
        };
    };
}
