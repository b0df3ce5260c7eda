//! Volumes: named docker volumes, mounted at an absolute path ending in `/`
//! (the seed's rule: `^(?:/[^/\0\\:*"<>|]+)+/$`, no `.` or `..` segments); two
//! mounts of one task may not be equal or nested (naming-conflict).

use std::rc::Rc;

use enginehost_sdk::{Error, Result, Volume, malformed};
use serde_json::{Value, json};

use crate::api::Docker;
use crate::cleanup::{self, Cleanup, Job};
use crate::{DockerEngine, new_name};

/// A named docker volume.
pub struct DockerVolume {
    docker: Docker,
    cleanup: Cleanup,
    name: String,
    disposed: std::cell::Cell<bool>,
}

impl DockerVolume {
    pub(crate) async fn create(engine: &Rc<DockerEngine>) -> Result<DockerVolume> {
        let name = new_name();
        let body = json!({"Name": name, "Labels": engine.labels(None)});
        engine
            .docker
            .json("POST", "/volumes/create", Some(body))
            .await
            .map_err(|e| engine.unavailable(e))?;
        Ok(DockerVolume {
            docker: engine.docker.clone(),
            cleanup: engine.cleanup.clone(),
            name,
            disposed: std::cell::Cell::new(false),
        })
    }
}

impl Volume for DockerVolume {
    async fn dispose(&self) -> Result<()> {
        if self.disposed.replace(true) {
            return Ok(());
        }
        if !cleanup::remove(&self.docker, &Job::Volume(self.name.clone())).await {
            return Err(Error::NonFatalInternalError(format!(
                "docker: the volume {} could not be removed (still in use?)",
                self.name
            )));
        }
        Ok(())
    }
}

impl Drop for DockerVolume {
    fn drop(&mut self) {
        if !self.disposed.get() {
            self.cleanup.push(Job::Volume(self.name.clone()));
        }
    }
}

/// A volume mounted into a task's container.
pub(crate) struct Mount {
    /// The mountpoint without its trailing `/`.
    target: String,
    volume: String,
    read_only: bool,
}

impl Mount {
    /// `Mounts[]` of the container's host config.
    pub(crate) fn json(&self) -> Value {
        json!({"Type": "volume", "Source": self.volume, "Target": self.target, "ReadOnly": self.read_only})
    }

    /// Whether the two mountpoints are equal or one lies in the other.
    pub(crate) fn conflicts(&self, other: &Mount) -> bool {
        let (a, b) = (format!("{}/", self.target), format!("{}/", other.target));
        a.starts_with(&b) || b.starts_with(&a)
    }
}

/// Checks `mountpoint` and makes the mount.
pub(crate) fn mount(mountpoint: &str, volume: &DockerVolume, read_only: bool) -> Result<Mount> {
    let Some(inner) = mountpoint.strip_prefix('/').and_then(|m| m.strip_suffix('/')) else {
        return Err(bad_mountpoint(mountpoint));
    };
    let segment_ok =
        |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains(['\0', '\\', ':', '*', '"', '<', '>', '|']);
    if !inner.split('/').all(segment_ok) {
        return Err(bad_mountpoint(mountpoint));
    }
    Ok(Mount {
        target: format!("/{inner}"),
        volume: volume.name.clone(),
        read_only,
    })
}

fn bad_mountpoint(mountpoint: &str) -> Error {
    malformed(format!(
        "mountpoint {mountpoint:?} must be an absolute path ending in \"/\", e.g. \"/mnt/cache/\", without \".\" or \
         \"..\" segments or any of \\ : * \" < > |"
    ))
}
