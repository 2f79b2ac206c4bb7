//! Test plumbing, one job a file: the databases a test gets ([`db`]: a fresh one per test, and
//! a blocking SQL connection to it in [`sql`]), the real application on port 0 with its settings
//! and a clock tests can move ([`app`]), HTTP clients, cookies and hand-made bodies ([`http`]),
//! and servers run as processes of their own ([`servers`]: the textdrop binary, a private
//! Redis, database servers a test can stop). The macros below hand each test its database, once
//! per backend it runs on.

mod app;
mod db;
pub mod harness;
mod http;
mod servers;
mod sql;

pub use app::*;
pub use db::*;
pub use harness::{block_on, Case, Need};
pub use http::*;
pub use servers::*;
pub use sql::*;

/// Key material every test app shares, so a restarted app can read the same cookies.
pub const TEST_SECRET: &str = "test-secret-key-material-that-is-long-enough-0123456789";

/// One test on `$backend` for each listed `async fn(TestDb)` (each also needing what `needs`
/// lists); the test gets a fresh database of that backend, and is reported ignored when
/// something it needs is missing (see [`harness`]).
#[macro_export]
macro_rules! tests_on {
    ($module:ident: $backend:ident needs $($also:ident),+; $($name:ident),* $(,)?) => {
        $crate::tests_on!(@ $module, $backend, &[$($crate::helpers::Need::$also),+]; $($name),*);
    };
    ($module:ident: $backend:ident; $($name:ident),* $(,)?) => {
        $crate::tests_on!(@ $module, $backend, &[]; $($name),*);
    };
    (@ $module:ident, $backend:ident, $also:expr; $($name:ident),*) => {
        mod $module {
            $(
                ::inventory::submit! {
                    $crate::helpers::Case {
                        module: module_path!(),
                        name: stringify!($name),
                        needs: $crate::helpers::Backend::$backend.needs(),
                        also: $also,
                        run: || $crate::helpers::block_on(async {
                            let db = $crate::helpers::TestDb::new($crate::helpers::Backend::$backend);
                            super::$name(db).await
                        }),
                    }
                }
            )*
        }
    };
}

/// Registers a test that is a function of its own: `case!(name)` for `fn name()`,
/// `case!(async name)` for `async fn name()`, each with `needs A, B` when it needs services.
#[macro_export]
macro_rules! case {
    (async $name:ident $(needs $($need:ident),+)?) => {
        ::inventory::submit! {
            $crate::helpers::Case {
                module: module_path!(),
                name: stringify!($name),
                needs: &[$($($crate::helpers::Need::$need),+)?],
                also: &[],
                run: || $crate::helpers::block_on($name()),
            }
        }
    };
    ($name:ident $(needs $($need:ident),+)?) => {
        ::inventory::submit! {
            $crate::helpers::Case {
                module: module_path!(),
                name: stringify!($name),
                needs: &[$($($crate::helpers::Need::$need),+)?],
                also: &[],
                run: $name,
            }
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
