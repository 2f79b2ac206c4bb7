//! `TextdropStore`: actix-session's `SessionStore`, the same semantics on every storage. What
//! differs between SQL and Redis is only how a session's record is read and written
//! ([`Records`]: `sql_records.rs`, `redis_records.rs`).
//!
//! It follows actix-session's `RedisSessionStore` semantics:
//! - `save` writes a new record under a fresh key from `generate_session_key()`;
//! - `update` of a record that expired or vanished saves a new session and returns its new key,
//!   so an unknown key is never adopted and a deleted session is never brought back;
//! - `load` never returns a record whose expiry or absolute bound has passed, whether or not
//!   cleanup ran.
//!
//! Only the SHA-256 of a session key is stored; the key itself lives in the visitor's encrypted
//! cookie. A key rotation (an upload renews the session) writes the new record and deletes the
//! old one in one step: actix-session's `delete`, then `save`, meet in the request's [`scope`].
//!
//! The uploaded file is not in the session map: the upload hands it over in the request's scope
//! and it is stored as the text it is; `load` fetches it only for the page that shows it.
//! Lifetimes follow [`lifetime`]: `load` leaves what it found in the scope, and `update_ttl`
//! writes only when a read must move the expiry. Without a scope (a store used on its own) the
//! record is read again instead, and the write's own conditions make the same decision.

use std::collections::HashMap;
use std::future::Future;

use actix_session::storage::{
    generate_session_key, LoadError, SaveError, SessionKey, SessionStore, UpdateError,
};
use actix_web::cookie::time::Duration as CookieDuration;
use chrono::{Duration, NaiveDateTime};
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::session::lifetime::{self, MaxLifetime, EXTEND_BELOW};
use crate::session::scope::{self, Loaded, PendingFile};

type SessionState = HashMap<String, String>;

/// A live session's record as a storage returns it.
#[derive(Debug)]
pub struct Record {
    pub state: String,
    pub loaded: Loaded,
    /// The file, when it was asked for and there is one.
    pub file: Option<String>,
}

/// A new record; its creation time is also "now" for the write.
#[derive(Debug)]
pub struct NewRecord {
    pub state: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub file: Option<String>,
    /// A key rotation: the id of the record this one replaces, deleted in the same step.
    pub replaces: Option<String>,
}

/// Which record a fetch wants: live at `now`, created after `created_after`, with its file or
/// not.
#[derive(Debug, Clone, Copy)]
pub struct Fetch {
    pub now: NaiveDateTime,
    pub created_after: NaiveDateTime,
    pub with_file: bool,
}

/// A new state (and file, when given) for a live record, and its new expiry.
#[derive(Debug)]
pub struct Replacement {
    pub state: String,
    pub file: Option<String>,
    pub expires_at: NaiveDateTime,
    pub now: NaiveDateTime,
}

/// A later expiry for a live record, written only if it still expires before `due` (no other
/// request moved it) and before `expires_at`.
#[derive(Debug, Clone, Copy)]
pub struct Extension {
    pub expires_at: NaiveDateTime,
    pub now: NaiveDateTime,
    pub due: NaiveDateTime,
}

/// How one storage reads and writes session records, addressed by [`session_id`]. Times are the
/// app's clock.
pub trait Records: Clone {
    /// The live record `id` that `fetch` describes.
    fn fetch(&self, id: &str, fetch: Fetch)
        -> impl Future<Output = anyhow::Result<Option<Record>>>;

    /// Writes `record` under `id`, and deletes the record it replaces in the same step.
    fn insert(&self, id: &str, record: NewRecord) -> impl Future<Output = anyhow::Result<()>>;

    /// Replaces the live record `id`'s state; `false` when there is no live record.
    fn replace(&self, id: &str, with: Replacement) -> impl Future<Output = anyhow::Result<bool>>;

    /// Moves the live record `id`'s expiry as `extension` says.
    fn extend(&self, id: &str, extension: Extension) -> impl Future<Output = anyhow::Result<()>>;

    /// Deletes the record `id`, live or not.
    fn remove(&self, id: &str) -> impl Future<Output = anyhow::Result<()>>;
}

/// The id under which a session key's record is stored: hex SHA-256 of the key.
pub fn session_id(key: &SessionKey) -> String {
    hex::encode(Sha256::digest(key.as_ref().as_bytes()))
}

fn chrono_ttl(ttl: &CookieDuration) -> Duration {
    Duration::seconds(ttl.whole_seconds().max(0))
}

/// A session store over `R`. Cheap to clone when `R` is.
#[derive(Clone)]
pub struct TextdropStore<R> {
    records: R,
    clock: Clock,
    max: MaxLifetime,
}

impl<R: Records> TextdropStore<R> {
    pub fn with_records(records: R, clock: Clock, max: MaxLifetime) -> Self {
        Self {
            records,
            clock,
            max,
        }
    }

    async fn insert_new(&self, state: String, ttl: &CookieDuration) -> anyhow::Result<SessionKey> {
        let key = generate_session_key();
        let now = self.clock.now();
        let (file, reservation) = match scope::take_pending_file() {
            Some(PendingFile { text, reservation }) => (Some(text), Some(reservation)),
            None => (None, None),
        };
        let record = NewRecord {
            state,
            created_at: now,
            expires_at: self.max.cap(now + chrono_ttl(ttl), now),
            file,
            replaces: scope::take_replaced_key(),
        };
        self.records.insert(&session_id(&key), record).await?;
        if let Some(reservation) = reservation {
            reservation.stored();
        }
        Ok(key)
    }

    /// Which live record to fetch now, with its file or not.
    fn fetch_now(&self, with_file: bool) -> Fetch {
        let now = self.clock.now();
        Fetch {
            now,
            created_after: self.max.created_after(now),
            with_file,
        }
    }

    /// What this request's `load` found, or (outside a scope) the record as it is now.
    async fn loaded(&self, id: &str) -> anyhow::Result<Option<Loaded>> {
        if let Some(loaded) = scope::loaded() {
            return Ok(Some(loaded));
        }
        let record = self.records.fetch(id, self.fetch_now(false)).await?;
        Ok(record.map(|record| record.loaded))
    }
}

impl<R: Records> SessionStore for TextdropStore<R> {
    async fn load(&self, session_key: &SessionKey) -> Result<Option<SessionState>, LoadError> {
        let fetch = self.fetch_now(scope::wants_file());
        let record = self
            .records
            .fetch(&session_id(session_key), fetch)
            .await
            .map_err(LoadError::Other)?;
        let Some(record) = record else {
            return Ok(None);
        };
        scope::remember_loaded(record.loaded, record.file);
        serde_json::from_str(&record.state)
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
        let loaded = self.loaded(&id).await.map_err(UpdateError::Other)?;
        let Some(loaded) = loaded else {
            // Expired or deleted meanwhile: start a new session rather than revive the old key.
            return self
                .insert_new(state, ttl)
                .await
                .map_err(UpdateError::Other);
        };
        let now = self.clock.now();
        let expires_at = self.max.cap(now + chrono_ttl(ttl), loaded.created_at);
        let pending = scope::take_pending_file();
        let replacement = Replacement {
            state: state.clone(),
            file: pending.as_ref().map(|p| p.text.clone()),
            expires_at,
            now,
        };
        let replaced = self
            .records
            .replace(&id, replacement)
            .await
            .map_err(UpdateError::Other)?;
        if !replaced {
            if let Some(pending) = pending {
                scope::put_pending_file(pending);
            }
            return self
                .insert_new(state, ttl)
                .await
                .map_err(UpdateError::Other);
        }
        if let Some(pending) = pending {
            pending.reservation.stored();
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
        // The write checks again, so requests of one session that overlap never rewrite a
        // record one of them already moved.
        let due =
            now + Duration::milliseconds((EXTEND_BELOW * ttl.num_milliseconds() as f64) as i64);
        let extension = Extension {
            expires_at,
            now,
            due,
        };
        self.records.extend(&id, extension).await
    }

    async fn delete(&self, session_key: &SessionKey) -> anyhow::Result<()> {
        let id = session_id(session_key);
        if scope::defer_delete(&id) {
            return Ok(()); // a key rotation: `save` deletes it with its write
        }
        self.records.remove(&id).await
    }
}
