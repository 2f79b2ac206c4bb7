//! Moving sessions from one storage to another without logging anyone out:
//! [`copy_sessions`](crate::copy_sessions) copies every live session in batches, and
//! `DatabaseConfig::previous_url` (the `moving` module) makes a running store move a session it
//! does not find over from the previous storage when its visitor comes back. Both go through one seam each backend implements,
//! [`Transfer`]: a storage's sessions read and written whole, whatever the storage.
//!
//! A session read for a move is an [`Exported`] record: its state, its attachment, its creation and
//! expiry times, and, while a rotation's grace period lasts, the link between the superseded
//! record and the one that replaced it. SQL keeps that link on the superseded row
//! (`successor`), Redis on both hashes (`successor` on the superseded one, `predecessor` on the
//! replacing one); each reader fills in what its storage knows, and each writer writes the
//! links its storage keeps. A superseded record whose successor is not known yet is written so
//! that it stays read-only.
//!
//! What "already there" means: the destination holds the record with an expiry no earlier
//! than the source's (within [`SAME_EXPIRY`], the precision Redis keeps a TTL in when it is
//! read back and written again). A destination record that expires later was written or
//! extended there after the copy began, and is never overwritten; one that expires earlier is
//! an older copy, and is replaced.

use chrono::NaiveDateTime;
use futures_util::future::LocalBoxFuture;

use crate::session::records::StoreResult;

/// What a page of a copy counts for each record besides its attachment (its state, key and
/// the row's own overhead), so that a page of empty records is bounded too.
pub(crate) const RECORD_OVERHEAD: u64 = 2048;

/// How far apart two expiries of one record may be and still count as the same: Redis reads a
/// TTL back in milliseconds, relative to a "now" that moves between the read and the write.
pub const SAME_EXPIRY: chrono::Duration = chrono::Duration::seconds(1);

/// A live session, whole, as one storage reads it for another to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// The SHA-256 (hex) of the session key, as every storage addresses it.
    pub id: String,
    pub state: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    /// The attachment, if any.
    pub attachment: Option<String>,
    /// When a rotation superseded it; `None`: the current record.
    pub superseded_at: Option<NaiveDateTime>,
    /// The record that superseded it, when the source knows (SQL and Redis do).
    pub successor: Option<String>,
    /// The superseded record it replaced, when one is kept and the source knows (both do).
    pub predecessor: Option<String>,
}

/// Live sessions read in a batch, the ones that could not be read, and where the next batch
/// starts (`None`: this was the last).
#[derive(Debug, Default)]
pub struct Page {
    pub records: Vec<Exported>,
    /// Records that are there but do not read back (a date that does not parse, text that is
    /// not UTF-8, a Redis hash without its fields or its TTL): named, not copied.
    pub skipped: Vec<Skipped>,
    pub next: Option<String>,
}

/// A record a copy could not read or write: its id (the SHA-256 of its key, never the key)
/// and why, on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The record's id (at most 80 characters of it).
    pub id: String,
    /// Why, on one line of at most 200 characters.
    pub why: String,
}

impl Skipped {
    /// `id`, skipped because of `why` (made one line, at most 200 characters: an error may
    /// quote what it choked on).
    pub fn new(id: &str, why: impl std::fmt::Display) -> Self {
        let why = why.to_string();
        let why: String = why.split_whitespace().collect::<Vec<_>>().join(" ");
        Self {
            id: id.chars().take(80).collect(),
            why: why.chars().take(200).collect(),
        }
    }
}

/// What writing a batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Written into the destination: new there, or replacing an older copy.
    pub copied: u64,
    /// Already there, as recent or newer.
    pub already: u64,
    /// Expired between the read and the write, so not written.
    pub expired: u64,
}

impl std::ops::AddAssign for Written {
    fn add_assign(&mut self, other: Self) {
        self.copied += other.copied;
        self.already += other.already;
        self.expired += other.expired;
    }
}

/// How many sessions a storage holds: live, and expired but not yet deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Census {
    /// Live sessions; on Redis every key of the database (an estimate: Redis counts keys, not
    /// sessions).
    pub live: u64,
    /// Expired rows waiting for the sweeper (SQL); 0 on Redis, which deletes them itself.
    pub expired: u64,
}

/// A future a transfer returns; it runs on the thread that asked.
pub type TransferFuture<'a, T> = LocalBoxFuture<'a, StoreResult<T>>;

/// One storage's sessions read and written whole, on the calling thread's connections.
pub trait Transfer {
    /// How many sessions there are at `now`.
    fn census(&self, now: NaiveDateTime) -> TransferFuture<'_, Census>;

    /// Up to about `limit` live sessions, starting where `cursor` (a previous page's `next`)
    /// says, `None` for the first page, of about `max_bytes` in all (always at least one
    /// session: sizes are known before the sessions are read). Every live session is on
    /// exactly one page, read or skipped.
    fn page<'a>(
        &'a self,
        cursor: Option<&'a str>,
        limit: usize,
        max_bytes: u64,
        now: NaiveDateTime,
    ) -> TransferFuture<'a, Page>;

    /// The live session `id`, whole.
    fn one<'a>(&'a self, id: &'a str, now: NaiveDateTime) -> TransferFuture<'a, Option<Exported>>;

    /// Writes `records` unless each is already there (see the module's doc), and links each
    /// to its predecessor when that is here.
    fn write(&self, records: Vec<Exported>, now: NaiveDateTime) -> TransferFuture<'_, Written>;

    /// How many of `ids` are stored here, live or not.
    fn present<'a>(&'a self, ids: &'a [String]) -> TransferFuture<'a, u64>;

    /// Deletes the record `id` alone (not the one it superseded).
    fn forget<'a>(&'a self, id: &'a str) -> TransferFuture<'a, ()>;
}
