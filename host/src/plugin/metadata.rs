//! The custom sections the guest SDK's `export_engine!` embeds, read without
//! compiling the plugin: `enginehost:metadata` (`{"name", "version", "contract"}`)
//! and, since contract 0.1.1, `enginehost:capabilities` (the plugin's
//! `capabilities.toml`: what it asks the operator for; absent = nothing). The
//! sections sit in a nested core module of the component, so the whole binary is
//! scanned.

use serde::Deserialize;
use wasmparser::{Parser, Payload};

use super::Rejection;
use crate::policy::Capabilities;

/// The metadata section's name.
pub const SECTION: &str = "enginehost:metadata";
/// The capabilities section's name.
pub const CAPABILITIES_SECTION: &str = "enginehost:capabilities";

/// The contract version this host implements (the WIT package version). It runs
/// plugins built for any 0.1.x contract: 0.1.1 only added interfaces.
pub const CONTRACT_VERSION: &str = "0.1.1";

/// What a plugin says about itself.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Metadata {
    /// The engine's name (what task files and `--config` tables use).
    pub name: String,
    /// The engine's own version.
    pub version: String,
    /// The contract version it was built against.
    pub contract: String,
    /// What it asks the operator for.
    #[serde(skip)]
    pub capabilities: Capabilities,
}

/// Reads and checks the metadata of a candidate plugin file.
pub fn read(wasm: &[u8]) -> Result<Metadata, Rejection> {
    if wasm.len() < 8 || &wasm[..4] != b"\0asm" {
        return Err(Rejection::NotWasm);
    }
    if Parser::is_core_wasm(wasm) {
        return Err(Rejection::CoreModule);
    }
    let (mut found, mut caps) = (None, None);
    for payload in Parser::new(0).parse_all(wasm) {
        match payload {
            Ok(Payload::CustomSection(c)) if c.name() == SECTION => found = Some(c.data().to_vec()),
            Ok(Payload::CustomSection(c)) if c.name() == CAPABILITIES_SECTION => caps = Some(c.data().to_vec()),
            Ok(_) => {}
            Err(e) => return Err(Rejection::Invalid(e.to_string())),
        }
        if found.is_some() && caps.is_some() {
            break;
        }
    }
    let bytes = found.ok_or(Rejection::NoMetadata)?;
    let mut meta: Metadata =
        serde_json::from_slice(&bytes).map_err(|e| Rejection::BadMetadata(format!("not the expected JSON: {e}")))?;
    if let Some(caps) = caps {
        let text = String::from_utf8(caps)
            .map_err(|_| Rejection::BadMetadata("the capabilities.toml section is not UTF-8".into()))?;
        meta.capabilities = Capabilities::from_plugin_toml(&text)
            .map_err(|e| Rejection::BadMetadata(format!("its capabilities.toml is not valid: {e}")))?;
    }
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
