//! MySQL's named locks (`GET_LOCK`), which elect the sweeper and serialise migrations there.
//! They belong to the server, not to a database, so every name is suffixed with the database's
//! name: deployments in two databases of one server never wait for each other.
//! The names themselves are options (`Names::mysql_migration_lock`,
//! `Names::mysql_sweeper_lock`).

use diesel::sql_types::{Integer, Nullable, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncMysqlConnection, RunQueryDsl};

/// The full name of the lock `?` in this database (at most 64 characters, MySQL's limit).
const FULL_NAME: &str = "LEFT(CONCAT(?, ':', DATABASE()), 64)";

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Nullable<Integer>)]
    locked: Option<i32>,
}

/// Takes the lock `name` of this database for this connection without waiting; whether it
/// was taken.
pub async fn try_lock(conn: &mut AsyncMysqlConnection, name: &str) -> diesel::QueryResult<bool> {
    let Locked { locked } = diesel::sql_query(format!("SELECT GET_LOCK({FULL_NAME}, 0) AS locked"))
        .bind::<Text, _>(name)
        .get_result(conn)
        .await?;
    Ok(locked == Some(1))
}

/// Gives back the lock `name` of this database.
pub async fn release(conn: &mut AsyncMysqlConnection, name: &str) -> diesel::QueryResult<()> {
    diesel::sql_query(format!("DO RELEASE_LOCK({FULL_NAME})"))
        .bind::<Text, _>(name)
        .execute(conn)
        .await
        .map(drop)
}
