//! Building and running the server: the storage `DATABASE_URL` names (connected, migrated, its
//! cleanup task started), the limits on what visitors can make it hold, the session middleware
//! on its store, the HTTP server on a bound listener, and the metrics listener if asked for.
//!
//! Tests start the real application through [`Application::build`] on port 0.

use std::net::TcpListener;
use std::rc::Rc;
use std::time::Duration;

use actix_session_stores::{CleanupTask, Clock, RotationKey, Storage, Store};

use crate::config::split_connections;
use crate::config::{SessionSettings, Settings};
use crate::connection::{track_requests, ConnectionLimits, GuardedStream};
use crate::limits::{
    ClientShares, StorageCap, UploadBuffer, UploadRate, ViewBudget, ViewGate, FRAMING_ALLOWANCE,
};
use crate::metrics::Metrics;
use crate::middleware::{logged_request_line, security_headers};
use crate::routes::{self, guard::Guard};
use crate::session::previous_keys::accept_previous;
use crate::session::{CookieKeys, Sessions};
use crate::templates;
use crate::upkeep::spawn_upkeep;
use actix_http::error::DispatchError;
use actix_http::{Extensions, HttpService};
use actix_multipart::form::MultipartFormConfig;
use actix_service::{fn_service, map_config, ServiceFactoryExt as _};
use actix_session::config::{BrowserSession, PersistentSession, TtlExtensionPolicy};
use actix_session::SessionMiddleware;
use actix_web::cookie::{time::Duration as CookieDuration, Key, SameSite};
use actix_web::dev::{AppConfig, Server, ServerHandle};
use actix_web::middleware::{from_fn, Logger};
use actix_web::{web, App};
use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

/// Name of the session cookie over plain HTTP.
pub const SESSION_COOKIE: &str = "id";
/// Name of the session cookie with COOKIE_SECURE: the `__Host-` prefix makes browsers refuse
/// it unless it is Secure, for this host only, on `/`.
pub const SECURE_SESSION_COOKIE: &str = "__Host-id";

/// A built application: storage connected (and migrated), listeners bound, tasks started.
pub struct Application {
    port: u16,
    metrics_port: Option<u16>,
    metrics: Metrics,
    server: Server,
    metrics_server: Option<Server>,
    cleanup: Option<CleanupTask>,
    upkeep: CancellationToken,
}

impl Application {
    /// Builds the application on the system clock.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Clock::system()).await
    }

    /// Builds the application with `clock` as its idea of "now" (tests move it forward).
    pub async fn build_with_clock(settings: Settings, clock: Clock) -> anyhow::Result<Self> {
        let (workers, _) = http_workers(&settings);
        let storage = crate::storage::connect(&settings, workers).await?;
        Self::build_on(settings, clock, storage).await
    }

    /// Builds the application on a storage already connected (see `Storage::with_records`),
    /// with `clock` as its idea of "now".
    pub async fn build_on(
        settings: Settings,
        clock: Clock,
        storage: Storage,
    ) -> anyhow::Result<Self> {
        templates::init().context("the embedded templates do not parse")?;
        let metrics = Metrics::new();
        let shared = settings.database.url.backend() != crate::config::Backend::Sqlite;
        let key = cookie_key(&settings.session, shared);
        let storage = storage
            .with_clock(clock.clone())
            .with_events(metrics.clone())
            .with_rotation_key(RotationKey::derived_from(
                key.master(),
                crate::database::ROTATION_LABEL,
            ));
        let cleanup = storage.spawn_cleanup();

        let server = &settings.server;
        let listener = TcpListener::bind((server.host.as_str(), server.port))
            .with_context(|| format!("cannot listen on {}:{}", server.host, server.port))?;
        let port = listener.local_addr()?.port();
        let (metrics_server, metrics_port) = match &server.metrics_addr {
            Some(addr) => {
                let (server, port) = metrics_server(
                    addr,
                    metrics.clone(),
                    connection_limits(&settings),
                    client_shares(&settings),
                )?;
                (Some(server), Some(port))
            }
            None => (None, None),
        };
        log::info!(
            "textdrop {} listening on http://{}:{port} (database: {} at {}; session lifetime {} s, \
             {} cookie; {}; metrics {})",
            env!("CARGO_PKG_VERSION"),
            server.host,
            settings.database.url.backend(),
            settings.database.url.location(),
            settings.session.lifetime.as_secs(),
            if settings.session.permanent { "persistent" } else { "browser-session" },
            cleanup_note(&storage, &settings),
            server.metrics_addr.as_deref().map_or("off".into(), |a| format!("on {a}")),
        );

        let cap = StorageCap::new(settings.limits.max_stored_bytes);
        let guard = guard(&settings.limits);
        let storage = web::Data::new(storage);
        let upkeep = spawn_upkeep(
            storage.clone(),
            cap.clone(),
            guard.rate.clone(),
            metrics.clone(),
        );
        let shared = Shared {
            storage,
            cap: web::Data::new(cap),
            guard: web::Data::new(guard),
            metrics: web::Data::new(metrics.clone()),
            clock: web::Data::new(clock),
            indexes: web::Data::new(crate::routes::index_cache::IndexCache::default()),
            settings: web::Data::new(settings),
        };
        let server = run(listener, shared, key)?;
        Ok(Self {
            port,
            metrics_port,
            metrics,
            server,
            metrics_server,
            cleanup,
            upkeep,
        })
    }

    /// The port the server listens on (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the metrics listener, if METRICS_ADDR asked for one.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    /// This application's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// A handle to stop the server from elsewhere.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until the server stops (SIGTERM, SIGINT or a handle), then stops the metrics
    /// listener and the background tasks.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let metrics = self.metrics_server.map(|server| {
            let handle = server.handle();
            actix_web::rt::spawn(server);
            handle
        });
        let result = self.server.await;
        if let Some(metrics) = metrics {
            metrics.stop(true).await;
        }
        self.upkeep.cancel();
        if let Some(cleanup) = self.cleanup {
            cleanup.stop().await;
        }
        log::info!("textdrop stopped");
        result
    }
}

/// The HTTP workers and each one's connections: one worker per core, fewer when
/// MAX_CONNECTIONS is below the core count (actix counts connections per worker).
fn http_workers(settings: &Settings) -> (usize, usize) {
    split_connections(
        settings.server.max_connections,
        crate::storage::default_workers(),
    )
}

/// How expired sessions go, for the startup log line.
fn cleanup_note(storage: &Storage, settings: &Settings) -> String {
    match (storage.needs_cleanup(), settings.cleanup.interval) {
        (true, Some(period)) => format!("cleanup every {} s", period.as_secs()),
        (true, None) => "cleanup disabled".into(),
        (false, _) => "no cleanup needed, Redis expires keys".into(),
    }
}

/// The cookie key: derived from SECRET_KEY, or random for this process only (with a warning,
/// louder when other instances may share the database).
fn cookie_key(settings: &SessionSettings, shared: bool) -> Key {
    match &settings.secret_key {
        Some(secret) => Key::derive_from(secret.as_bytes()),
        None if shared => {
            log::warn!(
                "SECRET_KEY is not set: using a random key, so sessions will not survive a \
                 restart, and other instances on this database cannot read this one's cookies \
                 (give every instance the same SECRET_KEY)"
            );
            Key::generate()
        }
        None => {
            log::warn!(
                "SECRET_KEY is not set: using a random key, so sessions will not survive a restart"
            );
            Key::generate()
        }
    }
}

/// The session cookie's name.
fn cookie_name(settings: &SessionSettings) -> &'static str {
    if settings.cookie_secure {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

/// The cookie's keys: `key` (from SECRET_KEY) and those of PREVIOUS_SECRET_KEYS, with the
/// attributes `session_middleware` sets the cookie with.
fn cookie_keys(key: &Key, settings: &SessionSettings) -> CookieKeys {
    CookieKeys {
        name: cookie_name(settings),
        current: key.clone(),
        previous: settings
            .previous_keys
            .iter()
            .map(|secret| Key::derive_from(secret.as_bytes()))
            .collect(),
        secure: settings.cookie_secure,
        max_age: settings
            .permanent
            .then(|| CookieDuration::seconds(settings.lifetime.as_secs() as i64)),
    }
}

/// actix-session's middleware on `store`, configured by the session settings.
fn session_middleware(store: Store, key: Key, settings: &SessionSettings) -> Sessions {
    let ttl = CookieDuration::seconds(settings.lifetime.as_secs() as i64);
    let name = cookie_name(settings);
    let builder = SessionMiddleware::builder(store, key)
        .cookie_name(name.to_owned())
        .cookie_secure(settings.cookie_secure)
        .cookie_http_only(true)
        .cookie_same_site(SameSite::Lax)
        .cookie_path("/".to_owned());
    // OnEveryRequest: every request of a live session slides its lifetime. The store decides
    // whether that needs a write; the persistent cookie's Max-Age is re-sent each time.
    let builder = if settings.permanent {
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

/// The connection layer every listener serves through, around the app `$app` builds: each
/// accepted socket claims its address's share of connections (`$shares`; past it, closed at
/// once) and is wrapped in the connection's deadlines (`$limits`, see `connection`): every
/// request head within REQUEST_HEAD_TIMEOUT_SECS, writes within WRITE_TIMEOUT_SECS. A closing
/// connection gets 1 s; a client that closes its side while its request is served is gone,
/// and its request's work is dropped. (actix-http caps headers: 431 past 128 KiB, 400 past
/// 96.) The app must run `connection::track_requests` outermost.
macro_rules! guarded_service {
    ($app:expr, $limits:expr, $shares:expr) => {{
        let limits: ConnectionLimits = $limits;
        let http = HttpService::build()
            .client_request_timeout(limits.head)
            .client_disconnect_timeout(Duration::from_secs(1))
            .h1_allow_half_closed(false)
            .on_connect_ext(|io: &GuardedStream, ext: &mut Extensions| {
                ext.insert(io.activity());
            })
            .h1(map_config($app, |_| AppConfig::default()));
        let shares: ClientShares = $shares;
        fn_service(move |io: actix_web::rt::net::TcpStream| {
            let peer = io.peer_addr().ok();
            let claim = peer.and_then(|peer| shares.claim(peer.ip()));
            std::future::ready(match claim {
                Some(claim) => Ok((GuardedStream::new(io, limits, claim), peer)),
                None => Err(DispatchError::Io(std::io::Error::other(
                    "MAX_CONNECTIONS_PER_CLIENT reached",
                ))),
            })
        })
        .and_then(http)
    }};
}

/// The metrics listener on `addr`: `/metrics` and nothing else, through the same connection
/// layer as the public port (deadlines, a share per address), on one worker.
fn metrics_server(
    addr: &str,
    metrics: Metrics,
    limits: ConnectionLimits,
    shares: ClientShares,
) -> anyhow::Result<(Server, u16)> {
    let listener = TcpListener::bind(addr)
        .with_context(|| format!("METRICS_ADDR: cannot listen on {addr}"))?;
    let port = listener.local_addr()?.port();
    listener.set_nonblocking(true)?;
    let metrics = web::Data::new(metrics);
    let factory = move || {
        let app = App::new()
            .wrap(from_fn(track_requests))
            .app_data(metrics.clone())
            .configure(routes::metrics);
        guarded_service!(app, limits, shares.clone())
    };
    let server = Server::build()
        .workers(1)
        .disable_signals()
        .listen("textdrop-metrics", listener, factory)?
        .run();
    Ok((server, port))
}

/// The deadlines every connection gets.
fn connection_limits(settings: &Settings) -> ConnectionLimits {
    ConnectionLimits {
        head: settings.server.request_head_timeout,
        write: settings.server.write_timeout,
    }
}

/// The share of connections each client address gets, on one listener.
fn client_shares(settings: &Settings) -> ClientShares {
    ClientShares::new(
        settings.server.max_connections_per_client,
        settings.limits.trusted_proxies.clone(),
    )
}

/// The limits an upload or a file page passes.
fn guard(limits: &crate::config::LimitSettings) -> Guard {
    Guard {
        rate: UploadRate::per_minute(limits.uploads_per_minute),
        buffer: UploadBuffer::new(
            limits.upload_buffer_bytes,
            limits.upload_queue,
            (limits.max_upload_bytes + FRAMING_ALLOWANCE) as u64,
        ),
        views: ViewGate::new(limits.max_views_in_flight, limits.view_queue),
        budget: ViewBudget::per_minute(limits.view_bytes_per_minute),
    }
}

/// What every worker's app shares: the handlers' data.
#[derive(Clone)]
struct Shared {
    settings: web::Data<Settings>,
    storage: web::Data<Storage>,
    cap: web::Data<StorageCap>,
    guard: web::Data<Guard>,
    metrics: web::Data<Metrics>,
    clock: web::Data<Clock>,
    indexes: web::Data<crate::routes::index_cache::IndexCache>,
}

impl Shared {
    /// Registers it, the worker's `store` and the extractors' settings as the app's data.
    fn register(&self, cfg: &mut web::ServiceConfig, store: &Store) {
        let max_upload = self.settings.limits.max_upload_bytes;
        cfg.app_data(self.settings.clone())
            .app_data(self.storage.clone())
            .app_data(web::Data::new(store.clone()))
            .app_data(self.cap.clone())
            .app_data(self.guard.clone())
            .app_data(self.metrics.clone())
            .app_data(self.clock.clone())
            .app_data(self.indexes.clone())
            // A query the page cannot parse (`?page=2&page=3`) gets the app's 400 page.
            .app_data(web::QueryConfig::default().error_handler(|err, _req| {
                crate::error::AppError::BadQuery(err.to_string()).into()
            }))
            .app_data(
                MultipartFormConfig::default()
                    .total_limit(max_upload)
                    .memory_limit(max_upload),
            );
    }
}

/// The HTTP server on `listener`: each worker's app over its own store.
fn run(listener: TcpListener, shared: Shared, key: Key) -> anyhow::Result<Server> {
    crate::routes::warm();
    let settings = &shared.settings;
    let grace = settings.server.shutdown_grace.as_secs();
    let hsts = settings.session.cookie_secure;
    // actix counts connections per worker: split the instance's cap between them.
    let cores = crate::storage::default_workers();
    let (workers, per_worker) = http_workers(settings);
    if workers < cores {
        log::info!(
            "MAX_CONNECTIONS={} is below the {cores} cores: {workers} HTTP workers, one \
             connection each",
            settings.server.max_connections
        );
    }
    let limits = connection_limits(settings);
    let shares = client_shares(settings);
    let factory = move || {
        // Runs once per worker, on the worker's thread: its store, on its own connections.
        let store = shared.storage.store();
        let session = &shared.settings.session;
        let sessions = || session_middleware(store.clone(), key.clone(), session);
        let cookie_keys = Rc::new(cookie_keys(&key, session));
        let app = App::new()
            .wrap(security_headers(hsts))
            // The request line quoted at most 256 bytes of its target (a 60 KB URL would be a
            // 60 KB log line).
            .wrap(
                Logger::new("%a \"%{request_line}xi\" %s %b %Dms")
                    .custom_request_replace("request_line", logged_request_line),
            )
            .wrap(from_fn(crate::middleware::count_responses))
            .wrap(from_fn(track_requests))
            .wrap(from_fn({
                let keys = cookie_keys.clone();
                move |req, next| accept_previous(keys.clone(), req, next)
            }))
            .configure(|cfg| shared.register(cfg, &store))
            .configure(routes::probes_and_assets)
            .configure(|cfg| routes::pages(cfg, sessions, cookie_keys))
            .default_service(web::to(routes::not_found));
        guarded_service!(app, limits, shares.clone())
    };
    listener.set_nonblocking(true)?;
    let server = Server::build()
        .workers(workers)
        .max_concurrent_connections(per_worker)
        .shutdown_timeout(grace)
        .listen("textdrop", listener, factory)?
        .run();
    Ok(server)
}
