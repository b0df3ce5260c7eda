//! The plugin directory: each bad file is rejected with its reason, the rest load.

use enginehost::plugin::{Catalog, Origin, Rejection};

use crate::common::*;

#[test]
fn bad_files_are_rejected_with_reasons_and_the_rest_load() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("garbage.wasm"), b"this is not wasm").unwrap();
    std::fs::write(p.join("core.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(p.join("notes.txt"), b"ignored: not *.wasm").unwrap();
    let trap = std::fs::read(fixture_path("fixture_trap")).unwrap();
    std::fs::write(p.join("trap-a.wasm"), &trap).unwrap();
    std::fs::write(p.join("trap-b.wasm"), &trap).unwrap();
    std::fs::write(
        p.join("broken.wasm"),
        std::fs::read(fixture_path("fixture_broken_env")).unwrap(),
    )
    .unwrap();

    let mut catalog = Catalog::scan(Some(p)).unwrap();
    catalog.compile_all(&RUNTIME);
    assert_eq!(
        catalog.names(),
        vec!["broken-env", "docker", "mock", "native", "qemu", "script"]
    );
    let rejected: Vec<(String, &Rejection)> = catalog
        .rejected()
        .iter()
        .map(|(path, r)| (path.file_name().unwrap().to_string_lossy().into_owned(), r))
        .collect();
    assert_eq!(rejected.len(), 4, "{rejected:?}");
    assert_eq!(rejected[0], ("core.wasm".into(), &Rejection::CoreModule));
    assert_eq!(rejected[1], ("garbage.wasm".into(), &Rejection::NotWasm));
    assert_eq!(
        rejected[2],
        (
            "trap-a.wasm".into(),
            &Rejection::DuplicateName {
                name: "fixture-trap".into(),
                other: p.join("trap-b.wasm")
            }
        )
    );
    assert_eq!(
        rejected[3],
        (
            "trap-b.wasm".into(),
            &Rejection::DuplicateName {
                name: "fixture-trap".into(),
                other: p.join("trap-a.wasm")
            }
        )
    );
    let message = rejected[2].1.to_string();
    assert!(
        message.contains("trap-b.wasm") && message.contains("fixture-trap"),
        "{message}"
    );
}

#[test]
fn a_directory_plugin_overrides_the_builtin_of_its_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("my-mock.wasm"), builtin_wasm("mock")).unwrap();
    let catalog = Catalog::scan(Some(dir.path())).unwrap();
    let mock = catalog.get("mock").unwrap();
    assert_eq!(mock.origin, Origin::File(dir.path().join("my-mock.wasm")));
    assert!(mock.overrides_builtin);
}

#[test]
fn missing_metadata_and_unreadable_directory_are_reported() {
    // A component without the section: strip it by renaming the section's name bytes.
    let mut wasm = builtin_wasm("mock").to_vec();
    let name = b"enginehost:metadata";
    let at = wasm
        .windows(name.len())
        .position(|w| w == name)
        .expect("the section is there");
    wasm[at..at + name.len()].copy_from_slice(b"enginehost:metadatX");
    assert_eq!(enginehost::plugin::metadata::read(&wasm), Err(Rejection::NoMetadata));

    let err = Catalog::scan(Some(std::path::Path::new("/no/such/dir"))).err().unwrap();
    assert!(err.to_string().contains("/no/such/dir"), "{err}");
}
