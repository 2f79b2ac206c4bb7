//! `DieselSessionStore`: actix-session's `SessionStore` on the `sessions` table.
//!
//! It follows actix-session's `RedisSessionStore` semantics:
//! - `save` inserts a new row under a fresh key from `generate_session_key()`;
//! - `update` of a row that expired or vanished saves a new session and returns its new key, so
//!   an unknown key is never adopted and a deleted session is never brought back;
//! - `load` never returns a row whose expiry or absolute bound has passed, whether or not
//!   cleanup ran.
//!
//! Only the SHA-256 of a session key is stored; the key itself lives in the visitor's encrypted
//! cookie. Every Diesel call, the pool checkout included, runs through [`db::with_conn`].
//!
//! A key rotation (an upload renews the session) writes the new row and deletes the old one in
//! one transaction: actix-session's `delete`, then `save`, become one step (see [`scope`]).
//!
//! The uploaded file is not in the session map: the upload hands it over in the request's scope
//! and it goes to its own `file` column as the text it is ([`scope`]); `load` fetches it only
//! for the page that shows it. Lifetimes follow [`lifetime`]: `load` leaves what it found in the
//! scope, and `update_ttl` writes only when a read must move the expiry. Without a scope (a
//! store used on its own) the UPDATE's own conditions make the same decision.

use std::collections::HashMap;

use actix_session::storage::{
    generate_session_key, LoadError, SaveError, SessionKey, SessionStore, UpdateError,
};
use actix_web::cookie::time::Duration as CookieDuration;
use chrono::Duration;
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::db::{self, DbConnection, DbPool};
use crate::limits::Reservation;
use crate::session::lifetime::{self, MaxLifetime, EXTEND_BELOW};
use crate::session::queries::{self, NewSession};
use crate::session::scope::{self, Loaded, PendingFile};

type SessionState = HashMap<String, String>;

/// A session store on the `sessions` table of PostgreSQL or SQLite. Cheap to clone.
#[derive(Clone)]
pub struct DieselSessionStore {
    pool: DbPool,
    clock: Clock,
    max: MaxLifetime,
}

/// The row id under which a session key's state is stored: hex SHA-256 of the key.
pub fn session_id(key: &SessionKey) -> String {
    hex::encode(Sha256::digest(key.as_ref().as_bytes()))
}

pub(crate) fn chrono_ttl(ttl: &CookieDuration) -> Duration {
    Duration::seconds(ttl.whole_seconds().max(0))
}

impl DieselSessionStore {
    pub fn new(pool: DbPool, clock: Clock, max: MaxLifetime) -> Self {
        Self { pool, clock, max }
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
        let expires_at = self.max.cap(now + chrono_ttl(ttl), now);
        let (file, reservation) = split(scope::take_pending_file());
        let replaces = scope::take_replaced_key();
        self.run(move |conn| {
            let row = NewSession {
                id: &id,
                state: &state,
                expires_at,
                created_at: now,
                file: file.as_deref(),
                file_bytes: file.as_ref().map_or(0, |f| f.len() as i64),
            };
            queries::insert(conn, &row, replaces.as_deref())
        })
        .await?;
        if let Some(reservation) = reservation {
            reservation.stored();
        }
        Ok(key)
    }

    /// What this request's `load` found, or (outside a scope) the row as it is now.
    async fn loaded(&self, id: &str) -> anyhow::Result<Option<Loaded>> {
        if let Some(loaded) = scope::loaded() {
            return Ok(Some(loaded));
        }
        let (id, now) = (id.to_owned(), self.clock.now());
        let after = self.max.created_after(now);
        let row = self
            .run(move |conn| queries::find_live(conn, &id, now, after, false))
            .await?;
        Ok(row.map(|row| Loaded {
            expires_at: row.expires_at,
            created_at: row.created_at,
        }))
    }
}

/// A pending upload's text and its reservation, apart.
fn split(pending: Option<PendingFile>) -> (Option<String>, Option<Reservation>) {
    match pending {
        Some(PendingFile { text, reservation }) => (Some(text), Some(reservation)),
        None => (None, None),
    }
}

impl SessionStore for DieselSessionStore {
    async fn load(&self, session_key: &SessionKey) -> Result<Option<SessionState>, LoadError> {
        let id = session_id(session_key);
        let now = self.clock.now();
        let after = self.max.created_after(now);
        let with_file = scope::wants_file();
        let row = self
            .run(move |conn| queries::find_live(conn, &id, now, after, with_file))
            .await
            .map_err(LoadError::Other)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let loaded = Loaded {
            expires_at: row.expires_at,
            created_at: row.created_at,
        };
        scope::remember_loaded(loaded, row.file);
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
        let Some(loaded) = self.loaded(&id).await.map_err(UpdateError::Other)? else {
            // Expired or deleted meanwhile: start a new session rather than revive the old key.
            return self
                .insert_new(state, ttl)
                .await
                .map_err(UpdateError::Other);
        };
        let now = self.clock.now();
        let expires_at = self.max.cap(now + chrono_ttl(ttl), loaded.created_at);
        let (file, reservation) = split(scope::take_pending_file());
        let new_state = state.clone();
        let updated = self
            .run(move |conn| {
                queries::update_state(conn, &id, &new_state, file.as_deref(), expires_at, now)
            })
            .await
            .map_err(UpdateError::Other)?;
        if updated == 0 {
            return self
                .insert_new(state, ttl)
                .await
                .map_err(UpdateError::Other);
        }
        if let Some(reservation) = reservation {
            reservation.stored();
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
        let Some(loaded) = self.loaded(&id).await? else {
            return Ok(());
        };
        let Some(expires_at) = lifetime::extension(loaded, now, ttl, self.max) else {
            return Ok(());
        };
        // The UPDATE checks again, so requests of one session that overlap never rewrite a
        // row one of them already moved.
        let due =
            now + Duration::milliseconds((EXTEND_BELOW * ttl.num_milliseconds() as f64) as i64);
        self.run(move |conn| queries::extend_if_due(conn, &id, expires_at, now, due))
            .await?;
        Ok(())
    }

    async fn delete(&self, session_key: &SessionKey) -> anyhow::Result<()> {
        let id = session_id(session_key);
        if scope::defer_delete(&id) {
            return Ok(()); // a key rotation: `save` deletes it with its insert
        }
        self.run(move |conn| queries::delete(conn, &id)).await?;
        Ok(())
    }
}
