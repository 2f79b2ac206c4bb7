//! Session records as Redis hashes, with the same key hashing, file handling and lifetime rules
//! as the SQL rows.
//!
//! A session is one hash under `<prefix><SHA-256 of the key>` (the prefix is `Names::redis_prefix`) (never the key itself):
//! `state` (the small session map as JSON), `created` (microseconds since the epoch, the app's
//! clock), and, when a file was uploaded, `file` (its text as is) and `bytes`. Redis expires the
//! hash itself: its TTL is the session's expiry. A fetch reads the file only when asked
//! (`HMGET` with `PTTL`), an insert is one `MULTI` (HSET and PEXPIRE), a replace a script that
//! writes only a hash that still exists, an extension a `PEXPIRE GT`.
//!
//! A key rotation on one server is one script: if the old hash exists and is current, it writes
//! the new one and supersedes the old one: marks it (`superseded`, the time, in microseconds;
//! `successor`, the new one's id), cuts its TTL to the rotation's and, without a grace period,
//! empties it (a tombstone); the new hash names the old one in `predecessor`, and the old one's
//! own predecessor is deleted. A chain is linked both ways, so forget from any key of it
//! removes all of it.
//!
//! On a cluster the two hashes may sit on different slots (and nodes), where no script or
//! `MULTI` reaches both, so the pair is kept consistent by order: the old hash is checked,
//! the new one written, then the old one superseded by a check-and-set script on its own slot.
//! If another rotation superseded it meanwhile (two tabs uploading at once), the new hash is
//! deleted again, unless that rotation wrote this same hash (the same upload sent twice: its
//! key is derived from the old key and the upload), and the store decides what the upload gets:
//! one key never has two successors. A crash after the new hash is written and before the old one is marked leaves
//! the old one current (the visitor, who never got the new key, keeps using it) and the new
//! one unreachable until its TTL ends; the old one's predecessor is deleted last, and if that
//! is lost it expires at its own (short) TTL.

use std::future::Future;

use chrono::{DateTime, NaiveDateTime};
use futures_util::future::LocalBoxFuture;
use redis::aio::{ConnectionLike, ConnectionManager};
#[cfg(feature = "redis-cluster")]
use redis::cluster_async::ClusterConnection;
use redis::{RedisError, RedisWrite, ToRedisArgs};

#[cfg(feature = "redis-cluster")]
use super::admin;
use crate::session::records::{
    Extension, Fetch, Loaded, NewRecord, Record, Records, Replacement, Rotated, Rotation,
    StoreError, StoreFuture, StoreResult,
};

/// The keys of the session hashes: a prefix (`Names::redis_prefix`) and the session's id.
#[derive(Clone, Debug)]
pub(crate) struct Keys(std::sync::Arc<str>);

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self(prefix.into())
    }

    /// The Redis key of the session whose id (the SHA-256 of its key) is `id`.
    pub(crate) fn of(&self, id: &str) -> String {
        format!("{}{id}", self.0)
    }

    /// The prefix of every session hash's key.
    pub(crate) fn prefix(&self) -> &str {
        &self.0
    }
}

/// Writes the fields given after the TTL, and the TTL, only if the hash still exists and is
/// current.
const REPLACE_IF_CURRENT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], 'superseded') == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1";

/// Moves a current hash's TTL later (never sooner); a superseded one keeps its own.
const EXTEND_IF_CURRENT: &str = r"
if redis.call('HEXISTS', KEYS[1], 'superseded') == 1 then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[1], 'GT')";

/// One server's rotation: if the old hash (KEYS[1]) exists and is current, deletes the old
/// one's predecessor (key prefix ARGV[5]), writes the new one (KEYS[2], id ARGV[6]) with the
/// fields from ARGV[8] on, TTL ARGV[1] and the old one (ARGV[4]) as its predecessor, and
/// supersedes the old one: marked superseded at ARGV[3] by the new one, TTL ARGV[2], its state
/// and file emptied when ARGV[7] is `0` (a tombstone, without a grace period).
const ROTATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], 'superseded') == 1 then return 0 end
local before = redis.call('HGET', KEYS[1], 'predecessor')
if before then redis.call('DEL', ARGV[5] .. before) end
redis.call('HSET', KEYS[2], unpack(ARGV, 8))
redis.call('HSET', KEYS[2], 'predecessor', ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[1], 'predecessor')
if ARGV[7] == '0' then
  redis.call('HDEL', KEYS[1], 'file', 'bytes')
  redis.call('HSET', KEYS[1], 'state', '{}')
end
redis.call('HSET', KEYS[1], 'superseded', ARGV[3], 'successor', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1";

/// A cluster's rotation, on the old hash's slot alone: supersedes it (as [`ROTATE`] does: by
/// ARGV[3] at ARGV[2], TTL ARGV[1], emptied when ARGV[4] is `0`) if it is still current and
/// answers 1; else the successor it already has, or 0 if it is gone.
const SUPERSEDE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local successor = redis.call('HGET', KEYS[1], 'successor')
if successor then return successor end
if redis.call('HEXISTS', KEYS[1], 'superseded') == 1 then return 0 end
redis.call('HDEL', KEYS[1], 'predecessor')
if ARGV[4] == '0' then
  redis.call('HDEL', KEYS[1], 'file', 'bytes')
  redis.call('HSET', KEYS[1], 'state', '{}')
end
redis.call('HSET', KEYS[1], 'superseded', ARGV[2], 'successor', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1";

/// A Redis connection the records work on: one server or a cluster.
pub(super) trait RedisConnection: ConnectionLike + Clone + 'static {
    /// Whether keys may live on different nodes.
    const CLUSTER: bool;

    /// Whether the storage is ready to serve.
    fn ready(&self) -> impl Future<Output = redis::RedisResult<bool>>;
}

impl RedisConnection for ConnectionManager {
    const CLUSTER: bool = false;

    async fn ready(&self) -> redis::RedisResult<bool> {
        let pong: String = redis::cmd("PING").query_async(&mut self.clone()).await?;
        Ok(pong == "PONG")
    }
}

#[cfg(feature = "redis-cluster")]
impl RedisConnection for ClusterConnection {
    const CLUSTER: bool = true;

    async fn ready(&self) -> redis::RedisResult<bool> {
        admin::cluster_is_ok(self).await
    }
}

/// Session hashes on a Redis connection.
pub(crate) struct RedisRecords<C> {
    conn: C,
    keys: Keys,
}

impl RedisRecords<ConnectionManager> {
    pub(crate) fn server(conn: ConnectionManager, keys: Keys) -> Self {
        Self { conn, keys }
    }
}

#[cfg(feature = "redis-cluster")]
impl RedisRecords<ClusterConnection> {
    pub(crate) fn cluster(conn: ClusterConnection, keys: Keys) -> Self {
        Self { conn, keys }
    }
}

/// A Redis error with its verdict: a server or cluster that cannot be reached is
/// "unavailable".
pub(super) fn verdict(err: RedisError) -> StoreError {
    // What a server or a cluster answers while it fails over or starts: a master down, no
    // connection to the node that owns the slot yet, a write that reached a replica, a server
    // still loading its data. A retry a moment later may succeed: 503, not 500.
    let passing = matches!(
        err.kind(),
        redis::ErrorKind::MasterDown
            | redis::ErrorKind::ClusterConnectionNotFound
            | redis::ErrorKind::ReadOnly
            | redis::ErrorKind::BusyLoadingError
    );
    // The cluster client's word for a request it retries on the node it last sent it to, once
    // that node is gone (a master just killed): a failover too.
    let node_gone = err.kind() == redis::ErrorKind::ClientError
        && err.to_string().contains("Requested connection not found");
    if passing
        || node_gone
        || err.is_io_error()
        || err.is_connection_refusal()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_cluster_error()
    {
        StoreError::unavailable(err)
    } else {
        StoreError::failed(err)
    }
}

pub(super) fn micros(at: NaiveDateTime) -> i64 {
    at.and_utc().timestamp_micros()
}

pub(super) fn from_micros(micros: i64) -> Option<NaiveDateTime> {
    DateTime::from_timestamp_micros(micros).map(|at| at.naive_utc())
}

/// Milliseconds from `now` to `until`, at least 1 (a TTL of 0 would not expire the key).
pub(super) fn ttl_ms(now: NaiveDateTime, until: NaiveDateTime) -> i64 {
    (until - now).num_milliseconds().max(1)
}

/// The TTL a rotation leaves the old hash, in milliseconds.
fn keep_ms(rotation: Rotation) -> i64 {
    ttl_ms(rotation.now, rotation.keep_until)
}

/// `1` when a rotation keeps the old hash's data (a grace period), `0` for a tombstone.
fn keep_data(rotation: Rotation) -> &'static str {
    if rotation.keep_data {
        "1"
    } else {
        "0"
    }
}

/// The fields a new record's hash holds, as `HSET` arguments (the file written as it is, not
/// copied first).
struct Fields<'a>(&'a NewRecord);

impl ToRedisArgs for Fields<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        let record = self.0;
        out.write_arg(b"state");
        out.write_arg(record.state.as_bytes());
        out.write_arg(b"created");
        out.write_arg(micros(record.created_at).to_string().as_bytes());
        if let Some(file) = &record.attachment {
            out.write_arg(b"file");
            out.write_arg(file.as_bytes());
            out.write_arg(b"bytes");
            out.write_arg(file.len().to_string().as_bytes());
        }
    }
}

impl<C: RedisConnection> RedisRecords<C> {
    async fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> StoreResult<T> {
        command
            .query_async(&mut self.conn.clone())
            .await
            .map_err(verdict)
    }

    /// A cluster's rotation (see the module's doc): check the old hash, write the new one,
    /// supersede the old one if it is still current (else undo the new one), then delete the
    /// old one's predecessor.
    async fn rotate_across_slots(
        &self,
        (old_id, new_id): (&str, &str),
        record: NewRecord,
        rotation: Rotation,
    ) -> StoreResult<Rotated> {
        let (old, new) = (self.keys.of(old_id), self.keys.of(new_id));
        let (exists, superseded, before): (i64, Option<String>, Option<String>) = redis::pipe()
            .cmd("EXISTS")
            .arg(&old)
            .cmd("HGET")
            .arg(&old)
            .arg("superseded")
            .cmd("HGET")
            .arg(&old)
            .arg("predecessor")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(verdict)?;
        if exists == 0 || superseded.is_some() {
            return Ok(Err(record));
        }
        let mut write = redis::pipe();
        write
            .atomic()
            .cmd("HSET")
            .arg(&new)
            .arg(Fields(&record))
            .ignore()
            .cmd("HSET")
            .arg(&new)
            .arg("predecessor")
            .arg(old_id)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&new)
            .arg(ttl_ms(record.created_at, record.expires_at))
            .ignore();
        write
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(verdict)?;
        let superseded: redis::Value = redis::Script::new(SUPERSEDE)
            .key(&old)
            .arg(keep_ms(rotation))
            .arg(micros(rotation.now))
            .arg(new_id)
            .arg(keep_data(rotation))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(verdict)?;
        match superseded {
            redis::Value::Int(1) => {}
            // Another rotation won. If it wrote this very hash (the same upload sent twice:
            // its key is derived from the old key and the upload), the hash is that rotation's
            // and stays; otherwise it is this one's, unreachable: deleted.
            other => {
                let theirs = redis::from_redis_value::<String>(&other).ok();
                if theirs.as_deref() != Some(new_id) {
                    self.query::<()>(redis::cmd("DEL").arg(&new)).await?;
                }
                return Ok(Err(record));
            }
        }
        // The rotation is done: the new hash is written and the old one superseded. The hash
        // before it expires at its own (short) TTL if this delete fails, so a failure here must
        // not turn a stored upload into an error the visitor would retry with the old key.
        if let Some(before) = before {
            if let Err(err) = self
                .query::<()>(redis::cmd("DEL").arg(self.keys.of(&before)))
                .await
            {
                log::warn!("rotation: the superseded hash before it was not deleted: {err}");
            }
        }
        Ok(Ok(()))
    }
}

impl<C: RedisConnection> Records for RedisRecords<C> {
    fn fetch<'a>(&'a self, id: &'a str, fetch: Fetch) -> StoreFuture<'a, Option<Record>> {
        Box::pin(async move {
            let key = self.keys.of(id);
            let mut fields = redis::cmd("HMGET");
            fields
                .arg(&key)
                .arg("state")
                .arg("created")
                .arg("superseded")
                .arg("successor");
            if fetch.with_attachment {
                fields.arg("file");
            }
            let (mut values, pttl): (Vec<Option<String>>, i64) = redis::pipe()
                .add_command(fields)
                .cmd("PTTL")
                .arg(&key)
                .query_async(&mut self.conn.clone())
                .await
                .map_err(verdict)?;
            // HMGET answers in the order asked: state, created, superseded, successor, then
            // file if asked for.
            let file = if fetch.with_attachment {
                values.pop().flatten()
            } else {
                None
            };
            let successor = values.pop().flatten();
            let superseded_at = values
                .pop()
                .flatten()
                .and_then(|c| c.parse().ok())
                .and_then(from_micros);
            let created = values
                .pop()
                .flatten()
                .and_then(|c| c.parse().ok())
                .and_then(from_micros);
            let (Some(state), Some(created_at)) = (values.pop().flatten(), created) else {
                return Ok(None);
            };
            if pttl <= 0 || created_at <= fetch.created_after {
                return Ok(None);
            }
            let expires_at = fetch.now + chrono::Duration::milliseconds(pttl);
            Ok(Some(Record {
                state,
                loaded: Loaded {
                    expires_at,
                    created_at,
                    superseded_at,
                },
                attachment: file,
                successor,
            }))
        })
    }

    fn insert<'a>(&'a self, id: &'a str, record: NewRecord) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let key = self.keys.of(id);
            let mut write = redis::pipe();
            write
                .atomic()
                .cmd("HSET")
                .arg(&key)
                .arg(Fields(&record))
                .ignore()
                .cmd("PEXPIRE")
                .arg(&key)
                .arg(ttl_ms(record.created_at, record.expires_at))
                .ignore();
            write
                .query_async::<()>(&mut self.conn.clone())
                .await
                .map_err(verdict)
        })
    }

    fn rotate<'a>(
        &'a self,
        old_id: &'a str,
        new_id: &'a str,
        record: NewRecord,
        rotation: Rotation,
    ) -> StoreFuture<'a, Rotated> {
        Box::pin(async move {
            if C::CLUSTER {
                return self
                    .rotate_across_slots((old_id, new_id), record, rotation)
                    .await;
            }
            let script = redis::Script::new(ROTATE);
            let mut invocation = script.key(self.keys.of(old_id));
            invocation
                .key(self.keys.of(new_id))
                .arg(ttl_ms(record.created_at, record.expires_at))
                .arg(keep_ms(rotation))
                .arg(micros(rotation.now))
                .arg(old_id)
                .arg(self.keys.prefix())
                .arg(new_id)
                .arg(keep_data(rotation))
                .arg(Fields(&record));
            let rotated: i64 = invocation
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(verdict)?;
            Ok(if rotated == 1 { Ok(()) } else { Err(record) })
        })
    }

    fn replace<'a>(&'a self, id: &'a str, with: Replacement) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let script = redis::Script::new(REPLACE_IF_CURRENT);
            let mut invocation = script.key(self.keys.of(id));
            invocation
                .arg(ttl_ms(with.now, with.expires_at))
                .arg("state")
                .arg(with.state);
            if let Some(file) = &with.attachment {
                invocation
                    .arg("file")
                    .arg(file)
                    .arg("bytes")
                    .arg(file.len());
            }
            let written: i64 = invocation
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(verdict)?;
            Ok(written == 1)
        })
    }

    fn extend<'a>(&'a self, id: &'a str, extension: Extension) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            // PEXPIRE GT: only ever later, so overlapping reads never shorten one another's
            // move.
            redis::Script::new(EXTEND_IF_CURRENT)
                .key(self.keys.of(id))
                .arg(ttl_ms(extension.now, extension.expires_at))
                .invoke_async::<()>(&mut self.conn.clone())
                .await
                .map_err(verdict)
        })
    }

    fn remove<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            // The whole chain, found by its links both ways (`predecessor` on the newer hash,
            // `successor` on the older), at most CHAIN_WALK hashes; on a cluster they may sit
            // on different slots, so one after the other.
            let mut chain = vec![id.to_owned()];
            let mut read = 0;
            while read < chain.len() {
                let (predecessor, successor): (Option<String>, Option<String>) = self
                    .query(
                        redis::cmd("HMGET")
                            .arg(self.keys.of(&chain[read]))
                            .arg("predecessor")
                            .arg("successor"),
                    )
                    .await?;
                read += 1;
                for linked in [predecessor, successor].into_iter().flatten() {
                    if !chain.contains(&linked) && chain.len() < crate::backends::CHAIN_WALK {
                        chain.push(linked);
                    }
                }
            }
            for id in &chain {
                self.query::<()>(redis::cmd("DEL").arg(self.keys.of(id)))
                    .await?;
            }
            Ok(())
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        let ready: LocalBoxFuture<'_, _> = Box::pin(async move {
            if self.conn.ready().await.map_err(verdict)? {
                Ok(())
            } else {
                Err(StoreError::unavailable(anyhow::anyhow!(
                    "the cluster's state is not ok"
                )))
            }
        });
        ready
    }
}

#[cfg(test)]
mod verdict_tests {
    use super::*;

    #[test]
    fn what_a_failover_answers_is_unavailable_and_a_bad_command_is_not() {
        for kind in [
            redis::ErrorKind::MasterDown,
            redis::ErrorKind::ClusterConnectionNotFound,
            redis::ErrorKind::ReadOnly,
            redis::ErrorKind::BusyLoadingError,
            redis::ErrorKind::TryAgain,
            redis::ErrorKind::ClusterDown,
        ] {
            let err = RedisError::from((kind, "during a failover"));
            assert!(verdict(err).is_unavailable(), "{kind:?}");
        }
        // What redis-rs 0.32's cluster client answers when it retries a request on a node
        // that has just gone (seen when a master was killed under load).
        let gone = RedisError::from((
            redis::ErrorKind::ClientError,
            "Requested connection not found",
            "127.0.0.1:7001".to_owned(),
        ));
        assert!(verdict(gone).is_unavailable());
        let misused = RedisError::from((redis::ErrorKind::ClientError, "Invalid indices input"));
        assert!(!verdict(misused).is_unavailable());
        let err = RedisError::from((redis::ErrorKind::TypeError, "a bad reply"));
        assert!(!verdict(err).is_unavailable());
    }
}
