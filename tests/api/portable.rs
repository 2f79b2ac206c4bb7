//! Portable mode (CLEANUP_MODE=portable), for PostgreSQL-compatible engines without ctid,
//! xmin or working advisory locks, tested on PostgreSQL: a lease row elects the sweeper and
//! serialises migrations; batches delete by primary key.

use std::time::Duration;

use actix_session_stores::test_support::statements::postgres::{PORTABLE_DELETE_BATCH, TAKE_LEASE};
use actix_session_stores::Clock;
use actix_session_stores::SweepPolicy;
use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp};

use crate::cleanup::pg_plan;
use crate::helpers::{eventually, metric_value, spawn_app, TestConn, TestDb};
use crate::instances::{four_instances_migrate_once, three_instances_sweep_each_row_once};

async fn three_instances_in_portable_mode_sweep_each_row_once(db: TestDb) {
    three_instances_sweep_each_row_once(db, "portable").await;
}

async fn four_instances_in_portable_mode_migrate_once(db: TestDb) {
    four_instances_migrate_once(db, "portable").await;
}

/// Sets the sweeper lease to `holder` until `seconds` from now.
fn hold_lease(url: &str, holder: &str, seconds: i64) {
    let TestConn::Postgres(pg) = &mut TestConn::open(url).expect("connect") else {
        panic!("PostgreSQL only")
    };
    diesel::sql_query(
        "UPDATE sweeper_lease SET holder = $1, expires_at = $2 WHERE name = 'sweeper'",
    )
    .bind::<Text, _>(holder)
    .bind::<Timestamp, _>(Utc::now().naive_utc() + chrono::Duration::seconds(seconds))
    .execute(pg)
    .expect("set the lease");
}

/// An instance died holding the lease: the others skip until it expires, then one sweeps.
async fn a_dead_instances_lease_is_taken_over_once_it_expires(db: TestDb) {
    db.insert_rows("expired", 100, -60);
    hold_lease(&db.url, "a-dead-instance", 3);

    let app = spawn_app(
        &db,
        &[("CLEANUP_MODE", "portable"), ("CLEANUP_INTERVAL_SECS", "1")],
    )
    .await;
    let skipped = eventually(Duration::from_secs(3), || {
        metric_value(&app.metrics.render(), "textdrop_cleanup_skipped_total") >= Some(1.0)
    })
    .await;
    let while_held = db.live_and_expired().1;
    let swept = eventually(Duration::from_secs(8), || db.live_and_expired().1 == 0).await;

    assert!(skipped, "ticks skipped while the dead instance's lease ran");
    assert_eq!(
        while_held, 100,
        "nothing deleted under someone else's lease"
    );
    assert!(
        swept,
        "taken over after it expired: {:?}",
        db.live_and_expired()
    );
    app.stop().await;
}

/// Another instance takes the lease over in the middle of a run (this one stalled past its
/// lease): the run stops at its next batch and deletes no more.
async fn a_lease_lost_mid_run_stops_the_run(db: TestDb) {
    db.insert_rows("expired", 20_000, -60);
    let sweeper = db.sweeper(&[("CLEANUP_MODE", "portable")]).await;
    let policy = SweepPolicy {
        batch_size: 50,
        ..SweepPolicy::default()
    };
    let sweep = sweeper.sweep(Clock::system().now(), policy, || false);
    let thief = async {
        let started =
            eventually(Duration::from_secs(10), || db.live_and_expired().1 < 20_000).await;
        assert!(started, "the run began");
        // On a thread of its own: the sweep's transaction on this thread may hold the row.
        let url = db.url.clone();
        actix_web::rt::task::spawn_blocking(move || hold_lease(&url, "another-instance", 3_600))
            .await
            .expect("the lease was taken");
    };

    let (report, ()) = futures_util::join!(sweep, thief);

    let report = report.expect("sweep");
    let left = db.live_and_expired().1;
    assert!(report.skipped, "{report:?}");
    assert!(report.deleted > 0 && report.deleted < 20_000, "{report:?}");
    assert_eq!(
        left as usize,
        20_000 - report.deleted,
        "nothing deleted after the loss"
    );
    assert!(!report.walked, "portable mode never walks by ctid");
}

/// When the sweeper lease was last given back: the Unix epoch until a portable sweeper used
/// it.
fn lease_released_at(db: &TestDb) -> NaiveDateTime {
    #[derive(QueryableByName)]
    struct Lease {
        #[diesel(sql_type = Timestamp)]
        expires_at: NaiveDateTime,
    }
    let query = diesel::sql_query("SELECT expires_at FROM sweeper_lease WHERE name = 'sweeper'");
    crate::on_conn!(&mut db.connect(), c => query.get_result::<Lease>(c))
        .expect("the lease row")
        .expires_at
}

/// `auto` is `postgres` on a vanilla PostgreSQL: its sweeper never touches the lease, while a
/// `portable` one takes it and gives it back; SQLite and MySQL never use it.
async fn auto_mode_is_postgres_on_postgresql(db: TestDb) {
    let epoch = chrono::DateTime::UNIX_EPOCH.naive_utc();
    db.insert_rows("expired", 5, -60);
    let now = Clock::system().now();
    let sweep = |mode: &'static str| {
        let db = &db;
        async move {
            let sweeper = db.sweeper(&[("CLEANUP_MODE", mode)]).await;
            sweeper.sweep(now, SweepPolicy::default(), || false).await
        }
    };

    let auto = sweep("auto").await.expect("sweep");
    let after_auto = lease_released_at(&db);
    db.insert_rows("expired-again", 5, -60);
    let portable = sweep("portable").await.expect("sweep");

    assert_eq!((auto.deleted, portable.deleted), (5, 5));
    assert_eq!(after_auto, epoch, "auto mode left the lease alone");
    let postgres = db.backend == crate::helpers::Backend::Postgres;
    assert_eq!(
        lease_released_at(&db) != epoch,
        postgres,
        "only PostgreSQL's portable mode uses the lease"
    );
}

/// Portable statements use the primary key and the `expires_at` index, never ctid.
async fn portable_batches_use_the_index_and_no_ctid(db: TestDb) {
    // 40,000 live rows, analyzed: statistics say nothing expired.
    db.insert_rows("live", 40_000, 3_600);
    let mut conn = db.connect();
    conn.execute("ANALYZE sessions").expect("analyze");
    assert!(!PORTABLE_DELETE_BATCH.contains("ctid"));
    assert!(!TAKE_LEASE.contains("pg_") && !TAKE_LEASE.contains("xmin"));
    let plan = pg_plan(&mut conn, PORTABLE_DELETE_BATCH, |q| {
        q.bind::<Timestamp, _>(Clock::system().now())
            .bind::<BigInt, _>(500)
    });
    assert!(
        plan.iter()
            .any(|n| n.ends_with("using sessions_expires_at_idx")),
        "{plan:?}"
    );
}

tests_on!(on_postgres: Postgres;
    three_instances_in_portable_mode_sweep_each_row_once,
    four_instances_in_portable_mode_migrate_once,
    a_dead_instances_lease_is_taken_over_once_it_expires,
    a_lease_lost_mid_run_stops_the_run,
    portable_batches_use_the_index_and_no_ctid,
);
sql_tests!(auto_mode_is_postgres_on_postgresql);
