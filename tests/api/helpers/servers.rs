//! Servers a test runs as processes of its own: the textdrop binary, a private Redis, and the
//! database servers a test can stop and start ([`Outage`]).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Backend, TestDb, TEST_SECRET};

/// A database server a test can stop and start.
pub trait Outage {
    /// The URL of the test's database on it.
    fn url(&self) -> String;
    /// Stops the server at once, closing every connection.
    fn halt(&self);
    /// Starts it again and waits until it accepts connections.
    fn resume(&self);
}

/// Waits until something listens on `port` of loopback, at most `patience`.
pub fn wait_for_port(port: u16, patience: Duration) -> bool {
    let deadline = Instant::now() + patience;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// The textdrop binary, with an empty environment but PATH, run from the temp dir (so no
/// `.env` is found).
pub fn textdrop(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_textdrop"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir());
    command
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// `textdrop serve` as a process of its own, for tests that kill it, signal it, measure its
/// memory or read its logs.
pub struct ServerProcess {
    pub child: Child,
    pub port: u16,
    /// Where the process's stderr goes (a file, so a chatty log never blocks it on a pipe).
    log: tempfile::NamedTempFile,
}

impl ServerProcess {
    /// Starts it on a free port. The port is free when chosen but may be taken by another
    /// test before the server binds it: a server that exits saying so is started again on
    /// another port (three tries); any other exit fails with its log.
    pub fn start(db: &TestDb, extra: &[(&str, &str)]) -> Self {
        for _ in 0..3 {
            let port = free_port();
            let log = tempfile::NamedTempFile::new().expect("log file");
            let mut command = textdrop(&["serve"]);
            command
                .env("DATABASE_URL", &db.url)
                .env("PORT", port.to_string())
                .env("SECRET_KEY", TEST_SECRET)
                .env("RUST_LOG", "warn")
                .env("UPLOADS_PER_MINUTE", "0")
                // Every test client is 127.0.0.1; the share has tests of its own.
                .env("MAX_CONNECTIONS_PER_CLIENT", "1000000")
                .stdout(Stdio::null())
                .stderr(log.reopen().expect("log file"));
            for (k, v) in super::app::suite_wide() {
                command.env(k, v);
            }
            for (k, v) in extra {
                command.env(k, v);
            }
            let child = command.spawn().expect("start textdrop");
            let mut server = Self { child, port, log };
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return server;
                }
                if let Ok(Some(status)) = server.child.try_wait() {
                    let log = std::fs::read_to_string(server.log.path()).unwrap_or_default();
                    if log.contains("Address already in use") {
                        break;
                    }
                    panic!("the server exited ({status}) before it listened:\n{log}");
                }
                assert!(Instant::now() < deadline, "the server did not come up");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("three free ports were taken before the server could bind them")
    }

    pub fn address(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's resident memory now (VmRSS), in KiB.
    pub fn rss_kib(&self) -> u64 {
        proc_status_kib(self.child.id(), "VmRSS:")
    }

    /// The server's peak resident memory so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.child.id(), "VmHWM:")
    }

    /// SIGTERM, without waiting.
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// SIGTERM, wait, and return everything the process wrote to stderr.
    pub fn stop_and_read_log(mut self) -> String {
        self.terminate();
        let _ = self.child.wait();
        std::fs::read_to_string(self.log.path()).expect("read the log")
    }

    /// SIGKILL, and wait.
    pub fn kill_hard(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("proc status")
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} of {pid}"))
}

/// A `redis-server` of the test's own on a free port, stopped on drop: for tests whose figures
/// (memory, keys) must not mix with other tests'.
pub struct PrivateRedis {
    child: Child,
    pub url: String,
}

impl PrivateRedis {
    pub fn start() -> Self {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let url = format!("redis://127.0.0.1:{port}/0");
        assert!(
            wait_for_port(port, Duration::from_secs(10)),
            "redis-server did not come up"
        );
        Self { child, url }
    }

    /// A [`TestDb`] on this server's database 0.
    pub fn db(&self) -> TestDb {
        TestDb::existing(Backend::Redis, self.url.clone())
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
