//! The pages a person opens, embedded in the binary: `shell.html` (xterm.js) and
//! `display.html` (noVNC), their scripts and styles, and the vendored libraries
//! with their licences (host/assets/interactive/vendor, re-made by its vendor.sh).
//! Nothing is loaded from elsewhere: the policy below allows only this server.

use hyper::header::HeaderValue;
use hyper::{Response, StatusCode};

use super::routes::{Body, respond};

macro_rules! asset {
    ($name:literal, $type:expr) => {
        (
            $name,
            $type,
            include_bytes!(concat!("../../../assets/interactive/", $name)).as_slice(),
        )
    };
    (vendor $name:literal, $type:expr) => {
        (
            $name,
            $type,
            include_bytes!(concat!("../../../assets/interactive/vendor/", $name)).as_slice(),
        )
    };
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// The pages, at the top.
const PAGES: &[(&str, &str, &[u8])] = &[asset!("shell.html", HTML), asset!("display.html", HTML)];

/// Everything under `assets/`.
const ASSETS: &[(&str, &str, &[u8])] = &[
    asset!("common.js", JS),
    asset!("shell.js", JS),
    asset!("display.js", JS),
    asset!("interactive.css", CSS),
    asset!(vendor "xterm.mjs", JS),
    asset!(vendor "xterm.css", CSS),
    asset!(vendor "addon-fit.mjs", JS),
    asset!(vendor "novnc.mjs", JS),
    asset!(vendor "VERSIONS", TEXT),
    asset!(vendor "LICENSE.xterm", TEXT),
    asset!(vendor "LICENSE.xterm-addon-fit", TEXT),
    asset!(vendor "LICENSE.novnc", TEXT),
    asset!(vendor "LICENSE.novnc.MPL-2.0", TEXT),
    asset!(vendor "LICENSE.novnc.BSD-2-Clause", TEXT),
    asset!(vendor "LICENSE.novnc.BSD-3-Clause", TEXT),
    asset!(vendor "LICENSE.novnc.pako", TEXT),
];

/// Scripts and styles from this server only; the WebSockets and fetches to it;
/// xterm.js sets its theme through style elements; no framing by other sites.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                      connect-src 'self'; img-src 'self' data:; font-src 'self'; base-uri 'none'; \
                      form-action 'none'; frame-ancestors 'none'";

/// A page or asset at `route` (the path without its leading `/`), or 404.
pub(super) fn serve(route: &str) -> Response<Body> {
    let found = match route.strip_prefix("assets/") {
        Some(name) => ASSETS.iter().find(|(n, _, _)| *n == name),
        None => PAGES.iter().find(|(n, _, _)| *n == route),
    };
    let Some((_, content_type, bytes)) = found else {
        return respond(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found: this server has shell.html and display.html, opened from a task's links\n",
        );
    };
    let mut response = respond(StatusCode::OK, content_type, *bytes);
    response
        .headers_mut()
        .insert("content-security-policy", HeaderValue::from_static(POLICY));
    response
}
