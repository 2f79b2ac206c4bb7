//! `DatabaseConfig::previous_url`: a running store moves a session over from the storage it
//! is leaving when the session's visitor comes back, so a switch of storage logs nobody out
//! while [`copy_sessions`](crate::copy_sessions) moves the rest.
//!
//! [`MovingRecords`] wraps the current storage's records. A fetch that finds nothing there
//! reads the record from the previous storage; if it is live there, it is written here (unless
//! a copy as new is here already) and deleted there, and the fetch is answered from here. Every
//! write goes here only: an upload after the switch never lands in the previous storage.
//! "Forget my data" deletes in both, so a session the copy has not reached yet is gone too.
//! Two requests moving one session at once both write it "unless already there" and both
//! delete it there: it arrives once.

use std::rc::Rc;

use crate::session::records::{
    Extension, Fetch, NewRecord, Record, Records, Replacement, Rotated, Rotation, StoreFuture,
};
use crate::transfer::Transfer;

/// The current storage's records, moving what they miss over from the previous storage.
pub(crate) struct MovingRecords {
    current: Rc<dyn Records>,
    current_whole: Rc<dyn Transfer>,
    previous: Rc<dyn Records>,
    previous_whole: Rc<dyn Transfer>,
}

impl MovingRecords {
    pub(crate) fn new(
        (current, current_whole): (Rc<dyn Records>, Rc<dyn Transfer>),
        (previous, previous_whole): (Rc<dyn Records>, Rc<dyn Transfer>),
    ) -> Self {
        Self {
            current,
            current_whole,
            previous,
            previous_whole,
        }
    }
}

impl Records for MovingRecords {
    fn fetch<'a>(&'a self, id: &'a str, fetch: Fetch) -> StoreFuture<'a, Option<Record>> {
        Box::pin(async move {
            if let Some(record) = self.current.fetch(id, fetch).await? {
                return Ok(Some(record));
            }
            let Some(record) = self.previous_whole.one(id, fetch.now).await? else {
                return Ok(None);
            };
            let written = self.current_whole.write(vec![record], fetch.now).await?;
            self.previous_whole.forget(id).await?;
            log::debug!(
                "moved a session from the previous storage ({} written here)",
                written.copied
            );
            self.current.fetch(id, fetch).await
        })
    }

    fn insert<'a>(&'a self, id: &'a str, record: NewRecord) -> StoreFuture<'a, ()> {
        self.current.insert(id, record)
    }

    fn rotate<'a>(
        &'a self,
        old_id: &'a str,
        new_id: &'a str,
        record: NewRecord,
        rotation: Rotation,
    ) -> StoreFuture<'a, Rotated> {
        self.current.rotate(old_id, new_id, record, rotation)
    }

    fn replace<'a>(&'a self, id: &'a str, with: Replacement) -> StoreFuture<'a, bool> {
        self.current.replace(id, with)
    }

    fn extend<'a>(&'a self, id: &'a str, extension: Extension) -> StoreFuture<'a, ()> {
        self.current.extend(id, extension)
    }

    fn remove<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.current.remove(id).await?;
            self.previous.remove(id).await
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        self.current.ping()
    }
}
