//! Volumes: writable caches kept across tasks (generic-worker's writable directory
//! caches). A volume is a directory `volumes/<n>` in the engine's state directory
//! (`files.engine`); a task that attaches it gets it at a path in its home. At the
//! start the host moves the directory there and, with `createUser`, hands what
//! earlier task users made in it to this task's user (`files.lend-dir`: never
//! through a symlink, never a symlink's target, bounded); when the task's commands
//! and shells have ended it is moved back (`files.reclaim-dir`). So a cache is in
//! one task's home at a time, and nothing of it is left when the engine ends: the
//! `volumes` directory is removed when the engine starts and when it is disposed.
//!
//! A cache that cannot be given to the task (a task left it deeper or larger than
//! the host hands over, or turned it into a symlink) starts empty, with a line in
//! the task log saying so.

use std::cell::Cell;

use enginehost_sdk::caps::users::TaskUser;
use enginehost_sdk::caps::{CapError, files};
use enginehost_sdk::{Error, Result, TaskContext, Volume};

use crate::context::step;
use crate::mounts::relative;

/// Where the volumes are, in the engine's state directory.
pub(crate) const VOLUMES: &str = "volumes";

/// A writable cache. One dropped without `dispose` stays until the engine's next
/// start or its disposal removes every volume.
pub struct NativeVolume {
    /// Its directory, relative to the state directory (`volumes/<n>`).
    path: String,
    disposed: Cell<bool>,
}

impl NativeVolume {
    /// A new, empty volume.
    pub(crate) fn create() -> Result<NativeVolume> {
        let state = files::state_dir().map_err(|e| match e {
            CapError::Denied(d) => Error::NonFatalInternalError(format!(
                "the native engine keeps caches in its state directory: {}",
                d.message
            )),
            other => other.into(),
        })?;
        let root = format!("{state}/{VOLUMES}");
        std::fs::create_dir_all(&root).map_err(|e| internal(&format!("creating {root}"), e))?;
        for n in 0u64.. {
            match std::fs::create_dir(format!("{root}/{n}")) {
                Ok(()) => {
                    return Ok(NativeVolume {
                        path: format!("{VOLUMES}/{n}"),
                        disposed: Cell::new(false),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(internal(&format!("creating a volume in {root}"), e)),
            }
        }
        unreachable!("u64 volumes")
    }

    /// Makes the volume's directory again, empty.
    async fn recreate(&self) -> Result<()> {
        files::remove_state(&self.path).await?;
        let state = files::state_dir()?;
        std::fs::create_dir(format!("{state}/{}", self.path))
            .map_err(|e| internal(&format!("creating the volume {}", self.path), e))
    }
}

fn internal(what: &str, e: std::io::Error) -> Error {
    Error::NonFatalInternalError(format!("{what}: {e}"))
}

impl Volume for NativeVolume {
    async fn dispose(&self) -> Result<()> {
        if self.disposed.replace(true) {
            return Ok(());
        }
        files::remove_state(&self.path).await?;
        Ok(())
    }
}

/// A volume attached to a task: where in the home, and which.
#[derive(Clone)]
pub(crate) struct Attached {
    /// Relative to the home.
    mountpoint: String,
    path: String,
}

impl Attached {
    /// Checks `mountpoint` (a path in the task's home) against those already
    /// attached; writable volumes only.
    pub(crate) fn new(
        mountpoint: String,
        volume: &NativeVolume,
        read_only: bool,
        attached: &[Attached],
    ) -> Result<Attached> {
        if read_only {
            return Err(Error::ImmutableMountNotSupported);
        }
        let mountpoint = mountpoint.trim_end_matches('/').to_string();
        relative(&mountpoint, "mountpoint")?;
        let nested = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}/"));
        if attached
            .iter()
            .any(|a| nested(&a.mountpoint, &mountpoint) || nested(&mountpoint, &a.mountpoint))
        {
            return Err(Error::NamingConflict);
        }
        Ok(Attached {
            mountpoint,
            path: volume.path.clone(),
        })
    }

    fn volume(&self) -> NativeVolume {
        NativeVolume {
            path: self.path.clone(),
            disposed: Cell::new(true),
        }
    }
}

/// Puts every attached volume into the task's home (before anything else is
/// there); on failure, what was put in is taken back first.
pub(crate) async fn lend(context: &TaskContext, user: Option<&TaskUser>, attached: &[Attached]) -> Result<()> {
    for (i, a) in attached.iter().enumerate() {
        if let Err(e) = lend_one(context, user, a).await {
            reclaim(context, &attached[..i]).await;
            return Err(e);
        }
    }
    Ok(())
}

async fn lend_one(context: &TaskContext, user: Option<&TaskUser>, a: &Attached) -> Result<()> {
    if let Some((parent, _)) = a.mountpoint.rsplit_once('/') {
        step(
            context,
            user,
            &["mkdir", "-p", "--", parent],
            None,
            "caches",
            "making a cache's directory",
        )
        .await?;
    }
    let into = format!("{}/{}", crate::HOME, a.mountpoint);
    match files::lend_dir(context, &a.path, &into, user).await {
        Ok(()) => Ok(()),
        // What the cache holds is at fault (too deep, too large, not a directory
        // any more): it starts empty. Anything else (the host's) fails the task
        // and leaves the cache as it is.
        Err(e @ (CapError::Invalid(_) | CapError::NotFound(_))) => {
            context.log_error(&format!(
                "The cache at {} cannot be given to this task ({}); it starts empty",
                a.mountpoint,
                e.message()
            ));
            a.volume().recreate().await?;
            files::lend_dir(context, &a.path, &into, user).await.map_err(Into::into)
        }
        Err(e) => Err(e.into()),
    }
}

/// Takes every attached volume back from the task's home (the host kills what
/// is left of the task first). A cache the task turned into something else starts
/// empty next time.
pub(crate) async fn reclaim(context: &TaskContext, attached: &[Attached]) {
    for a in attached {
        let from = format!("{}/{}", crate::HOME, a.mountpoint);
        match files::reclaim_dir(context, &from, &a.path).await {
            Ok(()) => {}
            Err(e @ CapError::NotFound(_)) => {
                context.log_error(&format!(
                    "The cache at {} could not be kept ({}); the next task gets it empty",
                    a.mountpoint,
                    e.message()
                ));
                let _ = a.volume().recreate().await;
            }
            // Left in the sandbox, it goes with it; the next task that takes the
            // cache finds it missing and starts it empty.
            Err(e) => context.log_error(&format!(
                "The cache at {} could not be kept: {}",
                a.mountpoint,
                e.message()
            )),
        }
    }
}

/// Removes every volume (at the engine's start and disposal), as far as it can: a
/// volume a task left unremovable (a mount inside) must not stop the engine, and
/// new volumes take names not in use. Nothing to do without a state directory.
pub(crate) async fn remove_all() {
    if files::state_dir().is_ok() {
        let _ = files::remove_state(VOLUMES).await;
    }
}
