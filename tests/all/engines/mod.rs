//! The script, native, docker and qemu engines beyond their conformance cases
//! (docker's and qemu's cases run here too, against a real dockerd and real VMs):
//! the seed's semantics and the decisions taken on its quirks (docs/engines/).

pub(crate) mod docker;
mod long_recovery;
pub(crate) mod native;
mod qemu;
mod script;

use std::sync::Arc;

use enginehost::contract::Engine;
use enginehost::plugin::BUILTIN;
use enginehost::policy::OperatorConfig;
use enginehost::runtime::EngineOptions;

use crate::common::*;

/// Starts built-in engine `name` from an operator config (its `[engines.NAME]`
/// and `[plugins.NAME.*]` tables).
pub async fn engine_from(name: &str, config: &str) -> Arc<dyn Engine> {
    let (_, wasm, _) = BUILTIN.iter().find(|(f, _, _)| *f == format!("{name}.wasm")).unwrap();
    let plugin = RUNTIME.load(name, wasm).unwrap();
    let config = OperatorConfig::parse(config).expect("the test's config parses");
    RUNTIME
        .start_engine(
            &plugin,
            EngineOptions {
                config: config.engine_config(name),
                grants: config.grants(name),
                ..Default::default()
            },
        )
        .await
        .expect("engine starts")
}

/// In a tty `shell`: `stty size`, a resize to 100×30 once that first answer is
/// out (frames and keystrokes may share a connection, and the shell may not
/// have run the first command yet), then `stty size; exit 4`. Checks that
/// the shell ends with exit 4 (success false), that the terminal showed the
/// new size and merged stderr, and that a resize after the end is
/// shell-terminated; returns everything the terminal showed (the first size
/// is the engine's default).
pub async fn resize_transcript(shell: &dyn enginehost::contract::Shell) -> String {
    use enginehost::contract::EngineError;
    let stdin = shell.stdin().unwrap();
    let mut stdout = shell.stdout().unwrap();
    let (seen_tx, mut seen) = tokio::sync::watch::channel(String::new());
    let out = tokio::spawn(async move {
        let mut text = Vec::new();
        while let Some(chunk) = stdout.next_chunk().await {
            text.extend(chunk);
            let _ = seen_tx.send(String::from_utf8_lossy(&text).into_owned());
        }
        String::from_utf8_lossy(&text).into_owned()
    });
    // `first-2` is in the output only once the shell ran the line (the
    // terminal's echo of it shows `first-$((1+1))`).
    assert!(stdin.send(b"stty size; echo first-$((1+1))\n".to_vec()).await);
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        seen.wait_for(|t| t.contains("first-2")),
    )
    .await
    .expect("the first `stty size` within 30 s")
    .unwrap();
    shell.set_size(100, 30).await.unwrap();
    assert!(stdin.send(b"stty size; exit 4\n".to_vec()).await);
    assert_eq!(shell.wait().await, Ok(false));
    let text = out.await.unwrap();
    assert!(text.contains("30 100"), "{text}");
    assert_eq!(shell.stderr().unwrap().read_to_end().await, b"", "a tty merges stderr");
    assert_eq!(shell.set_size(1, 1).await, Err(EngineError::ShellTerminated));
    text
}
