//! The builder of a qemu task: env vars and proxies, then the start (image,
//! endpoint, qemu, QMP).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use enginehost_sdk::caps::endpoint::{self};
use enginehost_sdk::caps::files;
use enginehost_sdk::caps::process::{Command, ExitStatus, Output};
use enginehost_sdk::{EnvVars, Error, ProxyHandler, Result, SandboxBuilder, TaskContext, malformed};

use crate::agent::{self, Agent};
use crate::machine::Machine;
use crate::{IMAGES, Payload, QemuEngine};

use crate::sandbox::QemuSandbox;
use crate::task::{ENV_RULE, META_SOCKET, Task, valid_env_name, valid_proxy_name};

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
        let agent = Agent::new(self.context.clone(), &self.payload.command, &env);

        let ep = endpoint::open(&self.context, endpoint::sandbox_socket(META_SOCKET))
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
        agent.running(qemu.pid(), agent::unix_ms() + u64::from(engine.boot_timeout) * 1000);
        let task = Task::launch(engine, self.context.clone(), agent, qemu, ep, proxies);

        if let Err(why) = task.take_control().await {
            let log = match files::sandbox_dir(&self.context).await {
                Ok(dir) => std::fs::read_to_string(format!("{dir}/qemu.log")).unwrap_or_default(),
                Err(_) => String::new(),
            };
            let log: String = log.chars().take(2000).collect();
            return Err(Error::NonFatalInternalError(format!(
                "starting the VM: {why}; qemu said: {log}"
            )));
        }
        Ok(QemuSandbox::new(task))
    }

    async fn discard(&self) -> Result<()> {
        self.proxies.borrow_mut().clear();
        Ok(())
    }
}
