//! The sweep: batches under the sweeper lock, the table walk for big PostgreSQL backlogs, the
//! plans the statements get, and the task's behaviour around requests and faults.

use std::time::{Duration, Instant};

use actix_session_stores::test_support::{sessions, statements as database};
use actix_session_stores::Clock;
use actix_session_stores::SweepPolicy;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp};
use reqwest::StatusCode;

use crate::helpers::{
    eventually, metric_value, spawn_app, Backend, Held, NewRow, Outage, TestConn, TestDb,
};
use crate::private_pg::PrivatePostgres;

async fn a_sweeper_skips_its_run_while_another_holds_the_lock(db: TestDb) {
    db.insert_rows("expired", 50, -60);
    let sweeper = db.sweeper(&[]).await;
    let now = Clock::system().now();
    let holder = db.hold(Held::Sweeper);

    // The other sweeper does not wait: it reports a skip and deletes nothing.
    let while_held = sweeper
        .sweep(now, SweepPolicy::default(), || false)
        .await
        .expect("sweep while held");
    holder.release();
    let after = sweeper
        .sweep(now, SweepPolicy::default(), || false)
        .await
        .expect("sweep");

    assert!(while_held.skipped);
    assert_eq!(while_held.deleted, 0);
    assert!(!after.skipped);
    assert_eq!(after.deleted, 50);
}

/// MySQL's named locks belong to the server: a sweeper in another database of the same server
/// must not make this one skip.
async fn a_sweeper_lock_in_another_database_does_not_hold_this_one(db: TestDb) {
    let other = TestDb::new(db.backend);
    other.connect().migrate();
    let _held_there = other.hold(Held::Sweeper);
    db.insert_rows("expired", 5, -60);

    let report = db
        .sweeper(&[])
        .await
        .sweep(Clock::system().now(), SweepPolicy::default(), || false)
        .await
        .expect("sweep");

    assert!(!report.skipped);
    assert_eq!(report.deleted, 5);
}

/// Seeds `rows` rows on PostgreSQL in one statement: of every 100 consecutive rows the first
/// `expired_percent` expired an hour ago and the rest have a day left, so every block holds
/// both. Then ANALYZE, so the planner knows the share.
fn seed_mixed(db: &TestDb, rows: i64, expired_percent: i64) {
    let mut conn = db.connect();
    conn.migrate();
    conn.execute(&format!(
        "INSERT INTO sessions (id, state, expires_at, created_at) \
         SELECT CASE WHEN g % 100 < {expired_percent} THEN 'expired-' ELSE 'live-' END || g, \
                '{{}}', \
                (now() AT TIME ZONE 'utc') + CASE WHEN g % 100 < {expired_percent} \
                    THEN -interval '1 hour' ELSE interval '1 day' END, \
                now() AT TIME ZONE 'utc' \
         FROM generate_series(0, {rows} - 1) g"
    ))
    .expect("seed");
    conn.execute("ANALYZE sessions").expect("analyze");
}

/// A policy that lets even a small test table be walked.
fn walkable(batch_size: i64) -> SweepPolicy {
    SweepPolicy {
        batch_size,
        walk_min_blocks: 1,
        ..SweepPolicy::default()
    }
}

fn live_ids(db: &TestDb) -> Vec<String> {
    let query = sessions::table
        .select(sessions::id)
        .filter(sessions::id.like("live-%"))
        .order(sessions::id);
    crate::on_conn!(&mut db.connect(), c => query.load(c)).expect("live ids")
}

async fn a_big_backlog_is_walked_in_block_ranges_and_every_live_row_stays(db: TestDb) {
    seed_mixed(&db, 40_000, 75);
    let live_before = live_ids(&db);
    let limits = walkable(1_000);

    let report = db
        .sweeper(&[])
        .await
        .sweep(Clock::system().now(), limits, || false)
        .await
        .expect("sweep");

    assert!(report.walked, "75 % expired: the run walks the table");
    assert_eq!(report.deleted, 30_000);
    assert!(!report.skipped);
    // One index batch, then steps sized to about 1,000 rows each (750 of them expired).
    assert!(report.batches >= 30, "{report:?}");
    assert!(report.largest_batch <= 1_000, "{report:?}");
    assert_eq!(db.live_and_expired(), (10_000, 0));
    assert_eq!(live_ids(&db), live_before, "no live row deleted");
}

async fn two_sweepers_walking_at_once_delete_each_expired_row_once(db: TestDb) {
    seed_mixed(&db, 40_000, 75);
    let live_before = live_ids(&db);
    let limits = walkable(500);
    let now = Clock::system().now();
    let (first, second) = (db.sweeper(&[]).await, db.sweeper(&[]).await);

    // Whichever finds the lock taken stops; the other goes on to the end of the table.
    let (a, b) = futures_util::join!(
        first.sweep(now, limits, || false),
        second.sweep(now, limits, || false)
    );
    let reports = [a.expect("sweep"), b.expect("sweep")];

    let deleted: usize = reports.iter().map(|r| r.deleted).sum();
    assert_eq!(
        deleted, 30_000,
        "each expired row deleted once: {reports:?}"
    );
    assert!(reports.iter().any(|r| r.walked), "{reports:?}");
    assert_eq!(db.live_and_expired(), (10_000, 0));
    assert_eq!(live_ids(&db), live_before, "no live row deleted");
}

async fn a_small_share_of_expired_rows_is_swept_through_the_index(db: TestDb) {
    seed_mixed(&db, 40_000, 5);
    let limits = walkable(500);

    let report = db
        .sweeper(&[])
        .await
        .sweep(Clock::system().now(), limits, || false)
        .await
        .expect("sweep");

    assert!(!report.walked, "5 % expired: index batches only");
    assert_eq!(report.deleted, 2_000);
    assert_eq!(report.batches, 5, "4 full batches, then a short one");
    assert_eq!(db.live_and_expired(), (38_000, 0));
}

/// Another instance takes the sweeper lock while a walk is under way: the walk stops at its
/// next range, deletes no more, and reports the skip.
async fn a_walk_stops_when_another_sweeper_takes_the_lock(db: TestDb) {
    seed_mixed(&db, 40_000, 75);
    let sweeper = db.sweeper(&[]).await;
    let walk = sweeper.sweep(Clock::system().now(), walkable(100), || false);
    let holder = async {
        let started = eventually(Duration::from_secs(10), || {
            let (_, expired) = db.live_and_expired();
            expired < 29_000
        })
        .await;
        assert!(started, "the walk began");
        db.hold_when_free(Held::Sweeper).await
    };

    let (report, holder) = futures_util::join!(walk, holder);

    let report = report.expect("sweep");
    let (live, expired) = db.live_and_expired();
    holder.release();
    assert!(report.walked && report.skipped, "{report:?}");
    assert!(report.deleted < 30_000, "{report:?}");
    assert_eq!(live, 10_000);
    assert_eq!(
        expired as usize,
        30_000 - report.deleted,
        "nothing deleted once the lock was taken"
    );
}

#[derive(QueryableByName)]
struct JsonPlan {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    json: String,
}

/// Every node of a plan PostgreSQL made (`EXPLAIN (FORMAT JSON)`), depth first, as
/// `"Node Type"` plus ` using INDEX` when it reads an index: e.g. `["Delete", "Tid Scan",
/// "Index Scan using sessions_expires_at_idx"]`.
fn plan_nodes(JsonPlan { json }: JsonPlan) -> Vec<String> {
    fn walk(node: &serde_json::Value, out: &mut Vec<String>) {
        let kind = node["Node Type"].as_str().unwrap_or("?");
        out.push(match node["Index Name"].as_str() {
            Some(index) => format!("{kind} using {index}"),
            None => kind.to_owned(),
        });
        for child in node["Plans"].as_array().into_iter().flatten() {
            walk(child, out);
        }
    }
    let plan: serde_json::Value = serde_json::from_str(&json).expect("a JSON plan");
    let mut out = Vec::new();
    walk(&plan[0]["Plan"], &mut out);
    out
}

/// The plan of one of the PostgreSQL sweeper's statements, bound as the sweeper binds it.
pub fn pg_plan(
    conn: &mut TestConn,
    statement: &str,
    binds: impl FnOnce(ExplainQuery) -> ExplainQuery,
) -> Vec<String> {
    let TestConn::Postgres(pg) = conn else {
        panic!("PostgreSQL only")
    };
    let query = binds(diesel::sql_query(format!("EXPLAIN (FORMAT JSON) {statement}")).into_boxed());
    plan_nodes(query.get_result(pg).expect("explain"))
}

/// An `EXPLAIN` statement whose parameters are still to be bound.
pub type ExplainQuery =
    diesel::query_builder::BoxedSqlQuery<'static, diesel::pg::Pg, diesel::query_builder::SqlQuery>;

async fn postgres_sweeps_use_the_expires_at_index_or_a_tid_range_scan(db: TestDb) {
    // Statistics say nothing expired: the planner's favourite case for the index.
    seed_mixed(&db, 40_000, 0);
    let now = Clock::system().now();
    let conn = &mut db.connect();
    let range = |conn: &mut TestConn| {
        pg_plan(conn, database::postgres::DELETE_BLOCK_RANGE, |q| {
            q.bind::<BigInt, _>(0)
                .bind::<BigInt, _>(51)
                .bind::<Timestamp, _>(now)
        })
    };

    let batch_plan = pg_plan(conn, database::postgres::DELETE_BATCH, |q| {
        q.bind::<Timestamp, _>(now).bind::<BigInt, _>(5_000)
    });
    conn.batch("BEGIN").expect("a transaction");
    let bare_range_plan = range(conn);
    conn.batch(database::postgres::BLOCK_RANGE_SETTINGS)
        .expect("settings");
    let walk_plan = range(conn);
    conn.batch("ROLLBACK").expect("end the transaction");

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
    let mut conn = db.connect();
    conn.migrate();
    let TestConn::Sqlite(sqlite) = &mut conn else {
        panic!("SQLite only")
    };

    let plan: Vec<String> = diesel::sql_query(format!(
        "EXPLAIN QUERY PLAN {}",
        database::sqlite::DELETE_BATCH
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
    db.insert_rows("expired", 20_000, -60);
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
        let (_, expired) = db.live_and_expired();
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

    let (_, expired) = db.live_and_expired();
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
    let sweeper = db.sweeper(&[]).await;
    let now = Clock::system().now();
    let file = "x".repeat(1 << 20);
    db.insert_sessions((0..96).map(|n| NewRow {
        id: format!("expired-{n}"),
        expires_at: now - chrono::Duration::seconds(60),
        created_at: now - chrono::Duration::seconds(120),
        file: Some(file.clone()),
    }));
    db.connect()
        .batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .expect("checkpoint");
    let before = sqlite_on_disk(&db);

    let report = sweeper
        .sweep(now, SweepPolicy::default(), || false)
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

/// SQLite: twelve files of a megabyte, each forgotten by its visitor (no row expires): the
/// cleanup task gives the space back all the same, within a few of its runs.
async fn sqlite_gives_back_the_space_of_forgotten_files(db: TestDb) {
    let app = spawn_app(&db, &[("CLEANUP_INTERVAL_SECS", "1")]).await;
    for n in 0..12 {
        let client = crate::helpers::cookie_client();
        let file = format!("file {n}\n").repeat(100_000);
        let stored = crate::helpers::upload_with(&client, &app.address, "big.txt", file).await;
        assert_eq!(stored.expect("upload").status(), 303);
        let forgot = client
            .post(format!("{}/forget", app.address))
            .send()
            .await
            .expect("forget");
        assert!(forgot.status().is_success() || forgot.status().is_redirection());
    }
    assert_eq!(db.row_count(), 0);
    let given_back =
        crate::helpers::eventually(Duration::from_secs(8), || sqlite_on_disk(&db) < 4 << 20).await;
    eprintln!(
        "SQLite after 12 forgotten 1 MiB files: {} KiB on disk",
        sqlite_on_disk(&db) >> 10
    );
    assert!(given_back, "{} bytes on disk", sqlite_on_disk(&db));
    app.stop().await;
}

sql_tests!(a_sweep_in_progress_leaves_a_pool_of_one_to_requests);

tests_on!(on_sqlite: Sqlite;
    sqlite_batches_use_the_expires_at_index,
    sqlite_gives_the_space_of_deleted_files_back,
    sqlite_gives_back_the_space_of_forgotten_files,
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
    a_walk_stops_when_another_sweeper_takes_the_lock,
    postgres_sweeps_use_the_expires_at_index_or_a_tid_range_scan,
);

crate::case!(async the_sweeper_keeps_running_after_a_database_error needs PostgresServer);
async fn the_sweeper_keeps_running_after_a_database_error() {
    let pg = PrivatePostgres::start();
    let db = TestDb::existing(Backend::Postgres, pg.url());
    let app = spawn_app(&db, &[("CLEANUP_INTERVAL_SECS", "1")]).await;

    pg.halt();
    let failed = eventually(Duration::from_secs(15), || {
        metric_value(&app.metrics.render(), "textdrop_cleanup_errors_total") >= Some(1.0)
    })
    .await;
    pg.resume();
    db.insert_rows("expired", 10, -60);
    let swept = eventually(Duration::from_secs(15), || db.live_and_expired().1 == 0).await;

    assert!(failed, "a run failed while the database was down");
    assert!(
        swept,
        "later runs delete again: {:?}",
        db.live_and_expired()
    );
    app.stop().await;
}
