//! Checks on deserialized tables: every pattern parses, names and paths are well
//! formed, limits make sense. One function per side: [`request`] for a plugin's
//! capabilities.toml, [`grant`] for `[plugins.NAME]`; both report the first problem
//! at its key (`plugins.native.process.exec[1]`).
//!
//! The pattern languages themselves live in `exec`, `net` and `unix_socket`.

use std::path::Path;

use super::endpoint::ListenPattern;
use super::exec::ExecPattern;
use super::net::NetPattern;
use super::reader::{at, join};
use super::unix_socket::SocketPattern;
use super::{Capabilities, ConfigError, HostSettings};

/// Checks a plugin's request. Operator-only keys are refused earlier, on the raw
/// TOML (`reader::refuse_operator_keys`); this catches them in values built in code.
pub(super) fn request(caps: &Capabilities) -> Result<(), ConfigError> {
    patterns_and_names(caps, "")?;
    let operator_only = |key: &str| {
        ConfigError::new(
            key,
            "chosen by the operator, not requested by a plugin; remove it from capabilities.toml",
        )
    };
    if let Some(files) = &caps.files
        && let Some((name, _)) = files.dirs.iter().find(|(_, dir)| dir.path.is_some())
    {
        return Err(operator_only(&join(&join("files.dirs", name), "path")));
    }
    if let Some(process) = &caps.process {
        if process.search_path.is_some() {
            return Err(operator_only("process.search-path"));
        }
        if process.max_per_task.is_some() {
            return Err(operator_only("process.max-per-task"));
        }
    }
    if caps.network.as_ref().is_some_and(|n| n.allow_private) {
        return Err(operator_only("network.allow-private"));
    }
    if caps.unix_sockets.as_ref().is_some_and(|u| u.max_connections.is_some()) {
        return Err(operator_only("unix-sockets.max-connections"));
    }
    if caps.users.as_ref().is_some_and(|u| u.uid_range.is_some()) {
        return Err(operator_only("users.uid-range"));
    }
    if caps.endpoint.as_ref().is_some_and(|e| e.max_connections.is_some()) {
        return Err(operator_only("endpoint.max-connections"));
    }
    Ok(())
}

/// Checks the operator's grant for `plugin`; keys start with `plugins.<plugin>`.
pub(super) fn grant(caps: &Capabilities, plugin: &str) -> Result<(), ConfigError> {
    let root = join("plugins", plugin);
    patterns_and_names(caps, &root)?;
    for (i, pattern) in caps.unix_sockets.iter().flat_map(|u| &u.connect).enumerate() {
        if pattern == "*" {
            return Err(ConfigError::new(
                format!("{}[{i}]", at(&root, "unix-sockets.connect")),
                "a grant names each socket exactly (a daemon's socket is often root on the host), e.g. \
                 \"/var/run/docker.sock\"; only a plugin's request may say \"*\"",
            ));
        }
    }
    for (name, dir) in caps.files.iter().flat_map(|f| &f.dirs) {
        let here = &join(&at(&root, "files.dirs"), name);
        match &dir.path {
            None => {
                return Err(ConfigError::new(
                    here,
                    format!(
                        "no path; add path = \"/srv/{name}\" (the host directory the plugin sees as /grants/{name})"
                    ),
                ));
            }
            Some(path) => absolute(path, &join(here, "path"), &format!("/srv/{name}"))?,
        }
    }
    if let Some(process) = &caps.process {
        for (i, dir) in process.search_path.iter().flatten().enumerate() {
            absolute(dir, &format!("{root}.process.search-path[{i}]"), "/usr/bin")?;
        }
        positive(process.max_per_task, &format!("{root}.process.max-per-task"))?;
    }
    if let Some(sockets) = &caps.unix_sockets {
        positive(sockets.max_connections, &format!("{root}.unix-sockets.max-connections"))?;
    }
    if let Some(endpoint) = &caps.endpoint {
        positive(endpoint.max_connections, &format!("{root}.endpoint.max-connections"))?;
    }
    if let Some([lo, hi]) = caps.users.as_ref().and_then(|u| u.uid_range) {
        let key = format!("{root}.users.uid-range");
        if lo > hi {
            return Err(ConfigError::new(
                key,
                format!("[{lo}, {hi}] runs backwards; write [{hi}, {lo}]"),
            ));
        }
        if lo == 0 {
            return Err(ConfigError::new(
                key,
                "must not include uid 0 (root); e.g. [200000, 209999]",
            ));
        }
    }
    Ok(())
}

/// Checks `[host]`.
pub(super) fn host(host: &HostSettings) -> Result<(), ConfigError> {
    if let Some(dir) = &host.work_dir {
        absolute(dir, "host.work-dir", "/var/lib/enginehost")?;
    }
    if let Some(dir) = &host.cache_dir {
        absolute(dir, "host.cache-dir", "/var/cache/enginehost")?;
    }
    for (i, key) in host.trusted_keys.iter().enumerate() {
        // Base64 of 32 bytes: 43 characters of the alphabet and one '='.
        let b64 = key.len() == 44
            && key.ends_with('=')
            && key[..43]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
        if !b64 {
            return Err(ConfigError::new(
                format!("host.trusted-keys[{i}]"),
                format!(
                    "{:?} is not an ed25519 public key as `enginehost keygen` prints it (base64 of 32 bytes, 44 \
                     characters ending in '=')",
                    crate::text::shown(key, 60)
                ),
            ));
        }
    }
    if host.require_signature == Some(true) && host.trusted_keys.is_empty() {
        return Err(ConfigError::new(
            "host.require-signature",
            "no plugin file could load: [host] trusted-keys lists no key; add the public key that signs your plugins",
        ));
    }
    Ok(())
}

/// Engine and plugin names in `[engines.NAME]` and `[plugins.NAME]` follow the
/// plugin metadata's rule: lowercase letters, digits and `-`, starting with a
/// letter, at most 64 characters.
pub(super) fn engine_name(name: &str, key: &str) -> Result<(), ConfigError> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-'))
        && name.len() <= 64;
    if ok {
        return Ok(());
    }
    Err(ConfigError::new(
        key,
        format!(
            "{name:?} is not an engine name (lowercase letters, digits and \"-\", starting with a letter), e.g. \
             \"native\""
        ),
    ))
}

/// What both sides share: patterns parse, dir and group names are well formed.
fn patterns_and_names(caps: &Capabilities, root: &str) -> Result<(), ConfigError> {
    for name in caps.files.iter().flat_map(|f| f.dirs.keys()) {
        if !name_like(name, |c| c.is_ascii_lowercase() || c.is_ascii_digit(), 64) {
            return Err(ConfigError::new(
                join(&at(root, "files.dirs"), name),
                format!(
                    "{name:?} is not a dir name (lowercase letters, digits, \"_\" and \"-\", starting with a letter \
                     or digit; it becomes /grants/NAME in the guest), e.g. \"cache\""
                ),
            ));
        }
    }
    if let Some(process) = &caps.process {
        each(&process.exec, &at(root, "process.exec"), ExecPattern::parse)?;
        each(
            &process.env_allow,
            &at(root, "process.env-allow"),
            super::env::parse_allow,
        )?;
        each(
            process.network.connect(),
            &at(root, "process.network.connect"),
            NetPattern::parse,
        )?;
    }
    if let Some(network) = &caps.network {
        each(&network.connect, &at(root, "network.connect"), NetPattern::parse)?;
    }
    if let Some(sockets) = &caps.unix_sockets {
        each(
            &sockets.connect,
            &at(root, "unix-sockets.connect"),
            SocketPattern::parse,
        )?;
    }
    if let Some(endpoint) = &caps.endpoint {
        each(&endpoint.listen, &at(root, "endpoint.listen"), ListenPattern::parse)?;
    }
    for (i, group) in caps.users.iter().flat_map(|u| &u.groups).enumerate() {
        // A request may say "*": any group the operator grants.
        if group == "*" && root.is_empty() {
            continue;
        }
        if !name_like(group, |c| c.is_ascii_lowercase() || c == '_', 32) {
            return Err(ConfigError::new(
                format!("{}[{i}]", at(root, "users.groups")),
                format!(
                    "{group:?} is not a group name (lowercase letters, digits, \"_\" and \"-\", starting with a \
                     letter or \"_\"), e.g. \"video\""
                ),
            ));
        }
    }
    Ok(())
}

fn each<T>(items: &[String], key: &str, parse: fn(&str) -> Result<T, String>) -> Result<(), ConfigError> {
    for (i, item) in items.iter().enumerate() {
        parse(item).map_err(|message| ConfigError::new(format!("{key}[{i}]"), message))?;
    }
    Ok(())
}

/// `[a-z0-9_-]*` after a first character accepted by `first`, at most `max` long.
fn name_like(name: &str, first: impl Fn(char) -> bool, max: usize) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(first)
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && name.len() <= max
}

fn absolute(path: &Path, key: &str, example: &str) -> Result<(), ConfigError> {
    if path.is_absolute() {
        return Ok(());
    }
    Err(ConfigError::new(
        key,
        format!(
            "{:?} is not absolute; write an absolute path, e.g. {example:?}",
            path.display().to_string()
        ),
    ))
}

fn positive(limit: Option<u32>, key: &str) -> Result<(), ConfigError> {
    if limit == Some(0) {
        return Err(ConfigError::new(
            key,
            "0 would refuse every use; remove the whole table to grant nothing",
        ));
    }
    Ok(())
}

/// A listen address `IP:PORT` at `key`; the error shows `example`.
pub(super) fn listen_address(text: &str, key: &str, example: &str) -> Result<std::net::SocketAddr, ConfigError> {
    text.parse().map_err(|_| {
        ConfigError::new(
            key,
            format!("{text:?} is not an address; write IP:PORT, e.g. {example:?}"),
        )
    })
}

/// An http(s) URL with a host and no query, fragment or user name at `key`; the
/// errors end with `fix`.
pub(super) fn http_url(text: &str, key: &str, fix: &str) -> Result<url::Url, ConfigError> {
    let bad = |why: &str| ConfigError::new(key, format!("{text:?} {why}; {fix}"));
    let url = url::Url::parse(text).map_err(|e| bad(&format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("is not an http(s) URL"));
    }
    if url.host_str().is_none() {
        return Err(bad("has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(bad("has a query, fragment or user name"));
    }
    Ok(url)
}
