//! What one qemu task, its sandbox and its result share ([`Task`]): the VM, its
//! agent and QMP, and the supervisor (boot timeout, result, crash); and the
//! engine's rules and bounds for a task.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use enginehost_sdk::caps::endpoint::{BodyEnd, Endpoint};
use enginehost_sdk::caps::files;
use enginehost_sdk::caps::process::{ExitStatus, Process};
use enginehost_sdk::{Error, ProxyHandler, SandboxStatus, Shells, Signal, TaskContext, sleep, spawn_local};
use futures::FutureExt;

use crate::QemuEngine;
use crate::agent::{Agent, Reported, note};
use crate::qmp::{Qmp, within};
use crate::shell::ShellState;

/// The rule for environment variable names (the seed's).
pub(crate) const ENV_RULE: &str = "^[a-zA-Z_][a-zA-Z0-9_]*$";
/// How long a killed task gets to end before the VM is stopped (the agent sends
/// TERM, then KILL 5 s later).
pub(crate) const KILL_GRACE: Duration = Duration::from_secs(10);
/// How long qemu gets to quit before it is killed.
pub(crate) const QUIT_GRACE_MS: u32 = 3_000;
/// The display's name and description (the seed's).
pub(crate) const SCREEN: &str = "screen";
pub(crate) const SCREEN_DESCRIPTION: &str = "Primary screen attached to the virtual machine";
/// The largest artifact taken from the guest.
pub(crate) const MAX_ARTIFACT: u64 = 8 << 30;
/// The task's endpoint: the agent's meta-data service and the proxies.
pub(crate) const META_SOCKET: &str = "meta.sock";
/// The guest's home: relative artifact paths start there.
pub(crate) const GUEST_HOME: &str = "/home/tc";

pub(crate) fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(crate) fn valid_proxy_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// What a task, its sandbox and its result share.
pub(crate) struct Task {
    pub(crate) engine: Rc<QemuEngine>,
    pub(crate) context: Rc<TaskContext>,
    pub(crate) agent: Rc<Agent>,
    pub(crate) qemu: Process,
    pub(crate) qmp: RefCell<Option<Qmp>>,
    pub(crate) endpoint: Rc<Endpoint>,
    pub(crate) status: SandboxStatus,
    /// qemu exited.
    pub(crate) stopped: Signal<()>,
    /// Ends every open display connection (kill, abort, the VM's end).
    pub(crate) displays_end: Signal<()>,
    pub(crate) shells: Rc<Shells<ShellState>>,
    /// Names the artifacts fetched into the sandbox.
    pub(crate) artifacts: Cell<u64>,
    pub(crate) _proxies: Vec<(String, ProxyHandler)>,
}

impl Task {
    /// The task of the VM that runs as `qemu`, its agent served on `endpoint`
    /// (started, or taken over): watches qemu's end and serves the agent. QMP
    /// and the supervisor come next.
    pub(crate) fn launch(
        engine: &Rc<QemuEngine>,
        context: Rc<TaskContext>,
        agent: Rc<Agent>,
        qemu: Process,
        endpoint: Rc<Endpoint>,
        proxies: Vec<(String, ProxyHandler)>,
    ) -> Rc<Task> {
        engine.running.set(engine.running.get() + 1);
        let task = Rc::new(Task {
            engine: engine.clone(),
            context,
            agent: agent.clone(),
            qemu,
            qmp: RefCell::new(None),
            endpoint: endpoint.clone(),
            status: SandboxStatus::new(),
            stopped: Signal::new(),
            displays_end: Signal::new(),
            shells: Rc::new(Shells::new()),
            artifacts: Cell::new(0),
            _proxies: proxies,
        });
        // qemu's end: the VM is gone for the agent, shells and displays.
        let watching = task.clone();
        spawn_local(async move {
            let _status: ExitStatus = watching.qemu.wait().await;
            let engine = &watching.engine;
            engine.running.set(engine.running.get().saturating_sub(1));
            watching.stopped.set(());
            watching.agent.gone.set(());
            watching.displays_end.set(());
            watching.shells.live().iter().for_each(|s| s.lost());
            watching.endpoint.close();
        });
        spawn_local(agent.serve(endpoint));
        task
    }

    /// Connects QMP (qemu makes its socket just after it starts; a new client
    /// once the old one's connection closed), resumes a VM that does not run
    /// yet (started with `-S`, or taken over before the old instance resumed
    /// it) and starts the supervisor. On failure the VM is stopped.
    pub(crate) async fn take_control(self: &Rc<Self>) -> Result<(), String> {
        let connected = async {
            let mut qmp = Qmp::connect(&self.context, Duration::from_secs(10)).await?;
            let status = qmp.execute("query-status", None).await?;
            if status["status"] == "prelaunch" || status["status"] == "paused" {
                qmp.execute("cont", None).await?;
            }
            Ok::<Qmp, String>(qmp)
        };
        let qmp = futures::select! {
            q = connected.fuse() => q,
            _ = self.stopped.wait().fuse() => Err("qemu exited".into()),
        };
        match qmp {
            Ok(qmp) => {
                *self.qmp.borrow_mut() = Some(qmp);
                spawn_local(self.clone().supervise());
                Ok(())
            }
            Err(why) => {
                self.agent.keeper.stop();
                self.status.resolve(Err(Error::SandboxAborted));
                self.stop_vm().await;
                Err(why)
            }
        }
    }

    /// Quits qemu (QMP `quit`, then TERM/KILL to what is left of the task's
    /// processes: qemu and slirp's `socat` helpers) and waits for it.
    pub(crate) async fn stop_vm(&self) {
        self.displays_end.set(());
        if !self.stopped.is_set() {
            let qmp = self.qmp.borrow_mut().take();
            if let Some(mut qmp) = qmp {
                let _ = within(Duration::from_secs(2), qmp.execute("quit", None)).await;
            }
            let _ = within(Duration::from_millis(u64::from(QUIT_GRACE_MS)), self.stopped.wait()).await;
        }
        let _ = self.qemu.kill_tree(QUIT_GRACE_MS).await;
        self.endpoint.close();
    }

    /// The last lines of the guest's serial console.
    async fn console_tail(&self) -> String {
        let Ok(dir) = files::sandbox_dir(&self.context).await else {
            return String::new();
        };
        let Ok(bytes) = std::fs::read(format!("{dir}/serial.log")) else {
            return "(no console output)".into();
        };
        let start = bytes.len().saturating_sub(4096);
        let text = String::from_utf8_lossy(&bytes[start..]).replace('\r', "");
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        if tail.trim().is_empty() {
            "(no console output)".into()
        } else {
            tail
        }
    }

    /// Watches the VM: the boot timeout, the result, a crash.
    pub(crate) async fn supervise(self: Rc<Self>) {
        let boot = self.agent.boot_left();
        // Taken over after the boot: nothing to time (and the deadline may be past).
        let booted = self.agent.booted.is_set()
            || futures::select! {
                _ = self.agent.booted.wait().fuse() => true,
                _ = sleep(boot).fuse() => false,
                _ = self.stopped.wait().fuse() => false,
            };
        if !booted && !self.status.is_resolved() {
            let tail = self.console_tail().await;
            let why = if self.stopped.is_set() {
                "the VM stopped before its guest agent called (QEMU crashed unexpected; see qemu.log)".to_string()
            } else {
                format!(
                    "the VM did not boot: no call from its guest agent within the boot timeout of {} s (engines.qemu.bootTimeout)",
                    self.engine.boot_timeout
                )
            };
            note(&self.context, &format!("{why}; the last lines of its console:\n{tail}")).await;
            self.status.resolve(Ok(false));
            self.stop_vm().await;
            return;
        }
        let ended = async {
            let reported = self.agent.reported.wait().await;
            let log = self.agent.log_ended().await;
            (reported, log)
        };
        futures::select! {
            (reported, log) = ended.fuse() => {
                if matches!(log, BodyEnd::Truncated) {
                    note(&self.context, "the task's output broke off (the guest agent's log request ended early)").await;
                }
                if let Reported::Signal(signal) = reported {
                    note(&self.context, &format!("the command was ended by signal {signal}")).await;
                }
                let success = matches!(reported, Reported::Exit(0)) && !self.status.was_killed();
                // Shells still running keep the result waiting (as in the seed).
                self.shells.idle().await;
                self.status.resolve(Ok(success));
            }
            _ = self.stopped.wait().fuse() => {
                if !self.status.is_resolved() {
                    let tail = self.console_tail().await;
                    note(&self.context, &format!("QEMU crashed unexpected; the last lines of its console:\n{tail}")).await;
                    self.status.resolve(Err(Error::NonFatalInternalError("QEMU crashed unexpected".into())));
                }
            }
        }
    }
}
