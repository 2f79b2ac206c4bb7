//! What textdrop keeps in a SQL database and how it treats it, for operators and tests: the
//! embedded migrations, the `sessions` table's schema, the locks that serialise migrations and
//! elect the sweeper, and the statements the sweeper sends (so they can be EXPLAINed as sent).

pub use crate::backends::migrate::{MIGRATIONS, MYSQL_MIGRATIONS};
pub use crate::schema::sessions;

/// PostgreSQL: locks and the sweeper's statements.
pub mod postgres {
    pub use crate::backends::postgres::statements::*;
}

/// MySQL and MariaDB: locks and the sweeper's statement.
pub mod mysql {
    pub use crate::backends::mysql::statements::*;
}

/// SQLite: the sweeper's statement.
pub mod sqlite {
    pub use crate::backends::sqlite::statements::*;
}
