//! The per-use checks of [`Policy`] for files, processes, unix sockets, users and
//! the endpoint
//! (network has its own file), and the settings the grant alone decides (search
//! path, limits, uid range). Each check is `decide(granted, requested)`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use super::super::unix_socket::{self, SocketPattern};
use super::super::{DirMode, RunAs};
use super::{Denied, EffectiveDir, ExecPattern, Hint, ListenPattern, Named, Policy};
use crate::policy::Capabilities;

impl Policy {
    /// Whether the guest may see `/sandboxes` (its tasks' sandbox dirs).
    pub fn files_sandbox(&self) -> Result<(), Denied> {
        let [granted, requested] =
            [&self.granted, &self.requested].map(|c| c.files.as_ref().is_some_and(|f| f.sandbox));
        self.decide("files.sandbox", "sandbox", Hint::SetTrue, granted, requested)
    }

    /// Whether the guest may see `/engine` (its own state dir).
    pub fn files_engine(&self) -> Result<(), Denied> {
        let [granted, requested] = [&self.granted, &self.requested].map(|c| c.files.as_ref().is_some_and(|f| f.engine));
        self.decide("files.engine", "engine", Hint::SetTrue, granted, requested)
    }

    /// The dirs both requested and granted (with a path), by name; read-only unless
    /// both sides say `rw`.
    pub fn files_dirs(&self) -> Vec<EffectiveDir> {
        let (Some(req), Some(grant)) = (&self.requested.files, &self.granted.files) else {
            return Vec::new();
        };
        let both = |name: &String| Some((req.dirs.get(name)?, grant.dirs.get(name)?));
        req.dirs
            .keys()
            .filter_map(|name| {
                let (r, g) = both(name)?;
                let mode = if r.mode == DirMode::Rw && g.mode == DirMode::Rw {
                    DirMode::Rw
                } else {
                    DirMode::Ro
                };
                Some(EffectiveDir {
                    name: name.clone(),
                    path: g.path.clone()?,
                    mode,
                })
            })
            .collect()
    }

    /// Whether an executable may run. `candidates` are the ways it was named:
    /// absolute paths (the lexical path and its canonical path) and/or
    /// `sandbox:<rel>`. Allowed iff one candidate matches a pattern of the grant and
    /// one (the same or not) a pattern of the request. The denial names
    /// `candidates[0]`.
    pub fn exec(&self, candidates: &[String]) -> Result<(), Denied> {
        let any =
            |patterns: &[Named<ExecPattern>]| candidates.iter().any(|c| patterns.iter().any(|p| p.pattern.matches(c)));
        let request = candidates.first().map_or("", String::as_str);
        self.decide(
            "process.exec",
            request,
            Hint::AddPattern,
            any(&self.grant.exec),
            any(&self.req.exec),
        )
    }

    /// Where a bare `argv[0]` is looked up: the grant's `search-path`, else
    /// [`Policy::DEFAULT_SEARCH_PATH`].
    pub fn search_path(&self) -> Vec<PathBuf> {
        match self.granted.process.as_ref().and_then(|p| p.search_path.clone()) {
            Some(dirs) => dirs,
            None => Self::DEFAULT_SEARCH_PATH.iter().map(PathBuf::from).collect(),
        }
    }

    /// Whether a process may run as `who`.
    pub fn run_as(&self, who: RunAs) -> Result<(), Denied> {
        let [granted, requested] =
            [&self.granted, &self.requested].map(|c| c.process.as_ref().is_some_and(|p| p.run_as.contains(&who)));
        self.decide(
            "process.run-as",
            who.as_str(),
            Hint::AddValue(who.as_str()),
            granted,
            requested,
        )
    }

    /// Whether a process may get a pseudo-terminal.
    pub fn pty(&self) -> Result<(), Denied> {
        let [granted, requested] = [&self.granted, &self.requested].map(|c| c.process.as_ref().is_some_and(|p| p.pty));
        self.decide("process.pty", "pty", Hint::SetTrue, granted, requested)
    }

    /// Whether a process may be given the environment variable `name`: always for
    /// an ordinary one; for one a granted program would load code through
    /// ([`crate::policy::env::guarded`]) only when an `env-allow` entry of both
    /// sides covers it.
    pub fn env(&self, name: &str) -> Result<(), Denied> {
        let Some(why) = crate::policy::env::guarded(name) else {
            return Ok(());
        };
        let [granted, requested] = [&self.granted, &self.requested].map(|c| {
            c.process
                .as_ref()
                .is_some_and(|p| p.env_allow.iter().any(|a| crate::policy::env::allows(a, name)))
        });
        self.decide("process.env-allow", name, Hint::AddValue(name), granted, requested)
            .map_err(|d| {
                let message = format!("{} ({why})", d.message);
                Denied { message, ..d }
            })
    }

    /// The grant's `max-per-task` (`None`: no limit set).
    pub fn max_processes_per_task(&self) -> Option<u32> {
        self.granted.process.as_ref().and_then(|p| p.max_per_task)
    }

    /// Whether the plugin may connect to the host socket at `path` (absolute; it is
    /// normalized lexically first, and a `..` in it is refused).
    pub fn unix_connect(&self, path: &Path) -> Result<(), Denied> {
        let request = path.display().to_string();
        let Some(path) = unix_socket::normalize_abs(path) else {
            let reason = "not an absolute path without \"..\"; name the socket by its absolute path";
            return Err(self.denied("unix-sockets.connect", &request, reason.into()));
        };
        let any = |patterns: &[Named<SocketPattern>]| patterns.iter().any(|p| p.pattern.matches_path(&path));
        let (granted, requested) = (any(&self.grant.unix), any(&self.req.unix));
        self.decide("unix-sockets.connect", &request, Hint::AddPath, granted, requested)
    }

    /// Whether the plugin may connect to the socket `rel` in the task's sandbox dir.
    pub fn unix_connect_sandbox(&self, rel: &str) -> Result<(), Denied> {
        let request = format!("sandbox:{rel}");
        let Some(rel) = unix_socket::normalize_rel(rel) else {
            let reason = "not a path inside the task's sandbox; name the socket relative to it, without \"..\"";
            return Err(self.denied("unix-sockets.connect", &request, reason.into()));
        };
        let any = |patterns: &[Named<SocketPattern>]| patterns.iter().any(|p| p.pattern.matches_sandbox(&rel));
        let (granted, requested) = (any(&self.grant.unix), any(&self.req.unix));
        if !granted {
            let alternative = if rel.contains('/') {
                String::new()
            } else {
                " (or \"sandbox:*\")".to_string()
            };
            let reason = format!(
                "not granted; add \"sandbox:{rel}\"{alternative} to [{}] connect",
                self.table("unix-sockets")
            );
            return Err(self.denied("unix-sockets.connect", &request, reason));
        }
        self.decide("unix-sockets.connect", &request, Hint::AddPath, granted, requested)
    }

    /// The grant's `max-connections` (`None`: no limit set).
    pub fn unix_max_connections(&self) -> Option<u32> {
        self.granted.unix_sockets.as_ref().and_then(|u| u.max_connections)
    }

    /// Whether a task's endpoint may listen on a unix socket at `rel` in its
    /// sandbox directory.
    pub fn endpoint_listen_sandbox(&self, rel: &str) -> Result<(), Denied> {
        let request = format!("sandbox:{rel}");
        let Some(rel) = unix_socket::normalize_rel(rel) else {
            let reason = "not a path inside the task's sandbox; name the socket relative to it, without \"..\"";
            return Err(self.denied("endpoint.listen", &request, reason.into()));
        };
        let any = |patterns: &[Named<ListenPattern>]| patterns.iter().any(|p| p.pattern.matches_sandbox(&rel));
        let (granted, requested) = (any(&self.grant.listen), any(&self.req.listen));
        if !granted {
            let reason = format!(
                "not granted; add \"sandbox:{rel}\" (or \"sandbox:*\") to [{}] listen",
                self.table("endpoint")
            );
            return Err(self.denied("endpoint.listen", &request, reason));
        }
        self.decide("endpoint.listen", &request, Hint::AddPattern, granted, requested)
    }

    /// Whether a task's endpoint may listen on `ip:port` (port 0: any free port).
    pub fn endpoint_listen_tcp(&self, ip: IpAddr, port: u16) -> Result<(), Denied> {
        let request = SocketAddr::new(ip, port).to_string();
        let any = |patterns: &[Named<ListenPattern>]| patterns.iter().any(|p| p.pattern.matches_tcp(ip, port));
        let (granted, requested) = (any(&self.grant.listen), any(&self.req.listen));
        self.decide("endpoint.listen", &request, Hint::AddPattern, granted, requested)
    }

    /// The grant's `endpoint.max-connections` (`None`: not set).
    pub fn endpoint_max_connections(&self) -> Option<u32> {
        self.granted.endpoint.as_ref().and_then(|e| e.max_connections)
    }

    /// Whether the plugin may create a user per task.
    pub fn users_create(&self) -> Result<(), Denied> {
        let [granted, requested] = [&self.granted, &self.requested].map(|c| c.users.as_ref().is_some_and(|u| u.create));
        self.decide("users.create", "create", Hint::SetTrue, granted, requested)
    }

    /// Whether a task user may join `group`. A plugin's request may say `"*"`:
    /// any group the operator grants (it cannot know the host's groups).
    pub fn users_group(&self, group: &str) -> Result<(), Denied> {
        let lists = |c: &Capabilities, any: bool| {
            c.users
                .as_ref()
                .is_some_and(|u| u.groups.iter().any(|g| g == group || (any && g == "*")))
        };
        let (granted, requested) = (lists(&self.granted, false), lists(&self.requested, true));
        self.decide("users.groups", group, Hint::AddValue(group), granted, requested)
    }

    /// The uids handed to task users: the grant's `uid-range`, else
    /// [`Policy::DEFAULT_UID_RANGE`].
    pub fn uid_range(&self) -> (u32, u32) {
        match self.granted.users.as_ref().and_then(|u| u.uid_range) {
            Some([lo, hi]) => (lo, hi),
            None => Self::DEFAULT_UID_RANGE,
        }
    }
}
