//! The sweep: batches under the sweeper lock, the table walk for big PostgreSQL backlogs, the
//! plans the statements get, and the task's behaviour around requests and faults.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{BigInt, Text, Timestamp};
use reqwest::StatusCode;
use textdrop::clock::Clock;
use textdrop::db::{self, named_lock, DbConnection};
use textdrop::session::planner;
use textdrop::session::queries;
use textdrop::session::sweep::{delete_expired, SweepLimits};
use textdrop::session::sweep_queries::{self, MYSQL_SWEEPER_LOCK, SWEEPER_LOCK_KEY};

use crate::helpers::{eventually, insert_rows, live_and_expired, metric_value, spawn_app, TestDb};
use crate::private_pg::{Outage, PrivatePostgres};

async fn a_sweeper_skips_its_run_while_another_holds_the_lock(db: TestDb) {
    insert_rows(&db, "expired", 50, -60);
    let pool = db.pool();
    let now = Clock::system().now();
    let mut holder = hold_sweeper_lock(&db);

    // The other sweeper does not wait: it reports a skip and deletes nothing.
    let while_held = delete_expired(&pool, now, SweepLimits::default())
        .await
        .expect("sweep while held");
    release_sweeper_lock(&mut holder);
    let after = delete_expired(&pool, now, SweepLimits::default())
        .await
        .expect("sweep");

    assert!(while_held.skipped);
    assert_eq!(while_held.deleted, 0);
    assert!(!after.skipped);
    assert_eq!(after.deleted, 50);
}

/// A connection holding the sweeper lock, as another instance's sweeper would; dropping it
/// gives the lock back.
fn hold_sweeper_lock(db: &TestDb) -> DbConnection {
    let mut holder = db.connect();
    match &mut holder {
        DbConnection::Postgres(pg) => pg
            .batch_execute(&format!(
                "BEGIN; SELECT pg_advisory_xact_lock({SWEEPER_LOCK_KEY})"
            ))
            .expect("hold the lock"),
        DbConnection::Mysql(mysql) => assert!(
            named_lock::try_lock(mysql, MYSQL_SWEEPER_LOCK, Duration::ZERO).expect("GET_LOCK"),
            "the lock was free"
        ),
        DbConnection::Sqlite(_) => unreachable!("SQLite's sweeper needs no lock"),
    }
    holder
}

/// Gives the lock back on the holding connection itself: a server frees a closed
/// connection's locks only once it notices the close, after the client has moved on.
fn release_sweeper_lock(holder: &mut DbConnection) {
    match holder {
        DbConnection::Postgres(pg) => pg.batch_execute("ROLLBACK").expect("end the transaction"),
        DbConnection::Mysql(mysql) => {
            named_lock::release(mysql, MYSQL_SWEEPER_LOCK).expect("RELEASE_LOCK")
        }
        DbConnection::Sqlite(_) => unreachable!("SQLite's sweeper needs no lock"),
    }
}

/// MySQL's named locks belong to the server: a sweeper in another database of the same server
/// must not make this one skip.
async fn a_sweeper_lock_in_another_database_does_not_hold_this_one(db: TestDb) {
    let other = TestDb::new(db.backend).expect("a second database on the same server");
    other.pool();
    let _held_there = hold_sweeper_lock(&other);
    insert_rows(&db, "expired", 5, -60);

    let report = delete_expired(&db.pool(), Clock::system().now(), SweepLimits::default())
        .await
        .expect("sweep");

    assert!(!report.skipped);
    assert_eq!(report.deleted, 5);
}

/// Seeds `rows` rows on PostgreSQL in one statement: of every 100 consecutive rows the first
/// `expired_percent` expired an hour ago and the rest have a day left, so every block holds
/// both. Then ANALYZE, so the planner knows the share.
fn seed_mixed(db: &TestDb, rows: i64, expired_percent: i64) {
    db::run_migrations(&mut db.connect()).expect("migrate");
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

/// Limits that let even a small test table be walked.
fn walkable(batch_size: i64) -> SweepLimits {
    SweepLimits {
        batch_size,
        walk_min_blocks: 1,
        ..SweepLimits::default()
    }
}

fn pg_connect(db: &TestDb) -> PgConnection {
    PgConnection::establish(&db.url).expect("connect to PostgreSQL")
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

async fn a_big_backlog_is_walked_in_block_ranges_and_every_live_row_stays(db: TestDb) {
    seed_mixed(&db, 40_000, 75);
    let live_before = live_ids(&db);
    let limits = walkable(1_000);

    let report = delete_expired(&db.pool(), Clock::system().now(), limits)
        .await
        .expect("sweep");

    assert!(report.walked, "75 % expired: the run walks the table");
    assert_eq!(report.deleted, 30_000);
    assert!(!report.skipped);
    // One index batch, then steps sized to about 1,000 rows each (750 of them expired).
    assert!(report.batches >= 30, "{report:?}");
    assert!(report.largest_batch <= 1_000, "{report:?}");
    assert_eq!(live_and_expired(&db), (10_000, 0));
    assert_eq!(live_ids(&db), live_before, "no live row deleted");
}

async fn two_sweepers_walking_at_once_delete_each_expired_row_once(db: TestDb) {
    seed_mixed(&db, 40_000, 75);
    let live_before = live_ids(&db);
    let limits = walkable(500);
    let now = Clock::system().now();
    let (first, second) = (db.pool(), db.pool());

    // Whichever finds the lock taken stops; the other goes on to the end of the table.
    let (a, b) = futures_util::join!(
        delete_expired(&first, now, limits),
        delete_expired(&second, now, limits)
    );
    let reports = [a.expect("sweep"), b.expect("sweep")];

    let deleted: usize = reports.iter().map(|r| r.deleted).sum();
    assert_eq!(
        deleted, 30_000,
        "each expired row deleted once: {reports:?}"
    );
    assert!(reports.iter().any(|r| r.walked), "{reports:?}");
    assert_eq!(live_and_expired(&db), (10_000, 0));
    assert_eq!(live_ids(&db), live_before, "no live row deleted");
}

async fn a_small_share_of_expired_rows_is_swept_through_the_index(db: TestDb) {
    seed_mixed(&db, 40_000, 5);
    let limits = walkable(500);

    let report = delete_expired(&db.pool(), Clock::system().now(), limits)
        .await
        .expect("sweep");

    assert!(!report.walked, "5 % expired: index batches only");
    assert_eq!(report.deleted, 2_000);
    assert_eq!(report.batches, 5, "4 full batches, then a short one");
    assert_eq!(live_and_expired(&db), (38_000, 0));
}

async fn a_block_range_batch_is_skipped_while_another_sweeper_holds_the_lock(db: TestDb) {
    seed_mixed(&db, 1_000, 50);
    let now = Clock::system().now();
    let mut holder = db.connect();
    let sweeper = &mut pg_connect(&db);

    let while_held = holder
        .transaction(|holder| {
            diesel::sql_query(format!("SELECT pg_advisory_xact_lock({SWEEPER_LOCK_KEY})"))
                .execute(holder)?;
            sweep_queries::delete_expired_in_blocks(sweeper, now, 0, 1_000)
        })
        .expect("batch while held");
    let after = sweep_queries::delete_expired_in_blocks(sweeper, now, 0, 1_000).expect("batch");

    assert_eq!(while_held, None);
    assert_eq!(after, Some(500));
    assert_eq!(live_and_expired(&db), (500, 0));
}

/// The nodes of the plan PostgreSQL makes for one of the sweeper's statements, bound as the
/// sweeper binds it.
fn pg_plan(pg: &mut PgConnection, explain: BoxedSqlQuery<'_, Pg, SqlQuery>) -> Vec<String> {
    planner::explain(pg, explain).expect("explain").nodes()
}

async fn postgres_sweeps_use_the_expires_at_index_or_a_tid_range_scan(db: TestDb) {
    // Statistics say nothing expired: the planner's favourite case for the index.
    seed_mixed(&db, 40_000, 0);
    let now = Clock::system().now();
    let pg = &mut pg_connect(&db);
    let batch = |pg: &mut PgConnection| {
        pg_plan(
            pg,
            diesel::sql_query(format!(
                "EXPLAIN (FORMAT JSON) {}",
                sweep_queries::PG_DELETE_BATCH
            ))
            .into_boxed()
            .bind::<Timestamp, _>(now)
            .bind::<BigInt, _>(5_000),
        )
    };
    let range = |pg: &mut PgConnection| {
        pg_plan(
            pg,
            diesel::sql_query(format!(
                "EXPLAIN (FORMAT JSON) {}",
                sweep_queries::PG_DELETE_BLOCK_RANGE
            ))
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
            pg.batch_execute(sweep_queries::PG_BLOCK_RANGE_SETTINGS)?;
            diesel::QueryResult::Ok((bare, range(pg)))
        })
        .expect("explain in a transaction");

    let has = |plan: &[String], node: &str| plan.iter().any(|n| n == node);
    assert!(
        has(&batch_plan, "Index Scan using sessions_expires_at_idx")
            && has(&batch_plan, "Tid Scan"),
        "{batch_plan:?}"
    );
    assert!(
        bare_range_plan
            .iter()
            .any(|n| n.ends_with("using sessions_expires_at_idx")),
        "without the settings the planner takes the index: {bare_range_plan:?}"
    );
    assert!(
        has(&walk_plan, "Tid Range Scan") && !walk_plan.iter().any(|n| n.contains("Index")),
        "{walk_plan:?}"
    );
}

#[derive(QueryableByName)]
struct SqlitePlanRow {
    #[diesel(sql_type = Text)]
    detail: String,
}

async fn sqlite_batches_use_the_expires_at_index(db: TestDb) {
    db::run_migrations(&mut db.connect()).expect("migrate");
    let DbConnection::Sqlite(sqlite) = &mut db.connect() else {
        panic!("SQLite only")
    };

    let plan: Vec<String> = diesel::sql_query(format!(
        "EXPLAIN QUERY PLAN {}",
        sweep_queries::SQLITE_DELETE_BATCH
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

/// The task checks out a connection per batch and rests holding none: with a pool of one,
/// requests and readiness are served while a long sweep runs.
async fn a_sweep_in_progress_leaves_a_pool_of_one_to_requests(db: TestDb) {
    insert_rows(&db, "expired", 20_000, -60);
    let app = spawn_app(
        &db,
        &[
            ("DATABASE_POOL_SIZE", "1"),
            ("CLEANUP_BATCH_SIZE", "20"),
            ("CLEANUP_INTERVAL_SECS", "1"),
        ],
    )
    .await;
    app.upload("a.txt", "served meanwhile\n").await;
    let started = eventually(Duration::from_secs(5), || {
        let (_, expired) = live_and_expired(&db);
        expired > 0 && expired < 20_000
    })
    .await;
    assert!(started, "the sweep began");

    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let asked = Instant::now();
        let ready = app.get("/readyz").await.status();
        let page = app.get("/action").await;
        slowest = slowest.max(asked.elapsed());
        assert_eq!(ready, StatusCode::OK);
        assert_eq!(page.status(), StatusCode::OK);
        assert!(page
            .text()
            .await
            .expect("body")
            .contains("served meanwhile"));
    }

    let (_, expired) = live_and_expired(&db);
    assert!(expired > 0, "the sweep was still running");
    assert!(
        slowest < Duration::from_secs(1),
        "a request took {slowest:?}"
    );
    app.stop().await;
}

/// The bytes the SQLite database takes on disk: the file and its write-ahead log.
fn sqlite_on_disk(db: &TestDb) -> u64 {
    let path = db.url.trim_start_matches("sqlite://");
    [path.to_owned(), format!("{path}-wal")]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// SQLite: files of a megabyte each expire; the sweep deletes them in batches that each hold
/// the write lock briefly, then gives the space back: the database file and its WAL shrink to
/// about the live data.
async fn sqlite_gives_the_space_of_deleted_files_back(db: TestDb) {
    let pool = db.pool();
    let now = Clock::system().now();
    let file = "x".repeat(1 << 20);
    let mut conn = db.connect();
    for n in 0..96 {
        let id = format!("expired-{n}");
        diesel::insert_into(textdrop::schema::sessions::table)
            .values(&queries::NewSession {
                id: &id,
                state: "{}",
                expires_at: now - chrono::Duration::seconds(60),
                created_at: now - chrono::Duration::seconds(120),
                file: Some(&file),
                file_bytes: file.len() as i64,
            })
            .execute(&mut conn)
            .expect("insert");
    }
    conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE)")
        .expect("checkpoint");
    let before = sqlite_on_disk(&db);

    let report = delete_expired(&pool, now, SweepLimits::default().on_sqlite(true))
        .await
        .expect("sweep");

    let after = sqlite_on_disk(&db);
    eprintln!(
        "SQLite: {} MiB on disk before, {} KiB after; {} batches, the longest {:?}",
        before >> 20,
        after >> 10,
        report.batches,
        report.longest_batch
    );
    assert_eq!(report.deleted, 96);
    assert!(before > 96 << 20, "{before}");
    assert!(after < 4 << 20, "{after} bytes left");
    assert!(
        report.longest_batch < Duration::from_millis(100),
        "{:?}",
        report.longest_batch
    );
}

sql_tests!(a_sweep_in_progress_leaves_a_pool_of_one_to_requests);

tests_on!(on_sqlite: Sqlite;
    sqlite_batches_use_the_expires_at_index,
    sqlite_gives_the_space_of_deleted_files_back,
);

tests_on!(on_mysql: Mysql;
    a_sweeper_skips_its_run_while_another_holds_the_lock,
    a_sweeper_lock_in_another_database_does_not_hold_this_one,
);

tests_on!(on_postgres: Postgres;
    a_sweeper_skips_its_run_while_another_holds_the_lock,
    a_big_backlog_is_walked_in_block_ranges_and_every_live_row_stays,
    two_sweepers_walking_at_once_delete_each_expired_row_once,
    a_small_share_of_expired_rows_is_swept_through_the_index,
    a_block_range_batch_is_skipped_while_another_sweeper_holds_the_lock,
    postgres_sweeps_use_the_expires_at_index_or_a_tid_range_scan,
);

#[actix_web::test]
async fn the_sweeper_keeps_running_after_a_database_error() {
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let db = TestDb::existing(pg.url());
    let app = spawn_app(&db, &[("CLEANUP_INTERVAL_SECS", "1")]).await;

    pg.halt();
    let failed = eventually(Duration::from_secs(15), || {
        metric_value(&app.metrics.render(), "textdrop_cleanup_errors_total") >= Some(1.0)
    })
    .await;
    pg.resume();
    insert_rows(&db, "expired", 10, -60);
    let swept = eventually(Duration::from_secs(15), || live_and_expired(&db).1 == 0).await;

    assert!(failed, "a run failed while the database was down");
    assert!(
        swept,
        "later runs delete again: {:?}",
        live_and_expired(&db)
    );
    app.stop().await;
}
