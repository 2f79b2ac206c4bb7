//! Session records as Redis hashes, with the same key hashing, file handling and lifetime rules
//! as the SQL rows.
//!
//! A session is one hash under `textdrop:session:<SHA-256 of the key>` (never the key itself):
//! `state` (the small session map as JSON), `created` (microseconds since the epoch, the app's
//! clock), and, when a file was uploaded, `file` (its text as is) and `bytes`. Redis expires the
//! hash itself: its TTL is the session's expiry. A fetch reads the file only when asked
//! (`HMGET` with `PTTL`), an insert is one `MULTI` (HSET and PEXPIRE), a replace a script that
//! writes only a hash that still exists, an extension a `PEXPIRE GT`.
//!
//! A key rotation on one server is one script: it writes the new hash and deletes the old one
//! only if the old one still exists. On a cluster the two hashes may sit on different slots
//! (and nodes), where no script or `MULTI` reaches both: the old hash is checked, the new one
//! written, then the old one deleted. A crash between the last two leaves both, and the old
//! one expires at its own time; the new one is never lost.

use std::future::Future;

use chrono::{DateTime, NaiveDateTime};
use futures_util::future::LocalBoxFuture;
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{RedisError, RedisWrite, ToRedisArgs};

use super::admin;
use crate::session::records::{
    Extension, Fetch, Loaded, NewRecord, Record, Records, Replacement, Rotated, StoreError,
    StoreFuture, StoreResult,
};

/// The Redis key of the session whose id (the SHA-256 of its key) is `id`.
pub fn redis_key(id: &str) -> String {
    format!("textdrop:session:{id}")
}

/// Writes the fields given after the TTL, and the TTL, only if the hash still exists.
const REPLACE_IF_EXISTS: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1";

/// One server's rotation: if the old hash (KEYS[1]) exists, writes the new one (KEYS[2]) with
/// the fields after the TTL, sets its TTL and deletes the old one.
const ROTATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[1])
return 1";

/// A Redis connection textdrop's records work on: one server or a cluster.
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

impl RedisConnection for ClusterConnection {
    const CLUSTER: bool = true;

    async fn ready(&self) -> redis::RedisResult<bool> {
        admin::cluster_is_ok(self).await
    }
}

/// Session hashes on a Redis connection.
pub(crate) struct RedisRecords<C> {
    conn: C,
}

impl RedisRecords<ConnectionManager> {
    pub(crate) fn server(conn: ConnectionManager) -> Self {
        Self { conn }
    }
}

impl RedisRecords<ClusterConnection> {
    pub(crate) fn cluster(conn: ClusterConnection) -> Self {
        Self { conn }
    }
}

/// A Redis error with its verdict: a server or cluster that cannot be reached is
/// "unavailable".
fn verdict(err: RedisError) -> StoreError {
    if err.is_io_error()
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
        if let Some(file) = &record.file {
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

    /// A cluster's rotation (see the module's doc): check, write new, delete old.
    async fn rotate_across_slots(
        &self,
        old: String,
        new: String,
        record: NewRecord,
    ) -> StoreResult<Rotated> {
        let exists: i64 = self.query(redis::cmd("EXISTS").arg(&old)).await?;
        if exists == 0 {
            return Ok(Err(record));
        }
        let mut write = redis::pipe();
        write
            .atomic()
            .cmd("HSET")
            .arg(&new)
            .arg(Fields(&record))
            .ignore()
            .cmd("PEXPIRE")
            .arg(&new)
            .arg(ttl_ms(record.created_at, record.expires_at))
            .ignore();
        write
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(verdict)?;
        self.query::<()>(redis::cmd("DEL").arg(&old)).await?;
        Ok(Ok(()))
    }
}

impl<C: RedisConnection> Records for RedisRecords<C> {
    fn fetch<'a>(&'a self, id: &'a str, fetch: Fetch) -> StoreFuture<'a, Option<Record>> {
        Box::pin(async move {
            let key = redis_key(id);
            let mut fields = redis::cmd("HMGET");
            fields.arg(&key).arg("state").arg("created");
            if fetch.with_file {
                fields.arg("file");
            }
            let (mut values, pttl): (Vec<Option<String>>, i64) = redis::pipe()
                .add_command(fields)
                .cmd("PTTL")
                .arg(&key)
                .query_async(&mut self.conn.clone())
                .await
                .map_err(verdict)?;
            // HMGET answers in the order asked: state, created, then file if asked for.
            let file = if fetch.with_file {
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
            if pttl <= 0 || created_at <= fetch.created_after {
                return Ok(None);
            }
            let expires_at = fetch.now + chrono::Duration::milliseconds(pttl);
            Ok(Some(Record {
                state,
                loaded: Loaded {
                    expires_at,
                    created_at,
                },
                file,
            }))
        })
    }

    fn insert<'a>(&'a self, id: &'a str, record: NewRecord) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let key = redis_key(id);
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
        _now: NaiveDateTime,
    ) -> StoreFuture<'a, Rotated> {
        Box::pin(async move {
            let (old, new) = (redis_key(old_id), redis_key(new_id));
            if C::CLUSTER {
                return self.rotate_across_slots(old, new, record).await;
            }
            let script = redis::Script::new(ROTATE);
            let mut invocation = script.key(&old);
            invocation
                .key(&new)
                .arg(ttl_ms(record.created_at, record.expires_at))
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
            let script = redis::Script::new(REPLACE_IF_EXISTS);
            let mut invocation = script.key(redis_key(id));
            invocation
                .arg(ttl_ms(with.now, with.expires_at))
                .arg("state")
                .arg(with.state);
            if let Some(file) = &with.file {
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
            self.query(
                redis::cmd("PEXPIRE")
                    .arg(redis_key(id))
                    .arg(ttl_ms(extension.now, extension.expires_at))
                    .arg("GT"),
            )
            .await
        })
    }

    fn remove<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move { self.query(redis::cmd("DEL").arg(redis_key(id))).await })
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
