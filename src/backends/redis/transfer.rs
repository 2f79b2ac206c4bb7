//! Session hashes read and written whole (`sessions copy`, `PREVIOUS_DATABASE_URL`).
//!
//! A copy walks the keyspace with `SCAN … MATCH textdrop:session:*`, on a cluster master by
//! master (the cursor names the master, in address order, and its own cursor), and reads each
//! hash with `HGETALL` and `PTTL`: its expiry is the TTL from now. A hash is written by one
//! script on its own slot that leaves a copy as new as ours (its TTL within
//! [`SAME_EXPIRY`] of ours or later) alone and otherwise replaces it whole. Keys are read and
//! written [`IN_FLIGHT`] at a time: on a cluster each key may live on another node, so they go
//! one command (or pipeline) each, concurrently, not in one pipeline.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use futures_util::{stream, StreamExt, TryStreamExt};
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};

use super::records::{from_micros, micros, redis_key, ttl_ms, verdict, KEY_PREFIX};
use super::Connection;
use crate::session::records::{StoreError, StoreResult};
use crate::transfer::{Census, Exported, Page, Transfer, TransferFuture, Written, SAME_EXPIRY};

/// Keys read or written at once.
const IN_FLIGHT: usize = 64;

/// Writes a hash whole (fields from ARGV[3] on, TTL ARGV[1] ms) unless the one there expires no
/// sooner than ARGV[2] ms before it: 1 written, 0 already there.
const COPY_UNLESS_AS_NEW: &str = r"
local pttl = redis.call('PTTL', KEYS[1])
if pttl > 0 and pttl >= tonumber(ARGV[1]) - tonumber(ARGV[2]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1";

/// Session hashes on one server or a cluster, whole.
pub(crate) struct RedisTransfer {
    connection: Connection,
}

impl RedisTransfer {
    pub(super) fn new(connection: Connection) -> Self {
        Self { connection }
    }

    async fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> StoreResult<T> {
        match &self.connection {
            Connection::Server(conn) => command.query_async(&mut conn.clone()).await,
            Connection::Cluster(conn) => command.query_async(&mut conn.clone()).await,
        }
        .map_err(verdict)
    }

    async fn pipe<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> StoreResult<T> {
        match &self.connection {
            Connection::Server(conn) => pipe.query_async(&mut conn.clone()).await,
            Connection::Cluster(conn) => pipe.query_async(&mut conn.clone()).await,
        }
        .map_err(verdict)
    }

    /// One `SCAN` step on the server, or on the cluster master `node` (in address order):
    /// the next cursor and the session keys it gave.
    async fn scan(
        &self,
        node: usize,
        cursor: u64,
        limit: usize,
    ) -> StoreResult<(u64, Vec<String>)> {
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor)
            .arg("MATCH")
            .arg(format!("{KEY_PREFIX}*"))
            .arg("COUNT")
            .arg(limit);
        match &self.connection {
            Connection::Server(conn) => scan.query_async(&mut conn.clone()).await.map_err(verdict),
            Connection::Cluster(conn) => {
                let masters = masters(conn).await?;
                let Some((host, port)) = masters.get(node).cloned() else {
                    return Ok((0, Vec::new()));
                };
                let route =
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
                let answer = conn
                    .clone()
                    .route_command(&scan, route)
                    .await
                    .map_err(verdict)?;
                redis::from_redis_value(&answer).map_err(verdict)
            }
        }
    }

    /// The hash `key` whole, if it is a live session.
    async fn read(&self, key: String, now: NaiveDateTime) -> StoreResult<Option<Exported>> {
        let mut pipe = redis::pipe();
        pipe.cmd("HGETALL").arg(&key).cmd("PTTL").arg(&key);
        let (fields, pttl): (HashMap<String, String>, i64) = self.pipe(&pipe).await?;
        let Some(id) = key.strip_prefix(KEY_PREFIX) else {
            return Ok(None);
        };
        Ok(exported_of(id, fields, pttl, now))
    }

    /// Writes `record` unless a copy as new is there: `Some(true)` written, `Some(false)`
    /// already there, `None` expired.
    async fn put(&self, record: Exported, now: NaiveDateTime) -> StoreResult<Option<bool>> {
        if record.expires_at <= now {
            return Ok(None);
        }
        let script = redis::Script::new(COPY_UNLESS_AS_NEW);
        let mut invocation = script.key(redis_key(&record.id));
        invocation
            .arg(ttl_ms(now, record.expires_at))
            .arg(SAME_EXPIRY.num_milliseconds())
            .arg("state")
            .arg(&record.state)
            .arg("created")
            .arg(micros(record.created_at));
        if let Some(file) = &record.file {
            invocation
                .arg("file")
                .arg(file)
                .arg("bytes")
                .arg(file.len());
        }
        if let Some(at) = record.superseded_at {
            invocation.arg("superseded").arg(micros(at));
        }
        if let Some(before) = &record.predecessor {
            invocation.arg("predecessor").arg(before);
        }
        if let Some(after) = &record.successor {
            invocation.arg("successor").arg(after);
        }
        let written: i64 = match &self.connection {
            Connection::Server(conn) => invocation.invoke_async(&mut conn.clone()).await,
            Connection::Cluster(conn) => invocation.invoke_async(&mut conn.clone()).await,
        }
        .map_err(verdict)?;
        Ok(Some(written == 1))
    }
}

/// The session a hash's `fields` and `pttl` (ms) hold, if it is one and live.
fn exported_of(
    id: &str,
    mut fields: HashMap<String, String>,
    pttl: i64,
    now: NaiveDateTime,
) -> Option<Exported> {
    let created_at = fields
        .get("created")
        .and_then(|c| c.parse().ok())
        .and_then(from_micros)?;
    let state = fields.remove("state")?;
    if pttl <= 0 {
        return None;
    }
    Some(Exported {
        id: id.to_owned(),
        state,
        created_at,
        expires_at: now + chrono::Duration::milliseconds(pttl),
        file: fields.remove("file"),
        superseded_at: fields
            .get("superseded")
            .and_then(|c| c.parse().ok())
            .and_then(from_micros),
        successor: fields.remove("successor"),
        predecessor: fields.remove("predecessor"),
    })
}

/// The cluster's masters that serve slots, `(host, port)` in address order, from `CLUSTER
/// NODES`.
async fn masters(
    conn: &redis::cluster_async::ClusterConnection,
) -> StoreResult<Vec<(String, u16)>> {
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut conn.clone())
        .await
        .map_err(verdict)?;
    let mut masters = masters_in(&nodes);
    if masters.is_empty() {
        return Err(StoreError::unavailable(anyhow::anyhow!(
            "CLUSTER NODES names no master serving slots"
        )));
    }
    masters.sort();
    Ok(masters)
}

/// The masters serving slots in a `CLUSTER NODES` answer.
fn masters_in(nodes: &str) -> Vec<(String, u16)> {
    nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = fields.get(2)?;
            let serving = fields.len() > 8;
            let master = flags.split(',').any(|f| f == "master")
                && !flags.split(',').any(|f| f == "fail" || f == "noaddr");
            if !(master && serving) {
                return None;
            }
            let address = fields.get(1)?.split('@').next()?;
            let (host, port) = address.rsplit_once(':')?;
            Some((host.to_owned(), port.parse().ok()?))
        })
        .collect()
}

/// A copy's cursor on Redis: the master (0 on one server) and its `SCAN` cursor.
fn parse_cursor(cursor: Option<&str>) -> (usize, u64) {
    cursor
        .and_then(|c| c.split_once(':'))
        .and_then(|(node, scan)| Some((node.parse().ok()?, scan.parse().ok()?)))
        .unwrap_or((0, 0))
}

impl Transfer for RedisTransfer {
    fn census(&self, _now: NaiveDateTime) -> TransferFuture<'_, Census> {
        Box::pin(async move {
            // On a cluster the crate sends DBSIZE to every master and sums the answers.
            let keys: u64 = self.query(&redis::cmd("DBSIZE")).await?;
            Ok(Census {
                live: keys,
                expired: 0,
            })
        })
    }

    fn page<'a>(
        &'a self,
        cursor: Option<&'a str>,
        limit: usize,
        now: NaiveDateTime,
    ) -> TransferFuture<'a, Page> {
        Box::pin(async move {
            let (node, scan) = parse_cursor(cursor);
            let (next_scan, keys) = self.scan(node, scan, limit).await?;
            let records: Vec<Option<Exported>> = stream::iter(keys)
                .map(|key| self.read(key, now))
                .buffered(IN_FLIGHT)
                .try_collect()
                .await?;
            let next = match (next_scan, &self.connection) {
                (0, Connection::Server(_)) => None,
                (0, Connection::Cluster(conn)) => {
                    (node + 1 < masters(conn).await?.len()).then(|| format!("{}:0", node + 1))
                }
                (scan, _) => Some(format!("{node}:{scan}")),
            };
            Ok(Page {
                records: records.into_iter().flatten().collect(),
                next,
            })
        })
    }

    fn one<'a>(&'a self, id: &'a str, now: NaiveDateTime) -> TransferFuture<'a, Option<Exported>> {
        Box::pin(self.read(redis_key(id), now))
    }

    fn write(&self, records: Vec<Exported>, now: NaiveDateTime) -> TransferFuture<'_, Written> {
        Box::pin(async move {
            let outcomes: Vec<Option<bool>> = stream::iter(records)
                .map(|record| self.put(record, now))
                .buffered(IN_FLIGHT)
                .try_collect()
                .await?;
            let mut written = Written::default();
            for outcome in outcomes {
                match outcome {
                    Some(true) => written.copied += 1,
                    Some(false) => written.already += 1,
                    None => written.expired += 1,
                }
            }
            Ok(written)
        })
    }

    fn present<'a>(&'a self, ids: &'a [String]) -> TransferFuture<'a, u64> {
        Box::pin(async move {
            let found: Vec<u64> = stream::iter(ids)
                .map(|id| async move {
                    self.query::<u64>(redis::cmd("EXISTS").arg(redis_key(id)))
                        .await
                })
                .buffered(IN_FLIGHT)
                .try_collect()
                .await?;
            Ok(found.iter().sum())
        })
    }

    fn forget<'a>(&'a self, id: &'a str) -> TransferFuture<'a, ()> {
        Box::pin(async move { self.query(redis::cmd("DEL").arg(redis_key(id))).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masters_serving_slots_are_read_from_cluster_nodes() {
        let nodes = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
a2 127.0.0.1:7002@17002 master - 0 0 2 connected 5461-10922
a3 127.0.0.1:7003@17003 master,fail - 0 0 3 connected 10923-16383
r1 127.0.0.1:7004@17004 slave a1 0 0 1 connected
e1 127.0.0.1:7005@17005 master - 0 0 5 connected
";
        assert_eq!(
            masters_in(nodes),
            vec![("127.0.0.1".into(), 7001), ("127.0.0.1".into(), 7002)]
        );
    }

    #[test]
    fn a_cursor_names_the_master_and_its_scan_cursor() {
        assert_eq!(parse_cursor(None), (0, 0));
        assert_eq!(parse_cursor(Some("2:1234")), (2, 1234));
    }
}
