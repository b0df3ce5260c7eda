//! The script engine (seed: `engines/script`, docs/engine-contract.md §4.2): every task
//! runs the operator's `command` in the task's sandbox directory, as the worker's
//! user, with the payload as JSON on stdin and only `TASK_ID` and `RUN_ID` in its
//! environment. stdout goes to the task log as it is, stderr line by line with the
//! prefix `[worker:error] ` — both copied by the host, never through this engine.
//! The exit code decides: 0 success, 1 failure, 2 malformed payload, 3 non-fatal
//! internal error, 4 fatal internal error; anything else is a fatal internal error
//! naming the code. Files the script writes under `artifacts/` in its working
//! directory can be extracted from the result set (paths relative to `artifacts/`).
//!
//! Decisions on the seed's quirks (docs/engines/script.md):
//! - `schema.required` is kept (the seed dropped it): a payload missing a required
//!   key is malformed before anything runs.
//! - `kill` ends the whole process tree (TERM, KILL after 5 s) and the task fails
//!   (the seed killed the main process only, which then mapped to a fatal error).
//! - once the script exits, whatever it left running is killed before its output
//!   is awaited (the seed waited for stderr's end, so a background child that kept
//!   it open hung the task).

mod builder;
mod result;
mod sandbox;

use std::rc::Rc;

use enginehost_sdk::{Engine, Error, Result, TaskContext, Unsupported};
use serde_json::{Value, json};

pub use builder::ScriptBuilder;
pub use result::ScriptResult;
pub use sandbox::ScriptSandbox;

/// The engine: the operator's command and payload schema.
pub struct ScriptEngine {
    command: Vec<String>,
    payload_schema: Value,
}

impl Engine for ScriptEngine {
    type SandboxBuilder = ScriptBuilder;
    type Sandbox = ScriptSandbox;
    type Shell = Unsupported;
    type ResultSet = ScriptResult;
    type Volume = Unsupported;
    type VolumeBuilder = Unsupported;

    fn config_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "command": {
                    "type": "array", "items": {"type": "string"}, "minItems": 1,
                    "description": "The command every task runs; argv[0] absolute or found in the operator's process.search-path"
                },
                "schema": {
                    "type": "object", "additionalProperties": true,
                    "properties": {
                        "type": {"const": "object"},
                        "properties": {"type": "object", "additionalProperties": true},
                        "required": {"type": "array", "items": {"type": "string"}}
                    },
                    "required": ["type"],
                    "description": "The JSON Schema of task.payload (an object schema)"
                }
            },
            "required": ["command", "schema"],
            "additionalProperties": false
        })
    }

    async fn new(config: Value) -> Result<Self> {
        let command: Vec<String> = serde_json::from_value(config["command"].clone())
            .map_err(|e| Error::FatalInternalError(format!("engines.script.command: {e}")))?;
        let schema = &config["schema"];
        let mut payload_schema = json!({
            "type": "object",
            "properties": schema.get("properties").cloned().unwrap_or_else(|| json!({})),
            "additionalProperties": false
        });
        if let Some(required) = schema.get("required") {
            payload_schema["required"] = required.clone();
        }
        Ok(ScriptEngine {
            command,
            payload_schema,
        })
    }

    fn payload_schema(&self) -> Value {
        self.payload_schema.clone()
    }

    async fn new_sandbox_builder(self: Rc<Self>, context: TaskContext, payload: Value) -> Result<ScriptBuilder> {
        Ok(ScriptBuilder::new(self.command.clone(), context, payload))
    }
}

#[cfg(target_arch = "wasm32")]
enginehost_sdk::export_engine!(ScriptEngine);
