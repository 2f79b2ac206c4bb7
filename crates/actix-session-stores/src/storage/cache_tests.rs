//! The read cache over a real storage (SQLite): the cache in front of its records, and the
//! storage with the cache on. Here rather than in `cache` so that `cache` needs no storage.

use chrono::NaiveDateTime;

use crate::cache::{CachedRecords, ReadCache};
use crate::config::ReadCacheConfig;
use crate::session::records::{Fetch, Record};

fn at(secs: i64) -> NaiveDateTime {
    chrono::DateTime::from_timestamp(1_800_000_000 + secs, 0)
        .expect("a time")
        .naive_utc()
}

fn fetch(with_attachment: bool) -> Fetch {
    Fetch {
        now: at(10),
        created_after: at(-100),
        with_attachment,
    }
}

fn id(n: usize) -> String {
    format!("{n:064x}")
}

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
