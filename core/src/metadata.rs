//! The custom sections the guest SDK's `export_engine!` embeds, read without
//! compiling the plugin: `enginehost:metadata` (`{"name", "version", "contract"}`)
//! and, since contract 0.1.1, `enginehost:capabilities` (the plugin's
//! `capabilities.toml`: what it asks the operator for; absent = nothing). The
//! sections sit in a nested core module of the component, so the whole binary is
//! scanned.

use serde::Deserialize;
use wasmparser::{Parser, Payload};

use std::path::PathBuf;

use crate::policy::Capabilities;

/// The metadata section's name.
pub const SECTION: &str = "enginehost:metadata";
/// The capabilities section's name.
pub const CAPABILITIES_SECTION: &str = "enginehost:capabilities";

/// The largest metadata section accepted, in bytes.
pub const MAX_METADATA: usize = 4 * 1024;
/// The largest capabilities section accepted, in bytes.
pub const MAX_CAPABILITIES: usize = 64 * 1024;

/// The contract version this host implements (the WIT package version). It runs
/// plugins built for any 0.1.x contract: 0.1.1 to 0.1.4 only added interfaces and functions.
pub const CONTRACT_VERSION: &str = "0.1.4";

/// Why a candidate file was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Unreadable(String),
    /// Not WebAssembly at all.
    #[error("not a WebAssembly file (no \\0asm header); expected a component built for wasm32-wasip2")]
    NotWasm,
    /// A core module, not a component.
    #[error(
        "a core WebAssembly module, not a component; build the engine for the wasm32-wasip2 target with the enginehost SDK"
    )]
    CoreModule,
    /// The binary does not parse.
    #[error("invalid WebAssembly: {0}")]
    Invalid(String),
    /// No `enginehost:metadata` section.
    #[error(
        "no enginehost:metadata section; build the engine with the enginehost SDK's export_engine! macro, or stamp \
         a component built by another toolchain with `enginehost pack IN.wasm -o OUT.wasm --name NAME --version V`"
    )]
    NoMetadata,
    /// The section is there but wrong.
    #[error("bad enginehost:metadata section: {0}")]
    BadMetadata(String),
    /// Built against a contract this host does not implement.
    #[error(
        "built for engine contract {0}, but this host implements contract {CONTRACT_VERSION}; rebuild it with a matching enginehost SDK"
    )]
    UnknownContract(String),
    /// Compiling or linking failed.
    #[error("does not compile or link: {0}")]
    CompileFailed(String),
    /// A signature that does not verify, or one the operator requires and the file lacks.
    #[error("signature: {0}")]
    Signature(String),
    /// The file's bytes are not the ones its lock entry names.
    #[error(
        "its sha256 is {actual}, but plugins.lock says {locked}: the file changed since it was locked; put back the \
         locked file, or review this one and lock it again (`enginehost plugins lock`)"
    )]
    LockMismatch {
        /// The digest in the lock.
        locked: String,
        /// The file's.
        actual: String,
    },
    /// The operator requires a lock entry and there is none.
    #[error("not locked: {0}")]
    NotLocked(String),
    /// Two files of the directory claim one engine name.
    #[error("engine name '{name}' is also claimed by {other}; remove or rename one of them")]
    DuplicateName {
        /// The contested name.
        name: String,
        /// The other file.
        other: PathBuf,
    },
}

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
        let c = match payload {
            Ok(Payload::CustomSection(c)) => c,
            Ok(_) => continue,
            Err(e) => return Err(Rejection::Invalid(e.to_string())),
        };
        let (slot, name, max) = match c.name() {
            SECTION => (&mut found, SECTION, MAX_METADATA),
            CAPABILITIES_SECTION => (&mut caps, CAPABILITIES_SECTION, MAX_CAPABILITIES),
            _ => continue,
        };
        if slot.is_some() {
            return Err(Rejection::BadMetadata(format!("two {name} sections; a plugin has one")));
        }
        if c.data().len() > max {
            return Err(Rejection::BadMetadata(format!(
                "the {name} section is {} bytes; at most {max} are accepted",
                c.data().len()
            )));
        }
        *slot = Some(c.data().to_vec());
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
            "engine name '{}' is not a lowercase name like 'mock' or 'my-engine' (a-z, 0-9, '-', starting with a \
             letter, at most 64 characters)",
            crate::text::shown(&meta.name, 80)
        )));
    }
    if !valid_version(&meta.version) {
        return Err(Rejection::BadMetadata(format!(
            "engine version '{}' is not a version like '1.2.0' (at most 64 letters, digits, '.', '-' and '+')",
            crate::text::shown(&meta.version, 80)
        )));
    }
    if !compatible(&meta.contract) {
        return Err(Rejection::UnknownContract(crate::text::shown(&meta.contract, 40)));
    }
    Ok(meta)
}

/// What [`stamp`] writes into a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp<'a> {
    /// The engine's name.
    pub name: &'a str,
    /// The engine's version.
    pub version: &'a str,
    /// The contract version it was built against.
    pub contract: &'a str,
    /// Its `capabilities.toml`, if it asks for anything.
    pub capabilities: Option<&'a str>,
}

/// Adds the `enginehost:metadata` (and `enginehost:capabilities`) custom sections
/// to a component built by any toolchain (`enginehost pack`), then reads the
/// result back exactly as the host will: the stamped component, or why the host
/// would reject it. A component that has the sections already is refused (it was
/// built with the SDK, or stamped before).
pub fn stamp(wasm: &[u8], what: &Stamp<'_>) -> Result<Vec<u8>, Rejection> {
    match read(wasm) {
        Err(Rejection::NoMetadata) => {}
        Err(other) => return Err(other),
        Ok(meta) => {
            return Err(Rejection::BadMetadata(format!(
                "it has an enginehost:metadata section already (engine '{}' {}); pack the component as built, \
                 before any stamp",
                crate::text::shown(&meta.name, 80),
                crate::text::shown(&meta.version, 80)
            )));
        }
    }
    let json = serde_json::json!({"name": what.name, "version": what.version, "contract": what.contract});
    let mut out = wasm.to_vec();
    append_custom_section(&mut out, SECTION, json.to_string().as_bytes());
    if let Some(caps) = what.capabilities {
        append_custom_section(&mut out, CAPABILITIES_SECTION, caps.as_bytes());
    }
    let read_back = read(&out)?;
    if read_back.name != what.name || read_back.version != what.version {
        return Err(Rejection::BadMetadata(
            "the stamped sections do not read back as written".into(),
        ));
    }
    Ok(out)
}

/// Appends a custom section (id 0: `size`, the name, the payload) to a module or
/// component binary.
pub fn append_custom_section(out: &mut Vec<u8>, name: &str, payload: &[u8]) {
    fn leb(out: &mut Vec<u8>, mut n: usize) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut body = Vec::with_capacity(name.len() + payload.len() + 5);
    leb(&mut body, name.len());
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    out.push(0);
    leb(out, body.len());
    out.extend_from_slice(&body);
}

/// Whether `name` can name an engine: lowercase letters, digits and '-', starting
/// with a letter, at most 64 characters.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-'))
        && name.len() <= 64
}

/// Whether `version` can be an engine's version: 1 to 64 ASCII letters, digits,
/// `.`, `-` and `+`.
pub fn valid_version(version: &str) -> bool {
    !version.is_empty()
        && version.len() <= 64
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
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

    /// The smallest component: the header alone.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00";

    #[test]
    fn a_stamped_component_reads_back_and_is_stamped_once() {
        let what = Stamp {
            name: "bwrap",
            version: "0.1.0",
            contract: CONTRACT_VERSION,
            capabilities: Some("[process]\nexec = [\"/usr/bin/bwrap\"]\n"),
        };
        let stamped = stamp(EMPTY_COMPONENT, &what).unwrap();
        let meta = read(&stamped).unwrap();
        assert_eq!((meta.name.as_str(), meta.version.as_str()), ("bwrap", "0.1.0"));
        assert_eq!(meta.contract, CONTRACT_VERSION);
        assert_ne!(meta.capabilities, Capabilities::default());
        assert!(matches!(stamp(&stamped, &what), Err(Rejection::BadMetadata(m)) if m.contains("already")));
        // What the host would reject is rejected here, with the host's reason.
        let bad = Stamp {
            name: "Bad Name",
            ..what.clone()
        };
        assert!(matches!(stamp(EMPTY_COMPONENT, &bad), Err(Rejection::BadMetadata(m)) if m.contains("lowercase")));
        let caps = Stamp {
            capabilities: Some("[process]\nexec = 3\n"),
            ..what.clone()
        };
        assert!(matches!(stamp(EMPTY_COMPONENT, &caps), Err(Rejection::BadMetadata(m)) if m.contains("capabilities")));
        let old = Stamp {
            contract: "0.2.0",
            ..what.clone()
        };
        assert!(matches!(
            stamp(EMPTY_COMPONENT, &old),
            Err(Rejection::UnknownContract(_))
        ));
        assert_eq!(stamp(b"\0asm\x01\x00\x00\x00", &what), Err(Rejection::CoreModule));
        // A long section needs a multi-byte size.
        let long = "# padding\n".repeat(2000);
        let big = Stamp {
            capabilities: Some(&long),
            ..what
        };
        assert_eq!(read(&stamp(EMPTY_COMPONENT, &big).unwrap()).unwrap().name, "bwrap");
    }

    #[test]
    fn names_and_versions() {
        assert!(valid_name("mock") && valid_name("my-engine2"));
        assert!(!valid_name("Mock") && !valid_name("2x") && !valid_name("") && !valid_name("a b"));
        assert!(compatible("0.1.0") && compatible("0.1.9"));
        assert!(!compatible("0.2.0") && !compatible("1.0.0") && !compatible("0.1"));
    }

    /// A component of only a custom section (the host reads metadata before it
    /// compiles anything).
    fn component_with(sections: &[(&str, &[u8])]) -> Vec<u8> {
        let mut wasm = EMPTY_COMPONENT.to_vec();
        for (name, data) in sections {
            append_custom_section(&mut wasm, name, data);
        }
        wasm
    }

    #[test]
    fn hostile_metadata_is_rejected_and_shown_safely() {
        let ok = br#"{"name":"x","version":"1.0.0","contract":"0.1.1"}"#;
        assert!(read(&component_with(&[(SECTION, ok)])).is_ok());
        let huge = format!(
            r#"{{"name":"{}","version":"1","contract":"0.1.1"}}"#,
            "a".repeat(10 << 20)
        );
        let e = read(&component_with(&[(SECTION, huge.as_bytes())])).unwrap_err();
        assert!(e.to_string().contains("at most 4096"), "{e}");
        let forged = br#"{"name":"x","version":"1\n\u001b[31mforged","contract":"0.1.1"}"#;
        let e = read(&component_with(&[(SECTION, forged)])).unwrap_err().to_string();
        assert!(!e.contains('\n') && !e.contains('\u{1b}'), "{e:?}");
        assert!(e.contains("\\n"), "the newline is shown escaped: {e}");
        let e = read(&component_with(&[(SECTION, ok), (SECTION, ok)])).unwrap_err();
        assert!(e.to_string().contains("two enginehost:metadata sections"), "{e}");
        let caps = vec![b'#'; MAX_CAPABILITIES + 1];
        let e = read(&component_with(&[(SECTION, ok), (CAPABILITIES_SECTION, &caps)])).unwrap_err();
        assert!(e.to_string().contains("capabilities"), "{e}");
    }

    #[test]
    fn rejects_garbage_and_core_modules() {
        assert_eq!(read(b"garbage bytes"), Err(Rejection::NotWasm));
        let core = b"\0asm\x01\0\0\0";
        assert_eq!(read(core), Err(Rejection::CoreModule));
    }
}
