//! Authentication of one request, as the real auth service's `authenticateHawk` does it: parse
//! the Hawk `Authorization` header, find the key (a static client's accessToken, or the
//! temporary accessToken derived from a certificate in `ext`), check the MAC over method,
//! host:port, path, payload hash and `ext`, the timestamp skew and the payload hash, then work out
//! the caller's scopes (certificate scopes, narrowed by `ext.authorizedScopes`).

use crate::reply::ApiError;
use crate::scopes;
use crate::state::State;
use crate::tempcreds::{Certificate, temp_access_token};
use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use chrono::Utc;
use serde_json::Value;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The clientId (for temporary credentials, the temporary clientId).
    pub client_id: String,
    /// The scopes the request may use.
    pub scopes: Vec<String>,
}

impl Caller {
    /// Check the caller's scopes against `req`: 403 `InsufficientScopes` naming what is missing.
    pub fn require(&self, req: &scopes::Requirement) -> Result<(), ApiError> {
        match req.unsatisfied(&self.scopes) {
            None => Ok(()),
            Some(missing) => Err(ApiError::insufficient_scopes(&missing)),
        }
    }
}

/// What authentication needs from the HTTP request.
pub struct AuthInput<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub host: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

const MAX_TEMP_CREDS_MS: i64 = 31 * 24 * 3600 * 1000;

/// Authenticate a request against `state`'s clients (an anonymous caller when the options allow
/// requests without `Authorization`).
pub fn authenticate(state: &State, input: &AuthInput) -> Result<Caller, ApiError> {
    if input.authorization.is_none()
        && let Some(query) = input.query
        && query.split('&').any(|p| p.starts_with("bewit="))
    {
        return authenticate_bewit(state, input, query);
    }
    let Some(authz) = input.authorization else {
        return match &state.options.anonymous_scopes {
            Some(scopes) => Ok(Caller {
                client_id: "anonymous".into(),
                scopes: scopes.clone(),
            }),
            None => Err(ApiError::auth_failed(
                "No Authorization header; Hawk credentials are required",
            )),
        };
    };
    let hawk_str = authz
        .strip_prefix("Hawk ")
        .ok_or_else(|| ApiError::auth_failed("Not a Hawk Authorization"))?;
    let header: hawk::Header = hawk_str
        .parse()
        .map_err(|e| ApiError::auth_failed(format!("Bad Hawk header: {e}")))?;
    let client_id = header
        .id
        .clone()
        .ok_or_else(|| ApiError::auth_failed("Hawk header has no id"))?;
    let ext = parse_ext(header.ext.as_deref())?;
    let (key_text, caller_scopes) = key_and_scopes(state, &client_id, &ext)?;
    check_mac(state, input, &header, &key_text)?;
    narrowed(client_id, caller_scopes, &ext)
}

/// A request signed by a `bewit` query parameter (a signed URL, as `buildSignedUrl` makes
/// them): the MAC covers the method, host:port, the path with the rest of the query, the expiry
/// and `ext`; an expired bewit is refused.
fn authenticate_bewit(state: &State, input: &AuthInput, query: &str) -> Result<Caller, ApiError> {
    let full = format!("{}?{query}", input.path);
    let (host, port) = host_port(state, input.host);
    let mut bewit = None;
    let request = hawk::RequestBuilder::new(input.method, &host, port, &full)
        .extract_bewit(&mut bewit)
        .map_err(|e| ApiError::auth_failed(format!("Bad bewit: {e}")))?
        .request();
    let bewit = bewit.ok_or_else(|| ApiError::auth_failed("Bad bewit: none"))?;
    let client_id = bewit.id().to_string();
    let ext = parse_ext(bewit.ext())?;
    let (key_text, caller_scopes) = key_and_scopes(state, &client_id, &ext)?;
    let key = hawk::Key::new(&key_text, hawk::SHA256).map_err(|e| ApiError::auth_failed(format!("bad key: {e}")))?;
    if !request.validate_bewit(&bewit, &key) {
        return Err(ApiError::auth_failed(
            "bewit is invalid or expired: wrong accessToken, host:port, path or expiry",
        ));
    }
    narrowed(client_id, caller_scopes, &ext)
}

/// The accessToken and scopes of `client_id`: a static client's, or a certificate's in `ext`.
fn key_and_scopes(state: &State, client_id: &str, ext: &Value) -> Result<(String, Vec<String>), ApiError> {
    match ext.get("certificate") {
        Some(cert) => certificate_key(state, client_id, cert),
        None => {
            let client = state
                .clients
                .get(client_id)
                .ok_or_else(|| ApiError::auth_failed(format!("Client `{client_id}` not found")))?;
            Ok((client.access_token.clone(), client.scopes.clone()))
        }
    }
}

/// The caller, its scopes narrowed by `ext.authorizedScopes`.
fn narrowed(client_id: String, mut caller_scopes: Vec<String>, ext: &Value) -> Result<Caller, ApiError> {
    if let Some(authorized) = ext.get("authorizedScopes") {
        let authorized: Vec<String> = serde_json::from_value(authorized.clone())
            .map_err(|_| ApiError::auth_failed("ext.authorizedScopes must be a list of strings"))?;
        let over = scopes::missing(&caller_scopes, &authorized);
        if !over.is_empty() {
            return Err(ApiError::auth_failed(format!(
                "ext.authorizedScopes oversteps your scopes: {over:?}"
            )));
        }
        caller_scopes = authorized;
    }
    Ok(Caller {
        client_id,
        scopes: caller_scopes,
    })
}

fn parse_ext(ext: Option<&str>) -> Result<Value, ApiError> {
    let Some(ext) = ext.filter(|e| !e.is_empty()) else {
        return Ok(Value::Object(Default::default()));
    };
    let engine = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let bytes = engine
        .decode(ext)
        .or_else(|_| general_purpose::URL_SAFE_NO_PAD.decode(ext.trim_end_matches('=')))
        .map_err(|_| ApiError::auth_failed("Hawk ext is not base64"))?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| ApiError::auth_failed("Hawk ext is not JSON"))?;
    if !v.is_object() {
        return Err(ApiError::auth_failed("Hawk ext must be a JSON object"));
    }
    Ok(v)
}

/// Validate the certificate for `client_id`; returns the temporary key and the certificate scopes.
fn certificate_key(state: &State, client_id: &str, cert: &Value) -> Result<(String, Vec<String>), ApiError> {
    let cert: Certificate = match cert {
        Value::String(s) => serde_json::from_str(s),
        other => serde_json::from_value(other.clone()),
    }
    .map_err(|e| ApiError::auth_failed(format!("ext.certificate is malformed: {e}")))?;
    if cert.version != 1 {
        return Err(ApiError::auth_failed("ext.certificate.version must be 1"));
    }
    let issuer_id = cert.issuer.clone().unwrap_or_else(|| client_id.to_string());
    if cert.issuer.as_deref() == Some(client_id) {
        return Err(ApiError::auth_failed(
            "ext.certificate.issuer must differ from the supplied clientId",
        ));
    }
    let issuer = state
        .clients
        .get(&issuer_id)
        .ok_or_else(|| ApiError::auth_failed(format!("ext.certificate issuer `{issuer_id}` not found")))?;
    if cert.signature != cert.expected_signature(&issuer.access_token, client_id) {
        return Err(ApiError::auth_failed("ext.certificate.signature is not valid"));
    }
    let now = Utc::now().timestamp_millis();
    let skew = state.options.certificate_skew.as_millis() as i64;
    if cert.start > now + skew {
        return Err(ApiError::auth_failed("ext.certificate.start is in the future"));
    }
    if cert.expiry < now - skew {
        return Err(ApiError::auth_failed("ext.certificate.expiry is in the past"));
    }
    if cert.expiry - cert.start > MAX_TEMP_CREDS_MS {
        return Err(ApiError::auth_failed("ext.certificate cannot last longer than 31 days"));
    }
    if cert.issuer.is_some() {
        let need = format!("auth:create-client:{client_id}");
        if !scopes::satisfies(&issuer.scopes, &need) {
            return Err(ApiError::auth_failed(format!(
                "ext.certificate issuer `{issuer_id}` lacks scope `{need}`"
            )));
        }
    }
    let over = scopes::missing(&issuer.scopes, &cert.scopes);
    if !over.is_empty() {
        return Err(ApiError::auth_failed(format!(
            "ext.certificate issuer `{issuer_id}` doesn't have sufficient scopes: {over:?}"
        )));
    }
    Ok((temp_access_token(&issuer.access_token, &cert.seed), cert.scopes))
}

fn check_mac(state: &State, input: &AuthInput, header: &hawk::Header, key_text: &str) -> Result<(), ApiError> {
    let key = hawk::Key::new(key_text, hawk::SHA256).map_err(|e| ApiError::auth_failed(format!("bad key: {e}")))?;
    let (host, port) = host_port(state, input.host);
    let hash = match &header.hash {
        Some(_) => {
            let ct = input
                .content_type
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            Some(
                hawk::PayloadHasher::hash(ct, hawk::SHA256, input.body)
                    .map_err(|e| ApiError::auth_failed(format!("cannot hash payload: {e}")))?,
            )
        }
        None => None,
    };
    // The Rust client signs the path without the query; Hawk proper signs both. Accept either.
    let with_query = input.query.map(|q| format!("{}?{q}", input.path));
    let paths = with_query.iter().map(String::as_str).chain(std::iter::once(input.path));
    for path in paths {
        let request = hawk::RequestBuilder::new(input.method, &host, port, path)
            .hash(hash.as_deref())
            .request();
        if request.validate_header(header, &key, state.options.hawk_skew) {
            return Ok(());
        }
    }
    Err(ApiError::auth_failed(
        "Hawk signature is invalid: wrong accessToken, host:port, path, payload hash or timestamp",
    ))
}

/// The host and port the client addressed, from the `Host` header or else the root URL.
fn host_port(state: &State, host_header: Option<&str>) -> (String, u16) {
    let fallback = state.root_url.trim_start_matches("http://");
    let hp = host_header.unwrap_or(fallback);
    match hp.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (h.to_string(), p.parse().unwrap_or(80)),
        _ => (hp.to_string(), 80),
    }
}
