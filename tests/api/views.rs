//! File pages under load: a view waits for its turn among the views in progress
//! (`MAX_VIEWS_IN_FLIGHT`, shared fairly between client addresses) before its session is read,
//! and gets 503 "Busy" past `VIEW_QUEUE_SECS`; a view whose client hangs up gives its turn back
//! at once; `/readyz` asks the database on a connection of its own, so visitors waiting for
//! theirs never make it fail. A table lock (PostgreSQL) holds views in flight for as long as the
//! test needs.

use std::io::Write;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::{first_upload, metric_value, spawn_app, TestApp, TestDb};

/// Holds `LOCK TABLE sessions` for `held` on a connection of its own; returns once it is held.
fn lock_sessions_for(db: &TestDb, held: Duration) -> std::thread::JoinHandle<()> {
    let mut conn = db.connect();
    let (locked, is_locked) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        conn.batch("BEGIN; LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")
            .expect("lock");
        locked.send(()).expect("say so");
        std::thread::sleep(held);
        conn.batch("COMMIT").expect("unlock");
    });
    is_locked.recv().expect("locked");
    holder
}

/// GET /action with only `cookie`, from the local address `from`: status, `Retry-After`,
/// body, and how long it took.
async fn view_from(
    app: &TestApp,
    from: &str,
    cookie: &str,
) -> (StatusCode, Option<String>, String, Duration) {
    let client = reqwest::Client::builder()
        .local_address(from.parse::<std::net::IpAddr>().expect("an address"))
        .build()
        .expect("client");
    let sent = Instant::now();
    let response = client
        .get(format!("{}/action", app.address))
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await
        .expect("an answer");
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let status = response.status();
    let body = response.text().await.expect("body");
    (status, retry_after, body, sent.elapsed())
}

const SETTINGS: [(&str, &str); 3] = [
    ("MAX_VIEWS_IN_FLIGHT", "1"),
    ("VIEW_QUEUE_SECS", "1"),
    ("DATABASE_STATEMENT_TIMEOUT_SECS", "3"),
];

/// One view in flight (held by the lock), the next one, from another address, waits its queue
/// time and gets 503 "Busy" with `Retry-After`, counted; the rest of the server does not wait.
async fn a_view_past_the_limit_waits_its_turn_then_gets_503_busy(db: TestDb) {
    let app = spawn_app(&db, &SETTINGS).await;
    let cookie = first_upload(&app, "a file\n").await;
    let holder = lock_sessions_for(&db, Duration::from_secs(5));

    let (first, second, health) = futures_util::join!(
        view_from(&app, "127.0.0.1", &cookie),
        async {
            actix_web::rt::time::sleep(Duration::from_millis(300)).await;
            view_from(&app, "127.0.0.2", &cookie).await
        },
        async {
            actix_web::rt::time::sleep(Duration::from_millis(500)).await;
            let asked = Instant::now();
            let status = reqwest::get(format!("{}/healthz", app.address))
                .await
                .expect("healthz")
                .status();
            (status, asked.elapsed())
        }
    );

    let (status, retry_after, page, took) = second;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        page.contains("showing too many files right now"),
        "{page:.400}"
    );
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2_500),
        "waited its queue time: {took:?}"
    );
    // The first one held its turn until the lock made it give up (503, the try-again page).
    assert_eq!(first.0, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        first.2.contains("Temporarily unavailable"),
        "{:.400}",
        first.2
    );
    assert_eq!(health.0, StatusCode::OK);
    assert!(health.1 < Duration::from_millis(500), "{:?}", health.1);
    let refused = metric_value(
        &app.metrics.render(),
        "textdrop_refusals_total{reason=\"views_busy\"}",
    );
    assert_eq!(refused, Some(1.0));
    holder.join().expect("unlock");
    let (status, _, page, _) = view_from(&app, "127.0.0.2", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("a file"));
    app.stop().await;
}

/// A view whose client hangs up while it waits on the storage is dropped with its turn: the
/// next visitor's view gets the turn at once (then meets the lock: "Temporarily unavailable"),
/// instead of waiting its queue time for a turn held for no one ("Busy").
async fn a_view_whose_client_hung_up_gives_its_turn_back_at_once(db: TestDb) {
    let app = spawn_app(&db, &SETTINGS).await;
    let cookie = first_upload(&app, "a file\n").await;
    let holder = lock_sessions_for(&db, Duration::from_secs(6));
    let port = app.port;
    let request = format!("GET /action HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n");
    actix_web::rt::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.write_all(request.as_bytes()).expect("send");
        std::thread::sleep(Duration::from_millis(300));
        // Gone, its view waiting on the locked table.
    })
    .await
    .expect("the view that hangs up");

    let (status, _, page, took) = view_from(&app, "127.0.0.2", &cookie).await;

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        page.contains("Temporarily unavailable") && !page.contains("too many files"),
        "the turn came at once, not after the queue time: {page:.400}"
    );
    assert!(took >= Duration::from_secs(2), "it met the lock: {took:?}");
    holder.join().expect("unlock");
    app.stop().await;
}

/// `/readyz` answers 200 while every connection of the visitors' pool waits on a locked table:
/// it asks the database on a connection of its own.
async fn readyz_asks_the_database_on_its_own_connection(db: TestDb) {
    let app = spawn_app(
        &db,
        &[
            ("DATABASE_POOL_SIZE", "2"),
            ("DATABASE_STATEMENT_TIMEOUT_SECS", "4"),
        ],
    )
    .await;
    let cookie = first_upload(&app, "a file\n").await;
    let holder = lock_sessions_for(&db, Duration::from_secs(5));

    let (views, ready) = futures_util::join!(
        futures_util::future::join_all((0..8).map(|_| view_from(&app, "127.0.0.1", &cookie))),
        async {
            actix_web::rt::time::sleep(Duration::from_millis(500)).await;
            let asked = Instant::now();
            let status = reqwest::get(format!("{}/readyz", app.address))
                .await
                .expect("readyz")
                .status();
            (status, asked.elapsed())
        }
    );

    assert_eq!(ready.0, StatusCode::OK, "{ready:?}");
    assert!(ready.1 < Duration::from_secs(1), "{ready:?}");
    // The views waited for the lock: each got the try-again page, or its file once the lock
    // went.
    assert!(
        views.iter().all(|(status, ..)| matches!(
            *status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::OK
        )),
        "{:?}",
        views.iter().map(|v| v.0).collect::<Vec<_>>()
    );
    holder.join().expect("unlock");
    app.stop().await;
}

/// An address that views more bytes of files than `VIEW_BYTES_PER_MINUTE` waits, then gets 429
/// with `Retry-After` and the page saying why, counted; another address's views do not wait.
async fn an_address_past_its_view_budget_waits_then_gets_429(db: TestDb) {
    // 10 KB a second, 150 KB at once.
    let app = spawn_app(
        &db,
        &[
            ("VIEW_BYTES_PER_MINUTE", "600000"),
            ("VIEW_QUEUE_SECS", "1"),
        ],
    )
    .await;
    let cookie = first_upload(&app, &"a line of a file of 100 kB\n".repeat(3_704)).await;
    for n in 0..2 {
        let (status, _, _, took) = view_from(&app, "127.0.0.1", &cookie).await;
        assert_eq!(status, StatusCode::OK, "view {n}");
        assert!(
            took < Duration::from_millis(900),
            "view {n} waited {took:?}"
        );
    }

    let (status, retry_after, page, took) = view_from(&app, "127.0.0.1", &cookie).await;
    let (other, _, _, other_took) = view_from(&app, "127.0.0.2", &cookie).await;

    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.contains("viewing big files faster"), "{page:.400}");
    let retry_after: u64 = retry_after.expect("Retry-After").parse().expect("seconds");
    assert!((3..=6).contains(&retry_after), "{retry_after}");
    assert!(
        took >= Duration::from_millis(900),
        "it waited its queue time: {took:?}"
    );
    assert_eq!(other, StatusCode::OK);
    assert!(other_took < Duration::from_millis(900), "{other_took:?}");
    let refused = metric_value(
        &app.metrics.render(),
        "textdrop_refusals_total{reason=\"views_too_many\"}",
    );
    assert_eq!(refused, Some(1.0));
    app.stop().await;
}

tests_on!(sqlite: Sqlite; an_address_past_its_view_budget_waits_then_gets_429);

tests_on!(postgres: Postgres;
    a_view_past_the_limit_waits_its_turn_then_gets_503_busy,
    a_view_whose_client_hung_up_gives_its_turn_back_at_once,
    readyz_asks_the_database_on_its_own_connection,
);
