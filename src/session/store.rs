//! `DieselSessionStore`: actix-session's `SessionStore` on the `sessions` table.
//!
//! It follows actix-session's `RedisSessionStore` semantics:
//! - `save` inserts a new row under a fresh key from `generate_session_key()`;
//! - `update` of a row that expired or vanished saves a new session and returns its new key, so
//!   an unknown key is never adopted and a deleted session is never brought back;
//! - `load` never returns a row whose expiry has passed, whether or not cleanup ran.
//!
//! Only the SHA-256 of a session key is stored; the key itself lives in the visitor's encrypted
//! cookie. Every Diesel call, `pool.get()` included, runs on the blocking thread pool.
//!
//! Sliding lifetime without a write per read: the middleware calls `update_ttl` after every
//! request that did not change the session. The store remembers the expiry it saw in `load`
//! and only writes a new one once less than [`EXTEND_BELOW`] of the lifetime remains; when it
//! has no remembered expiry, the UPDATE's own condition makes the same decision, so a fresh row
//! is never rewritten either way.

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use actix_session::storage::{
    generate_session_key, LoadError, SaveError, SessionKey, SessionStore, UpdateError,
};
use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::web;
use anyhow::Context as _;
use chrono::{Duration, NaiveDateTime};
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::db::{self, DbConnection, DbPool};
use crate::session::queries::{self, NewSession};

type SessionState = HashMap<String, String>;

/// `update_ttl` writes a new expiry only when less than this share of the lifetime remains.
pub const EXTEND_BELOW: f64 = 0.8;

/// Bound on the memory of recently loaded expiries; past it the memory is simply cleared
/// (the cost: one conditional UPDATE, which writes nothing, per session read next).
const REMEMBERED_MAX: usize = 10_000;

/// Whether a row expiring at `expires_at` has enough lifetime left at `now` that a read need
/// not write a new expiry (at least [`EXTEND_BELOW`] of `ttl`).
pub fn fresh_enough(expires_at: NaiveDateTime, now: NaiveDateTime, ttl: Duration) -> bool {
    (expires_at - now).num_milliseconds() as f64 >= EXTEND_BELOW * ttl.num_milliseconds() as f64
}

/// When the visitor's data will be deleted if they do not come back, as of this request: the
/// expiry `load` found, or a full lifetime from now when this request's `update_ttl` (or a
/// write) moves it. `None` outside a request scope or when no row was loaded.
pub fn expiry_after_this_request(now: NaiveDateTime, ttl: Duration) -> Option<NaiveDateTime> {
    let loaded = LOADED_EXPIRY.try_with(Cell::get).ok().flatten()?;
    Some(if fresh_enough(loaded, now, ttl) {
        loaded
    } else {
        now + ttl
    })
}

tokio::task_local! {
    /// The expiry of the row `load` found for the request being served. actix-session keeps
    /// the store and the handler apart; the request's task is what they share.
    static LOADED_EXPIRY: Cell<Option<NaiveDateTime>>;
}

/// Runs `request` (the session middleware and the handler) with room for the loaded expiry.
pub async fn with_expiry_scope<F: Future>(request: F) -> F::Output {
    LOADED_EXPIRY.scope(Cell::new(None), request).await
}

/// A session store on the `sessions` table of PostgreSQL or SQLite. Cheap to clone.
#[derive(Clone)]
pub struct DieselSessionStore {
    pool: DbPool,
    clock: Clock,
    /// Expiry seen by the latest `load` of each row id, for `update_ttl` to decide without a
    /// round trip.
    loaded_expiry: Arc<Mutex<HashMap<String, NaiveDateTime>>>,
}

/// The row id under which a session key's state is stored: hex SHA-256 of the key.
pub fn session_id(key: &SessionKey) -> String {
    hex::encode(Sha256::digest(key.as_ref().as_bytes()))
}

fn chrono_ttl(ttl: &CookieDuration) -> Duration {
    Duration::seconds(ttl.whole_seconds().max(0))
}

impl DieselSessionStore {
    pub fn new(pool: DbPool, clock: Clock) -> Self {
        Self {
            pool,
            clock,
            loaded_expiry: Arc::default(),
        }
    }

    /// The pool this store draws from.
    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    /// The clock this store reads "now" from.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Runs `query` with a pooled connection on the blocking thread pool. Failures are logged
    /// here with their cause (actix-session logs nothing) and returned for the middleware.
    async fn with_conn<T, F>(&self, operation: &'static str, query: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> diesel::QueryResult<T> + Send + 'static,
    {
        let pool = self.pool.clone();
        let result = web::block(move || -> anyhow::Result<T> {
            let mut slot = pool.get().context("no database connection available")?;
            Ok(db::run(&mut slot, query)?)
        })
        .await
        .map_err(anyhow::Error::from)
        .and_then(|inner| inner);
        if let Err(err) = &result {
            log::error!("session store: {operation} failed: {err:#}");
        }
        result
    }

    fn remember_expiry(&self, id: String, expires_at: NaiveDateTime) {
        if let Ok(mut map) = self.loaded_expiry.lock() {
            if map.len() >= REMEMBERED_MAX && !map.contains_key(&id) {
                map.clear();
            }
            map.insert(id, expires_at);
        }
    }

    /// The expiry the latest `load` of `id` saw. Left in place: overlapping requests of one
    /// session each find it (a later load refreshes it; writes and deletes forget it).
    fn loaded_expiry_of(&self, id: &str) -> Option<NaiveDateTime> {
        self.loaded_expiry.lock().ok()?.get(id).copied()
    }

    fn forget_expiry(&self, id: &str) {
        if let Ok(mut map) = self.loaded_expiry.lock() {
            map.remove(id);
        }
    }

    async fn insert_new(&self, state: String, ttl: &CookieDuration) -> anyhow::Result<SessionKey> {
        let key = generate_session_key();
        let id = session_id(&key);
        let now = self.clock.now();
        let expires_at = now + chrono_ttl(ttl);
        self.with_conn("save", move |conn| {
            queries::insert(
                conn,
                &NewSession {
                    id: &id,
                    state: &state,
                    expires_at,
                    created_at: now,
                },
            )
        })
        .await?;
        Ok(key)
    }
}

impl SessionStore for DieselSessionStore {
    async fn load(&self, session_key: &SessionKey) -> Result<Option<SessionState>, LoadError> {
        let id = session_id(session_key);
        let now = self.clock.now();
        let lookup = id.clone();
        let row = self
            .with_conn("load", move |conn| queries::find_live(conn, &lookup, now))
            .await
            .map_err(LoadError::Other)?;
        let Some(row) = row else {
            return Ok(None);
        };
        self.remember_expiry(id, row.expires_at);
        let _ = LOADED_EXPIRY.try_with(|loaded| loaded.set(Some(row.expires_at)));
        serde_json::from_str(&row.state)
            .map(Some)
            .map_err(|e| LoadError::Deserialization(e.into()))
    }

    async fn save(
        &self,
        session_state: SessionState,
        ttl: &CookieDuration,
    ) -> Result<SessionKey, SaveError> {
        let state = serde_json::to_string(&session_state)
            .map_err(|e| SaveError::Serialization(e.into()))?;
        self.insert_new(state, ttl).await.map_err(SaveError::Other)
    }

    async fn update(
        &self,
        session_key: SessionKey,
        session_state: SessionState,
        ttl: &CookieDuration,
    ) -> Result<SessionKey, UpdateError> {
        let state = serde_json::to_string(&session_state)
            .map_err(|e| UpdateError::Serialization(e.into()))?;
        let id = session_id(&session_key);
        self.forget_expiry(&id);
        let now = self.clock.now();
        let expires_at = now + chrono_ttl(ttl);
        let new_state = state.clone();
        let updated = self
            .with_conn("update", move |conn| {
                queries::update_state(conn, &id, &new_state, expires_at, now)
            })
            .await
            .map_err(UpdateError::Other)?;
        if updated == 0 {
            // Expired or deleted meanwhile: start a new session rather than revive the old key.
            return self
                .insert_new(state, ttl)
                .await
                .map_err(UpdateError::Other);
        }
        Ok(session_key)
    }

    async fn update_ttl(
        &self,
        session_key: &SessionKey,
        ttl: &CookieDuration,
    ) -> anyhow::Result<()> {
        let id = session_id(session_key);
        let now = self.clock.now();
        let ttl = chrono_ttl(ttl);
        if let Some(expires_at) = self.loaded_expiry_of(&id) {
            if fresh_enough(expires_at, now, ttl) {
                return Ok(());
            }
        }
        // Not known fresh (nothing loaded in this process, or the memory was cleared): the
        // UPDATE itself checks, so a fresh row is still not rewritten.
        let due =
            now + Duration::milliseconds((EXTEND_BELOW * ttl.num_milliseconds() as f64) as i64);
        self.with_conn("update_ttl", move |conn| {
            queries::extend_if_due(conn, &id, now + ttl, now, due)
        })
        .await?;
        Ok(())
    }

    async fn delete(&self, session_key: &SessionKey) -> anyhow::Result<()> {
        let id = session_id(session_key);
        self.forget_expiry(&id);
        self.with_conn("delete", move |conn| queries::delete(conn, &id))
            .await?;
        Ok(())
    }
}
