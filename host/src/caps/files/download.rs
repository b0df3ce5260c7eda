//! `files.download`: the host fetches an `http://` or `https://` URL into the
//! task's sandbox directory; the bytes never enter the engine.
//!
//! Every hop (the URL and each redirect, at most [`MAX_REDIRECTS`]) is checked
//! against the network policy before it is connected to: a name must be allowed
//! for lookup, and each address it resolves to for connecting (so a granted name
//! cannot lead to a private address the operator did not grant); the connection
//! then goes to exactly those addresses. No proxy from the environment is used.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use tokio::io::AsyncWriteExt;

use crate::caps::net::{self, Unreachable};
use crate::caps::scope::TaskScope;
use crate::caps::{CapResult, denied, invalid, os_error};
use crate::policy::Policy;

/// Redirects followed.
const MAX_REDIRECTS: usize = 5;
/// The largest body written (more is refused, the partial file removed).
pub(crate) const MAX_DOWNLOAD: u64 = 8 << 30;
/// How long connecting, or a read without progress, may take.
const STALL: Duration = Duration::from_secs(60);

/// The addresses `url`'s host may be reached at, or the denial.
async fn allowed_addrs(policy: &Policy, url: &Url) -> CapResult<(String, Vec<SocketAddr>)> {
    let host = url
        .host_str()
        .ok_or_else(|| invalid(format!("the URL {url} has no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| invalid(format!("the URL {url} has no port")))?;
    match net::allowed_addrs(&policy.plugin_net(), &host, port).await {
        Ok(addrs) => Ok((host, addrs)),
        Err(Unreachable::Denied(d)) => denied(policy, d),
        Err(Unreachable::Lookup(e)) => Err(os_error("download", e)),
    }
}

/// Downloads `url` into `dest` (relative to the sandbox); returns the size.
pub(crate) async fn download(scope: &Arc<TaskScope>, url: &str, dest: &str) -> CapResult<u64> {
    let policy = scope.engine.policy.clone();
    let mut url = Url::parse(url).map_err(|e| invalid(format!("'{url}' is not a URL: {e}")))?;
    TaskScope::check_relative(dest)?;
    for _ in 0..=MAX_REDIRECTS {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "{url}: only http:// and https:// URLs can be downloaded"
            )));
        }
        let (host, addrs) = allowed_addrs(&policy, &url).await?;
        scope.live()?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(STALL)
            .read_timeout(STALL)
            .resolve_to_addrs(&host, &addrs)
            .build()
            .map_err(|e| os_error("preparing the HTTP client", e))?;
        let mut response = client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| os_error(&format!("fetching {url}"), e))?;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| os_error(&format!("fetching {url}"), format!("{status} without a Location")))?;
            url = url
                .join(location)
                .map_err(|e| invalid(format!("{url} redirects to '{location}', which is not a URL: {e}")))?;
            continue;
        }
        if !status.is_success() {
            return Err(os_error(&format!("fetching {url}"), format!("HTTP status {status}")));
        }
        if response.content_length().is_some_and(|n| n > MAX_DOWNLOAD) {
            return Err(invalid(format!(
                "{url} is larger than the {MAX_DOWNLOAD}-byte download limit"
            )));
        }
        let sandbox = scope.sandbox()?;
        let file = sandbox.open_file(dest, true)?;
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(|e| os_error(&format!("setting the mode of {dest}"), e))?;
        let mut file = tokio::fs::File::from_std(file);
        let mut written = 0u64;
        let result = async {
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| os_error(&format!("reading {url}"), e))?
            {
                written += chunk.len() as u64;
                if written > MAX_DOWNLOAD {
                    return Err(invalid(format!(
                        "{url} is larger than the {MAX_DOWNLOAD}-byte download limit"
                    )));
                }
                file.write_all(&chunk)
                    .await
                    .map_err(|e| os_error(&format!("writing {dest}"), e))?;
            }
            file.flush().await.map_err(|e| os_error(&format!("writing {dest}"), e))
        }
        .await;
        if let Err(e) = result {
            let _ = sandbox.dir.remove_file(dest);
            return Err(e);
        }
        return Ok(written);
    }
    Err(os_error(
        &format!("fetching {url}"),
        format!("more than {MAX_REDIRECTS} redirects"),
    ))
}
