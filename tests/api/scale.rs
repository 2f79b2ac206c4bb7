//! Several instances on one PostgreSQL, the sweeper lock, batched cleanup, metrics and `stats`.

use std::time::{Duration, Instant};

use chrono::Utc;
use diesel::connection::SimpleConnection;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{BigInt, Text, Timestamp};
use futures_util::future::join_all;
use reqwest::StatusCode;
use textdrop::clock::Clock;
use textdrop::db::{self, DbConnection};
use textdrop::session::cleanup::{delete_expired, SweepLimits};
use textdrop::session::queries::{self, NewSession, SWEEPER_LOCK_KEY};

use crate::helpers::{
    cookie_client, eventually, spawn_app, spawn_app_with, Backend, TestClock, TestDb,
};
use crate::private_pg::PrivatePostgres;

/// Inserts `count` rows whose expiry is `offset_secs` from now, in chunks.
fn insert_rows(db: &TestDb, prefix: &str, count: usize, offset_secs: i64) {
    let now = Utc::now().naive_utc();
    let ids: Vec<String> = (0..count).map(|n| format!("{prefix}-{n}")).collect();
    let mut conn = db.connect();
    for chunk in ids.chunks(5_000) {
        let rows: Vec<NewSession<'_>> = chunk
            .iter()
            .map(|id| NewSession {
                id,
                state: "{}",
                expires_at: now + chrono::Duration::seconds(offset_secs),
                created_at: now,
            })
            .collect();
        let insert = diesel::insert_into(textdrop::schema::sessions::table).values(&rows);
        // Multi-row inserts do not compile through the MultiConnection: use the backend's own.
        match &mut conn {
            DbConnection::Postgres(pg) => insert.execute(pg),
            DbConnection::Sqlite(sqlite) => insert.execute(sqlite),
        }
        .expect("insert rows");
    }
}

fn counts(db: &TestDb) -> (i64, i64) {
    let now = Clock::system().now();
    let mut conn = db.connect();
    (
        queries::count_live(&mut conn, now).expect("live"),
        queries::count_expired(&mut conn, now).expect("expired"),
    )
}

#[actix_web::test]
async fn three_instances_share_sessions_and_sweep_without_stepping_on_each_other() {
    let Some(db) = TestDb::new(Backend::Postgres) else {
        return;
    };
    let vars = [
        ("CLEANUP_INTERVAL_SECS", "1"),
        ("CLEANUP_BATCH_SIZE", "500"),
    ];
    let client = cookie_client();
    let mut apps = Vec::new();
    for _ in 0..3 {
        apps.push(spawn_app_with(&db, &vars, TestClock::default(), client.clone()).await);
    }
    insert_rows(&db, "expired", 20_000, -60);
    insert_rows(&db, "live", 300, 3_600);

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
    let swept = eventually(Duration::from_secs(20), || counts(&db).1 == 0).await;

    assert!(swept, "every expired row is gone: {:?}", counts(&db));
    assert_eq!(
        counts(&db).0,
        301,
        "no live row was deleted (300 + the visitor's)"
    );
    let deleted: u64 = apps.iter().map(|a| a.metrics.deleted_rows()).sum();
    assert_eq!(
        deleted, 20_000,
        "each expired row deleted exactly once across instances"
    );
    for app in apps {
        app.stop().await;
    }
}

#[actix_web::test]
async fn a_sweeper_skips_its_tick_while_another_holds_the_lock() {
    let Some(db) = TestDb::new(Backend::Postgres) else {
        return;
    };
    db::run_migrations(&mut db.connect()).expect("migrate");
    insert_rows(&db, "expired", 50, -60);
    let now = Clock::system().now();
    let mut holder = db.connect();

    let while_held = holder
        .transaction(|holder| {
            diesel::sql_query(format!("SELECT pg_advisory_xact_lock({SWEEPER_LOCK_KEY})"))
                .execute(holder)?;
            // The other sweeper does not wait: it reports a skip and deletes nothing.
            delete_expired(&mut db.connect(), now, SweepLimits::default())
        })
        .expect("sweep while held");
    let after = delete_expired(&mut db.connect(), now, SweepLimits::default()).expect("sweep");

    assert!(while_held.skipped);
    assert_eq!(while_held.deleted, 0);
    assert!(!after.skipped);
    assert_eq!(after.deleted, 50);
}

/// Seeds `rows` rows on PostgreSQL in one statement: of every 100 consecutive rows the first
/// `expired_percent` expired an hour ago and the rest have a day left, so every block holds
/// both. Then ANALYZE, so the planner knows the share.
fn seed_mixed(db: &TestDb, rows: i64, expired_percent: i64) {
    diesel::sql_query(format!(
        "INSERT INTO sessions (id, state, expires_at, created_at) \
         SELECT CASE WHEN g % 100 < {expired_percent} THEN 'expired-' ELSE 'live-' END || g, \
                '{{}}', \
                (now() AT TIME ZONE 'utc') + CASE WHEN g % 100 < {expired_percent} \
                    THEN -interval '1 hour' ELSE interval '1 day' END, \
                now() AT TIME ZONE 'utc' \
         FROM generate_series(0, {rows} - 1) g"
    ))
    .execute(&mut db.connect())
    .expect("seed");
    diesel::sql_query("ANALYZE sessions")
        .execute(&mut db.connect())
        .expect("analyze");
}

/// A migrated PostgreSQL test database seeded by [`seed_mixed`]; `None` where PostgreSQL is
/// not configured (outside CI).
fn mixed_postgres(rows: i64, expired_percent: i64) -> Option<TestDb> {
    let db = TestDb::new(Backend::Postgres)?;
    db::run_migrations(&mut db.connect()).expect("migrate");
    seed_mixed(&db, rows, expired_percent);
    Some(db)
}

/// Limits that let even a small test table be walked.
fn walkable(batch_size: i64) -> SweepLimits {
    SweepLimits {
        batch_size,
        walk_min_blocks: 1,
        ..SweepLimits::default()
    }
}

fn pg_connect(db: &TestDb) -> PgConnection {
    match db.connect() {
        DbConnection::Postgres(pg) => pg,
        DbConnection::Sqlite(_) => unreachable!("PostgreSQL only"),
    }
}

fn live_ids(db: &TestDb) -> Vec<String> {
    use textdrop::schema::sessions::dsl::*;
    sessions
        .select(id)
        .filter(id.like("live-%"))
        .order(id)
        .load(&mut pg_connect(db))
        .expect("live ids")
}

#[actix_web::test]
async fn a_big_backlog_is_walked_in_block_ranges_and_every_live_row_stays() {
    let Some(db) = mixed_postgres(40_000, 75) else {
        return;
    };
    let live_before = live_ids(&db);
    let limits = walkable(1_000);

    let report = delete_expired(&mut db.connect(), Clock::system().now(), limits).expect("sweep");

    assert!(report.walked, "75 % expired: the run walks the table");
    assert_eq!(report.deleted, 30_000);
    assert!(!report.skipped);
    // One index batch, then steps sized to about 1,000 rows each (750 of them expired).
    assert!(report.batches >= 30, "{report:?}");
    assert!(report.largest_batch <= 1_000, "{report:?}");
    assert_eq!(counts(&db), (10_000, 0));
    assert_eq!(live_ids(&db), live_before, "no live row deleted");
}

#[actix_web::test]
async fn two_sweepers_walking_at_once_delete_each_expired_row_once() {
    let Some(db) = mixed_postgres(40_000, 75) else {
        return;
    };
    let live_before = live_ids(&db);
    let limits = walkable(500);
    let now = Clock::system().now();

    // Whichever finds the lock taken stops; the other goes on to the end of the table.
    let reports: Vec<_> = std::thread::scope(|scope| {
        let sweepers: Vec<_> = (0..2)
            .map(|_| {
                let mut conn = db.connect();
                scope.spawn(move || delete_expired(&mut conn, now, limits).expect("sweep"))
            })
            .collect();
        sweepers
            .into_iter()
            .map(|s| s.join().expect("join"))
            .collect()
    });

    let deleted: usize = reports.iter().map(|r| r.deleted).sum();
    assert_eq!(
        deleted, 30_000,
        "each expired row deleted once: {reports:?}"
    );
    assert!(reports.iter().any(|r| r.walked), "{reports:?}");
    assert_eq!(counts(&db), (10_000, 0));
    assert_eq!(live_ids(&db), live_before, "no live row deleted");
}

#[actix_web::test]
async fn a_small_share_of_expired_rows_is_swept_through_the_index() {
    let Some(db) = mixed_postgres(40_000, 5) else {
        return;
    };
    let limits = walkable(500);

    let report = delete_expired(&mut db.connect(), Clock::system().now(), limits).expect("sweep");

    assert!(!report.walked, "5 % expired: index batches only");
    assert_eq!(report.deleted, 2_000);
    assert_eq!(report.batches, 5, "4 full batches, then a short one");
    assert_eq!(counts(&db), (38_000, 0));
}

#[actix_web::test]
async fn a_block_range_batch_is_skipped_while_another_sweeper_holds_the_lock() {
    let Some(db) = mixed_postgres(1_000, 50) else {
        return;
    };
    let now = Clock::system().now();
    let mut holder = db.connect();
    let sweeper = &mut pg_connect(&db);

    let while_held = holder
        .transaction(|holder| {
            diesel::sql_query(format!("SELECT pg_advisory_xact_lock({SWEEPER_LOCK_KEY})"))
                .execute(holder)?;
            queries::delete_expired_in_blocks(sweeper, now, 0, 1_000)
        })
        .expect("batch while held");
    let after = queries::delete_expired_in_blocks(sweeper, now, 0, 1_000).expect("batch");

    assert_eq!(while_held, None);
    assert_eq!(after, Some(500));
    assert_eq!(counts(&db), (500, 0));
}

/// The plan PostgreSQL makes for one of the sweeper's statements, bound as the sweeper binds it.
fn pg_plan(pg: &mut PgConnection, explain: BoxedSqlQuery<'_, Pg, SqlQuery>) -> String {
    queries::explain(pg, explain).expect("explain").join("\n")
}

#[actix_web::test]
async fn postgres_sweeps_use_the_expires_at_index_or_a_tid_range_scan() {
    // Statistics say nothing expired: the planner's favourite case for the index.
    let Some(db) = mixed_postgres(40_000, 0) else {
        return;
    };
    let now = Clock::system().now();
    let pg = &mut pg_connect(&db);
    let batch = |pg: &mut PgConnection| {
        pg_plan(
            pg,
            diesel::sql_query(format!("EXPLAIN {}", queries::PG_DELETE_BATCH))
                .into_boxed()
                .bind::<Timestamp, _>(now)
                .bind::<BigInt, _>(5_000),
        )
    };
    let range = |pg: &mut PgConnection| {
        pg_plan(
            pg,
            diesel::sql_query(format!("EXPLAIN {}", queries::PG_DELETE_BLOCK_RANGE))
                .into_boxed()
                .bind::<BigInt, _>(0)
                .bind::<BigInt, _>(51)
                .bind::<Timestamp, _>(now),
        )
    };

    let batch_plan = batch(pg);
    let (bare_range_plan, walk_plan) = pg
        .transaction(|pg| {
            let bare = range(pg);
            pg.batch_execute(queries::PG_BLOCK_RANGE_SETTINGS)?;
            diesel::QueryResult::Ok((bare, range(pg)))
        })
        .expect("explain in a transaction");

    assert!(
        batch_plan.contains("Index Scan using sessions_expires_at_idx")
            && batch_plan.contains("Tid Scan"),
        "{batch_plan}"
    );
    assert!(
        bare_range_plan.contains("sessions_expires_at_idx"),
        "without the settings the planner takes the index: {bare_range_plan}"
    );
    assert!(
        walk_plan.contains("Tid Range Scan") && !walk_plan.contains("Index"),
        "{walk_plan}"
    );
}

#[derive(QueryableByName)]
struct SqlitePlanRow {
    #[diesel(sql_type = Text)]
    detail: String,
}

#[actix_web::test]
async fn sqlite_batches_use_the_expires_at_index() {
    let Some(db) = TestDb::new(Backend::Sqlite) else {
        return;
    };
    db::run_migrations(&mut db.connect()).expect("migrate");
    let DbConnection::Sqlite(sqlite) = &mut db.connect() else {
        unreachable!("SQLite only")
    };

    let plan: Vec<String> = diesel::sql_query(format!(
        "EXPLAIN QUERY PLAN {}",
        queries::SQLITE_DELETE_BATCH
    ))
    .bind::<Timestamp, _>(Clock::system().now())
    .bind::<BigInt, _>(5_000)
    .load::<SqlitePlanRow>(sqlite)
    .expect("explain")
    .into_iter()
    .map(|row| row.detail)
    .collect();

    assert!(
        plan.iter()
            .any(|step| step.contains("USING") && step.contains("sessions_expires_at_idx")),
        "{plan:?}"
    );
}

#[actix_web::test]
async fn instances_started_at_once_on_an_empty_database_all_come_up() {
    let Some(db) = TestDb::new(Backend::Postgres) else {
        return;
    };

    let apps = join_all((0..4).map(|_| spawn_app(&db, &[]))).await;

    for app in &apps {
        assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    }
    let mut conn = db.connect();
    assert!(db::pending_migrations(&mut conn)
        .expect("pending")
        .is_empty());
    let runs: i64 = diesel::dsl::sql::<BigInt>("SELECT count(*) FROM __diesel_schema_migrations")
        .get_result(&mut conn)
        .expect("count");
    assert_eq!(runs, 1, "the one migration ran once");
    for app in apps {
        app.stop().await;
    }
}

#[actix_web::test]
async fn the_sweeper_keeps_running_after_a_database_error() {
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let db = TestDb::existing(pg.url());
    let app = spawn_app(&db, &[("CLEANUP_INTERVAL_SECS", "1")]).await;

    pg.halt();
    let failed = eventually(Duration::from_secs(15), || {
        app.metrics
            .render()
            .contains("textdrop_cleanup_errors_total 1")
    })
    .await;
    pg.resume();
    insert_rows(&db, "expired", 10, -60);
    let swept = eventually(Duration::from_secs(15), || counts(&db).1 == 0).await;

    assert!(failed, "a run failed while the database was down");
    assert!(swept, "later runs delete again: {:?}", counts(&db));
    app.stop().await;
}

async fn metrics_expose_store_and_cleanup_figures(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    let app = spawn_app(&db, &[("CLEANUP_INTERVAL_SECS", "1")]).await;
    app.upload("a.txt", "x\n").await;
    app.get("/action").await;
    let sampled = eventually(Duration::from_secs(10), || {
        app.metrics.render().contains("textdrop_sessions_live 1")
    })
    .await;

    let response = app.get("/metrics").await;

    assert!(sampled, "the sweeper samples the live gauge");
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("body");
    for name in [
        "textdrop_sessions_live 1",
        "textdrop_cleanup_runs_total",
        "textdrop_cleanup_deleted_rows_total",
        "textdrop_cleanup_duration_seconds_bucket",
        "textdrop_cleanup_skipped_total",
        "textdrop_cleanup_errors_total",
        "textdrop_store_operation_duration_seconds_count{operation=\"save\"} 1",
        "textdrop_store_operation_duration_seconds_count{operation=\"load\"} 1",
        "# TYPE textdrop_store_errors_total counter",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    app.stop().await;
}

async fn the_stats_command_counts_live_and_expired_rows(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    db::run_migrations(&mut db.connect()).expect("migrate");
    insert_rows(&db, "expired", 3, -60);
    insert_rows(&db, "live", 2, 600);

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_textdrop"))
        .arg("stats")
        .env_clear()
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run");

    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("live sessions:    2"), "{stdout}");
    assert!(stdout.contains("expired sessions: 3"), "{stdout}");
    assert!(stdout.contains("oldest expiry:    20"), "{stdout}");
}

backend_tests!(
    metrics_expose_store_and_cleanup_figures,
    the_stats_command_counts_live_and_expired_rows,
);
