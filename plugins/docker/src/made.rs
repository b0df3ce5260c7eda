//! [`Made`]: what a task made in dockerd (its container, network and endpoint),
//! removed once.

use std::cell::RefCell;
use std::rc::Rc;

use enginehost_sdk::caps::endpoint::Endpoint;

use crate::DockerEngine;
use crate::cleanup::Job;

/// What a task made in dockerd, removed once: by abort or the result set's
/// dispose, else (dropped) by the engine's cleanup queue.
pub(crate) struct Made {
    engine: Rc<DockerEngine>,
    pub(crate) container: RefCell<Option<String>>,
    pub(crate) network: RefCell<Option<String>>,
    pub(crate) endpoint: RefCell<Option<Endpoint>>,
}

impl Made {
    pub(crate) fn new(engine: Rc<DockerEngine>) -> Rc<Made> {
        Rc::new(Made {
            engine,
            container: RefCell::default(),
            network: RefCell::default(),
            endpoint: RefCell::default(),
        })
    }

    /// Removes the container (killing what runs in it), the endpoint and the
    /// network (in the background when `network_later`: removing a bridge takes
    /// dockerd a while, and nothing of the task runs in it any more).
    pub(crate) async fn remove(&self, network_later: bool) {
        let docker = &self.engine.docker;
        let container = self.container.borrow_mut().take();
        if let Some(id) = container
            && !crate::cleanup::remove(docker, &Job::Container(id.clone())).await
        {
            self.engine.cleanup.push(Job::Container(id));
        }
        if let Some(endpoint) = self.endpoint.borrow_mut().take() {
            endpoint.close();
        }
        let network = self.network.borrow_mut().take();
        if let Some(id) = network {
            // Later (in the background) or now, and later again if now failed.
            if network_later || !crate::cleanup::remove(docker, &Job::Network(id.clone())).await {
                self.engine.cleanup.push(Job::Network(id));
            }
        }
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        if let Some(id) = self.container.get_mut().take() {
            self.engine.cleanup.push(Job::Container(id));
        }
        if let Some(id) = self.network.get_mut().take() {
            self.engine.cleanup.push(Job::Network(id));
        }
    }
}
