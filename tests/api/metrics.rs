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
        let text = app.metrics.render();
        metric_value(&text, "textdrop_sessions_live") == Some(1.0)
            && metric_value(&text, "textdrop_stored_bytes").is_some_and(|b| b > 0.0)
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
    assert!(
        sampled,
        "the sweeper samples the live gauge, the upkeep the bytes stored"
    );
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("body");
    let value = |name: &str| metric_value(&text, name).unwrap_or_else(|| panic!("{name}: {text}"));
    assert_eq!(value("textdrop_sessions_live"), 1.0);
    assert_eq!(value("textdrop_cleanup_deleted_rows_total"), 2.0);
    assert!(value("textdrop_cleanup_runs_total") >= 1.0);
    assert!(value("textdrop_cleanup_duration_seconds_count") >= 1.0);
    assert_eq!(value("textdrop_cleanup_skipped_total"), 0.0);
    assert_eq!(value("textdrop_cleanup_errors_total"), 0.0);
    // The storage cap's measurement (MAX_STORED_BYTES is 1 GiB by default): one record, its
    // 2-byte file and the record's charge (Redis: its used_memory).
    assert_eq!(value("textdrop_stored_bytes_limit"), (1u64 << 30) as f64);
    assert!(value("textdrop_stored_bytes") >= 2.0 + 2048.0, "{text}");
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
    let age: i64 = stdout
        .split("oldest expired:   ")
        .nth(1)
        .and_then(|rest| rest.split(" s ago").next())
        .and_then(|secs| secs.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!((59..=70).contains(&age), "{stdout}");
    assert!(
        stdout.contains(&format!("oldest expiry:    {before}"))
            || stdout.contains(&format!("oldest expiry:    {after}")),
        "{stdout}"
    );
}

/// While another session holds the sweeper's lock the backlog shows (5 rows, the oldest a
/// minute old), this instance says it does not hold the lock, and its last success stays at its
/// start; once the lock is free the backlog empties, the lock shows held and the last success
/// moves on.
async fn the_sweeper_can_be_watched_holding_the_lock_or_not(db: TestDb) {
    db.insert_rows("expired", 5, -60);
    let holder = db.hold(Held::Sweeper);
    let started = unix_now();
    let app = spawn_app(&db, &[("CLEANUP_INTERVAL_SECS", "1")]).await;
    let value = |name: &str| metric_value(&app.metrics.render(), name);
    let blocked = eventually(Duration::from_secs(10), || {
        value("textdrop_sessions_expired") == Some(5.0)
            && value("textdrop_cleanup_lock_held") == Some(0.0)
    })
    .await;
    assert!(blocked, "{}", app.metrics.render());
    let age = value("textdrop_sessions_oldest_expired_age_seconds").expect("age");
    assert!((60.0..90.0).contains(&age), "{age}");
    let stalled = value("textdrop_cleanup_last_success_timestamp_seconds").expect("last success");
    assert!(
        (started - 1.0..started + 10.0).contains(&stalled),
        "{stalled} vs {started}"
    );
    assert_eq!(value("textdrop_cleanup_interval_seconds"), Some(1.0));

    holder.release();
    let swept = eventually(Duration::from_secs(10), || {
        value("textdrop_sessions_expired") == Some(0.0)
            && value("textdrop_cleanup_lock_held") == Some(1.0)
    })
    .await;
    assert!(swept, "{}", app.metrics.render());
    assert_eq!(
        value("textdrop_sessions_oldest_expired_age_seconds"),
        Some(0.0)
    );
    assert!(value("textdrop_cleanup_last_success_timestamp_seconds").expect("last") > stalled);
    app.stop().await;
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

/// Every `textdrop_…` name in `text`.
fn metric_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("textdrop_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.push(name);
    }
    names.sort();
    names.dedup();
    names
}

/// The dashboard's queries and the alert rules name only metrics textdrop exports; every panel
/// has an id, a position and queries; refusals and responses are counted.
async fn the_dashboard_and_the_alerts_name_only_exported_metrics(db: TestDb) {
    let app = spawn_app(&db, &[("MAX_UPLOAD_BYTES", "10")]).await;
    let refused = app.upload("big.txt", "more than ten bytes\n").await;
    assert_eq!(refused.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // A stored file and a read, so the store's labelled histogram has its series.
    assert_eq!(
        app.upload("ok.txt", "ok\n").await.status(),
        StatusCode::SEE_OTHER
    );
    app.get("/action").await;
    let exported = app.metrics.render();
    assert_eq!(
        metric_value(&exported, "textdrop_refusals_total{reason=\"too_large\"}"),
        Some(1.0)
    );
    assert!(metric_value(&exported, "textdrop_http_responses_total{class=\"4xx\"}") >= Some(1.0));

    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operations");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(docs.join("grafana-dashboard.json")).expect("the dashboard"),
    )
    .expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 8);
    let mut queries = String::new();
    let mut ids = Vec::new();
    for panel in panels {
        ids.push(panel["id"].as_u64().expect("a panel id"));
        assert!(panel["gridPos"]["w"].as_u64().is_some(), "{panel}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{panel}");
        for target in targets {
            queries.push_str(target["expr"].as_str().expect("an expr"));
            queries.push('\n');
        }
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    let alerts = std::fs::read_to_string(docs.join("alerts.yml")).expect("the alerts");
    for (what, text) in [("dashboard", &queries), ("alerts", &alerts)] {
        let names = metric_names(text);
        assert!(names.len() >= 4, "{what}: {names:?}");
        for name in names {
            assert!(
                exported.contains(&name),
                "{what} names {name}, which is not exported"
            );
        }
    }
    for wanted in [
        "textdrop_http_responses_total",
        "textdrop_store_operation_duration_seconds_bucket",
        "textdrop_sessions_live",
        "textdrop_refusals_total",
        "textdrop_cleanup_runs_total",
    ] {
        assert!(queries.contains(wanted), "the dashboard shows {wanted}");
    }
    app.stop().await;
}

tests_on!(on_sqlite: Sqlite; the_dashboard_and_the_alerts_name_only_exported_metrics);

sql_tests!(
    metrics_expose_store_and_cleanup_figures_on_their_own_port_only,
    the_stats_command_counts_live_and_expired_rows,
);

tests_on!(on_postgres: Postgres;
    the_sweeper_can_be_watched_holding_the_lock_or_not,
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
