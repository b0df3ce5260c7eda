//! Payload front-ends (`[worker] payload-format`): a claimed task's payload, in
//! enginehost's shape or as written for generic-worker or docker-worker, becomes the
//! [`TaskFile`] the stages run and the names of its logs.
//!
//! - `enginehost`: [`super::payload`], `enginehost run`'s task file.
//! - `generic-worker`: [`generic_worker`], generic-worker's posix payload on the
//!   native engine (a docker-worker payload in it, as generic-worker's d2g takes
//!   it, on the docker engine).
//! - `docker-worker`: [`docker_worker`], docker-worker's payload on the docker engine.
//!
//! The foreign payloads are validated against their published schemas, vendored in
//! `host/schemas/taskcluster/` (README there: source, commit and version). A field or
//! feature enginehost does not do is refused by name: the task resolves as
//! `malformed-payload` and its log says which field and why; nothing is silently
//! ignored (docs/worker.md, "Payload formats", has the table).

pub mod docker_worker;
pub mod generic_worker;

use std::sync::LazyLock;

use serde_json::Value;

use super::payload::{LogNames, TaskDefinition, task_file};
use crate::policy::{PayloadFormat, WorkerSettings};
use crate::schema::Compiled;
use crate::worker::TaskFile;

/// What a front-end makes of a task: the task file and its logs' names.
#[derive(Debug, Clone)]
pub struct Plan {
    pub task: TaskFile,
    pub logs: LogNames,
    /// Lines for the task log before the task starts (what the worker changed).
    pub notes: Vec<String>,
    /// Whether the worker signs a chain of trust for the run (`features.chainOfTrust`).
    pub chain_of_trust: bool,
    /// Exit codes of a failed task that make it `intermittent-task`
    /// (`onExitStatus.retry`).
    pub retry_exit_codes: Vec<i32>,
    /// Writable caches the task mounts: `(name, mountpoint)` (docker-worker's `cache`).
    pub caches: Vec<(String, String)>,
    /// Exit codes after which the task's caches are deleted (`onExitStatus.purgeCaches`).
    pub purge_exit_codes: Vec<i32>,
    /// Mounts of private artifacts: the index in `task.payload.mounts` whose `url`
    /// the worker replaces with a URL signed with the run's credentials.
    pub private_mounts: Vec<(usize, PrivateArtifact)>,
}

/// A private artifact a mount downloads (generic-worker's `content` with a
/// non-`public/` artifact).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateArtifact {
    /// The task's id, or (`indexed`) the index namespace that names the task.
    pub task: String,
    pub indexed: bool,
    /// The artifact's name.
    pub name: String,
}

impl Plan {
    /// The plan of a foreign payload (the task's ids and scopes come later, from
    /// the claim).
    fn foreign(
        engine: &str,
        payload: Value,
        env: std::collections::BTreeMap<String, String>,
        max_run_time: u64,
        artifacts: Vec<crate::worker::artifacts::ArtifactSpec>,
        logs: LogNames,
        chain_of_trust: bool,
    ) -> Plan {
        Plan {
            task: TaskFile {
                engine: engine.to_string(),
                payload,
                env,
                max_run_time: Some(max_run_time),
                artifacts,
                task_id: None,
                scopes: Vec::new(),
                run_id: 0,
                features: Default::default(),
            },
            logs,
            notes: Vec::new(),
            chain_of_trust,
            retry_exit_codes: Vec::new(),
            caches: Vec::new(),
            purge_exit_codes: Vec::new(),
            private_mounts: Vec::new(),
        }
    }
}

/// The worker's chain-of-trust signing, and the engines whose tasks could read the
/// key (each with why).
#[derive(Debug, Clone)]
pub struct ChainOfTrust {
    pub signer: std::sync::Arc<super::cot::Signer>,
    pub unsafe_engines: std::collections::BTreeMap<String, String>,
}

/// The worker's payload format and the engines it maps tasks onto.
#[derive(Debug, Clone)]
pub struct Formats {
    format: PayloadFormat,
    root_url: String,
    task_queue_id: String,
    engines: Vec<String>,
    default: Option<String>,
    native: Option<String>,
    docker: Option<String>,
    chain_of_trust: Option<ChainOfTrust>,
    /// Whether the worker serves interactive sessions (`[interactive]`).
    interactive: bool,
}

impl Formats {
    /// From the checked `[worker]` table, and the chain-of-trust key if it has one.
    pub fn new(settings: &WorkerSettings, chain_of_trust: Option<ChainOfTrust>) -> Formats {
        Formats {
            chain_of_trust,
            format: settings.payload_format,
            root_url: settings.root_url.clone(),
            task_queue_id: settings.task_queue_id.clone(),
            engines: settings.engines.clone(),
            default: settings.default_engine.clone(),
            native: settings.native_engine.clone(),
            docker: settings.docker_engine.clone(),
            interactive: false,
        }
    }

    /// Whether the worker serves interactive sessions (`[interactive]`): a task that
    /// asks for one is refused without.
    pub fn with_interactive(mut self, interactive: bool) -> Formats {
        self.interactive = interactive;
        self
    }

    /// For one task outside a worker (`enginehost run --payload-format`): the
    /// format's usual engines (`native`, `docker`), the deployment at `root_url`
    /// (artifact and index mounts), no signing key.
    pub fn local(format: PayloadFormat, root_url: &str) -> Formats {
        Formats {
            format,
            root_url: root_url.trim_end_matches('/').to_string(),
            task_queue_id: "local/local".into(),
            engines: vec!["native".into(), "docker".into()],
            default: None,
            native: Some("native".into()),
            docker: Some("docker".into()),
            chain_of_trust: None,
            interactive: true,
        }
    }

    /// Why a task on `engine` cannot have a chain of trust, if it cannot.
    fn chain_of_trust_refused(&self, engine: &str) -> Option<String> {
        match &self.chain_of_trust {
            None => Some(
                "this worker signs no chain of trust ([worker] chain-of-trust-key is not set); run the task on a \
                 worker pool that does, or set it to false"
                    .to_string(),
            ),
            Some(cot) => cot.unsafe_engines.get(engine).cloned(),
        }
    }

    /// Why the task cannot be interactive, if it asks to be and cannot.
    fn interactive_refused(&self, payload: &Value) -> Option<String> {
        (payload.pointer("/features/interactive") == Some(&Value::Bool(true)) && !self.interactive).then(|| {
            "task.payload.features.interactive: this worker serves no interactive sessions ([interactive] is not in \
             its config); run the task on a worker pool that does, or set it to false"
                .to_string()
        })
    }

    /// The chain-of-trust key, if the worker has one.
    pub fn signer(&self) -> Option<&super::cot::Signer> {
        self.chain_of_trust.as_ref().map(|c| c.signer.as_ref())
    }

    /// Whether the payloads are another worker's.
    pub fn foreign(&self) -> bool {
        self.format != PayloadFormat::Enginehost
    }

    /// The format, as configured.
    pub fn name(&self) -> &'static str {
        self.format.as_str()
    }

    /// The plan for run `run_id` of `task_id`, or every problem with its payload,
    /// each a message for the task's author.
    pub fn plan(&self, task_id: &str, run_id: u32, definition: &TaskDefinition) -> Result<Plan, Vec<String>> {
        let engine = |name: &Option<String>, key: &str, usual: &str| {
            name.clone().ok_or_else(|| {
                vec![format!(
                    "task.payload: this worker runs no {usual} engine for this payload ([worker] {key}); it serves {}",
                    self.engines.join(", ")
                )]
            })
        };
        let payload = &definition.payload;
        let (engine, built) = match self.format {
            PayloadFormat::Enginehost => {
                let plan =
                    task_file(task_id, run_id, definition, &self.engines, self.default.as_deref()).map(|task| Plan {
                        task,
                        logs: LogNames::default(),
                        notes: Vec::new(),
                        chain_of_trust: false,
                        retry_exit_codes: Vec::new(),
                        caches: Vec::new(),
                        purge_exit_codes: Vec::new(),
                        private_mounts: Vec::new(),
                    });
                (String::new(), plan)
            }
            PayloadFormat::GenericWorker if docker_worker::is_docker_payload(payload) => {
                let docker = engine(&self.docker, "docker-engine", "docker")?;
                let plan = docker_worker::plan(definition, &docker, &GENERIC_WORKER_D2G, "generic-worker:cache:");
                (docker, plan)
            }
            PayloadFormat::GenericWorker => {
                let native = engine(&self.native, "native-engine", "native")?;
                let plan = generic_worker::plan(definition, &native, &self.root_url, &self.task_queue_id);
                (native, plan)
            }
            PayloadFormat::DockerWorker => {
                let docker = engine(&self.docker, "docker-engine", "docker")?;
                let plan = docker_worker::plan(definition, &docker, &DOCKER_WORKER, "docker-worker:cache:");
                (docker, plan)
            }
        };
        // The chain of trust, beside every other problem of the payload.
        let refused = (payload.pointer("/features/chainOfTrust") == Some(&Value::Bool(true)))
            .then(|| self.chain_of_trust_refused(&engine))
            .flatten()
            .map(|why| format!("task.payload.features.chainOfTrust: {why}"));
        let refused = refused
            .into_iter()
            .chain(self.interactive_refused(payload))
            .collect::<Vec<_>>();
        let mut plan = match built {
            Ok(plan) if refused.is_empty() => plan,
            Ok(_) => return Err(refused),
            Err(mut problems) => {
                problems.extend(refused);
                return Err(problems);
            }
        };
        // generic-worker's and docker-worker's keys are the task file's.
        let asks = |feature: &str| payload.pointer(&format!("/features/{feature}")) == Some(&Value::Bool(true));
        plan.task.features.interactive |= asks("interactive");
        plan.task.features.taskcluster_proxy |= asks("taskclusterProxy");
        if plan.task.features.taskcluster_proxy {
            // Where the engines that offer proxies (docker, qemu) serve them.
            plan.task
                .env
                .entry("TASKCLUSTER_PROXY_URL".into())
                .or_insert_with(|| "http://taskcluster".into());
        }
        if self.foreign() {
            // What generic-worker and docker-worker set in every task, over the payload's.
            let mut set = vec![
                ("TASK_ID", task_id.to_string()),
                ("RUN_ID", run_id.to_string()),
                ("TASKCLUSTER_ROOT_URL", self.root_url.clone()),
            ];
            if let Some(group) = &definition.task_group_id {
                set.push(("TASK_GROUP_ID", group.clone()));
            }
            for (name, value) in set {
                if let Some(old) = plan.task.env.insert(name.to_string(), value.clone())
                    && old != value
                {
                    plan.notes.push(format!(
                        "task.payload.env.{name}: the worker sets it ({value}); the payload's value is not used"
                    ));
                }
            }
        }
        let codes = |at: &str| -> Vec<i32> {
            payload
                .pointer(at)
                .and_then(Value::as_array)
                .map(|codes| codes.iter().filter_map(|c| c.as_i64()?.try_into().ok()).collect())
                .unwrap_or_default()
        };
        plan.retry_exit_codes = codes("/onExitStatus/retry");
        plan.purge_exit_codes = codes("/onExitStatus/purgeCaches");
        plan.task.task_id = Some(task_id.to_string());
        plan.task.run_id = run_id;
        plan.task.scopes = definition.scopes.clone();
        Ok(plan)
    }
}

/// A vendored schema, compiled once.
pub struct Published {
    /// What the schema is, for messages.
    pub name: &'static str,
    compiled: LazyLock<Compiled>,
}

impl Published {
    const fn new(name: &'static str, build: fn() -> Compiled) -> Published {
        Published {
            name,
            compiled: LazyLock::new(build),
        }
    }

    /// Every problem of `payload` against the schema, named from `task.payload`.
    pub fn problems(&self, payload: &Value) -> Vec<String> {
        self.problems_at(payload, "task.payload")
    }

    /// Every problem of `value` (at `root` in the payload) against the schema.
    pub fn problems_at(&self, value: &Value, root: &str) -> Vec<String> {
        self.compiled.validate(value, root).err().unwrap_or_default()
    }
}

fn vendored(text: &str) -> Value {
    serde_json::from_str(text).expect("a vendored schema is JSON (host/schemas/taskcluster)")
}

/// One branch of generic-worker's `oneOf` (0: its own payload, 1: a docker-worker
/// payload for d2g), with the definitions it refers to.
fn generic_worker_branch(i: usize) -> Compiled {
    let root = vendored(include_str!(
        "../../../../schemas/taskcluster/generic-worker-multiuser-posix.json"
    ));
    let mut branch = root["oneOf"][i].clone();
    branch["definitions"] = root["definitions"].clone();
    Compiled::published(&branch).expect("generic-worker's schema compiles")
}

/// One of generic-worker's definitions (`fileMount`, ...), with the others.
fn generic_worker_definition(name: &str) -> Compiled {
    let root = vendored(include_str!(
        "../../../../schemas/taskcluster/generic-worker-multiuser-posix.json"
    ));
    let mut definition = root["definitions"][name].clone();
    definition["definitions"] = root["definitions"].clone();
    Compiled::published(&definition).expect("generic-worker's schema compiles")
}

/// generic-worker's three kinds of mount, for messages that say more than the
/// `oneOf` they are in.
pub static GENERIC_WORKER_MOUNTS: [Published; 3] = [
    Published::new("a writable directory cache", || {
        generic_worker_definition("writableDirectoryCache")
    }),
    Published::new("a file mount", || generic_worker_definition("fileMount")),
    Published::new("a read-only directory", || {
        generic_worker_definition("readOnlyDirectory")
    }),
];

/// generic-worker's own payload (multiuser_posix.json, first branch).
pub static GENERIC_WORKER: Published =
    Published::new("generic-worker's multiuser posix payload", || generic_worker_branch(0));
/// A docker-worker payload as generic-worker takes it (multiuser_posix.json, second
/// branch).
pub static GENERIC_WORKER_D2G: Published = Published::new("generic-worker's docker-worker payload (d2g)", || {
    generic_worker_branch(1)
});
/// docker-worker's payload (as d2g vendors it).
pub static DOCKER_WORKER: Published = Published::new("docker-worker's payload", || {
    let schema = vendored(include_str!(
        "../../../../schemas/taskcluster/docker-worker-payload.json"
    ));
    Compiled::published(&schema).expect("docker-worker's schema compiles")
});

/// The first checks of a foreign payload: the published `schema` (its problems
/// alone, when there are any), then the problems of its `features` (see
/// [`feature_problems`]) and of the fields both formats refuse.
///
/// # Errors
/// The schema's problems.
pub fn first_checks(
    payload: &Value,
    schema: &Published,
    supported: &[&str],
    always_on: &[(&str, &str)],
    why: &dyn Fn(&str) -> String,
) -> Result<Vec<String>, Vec<String>> {
    let problems = schema.problems(payload);
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut problems = feature_problems(
        payload.get("features"),
        "task.payload.features",
        supported,
        always_on,
        why,
    );
    problems.extend(common_refusals(payload));
    Ok(problems)
}

/// Refuses each of `features` (an object of booleans at `at`) that is `true` and
/// not in `supported`, and each `false` of one whose default is `true` that
/// enginehost cannot turn off (`always_on`): each by name, with why.
pub fn feature_problems(
    features: Option<&Value>,
    at: &str,
    supported: &[&str],
    always_on: &[(&str, &str)],
    why: &dyn Fn(&str) -> String,
) -> Vec<String> {
    let Some(features) = features.and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    for (name, value) in features {
        match value.as_bool() {
            Some(true) if !supported.contains(&name.as_str()) => {
                problems.push(format!("{at}.{name}: {}", why(name)));
            }
            Some(false) => {
                if let Some((_, reason)) = always_on.iter().find(|(n, _)| n == name) {
                    problems.push(format!("{at}.{name}: cannot be turned off: {reason}"));
                }
            }
            _ => {}
        }
    }
    problems
}

/// The refusal of `supersederUrl`, shared by both foreign formats.
pub fn common_refusals(payload: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if payload.get("supersederUrl").is_some() {
        problems.push(
            "task.payload.supersederUrl: not supported by enginehost: it never supersedes a task; remove it"
                .to_string(),
        );
    }
    problems
}

/// The backing log's name for a live log named `live`, as docker-worker and
/// generic-worker derive it: `_backing` before the extension of the last segment.
pub fn backing_name(live: &str) -> String {
    let (dir, file) = match live.rsplit_once('/') {
        Some((dir, file)) => (format!("{dir}/"), file),
        None => (String::new(), live),
    };
    match file.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{dir}{stem}_backing.{ext}"),
        _ => format!("{dir}{file}_backing"),
    }
}

/// The problems with log names chosen by a payload: each must be a good artifact
/// name and the two must differ.
pub fn log_name_problems(logs: &LogNames, at: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, which) in [(&logs.live, "live"), (&logs.backing, "backing")] {
        if let Err(e) = crate::worker::artifacts::confined(std::path::Path::new("/"), name) {
            problems.push(format!("{at} ({which} log {name:?}): {e}"));
        }
    }
    if logs.live == logs.backing {
        problems.push(format!(
            "{at}: the live and the backing log are both named {:?}",
            logs.live
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backing_names_are_derived_as_docker_worker_does() {
        // docker-worker's schema: `apple/banana.log.txt` → `apple/banana.log_backing.txt`.
        assert_eq!(backing_name("apple/banana.log.txt"), "apple/banana.log_backing.txt");
        assert_eq!(backing_name("public/logs/live.log"), "public/logs/live_backing.log");
        assert_eq!(backing_name("public/log"), "public/log_backing");
        assert_eq!(backing_name("a.b/.hidden"), "a.b/.hidden_backing");
    }

    fn formats(format: PayloadFormat) -> Formats {
        Formats {
            format,
            root_url: "https://tc.example.com".into(),
            task_queue_id: "p/w".into(),
            engines: vec!["native".into()],
            default: None,
            native: Some("native".into()),
            docker: None,
            chain_of_trust: None,
            interactive: false,
        }
    }

    fn definition(payload: Value) -> TaskDefinition {
        TaskDefinition::read(&serde_json::json!({
            "expires": "2030-01-01T00:00:00.000Z", "taskGroupId": "G", "payload": payload
        }))
        .unwrap()
    }

    #[test]
    fn the_worker_sets_generic_workers_variables_and_refuses_what_it_cannot_do() {
        let gw = formats(PayloadFormat::GenericWorker);
        let plan = gw
            .plan(
                "T",
                3,
                &definition(serde_json::json!({"command": [["true"]], "maxRunTime": 5, "env": {"RUN_ID": "9"}})),
            )
            .unwrap();
        assert_eq!(plan.task.env["TASK_ID"], "T");
        assert_eq!(plan.task.env["RUN_ID"], "3");
        assert_eq!(plan.task.env["TASK_GROUP_ID"], "G");
        assert_eq!(plan.task.env["TASKCLUSTER_ROOT_URL"], "https://tc.example.com");
        assert!(plan.task.env["PATH"].starts_with("/usr/local/bin:"));
        assert!(plan.notes[0].contains("task.payload.env.RUN_ID: the worker sets it (3)"));
        // No key: a chain of trust is refused, beside the payload's other problems.
        let problems = gw
            .plan(
                "T",
                0,
                &definition(serde_json::json!({"command": [["true"]], "maxRunTime": 5,
                    "features": {"chainOfTrust": true, "interactive": true}})),
            )
            .unwrap_err()
            .join("\n");
        assert!(problems.contains("task.payload.features.interactive"), "{problems}");
        assert!(
            problems.contains("task.payload.features.chainOfTrust: this worker signs no chain of trust"),
            "{problems}"
        );
        // A docker-worker payload on a worker without a docker engine.
        let problems = gw
            .plan(
                "T",
                0,
                &definition(serde_json::json!({"image": "debian:12", "command": ["true"], "maxRunTime": 5})),
            )
            .unwrap_err();
        assert!(
            problems[0].contains("this worker runs no docker engine for this payload"),
            "{problems:?}"
        );
    }

    #[test]
    fn the_vendored_schemas_compile() {
        for schema in [&GENERIC_WORKER, &GENERIC_WORKER_D2G, &DOCKER_WORKER] {
            assert!(!schema.problems(&serde_json::json!({})).is_empty(), "{}", schema.name);
        }
    }
}
