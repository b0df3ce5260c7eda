//! The Docker Engine API calls the engine makes, over the SDK's HTTP client on the
//! granted unix socket (one connection per call). Paths are unversioned: dockerd
//! serves its own API version, and every call here exists since API 1.25.
//! Errors carry dockerd's own message (`{"message": ...}`).

use enginehost_sdk::caps::CapError;
use enginehost_sdk::http::{self, HttpError, Incoming, Response, UnixClient, Upgraded};
use serde_json::{Value, json};

/// The most bytes of a JSON answer read.
const MAX_JSON: usize = 4 * 1024 * 1024;

/// Why a call failed.
#[derive(Debug)]
pub enum ApiError {
    /// The host refused the connection (the socket is not granted, ...).
    Connect(CapError),
    /// dockerd answered this status with this message.
    Status(u16, String),
    /// The exchange broke off, or the answer made no sense.
    Broken(String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Connect(e) => f.write_str(&e.message()),
            ApiError::Status(code, message) => write!(f, "{message} (HTTP {code})"),
            ApiError::Broken(why) => f.write_str(why),
        }
    }
}

impl From<HttpError> for ApiError {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Connect(c) => ApiError::Connect(c),
            other => ApiError::Broken(format!("talking to dockerd: {other}")),
        }
    }
}

impl ApiError {
    /// The status dockerd answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status(code, _) => Some(*code),
            _ => None,
        }
    }
}

impl From<ApiError> for enginehost_sdk::Error {
    /// A failure the operator must look at (dockerd down, the socket not granted).
    fn from(e: ApiError) -> Self {
        enginehost_sdk::Error::NonFatalInternalError(format!("docker: {e}"))
    }
}

/// `s` for a URL's path or query (RFC 3986 unreserved kept).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `s` for a URL's path, keeping `/`, `:` and `@` (an image reference).
pub fn escape_path(s: &str) -> String {
    escape(s).replace("%2F", "/").replace("%3A", ":").replace("%40", "@")
}

/// dockerd behind its socket.
#[derive(Clone)]
pub struct Docker {
    client: UnixClient,
}

impl Docker {
    /// A client of the socket at `path`.
    pub fn new(path: &str) -> Self {
        Docker {
            client: UnixClient::new(path),
        }
    }

    /// Sends a request; a status of 400 or more becomes `ApiError::Status`.
    pub async fn call(&self, method: &str, target: &str, body: Option<Value>) -> Result<Response<Incoming>, ApiError> {
        let body = body.map(|b| b.to_string().into_bytes());
        let response = self.client.send(http::request(method, target, body)?).await?;
        if response.status().as_u16() >= 400 {
            return Err(error_of(response).await);
        }
        Ok(response)
    }

    /// A call whose answer is JSON (or empty: `null`).
    pub async fn json(&self, method: &str, target: &str, body: Option<Value>) -> Result<Value, ApiError> {
        let response = self.call(method, target, body).await?;
        let bytes = http::read_body(response.into_body(), MAX_JSON).await?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| ApiError::Broken(format!("{method} {target}: not JSON: {e}")))
    }

    /// A call answered `101 Switching Protocols` (attach, exec start).
    pub async fn upgrade(&self, target: &str, body: Option<Value>) -> Result<Upgraded, ApiError> {
        let mut request = http::request("POST", target, body.map(|b| b.to_string().into_bytes()))?;
        let headers = request.headers_mut();
        headers.insert("connection", http::HeaderValue::from_static("Upgrade"));
        headers.insert("upgrade", http::HeaderValue::from_static("tcp"));
        match self.client.upgrade(request).await? {
            Ok(upgraded) => Ok(upgraded),
            Err(response) if response.status().as_u16() >= 400 => Err(error_of(response).await),
            Err(response) => Err(ApiError::Broken(format!(
                "POST {target}: expected 101 Switching Protocols, got {}",
                response.status()
            ))),
        }
    }

    /// `GET /_ping`.
    pub async fn ping(&self) -> Result<(), ApiError> {
        self.call("GET", "/_ping", None).await.map(|_| ())
    }
}

/// The error in a failed answer: dockerd's `message`, or the body's first line.
async fn error_of(response: Response<Incoming>) -> ApiError {
    let status = response.status().as_u16();
    let body = http::read_body(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let message = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["message"].as_str().map(String::from))
        .unwrap_or_else(|| String::from_utf8_lossy(&body).lines().next().unwrap_or("").to_string());
    ApiError::Status(status, message)
}

/// The body of a `POST /containers/create`.
pub struct ContainerSpec<'a> {
    pub image: &'a str,
    pub command: &'a [String],
    pub env: Vec<String>,
    pub labels: &'a Value,
    pub privileged: bool,
    pub init: bool,
    pub network: &'a str,
    pub extra_hosts: Vec<String>,
    pub mounts: Vec<Value>,
}

impl ContainerSpec<'_> {
    pub fn json(&self) -> Value {
        json!({
            "Image": self.image,
            "Cmd": self.command,
            "Env": self.env,
            "Labels": self.labels,
            "Tty": false,
            "OpenStdin": false,
            "AttachStdin": false,
            "AttachStdout": true,
            "AttachStderr": true,
            "HostConfig": {
                "Privileged": self.privileged,
                "Init": self.init,
                "NetworkMode": self.network,
                "ExtraHosts": self.extra_hosts,
                "Mounts": self.mounts,
            },
        })
    }
}
