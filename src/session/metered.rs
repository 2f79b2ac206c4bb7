//! `MeteredStore`: a decorator that records every session store call's latency and outcome in
//! the metrics, and logs failures with their cause (actix-session logs none).

use std::collections::HashMap;
use std::time::Instant;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration;

use crate::metrics::Metrics;
use crate::session::TextdropStore;

type SessionState = HashMap<String, String>;

/// A store with metrics and failure logs. Cheap to clone.
#[derive(Clone)]
pub struct MeteredStore<S = TextdropStore> {
    inner: S,
    metrics: Metrics,
}

impl<S> MeteredStore<S> {
    pub fn new(inner: S, metrics: Metrics) -> Self {
        Self { inner, metrics }
    }

    fn record<T, E: std::fmt::Display>(
        &self,
        operation: &'static str,
        started: Instant,
        result: &Result<T, E>,
    ) {
        self.metrics
            .observe_store(operation, started.elapsed(), result.is_ok());
        if let Err(err) = result {
            log::error!("session store: {operation} failed: {err:#}");
        }
    }
}

/// The error's whole chain on one line.
struct Chain<'a, E>(&'a E);

impl std::fmt::Display for Chain<'_, LoadError> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            LoadError::Deserialization(e) | LoadError::Other(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::fmt::Display for Chain<'_, SaveError> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            SaveError::Serialization(e) | SaveError::Other(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::fmt::Display for Chain<'_, UpdateError> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            UpdateError::Serialization(e) | UpdateError::Other(e) => write!(f, "{e:#}"),
        }
    }
}

impl<S: SessionStore> SessionStore for MeteredStore<S> {
    async fn load(&self, key: &SessionKey) -> Result<Option<SessionState>, LoadError> {
        let started = Instant::now();
        let result = self.inner.load(key).await;
        self.record("load", started, &result.as_ref().map_err(Chain));
        result
    }

    async fn save(&self, state: SessionState, ttl: &Duration) -> Result<SessionKey, SaveError> {
        let started = Instant::now();
        let result = self.inner.save(state, ttl).await;
        self.record("save", started, &result.as_ref().map_err(Chain));
        result
    }

    async fn update(
        &self,
        key: SessionKey,
        state: SessionState,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        let started = Instant::now();
        let result = self.inner.update(key, state, ttl).await;
        self.record("update", started, &result.as_ref().map_err(Chain));
        result
    }

    async fn update_ttl(&self, key: &SessionKey, ttl: &Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let result = self.inner.update_ttl(key, ttl).await;
        self.record("update_ttl", started, &result);
        result
    }

    async fn delete(&self, key: &SessionKey) -> anyhow::Result<()> {
        let started = Instant::now();
        let result = self.inner.delete(key).await;
        self.record("delete", started, &result);
        result
    }
}
