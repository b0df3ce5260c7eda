//! The qemu engine with real VMs (TCG): its conformance cases on the test image
//! (plugins/qemu/test-image, built here by its build.sh, cached by content hash),
//! a VM that never boots, machine.json checks, and what is left afterwards.
//!
//! Tests that need qemu skip with a reason when qemu-system-x86_64, socat or the
//! image's build tools are missing; `ENGINEHOST_REQUIRE_QEMU=1` (CI) turns those
//! skips into failures. The VMs run one at a time (each TCG VM keeps a core busy).

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use enginehost::conformance::{Cases, Verdict, run_suite};
use enginehost::contract::{Engine, EngineError};
use enginehost::policy::Capabilities;
use enginehost::runtime::EngineOptions;
use serde_json::{Value, json};

use crate::caps::drained;
use crate::common::*;

const QEMU: &str = "/usr/bin/qemu-system-x86_64";
pub(super) const IMAGE: &str = "enginehost-test";

/// One VM at a time, and the image built once.
static VMS: LazyLock<tokio::sync::Mutex<Option<Result<PathBuf, String>>>> =
    LazyLock::new(|| tokio::sync::Mutex::new(None));

fn required() -> bool {
    std::env::var("ENGINEHOST_REQUIRE_QEMU").is_ok_and(|v| v == "1")
}

/// Skips (or, with ENGINEHOST_REQUIRE_QEMU=1, fails) for `reason`.
fn skip(reason: &str) {
    assert!(!required(), "ENGINEHOST_REQUIRE_QEMU=1 but: {reason}");
    eprintln!("skipped: {reason}");
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

/// The image directory with the test image in it, built (or found up to date)
/// by build.sh; an error says what is missing.
fn build_image() -> Result<PathBuf, String> {
    if !Path::new(QEMU).is_file() {
        return Err(format!("{QEMU} is missing (apt-get install qemu-system-x86)"));
    }
    if !on_path("socat") {
        return Err("socat is missing (apt-get install socat); qemu's guestfwd needs it".into());
    }
    let images = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("qemu-images");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/qemu/test-image/build.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg(images.join(IMAGE))
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "building the test image failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    eprintln!("{}", String::from_utf8_lossy(&out.stderr).trim());
    Ok(images)
}

/// Holds the VM lock; the image directory, or `None` after a skip.
pub(super) async fn vms() -> Option<(
    tokio::sync::MutexGuard<'static, Option<Result<PathBuf, String>>>,
    PathBuf,
)> {
    let mut guard = VMS.lock().await;
    if guard.is_none() {
        *guard = Some(tokio::task::spawn_blocking(build_image).await.unwrap());
    }
    match guard.as_ref().unwrap().clone() {
        Ok(dir) => Some((guard, dir)),
        Err(reason) => {
            skip(&reason);
            None
        }
    }
}

/// The built-in cases, with the image directory at `images`.
pub(super) fn cases_for(images: &Path) -> Cases {
    let (_, _, text) = enginehost::plugin::BUILTIN
        .iter()
        .find(|(f, _, _)| *f == "qemu.wasm")
        .unwrap();
    let mut cases: Value = serde_json::from_str(text).unwrap();
    let dir = images.to_string_lossy().to_string();
    cases["config"]["imageDir"] = json!(dir);
    cases["grants"]["files"]["dirs"]["images"]["path"] = json!(dir);
    serde_json::from_value(cases).unwrap()
}

pub(super) async fn engine_with(cases: &Cases) -> Arc<dyn Engine> {
    let plugin = RUNTIME.load("qemu", builtin_wasm("qemu")).unwrap();
    let grants: Capabilities = serde_json::from_value(cases.grants.clone().unwrap()).unwrap();
    RUNTIME
        .start_engine(
            &plugin,
            EngineOptions {
                config: cases.config.clone(),
                grants,
                ..Default::default()
            },
        )
        .await
        .expect("the qemu engine starts")
}

/// A VM task that has booted and written to its screen (it then sleeps 120 s).
async fn booted_on_screen(engine: &Arc<dyn Engine>) -> Arc<dyn enginehost::contract::Sandbox> {
    let ctx = context();
    let payload =
        json!({"image": IMAGE, "command": ["sh", "-c", "echo booted; echo on the screen > /dev/tty1; sleep 120"]});
    let sandbox = started_in(engine, ctx.clone(), payload).await;
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    while !std::fs::read_to_string(ctx.log().path())
        .unwrap_or_default()
        .contains("booted")
    {
        assert!(Instant::now() < deadline, "the VM did not boot within 60 s");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    sandbox
}

/// Processes whose working directory is under this test process's work
/// directory (qemu, and the socat helpers slirp starts, run in sandboxes).
fn processes_in_work_dir() -> Vec<String> {
    let work = test_work_dir();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cwd) = std::fs::read_link(entry.path().join("cwd")) else {
            continue;
        };
        if cwd.starts_with(&work) {
            let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            found.push(String::from_utf8_lossy(&cmd).replace('\0', " "));
        }
    }
    found
}

fn sandboxes_left() -> Vec<PathBuf> {
    let dir = test_work_dir().join("engines/qemu/sandboxes");
    std::fs::read_dir(dir)
        .map(|l| l.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_passes_its_cases_and_leaves_nothing_behind() {
    let Some((_vms, images)) = vms().await else { return };
    let cases = cases_for(&images);
    let engine = engine_with(&cases).await;
    let begun = Instant::now();
    let mut last = Instant::now();
    let report = run_suite(&engine, &cases, |r| {
        eprintln!("qemu: {r} ({:.1} s)", last.elapsed().as_secs_f64());
        last = Instant::now();
    })
    .await;
    eprintln!("qemu: {} in {:.1} s", report.summary(), begun.elapsed().as_secs_f64());
    let failures: Vec<String> = report
        .results
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Fail(_)))
        .map(|r| r.to_string())
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    // Logging 3, EnvVar 3, Kill 1, Proxy 2+, Artifact 5, Shell 4, Display 4+.
    assert!(report.passed() >= 22, "{}", report.summary());
    drop(engine);
    drained().await;
    let left = processes_in_work_dir();
    assert!(left.is_empty(), "still running after the cases: {left:#?}");
    let dirs = sandboxes_left();
    assert!(dirs.is_empty(), "sandbox directories left: {dirs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_that_never_boots_fails_at_the_boot_timeout_with_its_console() {
    let Some((_vms, images)) = vms().await else { return };
    // The test image's kernel with `cat` as init: it boots, then waits forever
    // on the console, and the agent never calls.
    let stuck = images.join("never-boots");
    std::fs::create_dir_all(&stuck).unwrap();
    for file in ["vmlinux", "initrd.img"] {
        let _ = std::fs::remove_file(stuck.join(file));
        std::fs::hard_link(images.join(IMAGE).join(file), stuck.join(file)).unwrap();
    }
    let mut machine: Value =
        serde_json::from_str(&std::fs::read_to_string(images.join(IMAGE).join("machine.json")).unwrap()).unwrap();
    machine["boot"]["append"] = json!("console=ttyS0 panic=-1 rdinit=/bin/cat");
    std::fs::write(stuck.join("machine.json"), machine.to_string()).unwrap();

    let mut cases = cases_for(&images);
    cases.config["bootTimeout"] = json!(5);
    let engine = engine_with(&cases).await;
    let payload = json!({"image": "never-boots", "command": ["true"]});
    let (result, log) = run_payload(&engine, payload, &[]).await;
    let result = result.expect("a result, not an error");
    assert!(!result.success(), "{log}");
    assert!(log.contains("boot timeout of 5 s"), "{log}");
    assert!(
        log.contains("Run /bin/cat as init process"),
        "the console's tail: {log}"
    );
    drop(result);
    drop(engine);
    drained().await;
    assert!(processes_in_work_dir().is_empty(), "{:#?}", processes_in_work_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_tcg_cannot_run_is_refused_naming_the_problem() {
    // No VM starts: machine.json is checked first (qemu need not be installed).
    let images = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("qemu-bad-images");
    let bad = images.join("needs-kvm");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(
        bad.join("machine.json"),
        r#"{"version": 1, "cpu": "host", "memory": 4096, "graphics": "qxl-vga",
            "boot": {"kernel": "../vmlinux", "append": ""}}"#,
    )
    .unwrap();
    let cases = cases_for(&images);
    let engine = engine_with(&cases).await;
    let builder = engine
        .new_sandbox_builder(context(), json!({"image": "needs-kvm", "command": ["true"]}))
        .await
        .unwrap();
    let err = match builder.start().await {
        Ok(_) => panic!("an image TCG cannot run started"),
        Err(e) => e,
    };
    let EngineError::MalformedPayload(messages) = err else {
        panic!("expected malformed-payload, got {err:?}")
    };
    let all = messages.join("\n");
    assert!(all.contains("cpu 'host' needs KVM"), "{all}");
    assert!(
        all.contains("memory 4096 MiB is more than this worker allows (256 MiB"),
        "{all}"
    );
    assert!(all.contains("graphics 'qxl-vga' is not supported"), "{all}");
    assert!(all.contains("boot.kernel '../vmlinux' must be a file name"), "{all}");

    let builder = engine
        .new_sandbox_builder(context(), json!({"image": "no-such-image", "command": ["true"]}))
        .await
        .unwrap();
    let Err(EngineError::MalformedPayload(messages)) = builder.start().await else {
        panic!("a missing image started")
    };
    assert!(
        messages[0].contains("there is no image 'no-such-image'"),
        "{messages:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_directory_that_is_not_granted_is_the_operators_error() {
    // No VM starts (qemu need not be installed): without the images grant, the
    // task fails as an internal error naming the config to add, not as the task
    // author's missing image.
    let images = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("qemu-bad-images");
    let mut cases = cases_for(&images);
    cases.grants.as_mut().unwrap()["files"]
        .as_object_mut()
        .unwrap()
        .remove("dirs");
    let engine = engine_with(&cases).await;
    let builder = engine
        .new_sandbox_builder(context(), json!({"image": IMAGE, "command": ["true"]}))
        .await
        .unwrap();
    let err = match builder.start().await {
        Ok(_) => panic!("a task started without the image directory"),
        Err(e) => e,
    };
    let EngineError::NonFatalInternalError(message) = err else {
        panic!("expected an internal error, got {err:?}")
    };
    assert!(
        message.contains("is not granted to the engine; add [plugins.qemu.files.dirs.images]"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_viewer_captures_the_vms_screen_through_open_display() {
    let Some((_vms, images)) = vms().await else { return };
    let cases = cases_for(&images);
    let engine = engine_with(&cases).await;
    let sandbox = booted_on_screen(&engine).await;
    // vnc-rs (a real RFB client) through a loopback TCP bridge, as a person's
    // viewer would reach the display.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let bridged = sandbox.clone();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        crate::display::bridge(tcp, bridged, "screen", Default::default()).await;
    });
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let client = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        crate::display::Connector::new(tcp)
            .set_version(vnc::VncVersion::RFB38)
            .add_encoding(vnc::VncEncoding::Raw)
            .allow_shared(true)
            .build()?
            .try_start()
            .await?
            .finish()
    })
    .await
    .expect("the handshake took more than 10 s")
    .expect("the handshake");
    let frame = crate::display::first_frame(&client, None).await;
    let colors: std::collections::BTreeSet<[u32; 3]> = frame.rgb.iter().flatten().copied().collect();
    eprintln!(
        "qemu: captured {}x{} with {} colours",
        frame.width,
        frame.height,
        colors.len()
    );
    assert!(colors.len() >= 2, "the screen is one flat colour: nothing was drawn");
    let listed = sandbox.list_displays().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "screen");
    assert_eq!(
        (listed[0].width, listed[0].height),
        (u32::from(frame.width), u32::from(frame.height)),
        "list-displays gives the size the viewer got"
    );
    drop(client);
    sandbox.abort().await.unwrap();
    drop(sandbox);
    drop(engine);
    drained().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vms_screen_on_the_display_page_in_chromium() {
    let Some(browser) = crate::interactive::browser().await else {
        return;
    };
    let Some((_vms, images)) = vms().await else { return };
    let cases = cases_for(&images);
    let engine = engine_with(&cases).await;
    let sandbox = booted_on_screen(&engine).await;
    let listed = sandbox.list_displays().await.unwrap();
    let (width, height) = (u64::from(listed[0].width), u64::from(listed[0].height));
    // A column of the text console: its left edge, where the text is.
    let sample: Vec<(u32, u32)> = (0..200).map(|i| (i % 40, i * 2)).collect();
    let seen = crate::interactive::display_page(
        &browser,
        sandbox.clone(),
        &sample,
        |v| {
            let colours: std::collections::BTreeSet<_> = v[2]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| (p[2].as_u64(), p[3].as_u64(), p[4].as_u64()))
                .collect();
            v[0] == width && v[1] == height && colours.len() >= 2
        },
        "display-qemu.png",
    )
    .await;
    eprintln!("qemu in Chromium: a {}x{} canvas", seen[0], seen[1]);
    browser.client.clone().close().await.unwrap();
    sandbox.abort().await.unwrap();
    drop(sandbox);
    drop(engine);
    drained().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_that_goes_away_mid_task_is_a_crash_not_a_result() {
    let Some((_vms, images)) = vms().await else { return };
    let cases = cases_for(&images);
    let engine = engine_with(&cases).await;
    // The guest powers itself off mid-task (qemu runs with -no-reboot and exits):
    // the log ends without its last chunk and no result comes.
    let payload = json!({"image": IMAGE, "command": ["sh", "-c", "echo going away; sleep 1; poweroff -f; sleep 60"]});
    let (result, log) = run_payload(&engine, payload, &[]).await;
    match result {
        Err(EngineError::NonFatalInternalError(why)) => assert!(why.contains("QEMU crashed unexpected"), "{why}"),
        Err(other) => panic!("expected QEMU crashed unexpected, got {other:?}\n{log}"),
        Ok(r) => panic!("a VM that went away gave a result (success {})\n{log}", r.success()),
    }
    assert!(log.contains("going away"), "{log}");
    assert!(
        log.contains("QEMU crashed unexpected; the last lines of its console"),
        "{log}"
    );
    drop(engine);
    drained().await;
    assert!(processes_in_work_dir().is_empty(), "{:#?}", processes_in_work_dir());
}

/// Serves `body` to every GET on loopback; the base URL.
async fn serve_bytes(body: Vec<u8>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = Arc::new(body);
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && tcp.read(&mut byte).await.is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tcp.write_all(answer.as_bytes()).await;
                let _ = tcp.write_all(&body).await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_by_url_is_downloaded_unpacked_and_booted() {
    let Some((_vms, images)) = vms().await else { return };
    let tarball = std::fs::read(images.join(IMAGE).join("image.tar.zst")).unwrap();
    let base = serve_bytes(tarball).await;
    let mut cases = cases_for(&images);
    let grants = cases.grants.as_mut().unwrap();
    grants["process"]["exec"] = json!(["/usr/bin/qemu-system-x86_64", "/usr/bin/tar"]);
    grants["network"] = json!({"connect": ["127.0.0.1:*"]});
    let engine = engine_with(&cases).await;
    let payload = json!({"image": format!("{base}/image.tar.zst"), "command": ["sh", "-c", "echo booted from a URL"]});
    let (result, log) = run_payload(&engine, payload, &[]).await;
    let result = result.unwrap();
    assert!(result.success(), "{log}");
    assert!(log.contains("booted from a URL"), "{log}");
    // The VM stays up for artifacts until the result set is disposed of.
    result.dispose().await.unwrap();

    // Not an image: tar's complaint is in the log, the payload is malformed.
    let base = serve_bytes(b"not a tarball".to_vec()).await;
    let builder = engine
        .new_sandbox_builder(
            context(),
            json!({"image": format!("{base}/x.tar.zst"), "command": ["true"]}),
        )
        .await
        .unwrap();
    let messages = match builder.start().await {
        Err(EngineError::MalformedPayload(messages)) => messages,
        Err(other) => panic!("expected malformed-payload, got {other:?}"),
        Ok(_) => panic!("a bad image started"),
    };
    assert!(messages[0].contains("is not a .tar.zst image"), "{messages:?}");
    drop(engine);
    drained().await;
    assert!(processes_in_work_dir().is_empty(), "{:#?}", processes_in_work_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tty_shell_in_the_vm_sees_its_size_change() {
    let Some((_vms, images)) = vms().await else { return };
    let engine = engine_with(&cases_for(&images)).await;
    let sandbox = started(&engine, json!({"image": IMAGE, "command": ["sleep", "120"]})).await;
    let shell = sandbox.new_shell(&["/bin/sh".to_string()], true).await.unwrap();
    let text = super::resize_transcript(&*shell).await;
    assert!(text.contains("24 80"), "the agent's pty starts at 80×24: {text}");
    assert!(text.contains("\r\n"), "a tty's output has CRLF: {text:?}");
    sandbox.abort().await.unwrap();
    drop(sandbox);
    drop(engine);
    drained().await;
}

/// The line the host writes into the task log when a fresh instance takes over.
pub(super) const RESTARTED: &str = "and was restarted; the task goes on in the new instance";

/// The pids of the qemu processes running in this test's sandboxes.
fn qemu_pids() -> Vec<u32> {
    let work = test_work_dir();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let in_work = std::fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(&work));
        let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if in_work && String::from_utf8_lossy(&cmd).starts_with(QEMU) {
            found.push(pid);
        }
    }
    found
}

fn log_text(ctx: &enginehost::contract::TaskContext) -> String {
    std::fs::read_to_string(ctx.log().path()).unwrap_or_default()
}

/// Starts `script` in a VM and waits until its log has `line`.
async fn started_until(
    engine: &Arc<dyn Engine>,
    script: &str,
    line: &str,
) -> (
    enginehost::contract::TaskContext,
    Arc<dyn enginehost::contract::Sandbox>,
) {
    let ctx = context();
    let sandbox = started_in(
        engine,
        ctx.clone(),
        json!({"image": IMAGE, "command": ["sh", "-c", script]}),
    )
    .await;
    until(
        || format!("the VM did not boot and print {line:?}:\n{}", log_text(&ctx)),
        || log_text(&ctx).contains(line),
    )
    .await;
    (ctx, sandbox)
}

/// Contract 0.1.4: a running VM is taken over by a fresh instance after a trap.
/// The same qemu process and the same guest boot go on (its boot id is printed
/// before and after); every line the task printed is in the log exactly once,
/// because the agent's log request never broke (the host kept the task's
/// endpoint and its connections); a shell opened before the trap ends with an
/// error and its process in the guest is gone, a new shell works; the result,
/// the artifact, and nothing left afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_vm_survives_a_trap_with_its_whole_output_once() {
    let Some((_vms, images)) = vms().await else { return };
    let engine = engine_with(&cases_for(&images)).await;
    let script = "echo \"boot $(cat /proc/sys/kernel/random/boot_id)\"; i=0; \
                  while [ $i -lt 60 ]; do echo \"line $i\"; i=$((i+1)); sleep 0.1; done; \
                  printf 'tail-'; sleep 1; echo end; echo \"boot $(cat /proc/sys/kernel/random/boot_id)\"; \
                  echo kept > /home/tc/kept.txt";
    let (ctx, sandbox) = started_until(&engine, script, "line 3\n").await;
    let waiting = spawn_wait(&sandbox);
    let before = qemu_pids();
    assert_eq!(before.len(), 1, "{before:?}");
    let shell = sandbox
        .new_shell(&["sh".into(), "-c".into(), "sleep 3131".into()], false)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(engine.inject_trap("an injected trap").await);
    assert!(
        shell.wait().await.is_err(),
        "the old instance's shell ends with an error"
    );
    // A new shell (it waits for the recovery) works; the old one's process is
    // gone from the guest.
    let check = sandbox
        .new_shell(
            &[
                "sh".into(),
                "-c".into(),
                "sleep 1; ! ps | grep -v grep | grep -q 'sleep 3131'".into(),
            ],
            false,
        )
        .await
        .expect("a new shell after the recovery");
    assert_eq!(
        check.wait().await,
        Ok(true),
        "the old instance's shell still runs in the guest"
    );
    assert_eq!(
        waiting.await.unwrap(),
        Ok(true),
        "the task ends with its real result:\n{}",
        log_text(&ctx)
    );
    assert_eq!(qemu_pids(), before, "the same qemu process before and after the trap");

    let result = sandbox.wait_for_result().await.unwrap();
    let kept = result.extract_file("kept.txt").await.unwrap().read_to_end().await;
    assert_eq!(kept, b"kept\n");
    ctx.log().close();
    let log = String::from_utf8(ctx.log().read_to_end().await.unwrap()).unwrap();
    assert_eq!(log.matches(RESTARTED).count(), 1, "{log}");
    each_line_once("qemu", &log, (0..60).map(|i| format!("line {i}")));
    assert_eq!(log.lines().filter(|l| *l == "tail-end").count(), 1, "{log}");
    let boots: Vec<&str> = log.lines().filter(|l| l.starts_with("boot ")).collect();
    assert_eq!(boots.len(), 2, "{log}");
    assert_eq!(boots[0], boots[1], "the same guest boot before and after the trap");
    let restarted = log.find(RESTARTED).unwrap();
    assert!(
        log.find("line 0\n").unwrap() < restarted && restarted < log.find("line 59\n").unwrap(),
        "the guest wrote on both sides of the restart:\n{log}"
    );
    result.dispose().await.unwrap();
    drop((result, sandbox, shell, check));
    drop(engine);
    drained().await;
    assert!(processes_in_work_dir().is_empty(), "{:#?}", processes_in_work_dir());
    assert!(sandboxes_left().is_empty(), "{:#?}", sandboxes_left());
}

/// A storm of traps ends the task cleanly, and its VM, its socat helpers and
/// its sandbox go all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_traps_fails_the_vm_task_and_leaves_nothing() {
    let Some((_vms, images)) = vms().await else { return };
    let engine = engine_with(&cases_for(&images)).await;
    let (_ctx, sandbox) = started_until(&engine, "echo up; sleep 120", "up\n").await;
    trap_storm(&engine, spawn_wait(&sandbox), std::time::Duration::from_millis(1500)).await;
    drop(sandbox);
    drop(engine);
    drained().await;
    assert!(processes_in_work_dir().is_empty(), "{:#?}", processes_in_work_dir());
}

/// A task whose command ended (its agent reported) while nobody waited for the
/// result, trapped and then aborted: the clean-up's fresh instance finds the
/// work finished (its abort answers sandbox-terminated), so the host takes the
/// result and disposes of it, which stops the VM at once, not only when the
/// worker lets the task go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_vm_task_aborted_while_its_engine_is_dead_has_its_vm_stopped() {
    let Some((_vms, images)) = vms().await else { return };
    let engine = engine_with(&cases_for(&images)).await;
    let (_ctx, sandbox) = started_until(&engine, "echo finished", "finished\n").await;
    // The agent reports right after its log request was answered.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(qemu_pids().len(), 1, "the VM runs until its result is disposed of");
    assert!(engine.inject_trap("an injected trap").await);
    assert!(sandbox.abort().await.is_err(), "aborted while its engine was dead");
    until(
        || format!("the VM still runs: {:?}", qemu_pids()),
        || qemu_pids().is_empty(),
    )
    .await;
    drop(sandbox);
    drop(engine);
    drained().await;
    assert!(processes_in_work_dir().is_empty(), "{:#?}", processes_in_work_dir());
}
