//! `[limits]` (defaults for every plugin) and `[plugins.NAME.limits]` (one
//! plugin's overrides): how much time, memory and size a plugin may use. Operator
//! only: a plugin's `capabilities.toml` cannot ask for limits. docs/limits.md lists
//! every key with its default.
//!
//! Durations are `"500ms"`, `"30s"`, `"5m"`, `"1h"`; sizes are bytes or `"64KiB"`,
//! `"512MiB"`, `"8GiB"` (also `KB`/`MB`/`GB`, powers of 1000).

use std::time::Duration;

use toml::{Table, Value};

use super::ConfigError;
use super::reader::join;

/// Limits as written: every key optional, so that a plugin's table overrides only
/// what it names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// `cpu-slice`: the longest a guest may run without awaiting.
    pub cpu_slice: Option<Duration>,
    /// `memory`: the largest linear memory of an instance, in bytes.
    pub memory: Option<u64>,
    /// `handles`: component-model handles (resources, streams, subtasks) per instance.
    pub handles: Option<u64>,
    /// `live-tasks`: tasks (builder to result set) one engine keeps at once.
    pub live_tasks: Option<u64>,
    /// `init-timeout`: instantiation plus `init`.
    pub init_timeout: Option<Duration>,
    /// `call-timeout`: every call that must be quick (schemas, builder calls,
    /// dispose, abort, kill, shells' and displays' set-up, opening an extraction).
    pub call_timeout: Option<Duration>,
    /// `start-timeout`: `start` (it may pull an image or boot a VM first).
    pub start_timeout: Option<Duration>,
    /// `kill-grace`: after `kill` (maxRunTime), and again after `abort`, how long the
    /// engine gets to end the task before its instance is torn down.
    pub kill_grace: Option<Duration>,
    /// `stall-timeout`: an extraction or a stream without progress for this long fails.
    pub stall_timeout: Option<Duration>,
    /// `log-size`: bytes of one task's log.
    pub log_size: Option<u64>,
    /// `artifact-size`: bytes of one artifact file.
    pub artifact_size: Option<u64>,
    /// `task-artifacts-size`: bytes of all of one task's artifacts.
    pub task_artifacts_size: Option<u64>,
    /// `artifact-files`: files in one directory artifact.
    pub artifact_files: Option<u64>,
    /// `task-pids`: processes and threads of one task at once (cgroup `pids.max`).
    pub task_pids: Option<u64>,
    /// `task-memory`: bytes of memory of one task's processes (cgroup `memory.max`).
    pub task_memory: Option<u64>,
}

/// Every limit with a value: the defaults, overridden.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedLimits {
    /// See [`Limits::cpu_slice`].
    pub cpu_slice: Duration,
    /// See [`Limits::memory`].
    pub memory: u64,
    /// See [`Limits::handles`].
    pub handles: u64,
    /// See [`Limits::live_tasks`].
    pub live_tasks: u64,
    /// See [`Limits::init_timeout`].
    pub init_timeout: Duration,
    /// See [`Limits::call_timeout`].
    pub call_timeout: Duration,
    /// See [`Limits::start_timeout`].
    pub start_timeout: Duration,
    /// See [`Limits::kill_grace`].
    pub kill_grace: Duration,
    /// See [`Limits::stall_timeout`].
    pub stall_timeout: Duration,
    /// See [`Limits::log_size`].
    pub log_size: u64,
    /// See [`Limits::artifact_size`].
    pub artifact_size: u64,
    /// See [`Limits::task_artifacts_size`].
    pub task_artifacts_size: u64,
    /// See [`Limits::artifact_files`].
    pub artifact_files: u64,
    /// See [`Limits::task_pids`].
    pub task_pids: u64,
    /// See [`Limits::task_memory`]; `None`: three quarters of the machine's memory.
    pub task_memory: Option<u64>,
}

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

impl Default for ResolvedLimits {
    fn default() -> Self {
        ResolvedLimits {
            cpu_slice: Duration::from_millis(500),
            memory: 512 * MIB,
            handles: 400_000,
            live_tasks: 20_000,
            init_timeout: Duration::from_secs(60),
            call_timeout: Duration::from_secs(30),
            start_timeout: Duration::from_secs(600),
            kill_grace: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(60),
            log_size: GIB,
            artifact_size: 4 * GIB,
            task_artifacts_size: 16 * GIB,
            artifact_files: 100_000,
            task_pids: 4096,
            task_memory: None,
        }
    }
}

impl ResolvedLimits {
    /// No limit at all (deadlines never, sizes and counts at their maximum): only
    /// for measuring what the limits cost (`enginehost bench`'s `limits.overhead`).
    pub fn unlimited() -> Self {
        ResolvedLimits {
            cpu_slice: Duration::MAX,
            memory: u64::MAX,
            handles: u64::MAX,
            live_tasks: u64::MAX,
            init_timeout: Duration::MAX,
            call_timeout: Duration::MAX,
            start_timeout: Duration::MAX,
            kill_grace: Duration::MAX,
            stall_timeout: Duration::MAX,
            log_size: u64::MAX,
            artifact_size: u64::MAX,
            task_artifacts_size: u64::MAX,
            artifact_files: u64::MAX,
            task_pids: u64::MAX,
            task_memory: Some(u64::MAX),
        }
    }
}

impl Limits {
    /// `self` over `base`: what `self` names wins.
    pub fn over(&self, base: &Limits) -> Limits {
        macro_rules! pick {
            ($($f:ident),*) => { Limits { $($f: self.$f.or(base.$f)),* } };
        }
        pick!(
            cpu_slice,
            memory,
            handles,
            live_tasks,
            init_timeout,
            call_timeout,
            start_timeout,
            kill_grace,
            stall_timeout,
            log_size,
            artifact_size,
            task_artifacts_size,
            artifact_files,
            task_pids,
            task_memory
        )
    }

    /// Every value, the defaults where none is given.
    pub fn resolve(&self) -> ResolvedLimits {
        let d = ResolvedLimits::default();
        ResolvedLimits {
            cpu_slice: self.cpu_slice.unwrap_or(d.cpu_slice),
            memory: self.memory.unwrap_or(d.memory),
            handles: self.handles.unwrap_or(d.handles),
            live_tasks: self.live_tasks.unwrap_or(d.live_tasks),
            init_timeout: self.init_timeout.unwrap_or(d.init_timeout),
            call_timeout: self.call_timeout.unwrap_or(d.call_timeout),
            start_timeout: self.start_timeout.unwrap_or(d.start_timeout),
            kill_grace: self.kill_grace.unwrap_or(d.kill_grace),
            stall_timeout: self.stall_timeout.unwrap_or(d.stall_timeout),
            log_size: self.log_size.unwrap_or(d.log_size),
            artifact_size: self.artifact_size.unwrap_or(d.artifact_size),
            task_artifacts_size: self.task_artifacts_size.unwrap_or(d.task_artifacts_size),
            artifact_files: self.artifact_files.unwrap_or(d.artifact_files),
            task_pids: self.task_pids.unwrap_or(d.task_pids),
            task_memory: self.task_memory.or(d.task_memory),
        }
    }

    /// Reads a `[limits]` table at `path`.
    pub(super) fn read(table: &Table, path: &str) -> Result<Limits, ConfigError> {
        let mut limits = Limits::default();
        for (key, value) in table {
            let here = join(path, key);
            let duration = || duration(value, &here).map(Some);
            let size = || size(value, &here).map(Some);
            match key.as_str() {
                "cpu-slice" => limits.cpu_slice = duration()?,
                "memory" => limits.memory = size()?,
                "handles" => limits.handles = count(value, &here)?,
                "live-tasks" => limits.live_tasks = count(value, &here)?,
                "init-timeout" => limits.init_timeout = duration()?,
                "call-timeout" => limits.call_timeout = duration()?,
                "start-timeout" => limits.start_timeout = duration()?,
                "kill-grace" => limits.kill_grace = duration()?,
                "stall-timeout" => limits.stall_timeout = duration()?,
                "log-size" => limits.log_size = size()?,
                "artifact-size" => limits.artifact_size = size()?,
                "task-artifacts-size" => limits.task_artifacts_size = size()?,
                "artifact-files" => limits.artifact_files = count(value, &here)?,
                "task-pids" => limits.task_pids = count(value, &here)?,
                "task-memory" => limits.task_memory = size()?,
                _ => {
                    return Err(ConfigError::new(
                        here,
                        "unknown key; the keys allowed here are cpu-slice, memory, handles, live-tasks, \
                         init-timeout, call-timeout, start-timeout, kill-grace, stall-timeout, log-size, artifact-size, \
                         task-artifacts-size, artifact-files, task-pids, task-memory",
                    ));
                }
            }
        }
        Ok(limits)
    }
}

fn count(value: &Value, key: &str) -> Result<Option<u64>, ConfigError> {
    match value.as_integer() {
        Some(n) if n > 0 => Ok(Some(n as u64)),
        _ => Err(ConfigError::new(
            key,
            format!("{value} is not a positive whole number, e.g. 1000"),
        )),
    }
}

/// A duration: `"500ms"`, `"30s"`, `"5m"`, `"1h"`.
pub(super) fn duration(value: &Value, key: &str) -> Result<Duration, ConfigError> {
    let bad = || {
        ConfigError::new(
            key,
            format!("{value} is not a duration; write e.g. \"500ms\", \"30s\", \"5m\" or \"1h\""),
        )
    };
    let text = value.as_str().ok_or_else(bad)?.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let d = match unit.trim() {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(bad)?),
        "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(bad)?),
        _ => return Err(bad()),
    };
    if d.is_zero() {
        return Err(ConfigError::new(
            key,
            "a limit of zero would refuse everything; give a positive duration",
        ));
    }
    Ok(d)
}

/// A size: bytes, or `"64KiB"`, `"512MiB"`, `"8GiB"` (`KB`, `MB`, `GB`: powers of 1000).
fn size(value: &Value, key: &str) -> Result<u64, ConfigError> {
    if let Some(n) = value.as_integer() {
        return if n > 0 {
            Ok(n as u64)
        } else {
            Err(ConfigError::new(key, "give a positive size, e.g. \"512MiB\""))
        };
    }
    let bad = || {
        ConfigError::new(
            key,
            format!("{value} is not a size; write bytes, or e.g. \"64KiB\", \"512MiB\", \"8GiB\""),
        )
    };
    let text = value.as_str().ok_or_else(bad)?.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(bad()),
    };
    match n.checked_mul(factor) {
        Some(0) => Err(ConfigError::new(key, "give a positive size, e.g. \"512MiB\"")),
        Some(bytes) => Ok(bytes),
        None => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Limits, ConfigError> {
        Limits::read(&toml::from_str(text).unwrap(), "limits")
    }

    #[test]
    fn durations_sizes_and_counts() {
        let l =
            read("cpu-slice = \"250ms\"\nmemory = \"64MiB\"\nlog-size = 1000\nartifact-files = 7\nkill-grace = \"2m\"")
                .unwrap();
        assert_eq!(l.cpu_slice, Some(Duration::from_millis(250)));
        assert_eq!(l.memory, Some(64 << 20));
        assert_eq!(l.log_size, Some(1000));
        assert_eq!(l.artifact_files, Some(7));
        assert_eq!(l.kill_grace, Some(Duration::from_secs(120)));
        assert_eq!(read("memory = \"1GB\"").unwrap().memory, Some(1_000_000_000));
    }

    #[test]
    fn bad_values_name_the_key_and_an_example() {
        let e = read("cpu-slice = \"fast\"").unwrap_err();
        assert_eq!(e.key, "limits.cpu-slice");
        assert!(e.message.contains("\"500ms\""), "{e}");
        let e = read("memory = \"12 parsecs\"").unwrap_err();
        assert!(e.message.contains("512MiB"), "{e}");
        assert!(read("handles = 0").is_err());
        assert!(read("call-timeout = \"0s\"").is_err());
        let e = read("speed = 1").unwrap_err();
        assert_eq!(e.key, "limits.speed");
        assert!(e.message.contains("cpu-slice"), "{e}");
    }

    #[test]
    fn a_plugins_table_overrides_only_what_it_names() {
        let base = read("memory = \"64MiB\"\ncall-timeout = \"5s\"").unwrap();
        let plugin = read("memory = \"1GiB\"").unwrap();
        let r = plugin.over(&base).resolve();
        assert_eq!(r.memory, 1 << 30);
        assert_eq!(r.call_timeout, Duration::from_secs(5));
        assert_eq!(r.log_size, ResolvedLimits::default().log_size);
    }
}
