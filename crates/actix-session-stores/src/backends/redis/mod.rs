//! Redis and Redis Cluster: a session is a hash, and Redis expires it itself (no migrations, no
//! cleanup task). One server through one multiplexed connection that reconnects by itself; a
//! cluster through the `redis` crate's cluster connection (it follows MOVED and ASK and
//! refreshes its slot map itself). Every wait is bounded, so a request gets its 503 page within
//! a few seconds while the server is down or slots move.

mod admin;
mod records;
mod transfer;

use std::rc::Rc;
use std::time::Duration;

use chrono::NaiveDateTime;
use futures_util::future::LocalBoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
#[cfg(feature = "redis-cluster")]
use redis::cluster::ClusterClient;
#[cfg(feature = "redis-cluster")]
use redis::cluster_async::ClusterConnection;

use crate::backends::Connected;
use crate::config::{CleanupConfig, Config};
use crate::retry;
use crate::session::Records;
use crate::sweeper::Dialect;
use crate::transfer::Transfer;
use records::RedisRecords;

/// How long a Redis command or connection attempt may take before the request gets its 503.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// Cluster waits, bounded so a request gets its 503 within about 5 s while slots move during
/// a failover (the crate's defaults retry 16 times, waiting up to 655 s): 2 retries, 100 ms to
/// 1 s apart, each command given 1.5 s and each connection attempt 1 s.
#[cfg(feature = "redis-cluster")]
const CLUSTER_RETRIES: u32 = 2;
#[cfg(feature = "redis-cluster")]
const CLUSTER_RETRY_WAIT_MS: (u64, u64) = (100, 1_000);
#[cfg(feature = "redis-cluster")]
const CLUSTER_RESPONSE_TIMEOUT: Duration = Duration::from_millis(1_500);
#[cfg(feature = "redis-cluster")]
const CLUSTER_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// One Redis server or a cluster.
#[derive(Clone)]
enum Connection {
    Server(ConnectionManager),
    #[cfg(feature = "redis-cluster")]
    Cluster(ClusterConnection),
}

/// Sessions in Redis.
pub(crate) struct RedisStorage {
    connection: Connection,
    keys: records::Keys,
}

impl RedisStorage {
    /// One server, `redis://HOST:PORT/DB`.
    pub(crate) async fn connect(config: &Config) -> anyhow::Result<Self> {
        let keys = records::Keys::new(&config.names.redis_prefix);
        let keys = &keys;
        let database = &config.database;
        let url = database.url.target().to_owned();
        let what = format!("Redis at {}", database.url.location());
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(REDIS_TIMEOUT)
            .set_response_timeout(REDIS_TIMEOUT)
            .set_number_of_retries(1);
        retry::with_backoff(&what, database.connect_timeout, || {
            let client = redis::Client::open(url.as_str());
            let config = config.clone();
            async move {
                let connection = ConnectionManager::new_with_config(client?, config).await?;
                Ok(Self {
                    connection: Connection::Server(connection),
                    keys: keys.clone(),
                })
            }
        })
        .await
    }

    /// On the application's connection to one server.
    pub(crate) fn with_connection(config: &Config, conn: ConnectionManager) -> Self {
        Self {
            connection: Connection::Server(conn),
            keys: records::Keys::new(&config.names.redis_prefix),
        }
    }

    /// On the application's connection to a cluster.
    #[cfg(feature = "redis-cluster")]
    pub(crate) fn with_cluster_connection(config: &Config, conn: ClusterConnection) -> Self {
        Self {
            connection: Connection::Cluster(conn),
            keys: records::Keys::new(&config.names.redis_prefix),
        }
    }

    /// A cluster, `redis+cluster://HOST:PORT,HOST:PORT,…`.
    #[cfg(feature = "redis-cluster")]
    pub(crate) async fn connect_cluster(config: &Config) -> anyhow::Result<Self> {
        let keys = records::Keys::new(&config.names.redis_prefix);
        let keys = &keys;
        let database = &config.database;
        let nodes = database.url.cluster_nodes();
        anyhow::ensure!(!nodes.is_empty(), "the database URL names no cluster node");
        let what = format!("the Redis Cluster at {}", database.url.location());
        let (min_wait, max_wait) = CLUSTER_RETRY_WAIT_MS;
        let client = ClusterClient::builder(nodes)
            .retries(CLUSTER_RETRIES)
            .min_retry_wait(min_wait)
            .max_retry_wait(max_wait)
            .response_timeout(CLUSTER_RESPONSE_TIMEOUT)
            .connection_timeout(CLUSTER_CONNECT_TIMEOUT)
            .build()?;
        retry::with_backoff(&what, database.connect_timeout, || async {
            let connection = client.get_async_connection().await?;
            Ok(Self {
                connection: Connection::Cluster(connection),
                keys: keys.clone(),
            })
        })
        .await
    }
}

impl Connected for RedisStorage {
    fn records(&self) -> Rc<dyn Records> {
        match &self.connection {
            Connection::Server(conn) => {
                Rc::new(RedisRecords::server(conn.clone(), self.keys.clone()))
            }
            #[cfg(feature = "redis-cluster")]
            Connection::Cluster(conn) => {
                Rc::new(RedisRecords::cluster(conn.clone(), self.keys.clone()))
            }
        }
    }

    fn transfer(&self) -> Option<Rc<dyn Transfer>> {
        Some(Rc::new(transfer::RedisTransfer::new(
            self.connection.clone(),
            self.keys.clone(),
        )))
    }

    fn dialect(&self, _cleanup: &CleanupConfig) -> Option<Rc<dyn Dialect>> {
        None
    }

    fn stored_bytes(
        &self,
        _now: NaiveDateTime,
        _per_record: u64,
    ) -> LocalBoxFuture<'_, anyhow::Result<u64>> {
        Box::pin(async move {
            Ok(match &self.connection {
                Connection::Server(conn) => admin::used_memory(conn).await?,
                #[cfg(feature = "redis-cluster")]
                Connection::Cluster(conn) => admin::cluster_used_memory(conn).await?,
            })
        })
    }
}
