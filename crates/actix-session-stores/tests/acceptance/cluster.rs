//! A Redis Cluster of the run's own, for when `TEST_REDIS_CLUSTER_URL` names none: six
//! `redis-server`s (3 masters, 3 replicas) on free ports below the ephemeral range, started by
//! `tests/redis-cluster.sh` in a temporary directory and stopped when the run ends, also on
//! Ctrl-C. Needs `redis-server` and `redis-cli` on PATH.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running cluster, stopped when dropped.
pub struct OwnCluster {
    dir: tempfile::TempDir,
    pub url: String,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/redis-cluster.sh")
}

fn stop(dir: &Path) {
    let _ = Command::new("bash")
        .arg(script())
        .arg("stop")
        .arg(dir)
        .status();
}

impl OwnCluster {
    /// Starts one, or says why it could not.
    pub fn start() -> Result<Self, String> {
        for program in ["redis-server", "redis-cli"] {
            let found = Command::new(program)
                .arg("--version")
                .output()
                .is_ok_and(|out| out.status.success());
            if !found {
                return Err(format!(
                    "TEST_REDIS_CLUSTER_URL is not set and there is no {program} on PATH to \
                     start a cluster of the run's own"
                ));
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("actix-session-stores-cluster-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let path = dir.path().to_owned();
        // The nodes are daemons: a Ctrl-C that ends the run stops them first.
        let _ = ctrlc::set_handler(move || {
            stop(&path);
            std::process::exit(130);
        });
        let mut last = String::new();
        for _ in 0..8 {
            // Six ports and their buses (10000 above) below 32768; the script refuses a base
            // whose ports are taken (exit 3): another one then.
            let base = 11_000 + 10 * fastrand::u16(0..1_100);
            let out = Command::new("bash")
                .arg(script())
                .arg("start")
                .arg(dir.path())
                .arg(base.to_string())
                .output()
                .map_err(|e| format!("cannot run {}: {e}", script().display()))?;
            if out.status.success() {
                let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                return Ok(Self { dir, url });
            }
            stop(dir.path());
            last = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            if out.status.code() != Some(3) {
                break;
            }
        }
        Err(format!("the cluster did not start: {last}"))
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        stop(self.dir.path());
    }
}
