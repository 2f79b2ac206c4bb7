//! Session records as Redis hashes, with the same key hashing, file handling and lifetime rules
//! as the SQL rows.
//!
//! A session is one hash under `textdrop:session:<SHA-256 of the key>` (never the key itself):
//! `state` (the small session map as JSON), `created` (microseconds since the epoch, the app's
//! clock), and, when a file was uploaded, `file` (its text as is) and `bytes`. Redis expires the
//! hash itself: its TTL is the session's expiry, so there is no cleanup task. A fetch reads the
//! file only when asked (`HMGET` with `PTTL`), an insert is one `MULTI` (HSET, PEXPIRE and, in a
//! key rotation, DEL of the old hash), a replace a script that writes only a hash that still
//! exists, an extension a `PEXPIRE`.
//!
//! Generic over the connection, so a single server and a cluster share it.

use chrono::{DateTime, NaiveDateTime};
use redis::aio::ConnectionLike;

use crate::clock::Clock;
use crate::session::lifetime::MaxLifetime;
use crate::session::scope::Loaded;
use crate::session::store::{
    Extension, Fetch, NewRecord, Record, Records, Replacement, TextdropStore,
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

/// Session hashes on a Redis connection.
#[derive(Clone)]
pub struct RedisRecords<C> {
    conn: C,
    /// A cluster: two sessions' hashes may live on different nodes, so a key rotation writes
    /// the new hash, then deletes the old (a crash between leaves the old one to expire).
    cluster: bool,
}

/// actix-session's `SessionStore` on Redis.
pub type RedisStore<C> = TextdropStore<RedisRecords<C>>;

impl<C: ConnectionLike + Clone> RedisStore<C> {
    /// A store on one Redis server.
    pub fn new(conn: C, clock: Clock, max: MaxLifetime) -> Self {
        Self::with_records(
            RedisRecords {
                conn,
                cluster: false,
            },
            clock,
            max,
        )
    }

    /// A store on a Redis Cluster.
    pub fn on_cluster(conn: C, clock: Clock, max: MaxLifetime) -> Self {
        Self::with_records(
            RedisRecords {
                conn,
                cluster: true,
            },
            clock,
            max,
        )
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

impl<C: ConnectionLike + Clone> Records for RedisRecords<C> {
    async fn fetch(&self, id: &str, fetch: Fetch) -> anyhow::Result<Option<Record>> {
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
            .await?;
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
    }

    async fn insert(&self, id: &str, record: NewRecord) -> anyhow::Result<()> {
        let key = redis_key(id);
        let mut hset = redis::cmd("HSET");
        hset.arg(&key)
            .arg("state")
            .arg(&record.state)
            .arg("created")
            .arg(micros(record.created_at));
        if let Some(file) = &record.file {
            hset.arg("file").arg(file).arg("bytes").arg(file.len());
        }
        // One MULTI: the new hash, its TTL and (one server) the old hash's deletion.
        let mut write = redis::pipe();
        write
            .atomic()
            .add_command(hset)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(ttl_ms(record.created_at, record.expires_at))
            .ignore();
        let old = record.replaces.as_deref().map(redis_key);
        if let (Some(old), false) = (&old, self.cluster) {
            write.cmd("DEL").arg(old).ignore();
        }
        write.query_async::<()>(&mut self.conn.clone()).await?;
        if let (Some(old), true) = (old, self.cluster) {
            redis::cmd("DEL")
                .arg(old)
                .query_async::<()>(&mut self.conn.clone())
                .await?;
        }
        Ok(())
    }

    async fn replace(&self, id: &str, with: Replacement) -> anyhow::Result<bool> {
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
        let written: i64 = invocation.invoke_async(&mut self.conn.clone()).await?;
        Ok(written == 1)
    }

    async fn extend(&self, id: &str, extension: Extension) -> anyhow::Result<()> {
        // PEXPIRE GT: only ever later, so overlapping reads never shorten one another's move.
        redis::cmd("PEXPIRE")
            .arg(redis_key(id))
            .arg(ttl_ms(extension.now, extension.expires_at))
            .arg("GT")
            .query_async::<()>(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    async fn remove(&self, id: &str) -> anyhow::Result<()> {
        redis::cmd("DEL")
            .arg(redis_key(id))
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
    used_memory_in(&info)
        .ok_or_else(|| (redis::ErrorKind::TypeError, "no used_memory in INFO memory").into())
}

/// `used_memory` summed over the cluster's masters: the cap counts what every master holds.
pub async fn cluster_used_memory(
    conn: &redis::cluster_async::ClusterConnection,
) -> redis::RedisResult<u64> {
    use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
    let mut info = redis::cmd("INFO");
    info.arg("memory");
    let all_masters = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
    let answers = conn.clone().route_command(&info, all_masters).await?;
    let mut texts = Vec::new();
    collect_texts(&answers, &mut texts);
    let sizes: Vec<u64> = texts.iter().filter_map(|t| used_memory_in(t)).collect();
    if sizes.is_empty() {
        return Err((
            redis::ErrorKind::TypeError,
            "no used_memory from the masters",
        )
            .into());
    }
    Ok(sizes.iter().sum())
}

fn used_memory_in(info: &str) -> Option<u64> {
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|value| value.trim().parse().ok())
}

/// Every text in a reply, however nested (a cluster answers one per node).
fn collect_texts(value: &redis::Value, out: &mut Vec<String>) {
    match value {
        redis::Value::BulkString(bytes) => out.push(String::from_utf8_lossy(bytes).into_owned()),
        redis::Value::VerbatimString { text, .. } => out.push(text.clone()),
        redis::Value::SimpleString(text) => out.push(text.clone()),
        redis::Value::Array(items) | redis::Value::Set(items) => {
            items.iter().for_each(|item| collect_texts(item, out))
        }
        redis::Value::Map(pairs) => pairs.iter().for_each(|(_, item)| collect_texts(item, out)),
        _ => {}
    }
}

/// Whether every node of the cluster says `cluster_state:ok` (a node that does not answer, or
/// slots still moving, make it not ready).
pub async fn cluster_is_ok(
    conn: &redis::cluster_async::ClusterConnection,
) -> redis::RedisResult<bool> {
    use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
    let mut info = redis::cmd("CLUSTER");
    info.arg("INFO");
    let every_node = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllNodes, None));
    let answers = conn.clone().route_command(&info, every_node).await?;
    let mut texts = Vec::new();
    collect_texts(&answers, &mut texts);
    Ok(!texts.is_empty() && texts.iter().all(|t| t.contains("cluster_state:ok")))
}
