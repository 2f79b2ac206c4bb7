//! Test plumbing, one job a file: the databases a test gets ([`db`]: a fresh one per test, and
//! a blocking SQL connection to it in [`sql`]), the real application on port 0 with its settings
//! and a clock tests can move ([`app`]), HTTP clients, cookies and hand-made bodies ([`http`]),
//! and servers run as processes of their own ([`servers`]: the textdrop binary, a private
//! Redis, database servers a test can stop). The macros below hand each test its database, once
//! per backend it runs on.

mod app;
mod db;
mod http;
mod servers;
mod sql;

pub use app::*;
pub use db::*;
pub use http::*;
pub use servers::*;
pub use sql::*;

/// Key material every test app shares, so a restarted app can read the same cookies.
pub const TEST_SECRET: &str = "test-secret-key-material-that-is-long-enough-0123456789";

/// Prints why a test skips straight to stderr: the test harness captures `eprintln!` of
/// passing tests, and a skip must be seen.
macro_rules! skip_notice {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
pub(crate) use skip_notice;

/// One `#[actix_web::test]` per backend in `[$($backend)*]` for each listed `async fn(TestDb)`;
/// the test gets a fresh database of that backend, or is skipped (outside CI) when the backend
/// is not configured.
#[macro_export]
macro_rules! tests_on {
    ($module:ident: $backend:ident; $($name:ident),* $(,)?) => {
        mod $module {
            $(
                #[actix_web::test]
                async fn $name() {
                    if let Some(db) = $crate::helpers::TestDb::new($crate::helpers::Backend::$backend) {
                        super::$name(db).await
                    }
                }
            )*
        }
    };
}

/// The listed tests on every SQL database: SQLite, PostgreSQL and MySQL/MariaDB; with a leading
/// `group:`, inside a module of that name (for a second list in the same file).
#[macro_export]
macro_rules! sql_tests {
    ($group:ident: $($name:ident),* $(,)?) => {
        mod $group {
            use super::*;
            $crate::sql_tests!($($name),*);
        }
    };
    ($($name:ident),* $(,)?) => {
        $crate::tests_on!(sqlite: Sqlite; $($name),*);
        $crate::tests_on!(postgres: Postgres; $($name),*);
        $crate::tests_on!(mysql: Mysql; $($name),*);
    };
}

/// The listed tests on every backend: SQLite, PostgreSQL, MySQL, Redis and Redis Cluster.
#[macro_export]
macro_rules! page_tests {
    ($($name:ident),* $(,)?) => {
        $crate::sql_tests!($($name),*);
        $crate::tests_on!(redis: Redis; $($name),*);
        $crate::tests_on!(redis_cluster: RedisCluster; $($name),*);
    };
}
