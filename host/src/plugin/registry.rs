//! Plugins as OCI artifacts: `enginehost push FILE REF`, `install REF` and
//! `plugins diff` with references. The layout is the one wasm-pkg-tools and the
//! `oci-wasm` crate use for a component: one `application/wasm` layer and a config
//! of media type `application/vnd.wasm.config.v0+json`; enginehost adds the
//! engine's name, version and contract as annotations. The registry protocol is
//! the `oci-client` crate's (distribution-spec v2, token and basic auth).
//!
//! Credentials: `[registries."HOST"]` of the operator's config, else docker's
//! `config.json` (`$DOCKER_CONFIG`, else `~/.docker/config.json`, credential
//! helpers included), else anonymous. TLS always, except plain HTTP for a
//! localhost registry, `insecure = true` or `--insecure`; over plain HTTP,
//! credentials go only to loopback or to a registry marked `insecure = true`.
//!
//! What a registry sends is bounded: one manifest (no index), one layer of at
//! most [`MAX_PLUGIN_SIZE`] whose sha256 must match, each transfer within
//! [`TRANSFER_TIMEOUT`]. The bytes are checked as any plugin file before they are
//! installed; where they came from is recorded as the lock entry's `source`
//! (`oci:HOST/REPO:TAG@sha256:…`, the manifest's digest).

use std::collections::BTreeMap;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::policy::RegistrySettings;
use anyhow::{Context as _, anyhow, bail};
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::metadata::Metadata;

/// The media type of the one layer: the component's bytes.
pub const WASM_LAYER: &str = "application/wasm";
/// The media type of the manifest enginehost pushes.
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The media type of the config blob (wasm-pkg-tools' `WasmConfig`).
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// The largest plugin a registry may send (the shipped engines are a few MiB).
pub const MAX_PLUGIN_SIZE: u64 = 256 << 20;
/// The longest one push or pull may take.
pub const TRANSFER_TIMEOUT: Duration = Duration::from_secs(600);
/// Every request to a registry (oci-client's and enginehost's own manifest GET):
/// the connect and per-read timeouts, and who is asking.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const USER_AGENT: &str = concat!("enginehost/", env!("CARGO_PKG_VERSION"));

/// Annotations enginehost writes on the manifest.
const ANNOTATION_ENGINE: &str = "dev.enginehost.engine";
const ANNOTATION_CONTRACT: &str = "dev.enginehost.contract";

/// How to reach registries: the operator's `[registries]` and `--insecure`.
#[derive(Clone, Copy)]
pub struct Access<'a> {
    pub registries: &'a BTreeMap<String, RegistrySettings>,
    /// Plain HTTP for every registry (`--insecure`).
    pub insecure: bool,
}

/// Whether `arg` is meant as an OCI reference rather than a file: it names a
/// registry host before its first `/` (has a `.` or a `:`, or is `localhost`),
/// as docker tells a registry from a Docker Hub namespace, and does not end in
/// `.wasm`. Docker Hub's short names (`library/x`) are not references here: give
/// `docker.io/...`. (The caller refuses an argument that is also an existing path.)
pub fn is_reference(arg: &str) -> bool {
    let Some((host, rest)) = arg.split_once('/') else {
        return false;
    };
    !rest.is_empty()
        && !arg.ends_with(".wasm")
        && !host.starts_with('.')
        && (host.contains('.') || host.contains(':') || host == "localhost")
        && crate::policy::registry_name(host)
}

/// Parses `arg` as a reference (`HOST/REPO[:TAG][@sha256:…]`), or says what one looks like.
pub fn parse(arg: &str) -> anyhow::Result<Reference> {
    let reference: Reference = arg.parse().map_err(|e| {
        anyhow!(
            "{arg} is not an OCI reference ({e}); give HOST[:PORT]/REPOSITORY:TAG or \
             HOST[:PORT]/REPOSITORY@sha256:DIGEST, e.g. localhost:5000/engines/mock:1.0.0"
        )
    })?;
    // The parser defaults the tag to `latest`; a plugin is named by version.
    let last = arg.rsplit('/').next().unwrap_or_default();
    if !last.contains(':') && !last.contains('@') {
        bail!(
            "{arg} is no file here, and as an OCI reference it names no tag and no digest; add one, e.g. {arg}:1.0.0"
        );
    }
    Ok(reference)
}

/// Whether `registry` (`host[:port]`) is this machine.
fn is_local(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) && !host.ends_with(':') => host,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The credentials for `registry`: the operator's, else docker's, else none.
fn credentials(registry: &str, settings: Option<&RegistrySettings>) -> anyhow::Result<RegistryAuth> {
    if let Some(RegistrySettings {
        username: Some(user),
        password_file: Some(file),
        ..
    }) = settings
    {
        let text = std::fs::read_to_string(file).with_context(|| {
            format!(
                "registries.\"{registry}\".password-file: cannot read {}",
                file.display()
            )
        })?;
        let password = text.lines().next().unwrap_or_default().to_string();
        if password.is_empty() {
            bail!(
                "registries.\"{registry}\".password-file: {} is empty; its first line is the password",
                file.display()
            );
        }
        return Ok(RegistryAuth::Basic(user.clone(), password));
    }
    // Docker keeps Docker Hub's credentials under its v1 index URL.
    let server = match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "https://index.docker.io/v1/",
        other => other,
    };
    // docker's own lookup: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    let docker_config = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| std::path::Path::new(&home).join(".docker")))
        .map(|dir| dir.join("config.json"));
    if !docker_config.is_some_and(|file| file.exists()) {
        return Ok(RegistryAuth::Anonymous);
    }
    // A credential helper is a program (it may prompt, or hang): bounded.
    let (tx, rx) = std::sync::mpsc::channel();
    let owned = server.to_string();
    std::thread::spawn(move || tx.send(docker_credential::get_credential(&owned)));
    let Ok(found) = rx.recv_timeout(Duration::from_secs(30)) else {
        tracing::warn!(
            registry,
            "docker's credential helper did not answer within 30 s; trying anonymously"
        );
        return Ok(RegistryAuth::Anonymous);
    };
    match found {
        Ok(docker_credential::DockerCredential::UsernamePassword(user, password)) => {
            tracing::debug!(registry, "credentials from docker's config.json");
            Ok(RegistryAuth::Basic(user, password))
        }
        Ok(docker_credential::DockerCredential::IdentityToken(_)) => {
            tracing::warn!(
                registry,
                "docker's config.json has an identity token for this registry, which enginehost cannot use; \
                 trying anonymously (give [registries] username and password-file)"
            );
            Ok(RegistryAuth::Anonymous)
        }
        Err(
            docker_credential::CredentialRetrievalError::ConfigNotFound
            | docker_credential::CredentialRetrievalError::NoCredentialConfigured,
        ) => Ok(RegistryAuth::Anonymous),
        Err(docker_credential::CredentialRetrievalError::ConfigReadError) => {
            tracing::warn!(registry, "docker's config.json cannot be read; trying anonymously");
            Ok(RegistryAuth::Anonymous)
        }
        // `credsStore` helpers fail for registries the user never logged in to.
        Err(e) => {
            tracing::warn!(
                registry,
                "docker's credentials: {}; trying anonymously",
                crate::text::shown(&e.to_string(), 500)
            );
            Ok(RegistryAuth::Anonymous)
        }
    }
}

/// A registry, as reached for one reference.
struct Remote {
    client: Client,
    auth: RegistryAuth,
    /// `https` or `http`.
    scheme: &'static str,
}

/// A client for `reference`'s registry, and the credentials to use there.
fn client(reference: &Reference, access: Access<'_>) -> anyhow::Result<Remote> {
    let registry = reference.resolve_registry().to_string();
    let settings = access.registries.get(reference.registry());
    let local = is_local(&registry);
    let marked_insecure = settings.is_some_and(|s| s.insecure);
    let plain = access.insecure || marked_insecure || local;
    let config = ClientConfig {
        protocol: if plain {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        // An index is refused, not resolved to some platform's entry.
        platform_resolver: None,
        connect_timeout: Some(CONNECT_TIMEOUT),
        read_timeout: Some(READ_TIMEOUT),
        user_agent: USER_AGENT,
        ..ClientConfig::default()
    };
    let mut auth = credentials(reference.registry(), settings)?;
    // Credentials never cross a network in clear: plain HTTP gets them only on
    // this machine, or where the operator's own table says `insecure = true`.
    if plain && !local && !marked_insecure && !matches!(auth, RegistryAuth::Anonymous) {
        tracing::warn!(
            registry = %registry,
            "--insecure: plain HTTP, so the credentials for this registry are not sent (set \
             [registries.\"HOST\"] insecure = true to send them anyway)"
        );
        auth = RegistryAuth::Anonymous;
    }
    Ok(Remote {
        client: Client::new(config),
        auth,
        scheme: if plain { "http" } else { "https" },
    })
}

/// What the registry said, as the operator should read it.
fn registry_error(what: &str, reference: &Reference, e: oci_client::errors::OciDistributionError) -> anyhow::Error {
    let hint = match &e {
        oci_client::errors::OciDistributionError::AuthenticationFailure(_)
        | oci_client::errors::OciDistributionError::UnauthorizedError { .. }
        | oci_client::errors::OciDistributionError::ServerError { code: 401 | 403, .. } => CREDENTIALS_HINT,
        oci_client::errors::OciDistributionError::RequestError(r) if r.is_connect() => {
            "; is the registry up and is its name right? (a registry on a trusted network that serves only plain \
             HTTP needs --insecure or [registries.\"HOST\"] insecure = true)"
        }
        _ => "",
    };
    anyhow!("{what} {}: {}{hint}", reference.whole(), with_causes(&e))
}

/// Where credentials go, for a registry that refused.
const CREDENTIALS_HINT: &str =
    "; give credentials in [registries.\"HOST\"] of the config (username, password-file) or log in with docker";

/// An error and its causes (a refused connection, a TLS handshake), escaped and
/// bounded: the registry's words.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text = format!("{text}: {c}");
        cause = c.source();
    }
    crate::text::shown(&text, 1000)
}

/// A plugin pulled from a registry.
pub struct Pulled {
    /// The component's bytes (sha256-checked against the manifest).
    pub wasm: Vec<u8>,
    /// The manifest's digest (`sha256:…`).
    pub digest: String,
    /// `oci:HOST/REPO[:TAG]@sha256:…`: the lock entry's source.
    pub source: String,
}

/// Pulls the plugin `reference` names (a digest in it must match).
pub async fn pull(reference: &Reference, access: Access<'_>) -> anyhow::Result<Pulled> {
    let remote = client(reference, access)?;
    let owned = reference.clone();
    // On its own task: a panic in the registry client is an error, not a crash.
    let work = tokio::spawn(async move {
        let reference = &owned;
        let (manifest, digest) = fetch_manifest(&remote, reference).await?;
        let layer = wasm_layer(&manifest).with_context(|| {
            format!(
                "{} is not a wasm component artifact (push plugins with `enginehost push`)",
                reference.whole()
            )
        })?;
        let mut out = Bounded {
            bytes: Vec::with_capacity((layer.size as usize).min(8 << 20)),
            limit: layer.size as u64,
        };
        remote
            .client
            .pull_blob(reference, layer, &mut out)
            .await
            .map_err(|e| registry_error("pulling the layer of", reference, e))?;
        if out.bytes.len() as u64 != layer.size as u64 {
            bail!(
                "{}: the layer has {} bytes, the manifest says {}",
                reference.whole(),
                out.bytes.len(),
                layer.size
            );
        }
        let named = match reference.tag() {
            Some(tag) => format!("{}/{}:{tag}", reference.registry(), reference.repository()),
            None => format!("{}/{}", reference.registry(), reference.repository()),
        };
        Ok(Pulled {
            wasm: out.bytes,
            source: format!("oci:{named}@{digest}"),
            digest,
        })
    });
    bounded("pulling", reference, work).await
}

/// Waits for `work` for at most [`TRANSFER_TIMEOUT`]; a panic becomes an error.
async fn bounded<T>(
    what: &str,
    reference: &Reference,
    work: tokio::task::JoinHandle<anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let abort = work.abort_handle();
    match tokio::time::timeout(TRANSFER_TIMEOUT, work).await {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => Err(anyhow!("{what} {}: the registry client failed: {e}", reference.whole())),
        Err(_) => {
            abort.abort();
            Err(anyhow!(
                "{what} {} took longer than {:?}",
                reference.whole(),
                TRANSFER_TIMEOUT
            ))
        }
    }
}

/// The largest manifest read (a plugin's is well under 1 KiB).
const MAX_MANIFEST_SIZE: usize = 4 << 20;
/// The manifest media types asked for: image manifests, never an index.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, \
                              application/vnd.docker.distribution.manifest.v2+json";

/// GETs the image manifest `reference` names, at most [`MAX_MANIFEST_SIZE`]
/// bytes (oci-client reads it whole), and its digest, checked against a pinned one.
async fn fetch_manifest(remote: &Remote, reference: &Reference) -> anyhow::Result<(OciImageManifest, String)> {
    let token = remote
        .client
        .auth(reference, &remote.auth, oci_client::RegistryOperation::Pull)
        .await
        .map_err(|e| registry_error("logging in to pull", reference, e))?;
    let target = reference.digest().or(reference.tag()).unwrap_or("latest");
    let url = format!(
        "{}://{}/v2/{}/manifests/{target}",
        remote.scheme,
        reference.resolve_registry(),
        reference.repository()
    );
    let http = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .user_agent(USER_AGENT)
        .build()?;
    let mut request = http.get(&url).header(reqwest::header::ACCEPT, MANIFEST_TYPES);
    request = match (&token, &remote.auth) {
        (Some(token), _) => request.bearer_auth(token),
        (None, RegistryAuth::Basic(user, password)) => request.basic_auth(user, Some(password)),
        _ => request,
    };
    let mut response = request
        .send()
        .await
        .map_err(|e| anyhow!("pulling the manifest of {}: {}", reference.whole(), with_causes(&e)))?;
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| anyhow!("pulling the manifest of {}: {}", reference.whole(), with_causes(&e)))?
    {
        if body.len() + chunk.len() > MAX_MANIFEST_SIZE {
            bail!(
                "{}: the registry sent a manifest of more than {} MiB; a plugin's is under 1 KiB",
                reference.whole(),
                MAX_MANIFEST_SIZE >> 20
            );
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        let hint = if matches!(status.as_u16(), 401 | 403) {
            CREDENTIALS_HINT
        } else {
            ""
        };
        bail!(
            "pulling the manifest of {}: the registry answered {status}: {}{hint}",
            reference.whole(),
            crate::text::shown(&String::from_utf8_lossy(&body), 1000)
        );
    }
    let digest = format!("sha256:{}", super::trust::sha256_hex(&body));
    if let Some(pinned) = reference.digest()
        && pinned != digest
    {
        bail!(
            "{}: the registry sent manifest {digest}, not {pinned}",
            reference.whole()
        );
    }
    let manifest: OciImageManifest = serde_json::from_slice(&body).map_err(|e| {
        anyhow!(
            "{}: not an image manifest ({e}); a plugin is one manifest with one application/wasm layer",
            reference.whole()
        )
    })?;
    if let Some(media_type) = &manifest.media_type
        && !MANIFEST_TYPES.contains(media_type.as_str())
    {
        bail!(
            "{}: the manifest's media type is {}; a plugin is an image manifest, not an index",
            reference.whole(),
            crate::text::shown(media_type, 100)
        );
    }
    Ok((manifest, digest))
}

/// The manifest's one `application/wasm` layer, checked.
fn wasm_layer(manifest: &OciImageManifest) -> anyhow::Result<&oci_client::manifest::OciDescriptor> {
    if manifest.config.media_type != WASM_CONFIG {
        bail!(
            "its config's media type is {}, not {WASM_CONFIG}",
            crate::text::shown(&manifest.config.media_type, 100)
        );
    }
    let [layer] = manifest.layers.as_slice() else {
        bail!(
            "it has {} layers; a plugin has one, {WASM_LAYER}",
            manifest.layers.len()
        );
    };
    if layer.media_type != WASM_LAYER {
        bail!(
            "its layer's media type is {}, not {WASM_LAYER}",
            crate::text::shown(&layer.media_type, 100)
        );
    }
    if layer.size < 0 || layer.size as u64 > MAX_PLUGIN_SIZE {
        bail!(
            "its layer claims {} bytes; plugins are at most {} MiB",
            layer.size,
            MAX_PLUGIN_SIZE >> 20
        );
    }
    Ok(layer)
}

/// Pushes `wasm` (the plugin `meta` describes) as `reference`; returns the
/// manifest's digest (of the bytes sent, not of what the registry says).
pub async fn push(wasm: &[u8], meta: &Metadata, reference: &Reference, access: Access<'_>) -> anyhow::Result<String> {
    let remote = client(reference, access)?;
    let layer_digest = format!("sha256:{}", super::trust::sha256_hex(wasm));
    // wasm-pkg-tools' WasmConfig (`created` is required by its readers).
    let config = serde_json::json!({
        "created": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [layer_digest],
    });
    let config = Config::new(serde_json::to_vec(&config)?, WASM_CONFIG.to_string(), None);
    let layer = ImageLayer::new(wasm.to_vec(), WASM_LAYER.to_string(), None);
    let annotations = BTreeMap::from([
        (
            "org.opencontainers.image.title".to_string(),
            format!("{}.wasm", meta.name),
        ),
        ("org.opencontainers.image.version".to_string(), meta.version.clone()),
        (ANNOTATION_ENGINE.to_string(), meta.name.clone()),
        (ANNOTATION_CONTRACT.to_string(), meta.contract.clone()),
    ]);
    let mut manifest = OciImageManifest::build(std::slice::from_ref(&layer), &config, Some(annotations));
    manifest.media_type = Some(OCI_MANIFEST.to_string());
    let body = serde_json::to_vec(&manifest)?;
    let digest = format!("sha256:{}", super::trust::sha256_hex(&body));
    let owned = reference.clone();
    let work = tokio::spawn(async move {
        let reference = &owned;
        let client = &remote.client;
        client
            .store_auth_if_needed(reference.resolve_registry(), &remote.auth)
            .await;
        let fail = |e| registry_error("pushing", reference, e);
        client
            .push_blob(reference, layer.data, &layer_digest)
            .await
            .map_err(fail)?;
        client
            .push_blob(reference, config.data, &manifest.config.digest)
            .await
            .map_err(fail)?;
        client
            .push_manifest_raw(reference, body, reqwest::header::HeaderValue::from_static(OCI_MANIFEST))
            .await
            .map_err(fail)?;
        Ok(digest)
    });
    bounded("pushing", reference, work).await
}

/// A `Vec` that refuses more than `limit` bytes: a registry that sends more than
/// its manifest said is cut off, not buffered.
struct Bounded {
    bytes: Vec<u8>,
    limit: u64,
}

impl tokio::io::AsyncWrite for Bounded {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.bytes.len() as u64 + buf.len() as u64 > this.limit {
            return Poll::Ready(Err(std::io::Error::other(format!(
                "the registry sent more than the {} bytes the manifest says",
                this.limit
            ))));
        }
        this.bytes.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_references_from_files() {
        assert!(is_reference("localhost:5000/engines/mock:1.0.0"));
        assert!(is_reference("ghcr.io/acme/engine@sha256:00"));
        assert!(is_reference("localhost/x:1"));
        assert!(!is_reference("mock.wasm"));
        assert!(!is_reference("plugins/mock.wasm"));
        assert!(!is_reference("acme/engine:1"));
        assert!(!is_reference("./a.b/x.wasm"));
        assert!(!is_reference("build.out/x.wasm"));
    }

    fn manifest(config: &str, layers: &[(&str, i64)]) -> OciImageManifest {
        OciImageManifest {
            config: oci_client::manifest::OciDescriptor {
                media_type: config.into(),
                ..Default::default()
            },
            layers: layers
                .iter()
                .map(|(media_type, size)| oci_client::manifest::OciDescriptor {
                    media_type: media_type.to_string(),
                    size: *size,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn only_one_bounded_wasm_layer_is_a_plugin() {
        assert!(wasm_layer(&manifest(WASM_CONFIG, &[(WASM_LAYER, 1000)])).is_ok());
        let refused = [
            (
                manifest("application/vnd.oci.image.config.v1+json", &[(WASM_LAYER, 10)]),
                "config's media type",
            ),
            (manifest(WASM_CONFIG, &[(WASM_LAYER, 10), (WASM_LAYER, 10)]), "2 layers"),
            (manifest(WASM_CONFIG, &[]), "0 layers"),
            (
                manifest(WASM_CONFIG, &[("application/vnd.oci.image.layer.v1.tar", 10)]),
                "layer's media type",
            ),
            (
                manifest(WASM_CONFIG, &[(WASM_LAYER, (MAX_PLUGIN_SIZE + 1) as i64)]),
                "at most 256 MiB",
            ),
            (manifest(WASM_CONFIG, &[(WASM_LAYER, -1)]), "claims -1 bytes"),
        ];
        for (m, why) in refused {
            let e = wasm_layer(&m).unwrap_err().to_string();
            assert!(e.contains(why), "{why}: {e}");
        }
    }

    #[tokio::test]
    async fn a_layer_longer_than_its_manifest_says_is_cut_off() {
        use tokio::io::AsyncWriteExt as _;
        let mut out = Bounded {
            bytes: Vec::new(),
            limit: 10,
        };
        out.write_all(b"0123456789").await.unwrap();
        let e = out.write_all(b"x").await.unwrap_err();
        assert!(e.to_string().contains("more than the 10 bytes"), "{e}");
        assert_eq!(out.bytes.len(), 10);
    }

    #[test]
    fn local_registries() {
        for r in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
        ] {
            assert!(is_local(r), "{r}");
        }
        for r in ["ghcr.io", "10.0.0.1:5000", "localhost.example.com:5000", "[::2]:5000"] {
            assert!(!is_local(r), "{r}");
        }
    }

    #[test]
    fn references_need_a_tag_or_digest() {
        assert!(parse("localhost:5000/engines/mock").is_err());
        let r = parse("localhost:5000/engines/mock:1.0.0").unwrap();
        assert_eq!(r.registry(), "localhost:5000");
        assert_eq!(r.repository(), "engines/mock");
    }
}
