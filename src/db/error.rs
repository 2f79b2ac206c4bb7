//! Why a piece of database work failed, and which failures mean the database is gone.

use std::time::Duration;

use diesel::r2d2;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// Why a piece of database work failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had within the checkout timeout: the database is down,
    /// unreachable or saturated.
    #[error("no database connection available: {0}")]
    Unavailable(#[source] r2d2::PoolError),
    /// The statement failed (its connection may have failed with it: see
    /// [`DbError::is_unavailable`]).
    #[error(transparent)]
    Query(#[from] DieselError),
    /// Every connection stayed busy for the whole checkout timeout.
    #[error("no database connection came free within {0:?}")]
    Busy(Duration),
    /// The blocking thread pool dropped the work (the runtime is shutting down).
    #[error("the database work was cancelled")]
    Cancelled,
}

impl DbError {
    /// Whether the database itself could not be reached (as opposed to a statement failing).
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Unavailable(_) | DbError::Busy(_) | DbError::Cancelled => true,
            DbError::Query(err) => lost_connection(err),
        }
    }
}

/// Whether `err` says the connection is gone. Diesel reports statement errors without a
/// SQLSTATE it knows (SQLite's "database is locked" among them) as `Unknown`: those leave a
/// healthy connection, so only closed or unusable connections count. On MySQL Diesel reports
/// a lost server as `Unknown` too, and only the client library's message tells it apart
/// (errors 2002, 2006 and 2013 of libmysqlclient and libmariadb).
pub(super) fn lost_connection(err: &DieselError) -> bool {
    match err {
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        ) => true,
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            mysql_server_lost(info.message())
        }
        _ => false,
    }
}

/// The MySQL client libraries' words for a server that went away or cannot be reached.
fn mysql_server_lost(message: &str) -> bool {
    const LOST: [&str; 3] = [
        "server has gone away",
        "lost connection to",
        "can't connect to",
    ];
    let message = message.to_ascii_lowercase();
    LOST.iter().any(|words| message.contains(words))
}

/// Whether `result` is a deadlock's victim: MySQL's error 1213, which Diesel reports as a
/// serialization failure for prepared statements and as `Unknown` (with the server's message)
/// for plain SQL text.
pub(super) fn deadlocked<T>(result: &diesel::QueryResult<T>) -> bool {
    match result {
        Err(DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _)) => true,
        Err(DieselError::DatabaseError(DatabaseErrorKind::Unknown, info)) => {
            info.message().starts_with("Deadlock found")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lost_connection_counts_as_unavailable() {
        let info = || Box::new(String::from("x")) as Box<_>;
        let locked = DieselError::DatabaseError(DatabaseErrorKind::Unknown, info());
        let closed = DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, info());
        let unsent = DieselError::DatabaseError(DatabaseErrorKind::UnableToSendCommand, info());
        assert!(!lost_connection(&locked));
        assert!(!DbError::Query(locked).is_unavailable());
        assert!(lost_connection(&closed) && lost_connection(&unsent));
        assert!(DbError::Query(closed).is_unavailable());
    }

    #[test]
    fn a_mysql_server_gone_counts_as_unavailable_and_a_mysql_error_does_not() {
        let unknown = |message: &str| {
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, Box::new(message.to_owned()))
        };
        for gone in [
            "MySQL server has gone away",
            "Server has gone away",
            "Lost connection to server during query",
            "Can't connect to server on '127.0.0.1' (115)",
        ] {
            assert!(lost_connection(&unknown(gone)), "{gone}");
        }
        let duplicate = unknown("Lock wait timeout exceeded; try restarting transaction");
        assert!(!lost_connection(&duplicate));
    }
}
