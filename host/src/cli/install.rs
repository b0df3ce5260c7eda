//! `enginehost install FILE.wasm|REF [--plugins DIR] [--accept-capabilities] [--config FILE]`:
//! puts a plugin file, or one pulled from an OCI registry (`REF` as
//! `localhost:5000/engines/mock:1.0.0` or `…@sha256:…`, see
//! [`enginehost::plugin::registry`]), into the plugin directory as the host will
//! accept it. The file is checked as a load would check it (a component with enginehost
//! metadata, a signature that verifies, and under `[host] require-signature` one
//! by a trusted key); an upgrade of an engine the directory has shows what the new
//! file requests that the old did not, and needs `--accept-capabilities` when the
//! request grew. The file lands as `<engine>.wasm` (or over the file that held the
//! engine) through a temporary file and a rename, and its `plugins.lock` entry is
//! written, the directory's other entries kept (docs/distribution.md).

use std::path::{Path, PathBuf};

use enginehost::plugin::metadata::{self, Metadata};
use enginehost::plugin::registry;
use enginehost::plugin::trust::{self, Lock, LockEntry, Trust};
use enginehost::text::shown;

use super::BadInput;

#[derive(clap::Args)]
pub struct InstallArgs {
    /// The plugin file to install, or an OCI reference to pull it from
    /// (HOST[:PORT]/REPOSITORY:TAG or HOST[:PORT]/REPOSITORY@sha256:DIGEST).
    source: String,
    /// The plugin directory [default: $ENGINEHOST_PLUGINS, else /var/lib/enginehost/plugins]
    #[arg(long, value_name = "DIR")]
    plugins: Option<PathBuf>,
    /// Install an upgrade that requests more than the version it replaces.
    #[arg(long)]
    accept_capabilities: bool,
    /// Plain HTTP for the registry (localhost registries are plain HTTP anyway).
    #[arg(long)]
    insecure: bool,
    /// Operator config (TOML) whose `[host]` trust settings and `[registries]`
    /// credentials apply.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// The file of the directory that holds engine `name`, and its metadata.
fn installed(dir: &Path, name: &str) -> Option<(PathBuf, Metadata)> {
    let listing = std::fs::read_dir(dir).ok()?;
    let mut files: Vec<PathBuf> = listing
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wasm") && p.is_file())
        .collect();
    files.sort();
    files.into_iter().find_map(|path| {
        let meta = metadata::read(&std::fs::read(&path).ok()?).ok()?;
        (meta.name == name).then_some((path, meta))
    })
}

/// Reads `source`: a file, or a plugin pulled from a registry. Returns its bytes
/// and the lock entry's `source`.
pub async fn fetch(
    source: &str,
    config: &enginehost::policy::OperatorConfig,
    insecure: bool,
) -> anyhow::Result<(Vec<u8>, String)> {
    let path = Path::new(source);
    if registry::is_reference(source) {
        if path.exists() {
            return Err(BadInput(format!(
                "{source} is both a file here and an OCI reference; give ./{source} for the file"
            ))
            .into());
        }
        let reference = registry::parse(source).map_err(|e| BadInput(format!("{e:#}")))?;
        let access = registry::Access {
            registries: &config.registries,
            insecure,
        };
        let pulled = registry::pull(&reference, access).await?;
        println!("pulled {}", pulled.source.trim_start_matches("oci:"));
        return Ok((pulled.wasm, pulled.source));
    }
    let wasm = std::fs::read(path).map_err(|e| {
        let hint = if !source.ends_with(".wasm") && (source.contains(':') || source.contains('@')) {
            " (an OCI reference names its registry: HOST[:PORT]/REPOSITORY:TAG, docker.io/… for Docker Hub)"
        } else {
            ""
        };
        BadInput(format!("{source}: {e}{hint}"))
    })?;
    Ok((wasm, format!("file:{}", std::fs::canonicalize(path)?.display())))
}

pub async fn run(args: InstallArgs) -> anyhow::Result<i32> {
    let config = super::operator_config(args.config.as_deref())?;
    let dir = args.plugins.clone().unwrap_or_else(enginehost::plugin::default_dir);
    let at = |e: String| BadInput(format!("{}: {e}", args.source));
    let (wasm, source) = fetch(&args.source, &config, args.insecure).await?;
    let meta = metadata::read(&wasm).map_err(|r| at(r.to_string()))?;
    // Checked as a load would, before anything is written; no lock entry yet.
    let mut trust = Trust::of(&config.host)?;
    trust.require_lock = false;
    trust.check("", &wasm, None).map_err(|r| at(r.to_string()))?;

    // What the new file is compared with: the reviewed version (the lock's entry
    // for the engine), else the file that holds it, else the built-in it overrides.
    let lock = Lock::read(&dir)?.unwrap_or_default();
    let existing = installed(&dir, &meta.name);
    let locked = lock.plugins.iter().find(|e| e.name == meta.name);
    let builtin = || {
        enginehost::plugin::BUILTIN
            .iter()
            .filter_map(|(_, wasm, _)| metadata::read(wasm).ok())
            .find(|m| m.name == meta.name)
    };
    let baseline: Option<(String, String, enginehost::policy::Capabilities, &str)> = match (locked, &existing) {
        (Some(entry), _) => Some((
            entry.version.clone(),
            entry.contract.clone(),
            entry.capabilities.clone().try_into().unwrap_or_default(),
            "as locked",
        )),
        (None, Some((_, old))) => Some((old.version.clone(), old.contract.clone(), old.capabilities.clone(), "")),
        (None, None) => builtin().map(|b| (b.version, b.contract, b.capabilities, "the built-in engine")),
    };
    match &baseline {
        Some((version, contract, capabilities, what)) => {
            let what = if what.is_empty() {
                String::new()
            } else {
                format!(" ({what})")
            };
            println!(
                "{} {}{what} → {}",
                shown(&meta.name, 64),
                shown(version, 32),
                shown(&meta.version, 32)
            );
            if contract != &meta.contract {
                println!("contract: {} → {}", shown(contract, 16), shown(&meta.contract, 16));
            }
            let (added, _) = trust::capability_changes(capabilities, &meta.capabilities);
            for line in &added {
                println!("+ {}", shown(line, 400));
            }
            if !added.is_empty() && !args.accept_capabilities {
                return Err(BadInput(format!(
                    "{} {} requests {} capability value(s) that {version} did not (listed above); review them and \
                     run again with --accept-capabilities",
                    meta.name,
                    meta.version,
                    added.len(),
                ))
                .into());
            }
        }
        None => println!("{} {}, new", shown(&meta.name, 64), shown(&meta.version, 32)),
    }
    let target = match &existing {
        Some((path, _)) => path.clone(),
        None => {
            let target = dir.join(format!("{}.wasm", meta.name));
            if target.exists() {
                return Err(BadInput(format!(
                    "{} holds another plugin (or none that loads); move it away first",
                    target.display()
                ))
                .into());
            }
            target
        }
    };
    std::fs::create_dir_all(&dir).map_err(|e| BadInput(format!("{}: {e}", dir.display())))?;
    let file = target
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let entry = LockEntry::of(&file, &source, &wasm, &meta).map_err(at)?;
    let temporary = dir.join(format!(".{file}.installing"));
    std::fs::write(&temporary, &wasm).map_err(|e| BadInput(format!("{}: {e}", temporary.display())))?;
    std::fs::rename(&temporary, &target).map_err(|e| BadInput(format!("{}: {e}", target.display())))?;
    let mut lock = lock;
    lock.plugins.retain(|e| e.file != file);
    lock.plugins.push(entry);
    lock.plugins.sort_by(|a, b| a.file.cmp(&b.file));
    let written = lock.write(&dir)?;
    println!(
        "installed {} (sha256 {}); {} updated",
        target.display(),
        trust::sha256_hex(&wasm),
        written.display()
    );
    Ok(0)
}
