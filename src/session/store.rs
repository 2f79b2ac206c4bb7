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
//! the previous file. It is never written or extended, and it names its successor: a key has
//! one successor. The new key is derived from the old key and the upload
//! ([`rotation`](crate::session::rotation)), so the same upload sent again with the old key (a
//! double click, a retry) is recognised and answered with the key it was stored under; any
//! other upload with a superseded key is refused (409, "a newer upload replaced it"). Without a
//! grace period the old record stays as a tombstone (its link, no data) for
//! [`TOMBSTONE`], so that holds at every grace. After the grace its key loads nothing; a use
//! then (while the record is kept) is counted as a replayed or stolen cookie's signal, and
//! logged without the key. Forget from any key of a chain removes the whole chain.
//!
//! A record that no longer reads back (a date, a number or a text that does not parse) is no
//! session: `load` says so as a deserialization error, so actix-session starts an empty one
//! that keeps the key, and forget still deletes the record by it.
//!
//! Lifetimes follow the `lifetime` module: `load` leaves what it found in the scope, and `update_ttl`
//! writes only when a read must move the expiry. Without a scope (a store used on its own) the
//! record is read again instead, and the write's own conditions make the same decision.

use std::collections::{BTreeMap, HashMap};
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
use crate::session::rotation::RotationKey;
use crate::session::scope::{self, PendingFile, Superseded};

type SessionState = HashMap<String, String>;

/// How long a superseded record is kept at least: without a grace period, as a tombstone (no
/// state, no file), so that the same upload sent again a moment later (a double click, a retry
/// after a lost connection) still finds the rotation it repeats.
pub const TOMBSTONE: std::time::Duration = std::time::Duration::from_secs(10);

/// The id under which a session key's record is stored: hex SHA-256 of the key.
pub fn session_id(key: &SessionKey) -> String {
    hex::encode(Sha256::digest(key.as_ref().as_bytes()))
}

/// A session state as stored: its keys in order, so that the same state is always the same
/// text (a rotation's key is derived from it).
fn stored_state(state: &SessionState) -> serde_json::Result<String> {
    serde_json::to_string(&state.iter().collect::<BTreeMap<_, _>>())
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
    rotation_key: RotationKey,
    late_uses: IntCounter,
    corrupt: IntCounter,
}

impl TextdropStore {
    /// A store whose rotations keep the old record, read-only, for `grace` (zero: a tombstone
    /// without data), deriving new keys under a secret of this process only (see
    /// [`with_rotation_key`](Self::with_rotation_key)).
    pub fn new(
        records: Rc<dyn Records>,
        clock: Clock,
        max: MaxLifetime,
        grace: std::time::Duration,
    ) -> Self {
        let unregistered =
            |name: &str| IntCounter::new(name, "unregistered").expect("a valid counter");
        Self {
            records,
            clock,
            max,
            grace: Duration::from_std(grace).unwrap_or(Duration::MAX),
            rotation_key: RotationKey::random(),
            late_uses: unregistered("superseded_key_uses"),
            corrupt: unregistered("corrupt_records"),
        }
    }

    /// Derives rotated keys under `key`: every instance that shares it recognises the same
    /// upload sent again.
    pub fn with_rotation_key(mut self, key: RotationKey) -> Self {
        self.rotation_key = key;
        self
    }

    /// Counts the uses of superseded keys after their grace period on `counter` (the
    /// `textdrop_superseded_key_uses_total` metric).
    pub fn counting_late_uses(mut self, counter: IntCounter) -> Self {
        self.late_uses = counter;
        self
    }

    /// Counts the records that did not read back on `counter` (the
    /// `textdrop_corrupt_records_total` metric).
    pub fn counting_corrupt_records(mut self, counter: IntCounter) -> Self {
        self.corrupt = counter;
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
        let (file, reservation) = match scope::take_pending_file() {
            Some(PendingFile {
                text, reservation, ..
            }) => (Some(text), Some(reservation)),
            None => (None, None),
        };
        let key = self.insert_new(self.new_record(state, ttl, file)).await?;
        if let Some(reservation) = reservation {
            reservation.stored();
        }
        Ok(key)
    }

    /// Writes `record` under a fresh key. The key is new, so finding its id taken can only
    /// mean an earlier attempt of this very insert went in (its connection was lost after the
    /// commit, and the statement ran again): done.
    async fn insert_new(&self, record: NewRecord) -> StoreResult<SessionKey> {
        let key = generate_session_key();
        match self.records.insert(&session_id(&key), record).await {
            Err(err) if !err.is_duplicate() => Err(err),
            _ => Ok(key),
        }
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
        match self.records.fetch(id, self.fetch_now(false)).await {
            Ok(record) => Ok(record.map(|record| record.loaded)),
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
        if scope::has_pending_file() {
            // An upload: the key rotates.
            return self.rotate_from(&session_key, state, ttl).await;
        }
        let id = session_id(&session_key);
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

    /// Rotates the session `old` to the key derived from it and this upload, holding `state`
    /// and the uploaded file. If `old` was superseded already, the upload is the same one sent
    /// again (answered with that key) or another (refused); if it is no longer live, the upload
    /// starts a new session under a fresh key.
    async fn rotate_from(
        &self,
        old: &SessionKey,
        state: String,
        ttl: &CookieDuration,
    ) -> StoreResult<SessionKey> {
        let Some(PendingFile {
            text,
            digest,
            reservation,
        }) = scope::take_pending_file()
        else {
            return self.write_new(state, ttl).await;
        };
        let new = self.rotation_key.successor(old, &state, &digest);
        let new_id = session_id(&new);
        if let Some(superseded) = scope::superseded() {
            return self.sent_again(superseded.successor.as_deref(), new, &new_id);
        }
        let old_id = session_id(old);
        let record = self.new_record(state, ttl, Some(text));
        let rotation = self.rotation(record.created_at);
        let Err(record) = self
            .records
            .rotate(&old_id, &new_id, record, rotation)
            .await?
        else {
            reservation.stored();
            return Ok(new);
        };
        // Not live and current any more: superseded meanwhile (by this same upload sent twice
        // at once, by another, or by this rotation itself before its connection was lost), or
        // gone (expired, forgotten).
        let now_there = match self.records.fetch(&old_id, self.fetch_now(false)).await {
            Err(err) if err.is_corrupt() => None,
            fetched => fetched?,
        };
        match now_there {
            Some(now_there) if now_there.loaded.superseded_at.is_some() => {
                self.sent_again(now_there.successor.as_deref(), new, &new_id)
            }
            _ => {
                let key = self.insert_new(record).await?;
                reservation.stored();
                Ok(key)
            }
        }
    }

    /// An upload with a key already superseded by `successor`: the same upload sent again
    /// (its derived id is that successor) is answered with its key, as the success it was; any
    /// other is refused.
    fn sent_again(
        &self,
        successor: Option<&str>,
        new: SessionKey,
        new_id: &str,
    ) -> StoreResult<SessionKey> {
        if successor == Some(new_id) {
            log::info!(
                "an upload was sent again with the key it had replaced: answered with the key \
                 it is stored under"
            );
            return Ok(new);
        }
        scope::mark_rotation_conflict();
        Err(StoreError::failed(anyhow::anyhow!(
            "an upload with a key another upload had replaced was refused"
        )))
    }
}

impl SessionStore for TextdropStore {
    async fn load(&self, session_key: &SessionKey) -> Result<Option<SessionState>, LoadError> {
        let fetch = self.fetch_now(scope::wants_file());
        let id = session_id(session_key);
        let record = match self.records.fetch(&id, fetch).await {
            Ok(record) => record,
            Err(err) if err.is_corrupt() => {
                self.corrupt.inc();
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
                self.late_uses.inc();
                log::info!(
                    "a session key superseded {} s ago was used after its grace period \
                     (a replayed or stolen cookie?)",
                    (now - superseded_at).num_seconds()
                );
                return Ok(None);
            }
        }
        let state = serde_json::from_str(&record.state);
        if state.is_err() {
            self.corrupt.inc();
        }
        scope::remember_loaded(id, record.loaded, record.file);
        state
            .map(Some)
            .map_err(|e| LoadError::Deserialization(e.into()))
    }

    async fn save(
        &self,
        session_state: SessionState,
        ttl: &CookieDuration,
    ) -> Result<SessionKey, SaveError> {
        let state = stored_state(&session_state).map_err(|e| SaveError::Serialization(e.into()))?;
        // An upload sent with a key whose record is superseded and past its grace: a new
        // session to actix-session, a rotation from that key to the store.
        let saved = match scope::superseded() {
            Some(superseded) if scope::has_pending_file() => {
                self.rotate_from(&superseded.key, state, ttl).await
            }
            _ => self.write_new(state, ttl).await,
        };
        saved.map_err(|e| SaveError::Other(noted(e)))
    }

    async fn update(
        &self,
        session_key: SessionKey,
        session_state: SessionState,
        ttl: &CookieDuration,
    ) -> Result<SessionKey, UpdateError> {
        let state =
            stored_state(&session_state).map_err(|e| UpdateError::Serialization(e.into()))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::records::{Record, Rotated, StoreFuture};
    use crate::session::rotation::file_digest;

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
                    file: record.file.clone(),
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

    fn pending(text: &str) -> PendingFile {
        PendingFile {
            text: text.to_owned(),
            digest: file_digest(text),
            reservation: crate::limits::StorageCap::new(None)
                .try_reserve(0)
                .expect("no cap"),
        }
    }

    #[actix_web::test]
    async fn a_rotation_run_again_after_its_commit_is_the_success_it_was() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let settings = crate::config::Settings::from_lookup(|name| {
            (name == "DATABASE_URL").then(|| url.clone())
        })
        .expect("settings");
        let storage = crate::backends::connect(&settings).await.expect("storage");
        let records: Rc<dyn Records> = Rc::new(CommitThenLost(storage.records()));
        let store = TextdropStore::new(
            records,
            Clock::system(),
            MaxLifetime::default(),
            std::time::Duration::from_secs(60),
        );
        let ttl = CookieDuration::seconds(3600);
        let state = || HashMap::from([("file".to_owned(), "1".to_owned())]);
        let old = scope::with_pending_file(pending("one\n"), store.save(state(), &ttl))
            .await
            .expect("a first upload");

        let rotated =
            scope::with_pending_file(pending("two\n"), store.update(old, state(), &ttl)).await;

        let new = rotated.expect("the rotation that ran twice is a success");
        let fetch = store.fetch_now(true);
        let record = storage
            .records()
            .fetch(&session_id(&new), fetch)
            .await
            .expect("fetch")
            .expect("the new key's record");
        assert_eq!(record.file.as_deref(), Some("two\n"));
    }
}
