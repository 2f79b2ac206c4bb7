//! `DieselSessionStore`: actix-session's `SessionStore` on the `sessions` table.
//!
//! It follows actix-session's `RedisSessionStore` semantics:
//! - `save` inserts a new row under a fresh key from `generate_session_key()`;
//! - `update` of a row that expired or vanished saves a new session and returns its new key, so
//!   an unknown key is never adopted and a deleted session is never brought back;
//! - `load` never returns a row whose expiry has passed, whether or not cleanup ran.
//!
//! Only the SHA-256 of a session key is stored; the key itself lives in the visitor's encrypted
//! cookie. Every Diesel call, the pool checkout included, runs through [`db::with_conn`].
//!
//! Sliding lifetime without a write per read: the middleware calls `update_ttl` after every
//! request that did not change the session. `load` leaves the expiry it saw in the request's
//! scope ([`scope`]), and `update_ttl` writes a new one only once less than [`EXTEND_BELOW`] of
//! the lifetime remains. Without a loaded expiry (no scope), the UPDATE's own condition makes the
//! same decision, so a fresh row is never rewritten either way.

use std::collections::HashMap;

use actix_session::storage::{
    generate_session_key, LoadError, SaveError, SessionKey, SessionStore, UpdateError,
};
use actix_web::cookie::time::Duration as CookieDuration;
use chrono::{Duration, NaiveDateTime};
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::db::{self, DbConnection, DbPool};
use crate::session::queries::{self, NewSession};
use crate::session::scope;

type SessionState = HashMap<String, String>;

/// `update_ttl` writes a new expiry only when less than this share of the lifetime remains.
pub const EXTEND_BELOW: f64 = 0.8;

/// Whether a row expiring at `expires_at` has enough lifetime left at `now` that a read need
/// not write a new expiry (at least [`EXTEND_BELOW`] of `ttl`).
pub fn fresh_enough(expires_at: NaiveDateTime, now: NaiveDateTime, ttl: Duration) -> bool {
    (expires_at - now).num_milliseconds() as f64 >= EXTEND_BELOW * ttl.num_milliseconds() as f64
}

/// When the row loaded in this request will expire once the request is done: the expiry
/// `load` found, or a full lifetime from now when this request's `update_ttl` moves it.
/// `None` when no row was loaded in this request's scope.
pub fn expiry_after_this_request(now: NaiveDateTime, ttl: Duration) -> Option<NaiveDateTime> {
    let loaded = scope::loaded_expiry()?;
    Some(if fresh_enough(loaded, now, ttl) {
        loaded
    } else {
        now + ttl
    })
}

/// A session store on the `sessions` table of PostgreSQL or SQLite. Cheap to clone.
#[derive(Clone)]
pub struct DieselSessionStore {
    pool: DbPool,
    clock: Clock,
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
        Self { pool, clock }
    }

    async fn run<T, F>(&self, work: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> diesel::QueryResult<T> + Send + 'static,
    {
        Ok(db::with_conn(&self.pool, work).await?)
    }

    async fn insert_new(&self, state: String, ttl: &CookieDuration) -> anyhow::Result<SessionKey> {
        let key = generate_session_key();
        let id = session_id(&key);
        let now = self.clock.now();
        let expires_at = now + chrono_ttl(ttl);
        self.run(move |conn| {
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
        let row = self
            .run(move |conn| queries::find_live(conn, &id, now))
            .await
            .map_err(LoadError::Other)?;
        let Some(row) = row else {
            return Ok(None);
        };
        scope::remember_loaded_expiry(row.expires_at);
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
        let now = self.clock.now();
        let expires_at = now + chrono_ttl(ttl);
        let new_state = state.clone();
        let updated = self
            .run(move |conn| queries::update_state(conn, &id, &new_state, expires_at, now))
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
        if scope::loaded_expiry().is_some_and(|expires_at| fresh_enough(expires_at, now, ttl)) {
            return Ok(());
        }
        // Not known fresh (no scope, or little lifetime left): the UPDATE itself checks, so a
        // fresh row is still not rewritten.
        let due =
            now + Duration::milliseconds((EXTEND_BELOW * ttl.num_milliseconds() as f64) as i64);
        self.run(move |conn| queries::extend_if_due(conn, &id, now + ttl, now, due))
            .await?;
        Ok(())
    }

    async fn delete(&self, session_key: &SessionKey) -> anyhow::Result<()> {
        let id = session_id(session_key);
        self.run(move |conn| queries::delete(conn, &id)).await?;
        Ok(())
    }
}
