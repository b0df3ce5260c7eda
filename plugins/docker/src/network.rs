//! Task networks, made ahead of time. Creating a bridge network (and inspecting it
//! for its subnet and gateway) took about 90 ms of a trivial task's 540 ms, and
//! removing one about 200 ms: every task still gets a network of its own, never
//! used before and removed after it, but the engine keeps one spare made while the
//! previous task ran, and removes a task's network in the background once the
//! task is disposed (abort still removes it before it returns).
//!
//! The spare carries the engine instance's labels (not a task's: it is made before
//! its task exists), so `dispose` sweeps it; `close` stops the refills first, so
//! none is made after the sweep.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use enginehost_sdk::{Error, Result, spawn_local};
use serde_json::{Value, json};

use crate::api::{ApiError, escape};
use crate::{DockerEngine, new_name};

/// A made network.
pub(crate) struct Network {
    pub(crate) id: String,
    pub(crate) subnet: String,
    pub(crate) gateway: String,
}

/// At most one spare network, refilled in the background.
#[derive(Default)]
pub(crate) struct Pool {
    spare: RefCell<Option<Network>>,
    filling: Cell<bool>,
    closed: Cell<bool>,
}

/// Makes a bridge network with `labels` and reads its subnet and gateway. On an
/// error after the network exists, its id comes back with the error so the caller
/// can remove it.
async fn make(engine: &DockerEngine, labels: Value) -> std::result::Result<Network, (Option<String>, Error)> {
    let docker = &engine.docker;
    let unavailable = |e: ApiError| engine.unavailable(e);
    let made = docker
        .json(
            "POST",
            "/networks/create",
            Some(json!({"Name": new_name(), "CheckDuplicate": true, "Driver": "bridge", "Labels": labels})),
        )
        .await
        .map_err(|e| (None, unavailable(e)))?;
    let id = made["Id"].as_str().unwrap_or_default().to_string();
    let inspected = match docker.json("GET", &format!("/networks/{}", escape(&id)), None).await {
        Ok(v) => v,
        Err(e) => return Err((Some(id), unavailable(e))),
    };
    let ipam = &inspected["IPAM"]["Config"][0];
    match (ipam["Subnet"].as_str(), ipam["Gateway"].as_str()) {
        (Some(subnet), Some(gateway)) => Ok(Network {
            subnet: subnet.to_string(),
            gateway: gateway.to_string(),
            id,
        }),
        _ => Err((
            Some(id),
            Error::NonFatalInternalError(format!("docker: the task's network has no subnet and gateway: {ipam}")),
        )),
    }
}

impl Pool {
    /// A network for a task: the spare if there is one, else one made now
    /// (`task_labels`); either way the next spare is made in the background.
    /// `on_made` learns the id as soon as a network exists (so that a failure after
    /// it still removes it).
    pub(crate) async fn take(
        engine: &Rc<DockerEngine>,
        task_labels: Value,
        on_made: impl FnOnce(&str),
    ) -> Result<Network> {
        let spare = engine.networks.spare.borrow_mut().take();
        let network = match spare {
            Some(n) => {
                on_made(&n.id);
                n
            }
            None => match make(engine, task_labels).await {
                Ok(n) => {
                    on_made(&n.id);
                    n
                }
                Err((id, e)) => {
                    if let Some(id) = id {
                        on_made(&id);
                    }
                    return Err(e);
                }
            },
        };
        Pool::refill(engine);
        Ok(network)
    }

    /// Makes the next spare in the background, unless there is one, one is being
    /// made, or the pool is closed.
    fn refill(engine: &Rc<DockerEngine>) {
        let pool = &engine.networks;
        if pool.closed.get() || pool.filling.get() || pool.spare.borrow().is_some() {
            return;
        }
        pool.filling.set(true);
        let engine = engine.clone();
        spawn_local(async move {
            let made = make(&engine, engine.labels(None)).await;
            let pool = &engine.networks;
            pool.filling.set(false);
            match made {
                Ok(n) if !pool.closed.get() => *pool.spare.borrow_mut() = Some(n),
                Ok(Network { id, .. }) | Err((Some(id), _)) => {
                    engine.cleanup.push(crate::cleanup::Job::Network(id));
                }
                Err((None, _)) => {}
            }
        });
    }

    /// No more spares: waits for one being made, and hands back the spare's id
    /// (for the caller to remove).
    pub(crate) async fn close(&self) -> Option<String> {
        self.closed.set(true);
        while self.filling.get() {
            enginehost_sdk::sleep(std::time::Duration::from_millis(10)).await;
        }
        self.spare.borrow_mut().take().map(|n| n.id)
    }
}
