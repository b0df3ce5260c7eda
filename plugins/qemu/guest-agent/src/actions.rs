//! The action loop: long-polls `GET /engine/v1/poll` and serves each action on its own thread,
//! answering on `POST /engine/v1/reply?id=<id>`: list-folder (JSON), get-artifact (the file,
//! streamed as chunks), kill-process (empty body); exec-shell is handed to `shell`.

use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use serde::Deserialize;

use crate::http::{self, ChunkedRequest};
use crate::task::{Agent, Backoff};
use crate::{log, shell, sys};

/// An action from `GET /engine/v1/poll`. Fields an action type doesn't use may be absent.
#[derive(Deserialize)]
pub struct Action {
    #[serde(default)]
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub tty: bool,
}

/// Polls forever. The host answers within ~30 s; the read timeout here is a safety net.
pub fn poll_loop(agent: &'static Agent) -> ! {
    let mut backoff = Backoff::new();
    loop {
        let why = match http::request("GET", "/engine/v1/poll", &[], b"", Duration::from_secs(90)) {
            Ok((200, body)) => match serde_json::from_slice::<Action>(&body) {
                Ok(action) => {
                    backoff = Backoff::new();
                    if action.kind != "none" {
                        thread::spawn(move || serve(agent, action));
                    }
                    continue;
                }
                Err(e) => format!("bad poll answer: {e}"),
            },
            Ok((status, _)) => format!("poll answered {status}"),
            Err(e) => format!("poll: {e}"),
        };
        if backoff.sleep() {
            log!("{why} (retrying)");
        }
    }
}

/// The reply path for an action id.
pub fn reply_path(id: &str) -> String {
    format!("/engine/v1/reply?id={}", http::encode_query(id))
}

fn serve(agent: &'static Agent, action: Action) {
    let path = reply_path(&action.id);
    let result = match action.kind.as_str() {
        "list-folder" => list_folder(&path, &action.path),
        "get-artifact" => get_artifact(&path, &action.path),
        "kill-process" => {
            agent.kill();
            reply(&path, &[], b"")
        }
        "exec-shell" => shell::run(agent, &path, &action.command, action.tty),
        other => {
            log!("unknown action type {other:?}");
            reply(&path, &[("X-Enginehost-Error", "unknown-action")], b"")
        }
    };
    if let Err(e) = result {
        log!("{} {:?}: {e}", action.kind, action.id);
    }
}

fn reply(path: &str, headers: &[(&str, &str)], body: &[u8]) -> io::Result<()> {
    let (status, _) = http::request("POST", path, headers, body, Duration::from_secs(60))?;
    if !(200..300).contains(&status) {
        log!("reply {path} answered {status}");
    }
    Ok(())
}

/// Relative paths are taken from the task's cwd (HOME).
fn resolve(path: &str) -> PathBuf {
    Path::new(sys::HOME).join(path)
}

/// Regular files under `path`, recursively, as absolute paths (symlinks to files count; symlinked
/// folders are not entered). `notFound` if `path` is missing or not a folder.
fn list_folder(reply_to: &str, path: &str) -> io::Result<()> {
    let root = resolve(path);
    let base = root.to_string_lossy().trim_end_matches('/').to_string();
    let mut files = Vec::new();
    let not_found = !root.is_dir();
    if !not_found {
        let mut stack = vec![(root, base)];
        while let Some((dir, shown)) = stack.pop() {
            let Ok(entries) = fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let shown = format!("{shown}/{name}");
                let Ok(ft) = entry.file_type() else { continue };
                if ft.is_dir() {
                    stack.push((entry.path(), shown));
                } else if ft.is_file() || (ft.is_symlink() && entry.path().is_file()) {
                    files.push(shown);
                }
            }
        }
        files.sort();
    }
    let body = serde_json::json!({ "files": files, "notFound": not_found }).to_string();
    reply(reply_to, &[("Content-Type", "application/json")], body.as_bytes())
}

/// The file's bytes as a chunked body, read 64 KiB at a time. Missing or not a regular file:
/// an empty body with `X-Enginehost-Error: file-not-found`. A read error mid-way drops the
/// connection without the terminating chunk, so the host sees a broken body, not a short file.
fn get_artifact(reply_to: &str, path: &str) -> io::Result<()> {
    // O_NONBLOCK so that a FIFO cannot hang the open; it is then refused as not a regular file.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(resolve(path))
        .and_then(|f| {
            if f.metadata()?.is_file() {
                Ok(f)
            } else {
                Err(io::Error::other("not a regular file"))
            }
        });
    let Ok(mut file) = file else {
        return reply(reply_to, &[("X-Enginehost-Error", "file-not-found")], b"");
    };
    let mut req = ChunkedRequest::start("POST", reply_to, &[("Content-Type", "application/octet-stream")])?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                req.abandon();
                return Err(e);
            }
        };
        req.chunk(&buf[..n])?;
    }
    let status = req.finish(Duration::from_secs(60))?;
    if !(200..300).contains(&status) {
        log!("reply {reply_to} answered {status}");
    }
    Ok(())
}
