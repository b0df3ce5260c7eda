//! One docker task: the builder (image, environment, proxies, volumes), the start
//! (network, endpoint, container, attach, start), the sandbox (wait, kill, abort,
//! shells) and the result set (artifacts through the archive endpoint).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use enginehost_sdk::caps::endpoint::{self, Endpoint};
use enginehost_sdk::env;
use enginehost_sdk::{
    EnvVars, Error, FileHandler, ProxyHandler, Result, ResultSet, Sandbox, SandboxBuilder, SandboxStatus, Shells,
    Signal, StreamReader, TaskContext, byte_stream, malformed, spawn_local,
};
use futures::future::{Either, select};
use serde_json::Value;

use crate::api::{ApiError, ContainerSpec, Docker, escape, escape_path};
use crate::bytes::{Channel, LogLines, Reader, Source, demux};
use crate::cleanup::Job;
use crate::shell::{self, Container, DockerShell, ShellState};
use crate::tar::{Kind, Tar};
use crate::volume::{self, DockerVolume, Mount};
use crate::{DockerEngine, Payload, new_name};

/// What a task made in dockerd, removed once: by abort or the result set's
/// dispose, else (dropped) by the engine's cleanup queue.
pub(crate) struct Made {
    engine: Rc<DockerEngine>,
    container: RefCell<Option<String>>,
    network: RefCell<Option<String>>,
    endpoint: RefCell<Option<Endpoint>>,
}

impl Made {
    fn new(engine: Rc<DockerEngine>) -> Rc<Made> {
        Rc::new(Made {
            engine,
            container: RefCell::default(),
            network: RefCell::default(),
            endpoint: RefCell::default(),
        })
    }

    /// Removes the container (killing what runs in it), the endpoint and the
    /// network (in the background when `network_later`: removing a bridge takes
    /// dockerd a while, and nothing of the task runs in it any more).
    pub(crate) async fn remove(&self, network_later: bool) {
        let docker = &self.engine.docker;
        let container = self.container.borrow_mut().take();
        if let Some(id) = container
            && !crate::cleanup::remove(docker, &Job::Container(id.clone())).await
        {
            self.engine.cleanup.push(Job::Container(id));
        }
        if let Some(endpoint) = self.endpoint.borrow_mut().take() {
            endpoint.close();
        }
        let network = self.network.borrow_mut().take();
        if let Some(id) = network {
            // Later (in the background) or now, and later again if now failed.
            if network_later || !crate::cleanup::remove(docker, &Job::Network(id.clone())).await {
                self.engine.cleanup.push(Job::Network(id));
            }
        }
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        if let Some(id) = self.container.get_mut().take() {
            self.engine.cleanup.push(Job::Container(id));
        }
        if let Some(id) = self.network.get_mut().take() {
            self.engine.cleanup.push(Job::Network(id));
        }
    }
}

/// Collects what the task needs while its image is made ready.
pub struct DockerBuilder {
    engine: Rc<DockerEngine>,
    context: Rc<TaskContext>,
    payload: Payload,
    privileged: bool,
    image: Signal<std::result::Result<(), Error>>,
    env: EnvVars,
    proxies: RefCell<Vec<(String, ProxyHandler)>>,
    mounts: RefCell<Vec<Mount>>,
    discarded: Signal<()>,
    started: Cell<bool>,
}

impl DockerBuilder {
    /// The task's environment as docker takes it (`NAME=value`).
    fn env_list(&self) -> Vec<String> {
        self.env.to_vec().iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    pub(crate) fn new(engine: Rc<DockerEngine>, context: TaskContext, payload: Payload, privileged: bool) -> Self {
        let image = Signal::new();
        let (docker, name, ready) = (engine.docker.clone(), payload.image.clone(), image.clone());
        let made = engine.clone();
        spawn_local(async move {
            let result = ensure_image(&docker, &name).await.map_err(|e| match e {
                Pull::Refused(e) => made.unavailable(e),
                Pull::Failed(e) => e,
            });
            ready.set(result);
        });
        DockerBuilder {
            engine,
            context: Rc::new(context),
            payload,
            privileged,
            image,
            env: EnvVars::default(),
            proxies: RefCell::default(),
            mounts: RefCell::default(),
            discarded: Signal::new(),
            started: Cell::new(false),
        }
    }

    /// Makes the container (and its network and endpoint); `made` owns them.
    async fn create(&self, made: &Rc<Made>) -> Result<String> {
        let docker = &self.engine.docker;
        let labels = self.engine.labels(Some(&self.context));
        let unavailable = |e: ApiError| self.engine.unavailable(e);
        let network = crate::network::Pool::take(&self.engine, labels.clone(), |id| {
            *made.network.borrow_mut() = Some(id.to_string());
        })
        .await?;
        let (network_id, subnet, gateway) = (network.id, network.subnet.as_str(), network.gateway.as_str());
        let proxies = std::mem::take(&mut *self.proxies.borrow_mut());
        if !proxies.is_empty() {
            let address = endpoint::tcp(&format!("{gateway}:80"), &[subnet]);
            let ep = endpoint::open(&self.context, address).await?;
            for (name, handler) in &proxies {
                ep.add_proxy(name, handler)?;
            }
            *made.endpoint.borrow_mut() = Some(ep);
        }
        let env = self.env_list();
        let spec = ContainerSpec {
            image: &self.payload.image,
            command: &self.payload.command,
            env,
            labels: &labels,
            privileged: self.privileged,
            init: self.engine.init,
            network: &network_id,
            extra_hosts: vec![format!("taskcluster:{gateway}")],
            mounts: self.mounts.borrow().iter().map(Mount::json).collect(),
        };
        let name = new_name();
        let created = docker
            .json("POST", &format!("/containers/create?name={name}"), Some(spec.json()))
            .await
            .map_err(|e| match e.status() {
                Some(400..=499) => malformed(format!("Unable to create the container: {e}")),
                _ => unavailable(e),
            })?;
        let id = created["Id"].as_str().unwrap_or(&name).to_string();
        *made.container.borrow_mut() = Some(id.clone());
        Ok(id)
    }
}

/// Why an image is not there.
enum Pull {
    /// dockerd could not be asked.
    Refused(ApiError),
    /// The task's image: the payload's fault.
    Failed(Error),
}

/// `image` as a pull asks for it: the name, and a tag unless it has one or a digest.
fn pull_target(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    let tagged = last.contains(':') || image.contains('@');
    let tag = if tagged { String::new() } else { "&tag=latest".into() };
    format!("/images/create?fromImage={}{tag}", escape(image))
}

/// Uses `image` if dockerd has it, else pulls it.
async fn ensure_image(docker: &Docker, image: &str) -> std::result::Result<(), Pull> {
    match docker
        .call("GET", &format!("/images/{}/json", escape_path(image)), None)
        .await
    {
        Ok(_) => return Ok(()),
        Err(e) if e.status() == Some(404) => {}
        Err(e) if e.status().is_some() => return Err(Pull::Failed(not_pulled(image, &e.to_string()))),
        Err(e) => return Err(Pull::Refused(e)),
    }
    let response = match docker.call("POST", &pull_target(image), None).await {
        Ok(r) => r,
        Err(e @ ApiError::Connect(_)) => return Err(Pull::Refused(e)),
        Err(e) => return Err(Pull::Failed(not_pulled(image, &e.to_string()))),
    };
    // Progress as JSON lines; a failure arrives as {"error": ...}.
    let mut reader = Reader::new(Source::Body(response.into_body()));
    let mut line = Vec::new();
    let mut error = None;
    loop {
        let chunk = reader
            .some(crate::bytes::CHUNK)
            .await
            .map_err(|e| Pull::Failed(not_pulled(image, &e)))?;
        let Some(chunk) = chunk else { break };
        for b in chunk {
            if b != b'\n' {
                if line.len() < 64 * 1024 {
                    line.push(b);
                }
                continue;
            }
            if let Ok(v) = serde_json::from_slice::<Value>(&line)
                && let Some(e) = v["error"].as_str()
            {
                error = Some(e.to_string());
            }
            line.clear();
        }
    }
    match error {
        Some(e) => Err(Pull::Failed(not_pulled(image, &e))),
        None => Ok(()),
    }
}

fn not_pulled(image: &str, why: &str) -> Error {
    malformed(format!(
        "task.payload.image {image:?} is not on this worker and could not be pulled: {why}"
    ))
}

impl SandboxBuilder<DockerEngine> for DockerBuilder {
    async fn attach_volume(&self, mountpoint: String, volume: &DockerVolume, read_only: bool) -> Result<()> {
        let mount = volume::mount(&mountpoint, volume, read_only)?;
        let mut mounts = self.mounts.borrow_mut();
        if mounts.iter().any(|m| m.conflicts(&mount)) {
            return Err(Error::NamingConflict);
        }
        mounts.push(mount);
        Ok(())
    }

    async fn attach_proxy(&self, name: String, handler: ProxyHandler) -> Result<()> {
        if !env::seed_name(&name) {
            return Err(malformed(format!(
                "Proxy name: '{name}' doesn't match: {}",
                env::SEED_NAME_RULE
            )));
        }
        let mut proxies = self.proxies.borrow_mut();
        if proxies.iter().any(|(n, _)| *n == name) {
            return Err(Error::NamingConflict);
        }
        proxies.push((name, handler));
        Ok(())
    }

    async fn set_environment_variable(&self, name: String, value: String) -> Result<()> {
        self.env.set(name, value)
    }

    async fn start(&self) -> Result<DockerSandbox> {
        if self.started.replace(true) {
            return Err(Error::ContractViolation("start was called twice".into()));
        }
        let ready = std::pin::pin!(self.image.wait());
        let discarded = std::pin::pin!(self.discarded.wait());
        match select(ready, discarded).await {
            Either::Left((result, _)) => result?,
            Either::Right(_) => return Err(Error::SandboxBuilderDiscarded),
        }
        let made = Made::new(self.engine.clone());
        let id = match self.create(&made).await {
            Ok(id) => id,
            Err(e) => {
                made.remove(false).await;
                return Err(e);
            }
        };
        let docker = self.engine.docker.clone();
        let attached = docker
            .upgrade(&format!("/containers/{id}/attach?stream=1&stdout=1&stderr=1"), None)
            .await;
        let attached = match attached {
            Ok(a) => a,
            Err(e) => {
                made.remove(false).await;
                return Err(self.engine.unavailable(e));
            }
        };
        if let Err(e) = docker.call("POST", &format!("/containers/{id}/start"), None).await {
            made.remove(false).await;
            return Err(match e.status() {
                Some(400..=599) => malformed(format!("Unable to start specified command: {e}")),
                _ => self.engine.unavailable(e),
            });
        }
        let task = Rc::new(Task {
            context: self.context.clone(),
            container: Rc::new(Container {
                engine: self.engine.clone(),
                id,
                env: self.env_list(),
            }),
            made,
            status: SandboxStatus::new(),
            shells: Rc::new(Shells::new()),
        });
        // The output, live, until the container's streams close.
        let logged = Signal::new();
        let (mut log, done) = (LogLines::new(&task.context), logged.clone());
        let mut err_log = LogLines::new(&task.context);
        spawn_local(async move {
            let mut reader = Reader::with_head(Source::Raw(attached.rx), attached.head);
            let _keep_open = attached.tx;
            let _ = demux(&mut reader, async |channel, bytes| match channel {
                Channel::Stdout => log.push(&bytes).await,
                Channel::Stderr => err_log.push(&bytes).await,
            })
            .await;
            log.finish().await;
            err_log.finish().await;
            done.set(());
        });
        let waiting = task.clone();
        spawn_local(async move {
            let container = &waiting.container;
            let exit = container
                .engine
                .docker
                .json("POST", &format!("/containers/{}/wait", container.id), None)
                .await;
            logged.wait().await;
            waiting.shells.idle().await;
            let result = match exit {
                Ok(v) => Ok(v["StatusCode"].as_i64() == Some(0) && !waiting.status.was_killed()),
                Err(e) => Err(container.engine.unavailable(e)),
            };
            waiting.status.resolve(result);
        });
        Ok(DockerSandbox {
            task,
            result: RefCell::default(),
        })
    }

    async fn discard(&self) -> Result<()> {
        self.discarded.set(());
        Ok(())
    }
}

/// A running task: its container (shared with its shells), what was made for
/// it, its status and its shells.
struct Task {
    context: Rc<TaskContext>,
    container: Rc<Container>,
    made: Rc<Made>,
    status: SandboxStatus,
    shells: Rc<Shells<ShellState>>,
}

impl Task {
    fn mark_shells_aborted(&self) -> Vec<Rc<ShellState>> {
        let shells = self.shells.take_all();
        for shell in &shells {
            shell.status.mark_aborted();
        }
        shells
    }
}

/// A running task.
pub struct DockerSandbox {
    task: Rc<Task>,
    result: RefCell<Option<Rc<DockerResult>>>,
}

impl Sandbox<DockerEngine> for DockerSandbox {
    async fn wait_for_result(&self) -> Result<Rc<DockerResult>> {
        let success = self.task.status.wait().await?;
        let mut result = self.result.borrow_mut();
        let result = result.get_or_insert_with(|| {
            Rc::new(DockerResult {
                task: self.task.clone(),
                success,
            })
        });
        Ok(result.clone())
    }

    async fn new_shell(&self, command: Vec<String>, tty: bool, stdin: StreamReader<u8>) -> Result<DockerShell> {
        self.task.status.check_running()?;
        shell::start(&self.task.container, &self.task.shells, command, tty, stdin).await
    }

    async fn abort(&self) -> Result<()> {
        self.task.status.abort()?;
        for shell in self.task.mark_shells_aborted() {
            shell.end();
        }
        self.task.made.remove(false).await;
        Ok(())
    }

    async fn kill(&self) -> Result<()> {
        if let Some(ended) = self.task.status.kill() {
            return ended;
        }
        self.task.mark_shells_aborted();
        let container = &self.task.container;
        let target = format!("/containers/{}/stop?t={}", container.id, container.engine.kill_grace);
        match container.engine.docker.call("POST", &target, None).await {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(304) || e.status() == Some(404) => Ok(()),
            Err(e) => Err(container.engine.unavailable(e)),
        }
    }
}

/// What a finished task leaves: success, and the container's files.
pub struct DockerResult {
    task: Rc<Task>,
    success: bool,
}

/// An artifact path: absolute, no trailing `/`.
fn artifact_path(path: &str) -> Result<()> {
    if !path.starts_with('/') || (path.len() > 1 && path.ends_with('/')) || path.contains('\0') {
        return Err(malformed(format!(
            "artifact path {path:?} must be an absolute path in the container without a trailing \"/\", e.g. \
             \"/folder/hello.txt\" or \"/folder\""
        )));
    }
    Ok(())
}

impl DockerResult {
    /// The archive of `path` in the container, as a tar stream.
    async fn archive(&self, path: &str) -> Result<Tar> {
        artifact_path(path)?;
        let container = &self.task.container;
        let target = format!("/containers/{}/archive?path={}", container.id, escape(path));
        match container.engine.docker.call("GET", &target, None).await {
            Ok(r) => Ok(Tar::new(Reader::new(Source::Body(r.into_body())))),
            Err(e) if e.status() == Some(404) => Err(Error::ResourceNotFound),
            Err(e) if e.status() == Some(400) => Err(malformed(format!("artifact path {path:?}: {e}"))),
            Err(e) => Err(container.engine.unavailable(e)),
        }
    }
}

/// Feeds the current entry of `tar` into a new stream, returned at once.
fn entry_stream(mut tar: Tar) -> StreamReader<u8> {
    let (mut tx, rx) = byte_stream();
    spawn_local(async move {
        while let Ok(Some(chunk)) = tar.data().await {
            if !tx.write_all(chunk).await.is_empty() {
                return;
            }
        }
    });
    rx
}

impl ResultSet for DockerResult {
    fn success(&self) -> bool {
        self.success
    }

    async fn extract_file(&self, path: String) -> Result<StreamReader<u8>> {
        let mut tar = self.archive(&path).await?;
        match tar.next().await {
            Ok(Some(entry)) if entry.kind == Kind::File => Ok(entry_stream(tar)),
            Ok(_) => Err(Error::ResourceNotFound),
            Err(e) => Err(Error::NonFatalInternalError(format!(
                "docker: reading the archive of {path}: {e}"
            ))),
        }
    }

    async fn extract_folder(&self, path: String, handler: &FileHandler) -> Result<()> {
        let mut tar = self.archive(&path).await?;
        let broken = |e: String| Error::NonFatalInternalError(format!("docker: reading the archive of {path}: {e}"));
        let base = match tar.next().await.map_err(broken)? {
            Some(entry) if entry.kind == Kind::Dir => entry.path.trim_end_matches('/').to_string(),
            _ => return Err(Error::ResourceNotFound),
        };
        while let Some(entry) = tar.next().await.map_err(broken)? {
            if entry.kind != Kind::File {
                continue;
            }
            let Some(rel) = entry.path.strip_prefix(&format!("{base}/")).map(String::from) else {
                continue;
            };
            let (mut tx, rx) = byte_stream();
            let feed = async {
                while let Ok(Some(chunk)) = tar.data().await {
                    if !tx.write_all(chunk).await.is_empty() {
                        break;
                    }
                }
                drop(tx);
            };
            let (_, handled) = futures::join!(feed, handler.handle_file(rel, rx));
            if handled.is_err() {
                return Err(Error::HandlerInterrupt);
            }
        }
        Ok(())
    }

    async fn dispose(&self) -> Result<()> {
        self.task.made.remove(false).await;
        Ok(())
    }
}
