//! Plugins through a real OCI registry (Debian's `docker-registry`, distribution
//! v2, started here per test with its own storage): `enginehost push`, `install
//! REF`, `plugins diff` with references, credentials from the config and from
//! docker's config.json, TLS by default, and every refusal by name. CI installs
//! the registry and sets `ENGINEHOST_REQUIRE_REGISTRY=1`, so these tests fail
//! there rather than skip.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::builtin_wasm;
use crate::distribution::mock_as;

const REGISTRY: &str = "/usr/bin/docker-registry";
/// The one account of an authenticating registry.
const ACCOUNT: (&str, &str) = ("ci", "s3cret");

/// A `docker-registry` serving `addr`, its storage in `dir`; killed on drop.
struct Registry {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    /// Starts a registry on `ip` (any free port); with `authenticate`, only
    /// [`ACCOUNT`] (htpasswd, bcrypt) may push or pull. `None` when the registry
    /// is not installed and CI did not ask for it.
    fn start(ip: &str, authenticate: bool) -> Option<Registry> {
        if !Path::new(REGISTRY).exists() {
            assert!(
                std::env::var_os("ENGINEHOST_REQUIRE_REGISTRY").is_none(),
                "{REGISTRY} is missing (apt-get install docker-registry)"
            );
            eprintln!("skipped: {REGISTRY} is missing (apt-get install docker-registry)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let auth = match authenticate.then_some(ACCOUNT) {
            Some((user, password)) => {
                let hash = bcrypt::hash(password, 4).unwrap();
                std::fs::write(dir.path().join("htpasswd"), format!("{user}:{hash}\n")).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: enginehost-test\n    path: {}\n",
                    dir.path().join("htpasswd").display()
                )
            }
            None => String::new(),
        };
        for _ in 0..5 {
            let port = TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap().port();
            let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
            std::fs::write(
                dir.path().join("config.yml"),
                format!(
                    "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                     http:\n  addr: {addr}\n{auth}",
                    dir.path().join("data").display()
                ),
            )
            .unwrap();
            let mut child = Command::new(REGISTRY)
                .arg("serve")
                .arg(dir.path().join("config.yml"))
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break; // the port was taken meanwhile: try another
                }
                if TcpStream::connect(addr).is_ok() {
                    return Some(Registry { child, addr, dir });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "docker-registry did not start: {}",
            std::fs::read_to_string(dir.path().join("log")).unwrap_or_default()
        );
    }

    /// `HOST:PORT/REPO` on this registry.
    fn at(&self, repo: &str) -> String {
        format!("{}/{repo}", self.addr)
    }

    /// docker's `config.json` in `dir` with [`ACCOUNT`] for this registry, as
    /// `docker login` writes it.
    fn docker_login(&self, dir: &Path) {
        let (user, password) = ACCOUNT;
        let auth = base64_encode(format!("{user}:{password}").as_bytes());
        std::fs::write(
            dir.join("config.json"),
            format!("{{\"auths\": {{\"{}\": {{\"auth\": \"{auth}\"}}}}}}", self.addr),
        )
        .unwrap();
    }

    /// `registry.toml` in `dir`: this registry's `[registries]` table with
    /// [`ACCOUNT`] (the password in `dir/password`), and `extra` lines.
    fn operator_config(&self, dir: &Path, extra: &str) {
        std::fs::write(dir.join("password"), format!("{}\n", ACCOUNT.1)).unwrap();
        std::fs::write(
            dir.join("registry.toml"),
            format!(
                "[registries.\"{}\"]\nusername = \"{}\"\npassword-file = \"{}\"\n{extra}",
                self.addr,
                ACCOUNT.0,
                dir.join("password").display()
            ),
        )
        .unwrap();
    }

    /// The files of the blob `digest` (`sha256:…`) in the registry's storage.
    fn blob(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

/// `enginehost ARGS` in `cwd` with docker's config directory `docker` (an empty
/// one unless a test writes a config.json there): nothing of the machine's own.
fn enginehost(args: &[&str], cwd: &Path, docker: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_enginehost"))
        .args(args)
        .current_dir(cwd)
        .env("ENGINEHOST_PLUGINS", "/nonexistent-default-plugin-dir")
        .env("DOCKER_CONFIG", docker)
        .output()
        .unwrap()
}

fn both(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The `REF@sha256:…` a successful push prints.
fn pushed(out: &Output) -> String {
    assert!(out.status.success(), "{}", both(out));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("pushed ")).expect("a pushed line");
    line.rsplit(" as ").next().unwrap().to_string()
}

fn cases(engine: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../plugins/{engine}/cases.json"))
        .display()
        .to_string()
}

#[test]
fn pushed_engines_install_from_the_registry_pass_their_suites_and_stay_as_reviewed() {
    let Some(registry) = Registry::start("127.0.0.1", false) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let docker = d.join("docker");
    std::fs::create_dir(&docker).unwrap();
    let run = |args: &[&str]| enginehost(args, d, &docker);
    std::fs::write(d.join("mock.wasm"), builtin_wasm("mock")).unwrap();
    std::fs::write(d.join("native.wasm"), builtin_wasm("native")).unwrap();
    let key = {
        let out = run(&["keygen", "--file", "release.key"]);
        assert!(out.status.success(), "{}", both(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let out = run(&["sign", "mock.wasm", "--key", "release.key"]);
    assert!(out.status.success(), "{}", both(&out));

    // Push both shipped engines; install them by tag into an empty directory.
    let mock_ref = registry.at("engines/mock:1.0.0");
    let mock_pinned = pushed(&run(&["push", "mock.wasm", &mock_ref]));
    assert!(mock_pinned.starts_with(&format!("{mock_ref}@sha256:")), "{mock_pinned}");
    let native_ref = registry.at("engines/native:1.0.0");
    pushed(&run(&["push", "native.wasm", &native_ref]));
    for reference in [&mock_ref, &native_ref] {
        let out = run(&["install", reference, "--plugins", "plugins"]);
        assert!(out.status.success(), "{}", both(&out));
        assert!(both(&out).contains("pulled "), "{}", both(&out));
    }
    let lock = std::fs::read_to_string(d.join("plugins/plugins.lock")).unwrap();
    assert!(
        lock.contains(&format!("source = \"oci:{mock_pinned}\"")),
        "the lock names the reference and the manifest's digest: {lock}"
    );
    assert!(lock.contains(&format!("signed-by = \"{key}\"")), "{lock}");
    assert_eq!(
        std::fs::read(d.join("plugins/mock.wasm")).unwrap(),
        std::fs::read(d.join("mock.wasm")).unwrap(),
        "the installed file is the pushed one, byte for byte"
    );

    // Their conformance suites, from the installed files.
    for engine in ["mock", "native"] {
        let out = run(&["test", engine, "--plugins", "plugins", "--cases", &cases(engine)]);
        let text = both(&out);
        assert!(out.status.success(), "{engine}: {text}");
        assert!(text.contains(" 0 failed"), "{engine}: {text}");
    }

    // By digest: the same bytes; a digest the registry does not have is an error.
    let out = run(&[
        "install",
        &format!(
            "{}@{}",
            registry.at("engines/mock"),
            mock_pinned.rsplit('@').next().unwrap()
        ),
        "--plugins",
        "by-digest",
    ]);
    assert!(out.status.success(), "{}", both(&out));
    let wrong = format!("{}@sha256:{}", registry.at("engines/mock"), "0".repeat(64));
    let out = run(&["install", &wrong, "--plugins", "wrong"]);
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    assert!(
        both(&out).contains(&wrong) || both(&out).contains("engines/mock"),
        "{}",
        both(&out)
    );
    assert!(!d.join("wrong/mock.wasm").exists());

    // An upgrade that asks for more: the diff of the two references names it,
    // install needs it accepted.
    let v2 = mock_as(d, "2.0.0", "[files]\nsandbox = true\n");
    let v2_ref = registry.at("engines/mock:2.0.0");
    pushed(&run(&["push", &v2, &v2_ref]));
    let out = run(&["plugins", "diff", &mock_ref, &v2_ref]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(both(&out).contains("+ files.sandbox = true"), "{}", both(&out));
    let out = run(&["install", &v2_ref, "--plugins", "plugins"]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(both(&out).contains("--accept-capabilities"), "{}", both(&out));
    assert_eq!(
        std::fs::read(d.join("plugins/mock.wasm")).unwrap(),
        std::fs::read(d.join("mock.wasm")).unwrap(),
        "an upgrade not accepted changes nothing"
    );

    // A byte changed in the installed file: refused, naming both digests.
    let mut tampered = std::fs::read(d.join("plugins/native.wasm")).unwrap();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x55;
    std::fs::write(d.join("plugins/native.wasm"), &tampered).unwrap();
    let out = run(&["plugins", "--plugins", "plugins"]);
    let text = both(&out);
    assert!(
        text.contains(&format!("source: oci:{mock_pinned} (plugins.lock)")),
        "the listing says where a plugin came from: {text}"
    );
    let line = text
        .lines()
        .find(|l| l.contains("/native.wasm: "))
        .unwrap_or_else(|| panic!("native refused: {text}"));
    assert!(
        line.contains(&enginehost::plugin::trust::sha256_hex(&tampered))
            && line.contains(&enginehost::plugin::trust::sha256_hex(builtin_wasm("native"))),
        "{line}"
    );

    // require-signature: the unsigned native is refused at install, the signed mock is not.
    std::fs::write(
        d.join("strict.toml"),
        format!(
            "[host]\nwork-dir = \"{}\"\ntrusted-keys = [\"{key}\"]\nrequire-signature = true\n",
            d.join("work").display()
        ),
    )
    .unwrap();
    let out = run(&["install", &native_ref, "--plugins", "strict", "--config", "strict.toml"]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(
        both(&out).contains("it is not signed, and [host] require-signature is set"),
        "{}",
        both(&out)
    );
    assert!(!d.join("strict/native.wasm").exists());
    let out = run(&["install", &mock_ref, "--plugins", "strict", "--config", "strict.toml"]);
    assert!(out.status.success(), "{}", both(&out));
}

#[test]
fn a_blob_changed_in_the_registry_is_refused_and_nothing_is_installed() {
    let Some(registry) = Registry::start("127.0.0.1", false) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |args: &[&str]| enginehost(args, d, d);
    std::fs::write(d.join("mock.wasm"), builtin_wasm("mock")).unwrap();
    let reference = registry.at("engines/mock:1.0.0");
    pushed(&run(&["push", "mock.wasm", &reference]));
    let layer = format!("sha256:{}", enginehost::plugin::trust::sha256_hex(builtin_wasm("mock")));
    let blob = registry.blob(&layer);
    let mut bytes = std::fs::read(&blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&blob, &bytes).unwrap();
    let out = run(&["install", &reference, "--plugins", "plugins"]);
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    let text = both(&out);
    assert!(text.contains("pulling the layer of") && text.contains(&layer), "{text}");
    assert!(!d.join("plugins/mock.wasm").exists() && !d.join("plugins/plugins.lock").exists());

    // Not a plugin: a reference without a tag, and a file that is not a component.
    let out = run(&["install", &registry.at("engines/mock"), "--plugins", "plugins"]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(both(&out).contains("names no tag and no digest"), "{}", both(&out));
    // A path that could also be a reference is refused as ambiguous.
    std::fs::create_dir_all(d.join("localhost:1/engines")).unwrap();
    std::fs::copy(d.join("mock.wasm"), d.join("localhost:1/engines/mock:1")).unwrap();
    let out = run(&["install", "localhost:1/engines/mock:1", "--plugins", "plugins"]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(
        both(&out).contains("give ./localhost:1/engines/mock:1"),
        "{}",
        both(&out)
    );
    std::fs::write(d.join("not.wasm"), b"\0asm not really").unwrap();
    let out = run(&["push", "not.wasm", &registry.at("engines/not:1")]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
}

#[test]
fn credentials_come_from_the_config_or_from_dockers_config_json() {
    let Some(registry) = Registry::start("127.0.0.1", true) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let empty = d.join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(d.join("mock.wasm"), builtin_wasm("mock")).unwrap();
    let reference = registry.at("engines/mock:1.0.0");

    // No credentials: refused, saying where they go.
    let out = enginehost(&["push", "mock.wasm", &reference], d, &empty);
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    assert!(both(&out).contains("[registries"), "{}", both(&out));

    // The operator's config: a password file, never the password itself.
    registry.operator_config(d, "");
    pushed(&enginehost(
        &["push", "mock.wasm", &reference, "--config", "registry.toml"],
        d,
        &empty,
    ));

    // docker's config.json (as `docker login` writes it).
    let docker = d.join("docker");
    std::fs::create_dir(&docker).unwrap();
    registry.docker_login(&docker);
    let out = enginehost(&["install", &reference, "--plugins", "plugins"], d, &docker);
    assert!(out.status.success(), "{}", both(&out));
    assert!(d.join("plugins/mock.wasm").is_file());

    // A wrong password is an authentication error, not a hang or a panic.
    std::fs::write(d.join("password"), "wrong\n").unwrap();
    let out = enginehost(
        &["install", &reference, "--plugins", "other", "--config", "registry.toml"],
        d,
        &empty,
    );
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    assert!(both(&out).contains("401"), "an authentication error: {}", both(&out));
    assert!(
        both(&out).contains("password-file"),
        "where credentials go: {}",
        both(&out)
    );
    assert!(!d.join("other/mock.wasm").exists());
    assert!(
        !both(&out).contains("wrong\n") && !both(&out).contains(":wrong"),
        "no password shown: {}",
        both(&out)
    );
}

#[test]
fn a_registry_elsewhere_gets_tls_and_credentials_in_clear_only_by_the_operators_word() {
    // This machine's address on its way out (no packet is sent).
    let Some(ip) = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|()| s))
        .and_then(|s| s.local_addr())
        .ok()
        .map(|a| a.ip())
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
    else {
        eprintln!("skipped: this machine has no address but loopback");
        return;
    };
    let Some(registry) = Registry::start(&ip.to_string(), true) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("mock.wasm"), builtin_wasm("mock")).unwrap();
    let reference = registry.at("engines/mock:1.0.0");
    // docker's config.json has the account.
    registry.docker_login(d);
    let out = enginehost(&["push", "mock.wasm", &reference], d, d);
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    assert!(both(&out).contains("https://"), "TLS by default: {}", both(&out));
    assert!(both(&out).contains("--insecure"), "{}", both(&out));

    // --insecure: plain HTTP, but the credentials stay home.
    let out = enginehost(&["push", "mock.wasm", &reference, "--insecure"], d, d);
    assert_eq!(out.status.code(), Some(3), "{}", both(&out));
    assert!(
        both(&out).contains("credentials for this registry are not sent"),
        "{}",
        both(&out)
    );

    // The operator's own table says this registry is plain HTTP: they are sent.
    registry.operator_config(d, "insecure = true\n");
    pushed(&enginehost(
        &["push", "mock.wasm", &reference, "--config", "registry.toml"],
        d,
        d,
    ));
    let out = enginehost(
        &[
            "install",
            &reference,
            "--plugins",
            "plugins",
            "--config",
            "registry.toml",
        ],
        d,
        d,
    );
    assert!(out.status.success(), "{}", both(&out));
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
