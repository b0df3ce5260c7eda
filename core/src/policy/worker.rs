//! `[worker]`: the settings of `enginehost worker`, a Taskcluster worker (docs/worker.md).
//! Read and checked with the rest of the operator config, so a typo is an error naming
//! its key before anything starts. Only `enginehost worker` uses the table; `run`
//! ignores it.
//!
//! ```toml
//! [worker]
//! root-url = "https://tc.example.com"
//! task-queue-id = "proj-ci/enginehost"      # <provisionerId>/<workerType>
//! worker-group = "us-east-1"
//! worker-id = "host-17"
//! credentials = "env"                        # or { client-id = "...", access-token = "..." }
//! capacity = 2
//! engines = ["native"]
//! default-engine = "native"
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::{Table, Value};

use super::ConfigError;
use super::reader::{self, join};

/// Where the worker's Taskcluster credentials come from.
#[derive(Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// `credentials = "env"`: `TASKCLUSTER_CLIENT_ID`, `TASKCLUSTER_ACCESS_TOKEN` and
    /// (for temporary credentials) `TASKCLUSTER_CERTIFICATE`, read at start.
    Environment,
    /// `[worker.credentials]` with `client-id`, `access-token` and optionally `certificate`.
    Static {
        /// `client-id`.
        client_id: String,
        /// `access-token`.
        access_token: String,
        /// `certificate` (temporary credentials), as the JSON text Taskcluster gives.
        certificate: Option<String>,
    },
}

impl std::fmt::Debug for CredentialSource {
    // The access token stays out of debug output (and so out of logs).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialSource::Environment => f.write_str("Environment"),
            CredentialSource::Static { client_id, .. } => f
                .debug_struct("Static")
                .field("client_id", client_id)
                .finish_non_exhaustive(),
        }
    }
}

/// What the worker does with running tasks on SIGTERM or SIGINT.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShutdownMode {
    /// Abort them and resolve them as exception `worker-shutdown` (the queue retries them).
    #[default]
    Abort,
    /// Let them finish and resolve as they end (a second signal aborts them).
    Finish,
}

/// The shape of the tasks' payloads (`payload-format`): the worker pool's tasks as
/// they were written for another worker run unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PayloadFormat {
    /// enginehost's own: `enginehost run`'s task file (docs/worker.md, "Tasks").
    #[default]
    Enginehost,
    /// generic-worker's posix payload (`multiuser_posix.json`), run on the native
    /// engine; a docker-worker payload in it (generic-worker's d2g) on the docker one.
    GenericWorker,
    /// docker-worker's payload, run on the docker engine.
    DockerWorker,
}

impl PayloadFormat {
    /// As written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadFormat::Enginehost => "enginehost",
            PayloadFormat::GenericWorker => "generic-worker",
            PayloadFormat::DockerWorker => "docker-worker",
        }
    }
}

/// How the task's artifacts are stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactStorage {
    /// Through the object service (what Taskcluster recommends).
    #[default]
    Object,
    /// `s3` artifacts: a PUT to the URL the queue hands out (deprecated upstream).
    S3,
}

/// The live log's HTTP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveLogSettings {
    /// `live-log-listen`: the local address to serve on (port 0: any free port).
    pub listen: SocketAddr,
    /// `live-log-url`: the base URL users reach that server at (the `live.log`
    /// reference points at `<url>/log/<token>`); default `http://<the bound address>`.
    pub url: Option<String>,
}

/// `[worker]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSettings {
    /// `root-url`: the Taskcluster deployment, without a trailing `/`.
    pub root_url: String,
    /// `task-queue-id`: `<provisionerId>/<workerType>`.
    pub task_queue_id: String,
    /// `worker-group`.
    pub worker_group: String,
    /// `worker-id`.
    pub worker_id: String,
    /// `credentials`.
    pub credentials: CredentialSource,
    /// `capacity`: tasks run at once (default 1).
    pub capacity: u32,
    /// `plugins`: the plugin directory (`--plugins` overrides it).
    pub plugins: Option<PathBuf>,
    /// `engines`: the engines this worker serves, each started once at start (default:
    /// the default engine).
    pub engines: Vec<String>,
    /// `default-engine`: for tasks whose payload names no engine.
    pub default_engine: Option<String>,
    /// `shutdown`: what SIGTERM/SIGINT do to running tasks.
    pub shutdown: ShutdownMode,
    /// `artifact-storage`: `"object"` (default) or `"s3"`.
    pub artifact_storage: ArtifactStorage,
    /// `live-log = false` turns the live log off (`None`); else its server.
    pub live_log: Option<LiveLogSettings>,
    /// `reclaim-margin`: how long before `takenUntil` a claim is renewed (default 3
    /// minutes, at most half of what is left of the claim).
    pub reclaim_margin: Duration,
    /// `poll-interval`: the pause after a `claimWork` that brought nothing (default 1 s).
    pub poll_interval: Duration,
    /// `metrics-listen`: where `/metrics` (Prometheus) and `/healthz` are served
    /// (none by default).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// `payload-format`: the shape of the tasks' payloads (default `"enginehost"`).
    pub payload_format: PayloadFormat,
    /// `native-engine`: the engine generic-worker payloads run on (default
    /// `"native"`), if it is one of `engines`.
    pub native_engine: Option<String>,
    /// `docker-engine`: the engine docker-worker payloads run on (default
    /// `"docker"`), if it is one of `engines`.
    pub docker_engine: Option<String>,
    /// `chain-of-trust-key`: the ed25519 key (generic-worker's format) that signs
    /// `public/chain-of-trust.json` for tasks that ask for it; none: such tasks are
    /// refused.
    pub chain_of_trust_key: Option<PathBuf>,
}

/// The table as written; everything is checked after.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawWorker {
    root_url: Option<String>,
    task_queue_id: Option<String>,
    worker_group: Option<String>,
    worker_id: Option<String>,
    credentials: Option<Value>,
    capacity: Option<i64>,
    plugins: Option<PathBuf>,
    engines: Option<Vec<String>>,
    default_engine: Option<String>,
    shutdown: Option<ShutdownMode>,
    artifact_storage: Option<ArtifactStorage>,
    live_log: Option<bool>,
    live_log_listen: Option<String>,
    live_log_url: Option<String>,
    reclaim_margin: Option<Value>,
    poll_interval: Option<Value>,
    metrics_listen: Option<String>,
    payload_format: Option<PayloadFormat>,
    native_engine: Option<String>,
    docker_engine: Option<String>,
    chain_of_trust_key: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawCredentials {
    client_id: Option<String>,
    access_token: Option<String>,
    certificate: Option<String>,
}

fn required(value: Option<String>, key: &str, example: &str) -> Result<String, ConfigError> {
    value.ok_or_else(|| ConfigError::new(key, format!("required; e.g. {key:?} = {example:?}")))
}

/// A Taskcluster identifier (`workerGroup`, `workerId`, either half of a task queue
/// id): 1 to 38 of `a-z A-Z 0-9 - _`.
fn identifier(value: &str, key: &str, what: &str) -> Result<(), ConfigError> {
    let ok =
        (1..=38).contains(&value.len()) && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        return Ok(());
    }
    Err(ConfigError::new(
        key,
        format!("{value:?} is not a valid {what}: 1 to 38 letters, digits, \"-\" or \"_\""),
    ))
}

fn root_url(text: &str, key: &str) -> Result<String, ConfigError> {
    let fix = "write the deployment's root URL, e.g. \"https://tc.example.com\"";
    let url = super::validate::http_url(text, key, fix)?;
    let bad = |why: &str| ConfigError::new(key, format!("{text:?} {why}; {fix}"));
    if url.path() != "/" {
        return Err(bad(
            "has a path (a root URL is the deployment's origin; its APIs are under /api/)",
        ));
    }
    Ok(text.trim_end_matches('/').to_string())
}

fn credentials(value: Option<Value>, key: &str) -> Result<CredentialSource, ConfigError> {
    let hint = "write credentials = \"env\" (TASKCLUSTER_CLIENT_ID and TASKCLUSTER_ACCESS_TOKEN from the \
                environment) or a [worker.credentials] table with client-id and access-token";
    match value {
        None => Err(ConfigError::new(key, format!("required; {hint}"))),
        Some(Value::String(s)) if s == "env" => Ok(CredentialSource::Environment),
        Some(Value::Table(table)) => {
            let raw: RawCredentials = reader::typed(&table, key)?;
            let (Some(client_id), Some(access_token)) = (raw.client_id, raw.access_token) else {
                return Err(ConfigError::new(key, "needs both client-id and access-token"));
            };
            if client_id.is_empty() || access_token.is_empty() {
                return Err(ConfigError::new(key, "client-id and access-token must not be empty"));
            }
            if let Some(cert) = &raw.certificate
                && serde_json::from_str::<serde_json::Value>(cert).is_err()
            {
                return Err(ConfigError::new(
                    join(key, "certificate"),
                    "is not JSON; give the certificate exactly as Taskcluster issued it, or leave it out",
                ));
            }
            Ok(CredentialSource::Static {
                client_id,
                access_token,
                certificate: raw.certificate,
            })
        }
        Some(other) => Err(ConfigError::new(
            key,
            format!("{other} is not a credential source; {hint}"),
        )),
    }
}

impl WorkerSettings {
    /// Reads a `[worker]` table at `path`.
    pub(super) fn read(table: &Table, path: &str) -> Result<WorkerSettings, ConfigError> {
        let raw: RawWorker = reader::typed(table, path)?;
        let key = |k: &str| join(path, k);
        let root = required(raw.root_url, &key("root-url"), "https://tc.example.com")?;
        let root = root_url(&root, &key("root-url"))?;
        let queue = required(raw.task_queue_id, &key("task-queue-id"), "proj-ci/enginehost")?;
        match queue.split_once('/') {
            Some((provisioner, worker_type)) => {
                identifier(provisioner, &key("task-queue-id"), "provisionerId (before the /)")?;
                identifier(worker_type, &key("task-queue-id"), "workerType (after the /)")?;
            }
            None => {
                return Err(ConfigError::new(
                    key("task-queue-id"),
                    format!("{queue:?} is not <provisionerId>/<workerType>, e.g. \"proj-ci/enginehost\""),
                ));
            }
        }
        let group = required(raw.worker_group, &key("worker-group"), "us-east-1")?;
        identifier(&group, &key("worker-group"), "worker group")?;
        let id = required(raw.worker_id, &key("worker-id"), "host-17")?;
        identifier(&id, &key("worker-id"), "worker id")?;
        let credentials = credentials(raw.credentials, &key("credentials"))?;
        let capacity = match raw.capacity {
            None => 1,
            Some(n @ 1..=1024) => n as u32,
            Some(n) => {
                return Err(ConfigError::new(
                    key("capacity"),
                    format!("{n} is not a capacity; give the number of tasks run at once, 1 to 1024"),
                ));
            }
        };
        if let Some(dir) = &raw.plugins
            && !dir.is_absolute()
        {
            return Err(ConfigError::new(
                key("plugins"),
                format!(
                    "{:?} is not absolute; write an absolute path, e.g. \"/var/lib/enginehost/plugins\"",
                    dir.display().to_string()
                ),
            ));
        }
        if let Some(name) = &raw.default_engine {
            super::validate::engine_name(name, &key("default-engine"))?;
        }
        if let Some(path) = &raw.chain_of_trust_key
            && !path.is_absolute()
        {
            return Err(ConfigError::new(
                key("chain-of-trust-key"),
                format!(
                    "{:?} is not absolute; write an absolute path, e.g. \"/etc/enginehost/ed25519_private_key\"",
                    path.display().to_string()
                ),
            ));
        }
        let engines = match (raw.engines, &raw.default_engine) {
            (Some(list), _) if list.is_empty() => {
                return Err(ConfigError::new(
                    key("engines"),
                    "is empty; name the engines this worker serves, e.g. [\"native\"]",
                ));
            }
            (Some(list), _) => list,
            (None, Some(default)) => vec![default.clone()],
            (None, None) => {
                return Err(ConfigError::new(
                    key("engines"),
                    "required (or default-engine); name the engines this worker serves, e.g. [\"native\"]",
                ));
            }
        };
        for (i, name) in engines.iter().enumerate() {
            super::validate::engine_name(name, &format!("{}[{i}]", key("engines")))?;
            if engines[..i].contains(name) {
                return Err(ConfigError::new(
                    format!("{}[{i}]", key("engines")),
                    format!("{name:?} is listed twice"),
                ));
            }
        }
        if let Some(default) = &raw.default_engine
            && !engines.contains(default)
        {
            return Err(ConfigError::new(
                key("default-engine"),
                format!("{default:?} is not one of engines ({})", engines.join(", ")),
            ));
        }
        let live_log = match raw.live_log {
            Some(false) => {
                if raw.live_log_listen.is_some() || raw.live_log_url.is_some() {
                    return Err(ConfigError::new(
                        key("live-log"),
                        "is false, but live-log-listen or live-log-url is set; remove one or the other",
                    ));
                }
                None
            }
            _ => {
                let text = raw.live_log_listen.unwrap_or_else(|| "127.0.0.1:0".into());
                let listen = super::validate::listen_address(&text, &key("live-log-listen"), "0.0.0.0:60023")?;
                let url = match raw.live_log_url {
                    Some(u) => Some(root_url(&u, &key("live-log-url"))?),
                    None => None,
                };
                Some(LiveLogSettings { listen, url })
            }
        };
        let metrics_listen = match raw.metrics_listen {
            Some(text) => Some(super::validate::listen_address(
                &text,
                &key("metrics-listen"),
                "127.0.0.1:9464",
            )?),
            None => None,
        };
        let payload_format = raw.payload_format.unwrap_or_default();
        // The engine each foreign format runs on: named, or by its usual name when
        // served; the format that needs one refuses to start without it.
        let format_engine = |given: Option<String>, k: &str, usual: &str, needed: bool| {
            if let Some(name) = &given {
                super::validate::engine_name(name, &key(k))?;
                if !engines.contains(name) {
                    return Err(ConfigError::new(
                        key(k),
                        format!("{name:?} is not one of engines ({})", engines.join(", ")),
                    ));
                }
            }
            let name = given.or_else(|| engines.iter().find(|e| *e == usual).cloned());
            if needed && name.is_none() {
                return Err(ConfigError::new(
                    key(k),
                    format!(
                        "payload-format = {:?} runs its tasks on the {usual} engine, but engines ({}) has no \
                         {usual:?}; add it to engines, or name the engine to use in {k}",
                        payload_format.as_str(),
                        engines.join(", ")
                    ),
                ));
            }
            Ok(name)
        };
        let native_engine = format_engine(
            raw.native_engine,
            "native-engine",
            "native",
            payload_format == PayloadFormat::GenericWorker,
        )?;
        let docker_engine = format_engine(
            raw.docker_engine,
            "docker-engine",
            "docker",
            payload_format == PayloadFormat::DockerWorker,
        )?;
        let duration = |v: Option<Value>, k: &str, default: Duration| match v {
            Some(v) => super::limits::duration(&v, &key(k)),
            None => Ok(default),
        };
        Ok(WorkerSettings {
            root_url: root,
            task_queue_id: queue,
            worker_group: group,
            worker_id: id,
            credentials,
            capacity,
            plugins: raw.plugins,
            engines,
            default_engine: raw.default_engine,
            shutdown: raw.shutdown.unwrap_or_default(),
            artifact_storage: raw.artifact_storage.unwrap_or_default(),
            live_log,
            reclaim_margin: duration(raw.reclaim_margin, "reclaim-margin", Duration::from_secs(180))?,
            poll_interval: duration(raw.poll_interval, "poll-interval", Duration::from_secs(1))?,
            metrics_listen,
            payload_format,
            native_engine,
            docker_engine,
            chain_of_trust_key: raw.chain_of_trust_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::OperatorConfig;

    const MINIMAL: &str = r#"
[worker]
root-url = "https://tc.example.com/"
task-queue-id = "proj-ci/enginehost"
worker-group = "us-east-1"
worker-id = "host-17"
credentials = "env"
engines = ["mock"]
"#;

    fn with(extra: &str) -> Result<WorkerSettings, ConfigError> {
        let text = format!("{MINIMAL}{extra}");
        OperatorConfig::parse(&text).map(|c| c.worker.expect("[worker]"))
    }

    fn error(text: &str) -> String {
        OperatorConfig::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn minimal_gets_the_defaults() {
        let w = with("").unwrap();
        assert_eq!(w.root_url, "https://tc.example.com");
        assert_eq!(w.capacity, 1);
        assert_eq!(w.credentials, CredentialSource::Environment);
        assert_eq!(w.shutdown, ShutdownMode::Abort);
        assert_eq!(w.artifact_storage, ArtifactStorage::Object);
        assert_eq!(w.live_log.unwrap().listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(w.reclaim_margin, Duration::from_secs(180));
        assert!(OperatorConfig::parse("").unwrap().worker.is_none());
        assert_eq!(w.payload_format, PayloadFormat::Enginehost);
        assert_eq!((w.native_engine, w.docker_engine), (None, None));
    }

    #[test]
    fn the_generic_worker_example_is_a_valid_config() {
        let config = OperatorConfig::parse(include_str!("../../../examples/worker-generic.toml")).unwrap();
        let w = config.worker.expect("[worker]");
        assert_eq!(w.payload_format, PayloadFormat::GenericWorker);
        assert_eq!(w.native_engine.as_deref(), Some("native"));
        assert_eq!(w.chain_of_trust_key, Some(PathBuf::from("/etc/enginehost/cot.key")));
    }

    #[test]
    fn a_foreign_payload_format_finds_its_engines() {
        let swap = |extra: &str| {
            OperatorConfig::parse(&format!(
                "{}{extra}",
                MINIMAL.replace("[\"mock\"]", "[\"native\", \"docker\", \"vm\"]")
            ))
            .map(|c| c.worker.expect("[worker]"))
        };
        let w = swap("payload-format = \"generic-worker\"").unwrap();
        assert_eq!(w.payload_format, PayloadFormat::GenericWorker);
        assert_eq!(w.native_engine.as_deref(), Some("native"));
        assert_eq!(w.docker_engine.as_deref(), Some("docker"));
        let w = swap("payload-format = \"docker-worker\"\ndocker-engine = \"vm\"").unwrap();
        assert_eq!(w.docker_engine.as_deref(), Some("vm"));
    }

    #[test]
    fn everything_set() {
        let text = r#"
[worker]
root-url = "http://127.0.0.1:8080"
task-queue-id = "p/w"
worker-group = "g"
worker-id = "i"
capacity = 4
plugins = "/srv/plugins"
engines = ["mock", "native"]
default-engine = "native"
shutdown = "finish"
artifact-storage = "s3"
live-log-listen = "0.0.0.0:60023"
live-log-url = "https://host-17.example.com:60023"
reclaim-margin = "30s"
poll-interval = "250ms"
[worker.credentials]
client-id = "project/ci/worker"
access-token = "secret"
"#;
        let w = OperatorConfig::parse(text).unwrap().worker.unwrap();
        assert_eq!(w.capacity, 4);
        assert_eq!(w.engines, ["mock", "native"]);
        assert_eq!(w.shutdown, ShutdownMode::Finish);
        assert_eq!(w.artifact_storage, ArtifactStorage::S3);
        let live = w.live_log.unwrap();
        assert_eq!(live.url.as_deref(), Some("https://host-17.example.com:60023"));
        assert_eq!(w.poll_interval, Duration::from_millis(250));
        assert!(
            matches!(w.credentials, CredentialSource::Static { ref client_id, .. } if client_id == "project/ci/worker")
        );
        assert!(!format!("{:?}", w.credentials).contains("secret"));
    }

    #[test]
    fn each_mistake_names_its_key() {
        let cases: &[(&str, &str)] = &[
            ("capacity = 0", "worker.capacity: 0 is not a capacity"),
            ("shutdown = \"later\"", "worker.shutdown"),
            ("artifact-storage = \"ftp\"", "worker.artifact-storage"),
            ("colour = 1", "worker.colour: unknown key"),
            (
                "default-engine = \"native\"",
                "worker.default-engine: \"native\" is not one of engines (mock)",
            ),
            (
                "live-log-listen = \"localhost\"",
                "worker.live-log-listen: \"localhost\" is not an address",
            ),
            (
                "live-log = false\nlive-log-url = \"http://x\"",
                "worker.live-log: is false",
            ),
            ("reclaim-margin = 30", "worker.reclaim-margin: 30 is not a duration"),
            ("plugins = \"plugins\"", "worker.plugins: \"plugins\" is not absolute"),
            (
                "chain-of-trust-key = \"key\"",
                "worker.chain-of-trust-key: \"key\" is not absolute",
            ),
            ("payload-format = \"taskcluster\"", "worker.payload-format"),
            (
                "payload-format = \"generic-worker\"",
                "worker.native-engine: payload-format = \"generic-worker\" runs its tasks on the native engine, \
                 but engines (mock) has no \"native\"",
            ),
            (
                "payload-format = \"docker-worker\"",
                "worker.docker-engine: payload-format = \"docker-worker\" runs its tasks on the docker engine",
            ),
            (
                "docker-engine = \"dockerd\"",
                "worker.docker-engine: \"dockerd\" is not one of engines (mock)",
            ),
        ];
        for (extra, want) in cases {
            let got = with(extra).unwrap_err().to_string();
            assert!(got.contains(want), "{extra}: {got}");
        }
        let swap = |from: &str, to: &str| error(&MINIMAL.replace(from, to));
        assert!(
            swap("https://tc.example.com/", "tc.example.com")
                .contains("worker.root-url: \"tc.example.com\" is not a URL")
        );
        assert!(swap("https://tc.example.com/", "ftp://x").contains("is not an http(s) URL"));
        assert!(swap("https://tc.example.com/", "https://tc.example.com/api/queue/v1").contains("has a path"));
        assert!(
            swap("proj-ci/enginehost", "enginehost")
                .contains("worker.task-queue-id: \"enginehost\" is not <provisionerId>/<workerType>")
        );
        assert!(swap("proj-ci/enginehost", "proj.ci/x").contains("not a valid provisionerId"));
        assert!(swap("host-17", "host 17").contains("worker.worker-id: \"host 17\" is not a valid worker id"));
        assert!(swap("worker-id = \"host-17\"\n", "").contains("worker.worker-id: required"));
        assert!(swap("credentials = \"env\"\n", "").contains("worker.credentials: required"));
        assert!(swap("\"env\"", "\"environment\"").contains("is not a credential source"));
        assert!(swap("engines = [\"mock\"]\n", "").contains("worker.engines: required"));
        assert!(swap("[\"mock\"]", "[]").contains("worker.engines: is empty"));
        assert!(swap("[\"mock\"]", "[\"mock\", \"mock\"]").contains("worker.engines[1]: \"mock\" is listed twice"));
        assert!(swap("[\"mock\"]", "[\"Mock\"]").contains("worker.engines[0]: \"Mock\" is not an engine name"));
        let table = MINIMAL.replace("credentials = \"env\"\n", "") + "[worker.credentials]\nclient-id = \"x\"\n";
        assert!(
            error(&table).contains("worker.credentials: needs both client-id and access-token"),
            "{}",
            error(&table)
        );
        let cert = MINIMAL.replace("credentials = \"env\"\n", "")
            + "[worker.credentials]\nclient-id = \"x\"\naccess-token = \"y\"\ncertificate = \"{\"\n";
        assert!(error(&cert).contains("worker.credentials.certificate: is not JSON"));
        assert!(error("worker = 1").contains("expected a table ([worker])"));
    }
}
