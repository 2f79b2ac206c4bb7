//! [`ExistingPool`]: a pool (or connection) the application already owns, for
//! [`Storage::with_pool`](crate::Storage::with_pool).

/// A pool or connection the application already owns, which the store then shares instead of
/// opening connections of its own. Each variant is behind its backend's feature; make one with
/// `.into()` from the pool itself.
///
/// - SQLite: Diesel's r2d2 pool. Its database is switched to WAL (readers then never wait for a
///   writer); a connection without a `busy_timeout` answers a locked database at once, which
///   the store turns into a 503.
/// - PostgreSQL, MySQL: diesel-async's deadpool pool, shared by every worker. This crate's own
///   pools are one per worker, because a connection does its I/O on the runtime that opened
///   it: on a shared pool a worker's query may be driven by another worker's thread. Statement
///   deadlines are kept on this side only (the application's connections keep their own
///   settings).
/// - Redis: a `ConnectionManager`; a Redis Cluster: a `ClusterConnection`. Both are shared by
///   every worker as this crate's own are.
#[non_exhaustive]
pub enum ExistingPool {
    /// Diesel's r2d2 pool of SQLite connections.
    #[cfg(feature = "sqlite")]
    Sqlite(diesel::r2d2::Pool<diesel::r2d2::ConnectionManager<diesel::SqliteConnection>>),
    /// diesel-async's deadpool pool of PostgreSQL connections.
    #[cfg(feature = "postgres")]
    Postgres(diesel_async::pooled_connection::deadpool::Pool<diesel_async::AsyncPgConnection>),
    /// diesel-async's deadpool pool of MySQL connections.
    #[cfg(feature = "mysql")]
    Mysql(diesel_async::pooled_connection::deadpool::Pool<diesel_async::AsyncMysqlConnection>),
    /// A connection to one Redis server.
    #[cfg(feature = "redis")]
    Redis(redis::aio::ConnectionManager),
    /// A connection to a Redis Cluster.
    #[cfg(feature = "redis-cluster")]
    RedisCluster(redis::cluster_async::ClusterConnection),
}

impl ExistingPool {
    /// The backend it reaches.
    pub fn backend(&self) -> crate::Backend {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => crate::Backend::Sqlite,
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => crate::Backend::Postgres,
            #[cfg(feature = "mysql")]
            Self::Mysql(_) => crate::Backend::Mysql,
            #[cfg(feature = "redis")]
            Self::Redis(_) => crate::Backend::Redis,
            #[cfg(feature = "redis-cluster")]
            Self::RedisCluster(_) => crate::Backend::RedisCluster,
        }
    }
}

#[cfg(feature = "sqlite")]
impl From<diesel::r2d2::Pool<diesel::r2d2::ConnectionManager<diesel::SqliteConnection>>>
    for ExistingPool
{
    fn from(
        pool: diesel::r2d2::Pool<diesel::r2d2::ConnectionManager<diesel::SqliteConnection>>,
    ) -> Self {
        Self::Sqlite(pool)
    }
}

#[cfg(feature = "postgres")]
impl From<diesel_async::pooled_connection::deadpool::Pool<diesel_async::AsyncPgConnection>>
    for ExistingPool
{
    fn from(
        pool: diesel_async::pooled_connection::deadpool::Pool<diesel_async::AsyncPgConnection>,
    ) -> Self {
        Self::Postgres(pool)
    }
}

#[cfg(feature = "mysql")]
impl From<diesel_async::pooled_connection::deadpool::Pool<diesel_async::AsyncMysqlConnection>>
    for ExistingPool
{
    fn from(
        pool: diesel_async::pooled_connection::deadpool::Pool<diesel_async::AsyncMysqlConnection>,
    ) -> Self {
        Self::Mysql(pool)
    }
}

#[cfg(feature = "redis")]
impl From<redis::aio::ConnectionManager> for ExistingPool {
    fn from(conn: redis::aio::ConnectionManager) -> Self {
        Self::Redis(conn)
    }
}

#[cfg(feature = "redis-cluster")]
impl From<redis::cluster_async::ClusterConnection> for ExistingPool {
    fn from(conn: redis::cluster_async::ClusterConnection) -> Self {
        Self::RedisCluster(conn)
    }
}
