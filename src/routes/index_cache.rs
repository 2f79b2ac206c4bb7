//! The page indexes of files recently shown ([`IndexCache`]), so that a file's line ends are
//! found once, not on every view: a view of page N of a big file costs its page, whatever the
//! file's size. Keyed by the record's id (the SHA-256 of its session key): a record's file never
//! changes under its id (an upload rotates the key), and its length is checked too. Bounded in
//! bytes; the least recently used indexes go first.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use super::paging::{PageIndex, Shape, PLAIN};

/// What the cache may hold, in bytes of indexes and keys.
pub const INDEX_CACHE_BYTES: usize = 8 << 20;

struct Entry {
    index: Arc<PageIndex>,
    /// The length of the text it indexes.
    text_len: usize,
    /// When it was last used (a tick of the cache's own clock).
    used: u64,
    bytes: usize,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    by_use: BTreeMap<u64, String>,
    tick: u64,
    bytes: usize,
}

/// Page indexes by record id, shared by every worker. Cheap to clone.
#[derive(Clone)]
pub struct IndexCache {
    inner: Arc<Mutex<Inner>>,
    capacity: usize,
}

impl Default for IndexCache {
    fn default() -> Self {
        Self::new(INDEX_CACHE_BYTES)
    }
}

impl IndexCache {
    /// A cache of at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::default(),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The index of the file of record `id`, if it is cached and indexes a text of `text_len`
    /// bytes.
    pub fn get(&self, id: &str, text_len: usize) -> Option<Arc<PageIndex>> {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let entry = inner.entries.get_mut(id)?;
        if entry.text_len != text_len {
            return None;
        }
        let before = std::mem::replace(&mut entry.used, tick);
        let index = Arc::clone(&entry.index);
        inner.by_use.remove(&before);
        inner.by_use.insert(tick, id.to_owned());
        Some(index)
    }

    /// Keeps `index` of the file of record `id` (of `text_len` bytes), making room for it.
    pub fn put(&self, id: &str, text_len: usize, index: Arc<PageIndex>) {
        let bytes = index.bytes() + 2 * id.len() + 64;
        if bytes > self.capacity {
            return;
        }
        let mut inner = self.lock();
        if let Some(old) = inner.entries.remove(id) {
            inner.by_use.remove(&old.used);
            inner.bytes -= old.bytes;
        }
        while inner.bytes + bytes > self.capacity {
            let Some((_, oldest)) = inner.by_use.pop_first() else {
                break;
            };
            if let Some(gone) = inner.entries.remove(&oldest) {
                inner.bytes -= gone.bytes;
            }
        }
        inner.tick += 1;
        let used = inner.tick;
        inner.by_use.insert(used, id.to_owned());
        inner.bytes += bytes;
        inner.entries.insert(
            id.to_owned(),
            Entry {
                index,
                text_len,
                used,
                bytes,
            },
        );
    }

    /// Bytes held now.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// The index of `text`, the file of record `id`, in pages of `shape`: cached, or built and
    /// kept (a plain index under the id, another shape under the id and its size).
    pub fn index_of(&self, id: Option<&str>, text: &str, shape: Shape) -> Arc<PageIndex> {
        let key = id.map(|id| {
            if shape == PLAIN {
                id.to_owned()
            } else {
                format!("{id}/{}x{}", shape.lines, shape.bytes)
            }
        });
        if let Some(index) = key.as_deref().and_then(|key| self.get(key, text.len())) {
            return index;
        }
        let index = Arc::new(PageIndex::of_shape(text, shape));
        if let Some(key) = key {
            self.put(&key, text.len(), Arc::clone(&index));
        }
        index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_are_kept_by_id_and_length_within_the_bound() {
        let text = "a line\n".repeat(2_000);
        let one = Arc::new(PageIndex::of(&text));
        let size = one.bytes() + 2 * 64 + 64;
        let cache = IndexCache::new(size * 3);
        for n in 0..3 {
            cache.put(&format!("{n:064}"), text.len(), Arc::clone(&one));
        }
        assert!(cache.get(&format!("{:064}", 0), text.len()).is_some());
        assert!(cache.get(&format!("{:064}", 0), text.len() + 1).is_none());
        // A fourth pushes out the least recently used (1; 0 was just read).
        cache.put(&format!("{:064}", 3), text.len(), Arc::clone(&one));
        assert!(cache.bytes() <= size * 3);
        assert!(cache.get(&format!("{:064}", 1), text.len()).is_none());
        assert!(cache.get(&format!("{:064}", 0), text.len()).is_some());
        assert!(cache.get(&format!("{:064}", 3), text.len()).is_some());
        // Bigger than the whole cache: not kept.
        IndexCache::new(8).put("x", 1, one);
    }
}
