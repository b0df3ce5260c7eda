//! The native engine (seed: `engines/native`, docs/engine-contract.md §4.3): the task's
//! own command runs as a host process in a per-task directory, as a per-task system
//! user (`createUser`) or as the worker's user; shells run there too, with or
//! without a tty. Everything it does on the host goes through capabilities the
//! operator grants (docs/capabilities.md); the host kills every process of the task
//! and removes its user and directory when the task ends.
//!
//! - config `{createUser?: bool (default false), groups?: [string]}`;
//! - payload `{command: [string] | commands: [[string]], context?: url}`: one
//!   command, or several run in turn in the same home with the same environment,
//!   stopping at the first that fails (generic-worker's `command` list); `context`
//!   (a plain file, a `.tar.gz`/`.tgz`/`.gz`, or a `.zip`) is downloaded by the
//!   host into the task's home and unpacked there by `tar`/`gunzip`/`unzip`
//!   running as the task's user;
//! - `groups`: groups this task's user joins besides the engine's (createUser
//!   only; each must be granted in `[plugins.native.users] groups`, else the
//!   task's payload is refused naming the group);
//! - `mounts`: files and read-only directories downloaded into the home before
//!   the first command (generic-worker's mounts; `mounts.rs`);
//! - volumes: writable caches kept across tasks (generic-worker's writable
//!   directory caches), directories in the engine's state directory lent to one
//!   task at a time at a path in its home (`volume.rs`);
//! - environment variables named `^[a-zA-Z0-9_-]+$`; the command also gets `HOME`
//!   and `TASK_WORKDIR` (the home),
//!   `USER` and `LOGNAME`; its stdout and stderr go to the task log, in order;
//! - result set paths are relative to the home; a symlink that leads out of it is
//!   resource-not-found.
//!
//! Decisions on the seed's quirks (docs/engines/native.md): `createUser` defaults
//! to false (the seed required it), so a worker without a config meets the missing
//! capability grant, which names its key; without `createUser` tasks run in a
//! per-task directory (the seed used the worker's own home); shells
//! get the task's whole environment, `HOME`/`USER`/`LOGNAME` included (the seed
//! gave shells only the builder's variables); `set-size` on an aborted shell is
//! shell-aborted (the seed said sandbox-aborted).

mod builder;
mod context;
mod mounts;
mod result;
mod sandbox;
mod shell;
mod volume;

use std::rc::Rc;

use enginehost_sdk::{Engine, Result, TaskContext, Unsupported, malformed};
use serde::Deserialize;
use serde_json::{Value, json};

pub use builder::NativeBuilder;
pub use result::NativeResult;
pub use sandbox::NativeSandbox;
pub use shell::NativeShell;
pub use volume::NativeVolume;

/// The task's home, relative to its sandbox directory.
pub(crate) const HOME: &str = "home";

/// The engine's config.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NativeEngine {
    #[serde(default)]
    create_user: bool,
    #[serde(default)]
    groups: Vec<String>,
}

/// `task.payload`.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    #[serde(default)]
    command: Option<Vec<String>>,
    #[serde(default)]
    commands: Option<Vec<Vec<String>>>,
    #[serde(default)]
    context: Option<String>,
    #[serde(default)]
    mounts: Vec<mounts::Mount>,
    #[serde(default)]
    groups: Vec<String>,
}

impl Payload {
    /// The commands to run in turn, and whether the payload gave a list (each
    /// command is then announced in the task log, as generic-worker does).
    fn commands(self) -> Result<(Vec<Vec<String>>, bool)> {
        match (self.command, self.commands) {
            (Some(one), None) => Ok((vec![one], false)),
            (None, Some(list)) if !list.is_empty() && list.iter().all(|c| !c.is_empty()) => Ok((list, true)),
            (None, Some(_)) => Err(malformed(
                "task.payload.commands: each command must have at least its program, and there must be one",
            )),
            _ => Err(malformed(
                "task.payload: give either \"command\" (one argv list) or \"commands\" (a list of argv lists)",
            )),
        }
    }
}

impl Engine for NativeEngine {
    type SandboxBuilder = NativeBuilder;
    type Sandbox = NativeSandbox;
    type Shell = NativeShell;
    type ResultSet = NativeResult;
    type Volume = NativeVolume;
    type VolumeBuilder = Unsupported;

    fn config_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "createUser": {
                    "type": "boolean", "default": false,
                    "description": "Run each task as a new system user (needs root); else as the worker's user"
                },
                "groups": {
                    "type": "array", "items": {"type": "string", "pattern": "^[a-zA-Z0-9_.-]+$"},
                    "description": "Groups the task users join (each granted in [plugins.native.users] groups)"
                }
            },
            "additionalProperties": false
        })
    }

    async fn new(config: Value) -> Result<Self> {
        let engine = serde_json::from_value(config).map_err(|e| malformed(format!("engines.native: {e}")))?;
        // Volumes of an earlier run of the engine belong to nobody now.
        volume::remove_all().await;
        Ok(engine)
    }

    fn payload_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "command": {
                    "type": "array", "items": {"type": "string"}, "minItems": 1,
                    "description": "The command to run: argv[0] absolute, ./relative to the task's home, or a bare name"
                },
                "commands": {
                    "type": "array", "minItems": 1,
                    "items": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    "description": "Commands run in turn (instead of command), stopping at the first that fails"
                },
                "context": {
                    "type": "string", "format": "uri",
                    "description": "A file, .tar.gz or .zip to download into the home before the command runs"
                },
                "groups": {
                    "type": "array", "items": {"type": "string", "pattern": "^[a-zA-Z0-9_.-]+$"},
                    "description": "Groups this task's user joins besides the engine's (each granted in [plugins.native.users] groups; needs createUser)"
                },
                "mounts": {
                    "type": "array", "items": mounts::schema(),
                    "description": "Files and directories downloaded into the home before the first command"
                }
            },
            // One of command and commands: the engine says so by name (a oneOf
            // here would only say "not valid under any of the schemas").
            "additionalProperties": false
        })
    }

    async fn new_volume(self: Rc<Self>, _options: Value) -> Result<NativeVolume> {
        NativeVolume::create()
    }

    async fn dispose(&self) -> Result<()> {
        volume::remove_all().await;
        Ok(())
    }

    async fn recover_sandbox(self: Rc<Self>, context: TaskContext, record: Vec<u8>) -> Result<NativeSandbox> {
        NativeSandbox::recover(context, &record)
    }

    async fn new_sandbox_builder(self: Rc<Self>, context: TaskContext, payload: Value) -> Result<NativeBuilder> {
        let payload: Payload = serde_json::from_value(payload).map_err(|e| malformed(format!("task.payload: {e}")))?;
        let url = payload.context.clone();
        mounts::check(&payload.mounts)?;
        let mounts = payload.mounts.clone();
        if !payload.groups.is_empty() && !self.create_user {
            return Err(malformed(format!(
                "task.payload.groups: {}: this worker runs tasks as its own user (engines.native createUser is \
                 false), which joins no groups per task",
                payload.groups.join(", ")
            )));
        }
        let groups = payload.groups.clone();
        let (commands, announce) = payload.commands()?;
        Ok(NativeBuilder::new(
            self, context, url, mounts, groups, commands, announce,
        ))
    }
}

#[cfg(target_arch = "wasm32")]
enginehost_sdk::export_engine!(NativeEngine);
