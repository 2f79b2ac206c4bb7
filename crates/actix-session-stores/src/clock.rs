//! The application's one clock. Session expiry is written and compared with this UTC time,
//! bound as a query parameter, so the database's own clock and time zone never matter.

use std::fmt;
use std::sync::Arc;

use chrono::{NaiveDateTime, SubsecRound, Utc};

/// A source of "now" in UTC, cheap to clone. Tests substitute one they can move forward.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> NaiveDateTime + Send + Sync>);

impl Clock {
    /// The system's UTC time.
    pub fn system() -> Self {
        Self::from_fn(|| Utc::now().naive_utc())
    }

    /// A clock that asks `now` for the time.
    pub fn from_fn(now: impl Fn() -> NaiveDateTime + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    /// The current UTC time, to the microsecond: PostgreSQL keeps no finer, and SQLite must
    /// compare exactly what was written.
    pub fn now(&self) -> NaiveDateTime {
        (self.0)().trunc_subsecs(6)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Clock({})", self.now())
    }
}
