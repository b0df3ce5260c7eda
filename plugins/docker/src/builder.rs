//! The builder of a docker task: the image, environment, proxies and volumes,
//! then the start (network, endpoint, container, attach, start).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use enginehost_sdk::caps::endpoint::{self};
use enginehost_sdk::env;
use enginehost_sdk::{
    EnvVars, Error, ProxyHandler, Result, SandboxBuilder, Signal, TaskContext, malformed, spawn_local,
};
use futures::future::{Either, select};
use serde_json::Value;

use crate::api::{ApiError, ContainerSpec, Docker, escape, escape_path};
use crate::bytes::{Reader, Source};
use crate::made::Made;
use crate::sandbox::{DockerSandbox, Output};
use crate::shell::Container;
use crate::volume::{self, DockerVolume, Mount};
use crate::{DockerEngine, Payload, new_name};

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
        if name == crate::shell::MARKER {
            return Err(malformed(format!(
                "task.env: {name} is the docker engine's own (it marks the processes of shells); use another name"
            )));
        }
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
        let container = Container {
            engine: self.engine.clone(),
            id,
            env: self.env_list(),
        };
        // Proxies (their endpoint) and caches (lent volumes) die with the
        // instance: such a task is not taken over after a trap (its record only
        // lets a fresh instance remove its container).
        let resume = made.endpoint.borrow().is_none() && self.mounts.borrow().is_empty();
        Ok(DockerSandbox::start(
            self.context.clone(),
            container,
            made,
            Output::attached(attached),
            resume,
        ))
    }

    async fn discard(&self) -> Result<()> {
        self.discarded.set(());
        Ok(())
    }
}
