//! `enginehost new NAME [--dir DIR]`: scaffolds an engine crate from the SDK
//! template (`guest-sdk/template/`) that builds and passes `enginehost test` as it
//! is. Refuses names that are not both a crate name and an engine name, and never
//! writes into an existing directory.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use enginehost::plugin::metadata;

use super::BadInput;

#[derive(clap::Args)]
pub struct NewArgs {
    /// The engine's name: lowercase letters, digits and '-', starting with a letter.
    name: String,
    /// The directory to create the crate in.
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// The enginehost guest SDK to depend on [default: this enginehost's own].
    #[arg(long, value_name = "PATH")]
    sdk: Option<PathBuf>,
}

/// The template's files: (path in the new crate, contents).
const TEMPLATE: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../../guest-sdk/template/Cargo.toml.tmpl"),
    ),
    (
        "src/lib.rs",
        include_str!("../../../guest-sdk/template/src/lib.rs.tmpl"),
    ),
    (
        "cases.json",
        include_str!("../../../guest-sdk/template/cases.json.tmpl"),
    ),
    ("README.md", include_str!("../../../guest-sdk/template/README.md.tmpl")),
    (
        "capabilities.toml",
        include_str!("../../../guest-sdk/template/capabilities.toml.tmpl"),
    ),
    // The same toolchain file as enginehost's own: the first `cargo build` in the
    // new crate gets the compiler, wasm32-wasip2 and the components from rustup.
    ("rust-toolchain.toml", include_str!("../../../rust-toolchain.toml")),
    (".gitignore", "target/\n"),
];

const RESERVED: &[&str] = &["test", "core", "std", "alloc", "proc-macro", "self", "super", "crate"];

/// Why `name` cannot be an engine crate's name, if it cannot.
pub fn check_name(name: &str) -> Result<(), String> {
    // An engine name the host accepts, that is also a crate name cargo accepts.
    if !metadata::valid_name(name) || name.ends_with('-') {
        return Err(format!(
            "'{name}' is not a valid engine name: use lowercase letters, digits and '-', starting with a letter \
             (for example 'my-engine')"
        ));
    }
    if RESERVED.contains(&name) {
        return Err(format!("'{name}' is reserved by Rust; pick another name"));
    }
    Ok(())
}

pub fn run(args: NewArgs) -> anyhow::Result<i32> {
    check_name(&args.name).map_err(BadInput)?;
    let target = args.dir.join(&args.name);
    if target.exists() {
        return Err(BadInput(format!("{} already exists; refusing to overwrite it", target.display())).into());
    }
    let sdk = match args.sdk {
        Some(p) => p,
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk"),
    };
    let sdk = sdk.canonicalize().map_err(|e| {
        BadInput(format!(
            "the guest SDK is not at {} ({e}); pass --sdk PATH to the enginehost guest-sdk",
            sdk.display()
        ))
    })?;
    let lib = args.name.replace('-', "_");
    for (path, text) in TEMPLATE {
        let text = text
            .replace("@@name@@", &args.name)
            .replace("@@lib@@", &lib)
            .replace("@@sdk_path@@", &sdk.display().to_string());
        let file = target.join(path);
        std::fs::create_dir_all(file.parent().expect("template paths have a parent"))
            .with_context(|| format!("creating {}", target.display()))?;
        std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
    }
    println!("created engine crate {}", target.display());
    println!(
        "build it:  (cd {} && cargo build --release --target wasm32-wasip2)",
        target.display()
    );
    println!(
        "test it:   enginehost test {}/target/wasm32-wasip2/release/{lib}.wasm --cases {}/cases.json",
        target.display(),
        target.display()
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn names() {
        for ok in ["my-engine", "docker2", "a"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["My", "2x", "a_b", "a b", "", "x-", "test", "über"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
