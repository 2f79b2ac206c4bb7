//! Test plumbing: a fresh database per test (a SQLite file in a temp dir, or a new PostgreSQL
//! database made from TEST_DATABASE_URL and dropped afterwards), a clock tests can move forward,
//! and the real application on port 0 with a cookie-keeping HTTP client.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::{Connection, PgConnection};
use reqwest::multipart::{Form, Part};
use textdrop::clock::Clock;
use textdrop::config::Settings;
use textdrop::db::{self, DatabaseUrl, DbConnection, DbConnectionManager, DbPool, PoolOptions};
use textdrop::schema::sessions;
use textdrop::startup::Application;

/// Key material every test app shares, so a restarted app can read the same cookies.
pub const TEST_SECRET: &str = "test-secret-key-material-that-is-long-enough-0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    /// actix-session's RedisSessionStore, at TEST_REDIS_URL.
    Redis,
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

/// Generates one `#[actix_web::test]` per backend for each listed `async fn(Backend)`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            )*
        }
    };
}

/// A database of its own for one test, removed when dropped.
pub struct TestDb {
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
}

/// Whether a missing service must fail the run (CI sets these) rather than skip.
pub fn required(variable: &str) -> bool {
    std::env::var(variable).is_ok_and(|v| v == "1" || v == "true")
}

impl TestDb {
    /// A fresh database, or `None` (with the reason printed) when PostgreSQL is not configured.
    pub fn new(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("textdrop.db").display());
                Some(Self {
                    url,
                    cleanup: DbCleanup::Sqlite(dir),
                })
            }
            Backend::Redis => {
                let Some(url) = std::env::var("TEST_REDIS_URL")
                    .ok()
                    .filter(|u| !u.is_empty())
                else {
                    assert!(
                        !required("TEXTDROP_REQUIRE_REDIS"),
                        "TEST_REDIS_URL is not set but TEXTDROP_REQUIRE_REDIS is: \
                         the Redis tests must run"
                    );
                    crate::helpers::skip_notice!(
                        "skipping a Redis test: TEST_REDIS_URL is not set"
                    );
                    return None;
                };
                Some(Self::existing(url))
            }
            Backend::Postgres => {
                let Some(admin_url) = std::env::var("TEST_DATABASE_URL")
                    .ok()
                    .filter(|u| !u.is_empty())
                else {
                    assert!(
                        !required("TEXTDROP_REQUIRE_POSTGRES"),
                        "TEST_DATABASE_URL is not set but TEXTDROP_REQUIRE_POSTGRES is: \
                         the PostgreSQL tests must run"
                    );
                    crate::helpers::skip_notice!(
                        "skipping a PostgreSQL test: TEST_DATABASE_URL is not set"
                    );
                    return None;
                };
                let name = format!("textdrop_test_{}", uuid::Uuid::new_v4().simple());
                let mut admin = PgConnection::establish(&admin_url)
                    .unwrap_or_else(|e| panic!("cannot connect to TEST_DATABASE_URL: {e}"));
                diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
                    .execute(&mut admin)
                    .expect("create test database");
                let url = with_database(&admin_url, &name);
                Some(Self {
                    url,
                    cleanup: DbCleanup::Postgres { admin_url, name },
                })
            }
        }
    }

    /// An existing database at `url`, left as it is afterwards.
    pub fn existing(url: String) -> Self {
        Self {
            url,
            cleanup: DbCleanup::Nothing,
        }
    }

    pub fn database_url(&self) -> DatabaseUrl {
        DatabaseUrl::parse(&self.url).expect("test database URL parses")
    }

    /// One connection outside any pool.
    pub fn connect(&self) -> DbConnection {
        DbConnectionManager::new(self.database_url())
            .establish()
            .expect("connect to the test database")
    }

    /// A migrated database and a pool on it, for tests of the store alone.
    pub fn migrated_pool(&self) -> DbPool {
        db::run_migrations(&mut self.connect()).expect("migrations run");
        db::build_pool(
            &self.database_url(),
            PoolOptions {
                max_size: 4,
                checkout_timeout: Duration::from_secs(5),
            },
        )
    }

    /// Every row's expiry, by row id.
    pub fn expiries(&self) -> Vec<(String, NaiveDateTime)> {
        sessions::table
            .select((sessions::id, sessions::expires_at))
            .order(sessions::id)
            .load(&mut self.connect())
            .expect("read sessions")
    }

    pub fn row_count(&self) -> usize {
        self.expiries().len()
    }

    /// Every stored state, as text.
    pub fn states(&self) -> Vec<String> {
        sessions::table
            .select(sessions::state)
            .load(&mut self.connect())
            .expect("read sessions")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let DbCleanup::Postgres { admin_url, name } = &self.cleanup {
            if let Ok(mut admin) = PgConnection::establish(admin_url) {
                let _ =
                    diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .execute(&mut admin);
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

/// Settings for a test app on `db`: port 0, a fixed secret, cleanup off unless a test turns it on.
pub fn test_settings(db: &TestDb, vars: &[(&str, &str)]) -> Settings {
    let url = db.url.clone();
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Settings::from_lookup(move |name| {
        if let Some((_, v)) = vars.iter().find(|(k, _)| k == name) {
            return Some(v.clone());
        }
        match name {
            "DATABASE_URL" => Some(url.clone()),
            "PORT" => Some("0".into()),
            "SECRET_KEY" => Some(TEST_SECRET.into()),
            "CLEANUP_INTERVAL_SECS" => Some("0".into()),
            _ => None,
        }
    })
    .expect("test settings are valid")
}

/// The real application, serving on a loopback port.
pub struct TestApp {
    pub address: String,
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
        .pool_idle_timeout(std::time::Duration::from_secs(2))
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
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    let metrics = app.metrics().clone();
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        address,
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
        let part = Part::bytes(data.into())
            .file_name(file_name.to_owned())
            .mime_str("text/plain")
            .expect("mime");
        self.post_form(Form::new().part("textfile", part)).await
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

/// The `Set-Cookie` header of `response` for the session cookie, if any.
pub fn session_set_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("id="))
        .map(str::to_owned)
}

/// Polls `check` every 50 ms until it holds or `timeout` passes.
pub async fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}
