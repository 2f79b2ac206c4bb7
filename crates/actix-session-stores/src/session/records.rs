//! The one seam between the session semantics (the `store` module) and a storage: a
//! storage reads and writes session *records*, addressed by the SHA-256 of the session key,
//! and says why it failed in a [`StoreError`] that already carries its verdict (the storage
//! could not be reached: 503; anything else: 500).
//!
//! Implement [`Records`] to keep sessions somewhere this crate does not ship; the store's
//! semantics (expiry, rotation, grace) come on top.

use std::fmt;

use chrono::NaiveDateTime;
use futures_util::future::LocalBoxFuture;

/// What `load` found of a live session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    /// When it expires (UTC).
    pub expires_at: NaiveDateTime,
    /// When it was created (by its first write or its last rotation).
    pub created_at: NaiveDateTime,
    /// When a rotation replaced this record under a new key; `None`: the current record. A
    /// superseded record is read-only: readable for the rotation's grace period, never
    /// written or extended.
    pub superseded_at: Option<NaiveDateTime>,
}

/// A live session's record as a storage returns it.
#[derive(Debug)]
pub struct Record {
    /// The state, as stored.
    pub state: String,
    /// Its times.
    pub loaded: Loaded,
    /// The attachment, when it was asked for and there is one.
    pub attachment: Option<String>,
    /// The id of the record that superseded this one (`None` while it is current).
    pub successor: Option<String>,
}

/// A new record; its creation time is also "now" for the write.
#[derive(Debug)]
pub struct NewRecord {
    /// The state, as stored.
    pub state: String,
    /// When it is written.
    pub created_at: NaiveDateTime,
    /// When it expires.
    pub expires_at: NaiveDateTime,
    /// Its attachment, if any.
    pub attachment: Option<String>,
}

impl NewRecord {
    /// The attachment's size in bytes.
    pub fn attachment_bytes(&self) -> i64 {
        self.attachment.as_ref().map_or(0, |f| f.len() as i64)
    }
}

/// Which record a fetch wants: live at `now`, created after `created_after`, with its attachment or
/// not.
#[derive(Debug, Clone, Copy)]
pub struct Fetch {
    /// Now: a record that expired by then is not live.
    pub now: NaiveDateTime,
    /// A record created at or before this is past the absolute bound on a session's life.
    pub created_after: NaiveDateTime,
    /// Whether to read the attachment too.
    pub with_attachment: bool,
}

/// A new state (and attachment, when given) for a live record, and its new expiry.
#[derive(Debug)]
pub struct Replacement {
    /// The new state.
    pub state: String,
    /// A new attachment; `None` keeps the one there.
    pub attachment: Option<String>,
    /// The new expiry.
    pub expires_at: NaiveDateTime,
    /// Now: only a record live at this time is replaced.
    pub now: NaiveDateTime,
}

/// A key rotation's time and what happens to the old record: it is kept, marked superseded at
/// `now` by the new record (so that a key has one successor, and a retry of this very rotation
/// can be told from another write), read-only, until `keep_until`; the record it superseded in
/// turn is deleted.
#[derive(Debug, Clone, Copy)]
pub struct Rotation {
    /// When the rotation happens: the old record's `superseded_at`.
    pub now: NaiveDateTime,
    /// When the old record goes.
    pub keep_until: NaiveDateTime,
    /// Whether the old record keeps its state and attachment (a grace period: its key still shows
    /// them), or keeps only its link, an empty state and no attachment (a tombstone, without one).
    pub keep_data: bool,
}

/// A later expiry for a live record, written only if it still expires before `due` (no other
/// request moved it) and before `expires_at`.
#[derive(Debug, Clone, Copy)]
pub struct Extension {
    /// The new expiry.
    pub expires_at: NaiveDateTime,
    /// Now: only a record live at this time is extended.
    pub now: NaiveDateTime,
    /// Written only if the record still expires before this.
    pub due: NaiveDateTime,
}

/// Any error, as a [`StoreError`]'s cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a storage operation failed, with the verdict the store needs (503 when the storage could
/// not be reached, a new session when a record does not read back).
#[derive(Debug)]
pub struct StoreError {
    kind: ErrorKind,
    cause: anyhow::Error,
}

/// What a [`StoreError`] means for the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorKind {
    /// The storage could not be reached, or did not answer in time: 503.
    Unavailable,
    /// The connection a statement ran on was lost: the statement may or may not have run
    /// (503 unless a retry on a fresh connection succeeds).
    Lost,
    /// The storage answered with an error: 500.
    Failed,
    /// A write met a record already stored under its id.
    Duplicate,
    /// A stored record that cannot be read (a value no longer parses): no session.
    Corrupt,
}

impl StoreError {
    fn of(kind: ErrorKind, cause: impl Into<BoxError>) -> Self {
        Self {
            kind,
            cause: anyhow::Error::from_boxed(cause.into()),
        }
    }

    /// The storage could not be reached (down, unreachable, no connection free in time, a
    /// statement past its deadline): the visitor is asked to try again (503).
    pub fn unavailable(cause: impl Into<BoxError>) -> Self {
        Self::of(ErrorKind::Unavailable, cause)
    }

    /// The connection went away under a statement: it may or may not have run. Unavailable,
    /// and worth one more try on a fresh connection where running twice is harmless.
    pub fn lost(cause: impl Into<BoxError>) -> Self {
        Self::of(ErrorKind::Lost, cause)
    }

    /// The storage answered, with an error (a failed statement, bad data): an opaque 500.
    pub fn failed(cause: impl Into<BoxError>) -> Self {
        Self::of(ErrorKind::Failed, cause)
    }

    /// A write found its id taken.
    pub fn duplicate(cause: impl Into<BoxError>) -> Self {
        Self::of(ErrorKind::Duplicate, cause)
    }

    /// A stored record could not be read back (a date, a number or a text that no longer
    /// parses).
    pub fn corrupt(cause: impl Into<BoxError>) -> Self {
        Self::of(ErrorKind::Corrupt, cause)
    }

    /// Whether the storage itself could not be reached (or lost the connection).
    pub fn is_unavailable(&self) -> bool {
        matches!(self.kind, ErrorKind::Unavailable | ErrorKind::Lost)
    }

    /// Whether the connection was lost under the statement.
    pub fn is_lost(&self) -> bool {
        self.kind == ErrorKind::Lost
    }

    /// Whether a write found its id taken.
    pub fn is_duplicate(&self) -> bool {
        self.kind == ErrorKind::Duplicate
    }

    /// Whether a stored record could not be read back.
    pub fn is_corrupt(&self) -> bool {
        self.kind == ErrorKind::Corrupt
    }

    /// The cause.
    pub fn into_error(self) -> BoxError {
        self.cause.into()
    }

    /// The cause, for the log.
    pub(crate) fn into_cause(self) -> anyhow::Error {
        self.cause
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.cause)
    }
}

impl std::error::Error for StoreError {}

/// A result of a [`Records`] call.
pub type StoreResult<T> = Result<T, StoreError>;

/// What a rotation did: `Ok` when the new record replaced the old one, `Err` with the record
/// (unwritten) when the old one was no longer live.
pub type Rotated = Result<(), NewRecord>;

/// A future a storage returns; it runs on the worker that asked.
pub type StoreFuture<'a, T> = LocalBoxFuture<'a, StoreResult<T>>;

/// How one storage reads and writes session records, addressed by the hex SHA-256 of the
/// session key. Times are the app's clock. One `Records` serves one worker thread: a storage
/// whose driver ties connections to the runtime that opened them gives each worker its own.
pub trait Records {
    /// The live record `id` that `fetch` describes.
    fn fetch<'a>(&'a self, id: &'a str, fetch: Fetch) -> StoreFuture<'a, Option<Record>>;

    /// Writes `record` under `id`, a key never used before.
    fn insert<'a>(&'a self, id: &'a str, record: NewRecord) -> StoreFuture<'a, ()>;

    /// A key rotation, in one step: writes `record` under `new_id` and supersedes the record
    /// `old_id` as `rotation` says (deleted, or kept read-only), if it is live and current
    /// (not superseded already). Otherwise nothing is written and the record comes back
    /// (`Err`): one key has at most one successor.
    fn rotate<'a>(
        &'a self,
        old_id: &'a str,
        new_id: &'a str,
        record: NewRecord,
        rotation: Rotation,
    ) -> StoreFuture<'a, Rotated>;

    /// Replaces the live, current record `id`'s state; `false` when there is none (expired,
    /// gone or superseded).
    fn replace<'a>(&'a self, id: &'a str, with: Replacement) -> StoreFuture<'a, bool>;

    /// Moves the live, current record `id`'s expiry as `extension` says (a superseded record
    /// is never extended).
    fn extend<'a>(&'a self, id: &'a str, extension: Extension) -> StoreFuture<'a, ()>;

    /// Deletes the record `id`, live or not, and every record of its chain: the record it
    /// superseded and the record that superseded it, and theirs in turn.
    fn remove<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()>;

    /// Answers a trivial request (readiness).
    fn ping(&self) -> StoreFuture<'_, ()>;
}
