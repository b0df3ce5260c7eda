//! Killing every process of one uid, and finding them in /proc.
//!
//! Owns the race-free kill-by-owner: a forked helper drops to the uid with `setresuid` and calls `kill(-1, SIGKILL)`.
//! The kernel then signals exactly the processes that uid may signal (its own), atomically, including ones forked a
//! moment ago or hidden in new sessions; scanning /proc and killing pids one by one would race with forks and with
//! pid reuse. It is the fallback tree kill when cgroup v2 is unusable, and the step before `userdel`.
//!
//! Must not: ever run for uid 0 (kill(-1) as root kills the whole machine), or keep privileges in the helper: it
//! checks that it can no longer signal pid 1 before calling kill(-1).

use std::fs;
use std::time::{Duration, Instant};

/// Pids whose *real* uid is `uid`, from /proc/<pid>/status. Zombies (already dead, awaiting their parent) are left out
/// unless `with_zombies`.
pub fn procs_with_uid(uid: u32, with_zombies: bool) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(status) = fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let real_uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|v| v.split_whitespace().next());
        let zombie = status.lines().any(|l| l.starts_with("State:") && l.contains("Z"));
        if real_uid == Some(uid.to_string().as_str()) && (with_zombies || !zombie) {
            out.push(pid);
        }
    }
    out
}

/// SIGKILLs every process whose real uid is `uid`, repeating until /proc shows none (bounded: gives up after ~2 s and
/// returns the count still alive; 0 = none left). Refuses uid 0 (returns the count of root processes, kills nothing).
///
/// Blocking (it sleeps a few ms between rounds): call it from `spawn_blocking` in async code. Needs root; otherwise
/// the helper cannot switch uid and the count simply stays.
pub fn kill_by_uid(uid: u32) -> usize {
    if uid == 0 {
        tracing::error!("kill_by_uid(0) refused: it would kill every process on the machine");
        return procs_with_uid(0, false).len();
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let alive = procs_with_uid(uid, false).len();
        if alive == 0 || Instant::now() >= deadline {
            return alive;
        }
        kill_all_as(uid);
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One round: fork, drop to `uid` in the child, kill(-1, SIGKILL) there (Linux does not signal the caller itself),
/// wait for the helper.
fn kill_all_as(uid: u32) {
    // SAFETY: the forked child only makes raw syscalls and _exit()s: no allocation, no locks, no unwinding.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            // All three uids: the saved uid must go too, or the helper could regain root. Dropping euid from 0 clears
            // the capability sets (unless SECBIT_KEEP_CAPS/NO_SETUID_FIXUP, which the next check catches).
            if libc::syscall(libc::SYS_setresuid, uid, uid, uid) != 0 {
                libc::_exit(2);
            }
            // Still allowed to signal init (CAP_KILL kept)? Then kill(-1) would hit other users: refuse.
            if libc::kill(1, 0) == 0 {
                libc::_exit(3);
            }
            libc::kill(-1, libc::SIGKILL);
            libc::_exit(0);
        }
        if pid < 0 {
            tracing::warn!("kill_by_uid({uid}): fork: {}", std::io::Error::last_os_error());
            return;
        }
        let mut status = 0;
        // tokio only waits for its own children by pid, so waiting for ours here cannot steal its statuses.
        while libc::waitpid(pid, &mut status, 0) < 0 && *libc::__errno_location() == libc::EINTR {}
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) != 0 {
            tracing::warn!("kill_by_uid({uid}): helper exited with {}", libc::WEXITSTATUS(status));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::spawn::{Ids, spawn};
    use super::super::testutil::{self, UidGuard};
    use super::*;

    /// A uid-owned sleeper that escaped into its own session (what killpg misses) is killed, and nothing remains.
    #[tokio::test]
    async fn kills_setsid_sleeper() {
        if testutil::skip_unless_root("kills_setsid_sleeper") {
            return;
        }
        let uid = testutil::free_uid();
        let _guard = UidGuard(uid);
        let mut spec = testutil::spec("/bin/sh", &["sh", "-c", "setsid sleep 100 & sleep 0.05"]);
        spec.ids = Some(Ids {
            uid,
            gid: uid,
            groups: vec![],
        });
        let child = spawn(spec).unwrap();
        child.wait().await;
        let deadline = Instant::now() + Duration::from_secs(2);
        while procs_with_uid(uid, false).is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let before = procs_with_uid(uid, false);
        assert_eq!(before.len(), 1, "the setsid sleeper should be running as {uid}");
        child.signal_group(libc::SIGKILL); // the fallback group kill misses it: another session
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            procs_with_uid(uid, false),
            before,
            "killpg cannot reach a setsid escape"
        );
        let t = Instant::now();
        assert_eq!(tokio::task::spawn_blocking(move || kill_by_uid(uid)).await.unwrap(), 0);
        eprintln!("kill_by_uid: {:?}", t.elapsed());
        assert!(procs_with_uid(uid, false).is_empty());
    }

    #[test]
    fn refuses_root() {
        // Still alive, and it reports (rather than kills) root's processes.
        assert!(kill_by_uid(0) > 0 || !super::super::users::is_root());
    }
}
