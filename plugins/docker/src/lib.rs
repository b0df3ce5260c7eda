//! The docker engine (seed: `engines/docker`, docs/engine-contract.md §4.4): each task
//! runs in a container of its own, made through the Docker Engine API that this
//! component speaks itself, over the unix socket the operator grants
//! (`[plugins.docker.unix-sockets] connect`). No docker CLI, no docker code in the
//! host.
//!
//! - config `{dockerSocket?: "unix:///var/run/docker.sock", privileged:
//!   "always"|"allow"|"never", provisionerId?, workerType?, killGracePeriod?: s,
//!   init?: bool, labels?: {..}}`;
//! - payload `{image, command, privileged?}`: the image is used if dockerd has it,
//!   else pulled (a failure is malformed-payload naming the image and dockerd's
//!   reason); `privileged: true` needs `privileged = "allow"` and the scope
//!   `worker:privileged:<provisionerId>/<workerType>` ("always" makes every
//!   container privileged);
//! - one network and one container per task, with the task's environment; its
//!   stdout and stderr are copied into the task log live, in whole lines;
//! - proxies: `http://taskcluster/<name>/...` inside the container reaches the
//!   host's endpoint for the task (`endpoint` capability, on the network's gateway,
//!   port 80; proxy bytes never pass through this engine);
//! - kill: `stop` (TERM, then KILL after the grace period), success false; abort
//!   also removes the container and the network;
//! - artifacts: absolute paths without a trailing `/`, read through the archive
//!   endpoint (the tar is streamed, never held whole);
//! - volumes: named docker volumes, mounted at `/absolute/path/`;
//! - shells: `exec`, with or without a tty.
//!
//! Modules: `api` (the calls), `bytes` (streams, Docker's multiplexed frames, log
//! lines), `tar` (the archive reader), `sandbox`, `shell`, `volume`, `cleanup`,
//! `network` (task networks, one spare made ahead).

mod api;
mod builder;
mod bytes;
mod cleanup;
mod made;
mod network;
mod result;
mod sandbox;
mod shell;
mod tar;
mod volume;

use std::collections::BTreeMap;
use std::rc::Rc;

use enginehost_sdk::caps::CapError;
use enginehost_sdk::{Engine, Error, Result, Section, TaskContext, Unsupported, malformed, spawn_local};
use serde::Deserialize;
use serde_json::{Value, json};

pub use builder::DockerBuilder;
pub use result::DockerResult;
pub use sandbox::DockerSandbox;
pub use shell::DockerShell;
pub use volume::DockerVolume;

use crate::api::{ApiError, Docker};
use crate::cleanup::Cleanup;

/// Who may run privileged containers.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum Privileged {
    /// Every container.
    Always,
    /// Tasks that ask (`privileged: true`) and have the scope.
    Allow,
    /// None.
    Never,
}

/// `[engines.docker]`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    #[serde(default = "default_socket")]
    docker_socket: String,
    privileged: Privileged,
    #[serde(default)]
    provisioner_id: String,
    #[serde(default)]
    worker_type: String,
    #[serde(default = "default_grace")]
    kill_grace_period: u32,
    #[serde(default = "default_true")]
    init: bool,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

fn default_socket() -> String {
    "unix:///var/run/docker.sock".into()
}
fn default_grace() -> u32 {
    30
}
fn default_true() -> bool {
    true
}

/// The engine.
pub struct DockerEngine {
    pub(crate) docker: Docker,
    pub(crate) privileged: Privileged,
    /// `worker:privileged:<provisionerId>/<workerType>`.
    pub(crate) privileged_scope: String,
    pub(crate) kill_grace: u32,
    pub(crate) init: bool,
    /// Put on every object the engine makes.
    pub(crate) labels: BTreeMap<String, String>,
    /// `enginehost.instance` on every object of this engine instance (swept by
    /// `dispose`).
    pub(crate) instance: String,
    pub(crate) cleanup: Cleanup,
    /// Task networks (a spare made ahead).
    pub(crate) networks: network::Pool,
}

/// `task.payload`.
#[derive(Deserialize, Clone)]
pub struct Payload {
    pub(crate) image: String,
    pub(crate) command: Vec<String>,
    #[serde(default)]
    pub(crate) privileged: bool,
}

/// A name for an object the engine makes: `enginehost-` and 16 random hex digits.
pub(crate) fn new_name() -> String {
    format!(
        "enginehost-{:016x}",
        enginehost_sdk::wasip3::random::random::get_random_u64()
    )
}

impl DockerEngine {
    /// The labels for an object of `task` (none outside a task).
    pub(crate) fn labels(&self, task: Option<&TaskContext>) -> Value {
        let mut labels: serde_json::Map<String, Value> = self
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        labels.insert("enginehost.engine".into(), "docker".into());
        labels.insert("enginehost.instance".into(), self.instance.clone().into());
        if let Some(task) = task {
            labels.insert(
                "enginehost.task".into(),
                format!("{}/{}", task.task_id(), task.run_id()).into(),
            );
        }
        Value::Object(labels)
    }

    /// A capability denial or an unreachable dockerd, for a task: a non-fatal
    /// internal error whose detail says what the operator must fix.
    pub(crate) fn unavailable(&self, e: ApiError) -> Error {
        match e {
            ApiError::Connect(CapError::Denied(d)) => Error::NonFatalInternalError(d.message),
            other => Error::NonFatalInternalError(format!("docker: {other}")),
        }
    }
}

impl Engine for DockerEngine {
    type SandboxBuilder = DockerBuilder;
    type Sandbox = DockerSandbox;
    type Shell = DockerShell;
    type ResultSet = DockerResult;
    type Volume = DockerVolume;
    type VolumeBuilder = Unsupported;

    fn config_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "dockerSocket": {
                    "type": "string", "pattern": "^unix:///",
                    "description": "dockerd's socket (granted in [plugins.docker.unix-sockets] connect)",
                    "default": "unix:///var/run/docker.sock"
                },
                "privileged": {
                    "type": "string", "enum": ["always", "allow", "never"],
                    "description": "always: every container is privileged; allow: tasks may ask, with the scope worker:privileged:<provisionerId>/<workerType>; never"
                },
                "provisionerId": {"type": "string", "description": "This worker's provisioner, for the privileged scope"},
                "workerType": {"type": "string", "description": "This worker's type, for the privileged scope"},
                "killGracePeriod": {
                    "type": "integer", "minimum": 0, "maximum": 3600, "default": 30,
                    "description": "Seconds between TERM and KILL when a task is killed"
                },
                "init": {
                    "type": "boolean", "default": true,
                    "description": "Run docker-init as the container's PID 1 (signals reach the task's command)"
                },
                "labels": {
                    "type": "object", "additionalProperties": {"type": "string"},
                    "description": "Labels put on every container, network and volume the engine makes"
                }
            },
            "required": ["privileged"],
            "additionalProperties": false
        })
    }

    async fn new(config: Value) -> Result<Self> {
        let config: Config = serde_json::from_value(config).map_err(|e| malformed(format!("engines.docker: {e}")))?;
        let Some(path) = config.docker_socket.strip_prefix("unix://") else {
            return Err(malformed(format!(
                "engines.docker.dockerSocket: {:?} is not a unix socket URL; write \"unix:///var/run/docker.sock\"",
                config.docker_socket
            )));
        };
        let docker = Docker::new(path);
        // Without the grant the engine is unusable: say so now, naming the key.
        if let Err(ApiError::Connect(CapError::Denied(d))) = docker.ping().await {
            return Err(Error::FatalInternalError(d.message));
        }
        let cleanup = Cleanup::default();
        spawn_local(cleanup.clone().run(docker.clone()));
        Ok(DockerEngine {
            docker,
            privileged: config.privileged,
            privileged_scope: format!("worker:privileged:{}/{}", config.provisioner_id, config.worker_type),
            kill_grace: config.kill_grace_period,
            init: config.init,
            labels: config.labels,
            instance: new_name(),
            cleanup,
            networks: network::Pool::default(),
        })
    }

    fn documentation(&self) -> Vec<Section> {
        vec![Section {
            title: "Docker engine".into(),
            content: "Runs `task.payload.command` in a container of `task.payload.image` (pulled unless the worker \
                      has it). Its output is the task log. `http://taskcluster/<proxy>/...` reaches the task's \
                      proxies. Artifacts are absolute paths in the container, e.g. `/folder/hello.txt` or \
                      `/folder` (no trailing `/`). `privileged: true` needs the scope \
                      `worker:privileged:<provisionerId>/<workerType>` and a worker that allows it."
                .into(),
        }]
    }

    fn payload_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "image": {
                    "type": "string", "minLength": 1, "maxLength": 512,
                    "description": "The image, e.g. \"debian:12\" (used if the worker has it, else pulled)"
                },
                "command": {
                    "type": "array", "items": {"type": "string"}, "minItems": 1,
                    "description": "The command to run in the container"
                },
                "privileged": {
                    "type": "boolean", "default": false,
                    "description": "Run privileged (needs the scope worker:privileged:<provisionerId>/<workerType>)"
                }
            },
            "required": ["image", "command"],
            "additionalProperties": false
        })
    }

    async fn new_sandbox_builder(self: Rc<Self>, context: TaskContext, payload: Value) -> Result<DockerBuilder> {
        let payload: Payload = serde_json::from_value(payload).map_err(|e| malformed(format!("task.payload: {e}")))?;
        let privileged = match (self.privileged, payload.privileged) {
            (Privileged::Always, _) => true,
            (_, false) => false,
            (Privileged::Never, true) => {
                return Err(malformed(
                    "task.payload.privileged: this worker runs no privileged containers (engines.docker.privileged \
                     = \"never\"); remove \"privileged\" or use a worker type that allows it",
                ));
            }
            (Privileged::Allow, true) => {
                if !context.has_scopes(&[vec![self.privileged_scope.clone()]]) {
                    return Err(malformed(format!(
                        "task.payload.privileged: a privileged container needs the scope {:?}, which the task does \
                         not have; add it to task.scopes",
                        self.privileged_scope
                    )));
                }
                true
            }
        };
        Ok(DockerBuilder::new(self, context, payload, privileged))
    }

    fn volume_schema(&self) -> Value {
        json!({"type": "object", "properties": {}, "additionalProperties": false})
    }

    async fn new_volume(self: Rc<Self>, _options: Value) -> Result<DockerVolume> {
        DockerVolume::create(&self).await
    }

    async fn recover_sandbox(self: Rc<Self>, context: TaskContext, record: Vec<u8>) -> Result<DockerSandbox> {
        DockerSandbox::recover(self, context, &record).await
    }

    async fn dispose(&self) -> Result<()> {
        if let Some(spare) = self.networks.close().await {
            cleanup::remove(&self.docker, &cleanup::Job::Network(spare)).await;
        }
        // Whatever this instance made and nobody removed (a task never disposed,
        // a network still in the removal queue).
        let filter = api::escape(&json!({"label": [format!("enginehost.instance={}", self.instance)]}).to_string());
        let lists = [
            (format!("/containers/json?all=1&filters={filter}"), "Id"),
            (format!("/networks?filters={filter}"), "Id"),
        ];
        for (target, key) in lists {
            let found = self
                .docker
                .json("GET", &target, None)
                .await
                .map_err(|e| self.unavailable(e))?;
            for object in found.as_array().into_iter().flatten() {
                let Some(id) = object[key].as_str() else { continue };
                let job = if target.starts_with("/containers") {
                    cleanup::Job::Container(id.into())
                } else {
                    cleanup::Job::Network(id.into())
                };
                cleanup::remove(&self.docker, &job).await;
            }
        }
        let volumes = self
            .docker
            .json("GET", &format!("/volumes?filters={filter}"), None)
            .await
            .map_err(|e| self.unavailable(e))?;
        for volume in volumes["Volumes"].as_array().into_iter().flatten() {
            if let Some(name) = volume["Name"].as_str() {
                cleanup::remove(&self.docker, &cleanup::Job::Volume(name.into())).await;
            }
        }
        Ok(())
    }
}

#[cfg(target_arch = "wasm32")]
enginehost_sdk::export_engine!(DockerEngine);
