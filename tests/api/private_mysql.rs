//! A MariaDB server of the test's own, on its own port and data directory, that the test can
//! kill and start again (as `private_pg` does for PostgreSQL): `mariadb-install-db` into a temp
//! dir, then `mariadbd` as a child process. It runs without grant tables: nothing but the test
//! reaches it, on loopback.

use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::helpers::{free_port, Outage, TestConn};

const INSTALL: &str = "/usr/bin/mariadb-install-db";
const SERVER: &str = "/usr/sbin/mariadbd";
/// What a private server needs: the installer and the server.
pub(crate) const BINARIES: (&str, &str) = (INSTALL, SERVER);

pub struct PrivateMariaDb {
    dir: tempfile::TempDir,
    port: u16,
    server: Mutex<Option<Child>>,
}

impl PrivateMariaDb {
    /// Creates and starts a server with a `textdrop` database (the test needs
    /// [`Need::MariaDbServer`](crate::helpers::Need)).
    pub fn start() -> Self {
        crate::helpers::harness::service(crate::helpers::Need::MariaDbServer);
        let dir = tempfile::Builder::new()
            .prefix("textdrop-mariadb-")
            .tempdir()
            .expect("temp dir");
        let out = Command::new(INSTALL)
            .args(["--no-defaults", "--user=root", "--skip-test-db"])
            .arg(format!("--datadir={}", dir.path().join("data").display()))
            .output()
            .expect("mariadb-install-db runs");
        assert!(
            out.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let server = Self {
            dir,
            port: free_port(),
            server: Mutex::new(None),
        };
        server.resume();
        let admin = format!("mysql://root@127.0.0.1:{}/mysql", server.port);
        TestConn::open(&admin)
            .expect("connect to MariaDB")
            .execute("CREATE DATABASE textdrop")
            .expect("create the database");
        server
    }
}

impl Outage for PrivateMariaDb {
    fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/textdrop", self.port)
    }

    /// Starts the server (again) and waits until it accepts connections.
    fn resume(&self) {
        let data = self.dir.path().join("data");
        let child = Command::new(SERVER)
            .args(["--no-defaults", "--user=root", "--skip-grant-tables"])
            .args(["--bind-address=127.0.0.1", "--skip-log-bin"])
            .arg(format!("--port={}", self.port))
            .arg(format!("--datadir={}", data.display()))
            .arg(format!(
                "--socket={}",
                self.dir.path().join("sock").display()
            ))
            .arg(format!(
                "--pid-file={}",
                self.dir.path().join("pid").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        *self.server.lock().expect("lock") = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = format!("mysql://root@127.0.0.1:{}/mysql", self.port);
        while TestConn::open(&url).is_err() {
            assert!(Instant::now() < deadline, "mariadbd did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the server at once (SIGKILL), closing every connection.
    fn halt(&self) {
        if let Some(mut child) = self.server.lock().expect("lock").take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        self.halt();
    }
}
