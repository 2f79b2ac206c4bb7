//! Building and running the server: the session store `DATABASE_URL` names (a migrated SQL
//! database with its pool and cleanup task, or Redis), the session middleware on it, and the
//! HTTP server on a bound listener.
//!
//! Tests start the real application through [`Application::build`] on port 0.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use actix_multipart::form::MultipartFormConfig;
use actix_session::config::{BrowserSession, PersistentSession, TtlExtensionPolicy};
use actix_session::storage::RedisSessionStore;
use actix_session::SessionMiddleware;
use actix_web::body::MessageBody;
use actix_web::cookie::{time::Duration as CookieDuration, Key, SameSite};
use actix_web::dev::{Server, ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, DefaultHeaders, Logger, Next};
use actix_web::{web, App, HttpServer};
use anyhow::Context as _;
use redis::aio::ConnectionManager;

use crate::clock::Clock;
use crate::config::Settings;
use crate::db::{
    self, Backend, DatabaseUrl, DbConnection, DbConnectionManager, DbPool, PoolOptions,
};
use crate::error::{AppError, SECURITY_HEADERS};
use crate::metrics::Metrics;
use crate::routes::{self, Readiness};
use crate::session::store::with_expiry_scope;
use crate::session::{CleanupTask, DieselSessionStore, SessionBackend, StoreKind};
use crate::templates;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "id";

/// How long a request waits for a pooled connection before it fails.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);

/// A built application: store connected (and migrated), listener bound, cleanup task started.
pub struct Application {
    port: u16,
    metrics: Metrics,
    server: Server,
    cleanup: Option<CleanupTask>,
}

impl Application {
    /// Builds the application on the system clock.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Clock::system()).await
    }

    /// Builds the application with `clock` as its idea of "now" (tests move it forward).
    pub async fn build_with_clock(settings: Settings, clock: Clock) -> anyhow::Result<Self> {
        templates::init().context("the embedded templates do not parse")?;
        let metrics = Metrics::new();
        let (kind, readiness, cleanup) = match settings.database_url.backend() {
            Backend::Postgres | Backend::Sqlite => {
                let pool = connect_and_migrate(&settings).await?;
                let store = DieselSessionStore::new(pool.clone(), clock.clone());
                let cleanup = settings.cleanup_interval.map(|period| {
                    CleanupTask::spawn(
                        pool.clone(),
                        clock.clone(),
                        period,
                        settings.sweep_limits(),
                        metrics.clone(),
                    )
                });
                (StoreKind::Sql(store), Readiness::Sql(pool), cleanup)
            }
            Backend::Redis => {
                let (store, connection) = connect_redis(&settings).await?;
                (StoreKind::Redis(store), Readiness::Redis(connection), None)
            }
        };
        let kind = if settings.bench_cookie_sessions {
            log::warn!("TEXTDROP_BENCH_COOKIE_SESSIONS: session state lives in the cookie (benchmarks only)");
            StoreKind::Cookie(Default::default())
        } else {
            kind
        };
        let store = SessionBackend::new(kind, metrics.clone());

        let listener = TcpListener::bind((settings.host.as_str(), settings.port))
            .with_context(|| format!("cannot listen on {}:{}", settings.host, settings.port))?;
        let port = listener.local_addr()?.port();
        let key = cookie_key(&settings);

        log::info!(
            "textdrop {} listening on http://{}:{port} (database: {} at {}; session lifetime {} s, \
             {} cookie; cleanup {})",
            env!("CARGO_PKG_VERSION"),
            settings.host,
            settings.database_url.backend(),
            settings.database_url.location(),
            settings.session_lifetime.as_secs(),
            if settings.session_permanent { "persistent" } else { "browser-session" },
            match (&cleanup, settings.database_url.backend()) {
                (_, Backend::Redis) => "not needed, Redis expires keys".to_owned(),
                (None, _) => "disabled".to_owned(),
                (Some(_), _) => settings
                    .cleanup_interval
                    .map_or(String::new(), |p| format!("every {} s", p.as_secs())),
            },
        );

        let shared = Shared {
            readiness,
            metrics: metrics.clone(),
            clock,
        };
        let server = run(listener, settings, store, key, shared)?;
        Ok(Self {
            port,
            metrics,
            server,
            cleanup,
        })
    }

    /// The port the server listens on (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// This application's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// A handle to stop the server from elsewhere.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until the server stops (SIGTERM, SIGINT or a handle), then stops the cleanup task.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        if let Some(cleanup) = self.cleanup {
            cleanup.stop().await;
        }
        result
    }
}

/// Connects to the database, runs pending migrations and returns the pool, all off the async
/// executor. An unreachable database is retried with backoff for DATABASE_CONNECT_TIMEOUT_SECS;
/// a failure says which database and which step, never the password.
pub async fn connect_and_migrate(settings: &Settings) -> anyhow::Result<DbPool> {
    let url = settings.database_url.clone();
    let patience = settings.database_connect_timeout;
    let options = PoolOptions {
        max_size: settings.database_pool_size,
        checkout_timeout: CHECKOUT_TIMEOUT,
    };
    actix_web::rt::task::spawn_blocking(move || {
        let mut conn = establish_with_retry(&url, patience)?;
        let applied = db::run_migrations(&mut conn).with_context(|| {
            format!(
                "database migrations failed on {}; nothing was served",
                url.location()
            )
        })?;
        for version in &applied {
            log::info!("applied migration {version}");
        }
        Ok(db::build_pool(&url, options))
    })
    .await?
}

/// Connects to Redis, retrying with backoff like the SQL backends, and returns actix-session's
/// `RedisSessionStore` plus a connection of our own for readiness checks.
pub async fn connect_redis(
    settings: &Settings,
) -> anyhow::Result<(RedisSessionStore, ConnectionManager)> {
    let url = &settings.database_url;
    let started = Instant::now();
    let deadline = started + settings.database_connect_timeout;
    let mut pause = Duration::from_millis(250);
    loop {
        let attempt = async {
            let client = redis::Client::open(url.target())?;
            let connection = ConnectionManager::new(client).await?;
            let store = RedisSessionStore::new(url.target()).await?;
            anyhow::Ok((store, connection))
        };
        let err = match attempt.await {
            Ok(connected) => return Ok(connected),
            Err(err) => err,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(err.context(format!(
                "cannot connect to Redis at {} (gave up after {} s)",
                url.location(),
                started.elapsed().as_secs()
            )));
        }
        let wait = pause.min(left);
        log::warn!(
            "Redis at {} not reachable yet, retrying in {} ms: {err}",
            url.location(),
            wait.as_millis()
        );
        actix_web::rt::time::sleep(wait).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// Opens one connection, retrying with backoff (0.25 s doubling to 5 s) until `patience` is
/// spent. Blocking.
fn establish_with_retry(url: &DatabaseUrl, patience: Duration) -> anyhow::Result<DbConnection> {
    let manager = DbConnectionManager::new(url.clone());
    let started = Instant::now();
    let deadline = started + patience;
    let mut pause = Duration::from_millis(250);
    loop {
        let err = match manager.establish() {
            Ok(conn) => return Ok(conn),
            Err(err) => err,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(anyhow::Error::new(err).context(format!(
                "cannot connect to the database at {} (gave up after {} s)",
                url.location(),
                started.elapsed().as_secs()
            )));
        }
        let wait = pause.min(left);
        log::warn!(
            "database at {} not reachable yet, retrying in {} ms: {err}",
            url.location(),
            wait.as_millis()
        );
        std::thread::sleep(wait);
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// The cookie key: derived from SECRET_KEY, or random for this process only.
fn cookie_key(settings: &Settings) -> Key {
    match &settings.secret_key {
        Some(secret) => Key::derive_from(secret.as_bytes()),
        None => {
            log::warn!(
                "SECRET_KEY is not set: using a random key, so sessions will not survive a restart"
            );
            Key::generate()
        }
    }
}

fn session_middleware(
    store: SessionBackend,
    key: Key,
    settings: &Settings,
) -> SessionMiddleware<SessionBackend> {
    let ttl = CookieDuration::seconds(settings.session_lifetime.as_secs() as i64);
    let builder = SessionMiddleware::builder(store, key)
        .cookie_name(SESSION_COOKIE.to_owned())
        .cookie_secure(settings.cookie_secure)
        .cookie_http_only(true)
        .cookie_same_site(SameSite::Lax)
        .cookie_path("/".to_owned());
    // OnEveryRequest: every request of a live session slides its lifetime. The store decides
    // whether that needs a write; the persistent cookie's Max-Age is re-sent each time.
    let builder = if settings.session_permanent {
        builder.session_lifecycle(
            PersistentSession::default()
                .session_ttl(ttl)
                .session_ttl_extension_policy(TtlExtensionPolicy::OnEveryRequest),
        )
    } else {
        builder.session_lifecycle(
            BrowserSession::default()
                .state_ttl(ttl)
                .state_ttl_extension_policy(TtlExtensionPolicy::OnEveryRequest),
        )
    };
    builder.build()
}

/// Headers every response carries: no inline script, no framing, no sniffing.
fn security_headers() -> DefaultHeaders {
    SECURITY_HEADERS
        .iter()
        .fold(DefaultHeaders::new(), |headers, &pair| headers.add(pair))
}

/// actix-session answers a failing store with an empty 500, before or after the handler. The
/// store has already logged the cause; this turns it into the friendly 503 page. (The error is
/// returned, not wrapped in a response: that needs the request, which routing must own alone.)
///
/// It also gives the request room to carry the loaded session's expiry to the page.
async fn store_failure_page(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    with_expiry_scope(next.call(req)).await.map_err(|err| {
        let status = err.as_response_error().status_code();
        AppError::Unavailable(anyhow::anyhow!(
            "session store failed ({status}); cause logged above"
        ))
        .into()
    })
}

/// What handlers share besides the settings.
struct Shared {
    readiness: Readiness,
    metrics: Metrics,
    clock: Clock,
}

fn run(
    listener: TcpListener,
    settings: Settings,
    store: SessionBackend,
    key: Key,
    shared: Shared,
) -> anyhow::Result<Server> {
    let metrics = web::Data::new(shared.metrics);
    let clock = web::Data::new(shared.clock);
    let readiness = web::Data::new(shared.readiness);
    let max_upload = settings.max_upload_bytes;
    let grace = settings.shutdown_grace.as_secs();
    let settings = web::Data::new(settings);
    let server = HttpServer::new(move || {
        // Probes and the stylesheet come first, outside the session middleware, so that they
        // never touch the database (a failing store must not fail /healthz).
        let pages = web::scope("")
            .wrap(session_middleware(store.clone(), key.clone(), &settings))
            .wrap(from_fn(store_failure_page))
            .configure(routes::pages)
            .default_service(web::to(routes::not_found));
        App::new()
            .wrap(security_headers())
            .wrap(Logger::new("%a \"%r\" %s %b %Dms"))
            .app_data(settings.clone())
            .app_data(readiness.clone())
            .app_data(metrics.clone())
            .app_data(clock.clone())
            .app_data(
                MultipartFormConfig::default()
                    .total_limit(max_upload)
                    .memory_limit(max_upload),
            )
            .configure(routes::probes_and_assets)
            .service(pages)
    })
    .shutdown_timeout(grace)
    // Explicit limits against slow or broken clients: headers must arrive within 5 s, and a
    // closing connection gets 1 s. (actix-http caps headers: 431 past 128 KiB, 400 past 96.)
    .client_request_timeout(Duration::from_secs(5))
    .client_disconnect_timeout(Duration::from_secs(1))
    .listen(listener)?
    .run();
    Ok(server)
}
