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
