//! `enginehost plugins [--config FILE]`: every engine (name, version, contract
//! version, where it comes from), what it asks for, what the operator grants it
//! and what is effective (both), and every rejected plugin file with its reason.
//! Everything a plugin wrote itself is shown escaped (see [`shown`]).

use std::path::PathBuf;

use enginehost::plugin::Catalog;
use enginehost::policy::Policy;
use enginehost::runtime::Runtime;
use enginehost::text::shown;

use super::PluginsArgs;

#[derive(clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    plugins: PluginsArgs,
    /// Operator config (TOML) whose `[plugins.NAME.*]` grants to show.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

pub async fn run(args: ListArgs) -> anyhow::Result<i32> {
    let mut catalog = Catalog::scan(args.plugins.plugins.as_deref())?;
    let config = super::operator_config(args.config.as_deref())?;
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
