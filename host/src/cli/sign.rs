//! `enginehost sign FILE.wasm --key KEY [-o OUT]`: an ed25519 signature section
//! over the plugin file's bytes (replacing an earlier one), made with a key
//! `enginehost keygen` wrote; the file is read back and verified before it is
//! written (in place by default, through a temporary file and a rename).

use std::path::PathBuf;

use enginehost::plugin::metadata;
use enginehost::plugin::trust;
use enginehost::worker::taskcluster::cot::Signer;

use super::BadInput;

#[derive(clap::Args)]
pub struct SignArgs {
    /// The plugin file (a component with enginehost metadata).
    file: PathBuf,
    /// The private key (`enginehost keygen --file KEY`: base64 of the 32-byte seed).
    #[arg(long, value_name = "KEY")]
    key: PathBuf,
    /// Where to write the signed file [default: FILE itself].
    #[arg(short, long, value_name = "OUT")]
    output: Option<PathBuf>,
}

pub fn run(args: SignArgs) -> anyhow::Result<i32> {
    let wasm = std::fs::read(&args.file).map_err(|e| BadInput(format!("{}: {e}", args.file.display())))?;
    let meta = metadata::read(&wasm).map_err(|r| BadInput(format!("{}: {r}", args.file.display())))?;
    let signer = Signer::read(&args.key).map_err(|e| BadInput(format!("{}: {e}", args.key.display())))?;
    let message = trust::signing_message(&wasm).map_err(|e| BadInput(format!("{}: {e}", args.file.display())))?;
    let signed = trust::with_signature(&wasm, &signer.public_key(), &signer.sign(&message))
        .map_err(|e| BadInput(format!("{}: {e}", args.file.display())))?;
    match trust::verify(&signed) {
        Ok(trust::Signer::Key(key)) if key == signer.public_key() => {}
        other => anyhow::bail!("the signed file does not verify as expected: {other:?}"),
    }
    let out = args.output.unwrap_or_else(|| args.file.clone());
    // A new file beside the output (never one that exists, never through a
    // symlink), with the input's mode, then renamed over the output.
    let temporary = out.with_extension(format!("wasm.signing-{}", std::process::id()));
    let mode = std::fs::metadata(&args.file).map(|m| m.permissions());
    let written = (|| {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temporary)?;
        file.write_all(&signed)?;
        if let Ok(mode) = mode {
            file.set_permissions(mode)?;
        }
        file.sync_all()
    })();
    if let Err(e) = written.and_then(|()| std::fs::rename(&temporary, &out)) {
        let _ = std::fs::remove_file(&temporary);
        return Err(BadInput(format!("{}: {e}", out.display())).into());
    }
    println!("{}", signer.public_key());
    eprintln!(
        "signed {} ({} {}) as {}; the line above is the key to list in [host] trusted-keys",
        out.display(),
        meta.name,
        meta.version,
        trust::sha256_hex(&signed)
    );
    Ok(0)
}
