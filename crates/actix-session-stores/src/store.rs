//! [`Store`]: actix-session's `SessionStore`, the same semantics on every storage. What
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
//! cookie. `Session::renew()` and an attachment are key rotations: inside the request's layer
//! ([`layer`](crate::layer)) the store calls [`Records::rotate`] with the old and a new key,
//! which writes the new record and supersedes the old one in one step; the middleware then
//! sets the cookie to the key the store returns.
//!
//! The old record is kept for a grace period (`SessionConfig::rotation_grace`), read-only: a browser
//! that never received the new key (a lost reply, a crash, a phone off the network) still reads
//! the previous state. It is never written or extended, and it names its successor: a key has
//! one successor. The new key is derived from the old key, the new state and the attachment
//! ([`RotationKey`](crate::RotationKey)), so the same write sent again with the old key (a
//! double click, a retry) is recognised and answered with the key it was stored under; any
//! other write with a superseded key is refused (409 through the layer). Without a
//! grace period the old record stays as a tombstone (its link, no data) for
//! [`TOMBSTONE`], so that holds at every grace. After the grace its key loads nothing; a use
//! then (while the record is kept) is counted as a replayed or stolen cookie's signal, and
//! logged without the key. A delete from any key of a chain removes the whole chain.
//!
//! A record that no longer reads back (a date, a number or a text that does not parse) is no
//! session: `load` says so as a deserialization error, so actix-session starts an empty one
//! that keeps the key, and a delete still removes the record by it.
//!
//! Lifetimes follow the `lifetime` module: `load` leaves what it found in the layer's scope, and `update_ttl`
//! writes only when a read must move the expiry. Without a scope (a store used on its own) the
//! record is read again instead, and the write's own conditions make the same decision.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use actix_session::storage::{
    generate_session_key, LoadError, SaveError, SessionKey, SessionStore, UpdateError,
};
use actix_web::cookie::time::Duration as CookieDuration;
use chrono::Duration;
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::events::{Events, NoEvents, StoreCall};
use crate::layer::{self as scope, Attachment, HeldDelete, Superseded};
use crate::seal::{self, OpenError, Purpose, SealKeys};
use crate::session::lifetime::{self, MaxLifetime, EXTEND_BELOW};
use crate::session::records::{
    Extension, Fetch, Loaded, NewRecord, Records, Replacement, Rotation, StoreError, StoreResult,
};
use crate::session::rotation::{attachment_digest, RotationKey};
use crate::state::{self, SessionState};

/// How long a superseded record is kept at least: without a grace period, as a tombstone (no
/// state, no attachment), so that the same write sent again a moment later (a double click, a
/// retry after a lost connection) still finds the rotation it repeats.
pub const TOMBSTONE: std::time::Duration = std::time::Duration::from_secs(10);

/// The id under which a session key's record is stored: hex SHA-256 of the key. Logs and
/// caches can name a session by it without holding the key.
pub fn session_id(key: &SessionKey) -> String {
    hex::encode(Sha256::digest(key.as_ref().as_bytes()))
}

fn chrono_ttl(ttl: &CookieDuration) -> Duration {
    Duration::seconds(ttl.whole_seconds().max(0))
}

/// Notes in the request's scope that the storage could not be reached (the layer answers
/// 503), and hands the cause on.
fn noted(err: StoreError) -> anyhow::Error {
    if err.is_unavailable() {
        scope::mark_store_unavailable();
    }
    err.into_cause()
}

/// actix-session's `SessionStore` over one worker's records; what
/// [`Storage::store`](crate::Storage::store) hands each worker. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    records: Rc<dyn Records>,
    clock: Clock,
    max: MaxLifetime,
    grace: Duration,
    rotation_key: RotationKey,
    events: Arc<dyn Events>,
}

impl Store {
    /// A store over `records` whose rotations keep the old record, read-only, for `grace`
    /// (zero: a tombstone without data), deriving new keys under a secret of this process only
    /// (see [`with_rotation_key`](Self::with_rotation_key)).
    pub(crate) fn new(
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
            rotation_key: RotationKey::random(),
            events: Arc::new(NoEvents),
        }
    }

    /// Derives rotated keys under `key`: every instance that shares it recognises the same
    /// write sent again.
    pub(crate) fn with_rotation_key(mut self, key: RotationKey) -> Self {
        self.rotation_key = key;
        self
    }

    /// Reports store calls, superseded-key uses and corrupt records to `events`.
    pub(crate) fn with_events(mut self, events: Arc<dyn Events>) -> Self {
        self.events = events;
        self
    }

    /// What a rotation now does with the old record.
    fn rotation(&self, now: chrono::NaiveDateTime) -> Rotation {
        let kept = (self.grace * 2).max(Duration::from_std(TOMBSTONE).unwrap_or(self.grace));
        Rotation {
            now,
            keep_until: now + kept,
            keep_data: self.grace > Duration::zero(),
        }
    }

    /// Whether the storage answers a trivial request (a readiness probe).
    pub async fn ping(&self) -> Result<(), crate::Error> {
        self.records.ping().await.map_err(|err| {
            let kind = if err.is_unavailable() {
                crate::ErrorKind::Unavailable
            } else {
                crate::ErrorKind::Failed
            };
            crate::Error::new(kind, err.into_cause())
        })
    }

    /// Records a call's latency and outcome, and logs a failure with its cause (actix-session
    /// logs none).
    fn observed<T, E: std::fmt::Display>(
        &self,
        call: StoreCall,
        started: Instant,
        result: Result<T, E>,
    ) -> Result<T, E> {
        self.events
            .store_call(call, started.elapsed(), result.is_ok());
        if let Err(err) = &result {
            log::error!("session store: {} failed: {err:#}", call.as_str());
        }
        result
    }

    /// A new record for `state` written now, holding `attachment` if any.
    fn new_record(
        &self,
        state: String,
        ttl: &CookieDuration,
        attachment: Option<String>,
    ) -> NewRecord {
        let now = self.clock.now();
        NewRecord {
            state,
            created_at: now,
            expires_at: self.max.cap(now + chrono_ttl(ttl), now),
            attachment,
        }
    }

    /// Writes a new session under a fresh key, holding this request's attachment if any.
    async fn write_new(&self, state: String, ttl: &CookieDuration) -> StoreResult<SessionKey> {
        let (text, done) = match scope::take_pending() {
            Some(Attachment {
                text, on_stored, ..
            }) => (Some(text), on_stored),
            None => (None, None),
        };
        let (key, stored) = self.insert_new(self.new_record(state, ttl, text)).await?;
        if let Some(done) = done {
            done(stored);
        }
        Ok(key)
    }

    /// Writes `record` under a fresh key. The key is new, so finding its id taken can only
    /// mean an earlier attempt of this very insert went in (its connection was lost after the
    /// commit, and the statement ran again): done.
    async fn insert_new(&self, record: NewRecord) -> StoreResult<(SessionKey, u64)> {
        let key = generate_session_key();
        let id = session_id(&key);
        let record = sealed(&key, &id, record).await?;
        let stored = record.attachment_bytes() as u64;
        match self.records.insert(&id, record).await {
            Err(err) if !err.is_duplicate() => Err(err),
            _ => Ok((key, stored)),
        }
    }

    /// Which live record to fetch now, with its attachment or not.
    fn fetch_now(&self, with_attachment: bool) -> Fetch {
        let now = self.clock.now();
        Fetch {
            now,
            created_after: self.max.created_after(now),
            with_attachment,
        }
    }

    /// What this request's `load` found, or (outside a scope) the record as it is now, and
    /// whether it is sealed.
    async fn loaded(&self, id: &str) -> StoreResult<Option<(Loaded, bool)>> {
        if let Some(loaded) = scope::loaded() {
            return Ok(Some(loaded));
        }
        match self.records.fetch(id, self.fetch_now(false)).await {
            Ok(record) => Ok(record.map(|record| (record.loaded, seal::is_sealed(&record.state)))),
            // A record that does not read back is no session.
            Err(err) if err.is_corrupt() => Ok(None),
            Err(err) => Err(err),
        }
    }

    async fn update_inner(
        &self,
        session_key: SessionKey,
        state: String,
        ttl: &CookieDuration,
    ) -> StoreResult<SessionKey> {
        if scope::has_pending() {
            // An attachment: the key rotates.
            return self.rotate_from(&session_key, state, ttl).await;
        }
        let id = session_id(&session_key);
        let Some((loaded, is_sealed)) = self.loaded(&id).await? else {
            // Expired or deleted meanwhile: start a new session rather than revive the old key.
            return self.write_new(state, ttl).await;
        };
        let now = self.clock.now();
        // A record written before sealing keeps its plain attachment, so its state stays
        // plain too until its next rotation.
        let stored = if is_sealed {
            SealKeys::of(session_key.as_ref()).seal(Purpose::State, &id, &state)
        } else {
            state.clone()
        };
        let replacement = Replacement {
            state: stored,
            attachment: None,
            expires_at: self.max.cap(now + chrono_ttl(ttl), loaded.created_at),
            now,
        };
        if self.records.replace(&id, replacement).await? {
            Ok(session_key)
        } else {
            self.write_new(state, ttl).await
        }
    }

    /// Rotates the session `old` to the key derived from it, `state` and this request's
    /// attachment (or, for a renew without one, the attachment `old` holds). If `old` was
    /// superseded already, the write is the same one sent again (answered with that key) or
    /// another (refused); if it is no longer live, the write starts a new session under a
    /// fresh key.
    async fn rotate_from(
        &self,
        old: &SessionKey,
        state: String,
        ttl: &CookieDuration,
    ) -> StoreResult<SessionKey> {
        let old_id = session_id(old);
        let (text, digest, done) = match scope::take_pending() {
            Some(attachment) => {
                let digest = attachment
                    .digest
                    .unwrap_or_else(|| attachment_digest(&attachment.text));
                (Some(attachment.text), digest, attachment.on_stored)
            }
            None => {
                // A renew: the new record keeps the attachment the old one holds.
                let kept = match self.records.fetch(&old_id, self.fetch_now(true)).await {
                    Ok(Some(record)) => opened_attachment(old, &old_id, record).await?,
                    Ok(None) => None,
                    Err(err) if err.is_corrupt() => None,
                    Err(err) => return Err(err),
                };
                let digest = attachment_digest(kept.as_deref().unwrap_or_default());
                (kept, digest, None)
            }
        };
        let new = self.rotation_key.successor(old, &state, &digest);
        let new_id = session_id(&new);
        if let Some(superseded) = scope::superseded() {
            return self.sent_again(superseded.successor.as_deref(), new, &new_id);
        }
        let record = sealed(&new, &new_id, self.new_record(state, ttl, text)).await?;
        let rotation = self.rotation(record.created_at);
        let stored = record.attachment_bytes() as u64;
        let Err(record) = self
            .records
            .rotate(&old_id, &new_id, record, rotation)
            .await?
        else {
            if let Some(done) = done {
                done(stored);
            }
            return Ok(new);
        };
        // Not live and current any more: superseded meanwhile (by this same write sent twice
        // at once, by another, or by this rotation itself before its connection was lost), or
        // gone (expired, deleted).
        let now_there = match self.records.fetch(&old_id, self.fetch_now(false)).await {
            Err(err) if err.is_corrupt() => None,
            fetched => fetched?,
        };
        match now_there {
            Some(now_there) if now_there.loaded.superseded_at.is_some() => {
                self.sent_again(now_there.successor.as_deref(), new, &new_id)
            }
            _ => {
                // Sealed under the key it was not stored under: opened to be sealed again
                // under the fresh one.
                let record = opened(&new, &new_id, record).await?;
                let (key, stored) = self.insert_new(record).await?;
                if let Some(done) = done {
                    done(stored);
                }
                Ok(key)
            }
        }
    }

    /// A write with a key already superseded by `successor`: the same write sent again (its
    /// derived id is that successor) is answered with its key, as the success it was; any
    /// other is refused.
    fn sent_again(
        &self,
        successor: Option<&str>,
        new: SessionKey,
        new_id: &str,
    ) -> StoreResult<SessionKey> {
        if successor == Some(new_id) {
            log::info!(
                "a rotation was sent again with the key it had replaced: answered with the key \
                 it is stored under"
            );
            return Ok(new);
        }
        scope::mark_rotation_conflict();
        Err(StoreError::failed(
            "a write with a key another rotation had replaced was refused",
        ))
    }

    async fn load_inner(
        &self,
        session_key: &SessionKey,
    ) -> Result<Option<SessionState>, LoadError> {
        let fetch = self.fetch_now(scope::wants_attachment());
        let id = session_id(session_key);
        let record = match self.records.fetch(&id, fetch).await {
            Ok(record) => record,
            Err(err) if err.is_corrupt() => {
                self.events.corrupt_record();
                log::warn!("a session record does not read back, so it is no session: {err}");
                return Err(LoadError::Deserialization(err.into_cause()));
            }
            Err(err) => return Err(LoadError::Other(noted(err))),
        };
        let Some(record) = record else {
            return Ok(None);
        };
        if let Some(superseded_at) = record.loaded.superseded_at {
            let now = self.clock.now();
            let shown_until = superseded_at + self.grace;
            let past_grace = now >= shown_until;
            scope::remember_superseded(Superseded {
                key: scope::copy_of(session_key),
                successor: record.successor,
                shown_until: (!past_grace).then_some(shown_until),
                cookie_secs: (shown_until - now).num_seconds(),
            });
            if past_grace {
                self.events.superseded_key_used();
                log::info!(
                    "a session key superseded {} s ago was used after its grace period \
                     (a replayed or stolen cookie?)",
                    (now - superseded_at).num_seconds()
                );
                return Ok(None);
            }
        }
        let is_sealed = seal::is_sealed(&record.state);
        let (text, attachment) = if is_sealed {
            match self
                .open(session_key, &id, record.state, record.attachment)
                .await
            {
                Ok(opened) => opened,
                Err(OpenFailure::Refused(err)) => {
                    self.events.corrupt_record();
                    log::warn!("a sealed session record does not open, so it is no session: {err}");
                    return Err(LoadError::Deserialization(err.into()));
                }
                Err(OpenFailure::Store(err)) => return Err(LoadError::Other(noted(err))),
            }
        } else {
            (record.state, record.attachment)
        };
        let state = state::decode(&text);
        if state.is_err() {
            self.events.corrupt_record();
        }
        scope::remember_loaded(id, record.loaded, is_sealed, attachment);
        state
            .map(Some)
            .map_err(|e| LoadError::Deserialization(e.into()))
    }

    async fn save_inner(
        &self,
        session_state: SessionState,
        ttl: &CookieDuration,
    ) -> Result<SessionKey, SaveError> {
        let state =
            state::encode(&session_state).map_err(|e| SaveError::Serialization(e.into()))?;
        let saved = if let Some(old) = scope::take_held_delete() {
            // `Session::renew()`: the delete held back a moment ago and this save are one
            // rotation.
            self.rotate_from(&old, state, ttl).await
        } else {
            match scope::superseded() {
                // A write sent with a key whose record is superseded and past its grace: a new
                // session to actix-session, a rotation from that key to the store.
                Some(superseded) if scope::has_pending() => {
                    self.rotate_from(&superseded.key, state, ttl).await
                }
                _ => self.write_new(state, ttl).await,
            }
        };
        saved.map_err(|e| SaveError::Other(noted(e)))
    }

    async fn update_ttl_inner(
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
        if loaded.0.superseded_at.is_some() {
            // Read-only: its expiry is the grace period's.
            return Ok(());
        }
        let Some(expires_at) = lifetime::extension(loaded.0, now, ttl, self.max) else {
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

    /// The sealed state and attachment of the record `id`, opened with `key`.
    async fn open(
        &self,
        key: &SessionKey,
        id: &str,
        state: String,
        attachment: Option<String>,
    ) -> Result<(String, Option<String>), OpenFailure> {
        let keys = SealKeys::of(key.as_ref());
        let state = keys
            .open(Purpose::State, id, &state)
            .map_err(OpenFailure::Refused)?;
        let attachment = match attachment {
            Some(sealed) => Some(
                seal::open_off_worker(keys.take(Purpose::Attachment), id.to_owned(), sealed)
                    .await
                    .map_err(OpenFailure::Store)?
                    .map_err(OpenFailure::Refused)?,
            ),
            None => None,
        };
        Ok((state, attachment))
    }

    /// Removes the session `key` belongs to, with its whole chain of keys, now.
    async fn remove(&self, key: &SessionKey) -> anyhow::Result<()> {
        self.records.remove(&session_id(key)).await.map_err(noted)
    }
}

impl SessionStore for Store {
    async fn load(&self, session_key: &SessionKey) -> Result<Option<SessionState>, LoadError> {
        let started = Instant::now();
        let result = self.load_inner(session_key).await;
        self.observed(StoreCall::Load, started, result.as_ref().map_err(Chain))
            .ok();
        result
    }

    async fn save(
        &self,
        session_state: SessionState,
        ttl: &CookieDuration,
    ) -> Result<SessionKey, SaveError> {
        let started = Instant::now();
        let result = self.save_inner(session_state, ttl).await;
        self.observed(StoreCall::Save, started, result.as_ref().map_err(Chain))
            .ok();
        result
    }

    async fn update(
        &self,
        session_key: SessionKey,
        session_state: SessionState,
        ttl: &CookieDuration,
    ) -> Result<SessionKey, UpdateError> {
        let started = Instant::now();
        let result = match state::encode(&session_state) {
            Ok(state) => self
                .update_inner(session_key, state, ttl)
                .await
                .map_err(|e| UpdateError::Other(noted(e))),
            Err(e) => Err(UpdateError::Serialization(e.into())),
        };
        self.observed(StoreCall::Update, started, result.as_ref().map_err(Chain))
            .ok();
        result
    }

    async fn update_ttl(
        &self,
        session_key: &SessionKey,
        ttl: &CookieDuration,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let result = self.update_ttl_inner(session_key, ttl).await;
        self.observed(StoreCall::UpdateTtl, started, result)
    }

    async fn delete(&self, session_key: &SessionKey) -> anyhow::Result<()> {
        // Inside the layer, held back until the request ends: a `save` that follows (a renew)
        // makes it a rotation; otherwise (a purge) it runs then.
        let store = self.clone();
        let key = scope::copy_of(session_key);
        let held = HeldDelete {
            key: scope::copy_of(session_key),
            run: Box::new(move || {
                Box::pin(async move {
                    let started = Instant::now();
                    let result = store.remove(&key).await;
                    store.observed(StoreCall::Delete, started, result)
                })
            }),
        };
        match scope::hold_delete(held) {
            Ok(()) => Ok(()),
            Err(held) => (held.run)().await,
        }
    }
}

/// Why a sealed record was not opened.
enum OpenFailure {
    /// It does not open: no session.
    Refused(OpenError),
    /// The work could not run.
    Store(StoreError),
}

/// `record` (plain) sealed for the key `key`, stored under `id`: its state here, its
/// attachment (on the blocking pool when long).
async fn sealed(key: &SessionKey, id: &str, mut record: NewRecord) -> StoreResult<NewRecord> {
    let keys = SealKeys::of(key.as_ref());
    record.state = keys.seal(Purpose::State, id, &record.state);
    if let Some(text) = record.attachment.take() {
        let key = keys.take(Purpose::Attachment);
        record.attachment = Some(seal::seal_off_worker(key, id.to_owned(), text).await?);
    }
    Ok(record)
}

/// `record`, sealed by [`sealed`] with `key` and `id`, opened again.
async fn opened(key: &SessionKey, id: &str, mut record: NewRecord) -> StoreResult<NewRecord> {
    let keys = SealKeys::of(key.as_ref());
    let refused = |err: OpenError| StoreError::failed(format!("a record this store sealed: {err}"));
    record.state = keys
        .open(Purpose::State, id, &record.state)
        .map_err(refused)?;
    if let Some(sealed) = record.attachment.take() {
        let key = keys.take(Purpose::Attachment);
        record.attachment = Some(
            seal::open_off_worker(key, id.to_owned(), sealed)
                .await?
                .map_err(refused)?,
        );
    }
    Ok(record)
}

/// The attachment of `record` (stored under `id`, the record of `key`), opened if sealed;
/// `None` when it has none or it does not open.
async fn opened_attachment(
    key: &SessionKey,
    id: &str,
    record: crate::session::records::Record,
) -> StoreResult<Option<String>> {
    let Some(attachment) = record.attachment else {
        return Ok(None);
    };
    if !seal::is_sealed(&record.state) {
        return Ok(Some(attachment));
    }
    let keys = SealKeys::of(key.as_ref()).take(Purpose::Attachment);
    Ok(seal::open_off_worker(keys, id.to_owned(), attachment)
        .await?
        .ok())
}

/// An actix-session error's whole chain on one line.
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

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;
    use crate::session::records::{Record, Rotated, StoreFuture};

    /// The records of a real storage whose rotations run twice, as the pool runs work whose
    /// connection was lost after the commit: the first one writes, the second finds the old
    /// record superseded.
    struct CommitThenLost(Rc<dyn Records>);

    impl Records for CommitThenLost {
        fn fetch<'a>(&'a self, id: &'a str, fetch: Fetch) -> StoreFuture<'a, Option<Record>> {
            self.0.fetch(id, fetch)
        }
        fn insert<'a>(&'a self, id: &'a str, record: NewRecord) -> StoreFuture<'a, ()> {
            self.0.insert(id, record)
        }
        fn rotate<'a>(
            &'a self,
            old_id: &'a str,
            new_id: &'a str,
            record: NewRecord,
            rotation: Rotation,
        ) -> StoreFuture<'a, Rotated> {
            Box::pin(async move {
                let again = NewRecord {
                    state: record.state.clone(),
                    attachment: record.attachment.clone(),
                    ..record
                };
                self.0.rotate(old_id, new_id, record, rotation).await?.ok();
                self.0.rotate(old_id, new_id, again, rotation).await
            })
        }
        fn replace<'a>(&'a self, id: &'a str, with: Replacement) -> StoreFuture<'a, bool> {
            self.0.replace(id, with)
        }
        fn extend<'a>(&'a self, id: &'a str, extension: Extension) -> StoreFuture<'a, ()> {
            self.0.extend(id, extension)
        }
        fn remove<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()> {
            self.0.remove(id)
        }
        fn ping(&self) -> StoreFuture<'_, ()> {
            self.0.ping()
        }
    }

    fn pending(text: &str) -> Attachment {
        Attachment::new(text)
    }

    #[cfg(feature = "sqlite")]
    #[actix_web::test]
    async fn a_rotation_run_again_after_its_commit_is_the_success_it_was() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let config = crate::Config::new(crate::DatabaseUrl::parse(&url).expect("a URL"));
        let storage = crate::backends::connect(&config).await.expect("storage");
        let records: Rc<dyn Records> = Rc::new(CommitThenLost(storage.records()));
        let store = Store::new(
            records,
            Clock::system(),
            MaxLifetime::default(),
            std::time::Duration::from_secs(60),
        );
        let ttl = CookieDuration::seconds(3600);
        let state = || SessionState::from([("n".to_owned(), "1".to_owned())]);
        let old = scope::with_pending(pending("one\n"), store.save(state(), &ttl))
            .await
            .expect("a first upload");

        let rotated = scope::with_pending(pending("two\n"), store.update(old, state(), &ttl)).await;

        let new = rotated.expect("the rotation that ran twice is a success");
        let fetch = store.fetch_now(true);
        let record = storage
            .records()
            .fetch(&session_id(&new), fetch)
            .await
            .expect("fetch")
            .expect("the new key's record");
        assert!(seal::is_sealed(
            record.attachment.as_deref().expect("an attachment")
        ));
        let opened = opened_attachment(&new, &session_id(&new), record)
            .await
            .expect("open");
        assert_eq!(opened.as_deref(), Some("two\n"));
    }
}
