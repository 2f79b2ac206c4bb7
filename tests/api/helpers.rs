//! Test plumbing: a fresh database per test (a SQLite file in a temp dir, a new PostgreSQL
//! database made from TEST_DATABASE_URL and dropped afterwards, or a Redis database of its own
//! at TEST_REDIS_URL), the macros that hand each test one, a clock tests can move forward, the
//! real application on port 0 with a cookie-keeping HTTP client, the binary as a process, and
//! hand-made multipart bodies.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex};
use std::time::{Duration, Instant};

use actix_web::cookie::Cookie;
use actix_web::dev::ServerHandle;
use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::{Connection, PgConnection};
use reqwest::multipart::{Form, Part};
use textdrop::clock::Clock;
use textdrop::config::Settings;
use textdrop::db::{self, DatabaseUrl, DbConnection, DbConnectionManager, DbPool};
use textdrop::schema::sessions;
use textdrop::session::lifetime::MaxLifetime;
use textdrop::session::{DieselSessionStore, RedisStore};
use textdrop::startup::{Application, SECURE_SESSION_COOKIE, SESSION_COOKIE};
use textdrop::storage::AnyStore;

/// Key material every test app shares, so a restarted app can read the same cookies.
pub const TEST_SECRET: &str = "test-secret-key-material-that-is-long-enough-0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    /// MySQL or MariaDB at TEST_MYSQL_URL, a database of the test's own.
    Mysql,
    /// Redis at TEST_REDIS_URL, a database of the test's own.
    Redis,
    /// The Redis Cluster at TEST_REDIS_CLUSTER_URL, flushed and held by one test at a time.
    RedisCluster,
}

/// Prints why a test skips straight to stderr: the test harness captures `eprintln!` of
/// passing tests, and a skip must be seen.
macro_rules! skip_notice {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
pub(crate) use skip_notice;

/// One `#[actix_web::test]` per backend in `[$($backend)*]` for each listed `async fn(TestDb)`;
/// the test gets a fresh database of that backend, or is skipped (outside CI) when the backend
/// is not configured.
#[macro_export]
macro_rules! tests_on {
    ($module:ident: $backend:ident; $($name:ident),* $(,)?) => {
        mod $module {
            $(
                #[actix_web::test]
                async fn $name() {
                    if let Some(db) = $crate::helpers::TestDb::new($crate::helpers::Backend::$backend) {
                        super::$name(db).await
                    }
                }
            )*
        }
    };
}

/// The listed tests on every SQL database: SQLite, PostgreSQL and MySQL/MariaDB; with a leading
/// `group:`, inside a module of that name (for a second list in the same file).
#[macro_export]
macro_rules! sql_tests {
    ($group:ident: $($name:ident),* $(,)?) => {
        mod $group {
            use super::*;
            $crate::sql_tests!($($name),*);
        }
    };
    ($($name:ident),* $(,)?) => {
        $crate::tests_on!(sqlite: Sqlite; $($name),*);
        $crate::tests_on!(postgres: Postgres; $($name),*);
        $crate::tests_on!(mysql: Mysql; $($name),*);
    };
}

/// The listed tests on every backend: SQLite, PostgreSQL, MySQL, Redis and Redis Cluster.
#[macro_export]
macro_rules! page_tests {
    ($($name:ident),* $(,)?) => {
        $crate::sql_tests!($($name),*);
        $crate::tests_on!(redis: Redis; $($name),*);
        $crate::tests_on!(redis_cluster: RedisCluster; $($name),*);
    };
}

/// Creates a uniquely named database on the server at `admin_url` (named by the variable
/// `variable`), its name quoted with `quote` as that server's SQL wants; returns its name and
/// URL.
fn create_database(admin_url: &str, variable: &str, quote: char) -> (String, String) {
    let name = format!("textdrop_test_{}", uuid::Uuid::new_v4().simple());
    let server = textdrop::db::DatabaseUrl::parse(admin_url)
        .unwrap_or_else(|e| panic!("{variable} is not a database URL: {e}"));
    let mut admin = textdrop::db::DbConnectionManager::new(server)
        .establish()
        .unwrap_or_else(|e| panic!("cannot connect to {variable}: {e}"));
    diesel::sql_query(format!("CREATE DATABASE {quote}{name}{quote}"))
        .execute(&mut admin)
        .expect("create test database");
    let url = with_database(admin_url, &name);
    (name, url)
}

/// Whether a missing service must fail the run (CI sets these) rather than skip.
pub fn required(variable: &str) -> bool {
    std::env::var(variable).is_ok_and(|v| v == "1" || v == "true")
}

/// The value of `variable`, or `None` after printing why the test skips (or failing when
/// `require` says the service must be there).
pub fn service_url(variable: &str, require: &str, what: &str) -> Option<String> {
    let url = std::env::var(variable).ok().filter(|u| !u.is_empty());
    if url.is_none() {
        assert!(
            !required(require),
            "{variable} is not set but {require} is: the {what} tests must run"
        );
        skip_notice!("skipping a {what} test: {variable} is not set");
    }
    url
}

/// A database of its own for one test, removed when dropped.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    cleanup: DbCleanup,
}

enum DbCleanup {
    /// A database the test does not own (e.g. a private server that cleans up after itself).
    Nothing,
    Sqlite(
        #[expect(dead_code, reason = "held so the directory lives as long as the test")]
        tempfile::TempDir,
    ),
    Postgres {
        admin_url: String,
        name: String,
    },
    Mysql {
        admin_url: String,
        name: String,
    },
    Redis(
        #[expect(
            dead_code,
            reason = "held so the database is flushed and freed on drop"
        )]
        RedisDb,
    ),
    Cluster(#[expect(dead_code, reason = "held: one test on the cluster at a time")] ClusterHold),
}

impl TestDb {
    /// A fresh database, or `None` (with the reason printed) when the backend is not configured.
    pub fn new(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("textdrop.db").display());
                Some(Self {
                    backend,
                    url,
                    cleanup: DbCleanup::Sqlite(dir),
                })
            }
            Backend::Redis => {
                let base = service_url("TEST_REDIS_URL", "TEXTDROP_REQUIRE_REDIS", "Redis")?;
                let db = RedisDb::take(&base);
                Some(Self {
                    backend,
                    url: db.url.clone(),
                    cleanup: DbCleanup::Redis(db),
                })
            }
            Backend::RedisCluster => {
                let url = service_url(
                    "TEST_REDIS_CLUSTER_URL",
                    "TEXTDROP_REQUIRE_REDIS_CLUSTER",
                    "Redis Cluster",
                )?;
                let hold = ClusterHold::take(&url);
                Some(Self {
                    backend,
                    url,
                    cleanup: DbCleanup::Cluster(hold),
                })
            }
            Backend::Postgres => {
                let admin_url = service_url(
                    "TEST_DATABASE_URL",
                    "TEXTDROP_REQUIRE_POSTGRES",
                    "PostgreSQL",
                )?;
                let (name, url) = create_database(&admin_url, "TEST_DATABASE_URL", '"');
                Some(Self {
                    backend,
                    url,
                    cleanup: DbCleanup::Postgres { admin_url, name },
                })
            }
            Backend::Mysql => {
                let admin_url = service_url("TEST_MYSQL_URL", "TEXTDROP_REQUIRE_MYSQL", "MySQL")?;
                let (name, url) = create_database(&admin_url, "TEST_MYSQL_URL", '`');
                Some(Self {
                    backend,
                    url,
                    cleanup: DbCleanup::Mysql { admin_url, name },
                })
            }
        }
    }

    /// An existing database of `backend` at `url`, left as it is afterwards.
    pub fn existing_of(backend: Backend, url: String) -> Self {
        Self {
            backend,
            url,
            cleanup: DbCleanup::Nothing,
        }
    }

    /// An existing PostgreSQL database at `url`, left as it is afterwards.
    pub fn existing(url: String) -> Self {
        Self {
            backend: Backend::Postgres,
            url,
            cleanup: DbCleanup::Nothing,
        }
    }

    pub fn database_url(&self) -> DatabaseUrl {
        DatabaseUrl::parse(&self.url).expect("test database URL parses")
    }

    /// One SQL connection outside any pool.
    pub fn connect(&self) -> DbConnection {
        DbConnectionManager::new(self.database_url())
            .establish()
            .expect("connect to the test database")
    }

    /// The SQL database migrated, and a pool on it (for tests of the store or the sweep alone).
    pub fn pool(&self) -> DbPool {
        db::run_migrations(&mut self.connect()).expect("migrations run");
        db::build_pool(&self.database_url(), 4)
    }

    /// Every row's expiry, by row id (SQL only).
    pub fn expiries(&self) -> Vec<(String, NaiveDateTime)> {
        sessions::table
            .select((sessions::id, sessions::expires_at))
            .order(sessions::id)
            .load(&mut self.connect())
            .expect("read sessions")
    }

    /// Stored sessions: rows on SQL, keys on Redis.
    pub fn row_count(&self) -> usize {
        match self.backend {
            Backend::Redis | Backend::RedisCluster => self.redis_keys().len(),
            _ => self.expiries().len(),
        }
    }

    /// Runs a command that names a key on this Redis database or cluster.
    pub fn redis<T: redis::FromRedisValue>(&self, command: &mut redis::Cmd) -> T {
        match self.backend {
            Backend::RedisCluster => cluster_query(&self.url, command),
            _ => redis_query(&self.url, command),
        }
    }

    /// The session store on this database, as the app builds it (no absolute lifetime).
    pub async fn store(&self, clock: Clock) -> AnyStore {
        let max = MaxLifetime::default();
        match self.backend {
            Backend::Sqlite | Backend::Postgres | Backend::Mysql => {
                AnyStore::Sql(DieselSessionStore::new(self.pool(), clock, max))
            }
            Backend::Redis => {
                let client = redis::Client::open(self.url.as_str()).expect("Redis URL");
                let conn = redis::aio::ConnectionManager::new(client)
                    .await
                    .expect("connect to Redis");
                AnyStore::Redis(RedisStore::new(conn, clock, max))
            }
            Backend::RedisCluster => {
                let conn = redis::cluster::ClusterClient::new(cluster_nodes(&self.url))
                    .expect("cluster URL")
                    .get_async_connection()
                    .await
                    .expect("connect to the Redis Cluster");
                AnyStore::RedisCluster(RedisStore::on_cluster(conn, clock, max))
            }
        }
    }

    /// `INFO memory` of every master of the cluster.
    pub fn redis_masters_info_memory(&self) -> Vec<String> {
        on_every_master(&self.url, redis::cmd("INFO").arg("memory"))
            .iter()
            .map(|info| redis::from_redis_value::<String>(info).expect("INFO text"))
            .collect()
    }

    /// The ids (hashes of the keys) of the stored sessions.
    pub fn stored_ids(&self) -> Vec<String> {
        match self.backend {
            Backend::Redis | Backend::RedisCluster => self
                .redis_keys()
                .into_iter()
                .map(|key| key.trim_start_matches("textdrop:session:").to_owned())
                .collect(),
            _ => self.expiries().into_iter().map(|(id, _)| id).collect(),
        }
    }

    /// Every key of this Redis database, or of every master of the cluster.
    pub fn redis_keys(&self) -> Vec<String> {
        match self.backend {
            Backend::RedisCluster => cluster_keys(&self.url),
            _ => self.redis(redis::cmd("KEYS").arg("*")),
        }
    }

    /// What each stored session takes at rest: (the file's bytes, the state's bytes), as the
    /// storage itself reports them.
    pub fn stored_sizes(&self) -> Vec<(u64, u64)> {
        match self.backend {
            Backend::Redis | Backend::RedisCluster => {
                let keys = self.redis_keys();
                keys.iter()
                    .map(|key| {
                        let len = |field: &str| -> u64 {
                            self.redis(redis::cmd("HSTRLEN").arg(key).arg(field))
                        };
                        (len("file"), len("state"))
                    })
                    .collect()
            }
            Backend::Postgres => sizes(&mut self.connect(), "BIGINT"),
            Backend::Mysql => sizes(&mut self.connect(), "SIGNED"),
            Backend::Sqlite => sizes(&mut self.connect(), "BLOB"),
        }
    }

    /// How many seconds from now each stored session expires: rows' expiry on SQL, keys' TTL
    /// on Redis.
    pub fn expiries_from_now(&self) -> Vec<i64> {
        match self.backend {
            Backend::Redis | Backend::RedisCluster => {
                let keys = self.redis_keys();
                keys.iter()
                    .map(|key| self.redis(redis::cmd("TTL").arg(key)))
                    .collect()
            }
            _ => {
                let now = Utc::now().naive_utc();
                self.expiries()
                    .into_iter()
                    .map(|(_, at)| (at - now).num_seconds())
                    .collect()
            }
        }
    }

    /// Every stored state, as text (SQL only).
    pub fn states(&self) -> Vec<String> {
        sessions::table
            .select(sessions::state)
            .load(&mut self.connect())
            .expect("read sessions")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            DbCleanup::Postgres { admin_url, name } => {
                if let Ok(mut admin) = PgConnection::establish(admin_url) {
                    let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = diesel::sql_query(drop).execute(&mut admin);
                }
            }
            DbCleanup::Mysql { admin_url, name } => {
                if let Ok(mut admin) = diesel::MysqlConnection::establish(admin_url) {
                    let drop = format!("DROP DATABASE IF EXISTS `{name}`");
                    let _ = diesel::sql_query(drop).execute(&mut admin);
                }
            }
            _ => {}
        }
    }
}

/// Redis databases 1 to 15 of TEST_REDIS_URL's server, handed out one per test and flushed
/// before and after, so tests can count keys without seeing each other's.
struct RedisDb {
    index: u8,
    url: String,
}

static FREE_REDIS_DBS: LazyLock<Mutex<Vec<u8>>> = LazyLock::new(|| Mutex::new((1..=15).collect()));
static REDIS_DB_RETURNED: Condvar = Condvar::new();

impl RedisDb {
    fn take(base: &str) -> Self {
        let mut free = FREE_REDIS_DBS.lock().expect("lock");
        while free.is_empty() {
            free = REDIS_DB_RETURNED.wait(free).expect("lock");
        }
        let index = free.pop().expect("a free database");
        drop(free);
        let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
        let db = Self {
            index,
            url: format!("{server}/{index}"),
        };
        db.query::<()>(&mut redis::cmd("FLUSHDB"));
        db
    }

    fn query<T: redis::FromRedisValue>(&self, command: &mut redis::Cmd) -> T {
        redis_query(&self.url, command)
    }
}

impl Drop for RedisDb {
    fn drop(&mut self) {
        self.query::<()>(&mut redis::cmd("FLUSHDB"));
        FREE_REDIS_DBS.lock().expect("lock").push(self.index);
        REDIS_DB_RETURNED.notify_one();
    }
}

/// Runs `command` on the Redis database at `url`.
fn redis_query<T: redis::FromRedisValue>(url: &str, command: &mut redis::Cmd) -> T {
    let client = redis::Client::open(url).expect("Redis URL");
    let mut conn = client.get_connection().expect("connect to Redis");
    command.query(&mut conn).expect("Redis command")
}

/// The nodes of a `redis+cluster://` URL as `redis://` URLs.
fn cluster_nodes(url: &str) -> Vec<String> {
    DatabaseUrl::parse(url)
        .expect("a cluster URL")
        .cluster_nodes()
}

fn cluster_connection(url: &str) -> redis::cluster::ClusterConnection {
    redis::cluster::ClusterClient::new(cluster_nodes(url))
        .and_then(|client| client.get_connection())
        .expect("connect to the Redis Cluster")
}

/// Runs `command` (which names a key) on the cluster at `url`.
fn cluster_query<T: redis::FromRedisValue>(url: &str, command: &mut redis::Cmd) -> T {
    command
        .query(&mut cluster_connection(url))
        .expect("Redis Cluster command")
}

/// Runs a keyless `command` on every master of the cluster; their answers.
fn on_every_master(url: &str, command: &redis::Cmd) -> Vec<redis::Value> {
    use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
    let all = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
    match cluster_connection(url)
        .route_command(command, all)
        .expect("a command on every master")
    {
        redis::Value::Map(pairs) => pairs.into_iter().map(|(_, v)| v).collect(),
        redis::Value::Array(values) => values,
        other => vec![other],
    }
}

/// Every key on every master of the cluster.
fn cluster_keys(url: &str) -> Vec<String> {
    on_every_master(url, redis::cmd("KEYS").arg("*"))
        .iter()
        .flat_map(|keys| redis::from_redis_value::<Vec<String>>(keys).expect("keys"))
        .collect()
}

/// The cluster at TEST_REDIS_CLUSTER_URL for one test at a time, flushed before and after.
pub struct ClusterHold {
    url: String,
    _turn: std::sync::MutexGuard<'static, ()>,
}

static CLUSTER_TURN: Mutex<()> = Mutex::new(());

impl ClusterHold {
    fn take(url: &str) -> Self {
        let turn = CLUSTER_TURN.lock().unwrap_or_else(|e| e.into_inner());
        on_every_master(url, &redis::cmd("FLUSHALL"));
        Self {
            url: url.to_owned(),
            _turn: turn,
        }
    }
}

impl Drop for ClusterHold {
    fn drop(&mut self) {
        on_every_master(&self.url, &redis::cmd("FLUSHALL"));
    }
}

#[derive(QueryableByName)]
struct Sizes {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    file: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    state: i64,
}

/// The bytes of each row's file and state: `octet_length(x)` cast to a 64-bit integer
/// (`BIGINT` on PostgreSQL, `SIGNED` on MySQL), `length(CAST(x AS BLOB))` on SQLite (`length`
/// of text counts characters there).
fn sizes(conn: &mut DbConnection, integer: &str) -> Vec<(u64, u64)> {
    let of = |column: &str| match integer {
        "BLOB" => format!("COALESCE(length(CAST({column} AS BLOB)), 0)"),
        _ => format!("CAST(COALESCE(octet_length({column}), 0) AS {integer})"),
    };
    diesel::sql_query(format!(
        "SELECT {} AS file, {} AS state FROM sessions",
        of("file"),
        of("state")
    ))
    .load::<Sizes>(conn)
    .expect("sizes")
    .into_iter()
    .map(|s| (s.file as u64, s.state as u64))
    .collect()
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}

/// A clock that runs with the system's but can be moved forward.
#[derive(Clone, Default)]
pub struct TestClock {
    offset_ms: Arc<AtomicI64>,
}

impl TestClock {
    pub fn clock(&self) -> Clock {
        let offset = Arc::clone(&self.offset_ms);
        Clock::from_fn(move || {
            Utc::now().naive_utc() + chrono::Duration::milliseconds(offset.load(Ordering::SeqCst))
        })
    }

    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}

/// The environment a test app runs with: port 0, a fixed secret, cleanup off and no upload
/// rate limit (every test client is 127.0.0.1) unless a test turns them on, then the test's own
/// `vars` on top.
fn test_environment(db: &TestDb, vars: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), db.url.clone()),
        ("PORT".into(), "0".into()),
        ("SECRET_KEY".into(), TEST_SECRET.into()),
        ("CLEANUP_INTERVAL_SECS".into(), "0".into()),
        ("UPLOADS_PER_MINUTE".into(), "0".into()),
    ];
    env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

/// Settings for a test app on `db` (see [`test_environment`]).
pub fn test_settings(db: &TestDb, vars: &[(&str, &str)]) -> Settings {
    let env = test_environment(db, vars);
    Settings::from_lookup(move |name| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    })
    .expect("test settings are valid")
}

/// The real application, serving on a loopback port.
pub struct TestApp {
    pub address: String,
    pub port: u16,
    /// The metrics listener's port, when the test set METRICS_ADDR.
    pub metrics_port: Option<u16>,
    pub client: reqwest::Client,
    pub clock: TestClock,
    pub metrics: textdrop::metrics::Metrics,
    handle: ServerHandle,
}

/// A client that keeps cookies and does not follow redirects.
pub fn cookie_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        // The server drops a keep-alive connection idle for 5 s (actix-web's default); a
        // request sent on it at that moment fails. Tests that wait that long (the slowloris
        // one) must not reuse such a connection.
        .pool_idle_timeout(Duration::from_secs(2))
        .build()
        .expect("client")
}

/// Starts the app on `db` with the given environment overrides.
pub async fn spawn_app(db: &TestDb, vars: &[(&str, &str)]) -> TestApp {
    spawn_app_with(db, vars, TestClock::default(), cookie_client()).await
}

/// Starts the app with a given clock and client (to share them across a restart).
pub async fn spawn_app_with(
    db: &TestDb,
    vars: &[(&str, &str)],
    clock: TestClock,
    client: reqwest::Client,
) -> TestApp {
    let settings = test_settings(db, vars);
    let app = Application::build_with_clock(settings, clock.clock())
        .await
        .expect("the application starts");
    let port = app.port();
    let metrics_port = app.metrics_port();
    let handle = app.handle();
    let metrics = app.metrics().clone();
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        metrics_port,
        client,
        clock,
        metrics,
        handle,
    }
}

impl TestApp {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("GET")
    }

    pub async fn get_text(&self, path: &str) -> String {
        self.get(path).await.text().await.expect("body")
    }

    /// POSTs `data` as the `textfile` part named `file_name`.
    pub async fn upload(&self, file_name: &str, data: impl Into<Vec<u8>>) -> reqwest::Response {
        upload_with(&self.client, &self.address, file_name, data)
            .await
            .expect("POST")
    }

    pub async fn post_form(&self, form: Form) -> reqwest::Response {
        self.client
            .post(format!("{}/", self.address))
            .multipart(form)
            .send()
            .await
            .expect("POST")
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}

/// The body of the answer to `request`.
async fn body_of(request: reqwest::RequestBuilder) -> String {
    let response = request.send().await.expect("the request is answered");
    response.text().await.expect("body")
}

/// The body of GET `url` with `client`.
pub async fn page_at(client: &reqwest::Client, url: &str) -> String {
    body_of(client.get(url)).await
}

/// The body of GET `url` sent by a client with no cookie jar, carrying only `cookie` (a
/// `name=value` pair): a stolen or replayed cookie.
pub async fn page_with_cookie(url: &str, cookie: &str) -> String {
    body_of(
        reqwest::Client::new()
            .get(url)
            .header(reqwest::header::COOKIE, cookie),
    )
    .await
}

/// POSTs `data` as the `textfile` part named `file_name` to the server at `address`.
pub async fn upload_with(
    client: &reqwest::Client,
    address: &str,
    file_name: &str,
    data: impl Into<Vec<u8>>,
) -> reqwest::Result<reqwest::Response> {
    let part = Part::bytes(data.into())
        .file_name(file_name.to_owned())
        .mime_str("text/plain")
        .expect("mime");
    client
        .post(format!("{address}/"))
        .multipart(Form::new().part("textfile", part))
        .send()
        .await
}

/// The session cookie `response` sets, if any, parsed.
pub fn session_cookie(response: &reqwest::Response) -> Option<Cookie<'static>> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| Cookie::parse(v.to_owned()).ok())
        .find(|c| c.name() == SESSION_COOKIE || c.name() == SECURE_SESSION_COOKIE)
}

/// The `name=value` pair of the session cookie `response` sets, for a `Cookie` header.
pub fn session_cookie_pair(response: &reqwest::Response) -> Option<String> {
    session_cookie(response).map(|c| format!("{}={}", c.name(), c.value()))
}

/// Polls `check` every 50 ms until it holds or `timeout` passes.
pub async fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The boundary of the hand-made multipart bodies below.
pub const BOUNDARY: &str = "XyZ";
/// The `Content-Type` of a hand-made multipart body.
pub const MULTIPART: &str = "multipart/form-data; boundary=XyZ";
/// What closes a hand-made multipart body after the file's bytes.
pub const MULTIPART_TAIL: &str = "\r\n--XyZ--\r\n";

/// The start of a multipart body with one `textfile` part named `file_name`, up to its bytes.
pub fn multipart_head(file_name: &str) -> String {
    format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"textfile\"; \
         filename=\"{file_name}\"\r\n\r\n"
    )
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
    pub fn start(db: &TestDb, extra: &[(&str, &str)]) -> Self {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("log file");
        let mut command = textdrop(&["serve"]);
        command
            .env("DATABASE_URL", &db.url)
            .env("PORT", port.to_string())
            .env("SECRET_KEY", TEST_SECRET)
            .env("RUST_LOG", "warn")
            .env("UPLOADS_PER_MINUTE", "0")
            .stdout(Stdio::null())
            .stderr(log.reopen().expect("log file"));
        for (k, v) in extra {
            command.env(k, v);
        }
        let child = command.spawn().expect("start textdrop");
        let server = Self { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the server did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    pub fn address(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
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

/// A multipart body with one `textfile` part holding `lines`, sent piece by piece (head, each
/// line, tail) with `pause` before each piece.
pub fn trickled_body(file_name: &str, lines: &[&str], pause: Duration) -> reqwest::Body {
    use futures_util::StreamExt;
    let pieces: Vec<Result<String, std::io::Error>> = std::iter::once(multipart_head(file_name))
        .chain(lines.iter().map(|l| l.to_string()))
        .chain(std::iter::once(MULTIPART_TAIL.to_owned()))
        .map(Ok)
        .collect();
    reqwest::Body::wrap_stream(
        futures_util::stream::iter(pieces).then(move |piece| async move {
            actix_web::rt::time::sleep(pause).await;
            piece
        }),
    )
}

/// Inserts `count` rows named `{prefix}-{n}` whose expiry is `offset_secs` from now, written as
/// the store writes them, in chunks (SQL only; migrates first).
pub fn insert_rows(db: &TestDb, prefix: &str, count: usize, offset_secs: i64) {
    use textdrop::session::queries::NewSession;
    let now = Utc::now().naive_utc();
    let ids: Vec<String> = (0..count).map(|n| format!("{prefix}-{n}")).collect();
    let mut conn = db.connect();
    db::run_migrations(&mut conn).expect("migrate");
    for chunk in ids.chunks(5_000) {
        let rows: Vec<NewSession<'_>> = chunk
            .iter()
            .map(|id| NewSession {
                id,
                state: "{}",
                expires_at: now + chrono::Duration::seconds(offset_secs),
                created_at: now,
                file: None,
                file_bytes: 0,
            })
            .collect();
        let insert = diesel::insert_into(sessions::table).values(&rows);
        // Multi-row inserts do not compile through the MultiConnection: use the backend's own.
        match &mut conn {
            DbConnection::Postgres(pg) => insert.execute(pg),
            DbConnection::Sqlite(sqlite) => insert.execute(sqlite),
            DbConnection::Mysql(mysql) => insert.execute(mysql),
        }
        .expect("insert rows");
    }
}

/// (live, expired) rows now (SQL only).
pub fn live_and_expired(db: &TestDb) -> (i64, i64) {
    use textdrop::session::queries;
    let now = Clock::system().now();
    let mut conn = db.connect();
    (
        queries::count_live(&mut conn, now).expect("live"),
        queries::count_expired(&mut conn, now).expect("expired"),
    )
}

/// The value of the sample `name` (with its labels, e.g. `x_total{operation="load"}`) in
/// Prometheus text, or `None` when it is not there.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
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
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, url }
    }

    /// A [`TestDb`] on this server's database 0.
    pub fn db(&self) -> TestDb {
        TestDb {
            backend: Backend::Redis,
            url: self.url.clone(),
            cleanup: DbCleanup::Nothing,
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
