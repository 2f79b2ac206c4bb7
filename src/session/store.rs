//! `TextdropStore`: actix-session's `SessionStore`, the same semantics on every storage. What
//! differs between storages is only how a session's record is read and written
//! ([`Records`], one implementation per backend).
//!
//! It follows actix-session's `RedisSessionStore` semantics:
//! - `save` writes a new record under a fresh key from `generate_session_key()`;
//! - `update` of a record that expired or vanished saves a new session and returns its new key,
//!   so an unknown key is never adopted and a deleted session is never brought back;
//! - `load` never returns a record whose expiry or absolute bound has passed, whether or not
//!   cleanup ran.
//!
//! Only the SHA-256 of a session key is stored; the key itself lives in the visitor's encrypted
//! cookie. An upload is a key rotation: `update` (the session changed) finds the uploaded file
//! in the request's scope and calls [`Records::rotate`] with the old and a new key, which
//! writes the new record and supersedes the old one in one step; the middleware then sets the
//! cookie to the key `update` returns.
//!
//! The old record is kept for a grace period (`ROTATION_GRACE_SECS`), read-only: a browser
//! that never received the new key (a lost reply, a crash, a phone off the network) still sees
//! the previous file. It is never written or extended, and a rotation from it is refused (one
//! key has one successor), so an upload sent with it is refused (409). After the
//! grace its key loads nothing; a use then (while the record is kept, one more grace period)
//! is counted as a replayed or stolen cookie's signal, and logged without the key.
//!
//! Lifetimes follow the `lifetime` module: `load` leaves what it found in the scope, and `update_ttl`
//! writes only when a read must move the expiry. Without a scope (a store used on its own) the
//! record is read again instead, and the write's own conditions make the same decision.

use std::collections::HashMap;
use std::rc::Rc;

use actix_session::storage::{
    generate_session_key, LoadError, SaveError, SessionKey, SessionStore, UpdateError,
};
use actix_web::cookie::time::Duration as CookieDuration;
use chrono::Duration;
use prometheus::IntCounter;
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::session::lifetime::{self, MaxLifetime, EXTEND_BELOW};
use crate::session::records::{
    Extension, Fetch, Loaded, NewRecord, Records, Replacement, Rotation, StoreError, StoreResult,
};
use crate::session::scope::{self, PendingFile};

type SessionState = HashMap<String, String>;

/// The id under which a session key's record is stored: hex SHA-256 of the key.
pub fn session_id(key: &SessionKey) -> String {
    hex::encode(Sha256::digest(key.as_ref().as_bytes()))
}

fn chrono_ttl(ttl: &CookieDuration) -> Duration {
    Duration::seconds(ttl.whole_seconds().max(0))
}

/// Notes in the request's scope that the storage could not be reached (the page says "try
/// again", 503), and hands the cause on.
fn noted(err: StoreError) -> anyhow::Error {
    if err.is_unavailable() {
        scope::mark_store_unavailable();
    }
    err.into_cause()
}

/// A session store over one worker's [`Records`]. Cheap to clone.
#[derive(Clone)]
pub struct TextdropStore {
    records: Rc<dyn Records>,
    clock: Clock,
    max: MaxLifetime,
    grace: Duration,
    late_uses: IntCounter,
}

impl TextdropStore {
    /// A store whose rotations keep the old record, read-only, for `grace` (zero: delete it at
    /// once).
    pub fn new(
        records: Rc<dyn Records>,
        clock: Clock,
        max: MaxLifetime,
        grace: std::time::Duration,
    ) -> Self {
        Self {
            records,
            clock,
            max,
            grace: Duration::from_std(grace).unwrap_or(Duration::MAX),
            late_uses: IntCounter::new("superseded_key_uses", "unregistered")
                .expect("a valid counter"),
        }
    }

    /// Counts the uses of superseded keys after their grace period on `counter` (the
    /// `textdrop_superseded_key_uses_total` metric).
    pub fn counting_late_uses(mut self, counter: IntCounter) -> Self {
        self.late_uses = counter;
        self
    }

    /// What a rotation now does with the old record.
    fn rotation(&self, now: chrono::NaiveDateTime) -> Rotation {
        Rotation {
            now,
            keep_until: (self.grace > Duration::zero()).then(|| now + self.grace * 2),
        }
    }

    /// Whether a record superseded at `superseded_at` is past its grace period now.
    fn past_grace(&self, superseded_at: chrono::NaiveDateTime) -> bool {
        self.clock.now() >= superseded_at + self.grace
    }

    /// Whether the storage answers a trivial request (readiness).
    pub async fn ping(&self) -> StoreResult<()> {
        self.records.ping().await
    }

    /// A new record for `state` written now, holding this request's uploaded file if any.
    fn new_record(&self, state: String, ttl: &CookieDuration, file: Option<String>) -> NewRecord {
        let now = self.clock.now();
        NewRecord {
            state,
            created_at: now,
            expires_at: self.max.cap(now + chrono_ttl(ttl), now),
            file,
        }
    }

    /// Writes a new session under a fresh key, holding this request's uploaded file if any.
    async fn write_new(&self, state: String, ttl: &CookieDuration) -> StoreResult<SessionKey> {
        let key = generate_session_key();
        let (file, reservation) = match scope::take_pending_file() {
            Some(PendingFile { text, reservation }) => (Some(text), Some(reservation)),
            None => (None, None),
        };
        let record = self.new_record(state, ttl, file);
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
    async fn loaded(&self, id: &str) -> StoreResult<Option<Loaded>> {
        if let Some(loaded) = scope::loaded() {
            return Ok(Some(loaded));
        }
        let record = self.records.fetch(id, self.fetch_now(false)).await?;
        Ok(record.map(|record| record.loaded))
    }

    async fn update_inner(
        &self,
        session_key: SessionKey,
        state: String,
        ttl: &CookieDuration,
    ) -> StoreResult<SessionKey> {
        let id = session_id(&session_key);
        if scope::has_pending_file() {
            // An upload: the key rotates.
            return self.rotate_or_save(state, ttl, &id).await;
        }
        let Some(loaded) = self.loaded(&id).await? else {
            // Expired or deleted meanwhile: start a new session rather than revive the old key.
            return self.write_new(state, ttl).await;
        };
        let now = self.clock.now();
        let replacement = Replacement {
            state: state.clone(),
            file: None,
            expires_at: self.max.cap(now + chrono_ttl(ttl), loaded.created_at),
            now,
        };
        if self.records.replace(&id, replacement).await? {
            Ok(session_key)
        } else {
            self.write_new(state, ttl).await
        }
    }

    /// Rotates the session `old` to a fresh key holding `state` and the uploaded file; if
    /// `old` is no longer live, a new session under a fresh key.
    async fn rotate_or_save(
        &self,
        state: String,
        ttl: &CookieDuration,
        old: &str,
    ) -> StoreResult<SessionKey> {
        let Some(PendingFile { text, reservation }) = scope::take_pending_file() else {
            return self.write_new(state, ttl).await;
        };
        // A key has one successor: an upload sent with a key another upload has replaced (two
        // tabs, a lost reply, a planted key) is refused during the grace period, so a session
        // is one chain that forget removes whole, and a planted key never supersedes the
        // victim's session.
        if scope::loaded().is_some_and(|loaded| loaded.superseded_at.is_some()) {
            return Err(self.conflict());
        }
        let key = generate_session_key();
        let id = session_id(&key);
        let record = self.new_record(state, ttl, Some(text));
        let rotation = self.rotation(record.created_at);
        if let Err(record) = self.records.rotate(old, &id, record, rotation).await? {
            // Superseded meanwhile by a concurrent upload of the same session: refused the
            // same way. Gone (expired, forgotten): the upload starts a new session.
            let current = self.records.fetch(old, self.fetch_now(false)).await?;
            if current.is_some_and(|r| r.loaded.superseded_at.is_some()) {
                return Err(self.conflict());
            }
            self.records.insert(&id, record).await?;
        }
        reservation.stored();
        Ok(key)
    }

    /// The error of an upload that lost the race to rotate its session.
    fn conflict(&self) -> StoreError {
        scope::mark_rotation_conflict();
        StoreError::failed(anyhow::anyhow!(
            "another upload of the same session superseded it first"
        ))
    }
}

impl SessionStore for TextdropStore {
    async fn load(&self, session_key: &SessionKey) -> Result<Option<SessionState>, LoadError> {
        let fetch = self.fetch_now(scope::wants_file());
        let record = self
            .records
            .fetch(&session_id(session_key), fetch)
            .await
            .map_err(|e| LoadError::Other(noted(e)))?;
        let Some(record) = record else {
            return Ok(None);
        };
        if let Some(superseded_at) = record.loaded.superseded_at {
            if self.past_grace(superseded_at) {
                self.late_uses.inc();
                log::info!(
                    "a session key superseded {} s ago was used after its grace period \
                     (a replayed or stolen cookie?)",
                    (self.clock.now() - superseded_at).num_seconds()
                );
                return Ok(None);
            }
        }
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
        self.write_new(state, ttl)
            .await
            .map_err(|e| SaveError::Other(noted(e)))
    }

    async fn update(
        &self,
        session_key: SessionKey,
        session_state: SessionState,
        ttl: &CookieDuration,
    ) -> Result<SessionKey, UpdateError> {
        let state = serde_json::to_string(&session_state)
            .map_err(|e| UpdateError::Serialization(e.into()))?;
        self.update_inner(session_key, state, ttl)
            .await
            .map_err(|e| UpdateError::Other(noted(e)))
    }

    async fn update_ttl(
        &self,
        session_key: &SessionKey,
        ttl: &CookieDuration,
    ) -> anyhow::Result<()> {
        let id = session_id(session_key);
        let now = self.clock.now();
        let ttl = chrono_ttl(ttl);
        let Some(loaded) = self.loaded(&id).await.map_err(noted)? else {
            return Ok(());
        };
        if loaded.superseded_at.is_some() {
            // Read-only: its expiry is the grace period's.
            return Ok(());
        }
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
        self.records.extend(&id, extension).await.map_err(noted)
    }

    async fn delete(&self, session_key: &SessionKey) -> anyhow::Result<()> {
        self.records
            .remove(&session_id(session_key))
            .await
            .map_err(noted)
    }
}
