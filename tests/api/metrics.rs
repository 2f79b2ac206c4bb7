//! `/metrics` and `textdrop stats`: figures that move with what the app did.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{eventually, metric_value, spawn_app, textdrop, Held, ServerProcess, TestDb};

async fn metrics_expose_store_and_cleanup_figures_on_their_own_port_only(db: TestDb) {
    db.insert_rows("expired", 2, -60);
    let app = spawn_app(
        &db,
        &[
            ("CLEANUP_INTERVAL_SECS", "1"),
            ("METRICS_ADDR", "127.0.0.1:0"),
        ],
    )
    .await;
    app.upload("a.txt", "x\n").await;
    app.get("/action").await;
    let sampled = eventually(Duration::from_secs(10), || {
        metric_value(&app.metrics.render(), "textdrop_sessions_live") == Some(1.0)
    })
    .await;

    let public = app.get("/metrics").await;
    let port = app.metrics_port.expect("a metrics listener");
    let response = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("GET /metrics");

    assert_eq!(
        public.status(),
        StatusCode::NOT_FOUND,
        "not on the public port"
    );
    assert!(sampled, "the sweeper samples the live gauge");
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("body");
    let value = |name: &str| metric_value(&text, name).unwrap_or_else(|| panic!("{name}: {text}"));
    assert_eq!(value("textdrop_sessions_live"), 1.0);
    assert_eq!(value("textdrop_cleanup_deleted_rows_total"), 2.0);
    assert!(value("textdrop_cleanup_runs_total") >= 1.0);
    assert!(value("textdrop_cleanup_duration_seconds_count") >= 1.0);
    assert_eq!(value("textdrop_cleanup_skipped_total"), 0.0);
    assert_eq!(value("textdrop_cleanup_errors_total"), 0.0);
    let store =
        |metric: &str, operation: &str| value(&format!("{metric}{{operation=\"{operation}\"}}"));
    assert_eq!(
        store("textdrop_store_operation_duration_seconds_count", "save"),
        1.0
    );
    assert_eq!(
        store("textdrop_store_operation_duration_seconds_count", "load"),
        1.0
    );
    assert_eq!(store("textdrop_store_errors_total", "load"), 0.0);
    app.stop().await;
}

async fn a_held_sweeper_lock_is_counted_as_skipped_ticks_and_warned_about(db: TestDb) {
    db.insert_rows("expired", 5, -60);
    let holder = db.hold(Held::Sweeper);

    let server = ServerProcess::start(
        &db,
        &[
            ("CLEANUP_INTERVAL_SECS", "1"),
            ("METRICS_ADDR", "127.0.0.1:0"),
        ],
    );
    actix_web::rt::time::sleep(Duration::from_millis(3_600)).await;
    holder.release();
    let log = server.stop_and_read_log();

    assert!(
        log.contains(
            "cleanup: skipped 3 ticks in a row because another database session holds the \
             sweeper's lock"
        ),
        "{log}"
    );
    assert_eq!(
        log.matches("skipped 3 ticks in a row").count(),
        1,
        "warned once: {log}"
    );
    assert_eq!(
        db.row_count(),
        5,
        "nothing was deleted while the lock was held"
    );
}

async fn skipped_ticks_are_counted_in_the_metrics(db: TestDb) {
    db.insert_rows("expired", 5, -60);
    let holder = db.hold(Held::Sweeper);

    let app = spawn_app(&db, &[("CLEANUP_INTERVAL_SECS", "1")]).await;
    let skipped = eventually(Duration::from_secs(5), || {
        metric_value(&app.metrics.render(), "textdrop_cleanup_skipped_total") >= Some(2.0)
    })
    .await;
    holder.release();

    assert!(skipped, "{}", app.metrics.render());
    app.stop().await;
}

async fn the_stats_command_counts_live_and_expired_rows(db: TestDb) {
    let before = (chrono::Utc::now() - chrono::Duration::seconds(60)).format("%Y-%m-%d %H:%M");
    db.insert_rows("expired", 3, -60);
    db.insert_rows("live", 2, 600);
    let after = (chrono::Utc::now() - chrono::Duration::seconds(60)).format("%Y-%m-%d %H:%M");

    let output = textdrop(&["stats"])
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run");

    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("live sessions:    2\n"), "{stdout}");
    assert!(stdout.contains("expired sessions: 3 "), "{stdout}");
    assert!(
        stdout.contains(&format!("oldest expiry:    {before}"))
            || stdout.contains(&format!("oldest expiry:    {after}")),
        "{stdout}"
    );
}

sql_tests!(
    metrics_expose_store_and_cleanup_figures_on_their_own_port_only,
    the_stats_command_counts_live_and_expired_rows,
);

tests_on!(on_postgres: Postgres;
    a_held_sweeper_lock_is_counted_as_skipped_ticks_and_warned_about,
    skipped_ticks_are_counted_in_the_metrics,
);

/// Every backend: `/metrics` answers on METRICS_ADDR only; the public port says 404.
async fn metrics_are_served_on_metrics_addr_only(db: TestDb) {
    let app = spawn_app(&db, &[("METRICS_ADDR", "127.0.0.1:0")]).await;
    app.upload("a.txt", "a\n").await;

    let public = app.get("/metrics").await;
    let port = app.metrics_port.expect("a metrics listener");
    let private = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("GET /metrics");

    assert_eq!(public.status(), StatusCode::NOT_FOUND);
    assert_eq!(private.status(), StatusCode::OK);
    let text = private.text().await.expect("body");
    let saves = metric_value(
        &text,
        "textdrop_store_operation_duration_seconds_count{operation=\"save\"}",
    );
    assert_eq!(saves, Some(1.0), "{text}");
    app.stop().await;

    let without = spawn_app(&db, &[]).await;
    assert_eq!(without.metrics_port, None, "unset: no metrics listener");
    assert_eq!(
        without.get("/metrics").await.status(),
        StatusCode::NOT_FOUND
    );
    without.stop().await;
}

tests_on!(all_sqlite: Sqlite; metrics_are_served_on_metrics_addr_only);
tests_on!(all_postgres: Postgres; metrics_are_served_on_metrics_addr_only);
tests_on!(all_redis: Redis; metrics_are_served_on_metrics_addr_only);
tests_on!(all_cluster: RedisCluster; metrics_are_served_on_metrics_addr_only);
