//! `enginehost keygen --file PATH`: a new ed25519 key for the chain of trust
//! (`[worker] chain-of-trust-key`), in generic-worker's format (the base64 of the
//! 32-byte seed, mode 0600); prints the public key that verifiers list.

use std::path::PathBuf;

use enginehost::worker::taskcluster::cot::Signer;

use super::BadInput;

#[derive(clap::Args)]
pub struct KeygenArgs {
    /// Where to write the private key (never over an existing file).
    #[arg(long, value_name = "PATH")]
    file: PathBuf,
}

pub fn run(args: KeygenArgs) -> anyhow::Result<i32> {
    let signer = Signer::generate(&args.file).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::AlreadyExists => "it exists; keygen never overwrites a key".to_string(),
            _ => e.to_string(),
        };
        BadInput(format!("{}: {why}", args.file.display()))
    })?;
    println!("{}", signer.public_key());
    eprintln!(
        "wrote the private key to {} (mode 0600); the line above is its public key, for the chain of trust's verifiers",
        args.file.display()
    );
    Ok(0)
}
