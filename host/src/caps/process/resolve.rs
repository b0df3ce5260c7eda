//! From a command's argv[0] to the executable that runs, and to the names the
//! policy's `process.exec` patterns are matched against:
//!
//! - an absolute path: itself (lexically normalized) and its canonical path (symlinks
//!   resolved), so that `/bin/sh` matches `/bin/*` and also `/usr/bin/dash`;
//! - a bare name: the first executable file named so in the operator's
//!   `search-path` (never the engine's PATH), then as above;
//! - a relative path with a `/` (`./run.sh`, `bin/tool`): relative to the working
//!   directory in the task's sandbox, named `sandbox:<path>`; its canonical path
//!   must stay inside the sandbox.
//!
//! What runs is always the canonical path (argv[0] stays as given).

use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use super::super::{CapResult, invalid};

/// The executable to run and the names to check.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub(crate) program: PathBuf,
    pub(crate) candidates: Vec<String>,
}

/// `path` without `.` and empty components (no `..` handling: callers refuse it).
fn normalize(path: &Path) -> PathBuf {
    path.components().filter(|c| !matches!(c, Component::CurDir)).collect()
}

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Resolves `argv0`; `sandbox` is the task's sandbox directory (host path) and
/// `cwd` the working directory relative to it. Without `sandbox`, a relative
/// `argv0` gives only its candidate name (`program` is empty): the policy is
/// checked before the sandbox directory is made.
pub(crate) fn resolve(argv0: &str, search_path: &[PathBuf], sandbox: Option<&Path>, cwd: &str) -> CapResult<Resolved> {
    if argv0.is_empty() {
        return Err(invalid("argv[0] is empty; name the program to run"));
    }
    if argv0.contains('\0') {
        return Err(invalid("argv[0] contains a NUL byte"));
    }
    let path = Path::new(argv0);
    if path.is_absolute() {
        if path.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(invalid(format!(
                "argv[0] '{argv0}' contains '..'; give the path without it"
            )));
        }
        return absolute(&normalize(path));
    }
    if !argv0.contains('/') {
        for dir in search_path {
            let candidate = dir.join(argv0);
            if is_executable_file(&candidate) {
                return absolute(&candidate);
            }
        }
        let dirs: Vec<String> = search_path.iter().map(|d| d.display().to_string()).collect();
        return Err(invalid(format!(
            "'{argv0}' is not an executable file in the search path ({}); give an absolute path, or ask the \
             operator to add its directory to process.search-path",
            dirs.join(":")
        )));
    }
    // Relative to the working directory inside the sandbox.
    let rel = normalize(&Path::new(cwd).join(path));
    if rel.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(invalid(format!(
            "argv[0] '{argv0}' leads out of the task's sandbox directory"
        )));
    }
    let candidates = vec![format!("sandbox:{}", rel.display())];
    let Some(sandbox) = sandbox else {
        return Ok(Resolved {
            program: PathBuf::new(),
            candidates,
        });
    };
    let program = sandbox
        .join(&rel)
        .canonicalize()
        .map_err(|e| invalid(format!("argv[0] '{argv0}': {e}")))?;
    let root = sandbox
        .canonicalize()
        .map_err(|e| invalid(format!("the sandbox directory: {e}")))?;
    if !program.starts_with(&root) {
        return Err(invalid(format!(
            "argv[0] '{argv0}' is a symlink that leads out of the task's sandbox directory"
        )));
    }
    if !is_executable_file(&program) {
        return Err(invalid(format!("argv[0] '{argv0}' is not an executable file")));
    }
    Ok(Resolved { program, candidates })
}

fn absolute(lexical: &Path) -> CapResult<Resolved> {
    let canonical = lexical
        .canonicalize()
        .map_err(|e| invalid(format!("'{}': {e}", lexical.display())))?;
    if !is_executable_file(&canonical) {
        return Err(invalid(format!("'{}' is not an executable file", lexical.display())));
    }
    let mut candidates = vec![lexical.display().to_string()];
    if canonical != lexical {
        candidates.push(canonical.display().to_string());
    }
    Ok(Resolved {
        program: canonical,
        candidates,
    })
}

/// Checks an environment: names non-empty without `=` or NUL, values without NUL.
pub(crate) fn check_env(env: &[(String, String)]) -> CapResult<()> {
    for (name, value) in env {
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            return Err(invalid(format!(
                "environment variable name {name:?} is not usable: it must be non-empty, without '=' or NUL"
            )));
        }
        if value.contains('\0') {
            return Err(invalid(format!(
                "environment variable {name} has a NUL byte in its value"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_paths_give_the_lexical_and_the_canonical_name() {
        let r = resolve("/bin/sh", &[], None, "").unwrap();
        assert!(r.candidates[0] == "/bin/sh");
        assert_eq!(r.program, Path::new("/bin/sh").canonicalize().unwrap());
        assert_eq!(
            r.candidates.len(),
            if r.program == Path::new("/bin/sh") { 1 } else { 2 }
        );
        assert!(resolve("/bin/../bin/sh", &[], None, "").is_err());
        assert!(resolve("/no/such/program", &[], None, "").is_err());
        assert!(resolve("/etc/passwd", &[], None, "").is_err(), "not executable");
    }

    #[test]
    fn bare_names_come_from_the_search_path_only() {
        let path = vec![PathBuf::from("/nonexistent"), PathBuf::from("/bin")];
        let r = resolve("sh", &path, None, "").unwrap();
        assert_eq!(r.candidates[0], "/bin/sh");
        assert!(resolve("sh", &[PathBuf::from("/nonexistent")], None, "").is_err());
    }

    #[test]
    fn relative_paths_stay_in_the_sandbox() {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = dir.path();
        std::fs::create_dir(sandbox.join("home")).unwrap();
        let tool = sandbox.join("home/tool.sh");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let early = resolve("./tool.sh", &[], None, "home").unwrap();
        assert_eq!(early.candidates, vec!["sandbox:home/tool.sh".to_string()]);
        let r = resolve("./tool.sh", &[], Some(sandbox), "home").unwrap();
        assert_eq!(r.candidates, early.candidates);
        assert_eq!(r.program, tool.canonicalize().unwrap());
        std::os::unix::fs::symlink("/bin/sh", sandbox.join("home/escape")).unwrap();
        let e = resolve("./escape", &[], Some(sandbox), "home").unwrap_err();
        assert!(format!("{e:?}").contains("leads out"), "{e:?}");
        assert!(resolve("../x", &[], Some(sandbox), "").is_err());
    }

    #[test]
    fn env_names_must_be_usable() {
        assert!(check_env(&[("A".into(), "b".into())]).is_ok());
        for bad in ["", "A=B", "A\0"] {
            assert!(check_env(&[(bad.into(), "v".into())]).is_err(), "{bad:?}");
        }
        assert!(check_env(&[("A".into(), "x\0".into())]).is_err());
    }
}
