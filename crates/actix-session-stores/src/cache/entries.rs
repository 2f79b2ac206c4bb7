//! The cache's entries: a map by id, the order they were read in (the oldest go first, by age
//! or to make room), and which entry names which successor (a rotation's notice names the old
//! record; the one before it is deleted by that rotation).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::session::records::Record;

/// What an entry costs besides its texts: the map's and the queue's slots, the strings'
/// headers, the times.
const OVERHEAD: usize = 256;

/// The bytes `record`, kept as `id` (with its attachment or not), is charged.
pub(super) fn charge(id: &str, record: &Record, with_attachment: bool) -> usize {
    let attachment = match with_attachment {
        true => record.attachment.as_ref().map_or(0, String::len),
        false => 0,
    };
    OVERHEAD
        + 2 * id.len()
        + record.state.len()
        + attachment
        + record.successor.as_ref().map_or(0, |s| 2 * s.len())
}

pub(super) struct Entry {
    pub(super) record: Record,
    pub(super) with_attachment: bool,
    pub(super) read_at: Instant,
    bytes: usize,
    seq: u64,
}

#[derive(Default)]
pub(super) struct Entries {
    map: HashMap<String, Entry>,
    /// (seq, id) in the order entries were stored; a pair whose seq is not its entry's any
    /// more is skipped (the entry was replaced or removed).
    order: VecDeque<(u64, String)>,
    /// successor id -> the id of the entry that names it.
    by_successor: HashMap<String, String>,
    bytes: usize,
    seq: u64,
}

impl Entries {
    pub(super) fn get(&self, id: &str) -> Option<&Entry> {
        self.map.get(id)
    }

    pub(super) fn insert(
        &mut self,
        id: &str,
        record: &Record,
        with_attachment: bool,
        bytes: usize,
    ) {
        self.remove(id);
        self.seq += 1;
        let record = Record {
            state: record.state.clone(),
            loaded: record.loaded,
            attachment: match with_attachment {
                true => record.attachment.clone(),
                false => None,
            },
            successor: record.successor.clone(),
        };
        if let Some(successor) = &record.successor {
            self.by_successor.insert(successor.clone(), id.to_owned());
        }
        self.map.insert(
            id.to_owned(),
            Entry {
                record,
                with_attachment,
                read_at: Instant::now(),
                bytes,
                seq: self.seq,
            },
        );
        self.order.push_back((self.seq, id.to_owned()));
        self.bytes += bytes;
    }

    /// Drops the oldest entries while any is older than `max_age` or the entries hold more
    /// than `max_bytes`.
    pub(super) fn shed(&mut self, max_bytes: usize, max_age: Duration) {
        while let Some((seq, id)) = self.order.front() {
            let current = self.map.get(id).is_some_and(|entry| entry.seq == *seq);
            if current {
                let entry = &self.map[id];
                if self.bytes <= max_bytes && entry.read_at.elapsed() < max_age {
                    break;
                }
                let id = id.clone();
                self.remove(&id);
            }
            self.order.pop_front();
        }
        // Pairs of replaced entries pile up only as fast as entries are stored; rebuild the
        // queue when they are most of it.
        if self.order.len() > 2 * self.map.len() + 64 {
            let map = &self.map;
            self.order
                .retain(|(seq, id)| map.get(id).is_some_and(|entry| entry.seq == *seq));
        }
    }

    fn remove(&mut self, id: &str) -> Option<Entry> {
        let entry = self.map.remove(id)?;
        self.bytes -= entry.bytes;
        if let Some(successor) = &entry.record.successor {
            if self.by_successor.get(successor).is_some_and(|of| of == id) {
                self.by_successor.remove(successor);
            }
        }
        Some(entry)
    }

    /// Drops `id`'s entry and the entry of the record `id` superseded.
    pub(super) fn remove_with_predecessor(&mut self, id: &str) {
        self.remove(id);
        if let Some(predecessor) = self.by_successor.remove(id) {
            self.remove(&predecessor);
        }
    }

    pub(super) fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
        self.by_successor.clear();
        self.bytes = 0;
    }

    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }
}
