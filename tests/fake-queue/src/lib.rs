//! A fake Taskcluster queue (and the slice of the object service that artifact uploads use) for
//! testing `enginehost worker` against the real `taskcluster` and `taskcluster-upload` crates.
//!
//! [`FakeQueue::start`] binds an HTTP server on `127.0.0.1`; point a
//! `taskcluster::ClientBuilder` at [`FakeQueue::root_url`]. Every request is checked as a real
//! deployment checks it: Hawk signatures (MAC, host:port, payload hash, timestamp), temporary
//! credentials (certificate signature, validity, issuer scopes), `authorizedScopes`, and the
//! endpoint's scopes. State lives in memory behind one mutex; the test API (this type's methods)
//! reads and steers it in-process.
//!
//! Written from the published API reference, the protocol notes in
//! `shared/reference/taskcluster-protocol.md` and the client crates' wire formats; it contains no
//! code from Taskcluster's services. See `README.md` for what is simplified or missing.

#![warn(missing_docs)]

mod artifact_read;
mod artifacts;
mod hawk_auth;
mod inspect;
mod objects;
mod records;
mod reply;
mod routes;
mod runs;
pub mod scopes;
mod server;
mod state;
mod tasks;
pub mod tempcreds;

pub use records::{ArtifactContent, ArtifactRecord, FakeQueueOptions, RequestRecord, Resolution, RunRecord};
pub use reply::ApiError;

use hawk_auth::Caller;
use reply::Reply;
use serde_json::{Value, json};
use server::Shared;
use state::{Client, State};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// A running fake deployment (queue + object service). Dropping it stops the server.
pub struct FakeQueue {
    shared: Arc<Shared>,
    root_url: String,
    server: JoinHandle<()>,
}

/// A fresh slugid-like task id (22 URL-safe characters).
pub fn slugid() -> String {
    tempcreds::slugid()
}

/// A minimal valid task definition for `task_queue_id` with `payload`: created now, deadline in
/// one hour, expires in one day, no scopes. Extend the returned JSON as needed.
pub fn task_definition(task_queue_id: &str, payload: Value) -> Value {
    let now = chrono::Utc::now();
    json!({
        "taskQueueId": task_queue_id,
        "created": state::to_json_time(now),
        "deadline": state::to_json_time(now + chrono::Duration::hours(1)),
        "expires": state::to_json_time(now + chrono::Duration::days(1)),
        "payload": payload,
        "metadata": {"name": "test task", "description": "", "owner": "test@example.com", "source": "https://example.com"},
    })
}

impl FakeQueue {
    /// Start a fake on `127.0.0.1:<options.port>` (0 picks a free port) in the current Tokio
    /// runtime.
    ///
    /// # Panics
    /// If the port cannot be bound; use [`FakeQueue::try_start`] to get the error instead.
    pub async fn start(options: FakeQueueOptions) -> FakeQueue {
        Self::try_start(options)
            .await
            .expect("bind the fake queue on 127.0.0.1")
    }

    /// Like [`FakeQueue::start`], returning bind errors.
    pub async fn try_start(options: FakeQueueOptions) -> anyhow::Result<FakeQueue> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port)).await?;
        let root_url = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(options, root_url.clone())),
            notify: Notify::new(),
        });
        let server = tokio::spawn(server::serve(listener, shared.clone()));
        Ok(FakeQueue {
            shared,
            root_url,
            server,
        })
    }

    /// The root URL, `http://127.0.0.1:<port>`, to give to `taskcluster::ClientBuilder::new`.
    pub fn root_url(&self) -> &str {
        &self.root_url
    }

    /// Register (or replace) a static client. Scopes ending in `*` are prefix wildcards; roles
    /// are not expanded, so give the expanded scopes.
    pub fn add_client<S: Into<String>>(
        &self,
        client_id: &str,
        access_token: &str,
        scopes: impl IntoIterator<Item = S>,
    ) {
        let client = Client {
            access_token: access_token.to_string(),
            scopes: scopes.into_iter().map(Into::into).collect(),
        };
        self.shared.lock().clients.insert(client_id.to_string(), client);
    }

    /// Create a task as `createTask` would (same defaults and checks, no scope check) and return
    /// `{status}`. See [`task_definition`] for a minimal definition.
    pub fn create_task(&self, task_id: &str, definition: Value) -> Result<Value, ApiError> {
        let reply = tasks::create_task(&mut self.shared.lock(), &Self::internal_caller(), task_id, &definition)?;
        self.shared.notify.notify_waiters();
        match reply {
            Reply::Json(_, v) => Ok(v),
            other => unreachable!("createTask replies JSON, not {other:?}"),
        }
    }

    /// Indexes `task_id` at `namespace` (the index service's `insertTask`, without
    /// its scopes): `GET /api/index/v1/task/<namespace>/artifacts/<name>` then
    /// redirects to that task's latest artifact, as the index does.
    pub fn index_task(&self, namespace: &str, task_id: &str) {
        self.shared
            .lock()
            .index
            .insert(namespace.to_string(), task_id.to_string());
    }

    /// The full `status` structure of a task (as the `status` endpoint returns it, unwrapped).
    pub fn task_status(&self, task_id: &str) -> Option<Value> {
        let mut st = self.shared.lock();
        st.sweep(chrono::Utc::now());
        st.tasks.get(task_id).map(|t| t.status_json(task_id))
    }

    /// Starts (`true`) or ends an outage: meanwhile every request is answered 503
    /// `ServiceUnavailable` and changes nothing, as a deployment behind a load
    /// balancer with no healthy backend. Claims keep their `takenUntil`.
    pub fn set_outage(&self, on: bool) {
        self.shared.lock().outage = on;
        self.shared.notify.notify_waiters();
    }

    fn internal_caller() -> Caller {
        Caller {
            client_id: "fake-queue/test-api".to_string(),
            scopes: vec!["*".to_string()],
        }
    }
}

impl Drop for FakeQueue {
    fn drop(&mut self) {
        self.server.abort();
    }
}
