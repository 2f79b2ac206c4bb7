//! The test binary's own harness (libtest-mimic), so that a test that cannot run is counted as
//! not run. Every test is a [`Case`], registered by the macros in [`super`] with the services
//! it [`Need`]s. Before running, the harness looks for each service the selected cases need,
//! once: PostgreSQL and MySQL at their variables or at this machine's documented defaults, a
//! Redis and a Redis Cluster of the run's own (private `redis-server` processes on free ports,
//! stopped at the end, so a developer's Redis is never flushed) unless a variable names one. A
//! case whose service is missing is reported `ignored`, and the run ends with one line per
//! missing service saying how to include it; with the service's `TEXTDROP_REQUIRE_*` variable
//! set (CI) it runs and fails instead.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::OnceLock;
use std::time::Duration;

use libtest_mimic::{Arguments, Trial};

use super::{required, PrivateRedis, TestConn};

/// Something a test needs besides the binary and SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Need {
    /// A PostgreSQL server where the test may create databases.
    Postgres,
    /// A MySQL or MariaDB server where the test may create databases.
    Mysql,
    /// A Redis server whose databases 1 to 15 the tests may flush.
    Redis,
    /// A Redis Cluster the tests may flush.
    RedisCluster,
    /// PostgreSQL's server binaries and root, for servers a test starts and stops itself.
    PostgresServer,
    /// MariaDB's server binaries, for servers a test starts and stops itself.
    MariaDbServer,
    /// `redis-server`, for servers a test starts and kills itself.
    RedisServer,
    /// Chromium and ChromeDriver.
    Browser,
    /// axe-core, installed by `npm ci --prefix tests/browser`.
    Axe,
}

impl Need {
    fn what(self) -> &'static str {
        match self {
            Self::Postgres => "PostgreSQL",
            Self::Mysql => "MySQL/MariaDB",
            Self::Redis => "Redis",
            Self::RedisCluster => "a Redis Cluster",
            Self::PostgresServer => "a private PostgreSQL server",
            Self::MariaDbServer => "a private MariaDB server",
            Self::RedisServer => "a private redis-server",
            Self::Browser => "a browser",
            Self::Axe => "axe-core",
        }
    }

    /// The variable that makes a missing service fail the run instead of skipping its tests.
    fn require_variable(self) -> &'static str {
        match self {
            Self::Postgres | Self::PostgresServer => "TEXTDROP_REQUIRE_POSTGRES",
            Self::Mysql | Self::MariaDbServer => "TEXTDROP_REQUIRE_MYSQL",
            Self::Redis => "TEXTDROP_REQUIRE_REDIS",
            Self::RedisCluster | Self::RedisServer => "TEXTDROP_REQUIRE_REDIS_CLUSTER",
            Self::Browser | Self::Axe => "TEXTDROP_REQUIRE_BROWSER",
        }
    }
}

/// One test: its module (`module_path!()`), name, needs (its backend's, and any others) and
/// body.
pub struct Case {
    pub module: &'static str,
    pub name: &'static str,
    pub needs: &'static [Need],
    pub also: &'static [Need],
    pub run: fn(),
}

inventory::collect!(Case);

impl Case {
    fn all_needs(&self) -> impl Iterator<Item = Need> + '_ {
        self.needs.iter().chain(self.also).copied()
    }

    /// The name the run shows and filters on: the module path without the binary's own name.
    fn full_name(&self) -> String {
        let module = self
            .module
            .split_once("::")
            .map_or("", |(_, rest)| rest)
            .to_owned();
        if module.is_empty() {
            self.name.to_owned()
        } else {
            format!("{module}::{}", self.name)
        }
    }
}

/// Runs an async test body on an actix system of its own, as `#[actix_web::test]` does.
pub fn block_on(test: impl std::future::Future<Output = ()>) {
    actix_web::rt::System::new().block_on(test);
}

/// Where each service was found (its URL, or `""` for tools), or why not.
static FOUND: OnceLock<BTreeMap<Need, Result<String, String>>> = OnceLock::new();

/// The URL of the service `need` names; panics with the reason when it is missing (a test only
/// runs without its service when its `TEXTDROP_REQUIRE_*` variable says it must).
pub fn service(need: Need) -> String {
    match FOUND.get().and_then(|found| found.get(&need)) {
        Some(Ok(url)) => url.clone(),
        Some(Err(why)) => panic!("{} is required here but missing: {why}", need.what()),
        None => panic!(
            "{} was not looked for: add it to the test's needs",
            need.what()
        ),
    }
}

/// Servers the run started for itself, stopped when it ends.
#[derive(Default)]
struct Started {
    redis: Option<PrivateRedis>,
    cluster: Option<RunCluster>,
}

pub fn main() -> ExitCode {
    // The apps under test log nothing unless asked: `RUST_LOG=info cargo test …` shows what
    // they log (a failing test's cause, say) beside the test's output.
    if std::env::var_os("RUST_LOG").is_some() {
        env_logger::init();
    }
    let args = Arguments::from_args();
    let cases: Vec<&'static Case> = inventory::iter::<Case>.into_iter().collect();
    let chosen = |case: &Case| selected(&args, &case.full_name());
    let mut started = Started::default();
    let found: BTreeMap<Need, Result<String, String>> = if args.list {
        BTreeMap::new()
    } else {
        let needed: std::collections::BTreeSet<Need> = cases
            .iter()
            .filter(|case| chosen(case))
            .flat_map(|case| case.all_needs())
            .collect();
        needed
            .into_iter()
            .map(|need| (need, look_for(need, &mut started)))
            .collect()
    };
    let missing = |case: &Case| {
        case.all_needs().find(|need| {
            matches!(found.get(need), Some(Err(_))) && !required(need.require_variable())
        })
    };
    let mut not_run: BTreeMap<Need, usize> = BTreeMap::new();
    let mut trials: Vec<Trial> = cases
        .iter()
        .copied()
        .map(|case: &'static Case| {
            let skipped = missing(case);
            if let Some(need) = skipped.filter(|_| chosen(case)) {
                *not_run.entry(need).or_default() += 1;
            }
            Trial::test(case.full_name(), move || {
                (case.run)();
                Ok(())
            })
            .with_ignored_flag(skipped.is_some())
        })
        .collect();
    trials.sort_by(|a, b| a.name().cmp(b.name()));
    FOUND
        .set(found.clone())
        .expect("the services are looked for once");

    let conclusion = libtest_mimic::run(&args, trials);
    drop(started);
    // Right under the summary, on the same stream (failures' output goes to stderr before it).
    for (need, count) in &not_run {
        if let Some(Err(why)) = found.get(need) {
            let (tests, need_s) = if *count == 1 {
                ("test", "needs")
            } else {
                ("tests", "need")
            };
            println!(
                "not run: {count} {tests} that {need_s} {}: {why}",
                need.what()
            );
        }
    }
    conclusion.exit_code()
}

/// Whether the run's filter (and `--skip`) selects `name`, as libtest does.
fn selected(args: &Arguments, name: &str) -> bool {
    let matches = |filter: &str| {
        if args.exact {
            name == filter
        } else {
            name.contains(filter)
        }
    };
    args.filter.as_deref().is_none_or(matches) && !args.skip.iter().any(|skip| matches(skip))
}

/// Looks for `need`: its URL when found, else why not and how to include it.
fn look_for(need: Need, started: &mut Started) -> Result<String, String> {
    match need {
        Need::Postgres => database(
            "TEST_DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
        ),
        Need::Mysql => database("TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
        Need::Redis => {
            if let Some(url) = variable("TEST_REDIS_URL") {
                return ping("TEST_REDIS_URL", &url).map(|()| url);
            }
            tool(
                "redis-server",
                "install redis-server, or set TEST_REDIS_URL",
            )?;
            let redis = started.redis.insert(PrivateRedis::start());
            Ok(redis.url.clone())
        }
        Need::RedisCluster => {
            if let Some(url) = variable("TEST_REDIS_CLUSTER_URL") {
                let first = actix_session_stores::DatabaseUrl::parse(&url)
                    .map_err(|e| format!("TEST_REDIS_CLUSTER_URL: {e}"))?
                    .cluster_nodes()
                    .into_iter()
                    .next()
                    .ok_or("TEST_REDIS_CLUSTER_URL names no node")?;
                return ping("TEST_REDIS_CLUSTER_URL", &first).map(|()| url);
            }
            tool(
                "redis-server",
                "install redis-server, or set TEST_REDIS_CLUSTER_URL",
            )?;
            let cluster = started.cluster.insert(RunCluster::start()?);
            Ok(cluster.url.clone())
        }
        Need::PostgresServer => {
            let is_root = Command::new("id")
                .arg("-u")
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
            if !is_root || crate::private_pg::pg_bin_dir().is_none() {
                return Err(
                    "a private PostgreSQL needs root and /usr/lib/postgresql/*/bin \
                            (apt-get install postgresql)"
                        .into(),
                );
            }
            Ok(String::new())
        }
        Need::MariaDbServer => {
            let (install, server) = crate::private_mysql::BINARIES;
            if !Path::new(install).exists() || !Path::new(server).exists() {
                return Err(format!(
                    "no {install} or {server} (apt-get install mariadb-server)"
                ));
            }
            Ok(String::new())
        }
        Need::RedisServer => tool("redis-server", "install redis-server").map(|()| String::new()),
        Need::Browser => {
            let (chromium, driver) = crate::browser::BINARIES;
            if !Path::new(chromium).exists() || !Path::new(driver).exists() {
                return Err(format!(
                    "no {chromium} or {driver} (apt-get install chromium chromium-driver)"
                ));
            }
            Ok(String::new())
        }
        Need::Axe => {
            let axe = Path::new(env!("CARGO_MANIFEST_DIR")).join(crate::browser::AXE);
            if !axe.exists() {
                return Err(format!(
                    "no {} (npm ci --prefix tests/browser)",
                    crate::browser::AXE
                ));
            }
            Ok(String::new())
        }
    }
}

fn variable(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// The server at `name`'s URL, or at `default` when it is unset, if it answers.
fn database(name: &str, default: &str) -> Result<String, String> {
    let (url, from) = match variable(name) {
        Some(url) => (url, format!("{name} does not answer")),
        None => (
            default.to_owned(),
            format!("nothing answers at {default}; set {name} to a server where the user may create databases"),
        ),
    };
    match TestConn::open(&url) {
        Ok(_) => Ok(url),
        Err(e) => Err(format!("{from} ({e})")),
    }
}

fn ping(variable: &str, url: &str) -> Result<(), String> {
    let answer = redis::Client::open(url)
        .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(3)))
        .and_then(|mut conn| redis::cmd("PING").query::<String>(&mut conn));
    answer
        .map(drop)
        .map_err(|e| format!("{variable} does not answer ({e})"))
}

fn tool(program: &str, how: &str) -> Result<(), String> {
    match Command::new(program).arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        _ => Err(format!("no {program} on PATH: {how}")),
    }
}

/// A Redis Cluster of the run's own (`scripts/redis-cluster.sh`) on free ports, in a temporary
/// directory, stopped when dropped.
pub struct RunCluster {
    dir: tempfile::TempDir,
    pub url: String,
}

impl RunCluster {
    pub fn start() -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("textdrop-cluster-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        stop_on_interrupt(dir.path());
        let out = Command::new("bash")
            .arg(cluster_script())
            .arg("start")
            .arg(dir.path())
            .arg(free_cluster_base().to_string())
            .output()
            .map_err(|e| format!("cannot run the cluster script: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "the cluster script failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Ok(Self { dir, url })
    }

    /// The directory holding the nodes' pid files, configs and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for RunCluster {
    fn drop(&mut self) {
        RUNNING_CLUSTERS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|dir| dir != self.dir.path());
        let _ = Command::new("bash")
            .arg(cluster_script())
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

/// The directories of the clusters running now: their nodes run as daemons, so a Ctrl-C that
/// ends the run would leave them behind.
static RUNNING_CLUSTERS: std::sync::Mutex<Vec<std::path::PathBuf>> =
    std::sync::Mutex::new(Vec::new());

/// Counts `dir`'s cluster as running; the first time, installs the handler that stops every
/// running cluster on SIGINT or SIGTERM, then exits with 130.
fn stop_on_interrupt(dir: &Path) {
    static HANDLER: std::sync::Once = std::sync::Once::new();
    RUNNING_CLUSTERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(dir.to_owned());
    HANDLER.call_once(|| {
        let handler = ctrlc::set_handler(|| {
            let dirs = RUNNING_CLUSTERS
                .lock()
                .map(|d| d.clone())
                .unwrap_or_default();
            for dir in dirs {
                let _ = Command::new("bash")
                    .arg(cluster_script())
                    .arg("stop")
                    .arg(&dir)
                    .status();
            }
            std::process::exit(130);
        });
        if let Err(err) = handler {
            eprintln!("cannot stop the run's Redis Clusters on Ctrl-C: {err}");
        }
    });
}

pub fn cluster_script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/redis-cluster.sh")
}

/// A base port whose six nodes and their buses (10000 above) are all free now, below the
/// ephemeral range; each call starts from a different place, so two clusters of one run do
/// not collide.
pub fn free_cluster_base() -> u16 {
    let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
    let offset = 10 * spread();
    (0..900)
        .map(|step| 7000 + (offset + 10 * step) % 9000)
        .find(|base| (1..=6).all(|i| free(base + i) && free(base + i + 10_000)))
        .expect("a free range of ports for a Redis Cluster")
}

/// A number below 900 that differs between calls and runs (the clock's nanoseconds).
fn spread() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    u16::try_from(nanos % 900).unwrap_or(0)
}
