//! The `enginehost:metadata` custom section the guest SDK's `export_engine!`
//! embeds: `{"name", "version", "contract"}`, read without compiling the plugin.
//! The section sits in a nested core module of the component, so the whole binary
//! is scanned.

use serde::Deserialize;
use wasmparser::{Parser, Payload};

use super::Rejection;

/// The custom section's name.
pub const SECTION: &str = "enginehost:metadata";

/// The contract versions this host implements (the WIT package version).
pub const CONTRACT_VERSION: &str = "0.1.0";

/// What a plugin says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Metadata {
    /// The engine's name (what task files and `--config` tables use).
    pub name: String,
    /// The engine's own version.
    pub version: String,
    /// The contract version it was built against.
    pub contract: String,
}

/// Reads and checks the metadata of a candidate plugin file.
pub fn read(wasm: &[u8]) -> Result<Metadata, Rejection> {
    if wasm.len() < 8 || &wasm[..4] != b"\0asm" {
        return Err(Rejection::NotWasm);
    }
    if Parser::is_core_wasm(wasm) {
        return Err(Rejection::CoreModule);
    }
    let mut found = None;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload {
            Ok(Payload::CustomSection(c)) if c.name() == SECTION => {
                found = Some(c.data().to_vec());
                break;
            }
            Ok(_) => {}
            Err(e) => return Err(Rejection::Invalid(e.to_string())),
        }
    }
    let bytes = found.ok_or(Rejection::NoMetadata)?;
    let meta: Metadata =
        serde_json::from_slice(&bytes).map_err(|e| Rejection::BadMetadata(format!("not the expected JSON: {e}")))?;
    if !valid_name(&meta.name) {
        return Err(Rejection::BadMetadata(format!(
            "engine name '{}' is not a lowercase name like 'mock' or 'my-engine' (a-z, 0-9, '-', starting with a letter)",
            meta.name
        )));
    }
    if !compatible(&meta.contract) {
        return Err(Rejection::UnknownContract(meta.contract));
    }
    Ok(meta)
}

/// Whether `name` can name an engine: lowercase letters, digits and '-', starting
/// with a letter, at most 64 characters.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-'))
        && name.len() <= 64
}

/// 0.x versions are compatible within one minor version (0.1.0 ~ 0.1.7).
fn compatible(version: &str) -> bool {
    let ours: Vec<&str> = CONTRACT_VERSION.split('.').collect();
    let theirs: Vec<&str> = version.split('.').collect();
    theirs.len() == 3 && theirs[..2] == ours[..2] && theirs[2].parse::<u32>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_versions() {
        assert!(valid_name("mock") && valid_name("my-engine2"));
        assert!(!valid_name("Mock") && !valid_name("2x") && !valid_name("") && !valid_name("a b"));
        assert!(compatible("0.1.0") && compatible("0.1.9"));
        assert!(!compatible("0.2.0") && !compatible("1.0.0") && !compatible("0.1"));
    }

    #[test]
    fn rejects_garbage_and_core_modules() {
        assert_eq!(read(b"garbage bytes"), Err(Rejection::NotWasm));
        let core = b"\0asm\x01\0\0\0";
        assert_eq!(read(core), Err(Rejection::CoreModule));
    }
}
