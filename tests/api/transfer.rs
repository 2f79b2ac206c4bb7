//! Moving sessions to another storage: `textdrop sessions copy` between backends (real visitors'
//! sessions, a rotation's superseded record, and thousands more written straight into the
//! source), run again, and interrupted with SIGINT; `PREVIOUS_DATABASE_URL` moving a session
//! over when its visitor comes back.
//!
//! The copies run `TEXTDROP_COPY_SESSIONS` seeded sessions (5,000 unless set; the 100,000 of
//! docs/benchmarks.md come from bench/bench-copy.sh on the release binary).

use std::io::{BufRead, BufReader};
use std::process::{Output, Stdio};

use chrono::Utc;
use reqwest::StatusCode;

use sha2::{Digest, Sha256};

use crate::helpers::{
    first_upload, page_with_cookie, session_key_in, spawn_app, textdrop, upload_as, Backend,
    NewRow, TestApp, TestDb, TEST_SECRET,
};

/// How many sessions a copy test writes straight into its source.
fn seeded_count() -> usize {
    std::env::var("TEXTDROP_COPY_SESSIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5_000)
}

/// A seeded session's file: distinct per session, so a copy that mixes them up shows.
fn seeded_file(n: usize) -> String {
    format!("seeded session {n}\nits second line\n")
}

/// Writes `live` sessions (and, on SQL, `expired` expired ones the sweeper has not deleted
/// yet) straight into `db`, as textdrop stores them.
fn seed(db: &TestDb, live: usize, expired: usize) {
    let now = Utc::now().naive_utc();
    match db.backend {
        Backend::Redis => {
            let created = now.and_utc().timestamp_micros();
            for chunk in (0..live).collect::<Vec<_>>().chunks(2_000) {
                let mut pipe = redis::pipe();
                for n in chunk {
                    let key = format!("textdrop:session:seed-{n:06}");
                    pipe.cmd("HSET")
                        .arg(&key)
                        .arg("state")
                        .arg("{}")
                        .arg("created")
                        .arg(created)
                        .arg("file")
                        .arg(seeded_file(*n))
                        .ignore()
                        .cmd("PEXPIRE")
                        .arg(&key)
                        .arg(3_600_000)
                        .ignore();
                }
                let client = redis::Client::open(db.url.as_str()).expect("Redis URL");
                let mut conn = client.get_connection().expect("connect to Redis");
                pipe.query::<()>(&mut conn).expect("seed Redis");
            }
        }
        Backend::RedisCluster => panic!("the copy tests do not seed a cluster"),
        _ => db.insert_sessions(
            (0..live)
                .map(|n| NewRow {
                    id: format!("seed-{n:06}"),
                    expires_at: now + chrono::Duration::hours(1),
                    created_at: now,
                    file: Some(seeded_file(n)),
                })
                .chain((0..expired).map(|n| NewRow {
                    id: format!("gone-{n:06}"),
                    expires_at: now - chrono::Duration::minutes(5),
                    created_at: now - chrono::Duration::hours(1),
                    file: Some("expired".into()),
                })),
        ),
    }
}

/// Real visitors' sessions made through the app on `db`: one that uploaded twice (its first
/// key superseded, read-only for the grace period) and one that uploaded once.
struct Visitors {
    /// The first key of the visitor who uploaded twice: superseded, shows "first of two".
    superseded: String,
    /// That visitor's current key: shows "second of two".
    current: String,
    /// The other visitor's key: shows "only upload".
    other: String,
}

/// The records `Visitors` leaves in a storage.
const VISITOR_RECORDS: u64 = 3;

/// The environment of the apps these tests run: a grace period longer than any test.
const GRACE: (&str, &str) = ("ROTATION_GRACE_SECS", "600");

/// An upload with only `cookie` that rotates its key: the new cookie pair.
async fn upload_again(app: &TestApp, cookie: &str, text: &str) -> String {
    let (status, rotated) = upload_as(app, cookie, "again.txt", text).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    rotated.expect("a rotated key")
}

async fn visit(db: &TestDb) -> Visitors {
    let app = spawn_app(db, &[GRACE]).await;
    let superseded = first_upload(&app, "first of two\n").await;
    let current = upload_again(&app, &superseded, "second of two\n").await;
    let other = first_upload(&app, "only upload\n").await;
    app.stop().await;
    Visitors {
        superseded,
        current,
        other,
    }
}

async fn page(app: &TestApp, cookie: &str) -> String {
    page_with_cookie(&format!("{}/action", app.address), cookie).await
}

/// The number on the report line that starts with `label`.
fn reported(output: &Output, label: &str) -> u64 {
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `{label}` line in {stdout}"))
}

fn copy(from: &TestDb, to: &TestDb, extra: &[&str]) -> Output {
    let mut args = vec!["sessions", "copy", "--from", &from.url, "--to", &to.url];
    args.extend_from_slice(extra);
    let started = std::time::Instant::now();
    let output = textdrop(&args).output().expect("run textdrop");
    println!(
        "copy {:?} -> {:?}: {:.1} s\n{}",
        from.backend,
        to.backend,
        started.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&output.stdout)
    );
    output
}

/// How many records `db` holds.
fn stored(db: &TestDb) -> u64 {
    match db.backend {
        Backend::Redis | Backend::RedisCluster => db.redis_keys().len() as u64,
        _ => db.row_count() as u64,
    }
}

/// The seeded files the destination holds, sorted.
fn seeded_files_in(db: &TestDb) -> Vec<String> {
    let mut files: Vec<String> = match db.backend {
        Backend::Redis | Backend::RedisCluster => db
            .redis_keys()
            .iter()
            .filter(|key| key.contains(":seed-"))
            .map(|key| db.redis(redis::cmd("HGET").arg(key).arg("file")))
            .collect(),
        _ => db
            .files()
            .into_iter()
            .flatten()
            .filter(|f| f.starts_with("seeded session"))
            .collect(),
    };
    files.sort();
    files
}

/// The whole path: visitors' sessions and seeded ones in `from`, one copy, then the same
/// visitors served from `to`: each key sees its file, the superseded key its previous file,
/// and an upload rotates the current key there (which deletes the superseded record: the link
/// between the two was copied). A second copy copies nothing.
async fn copies_every_live_session_once(from: TestDb, to: TestDb) {
    let visitors = visit(&from).await;
    let seeded = seeded_count();
    let expired = if from.backend == Backend::Redis {
        0
    } else {
        100
    };
    seed(&from, seeded, expired);
    let live = seeded as u64 + VISITOR_RECORDS;

    let first = copy(&from, &to, &[]);

    assert!(first.status.success(), "{first:?}");
    assert_eq!(reported(&first, "read:"), live);
    assert_eq!(reported(&first, "copied:"), live);
    assert_eq!(reported(&first, "already there:"), 0);
    assert_eq!(reported(&first, "skipped expired:"), expired as u64);
    assert_eq!(reported(&first, "verified:"), live);
    assert_eq!(stored(&to), live, "only live sessions are copied");
    let mut expected: Vec<String> = (0..seeded).map(seeded_file).collect();
    expected.sort();
    assert_eq!(seeded_files_in(&to), expected);
    let stderr = String::from_utf8_lossy(&first.stderr);
    // One line per tenth passed (a batch that passes several says one: Redis's SCAN may give
    // a first page of more than a tenth), ending at 100 %.
    let tenths = stderr.matches("% (").count();
    assert!(
        tenths >= 5 && stderr.contains("copy: 100% ("),
        "a log line per 10 % when stderr is not a terminal: {stderr}"
    );

    // Sealed records move as they are: the copy holds the same sealed bytes, no text.
    for pair in [&visitors.current, &visitors.other, &visitors.superseded] {
        let key = session_key_in(pair, TEST_SECRET).expect("a cookie under the app's key");
        let id = hex::encode(Sha256::digest(key.as_bytes()));
        let there = to.stored_record(&id);
        assert!(
            there.0.starts_with("s1."),
            "a sealed state: {:.40}",
            there.0
        );
        assert_eq!(
            there,
            from.stored_record(&id),
            "the record changed on the way"
        );
    }

    let again = copy(&from, &to, &[]);
    assert!(again.status.success(), "{again:?}");
    assert_eq!(reported(&again, "copied:"), 0, "nothing is copied twice");
    assert_eq!(reported(&again, "already there:"), live);
    assert_eq!(stored(&to), live);

    let app = spawn_app(&to, &[GRACE]).await;
    assert!(page(&app, &visitors.current)
        .await
        .contains("second of two"));
    assert!(page(&app, &visitors.other).await.contains("only upload"));
    let old = page(&app, &visitors.superseded).await;
    assert!(old.contains("first of two"), "the superseded key: {old}");
    let newest = upload_again(&app, &visitors.current, "third upload\n").await;
    assert!(page(&app, &newest).await.contains("third upload"));
    assert!(page(&app, &visitors.current)
        .await
        .contains("second of two"));
    let gone = page(&app, &visitors.superseded).await;
    assert!(
        !gone.contains("first of two"),
        "the record two uploads back is deleted on the rotation, as before the copy: {gone}"
    );
    app.stop().await;
}

async fn sqlite_to_postgres() {
    copies_every_live_session_once(TestDb::new(Backend::Sqlite), TestDb::new(Backend::Postgres))
        .await;
}
case!(async sqlite_to_postgres needs Postgres);

async fn postgres_to_mysql() {
    copies_every_live_session_once(TestDb::new(Backend::Postgres), TestDb::new(Backend::Mysql))
        .await;
}
case!(async postgres_to_mysql needs Postgres, Mysql);

async fn postgres_to_redis_cluster() {
    copies_every_live_session_once(
        TestDb::new(Backend::Postgres),
        TestDb::new(Backend::RedisCluster),
    )
    .await;
}
case!(async postgres_to_redis_cluster needs Postgres, RedisCluster);

async fn redis_to_sqlite() {
    copies_every_live_session_once(TestDb::new(Backend::Redis), TestDb::new(Backend::Sqlite)).await;
}
case!(async redis_to_sqlite needs Redis);

/// A copy stopped by Ctrl-C (SIGINT) after its first tenth ends after the batch in flight,
/// says it was interrupted and what it copied; run again, it copies the rest and finds the
/// first run's copies already there: every session copied once.
async fn an_interrupted_copy_run_again_copies_each_session_once() {
    let (from, to) = (TestDb::new(Backend::Sqlite), TestDb::new(Backend::Postgres));
    let seeded = seeded_count();
    seed(&from, seeded, 0);
    let mut child = textdrop(&[
        "sessions",
        "copy",
        "--from",
        &from.url,
        "--to",
        &to.url,
        "--batch-size",
        "20",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("start textdrop");
    let stderr = child.stderr.take().expect("stderr");
    let mut log = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("a log line");
        log.push_str(&line);
        log.push('\n');
        if line.contains("copy: 10% (") {
            let signalled = std::process::Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status()
                .expect("kill");
            assert!(signalled.success());
            break;
        }
    }
    let first = child.wait_with_output().expect("textdrop ends");
    assert!(!first.status.success(), "an interrupted copy fails: {log}");
    let copied = reported(&first, "copied:");
    assert!(
        copied > 0 && copied < seeded as u64,
        "stopped part way: {copied} of {seeded}"
    );
    assert_eq!(stored(&to), copied, "what it says it copied is there");

    let second = copy(&from, &to, &[]);

    assert!(second.status.success(), "{second:?}");
    assert_eq!(reported(&second, "copied:"), seeded as u64 - copied);
    assert_eq!(reported(&second, "already there:"), copied);
    assert_eq!(stored(&to), seeded as u64);
    let mut expected: Vec<String> = (0..seeded).map(seeded_file).collect();
    expected.sort();
    assert_eq!(seeded_files_in(&to), expected);
}
case!(async an_interrupted_copy_run_again_copies_each_session_once needs Postgres);

/// A copy never overwrites a session that is newer in the destination (a visitor's write
/// there after the first copy), and replaces one that is older.
async fn a_copy_keeps_what_is_newer_in_the_destination() {
    let (from, to) = (TestDb::new(Backend::Sqlite), TestDb::new(Backend::Postgres));
    let now = Utc::now().naive_utc();
    let row = |id: &str, hours: i64, file: &str| NewRow {
        id: id.into(),
        expires_at: now + chrono::Duration::hours(hours),
        created_at: now,
        file: Some(file.into()),
    };
    from.insert_sessions([row("a", 1, "source a"), row("b", 3, "source b")]);
    to.insert_sessions([
        row("a", 2, "newer in destination"),
        row("b", 1, "older copy"),
    ]);

    let output = copy(&from, &to, &[]);

    assert!(output.status.success(), "{output:?}");
    assert_eq!(reported(&output, "copied:"), 1);
    assert_eq!(reported(&output, "already there:"), 1);
    let mut files: Vec<String> = to.files().into_iter().flatten().collect();
    files.sort();
    assert_eq!(files, ["newer in destination", "source b"]);
}
case!(async a_copy_keeps_what_is_newer_in_the_destination needs Postgres);

/// Bad command lines end at once with a clear message, never repeating a URL's password.
async fn a_copy_refuses_bad_urls_without_showing_passwords() {
    let same = textdrop(&[
        "sessions",
        "copy",
        "--from",
        "sqlite://x.db",
        "--to",
        "sqlite://x.db",
    ])
    .output()
    .expect("run");
    assert!(!same.status.success());
    assert!(String::from_utf8_lossy(&same.stderr).contains("name the same storage"));

    let bad = textdrop(&[
        "sessions",
        "copy",
        "--from",
        "ftp://u:hunter2@h/x",
        "--to",
        "a.db",
    ])
    .output()
    .expect("run");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(stderr.contains("--from:"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");

    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.db");
    let from = format!("sqlite://{}", missing.display());
    let to = format!("sqlite://{}", dir.path().join("to.db").display());
    let nothing = textdrop(&["sessions", "copy", "--from", &from, "--to", &to])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&nothing.stderr);
    assert!(!nothing.status.success());
    assert!(
        stderr.contains("holds no sessions: no migration was ever applied there"),
        "{stderr}"
    );
    assert!(!missing.exists(), "a mistyped source is not created");

    let no_source = textdrop(&["sessions", "copy"]).output().expect("run");
    let stderr = String::from_utf8_lossy(&no_source.stderr);
    assert!(stderr.contains("PREVIOUS_DATABASE_URL"), "{stderr}");

    let zero = textdrop(&["sessions", "copy", "--batch-size", "0"])
        .output()
        .expect("run");
    assert_eq!(zero.status.code(), Some(2), "clap's usage error");
}
case!(async a_copy_refuses_bad_urls_without_showing_passwords);

/// Switching from SQLite to PostgreSQL while serving: with `PREVIOUS_DATABASE_URL` on the old
/// storage, a visitor from before the switch keeps their file (moved over on their visit and
/// deleted in SQLite), while `sessions copy` moves the others; uploads after the switch land in
/// PostgreSQL only; "Forget my data" reaches a session still in SQLite too.
async fn sessions_move_while_serving_and_nobody_is_logged_out() {
    let (old, new) = (TestDb::new(Backend::Sqlite), TestDb::new(Backend::Postgres));
    let before = visit(&old).await;
    let app = spawn_app(&old, &[GRACE]).await;
    let copied_later = first_upload(&app, "moved by the copy\n").await;
    let forgotten = first_upload(&app, "to be forgotten\n").await;
    app.stop().await;
    assert_eq!(stored(&old), VISITOR_RECORDS + 2);

    let app = spawn_app(&new, &[GRACE, ("PREVIOUS_DATABASE_URL", &old.url)]).await;
    let id_of = |pair: &str| {
        let key = session_key_in(pair, TEST_SECRET).expect("a cookie under the app's key");
        hex::encode(Sha256::digest(key.as_bytes()))
    };
    let sealed_before = old.stored_record(&id_of(&before.current));

    // Read through: the visitor's session moves over on their first request, sealed as it was.
    assert!(page(&app, &before.current).await.contains("second of two"));
    assert_eq!(stored(&new), 1, "the one record visited moved over");
    assert_eq!(new.stored_record(&id_of(&before.current)), sealed_before);
    assert!(!old.stored_ids().is_empty());
    assert_eq!(
        stored(&old),
        VISITOR_RECORDS + 1,
        "and left the old storage"
    );
    // The superseded key still shows the previous file, moved over on its own use.
    assert!(page(&app, &before.superseded)
        .await
        .contains("first of two"));
    // An upload after the switch: only in the new storage.
    let newest = upload_again(&app, &before.current, "after the switch\n").await;
    assert!(page(&app, &newest).await.contains("after the switch"));
    assert!(
        !old.stored_ids().contains(&id_of(&newest)),
        "the upload after the switch went to the old storage"
    );
    // Forget my data, for a session nobody moved yet: gone from both.
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(format!("{}/forget", app.address))
        .header(reqwest::header::COOKIE, &forgotten)
        .send()
        .await
        .expect("POST /forget");
    assert!(response.status().is_redirection(), "{response:?}");
    assert!(!page(&app, &forgotten).await.contains("to be forgotten"));
    assert!(!old.stored_ids().contains(&id_of(&forgotten)));

    // The copy moves the rest in the background, never over what moved already.
    let output = copy(&old, &new, &[]);
    assert!(output.status.success(), "{output:?}");
    let everybody = [
        (copied_later.as_str(), "moved by the copy"),
        (before.other.as_str(), "only upload"),
        (newest.as_str(), "after the switch"),
    ];
    for (cookie, file) in everybody {
        assert!(page(&app, cookie).await.contains(file), "{file}");
    }
    app.stop().await;

    // Without PREVIOUS_DATABASE_URL (the move is over) everybody is still there.
    let app = spawn_app(&new, &[GRACE]).await;
    for (cookie, file) in everybody {
        assert!(page(&app, cookie).await.contains(file), "{file}");
    }
    app.stop().await;
}
case!(async sessions_move_while_serving_and_nobody_is_logged_out needs Postgres);

/// `PREVIOUS_DATABASE_URL` naming `DATABASE_URL` itself stops startup with a clear message.
async fn a_previous_storage_equal_to_the_current_one_stops_startup() {
    let db = TestDb::new(Backend::Sqlite);
    let output = textdrop(&["serve"])
        .env("DATABASE_URL", &db.url)
        .env("PREVIOUS_DATABASE_URL", &db.url)
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("PREVIOUS_DATABASE_URL") && stderr.contains("same storage"),
        "{stderr}"
    );
}
case!(async a_previous_storage_equal_to_the_current_one_stops_startup);

/// Bad rows in a SQLite source (a date that is no date, a state that is not UTF-8) and rows a
/// PostgreSQL destination refuses (a NUL byte in a file) are skipped, each named by its id in
/// the report, and counted; everything else is copied and verified; the copy exits 1 saying
/// some were not copied.
async fn bad_rows_are_skipped_named_and_counted_and_the_rest_copied() {
    let (from, to) = (TestDb::new(Backend::Sqlite), TestDb::new(Backend::Postgres));
    seed(&from, 100, 0);
    let mut conn = from.connect();
    let later = (Utc::now() + chrono::Duration::hours(1))
        .naive_utc()
        .format("%Y-%m-%d %H:%M:%S");
    conn.batch(&format!(
        "INSERT INTO sessions (id, state, expires_at, created_at, file, file_bytes) VALUES \
         ('bad-date', '{{}}', 'the day after tomorrow', '{later}', 'x', 1), \
         ('bad-utf8', CAST(x'7bff7d' AS TEXT), '{later}', '{later}', 'x', 1), \
         ('nul-byte', '{{}}', '{later}', '{later}', 'a' || char(0) || 'b', 3)"
    ))
    .expect("bad rows");

    let output = copy(&from, &to, &[]);

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "some were skipped: {stdout}");
    assert!(
        stderr.contains("3 session(s) could not be copied"),
        "{stderr}"
    );
    assert_eq!(reported(&output, "read:"), 103);
    assert_eq!(reported(&output, "copied:"), 100);
    assert_eq!(reported(&output, "skipped bad:"), 3);
    assert_eq!(reported(&output, "verified:"), 100);
    for id in ["bad-date", "bad-utf8", "nul-byte"] {
        assert!(
            stdout.contains(&format!("not copied: {id} (")),
            "{id}: {stdout}"
        );
    }
    assert_eq!(stored(&to), 100);
    assert_eq!(seeded_files_in(&to).len(), 100);
}
case!(async bad_rows_are_skipped_named_and_counted_and_the_rest_copied needs Postgres);

/// Hashes in a Redis source that are no session textdrop wrote (no `created`, a `created` that
/// is no time, no TTL) are named and counted, not dropped silently: the counts add up.
async fn malformed_redis_records_are_named_and_counted() {
    let (from, to) = (TestDb::new(Backend::Redis), TestDb::new(Backend::Sqlite));
    seed(&from, 20, 0);
    let client = redis::Client::open(from.url.as_str()).expect("Redis URL");
    let mut conn = client.get_connection().expect("connect to Redis");
    redis::pipe()
        .cmd("HSET")
        .arg("textdrop:session:no-created")
        .arg("state")
        .arg("{}")
        .ignore()
        .cmd("PEXPIRE")
        .arg("textdrop:session:no-created")
        .arg(3_600_000)
        .ignore()
        .cmd("HSET")
        .arg("textdrop:session:bad-created")
        .arg("state")
        .arg("{}")
        .arg("created")
        .arg("yesterday")
        .ignore()
        .cmd("PEXPIRE")
        .arg("textdrop:session:bad-created")
        .arg(3_600_000)
        .ignore()
        .cmd("HSET")
        .arg("textdrop:session:no-ttl")
        .arg("state")
        .arg("{}")
        .arg("created")
        .arg(Utc::now().timestamp_micros())
        .ignore()
        .query::<()>(&mut conn)
        .expect("malformed hashes");

    let output = copy(&from, &to, &[]);

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert_eq!(reported(&output, "read:"), 23);
    assert_eq!(reported(&output, "copied:"), 20);
    assert_eq!(reported(&output, "skipped bad:"), 3);
    assert_eq!(reported(&output, "verified:"), 20);
    assert!(
        stdout.contains("not copied: no-ttl (it has no TTL"),
        "{stdout}"
    );
    assert!(stdout.contains("not copied: no-created ("), "{stdout}");
    assert!(stdout.contains("not copied: bad-created ("), "{stdout}");
    assert_eq!(stored(&to), 20);
}
case!(async malformed_redis_records_are_named_and_counted needs Redis);

/// With PREVIOUS_DATABASE_URL, a visitor whose record in the previous storage no longer reads
/// back (its state is not UTF-8) gets no session, not a 500: the pages answer, an upload
/// starts a new session, and "Forget my data now" still deletes the bad record.
async fn a_corrupt_previous_record_is_no_session_and_forget_still_works() {
    let (previous, current) = (TestDb::new(Backend::Sqlite), TestDb::new(Backend::Postgres));
    let app = spawn_app(&previous, &[GRACE]).await;
    let cookie = first_upload(&app, "in the previous storage\n").await;
    app.stop().await;
    previous
        .connect()
        .batch("UPDATE sessions SET state = CAST(x'7bff7d' AS TEXT)")
        .expect("spoil the record");
    let app = spawn_app(&current, &[GRACE, ("PREVIOUS_DATABASE_URL", &previous.url)]).await;

    let response = reqwest::Client::new()
        .get(format!("{}/action", app.address))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.expect("body");
    assert!(
        page.contains("You have not yet uploaded a file"),
        "{page:.400}"
    );
    let forgot = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(format!("{}/forget", app.address))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .expect("forget");
    assert_eq!(forgot.status(), StatusCode::SEE_OTHER);
    assert_eq!(previous.row_count(), 0, "forget deleted the bad record");
    let (status, _) = upload_as(&app, &cookie, "new.txt", "a fresh start\n").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    app.stop().await;
}
case!(async a_corrupt_previous_record_is_no_session_and_forget_still_works needs Postgres);
