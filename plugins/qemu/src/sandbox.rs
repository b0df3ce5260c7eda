//! One qemu task: the builder (env vars, proxies), the start (image, endpoint, qemu,
//! QMP), the supervisor (boot timeout, result, crash), the sandbox (wait, kill,
//! abort, shells, the display) and the result set (artifacts from the guest).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use enginehost_sdk::caps::endpoint::{self, BodyEnd, Endpoint};
use enginehost_sdk::caps::files;
use enginehost_sdk::caps::process::{Command, ExitStatus, Output, Process};
use enginehost_sdk::caps::unix_socket;
use enginehost_sdk::{
    Display, EnvVars, Error, FileHandler, ProxyHandler, Result, ResultSet, Sandbox, SandboxBuilder, SandboxStatus,
    Shells, Signal, StreamReader, StreamResult, TaskContext, byte_stream, malformed, sleep, spawn_local,
};
use futures::FutureExt;
use serde_json::{Value, json};

use crate::agent::{self, Agent, Reported, note};
use crate::machine::Machine;
use crate::qmp::{Qmp, within};
use crate::shell::{self, QemuShell, ShellState};
use crate::{IMAGES, Payload, QemuEngine};
use enginehost_sdk::io::{BufReader, CHUNK};

/// The rule for environment variable names (the seed's).
pub(crate) const ENV_RULE: &str = "^[a-zA-Z_][a-zA-Z0-9_]*$";
/// How long a killed task gets to end before the VM is stopped (the agent sends
/// TERM, then KILL 5 s later).
const KILL_GRACE: Duration = Duration::from_secs(10);
/// How long qemu gets to quit before it is killed.
const QUIT_GRACE_MS: u32 = 3_000;
/// The display's name and description (the seed's).
const SCREEN: &str = "screen";
const SCREEN_DESCRIPTION: &str = "Primary screen attached to the virtual machine";
/// The largest artifact taken from the guest.
const MAX_ARTIFACT: u64 = 8 << 30;
/// The guest's home: relative artifact paths start there.
const GUEST_HOME: &str = "/home/tc";

pub(crate) fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn valid_proxy_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Collects the environment and proxies.
pub struct QemuBuilder {
    engine: Rc<QemuEngine>,
    context: Rc<TaskContext>,
    payload: Payload,
    env: EnvVars,
    proxies: RefCell<Vec<(String, ProxyHandler)>>,
    started: Cell<bool>,
}

impl QemuBuilder {
    pub(crate) fn new(engine: Rc<QemuEngine>, context: TaskContext, payload: Payload) -> Self {
        QemuBuilder {
            engine,
            context: Rc::new(context),
            payload,
            env: EnvVars::with_rule(ENV_RULE, valid_env_name),
            proxies: RefCell::default(),
            started: Cell::new(false),
        }
    }

    /// The image's folder: (the engine's path to read it, the host path for
    /// qemu). A URL is downloaded by the host into the sandbox and unpacked there
    /// by `tar` (a `.tar.zst` as build.sh makes it).
    async fn image_dirs(&self) -> Result<(String, String)> {
        let image = &self.payload.image;
        if !(image.starts_with("http://") || image.starts_with("https://")) {
            let host = format!("{}/{image}", self.engine.image_dir.trim_end_matches('/'));
            return Ok((format!("{IMAGES}/{image}"), host));
        }
        files::download(&self.context, image, "image/image.tar.zst")
            .await
            .map_err(|e| malformed(format!("task.payload.image: downloading {image}: {}", e.message())))?;
        let tar = Command::new("/usr/bin/tar")
            .args([
                "--zstd",
                "--no-same-owner",
                "--no-same-permissions",
                "-xf",
                "image.tar.zst",
            ])
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .cwd("image")
            .stdout(Output::Null)
            .stderr(Output::TaskLog("[image] ".into()))
            .spawn(&self.context, None)
            .await
            .map_err(|e| Error::NonFatalInternalError(format!("unpacking the image with tar: {}", e.message())))?;
        let status = tar.wait().await;
        tar.drained().await;
        if !matches!(status, ExitStatus::Code(0)) {
            return Err(malformed(format!(
                "task.payload.image: {image} is not a .tar.zst image (tar: {status:?}; see the [image] lines above)"
            )));
        }
        let guest = format!("{}/image", files::sandbox_dir(&self.context).await?);
        let host = format!("{}/image", files::sandbox_host_path(&self.context).await?);
        Ok((guest, host))
    }

    /// The image's machine, checked; `dir` is the engine's path of its folder.
    fn machine(&self, dir: &str) -> Result<Machine> {
        let image = &self.payload.image;
        if dir.starts_with(IMAGES) && std::fs::metadata(IMAGES).is_err() {
            // The folder is not there at all: the operator did not grant it.
            return Err(Error::NonFatalInternalError(format!(
                "the image directory {} is not granted to the engine; add [plugins.qemu.files.dirs.images] with \
                 path = \"{}\" and mode = \"ro\" to the operator config",
                self.engine.image_dir, self.engine.image_dir
            )));
        }
        let text = std::fs::read_to_string(format!("{dir}/machine.json")).map_err(|e| {
            if dir.starts_with(IMAGES) {
                malformed(format!(
                    "task.payload.image: there is no image '{image}' on this worker ({}/{image}/machine.json: {e})",
                    self.engine.image_dir
                ))
            } else {
                malformed(format!("task.payload.image: {image} has no machine.json ({e})"))
            }
        })?;
        let machine = Machine::parse(&text).map_err(|e| malformed(format!("image '{image}': {e}")))?;
        let bad = machine.check(&self.engine);
        if !bad.is_empty() {
            return Err(Error::MalformedPayload(
                bad.into_iter().map(|b| format!("image '{image}': {b}")).collect(),
            ));
        }
        for file in machine.files() {
            // Not a symlink: qemu opens the host path, and a link could hand it
            // (and so the guest) any file the worker can read.
            let ok = std::fs::symlink_metadata(format!("{dir}/{file}")).is_ok_and(|m| m.is_file());
            if !ok {
                return Err(malformed(format!(
                    "image '{image}': machine.json names '{file}', which is not a regular file of the image"
                )));
            }
        }
        Ok(machine)
    }
}

/// A running task.
pub struct QemuSandbox(Rc<Task>);

/// What a task and its result share.
struct Task {
    engine: Rc<QemuEngine>,
    context: Rc<TaskContext>,
    agent: Rc<Agent>,
    qemu: Process,
    qmp: RefCell<Option<Qmp>>,
    endpoint: Rc<Endpoint>,
    status: SandboxStatus,
    /// qemu exited.
    stopped: Signal<()>,
    /// Ends every open display connection (kill, abort, the VM's end).
    displays_end: Signal<()>,
    shells: Rc<Shells<ShellState>>,
    /// Names the artifacts fetched into the sandbox.
    artifacts: Cell<u64>,
    _proxies: Vec<(String, ProxyHandler)>,
}

impl Task {
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
    async fn supervise(self: Rc<Self>) {
        let boot = Duration::from_secs(u64::from(self.engine.boot_timeout));
        let booted = futures::select! {
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
            let log = self.agent.log_end.wait().await;
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

impl SandboxBuilder<QemuEngine> for QemuBuilder {
    async fn set_environment_variable(&self, name: String, value: String) -> Result<()> {
        self.env.set(name, value)
    }

    async fn attach_proxy(&self, name: String, handler: ProxyHandler) -> Result<()> {
        if !valid_proxy_name(&name) {
            return Err(malformed(format!("Proxy name '{name}' doesn't match ^[a-zA-Z0-9_-]+$")));
        }
        if name == "engine" {
            return Err(malformed(
                "Proxy name 'engine' is reserved for the guest agent's meta-data service",
            ));
        }
        let mut proxies = self.proxies.borrow_mut();
        if proxies.iter().any(|(n, _)| *n == name) {
            return Err(Error::NamingConflict);
        }
        proxies.push((name, handler));
        Ok(())
    }

    async fn start(&self) -> Result<QemuSandbox> {
        if self.started.replace(true) {
            return Err(Error::ContractViolation("start was called twice".into()));
        }
        let engine = &self.engine;
        if engine.running.get() >= engine.max_concurrency {
            return Err(Error::MaxConcurrencyExceeded);
        }
        let (image_dir, image) = self.image_dirs().await?;
        let machine = self.machine(&image_dir)?;
        let mut env: BTreeMap<String, String> = self.payload.env.clone();
        env.extend(self.env.to_vec());
        let env: Vec<(String, String)> = env.into_iter().collect();
        let agent = Agent::new(&self.payload.command, &env);

        let ep = endpoint::open(&self.context, endpoint::sandbox_socket("meta.sock"))
            .await
            .map_err(|e| Error::NonFatalInternalError(format!("opening the task's endpoint: {}", e.message())))?;
        Agent::routes(&ep)?;
        let proxies: Vec<(String, ProxyHandler)> = self.proxies.borrow_mut().drain(..).collect();
        for (name, handler) in &proxies {
            ep.add_proxy(name, handler)
                .map_err(|e| malformed(format!("Proxy '{name}': {}", e.message())))?;
        }
        let ep = Rc::new(ep);

        let sandbox = files::sandbox_host_path(&self.context).await?;
        let qemu = Command::new(engine.qemu.clone())
            .args(machine.argv(engine, &image))
            .env("TMPDIR", sandbox)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .stdout(Output::File("qemu.log".into()))
            .stderr(Output::Stdout)
            .spawn(&self.context, None)
            .await
            .map_err(|e| {
                Error::NonFatalInternalError(format!(
                    "starting {}: {} (is qemu installed and granted?)",
                    engine.qemu,
                    e.message()
                ))
            })?;
        engine.running.set(engine.running.get() + 1);
        let task = Rc::new(Task {
            engine: engine.clone(),
            context: self.context.clone(),
            agent: agent.clone(),
            qemu,
            qmp: RefCell::new(None),
            endpoint: ep.clone(),
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
            watching.shells.take_all().iter().for_each(|s| s.lost());
            watching.endpoint.close();
        });
        spawn_local(agent.clone().serve(ep));

        let started = async {
            let mut qmp = Qmp::connect(&self.context, Duration::from_secs(10)).await?;
            qmp.execute("cont", None).await?;
            Ok::<Qmp, String>(qmp)
        };
        let qmp = futures::select! {
            q = started.fuse() => q,
            _ = task.stopped.wait().fuse() => Err("qemu exited at once".into()),
        };
        match qmp {
            Ok(qmp) => *task.qmp.borrow_mut() = Some(qmp),
            Err(why) => {
                task.status.resolve(Err(Error::SandboxAborted));
                task.stop_vm().await;
                let log = match files::sandbox_dir(&self.context).await {
                    Ok(dir) => std::fs::read_to_string(format!("{dir}/qemu.log")).unwrap_or_default(),
                    Err(_) => String::new(),
                };
                let log: String = log.chars().take(2000).collect();
                return Err(Error::NonFatalInternalError(format!(
                    "starting the VM: {why}; qemu said: {log}"
                )));
            }
        }
        spawn_local(task.clone().supervise());
        Ok(QemuSandbox(task))
    }

    async fn discard(&self) -> Result<()> {
        self.proxies.borrow_mut().clear();
        Ok(())
    }
}

impl Sandbox<QemuEngine> for QemuSandbox {
    async fn wait_for_result(&self) -> Result<Rc<QemuResult>> {
        let success = self.0.status.wait().await?;
        Ok(Rc::new(QemuResult {
            task: self.0.clone(),
            success,
        }))
    }

    async fn new_shell(&self, command: Vec<String>, tty: bool, stdin: StreamReader<u8>) -> Result<QemuShell> {
        self.0.status.check_running()?;
        shell::start(&self.0.agent, &self.0.shells, command, tty, stdin).await
    }

    async fn list_displays(&self) -> Result<Vec<Display>> {
        self.0.status.check_running()?;
        let (width, height) = screen_size(&self.0.context).await.unwrap_or((0, 0));
        Ok(vec![Display {
            name: SCREEN.into(),
            description: SCREEN_DESCRIPTION.into(),
            width,
            height,
        }])
    }

    async fn open_display(&self, name: String, client: StreamReader<u8>) -> Result<StreamReader<u8>> {
        if name != SCREEN {
            return Err(Error::NoSuchDisplay);
        }
        self.0.status.check_running()?;
        open_display(&self.0, client).await
    }

    async fn abort(&self) -> Result<()> {
        self.0.status.abort()?;
        for shell in self.0.shells.take_all() {
            let _ = shell.abort();
        }
        self.0.stop_vm().await;
        Ok(())
    }

    async fn kill(&self) -> Result<()> {
        let task = &self.0;
        if let Some(ended) = task.status.kill() {
            return ended;
        }
        task.displays_end.set(());
        // Each shell is aborted on its own connection too: a shell the agent was
        // still starting when kill-process came would miss the group signal.
        for shell in task.shells.take_all() {
            let _ = shell.abort();
        }
        if task.agent.booted.is_set() {
            if let Some(reply) = within(Duration::from_secs(5), task.agent.ask(json!({"type": "kill-process"})))
                .await
                .flatten()
            {
                agent::empty(&reply, 200).await;
            }
            let ended = within(KILL_GRACE, task.status.wait()).await;
            if ended.is_some() {
                return Ok(());
            }
        }
        task.status.resolve(Ok(false));
        task.stop_vm().await;
        Ok(())
    }
}

/// Opens a connection to qemu's VNC server for `client`: the client's bytes go
/// straight to qemu (host-side); qemu's come back through the engine, so that
/// kill and abort can end the connection while the VM stays up.
async fn open_display(task: &Rc<Task>, client: StreamReader<u8>) -> Result<StreamReader<u8>> {
    let mut from_vnc = unix_socket::relay_in_sandbox(&task.context, "vnc.sock", client)
        .await
        .map_err(|e| Error::NonFatalInternalError(format!("connecting to qemu's VNC server: {}", e.message())))?;
    let (mut to_client, rx) = byte_stream();
    let end = task.displays_end.clone();
    spawn_local(async move {
        let relay = async {
            loop {
                let (result, data) = from_vnc.read(Vec::with_capacity(CHUNK)).await;
                if !data.is_empty() && !to_client.write_all(data).await.is_empty() {
                    return;
                }
                match result {
                    StreamResult::Complete(_) => continue,
                    StreamResult::Dropped | StreamResult::Cancelled => return,
                }
            }
        };
        futures::select! {
            _ = relay.fuse() => {}
            _ = end.wait().fuse() => {}
        }
    });
    Ok(rx)
}

/// The screen's size, from a VNC handshake of our own (RFB 3.8, no security,
/// shared): `(width, height)`.
async fn screen_size(context: &TaskContext) -> Option<(u32, u32)> {
    let vnc = unix_socket::connect_in_sandbox(context, "vnc.sock").await.ok()?;
    let (mut tx, rx) = (vnc.tx, vnc.rx);
    let mut rx = BufReader::new(rx);
    let handshake = async {
        let version = rx.exact(12).await.ok().flatten()?;
        if !version.starts_with(b"RFB 003.") {
            return None;
        }
        tx.write_all(b"RFB 003.008\n".to_vec()).await;
        let count = rx.exact(1).await.ok().flatten()?[0] as usize;
        if count == 0 {
            return None;
        }
        let types = rx.exact(count).await.ok().flatten()?;
        if !types.contains(&1) {
            return None;
        }
        tx.write_all(vec![1]).await;
        let result = rx.exact(4).await.ok().flatten()?;
        if result != [0, 0, 0, 0] {
            return None;
        }
        tx.write_all(vec![1]).await; // ClientInit: shared
        let init = rx.exact(4).await.ok().flatten()?;
        Some((
            u32::from(u16::from_be_bytes([init[0], init[1]])),
            u32::from(u16::from_be_bytes([init[2], init[3]])),
        ))
    };
    within(Duration::from_secs(5), handshake).await.flatten()
}

/// What a finished task leaves: success, and the guest's files (the VM runs until
/// the result set is disposed of).
pub struct QemuResult {
    task: Rc<Task>,
    success: bool,
}

/// A guest path for an artifact path (relative ones are under the home).
fn guest_path(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{GUEST_HOME}/{path}")
    }
}

impl QemuResult {
    /// Fetches one guest file into the sandbox (host-side) and streams it.
    async fn fetch(&self, path: &str) -> Result<StreamReader<u8>> {
        let task = &self.task;
        let reply = task
            .agent
            .ask(json!({"type": "get-artifact", "path": guest_path(path)}))
            .await
            .ok_or(Error::ResourceNotFound)?;
        if reply.header("x-enginehost-error").is_some() {
            agent::empty(&reply, 200).await;
            return Err(Error::ResourceNotFound);
        }
        let n = task.artifacts.get();
        task.artifacts.set(n + 1);
        let name = format!("artifact-{n}");
        let saved = reply.save_body(format!("artifacts/{name}"), MAX_ARTIFACT).await;
        agent::empty(&reply, 200).await;
        saved.map_err(|e| Error::NonFatalInternalError(format!("fetching {path} from the VM: {}", e.message())))?;
        files::open_file(&task.context, "artifacts", &name)
            .await
            .map_err(|e| Error::NonFatalInternalError(format!("reading {path}: {}", e.message())))
    }
}

impl ResultSet for QemuResult {
    fn success(&self) -> bool {
        self.success
    }

    async fn extract_file(&self, path: String) -> Result<StreamReader<u8>> {
        self.fetch(&path).await
    }

    async fn extract_folder(&self, path: String, handler: &FileHandler) -> Result<()> {
        let folder = guest_path(&path);
        let folder = folder.trim_end_matches('/');
        let reply = self
            .task
            .agent
            .ask(json!({"type": "list-folder", "path": folder}))
            .await
            .ok_or(Error::ResourceNotFound)?;
        let listing: Value = serde_json::from_slice(&agent::small_body(&reply).await).unwrap_or(Value::Null);
        agent::empty(&reply, 200).await;
        if listing["notFound"].as_bool() != Some(false) {
            return Err(Error::ResourceNotFound);
        }
        let prefix = format!("{folder}/");
        for file in listing["files"].as_array().into_iter().flatten() {
            let Some(file) = file.as_str() else { continue };
            let Some(rel) = file.strip_prefix(&prefix) else {
                continue;
            };
            let Ok(data) = self.fetch(file).await else { continue };
            if handler.handle_file(rel.to_string(), data).await.is_err() {
                return Err(Error::HandlerInterrupt);
            }
        }
        Ok(())
    }

    async fn dispose(&self) -> Result<()> {
        self.task.stop_vm().await;
        Ok(())
    }
}
