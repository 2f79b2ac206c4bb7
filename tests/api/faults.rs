//! Database faults and process crashes: an outage while serving, a database that is late or
//! absent at startup, kill -9 during writes, and logs that never hold secrets.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::Outage;
use crate::helpers::{
    cookie_client, page_at, session_cookie, spawn_app, textdrop, trickled_body, upload_with,
    Backend, ServerProcess, TestDb, MULTIPART,
};
use crate::private_pg::PrivatePostgres;

/// Counts panics anywhere in the process from now on (the previous hook still reports them).
fn count_panics() -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = std::sync::Arc::clone(&count);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        previous(info);
    }));
    count
}

crate::case!(async a_postgres_outage_answers_503_then_recovers_without_a_restart needs PostgresServer);
async fn a_postgres_outage_answers_503_then_recovers_without_a_restart() {
    let pg = PrivatePostgres::start();
    an_outage_answers_503_then_recovers(&pg, Backend::Postgres).await;
}

crate::case!(async a_mysql_outage_answers_503_then_recovers_without_a_restart needs MariaDbServer);
async fn a_mysql_outage_answers_503_then_recovers_without_a_restart() {
    let mariadb = crate::private_mysql::PrivateMariaDb::start();
    an_outage_answers_503_then_recovers(&mariadb, Backend::Mysql).await;
}

async fn an_outage_answers_503_then_recovers(pg: &impl Outage, backend: Backend) {
    let panics = count_panics();
    let db = TestDb::existing(backend, pg.url());
    let app = spawn_app(&db, &[]).await;
    app.upload("a.txt", "before the outage\n").await;

    pg.halt();
    let started = Instant::now();
    let during = app.get("/action").await;
    let answered_in = started.elapsed();
    eprintln!("503 answered {answered_in:?} into the outage");

    assert_eq!(during.status(), StatusCode::SERVICE_UNAVAILABLE);
    crate::hardening::assert_security_headers("503", &during);
    assert!(
        answered_in < Duration::from_secs(8),
        "answered after {answered_in:?}"
    );
    assert!(during
        .text()
        .await
        .expect("body")
        .contains("Temporarily unavailable"));
    assert_eq!(
        app.get("/readyz").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    let upload = app.upload("b.txt", "during the outage\n").await;
    assert_eq!(upload.status(), StatusCode::SERVICE_UNAVAILABLE);

    pg.resume();
    let back = Instant::now();
    let mut recovered = false;
    while back.elapsed() < Duration::from_secs(20) {
        let response = app.get("/action").await;
        if response.status() == StatusCode::OK {
            let page = response.text().await.expect("body");
            assert!(page.contains("before the outage"), "no data lost: {page}");
            recovered = true;
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "recovered {:?} after the database came back",
        back.elapsed()
    );
    assert!(recovered, "the app recovers on its own");
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    assert_eq!(
        panics.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing panicked"
    );
    app.stop().await;
}

crate::case!(async startup_waits_for_a_database_that_comes_up_late needs PostgresServer);
async fn startup_waits_for_a_database_that_comes_up_late() {
    let pg = PrivatePostgres::start();
    pg.halt();
    let db = TestDb::existing(Backend::Postgres, pg.url());
    let starting = actix_web::rt::spawn(async move {
        let app = spawn_app(&db, &[("DATABASE_CONNECT_TIMEOUT_SECS", "30")]).await;
        let status = app.get("/readyz").await.status();
        app.stop().await;
        status
    });

    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !starting.is_finished(),
        "startup waits while the database is down"
    );
    pg.resume();

    assert_eq!(starting.await.expect("startup"), StatusCode::OK);
}

crate::case!(an_absent_database_stops_startup_after_the_retry_budget_naming_the_host);
fn an_absent_database_stops_startup_after_the_retry_budget_naming_the_host() {
    let started = Instant::now();
    let output = textdrop(&["serve"])
        .env(
            "DATABASE_URL",
            "postgres://textdrop:hunter2@127.0.0.1:1/textdrop",
        )
        .env("DATABASE_CONNECT_TIMEOUT_SECS", "2")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run");

    assert!(!output.status.success());
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "it retried for a while"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().expect("an error line");
    assert!(
        last.contains("cannot connect to the database at 127.0.0.1:1"),
        "{last}"
    );
    assert!(stderr.contains("retrying"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

/// A database textdrop reaches but that no retry will change (a database that does not exist, a
/// wrong password, a host name that does not resolve) stops startup at once, exit 1, with what
/// to do, whatever DATABASE_CONNECT_TIMEOUT_SECS says; never a password.
fn a_mistake_no_retry_can_mend_stops_startup_at_once(url: &str, says: &str) {
    let started = Instant::now();
    let output = textdrop(&["serve"])
        .env("DATABASE_URL", url)
        .env("DATABASE_CONNECT_TIMEOUT_SECS", "30")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run");

    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(took < Duration::from_secs(2), "{url}: {took:?}");
    assert!(stderr.contains(says), "{url}: {stderr}");
    assert!(!stderr.contains("retrying"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

crate::case!(a_missing_postgres_database_or_unknown_host_stops_startup_at_once needs Postgres);
fn a_missing_postgres_database_or_unknown_host_stops_startup_at_once() {
    let admin = crate::helpers::harness::service(crate::helpers::Need::Postgres);
    let missing = crate::helpers::with_database(&admin, "nonexistent_db");
    a_mistake_no_retry_can_mend_stops_startup_at_once(&missing, "createdb");
    a_mistake_no_retry_can_mend_stops_startup_at_once(
        "postgres://textdrop:hunter2@no-such-host.invalid/textdrop",
        "does not resolve",
    );
}

crate::case!(a_missing_mysql_database_or_a_wrong_password_stops_startup_at_once needs Mysql);
fn a_missing_mysql_database_or_a_wrong_password_stops_startup_at_once() {
    let admin = crate::helpers::harness::service(crate::helpers::Need::Mysql);
    let missing = crate::helpers::with_database(&admin, "nonexistent_db");
    a_mistake_no_retry_can_mend_stops_startup_at_once(&missing, "CREATE DATABASE");
    let wrong = admin.replacen("mysql://root@", "mysql://root:hunter2@", 1);
    assert_ne!(wrong, admin, "the admin URL names root without a password");
    a_mistake_no_retry_can_mend_stops_startup_at_once(&wrong, "check the user and password");
}

/// Uploads `body` and returns the status, or `None` once the server is gone.
async fn upload_status(
    client: &reqwest::Client,
    address: &str,
    body: String,
) -> Option<StatusCode> {
    upload_with(client, address, "v.txt", body)
        .await
        .ok()
        .map(|r| r.status())
}

/// A file whose every line names the same version, so a torn write would show as a mix.
fn versioned_file(client: usize, version: usize) -> String {
    format!("client {client} version {version}\n").repeat(500)
}

/// The versions of client `n`'s file a text shows, and how many lines name one.
fn versions_in(text: &str, n: usize) -> (std::collections::BTreeSet<String>, usize) {
    let needle = format!("client {n} version ");
    let versions = text
        .lines()
        .filter_map(|l| l.split(&needle).nth(1))
        .map(|rest| {
            rest.split(['<', '\n'])
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    (versions, text.matches(&needle).count())
}

async fn kill_9_during_writes_leaves_every_session_whole(db: TestDb) {
    let server = ServerProcess::start(&db, &[]);
    let address = server.address();
    // Clients 0 to 7 write during the kill; client 8 uploaded once before and stays idle, so
    // its session was never in flight and must survive whatever the kill interrupts.
    const IDLE: usize = 8;
    let clients: Vec<reqwest::Client> = (0..=IDLE).map(|_| cookie_client()).collect();
    for (n, client) in clients.iter().enumerate() {
        let status = upload_status(client, &address, versioned_file(n, 0)).await;
        assert_eq!(status, Some(StatusCode::SEE_OTHER));
    }

    // Every client rewrites its file in a loop; the server dies in the middle. Each writer
    // returns the last version the server confirmed with a 303, and the one in flight.
    let writers: Vec<_> = clients
        .iter()
        .cloned()
        .enumerate()
        .take(IDLE)
        .map(|(n, client)| {
            let address = address.clone();
            actix_web::rt::spawn(async move {
                let mut confirmed = 0;
                for version in 1.. {
                    match upload_status(&client, &address, versioned_file(n, version)).await {
                        Some(StatusCode::SEE_OTHER) => confirmed = version,
                        _ => return (confirmed, version),
                    }
                }
                unreachable!("the writers end when the server dies")
            })
        })
        .collect();
    actix_web::rt::time::sleep(Duration::from_millis(700)).await;
    server.kill_hard();
    let mut confirmed = Vec::new();
    for writer in writers {
        confirmed.push(writer.await.expect("writer"));
    }

    // Every stored file is sealed: none shows a line of any client's text. A torn write could
    // not open (the seal covers every byte), so the pages below, which show each client its
    // whole file, are where a tear would show.
    let files = if matches!(db.backend, Backend::Redis | Backend::RedisCluster) {
        Vec::new() // a Redis MULTI or script is all or nothing; the pages below show it
    } else {
        db.files()
    };
    for file in files.iter().flatten() {
        assert!(
            file.starts_with("s1.") && !file.contains("client "),
            "a stored file is not sealed: {file:.80}"
        );
    }
    // Each client sees one whole version: the one the server last confirmed, or the one in
    // flight when the kill fell between its commit and the 303 (the new key never reached the
    // client, and the old key shows the previous file for the grace period): never nothing,
    // never a mix, never an older version.
    confirmed.push((0, 0)); // the idle client's only upload
    let restarted = ServerProcess::start(&db, &[]);
    let mut last_confirmed = 0;
    for (n, client) in clients.iter().enumerate() {
        let page = page_at(client, &format!("{}/action", restarted.address())).await;
        let (versions, lines) = versions_in(&page, n);
        assert_eq!(lines, 500, "client {n} sees a whole file: {page:.300}");
        let versions: Vec<String> = versions.into_iter().collect();
        let (done, in_flight) = confirmed[n];
        assert!(
            versions == [done.to_string()] || versions == [in_flight.to_string()],
            "client {n} sees {versions:?}; confirmed {done}, in flight {in_flight}"
        );
        last_confirmed += usize::from(versions == [done.to_string()]);
    }
    eprintln!(
        "kill -9: {} of 8 writers see their last confirmed upload, the others the one in flight",
        last_confirmed - 1
    );
    restarted.kill_hard();
}

async fn logs_never_hold_cookies_keys_secrets_or_file_contents(db: TestDb) {
    // A password in the URL (trust auth ignores it) to check it never reaches the log.
    let db_url = db.url.replacen("postgres@", "postgres:pa55word-in-url@", 1);
    let server = ServerProcess::start(
        &db,
        &[
            ("DATABASE_URL", &db_url),
            ("RUST_LOG", "trace"),
            ("SESSION_LIFETIME_SECS", "1"),
        ],
    );
    let client = cookie_client();
    let secret_line = "TOP-SECRET-FILE-LINE-4711";
    let response = upload_with(
        &client,
        &server.address(),
        "s.txt",
        format!("{secret_line}\n"),
    )
    .await
    .expect("upload");
    let cookie_value = session_cookie(&response)
        .expect("cookie")
        .value()
        .to_owned();
    client
        .get(format!("{}/action", server.address()))
        .send()
        .await
        .expect("GET");
    // Let the session expire, then use the stale cookie: the expired-key path logs too.
    actix_web::rt::time::sleep(Duration::from_millis(1200)).await;
    client
        .get(format!("{}/action", server.address()))
        .send()
        .await
        .expect("GET");

    let log = server.stop_and_read_log();

    assert!(
        log.contains("listening on"),
        "the log was captured: {log:.300}"
    );
    for (what, needle) in [
        ("cookie value", cookie_value.as_str()),
        ("SECRET_KEY", crate::helpers::TEST_SECRET),
        ("file contents", secret_line),
        ("database password", "pa55word-in-url"),
    ] {
        assert!(!log.contains(needle), "the log holds the {what}");
    }
    // No 64-character token (a session key or its hash) appears anywhere.
    let longest_token = log
        .split(|c: char| !c.is_ascii_alphanumeric())
        .map(str::len)
        .max()
        .unwrap_or(0);
    assert!(
        longest_token < 64,
        "a {longest_token}-character token is in the log: {log}"
    );
}

async fn sigterm_lets_an_upload_in_flight_finish_then_exits_0(db: TestDb) {
    let mut server = ServerProcess::start(&db, &[("SHUTDOWN_GRACE_SECS", "10")]);
    let client = cookie_client();
    let slow_body = trickled_body(
        "s.txt",
        &["slow line one\n", "slow line two\n"],
        Duration::from_millis(400),
    );
    let upload = client
        .post(format!("{}/", server.address()))
        .header("content-type", MULTIPART)
        .body(slow_body)
        .send();

    let (response, ()) = futures_util::join!(upload, async {
        actix_web::rt::time::sleep(Duration::from_millis(600)).await;
        server.terminate();
    });

    let response = response.expect("the upload in flight is answered");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let status = server.child.wait().expect("exit status");
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(db.row_count(), 1, "the upload was stored");
    assert!(std::net::TcpStream::connect(("127.0.0.1", server.port)).is_err());
}

sql_tests!(logs: logs_never_hold_cookies_keys_secrets_or_file_contents);
page_tests!(kill_9_during_writes_leaves_every_session_whole);

tests_on!(sqlite_only: Sqlite;
    sigterm_lets_an_upload_in_flight_finish_then_exits_0,
);
