//! `RedisStore`: actix-session's `SessionStore` on Redis, with the same semantics, key hashing,
//! file handling and lifetime rules as the SQL store.
//!
//! A session is one hash under `textdrop:session:<SHA-256 of the key>` (never the key itself):
//! `state` (the small session map as JSON), `created` (microseconds since the epoch, the app's
//! clock), and, when a file was uploaded, `file` (its text as is) and `bytes`. Redis expires the
//! hash itself: its TTL is the session's expiry, capped by the absolute lifetime, so there is
//! no cleanup task. `load` reads the file only for the page that shows it (`HMGET`), `save` is
//! one `MULTI` (HSET + PEXPIRE), `update` a script that writes only a hash that still exists
//! (else a new session is saved, as actix-session's own store does), `update_ttl` a `PEXPIRE`
//! only when the expiry must move ([`lifetime`]).
//!
//! Generic over the connection, so a single server and a cluster share it.

use std::collections::HashMap;

use actix_session::storage::{
    generate_session_key, LoadError, SaveError, SessionKey, SessionStore, UpdateError,
};
use actix_web::cookie::time::Duration as CookieDuration;
use chrono::{DateTime, NaiveDateTime};
use redis::aio::ConnectionLike;
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::limits::Reservation;
use crate::session::lifetime::{self, MaxLifetime};
use crate::session::scope::{self, Loaded, PendingFile};
use crate::session::store::chrono_ttl;

type SessionState = HashMap<String, String>;

/// The Redis key of a session: a hash of the session key, never the key itself.
pub fn redis_key(session_key: &str) -> String {
    format!(
        "textdrop:session:{}",
        hex::encode(Sha256::digest(session_key.as_bytes()))
    )
}

/// Writes the fields given after the TTL, and the TTL, only if the hash still exists.
const UPDATE_IF_EXISTS: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1";

/// A session store on Redis. Cheap to clone when `C` is.
#[derive(Clone)]
pub struct RedisStore<C> {
    conn: C,
    clock: Clock,
    max: MaxLifetime,
}

fn micros(at: NaiveDateTime) -> i64 {
    at.and_utc().timestamp_micros()
}

fn from_micros(micros: i64) -> Option<NaiveDateTime> {
    DateTime::from_timestamp_micros(micros).map(|at| at.naive_utc())
}

/// Milliseconds from `now` to `until`, at least 1 (a TTL of 0 would not expire the key).
fn ttl_ms(now: NaiveDateTime, until: NaiveDateTime) -> i64 {
    (until - now).num_milliseconds().max(1)
}

impl<C: ConnectionLike + Clone> RedisStore<C> {
    pub fn new(conn: C, clock: Clock, max: MaxLifetime) -> Self {
        Self { conn, clock, max }
    }

    /// The live session under `key`: its fields (state, created, and file when asked for) and
    /// when it expires.
    async fn fetch(
        &self,
        key: &str,
        with_file: bool,
    ) -> redis::RedisResult<Option<(String, Loaded, Option<String>)>> {
        let now = self.clock.now();
        let mut fields = redis::cmd("HMGET");
        fields.arg(key).arg("state").arg("created");
        if with_file {
            fields.arg("file");
        }
        let (mut values, pttl): (Vec<Option<String>>, i64) = redis::pipe()
            .add_command(fields)
            .cmd("PTTL")
            .arg(key)
            .query_async(&mut self.conn.clone())
            .await?;
        let file = if with_file {
            values.pop().flatten()
        } else {
            None
        };
        let created = values
            .pop()
            .flatten()
            .and_then(|c| c.parse().ok())
            .and_then(from_micros);
        let (Some(state), Some(created_at)) = (values.pop().flatten(), created) else {
            return Ok(None);
        };
        if pttl <= 0 || created_at <= self.max.created_after(now) {
            return Ok(None);
        }
        let loaded = Loaded {
            expires_at: now + chrono::Duration::milliseconds(pttl),
            created_at,
        };
        Ok(Some((state, loaded, file)))
    }

    async fn insert_new(&self, state: String, ttl: &CookieDuration) -> anyhow::Result<SessionKey> {
        let session_key = generate_session_key();
        let key = redis_key(session_key.as_ref());
        let now = self.clock.now();
        let expires_at = self.max.cap(now + chrono_ttl(ttl), now);
        let (file, reservation) = split(scope::take_pending_file());
        let replaces = scope::take_replaced_key();
        let mut hset = redis::cmd("HSET");
        hset.arg(&key)
            .arg("state")
            .arg(state)
            .arg("created")
            .arg(micros(now));
        if let Some(file) = &file {
            hset.arg("file").arg(file).arg("bytes").arg(file.len());
        }
        // One MULTI: the new hash, its TTL and, in a key rotation, the old hash's deletion.
        let mut write = redis::pipe();
        write
            .atomic()
            .add_command(hset)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(ttl_ms(now, expires_at))
            .ignore();
        if let Some(old) = replaces {
            write.cmd("DEL").arg(old).ignore();
        }
        write.query_async::<()>(&mut self.conn.clone()).await?;
        if let Some(reservation) = reservation {
            reservation.stored();
        }
        Ok(session_key)
    }

    /// What this request's `load` found, or (outside a scope) the session as it is now.
    async fn loaded(&self, key: &str) -> redis::RedisResult<Option<Loaded>> {
        match scope::loaded() {
            Some(loaded) => Ok(Some(loaded)),
            None => Ok(self.fetch(key, false).await?.map(|(_, loaded, _)| loaded)),
        }
    }
}

/// A pending upload's text and its reservation, apart.
fn split(pending: Option<PendingFile>) -> (Option<String>, Option<Reservation>) {
    match pending {
        Some(PendingFile { text, reservation }) => (Some(text), Some(reservation)),
        None => (None, None),
    }
}

impl<C: ConnectionLike + Clone> SessionStore for RedisStore<C> {
    async fn load(&self, session_key: &SessionKey) -> Result<Option<SessionState>, LoadError> {
        let key = redis_key(session_key.as_ref());
        let found = self
            .fetch(&key, scope::wants_file())
            .await
            .map_err(|e| LoadError::Other(e.into()))?;
        let Some((state, loaded, file)) = found else {
            return Ok(None);
        };
        scope::remember_loaded(loaded, file);
        serde_json::from_str(&state)
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
        let key = redis_key(session_key.as_ref());
        let loaded = self
            .loaded(&key)
            .await
            .map_err(|e| UpdateError::Other(e.into()))?;
        let Some(loaded) = loaded else {
            return self
                .insert_new(state, ttl)
                .await
                .map_err(UpdateError::Other);
        };
        let now = self.clock.now();
        let expires_at = self.max.cap(now + chrono_ttl(ttl), loaded.created_at);
        let (file, reservation) = split(scope::take_pending_file());
        let script = redis::Script::new(UPDATE_IF_EXISTS);
        let mut invocation = script.key(&key);
        invocation
            .arg(ttl_ms(now, expires_at))
            .arg("state")
            .arg(&state);
        if let Some(file) = &file {
            invocation
                .arg("file")
                .arg(file)
                .arg("bytes")
                .arg(file.len());
        }
        let written: i64 = invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| UpdateError::Other(e.into()))?;
        if written == 0 {
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
        let key = redis_key(session_key.as_ref());
        let now = self.clock.now();
        let Some(loaded) = self.loaded(&key).await? else {
            return Ok(());
        };
        if let Some(expires_at) = lifetime::extension(loaded, now, chrono_ttl(ttl), self.max) {
            redis::cmd("PEXPIRE")
                .arg(&key)
                .arg(ttl_ms(now, expires_at))
                .query_async::<()>(&mut self.conn.clone())
                .await?;
        }
        Ok(())
    }

    async fn delete(&self, session_key: &SessionKey) -> anyhow::Result<()> {
        let key = redis_key(session_key.as_ref());
        if scope::defer_delete(&key) {
            return Ok(()); // a key rotation: `save` deletes it in its MULTI
        }
        redis::cmd("DEL")
            .arg(key)
            .query_async::<()>(&mut self.conn.clone())
            .await?;
        Ok(())
    }
}

/// What Redis reports as `used_memory` (INFO memory): everything the server holds, overhead
/// included. The storage cap counts this on Redis.
pub async fn used_memory<C: ConnectionLike + Clone>(conn: &C) -> redis::RedisResult<u64> {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn.clone())
        .await?;
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|value| value.trim().parse().ok())
        .ok_or_else(|| (redis::ErrorKind::TypeError, "no used_memory in INFO memory").into())
}
