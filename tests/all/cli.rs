//! The `enginehost` binary on the examples: output and exit statuses.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::fixture_path;

pub(crate) fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

pub(crate) fn enginehost(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_enginehost"))
        .args(args)
        .current_dir(cwd)
        .env("ENGINEHOST_PLUGINS", "/nonexistent-default-plugin-dir")
        .output()
        .unwrap()
}

/// `enginehost ARGS` started in `cwd`, its stdout and stderr piped.
fn spawn(args: &[&str], cwd: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_enginehost"))
        .args(args)
        .current_dir(cwd)
        .env("ENGINEHOST_PLUGINS", "/nonexistent-default-plugin-dir")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn example(name: &str) -> String {
    root().join("examples").join(name).display().to_string()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn hello_prints_hello_world_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let out = enginehost(&["run", &example("mock-hello.json")], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // The task's one line, then what it cost the engine.
    let stdout = text(&out.stdout);
    let (hello, usage) = stdout.split_once('\n').unwrap();
    assert_eq!(hello, "[taskcluster] Hello World");
    assert!(
        usage.starts_with("[taskcluster] usage: engine mock: wasm ") && usage.ends_with(" MiB\n"),
        "{stdout}"
    );
    assert_eq!(usage.lines().count(), 1, "{stdout}");
}

#[test]
fn failing_exits_1_and_malformed_exits_2_naming_each_problem() {
    let dir = tempfile::tempdir().unwrap();
    let out = enginehost(&["run", &example("mock-failing.json")], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("task failed"));
    let out = enginehost(&["run", &example("mock-malformed.json")], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("[taskcluster:error] task.payload.delay: \"soon\" is not of type \"integer\""),
        "{stdout}"
    );
    assert!(stdout.contains("task.payload.function"), "{stdout}");
    assert!(stdout.contains("'colour' was unexpected"), "{stdout}");
}

#[test]
fn artifacts_land_under_the_artifacts_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = enginehost(&["run", &example("mock-artifacts.json")], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for f in ["report.txt", "folder/a.txt", "folder/b.txt", "folder/c/c.txt"] {
        assert_eq!(
            std::fs::read_to_string(dir.path().join("artifacts").join(f)).unwrap(),
            "Hello World",
            "{f}"
        );
    }
}

#[test]
fn max_run_time_kills_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let task = dir.path().join("slow.json");
    std::fs::write(
        &task,
        r#"{"engine":"mock","payload":{"delay":120000,"function":"true","argument":""},"maxRunTime":1}"#,
    )
    .unwrap();
    let out = enginehost(&["run", task.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("Task killed because maxRunTime was exceeded"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn bad_task_files_and_unknown_engines_exit_2_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let task = dir.path().join("t.json");
    std::fs::write(&task, r#"{"engine":"nope","payload":{}}"#).unwrap();
    let out = enginehost(&["run", task.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    let available = err
        .split("no engine named 'nope'; available engines: ")
        .nth(1)
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        available.lines().next().unwrap().split(", ").any(|e| e == "mock"),
        "{err}"
    );
    std::fs::write(&task, r#"{"engine":"mock","payload":{},"colour":1}"#).unwrap();
    let out = enginehost(&["run", task.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unknown field `colour`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn operator_config_is_validated_against_the_config_schema() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("worker.toml");
    std::fs::write(&config, "[engines.mock]\nunexpected = 1\n").unwrap();
    let out = enginehost(
        &["run", &example("mock-hello.json"), "--config", config.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("engines.mock"), "{}", text(&out.stderr));
}

#[test]
fn plugins_lists_mock_with_its_contract_version_and_rejections() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("junk.wasm"), b"junk").unwrap();
    let out = enginehost(&["plugins", "--plugins", dir.path().to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    let mock = stdout.lines().find(|l| l.starts_with("mock ")).expect("mock is listed");
    assert_eq!(
        mock.split_whitespace().collect::<Vec<_>>(),
        ["mock", "0.1.0", "0.1.4", "(built", "in)"]
    );
    assert!(stdout.contains("junk.wasm: not a WebAssembly file"), "{stdout}");
}

#[test]
fn test_command_reports_each_subtest_and_fails_on_a_broken_engine() {
    let dir = tempfile::tempdir().unwrap();
    let out = enginehost(&["test", "mock"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let stdout = text(&out.stdout);
    // Every subtest, Recover's twice (two variants).
    assert_eq!(stdout.lines().filter(|l| l.starts_with("pass  ")).count(), 35);
    assert_eq!(stdout.lines().last(), Some("35 passed, 0 failed, 0 skipped"));

    let cases = root().join("plugins/mock/cases.json");
    let broken = fixture_path("fixture_broken_env");
    let out = enginehost(
        &["test", broken.to_str().unwrap(), "--cases", cases.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("FAIL  EnvVar/VariableNameConflict: "), "{stdout}");
    assert_eq!(stdout.lines().last(), Some("34 passed, 1 failed, 0 skipped"));
}

#[test]
fn the_vendored_sdk_pins_what_the_workspace_pins() {
    // The SDK's manifest is self-contained (it is vendored as it is): its pins of
    // the guest bindings must stay those of the workspace, which the shipped
    // engines and the host are tested with.
    let read = |p: &str| -> toml::Value { toml::from_str(&std::fs::read_to_string(root().join(p)).unwrap()).unwrap() };
    let (workspace, sdk) = (read("Cargo.toml"), read("guest-sdk/Cargo.toml"));
    for dep in ["wit-bindgen", "wasip3"] {
        let version = |v: &toml::Value| -> String {
            match v {
                toml::Value::String(s) => s.clone(),
                other => other["version"].as_str().unwrap().to_string(),
            }
        };
        assert_eq!(
            version(&sdk["dependencies"][dep]),
            version(&workspace["workspace"]["dependencies"][dep]),
            "{dep}"
        );
    }
    assert_eq!(
        sdk["dependencies"]["wit-bindgen"]["features"],
        workspace["workspace"]["dependencies"]["wit-bindgen"]["features"]
    );
}

#[test]
fn new_scaffolds_an_engine_that_builds_and_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let out = enginehost(
        &["new", "hello-engine", "--dir", dir.path().to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let krate = dir.path().join("hello-engine");
    for f in [
        "Cargo.toml",
        "src/lib.rs",
        "cases.json",
        "README.md",
        "capabilities.toml",
    ] {
        assert!(krate.join(f).is_file(), "{f}");
    }
    // The toolchain enginehost is tested with, and only what the SDK needs of it.
    let toolchain =
        |path: &std::path::Path| -> toml::Value { toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap() };
    let (ours, theirs) = (
        toolchain(&root().join("rust-toolchain.toml")),
        toolchain(&krate.join("rust-toolchain.toml")),
    );
    assert_eq!(theirs["toolchain"]["channel"], ours["toolchain"]["channel"]);
    assert_eq!(
        theirs["toolchain"]["targets"],
        toml::Value::Array(vec!["wasm32-wasip2".into()])
    );
    // Self-contained: the SDK and the contract are vendored, and nothing in the
    // new crate points into this checkout.
    for f in [
        "sdk/Cargo.toml",
        "sdk/src/lib.rs",
        "sdk/src/lifecycle.rs",
        "wit/engine.wit",
    ] {
        assert!(krate.join(f).is_file(), "{f}");
    }
    assert_eq!(
        std::fs::read_to_string(krate.join("wit/engine.wit")).unwrap(),
        std::fs::read_to_string(root().join("wit/engine.wit")).unwrap()
    );
    let checkout = root().canonicalize().unwrap().display().to_string();
    let mut stack = vec![krate.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let text = std::fs::read_to_string(&path).unwrap();
                assert!(!text.contains(&checkout), "{} names {checkout}", path.display());
            }
        }
    }
    // Never overwrite; refuse bad names.
    let again = enginehost(
        &["new", "hello-engine", "--dir", dir.path().to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("already exists"),
        "{}",
        text(&again.stderr)
    );
    let bad = enginehost(&["new", "Bad_Name", "--dir", dir.path().to_str().unwrap()], dir.path());
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("not a valid engine name"),
        "{}",
        text(&bad.stderr)
    );

    // Build it as the README says (a shared target dir keeps reruns fast).
    let target = root().join("target/scaffold");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"])
        .arg(&target)
        .current_dir(&krate)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .unwrap();
    assert!(status.success(), "the scaffolded engine builds");
    let wasm = target.join("wasm32-wasip2/release/hello_engine.wasm");
    template_passes_its_suite(&wasm, &krate.join("cases.json"));
}

/// A template engine (Rust or Python) passes what it supports of the suite with
/// its own cases: the same 12 subtests.
fn template_passes_its_suite(wasm: &Path, cases: &Path) {
    let out = enginehost(
        &["test", wasm.to_str().unwrap(), "--cases", cases.to_str().unwrap()],
        cases.parent().unwrap(),
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(
        stdout.lines().last(),
        Some("12 passed, 0 failed, 21 skipped"),
        "{stdout}"
    );
}

#[test]
fn ctrl_c_aborts_the_sandbox_and_exits_130() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let task = dir.path().join("slow.json");
    std::fs::write(
        &task,
        r#"{"engine":"mock","payload":{"delay":120000,"function":"true","argument":""}}"#,
    )
    .unwrap();
    let mut child = spawn(&["run", task.to_str().unwrap()], dir.path());
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("Ctrl-C aborts it") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "enginehost ended before running the task"
        );
    }
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) with a valid pid and signal has no memory effects.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0, "sending SIGINT");
    let out = child.wait_with_output().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert_eq!(out.status.code(), Some(130), "{rest}");
    assert!(rest.contains("task cancelled"), "{rest}");
    assert!(
        text(&out.stdout).contains("[taskcluster:error] Task cancelled"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn new_help_names_each_default_once() {
    let out = enginehost(&["new", "--help"], Path::new("."));
    let help = text(&out.stdout);
    let dir_line = help.lines().find(|l| l.contains("--dir")).expect("--dir is documented");
    assert_eq!(dir_line.matches("default").count(), 1, "{dir_line}");
}

#[test]
fn plugins_with_a_config_shows_requested_granted_and_effective() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(fixture_path("fixture_caps_narrow"), plugins.join("narrow.wasm")).unwrap();
    let config = format!(
        "[host]\nwork-dir = \"{}\"\n[plugins.fixture-caps-narrow.process]\nexec = [\"/bin/**\"]\n\
         run-as = [\"worker\", \"task-user\"]\nmax-per-task = 8\n[plugins.fixture-caps-narrow.network]\n\
         connect = [\"*:443\"]\n[plugins.nosuch.files]\nsandbox = true\n",
        dir.path().join("work").display()
    );
    std::fs::write(dir.path().join("worker.toml"), config).unwrap();
    let out = enginehost(
        &["plugins", "--plugins", "plugins", "--config", "worker.toml"],
        dir.path(),
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    for expected in [
        "      requested: exec [\"/bin/true\", \"/usr/bin/true\"], run-as [worker]",
        "      granted:   exec [\"/bin/**\"], run-as [worker, task-user], max-per-task 8",
        "      effective: exec [\"/bin/true\"], run-as [worker], max-per-task 8",
        "      granted:   connect [\"*:443\"]",
        "no such engine is available",
        "process tree kill: ",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in:\n{stdout}");
    }
}

#[test]
fn a_bad_operator_config_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "[plugins.mock.process]\nexec = [\"usr/bin/*\"]\n",
    )
    .unwrap();
    let out = enginehost(
        &["run", &example("mock-hello.json"), "--config", "bad.toml"],
        dir.path(),
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("plugins.mock.process.exec[0]"), "{stderr}");
    assert!(stderr.contains("\"/usr/bin/*\""), "says what would be right: {stderr}");
}

/// examples/worker.toml with its work directory under `dir` and the context
/// server's port replaced by `port`.
fn example_config(dir: &Path, port: u16) -> std::path::PathBuf {
    let text = std::fs::read_to_string(example("worker.toml")).unwrap();
    let text = text
        .replace(
            "[host]\n",
            &format!("[host]\nwork-dir = \"{}\"\n", dir.join("work").display()),
        )
        .replace("127.0.0.1:8000", &format!("127.0.0.1:{port}"));
    let path = dir.join("worker.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_script_examples_run_with_the_example_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = example_config(dir.path(), 8000);
    let config = config.to_str().unwrap();
    let out = enginehost(
        &["run", &example("script-artifacts.json"), "--config", config],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let log = text(&out.stdout);
    assert!(log.contains("the script got: {\"message\":\"keep this\"}\n"), "{log}");
    assert!(log.contains("[worker:error] a line on stderr\n"), "{log}");
    let artifact = std::fs::read_to_string(dir.path().join("artifacts/script/payload.json")).unwrap();
    assert_eq!(artifact, "{\"message\":\"keep this\"}\n");
}

#[test]
fn the_native_examples_run_with_the_example_config_and_fail_clearly_without() {
    let dir = tempfile::tempdir().unwrap();
    let out = enginehost(&["run", &example("native-hello.json")], dir.path());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("not granted") && stderr.contains("[plugins.native."),
        "{stderr}"
    );
    if !crate::caps::is_root() {
        eprintln!("skipped the rest: the example config creates task users, which needs root");
        return;
    }
    // The context archive comes from the examples folder, served on loopback.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let archive = std::fs::read(example("context.tar.gz")).unwrap();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 2048];
            let _ = stream.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                archive.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&archive);
        }
    });
    let config = example_config(dir.path(), port);
    let config = config.to_str().unwrap();
    let out = enginehost(&["run", &example("native-hello.json"), "--config", config], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let log = text(&out.stdout);
    assert!(
        log.starts_with("Hello from eh-") && log.contains("GREETING=hi\n"),
        "{log}"
    );
    assert!(
        log.lines()
            .last()
            .is_some_and(|l| l.starts_with("[taskcluster] usage: engine native: wasm ")),
        "{log}"
    );
    let user = log
        .trim_start_matches("Hello from ")
        .split(' ')
        .next()
        .unwrap()
        .to_string();

    let task = std::fs::read_to_string(example("native-context.json"))
        .unwrap()
        .replace("8000", &port.to_string());
    std::fs::write(dir.path().join("context.json"), task).unwrap();
    let out = enginehost(&["run", "context.json", "--config", config], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("hello from the unpacked context, run by eh-"),
        "{}",
        text(&out.stdout)
    );

    let out = enginehost(
        &["run", &example("native-artifacts.json"), "--config", config],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("artifacts/native/logs/status.txt")).unwrap(),
        "done\n"
    );
    assert!(dir.path().join("artifacts/native/when.txt").is_file());
    // `run` returned after its cleanup: no user, no sandbox directory is left.
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    assert!(
        !passwd.lines().any(|l| l.starts_with(&format!("{user}:"))),
        "{user} is still there"
    );
    let sandboxes = dir.path().join("work/engines/native/sandboxes");
    assert_eq!(std::fs::read_dir(&sandboxes).unwrap().count(), 0);
}

#[test]
fn a_directory_plugin_that_overrides_a_built_in_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let old_mock = root().join("tests/fixtures/contract-0.1.0/mock.wasm");
    std::fs::copy(&old_mock, plugins.join("mock.wasm")).unwrap();
    let out = enginehost(
        &["run", &example("mock-hello.json"), "--plugins", "plugins"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("plugins/mock.wasm, which overrides the built-in engine of that name"),
        "{stderr}"
    );
}

#[test]
fn plugin_metadata_cannot_forge_lines_of_the_listing() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    // A component of one custom section whose version carries a newline and a
    // terminal escape (the host reads metadata before compiling anything).
    let meta = b"{\"name\":\"evil\",\"version\":\"1\\nmock 9.9.9 0.1.1 (built in)\\u001b[2J\",\"contract\":\"0.1.1\"}";
    let name = b"enginehost:metadata";
    let mut wasm = b"\0asm\x0d\0\x01\0".to_vec();
    let body_len = 1 + name.len() + meta.len();
    wasm.push(0);
    wasm.push((body_len & 0x7f) as u8 | 0x80);
    wasm.push((body_len >> 7) as u8);
    wasm.push(name.len() as u8);
    wasm.extend_from_slice(name);
    wasm.extend_from_slice(meta);
    std::fs::write(plugins.join("evil.wasm"), wasm).unwrap();
    let out = enginehost(&["plugins", "--plugins", "plugins"], dir.path());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        !stdout.contains('\u{1b}'),
        "no terminal escape reaches the listing: {stdout:?}"
    );
    let mock_lines = stdout.lines().filter(|l| l.starts_with("mock ")).count();
    assert_eq!(mock_lines, 1, "no forged line: {stdout}");
    assert!(
        stdout.contains("evil.wasm: bad enginehost:metadata section"),
        "{stdout}"
    );
}

/// The benchmark's code runs (CI does not run the benchmark itself): every figure
/// of a group is printed as `name: value`.
#[test]
fn bench_prints_each_figure_of_a_group() {
    let dir = tempfile::tempdir().unwrap();
    for (group, names) in [
        ("load", &["load.cold_ms", "load.cached_ms", "load.speedup"][..]),
        ("concurrent", &["concurrent.sandboxes", "concurrent.rss_mb"][..]),
        (
            "lifecycle",
            &[
                "lifecycle.wasm_us",
                "lifecycle.floor_us",
                "lifecycle.floor_ratio",
                "lifecycle.native_us",
                "lifecycle.ratio",
                "lifecycle.call_us",
                "lifecycle.wasm_1_thread_us",
                "limits.overhead",
                "usage.wasm_us",
                "usage.host_us",
                "usage.calls",
                "usage.memory_mb",
                "usage.overhead",
            ][..],
        ),
        (
            "native",
            &[
                "native.spawn_ms",
                "native.task_ms",
                "native.task_user_ms",
                "native.task_ratio",
            ][..],
        ),
    ] {
        let out = enginehost(&["bench", "--quick", "--only", group], dir.path());
        let stdout = text(&out.stdout);
        let printed: Vec<&str> = stdout.lines().filter_map(|l| l.split(": ").next()).collect();
        assert_eq!(printed, names, "{stdout}{}", text(&out.stderr));
        for line in stdout.lines() {
            let value = line.split(": ").nth(1).and_then(|v| v.split_whitespace().next());
            assert!(value.is_some_and(|v| v.parse::<f64>().is_ok_and(|v| v > 0.0)), "{line}");
        }
    }
}

#[test]
fn pack_stamps_a_component_that_the_host_then_loads() {
    // A real engine component without enginehost's sections (as another
    // toolchain would build it): the mock with its two section names defaced.
    let mut wasm = crate::common::builtin_wasm("mock").to_vec();
    for name in [&b"enginehost:metadata"[..], &b"enginehost:capabilities"[..]] {
        if let Some(at) = wasm.windows(name.len()).position(|w| w == name) {
            wasm[at + name.len() - 1] = b'X';
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let (bare, plugins) = (dir.path().join("bare.wasm"), dir.path().join("plugins"));
    std::fs::create_dir(&plugins).unwrap();
    std::fs::write(&bare, &wasm).unwrap();
    std::fs::copy(&bare, plugins.join("bare.wasm")).unwrap();
    let listed = text(&enginehost(&["plugins", "--plugins", "plugins"], dir.path()).stdout);
    assert!(
        listed.contains("enginehost pack"),
        "the rejection names the fix: {listed}"
    );
    std::fs::remove_file(plugins.join("bare.wasm")).unwrap();

    let caps = dir.path().join("capabilities.toml");
    std::fs::write(&caps, "[files]\nsandbox = true\n").unwrap();
    let out = enginehost(
        &[
            "pack",
            "bare.wasm",
            "-o",
            "plugins/packed.wasm",
            "--name",
            "packed-mock",
            "--version",
            "2.0.0",
            "--capabilities",
            "capabilities.toml",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let listed = text(&enginehost(&["plugins", "--plugins", "plugins"], dir.path()).stdout);
    let line = listed
        .lines()
        .find(|l| l.starts_with("packed-mock "))
        .unwrap_or_else(|| panic!("the packed engine is listed: {listed}"));
    assert!(line.contains("2.0.0") && line.contains("plugins/packed.wasm"), "{line}");
    assert!(listed.contains("files.sandbox"), "its request is shown: {listed}");

    // Stamped once only, and a name the host would refuse is refused here.
    let again = enginehost(
        &[
            "pack",
            "plugins/packed.wasm",
            "-o",
            "twice.wasm",
            "--name",
            "x",
            "--version",
            "1",
        ],
        dir.path(),
    );
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again.stderr).contains("already"), "{}", text(&again.stderr));
    let bad = enginehost(
        &["pack", "bare.wasm", "-o", "bad.wasm", "--name", "Bad", "--version", "1"],
        dir.path(),
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("lowercase"), "{}", text(&bad.stderr));
    assert!(!dir.path().join("bad.wasm").exists());
}

#[test]
fn test_says_where_grants_go_when_the_engine_is_denied() {
    // An operator config that grants the native engine nothing.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.toml"), "").unwrap();
    let out = enginehost(&["test", "native", "--config", "empty.toml"], dir.path());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("[plugins.native."), "a denial names its key: {stdout}");
    let hint = stdout
        .lines()
        .find(|l| l.starts_with("hint: "))
        .unwrap_or_else(|| panic!("a hint: {stdout}"));
    assert!(
        hint.contains("empty.toml does not grant it") && hint.contains("\"grants\""),
        "{hint}"
    );
    assert!(
        stdout.lines().last().unwrap().ends_with("skipped"),
        "the summary stays last"
    );
}

/// Whether componentize-py (requirements.txt's pin) is on PATH; CI installs it
/// and sets ENGINEHOST_REQUIRE_COMPONENTIZE_PY=1 so that a missing one fails.
fn componentize_py() -> bool {
    if let Err(e) = Command::new("componentize-py").arg("--version").output() {
        assert!(
            std::env::var("ENGINEHOST_REQUIRE_COMPONENTIZE_PY").is_err(),
            "componentize-py is required here: {e}"
        );
        eprintln!("skipped: componentize-py is not on PATH ({e})");
        return false;
    }
    true
}

/// Scaffolds the Python engine `name` in `dir`, lets `edit` change its files, and
/// builds it as its README says, with this enginehost packing: its `.wasm`.
fn build_python_engine(dir: &Path, name: &str, edit: impl FnOnce(&Path)) -> std::path::PathBuf {
    let out = enginehost(&["new", name, "--lang", "python"], dir);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let engine = dir.join(name);
    edit(&engine);
    let built = Command::new(engine.join("build.sh"))
        .env("ENGINEHOST", env!("CARGO_BIN_EXE_enginehost"))
        .output()
        .unwrap();
    assert!(built.status.success(), "{}{}", text(&built.stdout), text(&built.stderr));
    engine.join("target").join(format!("{}.wasm", name.replace('-', "_")))
}

/// `enginehost run` of `task` (JSON) with `plugins` and `config` in `dir`.
fn run_with(dir: &Path, task: &serde_json::Value, plugins: &Path, config: &str) -> Output {
    std::fs::write(dir.join("task.json"), task.to_string()).unwrap();
    std::fs::write(dir.join("config.toml"), config).unwrap();
    enginehost(
        &[
            "run",
            "task.json",
            "--plugins",
            plugins.to_str().unwrap(),
            "--config",
            "config.toml",
        ],
        dir,
    )
}

#[test]
fn python_helpers_run_a_command_and_serve_its_files() {
    if !componentize_py() {
        return;
    }
    // tests/fixtures/python-command: a command-running engine on the helpers,
    // with shells.
    let dir = tempfile::tempdir().unwrap();
    let wasm = build_python_engine(dir.path(), "cmdpy", |engine| {
        for file in ["app.py", "engine.py", "capabilities.toml"] {
            std::fs::copy(
                root().join("tests/fixtures/python-command").join(file),
                engine.join(file),
            )
            .unwrap();
        }
    });
    // Its shells (ShellStatus, Command with a stdin stream) pass the suite's cases.
    let cases = root().join("tests/fixtures/python-command/cases.json");
    let out = enginehost(
        &["test", wasm.to_str().unwrap(), "--cases", cases.to_str().unwrap()],
        dir.path(),
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("pass  Shell(default)/AbortSleepCommand"), "{stdout}");
    assert_eq!(
        stdout.lines().last(),
        Some("4 passed, 0 failed, 29 skipped"),
        "{stdout}"
    );
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(&wasm, plugins.join("cmdpy.wasm")).unwrap();
    let config = format!(
        "[host]\nwork-dir = \"{}\"\n[plugins.cmdpy.files]\nsandbox = true\n\
         [plugins.cmdpy.process]\nexec = [\"/bin/**\", \"/usr/bin/**\"]\nrun-as = [\"worker\"]\n",
        dir.path().join("work").display()
    );
    let out = run_with(
        dir.path(),
        &serde_json::json!({
            "engine": "cmdpy",
            "payload": {"command": ["/bin/sh", "-c",
                "mkdir -p out/sub && echo hi > out/a.txt && echo there > out/sub/b.txt && echo ran $GREETING"]},
            "env": {"GREETING": "hello"},
            "artifacts": [{"type": "file", "path": "out/a.txt", "name": "a.txt"},
                          {"type": "directory", "path": "out", "name": "all"}]
        }),
        &plugins,
        &config,
    );
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("ran hello"), "{}", text(&out.stdout));
    let artifact = |p: &str| std::fs::read_to_string(dir.path().join("artifacts").join(p)).unwrap();
    assert_eq!(artifact("a.txt"), "hi\n");
    assert_eq!(artifact("all/sub/b.txt"), "there\n");
    // Killed at maxRunTime while the worker waits: a failure, not a trap.
    let out = run_with(
        dir.path(),
        &serde_json::json!({"engine": "cmdpy", "payload": {"command": ["/bin/sleep", "30"]}, "maxRunTime": 1}),
        &plugins,
        &config,
    );
    assert_eq!(out.status.code(), Some(1), "{}{}", text(&out.stdout), text(&out.stderr));
    // A program that is not there is the payload's fault.
    let out = run_with(
        dir.path(),
        &serde_json::json!({"engine": "cmdpy", "payload": {"command": ["no-such-program"]}}),
        &plugins,
        &config,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("Unable to start specified command"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn new_python_scaffolds_an_engine_that_builds_and_passes_the_suite() {
    if !componentize_py() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = enginehost(&["new", "hello-py", "--lang", "python"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let engine = dir.path().join("hello-py");
    assert_eq!(
        std::fs::read_to_string(engine.join("wit/deps/engine/engine.wit")).unwrap(),
        std::fs::read_to_string(root().join("wit/engine.wit")).unwrap(),
        "the contract is vendored"
    );
    let pinned = std::fs::read_to_string(engine.join("requirements.txt")).unwrap();
    let have = Command::new("componentize-py").arg("--version").output().unwrap();
    assert!(
        pinned.contains(&format!(
            "=={}",
            text(&have.stdout).trim().trim_start_matches("componentize-py ")
        )),
        "the componentize-py on PATH is the pinned one: {pinned} vs {}",
        text(&have.stdout)
    );
    let refused = enginehost(&["new", "other", "--lang", "python", "--sdk", "/tmp"], dir.path());
    assert_eq!(refused.status.code(), Some(2));

    // Built as its README says, with this enginehost doing the packing.
    let built = Command::new(engine.join("build.sh"))
        .env("ENGINEHOST", env!("CARGO_BIN_EXE_enginehost"))
        .output()
        .unwrap();
    assert!(built.status.success(), "{}{}", text(&built.stdout), text(&built.stderr));
    // The Python example passes what the Rust one passes.
    template_passes_its_suite(&engine.join("target/hello_py.wasm"), &engine.join("cases.json"));
    // And a task that is still running when the worker waits for its result (a
    // wait on anything but the component model's waitables trapped here).
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(engine.join("target/hello_py.wasm"), plugins.join("hello-py.wasm")).unwrap();
    let out = run_with(
        dir.path(),
        &serde_json::json!({"engine": "hello-py", "payload": {"log": "slow", "sleepMs": 500}}),
        &plugins,
        &format!("[host]\nwork-dir = \"{}\"\n", dir.path().join("work").display()),
    );
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
}

#[test]
fn keygen_writes_a_private_key_only_its_owner_reads_and_prints_its_public_half() {
    use base64::Engine as _;
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let out = enginehost(&["keygen", "--file", "cot.key"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let key = dir.path().join("cot.key");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    // generic-worker's format: the base64 of the seed; the printed line is its public key.
    let seed: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(std::fs::read_to_string(&key).unwrap().trim())
        .unwrap()
        .try_into()
        .unwrap();
    let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        printed.trim(),
        base64::engine::general_purpose::STANDARD.encode(public.as_bytes())
    );
    // Never over a key that exists.
    let again = enginehost(&["keygen", "--file", "cot.key"], dir.path());
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("cot.key: it exists; keygen never overwrites a key"));
    assert_eq!(
        std::fs::read(&key).unwrap(),
        base64::engine::general_purpose::STANDARD.encode(seed).into_bytes()
    );
}

#[test]
fn run_takes_a_generic_worker_task_as_a_worker_with_that_payload_format_would() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::write(
        dir.path().join("config.toml"),
        format!(
            "[host]\nwork-dir = \"{}\"\n[engines.native]\ncreateUser = false\n[plugins.native.files]\nsandbox = true\n\
             [plugins.native.process]\nexec = [\"/bin/**\", \"/usr/bin/**\"]\nrun-as = [\"worker\"]\n",
            work.display()
        ),
    )
    .unwrap();
    // A task definition as a generic-worker pool gets it.
    let task = serde_json::json!({
        "scopes": [],
        "payload": {
            "command": [["/bin/sh", "-c", "echo first > out.txt"], ["/bin/sh", "-c", "echo second; exit 36"]],
            "maxRunTime": 30,
            "onExitStatus": {"retry": [36]},
            "artifacts": [{"type": "file", "path": "out.txt", "name": "public/out.txt"}]
        }
    });
    std::fs::write(dir.path().join("task.json"), task.to_string()).unwrap();
    let out = enginehost(
        &[
            "run",
            "--payload-format",
            "generic-worker",
            "task.json",
            "--config",
            "config.toml",
        ],
        dir.path(),
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("Executing command 1: /bin/sh -c echo second; exit 36"),
        "{stdout}"
    );
    assert!(
        stderr.contains("exit code 36, which onExitStatus.retry lists"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("artifacts/public/out.txt")).unwrap(),
        "first\n"
    );
    // The payload alone, with a field enginehost does not do: refused by name.
    std::fs::write(
        dir.path().join("bad.json"),
        r#"{"command": [["true"]], "maxRunTime": 5, "features": {"taskclusterProxy": true}}"#,
    )
    .unwrap();
    let out = enginehost(
        &[
            "run",
            "--payload-format",
            "generic-worker",
            "bad.json",
            "--config",
            "config.toml",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("task.payload.features.taskclusterProxy: not supported"));
}

#[test]
fn run_interactive_prints_two_links_that_reach_the_running_task() {
    if !crate::caps::is_root() {
        eprintln!("skipped: the example config creates task users, which needs root");
        return;
    }
    use std::io::{BufRead as _, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let config = example_config(dir.path(), 8000);
    let task = example("native-hello-interactive.json");
    let mut child = spawn(
        &["run", "--interactive", &task, "--config", config.to_str().unwrap()],
        dir.path(),
    );
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut links = Vec::new();
    let mut said = String::new();
    while links.len() < 2 {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no links: {said}");
        said.push_str(&line);
        if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) {
            links.push(url.to_string());
        }
    }
    assert!(
        links[0].contains("/shell.html#") && links[1].contains("/display.html#"),
        "{said}"
    );
    let (base, token) = links[0].split_once("/shell.html#").unwrap();
    assert_eq!(token.len(), 48, "192 random bits: {token}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for page in &links {
            assert_eq!(reqwest::get(page.as_str()).await.unwrap().status(), 200, "{page}");
        }
        // The task waits for ~/done: a shell in it makes that file.
        let mut status = 503;
        for _ in 0..100 {
            status = reqwest::get(format!("{base}/session/{token}"))
                .await
                .unwrap()
                .status()
                .as_u16();
            if status == 200 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(status, 200, "the session never ran");
        // In a browser where there is one (CI has Chromium): the printed shell link,
        // typed into as a person would; else the shell's socket.
        if let Some(browser) = crate::interactive::browser().await {
            browser.client.goto(&links[0]).await.unwrap();
            browser.state("connected").await;
            let keys = browser
                .client
                .find(fantoccini::Locator::Css(".xterm-helper-textarea"))
                .await
                .unwrap();
            // The task waits for its shells too: this one exits.
            keys.send_keys("touch ~/done; exit\n").await.unwrap();
            browser.state("exited").await;
            let _ = browser.client.clone().close().await;
            return;
        }
        let ws_url = format!(
            "{}/shell/{token}?command=sh&command=-c&command=touch%20%22%24HOME%2Fdone%22",
            base.replace("http://", "ws://")
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
        use futures::StreamExt as _;
        while let Some(Ok(message)) = ws.next().await {
            if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
                assert!(text.contains("\"success\":true"), "{text}");
            }
        }
    });
    let out = child.wait_with_output().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert_eq!(out.status.code(), Some(0), "{said}{rest}");
    let log = text(&out.stdout);
    assert!(log.contains("done, bye"), "{log}");
    assert!(!log.contains(token), "the token is never in the task log: {log}");
}

#[test]
fn a_reader_that_goes_away_ends_the_listing_quietly() {
    // `enginehost plugins | head -1`, deterministic: the pipe has no reader at all.
    let dir = tempfile::tempdir().unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_enginehost"))
        .args(["plugins"])
        .current_dir(dir.path())
        .env("ENGINEHOST_PLUGINS", "/nonexistent-default-plugin-dir")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
