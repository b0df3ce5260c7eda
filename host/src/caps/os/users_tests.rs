//! Tests of `users.rs` (root only): the lifecycle of one user, concurrency, and idempotent/refused removals.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::super::spawn::{ExitStatus, Ids, spawn};
use super::super::testutil::{self, TempDir, UserGuard};
use super::*;

fn passwd_has(name: &str) -> bool {
    fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .any(|l| l.starts_with(&format!("{name}:")))
}

/// Create; `id` sees it; it cannot read /etc/shadow; remove_user kills its sleeper, deletes the account and group,
/// and sweeps its temp files (without following its symlink).
#[tokio::test]
async fn lifecycle() {
    if testutil::skip_unless_root("users::lifecycle") {
        return;
    }
    let uid = testutil::free_uid();
    let name = format!("ehtest{uid}");
    let home = TempDir::new();
    let _guard = UserGuard(name.clone(), uid);
    let t = Instant::now();
    let user = create_user(&name, uid, &["users".into()], &home.0.join("home"))
        .await
        .unwrap();
    eprintln!("create_user: {:?}", t.elapsed());
    assert_eq!(
        user,
        SystemUser {
            name: name.clone(),
            uid,
            gid: uid
        }
    );
    let id = Command::new("id").arg(&name).output().unwrap();
    let id = String::from_utf8(id.stdout).unwrap();
    assert!(
        id.starts_with(&format!(
            "uid={uid}({name}) gid={uid}({name}) groups={uid}({name}),100(users)"
        )),
        "{id}"
    );
    assert!(
        create_user(&name, uid, &[], Path::new("/nonexistent")).await.is_err(),
        "already exists"
    );

    let ids = Ids {
        uid,
        gid: user.gid,
        groups: vec![group_id("users").unwrap()],
    };
    let mut spec = testutil::spec("/bin/cat", &["cat", "/etc/shadow"]);
    spec.ids = Some(ids.clone());
    assert_ne!(
        spawn(spec).unwrap().wait().await,
        ExitStatus::Code(0),
        "the task user must not read /etc/shadow"
    );

    let script = format!(
        "echo x > /tmp/ehtest-{uid}.f; mkdir /tmp/ehtest-{uid}.d; echo y > /tmp/ehtest-{uid}.d/z; \
         ln -s /etc/passwd /tmp/ehtest-{uid}.l; echo s > /dev/shm/ehtest-{uid}; echo ready > /tmp/ehtest-{uid}.r; \
         exec sleep 100"
    );
    let mut spec = testutil::spec("/bin/sh", &["sh", "-c", &script]);
    spec.ids = Some(ids);
    let sleeper = spawn(spec).unwrap();
    let ready = format!("/tmp/ehtest-{uid}.r");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !Path::new(&ready).exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(Path::new(&ready).exists() && uid_in_use(uid));

    let t = Instant::now();
    remove_user(&name, uid).await.unwrap();
    eprintln!("remove_user (kill + userdel + sweep): {:?}", t.elapsed());
    assert_eq!(sleeper.wait().await, ExitStatus::Signal(libc::SIGKILL as u8));
    assert!(!passwd_has(&name) && !user_exists(&name) && group_id(&name).is_none());
    assert!(procs_with_uid(uid, false).is_empty());
    for f in ["f", "d", "l", "r"] {
        assert!(
            fs::symlink_metadata(format!("/tmp/ehtest-{uid}.{f}")).is_err(),
            "/tmp/ehtest-{uid}.{f} left"
        );
    }
    assert!(!Path::new(&format!("/dev/shm/ehtest-{uid}")).exists());
    assert!(Path::new("/etc/passwd").exists(), "the symlink's target is untouched");
    remove_user(&name, uid).await.unwrap(); // idempotent
}

#[tokio::test]
async fn concurrent_creates() {
    if testutil::skip_unless_root("users::concurrent_creates") {
        return;
    }
    let uids: Vec<u32> = (0..6).map(|_| testutil::free_uid()).collect();
    let _guards: Vec<UserGuard> = uids.iter().map(|&u| UserGuard(format!("ehtest{u}"), u)).collect();
    let home = Path::new("/nonexistent/home");
    let t = Instant::now();
    let names: Vec<String> = uids.iter().map(|u| format!("ehtest{u}")).collect();
    let created = futures::future::join_all(names.iter().zip(&uids).map(|(n, &u)| create_user(n, u, &[], home))).await;
    eprintln!("6 concurrent create_user: {:?}", t.elapsed());
    for (r, name) in created.into_iter().zip(&names) {
        assert_eq!(r.unwrap().name, *name);
    }
    let t = Instant::now();
    let removed = futures::future::join_all(names.iter().zip(&uids).map(|(n, &u)| remove_user(n, u))).await;
    eprintln!("6 concurrent remove_user: {:?}", t.elapsed());
    assert!(removed.iter().all(|r| r.is_ok()), "{removed:?}");
    assert!(names.iter().all(|n| !passwd_has(n)));
}

#[tokio::test]
async fn refuses_mismatches_and_bad_input() {
    if testutil::skip_unless_root("users::refuses_mismatches_and_bad_input") {
        return;
    }
    assert!(remove_user("root", 0).await.is_err());
    assert!(remove_user("root", 4242).await.is_err(), "root's name with another uid");
    assert!(
        remove_user("ehtest-none", 1).await.is_err(),
        "uid 1 belongs to another user (daemon)"
    );
    assert!(create_user("-o", 200_000, &[], Path::new("/x")).await.is_err());
    assert!(
        create_user("ehtest-bad", 200_000, &["a,b".into()], Path::new("/x"))
            .await
            .is_err()
    );
    assert!(create_user("ehtest-bad", 200_000, &[], Path::new("rel")).await.is_err());
    let uid = testutil::free_uid();
    let name = format!("ehtest{uid}");
    let _guard = UserGuard(name.clone(), uid);
    let e = create_user(&name, uid, &["ehtest-nosuchgroup".into()], Path::new("/x"))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("useradd") && e.to_string().contains("ehtest-nosuchgroup"),
        "{e}"
    );
    assert!(
        !user_exists(&name) && group_id(&name).is_none(),
        "a failed create leaves nothing"
    );
    remove_user(&name, uid).await.unwrap(); // never existed: fine
    assert_eq!(group_id("root"), Some(0));
    assert!(user_exists("root") && !user_exists("ehtest-none") && is_root());
}
