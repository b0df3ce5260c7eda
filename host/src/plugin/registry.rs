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
//! localhost registry, `insecure = true` or `--insecure`.
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
/// The media type of the config blob (wasm-pkg-tools' `WasmConfig`).
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// The largest plugin a registry may send (the shipped engines are a few MiB).
pub const MAX_PLUGIN_SIZE: u64 = 256 << 20;
/// The longest one push or pull may take.
pub const TRANSFER_TIMEOUT: Duration = Duration::from_secs(600);

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
/// as docker tells a registry from a Docker Hub namespace, and is neither an
/// existing path nor a name ending in `.wasm`. Docker Hub's short names (`library/x`) are not references here: give
/// `docker.io/...`.
pub fn is_reference(arg: &str) -> bool {
    let Some((host, rest)) = arg.split_once('/') else {
        return false;
    };
    !rest.is_empty()
        && !arg.ends_with(".wasm")
        && !host.starts_with('.')
        && (host.contains('.') || host.contains(':') || host == "localhost")
        && crate::policy::registry_name(host)
        && !std::path::Path::new(arg).exists()
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
        bail!("{arg} names no tag and no digest; add one, e.g. {arg}:1.0.0");
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
    match docker_credential::get_credential(server) {
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
        Err(e) => Err(anyhow!("docker's credentials for {registry}: {e}")),
    }
}

/// A client for `reference`'s registry, and the credentials to use there.
fn client(reference: &Reference, access: Access<'_>) -> anyhow::Result<(Client, RegistryAuth)> {
    let registry = reference.resolve_registry().to_string();
    let settings = access.registries.get(reference.registry());
    let plain = access.insecure || settings.is_some_and(|s| s.insecure) || is_local(&registry);
    let config = ClientConfig {
        protocol: if plain {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        // An index is refused, not resolved to some platform's entry.
        platform_resolver: None,
        connect_timeout: Some(Duration::from_secs(30)),
        read_timeout: Some(Duration::from_secs(60)),
        user_agent: concat!("enginehost/", env!("CARGO_PKG_VERSION")),
        ..ClientConfig::default()
    };
    let auth = credentials(reference.registry(), settings)?;
    Ok((Client::new(config), auth))
}

/// What the registry said, as the operator should read it.
fn registry_error(what: &str, reference: &Reference, e: oci_client::errors::OciDistributionError) -> anyhow::Error {
    let hint = match &e {
        oci_client::errors::OciDistributionError::AuthenticationFailure(_)
        | oci_client::errors::OciDistributionError::UnauthorizedError { .. }
        | oci_client::errors::OciDistributionError::ServerError { code: 401 | 403, .. } => {
            "; give credentials in [registries.\"HOST\"] of the config (username, password-file) or log in with docker"
        }
        oci_client::errors::OciDistributionError::RequestError(r) if r.is_connect() => {
            "; is the registry up, and does it speak TLS (plain HTTP needs --insecure or [registries.\"HOST\"] insecure = true)?"
        }
        _ => "",
    };
    // The registry's words, escaped and bounded, with their causes (a refused
    // connection, a TLS handshake).
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text = format!("{text}: {c}");
        cause = c.source();
    }
    anyhow!(
        "{what} {}: {}{hint}",
        reference.whole(),
        crate::text::shown(&text, 1000)
    )
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
    let (client, auth) = client(reference, access)?;
    let work = async {
        let (manifest, digest) = client
            .pull_image_manifest(reference, &auth)
            .await
            .map_err(|e| registry_error("pulling the manifest of", reference, e))?;
        if let Some(pinned) = reference.digest()
            && pinned != digest
        {
            bail!(
                "{}: the registry sent manifest {digest}, not {pinned}",
                reference.whole()
            );
        }
        let layer = wasm_layer(&manifest).with_context(|| {
            format!(
                "{} is not a wasm component artifact (push plugins with `enginehost push`)",
                reference.whole()
            )
        })?;
        let mut out = Bounded {
            bytes: Vec::with_capacity(layer.size as usize),
            limit: layer.size as u64,
        };
        client
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
    };
    tokio::time::timeout(TRANSFER_TIMEOUT, work)
        .await
        .map_err(|_| anyhow!("pulling {} took longer than {:?}", reference.whole(), TRANSFER_TIMEOUT))?
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
/// manifest's digest.
pub async fn push(wasm: &[u8], meta: &Metadata, reference: &Reference, access: Access<'_>) -> anyhow::Result<String> {
    let (client, auth) = client(reference, access)?;
    let layer_digest = format!("sha256:{}", super::trust::sha256_hex(wasm));
    // wasm-pkg-tools' WasmConfig (`created` is required by its readers).
    let config = serde_json::json!({
        "created": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [layer_digest],
    });
    let config = Config::new(serde_json::to_vec(&config)?, WASM_CONFIG.to_string(), None);
    let layers = [ImageLayer::new(wasm.to_vec(), WASM_LAYER.to_string(), None)];
    let annotations = BTreeMap::from([
        (
            "org.opencontainers.image.title".to_string(),
            format!("{}.wasm", meta.name),
        ),
        ("org.opencontainers.image.version".to_string(), meta.version.clone()),
        (ANNOTATION_ENGINE.to_string(), meta.name.clone()),
        (ANNOTATION_CONTRACT.to_string(), meta.contract.clone()),
    ]);
    let manifest = OciImageManifest::build(&layers, &config, Some(annotations));
    let work = async {
        client
            .push(reference, &layers, config, &auth, Some(manifest))
            .await
            .map_err(|e| registry_error("pushing", reference, e))?;
        client
            .fetch_manifest_digest(reference, &auth)
            .await
            .map_err(|e| registry_error("reading back the digest of", reference, e))
    };
    tokio::time::timeout(TRANSFER_TIMEOUT, work)
        .await
        .map_err(|_| anyhow!("pushing {} took longer than {:?}", reference.whole(), TRANSFER_TIMEOUT))?
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
