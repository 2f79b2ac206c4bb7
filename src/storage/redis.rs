//! The two Redis storages' connections, with the waits that bound how long a request can hang
//! on them.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;

use crate::config::DatabaseSettings;
use crate::retry;

/// Redis, through one multiplexed connection that reconnects by itself.
pub struct RedisStorage {
    pub(super) connection: ConnectionManager,
}

/// How long a Redis command or connection attempt may take before the request gets its 503.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// A Redis Cluster, through the `redis` crate's cluster connection (it follows MOVED and ASK
/// and refreshes its slot map itself).
pub struct ClusterStorage {
    pub(super) connection: ClusterConnection,
}

/// Cluster waits, bounded so a request gets its 503 within about 5 s while slots move during
/// a failover (the crate's defaults retry 16 times, waiting up to 655 s): 2 retries, 100 ms to
/// 1 s apart, each command given 1.5 s and each connection attempt 1 s.
const CLUSTER_RETRIES: u32 = 2;
const CLUSTER_RETRY_WAIT_MS: (u64, u64) = (100, 1_000);
const CLUSTER_RESPONSE_TIMEOUT: Duration = Duration::from_millis(1_500);
const CLUSTER_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

impl RedisStorage {
    pub(super) async fn connect(settings: &DatabaseSettings) -> anyhow::Result<Self> {
        let url = settings.url.target().to_owned();
        let what = format!("Redis at {}", settings.url.location());
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(REDIS_TIMEOUT)
            .set_response_timeout(REDIS_TIMEOUT)
            .set_number_of_retries(1);
        retry::with_backoff(&what, settings.connect_timeout, || {
            let client = redis::Client::open(url.as_str());
            let config = config.clone();
            async move {
                let connection = ConnectionManager::new_with_config(client?, config).await?;
                Ok(Self { connection })
            }
        })
        .await
    }
}

impl ClusterStorage {
    pub(super) async fn connect(settings: &DatabaseSettings) -> anyhow::Result<Self> {
        let nodes = settings.url.cluster_nodes();
        anyhow::ensure!(!nodes.is_empty(), "DATABASE_URL names no cluster node");
        let what = format!("the Redis Cluster at {}", settings.url.location());
        let (min_wait, max_wait) = CLUSTER_RETRY_WAIT_MS;
        let client = ClusterClient::builder(nodes)
            .retries(CLUSTER_RETRIES)
            .min_retry_wait(min_wait)
            .max_retry_wait(max_wait)
            .response_timeout(CLUSTER_RESPONSE_TIMEOUT)
            .connection_timeout(CLUSTER_CONNECT_TIMEOUT)
            .build()?;
        retry::with_backoff(&what, settings.connect_timeout, || async {
            let connection = client.get_async_connection().await?;
            Ok(Self { connection })
        })
        .await
    }
}
