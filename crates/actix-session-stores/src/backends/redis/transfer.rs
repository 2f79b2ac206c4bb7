//! Session hashes read and written whole (copies, and moves from a previous storage).
//!
//! A copy walks the keyspace with `SCAN … MATCH <prefix>*`, on a cluster master by
//! master (the cursor names the master, in address order, and its own cursor), and reads each
//! hash with `HGETALL` and `PTTL`: its expiry is the TTL from now. A hash is written by one
//! script on its own slot that leaves a copy as new as ours (its TTL within
//! [`SAME_EXPIRY`] of ours or later) alone and otherwise replaces it whole. Keys are read and
//! written [`IN_FLIGHT`] at a time: on a cluster each key may live on another node, so they go
//! one command (or pipeline) each, concurrently, not in one pipeline.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use futures_util::{stream, StreamExt, TryStreamExt};
#[cfg(feature = "redis-cluster")]
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};

use super::records::{from_micros, micros, ttl_ms, verdict, Keys};
use super::Connection;
use crate::session::records::{StoreError, StoreResult};
use crate::transfer::{
    Census, Exported, Page, Skipped, Transfer, TransferFuture, Written, SAME_EXPIRY,
};

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
    keys: Keys,
}

impl RedisTransfer {
    pub(super) fn new(connection: Connection, keys: Keys) -> Self {
        Self { connection, keys }
    }

    async fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> StoreResult<T> {
        match &self.connection {
            Connection::Server(conn) => command.query_async(&mut conn.clone()).await,
            #[cfg(feature = "redis-cluster")]
            Connection::Cluster(conn) => command.query_async(&mut conn.clone()).await,
        }
        .map_err(verdict)
    }

    async fn pipe<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> StoreResult<T> {
        match &self.connection {
            Connection::Server(conn) => pipe.query_async(&mut conn.clone()).await,
            #[cfg(feature = "redis-cluster")]
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
            .arg(format!("{}*", self.keys.prefix()))
            .arg("COUNT")
            .arg(limit);
        #[cfg(not(feature = "redis-cluster"))]
        let _ = node;
        match &self.connection {
            Connection::Server(conn) => scan.query_async(&mut conn.clone()).await.map_err(verdict),
            #[cfg(feature = "redis-cluster")]
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

    /// The hash `key` whole, if it is a live session; `Err` (inside) naming it when it is
    /// there but no session this store wrote.
    async fn read(
        &self,
        key: String,
        now: NaiveDateTime,
    ) -> StoreResult<Result<Option<Exported>, Skipped>> {
        let mut pipe = redis::pipe();
        pipe.cmd("HGETALL").arg(&key).cmd("PTTL").arg(&key);
        let read: Result<(HashMap<String, String>, i64), StoreError> = self.pipe(&pipe).await;
        let id = key.strip_prefix(self.keys.prefix()).unwrap_or(&key);
        let (fields, pttl) = match read {
            Ok(read) => read,
            Err(err) if err.is_unavailable() => return Err(err),
            // Not a hash, or a value that is no text.
            Err(err) => return Ok(Err(Skipped::new(id, err))),
        };
        Ok(exported_of(id, fields, pttl, now).map_err(|why| Skipped::new(id, why)))
    }

    /// The size of the file of each of `keys` (0 without one), in order.
    async fn file_sizes(&self, keys: &[String]) -> StoreResult<Vec<u64>> {
        stream::iter(keys)
            .map(|key| async move {
                self.query::<u64>(redis::cmd("HSTRLEN").arg(key).arg("file"))
                    .await
                    // Not a hash: read (and skipped) on its own.
                    .or_else(|err| {
                        if err.is_unavailable() {
                            Err(err)
                        } else {
                            Ok(0)
                        }
                    })
            })
            .buffered(IN_FLIGHT)
            .try_collect()
            .await
    }

    /// Writes `record` unless a copy as new is there: `Some(true)` written, `Some(false)`
    /// already there, `None` expired.
    async fn put(&self, record: Exported, now: NaiveDateTime) -> StoreResult<Option<bool>> {
        if record.expires_at <= now {
            return Ok(None);
        }
        let script = redis::Script::new(COPY_UNLESS_AS_NEW);
        let mut invocation = script.key(self.keys.of(&record.id));
        invocation
            .arg(ttl_ms(now, record.expires_at))
            .arg(SAME_EXPIRY.num_milliseconds())
            .arg("state")
            .arg(&record.state)
            .arg("created")
            .arg(micros(record.created_at));
        if let Some(file) = &record.attachment {
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
            #[cfg(feature = "redis-cluster")]
            Connection::Cluster(conn) => invocation.invoke_async(&mut conn.clone()).await,
        }
        .map_err(verdict)?;
        Ok(Some(written == 1))
    }
}

/// The session a hash's `fields` and `pttl` (ms) hold, if it is live (`None`: it expired or
/// went); `Err` saying why when it is no session this store wrote.
fn exported_of(
    id: &str,
    mut fields: HashMap<String, String>,
    pttl: i64,
    now: NaiveDateTime,
) -> Result<Option<Exported>, &'static str> {
    if pttl == -2 || (pttl <= 0 && fields.is_empty()) {
        return Ok(None);
    }
    if pttl == -1 {
        return Err("it has no TTL, so it would never expire");
    }
    let created_at = fields
        .get("created")
        .and_then(|c| c.parse().ok())
        .and_then(from_micros)
        .ok_or("its `created` field is missing or not a time")?;
    let state = fields
        .remove("state")
        .ok_or("its `state` field is missing")?;
    if pttl <= 0 {
        return Ok(None);
    }
    Ok(Some(Exported {
        id: id.to_owned(),
        state,
        created_at,
        expires_at: now + chrono::Duration::milliseconds(pttl),
        attachment: fields.remove("file"),
        superseded_at: fields
            .get("superseded")
            .and_then(|c| c.parse().ok())
            .and_then(from_micros),
        successor: fields.remove("successor"),
        predecessor: fields.remove("predecessor"),
    }))
}

/// The cluster's masters that serve slots, `(host, port)` in address order, from `CLUSTER
/// NODES`.
#[cfg(feature = "redis-cluster")]
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
#[cfg(feature = "redis-cluster")]
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

/// A copy's cursor on Redis: the master (0 on one server), its `SCAN` cursor, and the keys
/// that scan gave which a page left for the next (they did not fit its bytes):
/// `node:scan|key,key…`.
fn parse_cursor(cursor: Option<&str>) -> (usize, u64, Vec<String>) {
    let Some(cursor) = cursor else {
        return (0, 0, Vec::new());
    };
    let (position, left) = cursor.split_once('|').unwrap_or((cursor, ""));
    let (node, scan) = position
        .split_once(':')
        .and_then(|(node, scan)| Some((node.parse().ok()?, scan.parse().ok()?)))
        .unwrap_or((0, 0));
    let left = left
        .split(',')
        .filter(|key| !key.is_empty())
        .map(str::to_owned)
        .collect();
    (node, scan, left)
}

/// How many of the first files (of `sizes` bytes each) fit `max_bytes` with their record's
/// charge: at least one.
fn fitting(sizes: &[u64], max_bytes: u64) -> usize {
    let mut total = 0;
    sizes
        .iter()
        .take_while(|bytes| {
            let first = total == 0;
            total += **bytes + crate::transfer::RECORD_OVERHEAD;
            first || total <= max_bytes
        })
        .count()
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
        max_bytes: u64,
        now: NaiveDateTime,
    ) -> TransferFuture<'a, Page> {
        Box::pin(async move {
            let (node, mut scan, mut keys) = parse_cursor(cursor);
            if keys.is_empty() {
                (scan, keys) = self.scan(node, scan, limit).await?;
            }
            let sizes = self.file_sizes(&keys).await?;
            let left = keys.split_off(fitting(&sizes, max_bytes).min(keys.len()));
            let read: Vec<Result<Option<Exported>, Skipped>> = stream::iter(keys)
                .map(|key| self.read(key, now))
                .buffered(IN_FLIGHT)
                .try_collect()
                .await?;
            let mut page = Page::default();
            for outcome in read {
                match outcome {
                    Ok(Some(record)) => page.records.push(record),
                    Ok(None) => {}
                    Err(skipped) => page.skipped.push(skipped),
                }
            }
            page.next = match (scan, &self.connection) {
                _ if !left.is_empty() => Some(format!("{node}:{scan}|{}", left.join(","))),
                (0, Connection::Server(_)) => None,
                #[cfg(feature = "redis-cluster")]
                (0, Connection::Cluster(conn)) => {
                    (node + 1 < masters(conn).await?.len()).then(|| format!("{}:0", node + 1))
                }
                (scan, _) => Some(format!("{node}:{scan}")),
            };
            Ok(page)
        })
    }

    fn one<'a>(&'a self, id: &'a str, now: NaiveDateTime) -> TransferFuture<'a, Option<Exported>> {
        Box::pin(async move {
            self.read(self.keys.of(id), now).await?.map_err(|skipped| {
                StoreError::corrupt(anyhow::anyhow!("the session hash {}", skipped.why))
            })
        })
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
                    self.query::<u64>(redis::cmd("EXISTS").arg(self.keys.of(id)))
                        .await
                })
                .buffered(IN_FLIGHT)
                .try_collect()
                .await?;
            Ok(found.iter().sum())
        })
    }

    fn forget<'a>(&'a self, id: &'a str) -> TransferFuture<'a, ()> {
        Box::pin(async move { self.query(redis::cmd("DEL").arg(self.keys.of(id))).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(feature = "redis-cluster")]
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
    fn a_cursor_names_the_master_its_scan_cursor_and_the_keys_left() {
        assert_eq!(parse_cursor(None), (0, 0, vec![]));
        assert_eq!(parse_cursor(Some("2:1234")), (2, 1234, vec![]));
        assert_eq!(
            parse_cursor(Some("1:0|app:session:a,app:session:b")),
            (
                1,
                0,
                vec!["app:session:a".to_owned(), "app:session:b".to_owned()]
            )
        );
    }

    #[test]
    fn a_page_takes_the_files_that_fit_and_at_least_one() {
        let charge = crate::transfer::RECORD_OVERHEAD;
        assert_eq!(fitting(&[10, 10, 10], 3 * (10 + charge)), 3);
        assert_eq!(fitting(&[10, 10, 10], 2 * (10 + charge)), 2);
        assert_eq!(fitting(&[1 << 30, 10], 1 << 20), 1, "one, however big");
        assert_eq!(fitting(&[], 100), 0);
    }

    #[test]
    fn a_hash_that_is_no_session_is_named_not_dropped() {
        let now = chrono::DateTime::from_timestamp(1_000, 0)
            .expect("time")
            .naive_utc();
        let fields = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let good = fields(&[("state", "{}"), ("created", "1000000")]);
        assert!(matches!(
            exported_of("a", good.clone(), 5_000, now),
            Ok(Some(_))
        ));
        assert_eq!(
            exported_of("a", good, -1, now).err(),
            Some("it has no TTL, so it would never expire")
        );
        assert!(exported_of("a", fields(&[("state", "{}")]), 5_000, now).is_err());
        assert!(exported_of(
            "a",
            fields(&[("state", "{}"), ("created", "x")]),
            5_000,
            now
        )
        .is_err());
        assert!(exported_of("a", fields(&[("created", "1000000")]), 5_000, now).is_err());
        assert_eq!(
            exported_of("a", HashMap::new(), -2, now),
            Ok(None),
            "gone meanwhile"
        );
    }
}
