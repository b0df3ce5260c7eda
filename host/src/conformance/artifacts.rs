//! Artifact (§3.5): extract a file, a missing file, a missing folder, a nested
//! folder (exact file set, relative `/` paths) and a handler interrupt.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use futures::FutureExt;

use super::cases::ArtifactCase;
use super::harness::{Check, Run, ensure, step, with_run};
use crate::contract::{ByteStream, Engine, EngineError, FileHandler, ResultSet};

async fn after_payload(
    engine: &Arc<dyn Engine>,
    c: &ArtifactCase,
    body: impl AsyncFnOnce(Arc<dyn ResultSet>) -> Check,
) -> Check {
    with_run(engine, &[], async |run: &mut Run| {
        ensure!(
            run.build_run(&c.payload).await?,
            "the artifact payload failed; it must succeed"
        );
        let result = run.result.clone().expect("wait stored the result set");
        body(result).await
    })
    .await
}

fn failing_handler() -> FileHandler {
    Arc::new(|_path: String, stream: ByteStream| {
        drop(stream);
        async { Err("this handler always fails".to_string()) }.boxed()
    })
}

pub async fn extract_text_file(engine: &Arc<dyn Engine>, c: &ArtifactCase) -> Check {
    after_payload(engine, c, async |rs| {
        let data = step("extract-file", rs.extract_file(&c.text_file_path).await)?
            .read_to_end()
            .await;
        let text = String::from_utf8_lossy(&data);
        ensure!(
            text.contains(&c.text),
            "{} holds {text:?}, which does not contain {:?}",
            c.text_file_path,
            c.text
        );
        Ok(())
    })
    .await
}

pub async fn extract_file_not_found(engine: &Arc<dyn Engine>, c: &ArtifactCase) -> Check {
    after_payload(engine, c, async |rs| {
        let r = rs.extract_file(&c.file_not_found_path).await.map(|_| ());
        ensure!(
            r == Err(EngineError::ResourceNotFound),
            "extract-file of a missing file returned {r:?}; expected resource-not-found"
        );
        Ok(())
    })
    .await
}

pub async fn extract_folder_not_found(engine: &Arc<dyn Engine>, c: &ArtifactCase) -> Check {
    after_payload(engine, c, async |rs| {
        let r = rs.extract_folder(&c.folder_not_found_path, failing_handler()).await;
        ensure!(
            r == Err(EngineError::ResourceNotFound),
            "extract-folder of a missing folder returned {r:?}; expected resource-not-found"
        );
        Ok(())
    })
    .await
}

pub async fn extract_nested_folder_path(engine: &Arc<dyn Engine>, c: &ArtifactCase) -> Check {
    for f in &c.nested_folder_files {
        ensure!(
            !f.starts_with('/') && !f.contains('\\'),
            "the cases file's nestedFolderFiles entry {f:?} is not relative with '/'"
        );
    }
    after_payload(engine, c, async |rs| {
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let (s, text) = (seen.clone(), c.text.clone());
        let handler: FileHandler = Arc::new(move |path: String, stream: ByteStream| {
            let (s, text) = (s.clone(), text.clone());
            async move {
                s.lock().expect("seen lock").push(path.clone());
                let data = stream.read_to_end().await;
                if String::from_utf8_lossy(&data).contains(&text) {
                    Ok(())
                } else {
                    Err(format!("{path} does not contain {text:?}"))
                }
            }
            .boxed()
        });
        step(
            "extract-folder",
            rs.extract_folder(&c.nested_folder_path, handler).await,
        )?;
        let seen = seen.lock().expect("seen lock").clone();
        for p in &seen {
            ensure!(
                !p.starts_with('/') && !p.contains('\\'),
                "the handler got path {p:?}: not relative with '/'"
            );
        }
        let got: BTreeSet<&String> = seen.iter().collect();
        let want: BTreeSet<&String> = c.nested_folder_files.iter().collect();
        ensure!(
            got == want && seen.len() == want.len(),
            "the handler got {seen:?}; expected exactly {want:?}"
        );
        Ok(())
    })
    .await
}

pub async fn extract_folder_handler_interrupt(engine: &Arc<dyn Engine>, c: &ArtifactCase) -> Check {
    after_payload(engine, c, async |rs| {
        let r = rs.extract_folder(&c.nested_folder_path, failing_handler()).await;
        ensure!(
            r == Err(EngineError::HandlerInterrupt),
            "extract-folder with a failing handler returned {r:?}; expected handler-interrupt"
        );
        Ok(())
    })
    .await
}
