//! `AnyStore`: one `SessionStore` type over every storage, so the session middleware has one
//! type, and the place where a store failure is judged "unreachable" (503) or not (500).

use std::collections::HashMap;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration as CookieDuration;

use crate::db::DbError;
use crate::session::scope;
use crate::session::DieselSessionStore;
use crate::session::RedisStore;

/// Whether a store error means the storage could not be reached (as opposed to bad state).
fn unreachable(err: &anyhow::Error) -> bool {
    if let Some(err) = err.downcast_ref::<DbError>() {
        return err.is_unavailable();
    }
    if let Some(err) = err.downcast_ref::<redis::RedisError>() {
        return err.is_io_error()
            || err.is_connection_refusal()
            || err.is_timeout()
            || err.is_connection_dropped()
            || err.is_cluster_error();
    }
    false
}

type SessionState = HashMap<String, String>;

/// The store behind the session middleware, whichever storage is in use. A failure that means
/// the storage is unreachable is noted in the request's scope, so the page says "try again"
/// (503) rather than "something went wrong" (500).
#[derive(Clone)]
pub enum AnyStore {
    Sql(DieselSessionStore),
    Redis(RedisStore<redis::aio::ConnectionManager>),
    RedisCluster(RedisStore<redis::cluster_async::ClusterConnection>),
    #[cfg(feature = "bench-cookie-store")]
    Cookie(std::sync::Arc<super::cookie::CookieStore>),
}

/// Calls `$call` on whichever store `$self` holds.
macro_rules! delegate {
    ($self:expr, $store:ident => $call:expr) => {
        match $self {
            AnyStore::Sql($store) => $call,
            AnyStore::Redis($store) => $call,
            AnyStore::RedisCluster($store) => $call,
            #[cfg(feature = "bench-cookie-store")]
            AnyStore::Cookie($store) => $call,
        }
    };
}

/// Notes an unreachable storage in the request's scope; returns the result unchanged.
fn note<T, E>(result: Result<T, E>, cause: impl Fn(&E) -> Option<&anyhow::Error>) -> Result<T, E> {
    if let Err(err) = &result {
        if cause(err).is_some_and(unreachable) {
            scope::mark_store_unavailable();
        }
    }
    result
}

fn itself(err: &anyhow::Error) -> Option<&anyhow::Error> {
    Some(err)
}

impl SessionStore for AnyStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<SessionState>, LoadError> {
        let result = delegate!(self, store => store.load(key).await);
        note(result, |e| match e {
            LoadError::Other(e) => Some(e),
            LoadError::Deserialization(_) => None,
        })
    }

    async fn save(
        &self,
        state: SessionState,
        ttl: &CookieDuration,
    ) -> Result<SessionKey, SaveError> {
        let result = delegate!(self, store => store.save(state, ttl).await);
        note(result, |e| match e {
            SaveError::Other(e) => Some(e),
            SaveError::Serialization(_) => None,
        })
    }

    async fn update(
        &self,
        key: SessionKey,
        state: SessionState,
        ttl: &CookieDuration,
    ) -> Result<SessionKey, UpdateError> {
        let result = delegate!(self, store => store.update(key, state, ttl).await);
        note(result, |e| match e {
            UpdateError::Other(e) => Some(e),
            UpdateError::Serialization(_) => None,
        })
    }

    async fn update_ttl(&self, key: &SessionKey, ttl: &CookieDuration) -> anyhow::Result<()> {
        note(
            delegate!(self, store => store.update_ttl(key, ttl).await),
            itself,
        )
    }

    async fn delete(&self, key: &SessionKey) -> anyhow::Result<()> {
        note(delegate!(self, store => store.delete(key).await), itself)
    }
}
