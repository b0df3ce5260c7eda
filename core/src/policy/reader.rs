//! Reading TOML into the serde types one key at a time, so that every error names
//! its full key path (`plugins.native.process.pty: invalid type: ...`) rather than
//! serde's bare message. Also the plugin-side refusal of operator-only keys and the
//! TOML → JSON conversion of `[engines.NAME]` tables.
//!
//! Used by `config` and `tables`; knows nothing about patterns (that is `validate`).

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use toml::{Table, Value};

use super::{
    Capabilities, ConfigError, DirTable, EndpointTable, FilesTable, NetworkTable, ProcessTable, UnixSocketsTable,
    UsersTable,
};

/// Parses TOML text into a table; syntax errors keep toml's line, column and snippet.
pub(super) fn parse_toml(text: &str) -> Result<Table, ConfigError> {
    toml::from_str::<Table>(text).map_err(|e| ConfigError::new("", e.to_string().trim_end()))
}

/// `prefix.key`, quoting `key` the TOML way when it is not a bare key.
pub(super) fn join(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let key = if bare { key.to_string() } else { format!("{key:?}") };
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}.{key}")
    }
}

/// `prefix.rest` for a dotted path written in code (`process.exec`), unquoted.
pub(super) fn at(prefix: &str, rest: &str) -> String {
    if prefix.is_empty() {
        rest.to_string()
    } else {
        format!("{prefix}.{rest}")
    }
}

/// The keys a `#[derive(Deserialize)]` struct accepts (its serialized field names),
/// read from what the derive passes to `deserialize_struct`. Keeps the "known keys"
/// lists in messages in step with the structs.
pub(super) fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Probe(&'static [&'static str]);
    impl<'de> Deserializer<'de> for &mut Probe {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = fields;
            Err(de::Error::custom("probed"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut probe = Probe(&[]);
    let _ = T::deserialize(&mut probe);
    probe.0
}

fn unknown_key(path: &str, key: &str, known: &[&str]) -> ConfigError {
    ConfigError::new(
        join(path, key),
        format!("unknown key; the keys allowed here are {}", known.join(", ")),
    )
}

/// Deserializes the table at `path` into `T`, key by key: an unknown key or a value
/// of the wrong type is reported at `path.key`.
pub(super) fn typed<T: DeserializeOwned>(table: &Table, path: &str) -> Result<T, ConfigError> {
    let known = field_names::<T>();
    for (key, value) in table {
        if !known.contains(&key.as_str()) {
            return Err(unknown_key(path, key, known));
        }
        let one = Table::from_iter([(key.clone(), value.clone())]);
        T::deserialize(Value::Table(one)).map_err(|e| ConfigError::new(join(path, key), e.message()))?;
    }
    T::deserialize(Value::Table(table.clone())).map_err(|e| ConfigError::new(path, e.message()))
}

/// The value at `path` as a table, or an error saying it must be one.
pub(super) fn table_at<'a>(value: &'a Value, path: &str) -> Result<&'a Table, ConfigError> {
    value.as_table().ok_or_else(|| {
        let found = value.type_str();
        let article = if found.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        ConfigError::new(path, format!("expected a table ([{path}]), found {article} {found}"))
    })
}

/// Reads capability tables (`[files]`, `[process]`, ...) found at `path` ("" for a
/// plugin's capabilities.toml, `plugins.NAME` for a grant). Types only; patterns are
/// checked by `validate`.
pub(super) fn capabilities(table: &Table, path: &str) -> Result<Capabilities, ConfigError> {
    let mut caps = Capabilities::default();
    for (key, value) in table {
        let here = join(path, key);
        match key.as_str() {
            "files" => caps.files = Some(files(table_at(value, &here)?, &here)?),
            "process" => caps.process = Some(typed::<ProcessTable>(table_at(value, &here)?, &here)?),
            "network" => caps.network = Some(typed::<NetworkTable>(table_at(value, &here)?, &here)?),
            "unix-sockets" => caps.unix_sockets = Some(typed::<UnixSocketsTable>(table_at(value, &here)?, &here)?),
            "users" => caps.users = Some(typed::<UsersTable>(table_at(value, &here)?, &here)?),
            "endpoint" => caps.endpoint = Some(typed::<EndpointTable>(table_at(value, &here)?, &here)?),
            _ => return Err(unknown_key(path, key, field_names::<Capabilities>())),
        }
    }
    Ok(caps)
}

/// `[files]`, reading each `[files.dirs.NAME]` at its own path first.
fn files(table: &Table, path: &str) -> Result<FilesTable, ConfigError> {
    if let Some(dirs) = table.get("dirs") {
        let dirs_path = join(path, "dirs");
        for (name, dir) in table_at(dirs, &dirs_path)? {
            let here = join(&dirs_path, name);
            typed::<DirTable>(table_at(dir, &here)?, &here)?;
        }
    }
    typed(table, path)
}

/// Operator-only keys in a plugin's request, with what kind of thing they are.
const OPERATOR_ONLY: &[(&str, &str, &str)] = &[
    ("process", "search-path", "setting"),
    ("process", "max-per-task", "limit"),
    ("network", "allow-private", "setting"),
    ("unix-sockets", "max-connections", "limit"),
    ("endpoint", "max-connections", "limit"),
    ("users", "uid-range", "setting"),
];

/// Refuses keys in a plugin's `capabilities.toml` that only the operator may set.
/// Checked on the raw table, so `allow-private = false` is refused too.
pub(super) fn refuse_operator_keys(table: &Table) -> Result<(), ConfigError> {
    for (capability, key, kind) in OPERATOR_ONLY {
        if table
            .get(*capability)
            .and_then(Value::as_table)
            .is_some_and(|t| t.contains_key(*key))
        {
            return Err(ConfigError::new(
                format!("{capability}.{key}"),
                format!("an operator {kind}, not something a plugin requests; remove it from capabilities.toml"),
            ));
        }
    }
    let dirs = table.get("files").and_then(|f| f.get("dirs")).and_then(Value::as_table);
    for (name, dir) in dirs.into_iter().flatten() {
        if dir.as_table().is_some_and(|d| d.contains_key("path")) {
            return Err(ConfigError::new(
                join(&join("files.dirs", name), "path"),
                format!(
                    "the operator chooses where a dir lives (in [plugins.NAME.files.dirs.{name}]); \
                     remove it from capabilities.toml"
                ),
            ));
        }
    }
    Ok(())
}

/// Converts a TOML value to JSON (datetimes become their TOML text).
pub(super) fn toml_to_json(value: &Value, path: &str) -> Result<serde_json::Value, ConfigError> {
    Ok(match value {
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Integer(i) => serde_json::Value::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .ok_or_else(|| ConfigError::new(path, format!("{f} cannot be passed on as JSON; use a finite number")))?,
        Value::Boolean(b) => serde_json::Value::Bool(*b),
        Value::Datetime(d) => serde_json::Value::String(d.to_string()),
        Value::Array(items) => serde_json::Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| toml_to_json(v, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Value::Table(t) => serde_json::Value::Object(
            t.iter()
                .map(|(k, v)| Ok((k.clone(), toml_to_json(v, &join(path, k))?)))
                .collect::<Result<_, _>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_follow_the_serde_renames() {
        assert_eq!(
            field_names::<ProcessTable>(),
            [
                "exec",
                "search-path",
                "run-as",
                "pty",
                "max-per-task",
                "env-allow",
                "network"
            ]
        );
        assert_eq!(
            field_names::<Capabilities>(),
            ["files", "process", "network", "unix-sockets", "users", "endpoint"]
        );
    }

    #[test]
    fn keys_are_quoted_when_not_bare() {
        assert_eq!(join("", "host"), "host");
        assert_eq!(join("plugins", "native"), "plugins.native");
        assert_eq!(join("plugins", "my.plugin"), "plugins.\"my.plugin\"");
        assert_eq!(join("a", ""), "a.\"\"");
    }

    #[test]
    fn typed_errors_name_the_key() {
        let cases = [
            (
                "pty = \"yes\"",
                "plugins.x.process.pty: invalid type: string \"yes\", expected a boolean",
            ),
            (
                "run-as = [\"root\"]",
                "plugins.x.process.run-as: unknown variant `root`, expected `worker` or `task-user`",
            ),
            (
                "max-per-task = -1",
                "plugins.x.process.max-per-task: invalid value: integer `-1`, expected u32",
            ),
            (
                "ptty = true",
                "plugins.x.process.ptty: unknown key; the keys allowed here are exec, search-path, run-as, pty, \
                 max-per-task, env-allow, network",
            ),
        ];
        for (text, want) in cases {
            let table: Table = toml::from_str(text).unwrap();
            let err = typed::<ProcessTable>(&table, "plugins.x.process").unwrap_err();
            assert_eq!(err.to_string(), want, "{text}");
        }
    }

    #[test]
    fn nested_dirs_and_non_tables_are_reported_at_their_path() {
        let cases = [
            (
                "[files.dirs.cache]\nmod = \"rw\"",
                "files.dirs.cache.mod: unknown key; the keys allowed here are path, mode",
            ),
            (
                "[files.dirs.cache]\nmode = \"wr\"",
                "files.dirs.cache.mode: unknown variant `wr`, expected `ro` or `rw`",
            ),
            (
                "[files]\ndirs = 3",
                "files.dirs: expected a table ([files.dirs]), found an integer",
            ),
            (
                "process = true",
                "process: expected a table ([process]), found a boolean",
            ),
            (
                "[proces]",
                "proces: unknown key; the keys allowed here are files, process, network, unix-sockets, users, endpoint",
            ),
        ];
        for (text, want) in cases {
            let table: Table = toml::from_str(text).unwrap();
            let err = capabilities(&table, "").unwrap_err();
            assert_eq!(err.to_string(), want, "{text}");
        }
    }

    #[test]
    fn toml_becomes_json() {
        let table: Table = toml::from_str("a = [1, 2.5, \"x\", true]\nb = { c = 1979-05-27 }").unwrap();
        let json = toml_to_json(&Value::Table(table), "engines.x").unwrap();
        assert_eq!(
            json,
            serde_json::json!({"a": [1, 2.5, "x", true], "b": {"c": "1979-05-27"}})
        );
        let nan: Table = toml::from_str("n = nan").unwrap();
        let err = toml_to_json(&Value::Table(nan), "engines.x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "engines.x.n: NaN cannot be passed on as JSON; use a finite number"
        );
    }
}
