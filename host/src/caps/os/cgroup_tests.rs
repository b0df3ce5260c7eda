//! Tests of `cgroup.rs`: the tree kill against orphans and setsid escapes, removal, and the dead-worker sweep.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use super::super::spawn::{ExitStatus, Output, spawn};
use super::super::testutil::{self, RmCgroup, TestCgroup};
use super::*;

fn cmdline(pid: i32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// Pids of the cgroup that run `sleep 10x`.
fn sleepers(cg: &Cgroup) -> Vec<i32> {
    cg.pids()
        .into_iter()
        .filter(|&p| cmdline(p).starts_with("sleep 10"))
        .collect()
}

#[test]
fn parses_mountinfo() {
    let text = "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n\
                41 31 0:38 /sub /sys/fs/cgroup/uni\\040fied rw,relatime - cgroup2 cgroup2 rw\n";
    let (root, mount) = parse_cgroup2_mount(text).unwrap();
    assert_eq!(
        (root.as_str(), mount.as_path()),
        ("/sub", Path::new("/sys/fs/cgroup/uni fied"))
    );
    assert!(parse_cgroup2_mount("31 23 0:28 / /x rw - tmpfs tmpfs rw\n").is_none());
}

/// The main process dies, its orphans (one in its own session) keep the cgroup populated and the stdout pipe open;
/// killpg misses the setsid one; cgroup.kill gets all of them, the pipe reaches EOF and the cgroup can be removed.
#[tokio::test]
async fn kill_catches_orphans_and_setsid() {
    if testutil::skip_unless_root("kill_catches_orphans_and_setsid") {
        return;
    }
    let Some(tc) = TestCgroup::new("orphans") else { return };
    let cg = &tc.cg;
    let mut spec = testutil::spec("/bin/sh", &["sh", "-c", "(sleep 100 &) ; setsid sleep 101 & sleep 102"]);
    spec.cgroup_procs = Some(cg.open_procs().unwrap());
    spec.stdout = Output::Pipe;
    let mut child = spawn(spec).unwrap();
    let mut stdout = child.take_stdout().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while sleepers(cg).len() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(sleepers(cg).len(), 3, "pids: {:?}", cg.pids());

    child.signal(libc::SIGKILL).unwrap();
    assert_eq!(child.wait().await, ExitStatus::Signal(libc::SIGKILL as u8));
    let orphans = sleepers(cg);
    assert_eq!(orphans.len(), 3, "the orphans outlive the main process");
    assert!(cg.is_populated());

    child.signal_group(libc::SIGKILL);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let left = sleepers(cg);
    assert_eq!(left.len(), 1, "killpg leaves exactly the setsid escape: {left:?}");
    assert!(cmdline(left[0]).starts_with("sleep 101"));
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_millis(50), stdout.read(&mut buf)).await;
    assert!(read.is_err(), "the escape still holds stdout open");

    let t = Instant::now();
    cg.kill();
    assert!(
        cg.wait_empty(Duration::from_secs(2)).await,
        "cgroup still populated: {:?}",
        cg.pids()
    );
    eprintln!("cgroup.kill -> unpopulated: {:?}", t.elapsed());
    assert!(cg.pids().is_empty());
    for pid in orphans {
        assert!(
            !testutil::alive(pid) || !cmdline(pid).starts_with("sleep 10"),
            "{pid} survived"
        );
    }
    let n = tokio::time::timeout(Duration::from_secs(2), stdout.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "stdout reaches EOF once the tree is dead");

    cg.remove().unwrap();
    assert!(!cg.path().exists());
}

/// An `enginehost-<dead pid>` sibling (with a child cgroup) is removed; our own tree and a live pid's are kept.
#[tokio::test]
async fn sweep_dead_spares_live_trees() {
    if testutil::skip_unless_root("sweep_dead_spares_live_trees") {
        return;
    }
    let Some(tc) = TestCgroup::new("sweep") else { return };
    let parent = tc.tree.root().parent().unwrap().to_path_buf();
    let pid_max: i32 = fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let dead = (1..pid_max)
        .rev()
        .find(|p| !Path::new(&format!("/proc/{p}")).exists())
        .unwrap();
    let dead_dir = parent.join(format!("enginehost-{dead}"));
    let _rm_dead = RmCgroup(dead_dir.clone());
    Cgroup::create(&parent, &format!("enginehost-{dead}")).unwrap();
    Cgroup::create(&dead_dir, "engine-1").unwrap();

    let mut spec = testutil::spec("/bin/sleep", &["sleep", "100"]);
    spec.cgroup_procs = Some(tc.cg.open_procs().unwrap());
    let sleeper = spawn(spec).unwrap();
    let live_dir = parent.join(format!("enginehost-{}", sleeper.pid()));
    let _rm_live = RmCgroup(live_dir.clone());
    fs::create_dir(&live_dir).unwrap();

    let removed = tc.tree.sweep_dead();
    assert!(removed.contains(&dead_dir), "removed: {removed:?}");
    assert!(!dead_dir.exists());
    assert!(live_dir.exists() && tc.tree.root().exists() && tc.cg.path().exists());
    assert!(!removed.iter().any(|p| p == &live_dir || p == tc.tree.root()));
}
