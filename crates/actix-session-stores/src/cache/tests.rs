use std::time::Duration;

use chrono::NaiveDateTime;

use super::*;
use crate::session::records::Loaded;

fn at(secs: i64) -> NaiveDateTime {
    chrono::DateTime::from_timestamp(1_800_000_000 + secs, 0)
        .expect("a time")
        .naive_utc()
}

fn record(state: &str, attachment: Option<&str>) -> Record {
    Record {
        state: state.to_owned(),
        loaded: Loaded {
            expires_at: at(3_600),
            created_at: at(0),
            superseded_at: None,
        },
        attachment: attachment.map(str::to_owned),
        successor: None,
    }
}

fn fetch(with_attachment: bool) -> Fetch {
    Fetch {
        now: at(10),
        created_after: at(-100),
        with_attachment,
    }
}

fn cache(max_bytes: usize) -> ReadCache {
    ReadCache::new(
        ReadCacheConfig {
            max_bytes,
            max_entry_bytes: 64 << 10,
            max_age: Duration::from_secs(60),
        },
        true,
    )
}

fn id(n: usize) -> String {
    format!("{n:064x}")
}

#[test]
fn ten_thousand_sessions_stay_within_the_byte_bound_and_the_newest_stay() {
    let max_bytes = 1 << 20;
    let cache = cache(max_bytes);
    let file = "x".repeat(2_000);
    for n in 0..10_000 {
        let generation = cache.generation();
        cache.put(generation, &id(n), &record("{}", Some(&file)), true);
        assert!(cache.bytes() <= max_bytes, "{} bytes", cache.bytes());
    }
    let kept = cache.len();
    assert!(kept > 100 && kept < 10_000, "{kept} entries");
    assert!(cache.get(&id(9_999), &fetch(true)).is_some());
    assert!(cache.get(&id(0), &fetch(true)).is_none());
    // Reads of the same sessions again (R and RM) replace entries and never grow past it.
    for round in 0..3 {
        for n in (10_000 - kept)..10_000 {
            let generation = cache.generation();
            let state = format!("{{\"round\":{round}}}");
            cache.put(
                generation,
                &id(n),
                &record(&state, Some(&file)),
                round % 2 == 0,
            );
            assert!(cache.bytes() <= max_bytes);
        }
    }
}

#[test]
fn a_record_over_the_entry_bound_is_never_cached() {
    let cache = cache(1 << 20);
    let big = "x".repeat(65 << 10);
    cache.put(cache.generation(), &id(1), &record("{}", Some(&big)), true);
    assert!(cache.get(&id(1), &fetch(true)).is_none());
    assert_eq!(cache.bytes(), 0);
    // Read without its attachment, the same record is small: cached.
    cache.put(cache.generation(), &id(1), &record("{}", Some(&big)), false);
    assert!(cache.get(&id(1), &fetch(false)).is_some());
    assert!(cache.get(&id(1), &fetch(true)).is_none());
}

#[test]
fn an_entry_answers_only_what_the_storage_would() {
    let cache = cache(1 << 20);
    cache.put(
        cache.generation(),
        &id(1),
        &record("{}", Some("file")),
        true,
    );
    let hit = cache.get(&id(1), &fetch(true)).expect("cached");
    assert_eq!(hit.attachment.as_deref(), Some("file"));
    assert_eq!(
        cache.get(&id(1), &fetch(false)).expect("cached").attachment,
        None
    );
    // Expired at the fetch's now: not served, so a cached read never moves an expiry.
    let late = Fetch {
        now: at(3_600),
        ..fetch(false)
    };
    assert!(cache.get(&id(1), &late).is_none());
    // Past the absolute bound.
    let bounded = Fetch {
        created_after: at(0),
        ..fetch(false)
    };
    assert!(cache.get(&id(1), &bounded).is_none());
}

#[test]
fn an_entry_older_than_its_age_bound_is_not_served() {
    let cache = ReadCache::new(
        ReadCacheConfig {
            max_age: Duration::from_millis(50),
            ..ReadCacheConfig::default()
        },
        true,
    );
    cache.put(cache.generation(), &id(1), &record("{}", None), false);
    assert!(cache.get(&id(1), &fetch(false)).is_some());
    std::thread::sleep(Duration::from_millis(60));
    assert!(cache.get(&id(1), &fetch(false)).is_none());
}

#[test]
fn a_read_that_began_before_an_invalidation_is_not_kept() {
    let cache = cache(1 << 20);
    let generation = cache.generation();
    cache.invalidate(&[&id(1)]);
    cache.put(generation, &id(1), &record("old", None), false);
    assert!(cache.get(&id(1), &fetch(false)).is_none());
    cache.put(cache.generation(), &id(1), &record("new", None), false);
    assert_eq!(
        cache.get(&id(1), &fetch(false)).expect("cached").state,
        "new"
    );
}

#[test]
fn a_rotation_notice_drops_the_old_key_and_the_one_before_it() {
    let cache = cache(1 << 20);
    let mut before = record("before", None);
    before.successor = Some(id(2));
    before.loaded.superseded_at = Some(at(5));
    cache.put(cache.generation(), &id(1), &before, false);
    cache.put(cache.generation(), &id(2), &record("old", None), false);
    cache.put(cache.generation(), &id(3), &record("other", None), false);

    cache.apply(&Invalidation::Ids(vec![id(2)]));

    assert!(cache.get(&id(1), &fetch(false)).is_none());
    assert!(cache.get(&id(2), &fetch(false)).is_none());
    assert!(cache.get(&id(3), &fetch(false)).is_some());
    cache.apply(&Invalidation::All);
    assert!(cache.get(&id(3), &fetch(false)).is_none());
    assert_eq!(cache.bytes(), 0);
}

#[test]
fn a_cache_that_does_not_hear_the_others_serves_nothing() {
    let cache = cache(1 << 20);
    cache.put(cache.generation(), &id(1), &record("{}", None), false);
    cache.set_serving(false);
    assert!(cache.get(&id(1), &fetch(false)).is_none());
    cache.set_serving(true);
    cache.put(cache.generation(), &id(1), &record("{}", None), false);
    assert!(cache.get(&id(1), &fetch(false)).is_some());
}

#[cfg(feature = "sqlite")]
mod over_sqlite {
    use std::cell::Cell;
    use std::rc::Rc;
    use std::sync::Arc;

    use super::*;
    use crate::session::records::{
        Extension, NewRecord, Records, Replacement, Rotated, Rotation, StoreFuture,
    };

    /// A storage's records that count the fetches that reach them.
    struct Counting {
        inner: Rc<dyn Records>,
        fetches: Cell<usize>,
    }

    impl Records for Counting {
        fn fetch<'a>(&'a self, id: &'a str, fetch: Fetch) -> StoreFuture<'a, Option<Record>> {
            self.fetches.set(self.fetches.get() + 1);
            self.inner.fetch(id, fetch)
        }
        fn insert<'a>(&'a self, id: &'a str, record: NewRecord) -> StoreFuture<'a, ()> {
            self.inner.insert(id, record)
        }
        fn rotate<'a>(
            &'a self,
            old_id: &'a str,
            new_id: &'a str,
            record: NewRecord,
            rotation: Rotation,
        ) -> StoreFuture<'a, Rotated> {
            self.inner.rotate(old_id, new_id, record, rotation)
        }
        fn replace<'a>(&'a self, id: &'a str, with: Replacement) -> StoreFuture<'a, bool> {
            self.inner.replace(id, with)
        }
        fn extend<'a>(&'a self, id: &'a str, extension: Extension) -> StoreFuture<'a, ()> {
            self.inner.extend(id, extension)
        }
        fn remove<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()> {
            self.inner.remove(id)
        }
        fn ping(&self) -> StoreFuture<'_, ()> {
            self.inner.ping()
        }
    }

    fn new_record(state: &str, file: &str) -> NewRecord {
        NewRecord {
            state: state.to_owned(),
            created_at: at(0),
            expires_at: at(3_600),
            attachment: Some(file.to_owned()),
        }
    }

    #[actix_web::test]
    async fn reads_come_from_memory_and_every_write_of_this_process_is_seen_at_once() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let config = crate::Config::new(crate::DatabaseUrl::parse(&url).expect("a URL"));
        let storage = crate::backends::connect(&config).await.expect("storage");
        let counting = Rc::new(Counting {
            inner: storage.records(),
            fetches: Cell::new(0),
        });
        let cache = Arc::new(ReadCache::new(ReadCacheConfig::default(), true));
        let records = CachedRecords::new(counting.clone(), Arc::clone(&cache), None);
        let (one, two) = (id(1), id(2));
        records
            .insert(&one, new_record("{\"n\":1}", "first\n"))
            .await
            .expect("insert");

        for _ in 0..3 {
            let found = records.fetch(&one, fetch(true)).await.expect("fetch");
            assert_eq!(found.expect("live").attachment.as_deref(), Some("first\n"));
        }
        assert_eq!(counting.fetches.get(), 1, "one read reached the storage");

        let replacement = Replacement {
            state: "{\"n\":2}".into(),
            attachment: None,
            expires_at: at(3_600),
            now: at(10),
        };
        assert!(records.replace(&one, replacement).await.expect("replace"));
        let found = records.fetch(&one, fetch(true)).await.expect("fetch");
        assert_eq!(found.expect("live").state, "{\"n\":2}");
        assert_eq!(counting.fetches.get(), 2);

        let extension = Extension {
            expires_at: at(7_200),
            now: at(10),
            due: at(7_200),
        };
        records.extend(&one, extension).await.expect("extend");
        let found = records.fetch(&one, fetch(false)).await.expect("fetch");
        assert_eq!(found.expect("live").loaded.expires_at, at(7_200));

        let rotation = Rotation {
            now: at(20),
            keep_until: at(200),
            keep_data: true,
        };
        let rotated = records
            .rotate(&one, &two, new_record("{\"n\":3}", "second\n"), rotation)
            .await
            .expect("rotate");
        assert!(rotated.is_ok());
        let old = records.fetch(&one, fetch(true)).await.expect("fetch");
        assert_eq!(old.expect("kept").loaded.superseded_at, Some(at(20)));
        records.fetch(&two, fetch(true)).await.expect("fetch");
        assert!(cache.len() >= 2);

        records.remove(&two).await.expect("remove");
        assert!(records
            .fetch(&one, fetch(true))
            .await
            .expect("fetch")
            .is_none());
        assert!(records
            .fetch(&two, fetch(true))
            .await
            .expect("fetch")
            .is_none());
    }
}

#[cfg(feature = "sqlite")]
mod bounded {
    use actix_session::storage::SessionStore;
    use actix_web::cookie::time::Duration as CookieDuration;

    use crate::{Config, DatabaseUrl, ReadCacheConfig, Storage};

    /// 10,000 sessions of 2 KB each read in turn (RM) and one of them over and over (R): the
    /// cache never holds more than its bound, and a session read again is still there.
    #[actix_web::test]
    async fn the_cache_stays_within_its_bytes_under_reads_of_ten_thousand_sessions() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let mut config = Config::new(DatabaseUrl::parse(&url).expect("a URL"));
        let max_bytes = 1 << 20;
        config.read_cache = Some(ReadCacheConfig {
            max_bytes,
            max_age: std::time::Duration::from_secs(3_600),
            ..ReadCacheConfig::default()
        });
        let storage = Storage::connect(config).await.expect("storage");
        let store = storage.store();
        let ttl = CookieDuration::seconds(3_600);
        // Random text, so that sealing's compression leaves each record about 2 KB.
        let text = |n: usize| {
            let mut rng = fastrand::Rng::with_seed(n as u64);
            let text: String = (0..2_000).map(|_| rng.alphanumeric()).collect();
            serde_json::to_string(&text).expect("JSON")
        };
        let mut keys = Vec::new();
        for n in 0..10_000 {
            let state = [("text".to_owned(), text(n))];
            keys.push(store.save(state.into(), &ttl).await.expect("save"));
        }

        let mut most = 0;
        for (n, key) in keys.iter().enumerate() {
            let state = store.load(key).await.expect("load").expect("a session");
            assert_eq!(state["text"], text(n));
            most = most.max(storage.read_cache_bytes().expect("on"));
        }
        for _ in 0..1_000 {
            store
                .load(&keys[0])
                .await
                .expect("load")
                .expect("a session");
            most = most.max(storage.read_cache_bytes().expect("on"));
        }

        assert!(most <= max_bytes, "{most} bytes");
        assert!(most > max_bytes / 2, "the cache was used: {most} bytes");
    }
}
