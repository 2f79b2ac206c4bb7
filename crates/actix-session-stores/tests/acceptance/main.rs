//! actix-session's acceptance suite (`suite`) and this crate's own grace-period tests, on
//! every backend this build has, each on a database of its own.
//!
//! The servers come from the environment, else the usual local addresses:
//! `TEST_POSTGRES_URL` (postgres://postgres@127.0.0.1:5432/postgres), `TEST_MYSQL_URL`
//! (mysql://root@127.0.0.1:3306/mysql), `TEST_REDIS_URL` (redis://127.0.0.1:6379/15), and
//! `TEST_REDIS_CLUSTER_URL` (unset: the run starts a cluster of its own, [`cluster`], when
//! `redis-server` is on PATH). A server that does not answer, or a backend this build leaves
//! out, is reported as not run, with the reason;
//! `ACTIX_SESSION_STORES_REQUIRE=postgres,mysql,redis,redis-cluster` makes it a failure
//! instead (CI).

mod cluster;
mod databases;
mod existing;
mod grace;
mod suite;

use std::time::Duration;

use actix_session_stores::{Config, DatabaseUrl, Storage};
use libtest_mimic::{Arguments, Failed, Trial};

use databases::{Kind, TestDatabase};

/// Runs `work` on a storage of `kind` (a fresh database), with `configure` applied to its
/// configuration; the database is dropped afterwards, whatever happened.
fn on_storage(
    kind: Kind,
    server: &str,
    configure: impl FnOnce(&mut Config) + Send + 'static,
    work: impl FnOnce(Storage) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>
        + Send
        + 'static,
) -> Result<(), Failed> {
    let server = server.to_owned();
    actix_web::rt::System::new().block_on(async move {
        let database = TestDatabase::create(kind, &server).await?;
        let mut config = Config::new(DatabaseUrl::parse(&database.url)?);
        config.workers = 1;
        config.cleanup.interval = None;
        config.names.redis_prefix = database.redis_prefix.clone();
        configure(&mut config);
        let storage = Storage::connect(config).await?;
        work(storage).await;
        Ok(())
    })
}

/// One test on one backend's server.
type Test = fn(Kind, &str) -> Result<(), Failed>;

/// The tests each backend runs, by name.
const TESTS: [(&str, Test); 3] = [
    ("acceptance_suite_with_no_grace", acceptance),
    (
        "acceptance_suite_on_the_applications_pool",
        existing::suite_on_the_applications_pool,
    ),
    (
        "renew_keeps_the_old_key_readable_for_the_grace",
        grace::renew_within_grace,
    ),
];

/// Whether `args` select a test of `kind` (libtest's name filter and `--skip`, roughly).
fn selects(args: &Arguments, kind: Kind) -> bool {
    TESTS.iter().any(|(name, _)| {
        let full = format!("{}::{name}", kind.name());
        let filtered = args.filter.as_ref().is_none_or(|filter| {
            if args.exact {
                &full == filter
            } else {
                full.contains(filter.as_str())
            }
        });
        filtered && !args.skip.iter().any(|skip| full.contains(skip.as_str()))
    })
}

fn main() {
    let args = Arguments::from_args();
    let required = std::env::var("ACTIX_SESSION_STORES_REQUIRE").unwrap_or_default();
    // A cluster of the run's own when none is named, the tests that need one are chosen and
    // this build has the backend; stopped once they ran.
    let own_cluster = (!databases::named(Kind::RedisCluster)
        && cfg!(feature = "redis-cluster")
        && !args.list
        && selects(&args, Kind::RedisCluster))
    .then(cluster::OwnCluster::start);
    let mut trials = Vec::new();
    for kind in Kind::ALL {
        let server = match (kind, &own_cluster) {
            (Kind::RedisCluster, Some(Ok(cluster))) => Ok(cluster.url.clone()),
            (Kind::RedisCluster, Some(Err(why))) => Err(why.clone()),
            _ => databases::server(kind),
        };
        for (name, test) in TESTS {
            let name = format!("{}::{name}", kind.name());
            let trial = match &server {
                Ok(server) => {
                    let server = server.clone();
                    Trial::test(name, move || test(kind, &server))
                }
                Err(why) if required.split(',').any(|r| r.trim() == kind.name()) => {
                    let why = why.clone();
                    Trial::test(name, move || Err(format!("required, but {why}").into()))
                }
                Err(why) => {
                    if selects(&args, kind) {
                        eprintln!("not run: {name}: {why}");
                    }
                    Trial::test(name, || Ok(())).with_ignored_flag(true)
                }
            };
            trials.push(trial);
        }
    }
    #[cfg(feature = "sqlite")]
    trials.push(Trial::test(
        "sqlite::another_backends_pool_is_refused",
        || existing::another_backends_pool_is_refused(Kind::Sqlite, ""),
    ));
    let conclusion = libtest_mimic::run(&args, trials);
    drop(own_cluster);
    conclusion.exit();
}

/// actix-session's suite with a grace period of 0: its `complex_workflow` reuses the cookie
/// from before a renew and expects the empty state, which a grace would show read-only.
fn acceptance(kind: Kind, server: &str) -> Result<(), Failed> {
    on_storage(
        kind,
        server,
        |config| config.session.rotation_grace = Duration::ZERO,
        |storage| Box::pin(suite::acceptance_test_suite(move || storage.store(), true)),
    )
}
