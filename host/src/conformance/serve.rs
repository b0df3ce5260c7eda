//! The file server the suite runs for a cases file's `serve` files (the seed's
//! `httptest` server of `testdata/`): HTTP/1.1 GET on loopback, one response per
//! connection, 404 for anything else. `.tar.gz` entries are built once, in memory.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::cases::Served;

/// A running server; stops when dropped.
pub struct FileServer {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn tar_gz(files: &BTreeMap<String, String>) -> std::io::Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (path, text) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o755);
        header.set_cksum();
        tar.append_data(&mut header, path, text.as_bytes())?;
    }
    tar.into_inner()?.finish()
}

impl FileServer {
    /// Serves `files` (path without the leading `/` → contents).
    pub async fn start(files: &BTreeMap<String, Served>) -> std::io::Result<FileServer> {
        let mut bodies = BTreeMap::new();
        for (path, served) in files {
            let body = match served {
                Served::Text(text) => text.as_bytes().to_vec(),
                Served::TarGz { tar_gz: entries } => tar_gz(entries)?,
            };
            bodies.insert(format!("/{}", path.trim_start_matches('/')), body);
        }
        let bodies = Arc::new(bodies);
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let bodies = bodies.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let line = String::from_utf8_lossy(&head);
                    let path = line.split_whitespace().nth(1).unwrap_or("/");
                    let path = path.split('?').next().unwrap_or(path);
                    let (status, body) = match bodies.get(path) {
                        Some(body) => ("200 OK", body.as_slice()),
                        None => ("404 Not Found", &b"not found"[..]),
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(body).await;
                });
            }
        });
        Ok(FileServer { url, task })
    }

    /// The base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }
}
