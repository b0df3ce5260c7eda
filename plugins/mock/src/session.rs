//! What shells and displays share: an [`Outlet`], an output stream the sandbox
//! can cut off even while a write to it is in flight (kill and abort end every
//! session at once). The task counts its sessions in the SDK's `Shells` sets.

use std::cell::{Cell, RefCell};

use enginehost_sdk::StreamWriter;

/// An output stream that [`Outlet::close`] ends, also during a write.
pub struct Outlet {
    writer: RefCell<Option<StreamWriter<u8>>>,
    closed: Cell<bool>,
}

impl Outlet {
    /// An open outlet writing to `writer`.
    pub fn new(writer: StreamWriter<u8>) -> Self {
        Outlet {
            writer: RefCell::new(Some(writer)),
            closed: Cell::new(false),
        }
    }

    /// Ends the stream (at once, or when the write in flight returns).
    pub fn close(&self) {
        self.closed.set(true);
        self.writer.borrow_mut().take();
    }

    /// Writes all of `bytes`; false when the outlet is closed (before or during the
    /// write) or the reader is gone.
    pub async fn send(&self, bytes: Vec<u8>) -> bool {
        // Taken out for the write: no RefCell borrow is held across the await.
        let Some(mut writer) = self.writer.borrow_mut().take() else {
            return false;
        };
        let left = writer.write_all(bytes).await;
        if !left.is_empty() || self.closed.get() {
            return false;
        }
        *self.writer.borrow_mut() = Some(writer);
        true
    }
}
