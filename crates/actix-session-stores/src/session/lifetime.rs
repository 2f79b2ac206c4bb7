//! How long a session lives, for every store: the cookie's `ttl` after the last request,
//! sliding, but never past [`MaxLifetime`] (`SessionConfig::max_lifetime`) after it was
//! created. Every rotation creates a new session, so "created" is "last rotated".
//!
//! A read writes a new expiry only once less than [`EXTEND_BELOW`] of the lifetime remains: an
//! idle session ends between 0.8·ttl and ttl after the last request.

use chrono::{DateTime, Duration, NaiveDateTime};

use crate::session::records::Loaded;

/// A read writes a new expiry only when less than this share of the lifetime remains.
pub const EXTEND_BELOW: f64 = 0.8;

/// The absolute bound on a session's life, counted from its creation; `None`: no bound.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MaxLifetime(Option<Duration>);

impl MaxLifetime {
    pub fn new(max: Option<std::time::Duration>) -> Self {
        Self(max.and_then(|max| Duration::from_std(max).ok()))
    }

    /// The latest a session created at `created_at` may live.
    pub fn deadline(&self, created_at: NaiveDateTime) -> Option<NaiveDateTime> {
        self.0.and_then(|max| created_at.checked_add_signed(max))
    }

    /// `expires_at`, or the deadline if that comes first.
    pub fn cap(&self, expires_at: NaiveDateTime, created_at: NaiveDateTime) -> NaiveDateTime {
        self.deadline(created_at)
            .map_or(expires_at, |deadline| expires_at.min(deadline))
    }

    /// Sessions created at or before this time are past the bound at `now` (the Unix epoch,
    /// before any session, when there is no bound: every database can store that time).
    pub fn created_after(&self, now: NaiveDateTime) -> NaiveDateTime {
        self.0
            .and_then(|max| now.checked_sub_signed(max))
            .unwrap_or(DateTime::UNIX_EPOCH.naive_utc())
    }
}

/// Whether a session expiring at `expires_at` has enough lifetime left at `now` that a read
/// need not write a new expiry (at least [`EXTEND_BELOW`] of `ttl`).
pub fn fresh_enough(expires_at: NaiveDateTime, now: NaiveDateTime, ttl: Duration) -> bool {
    (expires_at - now).num_milliseconds() as f64 >= EXTEND_BELOW * ttl.num_milliseconds() as f64
}

/// The expiry a read at `now` gives the session `loaded`: none (`None`) while it is fresh
/// enough, else a full `ttl` from now, capped by the absolute bound. `None` too when the cap
/// leaves nothing to move.
pub fn extension(
    loaded: Loaded,
    now: NaiveDateTime,
    ttl: Duration,
    max: MaxLifetime,
) -> Option<NaiveDateTime> {
    if fresh_enough(loaded.expires_at, now, ttl) {
        return None;
    }
    let next = max.cap(now + ttl, loaded.created_at);
    (next > loaded.expires_at).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> NaiveDateTime {
        DateTime::UNIX_EPOCH.naive_utc() + Duration::seconds(secs)
    }

    #[test]
    fn reads_extend_only_late_and_never_past_the_deadline() {
        let ttl = Duration::seconds(100);
        let max = MaxLifetime::new(Some(std::time::Duration::from_secs(250)));
        let loaded = |expires, created| Loaded {
            expires_at: at(expires),
            created_at: at(created),
            superseded_at: None,
        };
        // 90 s left of 100: fresh.
        assert_eq!(extension(loaded(100, 0), at(10), ttl, max), None);
        // 70 s left: a full lifetime from now.
        assert_eq!(extension(loaded(100, 0), at(30), ttl, max), Some(at(130)));
        // Near the deadline (250): capped there.
        assert_eq!(extension(loaded(220, 0), at(200), ttl, max), Some(at(250)));
        // At the deadline already: nothing to write.
        assert_eq!(extension(loaded(250, 0), at(240), ttl, max), None);
        assert_eq!(max.created_after(at(1000)), at(750));
        assert_eq!(MaxLifetime::default().created_after(at(5)), at(0));
    }
}
