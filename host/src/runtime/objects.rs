//! The contract objects over guest resources: sandbox builder, sandbox, shell,
//! result set, volume and volume builder. Each holds a [`Handle`]; every method is
//! one job on the instance's actor ([`Handle::call`]). A sandbox's handle is
//! replaced when a fresh instance takes the task over (`recovery.rs`).

use std::any::Any;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::sync::OnceCell;
use wasmtime::component::{Resource, ResourceAny};

use super::actor::{Acc, Deadline};
use super::handle::{Called, Handle, stream_result};
use super::recovery::Recovery;
use crate::contract::{
    self, ByteSink, ByteStream, DisplayConnection, EngineError, FileHandler, ProxyHandler, Result, byte_pipe,
};
use crate::wit::bindings::EngineExports;
use crate::wit::host::{FileHandlerRes, ProxyHandlerRes};
use crate::wit::streams::{guest_stream, host_stream};

pub(crate) struct WasmSandboxBuilder {
    pub(crate) handle: Handle,
    /// What its sandbox needs to be taken over after a trap.
    pub(crate) recovery: Arc<Recovery>,
    /// Whether `start` succeeded (then `discard` is a no-op).
    pub(crate) started: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl contract::SandboxBuilder for WasmSandboxBuilder {
    async fn attach_volume(&self, mountpoint: &str, volume: &dyn contract::Volume, read_only: bool) -> Result<()> {
        let Some(volume) = volume.as_any().downcast_ref::<WasmVolume>() else {
            return Err(EngineError::ContractViolation(
                "the volume was not made by a WebAssembly engine".into(),
            ));
        };
        if !Arc::ptr_eq(&volume.0.instance, &self.handle.instance) {
            return Err(EngineError::ContractViolation(
                "the volume belongs to another engine instance (another engine, or one lost to a trap)".into(),
            ));
        }
        let (vol, mountpoint) = (volume.0.res, mountpoint.to_string());
        self.handle
            .call("attach-volume", Deadline::Quick, move |acc, ex, res| {
                async move {
                    ex.sandbox_builder()
                        .call_attach_volume(acc, res, mountpoint, vol, read_only)
                        .await
                }
                .boxed()
            })
            .await
    }

    async fn attach_proxy(&self, name: &str, handler: Arc<dyn ProxyHandler>) -> Result<()> {
        let name = name.to_string();
        self.handle
            .call("attach-proxy", Deadline::Quick, move |acc, ex, res| {
                async move {
                    let h = acc.with(|mut a| a.get().table.push(ProxyHandlerRes(handler)))?;
                    ex.sandbox_builder().call_attach_proxy(acc, res, name, h).await
                }
                .boxed()
            })
            .await
    }

    async fn set_environment_variable(&self, name: &str, value: &str) -> Result<()> {
        let (name, value) = (name.to_string(), value.to_string());
        self.handle
            .call("set-environment-variable", Deadline::Quick, move |acc, ex, res| {
                async move {
                    ex.sandbox_builder()
                        .call_set_environment_variable(acc, res, name, value)
                        .await
                }
                .boxed()
            })
            .await
    }

    async fn start(&self) -> Result<Arc<dyn contract::Sandbox>> {
        let sandbox = self
            .handle
            .call("start", Deadline::Start, |acc, ex, res| {
                async move { ex.sandbox_builder().call_start(acc, res).await }.boxed()
            })
            .await?;
        self.started.store(true, std::sync::atomic::Ordering::SeqCst);
        // From here until its result a trap leaves the task to a fresh instance
        // (when the engine left a record).
        self.recovery.scope.set_recoverable();
        Ok(Arc::new(WasmSandbox {
            handle: Arc::new(Mutex::new(Arc::new(self.handle.sibling(sandbox)))),
            recovering: Mutex::new(None),
            recovery: self.recovery.clone(),
            result: OnceCell::new(),
        }))
    }

    async fn discard(&self) -> Result<()> {
        // After a start, discard is a no-op: also when the builder's instance is
        // gone and a fresh one took the sandbox over.
        if self.started.load(std::sync::atomic::Ordering::SeqCst) && !self.handle.instance.is_alive() {
            return Ok(());
        }
        self.handle
            .call("discard", Deadline::Quick, |acc, ex, res| {
                async move { ex.sandbox_builder().call_discard(acc, res).await }.boxed()
            })
            .await
    }
}

/// A recovery in flight: a task of its own, so it goes on whoever waits for it.
type RecoveryJob = Shared<BoxFuture<'static, Result<Arc<Handle>>>>;

struct WasmSandbox {
    /// The sandbox in the instance that serves the task now.
    handle: Arc<Mutex<Arc<Handle>>>,
    /// The recovery from the death of the instance of the handle it names.
    recovering: Mutex<Option<(Arc<Handle>, RecoveryJob)>>,
    recovery: Arc<Recovery>,
    result: OnceCell<Result<Arc<dyn contract::ResultSet>>>,
}

impl WasmSandbox {
    fn current(&self) -> Arc<Handle> {
        self.handle.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The sandbox's handle in a live instance, for `wait-for-result`, new
    /// shells and displays (which then work on the recovered sandbox): after a
    /// trap, the task taken over by a fresh instance when it can be (else the
    /// dead handle, whose calls fail with the death message, or the reason
    /// recovery failed). Ends at once when recovery is ruled out meanwhile.
    async fn live(&self) -> Result<Arc<Handle>> {
        let current = self.current();
        if current.instance.is_alive() {
            return Ok(current);
        }
        if let Some(failed) = self.recovery.failure() {
            return Err(failed);
        }
        if !self.recovery.may_recover() {
            return Ok(current);
        }
        let job = {
            let mut slot = self.recovering.lock().unwrap_or_else(|p| p.into_inner());
            match &*slot {
                Some((dead, job)) if Arc::ptr_eq(dead, &current) => job.clone(),
                _ => {
                    // Ruled out (by `now`, under this lock) since the check above.
                    if let Some(failed) = self.recovery.failure() {
                        return Err(failed);
                    }
                    let (recovery, handle, dead) = (self.recovery.clone(), self.handle.clone(), current.clone());
                    // Read when the job starts: the record the fresh instance
                    // gets is the one the task had when its instance died.
                    let record = self.recovery.scope.recovery_record();
                    let task = tokio::spawn(async move {
                        let fresh = Arc::new(recovery.recover(&dead, record).await?);
                        let mut current = handle.lock().unwrap_or_else(|p| p.into_inner());
                        // Ruled out (under this lock, in `now`) while it was recovered.
                        if let Some(failed) = recovery.failure() {
                            drop(current);
                            super::recovery::abort(&fresh).await;
                            return Err(failed);
                        }
                        *current = fresh.clone();
                        Ok(fresh)
                    });
                    let plugin = current.instance.plugin().to_string();
                    let job = async move {
                        task.await.unwrap_or_else(|e| {
                            Err(EngineError::PluginFailed {
                                plugin,
                                reason: format!("recovering the task failed: {e}"),
                            })
                        })
                    }
                    .boxed()
                    .shared();
                    *slot = Some((current, job.clone()));
                    job
                }
            }
        };
        tokio::select! {
            fresh = job => fresh,
            ruled = self.recovery.ruled_out() => Err(ruled),
        }
    }

    /// Rules recovery out (the caller holds the `handle` lock, `current` is
    /// its handle). When no recovery started yet, the engine still gets the
    /// record once, to remove what the task runs outside the host (a recovery
    /// in flight does that itself).
    fn rule_out(&self, current: &Arc<Handle>, reason: &str) {
        let slot = self.recovering.lock().unwrap_or_else(|p| p.into_inner());
        let started = matches!(&*slot, Some((dead, _)) if Arc::ptr_eq(dead, current));
        let record = self.recovery.scope.recovery_record();
        self.recovery.rule_out(reason, current.instance.plugin());
        if !started && let Some(record) = record {
            let (recovery, dead) = (self.recovery.clone(), current.clone());
            tokio::spawn(async move { recovery.abandon(&dead, record).await });
        }
    }

    /// The outcome of a kill or abort on `handle`: when its instance died under
    /// the call, the task is not taken over either (it was being ended), unless
    /// a recovery completed meanwhile: then the call goes again, to it (`Err`).
    fn ended(
        &self,
        handle: &Arc<Handle>,
        called: Result<()>,
        why: &str,
    ) -> std::result::Result<Result<()>, Arc<Handle>> {
        match called {
            Err(e @ EngineError::PluginFailed { .. }) if !handle.instance.is_alive() => match self.now(why) {
                Err(ruled) => Ok(Err(ruled)),
                Ok(fresh) if !Arc::ptr_eq(&fresh, handle) && fresh.instance.is_alive() => Err(fresh),
                Ok(_) => Ok(Err(e)),
            },
            called => Ok(called),
        }
    }

    /// Kill or abort (`what`, which leaves the task `why`): on the live
    /// sandbox, again on a recovered one if the instance died under the call.
    async fn end(
        &self,
        what: &'static str,
        why: &'static str,
        call: for<'a> fn(&'a Acc, &'a EngineExports, ResourceAny) -> BoxFuture<'a, Called<()>>,
    ) -> Result<()> {
        let mut handle = self.now(why)?;
        loop {
            let called = handle.call(what, Deadline::Quick, call).await;
            match self.ended(&handle, called, why) {
                Ok(result) => return result,
                Err(fresh) => handle = fresh,
            }
        }
    }

    /// The handle for kill and abort (`ending` says which): never waits for a
    /// recovery. On a dead instance it rules recovery out: the task is being
    /// ended anyway. (Other calls wait for a recovery: `live`.)
    fn now(&self, ending: &str) -> Result<Arc<Handle>> {
        // Held while ruling out, so that a recovery storing its sandbox either
        // comes first (the call goes there) or sees the rule-out (and aborts).
        let handle = self.handle.lock().unwrap_or_else(|p| p.into_inner());
        let current = handle.clone();
        if current.instance.is_alive() {
            return Ok(current);
        }
        if self.recovery.may_recover() {
            self.rule_out(
                &current,
                &format!("the task was {ending} while its engine was being restarted"),
            );
        }
        match self.recovery.failure() {
            Some(failed) => Err(failed),
            None => Ok(current),
        }
    }
}

#[async_trait]
impl contract::Sandbox for WasmSandbox {
    async fn wait_for_result(&self) -> Result<Arc<dyn contract::ResultSet>> {
        self.result
            .get_or_init(|| async move {
                let result = loop {
                    let handle = self.live().await?;
                    let called = handle
                        .call("wait-for-result", Deadline::None, |acc, ex, res| {
                            async move {
                                match ex.sandbox().call_wait_for_result(acc, res).await? {
                                    Ok(rs) => Ok(Ok((rs, ex.result_set().call_success(acc, rs).await?))),
                                    Err(e) => Ok(Err(e)),
                                }
                            }
                            .boxed()
                        })
                        .await;
                    match called {
                        // The instance died under the wait: a fresh one may take over
                        // (or recovery was ruled out, which is then the reason).
                        Err(EngineError::PluginFailed { .. }) if !handle.instance.is_alive() => {
                            if let Some(failed) = self.recovery.failure() {
                                break Err(failed);
                            }
                            if self.recovery.may_recover() {
                                continue;
                            }
                            break Err(handle.instance.failure().await);
                        }
                        called => break called.map(|(rs, success)| (handle.sibling(rs), success)),
                    }
                };
                // The work is over: nothing is left to take over (after a
                // rule-out, the clean-up forgets the record once it is done).
                if self.recovery.failure().is_none() {
                    self.recovery.scope.forget_recovery_record();
                }
                let (handle, success) = result?;
                Ok(Arc::new(WasmResultSet { handle, success }) as Arc<dyn contract::ResultSet>)
            })
            .await
            .clone()
    }

    async fn new_shell(&self, command: &[String], tty: bool) -> Result<Box<dyn contract::Shell>> {
        let command = command.to_vec();
        let (stdin_sink, stdin) = byte_pipe();
        let handle = self.live().await?;
        let (shell, stdout, stderr) = handle
            .call("new-shell", Deadline::Quick, move |acc, ex, res| {
                async move {
                    let stdin = host_stream(acc, stdin)?;
                    let shell = match ex.sandbox().call_new_shell(acc, res, command, tty, stdin).await? {
                        Ok(shell) => shell,
                        Err(e) => return Ok(Err(e)),
                    };
                    let stdout = ex.shell().call_stdout(acc, shell).await?;
                    let stderr = ex.shell().call_stderr(acc, shell).await?;
                    Ok(Ok((shell, guest_stream(acc, stdout)?, guest_stream(acc, stderr)?)))
                }
                .boxed()
            })
            .await?;
        Ok(Box::new(WasmShell {
            handle: handle.sibling(shell),
            stdin: Mutex::new(Some(stdin_sink)),
            stdout: Mutex::new(Some(stdout)),
            stderr: Mutex::new(Some(stderr)),
        }))
    }

    async fn list_displays(&self) -> Result<Vec<contract::Display>> {
        let displays = self
            .live()
            .await?
            .call("list-displays", Deadline::Quick, |acc, ex, res| {
                async move { ex.sandbox().call_list_displays(acc, res).await }.boxed()
            })
            .await?;
        Ok(displays.into_iter().map(Into::into).collect())
    }

    async fn open_display(&self, name: &str) -> Result<DisplayConnection> {
        let name = name.to_string();
        let (input, client) = byte_pipe();
        let output = self
            .live()
            .await?
            .call("open-display", Deadline::Quick, move |acc, ex, res| {
                async move {
                    let client = host_stream(acc, client)?;
                    stream_result(acc, ex.sandbox().call_open_display(acc, res, name, client).await?)
                }
                .boxed()
            })
            .await?;
        Ok(DisplayConnection { input, output })
    }

    async fn abort(&self) -> Result<()> {
        self.end("abort", "aborted", super::recovery::call_abort).await
    }

    async fn kill(&self) -> Result<()> {
        self.end("kill", "killed", |acc, ex, res| {
            async move { ex.sandbox().call_kill(acc, res).await }.boxed()
        })
        .await
    }

    async fn terminate(&self, reason: &str) {
        // Under the handle lock, as in `now`: a recovery storing its sandbox
        // either comes first (that instance is the one killed) or aborts it.
        let current = {
            let handle = self.handle.lock().unwrap_or_else(|p| p.into_inner());
            let current = handle.clone();
            self.rule_out(&current, reason);
            current
        };
        current.instance.kill(reason.to_string());
    }
}

struct WasmShell {
    handle: Handle,
    stdin: Mutex<Option<ByteSink>>,
    stdout: Mutex<Option<ByteStream>>,
    stderr: Mutex<Option<ByteStream>>,
}

#[async_trait]
impl contract::Shell for WasmShell {
    fn stdin(&self) -> Option<ByteSink> {
        self.stdin.lock().expect("shell lock").take()
    }
    fn stdout(&self) -> Option<ByteStream> {
        self.stdout.lock().expect("shell lock").take()
    }
    fn stderr(&self) -> Option<ByteStream> {
        self.stderr.lock().expect("shell lock").take()
    }
    async fn set_size(&self, columns: u16, rows: u16) -> Result<()> {
        self.handle
            .call("set-size", Deadline::Quick, move |acc, ex, res| {
                async move { ex.shell().call_set_size(acc, res, columns, rows).await }.boxed()
            })
            .await
    }
    async fn abort(&self) -> Result<()> {
        self.handle
            .call("abort", Deadline::Quick, |acc, ex, res| {
                async move { ex.shell().call_abort(acc, res).await }.boxed()
            })
            .await
    }
    async fn wait(&self) -> Result<bool> {
        self.handle
            .call("wait", Deadline::None, |acc, ex, res| {
                async move { ex.shell().call_wait(acc, res).await }.boxed()
            })
            .await
    }
}

struct WasmResultSet {
    handle: Handle,
    success: bool,
}

#[async_trait]
impl contract::ResultSet for WasmResultSet {
    fn success(&self) -> bool {
        self.success
    }

    async fn extract_file(&self, path: &str) -> Result<ByteStream> {
        let path = path.to_string();
        self.handle
            .call("extract-file", Deadline::Quick, move |acc, ex, res| {
                async move { stream_result(acc, ex.result_set().call_extract_file(acc, res, path).await?) }.boxed()
            })
            .await
    }

    async fn extract_folder(&self, path: &str, handler: FileHandler) -> Result<()> {
        let path = path.to_string();
        self.handle
            .call("extract-folder", Deadline::None, move |acc, ex, res| {
                async move {
                    let h: Resource<FileHandlerRes> = acc.with(|mut a| a.get().table.push(FileHandlerRes(handler)))?;
                    let borrowed = Resource::new_borrow(h.rep());
                    let result = ex.result_set().call_extract_folder(acc, res, path, borrowed).await;
                    acc.with(|mut a| a.get().table.delete(h))?;
                    result
                }
                .boxed()
            })
            .await
    }

    async fn archive_sandbox(&self) -> Result<ByteStream> {
        self.handle
            .call("archive-sandbox", Deadline::Quick, |acc, ex, res| {
                async move { stream_result(acc, ex.result_set().call_archive_sandbox(acc, res).await?) }.boxed()
            })
            .await
    }

    async fn dispose(&self) -> Result<()> {
        self.handle
            .call("dispose", Deadline::Quick, |acc, ex, res| {
                async move { ex.result_set().call_dispose(acc, res).await }.boxed()
            })
            .await
    }

    async fn terminate(&self, reason: &str) {
        self.handle.instance.kill(reason.to_string());
    }
}

pub(crate) struct WasmVolume(pub(crate) Handle);

#[async_trait]
impl contract::Volume for WasmVolume {
    async fn dispose(&self) -> Result<()> {
        self.0
            .call("dispose", Deadline::Quick, |acc, ex, res| {
                async move { ex.volume().call_dispose(acc, res).await }.boxed()
            })
            .await
    }
    fn is_lost(&self) -> bool {
        !self.0.instance.is_alive()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

pub(crate) struct WasmVolumeBuilder(pub(crate) Handle);

#[async_trait]
impl contract::VolumeBuilder for WasmVolumeBuilder {
    async fn write_folder(&self, name: &str) -> Result<()> {
        let name = name.to_string();
        self.0
            .call("write-folder", Deadline::Quick, move |acc, ex, res| {
                async move { ex.volume_builder().call_write_folder(acc, res, name).await }.boxed()
            })
            .await
    }

    async fn write_file(&self, name: &str, data: ByteStream) -> Result<()> {
        let name = name.to_string();
        self.0
            .call("write-file", Deadline::None, move |acc, ex, res| {
                async move {
                    let data = host_stream(acc, data)?;
                    ex.volume_builder().call_write_file(acc, res, name, data).await
                }
                .boxed()
            })
            .await
    }

    async fn build(&self) -> Result<Arc<dyn contract::Volume>> {
        let volume = self
            .0
            .call("build", Deadline::Quick, |acc, ex, res| {
                async move { ex.volume_builder().call_build(acc, res).await }.boxed()
            })
            .await?;
        Ok(Arc::new(WasmVolume(self.0.sibling(volume))))
    }

    async fn discard(&self) -> Result<()> {
        self.0
            .call("discard", Deadline::Quick, |acc, ex, res| {
                async move { ex.volume_builder().call_discard(acc, res).await }.boxed()
            })
            .await
    }
}
