//! The qemu engine (seed: `engines/qemu`, docs/engine-contract.md §4.5): each task runs
//! in a virtual machine under `qemu-system-x86_64`, with a guest agent inside
//! (`guest-agent/`, protocol in docs/engines/qemu-agent.md) that fetches the
//! command, streams its output, reports the result, and serves shells and
//! artifacts, all over the task's host endpoint (a unix socket `meta.sock` in the
//! sandbox directory, reached by the guest as `http://169.254.169.254/` through
//! qemu's slirp `guestfwd`).
//!
//! - config `{accel: "tcg"|"kvm", imageDir?, bootTimeout?, maxConcurrency?,
//!   limits?: {maxMemory, maxCPUs}}` (docs/engines/qemu.md);
//! - payload `{image, command, env?}`: `image` names a folder of the image
//!   directory holding `machine.json` and the boot files, or is the URL of an
//!   `image.tar.zst` (downloaded by the host into the sandbox, unpacked by `tar`);
//! - one VM per task, its disk state thrown away (direct kernel boot from the
//!   read-only image; qemu's temporary files in the sandbox); qemu, its QMP and
//!   VNC sockets, its serial console (`serial.log`) and its log (`qemu.log`) in
//!   the sandbox directory; the host removes all of it, and kills qemu and the
//!   `socat` helpers slirp starts, when the task ends;
//! - the task log gets the guest's output, copied by the host (the bytes never
//!   enter the engine); artifacts are written into the sandbox by the host
//!   (`request.save-body`) and handed on with `files.open-file`;
//! - `kill` asks the agent to stop the task (TERM, KILL 5 s later) and quits the
//!   VM if no result came within the grace period; `abort` quits the VM at once;
//! - one display, `screen`, the VM's VGA through qemu's VNC server.

mod agent;
mod builder;
mod machine;
mod qmp;
mod recovery;
mod result;
mod sandbox;
mod shell;
mod task;

use std::cell::Cell;
use std::rc::Rc;

use enginehost_sdk::{Engine, EngineCapabilities, Result, Section, TaskContext, Unsupported, malformed};
use serde::Deserialize;
use serde_json::{Value, json};

pub use builder::QemuBuilder;
pub use result::QemuResult;
pub use sandbox::QemuSandbox;
pub use shell::QemuShell;

/// The guest path of the operator's image directory (`[files.dirs.images]`).
pub(crate) const IMAGES: &str = "/grants/images";

/// How qemu runs the guest.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Software emulation: works everywhere, 10–50× slower.
    Tcg,
    /// Hardware virtualization (`/dev/kvm`).
    Kvm,
}

/// What a task's machine may use.
#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    /// MiB.
    #[serde(default = "default_max_memory")]
    pub max_memory: u32,
    /// vCPUs.
    #[serde(default = "default_max_cpus", rename = "maxCPUs")]
    pub max_cpus: u32,
    /// Accepted for the seed's configs; threads come from machine.json.
    #[serde(default)]
    pub default_threads: Option<u32>,
}

fn default_max_memory() -> u32 {
    1024
}
fn default_max_cpus() -> u32 {
    1
}
fn default_image_dir() -> String {
    "/var/lib/enginehost/qemu-images".into()
}
fn default_boot_timeout() -> u32 {
    60
}
fn default_max_concurrency() -> u32 {
    1
}
fn default_qemu() -> String {
    "/usr/bin/qemu-system-x86_64".into()
}

/// The engine's config.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QemuEngine {
    accel: Accel,
    #[serde(default = "default_image_dir")]
    image_dir: String,
    #[serde(default = "default_boot_timeout")]
    boot_timeout: u32,
    #[serde(default = "default_max_concurrency")]
    max_concurrency: u32,
    #[serde(default = "default_qemu")]
    qemu: String,
    #[serde(default = "default_limits")]
    limits: Limits,
    /// The seed's tap network pool; ignored (the VM has slirp user networking).
    #[serde(default)]
    #[allow(dead_code)]
    network: Option<Value>,
    #[serde(skip)]
    running: Cell<u32>,
}

fn default_limits() -> Limits {
    Limits {
        max_memory: default_max_memory(),
        max_cpus: default_max_cpus(),
        default_threads: None,
    }
}

/// `task.payload`.
#[derive(Deserialize, Clone)]
pub struct Payload {
    image: String,
    command: Vec<String>,
    #[serde(default)]
    env: std::collections::BTreeMap<String, String>,
}

impl Engine for QemuEngine {
    type SandboxBuilder = QemuBuilder;
    type Sandbox = QemuSandbox;
    type Shell = QemuShell;
    type ResultSet = QemuResult;
    type Volume = Unsupported;
    type VolumeBuilder = Unsupported;

    fn config_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "accel": {
                    "enum": ["tcg", "kvm"],
                    "description": "qemu's accelerator: tcg (software, works everywhere) or kvm (needs a usable /dev/kvm); never guessed"
                },
                "imageDir": {
                    "type": "string", "pattern": "^/",
                    "description": "Host path of the image directory (one folder per image); grant the same path as [plugins.qemu.files.dirs.images]"
                },
                "bootTimeout": {
                    "type": "integer", "minimum": 1, "maximum": 3600,
                    "description": "Seconds from starting the VM to the guest agent's first request before the task fails (default 60)"
                },
                "maxConcurrency": {
                    "type": "integer", "minimum": 1, "maximum": 256,
                    "description": "VMs at once (default 1; each TCG VM keeps a core busy)"
                },
                "qemu": {
                    "type": "string", "pattern": "^/",
                    "description": "The qemu binary (default /usr/bin/qemu-system-x86_64; grant it in [plugins.qemu.process] exec)"
                },
                "limits": {
                    "type": "object",
                    "properties": {
                        "maxMemory": {"type": "integer", "minimum": 16, "description": "MiB a machine may have (default 1024)"},
                        "maxCPUs": {"type": "integer", "minimum": 1, "maximum": 64, "description": "vCPUs a machine may have (default 1)"},
                        "defaultThreads": {"type": "integer", "minimum": 1, "description": "Accepted for the seed's configs; unused"}
                    },
                    "additionalProperties": false
                },
                "network": {"type": "object", "description": "The seed's tap network pool: accepted and ignored (tasks get slirp user networking)"}
            },
            "required": ["accel"],
            "additionalProperties": false
        })
    }

    async fn new(config: Value) -> Result<Self> {
        let engine: QemuEngine = serde_json::from_value(config).map_err(|e| malformed(format!("engines.qemu: {e}")))?;
        Ok(engine)
    }

    fn documentation(&self) -> Vec<Section> {
        vec![Section {
            title: "qemu".into(),
            content: "Each task runs in a virtual machine booted from `payload.image`, an image of the worker's \
                      image directory. `payload.command` runs in the guest as root in /home/tc, with \
                      `payload.env` and the task's environment; its output is the task log. Artifacts are \
                      read from the guest (relative paths are under /home/tc). Proxies are reached at \
                      http://taskcluster/<name>/. The display `screen` is the VM's VGA screen."
                .into(),
        }]
    }

    fn payload_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "image": {
                    "type": "string", "pattern": "^([a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}|https?://.+)$", "maxLength": 2048,
                    "description": "The image: a folder of the worker's image directory (machine.json and the boot files), or the URL of an image.tar.zst"
                },
                "command": {
                    "type": "array", "items": {"type": "string"}, "minItems": 1,
                    "description": "The command to run in the guest (argv; a bare name is looked up in PATH)"
                },
                "env": {
                    "type": "object", "additionalProperties": {"type": "string"},
                    "description": "Environment variables for the command (the task's own variables win)"
                }
            },
            "required": ["image", "command"],
            "additionalProperties": false
        })
    }

    fn capabilities(&self) -> EngineCapabilities {
        EngineCapabilities {
            max_concurrency: self.max_concurrency,
        }
    }

    async fn new_sandbox_builder(self: Rc<Self>, context: TaskContext, payload: Value) -> Result<QemuBuilder> {
        let payload: Payload = serde_json::from_value(payload).map_err(|e| malformed(format!("task.payload: {e}")))?;
        for name in payload.env.keys() {
            if !task::valid_env_name(name) {
                return Err(malformed(format!(
                    "task.payload.env: the name '{name}' doesn't match {}",
                    task::ENV_RULE
                )));
            }
        }
        Ok(QemuBuilder::new(self, context, payload))
    }

    async fn recover_sandbox(self: Rc<Self>, context: TaskContext, record: Vec<u8>) -> Result<QemuSandbox> {
        recovery::recover(self, context, &record).await
    }
}

#[cfg(target_arch = "wasm32")]
enginehost_sdk::export_engine!(QemuEngine);
