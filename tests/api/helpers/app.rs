//! The real application on a loopback port, built from the test environment (zero2prod's
//! `spawn_app`), and a clock tests can move forward.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_session_stores::Clock;
use actix_web::dev::ServerHandle;
use chrono::Utc;
use textdrop::config::Settings;
use textdrop::startup::Application;

use super::{cookie_client, TestDb, TEST_SECRET};

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
        // Every test client is 127.0.0.1; the share has tests of its own.
        ("MAX_CONNECTIONS_PER_CLIENT".into(), "1000000".into()),
    ];
    env.extend(suite_wide());
    env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

/// What the whole suite runs with besides each test's own variables:
/// `TEXTDROP_TEST_READ_CACHE=on` (or `off`) sets READ_CACHE for every test app that does not
/// set it, to run the suite with the cache on every storage (or on none).
pub(super) fn suite_wide() -> Vec<(String, String)> {
    std::env::var("TEXTDROP_TEST_READ_CACHE")
        .map(|mode| vec![("READ_CACHE".to_owned(), mode)])
        .unwrap_or_default()
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
    pub(super) handle: ServerHandle,
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

/// The value of the sample `name` (with its labels, e.g. `x_total{operation="load"}`) in
/// Prometheus text, or `None` when it is not there.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}
