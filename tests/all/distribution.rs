//! Plugin files as reviewed: `enginehost sign` and `[host] trusted-keys` /
//! `require-signature`, `enginehost plugins lock` and `plugins.lock` /
//! `require-lock`, `enginehost plugins diff`; each refusal names the file and why,
//! through the real binary on real components.

use std::path::Path;
use std::process::Output;

use crate::cli::enginehost;
use crate::common::builtin_wasm;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn both(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A key made by `keygen`; its public half.
fn keygen(dir: &Path, file: &str) -> String {
    let out = enginehost(&["keygen", "--file", file], dir);
    assert!(out.status.success(), "{}", both(&out));
    stdout(&out).trim().to_string()
}

/// The rejection line of `file` in `enginehost plugins`' listing, if any.
fn rejection(listing: &str, file: &str) -> Option<String> {
    listing
        .lines()
        .skip_while(|l| !l.starts_with("rejected plugin files:"))
        .find(|l| l.contains(&format!("/{file}: ")))
        .map(String::from)
}

#[test]
fn signed_and_locked_plugins_load_and_anything_else_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let plugins = d.join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let trusted = keygen(d, "trusted.key");
    let _other = keygen(d, "other.key");
    std::fs::write(plugins.join("mock.wasm"), builtin_wasm("mock")).unwrap();
    std::fs::write(plugins.join("script.wasm"), builtin_wasm("script")).unwrap();
    std::fs::write(plugins.join("native.wasm"), builtin_wasm("native")).unwrap();
    let p = plugins.display().to_string();

    // mock by the trusted key, script by another, native unsigned.
    for (file, key) in [("mock.wasm", "trusted.key"), ("script.wasm", "other.key")] {
        let path = plugins.join(file).display().to_string();
        let out = enginehost(&["sign", &path, "--key", key], d);
        assert!(out.status.success(), "{}", both(&out));
    }
    let config = d.join("strict.toml");
    std::fs::write(
        &config,
        format!(
            "[host]\nwork-dir = \"{}\"\ntrusted-keys = [\"{trusted}\"]\nrequire-signature = true\n",
            d.join("work").display()
        ),
    )
    .unwrap();
    let c = config.display().to_string();
    let listing = stdout(&enginehost(&["plugins", "--plugins", &p, "--config", &c], d));
    assert!(
        listing.contains(&format!("{}/mock.wasm", p)),
        "the signed file loads: {listing}"
    );
    assert!(rejection(&listing, "mock.wasm").is_none(), "{listing}");
    let script = rejection(&listing, "script.wasm").expect("script refused");
    assert!(
        script.contains("signature: it is signed by") && script.contains("not in [host] trusted-keys"),
        "{script}"
    );
    let native = rejection(&listing, "native.wasm").expect("native refused");
    assert!(
        native.contains("it is not signed, and [host] require-signature is set"),
        "{native}"
    );

    // The signed engine passes its conformance suite from the directory.
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/mock/cases.json");
    let cases = cases.display().to_string();
    let out = enginehost(&["test", "mock", "--plugins", &p, "--config", &c, "--cases", &cases], d);
    assert!(out.status.success(), "{}", both(&out));
    assert!(stdout(&out).contains("0 failed"), "{}", both(&out));

    // A byte changed after signing: refused whatever the settings.
    let mut tampered = std::fs::read(plugins.join("mock.wasm")).unwrap();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x55;
    std::fs::write(plugins.join("mock.wasm"), &tampered).unwrap();
    let listing = stdout(&enginehost(&["plugins", "--plugins", &p], d));
    let mock = rejection(&listing, "mock.wasm").expect("tampered mock refused");
    assert!(
        mock.contains("does not verify: the file was changed after it was signed"),
        "{mock}"
    );

    // The lock: written for what is there; a changed file names both digests.
    std::fs::write(plugins.join("mock.wasm"), builtin_wasm("mock")).unwrap();
    let out = enginehost(&["plugins", "lock", "--plugins", &p], d);
    assert!(out.status.success(), "{}", both(&out));
    assert!(stdout(&out).contains("mock.wasm: mock"), "{}", both(&out));
    let lock = std::fs::read_to_string(plugins.join("plugins.lock")).unwrap();
    let digest = enginehost::plugin::trust::sha256_hex(builtin_wasm("mock"));
    assert!(lock.contains(&digest) && lock.contains("name = \"mock\""), "{lock}");
    assert!(lock.contains("[plugin.capabilities"), "the request is recorded: {lock}");
    std::fs::write(plugins.join("mock.wasm"), builtin_wasm("script")).unwrap();
    let listing = stdout(&enginehost(&["plugins", "--plugins", &p], d));
    let mock = rejection(&listing, "mock.wasm").expect("a changed file refused");
    let changed = enginehost::plugin::trust::sha256_hex(builtin_wasm("script"));
    assert!(
        mock.contains(&digest) && mock.contains(&changed),
        "both digests: {mock}"
    );

    // require-lock: a file the lock does not list is refused.
    std::fs::write(plugins.join("mock.wasm"), builtin_wasm("mock")).unwrap();
    std::fs::write(plugins.join("extra.wasm"), builtin_wasm("qemu")).unwrap();
    let locked = d.join("locked.toml");
    std::fs::write(
        &locked,
        format!(
            "[host]\nwork-dir = \"{}\"\nrequire-lock = true\n",
            d.join("work").display()
        ),
    )
    .unwrap();
    let listing = stdout(&enginehost(
        &["plugins", "--plugins", &p, "--config", &locked.display().to_string()],
        d,
    ));
    let extra = rejection(&listing, "extra.wasm").expect("an unlisted file refused");
    assert!(extra.contains("plugins.lock does not list it"), "{extra}");
    assert!(rejection(&listing, "mock.wasm").is_none(), "{listing}");
}

#[test]
fn diff_names_what_an_upgrade_newly_requests() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("old.wasm"), builtin_wasm("script")).unwrap();
    std::fs::write(d.join("new.wasm"), builtin_wasm("native")).unwrap();
    let out = enginehost(&["plugins", "diff", "old.wasm", "new.wasm"], d);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let text = stdout(&out);
    assert!(text.contains("+ users.create = true"), "{text}");
    assert!(text.contains("+ process.run-as ∋ \"task-user\""), "{text}");
    assert!(text.contains("capability value(s) the old one did not"), "{text}");
    let out = enginehost(&["plugins", "diff", "new.wasm", "new.wasm"], d);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert!(stdout(&out).contains("it requests nothing new"));
}

#[test]
fn a_trusted_key_must_look_like_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), "[host]\ntrusted-keys = [\"not-a-key\"]\n").unwrap();
    let out = enginehost(&["plugins", "--config", "bad.toml"], dir.path());
    assert!(!out.status.success());
    assert!(both(&out).contains("host.trusted-keys[0]"), "{}", both(&out));
}

/// `mock`'s component under another version and capabilities: its own sections
/// renamed away, then stamped by `enginehost pack`.
pub(crate) fn mock_as(dir: &Path, version: &str, capabilities: &str) -> String {
    let mut wasm = builtin_wasm("mock").to_vec();
    for (from, to) in [
        (&b"enginehost:metadata"[..], &b"enginehost:metadatX"[..]),
        (&b"enginehost:capabilities"[..], &b"enginehost:capabilitieX"[..]),
    ] {
        let at = wasm.windows(from.len()).position(|w| w == from).expect("the section");
        wasm[at..at + from.len()].copy_from_slice(to);
    }
    let bare = dir.join("bare.wasm");
    std::fs::write(&bare, &wasm).unwrap();
    std::fs::write(dir.join("caps.toml"), capabilities).unwrap();
    let out = format!("mock-{version}.wasm");
    let packed = enginehost(
        &[
            "pack",
            "bare.wasm",
            "-o",
            &out,
            "--name",
            "mock",
            "--version",
            version,
            "--capabilities",
            "caps.toml",
        ],
        dir,
    );
    assert!(packed.status.success(), "{}", both(&packed));
    out
}

#[test]
fn install_shows_an_upgrades_new_requests_and_needs_them_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let old = mock_as(d, "1.0.0", "");
    let new = mock_as(d, "2.0.0", "[files]\nsandbox = true\n");
    let out = enginehost(&["install", &old, "--plugins", "plugins"], d);
    assert!(out.status.success(), "{}", both(&out));
    assert!(stdout(&out).contains("(the built-in engine) → 1.0.0"), "{}", both(&out));
    assert!(d.join("plugins/mock.wasm").is_file());

    let out = enginehost(&["install", &new, "--plugins", "plugins"], d);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    let text = both(&out);
    assert!(
        text.contains("mock 1.0.0 (as locked) → 2.0.0") && text.contains("+ files.sandbox = true"),
        "{text}"
    );
    assert!(text.contains("--accept-capabilities"), "{text}");
    let lock = std::fs::read_to_string(d.join("plugins/plugins.lock")).unwrap();
    assert!(lock.contains("version = \"1.0.0\""), "the old one stays: {lock}");

    let out = enginehost(&["install", &new, "--plugins", "plugins", "--accept-capabilities"], d);
    assert!(out.status.success(), "{}", both(&out));
    let lock = std::fs::read_to_string(d.join("plugins/plugins.lock")).unwrap();
    let digest = enginehost::plugin::trust::sha256_hex(&std::fs::read(d.join(&new)).unwrap());
    assert!(lock.contains("version = \"2.0.0\"") && lock.contains(&digest), "{lock}");
    assert!(lock.contains("source = \"file:"), "{lock}");
    let listing = stdout(&enginehost(&["plugins", "--plugins", "plugins"], d));
    assert!(
        listing.lines().any(|l| l.starts_with("mock") && l.contains("2.0.0")),
        "{listing}"
    );
}
