//! `enginehost new NAME [--dir DIR] [--sdk PATH]`: scaffolds an engine crate from
//! the SDK template (`guest-sdk/template/`) that builds and passes `enginehost
//! test` as it is, on a machine without an enginehost checkout: the guest SDK and
//! the contract are vendored into it (`sdk/`, `wit/`) from copies embedded in this
//! binary (`--sdk PATH` depends on an SDK checkout instead, for SDK development).
//! Refuses names that are not both a crate name and an engine name, and never
//! writes into an existing directory.

use std::path::PathBuf;

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
    /// Depend on the guest SDK at PATH (an enginehost checkout's guest-sdk/)
    /// instead of vendoring this enginehost's own into the new crate (Rust only).
    #[arg(long, value_name = "PATH")]
    sdk: Option<PathBuf>,
    /// The language of the new engine: a Rust crate, or Python for componentize-py.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    lang: Lang,
}

/// What an engine can be written in.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    // A Rust crate on the guest SDK (cargo, wasm32-wasip2). (Plain comments: a
    // documented value would turn `--help` into the long form.)
    Rust,
    // Python with componentize-py (pinned in requirements.txt), stamped by `enginehost pack`.
    Python,
}

/// The Python template's files (its cases and capabilities are the Rust
/// template's: the two examples behave the same).
const PYTHON_TEMPLATE: &[(&str, &str)] = &[
    ("app.py", include_str!("../../../guest-sdk/template-python/app.py.tmpl")),
    (
        "engine.py",
        include_str!("../../../guest-sdk/template-python/engine.py"),
    ),
    (
        "enginehost_helpers.py",
        include_str!("../../../guest-sdk/template-python/enginehost_helpers.py"),
    ),
    (
        "build.sh",
        include_str!("../../../guest-sdk/template-python/build.sh.tmpl"),
    ),
    (
        "requirements.txt",
        include_str!("../../../guest-sdk/template-python/requirements.txt"),
    ),
    (
        "README.md",
        include_str!("../../../guest-sdk/template-python/README.md.tmpl"),
    ),
    (
        "wit/world.wit",
        include_str!("../../../guest-sdk/template-python/wit/world.wit"),
    ),
    (
        "wit/deps/clocks/clocks.wit",
        include_str!("../../../guest-sdk/template-python/wit/clocks.wit"),
    ),
    (
        "cases.json",
        include_str!("../../../guest-sdk/template/cases.json.tmpl"),
    ),
    (
        "capabilities.toml",
        include_str!("../../../guest-sdk/template/capabilities.toml.tmpl"),
    ),
    (".gitignore", "target/\n__pycache__/\n"),
];

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
    // The SDK's needs only (its Rust, wasm32-wasip2): the first `cargo build` in
    // the new crate gets them from rustup.
    (
        "rust-toolchain.toml",
        include_str!("../../../guest-sdk/template/rust-toolchain.toml.tmpl"),
    ),
    (".gitignore", "target/\n"),
];

mod vendored {
    include!(concat!(env!("OUT_DIR"), "/sdk_files.rs"));
}

/// The Rust release enginehost (and so its SDK) is built with.
fn toolchain_channel() -> &'static str {
    include_str!("../../../rust-toolchain.toml")
        .lines()
        .find_map(|l| l.strip_prefix("channel = "))
        .map(|v| v.trim_matches('"'))
        .expect("rust-toolchain.toml names a channel")
}

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
    if args.lang == Lang::Python {
        if args.sdk.is_some() {
            return Err(
                BadInput("--sdk is for Rust engines; a Python engine carries its contract in wit/".into()).into(),
            );
        }
        return new_python(&args, &target);
    }
    let sdk = match &args.sdk {
        Some(p) => {
            let sdk = p.canonicalize().map_err(|e| {
                BadInput(format!(
                    "--sdk {}: {e}; pass the guest-sdk directory of an enginehost checkout",
                    p.display()
                ))
            })?;
            if !sdk.join("Cargo.toml").is_file() {
                return Err(BadInput(format!("--sdk {}: no Cargo.toml there", sdk.display())).into());
            }
            sdk.display().to_string()
        }
        None => "sdk".to_string(),
    };
    let lib = args.name.replace('-', "_");
    let write = |path: &str, text: &str| write_file(&target, path, text);
    for (path, text) in TEMPLATE {
        let text = text
            .replace("@@name@@", &args.name)
            .replace("@@lib@@", &lib)
            .replace("@@sdk_path@@", &sdk)
            .replace("@@channel@@", toolchain_channel());
        write(path, &text)?;
    }
    if args.sdk.is_none() {
        for (path, text) in vendored::SDK_FILES {
            write(path, text)?;
        }
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

/// Writes `text` to `path` under `target`, making directories as needed.
fn write_file(target: &std::path::Path, path: &str, text: &str) -> anyhow::Result<()> {
    let file = target.join(path);
    std::fs::create_dir_all(file.parent().expect("template paths have a parent"))
        .with_context(|| format!("creating {}", target.display()))?;
    std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))
}

/// Writes the Python template into `target`: the engine, its helpers, the
/// contract under `wit/deps/engine/`, and an executable build script.
fn new_python(args: &NewArgs, target: &std::path::Path) -> anyhow::Result<i32> {
    let lib = args.name.replace('-', "_");
    let write = |path: &str, text: &str| write_file(target, path, text);
    for (path, text) in PYTHON_TEMPLATE {
        write(path, &text.replace("@@name@@", &args.name).replace("@@lib@@", &lib))?;
    }
    for (path, text) in vendored::SDK_FILES {
        if let Some(file) = path.strip_prefix("wit/") {
            write(&format!("wit/deps/engine/{file}"), text)?;
        }
    }
    let script = target.join("build.sh");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .with_context(|| format!("making {} executable", script.display()))?;
    println!("created Python engine {}", target.display());
    println!(
        "build it:  (cd {} && pip install -r requirements.txt && ./build.sh)",
        target.display()
    );
    println!(
        "test it:   enginehost test {}/target/{lib}.wasm --cases {}/cases.json",
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
