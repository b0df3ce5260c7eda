//! Builds the engines this binary ships (`plugins/*`) and the test fixtures
//! (`tests/fixtures/*`) as `wasm32-wasip2` components, with nested
//! `cargo build --release` runs into `<target>/plugins` and `<target>/fixtures`
//! (target dirs of their own, so the builds never wait on each other's lock, and a
//! fixture that wraps a shipped engine as a library cannot overwrite its `.wasm`).
//! The shipped `.wasm` files are copied to `OUT_DIR` and embedded with
//! `include_bytes!` (and so is the benchmark's floor fixture); `ENGINEHOST_FIXTURE_DIR` tells tests where the fixtures are.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Shipped engines: (package, library name). Embedded in the binary.
const SHIPPED: &[(&str, &str)] = &[
    ("enginehost-plugin-mock", "mock"),
    ("enginehost-plugin-script", "script"),
    ("enginehost-plugin-native", "native"),
    ("enginehost-plugin-docker", "docker"),
    ("enginehost-plugin-qemu", "qemu"),
];

/// Test fixtures: (package, library name). Built in a second cargo invocation,
/// because a fixture that wraps a shipped engine needs it without its `export`
/// feature (features unify within one invocation).
const FIXTURES: &[(&str, &str)] = &[
    ("enginehost-fixture-trap", "fixture_trap"),
    ("enginehost-fixture-broken-env", "fixture_broken_env"),
    ("enginehost-fixture-caps", "fixture_caps"),
    ("enginehost-fixture-caps-narrow", "fixture_caps_narrow"),
    ("enginehost-fixture-hostile", "fixture_hostile"),
    ("enginehost-fixture-floor", "fixture_floor"),
];

/// Fixtures the binary itself embeds: `enginehost bench` measures its floor with it.
const EMBEDDED_FIXTURES: &[&str] = &["fixture_floor"];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest.parent().expect("host/ is inside the workspace").to_path_buf();
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // OUT_DIR = <target>/<profile>/build/<pkg>-<hash>/out
    let target = out
        .ancestors()
        .nth(4)
        .expect("OUT_DIR is inside the target dir")
        .to_path_buf();
    let (plugin_target, fixture_target) = (target.join("plugins"), target.join("fixtures"));

    for dir in ["wit", "guest-sdk", "plugins", "tests/fixtures"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!("cargo:rerun-if-changed={}", root.join("Cargo.lock").display());

    embed_sdk(&root, &out);
    ensure_wasm_target();
    build_guests(&root, &plugin_target, SHIPPED);
    build_guests(&root, &fixture_target, FIXTURES);

    let wasm_dir = plugin_target.join("wasm32-wasip2").join("release");
    for (_, lib) in SHIPPED {
        let (from, to) = (wasm_dir.join(format!("{lib}.wasm")), out.join(format!("{lib}.wasm")));
        std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("copying {} to {}: {e}", from.display(), to.display()));
    }
    let fixture_dir = fixture_target.join("wasm32-wasip2").join("release");
    for lib in EMBEDDED_FIXTURES {
        let (from, to) = (fixture_dir.join(format!("{lib}.wasm")), out.join(format!("{lib}.wasm")));
        std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("copying {} to {}: {e}", from.display(), to.display()));
    }
    println!("cargo:rustc-env=ENGINEHOST_FIXTURE_DIR={}", fixture_dir.display());
}

/// rustup installs the targets of `rust-toolchain.toml` only together with a
/// toolchain it installs; on a machine that already has the toolchain but not
/// `wasm32-wasip2`, this build script adds the target itself (through the same
/// rustup), so that the first `cargo` command still just works.
fn ensure_wasm_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let Some(sysroot) = sysroot else { return };
    if sysroot.join("lib/rustlib/wasm32-wasip2").is_dir() {
        return;
    }
    let Ok(toolchain) = std::env::var("RUSTUP_TOOLCHAIN") else {
        panic!(
            "the wasm32-wasip2 target is missing from {} and this toolchain is not managed by rustup; \
             install the target (rustup target add wasm32-wasip2) or use rustup",
            sysroot.display()
        );
    };
    println!("cargo:warning=installing the wasm32-wasip2 target for toolchain {toolchain} (rustup target add)");
    let status = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2", "--toolchain", &toolchain])
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("`rustup target add wasm32-wasip2 --toolchain {toolchain}` failed ({s}); run it by hand"),
        Err(e) => panic!("running rustup to add the wasm32-wasip2 target: {e}; run `rustup target add wasm32-wasip2`"),
    }
}

fn build_guests(root: &Path, guest_target: &Path, packages: &[(&str, &str)]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"])
        .arg(guest_target);
    for (package, _) in packages {
        cmd.args(["-p", package]);
    }
    // The nested build must be a plain guest build, whatever the outer one is.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("running cargo to build the plugins");
    if !status.success() {
        panic!(
            "building the engine plugins for wasm32-wasip2 failed (see above). \
             If the target is missing, run: rustup target add wasm32-wasip2"
        );
    }
}

/// Writes `sdk_files.rs` to `OUT_DIR`: every file `enginehost new` vendors into a
/// new engine (the guest SDK crate as `sdk/`, the contract as `wit/`), as
/// `(path in the new crate, include_str!(source))`.
fn embed_sdk(root: &Path, out: &Path) {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|e| e.expect("a directory entry").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, files);
            } else {
                files.push(path);
            }
        }
    }
    let mut pairs: Vec<(String, PathBuf)> = Vec::new();
    let sdk = root.join("guest-sdk");
    let mut files = vec![sdk.join("Cargo.toml"), sdk.join("README.md")];
    walk(&sdk.join("src"), &mut files);
    for file in files {
        let rel = file.strip_prefix(&sdk).expect("under guest-sdk").display().to_string();
        pairs.push((format!("sdk/{rel}"), file));
    }
    let mut wit = Vec::new();
    walk(&root.join("wit"), &mut wit);
    for file in wit {
        let rel = file.strip_prefix(root).expect("under the root").display().to_string();
        pairs.push((rel, file));
    }
    let mut code = String::from(
        "/// The vendored SDK and contract: (path in the new crate, contents).\npub const SDK_FILES: &[(&str, &str)] = &[\n",
    );
    for (to, from) in pairs {
        code.push_str(&format!(
            "    ({to:?}, include_str!({:?})),\n",
            from.display().to_string()
        ));
    }
    code.push_str("];\n");
    std::fs::write(out.join("sdk_files.rs"), code).expect("writing sdk_files.rs");
}
