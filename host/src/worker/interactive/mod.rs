//! The interactive server: while a task runs, a person opens its shells and
//! displays in a browser (docs/interactive.md). One HTTP server per worker; each
//! interactive task gets a [`Session`] with a random token, and the server answers
//! only for the tokens of tasks that are running:
//!
//! - `GET /shell.html`, `/display.html`, `/assets/…`: the pages (xterm.js, noVNC),
//!   which read the token from the URL's fragment (never sent to a server);
//! - `GET /session/<token>`: `{"state": "running"|"starting"}`;
//! - `GET /displays/<token>`: the sandbox's `list-displays`, as JSON;
//! - `GET /shell/<token>?command=…&tty=true`: a WebSocket to a `new-shell`
//!   (framing in [`shell`]);
//! - `GET /display/<token>?display=NAME`: a WebSocket carrying raw RFB.
//!
//! A token nobody was given is 404, the same whether or not any task runs; the token
//! of a task that has ended (or whose links expired) is 410, and every connection
//! it opened is closed at that moment. Tokens are 192 random bits, compared in
//! constant time, and never written to the task log. Uses the contract only.

mod display;
mod pages;
mod routes;
mod shell;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use subtle::ConstantTimeEq as _;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::contract::Sandbox;
use crate::policy::InteractiveSettings;

/// Tokens of ended sessions remembered (to answer 410 rather than 404).
const ENDED_KEPT: usize = 1024;
/// How long an ended session's token is remembered.
const ENDED_FOR: Duration = Duration::from_secs(24 * 3600);

/// The interactive HTTP server; serves until dropped.
pub struct InteractiveServer {
    base_url: String,
    address: SocketAddr,
    registry: Arc<Registry>,
    expires: Duration,
    max_connections: u32,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for InteractiveServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The sessions the server knows.
#[derive(Default)]
struct Registry {
    live: Mutex<Vec<Arc<SessionState>>>,
    ended: Mutex<VecDeque<(String, std::time::Instant)>>,
}

/// One task's session, shared by the server's connections.
struct SessionState {
    token: String,
    sandbox: Mutex<Option<Arc<dyn Sandbox>>>,
    /// Cancelled when the task ends or the links expire: every connection closes.
    ended: CancellationToken,
    deadline: tokio::time::Instant,
    connections: Arc<Semaphore>,
    max_connections: u32,
}

/// What a token names.
enum Lookup {
    Running(Arc<SessionState>, Arc<dyn Sandbox>),
    Starting,
    Ended,
    Unknown,
}

impl Registry {
    fn lookup(&self, token: &str) -> Lookup {
        // Every live token is compared, each in constant time: neither the answer's
        // timing nor which entry matched says anything about a wrong token.
        let found = self
            .live
            .lock()
            .expect("interactive registry")
            .iter()
            .fold(None, |found, s| {
                let same = bool::from(s.token.as_bytes().ct_eq(token.as_bytes()));
                if same { Some(s.clone()) } else { found }
            });
        if let Some(state) = found {
            if state.ended.is_cancelled() || tokio::time::Instant::now() >= state.deadline {
                return Lookup::Ended;
            }
            let sandbox = state.sandbox.lock().expect("interactive sandbox").clone();
            return match sandbox {
                Some(sandbox) => Lookup::Running(state, sandbox),
                None => Lookup::Starting,
            };
        }
        let ended = self.ended.lock().expect("interactive registry");
        let was = ended.iter().fold(false, |was, (t, _)| {
            was | bool::from(t.as_bytes().ct_eq(token.as_bytes()))
        });
        if was { Lookup::Ended } else { Lookup::Unknown }
    }

    fn end(&self, state: &Arc<SessionState>) {
        state.ended.cancel();
        state.sandbox.lock().expect("interactive sandbox").take();
        let mut live = self.live.lock().expect("interactive registry");
        let before = live.len();
        live.retain(|s| !Arc::ptr_eq(s, state));
        if live.len() == before {
            return;
        }
        drop(live);
        let mut ended = self.ended.lock().expect("interactive registry");
        let now = std::time::Instant::now();
        while ended.len() >= ENDED_KEPT || ended.front().is_some_and(|(_, at)| now.duration_since(*at) > ENDED_FOR) {
            ended.pop_front();
        }
        ended.push_back((state.token.clone(), now));
    }
}

/// A task's interactive session: its links work while this lives and a sandbox is
/// attached; dropping it (or [`Session::end`]) ends them for good.
pub struct Session {
    state: Arc<SessionState>,
    registry: Arc<Registry>,
    /// The shell page's link (the token in its fragment).
    pub shell_url: String,
    /// The display page's link.
    pub display_url: String,
    /// When the links stop working at the latest.
    pub expires: SystemTime,
}

impl Session {
    /// From now on, the links reach `sandbox`.
    pub fn attach(&self, sandbox: Arc<dyn Sandbox>) {
        if !self.state.ended.is_cancelled() {
            *self.state.sandbox.lock().expect("interactive sandbox") = Some(sandbox);
        }
    }

    /// The task has ended: the token stops working and open connections close.
    pub fn end(&self) {
        self.registry.end(&self.state);
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.end();
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The links carry the token: never in a log by accident.
        f.write_str("Session { .. }")
    }
}

impl InteractiveServer {
    /// Binds `settings.listen` and serves.
    pub async fn start(settings: &InteractiveSettings) -> anyhow::Result<InteractiveServer> {
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|e| anyhow::anyhow!("[interactive] listen: cannot listen on {}: {e}", settings.listen))?;
        let address = listener.local_addr()?;
        let base_url = match &settings.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{address}"),
        };
        let registry = Arc::new(Registry::default());
        let server = tokio::spawn(routes::serve(listener, registry.clone()));
        tracing::info!(%address, url = %base_url, "interactive server listening");
        Ok(InteractiveServer {
            base_url,
            address,
            registry,
            expires: settings.expires,
            max_connections: settings.max_connections,
            server,
        })
    }

    /// The local address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// A new session, valid until the task ends and at most `[interactive] expires`.
    pub fn session(&self) -> anyhow::Result<Session> {
        let token = crate::worker::random_token()?;
        let state = Arc::new(SessionState {
            token: token.clone(),
            sandbox: Mutex::new(None),
            ended: CancellationToken::new(),
            deadline: tokio::time::Instant::now() + self.expires,
            connections: Arc::new(Semaphore::new(self.max_connections as usize)),
            max_connections: self.max_connections,
        });
        self.registry
            .live
            .lock()
            .expect("interactive registry")
            .push(state.clone());
        Ok(Session {
            state,
            registry: self.registry.clone(),
            shell_url: format!("{}/shell.html#{token}", self.base_url),
            display_url: format!("{}/display.html#{token}", self.base_url),
            expires: SystemTime::now() + self.expires,
        })
    }
}
