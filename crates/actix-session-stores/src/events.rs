//! What the store and the sweeper report as they work, for an application's metrics or logs.
//!
//! The crate keeps no registry of its own: implement [`Events`] (every method has an empty
//! default) and hand it to [`Storage::with_events`](crate::Storage::with_events).

use std::time::Duration;

/// One of actix-session's `SessionStore` calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StoreCall {
    /// `load`: a request's session read.
    Load,
    /// `save`: a new session written.
    Save,
    /// `update`: a changed session written.
    Update,
    /// `update_ttl`: an unchanged session's expiry moved.
    UpdateTtl,
    /// `delete`: a session removed.
    Delete,
}

impl StoreCall {
    /// Every call, in the order above.
    pub const ALL: [StoreCall; 5] = [
        StoreCall::Load,
        StoreCall::Save,
        StoreCall::Update,
        StoreCall::UpdateTtl,
        StoreCall::Delete,
    ];

    /// The call's name as actix-session spells the method: `load`, `save`, `update`,
    /// `update_ttl`, `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreCall::Load => "load",
            StoreCall::Save => "save",
            StoreCall::Update => "update",
            StoreCall::UpdateTtl => "update_ttl",
            StoreCall::Delete => "delete",
        }
    }
}

/// Receives what the store and the sweeper do. Called on the request's or the sweeper's
/// thread, inline: keep each method cheap (a counter, a histogram observation).
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use actix_session_stores::{Events, StoreCall};
///
/// #[derive(Default)]
/// struct Failures(AtomicU64);
///
/// impl Events for Failures {
///     fn store_call(&self, _call: StoreCall, _took: std::time::Duration, ok: bool) {
///         if !ok {
///             self.0.fetch_add(1, Ordering::Relaxed);
///         }
///     }
/// }
/// let failures = Failures::default();
/// failures.store_call(StoreCall::Load, std::time::Duration::ZERO, false);
/// assert_eq!(failures.0.load(Ordering::Relaxed), 1);
/// ```
pub trait Events: Send + Sync + 'static {
    /// A store call ended after `took`, successfully or not.
    fn store_call(&self, call: StoreCall, took: Duration, ok: bool) {
        let _ = (call, took, ok);
    }

    /// A superseded key was used after its grace period (a replayed or stolen cookie?).
    fn superseded_key_used(&self) {}

    /// A stored record did not read back, so it counted as no session.
    fn corrupt_record(&self) {}

    /// The cleanup task started, to run every `period`.
    fn cleanup_started(&self, period: Duration) {
        let _ = period;
    }

    /// A cleanup run deleted `deleted` expired sessions in `took`.
    fn cleanup_ran(&self, deleted: usize, took: Duration) {
        let _ = (deleted, took);
    }

    /// A cleanup tick was skipped: another instance holds the sweeper's lock.
    fn cleanup_skipped(&self) {}

    /// A cleanup run failed; the task tries again at its next tick.
    fn cleanup_failed(&self) {}

    /// The sweeper counted the sessions: `live` ones, `expired` ones not yet deleted, and how
    /// long ago the oldest of those expired (zero when there is none).
    fn sessions_counted(&self, live: i64, expired: i64, oldest_expired_age: Duration) {
        let _ = (live, expired, oldest_expired_age);
    }
}

/// Reports nothing: the default.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoEvents;

impl Events for NoEvents {}
