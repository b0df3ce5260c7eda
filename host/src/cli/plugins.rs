//! `enginehost plugins [--config FILE]`: every engine (name, version, contract
//! version, where it comes from), what it asks for, what the operator grants it
//! and what is effective (both), and every rejected plugin file with its reason.
//! `enginehost plugins lock` writes the directory's `plugins.lock`;
//! `enginehost plugins diff OLD NEW` shows what a new version newly asks for.
//! Everything a plugin wrote itself is shown escaped (see [`shown`]).

use std::path::PathBuf;

use enginehost::plugin::metadata::{self, Metadata};
use enginehost::plugin::{Catalog, Trust, trust};
use enginehost::policy::Policy;
use enginehost::runtime::Runtime;
use enginehost::text::shown;

use super::{BadInput, PluginsArgs as Directory};

/// `enginehost plugins [lock | diff]`.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct PluginsArgs {
    #[command(subcommand)]
    action: Option<Action>,
    #[command(flatten)]
    list: ListArgs,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Writes `plugins.lock` in the plugin directory: for each plugin file its
    /// sha256, name, version, contract, requested capabilities and signer. From then
    /// on a file whose bytes differ is refused. Prints what changed since the last lock.
    Lock(LockArgs),
    /// What NEW requests that OLD did not, and its contract version; each a plugin
    /// file or an OCI reference. Exit status 1 when the request grew.
    Diff(DiffArgs),
}

#[derive(clap::Args)]
struct LockArgs {
    #[command(flatten)]
    plugins: LockDir,
    /// Operator config (TOML) whose `[host]` trust settings apply.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// The plugin directory of `lock` (an explicit one is required: it is written).
#[derive(clap::Args)]
struct LockDir {
    /// The plugin directory to lock [default: $ENGINEHOST_PLUGINS, else /var/lib/enginehost/plugins]
    #[arg(long, value_name = "DIR")]
    plugins: Option<PathBuf>,
}

#[derive(clap::Args)]
struct DiffArgs {
    /// The plugin in use: a file, or HOST[:PORT]/REPOSITORY:TAG.
    old: String,
    /// The plugin that would replace it: a file, or HOST[:PORT]/REPOSITORY:TAG.
    new: String,
    /// Plain HTTP for the registries (localhost registries are plain HTTP anyway).
    #[arg(long)]
    insecure: bool,
    /// Operator config (TOML) whose `[registries]` credentials apply.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

pub async fn run(args: PluginsArgs) -> anyhow::Result<i32> {
    match args.action {
        None => list(args.list).await,
        Some(Action::Lock(a)) => lock(a),
        Some(Action::Diff(a)) => diff(a).await,
    }
}

/// Reads a plugin (a file or a reference) and its metadata, or says why it is not a plugin.
async fn read_plugin(
    source: &str,
    config: &enginehost::policy::OperatorConfig,
    insecure: bool,
) -> anyhow::Result<(Vec<u8>, Metadata)> {
    let (wasm, _) = super::install::fetch(source, config, insecure).await?;
    let meta = metadata::read(&wasm).map_err(|r| BadInput(format!("{source}: {r}")))?;
    trust::verify(&wasm).map_err(|e| BadInput(format!("{source}: {e}")))?;
    Ok((wasm, meta))
}

async fn diff(args: DiffArgs) -> anyhow::Result<i32> {
    let config = super::operator_config(args.config.as_deref())?;
    let (_, old) = read_plugin(&args.old, &config, args.insecure).await?;
    let (_, new) = read_plugin(&args.new, &config, args.insecure).await?;
    println!(
        "{} {} → {} {}",
        shown(&old.name, 64),
        shown(&old.version, 32),
        shown(&new.name, 64),
        shown(&new.version, 32)
    );
    if old.name != new.name {
        println!(
            "note: the engine's name changes: tasks naming '{}' would no longer find it",
            shown(&old.name, 64)
        );
    }
    if old.contract != new.contract {
        println!("contract: {} → {}", shown(&old.contract, 16), shown(&new.contract, 16));
    }
    let (added, removed) = trust::capability_changes(&old.capabilities, &new.capabilities);
    for line in &added {
        println!("+ {}", shown(line, 400));
    }
    for line in &removed {
        println!("- {}", shown(line, 400));
    }
    if added.is_empty() {
        println!("it requests nothing new");
        Ok(0)
    } else {
        println!("it requests {} capability value(s) the old one did not", added.len());
        Ok(1)
    }
}

fn lock(args: LockArgs) -> anyhow::Result<i32> {
    let config = super::operator_config(args.config.as_deref())?;
    let dir = args
        .plugins
        .plugins
        .clone()
        .unwrap_or_else(enginehost::plugin::default_dir);
    // The files as they are, lock or no lock; a bad signature still refuses.
    let mut trust = Trust::of(&config.host)?;
    trust.require_lock = false;
    let old = trust::Lock::read(&dir)
        .map_err(|e| BadInput(format!("{e:#}; fix it, or move it away to lock the directory afresh")))?
        .unwrap_or_default();
    let mut lock = trust::Lock::default();
    let mut refused = 0;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| BadInput(format!("cannot read the plugin directory {}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wasm") && p.is_file())
        .collect();
    files.sort();
    for path in files {
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let checked = std::fs::read(&path)
            .map_err(|e| metadata::Rejection::Unreadable(e.to_string()))
            .and_then(|wasm| trust.check(&file, &wasm, None).map(|()| wasm))
            .and_then(|wasm| metadata::read(&wasm).map(|meta| (wasm, meta)));
        let (wasm, meta) = match checked {
            Ok(x) => x,
            Err(why) => {
                println!("{file}: not locked: {}", shown(&why.to_string(), 2000));
                refused += 1;
                continue;
            }
        };
        let source = old
            .get(&file)
            .map(|e| e.source.clone())
            .unwrap_or_else(|| "file".into());
        let entry = trust::LockEntry::of(&file, &source, &wasm, &meta).map_err(BadInput)?;
        // The engine's earlier entry, under this file name or another.
        let before = old
            .get(&file)
            .or_else(|| old.plugins.iter().find(|e| e.name == meta.name));
        match before {
            None => println!("{file}: {} {}, new", shown(&meta.name, 64), shown(&meta.version, 32)),
            Some(before) if before.sha256 == entry.sha256 => println!("{file}: unchanged"),
            Some(before) => {
                println!(
                    "{file}: {} {} → {}, sha256 {} → {}",
                    shown(&meta.name, 64),
                    shown(&before.version, 32),
                    shown(&meta.version, 32),
                    before.sha256,
                    entry.sha256
                );
                let before_caps: enginehost::policy::Capabilities =
                    before.capabilities.clone().try_into().unwrap_or_default();
                for line in trust::capability_changes(&before_caps, &meta.capabilities).0 {
                    println!("  + {}", shown(&line, 400));
                }
            }
        }
        lock.plugins.push(entry);
    }
    for gone in old.plugins.iter().filter(|e| lock.get(&e.file).is_none()) {
        println!("{}: no longer locked", gone.file);
    }
    let path = lock.write(&dir)?;
    println!("wrote {} ({} plugin(s))", path.display(), lock.plugins.len());
    Ok(if refused > 0 { 1 } else { 0 })
}

#[derive(clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    plugins: Directory,
    /// Operator config (TOML) whose `[plugins.NAME.*]` grants to show.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

async fn list(args: ListArgs) -> anyhow::Result<i32> {
    let config = super::operator_config(args.config.as_deref())?;
    let mut catalog = Catalog::scan_with(args.plugins.plugins.as_deref(), &Trust::of(&config.host)?)?;
    let runtime = Runtime::with_host(args.plugins.host_settings(&config))?;
    catalog.compile_all(&runtime);
    println!("{:<20} {:<10} {:<10} SOURCE", "ENGINE", "VERSION", "CONTRACT");
    for entry in catalog.entries() {
        let m = &entry.metadata;
        let note = if entry.overrides_builtin {
            "  (overrides the built-in engine of this name)"
        } else {
            ""
        };
        println!(
            "{:<20} {:<10} {:<10} {}{note}",
            shown(&m.name, 64),
            shown(&m.version, 32),
            shown(&m.contract, 16),
            entry.origin
        );
        // Where a locked file came from (a file, or a registry reference and digest).
        if let Some(source) = &entry.locked_source {
            println!("    source: {} (plugins.lock)", shown(source, 400));
        }
        let policy = Policy::new(&m.name, &m.version, m.capabilities.clone(), config.grants(&m.name));
        for report in policy.describe() {
            println!("    {}", report.capability);
            println!("      requested: {}", shown(&report.requested, 400));
            println!("      granted:   {}", report.granted);
            println!("      effective: {}", shown(&report.effective, 400));
        }
        for ungranted in policy.ungranted() {
            println!(
                "    note: requested but not granted (its use will fail): {}",
                shown(&ungranted, 400)
            );
        }
    }
    for name in config.plugins.keys() {
        if catalog.get(name).is_none() {
            println!("\nnote: the config grants capabilities to '{name}', but no such engine is available");
        }
    }
    if !catalog.rejected().is_empty() {
        println!("\nrejected plugin files:");
        for (path, why) in catalog.rejected() {
            println!("  {}: {}", path.display(), shown(&why.to_string(), 2000));
        }
    }
    if args.config.is_some() {
        match runtime.host() {
            Ok(host) => println!("\nprocess tree kill: {}", host.tree_kill_mode()),
            Err(e) => println!("\nprocess tree kill: unusable: {e:#}"),
        }
        runtime.shutdown().await;
    }
    Ok(0)
}
