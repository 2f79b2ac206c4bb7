//! Bounds on what anonymous visitors can make the server hold: uploads per client address
//! ([`UploadRate`]), bytes stored across all sessions ([`StorageCap`]) and uploads in flight at
//! once ([`UploadSlots`]). The HTTP side (which requests pass them, and the pages for those that
//! do not) is `routes::guard`.

mod cap;
mod client;
mod rate;

use std::sync::Arc;

pub use cap::{Reservation, StorageCap};
pub use client::{client_address, TrustedProxies};
pub use rate::UploadRate;

/// At most this many uploads are read at once; one more is answered "busy" instead of queued.
#[derive(Clone)]
pub struct UploadSlots(Arc<tokio::sync::Semaphore>);

/// One upload's slot, given back when dropped.
pub type UploadSlot = tokio::sync::OwnedSemaphorePermit;

impl UploadSlots {
    pub fn new(slots: usize) -> Self {
        Self(Arc::new(tokio::sync::Semaphore::new(slots)))
    }

    /// A slot, or `None` when every slot is taken.
    pub fn try_take(&self) -> Option<UploadSlot> {
        Arc::clone(&self.0).try_acquire_owned().ok()
    }
}
