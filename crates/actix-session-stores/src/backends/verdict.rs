//! What a failed Diesel statement means for the request, on every SQL backend: a statement
//! that waited past its deadline for a lock or ran past its time limit is "unavailable" (503,
//! try again: the database is busy, not broken); a unique violation is a duplicate; a row that
//! no longer reads back (a date or a text that does not parse) is corrupt; anything else is a
//! plain failure. A lost connection is each driver's own verdict (`pool::Driver::lost`).

use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::session::records::StoreError;

/// The servers' words for a statement stopped by its deadline or a lock it waited for:
/// PostgreSQL's `statement_timeout` and `lock_timeout` (SQLSTATE 57014, 55P03), MySQL's and
/// MariaDB's lock waits (1205, and metadata locks), MariaDB's `max_statement_time` (1969),
/// MySQL's `max_execution_time` (3024), SQLite's busy timeout.
const PAST_DEADLINE: [&str; 7] = [
    "canceling statement due to statement timeout",
    "canceling statement due to lock timeout",
    "lock wait timeout exceeded",
    "max_statement_time exceeded",
    "maximum statement execution time exceeded",
    "database is locked",
    "database table is locked",
];

/// Whether `message` says a statement was stopped at its deadline.
pub(crate) fn past_deadline(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    PAST_DEADLINE.iter().any(|words| message.contains(words))
}

/// The verdict on a statement's error (see the module's doc).
pub(crate) fn verdict(err: DieselError) -> StoreError {
    match &err {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
            StoreError::duplicate(err)
        }
        DieselError::DatabaseError(_, info) if past_deadline(info.message()) => {
            StoreError::unavailable(err)
        }
        DieselError::DeserializationError(_) => StoreError::corrupt(err),
        _ => StoreError::failed(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_in_every_servers_words_are_told() {
        for message in [
            "canceling statement due to lock timeout",
            "ERROR: canceling statement due to statement timeout",
            "Lock wait timeout exceeded; try restarting transaction",
            "Query execution was interrupted (max_statement_time exceeded)",
            "Query execution was interrupted, maximum statement execution time exceeded",
            "database is locked",
        ] {
            assert!(past_deadline(message), "{message}");
        }
        assert!(!past_deadline("relation \"sessions\" does not exist"));
    }
}
