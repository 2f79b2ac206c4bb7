//! Portable mode (CLEANUP_MODE=portable), for PostgreSQL-compatible engines without ctid,
//! xmin or working advisory locks, tested on PostgreSQL: a lease row elects the sweeper and
//! serialises migrations; batches delete by primary key.

use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;
use diesel::sql_types::{Text, Timestamp};
use textdrop::clock::Clock;
use textdrop::config::CleanupMode;
use textdrop::db::{self, DbConnection};
use textdrop::session::lease;
use textdrop::session::sweep::{delete_expired, SweepLimits};
use textdrop::session::sweep_queries;

use crate::helpers::{eventually, insert_rows, live_and_expired, metric_value, spawn_app, TestDb};
use crate::instances::{four_instances_migrate_once, three_instances_sweep_each_row_once};

async fn three_instances_in_portable_mode_sweep_each_row_once(db: TestDb) {
    three_instances_sweep_each_row_once(db, "portable").await;
}

async fn four_instances_in_portable_mode_migrate_once(db: TestDb) {
    four_instances_migrate_once(db, "portable").await;
}

/// Sets the sweeper lease to `holder` until `seconds` from now.
fn hold_lease(db: &TestDb, holder: &str, seconds: i64) {
    diesel::sql_query(
        "UPDATE sweeper_lease SET holder = $1, expires_at = $2 WHERE name = 'sweeper'",
    )
    .bind::<Text, _>(holder)
    .bind::<Timestamp, _>(Utc::now().naive_utc() + chrono::Duration::seconds(seconds))
    .execute(&mut db.connect())
    .expect("set the lease");
}

/// An instance died holding the lease: the others skip until it expires, then one sweeps.
async fn a_dead_instances_lease_is_taken_over_once_it_expires(db: TestDb) {
    insert_rows(&db, "expired", 100, -60);
    hold_lease(&db, "a-dead-instance", 3);

    let app = spawn_app(
        &db,
        &[("CLEANUP_MODE", "portable"), ("CLEANUP_INTERVAL_SECS", "1")],
    )
    .await;
    let skipped = eventually(Duration::from_secs(3), || {
        metric_value(&app.metrics.render(), "textdrop_cleanup_skipped_total") >= Some(1.0)
    })
    .await;
    let while_held = live_and_expired(&db).1;
    let swept = eventually(Duration::from_secs(8), || live_and_expired(&db).1 == 0).await;

    assert!(skipped, "ticks skipped while the dead instance's lease ran");
    assert_eq!(
        while_held, 100,
        "nothing deleted under someone else's lease"
    );
    assert!(
        swept,
        "taken over after it expired: {:?}",
        live_and_expired(&db)
    );
    app.stop().await;
}

/// Another instance takes the lease over in the middle of a run (this one stalled past its
/// lease): the run stops at its next batch and deletes no more.
async fn a_lease_lost_mid_run_stops_the_run(db: TestDb) {
    insert_rows(&db, "expired", 20_000, -60);
    let pool = db.pool();
    let limits = SweepLimits {
        batch_size: 50,
        ..SweepLimits::default()
    }
    .portable(lease::Holder::new(), Duration::from_secs(60));
    let sweep = delete_expired(&pool, Clock::system().now(), limits);
    let thief = async {
        let started =
            eventually(Duration::from_secs(10), || live_and_expired(&db).1 < 20_000).await;
        assert!(started, "the run began");
        hold_lease(&db, "another-instance", 3_600);
    };

    let (report, ()) = futures_util::join!(sweep, thief);

    let report = report.expect("sweep");
    let left = live_and_expired(&db).1;
    assert!(report.skipped, "{report:?}");
    assert!(report.deleted > 0 && report.deleted < 20_000, "{report:?}");
    assert_eq!(
        left as usize,
        20_000 - report.deleted,
        "nothing deleted after the loss"
    );
    assert!(!report.walked, "portable mode never walks by ctid");
}

/// `auto` is `postgres` on a vanilla PostgreSQL; SQLite never uses the lease.
async fn auto_mode_is_postgres_on_postgresql(db: TestDb) {
    let mut conn = db.connect();
    let auto = db::portable_mode(&mut conn, CleanupMode::Auto).expect("mode");
    let forced = db::portable_mode(&mut conn, CleanupMode::Portable).expect("mode");
    assert!(!auto, "a vanilla PostgreSQL, or SQLite, is not portable");
    assert_eq!(forced, matches!(conn, DbConnection::Postgres(_)));
}

/// Portable statements use the primary key and the `expires_at` index, never ctid.
async fn portable_batches_use_the_index_and_no_ctid(db: TestDb) {
    // 40,000 live rows, analyzed: statistics say nothing expired.
    insert_rows(&db, "live", 40_000, 3_600);
    diesel::sql_query("ANALYZE sessions")
        .execute(&mut db.connect())
        .expect("analyze");
    assert!(!sweep_queries::PORTABLE_DELETE_BATCH.contains("ctid"));
    assert!(!lease::TAKE.contains("pg_") && !lease::TAKE.contains("xmin"));
    let DbConnection::Postgres(pg) = &mut db.connect() else {
        panic!("PostgreSQL only")
    };
    let plan = textdrop::session::planner::explain(
        pg,
        diesel::sql_query(format!(
            "EXPLAIN (FORMAT JSON) {}",
            sweep_queries::PORTABLE_DELETE_BATCH
        ))
        .into_boxed()
        .bind::<Timestamp, _>(Clock::system().now())
        .bind::<diesel::sql_types::BigInt, _>(500),
    )
    .expect("explain")
    .nodes();
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
