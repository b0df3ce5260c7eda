//! Single-threaded async primitives for engine state: a one-shot [`Signal`] (the
//! seed's `atomics.Once` + channel close) and a session counter ([`Sessions`], the
//! seed's WaitGroup). Wakers may fire from another export call (the
//! `inter-task-wakeup` feature of wit-bindgen makes that legal).

use std::cell::RefCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

/// A value set at most once; any number of tasks can wait for it. Clones share it.
pub struct Signal<T: Clone> {
    inner: Rc<RefCell<SignalInner<T>>>,
}

struct SignalInner<T> {
    value: Option<T>,
    wakers: Vec<Waker>,
}

impl<T: Clone> Clone for Signal<T> {
    fn clone(&self) -> Self {
        Signal {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Clone> Default for Signal<T> {
    fn default() -> Self {
        Signal {
            inner: Rc::new(RefCell::new(SignalInner {
                value: None,
                wakers: Vec::new(),
            })),
        }
    }
}

impl<T: Clone> Signal<T> {
    /// An unset signal.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the value if it was unset; returns whether this call set it (first wins).
    pub fn set(&self, value: T) -> bool {
        let wakers = {
            let mut inner = self.inner.borrow_mut();
            if inner.value.is_some() {
                return false;
            }
            inner.value = Some(value);
            std::mem::take(&mut inner.wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
        true
    }

    /// The value, if set.
    pub fn get(&self) -> Option<T> {
        self.inner.borrow().value.clone()
    }

    /// Whether the value is set.
    pub fn is_set(&self) -> bool {
        self.inner.borrow().value.is_some()
    }

    /// Waits until the value is set and returns it.
    pub async fn wait(&self) -> T {
        poll_fn(|cx| {
            let mut inner = self.inner.borrow_mut();
            match &inner.value {
                Some(v) => Poll::Ready(v.clone()),
                None => {
                    inner.wakers.push(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }
}

/// Counts open sessions (shells, displays); [`Sessions::idle`] waits until none is open.
#[derive(Clone, Default)]
pub struct Sessions {
    inner: Rc<RefCell<(usize, Vec<Waker>)>>,
}

impl Sessions {
    /// No open session.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens a session.
    pub fn open(&self) {
        self.inner.borrow_mut().0 += 1;
    }

    /// Closes a session opened with [`Sessions::open`].
    pub fn close(&self) {
        let wakers = {
            let mut inner = self.inner.borrow_mut();
            inner.0 = inner.0.saturating_sub(1);
            if inner.0 > 0 {
                return;
            }
            std::mem::take(&mut inner.1)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// The number of open sessions.
    pub fn count(&self) -> usize {
        self.inner.borrow().0
    }

    /// Waits until no session is open.
    pub async fn idle(&self) {
        poll_fn(|cx| {
            let mut inner = self.inner.borrow_mut();
            if inner.0 == 0 {
                Poll::Ready(())
            } else {
                inner.1.push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}
