//! A PostgreSQL server of the test's own, on its own port, that the test can stop and start:
//! `initdb` into a temp dir and `pg_ctl`, run as the `postgres` user (root cannot run postgres).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::helpers::Outage;

pub struct PrivatePostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
    /// Server settings beyond the test defaults (`-c name=value` each).
    settings: Vec<String>,
}

fn run_as_postgres(program: &Path, args: &[&str]) -> Output {
    Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(program)
        .args(args)
        .output()
        .expect("runuser runs")
}

pub(crate) fn pg_bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

impl PrivatePostgres {
    /// Creates and starts a server (the test needs [`Need::PostgresServer`](crate::helpers::Need)).
    pub fn start() -> Self {
        Self::start_with(|_| Vec::new())
    }

    /// [`start`](Self::start), with server settings that `settings` makes from the server's
    /// own directory (where it may write files the server reads, owned by `postgres`).
    pub fn start_with(settings: impl FnOnce(&Path) -> Vec<String>) -> Self {
        crate::helpers::harness::service(crate::helpers::Need::PostgresServer);
        let bin = pg_bin_dir().expect("PostgreSQL's server binaries");
        let dir = tempfile::Builder::new()
            .prefix("textdrop-pg-")
            .tempdir()
            .expect("temp dir");
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .expect("chown");
        assert!(status.success());
        let data = dir.path().join("data");
        let init = run_as_postgres(
            &bin.join("initdb"),
            &[
                "-D",
                data.to_str().expect("path"),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        assert!(
            init.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let port = crate::helpers::free_port();
        let settings = settings(dir.path());
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .expect("chown");
        assert!(status.success());
        let server = Self {
            bin,
            dir,
            port,
            settings,
        };
        server.resume();
        server
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }
}

impl Outage for PrivatePostgres {
    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server (again) and waits until it accepts connections.
    fn resume(&self) {
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        for setting in &self.settings {
            options.push_str(&format!(" -c {setting}"));
        }
        let log = self.dir.path().join("log").display().to_string();
        let out = run_as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the server at once, closing every connection.
    fn halt(&self) {
        let out = run_as_postgres(
            &self.bin.join("pg_ctl"),
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = run_as_postgres(
            &self.bin.join("pg_ctl"),
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }
}
