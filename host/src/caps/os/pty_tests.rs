//! Tests of `pty.rs` through `spawn`: initial size, resize seen by the same shell, no stderr, clean EOF, ownership.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::super::spawn::{ExitStatus, Ids, Output, SpawnSpec, Stdin, spawn};
use super::super::testutil::{self, KillGroup};

fn pty_spec(program: &str, argv: &[&str], size: (u16, u16)) -> SpawnSpec {
    let mut spec = testutil::spec(program, argv);
    (spec.stdin, spec.stdout, spec.pty) = (Stdin::Pipe, Output::Pipe, Some(size));
    spec.env.push(("PS1".into(), "$ ".into()));
    spec
}

/// Reads until the accumulated output contains `needle` (5 s limit); returns everything read so far.
async fn read_until(r: &mut (dyn AsyncRead + Send + Unpin), acc: &mut String, needle: &str) {
    let read = async {
        let mut buf = [0u8; 1024];
        while !acc.contains(needle) {
            let n = r.read(&mut buf).await.unwrap();
            assert!(n > 0, "EOF before {needle:?}; got {acc:?}");
            acc.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .unwrap_or_else(|_| panic!("no {needle:?} in {acc:?}"));
}

#[tokio::test]
async fn size_resize_and_clean_eof() {
    let mut child = spawn(pty_spec("/bin/sh", &["sh"], (90, 20))).unwrap();
    let _kill = KillGroup(child.pid());
    assert!(child.take_stderr().is_none(), "stderr is the terminal");
    let (mut input, mut output) = (child.take_stdin().unwrap(), child.take_stdout().unwrap());
    let mut acc = String::new();
    input.write_all(b"stty size\n").await.unwrap();
    read_until(&mut output, &mut acc, "20 90").await;

    child.pty().unwrap().resize(100, 30).unwrap();
    input.write_all(b"stty size; tty\n").await.unwrap();
    read_until(&mut output, &mut acc, "30 100").await;
    read_until(&mut output, &mut acc, "/dev/pts/").await;

    input.write_all(b"exit 7\n").await.unwrap();
    let mut rest = Vec::new();
    let eof = tokio::time::timeout(Duration::from_secs(5), output.read_to_end(&mut rest)).await;
    eof.expect("EOF within 5 s")
        .expect("EIO after the slave closed reads as EOF");
    assert_eq!(child.wait().await, ExitStatus::Code(7));
}

/// Output written just before exit is still readable after the slave is closed.
#[tokio::test]
async fn output_before_exit_is_not_lost() {
    let mut child = spawn(pty_spec("/bin/sh", &["sh", "-c", "printf 'hello\\n'"], (80, 24))).unwrap();
    assert_eq!(child.wait().await, ExitStatus::Code(0));
    let out = testutil::read_all(child.take_stdout()).await;
    assert_eq!(out, "hello\r\n");
}

#[tokio::test]
async fn a_pty_needs_pipes() {
    let mut spec = pty_spec("/bin/true", &["true"], (80, 24));
    spec.stdin = Stdin::Null;
    assert_eq!(spawn(spec).err().unwrap().kind(), std::io::ErrorKind::InvalidInput);
}

/// With ids, the slave belongs to the task user, and the dropped child still gets it as its controlling terminal.
#[tokio::test]
async fn slave_is_owned_by_the_task_user() {
    if testutil::skip_unless_root("slave_is_owned_by_the_task_user") {
        return;
    }
    let mut spec = pty_spec(
        "/bin/sh",
        &["sh", "-c", "stat -c %u $(tty); stty size < /dev/tty"],
        (81, 25),
    );
    spec.ids = Some(Ids {
        uid: 61234,
        gid: 61234,
        groups: vec![],
    });
    let mut child = spawn(spec).unwrap();
    let out = testutil::read_all(child.take_stdout()).await;
    assert_eq!(out, "61234\r\n25 81\r\n");
    assert_eq!(child.wait().await, ExitStatus::Code(0));
}
