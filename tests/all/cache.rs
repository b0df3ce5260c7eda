//! The compile cache: a second start loads from it; a corrupt, truncated or
//! foreign entry is compiled again and replaced; several processes at once;
//! `compile-cache = false` neither reads nor writes it.

use std::path::{Path, PathBuf};

use enginehost::policy::HostSettings;
use enginehost::runtime::Runtime;

use crate::common::{builtin_wasm, mock_payload, run_payload};

fn runtime(cache: &Path, enabled: bool) -> Runtime {
    Runtime::with_host(HostSettings {
        // Not the shared work directory: a runtime made on it replays its journal,
        // which would clean up the live tasks of the other tests' runtime.
        work_dir: Some(cache.with_extension("work")),
        cache_dir: Some(cache.to_path_buf()),
        compile_cache: Some(enabled),
        ..Default::default()
    })
    .unwrap()
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    found.sort();
    found
}

/// The mock, loaded in a fresh runtime, starts and runs a task.
async fn runs(runtime: &Runtime, cached: bool) {
    let plugin = runtime.load("mock", builtin_wasm("mock")).unwrap();
    assert_eq!(plugin.from_cache(), cached);
    let engine: std::sync::Arc<dyn enginehost::contract::Engine> =
        runtime.start_engine(&plugin, Default::default()).await.unwrap();
    let (result, log) = run_payload(&engine, mock_payload(0, "true", ""), &[]).await;
    assert!(result.unwrap().success(), "{log}");
}

#[tokio::test]
async fn a_second_start_loads_from_the_cache_and_a_bad_entry_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    runs(&runtime(&cache, true), false).await;
    let [entry] = entries(&cache).try_into().expect("one entry");
    assert!(entry.extension().is_some_and(|e| e == "cwasm"), "{}", entry.display());
    runs(&runtime(&cache, true), true).await;

    // One flipped byte in the compiled code: detected by the checksum, rebuilt.
    let mut bytes = std::fs::read(&entry).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(&entry, &bytes).unwrap();
    runs(&runtime(&cache, true), false).await;
    runs(&runtime(&cache, true), true).await;

    // Truncated, and an entry of something else under this key: both rebuilt.
    let good = std::fs::read(&entry).unwrap();
    std::fs::write(&entry, &good[..good.len() / 3]).unwrap();
    runs(&runtime(&cache, true), false).await;
    std::fs::write(&entry, b"not a compiled component").unwrap();
    runs(&runtime(&cache, true), false).await;
    assert_eq!(std::fs::read(&entry).unwrap().len(), good.len());
    assert_eq!(entries(&cache), vec![entry]);
}

#[tokio::test]
async fn no_cache_neither_reads_nor_writes() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    runs(&runtime(&cache, false), false).await;
    assert!(entries(&cache).is_empty());
    runs(&runtime(&cache, true), false).await;
    runs(&runtime(&cache, false), false).await;
}

#[test]
fn a_cache_others_can_write_is_not_used() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let plugin = runtime(&cache, true).load("mock", builtin_wasm("mock")).unwrap();
    assert!(!plugin.from_cache());
    assert!(entries(&cache).is_empty(), "nothing written to a world-writable cache");
}

#[test]
fn several_processes_starting_at_once_share_one_sound_entry() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let exe = env!("CARGO_BIN_EXE_enginehost");
    let config = dir.path().join("worker.toml");
    std::fs::write(
        &config,
        format!("[host]\ncache-dir = {:?}\n", cache.display().to_string()),
    )
    .unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            std::process::Command::new(exe)
                .args(["plugins", "--config"])
                .arg(&config)
                .env("ENGINEHOST_PLUGINS", "/nonexistent-default-plugin-dir")
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let found = entries(&cache);
    assert!(!found.is_empty());
    assert!(
        found.iter().all(|e| e.extension().is_some_and(|x| x == "cwasm")),
        "no temporary files left: {found:?}"
    );
    // Every entry is sound: a runtime loads each built-in from it.
    let runtime = runtime(&cache, true);
    for (file, wasm, _) in enginehost::plugin::BUILTIN {
        let name = file.trim_end_matches(".wasm");
        assert!(runtime.load(name, wasm).unwrap().from_cache(), "{name}");
    }
}
