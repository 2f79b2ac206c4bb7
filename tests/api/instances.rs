//! Several instances on one PostgreSQL: a visitor moving between them, one sweep between them,
//! and startup migrations taking turns.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use futures_util::future::join_all;
use reqwest::StatusCode;

use crate::helpers::{
    cookie_client, eventually, metric_value, spawn_app, spawn_app_with, TestClock, TestDb,
};

async fn three_instances_share_sessions_and_sweep_without_stepping_on_each_other(db: TestDb) {
    three_instances_sweep_each_row_once(db, "postgres").await;
}

/// Three instances in CLEANUP_MODE `mode` on one database: a visitor moves between them, and
/// 20,000 expired rows are deleted exactly once, no live row with them.
pub async fn three_instances_sweep_each_row_once(db: TestDb, mode: &str) {
    let vars = [
        ("CLEANUP_INTERVAL_SECS", "1"),
        ("CLEANUP_BATCH_SIZE", "500"),
        ("CLEANUP_MODE", mode),
    ];
    let client = cookie_client();
    let mut apps = Vec::new();
    for _ in 0..3 {
        apps.push(spawn_app_with(&db, &vars, TestClock::default(), client.clone()).await);
    }
    db.insert_rows("expired", 20_000, -60);
    db.insert_rows("live", 300, 3_600);

    // Meanwhile a visitor moves between instances: upload on one, read and replace on others.
    let started = Instant::now();
    let mut round = 0;
    while started.elapsed() < Duration::from_secs(3) {
        let body = format!("round {round}\n");
        let upload = apps[round % 3].upload("r.txt", body.clone()).await;
        assert_eq!(upload.status(), StatusCode::SEE_OTHER, "round {round}");
        let page = apps[(round + 1) % 3].get_text("/action").await;
        assert!(
            page.contains(&format!("round {round}")),
            "round {round}: {page}"
        );
        round += 1;
    }
    let swept = eventually(Duration::from_secs(20), || db.live_and_expired().1 == 0).await;

    assert!(
        swept,
        "every expired row is gone: {:?}",
        db.live_and_expired()
    );
    assert_eq!(
        db.live_and_expired().0,
        302,
        "no live row was deleted (300 + the visitor's, and the one its last upload superseded)"
    );
    let deleted: f64 = apps
        .iter()
        .map(|a| {
            metric_value(&a.metrics.render(), "textdrop_cleanup_deleted_rows_total")
                .expect("the counter")
        })
        .sum();
    assert_eq!(
        deleted, 20_000.0,
        "each expired row deleted exactly once across instances"
    );
    for app in apps {
        app.stop().await;
    }
}

async fn instances_started_at_once_on_an_empty_database_all_come_up(db: TestDb) {
    four_instances_migrate_once(db, "postgres").await;
}

/// Four instances in CLEANUP_MODE `mode` started at once on an empty database: all come up,
/// and each migration ran once.
pub async fn four_instances_migrate_once(db: TestDb, mode: &str) {
    let vars = [("CLEANUP_MODE", mode)];
    let apps = join_all((0..4).map(|_| spawn_app(&db, &vars))).await;

    for app in &apps {
        assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    }
    let mut conn = db.connect();
    assert!(conn.pending_migrations().is_empty());
    let count = diesel::dsl::sql::<BigInt>("SELECT count(*) FROM __diesel_schema_migrations");
    let runs: i64 = crate::on_conn!(&mut conn, c => count.get_result(c)).expect("count");
    let migrations = conn.migration_count() as i64;
    assert_eq!(runs, migrations, "each migration ran once");
    for app in apps {
        app.stop().await;
    }
}

tests_on!(on_postgres: Postgres;
    three_instances_share_sessions_and_sweep_without_stepping_on_each_other,
    instances_started_at_once_on_an_empty_database_all_come_up,
);
