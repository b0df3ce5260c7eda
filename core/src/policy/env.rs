//! Environment variables that make a granted program load or run code it was not
//! asked to: the dynamic loader's, shells' startup files, interpreters' code paths.
//!
//! An exec grant bounds which files may start, not what they then load: with only
//! `/bin/echo` granted, `LD_PRELOAD=/sandboxes/<task>/evil.so` runs the plugin's
//! (or the task's) code inside echo, as echo's user — root when `run-as` is the
//! worker. So these names never reach a process unless both the plugin requests
//! and the operator grants them by name in `[process] env-allow`.
//!
//! The list is a guard for the common ways in, not a proof that a granted
//! program reads nothing else (git, for instance, reads `GIT_*`): the programs an
//! operator grants are still the operator's call.

/// Why `name` is guarded, or `None` for an ordinary variable.
pub fn guarded(name: &str) -> Option<&'static str> {
    const LOADER: &str = "the dynamic loader reads it (it can load a library into the program)";
    const SHELL: &str = "a shell reads it at start-up (it can run commands before the script)";
    const INTERPRETER: &str = "an interpreter reads it (it can load code into the program)";
    // glibc's UNSECURE_ENVVARS (what it clears itself for setuid programs), and every LD_*.
    const GLIBC: &[&str] = &[
        "GCONV_PATH",
        "GETCONF_DIR",
        "GLIBC_TUNABLES",
        "HOSTALIASES",
        "LOCALDOMAIN",
        "LOCPATH",
        "MALLOC_TRACE",
        "NIS_PATH",
        "NLSPATH",
        "RESOLV_HOST_CONF",
        "RES_OPTIONS",
        "TZDIR",
    ];
    const SHELLS: &[&str] = &[
        "BASH_ENV",
        "ENV",
        "SHELLOPTS",
        "BASHOPTS",
        "PS4",
        "PROMPT_COMMAND",
        "ZDOTDIR",
    ];
    const INTERPRETERS: &[&str] = &[
        "PERL5LIB",
        "PERL5OPT",
        "PERLLIB",
        "PERL5DB",
        "RUBYLIB",
        "RUBYOPT",
        "NODE_OPTIONS",
        "NODE_PATH",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS",
        "LUA_INIT",
        "LUA_PATH",
        "LUA_CPATH",
        "TCLLIBPATH",
    ];
    if name.starts_with("LD_") || GLIBC.contains(&name) {
        Some(LOADER)
    } else if SHELLS.contains(&name) || name.starts_with("BASH_FUNC_") {
        Some(SHELL)
    } else if name.starts_with("PYTHON") || INTERPRETERS.contains(&name) {
        Some(INTERPRETER)
    } else {
        None
    }
}

/// Checks an `env-allow` entry: a variable name, `PREFIX*`, or `*`.
pub(super) fn parse_allow(text: &str) -> Result<(), String> {
    let name = text.strip_suffix('*').unwrap_or(text);
    let ok = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !name.contains('*');
    if !ok || (name.is_empty() && text != "*") {
        return Err(format!(
            "{text:?} is not a variable name, NAME* or *; e.g. \"LD_LIBRARY_PATH\" or \"PYTHON*\""
        ));
    }
    Ok(())
}

/// Whether the `env-allow` entry `pattern` covers `name`.
pub(super) fn allows(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_shell_and_interpreter_variables_are_guarded() {
        for name in [
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "LD_AUDIT",
            "GCONV_PATH",
            "BASH_ENV",
            "ENV",
            "SHELLOPTS",
            "PS4",
            "BASH_FUNC_ls%%",
            "PYTHONPATH",
            "PYTHONSTARTUP",
            "PERL5OPT",
            "NODE_OPTIONS",
        ] {
            assert!(guarded(name).is_some(), "{name}");
        }
        for name in [
            "PATH",
            "HOME",
            "TASK_ID",
            "LANG",
            "TERM",
            "ENVIRONMENT",
            "MY_LD_PRELOAD",
        ] {
            assert!(guarded(name).is_none(), "{name}");
        }
    }

    #[test]
    fn allow_entries_are_names_prefixes_or_everything() {
        assert!(parse_allow("LD_LIBRARY_PATH").is_ok());
        assert!(parse_allow("PYTHON*").is_ok());
        assert!(parse_allow("*").is_ok());
        for bad in ["", "A*B", "LD PRELOAD", "X=1", "**"] {
            assert!(parse_allow(bad).is_err(), "{bad}");
        }
        assert!(allows("PYTHON*", "PYTHONPATH"));
        assert!(allows("*", "LD_PRELOAD"));
        assert!(!allows("LD_LIBRARY_PATH", "LD_PRELOAD"));
    }
}
