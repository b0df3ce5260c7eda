//! Artifact uploads for one run, each a `createArtifact` with the run's credentials:
//! files as `object` (through the object service, with `taskcluster-upload`) or `s3`
//! (a PUT to the URL the queue hands out); the backing log gzip-encoded; `error`,
//! `reference` and `link` artifacts. Every artifact expires with the task, never later.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};
use taskcluster::Credentials;
use taskcluster::chrono::{DateTime, Utc};

use super::client::{CallError, RunClient, json_time};
use crate::policy::ArtifactStorage;
use crate::worker::artifacts::ArtifactSpec;

/// Why an artifact is an `error` artifact (the queue's reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorReason {
    /// The file or directory was not there.
    FileMissing,
    /// Over a size or count limit.
    TooLarge,
    /// Could not be read or written.
    NotReadable,
}

impl ErrorReason {
    /// As the queue spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorReason::FileMissing => "file-missing-on-worker",
            ErrorReason::TooLarge => "too-large-file-on-worker",
            ErrorReason::NotReadable => "file-not-readable-on-worker",
        }
    }
}

/// Uploads for one run.
#[derive(Clone)]
pub struct Uploader<'a> {
    /// The run's client.
    pub run: &'a RunClient,
    /// `object` or `s3` for the task's files.
    pub storage: ArtifactStorage,
    /// The task's `expires`: every artifact's.
    pub expires: DateTime<Utc>,
    /// For `s3` PUTs.
    pub http: &'a reqwest::Client,
    /// Files are gzip-compressed and served with `Content-Encoding: gzip`.
    pub gzip: bool,
    /// Where compressed copies are made (the run's directory, outside its artifacts).
    pub scratch: &'a Path,
}

/// The content type of an artifact, from its name; text types say they are UTF-8
/// (`text/plain; charset=utf-8`), as generic-worker's do.
pub fn content_type(name: &str) -> String {
    let guessed = mime_guess::from_path(name)
        .first_raw()
        .unwrap_or("application/octet-stream");
    if guessed.starts_with("text/") {
        format!("{guessed}; charset=utf-8")
    } else {
        guessed.to_string()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectAnswer {
    name: String,
    project_id: String,
    upload_id: String,
    expires: DateTime<Utc>,
    credentials: Credentials,
}

fn other(message: String) -> CallError {
    CallError::Other(anyhow::anyhow!(message))
}

impl<'a> Uploader<'a> {
    fn expires(&self) -> String {
        json_time(&self.expires)
    }

    /// This uploader with artifacts expiring at `expires`, or with the task if sooner.
    pub fn expiring_by(&self, expires: DateTime<Utc>) -> Uploader<'a> {
        Uploader {
            expires: expires.min(self.expires),
            ..self.clone()
        }
    }

    /// This uploader for the payload's artifact `spec`: its own `expires` (never
    /// after the task's; the payload check refused later ones) and encoding.
    pub fn for_artifact(&self, spec: &ArtifactSpec) -> Uploader<'a> {
        let own = spec
            .expires
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        Uploader {
            expires: own.map_or(self.expires, |t| t.min(self.expires)),
            gzip: spec.content_encoding.as_deref() == Some("gzip"),
            ..self.clone()
        }
    }

    /// Uploads the file at `path` as artifact `name` with `content_type`, as the
    /// configured storage type (or gzip-encoded, see [`Uploader::gzip`]); returns
    /// its size.
    pub async fn file(&self, name: &str, path: &Path, content_type: &str) -> Result<u64, CallError> {
        if self.gzip {
            // Compressed outside the artifacts, where no task file can be in the way.
            let gz = tempfile::Builder::new()
                .prefix("upload-")
                .suffix(".gz")
                .tempfile_in(self.scratch)
                .map_err(|e| other(format!("a file to compress {name} into: {e}")))?;
            return self.gzipped(name, path, gz.path(), content_type).await;
        }
        match self.storage {
            ArtifactStorage::Object => self.object(name, path, content_type).await,
            ArtifactStorage::S3 => self.s3(name, path, content_type, None).await,
        }
    }

    async fn object(&self, name: &str, path: &Path, content_type: &str) -> Result<u64, CallError> {
        let body = json!({"storageType": "object", "expires": self.expires(), "contentType": content_type});
        let answer = self.run.create_artifact(name, &body).await?;
        let a: ObjectAnswer = serde_json::from_value(answer.clone())
            .map_err(|e| other(format!("createArtifact {name} answered something unexpected ({e})")))?;
        let object = self.run.deployment().object(&a.credentials)?;
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|e| other(format!("reading {}: {e}", path.display())))?
            .len();
        self.run
            .persist("uploading to the object service", || async {
                let file = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| other(format!("opening {}: {e}", path.display())))?;
                taskcluster_upload::upload_from_file(
                    &a.project_id,
                    &a.name,
                    content_type,
                    &a.expires,
                    file,
                    self.run.deployment().retry(),
                    &object,
                    &a.upload_id,
                )
                .await
                .map_err(|e| CallError::Other(e.context(format!("uploading {name} to the object service"))))
            })
            .await?;
        self.run.finish_artifact(name, &a.upload_id).await?;
        Ok(size)
    }

    /// An `s3` artifact: a PUT of the file with the same content type (and
    /// `encoding`, if any) to the URL the queue answers with; 5xx, 429 and network
    /// errors are tried again until shortly before the claim ends.
    async fn s3(&self, name: &str, path: &Path, content_type: &str, encoding: Option<&str>) -> Result<u64, CallError> {
        let body = json!({"storageType": "s3", "expires": self.expires(), "contentType": content_type});
        let answer = self.run.create_artifact(name, &body).await?;
        let url = answer
            .get("putUrl")
            .and_then(Value::as_str)
            .ok_or_else(|| other(format!("createArtifact {name} answered without a putUrl: {answer}")))?;
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|e| other(format!("reading {}: {e}", path.display())))?
            .len();
        self.run
            .persist("uploading an s3 artifact", || async {
                let file = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| other(format!("opening {}: {e}", path.display())))?;
                let mut request = self
                    .http
                    .put(url)
                    .header("content-type", content_type)
                    .header("content-length", size)
                    .body(reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file)));
                if let Some(encoding) = encoding {
                    request = request.header("content-encoding", encoding);
                }
                let response = request.send().await.map_err(|e| CallError::Other(e.into()))?;
                match response.error_for_status_ref() {
                    Ok(_) => Ok(size),
                    Err(e) => {
                        let text = response.text().await.unwrap_or_default();
                        Err(CallError::Other(
                            anyhow::Error::from(e).context(format!("PUT of {name}: {text}")),
                        ))
                    }
                }
            })
            .await
    }

    /// The task log at `path`, gzip-compressed into `gz`, as artifact `name` with
    /// `Content-Encoding: gzip` (an `s3` artifact: the object service has no content
    /// encoding, and Taskcluster's UI expects the log this way). Returns the
    /// compressed size.
    pub async fn gzipped_log(&self, name: &str, path: &Path, gz: &Path) -> Result<u64, CallError> {
        self.gzipped(name, path, gz, "text/plain; charset=utf-8").await
    }

    /// The file at `path`, gzip-compressed into `gz`, as an `s3` artifact with
    /// `Content-Encoding: gzip`.
    async fn gzipped(&self, name: &str, path: &Path, gz: &Path, content_type: &str) -> Result<u64, CallError> {
        let (from, to) = (path.to_path_buf(), gz.to_path_buf());
        tokio::task::spawn_blocking(move || gzip(&from, &to))
            .await
            .map_err(|e| other(format!("compressing {name}: {e}")))?
            .map_err(|e| other(format!("compressing {}: {e}", path.display())))?;
        self.s3(name, gz, content_type, Some("gzip")).await
    }

    /// An `error` artifact: a GET of `name` answers 424 with `reason` and `message`
    /// (cut to the queue's 4096 characters).
    pub async fn error(&self, name: &str, reason: ErrorReason, message: &str) -> Result<(), CallError> {
        let message: String = message.chars().take(4096).collect();
        let body = json!({
            "storageType": "error",
            "expires": self.expires(),
            "reason": reason.as_str(),
            "message": message,
        });
        self.run.create_artifact(name, &body).await.map(drop)
    }

    /// A `reference` artifact: a GET of `name` redirects to `url`.
    pub async fn reference(&self, name: &str, url: &str, content_type: &str) -> Result<(), CallError> {
        let body =
            json!({"storageType": "reference", "expires": self.expires(), "url": url, "contentType": content_type});
        self.run.create_artifact(name, &body).await.map(drop)
    }

    /// A `link` artifact: `name` serves artifact `target` of the same run.
    pub async fn link(&self, name: &str, target: &str, content_type: &str) -> Result<(), CallError> {
        let body =
            json!({"storageType": "link", "expires": self.expires(), "artifact": target, "contentType": content_type});
        self.run.create_artifact(name, &body).await.map(drop)
    }
}

fn gzip(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut input = std::fs::File::open(from)?;
    let output = std::fs::File::create(to)?;
    let mut encoder = flate2::write::GzEncoder::new(std::io::BufWriter::new(output), flate2::Compression::default());
    std::io::copy(&mut input, &mut encoder)?;
    let mut out = encoder.finish()?;
    std::io::Write::flush(&mut out)
}

/// The files of an extracted artifact named `name` under `dir`: itself if it is a
/// file, else every regular file below it as `name/relative/path`, sorted.
pub fn files_of(dir: &Path, name: &str) -> std::io::Result<Vec<(String, PathBuf)>> {
    let root = dir.join(name);
    let meta = std::fs::symlink_metadata(&root)?;
    if meta.is_file() {
        return Ok(vec![(name.to_string(), root)]);
    }
    let mut out = Vec::new();
    let mut pending = vec![(name.trim_end_matches('/').to_string(), root)];
    while let Some((prefix, path)) = pending.pop() {
        for entry in std::fs::read_dir(&path)? {
            let entry = entry?;
            let child = format!("{prefix}/{}", entry.file_name().to_string_lossy());
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push((child, entry.path()));
            } else if kind.is_file() {
                out.push((child, entry.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_become_one_artifact_per_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("out/sub")).unwrap();
        std::fs::write(dir.path().join("out/a.txt"), "a").unwrap();
        std::fs::write(dir.path().join("out/sub/b.json"), "b").unwrap();
        std::fs::write(dir.path().join("one.log"), "c").unwrap();
        let names: Vec<String> = files_of(dir.path(), "out")
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["out/a.txt", "out/sub/b.json"]);
        assert_eq!(files_of(dir.path(), "one.log").unwrap()[0].0, "one.log");
        assert!(files_of(dir.path(), "nothing").is_err());
        assert_eq!(content_type("out/sub/b.json"), "application/json");
        assert_eq!(content_type("report"), "application/octet-stream");
    }

    #[test]
    fn gzip_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("log"), dir.path().join("log.gz"));
        std::fs::write(&from, "line one\nline two\n").unwrap();
        gzip(&from, &to).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(std::fs::File::open(&to).unwrap()),
            &mut text,
        )
        .unwrap();
        assert_eq!(text, "line one\nline two\n");
    }
}
