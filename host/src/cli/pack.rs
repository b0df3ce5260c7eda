//! `enginehost pack IN.wasm -o OUT.wasm --name N --version V [--capabilities F]`:
//! stamps the `enginehost:metadata` and `enginehost:capabilities` sections into
//! a component built by any toolchain (componentize-py, jco, a hand-written
//! `wit-bindgen` crate), checked exactly as the host reads them
//! (`enginehost_core::metadata::stamp`).

use std::path::PathBuf;

use anyhow::Context as _;

use enginehost::plugin::metadata::{self, CONTRACT_VERSION, Stamp};

use super::BadInput;

#[derive(clap::Args)]
pub struct PackArgs {
    /// The component to stamp.
    input: PathBuf,
    /// Where to write the stamped component.
    #[arg(short, long, value_name = "OUT.wasm")]
    output: PathBuf,
    /// The engine's name (lowercase letters, digits and '-', starting with a letter).
    #[arg(long)]
    name: String,
    /// The engine's version, like 0.1.0.
    #[arg(long)]
    version: String,
    /// The engine's capabilities.toml: what it asks the operator for [default: nothing].
    #[arg(long, value_name = "FILE")]
    capabilities: Option<PathBuf>,
    /// The contract version the component was built against.
    #[arg(long, default_value = CONTRACT_VERSION)]
    contract: String,
}

pub fn run(args: PackArgs) -> anyhow::Result<i32> {
    let wasm = std::fs::read(&args.input).with_context(|| format!("reading {}", args.input.display()))?;
    let capabilities = match &args.capabilities {
        Some(path) => Some(std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?),
        None => None,
    };
    let what = Stamp {
        name: &args.name,
        version: &args.version,
        contract: &args.contract,
        capabilities: capabilities.as_deref(),
    };
    let stamped = metadata::stamp(&wasm, &what)
        .map_err(|r| BadInput(format!("{}: cannot be packed: {r}", args.input.display())))?;
    std::fs::write(&args.output, &stamped).with_context(|| format!("writing {}", args.output.display()))?;
    println!(
        "packed engine '{}' {} (contract {}{}) into {}",
        args.name,
        args.version,
        args.contract,
        if args.capabilities.is_some() {
            ", with its capabilities.toml"
        } else {
            ", asking for nothing"
        },
        args.output.display()
    );
    Ok(0)
}
