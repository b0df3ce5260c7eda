//! `[registries."HOST[:PORT]"]`: how `enginehost push`, `install REF` and
//! `plugins diff` reach an OCI registry that holds plugins: the account to log in
//! with, and whether the registry speaks plain HTTP. A registry without a table
//! is reached over TLS with the credentials of docker's `config.json`, if any
//! (docs/distribution.md).

use std::path::PathBuf;

use serde::Deserialize;
use toml::Table;

use super::config::ConfigError;
use super::reader::{self, join, table_at};

/// One registry's settings, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrySettings {
    /// `username`: the account for HTTP basic auth or the registry's token service.
    pub username: Option<String>,
    /// `password-file`: an absolute path to a file that holds the password (its
    /// first line), so the config itself holds no secret.
    pub password_file: Option<PathBuf>,
    /// `insecure`: plain HTTP instead of TLS (as `--insecure`); localhost registries
    /// are plain HTTP without it.
    pub insecure: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRegistry {
    username: Option<String>,
    password_file: Option<PathBuf>,
    insecure: Option<bool>,
}

/// Whether `name` can be a registry's host (`host`, `host:port`, `[v6]:port`):
/// what an image reference has before its first `/`.
pub fn registry_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.contains(['/', '@', ' '])
        && !name.contains("://")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'))
}

/// Reads `[registries]` (`table`, at `path`).
pub(super) fn read(
    table: &Table,
    path: &str,
) -> Result<std::collections::BTreeMap<String, RegistrySettings>, ConfigError> {
    let mut out = std::collections::BTreeMap::new();
    for (name, value) in table {
        let here = join(path, name);
        if !registry_name(name) {
            return Err(ConfigError::new(
                here,
                "is not a registry host: give it as an image reference starts, e.g. [registries.\"ghcr.io\"] or \
                 [registries.\"localhost:5000\"] (no scheme, no path)",
            ));
        }
        let raw: RawRegistry = reader::typed(table_at(value, &here)?, &here)?;
        let key = |k: &str| join(&here, k);
        match (&raw.username, &raw.password_file) {
            (Some(_), None) => {
                return Err(ConfigError::new(
                    key("password-file"),
                    "required with username: the absolute path of a file holding the password",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    key("username"),
                    "required with password-file: the account the password belongs to",
                ));
            }
            _ => {}
        }
        if let Some(file) = &raw.password_file
            && !file.is_absolute()
        {
            return Err(ConfigError::new(
                key("password-file"),
                format!("{} is relative; give an absolute path", file.display()),
            ));
        }
        out.insert(
            name.clone(),
            RegistrySettings {
                username: raw.username,
                password_file: raw.password_file,
                insecure: raw.insecure.unwrap_or(false),
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<std::collections::BTreeMap<String, RegistrySettings>, ConfigError> {
        read(&text.parse::<Table>().unwrap(), "registries")
    }

    #[test]
    fn reads_and_checks() {
        let r = parse("[\"localhost:5000\"]\nusername = \"ci\"\npassword-file = \"/etc/pw\"\ninsecure = true").unwrap();
        let s = &r["localhost:5000"];
        assert_eq!(s.username.as_deref(), Some("ci"));
        assert!(s.insecure);
        let e = parse("[\"https://ghcr.io\"]").unwrap_err();
        assert!(e.to_string().contains("no scheme"), "{e}");
        let e = parse("[\"ghcr.io\"]\nusername = \"x\"").unwrap_err();
        assert_eq!(e.key, "registries.\"ghcr.io\".password-file");
        let e = parse("[\"ghcr.io\"]\nusername = \"x\"\npassword-file = \"pw\"").unwrap_err();
        assert!(e.to_string().contains("relative"), "{e}");
        let e = parse("[\"ghcr.io\"]\npassword = \"x\"").unwrap_err();
        assert!(e.to_string().contains("password"), "{e}");
    }
}
