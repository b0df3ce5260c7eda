//! Tests of `spawn.rs` and `child.rs`: exactly the given env, argv[0], cwd and stdio; errors; statuses; ids + cgroup.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use super::super::testutil::{self, KillGroup, TempDir, TestCgroup};
use super::*;

/// Runs to exit with stdout piped; returns (status, stdout).
async fn run(mut spec: SpawnSpec) -> (ExitStatus, String) {
    spec.stdout = Output::Pipe;
    let mut child = spawn(spec).unwrap();
    let out = testutil::read_all(child.take_stdout()).await;
    (child.wait().await, out)
}

#[test]
fn child_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Child>();
}

#[tokio::test]
async fn env_is_exactly_what_was_given() {
    let mut spec = testutil::spec("/usr/bin/env", &["env"]);
    spec.env = vec![("A".into(), "1".into()), ("B".into(), "two words".into())];
    assert_eq!(run(spec).await, (ExitStatus::Code(0), "A=1\nB=two words\n".into()));
}

/// No ignored or blocked signals leak from the worker (std resets them after fork), and bad names are refused.
#[tokio::test]
async fn signals_reset_and_env_names_checked() {
    // Ignore SIGHUP and SIGINT here, as `nohup` or a non-interactive shell's `cmd &` would.
    // SAFETY: plain libc calls; the old dispositions are restored right after the spawn.
    let old = unsafe {
        [
            libc::signal(libc::SIGHUP, libc::SIG_IGN),
            libc::signal(libc::SIGINT, libc::SIG_IGN),
        ]
    };
    let mut spec = testutil::spec("/bin/grep", &["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"]);
    spec.stdout = Output::Pipe;
    let child = spawn(spec);
    // SAFETY: as above.
    unsafe { (libc::signal(libc::SIGHUP, old[0]), libc::signal(libc::SIGINT, old[1])) };
    let mut child = child.unwrap();
    let _ = child.wait().await;
    let out = testutil::read_all(child.take_stdout()).await;
    // Mask out bits 31 and 32, glibc's internal signals 32 and 33 (cargo runs tests with 32 ignored; glibc refuses
    // to change them, and glibc programs reinstall their handlers anyway).
    let masks: Vec<u64> = out
        .lines()
        .map(|l| u64::from_str_radix(&l[8..], 16).unwrap() & !(3 << 31))
        .collect();
    assert_eq!(masks, [0, 0], "{out}");
    let mut spec = testutil::spec("/usr/bin/env", &["env"]);
    spec.env.push(("A=B".into(), "c".into()));
    assert_eq!(spawn(spec).err().unwrap().kind(), std::io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn argv0_differs_from_program() {
    let spec = testutil::spec(
        "/bin/sh",
        &["not-a-shell", "-c", "echo $0; echo \"$1\"", "ignored", "x y"],
    );
    // `sh -c cmd name arg`: $0 = name. Check argv[0] itself through /proc.
    assert_eq!(run(spec).await.1, "ignored\nx y\n");
    let spec = testutil::spec("/bin/sh", &["not-a-shell", "-c", "tr '\\0' ' ' < /proc/$$/cmdline"]);
    assert!(run(spec).await.1.starts_with("not-a-shell -c "));
}

#[tokio::test]
async fn cwd_comes_from_the_fd() {
    let dir = TempDir::new();
    let mut spec = testutil::spec("/bin/pwd", &["pwd"]);
    spec.cwd = testutil::open_dir(&dir.0);
    assert_eq!(run(spec).await.1, format!("{}\n", dir.0.display()));
    assert_ne!(std::env::current_dir().unwrap(), dir.0, "the worker's cwd is untouched");
}

#[tokio::test]
async fn exec_failures_are_spawn_errors() {
    let e = spawn(testutil::spec("/nonexistent/prog", &["prog"])).err().unwrap();
    assert_eq!(
        (e.kind(), e.raw_os_error()),
        (std::io::ErrorKind::NotFound, Some(libc::ENOENT)),
        "{e}"
    );
    let e = spawn(testutil::spec("sh", &["sh"])).err().unwrap();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "relative program: {e}");
    let dir = TempDir::new();
    let path = dir.0.join("not-exec");
    fs::write(&path, "#!/bin/sh\n").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let e = spawn(testutil::spec(path.to_str().unwrap(), &["x"])).err().unwrap();
    assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");
}

#[tokio::test]
async fn stderr_onto_stdout_keeps_order() {
    let mut spec = testutil::spec("/bin/sh", &["sh", "-c", "echo 1; echo 2 >&2; echo 3; echo 4 >&2"]);
    spec.stderr = Stderr::Stdout;
    assert_eq!(run(spec).await.1, "1\n2\n3\n4\n");
}

#[tokio::test]
async fn pipes_stdin_stdout_stderr() {
    let mut spec = testutil::spec("/bin/sh", &["sh", "-c", "cat; echo oops >&2"]);
    (spec.stdin, spec.stdout, spec.stderr) = (Stdin::Pipe, Output::Pipe, Stderr::Pipe);
    let mut child = spawn(spec).unwrap();
    let mut stdin = child.take_stdin().unwrap();
    stdin.write_all(b"abc").await.unwrap();
    drop(stdin); // EOF for cat
    assert_eq!(testutil::read_all(child.take_stdout()).await, "abc");
    assert_eq!(testutil::read_all(child.take_stderr()).await, "oops\n");
    assert_eq!(child.wait().await, ExitStatus::Code(0));
}

#[tokio::test]
async fn file_stdio() {
    let dir = TempDir::new();
    fs::write(dir.0.join("in"), "hello\n").unwrap();
    let mut spec = testutil::spec("/bin/sh", &["sh", "-c", "cat; echo err >&2"]);
    spec.stdin = Stdin::File(fs::File::open(dir.0.join("in")).unwrap());
    spec.stdout = Output::File(fs::File::create(dir.0.join("out")).unwrap());
    spec.stderr = Stderr::Stdout;
    assert_eq!(spawn(spec).unwrap().wait().await, ExitStatus::Code(0));
    assert_eq!(fs::read_to_string(dir.0.join("out")).unwrap(), "hello\nerr\n");

    let mut spec = testutil::spec("/bin/sh", &["sh", "-c", "echo out; echo err >&2"]);
    let mut log = fs::File::create(dir.0.join("err")).unwrap();
    log.write_all(b"first\n").unwrap();
    spec.stderr = Stderr::File(log);
    assert_eq!(run(spec).await.1, "out\n");
    assert_eq!(
        fs::read_to_string(dir.0.join("err")).unwrap(),
        "first\nerr\n",
        "the file offset is kept"
    );
}

#[tokio::test]
async fn exit_codes_and_signals() {
    assert_eq!(
        run(testutil::spec("/bin/sh", &["sh", "-c", "exit 3"])).await.0,
        ExitStatus::Code(3)
    );
    let (status, _) = run(testutil::spec("/bin/sh", &["sh", "-c", "kill -TERM $$"])).await;
    assert_eq!(status, ExitStatus::Signal(libc::SIGTERM as u8));

    let child = spawn(testutil::spec("/bin/sleep", &["sleep", "100"])).unwrap();
    let _kill = KillGroup(child.pid());
    let status = child.status();
    assert_eq!(*status.borrow(), None);
    child.signal(libc::SIGKILL).unwrap();
    assert_eq!(child.wait().await, ExitStatus::Signal(libc::SIGKILL as u8));
    assert_eq!(*status.borrow(), Some(ExitStatus::Signal(libc::SIGKILL as u8)));
    child.signal(libc::SIGKILL).unwrap();
    child.signal(0).unwrap();
    child.signal_group(libc::SIGKILL);
}

/// The child joins the cgroup before dropping to 61234 (after setuid the join would be EACCES), gets exactly the
/// requested ids, and its session is its own.
#[tokio::test]
async fn ids_after_cgroup_join() {
    if testutil::skip_unless_root("ids_after_cgroup_join") {
        return;
    }
    let Some(tc) = TestCgroup::new("ids") else { return };
    let mut spec = testutil::spec(
        "/bin/sh",
        &[
            "sh",
            "-c",
            "id -u; id -G; grep ^0:: /proc/self/cgroup; echo $$ $(awk '{print $6}' /proc/$$/stat)",
        ],
    );
    spec.ids = Some(Ids {
        uid: 61234,
        gid: 61234,
        groups: vec![61235],
    });
    spec.cgroup_procs = Some(tc.cg.open_procs().unwrap());
    let (status, out) = run(spec).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(status, ExitStatus::Code(0), "{out}");
    assert_eq!(lines[..2], ["61234", "61234 61235"]);
    let name = tc.cg.path().file_name().unwrap().to_str().unwrap();
    assert!(
        lines[2].starts_with("0::/") && lines[2].ends_with(&format!("/{name}")),
        "{}",
        lines[2]
    );
    let (pid, sid) = lines[3].split_once(' ').unwrap();
    assert_eq!(pid, sid, "setsid: the child leads its own session");
}

/// Prints what a spawn costs here (run with --nocapture to see it).
#[tokio::test]
async fn spawn_latency() {
    let tc = if super::super::users::is_root() {
        TestCgroup::new("latency")
    } else {
        None
    };
    let (n, mut in_spawn, mut to_exit) = (20, Duration::ZERO, Duration::ZERO);
    for _ in 0..n {
        let mut spec = testutil::spec("/bin/true", &["true"]);
        spec.cgroup_procs = tc.as_ref().map(|t| t.cg.open_procs().unwrap());
        let t = Instant::now();
        let child = spawn(spec).unwrap();
        in_spawn += t.elapsed();
        assert_eq!(child.wait().await, ExitStatus::Code(0));
        to_exit += t.elapsed();
    }
    eprintln!(
        "spawn() {:?}, spawn->exit {:?} (mean of {n}, cgroup: {})",
        in_spawn / n,
        to_exit / n,
        tc.is_some()
    );
}
