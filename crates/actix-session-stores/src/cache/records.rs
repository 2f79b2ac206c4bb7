//! [`CachedRecords`]: a storage's records with the process's read cache in front. Reads are
//! answered from it when an entry may answer; every write goes to the storage, then drops what
//! it changed here and tells the other instances.

use std::rc::Rc;
use std::sync::Arc;

use super::{Fanout, Invalidation, ReadCache};
use crate::session::records::{
    Extension, Fetch, NewRecord, Record, Records, Replacement, Rotated, Rotation, StoreFuture,
};

/// One worker's records, with the process's cache in front.
pub(crate) struct CachedRecords {
    inner: Rc<dyn Records>,
    cache: Arc<ReadCache>,
    fanout: Option<Arc<dyn Fanout>>,
}

impl CachedRecords {
    /// `inner` behind `cache`; writes are told to the other instances through `fanout`, when
    /// the storage has one.
    pub(crate) fn new(
        inner: Rc<dyn Records>,
        cache: Arc<ReadCache>,
        fanout: Option<Arc<dyn Fanout>>,
    ) -> Self {
        Self {
            inner,
            cache,
            fanout,
        }
    }

    /// After a write (done, failed or lost: it may have happened): drops `ids` here and tells
    /// the others.
    fn changed(&self, ids: &[&str]) {
        self.cache.invalidate(ids);
        if let Some(fanout) = &self.fanout {
            fanout.tell(Invalidation::Ids(
                ids.iter().map(|id| (*id).to_owned()).collect(),
            ));
        }
    }
}

impl Records for CachedRecords {
    fn fetch<'a>(&'a self, id: &'a str, fetch: Fetch) -> StoreFuture<'a, Option<Record>> {
        if let Some(record) = self.cache.get(id, &fetch) {
            return Box::pin(std::future::ready(Ok(Some(record))));
        }
        Box::pin(async move {
            let generation = self.cache.generation();
            let record = self.inner.fetch(id, fetch).await?;
            if let Some(record) = &record {
                self.cache
                    .put(generation, id, record, fetch.with_attachment);
            }
            Ok(record)
        })
    }

    fn insert<'a>(&'a self, id: &'a str, record: NewRecord) -> StoreFuture<'a, ()> {
        // A key never used before: nothing cached under it.
        self.inner.insert(id, record)
    }

    fn rotate<'a>(
        &'a self,
        old_id: &'a str,
        new_id: &'a str,
        record: NewRecord,
        rotation: Rotation,
    ) -> StoreFuture<'a, Rotated> {
        Box::pin(async move {
            let rotated = self.inner.rotate(old_id, new_id, record, rotation).await;
            self.changed(&[old_id]);
            rotated
        })
    }

    fn replace<'a>(&'a self, id: &'a str, with: Replacement) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let replaced = self.inner.replace(id, with).await;
            self.changed(&[id]);
            replaced
        })
    }

    fn extend<'a>(&'a self, id: &'a str, extension: Extension) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let extended = self.inner.extend(id, extension).await;
            self.changed(&[id]);
            extended
        })
    }

    fn remove<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let removed = self.inner.remove(id).await;
            // The chain's other keys are not known here (an entry of one of them may be
            // cached here or elsewhere): every entry goes.
            self.cache.clear();
            if let Some(fanout) = &self.fanout {
                fanout.tell(Invalidation::All);
            }
            removed
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        self.inner.ping()
    }
}
