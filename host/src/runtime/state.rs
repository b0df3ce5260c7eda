//! [`HostState`]: what one engine instance's Store holds, and the WASI context it
//! gets. Deny by default: no environment, no stdin, no preopened directory and no
//! network unless the plugin's policy grants them (`caps::files::preopens`,
//! `caps::NetCheck`); the capability imports see only its `CapsView`; guest stderr is captured so a panic message can name the
//! cause of a trap.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::caps::{CapsCtx, CapsCtxView, CapsView};

/// Bytes of guest stderr kept for error reports.
const STDERR_CAPACITY: usize = 64 * 1024;

/// The data of one engine instance's Store.
pub struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) stderr: MemoryOutputPipe,
    pub(crate) caps: CapsCtx,
    /// Memory, instances and tables of the Store (and the memory high-water mark).
    pub(crate) limits: super::accounting::PeakLimiter,
    /// Which task the instance's time belongs to (`None`: accounting is off).
    pub(crate) ledger: Option<super::accounting::SharedLedger>,
    /// Since when guest code runs (accounting; `None` while the host runs).
    pub(crate) wasm_since: Option<std::time::Instant>,
    /// How long the guest has run since it was last entered.
    pub(crate) cpu: super::limits::CpuWatch,
}

impl HostState {
    /// A state granting what `caps`' policy grants, and nothing else, within `limits`.
    pub(crate) fn new(
        caps: CapsCtx,
        plugin: Arc<str>,
        limits: &crate::policy::ResolvedLimits,
        accounting: bool,
    ) -> anyhow::Result<Self> {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stderr(stderr.clone());
        crate::caps::preopens(&caps.engine, &mut wasi)?;
        caps.net.configure(&mut wasi);
        Ok(HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            stderr,
            caps,
            limits: super::accounting::PeakLimiter {
                limits: super::limits::store_limits(limits),
                peak: Arc::default(),
            },
            ledger: accounting.then(Default::default),
            wasm_since: None,
            cpu: super::limits::CpuWatch::new(plugin, limits.cpu_slice),
        })
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl CapsView for HostState {
    fn caps(&mut self) -> CapsCtxView<'_> {
        CapsCtxView {
            ctx: &mut self.caps,
            table: &mut self.table,
        }
    }
}

/// The last lines of what the guest wrote to stderr (a panic message, usually).
pub(crate) fn stderr_tail(pipe: &MemoryOutputPipe) -> Option<String> {
    let bytes = pipe.contents();
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(5)..].join("\n");
    (!tail.is_empty()).then_some(tail)
}
