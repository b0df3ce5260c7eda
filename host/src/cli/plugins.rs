//! `enginehost plugins`: every engine (name, version, contract version, where it
//! comes from) and every rejected plugin file with its reason.

use enginehost::plugin::Catalog;
use enginehost::runtime::Runtime;

use super::PluginsArgs;

pub fn run(args: PluginsArgs) -> anyhow::Result<i32> {
    let mut catalog = Catalog::scan(args.plugins.as_deref())?;
    let runtime = Runtime::new()?;
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
            m.name, m.version, m.contract, entry.origin
        );
    }
    if !catalog.rejected().is_empty() {
        println!("\nrejected plugin files:");
        for (path, why) in catalog.rejected() {
            println!("  {}: {why}", path.display());
        }
    }
    Ok(0)
}
