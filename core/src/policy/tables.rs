//! The capability tables: one serde type per capability, used twice with the same
//! shape: as a plugin's request (`capabilities.toml`, embedded by `export_engine!`)
//! and as the operator's grant (`[plugins.NAME.<capability>]`). Keys that only the
//! operator may set (paths, limits) are refused on the plugin side.
//!
//! This file owns the types and their entry points; the key-by-key reading lives in
//! `reader`, the pattern and value checks in `validate`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Everything a plugin requests, or the operator grants one plugin. Absent tables
/// request or grant nothing.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Capabilities {
    /// `[files]`: the preopened directories.
    pub files: Option<FilesTable>,
    /// `[process]`: starting host processes.
    pub process: Option<ProcessTable>,
    /// `[network]`: TCP/UDP connections and name lookups.
    pub network: Option<NetworkTable>,
    /// `[unix-sockets]`: connections to unix sockets.
    pub unix_sockets: Option<UnixSocketsTable>,
    /// `[users]`: per-task system users.
    pub users: Option<UsersTable>,
    /// `[endpoint]`: the per-task HTTP server (contract 0.1.2).
    pub endpoint: Option<EndpointTable>,
}

/// `[files]`: which directories the guest sees.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FilesTable {
    /// `/sandboxes` in the guest: the sandbox dirs of the plugin's tasks.
    #[serde(default)]
    pub sandbox: bool,
    /// `/engine` in the guest: the plugin's own state dir.
    #[serde(default)]
    pub engine: bool,
    /// `[files.dirs.NAME]`: host directories seen as `/grants/NAME`.
    #[serde(default)]
    pub dirs: BTreeMap<String, DirTable>,
}

/// `[files.dirs.NAME]`: one extra directory.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DirTable {
    /// The host directory (absolute). Operator side only; a plugin names the dir it
    /// wants and the operator decides where it lives.
    pub path: Option<PathBuf>,
    /// Read-only unless both sides say `"rw"`.
    #[serde(default)]
    pub mode: DirMode,
}

/// Access to a granted directory: `"ro"` (the default) or `"rw"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DirMode {
    /// Read-only.
    #[default]
    Ro,
    /// Read-write.
    Rw,
}

/// `[process]`: which executables may run, and as whom.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProcessTable {
    /// Executable globs: `/usr/bin/*` (`*` = within one segment), `/usr/**` (`**` =
    /// any number of segments), `sandbox:<glob>` (under the task's sandbox dir), or
    /// `**` alone (anything).
    #[serde(default)]
    pub exec: Vec<String>,
    /// Where a bare `argv[0]` is looked up (operator side only; never the guest's
    /// `PATH`). Default: `/usr/local/bin`, `/usr/bin`, `/bin`.
    pub search_path: Option<Vec<PathBuf>>,
    /// Whom a process may run as.
    #[serde(default)]
    pub run_as: Vec<RunAs>,
    /// Whether a process may get a pseudo-terminal.
    #[serde(default)]
    pub pty: bool,
    /// At most this many live processes per task (operator side only).
    pub max_per_task: Option<u32>,
    /// Environment variables a process may be given although a granted program
    /// would load code through them (the loader's `LD_*`, `BASH_ENV`, `PYTHONPATH`,
    /// ... see `policy::env`): names, `PREFIX*` or `*`. Both sides must allow a name.
    #[serde(default)]
    pub env_allow: Vec<String>,
    /// The network a task's processes get: `"none"` (the default: a network
    /// namespace of their own with only loopback), `{ connect = [...] }` (that
    /// namespace, and a proxy on its loopback reaching only the `host:port`
    /// patterns listed) or `"host"` (the worker's). Each side is checked on its
    /// own; `"host"` on one side means "anything" there.
    #[serde(default)]
    pub network: TaskNetwork,
}

/// The network of a task's processes (`[process] network`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum TaskNetwork {
    /// A network namespace per task holding only its own loopback.
    #[default]
    None,
    /// The task's namespace plus a proxy (on its loopback) that connects only to
    /// these `host:port` patterns, as `[network] connect` does for plugins.
    Connect(Vec<String>),
    /// The worker's own network (every address the worker can reach).
    Host,
}

impl fmt::Display for TaskNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskNetwork::None => f.write_str("\"none\""),
            TaskNetwork::Host => f.write_str("\"host\""),
            TaskNetwork::Connect(patterns) => {
                let quoted: Vec<String> = patterns.iter().map(|p| format!("{p:?}")).collect();
                write!(f, "{{ connect = [{}] }}", quoted.join(", "))
            }
        }
    }
}

impl Serialize for TaskNetwork {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            TaskNetwork::None => s.serialize_str("none"),
            TaskNetwork::Host => s.serialize_str("host"),
            TaskNetwork::Connect(patterns) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("connect", patterns)?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for TaskNetwork {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        const EXPECTED: &str = "\"none\", \"host\" or { connect = [\"host:port\", ...] }";
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = TaskNetwork;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXPECTED)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TaskNetwork, E> {
                match v {
                    "none" => Ok(TaskNetwork::None),
                    "host" => Ok(TaskNetwork::Host),
                    other => Err(E::custom(format!("unknown network {other:?}, expected {EXPECTED}"))),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<TaskNetwork, A::Error> {
                let mut connect = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "connect" {
                        return Err(serde::de::Error::custom(format!(
                            "unknown key {key:?} in network, expected {EXPECTED}"
                        )));
                    }
                    connect = Some(map.next_value::<Vec<String>>()?);
                }
                connect.map(TaskNetwork::Connect).ok_or_else(|| {
                    serde::de::Error::custom(format!("network has no connect list, expected {EXPECTED}"))
                })
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl TaskNetwork {
    /// The `connect` patterns (`{ connect = [...] }`), or none.
    pub fn connect(&self) -> &[String] {
        match self {
            TaskNetwork::Connect(patterns) => patterns,
            _ => &[],
        }
    }
}

/// Whom a process runs as: `"worker"` (the host's own user) or `"task-user"` (a user
/// created for the task, see `[users]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunAs {
    /// The worker's user (root on most CI hosts).
    Worker,
    /// The task's own user.
    TaskUser,
}

impl RunAs {
    /// The config spelling: `"worker"` or `"task-user"`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunAs::Worker => "worker",
            RunAs::TaskUser => "task-user",
        }
    }
}

impl fmt::Display for RunAs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[network]`: outgoing TCP/UDP connections and the name lookups they need.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NetworkTable {
    /// `HOST:PORT` patterns. HOST: `*`, `*.suffix`, a DNS name, an IPv4 address,
    /// `[IPv6]`, or a CIDR (`10.0.0.0/8`, `[fd00::/8]`). PORT: `*`, `N` or `A-B`.
    #[serde(default)]
    pub connect: Vec<String>,
    /// Operator side only: let names and `*` reach loopback, private, link-local and
    /// similar addresses too (otherwise only IP/CIDR patterns reach them).
    #[serde(default)]
    pub allow_private: bool,
}

/// `[unix-sockets]`: connections to unix sockets.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UnixSocketsTable {
    /// Exact absolute paths, `sandbox:<name>`, or `sandbox:*` (any socket at the top
    /// of the task's sandbox dir).
    #[serde(default)]
    pub connect: Vec<String>,
    /// At most this many open connections per engine instance (operator side only).
    pub max_connections: Option<u32>,
}

/// `[endpoint]`: where a task's endpoint (the per-task HTTP server the host runs)
/// may listen.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EndpointTable {
    /// `sandbox:*` / `sandbox:<path>` (a unix socket in the task's sandbox dir), or
    /// `ADDRESS:PORT` with ADDRESS `*`, an IP, `[IPv6]` or a CIDR.
    #[serde(default)]
    pub listen: Vec<String>,
    /// Connections open at once per endpoint (operator side only; default 64).
    pub max_connections: Option<u32>,
}

/// `[users]`: system users created for a task.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UsersTable {
    /// Whether the plugin may create a user per task.
    #[serde(default)]
    pub create: bool,
    /// Supplementary groups a task user may join.
    #[serde(default)]
    pub groups: Vec<String>,
    /// `[lo, hi]`, inclusive: the uids handed out (operator side only). Default
    /// `[200000, 209999]`.
    pub uid_range: Option<[u32; 2]>,
}

impl Capabilities {
    /// Parses and checks a plugin's `capabilities.toml` (its request). Keys are
    /// checked one by one, so each error names its key (`process.exec[1]`).
    ///
    /// # Errors
    /// TOML syntax (with toml's line and column), unknown keys, wrong types, bad
    /// patterns, and operator-only keys (`files.dirs.*.path`, `process.search-path`,
    /// `process.max-per-task`, `network.allow-private`, `unix-sockets.max-connections`,
    /// `endpoint.max-connections`, `users.uid-range`), e.g. `process.max-per-task: an operator limit, not
    /// something a plugin requests; remove it from capabilities.toml`.
    pub fn from_plugin_toml(text: &str) -> Result<Capabilities, ConfigError> {
        let table = super::reader::parse_toml(text)?;
        super::reader::refuse_operator_keys(&table)?;
        let caps = super::reader::capabilities(&table, "")?;
        super::validate::request(&caps)?;
        Ok(caps)
    }

    /// Checks one operator grant for plugin `plugin`: patterns parse, paths are
    /// absolute, every dir has a path, `uid-range` is ordered, limits are positive.
    /// Keys in errors are `plugins.<plugin>.<capability>.<key>`.
    ///
    /// # Errors
    /// The first problem found.
    pub fn check_grant(&self, plugin: &str) -> Result<(), ConfigError> {
        super::validate::grant(self, plugin)
    }

    /// True when nothing is requested (or granted) at all: every table is absent or
    /// holds only defaults.
    pub fn is_empty(&self) -> bool {
        self.files.as_ref().is_none_or(FilesTable::is_empty)
            && self.process.as_ref().is_none_or(ProcessTable::is_empty)
            && self.network.as_ref().is_none_or(NetworkTable::is_empty)
            && self.unix_sockets.as_ref().is_none_or(UnixSocketsTable::is_empty)
            && self.users.as_ref().is_none_or(UsersTable::is_empty)
            && self.endpoint.as_ref().is_none_or(EndpointTable::is_empty)
    }
}

impl FilesTable {
    /// True when no directory is requested or granted.
    pub fn is_empty(&self) -> bool {
        !self.sandbox && !self.engine && self.dirs.is_empty()
    }
}

impl ProcessTable {
    /// True when the table holds only defaults.
    pub fn is_empty(&self) -> bool {
        self == &ProcessTable::default()
    }
}

impl NetworkTable {
    /// True when the table holds only defaults.
    pub fn is_empty(&self) -> bool {
        self == &NetworkTable::default()
    }
}

impl UnixSocketsTable {
    /// True when the table holds only defaults.
    pub fn is_empty(&self) -> bool {
        self == &UnixSocketsTable::default()
    }
}

impl EndpointTable {
    /// True when the table holds only defaults.
    pub fn is_empty(&self) -> bool {
        self == &EndpointTable::default()
    }
}

impl UsersTable {
    /// True when the table holds only defaults.
    pub fn is_empty(&self) -> bool {
        self == &UsersTable::default()
    }
}

#[cfg(test)]
mod tests;
