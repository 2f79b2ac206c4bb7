//! A read cache of session records, per process, in front of any storage: a `load` served
//! from memory skips the round trip.
//!
//! What a key holds changes when the record is replaced, extended, superseded or removed, and
//! every such write goes through [`CachedRecords`], which drops the key's entry in this
//! process after the write and tells the other instances through the storage's [`Fanout`]
//! (PostgreSQL: `NOTIFY`). An entry is served only
//! - while it is younger than [`ReadCacheConfig::max_age`] (the staleness bound, whatever
//!   happens to a notification, and the only bound where the storage cannot tell other
//!   instances);
//! - while the storage's channel to the other instances is up (a listener that lost its
//!   connection serves nothing from memory until it listens again);
//! - if it answers the fetch as the storage would: live at the fetch's `now`, created after
//!   its bound, and read with its attachment when the fetch wants one. So a cached read never
//!   extends an expiry: the entry carries the expiry the storage had, and `update_ttl` writes
//!   through (and drops the entry).
//!
//! A fetch that began before an invalidation does not store what it read (a generation
//! number, bumped under the same lock). Memory is bounded in bytes ([`ReadCacheConfig`]);
//! records whose size is over `max_entry_bytes` are not cached. Entries hold records as
//! stored: sealed records stay sealed in memory.

mod entries;
mod records;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

pub(crate) use records::CachedRecords;

use crate::config::ReadCacheConfig;
use crate::session::records::{Fetch, Record};
use entries::Entries;

/// What an instance tells the others after a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Invalidation {
    /// The records with these ids changed.
    Ids(Vec<String>),
    /// Anything may have changed (a chain removed from one of its keys).
    All,
}

/// How a storage tells the other instances' caches what changed.
pub(crate) trait Fanout: Send + Sync {
    /// Sends `what` to every other instance, soon; never waits for the storage.
    fn tell(&self, what: Invalidation);
}

/// The per-process cache: shared by every worker, behind one lock held for microseconds.
pub(crate) struct ReadCache {
    config: ReadCacheConfig,
    entries: Mutex<Entries>,
    generation: AtomicU64,
    serving: AtomicBool,
}

impl ReadCache {
    /// An empty cache within `config`, serving at once (`serving`) or only once
    /// [`set_serving`](Self::set_serving) says so (a storage whose listener is not up yet).
    pub(crate) fn new(config: ReadCacheConfig, serving: bool) -> Self {
        Self {
            config,
            entries: Mutex::new(Entries::default()),
            generation: AtomicU64::new(0),
            serving: AtomicBool::new(serving),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // The entries are consistent after every statement: a panic elsewhere leaves them usable.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The record `id` as `fetch` wants it, if an entry may answer.
    pub(crate) fn get(&self, id: &str, fetch: &Fetch) -> Option<Record> {
        if !self.serving.load(Ordering::Acquire) {
            return None;
        }
        let entries = self.lock();
        let entry = entries.get(id)?;
        if entry.read_at.elapsed() >= self.config.max_age
            || (fetch.with_attachment && !entry.with_attachment)
            || entry.record.loaded.expires_at <= fetch.now
            || entry.record.loaded.created_at <= fetch.created_after
        {
            return None;
        }
        let record = &entry.record;
        Some(Record {
            state: record.state.clone(),
            loaded: record.loaded,
            attachment: match fetch.with_attachment {
                true => record.attachment.clone(),
                false => None,
            },
            successor: record.successor.clone(),
        })
    }

    /// The generation a fetch notes before it reads the storage.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Keeps `record`, read as `id` (with its attachment or not) by a fetch that began at
    /// `generation`, unless something was invalidated since or it is too big.
    pub(crate) fn put(&self, generation: u64, id: &str, record: &Record, with_attachment: bool) {
        let bytes = entries::charge(id, record, with_attachment);
        if bytes > self.config.max_entry_bytes || bytes > self.config.max_bytes {
            return;
        }
        let mut entries = self.lock();
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        entries.insert(id, record, with_attachment, bytes);
        entries.shed(self.config.max_bytes, self.config.max_age);
    }

    /// Drops the entries of `ids`, and of the records they superseded (a rotation deletes
    /// the record before the old one).
    pub(crate) fn invalidate(&self, ids: &[&str]) {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        for id in ids {
            entries.remove_with_predecessor(id);
        }
    }

    /// Drops every entry.
    pub(crate) fn clear(&self) {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    /// Applies what another instance said.
    #[cfg(any(feature = "postgres", test))]
    pub(crate) fn apply(&self, what: &Invalidation) {
        match what {
            Invalidation::All => self.clear(),
            Invalidation::Ids(ids) => {
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                self.invalidate(&ids);
            }
        }
    }

    /// Whether entries may be served (the channel other instances' writes arrive on is up).
    /// Turning it off or on drops every entry: what arrived meanwhile is unknown.
    #[cfg(any(feature = "postgres", test))]
    pub(crate) fn set_serving(&self, serving: bool) {
        self.clear();
        self.serving.store(serving, Ordering::Release);
    }

    /// The bytes the entries hold now, as charged against `max_bytes`.
    pub(crate) fn bytes(&self) -> usize {
        self.lock().bytes()
    }

    /// How many entries there are now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests;
