//! The effective policy of one plugin: its request ∩ the operator's grant, checked
//! on every use. Each check looks at the grant first (so a denial names the config
//! key an operator would add), then at the request; there is no pattern algebra.
//!
//! This file holds the types and the denial texts. The checks live in `checks`
//! (files, process, unix sockets, users, endpoint) and `network`; the `enginehost plugins`
//! summaries in `describe` (with the pattern overlap tests in `overlap`). Called by
//! `runtime` (preopens, WASI switches) and `caps/<x>` (the first statement of every
//! host call).

mod checks;
mod describe;
mod network;
mod overlap;

use std::fmt;
use std::path::PathBuf;

pub use describe::CapabilityReport;
pub use network::{NetRules, TaskEgress};

use super::endpoint::ListenPattern;
use super::exec::ExecPattern;
use super::net::NetPattern;
use super::reader::join;
use super::unix_socket::SocketPattern;
use super::{Capabilities, DirMode, TaskNetwork};

/// A use that was refused: the WIT `denied` record plus the message for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// What was attempted: `process.exec`, `network.connect`, `users.groups`, ...
    pub capability: String,
    /// The argument: an executable, `host:port`, a socket path, a group.
    pub request: String,
    /// The config key that would allow it (`plugins.native.process.exec`), or
    /// `capabilities.toml` when the plugin did not request it.
    pub grant_key: String,
    /// The whole sentence, e.g. `process.exec "/usr/bin/curl": not granted; add a
    /// matching pattern to [plugins.native.process] exec`.
    pub message: String,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Denied {}

/// A directory both requested and granted (`[files.dirs.NAME]`), seen by the guest
/// as `/grants/NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveDir {
    /// The dir's name.
    pub name: String,
    /// The host directory (from the grant).
    pub path: PathBuf,
    /// `Rw` only when both sides say `rw`.
    pub mode: DirMode,
}

/// A pattern with the text it was written as.
#[derive(Debug, Clone)]
struct Named<P> {
    text: String,
    pattern: P,
}

/// One side's patterns, compiled. Invalid ones (they cannot pass validation, but
/// `Policy::new` does not rely on it) are dropped, so they never match.
#[derive(Debug, Clone, Default)]
struct Compiled {
    exec: Vec<Named<ExecPattern>>,
    connect: Vec<Named<NetPattern>>,
    unix: Vec<Named<SocketPattern>>,
    listen: Vec<Named<ListenPattern>>,
    /// `[process] network`: `None` for `"none"`, `Some(None)` for `"host"`,
    /// `Some(Some(patterns))` for `{ connect = [...] }`.
    egress: Option<Option<Vec<Named<NetPattern>>>>,
}

impl Compiled {
    fn new(caps: &Capabilities) -> Compiled {
        fn compile<P>(texts: &[String], parse: fn(&str) -> Result<P, String>) -> Vec<Named<P>> {
            let named = |t: &String| {
                parse(t).ok().map(|pattern| Named {
                    text: t.clone(),
                    pattern,
                })
            };
            texts.iter().filter_map(named).collect()
        }
        Compiled {
            exec: caps
                .process
                .as_ref()
                .map(|p| compile(&p.exec, ExecPattern::parse))
                .unwrap_or_default(),
            connect: caps
                .network
                .as_ref()
                .map(|n| compile(&n.connect, NetPattern::parse))
                .unwrap_or_default(),
            unix: caps
                .unix_sockets
                .as_ref()
                .map(|u| compile(&u.connect, SocketPattern::parse))
                .unwrap_or_default(),
            listen: caps
                .endpoint
                .as_ref()
                .map(|e| compile(&e.listen, ListenPattern::parse))
                .unwrap_or_default(),
            egress: match caps.process.as_ref().map(|p| &p.network) {
                None | Some(TaskNetwork::None) => None,
                Some(TaskNetwork::Host) => Some(None),
                Some(TaskNetwork::Connect(patterns)) => Some(Some(compile(patterns, NetPattern::parse))),
            },
        }
    }

    /// The task network side: `None` (no network), `Any` or the patterns.
    fn egress(&self) -> Option<network::Side<'_>> {
        match &self.egress {
            None => None,
            Some(None) => Some(network::Side::Any),
            Some(Some(patterns)) => Some(network::Side::Patterns(patterns)),
        }
    }
}

/// How a "not granted" denial tells the operator what to add.
#[derive(Clone, Copy)]
enum Hint<'a> {
    /// `set <field> = true in [plugins.X.<table>]`
    SetTrue,
    /// `add a matching pattern to [plugins.X.<table>] <field>`
    AddPattern,
    /// `add "<value>" to [plugins.X.<table>] <field>`
    AddValue(&'a str),
    /// `add the path to [plugins.X.<table>] <field>`
    AddPath,
}

/// One plugin's effective policy. Cheap to clone; holds no OS resources.
#[derive(Debug, Clone)]
pub struct Policy {
    plugin: String,
    version: String,
    requested: Capabilities,
    granted: Capabilities,
    req: Compiled,
    grant: Compiled,
}

impl Policy {
    /// `process.search-path` when the grant sets none.
    pub const DEFAULT_SEARCH_PATH: [&'static str; 3] = ["/usr/local/bin", "/usr/bin", "/bin"];
    /// `users.uid-range` when the grant sets none.
    pub const DEFAULT_UID_RANGE: (u32, u32) = (200000, 209999);

    /// The policy of plugin `plugin` at `version` (named in denials). Both sides
    /// should be validated already ([`Capabilities::from_plugin_toml`],
    /// [`Capabilities::check_grant`]); an invalid pattern that slipped through is
    /// dropped, i.e. never matches. Never panics.
    pub fn new(plugin: &str, version: &str, requested: Capabilities, granted: Capabilities) -> Policy {
        Policy {
            plugin: plugin.to_string(),
            version: version.to_string(),
            req: Compiled::new(&requested),
            grant: Compiled::new(&granted),
            requested,
            granted,
        }
    }

    /// Nothing requested, nothing granted: every check is denied.
    pub fn none(plugin: &str, version: &str) -> Policy {
        Policy::new(plugin, version, Capabilities::default(), Capabilities::default())
    }

    /// The plugin's name.
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    /// What the plugin requested (its capabilities.toml).
    pub fn requested(&self) -> &Capabilities {
        &self.requested
    }

    /// What the operator granted (`[plugins.NAME]`).
    pub fn granted(&self) -> &Capabilities {
        &self.granted
    }

    /// `[plugins.<plugin>.<table>]`'s name, without the brackets.
    fn table(&self, table: &str) -> String {
        format!("{}.{table}", join("plugins", &self.plugin))
    }

    /// The grant first (the denial names the key to add), then the request.
    fn decide(
        &self,
        capability: &str,
        request: &str,
        hint: Hint<'_>,
        granted: bool,
        requested: bool,
    ) -> Result<(), Denied> {
        if !granted {
            return Err(self.not_granted(capability, request, hint));
        }
        if !requested {
            return Err(self.not_requested(capability, request));
        }
        Ok(())
    }

    /// `<capability> "<request>": not granted; <hint>`.
    fn not_granted(&self, capability: &str, request: &str, hint: Hint<'_>) -> Denied {
        let key = grant_key(capability);
        let (table, field) = key.split_once('.').unwrap_or((key, ""));
        let table = self.table(table);
        let hint = match hint {
            Hint::SetTrue => format!("set {field} = true in [{table}]"),
            Hint::AddPattern => format!("add a matching pattern to [{table}] {field}"),
            Hint::AddValue(value) => format!("add {value:?} to [{table}] {field}"),
            Hint::AddPath => format!("add the path to [{table}] {field}"),
        };
        self.denied(capability, request, format!("not granted; {hint}"))
    }

    /// `<capability> "<request>": not requested by plugin <name> <version> (capabilities.toml)`.
    fn not_requested(&self, capability: &str, request: &str) -> Denied {
        let reason = format!(
            "not requested by plugin {} {} (capabilities.toml)",
            self.plugin, self.version
        );
        Denied {
            capability: capability.to_string(),
            request: request.to_string(),
            grant_key: "capabilities.toml".to_string(),
            message: format!("{capability} {request:?}: {reason}"),
        }
    }

    /// A denial naming the grant key `plugins.<plugin>.<key>`, reading
    /// `<capability> "<request>": <reason>`.
    fn denied(&self, capability: &str, request: &str, reason: String) -> Denied {
        Denied {
            capability: capability.to_string(),
            request: request.to_string(),
            grant_key: format!("{}.{}", join("plugins", &self.plugin), grant_key(capability)),
            message: format!("{capability} {request:?}: {reason}"),
        }
    }
}

/// The key under `[plugins.NAME]` that grants `capability`: the capability's own
/// name, except lookups, which `network.connect` patterns grant.
fn grant_key(capability: &str) -> &str {
    match capability {
        "network.lookup" => "network.connect",
        "process.network.lookup" => "process.network.connect",
        other => other,
    }
}

#[cfg(test)]
mod tests;
