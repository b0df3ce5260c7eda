//! Builds the engines this binary ships (`plugins/*`) and the test fixtures
//! (`tests/fixtures/*`) as `wasm32-wasip2` components, with a nested
//! `cargo build --release` into `<target>/plugins` (its own target dir, so the two
//! builds never wait on each other's lock). The shipped `.wasm` files are copied to
//! `OUT_DIR` and embedded with `include_bytes!`; `ENGINEHOST_WASM_DIR` tells tests
//! where every built component is.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Packages built for wasm32-wasip2: (package, library name, shipped).
const GUESTS: &[(&str, &str, bool)] = &[
    ("enginehost-plugin-mock", "mock", true),
    ("enginehost-fixture-trap", "fixture_trap", false),
];

fn main() {
    let manifest =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest
        .parent()
        .expect("host/ is inside the workspace")
        .to_path_buf();
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // OUT_DIR = <target>/<profile>/build/<pkg>-<hash>/out
    let target = out
        .ancestors()
        .nth(4)
        .expect("OUT_DIR is inside the target dir")
        .to_path_buf();
    let guest_target = target.join("plugins");

    for dir in ["wit", "guest-sdk", "plugins", "tests/fixtures"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&guest_target);
    for (package, _, _) in GUESTS {
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

    let wasm_dir = guest_target.join("wasm32-wasip2").join("release");
    for (_, lib, shipped) in GUESTS {
        let built = wasm_dir.join(format!("{lib}.wasm"));
        if *shipped {
            copy(&built, &out.join(format!("{lib}.wasm")));
        }
    }
    println!("cargo:rustc-env=ENGINEHOST_WASM_DIR={}", wasm_dir.display());
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("copying {} to {}: {e}", from.display(), to.display()));
}
