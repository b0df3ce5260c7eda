//! Chain of trust (generic-worker's `chainOfTrust` feature, docker-worker's too):
//! after a task's artifacts are uploaded, the worker uploads
//! `public/chain-of-trust.json` (each artifact's sha256, the task definition as
//! claimed, the task, run and worker) and `public/chain-of-trust.json.sig`, the
//! ed25519 signature of exactly those bytes, in generic-worker's format, so the tools
//! that verify generic-worker's (scriptworker's `verify_cot`) verify these.
//!
//! The key is generic-worker's: a file holding the base64 of the 32-byte ed25519
//! seed (`[worker] chain-of-trust-key`; `enginehost keygen` makes one). The worker
//! refuses a key file others may read, and the task's payload is refused when a
//! task of its engine could run as the worker's own user (who can read the key).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer as _, SigningKey};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::contract::Provenance;

/// The chain-of-trust document.
pub const CERTIFICATE: &str = "public/chain-of-trust.json";
/// Its signature.
pub const SIGNATURE: &str = "public/chain-of-trust.json.sig";

/// The worker's signing key.
pub struct Signer {
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.public_key())
    }
}

/// Reads a base64 32-byte seed.
fn seed(text: &str) -> Result<[u8; 32], String> {
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|e| format!("is not base64 ({e})"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("holds {} bytes; an ed25519 seed is 32", b.len()))
}

impl Signer {
    /// Reads the key at `path`: the base64 of a 32-byte seed, in a file that only
    /// its owner may read.
    ///
    /// # Errors
    /// A message naming the file and what to do.
    pub fn read(path: &Path) -> Result<Signer, String> {
        let shown = path.display();
        let meta = std::fs::metadata(path).map_err(|e| format!("{shown}: {e}"))?;
        if meta.mode() & 0o077 != 0 {
            return Err(format!(
                "{shown}: others may read it (mode {:o}); chmod 600 it",
                meta.mode() & 0o777
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
        let seed = seed(&text).map_err(|e| {
            format!("{shown}: {e}; it should hold the base64 of an ed25519 seed, as `enginehost keygen` writes it")
        })?;
        Ok(Signer {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// A new key, written to `path` (mode 0600, never over an existing file).
    ///
    /// # Errors
    /// When the file exists or cannot be written.
    pub fn generate(path: &Path) -> std::io::Result<Signer> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        file.write_all(STANDARD.encode(seed).as_bytes())?;
        file.sync_all()?;
        Ok(Signer {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// The public key, base64 (what a worker pool's chain-of-trust verifiers list).
    pub fn public_key(&self) -> String {
        STANDARD.encode(self.key.verifying_key().as_bytes())
    }

    /// The signature of `bytes`.
    pub fn sign(&self, bytes: &[u8]) -> [u8; 64] {
        self.key.sign(bytes).to_bytes()
    }
}

/// One artifact's digest.
#[derive(Serialize)]
struct ArtifactHash {
    sha256: String,
}

/// generic-worker's `CoTEnvironment`; enginehost knows no cloud instance, so all
/// are empty.
#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Environment {
    private_ip_address: String,
    instance_id: String,
    instance_type: String,
    region: String,
}

/// generic-worker's `ChainOfTrustData`, plus what enginehost ran the task with.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Certificate<'a> {
    chain_of_trust_version: u32,
    artifacts: BTreeMap<String, ArtifactHash>,
    task: &'a Value,
    task_id: &'a str,
    run_id: u32,
    worker_group: &'a str,
    worker_id: &'a str,
    environment: Environment,
    /// The engine and the sha256 of its plugin (not in generic-worker's).
    enginehost: EngineRecord<'a>,
}

#[derive(Serialize)]
struct EngineRecord<'a> {
    version: &'static str,
    engine: &'a str,
    plugin: Option<Provenance>,
}

/// What the certificate states about one run.
pub struct Run<'a> {
    pub task: &'a Value,
    pub task_id: &'a str,
    pub run_id: u32,
    pub worker_group: &'a str,
    pub worker_id: &'a str,
    pub engine: &'a str,
    pub plugin: Option<Provenance>,
}

/// The certificate of `run` with the sha256 of each uploaded artifact (its name
/// and file), pretty-printed as generic-worker writes it, and its signature.
///
/// # Errors
/// When an artifact's file cannot be read.
pub fn certify(
    signer: &Signer,
    run: Run<'_>,
    artifacts: &[(String, std::path::PathBuf)],
) -> std::io::Result<(Vec<u8>, [u8; 64])> {
    let mut hashes = BTreeMap::new();
    for (name, path) in artifacts {
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut file, &mut hasher)?;
        hashes.insert(
            name.clone(),
            ArtifactHash {
                sha256: format!("{:x}", hasher.finalize()),
            },
        );
    }
    let certificate = Certificate {
        chain_of_trust_version: 1,
        artifacts: hashes,
        task: run.task,
        task_id: run.task_id,
        run_id: run.run_id,
        worker_group: run.worker_group,
        worker_id: run.worker_id,
        environment: Environment::default(),
        enginehost: EngineRecord {
            version: env!("CARGO_PKG_VERSION"),
            engine: run.engine,
            plugin: run.plugin,
        },
    };
    let bytes = serde_json::to_vec_pretty(&certificate).map_err(std::io::Error::other)?;
    let signature = signer.sign(&bytes);
    Ok((bytes, signature))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_workers_test_key_reads_and_signs_verifiably() {
        // workers/generic-worker/testdata/ed25519_private_key and _public_key
        // (taskcluster v106.0.0): the same key in the same format.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "tmURKlS2TRxNQSF5SmrZzXrTIsfmG0m60HeNPY77RIw=").unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        assert!(Signer::read(&path).unwrap_err().contains("chmod 600"));
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let signer = Signer::read(&path).unwrap();
        assert_eq!(signer.public_key(), "hobjtV57/8vRKhn/vzbJcGo27uNbjuhwY3Vcrhc6OQc=");
        let signature = ed25519_dalek::Signature::from_bytes(&signer.sign(b"certificate"));
        signer
            .key
            .verifying_key()
            .verify_strict(b"certificate", &signature)
            .unwrap();
        std::fs::write(&path, "c2hvcnQ=").unwrap();
        assert!(Signer::read(&path).unwrap_err().contains("holds 5 bytes"));
    }
}
