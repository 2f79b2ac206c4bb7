//! The suite again, on a pool (or connection) the test owns, as an application would hand it
//! over with `Storage::with_pool`; and a pool of another backend than the URL's is refused.

use std::time::Duration;

use actix_session_stores::{Config, DatabaseUrl, ErrorKind, ExistingPool, Storage};
use libtest_mimic::Failed;

use crate::databases::{Kind, TestDatabase};

/// A pool of `kind` to `url`, as an application would build it with the crates' own API.
#[allow(unused_variables)]
async fn pool_of(kind: Kind, url: &DatabaseUrl) -> Result<ExistingPool, Failed> {
    Ok(match kind {
        #[cfg(feature = "sqlite")]
        Kind::Sqlite => {
            use diesel::r2d2::{ConnectionManager, Pool};
            let path = url.target().trim_start_matches("sqlite://").to_owned();
            let pool = Pool::builder()
                .max_size(3)
                .build(ConnectionManager::<diesel::SqliteConnection>::new(path))?;
            pool.into()
        }
        #[cfg(feature = "postgres")]
        Kind::Postgres => {
            use diesel_async::pooled_connection::{deadpool::Pool, AsyncDieselConnectionManager};
            let manager =
                AsyncDieselConnectionManager::<diesel_async::AsyncPgConnection>::new(url.target());
            Pool::builder(manager).max_size(3).build()?.into()
        }
        #[cfg(feature = "mysql")]
        Kind::Mysql => {
            use diesel_async::pooled_connection::{deadpool::Pool, AsyncDieselConnectionManager};
            let manager = AsyncDieselConnectionManager::<diesel_async::AsyncMysqlConnection>::new(
                url.target(),
            );
            Pool::builder(manager).max_size(3).build()?.into()
        }
        #[cfg(feature = "redis")]
        Kind::Redis => redis::Client::open(url.target())?
            .get_connection_manager()
            .await?
            .into(),
        #[cfg(feature = "redis-cluster")]
        Kind::RedisCluster => redis::cluster::ClusterClient::new(url.cluster_nodes())?
            .get_async_connection()
            .await?
            .into(),
        #[allow(unreachable_patterns)]
        other => return Err(format!("{other:?} is not in this build").into()),
    })
}

/// actix-session's suite (no grace, as in `acceptance`) on the test's own pool.
pub fn suite_on_the_applications_pool(kind: Kind, server: &str) -> Result<(), Failed> {
    let server = server.to_owned();
    actix_web::rt::System::new().block_on(async move {
        let database = TestDatabase::create(kind, &server).await?;
        let url = DatabaseUrl::parse(&database.url)?;
        let pool = pool_of(kind, &url).await?;
        let mut config = Config::new(url);
        config.workers = 1;
        config.cleanup.interval = None;
        config.names.redis_prefix = database.redis_prefix.clone();
        config.session.rotation_grace = Duration::ZERO;
        let storage = Storage::with_pool(config, pool).await?;
        crate::suite::acceptance_test_suite(move || storage.store(), true).await;
        Ok(())
    })
}

/// A pool that reaches another backend than the configuration's URL names is a `Config`
/// error, before anything is done with it.
#[cfg(feature = "sqlite")]
pub fn another_backends_pool_is_refused(_kind: Kind, _server: &str) -> Result<(), Failed> {
    actix_web::rt::System::new().block_on(async {
        let dir = tempfile::tempdir()?;
        let url = DatabaseUrl::parse(&format!("sqlite://{}", dir.path().join("a.db").display()))?;
        let pool = pool_of(Kind::Sqlite, &url).await?;
        let config = Config::new(DatabaseUrl::parse("redis://127.0.0.1:1/0")?);
        match Storage::with_pool(config, pool).await {
            Err(err) if err.kind() == ErrorKind::Config => {
                let message = err.to_string();
                assert!(
                    message.contains("names redis, the pool reaches sqlite"),
                    "{message}"
                );
                Ok(())
            }
            Err(err) => Err(format!("another error: {err}").into()),
            Ok(_) => Err("a SQLite pool was taken for a Redis URL".into()),
        }
    })
}
