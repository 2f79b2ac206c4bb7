//! The store's behaviour: what holds on every storage (SQLite, PostgreSQL, Redis, Redis
//! Cluster), then what SQL rows show (expiries, cleanup, connections).

use std::collections::HashMap;
use std::time::Duration;

use actix_session::storage::{SessionKey, SessionStore};
use actix_session_stores::Clock;
use actix_session_stores::SweepPolicy;
use actix_session_stores::{session_id, Store};
use actix_web::cookie::time::Duration as Ttl;
use chrono::{NaiveDateTime, Utc};
use sha2::{Digest, Sha256};

use crate::helpers::{TestClock, TestConn, TestDb};

const TTL: Ttl = Ttl::seconds(100);

fn state(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::to_string(v).expect("json")))
        .collect()
}

/// `SessionKey` is not `Clone`; `update` takes one by value.
fn copy(key: &SessionKey) -> SessionKey {
    SessionKey::try_from(key.as_ref().to_owned()).expect("valid key")
}

fn batches_of(batch_size: i64) -> SweepPolicy {
    SweepPolicy {
        batch_size,
        ..Default::default()
    }
}

/// The store the app would build on `db` for a worker, on `clock`.
async fn store(db: &TestDb, clock: &TestClock) -> Store {
    db.store(clock.clock()).await
}

/// The store the app would build on `db`, whatever its backend.
async fn any_store(db: &TestDb) -> Store {
    db.store(TestClock::default().clock()).await
}

fn expiry_of(db: &TestDb, key: &SessionKey) -> NaiveDateTime {
    let id = session_id(key);
    db.expiries()
        .into_iter()
        .find(|(row, _)| *row == id)
        .map(|(_, at)| at)
        .expect("the session has a row")
}

fn seconds_between(a: NaiveDateTime, b: NaiveDateTime) -> f64 {
    (b - a).num_milliseconds() as f64 / 1000.0
}

async fn save_then_load_returns_the_state(db: TestDb) {
    let store = any_store(&db).await;

    let key = store.save(state(&[("a", "1")]), &TTL).await.expect("save");
    let loaded = store.load(&key).await.expect("load");

    assert_eq!(loaded, Some(state(&[("a", "1")])));
    assert_eq!(key.as_ref().len(), 64);
}

async fn an_unknown_key_loads_nothing(db: TestDb) {
    let store = any_store(&db).await;
    let key = SessionKey::try_from("x".repeat(64)).expect("key");

    assert_eq!(store.load(&key).await.expect("load"), None);
}

async fn rows_are_keyed_by_the_sha256_of_the_key_never_the_key(db: TestDb) {
    let store = any_store(&db).await;

    let key = store.save(state(&[("a", "1")]), &TTL).await.expect("save");

    let expected = hex::encode(Sha256::digest(key.as_ref().as_bytes()));
    assert_eq!(db.stored_ids(), vec![expected]);
    assert!(!db.stored_ids()[0].contains(key.as_ref()));
}

async fn update_replaces_the_state_and_keeps_the_key(db: TestDb) {
    let store = any_store(&db).await;
    let key = store.save(state(&[("a", "1")]), &TTL).await.expect("save");

    let same = store
        .update(copy(&key), state(&[("a", "2")]), &TTL)
        .await
        .expect("update");

    assert_eq!(same.as_ref(), key.as_ref());
    assert_eq!(
        store.load(&key).await.expect("load"),
        Some(state(&[("a", "2")]))
    );
    assert_eq!(db.row_count(), 1);
}

async fn expired_rows_are_never_loaded_even_before_cleanup(db: TestDb) {
    let clock = TestClock::default();
    let store = store(&db, &clock).await;
    let key = store.save(state(&[("a", "1")]), &TTL).await.expect("save");

    clock.advance(Duration::from_secs(101));

    assert_eq!(store.load(&key).await.expect("load"), None);
    assert_eq!(
        db.row_count(),
        1,
        "the row waits for cleanup but is not served"
    );
}

async fn update_after_expiry_issues_a_new_key(db: TestDb) {
    let clock = TestClock::default();
    let store = store(&db, &clock).await;
    let old = store.save(state(&[("a", "1")]), &TTL).await.expect("save");
    clock.advance(Duration::from_secs(101));

    let new = store
        .update(copy(&old), state(&[("a", "2")]), &TTL)
        .await
        .expect("update");

    assert_ne!(new.as_ref(), old.as_ref());
    assert_eq!(store.load(&old).await.expect("load old"), None);
    assert_eq!(
        store.load(&new).await.expect("load new"),
        Some(state(&[("a", "2")]))
    );
}

async fn update_of_a_deleted_session_issues_a_new_key(db: TestDb) {
    let store = any_store(&db).await;
    let old = store.save(state(&[("a", "1")]), &TTL).await.expect("save");
    store.delete(&old).await.expect("delete");

    let new = store
        .update(copy(&old), state(&[("a", "2")]), &TTL)
        .await
        .expect("update");

    assert_ne!(new.as_ref(), old.as_ref());
    assert_eq!(store.load(&old).await.expect("load old"), None);
    assert_eq!(db.row_count(), 1);
}

async fn delete_removes_the_row(db: TestDb) {
    let store = any_store(&db).await;
    let key = store.save(state(&[("a", "1")]), &TTL).await.expect("save");

    store.delete(&key).await.expect("delete");

    assert_eq!(db.row_count(), 0);
    assert_eq!(store.load(&key).await.expect("load"), None);
}

async fn update_ttl_writes_only_once_less_than_80_percent_remains(db: TestDb) {
    let clock = TestClock::default();
    let store = store(&db, &clock).await;
    let key = store.save(state(&[("a", "1")]), &TTL).await.expect("save");
    let first = expiry_of(&db, &key);

    // 10% of the lifetime gone: a read does not move the expiry.
    clock.advance(Duration::from_secs(10));
    store.load(&key).await.expect("load");
    store.update_ttl(&key, &TTL).await.expect("update_ttl");
    assert_eq!(expiry_of(&db, &key), first);

    // 30% gone: the read slides the expiry to a full lifetime from now.
    clock.advance(Duration::from_secs(20));
    store.load(&key).await.expect("load");
    store.update_ttl(&key, &TTL).await.expect("update_ttl");
    let moved = expiry_of(&db, &key);
    let slid_by = seconds_between(first, moved);
    assert!(
        (29.0..=31.0).contains(&slid_by),
        "expiry moved by {slid_by} s"
    );
}

/// Without a remembered expiry (another instance loaded the session, or the memory was
/// cleared), a fresh row is still not rewritten.
async fn update_ttl_without_a_load_leaves_a_fresh_row_alone(db: TestDb) {
    let clock = TestClock::default();
    let store = store(&db, &clock).await;
    let key = store.save(state(&[("a", "1")]), &TTL).await.expect("save");
    let first = expiry_of(&db, &key);

    clock.advance(Duration::from_secs(10));
    store.update_ttl(&key, &TTL).await.expect("update_ttl");

    assert_eq!(expiry_of(&db, &key), first);
}

async fn update_ttl_extends_a_live_session_but_never_revives_an_expired_one(db: TestDb) {
    let clock = TestClock::default();
    let store = store(&db, &clock).await;
    let key = store.save(state(&[("a", "1")]), &TTL).await.expect("save");

    clock.advance(Duration::from_secs(50));
    store.update_ttl(&key, &TTL).await.expect("update_ttl");
    let now = clock.clock().now();
    let remaining = seconds_between(now, expiry_of(&db, &key));
    assert!((99.0..=100.5).contains(&remaining), "{remaining} s remain");

    clock.advance(Duration::from_secs(101));
    store.update_ttl(&key, &TTL).await.expect("update_ttl");
    assert_eq!(store.load(&key).await.expect("load"), None);
}

async fn cleanup_deletes_exactly_the_expired_rows(db: TestDb) {
    let clock = TestClock::default();
    let store = store(&db, &clock).await;
    let mut short_lived = Vec::new();
    for _ in 0..7 {
        short_lived.push(
            store
                .save(state(&[("a", "old")]), &Ttl::seconds(10))
                .await
                .expect("save"),
        );
    }
    let mut long_lived = Vec::new();
    for _ in 0..4 {
        long_lived.push(
            store
                .save(state(&[("a", "new")]), &Ttl::seconds(1000))
                .await
                .expect("save"),
        );
    }
    clock.advance(Duration::from_secs(11));

    // Batches of 3 make the loop run several times.
    let now = clock.clock().now();
    let sweeper = db.sweeper(&[]).await;
    let report = sweeper
        .sweep(now, batches_of(3), || false)
        .await
        .expect("cleanup");

    assert_eq!(report.deleted, 7);
    assert_eq!(report.batches, 3, "3 + 3 + 1: the short batch ends the run");
    assert_eq!(db.row_count(), 4);
    for key in &long_lived {
        assert!(store.load(key).await.expect("load").is_some());
    }
    let again = sweeper
        .sweep(now, batches_of(3), || false)
        .await
        .expect("cleanup");
    assert_eq!(again.deleted, 0);
}

async fn a_stopped_cleanup_run_ends_after_the_batch_in_flight(db: TestDb) {
    let clock = TestClock::default();
    let store = store(&db, &clock).await;
    for _ in 0..7 {
        store
            .save(state(&[("a", "old")]), &Ttl::seconds(10))
            .await
            .expect("save");
    }
    clock.advance(Duration::from_secs(11));

    // Shutdown was asked for: the batch in flight completes, no further batch starts.
    let report = db
        .sweeper(&[])
        .await
        .sweep(clock.clock().now(), batches_of(3), || true)
        .await
        .expect("cleanup");

    assert_eq!((report.deleted, report.batches), (3, 1));
    assert_eq!(db.row_count(), 4, "the rest waits for the next run");
}

page_tests!(
    save_then_load_returns_the_state,
    an_unknown_key_loads_nothing,
    rows_are_keyed_by_the_sha256_of_the_key_never_the_key,
    update_replaces_the_state_and_keeps_the_key,
    update_of_a_deleted_session_issues_a_new_key,
    delete_removes_the_row,
);

// These move the app's clock or read rows.
sql_tests!(rows:
    expired_rows_are_never_loaded_even_before_cleanup,
    update_after_expiry_issues_a_new_key,
    update_ttl_writes_only_once_less_than_80_percent_remains,
    update_ttl_without_a_load_leaves_a_fresh_row_alone,
    update_ttl_extends_a_live_session_but_never_revives_an_expired_one,
    cleanup_deletes_exactly_the_expired_rows,
    a_stopped_cleanup_run_ends_after_the_batch_in_flight,
);

/// Saves, loads, expires and sweeps a session of 100 s with the database's time zone set to
/// `zone` (named only for the messages): the expiry stored and compared must be the app's UTC
/// time, bound as a parameter.
async fn expiry_is_the_apps_utc_time(db: &TestDb, zone: &str) {
    let clock = TestClock::default();
    let store = store(db, &clock).await;

    let before = Utc::now().naive_utc();
    let key = store.save(state(&[("a", "1")]), &TTL).await.expect("save");

    let stored = seconds_between(before, expiry_of(db, &key));
    assert!(
        (99.0..=101.0).contains(&stored),
        "{zone}: expiry {stored} s ahead"
    );
    assert!(store.load(&key).await.expect("load").is_some(), "{zone}");
    clock.advance(Duration::from_secs(101));
    assert_eq!(store.load(&key).await.expect("load"), None, "{zone}");
    let report = db
        .sweeper(&[])
        .await
        .sweep(clock.clock().now(), batches_of(100), || false)
        .await
        .expect("cleanup");
    assert_eq!(report.deleted, 1, "{zone}");
}

/// The database's time zone must not matter: expiry is the app's UTC time, bound as a parameter.
async fn a_non_utc_postgres_time_zone_changes_nothing(db: TestDb) {
    // UTC+14 and UTC-11: whichever way now() would be off, it would be off by half a day.
    for zone in ["Pacific/Kiritimati", "Pacific/Pago_Pago"] {
        db.connect()
            .execute(&format!(
                "ALTER DATABASE \"{}\" SET timezone TO '{zone}'",
                db.url.rsplit('/').next().expect("db name")
            ))
            .expect("set time zone");
        expiry_is_the_apps_utc_time(&db, zone).await;
    }
}

crate::case!(the_clock_keeps_microseconds_only);
/// The system clock truncates to microseconds, so what SQLite stores compares exactly.
fn the_clock_keeps_microseconds_only() {
    let now = Clock::system().now();
    assert_eq!(now.and_utc().timestamp_subsec_nanos() % 1000, 0);
}

#[derive(diesel::QueryableByName)]
struct ServerConnection {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pid: i64,
}

/// The server processes (PostgreSQL) or connection ids (MySQL) of every connection to the
/// test's database but `watcher`'s own, listed on `watcher`.
fn connections_besides(watcher: &mut TestConn, backend: crate::helpers::Backend) -> Vec<i64> {
    use diesel::RunQueryDsl;
    let sql = match backend {
        crate::helpers::Backend::Postgres => {
            "SELECT CAST(pid AS BIGINT) AS pid FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() ORDER BY pid"
        }
        _ => {
            "SELECT CAST(id AS SIGNED) AS pid FROM information_schema.processlist \
             WHERE db = DATABASE() AND id <> CONNECTION_ID() ORDER BY id"
        }
    };
    let query = diesel::sql_query(sql);
    crate::on_conn!(watcher, c => query.load::<ServerConnection>(c))
        .expect("list connections")
        .into_iter()
        .map(|b| b.pid)
        .collect()
}

/// The one server connection the app's pool holds, as the server lists it once the list has
/// settled: a connection a client dropped (the migration's, the test's own earlier ones) is
/// closed by its driver a moment later, not at once, and is listed until then. Every statement
/// of the test runs on `watcher`, which is never listed, so the list settles on the pool's
/// connections alone; `None` if it does not settle on exactly one within 10 s.
async fn the_pool_connection(watcher: &mut TestConn, db: &TestDb) -> Option<i64> {
    let started = std::time::Instant::now();
    loop {
        let listed = connections_besides(watcher, db.backend);
        if let [one] = listed[..] {
            return Some(one);
        }
        if started.elapsed() > Duration::from_secs(10) {
            eprintln!("the server lists {listed:?}, not one connection");
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A statement error (a missing table here) is a plain failure, not "unavailable", and leaves
/// its connection in the pool: the same server connection serves the next request.
async fn a_failing_statement_keeps_its_connection_in_the_pool(db: TestDb) {
    // The read cache off: its listener would be one more connection, and a read from memory
    // no statement.
    let storage = db
        .storage(
            Clock::system(),
            &[("DATABASE_POOL_SIZE", "1"), ("READ_CACHE", "off")],
        )
        .await;
    let store = storage.store();
    let key = SessionKey::try_from("k".repeat(64)).expect("key");
    // A first statement opens the pool's connection (not `ping`: readiness has its own).
    assert_eq!(store.load(&key).await.expect("a first statement"), None);
    let mut watcher = db.connect();
    let before = the_pool_connection(&mut watcher, &db).await;
    watcher
        .batch("ALTER TABLE sessions RENAME TO sessions_away")
        .expect("hide the table");

    let failed = store.load(&key).await;
    watcher
        .batch("ALTER TABLE sessions_away RENAME TO sessions")
        .expect("bring the table back");

    assert!(failed.is_err(), "the statement failed");
    assert_eq!(store.load(&key).await.expect("load"), None);
    assert!(before.is_some(), "the pool holds one connection");
    assert_eq!(
        the_pool_connection(&mut watcher, &db).await,
        before,
        "the pool kept the same connection"
    );
}

/// A connection the server closed is dropped and replaced, and the statement that found it
/// gone runs again on the new one: the request it served never sees the loss (before, MySQL
/// answered one 503 per dead connection).
async fn a_lost_connection_is_replaced(db: TestDb) {
    // The read cache off: its listener would be one more connection.
    let storage = db
        .storage(
            Clock::system(),
            &[("DATABASE_POOL_SIZE", "1"), ("READ_CACHE", "off")],
        )
        .await;
    let store = storage.store();
    store.ping().await.expect("a first statement");
    let mut watcher = db.connect();
    let before = the_pool_connection(&mut watcher, &db)
        .await
        .expect("the pool holds one connection");
    let kill = match db.backend {
        crate::helpers::Backend::Postgres => format!("SELECT pg_terminate_backend({before})"),
        _ => format!("KILL {before}"),
    };
    watcher.batch(&kill).expect("close the app's connection");

    let first = store.ping().await;

    assert!(first.is_ok(), "run again on a new connection: {first:?}");
    let after = the_pool_connection(&mut watcher, &db).await;
    assert!(after.is_some(), "the pool holds one connection");
    assert_ne!(after, Some(before), "the lost connection was replaced");
}

tests_on!(on_mysql_pool: Mysql;
    a_failing_statement_keeps_its_connection_in_the_pool,
    a_lost_connection_is_replaced,
);

/// PostgreSQL: the key rotation an upload runs is prepared once per connection and kept
/// (Diesel's statement cache takes query-builder statements, never a `sql_query`): after three
/// rotations, with and without a grace period, the connection holds each form of the
/// statement exactly once.
async fn the_rotation_is_prepared_once_per_connection(db: TestDb) {
    db.connect().migrate();
    let prepared = actix_session_stores::test_support::postgres_rotations_prepared(&db.url).await;
    let rotations: Vec<&String> = prepared
        .iter()
        .filter(|sql| sql.starts_with("WITH old AS (UPDATE sessions"))
        .collect();
    assert_eq!(rotations.len(), 2, "{prepared:#?}");
    assert_eq!(
        rotations
            .iter()
            .filter(|sql| sql.contains("file = NULL"))
            .count(),
        1,
        "one form empties the old row, the other keeps it: {rotations:#?}"
    );
}

tests_on!(on_postgres: Postgres;
    a_failing_statement_keeps_its_connection_in_the_pool,
    a_lost_connection_is_replaced,
    a_non_utc_postgres_time_zone_changes_nothing,
    the_rotation_is_prepared_once_per_connection,
);

/// MySQL: the server's time zone must not matter either (its global default set far from UTC
/// while the test runs; every textdrop connection binds UTC values).
async fn a_non_utc_mysql_time_zone_changes_nothing(db: TestDb) {
    let set_zone = |zone: &str| {
        db.connect()
            .execute(&format!("SET GLOBAL time_zone = '{zone}'"))
            .expect("set the global time zone");
    };
    for zone in ["+13:00", "-11:00"] {
        set_zone(zone);
        expiry_is_the_apps_utc_time(&db, zone).await;
    }
    set_zone("SYSTEM");
}

tests_on!(on_mysql: Mysql; a_non_utc_mysql_time_zone_changes_nothing);

/// A statement InnoDB rolls back as a deadlock's victim is run once more on textdrop's MySQL
/// pool instead of failing the request, and the retry runs after the other side committed.
async fn a_deadlock_victim_is_retried_once(db: TestDb) {
    let run = actix_session_stores::test_support::mysql_deadlock_victim(&db.url).await;
    assert!(
        run.other.is_ok(),
        "the other session is not the victim: {run:?}"
    );
    assert!(run.outcome.is_ok(), "{run:?}");
    assert_eq!(run.attempts, 2, "one retry");
    assert_eq!(
        run.values,
        ["pool", "pool"],
        "the retry ran after the other commit"
    );
}

tests_on!(deadlock: Mysql; a_deadlock_victim_is_retried_once);
