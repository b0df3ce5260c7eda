//! Summaries of a [`Policy`] for people: `enginehost plugins --config` shows what a
//! plugin requested, what it was granted and what is effective; load prints a
//! warning line for each request the operator did not grant.
//!
//! Effective pattern lists come from `overlap`; booleans AND; limits and settings
//! are the grant's, shown when it sets them (defaults are left out). Request and
//! grant are written as their tables read.

use super::super::reader::join;
use super::super::{Capabilities, DirMode, RunAs};
use super::overlap::{effective, ungranted};
use super::{Denied, Hint, Policy};

/// One capability's line in `enginehost plugins --config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapabilityReport {
    /// `files`, `process`, `network`, `unix-sockets`, `users` or `endpoint`.
    pub capability: &'static str,
    /// What the plugin asked for, e.g. `exec ["**"], run-as [task-user, worker], pty`.
    pub requested: String,
    /// What the operator granted, e.g. `exec ["/bin/**"], run-as [task-user], max-per-task 64`.
    pub granted: String,
    /// What the plugin can actually do; `nothing` when one side is empty.
    pub effective: String,
}

fn quoted<'a>(items: impl IntoIterator<Item = &'a String>) -> String {
    list(items.into_iter().map(|s| format!("{s:?}")))
}

fn list(items: impl IntoIterator<Item = String>) -> String {
    format!("[{}]", items.into_iter().collect::<Vec<_>>().join(", "))
}

fn join_parts(parts: Vec<String>) -> String {
    if parts.is_empty() {
        "nothing".to_string()
    } else {
        parts.join(", ")
    }
}

/// `name (mode)` or, when the grant gives a path, `name = /path (mode)`.
fn dir(name: &str, path: Option<&std::path::Path>, mode: DirMode) -> String {
    let mode = if mode == DirMode::Rw { "rw" } else { "ro" };
    match path {
        Some(path) => format!("{name} = {} ({mode})", path.display()),
        None => format!("{name} ({mode})"),
    }
}

/// One side, written as its table reads; `nothing` when it has nothing there.
fn side(caps: &Capabilities, capability: &str) -> String {
    let mut parts = Vec::new();
    let flag = |on: bool, name: &str, parts: &mut Vec<String>| {
        if on {
            parts.push(name.to_string());
        }
    };
    match capability {
        "files" => {
            if let Some(f) = &caps.files {
                flag(f.sandbox, "sandbox", &mut parts);
                flag(f.engine, "engine", &mut parts);
                if !f.dirs.is_empty() {
                    let dirs = f.dirs.iter().map(|(n, d)| dir(n, d.path.as_deref(), d.mode));
                    parts.push(format!("dirs {}", list(dirs)));
                }
            }
        }
        "process" => {
            if let Some(p) = &caps.process {
                if !p.exec.is_empty() {
                    parts.push(format!("exec {}", quoted(&p.exec)));
                }
                if let Some(dirs) = &p.search_path {
                    parts.push(format!(
                        "search-path {}",
                        list(dirs.iter().map(|d| d.display().to_string()))
                    ));
                }
                if !p.run_as.is_empty() {
                    parts.push(format!("run-as {}", list(p.run_as.iter().map(|r| r.to_string()))));
                }
                flag(p.pty, "pty", &mut parts);
                parts.extend(p.max_per_task.map(|n| format!("max-per-task {n}")));
                if !p.env_allow.is_empty() {
                    parts.push(format!("env-allow {}", list(p.env_allow.iter().cloned())));
                }
                if p.network != crate::policy::TaskNetwork::None {
                    parts.push(format!("network {}", p.network));
                }
            }
        }
        "network" => {
            if let Some(n) = &caps.network {
                if !n.connect.is_empty() {
                    parts.push(format!("connect {}", quoted(&n.connect)));
                }
                flag(n.allow_private, "allow-private", &mut parts);
            }
        }
        "unix-sockets" => {
            if let Some(u) = &caps.unix_sockets {
                if !u.connect.is_empty() {
                    parts.push(format!("connect {}", quoted(&u.connect)));
                }
                parts.extend(u.max_connections.map(|n| format!("max-connections {n}")));
            }
        }
        "endpoint" => {
            if let Some(e) = &caps.endpoint {
                if !e.listen.is_empty() {
                    parts.push(format!("listen {}", quoted(&e.listen)));
                }
                parts.extend(e.max_connections.map(|n| format!("max-connections {n}")));
            }
        }
        _ => {
            if let Some(u) = &caps.users {
                flag(u.create, "create", &mut parts);
                if !u.groups.is_empty() {
                    parts.push(format!("groups {}", list(u.groups.iter().cloned())));
                }
                parts.extend(u.uid_range.map(|[lo, hi]| format!("uid-range {lo}-{hi}")));
            }
        }
    }
    join_parts(parts)
}

impl Policy {
    /// For `enginehost plugins --config`: one entry per capability that is
    /// requested or granted, in the order files, process, network, unix-sockets,
    /// users, endpoint.
    pub fn describe(&self) -> Vec<CapabilityReport> {
        let present = |c: &Capabilities, capability: &str| match capability {
            "files" => c.files.as_ref().is_some_and(|t| !t.is_empty()),
            "process" => c.process.as_ref().is_some_and(|t| !t.is_empty()),
            "network" => c.network.as_ref().is_some_and(|t| !t.is_empty()),
            "unix-sockets" => c.unix_sockets.as_ref().is_some_and(|t| !t.is_empty()),
            "endpoint" => c.endpoint.as_ref().is_some_and(|t| !t.is_empty()),
            _ => c.users.as_ref().is_some_and(|t| !t.is_empty()),
        };
        ["files", "process", "network", "unix-sockets", "users", "endpoint"]
            .into_iter()
            .filter(|c| present(&self.requested, c) || present(&self.granted, c))
            .map(|capability| CapabilityReport {
                capability,
                requested: side(&self.requested, capability),
                granted: side(&self.granted, capability),
                effective: self.effective(capability),
            })
            .collect()
    }

    fn effective(&self, capability: &str) -> String {
        let mut parts = Vec::new();
        match capability {
            "files" => {
                parts.extend(self.files_sandbox().ok().map(|()| "sandbox".to_string()));
                parts.extend(self.files_engine().ok().map(|()| "engine".to_string()));
                let dirs = self.files_dirs();
                if !dirs.is_empty() {
                    let dirs = dirs.iter().map(|d| dir(&d.name, Some(&d.path), d.mode));
                    parts.push(format!("dirs {}", list(dirs)));
                }
            }
            "process" => {
                let exec = effective(&self.req.exec, &self.grant.exec);
                let run_as: Vec<String> = [RunAs::TaskUser, RunAs::Worker]
                    .into_iter()
                    .filter(|w| self.run_as(*w).is_ok())
                    .map(|w| w.to_string())
                    .collect();
                if exec.is_empty() || run_as.is_empty() {
                    return "nothing".to_string();
                }
                parts.push(format!("exec {}", list(exec)));
                if let Some(dirs) = self.granted.process.as_ref().and_then(|p| p.search_path.as_ref()) {
                    parts.push(format!(
                        "search-path {}",
                        list(dirs.iter().map(|d| d.display().to_string()))
                    ));
                }
                parts.push(format!("run-as {}", list(run_as)));
                parts.extend(self.pty().ok().map(|()| "pty".to_string()));
                parts.extend(self.max_processes_per_task().map(|n| format!("max-per-task {n}")));
            }
            "network" => {
                let connect = effective(&self.req.connect, &self.grant.connect);
                if connect.is_empty() {
                    return "nothing".to_string();
                }
                parts.push(format!("connect {}", list(connect)));
                parts.extend(self.allow_private().then(|| "allow-private".to_string()));
            }
            "unix-sockets" => {
                let connect = effective(&self.req.unix, &self.grant.unix);
                if connect.is_empty() {
                    return "nothing".to_string();
                }
                parts.push(format!("connect {}", list(connect)));
                parts.extend(self.unix_max_connections().map(|n| format!("max-connections {n}")));
            }
            "endpoint" => {
                let listen = effective(&self.req.listen, &self.grant.listen);
                if listen.is_empty() {
                    return "nothing".to_string();
                }
                parts.push(format!("listen {}", list(listen)));
                parts.extend(self.endpoint_max_connections().map(|n| format!("max-connections {n}")));
            }
            _ => {
                if self.users_create().is_err() {
                    return "nothing".to_string();
                }
                parts.push("create".to_string());
                let groups = self.granted.users.iter().flat_map(|u| &u.groups);
                let groups: Vec<String> = groups.filter(|g| self.users_group(g).is_ok()).cloned().collect();
                if !groups.is_empty() {
                    parts.push(format!("groups {}", list(groups)));
                }
                let range = self.granted.users.as_ref().and_then(|u| u.uid_range);
                parts.extend(range.map(|[lo, hi]| format!("uid-range {lo}-{hi}")));
            }
        }
        join_parts(parts)
    }

    /// Requests the operator did not grant, one line each (a warning at load: an
    /// ungranted request is not an error, its use fails). Each line is the denial
    /// its use would get, e.g. `process.pty "pty": not granted; set pty = true in
    /// [plugins.native.process]`. Pattern requests are listed when no grant pattern
    /// may overlap them.
    pub fn ungranted(&self) -> Vec<String> {
        fn note(lines: &mut Vec<String>, wanted: bool, result: Result<(), Denied>) {
            lines.extend(result.err().filter(|_| wanted).map(|d| d.message));
        }
        let mut lines = Vec::new();
        let patterns = |lines: &mut Vec<String>, capability: &str, texts: Vec<&str>, hint: Hint<'_>| {
            lines.extend(texts.into_iter().map(|t| self.not_granted(capability, t, hint).message));
        };
        let files = self.requested.files.clone().unwrap_or_default();
        note(&mut lines, files.sandbox, self.files_sandbox());
        note(&mut lines, files.engine, self.files_engine());
        lines.extend(self.dir_warnings());
        let process = self.requested.process.clone().unwrap_or_default();
        patterns(
            &mut lines,
            "process.exec",
            ungranted(&self.req.exec, &self.grant.exec),
            Hint::AddPattern,
        );
        for who in process.run_as {
            note(&mut lines, true, self.run_as(who));
        }
        note(&mut lines, process.pty, self.pty());
        lines.extend(self.task_network_warning(&process.network));
        patterns(
            &mut lines,
            "network.connect",
            ungranted(&self.req.connect, &self.grant.connect),
            Hint::AddPattern,
        );
        for text in ungranted(&self.req.unix, &self.grant.unix) {
            let capability = "unix-sockets.connect";
            lines.push(self.not_granted(capability, text, Hint::AddValue(text)).message);
        }
        patterns(
            &mut lines,
            "endpoint.listen",
            ungranted(&self.req.listen, &self.grant.listen),
            Hint::AddPattern,
        );
        let users = self.requested.users.clone().unwrap_or_default();
        note(&mut lines, users.create, self.users_create());
        for group in users.groups.iter().filter(|g| *g != "*") {
            note(&mut lines, true, self.users_group(group));
        }
        lines
    }

    /// A task network requested (`"host"` or `{ connect = [...] }`) that the grant
    /// does not give, or gives only in part.
    fn task_network_warning(&self, requested: &crate::policy::TaskNetwork) -> Option<String> {
        use crate::policy::{TaskEgress, TaskNetwork};
        let table = self.table("process");
        match (requested, self.task_network()) {
            (TaskNetwork::None, _) => None,
            (_, TaskEgress::None) => Some(format!(
                "process.network {requested}: not granted (task processes get loopback only); set network = \"host\" \
                 or network = {{ connect = [\"host:port\", ...] }} in [{table}]"
            )),
            (TaskNetwork::Host, TaskEgress::Proxy) => Some(format!(
                "process.network \"host\": granted only through the task proxy ([{table}] network.connect); set \
                 network = \"host\" in [{table}] for the worker's network"
            )),
            _ => None,
        }
    }

    /// Requested dirs that are missing from the grant, or granted read-only when
    /// `rw` was requested.
    fn dir_warnings(&self) -> Vec<String> {
        let granted = self.granted.files.as_ref().map(|f| &f.dirs);
        let mut lines = Vec::new();
        for (name, want) in self.requested.files.iter().flat_map(|f| &f.dirs) {
            let table = join(&format!("{}.dirs", self.table("files")), name);
            match granted.and_then(|g| g.get(name)) {
                None => lines.push(format!(
                    "files.dirs {name:?}: not granted; add [{table}] with path = \"/srv/{name}\" (the host directory)"
                )),
                Some(have) if want.mode == DirMode::Rw && have.mode == DirMode::Ro => lines.push(format!(
                    "files.dirs {name:?}: requested rw, granted read-only; set mode = \"rw\" in [{table}] to allow \
                     writes"
                )),
                Some(_) => {}
            }
        }
        lines
    }
}

#[cfg(test)]
mod tests;
