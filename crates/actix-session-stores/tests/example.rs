//! The counter example (examples/counter.rs), built by `cargo test` with the crate, run as a
//! visitor would use it: two requests with the cookie the first one set count 1 and 2, and a
//! visitor without the cookie starts at 1.
#![cfg(feature = "sqlite")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

/// The example's binary, next to this test's: `cargo test` builds examples with the tests;
/// a run of this test alone (`--test example`) builds it here.
fn example() -> std::path::PathBuf {
    let me = std::env::current_exe().expect("this test's path");
    let profile = me
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let binary = profile.join("examples").join("counter");
    if !binary.exists() {
        let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        build.args(["build", "--example", "counter", "--manifest-path"]);
        build.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
        if profile.file_name().is_some_and(|name| name == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("cargo builds the example");
        assert!(status.success(), "building the example failed");
    }
    binary
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// GET / on `addr`, with `cookie` if any: the body and the cookie the response set.
fn get(addr: &str, cookie: Option<&str>) -> (String, Option<String>) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let cookie = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: x\r\n{cookie}Connection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let set = head
        .lines()
        .find_map(|line| line.strip_prefix("set-cookie: "))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned());
    (body.to_owned(), set)
}

#[test]
fn the_counter_example_counts_a_visitors_requests() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("counter.db").display());
    let mut child = Command::new(example())
        .env("DATABASE_URL", &url)
        .env("ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()
        .expect("the example runs (cargo test builds it)");
    let stdout = child.stdout.take().expect("stdout");
    let _running = Running(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("its first line");
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .expect("it says where it listens")
        .to_owned();

    let (first, cookie) = get(&addr, None);
    assert_eq!(first, "visit 1\n");
    let cookie = cookie.expect("a session cookie");
    let (second, _) = get(&addr, Some(&cookie));
    assert_eq!(second, "visit 2\n");
    let (stranger, _) = get(&addr, None);
    assert_eq!(
        stranger, "visit 1\n",
        "another visitor has a session of its own"
    );
    assert!(
        dir.path().join("counter.db").exists(),
        "the sessions are in SQLite"
    );
}
