//! MySQL's named locks (`GET_LOCK`), which elect the sweeper and serialise migrations there.
//! They belong to the server, not to a database, so every name is suffixed with the database's
//! name: deployments in two databases of one server never wait for each other.

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{Integer, Nullable, Text};

/// The full name of the lock `?` in this database (at most 64 characters, MySQL's limit).
const FULL_NAME: &str = "LEFT(CONCAT(?, ':', DATABASE()), 64)";

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Nullable<Integer>)]
    locked: Option<i32>,
}

/// Takes the lock `name` of this database for this connection, waiting at most `wait` (whole
/// seconds; zero does not wait). Returns whether it was taken.
pub fn try_lock(mysql: &mut MysqlConnection, name: &str, wait: Duration) -> QueryResult<bool> {
    let Locked { locked } = diesel::sql_query(format!("SELECT GET_LOCK({FULL_NAME}, ?) AS locked"))
        .bind::<Text, _>(name)
        .bind::<Integer, _>(i32::try_from(wait.as_secs()).unwrap_or(i32::MAX))
        .get_result(mysql)?;
    Ok(locked == Some(1))
}

/// Gives back the lock `name` of this database.
pub fn release(mysql: &mut MysqlConnection, name: &str) -> QueryResult<()> {
    diesel::sql_query(format!("DO RELEASE_LOCK({FULL_NAME})"))
        .bind::<Text, _>(name)
        .execute(mysql)
        .map(drop)
}
