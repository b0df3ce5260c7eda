//! Shell (§3.6): a command with byte-exact output, a failing command, and a
//! sleeping shell aborted (shell abort) or killed (sandbox kill). The pipes must
//! reach a clean end in all four.

use std::sync::Arc;
use std::time::Duration;

use super::cases::ShellCase;
use super::harness::{Check, Run, ensure, step, with_run};
use crate::contract::{Engine, EngineError, Sandbox};

/// How the stdin writer ends its part.
#[derive(Clone, Copy, PartialEq)]
enum Then {
    Nothing,
    AbortShell,
    KillSandbox,
}

/// Runs `command` in a new default shell; returns (stdout, stderr, wait result,
/// the shell for after-checks).
async fn run_shell(
    run: &mut Run,
    c: &ShellCase,
    command: &str,
    then: Then,
) -> Result<
    (
        Vec<u8>,
        Vec<u8>,
        Result<bool, EngineError>,
        Box<dyn crate::contract::Shell>,
    ),
    String,
> {
    run.new_sandbox_builder(&c.payload).await?;
    run.start().await?;
    let sandbox: Arc<dyn Sandbox> = run.sandbox();
    let shell = step("new-shell", sandbox.new_shell(&[], false).await)?;
    let stdin = shell.stdin().ok_or("the shell's stdin was already taken")?;
    let stdout = shell.stdout().ok_or("the shell's stdout was already taken")?;
    let stderr = shell.stderr().ok_or("the shell's stderr was already taken")?;
    let writer = async {
        ensure!(
            stdin.send(command.as_bytes().to_vec()).await,
            "writing the command to stdin failed: the shell closed it"
        );
        drop(stdin);
        match then {
            Then::Nothing => Ok(()),
            Then::AbortShell => {
                tokio::time::sleep(Duration::from_millis(1)).await;
                step("shell abort", shell.abort().await)
            }
            Then::KillSandbox => {
                tokio::time::sleep(Duration::from_millis(1)).await;
                step("sandbox kill", sandbox.kill().await)
            }
        }
    };
    let (written, out, err, waited) = tokio::join!(writer, stdout.read_to_end(), stderr.read_to_end(), shell.wait());
    written?;
    Ok((out, err, waited, shell))
}

pub async fn command(engine: &Arc<dyn Engine>, c: &ShellCase) -> Check {
    with_run(engine, &[], async |run: &mut Run| {
        let (out, err, waited, shell) = run_shell(run, c, &c.command, Then::Nothing).await?;
        ensure!(
            out == c.stdout.as_bytes(),
            "stdout was {:?}; expected exactly {:?}",
            String::from_utf8_lossy(&out),
            c.stdout
        );
        ensure!(
            err == c.stderr.as_bytes(),
            "stderr was {:?}; expected exactly {:?}",
            String::from_utf8_lossy(&err),
            c.stderr
        );
        ensure!(waited == Ok(true), "shell wait returned {waited:?}; expected true");
        let again = shell.abort().await;
        ensure!(
            again == Err(EngineError::ShellTerminated),
            "abort after exit returned {again:?}; expected shell-terminated"
        );
        Ok(())
    })
    .await
}

pub async fn bad_command(engine: &Arc<dyn Engine>, c: &ShellCase) -> Check {
    with_run(engine, &[], async |run: &mut Run| {
        let (_, _, waited, _) = run_shell(run, c, &c.bad_command, Then::Nothing).await?;
        ensure!(
            waited == Ok(false),
            "shell wait returned {waited:?}; expected false with no error"
        );
        Ok(())
    })
    .await
}

pub async fn abort_sleep_command(engine: &Arc<dyn Engine>, c: &ShellCase) -> Check {
    with_run(engine, &[], async |run: &mut Run| {
        let (_, _, waited, _) = run_shell(run, c, &c.sleep_command, Then::AbortShell).await?;
        ensure!(
            waited == Err(EngineError::ShellAborted),
            "shell wait returned {waited:?}; expected shell-aborted"
        );
        Ok(())
    })
    .await
}

pub async fn kill_sleep_command(engine: &Arc<dyn Engine>, c: &ShellCase) -> Check {
    with_run(engine, &[], async |run: &mut Run| {
        let (_, _, waited, _) = run_shell(run, c, &c.sleep_command, Then::KillSandbox).await?;
        ensure!(
            waited == Err(EngineError::ShellAborted),
            "shell wait returned {waited:?} after sandbox kill; expected shell-aborted"
        );
        Ok(())
    })
    .await
}
