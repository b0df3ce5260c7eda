//! The benchmark's floor (`lifecycle.floor_us`): what component-model async calls
//! cost in wasmtime itself, on this runtime's wasmtime engine and tokio runtime,
//! with nothing of enginehost in between: a trivial component (its one export,
//! `nop`, is an async function that returns at once), one Store owned by one tokio
//! task, and calls made straight from inside its `run_concurrent` loop: no actor,
//! no channel, no deadline, no call hook, no limits.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::{mpsc, oneshot};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::Runtime;

struct FloorState {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for FloorState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A batch: how many lifecycles, and where to send their mean time.
type Batch = (u32, oneshot::Sender<anyhow::Result<Duration>>);

/// A live floor component, measuring batches on request.
pub struct Floor {
    batches: mpsc::Sender<Batch>,
    calls: u32,
}

impl Floor {
    /// The mean time of one "lifecycle" (`calls` calls of `nop` in a row) over `n`
    /// lifecycles.
    ///
    /// # Errors
    /// When the component trapped or its task is gone.
    pub async fn batch(&self, n: u32) -> anyhow::Result<Duration> {
        let (tx, rx) = oneshot::channel();
        self.batches
            .send((n, tx))
            .await
            .map_err(|_| anyhow::anyhow!("the floor component's task is gone"))?;
        rx.await.context("the floor component's task is gone")?
    }

    /// Calls per lifecycle.
    pub fn calls(&self) -> u32 {
        self.calls
    }
}

impl Runtime {
    /// Instantiates the floor component `wasm` on this runtime's wasmtime engine,
    /// in a tokio task of its own; each [`Floor::batch`] makes `calls` calls per
    /// lifecycle.
    ///
    /// # Errors
    /// When `wasm` does not compile or link, or has no async `nop` export.
    pub async fn floor(&self, wasm: &[u8], calls: u32) -> anyhow::Result<Floor> {
        let component = Component::new(&self.engine, wasm)
            .map_err(anyhow::Error::from)
            .context("compiling the floor component")?;
        let mut linker = Linker::<FloorState>::new(&self.engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(anyhow::Error::from)
            .context("linking WASI")?;
        let mut store = Store::new(
            &self.engine,
            FloorState {
                wasi: wasmtime_wasi::WasiCtxBuilder::new().build(),
                table: ResourceTable::new(),
            },
        );
        // Where the engine interrupts guests, never stop this one.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Continue(1)));
        let instance = linker
            .instantiate_async(&mut store, &component)
            .await
            .map_err(anyhow::Error::from)
            .context("instantiating the floor component")?;
        let nop = instance
            .get_typed_func::<(), ()>(&mut store, "nop")
            .map_err(anyhow::Error::from)
            .context("the floor component's nop export")?;
        let (batches, mut rx) = mpsc::channel::<Batch>(1);
        tokio::spawn(async move {
            let _ = store
                .run_concurrent(async move |acc| -> wasmtime::Result<()> {
                    while let Some((n, reply)) = rx.recv().await {
                        let started = Instant::now();
                        let mut result = Ok(());
                        'batch: for _ in 0..n {
                            for _ in 0..calls {
                                if let Err(e) = nop.call_concurrent(acc, ()).await {
                                    result = Err(anyhow::Error::from(e));
                                    break 'batch;
                                }
                            }
                        }
                        let _ = reply.send(result.map(|()| started.elapsed() / n.max(1)));
                    }
                    Ok(())
                })
                .await;
        });
        Ok(Floor { batches, calls })
    }
}
