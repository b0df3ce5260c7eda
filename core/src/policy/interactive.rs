//! `[interactive]`: the server through which a person reaches a running task's
//! shells and displays (host/src/worker/interactive). Absent: no task is
//! interactive, and a task that asks is refused.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use toml::{Table, Value};

use super::config::ConfigError;
use super::reader::{self, join};

/// `[interactive]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InteractiveSettings {
    /// `listen`: the local address to serve on (port 0: any free port).
    pub listen: SocketAddr,
    /// `public-url`: the base URL people reach that server at (a reverse proxy's,
    /// may have a path); default `http://<the bound address>`.
    pub public_url: Option<String>,
    /// `expires`: the longest a task's links work, from the task's start (they
    /// stop at the task's end in any case). Default 1 hour.
    pub expires: Duration,
    /// `max-connections`: shells and displays open at once per task (default 8).
    pub max_connections: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawInteractive {
    listen: Option<String>,
    public_url: Option<String>,
    expires: Option<Value>,
    max_connections: Option<i64>,
}

impl InteractiveSettings {
    /// Reads the table at `path`.
    pub(super) fn read(table: &Table, path: &str) -> Result<InteractiveSettings, ConfigError> {
        let raw: RawInteractive = reader::typed(table, path)?;
        let key = |k: &str| join(path, k);
        let text = raw.listen.ok_or_else(|| {
            ConfigError::new(
                key("listen"),
                "required: the address to serve interactive sessions on, e.g. \"0.0.0.0:60024\"",
            )
        })?;
        let listen = super::validate::listen_address(&text, &key("listen"), "0.0.0.0:60024")?;
        let public_url = match raw.public_url {
            Some(u) => Some(base_url(&u, &key("public-url"))?),
            None => None,
        };
        let expires = match raw.expires {
            Some(v) => super::limits::duration(&v, &key("expires"))?,
            None => Duration::from_secs(3600),
        };
        if expires > Duration::from_secs(30 * 24 * 3600) {
            return Err(ConfigError::new(
                key("expires"),
                "is longer than 30 days; a task's links stop at its end anyway, give e.g. \"1h\" or \"24h\"",
            ));
        }
        let max_connections = match raw.max_connections {
            None => 8,
            Some(n) if (1..=1024).contains(&n) => n as u32,
            Some(n) => {
                return Err(ConfigError::new(
                    key("max-connections"),
                    format!("{n} is out of range; give 1 to 1024 (shells and displays open at once per task)"),
                ));
            }
        };
        Ok(InteractiveSettings {
            listen,
            public_url,
            expires,
            max_connections,
        })
    }
}

/// The URL without a trailing `/`.
fn base_url(text: &str, key: &str) -> Result<String, ConfigError> {
    let fix = "write the URL people reach the server at, e.g. \"https://worker-7.example.com/interactive\"";
    super::validate::http_url(text, key, fix)?;
    Ok(text.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<InteractiveSettings, ConfigError> {
        InteractiveSettings::read(&text.parse::<Table>().unwrap(), "interactive")
    }

    #[test]
    fn defaults_and_every_key() {
        let s = read("listen = \"127.0.0.1:0\"").unwrap();
        assert_eq!(s.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(
            (s.public_url, s.expires, s.max_connections),
            (None, Duration::from_secs(3600), 8)
        );
        let s = read(
            "listen = \"0.0.0.0:60024\"\npublic-url = \"https://w.example.com/i/\"\nexpires = \"2h\"\nmax-connections = 3",
        )
        .unwrap();
        assert_eq!(s.public_url.as_deref(), Some("https://w.example.com/i"));
        assert_eq!((s.expires, s.max_connections), (Duration::from_secs(7200), 3));
    }

    #[test]
    fn mistakes_name_their_key() {
        for (text, expected) in [
            ("", "interactive.listen: required"),
            (
                "listen = \"localhost\"",
                "interactive.listen: \"localhost\" is not an address",
            ),
            (
                "listen = \"127.0.0.1:0\"\npublic-url = \"ftp://x\"",
                "interactive.public-url: \"ftp://x\" is not an http(s) URL",
            ),
            (
                "listen = \"127.0.0.1:0\"\nexpires = \"soon\"",
                "interactive.expires: \"soon\" is not a duration",
            ),
            (
                "listen = \"127.0.0.1:0\"\nmax-connections = 0",
                "interactive.max-connections: 0 is out of range",
            ),
            (
                "listen = \"127.0.0.1:0\"\nexpires = \"9999999999999999h\"",
                "interactive.expires: \"9999999999999999h\" is not a duration",
            ),
            (
                "listen = \"127.0.0.1:0\"\nexpires = \"800h\"",
                "interactive.expires: is longer than 30 days",
            ),
            ("listen = \"127.0.0.1:0\"\nport = 1", "port"),
        ] {
            let e = read(text).unwrap_err().to_string();
            assert!(e.contains(expected), "{text}: {e}");
        }
    }
}
