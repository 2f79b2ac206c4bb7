//! The `sessions` table's migrations, embedded: applied by [`Storage::connect`]
//! (unless `run_migrations` is off), or here, by an operator's command, or by hand from
//! the SQL [`pending`] gives a DBA. The same files run with `diesel migration run`.
//!
//! [`Storage::connect`]: crate::Storage::connect

pub use crate::backends::migrate::{Plan, MIGRATIONS, MYSQL_MIGRATIONS};

use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};

/// The migrations the SQL database `config` names has not applied, read without changing
/// anything (a SQLite file that does not exist is not created); `None` for a storage without
/// migrations (Redis). [`Plan::script`] is the SQL to apply them by hand.
pub async fn pending(config: &Config) -> Result<Option<Plan>> {
    crate::backends::migration_plan(config)
        .await
        .map_err(|err| Error::classify(ErrorKind::Connect, err))
}

/// Applies the pending migrations of the SQL database `config` names (taking the lock that
/// makes instances starting together take turns), and returns what was pending before.
pub async fn migrate(config: &Config) -> Result<Option<Plan>> {
    let before = pending(config).await?;
    let mut config = config.clone();
    config.database.run_migrations = true;
    config.database.previous_url = None;
    crate::backends::connect(&config)
        .await
        .map_err(|err| Error::classify(ErrorKind::Migrate, err))?;
    Ok(before)
}
