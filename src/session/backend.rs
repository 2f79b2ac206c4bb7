//! The session store the middleware uses, whichever backend `DATABASE_URL` names: textdrop's
//! own Diesel store for PostgreSQL and SQLite, or actix-session's maintained `RedisSessionStore`
//! for Redis (Redis expires keys itself, so no cleanup task). One enum keeps a single middleware
//! type; every call records its latency and outcome in the metrics.
//!
//! `Cookie` keeps the whole state in the encrypted cookie (actix-session's `CookieSessionStore`):
//! it is the benchmark's ceiling for the web layer alone, selected by a bench-only switch.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use actix_session::storage::{
    CookieSessionStore, LoadError, RedisSessionStore, SaveError, SessionKey, SessionStore,
    UpdateError,
};
use actix_web::cookie::time::Duration;

use crate::metrics::Metrics;
use crate::session::DieselSessionStore;

type SessionState = HashMap<String, String>;

/// Which store serves the sessions.
#[derive(Clone)]
pub enum StoreKind {
    Sql(DieselSessionStore),
    Redis(RedisSessionStore),
    Cookie(Arc<CookieSessionStore>),
}

/// The store behind the session middleware, with metrics. Cheap to clone.
#[derive(Clone)]
pub struct SessionBackend {
    kind: StoreKind,
    metrics: Metrics,
}

impl SessionBackend {
    pub fn new(kind: StoreKind, metrics: Metrics) -> Self {
        Self { kind, metrics }
    }

    /// Records one operation. The Diesel store logs its own failures with their cause; the
    /// others log nothing, so their failures are logged here.
    fn record<T, E: std::fmt::Display>(
        &self,
        operation: &'static str,
        started: Instant,
        result: &Result<T, E>,
    ) {
        self.metrics
            .observe_store(operation, started.elapsed(), result.is_ok());
        if let Err(err) = result {
            if !matches!(self.kind, StoreKind::Sql(_)) {
                log::error!("session store: {operation} failed: {err}");
            }
        }
    }
}

/// Calls `$method` on whichever store `$kind` holds.
macro_rules! delegate {
    ($kind:expr, $store:ident => $call:expr) => {
        match $kind {
            StoreKind::Sql($store) => $call,
            StoreKind::Redis($store) => $call,
            StoreKind::Cookie($store) => $call,
        }
    };
}

impl SessionStore for SessionBackend {
    async fn load(&self, key: &SessionKey) -> Result<Option<SessionState>, LoadError> {
        let started = Instant::now();
        let result = delegate!(&self.kind, store => store.load(key).await);
        self.record("load", started, &result);
        result
    }

    async fn save(&self, state: SessionState, ttl: &Duration) -> Result<SessionKey, SaveError> {
        let started = Instant::now();
        let result = delegate!(&self.kind, store => store.save(state, ttl).await);
        self.record("save", started, &result);
        result
    }

    async fn update(
        &self,
        key: SessionKey,
        state: SessionState,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        let started = Instant::now();
        let result = delegate!(&self.kind, store => store.update(key, state, ttl).await);
        self.record("update", started, &result);
        result
    }

    async fn update_ttl(&self, key: &SessionKey, ttl: &Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let result = delegate!(&self.kind, store => store.update_ttl(key, ttl).await);
        self.record("update_ttl", started, &result);
        result
    }

    async fn delete(&self, key: &SessionKey) -> anyhow::Result<()> {
        let started = Instant::now();
        let result = delegate!(&self.kind, store => store.delete(key).await);
        self.record("delete", started, &result);
        result
    }
}
