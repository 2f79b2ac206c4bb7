//! What the store asks a Redis server or cluster besides sessions: the memory in use (the
//! storage cap counts it) and whether a cluster is ready.

use redis::aio::ConnectionLike;

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
#[cfg(feature = "redis-cluster")]
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
#[cfg(feature = "redis-cluster")]
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
#[cfg(feature = "redis-cluster")]
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
