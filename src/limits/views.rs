//! File pages being prepared at once ([`ViewGate`], `MAX_VIEWS_IN_FLIGHT`). A file page costs
//! a read of the whole file from the storage and a page's rendering: the gate bounds how many
//! run at once across the instance, shared fairly between client addresses ([`FairShare`]): one
//! address holds at most a quarter of the turns while others wait, so one visitor's views,
//! however many connections they come on, cannot keep anyone else's waiting. A view that gets
//! no turn within its queue time (`VIEW_QUEUE_SECS`) is refused (503, `Retry-After`); one whose connection closes
//! while it waits leaves the line, and never reads the storage.
//!
//! The gate stands before the session is loaded, so views waiting for their turn hold no
//! storage connection.

use std::net::IpAddr;
use std::time::Duration;

use super::fair::{FairShare, Held, NoRoom};

/// File pages in preparation across the instance. Cheap to clone.
#[derive(Clone)]
pub struct ViewGate {
    turns: FairShare,
    queue: Duration,
}

impl ViewGate {
    /// At most `turns` views at once, a quarter of them (at least one) per client address
    /// while others wait, each waiting at most `queue` for its turn.
    pub fn new(turns: u32, queue: Duration) -> Self {
        let turns = u64::from(turns.max(1));
        Self {
            turns: FairShare::new(turns, turns / 4),
            queue,
        }
    }

    /// A turn for a view from `client` (`None`: counted for no client), kept until dropped.
    pub async fn enter(&self, client: Option<IpAddr>) -> Result<Held, NoRoom> {
        self.turns
            .acquire(client.map(super::client_key), 1, self.queue)
            .await
    }

    /// How long a view waits for its turn.
    pub fn queue(&self) -> Duration {
        self.queue
    }

    /// Turns free right now.
    pub fn free(&self) -> u64 {
        self.turns.free()
    }
}
