//! `unix-sockets.connect` patterns: an exact absolute path, `sandbox:<name>` (a
//! socket a task process made under its sandbox dir), or `sandbox:*` (any socket at
//! the top of the sandbox dir). No other wildcards in a grant: granting a socket is
//! often granting root (`/var/run/docker.sock`), so the operator names it exactly.
//! A plugin may *request* `"*"`, any host socket the operator grants (the docker
//! engine cannot know where the operator's dockerd listens).
//!
//! Paths are compared after lexical normalization (`//` and `/./` collapse, a
//! trailing `/` is dropped); `..` is an error in a pattern and never matches.

use std::path::{Component, Path, PathBuf};

/// A parsed `unix-sockets.connect` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SocketPattern {
    /// An absolute host path, normalized.
    Path(PathBuf),
    /// `sandbox:*`.
    SandboxAny,
    /// `sandbox:<rel>`, normalized (`a/b`).
    Sandbox(String),
    /// `*`: any host socket (requests only; a grant names sockets exactly).
    AnyPath,
}

const EXAMPLE: &str = "\"/var/run/docker.sock\"";

impl SocketPattern {
    /// Parses a pattern; the error says what is wrong and shows a right one.
    pub(super) fn parse(text: &str) -> Result<SocketPattern, String> {
        if let Some(rel) = text.strip_prefix("sandbox:") {
            if rel == "*" {
                return Ok(SocketPattern::SandboxAny);
            }
            if rel.contains('*') {
                return Err(format!(
                    "pattern {text:?}: the only wildcard is \"sandbox:*\"; otherwise name the socket, e.g. \
                     \"sandbox:qmp.sock\""
                ));
            }
            if rel.starts_with('/') {
                let fixed = format!("sandbox:{}", rel.trim_start_matches('/'));
                return Err(format!(
                    "pattern {text:?}: paths after \"sandbox:\" are relative to the task's sandbox; write {fixed:?}"
                ));
            }
            return normalize_rel(rel).map(SocketPattern::Sandbox).ok_or_else(|| {
                format!(
                    "pattern {text:?} must name a socket in the task's sandbox without \"..\", e.g. \
                     \"sandbox:qmp.sock\""
                )
            });
        }
        if text == "*" {
            return Ok(SocketPattern::AnyPath);
        }
        if text.contains('*') {
            return Err(format!(
                "pattern {text:?}: sockets are named exactly (only \"sandbox:*\" is a wildcard), e.g. {EXAMPLE}"
            ));
        }
        if !text.starts_with('/') {
            let rel = text.trim_start_matches("./");
            return Err(format!(
                "pattern {text:?} is not absolute; write \"/{rel}\", or \"sandbox:{rel}\" for a socket in the task's \
                 sandbox"
            ));
        }
        match normalize_abs(Path::new(text)) {
            Some(path) if path != Path::new("/") => Ok(SocketPattern::Path(path)),
            Some(_) => Err(format!("pattern {text:?} names no socket; e.g. {EXAMPLE}")),
            None => Err(format!(
                "pattern {text:?} has a \"..\" segment; name the socket's own path, e.g. {EXAMPLE}"
            )),
        }
    }

    /// Whether the pattern allows the host socket at `path` (normalized by
    /// [`normalize_abs`]).
    pub(super) fn matches_path(&self, path: &Path) -> bool {
        match self {
            SocketPattern::Path(p) => p == path,
            SocketPattern::AnyPath => true,
            _ => false,
        }
    }

    /// Whether the pattern allows the sandbox socket `rel` (normalized by
    /// [`normalize_rel`]).
    pub(super) fn matches_sandbox(&self, rel: &str) -> bool {
        match self {
            SocketPattern::SandboxAny => !rel.contains('/'),
            SocketPattern::Sandbox(name) => name == rel,
            SocketPattern::Path(_) | SocketPattern::AnyPath => false,
        }
    }

    /// Whether every socket `other` allows, `self` allows too.
    pub(super) fn covers(&self, other: &SocketPattern) -> bool {
        self == other
            || matches!((self, other), (SocketPattern::SandboxAny, SocketPattern::Sandbox(n)) if !n.contains('/'))
            || matches!((self, other), (SocketPattern::AnyPath, SocketPattern::Path(_)))
    }
}

/// `path` without `//`, `/./` or a trailing `/`; `None` if it is relative or has a
/// `..` (which only the file system could resolve).
pub(super) fn normalize_abs(path: &Path) -> Option<PathBuf> {
    let mut components = path.components();
    if components.next() != Some(Component::RootDir) {
        return None;
    }
    let mut out = PathBuf::from("/");
    for component in components {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::RootDir | Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// `rel` as `a/b`, without empty or `.` segments; `None` if it is absolute, empty
/// or has a `..`.
pub(super) fn normalize_rel(rel: &str) -> Option<String> {
    if rel.starts_with('/') {
        return None;
    }
    let parts: Vec<&str> = rel.split('/').filter(|s| !s.is_empty() && *s != ".").collect();
    (!parts.is_empty() && !parts.contains(&"..")).then(|| parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> SocketPattern {
        SocketPattern::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn a_request_may_ask_for_any_host_socket() {
        let any = pattern("*");
        assert!(any.matches_path(Path::new("/run/dockerd/docker.sock")));
        assert!(
            !any.matches_sandbox("qmp.sock"),
            "sandbox sockets are asked for as sandbox:"
        );
        assert!(any.covers(&pattern("/var/run/docker.sock")));
        assert!(!pattern("/var/run/docker.sock").covers(&any));
    }

    #[test]
    fn bad_patterns_say_what_would_be_right() {
        let cases = [
            (
                "var/run/docker.sock",
                r#"pattern "var/run/docker.sock" is not absolute; write "/var/run/docker.sock", or "sandbox:var/run/docker.sock" for a socket in the task's sandbox"#,
            ),
            (
                "/var/run/*.sock",
                r#"pattern "/var/run/*.sock": sockets are named exactly (only "sandbox:*" is a wildcard), e.g. "/var/run/docker.sock""#,
            ),
            (
                "sandbox:*.sock",
                r#"pattern "sandbox:*.sock": the only wildcard is "sandbox:*"; otherwise name the socket, e.g. "sandbox:qmp.sock""#,
            ),
            (
                "/var/run/../docker.sock",
                r#"pattern "/var/run/../docker.sock" has a ".." segment; name the socket's own path, e.g. "/var/run/docker.sock""#,
            ),
            (
                "sandbox:../x.sock",
                r#"pattern "sandbox:../x.sock" must name a socket in the task's sandbox without "..", e.g. "sandbox:qmp.sock""#,
            ),
            (
                "sandbox:/x.sock",
                r#"pattern "sandbox:/x.sock": paths after "sandbox:" are relative to the task's sandbox; write "sandbox:x.sock""#,
            ),
            ("//", r#"pattern "//" names no socket; e.g. "/var/run/docker.sock""#),
        ];
        for (text, want) in cases {
            assert_eq!(SocketPattern::parse(text), Err(want.to_string()), "{text}");
        }
    }

    #[test]
    fn paths_are_normalized_lexically() {
        let cases = [
            ("/var/run/docker.sock", Some("/var/run/docker.sock")),
            ("/var//run/./docker.sock", Some("/var/run/docker.sock")),
            ("/var/run/docker.sock/", Some("/var/run/docker.sock")),
            ("/var/run/../docker.sock", None),
            ("var/run/docker.sock", None),
            ("./docker.sock", None),
        ];
        for (path, want) in cases {
            assert_eq!(normalize_abs(Path::new(path)), want.map(PathBuf::from), "{path}");
        }
        let cases = [
            ("qmp.sock", Some("qmp.sock")),
            ("./vm//qmp.sock", Some("vm/qmp.sock")),
            ("../qmp.sock", None),
            ("/qmp.sock", None),
            ("", None),
            (".", None),
        ];
        for (rel, want) in cases {
            assert_eq!(normalize_rel(rel).as_deref(), want, "{rel}");
        }
    }

    #[test]
    fn sockets_match_exactly_or_at_the_sandbox_top() {
        let abs = |p: &str| normalize_abs(Path::new(p)).unwrap();
        assert!(pattern("/var/run/docker.sock").matches_path(&abs("/var//run/./docker.sock")));
        assert!(pattern("/var//run/docker.sock").matches_path(&abs("/var/run/docker.sock")));
        assert!(!pattern("/var/run/docker.sock").matches_path(&abs("/run/docker.sock")));
        assert!(!pattern("sandbox:*").matches_path(&abs("/var/run/docker.sock")));
        assert!(pattern("sandbox:*").matches_sandbox("qmp.sock"));
        assert!(!pattern("sandbox:*").matches_sandbox("vm/qmp.sock"));
        assert!(pattern("sandbox:vm/qmp.sock").matches_sandbox("vm/qmp.sock"));
        assert!(!pattern("sandbox:vm/qmp.sock").matches_sandbox("qmp.sock"));
        assert!(!pattern("/qmp.sock").matches_sandbox("qmp.sock"));
        assert!(pattern("sandbox:*").covers(&pattern("sandbox:qmp.sock")));
        assert!(!pattern("sandbox:*").covers(&pattern("sandbox:vm/qmp.sock")));
        assert!(!pattern("sandbox:qmp.sock").covers(&pattern("sandbox:*")));
        assert!(pattern("/a//b").covers(&pattern("/a/b")));
    }
}
