//! Hostile connections against the release path (the real binary, over real sockets): a head
//! that never ends on a kept-alive connection, requests pipelined and never read, one address
//! opening every connection. Each ends at its deadline while `/healthz`, asked from another
//! address, keeps answering.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::helpers::{ServerProcess, TestDb};

/// The server side's established TCP connections on `port` (IPv4 and IPv6), from /proc.
fn established_on(port: u16) -> usize {
    let local = format!(":{port:04X} ");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    // local_address rem_address st: 01 is ESTABLISHED.
                    fields.len() > 3
                        && format!("{} ", fields[1]).ends_with(&local)
                        && fields[3] == "01"
                })
                .map(|_| ())
                .collect::<Vec<_>>()
        })
        .count()
}

/// `/healthz` from 127.0.0.2 (another client than the attacker's 127.0.0.1), every 100 ms for
/// `during`: the slowest answer, and how many failed.
async fn health_from_elsewhere(port: u16, during: Duration) -> (Duration, usize) {
    let client = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<IpAddr>().expect("ip"))
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let (mut slowest, mut failed) = (Duration::ZERO, 0);
    let started = Instant::now();
    while started.elapsed() < during {
        let asked = Instant::now();
        match client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
        {
            Ok(r) if r.status() == 200 => slowest = slowest.max(asked.elapsed()),
            _ => failed += 1,
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    (slowest, failed)
}

/// 1,024 connections (the default `MAX_CONNECTIONS`) from one address, each with one whole
/// request and then the start of a second head and nothing more. The address holds its share
/// (256 here) at a time, past which new ones are closed at once; the held ones are answered,
/// then closed at the head deadline (2 s here); /healthz from another address answers in under
/// a second throughout.
async fn a_second_head_that_never_ends_is_closed_at_the_head_deadline(db: TestDb) {
    let server = ServerProcess::start(
        &db,
        &[
            ("REQUEST_HEAD_TIMEOUT_SECS", "2"),
            ("MAX_CONNECTIONS_PER_CLIENT", "256"),
        ],
    );
    let port = server.port;
    let attack = actix_web::rt::task::spawn_blocking(move || {
        let mut open = Vec::new();
        for _ in 0..1024 {
            let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
                continue;
            };
            let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n";
            if stream.write_all(request).is_ok() {
                open.push(stream);
            }
        }
        let opened = Instant::now();
        // Each held connection gets its first answer; the rest were closed unanswered.
        let mut answered = 0;
        for stream in &mut open {
            stream
                .set_read_timeout(Some(Duration::from_millis(500)))
                .expect("timeout");
            let mut first = [0u8; 12];
            if stream.read_exact(&mut first).is_ok() && first.starts_with(b"HTTP/1.1 200") {
                answered += 1;
            }
        }
        (open, opened, answered)
    });
    let (health, (open, opened, answered)) =
        futures_util::join!(health_from_elsewhere(port, Duration::from_secs(4)), async {
            attack.await.expect("attack")
        });
    assert!(
        (256..=1024).contains(&answered),
        "{answered} connections answered"
    );
    let (slowest, failed) = health;
    eprintln!("slowloris: /healthz from another address: slowest {slowest:?}, {failed} failed");
    assert_eq!(failed, 0);
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");

    // Closed at the deadline: 2 s after their answer (with room for a loaded machine); the
    // attacker holds them open, so only the server can have closed them.
    let closed =
        crate::helpers::eventually(Duration::from_secs(8), || established_on(port) <= 2).await;
    let waited = opened.elapsed();
    eprintln!("slowloris: all closed {waited:?} after the last was opened");
    assert!(
        closed,
        "{} connections still open {waited:?} after the attack",
        established_on(port)
    );
    assert!(waited < Duration::from_secs(6), "{waited:?}");
    drop(open);
}

/// 64 connections each pipeline 4,000 `GET /` and never read an answer: the server stops
/// reading them once their answers wait, closes them at the write deadline (2 s here), grows by
/// less than 64 MiB, and /healthz from another address answers in under a second throughout.
async fn pipelined_requests_never_read_are_closed_at_the_write_deadline(db: TestDb) {
    let server = ServerProcess::start(&db, &[("WRITE_TIMEOUT_SECS", "2")]);
    let port = server.port;
    let before = server.rss_kib();
    let attack = actix_web::rt::task::spawn_blocking(move || {
        let burst = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(4_000);
        let writers: Vec<_> = (0..64)
            .map(|_| {
                let burst = burst.clone();
                std::thread::spawn(move || {
                    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                    stream
                        .set_write_timeout(Some(Duration::from_secs(8)))
                        .expect("timeout");
                    // Blocks once the server stops reading; never reads.
                    let _ = stream.write_all(&burst);
                    stream
                })
            })
            .collect();
        writers
            .into_iter()
            .map(|w| w.join().expect("writer"))
            .collect::<Vec<_>>()
    });
    let ((slowest, failed), streams) =
        futures_util::join!(health_from_elsewhere(port, Duration::from_secs(6)), async {
            attack.await.expect("attack")
        });
    // The server answers until the client's and its own socket buffers are full (a few MB a
    // connection on loopback), then its writes wait; 2 s later the connection is closed.
    let waited = Instant::now();
    let closed =
        crate::helpers::eventually(Duration::from_secs(30), || established_on(port) <= 2).await;
    let grown = server.peak_rss_kib().saturating_sub(before);
    eprintln!(
        "pipelining: /healthz slowest {slowest:?}, {failed} failed; peak RSS +{grown} KiB; all \
         closed {:?} after the 6 s of /healthz",
        waited.elapsed()
    );
    assert_eq!(failed, 0);
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");
    assert!(grown < 64 * 1024, "+{grown} KiB");
    assert!(closed, "{} connections still open", established_on(port));
    drop(streams);
}

/// One address opens 300 idle connections with a share of 256 (and a head timeout long
/// enough not to interfere): 256 stay open, the other 44 are closed at once; a client at
/// another address is served meanwhile; once some close, the address gets places again. The
/// attacker is 127.0.0.3, so no connection of the harness's (its readiness probe comes from
/// 127.0.0.1 and may not be closed yet by the server) shares its count.
async fn one_address_holds_at_most_its_share_of_connections(db: TestDb) {
    let server = ServerProcess::start(
        &db,
        &[
            ("REQUEST_HEAD_TIMEOUT_SECS", "30"),
            ("MAX_CONNECTIONS_PER_CLIENT", "256"),
        ],
    );
    let port = server.port;
    let attacker: IpAddr = "127.0.0.3".parse().expect("ip");
    let mut streams = Vec::with_capacity(300);
    for _ in 0..300 {
        streams.push(connect_from(attacker, port).await);
    }
    let (mut open, closed) = actix_web::rt::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_millis(500));
        let (mut open, mut closed) = (Vec::new(), 0);
        for mut stream in streams {
            stream
                .set_read_timeout(Some(Duration::from_millis(20)))
                .expect("timeout");
            let mut byte = [0u8; 1];
            match stream.read(&mut byte) {
                // Nothing to read and not closed: held open.
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    open.push(stream)
                }
                _ => closed += 1,
            }
        }
        (open, closed)
    })
    .await
    .expect("connections");
    assert_eq!((open.len(), closed), (256, 44));
    let (slowest, failed) = health_from_elsewhere(port, Duration::from_millis(500)).await;
    assert_eq!(failed, 0);
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");
    // Places come back as connections close.
    open.truncate(200);
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let client = reqwest::Client::builder()
        .local_address(attacker)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let response = client
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert_eq!(response.expect("healthz").status(), 200);
}

/// A blocking connection to the server on `port` from the local address `from`.
async fn connect_from(from: IpAddr, port: u16) -> TcpStream {
    let socket = actix_web::rt::net::TcpSocket::new_v4().expect("socket");
    socket.bind((from, 0).into()).expect("bind");
    let stream = socket
        .connect(([127, 0, 0, 1], port).into())
        .await
        .expect("connect")
        .into_std()
        .expect("std stream");
    stream.set_nonblocking(false).expect("blocking");
    stream
}

/// The metrics listener has the public port's connection layer: one address holds at most its
/// share of connections there (64 here; the other 236 of 300 are closed at once), a head that
/// never ends is closed at the head deadline, and `/metrics` from another address answers
/// throughout.
async fn the_metrics_listener_has_the_same_deadlines_and_shares(db: TestDb) {
    let metrics_port = crate::helpers::free_port();
    let address = format!("127.0.0.1:{metrics_port}");
    let _server = ServerProcess::start(
        &db,
        &[
            ("METRICS_ADDR", &address),
            ("REQUEST_HEAD_TIMEOUT_SECS", "2"),
            ("MAX_CONNECTIONS_PER_CLIENT", "64"),
        ],
    );
    assert!(crate::helpers::wait_for_port(
        metrics_port,
        Duration::from_secs(10)
    ));
    let attack = actix_web::rt::task::spawn_blocking(move || {
        let open: Vec<TcpStream> = (0..300)
            .filter_map(|_| {
                let mut stream = TcpStream::connect(("127.0.0.1", metrics_port)).ok()?;
                stream
                    .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                    .ok()?;
                Some(stream)
            })
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        let held = established_on(metrics_port);
        (open, Instant::now(), held)
    });
    let client = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<IpAddr>().expect("ip"))
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let (scrape, attacked) = futures_util::join!(
        async {
            actix_web::rt::time::sleep(Duration::from_millis(300)).await;
            let asked = Instant::now();
            let status = client
                .get(format!("http://{address}/metrics"))
                .send()
                .await
                .map(|r| r.status());
            (status, asked.elapsed())
        },
        async { attack.await.expect("attack") }
    );
    let (open, opened, held) = attacked;

    assert!(held <= 66, "{held} connections held: more than the share");
    assert_eq!(scrape.0.ok(), Some(reqwest::StatusCode::OK));
    assert!(scrape.1 < Duration::from_secs(1), "{:?}", scrape.1);
    let closed =
        crate::helpers::eventually(Duration::from_secs(8), || established_on(metrics_port) == 0)
            .await;
    assert!(closed, "{} still open", established_on(metrics_port));
    assert!(
        opened.elapsed() < Duration::from_secs(6),
        "closed at the head deadline"
    );
    drop(open);
}

tests_on!(metrics_on_sqlite: Sqlite; the_metrics_listener_has_the_same_deadlines_and_shares);

tests_on!(on_sqlite: Sqlite;
    one_address_holds_at_most_its_share_of_connections,
    a_second_head_that_never_ends_is_closed_at_the_head_deadline,
    pipelined_requests_never_read_are_closed_at_the_write_deadline,
);

/// Without SECRET_KEY, an instance on a database other instances may share says that they
/// cannot read its cookies; on SQLite (one instance) it only says sessions end at a restart.
async fn a_random_key_on_a_shared_database_is_warned_about(db: TestDb) {
    let shared = db.backend != crate::helpers::Backend::Sqlite;
    let server = ServerProcess::start(&db, &[("SECRET_KEY", "")]);
    let log = server.stop_and_read_log();
    assert!(log.contains("SECRET_KEY is not set"), "{log}");
    assert_eq!(
        log.contains("other instances on this database cannot read"),
        shared,
        "{log}"
    );
}

tests_on!(key_on_sqlite: Sqlite; a_random_key_on_a_shared_database_is_warned_about);
tests_on!(key_on_postgres: Postgres; a_random_key_on_a_shared_database_is_warned_about);

/// A 60 KB URL is one access-log line of a few hundred bytes: at most 256 bytes of the target
/// are quoted (escaped), the rest counted.
async fn an_access_log_line_quotes_at_most_256_bytes_of_a_request(db: TestDb) {
    let server = ServerProcess::start(&db, &[("RUST_LOG", "info")]);
    let long = format!("\"{}", "a".repeat(60_000));
    let response = reqwest::get(format!("{}/{long}", server.address()))
        .await
        .expect("GET");
    assert_eq!(response.status(), 404);
    let log = server.stop_and_read_log();
    let line = log
        .lines()
        .find(|line| line.contains("\"GET /"))
        .unwrap_or_else(|| panic!("an access-log line: {log:.2000}"));
    assert!(line.len() < 512, "{} bytes: {line:.600}", line.len());
    // reqwest sends the quote as %22: the target is "/%22" and the 60,000 a's.
    assert!(line.contains("GET /%22aaa"), "{line:.600}");
    let left_out = 4 + 60_000 - 256;
    assert!(
        line.contains(&format!("(+{left_out} bytes) HTTP/1.1")),
        "{line:.600}"
    );
}

tests_on!(log_on_sqlite: Sqlite; an_access_log_line_quotes_at_most_256_bytes_of_a_request);

/// A method a page does not take gets the 405 page with `Allow`, and no cookie: the session is
/// never loaded. HEAD answers like GET, without a body.
async fn other_methods_get_405_before_any_session(db: TestDb) {
    let app = crate::helpers::spawn_app(&db, &[]).await;
    app.upload("a.txt", "kept\n").await;
    for (method, path, allow) in [
        ("PUT", "/action", "GET, HEAD"),
        ("DELETE", "/action", "GET, HEAD"),
        ("OPTIONS", "/", "GET, HEAD, POST"),
        ("GET", "/forget", "POST"),
    ] {
        let response = app
            .client
            .request(
                method.parse().expect("method"),
                format!("{}{path}", app.address),
            )
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_eq!(response.headers()["allow"], allow, "{method} {path}");
        assert!(
            response.headers().get("set-cookie").is_none(),
            "{method} {path}"
        );
        crate::hardening::assert_security_headers("405", &response);
        assert!(response
            .text()
            .await
            .expect("body")
            .contains("Method not allowed"));
    }
    let head = app
        .client
        .head(format!("{}/action", app.address))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(head.status(), 200);
    assert!(head.bytes().await.expect("body").is_empty());
    assert!(app.get_text("/action").await.contains("kept"));
    app.stop().await;
}

sql_tests!(methods: other_methods_get_405_before_any_session);
