//! Whether a plugin file is the one that was reviewed: signatures and the lock
//! file (docs/distribution.md).
//!
//! - **Signature**: an ed25519 signature in a custom section `enginehost:signature`,
//!   the component's last top-level section, over a message naming the sha256 of
//!   every byte before it. A custom section travels with the file through any copy,
//!   download or registry (no sidecar to lose) and is ignored by wasmtime; anything
//!   appended after signing breaks it. `enginehost sign` writes it; keys are
//!   `enginehost keygen`'s (generic-worker's format: base64 of the 32-byte seed).
//! - **Lock**: `plugins.lock` in the plugin directory lists, per file, its sha256,
//!   what it says it is (name, version, contract), what it requests (its
//!   `capabilities.toml`) and the key that signed it. A file whose bytes differ
//!   from its entry is refused, naming both digests.
//! - **Trust** (`[host] trusted-keys`, `require-signature`, `require-lock`): which
//!   signers count, and whether unsigned or unlisted files are refused. A signature
//!   that does not verify is refused whatever the settings: it is a changed file.
//!
//! Built-in engines are part of the binary and exempt.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::metadata::{Metadata, Rejection};
use crate::policy::{Capabilities, HostSettings};

/// The signature section's name.
pub const SIGNATURE_SECTION: &str = "enginehost:signature";
/// The lock file's name, in the plugin directory.
pub const LOCK_FILE: &str = "plugins.lock";
/// The largest signature section read.
const MAX_SIGNATURE: usize = 1024;

/// The hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// What the signature section holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SignatureSection {
    /// The signer's public key, base64 (32 bytes).
    pub key: String,
    /// The ed25519 signature of [`signing_message`], base64 (64 bytes).
    pub signature: String,
}

/// Reads an unsigned LEB128 `u32` at `pos`; the value and the bytes it took.
fn leb(bytes: &[u8], pos: usize) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for i in 0..5 {
        let byte = *bytes.get(pos + i)?;
        value |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// The part of `wasm` a signature covers (everything before a signature section
/// that is the last top-level section) and that section, if there is one.
///
/// # Errors
/// When the top-level sections do not parse, or a signature section is not the
/// last one (bytes were added after signing).
pub fn split_signature(wasm: &[u8]) -> Result<(&[u8], Option<SignatureSection>), String> {
    if wasm.len() < 8 || &wasm[..4] != b"\0asm" {
        return Err("not a WebAssembly file".into());
    }
    let mut pos = 8;
    let mut found: Option<(usize, SignatureSection)> = None;
    while pos < wasm.len() {
        let start = pos;
        let id = wasm[pos];
        let (size, n) = leb(wasm, pos + 1).ok_or("a section's size does not parse")?;
        let body = pos + 1 + n;
        let end = body
            .checked_add(size)
            .filter(|e| *e <= wasm.len())
            .ok_or("a section runs past the end")?;
        if found.is_some() {
            return Err(format!(
                "bytes follow its {SIGNATURE_SECTION} section: the file was changed after it was signed"
            ));
        }
        if id == 0 {
            let (name_len, m) = leb(wasm, body).ok_or("a custom section's name does not parse")?;
            let name_end = (body + m)
                .checked_add(name_len)
                .filter(|e| *e <= end)
                .ok_or("a custom section's name runs past it")?;
            if &wasm[body + m..name_end] == SIGNATURE_SECTION.as_bytes() {
                let data = &wasm[name_end..end];
                if data.len() > MAX_SIGNATURE {
                    return Err(format!(
                        "its {SIGNATURE_SECTION} section is larger than {MAX_SIGNATURE} bytes"
                    ));
                }
                let section: SignatureSection = serde_json::from_slice(data)
                    .map_err(|e| format!("its {SIGNATURE_SECTION} section is not the expected JSON: {e}"))?;
                found = Some((start, section));
            }
        }
        pos = end;
    }
    Ok(match found {
        Some((start, section)) => (&wasm[..start], Some(section)),
        None => (wasm, None),
    })
}

/// What a signer signs for `wasm`: the sha256 of its unsigned part, with the
/// purpose spelled out (so the signature means nothing in another context).
///
/// # Errors
/// As [`split_signature`].
pub fn signing_message(wasm: &[u8]) -> Result<Vec<u8>, String> {
    let (unsigned, _) = split_signature(wasm)?;
    Ok(format!("enginehost plugin signature v1\nsha256:{}\n", sha256_hex(unsigned)).into_bytes())
}

/// `wasm` without any earlier signature, with `signature` (by `public_key`,
/// base64) as its last section.
///
/// # Errors
/// As [`split_signature`].
pub fn with_signature(wasm: &[u8], public_key: &str, signature: &[u8; 64]) -> Result<Vec<u8>, String> {
    let (unsigned, _) = split_signature(wasm)?;
    let section = SignatureSection {
        key: public_key.to_string(),
        signature: STANDARD.encode(signature),
    };
    let mut out = unsigned.to_vec();
    enginehost_core::metadata::append_custom_section(
        &mut out,
        SIGNATURE_SECTION,
        serde_json::to_string(&section).expect("JSON").as_bytes(),
    );
    Ok(out)
}

/// Who signed a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// Nobody.
    Unsigned,
    /// The key (base64) whose signature verifies.
    Key(String),
}

/// Checks the signature of `wasm`, if it has one.
///
/// # Errors
/// A signature that does not verify (the file changed after signing, or the
/// section is malformed), saying which.
pub fn verify(wasm: &[u8]) -> Result<Signer, String> {
    let (unsigned, section) = split_signature(wasm)?;
    let Some(section) = section else {
        return Ok(Signer::Unsigned);
    };
    let key: [u8; 32] = STANDARD
        .decode(&section.key)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or("its signature's key is not base64 of 32 bytes")?;
    let signature: [u8; 64] = STANDARD
        .decode(&section.signature)
        .ok()
        .and_then(|s| s.try_into().ok())
        .ok_or("its signature is not base64 of 64 bytes")?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&key).map_err(|_| "its signature's key is not an ed25519 key")?;
    let message = format!("enginehost plugin signature v1\nsha256:{}\n", sha256_hex(unsigned));
    key.verify_strict(message.as_bytes(), &ed25519_dalek::Signature::from_bytes(&signature))
        .map_err(|_| {
            format!(
                "its signature by {} does not verify: the file was changed after it was signed",
                section.key
            )
        })?;
    Ok(Signer::Key(section.key))
}

/// One file of the lock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LockEntry {
    /// The file's name in the plugin directory.
    pub file: String,
    /// Where it came from: `file` (copied in), or an OCI reference.
    pub source: String,
    /// The sha256 of its bytes, hex.
    pub sha256: String,
    /// What it says it is.
    pub name: String,
    pub version: String,
    pub contract: String,
    /// What it requests (its `capabilities.toml`).
    #[serde(default)]
    pub capabilities: toml::Table,
    /// The key (base64) whose signature it carries, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
}

impl LockEntry {
    /// The entry of the file `file` with bytes `wasm` and metadata `meta`.
    pub fn of(file: &str, source: &str, wasm: &[u8], meta: &Metadata) -> Result<LockEntry, String> {
        let signed_by = match verify(wasm)? {
            Signer::Key(k) => Some(k),
            Signer::Unsigned => None,
        };
        Ok(LockEntry {
            file: file.to_string(),
            source: source.to_string(),
            sha256: sha256_hex(wasm),
            name: meta.name.clone(),
            version: meta.version.clone(),
            contract: meta.contract.clone(),
            capabilities: capabilities_table(&meta.capabilities),
            signed_by,
        })
    }
}

/// `capabilities` as the TOML table a plugin's `capabilities.toml` would be.
pub fn capabilities_table(capabilities: &Capabilities) -> toml::Table {
    toml::Table::try_from(capabilities).expect("capabilities are plain TOML tables")
}

/// `plugins.lock`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// The locked files.
    #[serde(default, rename = "plugin")]
    pub plugins: Vec<LockEntry>,
}

impl Lock {
    /// The lock of plugin directory `dir`, if it has one.
    ///
    /// # Errors
    /// A lock file that cannot be read or parsed, naming it.
    pub fn read(dir: &Path) -> anyhow::Result<Option<Lock>> {
        let path = dir.join(LOCK_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
        };
        let lock: Lock = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{} is not a plugins.lock this enginehost reads: {e}", path.display()))?;
        Ok(Some(lock))
    }

    /// Writes the lock into `dir` (a temporary file, then a rename).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let path = dir.join(LOCK_FILE);
        let text = format!(
            "# The plugins of this directory as they were reviewed: a file whose sha256 differs is refused.\n\
             # Written by `enginehost plugins lock` (docs/distribution.md); edit with care.\n\n{}",
            toml::to_string(self)?
        );
        let temporary = dir.join(format!(".{LOCK_FILE}.tmp"));
        std::fs::write(&temporary, text).map_err(|e| anyhow::anyhow!("writing {}: {e}", temporary.display()))?;
        std::fs::rename(&temporary, &path).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        Ok(path)
    }

    /// The entry of `file`.
    pub fn get(&self, file: &str) -> Option<&LockEntry> {
        self.plugins.iter().find(|e| e.file == file)
    }
}

/// What the operator trusts (`[host] trusted-keys`, `require-signature`,
/// `require-lock`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trust {
    /// Public keys (base64) whose signatures count.
    pub keys: BTreeSet<String>,
    /// Refuse a file without a signature by one of `keys`.
    pub require_signature: bool,
    /// Refuse a file the lock does not list (or any, without a lock).
    pub require_lock: bool,
}

impl Trust {
    /// The trust of `[host]`.
    ///
    /// # Errors
    /// A trusted key that is not an ed25519 public key, naming it.
    pub fn of(host: &HostSettings) -> anyhow::Result<Trust> {
        for (i, key) in host.trusted_keys.iter().enumerate() {
            let bytes: Option<[u8; 32]> = STANDARD.decode(key).ok().and_then(|k| k.try_into().ok());
            if bytes
                .and_then(|b| ed25519_dalek::VerifyingKey::from_bytes(&b).ok())
                .is_none()
            {
                anyhow::bail!(
                    "[host] trusted-keys[{i}]: {key:?} is not an ed25519 public key as `enginehost keygen` prints it"
                );
            }
        }
        Ok(Trust {
            keys: host.trusted_keys.iter().cloned().collect(),
            require_signature: host.require_signature.unwrap_or(false),
            require_lock: host.require_lock.unwrap_or(false),
        })
    }

    /// Checks the file `file` of the plugin directory (bytes `wasm`) against the
    /// lock (if the directory has one) and the signature rules.
    ///
    /// # Errors
    /// Why the file is refused.
    pub fn check(&self, file: &str, wasm: &[u8], lock: Option<&Lock>) -> Result<(), Rejection> {
        let signer = verify(wasm).map_err(Rejection::Signature)?;
        match lock.map(|l| l.get(file)) {
            Some(Some(entry)) => {
                let actual = sha256_hex(wasm);
                if entry.sha256 != actual {
                    return Err(Rejection::LockMismatch {
                        locked: entry.sha256.clone(),
                        actual,
                    });
                }
            }
            // A directory with a lock is as reviewed: a file nobody locked (one that
            // claims a locked engine's name, or a built-in's) is not loaded.
            Some(None) => {
                return Err(Rejection::NotLocked(format!(
                    "{LOCK_FILE} does not list it; review it and lock it (`enginehost install FILE` or `enginehost \
                     plugins lock`)"
                )));
            }
            None if self.require_lock => {
                return Err(Rejection::NotLocked(format!(
                    "the plugin directory has no {LOCK_FILE}, and [host] require-lock is set; write one with \
                     `enginehost plugins lock` after reviewing the files"
                )));
            }
            _ => {}
        }
        if self.require_signature {
            match &signer {
                Signer::Unsigned => {
                    return Err(Rejection::Signature(
                        "it is not signed, and [host] require-signature is set; sign it with `enginehost sign FILE \
                         --key KEY` by a key in [host] trusted-keys"
                            .into(),
                    ));
                }
                Signer::Key(key) if !self.keys.contains(key) => {
                    return Err(Rejection::Signature(format!(
                        "it is signed by {key}, which is not in [host] trusted-keys (require-signature is set)"
                    )));
                }
                Signer::Key(_) => {}
            }
        }
        Ok(())
    }
}

/// One line per capability value `new` requests that `old` does not (`+ key =
/// value`) and the reverse (`- key = value`), each list item on its own line.
pub fn capability_changes(old: &Capabilities, new: &Capabilities) -> (Vec<String>, Vec<String>) {
    fn flatten(prefix: &str, value: &toml::Value, out: &mut BTreeSet<String>) {
        match value {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    flatten(&key, v, out);
                }
            }
            toml::Value::Array(items) => {
                for item in items {
                    out.insert(format!("{prefix} ∋ {item}"));
                }
            }
            // `false` is what asking for nothing reads as.
            toml::Value::Boolean(false) => {}
            scalar => {
                out.insert(format!("{prefix} = {scalar}"));
            }
        }
    }
    let (mut a, mut b) = (BTreeSet::new(), BTreeSet::new());
    flatten("", &toml::Value::Table(capabilities_table(old)), &mut a);
    flatten("", &toml::Value::Table(capabilities_table(new)), &mut b);
    let added = b.difference(&a).cloned().collect();
    let removed = a.difference(&b).cloned().collect();
    (added, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal component: the header and one custom section.
    fn component() -> Vec<u8> {
        let mut wasm = b"\0asm\x0d\x00\x01\x00".to_vec();
        enginehost_core::metadata::append_custom_section(&mut wasm, "x", b"payload");
        wasm
    }

    #[test]
    fn a_signature_covers_every_byte_before_it() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let public = STANDARD.encode(key.verifying_key().to_bytes());
        let wasm = component();
        assert_eq!(verify(&wasm).unwrap(), Signer::Unsigned);
        let sign = |w: &[u8]| {
            let message = signing_message(w).unwrap();
            with_signature(w, &public, &ed25519_dalek::Signer::sign(&key, &message).to_bytes()).unwrap()
        };
        let signed = sign(&wasm);
        assert_eq!(verify(&signed).unwrap(), Signer::Key(public.clone()));
        // Signing again replaces the signature.
        assert_eq!(sign(&signed), signed);
        // A changed byte before the section, or bytes after it, break it.
        let mut tampered = signed.clone();
        tampered[12] ^= 1;
        assert!(verify(&tampered).unwrap_err().contains("does not verify"));
        let mut appended = signed.clone();
        enginehost_core::metadata::append_custom_section(&mut appended, "y", b"");
        assert!(verify(&appended).unwrap_err().contains("changed after it was signed"));
    }

    #[test]
    fn the_lock_and_the_rules_refuse_by_name() {
        let wasm = component();
        let lock = Lock {
            plugins: vec![LockEntry {
                file: "a.wasm".into(),
                source: "file".into(),
                sha256: "0".repeat(64),
                name: "a".into(),
                version: "1".into(),
                contract: "0.1.3".into(),
                capabilities: toml::Table::new(),
                signed_by: None,
            }],
        };
        let open = Trust::default();
        let err = open.check("a.wasm", &wasm, Some(&lock)).unwrap_err().to_string();
        assert!(
            err.contains(&"0".repeat(64)) && err.contains(&sha256_hex(&wasm)),
            "{err}"
        );
        // A lock lists every file of its directory.
        let unlisted = open.check("b.wasm", &wasm, Some(&lock)).unwrap_err().to_string();
        assert!(unlisted.contains("does not list it"), "{unlisted}");
        assert!(open.check("b.wasm", &wasm, None).is_ok());
        let strict = Trust {
            require_lock: true,
            require_signature: true,
            ..Trust::default()
        };
        assert!(
            strict
                .check("b.wasm", &wasm, Some(&lock))
                .unwrap_err()
                .to_string()
                .contains("does not list it")
        );
        assert!(
            strict
                .check("b.wasm", &wasm, None)
                .unwrap_err()
                .to_string()
                .contains("has no plugins.lock")
        );
        let only_signed = Trust {
            require_signature: true,
            ..Trust::default()
        };
        assert!(
            only_signed
                .check("b.wasm", &wasm, None)
                .unwrap_err()
                .to_string()
                .contains("not signed")
        );
    }

    #[test]
    fn a_grown_request_is_listed_line_by_line() {
        let old = Capabilities::from_plugin_toml("[files]\nsandbox = true\n[process]\nexec = [\"/bin/sh\"]\n").unwrap();
        let new = Capabilities::from_plugin_toml(
            "[files]\nsandbox = true\n[process]\nexec = [\"/bin/sh\", \"/usr/bin/curl\"]\n[network]\nconnect = [\"*:443\"]\n",
        )
        .unwrap();
        let (added, removed) = capability_changes(&old, &new);
        assert_eq!(
            added,
            vec![
                "network.connect ∋ \"*:443\"".to_string(),
                "process.exec ∋ \"/usr/bin/curl\"".to_string()
            ]
        );
        assert!(removed.is_empty());
        assert_eq!(capability_changes(&new, &old).1, added);
    }
}
