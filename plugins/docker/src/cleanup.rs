//! What the engine made in dockerd and must remove: containers, networks and
//! volumes. Removal is normally awaited where it happens (abort, result-set
//! dispose, volume dispose); an object whose handle goes away without that (a
//! worker that dropped a task, a failed start) is queued here from `Drop` (which
//! cannot wait) and removed by a background task the engine starts at init. Every
//! object carries the engine's labels, so `dispose` also sweeps what is left.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use crate::api::{Docker, escape};

/// Something to remove.
#[derive(Debug, Clone)]
pub enum Job {
    Container(String),
    Network(String),
    Volume(String),
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    waker: Option<Waker>,
}

/// The removal queue; clones share it.
#[derive(Clone, Default)]
pub struct Cleanup {
    queue: Rc<RefCell<Queue>>,
}

impl Cleanup {
    /// Queues `job` (callable from `Drop`).
    pub fn push(&self, job: Job) {
        let waker = {
            let mut q = self.queue.borrow_mut();
            q.jobs.push_back(job);
            q.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Removes queued objects as they come, for the engine's life.
    pub async fn run(self, docker: Docker) {
        loop {
            let job = poll_fn(|cx| {
                let mut q = self.queue.borrow_mut();
                match q.jobs.pop_front() {
                    Some(job) => Poll::Ready(job),
                    None => {
                        q.waker = Some(cx.waker().clone());
                        Poll::Pending
                    }
                }
            })
            .await;
            remove(&docker, &job).await;
        }
    }
}

/// Removes one object now; one that is gone already counts as removed.
pub async fn remove(docker: &Docker, job: &Job) -> bool {
    let target = match job {
        Job::Container(id) => format!("/containers/{}?force=1", escape(id)),
        Job::Network(id) => format!("/networks/{}", escape(id)),
        Job::Volume(name) => format!("/volumes/{}", escape(name)),
    };
    match docker.call("DELETE", &target, None).await {
        Ok(_) => true,
        Err(e) => e.status() == Some(404),
    }
}
