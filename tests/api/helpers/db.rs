//! A database of its own for each test: a SQLite file in a temp dir, a new PostgreSQL or MySQL
//! database on the server the harness found and dropped afterwards, a Redis database number of
//! its own on the run's Redis, or the run's Redis Cluster held by one test at a time; and what
//! tests read and write there directly.

use std::sync::{Condvar, LazyLock, Mutex};

use actix_session_stores::test_support::sessions;
use actix_session_stores::{Clock, DatabaseUrl, Maintenance, Storage, Store};
use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::{harness, test_settings, Need, TestConn};
use crate::on_conn;

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

/// Whether a missing service must fail the run (CI sets these) rather than skip.
pub fn required(variable: &str) -> bool {
    std::env::var(variable).is_ok_and(|v| v == "1" || v == "true")
}

impl Backend {
    /// What a test on this backend needs besides SQLite.
    pub const fn needs(self) -> &'static [Need] {
        match self {
            Self::Sqlite => &[],
            Self::Postgres => &[Need::Postgres],
            Self::Mysql => &[Need::Mysql],
            Self::Redis => &[Need::Redis],
            Self::RedisCluster => &[Need::RedisCluster],
        }
    }
}

/// Creates a uniquely named database on the server at `admin_url` (named by the variable
/// `variable`), its name quoted with `quote` as that server's SQL wants; returns its name and
/// URL.
fn create_database(admin_url: &str, variable: &str, quote: char) -> (String, String) {
    let name = format!("textdrop_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin =
        TestConn::open(admin_url).unwrap_or_else(|e| panic!("cannot connect to {variable}: {e}"));
    admin
        .execute(&format!("CREATE DATABASE {quote}{name}{quote}"))
        .expect("create test database");
    (name.clone(), with_database(admin_url, &name))
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
    /// A database created on a server, dropped with this statement.
    Dropped {
        admin_url: String,
        drop: String,
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
    /// A fresh database of `backend` (on the server the harness found for it).
    pub fn new(backend: Backend) -> Self {
        let (url, cleanup) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("textdrop.db").display());
                (url, DbCleanup::Sqlite(dir))
            }
            Backend::Redis => {
                let db = RedisDb::take(&harness::service(Need::Redis));
                (db.url.clone(), DbCleanup::Redis(db))
            }
            Backend::RedisCluster => {
                let url = harness::service(Need::RedisCluster);
                let hold = ClusterHold::take(&url);
                (url, DbCleanup::Cluster(hold))
            }
            Backend::Postgres => {
                let admin_url = harness::service(Need::Postgres);
                let (name, url) = create_database(&admin_url, "TEST_DATABASE_URL", '"');
                let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                (url, DbCleanup::Dropped { admin_url, drop })
            }
            Backend::Mysql => {
                let admin_url = harness::service(Need::Mysql);
                let (name, url) = create_database(&admin_url, "TEST_MYSQL_URL", '`');
                let drop = format!("DROP DATABASE IF EXISTS `{name}`");
                (url, DbCleanup::Dropped { admin_url, drop })
            }
        };
        Self {
            backend,
            url,
            cleanup,
        }
    }

    /// An existing database of `backend` at `url`, left as it is afterwards.
    pub fn existing(backend: Backend, url: String) -> Self {
        Self {
            backend,
            url,
            cleanup: DbCleanup::Nothing,
        }
    }

    /// One blocking SQL connection, outside the app.
    pub fn connect(&self) -> TestConn {
        TestConn::open(&self.url).expect("connect to the test database")
    }

    /// The storage on this database as the app connects to it (a SQL database migrated), with
    /// the test environment and `vars` on top.
    pub async fn storage(&self, clock: Clock, vars: &[(&str, &str)]) -> Storage {
        textdrop::storage::connect(&test_settings(self, vars), 2)
            .await
            .expect("the storage connects")
            .with_clock(clock)
    }

    /// The session store on this database as the app builds it for a worker.
    pub async fn store(&self, clock: Clock) -> Store {
        self.storage(clock, &[]).await.store()
    }

    /// The sweeper on this SQL database (migrated), as the cleanup task drives it.
    pub async fn sweeper(&self, vars: &[(&str, &str)]) -> Maintenance {
        let storage = self.storage(Clock::system(), vars).await;
        storage.maintenance().expect("a SQL storage has a sweeper")
    }

    /// Every row's expiry, by row id (SQL only).
    pub fn expiries(&self) -> Vec<(String, NaiveDateTime)> {
        let query = sessions::table
            .select((sessions::id, sessions::expires_at))
            .order(sessions::id);
        on_conn!(&mut self.connect(), c => query.load(c)).expect("read sessions")
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
        let of = |column: &str| match self.backend {
            // `length` of text counts characters on SQLite.
            Backend::Sqlite => format!("COALESCE(length(CAST({column} AS BLOB)), 0)"),
            // MySQL casts to SIGNED (a BIGINT), not BIGINT.
            Backend::Mysql => format!("CAST(COALESCE(octet_length({column}), 0) AS SIGNED)"),
            _ => format!("CAST(COALESCE(octet_length({column}), 0) AS BIGINT)"),
        };
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
            _ => {
                let query = diesel::sql_query(format!(
                    "SELECT {} AS file, {} AS state FROM sessions",
                    of("file"),
                    of("state")
                ));
                on_conn!(&mut self.connect(), c => query.load::<Sizes>(c))
                    .expect("sizes")
                    .into_iter()
                    .map(|s| (s.file as u64, s.state as u64))
                    .collect()
            }
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

    /// Every stored file (SQL only).
    pub fn files(&self) -> Vec<Option<String>> {
        let query = sessions::table.select(sessions::file);
        on_conn!(&mut self.connect(), c => query.load(c)).expect("read sessions")
    }

    /// Inserts `count` rows named `{prefix}-{n}` whose expiry is `offset_secs` from now, in
    /// chunks (SQL only; migrates first).
    pub fn insert_rows(&self, prefix: &str, count: usize, offset_secs: i64) {
        let now = Utc::now().naive_utc();
        let expires_at = now + chrono::Duration::seconds(offset_secs);
        self.insert_sessions((0..count).map(|n| NewRow {
            id: format!("{prefix}-{n}"),
            expires_at,
            created_at: now,
            file: None,
        }));
    }

    /// Inserts `rows` (SQL only; migrates first).
    pub fn insert_sessions(&self, rows: impl IntoIterator<Item = NewRow>) {
        let mut conn = self.connect();
        conn.migrate();
        let rows: Vec<NewRow> = rows.into_iter().collect();
        for chunk in rows.chunks(2_000) {
            let values: Vec<_> = chunk
                .iter()
                .map(|row| {
                    (
                        sessions::id.eq(&row.id),
                        sessions::state.eq("{}"),
                        sessions::expires_at.eq(row.expires_at),
                        sessions::created_at.eq(row.created_at),
                        sessions::file.eq(row.file.as_deref()),
                        sessions::file_bytes.eq(row.file.as_ref().map_or(0, |f| f.len() as i64)),
                    )
                })
                .collect();
            let insert = diesel::insert_into(sessions::table).values(&values);
            on_conn!(&mut conn, c => insert.execute(c)).expect("insert rows");
        }
    }

    /// (live, expired) rows now (SQL only).
    pub fn live_and_expired(&self) -> (i64, i64) {
        let now = Clock::system().now();
        let mut conn = self.connect();
        let live = sessions::table.filter(sessions::expires_at.gt(now)).count();
        let expired = sessions::table.filter(sessions::expires_at.le(now)).count();
        (
            on_conn!(&mut conn, c => live.get_result(c)).expect("live"),
            on_conn!(&mut conn, c => expired.get_result(c)).expect("expired"),
        )
    }
}

/// A row as a test writes it directly.
pub struct NewRow {
    pub id: String,
    pub expires_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub file: Option<String>,
}

#[derive(QueryableByName)]
struct Sizes {
    #[diesel(sql_type = BigInt)]
    file: i64,
    #[diesel(sql_type = BigInt)]
    state: i64,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let DbCleanup::Dropped { admin_url, drop } = &self.cleanup {
            if let Ok(mut admin) = TestConn::open(admin_url) {
                let _ = admin.execute(drop);
            }
        }
    }
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

/// Redis databases 1 to 15 of the run's Redis server, handed out one per test and flushed
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
        redis_query::<()>(&db.url, &mut redis::cmd("FLUSHDB"));
        db
    }
}

impl Drop for RedisDb {
    fn drop(&mut self) {
        redis_query::<()>(&self.url, &mut redis::cmd("FLUSHDB"));
        FREE_REDIS_DBS.lock().expect("lock").push(self.index);
        REDIS_DB_RETURNED.notify_one();
    }
}

/// Runs `command` on the Redis database at `url`.
pub fn redis_query<T: redis::FromRedisValue>(url: &str, command: &mut redis::Cmd) -> T {
    let client = redis::Client::open(url).expect("Redis URL");
    let mut conn = client.get_connection().expect("connect to Redis");
    command.query(&mut conn).expect("Redis command")
}

fn cluster_connection(url: &str) -> redis::cluster::ClusterConnection {
    let nodes = DatabaseUrl::parse(url)
        .expect("a cluster URL")
        .cluster_nodes();
    redis::cluster::ClusterClient::new(nodes)
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

/// The run's cluster for one test at a time, flushed before and after.
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

/// A lock a test holds as another instance would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// The sweeper's election (PostgreSQL: inside an open transaction, as a sweeper holds it).
    Sweeper,
    /// The startup migrations' lock.
    Migrations,
}

/// A connection holding a lock; [`LockHolder::release`] gives it back on that same connection
/// (a server frees a closed connection's locks only once it notices the close).
pub struct LockHolder {
    conn: TestConn,
    lock: Held,
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Integer>)]
    locked: Option<i32>,
}

/// MySQL: the full name of a named lock in the connection's database, as textdrop forms it.
fn mysql_lock(lock: Held) -> String {
    use textdrop::database::{
        MYSQL_MIGRATION_LOCK as MIGRATION_LOCK, MYSQL_SWEEPER_LOCK as SWEEPER_LOCK,
    };
    let name = match lock {
        Held::Sweeper => SWEEPER_LOCK,
        Held::Migrations => MIGRATION_LOCK,
    };
    format!("LEFT(CONCAT('{name}', ':', DATABASE()), 64)")
}

impl TestDb {
    /// Takes `lock` on a connection of its own (PostgreSQL or MySQL), as another instance
    /// would hold it.
    pub fn hold(&self, lock: Held) -> LockHolder {
        LockHolder::take(&self.url, lock)
    }

    /// [`hold`](Self::hold), waiting for the lock on a thread of its own: while a sweep of this
    /// test's own runs on the test's thread and holds the lock, a wait there would never end.
    pub async fn hold_when_free(&self, lock: Held) -> LockHolder {
        let url = self.url.clone();
        actix_web::rt::task::spawn_blocking(move || LockHolder::take(&url, lock))
            .await
            .expect("the lock was taken")
    }
}

impl LockHolder {
    /// Takes `lock` on a new connection to the database at `url`. Blocking.
    fn take(url: &str, lock: Held) -> Self {
        use textdrop::database::{
            POSTGRES_MIGRATION_LOCK as MIGRATION_LOCK_KEY,
            POSTGRES_SWEEPER_LOCK as SWEEPER_LOCK_KEY,
        };
        let mut conn = TestConn::open(url).expect("connect to the test database");
        match (&mut conn, lock) {
            (TestConn::Postgres(_), Held::Sweeper) => conn
                .batch(&format!(
                    "BEGIN; SELECT pg_advisory_xact_lock({SWEEPER_LOCK_KEY})"
                ))
                .expect("hold the sweeper lock"),
            (TestConn::Postgres(_), Held::Migrations) => conn
                .batch(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
                .expect("hold the migration lock"),
            (TestConn::Mysql(mysql), lock) => {
                let query = diesel::sql_query(format!(
                    "SELECT GET_LOCK({}, 0) AS locked",
                    mysql_lock(lock)
                ));
                let Locked { locked } = query.get_result(mysql).expect("GET_LOCK");
                assert_eq!(locked, Some(1), "the lock was free");
            }
            (TestConn::Sqlite(_), _) => unreachable!("SQLite has no lock to hold"),
        }
        LockHolder { conn, lock }
    }

    /// Gives the lock back.
    pub fn release(mut self) {
        use textdrop::database::POSTGRES_MIGRATION_LOCK as MIGRATION_LOCK_KEY;
        let sql = match (&self.conn, self.lock) {
            (TestConn::Postgres(_), Held::Sweeper) => "ROLLBACK".to_owned(),
            (TestConn::Postgres(_), Held::Migrations) => {
                format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})")
            }
            (_, lock) => format!("DO RELEASE_LOCK({})", mysql_lock(lock)),
        };
        self.conn.batch(&sql).expect("release the lock");
    }
}

/// Sealed records: what a copy of the storage holds, and records rewritten as the binary before
/// sealing wrote them.
impl TestDb {
    /// A plain copy of the storage, as an operator (or a thief) takes one: the SQLite file and
    /// its WAL, `pg_dump` and `mariadb-dump` of the table, `redis-cli --rdb`, and on a cluster
    /// each key's `DUMP`. Redis compresses nothing for it (rdbcompression off), so text stored
    /// as it is would show.
    pub fn dump(&self) -> Vec<u8> {
        let run = |command: &mut std::process::Command| {
            let output = command.output().expect("run the dump tool");
            assert!(output.status.success(), "{output:?}");
            output.stdout
        };
        match self.backend {
            Backend::Sqlite => {
                let path = self.url.trim_start_matches("sqlite://");
                let mut bytes = std::fs::read(path).expect("the SQLite file");
                bytes.extend(std::fs::read(format!("{path}-wal")).unwrap_or_default());
                bytes
            }
            Backend::Postgres => run(std::process::Command::new("pg_dump")
                .arg("--table=sessions")
                .arg(format!("--dbname={}", self.url))),
            Backend::Mysql => {
                let name = self.url.rsplit('/').next().expect("a database name");
                let name = name.split('?').next().unwrap_or(name);
                run(std::process::Command::new("mariadb-dump").args([
                    "-h",
                    "127.0.0.1",
                    "-P",
                    "3306",
                    "-u",
                    "root",
                    name,
                    "sessions",
                ]))
            }
            Backend::Redis => {
                let _: () = self.redis(
                    redis::cmd("CONFIG")
                        .arg("SET")
                        .arg("rdbcompression")
                        .arg("no"),
                );
                let file = tempfile::NamedTempFile::new().expect("a file");
                run(std::process::Command::new("redis-cli")
                    .args(["-u", &self.url, "--rdb"])
                    .arg(file.path()));
                std::fs::read(file.path()).expect("the RDB file")
            }
            Backend::RedisCluster => {
                on_every_master(
                    &self.url,
                    redis::cmd("CONFIG")
                        .arg("SET")
                        .arg("rdbcompression")
                        .arg("no"),
                );
                let mut bytes = Vec::new();
                for key in self.redis_keys() {
                    let dumped: Vec<u8> = self.redis(redis::cmd("DUMP").arg(&key));
                    bytes.extend(dumped);
                }
                bytes
            }
        }
    }

    /// The stored state and file of the record `id`, as they are stored.
    pub fn stored_record(&self, id: &str) -> (String, Option<String>) {
        match self.backend {
            Backend::Redis | Backend::RedisCluster => {
                let key = format!("textdrop:session:{id}");
                let state: String = self.redis(redis::cmd("HGET").arg(&key).arg("state"));
                let file: Option<String> = self.redis(redis::cmd("HGET").arg(&key).arg("file"));
                (state, file)
            }
            _ => {
                let query = sessions::table
                    .filter(sessions::id.eq(id))
                    .select((sessions::state, sessions::file));
                on_conn!(&mut self.connect(), c => query.first(c)).expect("the record")
            }
        }
    }

    /// Overwrites the stored state and file of the record `id` with `state` and `file`.
    pub fn set_stored_record(&self, id: &str, state: &str, file: Option<&str>) {
        match self.backend {
            Backend::Redis | Backend::RedisCluster => {
                let key = format!("textdrop:session:{id}");
                let _: () = self.redis(redis::cmd("HSET").arg(&key).arg("state").arg(state));
                if let Some(file) = file {
                    let _: () = self.redis(redis::cmd("HSET").arg(&key).arg("file").arg(file));
                }
            }
            _ => {
                let update = diesel::update(sessions::table.filter(sessions::id.eq(id))).set((
                    sessions::state.eq(state),
                    sessions::file.eq(file),
                    sessions::file_bytes.eq(file.map_or(0, |f| f.len() as i64)),
                ));
                let changed = on_conn!(&mut self.connect(), c => update.execute(c))
                    .expect("update the record");
                assert_eq!(changed, 1, "the record {id}");
            }
        }
    }
}
