//! Portable mode's election, for PostgreSQL-compatible engines where PostgreSQL's own tools do
//! not carry over (advisory locks are node-local on Citus workers and missing or a no-op on
//! older CockroachDB; `ctid` and `xmin` are absent on YugabyteDB and CockroachDB): a lease row
//! in `sweeper_lease`, taken with one conditional `UPDATE … RETURNING`, held until it expires.
//!
//! A sweeper takes (or renews) the `sweeper` lease in each batch's transaction, so two sweepers
//! never delete at once, and one whose lease was taken over (it expired while the instance was
//! stalled) stops its run. Startup migrations take the `migrations` lease the same way.

use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Text, Timestamp};

/// The lease that elects the sweeper.
pub const SWEEPER: &str = "sweeper";
/// The lease startup migrations run under.
pub const MIGRATIONS: &str = "migrations";

/// The table and its two rows, as the migration makes them: idempotent, so portable mode can
/// make sure of them before its first migration.
const ENSURE: &str = include_str!("../../migrations/2026-11-27-000000_sweeper_lease/up.sql");

/// Takes the lease `$3` for `$1` until `$2` if it is free at `$4` or already `$1`'s.
pub const TAKE: &str = "UPDATE sweeper_lease SET holder = $1, expires_at = $2 \
     WHERE name = $3 AND (holder = $1 OR expires_at <= $4) RETURNING holder";

/// Gives the lease `$2` up if `$1` holds it, free from `$3` on.
const RELEASE: &str = "UPDATE sweeper_lease SET holder = '', expires_at = $3 \
     WHERE name = $2 AND holder = $1";

/// Who holds a lease: one name per application instance, random, so instances never share
/// one (several can run in one process, as in tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder(&'static str);

impl Holder {
    /// A new holder name. It lives as long as the process: one small string per instance
    /// built.
    pub fn new() -> Self {
        Self(Box::leak(
            format!("textdrop-{:016x}", fastrand::u64(..)).into_boxed_str(),
        ))
    }

    pub fn name(&self) -> &'static str {
        self.0
    }
}

impl Default for Holder {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(QueryableByName)]
struct Taken {
    #[diesel(sql_type = Text)]
    #[expect(dead_code, reason = "only whether a row came back matters")]
    holder: String,
}

/// Makes sure the lease table and rows exist. Instances starting at once may race on the
/// table's creation: one retry settles it.
pub fn ensure_table(pg: &mut PgConnection) -> QueryResult<()> {
    pg.batch_execute(ENSURE)
        .or_else(|_| pg.batch_execute(ENSURE))
}

/// Takes or renews lease `name` for `holder` until `until`; whether it is held now.
pub fn take(
    pg: &mut PgConnection,
    name: &str,
    holder: Holder,
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> QueryResult<bool> {
    let taken: Option<Taken> = diesel::sql_query(TAKE)
        .bind::<Text, _>(holder.name())
        .bind::<Timestamp, _>(until)
        .bind::<Text, _>(name)
        .bind::<Timestamp, _>(now)
        .get_result(pg)
        .optional()?;
    Ok(taken.is_some())
}

/// Gives lease `name` up, if `holder` holds it.
pub fn release(
    pg: &mut PgConnection,
    name: &str,
    holder: Holder,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::sql_query(RELEASE)
        .bind::<Text, _>(holder.name())
        .bind::<Text, _>(name)
        .bind::<Timestamp, _>(now)
        .execute(pg)
        .map(|_| ())
}

/// Takes lease `name`, trying every quarter second until `patience` is spent; it is held for
/// `hold` (renewed by nobody: callers release it when done). Blocking.
pub fn take_within(
    pg: &mut PgConnection,
    name: &str,
    holder: Holder,
    hold: Duration,
    patience: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut said = false;
    loop {
        let now = chrono::Utc::now().naive_utc();
        let until = now + chrono::Duration::from_std(hold)?;
        if take(pg, name, holder, now, until)? {
            return Ok(());
        }
        if started.elapsed() >= patience {
            anyhow::bail!(
                "the `{name}` lease (table sweeper_lease) is held by another instance; gave up \
                 after {} s",
                started.elapsed().as_secs()
            );
        }
        if !said {
            log::warn!("waiting for the `{name}` lease, held by another instance");
            said = true;
        }
        std::thread::sleep(Duration::from_millis(250).min(patience));
    }
}

/// Which PostgreSQL-compatible engine `version()` (and the installed extensions) describe:
/// `true` for a vanilla PostgreSQL, where ctid, advisory locks and xmin mean what the default
/// sweeper relies on.
pub fn is_vanilla_postgres(version: &str, has_citus: bool) -> bool {
    version.starts_with("PostgreSQL ") && !version.contains("-YB-") && !has_citus
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributed_engines_are_told_from_postgresql() {
        let pg =
            "PostgreSQL 15.19 (Debian 15.19-0+deb12u1) on x86_64-pc-linux-gnu, compiled by gcc";
        assert!(is_vanilla_postgres(pg, false));
        assert!(
            !is_vanilla_postgres(pg, true),
            "Citus is an extension of PostgreSQL"
        );
        let yugabyte = "PostgreSQL 11.2-YB-2.20.1.0-b0 on x86_64-pc-linux-gnu, compiled by clang";
        assert!(!is_vanilla_postgres(yugabyte, false));
        let cockroach = "CockroachDB CCL v23.1.11 (x86_64-pc-linux-gnu, built 2023/09/27)";
        assert!(!is_vanilla_postgres(cockroach, false));
    }
}
