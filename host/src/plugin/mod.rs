//! The plugin catalog: the engines built into this binary, plus every `*.wasm` in
//! a plugin directory. Each candidate's metadata is read before anything is
//! compiled; a file that is not a component, lacks metadata, targets another
//! contract version, fails to compile, or shares its name with another file of the
//! directory is rejected with a [`Rejection`] and skipped, and the others still
//! load. A directory plugin with a built-in's name takes precedence over it.
//! Before its metadata is believed, each file is checked against the directory's
//! `plugins.lock` and the operator's signature rules ([`trust`]).

pub mod registry;
pub mod trust;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use enginehost_core::metadata;
pub use metadata::{CONTRACT_VERSION, Metadata, Rejection};

use crate::runtime::{LoadedPlugin, Runtime};
pub use trust::Trust;

/// The engines this binary carries: (file name, component bytes, conformance cases).
pub const BUILTIN: &[(&str, &[u8], &str)] = &[
    (
        "mock.wasm",
        include_bytes!(concat!(env!("OUT_DIR"), "/mock.wasm")),
        include_str!("../../../plugins/mock/cases.json"),
    ),
    (
        "script.wasm",
        include_bytes!(concat!(env!("OUT_DIR"), "/script.wasm")),
        include_str!("../../../plugins/script/cases.json"),
    ),
    (
        "native.wasm",
        include_bytes!(concat!(env!("OUT_DIR"), "/native.wasm")),
        include_str!("../../../plugins/native/cases.json"),
    ),
    (
        "docker.wasm",
        include_bytes!(concat!(env!("OUT_DIR"), "/docker.wasm")),
        include_str!("../../../plugins/docker/cases.json"),
    ),
    (
        "qemu.wasm",
        include_bytes!(concat!(env!("OUT_DIR"), "/qemu.wasm")),
        include_str!("../../../plugins/qemu/cases.json"),
    ),
];

/// The plugin directory used without `--plugins`: `$ENGINEHOST_PLUGINS`, else
/// `/var/lib/enginehost/plugins`. A missing default directory means "no
/// third-party plugins"; a missing `--plugins` directory is an error.
pub fn default_dir() -> PathBuf {
    std::env::var_os("ENGINEHOST_PLUGINS")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/var/lib/enginehost/plugins".into())
}

/// Where a plugin comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Built into this binary.
    Builtin,
    /// A file of the plugin directory.
    File(PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Builtin => f.write_str("(built in)"),
            Origin::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A plugin that passed the metadata checks.
#[derive(Clone)]
pub struct Entry {
    /// What it says about itself.
    pub metadata: Metadata,
    /// Where it comes from.
    pub origin: Origin,
    /// The component.
    pub wasm: Arc<[u8]>,
    /// Set when this directory plugin replaces a built-in engine of its name.
    pub overrides_builtin: bool,
    /// Where the directory's `plugins.lock` says the file came from (`file:…`,
    /// `oci:…@sha256:…`); `None` without a lock entry.
    pub locked_source: Option<String>,
    /// A built-in engine's conformance cases.
    builtin_cases: Option<&'static str>,
}

impl Entry {
    /// A plugin file that passed the metadata checks.
    fn file(metadata: Metadata, path: &Path, wasm: Vec<u8>) -> Entry {
        Entry {
            metadata,
            origin: Origin::File(path.to_path_buf()),
            wasm: wasm.into(),
            overrides_builtin: false,
            locked_source: None,
            builtin_cases: None,
        }
    }

    /// The conformance cases shipped with a built-in engine.
    pub fn builtin_cases(&self) -> Option<&'static str> {
        self.builtin_cases
    }
}

/// The plugins available to this process.
#[derive(Clone, Default)]
pub struct Catalog {
    entries: BTreeMap<String, Entry>,
    rejected: Vec<(PathBuf, Rejection)>,
}

impl Catalog {
    /// The built-in engines plus the directory's plugins. `dir = None` means the
    /// default directory, which may be missing.
    ///
    /// # Errors
    /// When an explicitly named directory cannot be read.
    pub fn scan(dir: Option<&Path>) -> anyhow::Result<Catalog> {
        Catalog::scan_with(dir, &Trust::default())
    }

    /// [`Catalog::scan`] under `trust`: each file is checked against the
    /// directory's `plugins.lock` (when there is one) and the signature rules.
    ///
    /// # Errors
    /// When an explicitly named directory, or its lock file, cannot be read.
    pub fn scan_with(dir: Option<&Path>, trust: &Trust) -> anyhow::Result<Catalog> {
        let mut catalog = Catalog::default();
        for (file, wasm, cases) in BUILTIN {
            let meta = metadata::read(wasm).map_err(|r| anyhow::anyhow!("built-in {file} is broken: {r}"))?;
            let entry = Entry {
                metadata: meta.clone(),
                origin: Origin::Builtin,
                wasm: Arc::from(*wasm),
                overrides_builtin: false,
                locked_source: None,
                builtin_cases: Some(cases),
            };
            catalog.entries.insert(meta.name, entry);
        }
        let (dir, explicit) = match dir {
            Some(d) => (d.to_path_buf(), true),
            None => (default_dir(), false),
        };
        let listing = match std::fs::read_dir(&dir) {
            Ok(listing) => listing,
            Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => return Ok(catalog),
            Err(e) => anyhow::bail!("cannot read the plugin directory {}: {e}", dir.display()),
        };
        let lock = trust::Lock::read(&dir)?;
        let mut files: Vec<PathBuf> = listing
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm") && p.is_file())
            .collect();
        files.sort();
        let mut found: BTreeMap<String, Vec<(PathBuf, Entry)>> = BTreeMap::new();
        for path in files {
            let wasm = match std::fs::read(&path) {
                Ok(w) => w,
                Err(e) => {
                    catalog.rejected.push((path, Rejection::Unreadable(e.to_string())));
                    continue;
                }
            };
            let file = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            // The lock and the signature rules first (a changed file is named as
            // changed), then what it says about itself; a file that is not
            // WebAssembly at all is named so.
            let checked = if wasm.starts_with(b"\0asm") {
                trust.check(&file, &wasm, lock.as_ref())
            } else {
                Ok(())
            };
            match checked.and_then(|()| metadata::read(&wasm)) {
                Ok(meta) => {
                    let mut entry = Entry::file(meta.clone(), &path, wasm);
                    entry.locked_source = lock.as_ref().and_then(|l| l.get(&file)).map(|e| e.source.clone());
                    found.entry(meta.name).or_default().push((path, entry));
                }
                Err(r) => catalog.rejected.push((path, r)),
            }
        }
        for (name, mut claims) in found {
            if claims.len() > 1 {
                for (i, (path, _)) in claims.iter().enumerate() {
                    let other = claims[(i + 1) % claims.len()].0.clone();
                    catalog.rejected.push((
                        path.clone(),
                        Rejection::DuplicateName {
                            name: name.clone(),
                            other,
                        },
                    ));
                }
                continue;
            }
            let (_, mut entry) = claims.pop().expect("one claim");
            entry.overrides_builtin = catalog.entries.get(&name).is_some_and(|e| e.origin == Origin::Builtin);
            catalog.entries.insert(name, entry);
        }
        catalog.rejected.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(catalog)
    }

    /// The accepted plugins, by name.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// The rejected files and why.
    pub fn rejected(&self) -> &[(PathBuf, Rejection)] {
        &self.rejected
    }

    /// Adds the plugin file at `path` (for `enginehost test FILE.wasm`),
    /// replacing any plugin of its name.
    ///
    /// # Errors
    /// The rejection, when the file is not an acceptable plugin.
    pub fn add_file(&mut self, path: &Path) -> Result<String, Rejection> {
        let wasm = std::fs::read(path).map_err(|e| Rejection::Unreadable(e.to_string()))?;
        let meta = metadata::read(&wasm)?;
        let name = meta.name.clone();
        self.entries.insert(name.clone(), Entry::file(meta, path, wasm));
        Ok(name)
    }

    /// The plugin named `name`.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name)
    }

    /// The names of the accepted plugins.
    pub fn names(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// Compiles `name`.
    ///
    /// # Errors
    /// When no plugin has that name (the message lists the names there are), or it
    /// does not compile.
    pub fn load(&self, runtime: &Runtime, name: &str) -> anyhow::Result<LoadedPlugin> {
        let entry = self.get(name).ok_or_else(|| {
            anyhow::anyhow!(
                "no engine named '{name}'; available engines: {}",
                self.names().join(", ")
            )
        })?;
        runtime
            .load_read(name, &entry.wasm, entry.metadata.clone())
            .map_err(|e| {
                anyhow::anyhow!(
                    "engine '{name}' from {}: {}",
                    entry.origin,
                    Rejection::CompileFailed(format!("{e:#}"))
                )
            })
    }

    /// Compiles every plugin, moving the ones that fail to the rejected list.
    pub fn compile_all(&mut self, runtime: &Runtime) {
        let names = self.names();
        for name in names {
            let entry = &self.entries[&name];
            if let Err(e) = runtime.load_read(&name, &entry.wasm, entry.metadata.clone()) {
                let path = match &entry.origin {
                    Origin::File(p) => p.clone(),
                    Origin::Builtin => PathBuf::from(format!("(built-in {name})")),
                };
                self.entries.remove(&name);
                self.rejected.push((path, Rejection::CompileFailed(format!("{e:#}"))));
            }
        }
    }
}
