//! `enginehost push FILE.wasm REF [--insecure] [--config FILE]`: publishes a plugin
//! file as an OCI artifact (one `application/wasm` layer; see
//! [`enginehost::plugin::registry`]) under `REF`, after checking that it is a
//! plugin and that a signature it carries verifies. Prints the pinned reference
//! (`REF@sha256:…`) that `enginehost install` takes.

use std::path::PathBuf;

use enginehost::plugin::{metadata, registry, trust};
use enginehost::text::shown;

use super::BadInput;

#[derive(clap::Args)]
pub struct PushArgs {
    /// The plugin file (signed or not: a signature travels inside the file).
    file: PathBuf,
    /// Where to push: HOST[:PORT]/REPOSITORY:TAG, e.g. localhost:5000/engines/mock:1.0.0.
    reference: String,
    /// Plain HTTP for this registry (localhost registries are plain HTTP anyway).
    #[arg(long)]
    insecure: bool,
    /// Operator config (TOML) whose `[registries."HOST"]` credentials apply.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

pub async fn run(args: PushArgs) -> anyhow::Result<i32> {
    let config = super::operator_config(args.config.as_deref())?;
    let at = |e: String| BadInput(format!("{}: {e}", args.file.display()));
    let wasm = std::fs::read(&args.file).map_err(|e| at(e.to_string()))?;
    if wasm.len() as u64 > registry::MAX_PLUGIN_SIZE {
        return Err(at(format!(
            "{} bytes; `install` takes plugins of at most {} MiB",
            wasm.len(),
            registry::MAX_PLUGIN_SIZE >> 20
        ))
        .into());
    }
    let meta = metadata::read(&wasm).map_err(|r| at(r.to_string()))?;
    let signer = trust::verify(&wasm).map_err(at)?;
    let reference = registry::parse(&args.reference).map_err(|e| BadInput(format!("{e:#}")))?;
    if reference.digest().is_some() {
        return Err(BadInput(format!(
            "{}: push to a tag (HOST/REPOSITORY:TAG); the registry names the digest",
            args.reference
        ))
        .into());
    }
    let access = registry::Access {
        registries: &config.registries,
        insecure: args.insecure,
    };
    let digest = registry::push(&wasm, &meta, &reference, access).await?;
    println!(
        "pushed {} {} ({}, sha256 {}) as {}@{digest}",
        shown(&meta.name, 64),
        shown(&meta.version, 32),
        match signer {
            trust::Signer::Unsigned => "unsigned".to_string(),
            trust::Signer::Key(key) => format!("signed by {key}"),
        },
        trust::sha256_hex(&wasm),
        reference.whole()
    );
    Ok(0)
}
