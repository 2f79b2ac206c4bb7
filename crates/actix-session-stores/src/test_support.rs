//! Entry points for tests into code that is otherwise private (this crate's and its first
//! user's). Not an API: behind the `__test-support` feature, hidden from the docs.

#[cfg(feature = "mysql")]
pub use mysql_support::{mysql_deadlock_victim, DeadlockRun};

#[cfg(feature = "mysql")]
mod mysql_support {
    use std::cell::Cell;
    use std::time::Duration;

    use diesel::QueryableByName;
    use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl, SimpleAsyncConnection};

    use crate::backends::mysql::Opener;
    use crate::backends::pool::{on_pool, open_with, AsyncPool, Open, Opens as _};

    /// What [`mysql_deadlock_victim`] saw.
    #[derive(Debug)]
    pub struct DeadlockRun {
        /// The pool's transaction's outcome (an error's text).
        pub outcome: Result<(), String>,
        /// How many times the pool ran it.
        pub attempts: u32,
        /// Whether the other session's statement went through (it must not be the victim).
        pub other: Result<(), String>,
        /// The two rows' values afterwards.
        pub values: Vec<String>,
    }

    /// Makes a statement on the store's MySQL pool the victim of a deadlock, on a table of its own
    /// in the database at `url` (dropped afterwards). Another session holds row 0 (and many more, so
    /// InnoDB picks the pool's smaller transaction as the victim); the pool's transaction locks
    /// row 1, then waits for row 0; the other session then asks for row 1.
    pub async fn mysql_deadlock_victim(url: &str) -> DeadlockRun {
        let open: Open<AsyncMysqlConnection> = open_with(Opener::parse(url).expect("a MySQL URL"));
        let table = format!("deadlock_{:016x}", fastrand::u64(..));
        let mut other = open().await.expect("connect");
        let rows: Vec<String> = (0..60).map(|n| format!("({n}, 'start')")).collect();
        other
            .batch_execute(&format!(
                "CREATE TABLE {table} (id INT PRIMARY KEY, v TEXT) ENGINE = InnoDB; \
                     INSERT INTO {table} VALUES {}; \
                     BEGIN; UPDATE {table} SET v = 'other' WHERE id <> 1",
                rows.join(", ")
            ))
            .await
            .expect("hold row 0 and 58 more");
        let pool = AsyncPool::new(open, 1, std::time::Duration::from_secs(5));
        let attempts = Cell::new(0u32);
        let update = |id: i32| format!("UPDATE {table} SET v = 'pool' WHERE id = {id}");

        let pool_side = async {
            let outcome: crate::session::records::StoreResult<()> = on_pool!(pool, conn => {
                attempts.set(attempts.get() + 1);
                conn.transaction(async |tx| {
                    tx.batch_execute(&update(1)).await?;
                    tx.batch_execute(&update(0)).await
                })
                .await
            });
            outcome
        };
        let other_side = async {
            while attempts.get() == 0 {
                actix_web::rt::time::sleep(Duration::from_millis(20)).await;
            }
            // Let the pool's transaction reach its wait for row 0, then close the cycle.
            actix_web::rt::time::sleep(Duration::from_millis(500)).await;
            other
                .batch_execute(&format!(
                    "UPDATE {table} SET v = 'other' WHERE id = 1; COMMIT"
                ))
                .await
        };
        let (outcome, closed) = futures_util::join!(pool_side, other_side);

        #[derive(QueryableByName)]
        struct Value {
            #[diesel(sql_type = diesel::sql_types::Text)]
            v: String,
        }
        let values: Vec<Value> = diesel::sql_query(format!(
            "SELECT v FROM {table} WHERE id IN (0, 1) ORDER BY id"
        ))
        .load(&mut other)
        .await
        .expect("values");
        let _ = other.batch_execute(&format!("DROP TABLE {table}")).await;
        DeadlockRun {
            outcome: outcome.map_err(|e| format!("{e:?}")),
            attempts: attempts.get(),
            other: closed.map_err(|e| e.to_string()),
            values: values.into_iter().map(|v| v.v).collect(),
        }
    }
}

/// The statements the backends send, as they are sent, for tests that EXPLAIN them.
pub mod statements {
    /// PostgreSQL: the sweeper's statements.
    #[cfg(feature = "postgres")]
    pub mod postgres {
        pub use crate::backends::postgres::statements::*;
    }

    /// MySQL and MariaDB: the sweeper's statement.
    #[cfg(feature = "mysql")]
    pub mod mysql {
        pub use crate::backends::mysql::statements::*;
    }

    /// SQLite: the sweeper's statement.
    #[cfg(feature = "sqlite")]
    pub mod sqlite {
        pub use crate::backends::sqlite::statements::*;
    }
}

/// PostgreSQL: the statements one new connection to the migrated database at `url` holds
/// prepared after it wrote a record and rotated it three times (with and without a grace
/// period).
#[cfg(feature = "postgres")]
pub async fn postgres_rotations_prepared(url: &str) -> Vec<String> {
    crate::backends::postgres::rotations_prepared(url).await
}

/// The `sessions` table as Diesel sees it.
pub use crate::schema::sessions;

/// A stored value of the record `id` as its visitor sees it: opened with the session key
/// `session_key` when sealed (`attachment`: the attachment's, else the state's), as it is when
/// plain. `Err` with the reason when it does not open.
pub fn open_stored(
    session_key: &str,
    id: &str,
    attachment: bool,
    stored: &str,
) -> Result<String, String> {
    use crate::seal::{is_sealed, Purpose, SealKeys};
    if !is_sealed(stored) {
        return Ok(stored.to_owned());
    }
    let purpose = if attachment {
        Purpose::Attachment
    } else {
        Purpose::State
    };
    SealKeys::of(session_key)
        .open(purpose, id, stored)
        .map_err(|err| err.to_string())
}

/// Seals `plain` as the record `id`'s value under the session key `session_key`, as the store
/// does.
pub fn seal_stored(session_key: &str, id: &str, attachment: bool, plain: &str) -> String {
    use crate::seal::{Purpose, SealKeys};
    let purpose = if attachment {
        Purpose::Attachment
    } else {
        Purpose::State
    };
    SealKeys::of(session_key).seal(purpose, id, plain)
}
