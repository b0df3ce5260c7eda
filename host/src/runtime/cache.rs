//! The precompiled cache: a compiled component is kept in a file keyed by the
//! `.wasm`'s sha256, the wasmtime engine's compatibility hash and the wasmtime
//! version, so that a second start loads it in about a millisecond instead of
//! compiling it again.
//!
//! `Component::deserialize` runs what it is given as machine code, so an entry is
//! never trusted blindly:
//! - the directory is made owner-only (0700) and must belong to this user and be
//!   writable by nobody else, or the cache is not used;
//! - every entry starts with a magic and the sha256 of the rest, checked before
//!   deserializing; a corrupt, truncated or stale entry is compiled again and
//!   replaced;
//! - entries are written to a temporary file and renamed into place, so several
//!   worker processes starting at once never see half an entry.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

/// The first bytes of an entry.
const MAGIC: &[u8; 16] = b"enginehost-cwa1\n";
/// wasmtime's version, part of every key.
const WASMTIME: &str = "50.0.1";

/// A cache directory that passed the ownership check.
pub(crate) struct CompileCache {
    dir: PathBuf,
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl CompileCache {
    /// Opens (creating it 0700) the cache at `dir`; `None`, with a warning, when it
    /// cannot be made or is not this user's alone.
    pub(crate) fn open(dir: &Path) -> Option<CompileCache> {
        if let Err(e) = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir) {
            tracing::warn!(dir = %dir.display(), "not caching compiled plugins: cannot create the directory: {e}");
            return None;
        }
        let meta = match std::fs::symlink_metadata(dir) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), "not caching compiled plugins: {e}");
                return None;
            }
        };
        // SAFETY: geteuid cannot fail.
        let me = unsafe { libc::geteuid() };
        if !meta.is_dir() || meta.uid() != me || meta.mode() & 0o022 != 0 {
            tracing::warn!(
                dir = %dir.display(),
                "not caching compiled plugins: the directory must be this user's and writable by nobody else \
                 (owner uid {}, mode {:o})",
                meta.uid(),
                meta.mode() & 0o7777
            );
            return None;
        }
        Some(CompileCache { dir: dir.to_path_buf() })
    }

    /// The entry's path for `wasm` compiled by `engine`.
    fn path(&self, engine: &wasmtime::Engine, wasm: &[u8]) -> PathBuf {
        let mut compat = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut compat);
        let key = format!("{}-{:016x}-{WASMTIME}", hex(&Sha256::digest(wasm)), compat.finish());
        self.dir.join(format!("{key}.cwasm"))
    }

    /// The compiled component from the cache, if a sound entry is there.
    pub(crate) fn get(&self, engine: &wasmtime::Engine, wasm: &[u8]) -> Option<Component> {
        let path = self.path(engine, wasm);
        let bytes = std::fs::read(&path).ok()?;
        let ok = bytes.len() > MAGIC.len() + 32
            && &bytes[..MAGIC.len()] == MAGIC
            && Sha256::digest(&bytes[MAGIC.len() + 32..])[..] == bytes[MAGIC.len()..MAGIC.len() + 32];
        if !ok {
            tracing::warn!(entry = %path.display(), "a corrupt entry of the compile cache; compiling again");
            return None;
        }
        // SAFETY: the bytes are what this host wrote (checked above against their
        // sha256, in a directory only this user can write); wasmtime itself refuses
        // an entry made by another version or configuration.
        match unsafe { Component::deserialize(engine, &bytes[MAGIC.len() + 32..]) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::info!(entry = %path.display(), "a stale entry of the compile cache ({e}); compiling again");
                None
            }
        }
    }

    /// Stores `component` (compiled from `wasm`); failures are logged, not fatal.
    pub(crate) fn put(&self, engine: &wasmtime::Engine, wasm: &[u8], component: &Component) {
        let path = self.path(engine, wasm);
        let stored = (|| -> anyhow::Result<()> {
            let payload = component.serialize().map_err(anyhow::Error::from)?;
            let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
            tmp.write_all(MAGIC)?;
            tmp.write_all(&Sha256::digest(&payload))?;
            tmp.write_all(&payload)?;
            tmp.as_file().sync_data()?;
            tmp.persist(&path)?;
            Ok(())
        })();
        if let Err(e) = stored {
            tracing::warn!(entry = %path.display(), "could not store a compiled plugin: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_directory_others_can_write_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        assert!(CompileCache::open(&cache).is_some());
        assert_eq!(std::fs::metadata(&cache).unwrap().mode() & 0o777, 0o700);
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(CompileCache::open(&cache).is_none());
    }
}
