//! A database of its own for each test, on the servers the environment names.

use libtest_mimic::Failed;

/// The backends, each behind its Cargo feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
    Mysql,
    Redis,
    RedisCluster,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Sqlite,
        Kind::Postgres,
        Kind::Mysql,
        Kind::Redis,
        Kind::RedisCluster,
    ];

    /// The backend's feature name, which names its tests too.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Sqlite => "sqlite",
            Kind::Postgres => "postgres",
            Kind::Mysql => "mysql",
            Kind::Redis => "redis",
            Kind::RedisCluster => "redis-cluster",
        }
    }

    fn compiled(self) -> bool {
        match self {
            Kind::Sqlite => cfg!(feature = "sqlite"),
            Kind::Postgres => cfg!(feature = "postgres"),
            Kind::Mysql => cfg!(feature = "mysql"),
            Kind::Redis => cfg!(feature = "redis"),
            Kind::RedisCluster => cfg!(feature = "redis-cluster"),
        }
    }
}

/// Whether the environment names a server for `kind` (or it has a default address).
pub fn named(kind: Kind) -> bool {
    kind != Kind::RedisCluster
        || std::env::var("TEST_REDIS_CLUSTER_URL").is_ok_and(|url| !url.is_empty())
}

/// The server tests of `kind` run on, or why there is none.
pub fn server(kind: Kind) -> Result<String, String> {
    if !kind.compiled() {
        return Err(format!(
            "this build leaves out the `{}` feature",
            kind.name()
        ));
    }
    let (variable, default) = match kind {
        Kind::Sqlite => return Ok(String::new()),
        Kind::Postgres => (
            "TEST_POSTGRES_URL",
            Some("postgres://postgres@127.0.0.1:5432/postgres"),
        ),
        Kind::Mysql => ("TEST_MYSQL_URL", Some("mysql://root@127.0.0.1:3306/mysql")),
        Kind::Redis => ("TEST_REDIS_URL", Some("redis://127.0.0.1:6379/15")),
        Kind::RedisCluster => ("TEST_REDIS_CLUSTER_URL", None),
    };
    let url = match (std::env::var(variable), default) {
        (Ok(url), _) if !url.is_empty() => url,
        (_, Some(default)) => default.to_owned(),
        (_, None) => return Err(format!("{variable} is not set")),
    };
    let address = host_port(&url).ok_or_else(|| format!("{variable} names no host:port"))?;
    let reachable = std::net::ToSocketAddrs::to_socket_addrs(&address)
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| {
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(1)).is_ok()
        });
    if reachable {
        Ok(url)
    } else {
        Err(format!("nothing answers at {address} ({variable})"))
    }
}

/// The first `host:port` of a server URL.
fn host_port(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let first = rest.split([',', '/', '?']).next()?;
    first.contains(':').then(|| first.to_owned())
}

/// `url` with its database (the path) replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, query) = match rest.split_once('/') {
        Some((authority, path)) => (authority, path.split_once('?').map(|(_, q)| q)),
        None => (rest, None),
    };
    match query {
        Some(query) => format!("{scheme}://{authority}/{name}?{query}"),
        None => format!("{scheme}://{authority}/{name}"),
    }
}

/// A database of one test's own: dropped (or its keys deleted) when this is.
pub struct TestDatabase {
    pub url: String,
    /// A Redis key prefix of this test's own.
    pub redis_prefix: String,
    kind: Kind,
    server: String,
    name: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    pub async fn create(kind: Kind, server: &str) -> Result<Self, Failed> {
        let name = format!("stores_test_{:016x}", random());
        let mut database = Self {
            url: server.to_owned(),
            redis_prefix: format!("{name}:"),
            kind,
            server: server.to_owned(),
            name: name.clone(),
            _dir: None,
        };
        match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir()?;
                database.url = format!("sqlite://{}", dir.path().join("sessions.db").display());
                database._dir = Some(dir);
            }
            Kind::Postgres | Kind::Mysql => {
                admin(kind, server, &format!("CREATE DATABASE {name}")).await?;
                database.url = with_database(server, &name);
            }
            Kind::Redis | Kind::RedisCluster => {}
        }
        Ok(database)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (kind, server, name) = (self.kind, self.server.clone(), self.name.clone());
        let statement = match kind {
            Kind::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            Kind::Mysql => format!("DROP DATABASE IF EXISTS {name}"),
            Kind::Redis => format!("{name}:*"),
            // A cluster's keys expire by themselves; CI's cluster is stopped after the run.
            Kind::Sqlite | Kind::RedisCluster => return,
        };
        let dropped = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(admin(kind, &server, &statement))
        })
        .join();
        if let Ok(Err(err)) = dropped {
            eprintln!("dropping the test database {name} failed: {err:?}");
        }
    }
}

fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

/// Runs `statement` on the server (for Redis: deletes the keys matching the pattern).
#[allow(unused_variables)]
async fn admin(kind: Kind, server: &str, statement: &str) -> Result<(), Failed> {
    match kind {
        #[cfg(feature = "postgres")]
        Kind::Postgres => {
            use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
            let mut conn = AsyncPgConnection::establish(server).await?;
            conn.batch_execute(statement).await?;
        }
        #[cfg(feature = "mysql")]
        Kind::Mysql => {
            use diesel_async::{AsyncConnection, AsyncMysqlConnection, SimpleAsyncConnection};
            let mut conn = AsyncMysqlConnection::establish(server).await?;
            conn.batch_execute(statement).await?;
        }
        #[cfg(feature = "redis")]
        Kind::Redis => {
            let client = redis::Client::open(server)?;
            let mut conn = client.get_multiplexed_async_connection().await?;
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(statement)
                .query_async(&mut conn)
                .await?;
            if !keys.is_empty() {
                redis::cmd("DEL")
                    .arg(keys)
                    .query_async::<()>(&mut conn)
                    .await?;
            }
        }
        _ => {}
    }
    Ok(())
}
