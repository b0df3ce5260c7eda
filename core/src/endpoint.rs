//! What an endpoint does with a request: its routes (in the order the engine added
//! them), then its proxies (`/<name>/...`), and the bounds its HTTP/1.1 parser runs
//! with. Pure data and matching, no I/O; the server is the host's
//! (`caps::endpoint::server`). Generic over the proxy handler `H`, which the host
//! fills with its `Arc<dyn ProxyHandler>`.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, StatusCode};

/// The largest request head (request line and headers), in bytes.
pub const MAX_HEAD: usize = 64 * 1024;
/// The most headers one request may carry.
pub const MAX_HEADERS: usize = 100;
/// How long a client has to send a whole request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Sets an HTTP/1.1 server connection's bounds: head size and count, head deadline
/// (needs a timer: the caller gives it), buffer size; half-closed clients are kept.
pub fn configure_http1(builder: &mut hyper::server::conn::http1::Builder) {
    builder
        .header_read_timeout(HEAD_TIMEOUT)
        .max_header_size(MAX_HEAD)
        .max_buf_size(2 * MAX_HEAD)
        .max_headers(MAX_HEADERS)
        .half_close(true);
}

/// The most routes an endpoint takes.
pub const MAX_ROUTES: usize = 64;
/// The largest fixed answer body.
pub const MAX_FIXED_BODY: usize = 1024 * 1024;
/// The most headers one answer from an engine may carry.
pub const MAX_ANSWER_HEADERS: usize = 100;

/// A fixed answer.
#[derive(Clone)]
pub struct Fixed {
    /// The status line's code.
    pub status: StatusCode,
    /// The headers, in order.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The whole body.
    pub body: Bytes,
}

/// What a route does.
#[derive(Clone)]
pub enum Action {
    /// Answer this, without asking the engine.
    Fixed(Fixed),
    /// Hand the request to the engine's `handle-request`.
    Engine,
    /// Copy the body into the task log with this line prefix, then to the engine.
    BodyToLog(String),
}

/// One route.
#[derive(Clone)]
pub struct Route {
    method: Option<Method>,
    /// The path, or the prefix when `prefix`.
    path: String,
    prefix: bool,
    /// What the route does.
    pub action: Action,
}

/// What a request's path and method lead to.
pub enum Target<H> {
    /// A route for this path and method.
    Route(Action),
    /// A route has the path, but not for this method.
    WrongMethod,
    /// `/<name>/rest` for an attached proxy: the handler and `/rest`.
    Proxy(H, String),
    /// `/<name>/...` for no attached proxy, with the names that are.
    UnknownProxy(String, Vec<String>),
    /// Nothing here.
    NotFound,
}

/// An endpoint's routes and proxies (`H`: what answers a proxy's requests).
pub struct Routes<H> {
    routes: Vec<Route>,
    proxies: BTreeMap<String, H>,
}

impl<H> Default for Routes<H> {
    fn default() -> Self {
        Routes {
            routes: Vec::new(),
            proxies: BTreeMap::new(),
        }
    }
}

/// Checks a header list an engine gave.
pub fn headers(list: &[(String, String)]) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    if list.len() > MAX_ANSWER_HEADERS {
        return Err(format!("{} headers; at most {MAX_ANSWER_HEADERS}", list.len()));
    }
    list.iter()
        .map(|(name, value)| {
            let n = HeaderName::try_from(name.as_str()).map_err(|_| format!("{name:?} is not a header name"))?;
            let v = HeaderValue::try_from(value.as_str())
                .map_err(|_| format!("the value of header {name} is not a valid header value"))?;
            Ok((n, v))
        })
        .collect()
}

/// Checks a status an engine gave.
pub fn status(code: u16) -> Result<StatusCode, String> {
    match StatusCode::from_u16(code) {
        Ok(s) if code >= 200 => Ok(s),
        _ => Err(format!("{code} is not a final HTTP status (200-999)")),
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl<H: Clone> Routes<H> {
    /// Adds a route.
    pub fn add_route(&mut self, method: Option<&str>, path: &str, action: Action) -> Result<(), String> {
        if self.routes.len() >= MAX_ROUTES {
            return Err(format!(
                "the endpoint has {MAX_ROUTES} routes already, the most it takes"
            ));
        }
        if !path.starts_with('/') || path.contains('?') || path.contains(char::is_whitespace) {
            return Err(format!(
                "route path {path:?} must start with \"/\" and have no query or spaces, e.g. \"/engine/v1/poll\" or \
                 \"/engine/*\""
            ));
        }
        let method = match method {
            None => None,
            Some(m) => Some(
                Method::from_bytes(m.as_bytes())
                    .ok()
                    .filter(|_| !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()))
                    .ok_or_else(|| format!("{m:?} is not an HTTP method like \"GET\""))?,
            ),
        };
        let (path, prefix) = match path.strip_suffix('*') {
            Some(p) => (p.to_string(), true),
            None => (path.to_string(), false),
        };
        if let Some(name) = self.proxies.keys().find(|n| route_covers_name(&path, prefix, n)) {
            return Err(format!("route {path:?} would hide the proxy {name:?}"));
        }
        self.routes.push(Route {
            method,
            path,
            prefix,
            action,
        });
        Ok(())
    }

    /// Adds a proxy.
    pub fn add_proxy(&mut self, name: &str, handler: H) -> Result<(), String> {
        if !valid_name(name) {
            return Err(format!(
                "proxy name {name:?} is not [a-zA-Z0-9_-]+ (at most 64 characters), e.g. \"tcproxy\""
            ));
        }
        if self.proxies.contains_key(name) {
            return Err(format!("a proxy named {name:?} is attached already"));
        }
        if self.routes.iter().any(|r| route_covers_name(&r.path, r.prefix, name)) {
            return Err(format!("the name {name:?} is taken by a route of the endpoint"));
        }
        self.proxies.insert(name.to_string(), handler);
        Ok(())
    }

    /// Where a request for `path` (without the query) with `method` goes; `query`
    /// (with its `?`, or "") is kept on a proxy's path.
    pub fn target(&self, method: &Method, path: &str, query: &str) -> Target<H> {
        let mut wrong_method = false;
        for route in &self.routes {
            let hit = if route.prefix {
                path.starts_with(&route.path)
            } else {
                path == route.path
            };
            if !hit {
                continue;
            }
            match &route.method {
                Some(m) if m != method => wrong_method = true,
                _ => return Target::Route(route.action.clone()),
            }
        }
        if wrong_method {
            return Target::WrongMethod;
        }
        let Some(rest) = path.strip_prefix('/') else {
            return Target::NotFound;
        };
        let (name, tail) = match rest.split_once('/') {
            Some((name, tail)) => (name, format!("/{tail}")),
            None => (rest, "/".to_string()),
        };
        if name.is_empty() {
            return Target::NotFound;
        }
        match self.proxies.get(name) {
            Some(h) => Target::Proxy(h.clone(), format!("{tail}{query}")),
            None => Target::UnknownProxy(name.to_string(), self.proxies.keys().cloned().collect()),
        }
    }
}

/// Whether a route on `path` (a prefix when `prefix`) takes requests meant for
/// the proxy `name`.
fn route_covers_name(path: &str, prefix: bool, name: &str) -> bool {
    let proxy = format!("/{name}/");
    if prefix {
        proxy.starts_with(path) || path.starts_with(&proxy)
    } else {
        path.starts_with(&proxy) || path == format!("/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A proxy handler stand-in: routing only clones it.
    #[derive(Clone)]
    struct Nobody;

    fn kind(t: &Target<Nobody>) -> String {
        match t {
            Target::Route(Action::Engine) => "engine".into(),
            Target::Route(Action::Fixed(f)) => format!("fixed {}", f.status.as_u16()),
            Target::Route(Action::BodyToLog(p)) => format!("log {p}"),
            Target::WrongMethod => "405".into(),
            Target::Proxy(_, path) => format!("proxy {path}"),
            Target::UnknownProxy(name, known) => format!("unknown {name} {known:?}"),
            Target::NotFound => "404".into(),
        }
    }

    #[test]
    fn routes_first_in_order_then_proxies() {
        let mut r = Routes::<Nobody>::default();
        let fixed = Action::Fixed(Fixed {
            status: StatusCode::OK,
            headers: Vec::new(),
            body: Bytes::new(),
        });
        r.add_route(Some("GET"), "/engine/v1/execute", fixed).unwrap();
        r.add_route(Some("POST"), "/engine/v1/log", Action::BodyToLog("".into()))
            .unwrap();
        r.add_route(None, "/engine/*", Action::Engine).unwrap();
        r.add_proxy("my-proxy", Nobody).unwrap();
        let t = |m: &str, p: &str, q: &str| kind(&r.target(&Method::from_bytes(m.as_bytes()).unwrap(), p, q));
        assert_eq!(t("GET", "/engine/v1/execute", ""), "fixed 200");
        assert_eq!(
            t("POST", "/engine/v1/execute", ""),
            "engine",
            "the prefix route takes any method"
        );
        assert_eq!(t("POST", "/engine/v1/log", ""), "log ");
        assert_eq!(t("GET", "/engine/v1/poll", ""), "engine");
        assert_eq!(t("GET", "/my-proxy/v1/ping", "?a=1"), "proxy /v1/ping?a=1");
        assert_eq!(t("GET", "/my-proxy", ""), "proxy /");
        assert_eq!(t("GET", "/other/x", ""), "unknown other [\"my-proxy\"]");
        assert_eq!(t("GET", "/", ""), "404");
    }

    #[test]
    fn a_known_path_with_another_method_is_405() {
        let mut r = Routes::<Nobody>::default();
        r.add_route(Some("PUT"), "/engine/v1/success", Action::Engine).unwrap();
        assert_eq!(kind(&r.target(&Method::GET, "/engine/v1/success", "")), "405");
    }

    #[test]
    fn names_and_paths_are_checked() {
        let mut r = Routes::<Nobody>::default();
        assert!(
            r.add_route(None, "engine", Action::Engine)
                .unwrap_err()
                .contains("must start with")
        );
        assert!(
            r.add_route(Some("get"), "/x", Action::Engine)
                .unwrap_err()
                .contains("HTTP method")
        );
        r.add_route(None, "/engine/*", Action::Engine).unwrap();
        assert_eq!(
            r.add_proxy("engine", Nobody).unwrap_err(),
            "the name \"engine\" is taken by a route of the endpoint"
        );
        assert!(r.add_proxy("bad name", Nobody).is_err());
        r.add_proxy("tcproxy", Nobody).unwrap();
        assert!(r.add_proxy("tcproxy", Nobody).is_err());
        assert!(r.add_route(None, "/tcproxy/x", Action::Engine).is_err());
        for i in 1..MAX_ROUTES {
            r.add_route(None, &format!("/r{i}"), Action::Engine).unwrap();
        }
        assert!(r.add_route(None, "/one-too-many", Action::Engine).is_err());
    }

    #[test]
    fn answers_are_checked() {
        assert!(status(101).is_err() && status(99).is_err() && status(200).is_ok());
        assert!(headers(&[("content-type".into(), "x".into())]).is_ok());
        assert!(headers(&[("bad name".into(), "x".into())]).is_err());
        assert!(headers(&[("x".into(), "a\nb".into())]).is_err());
    }
}
