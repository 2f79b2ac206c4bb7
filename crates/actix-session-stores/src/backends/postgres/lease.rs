//! Portable mode's election, for PostgreSQL-compatible engines where PostgreSQL's own tools do
//! not carry over (advisory locks are node-local on Citus workers and missing or a no-op on
//! older CockroachDB; `ctid` and `xmin` are absent on YugabyteDB and CockroachDB): a lease row
//! in `sweeper_lease`, taken with one conditional `UPDATE … RETURNING`, held until it expires.
//!
//! A sweeper takes (or renews) the `sweeper` lease in each batch's transaction, so two sweepers
//! never delete at once, and one whose lease was taken over (it expired while the instance was
//! stalled) stops its run. Startup migrations take the `migrations` lease the same way.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::sql_types::{Text, Timestamp};
use diesel::{OptionalExtension as _, QueryableByName};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

/// The lease that elects the sweeper.
pub const SWEEPER: &str = "sweeper";
/// The lease startup migrations run under.
pub const MIGRATIONS: &str = "migrations";

/// The table and its two rows, as the migration makes them: idempotent, so portable mode can
/// make sure of them before its first migration.
const ENSURE: &str = include_str!("../../../migrations/2026-11-27-000000_sweeper_lease/up.sql");

/// Takes the lease `$3` for `$1` until `$2` if it is free at `$4` or already `$1`'s.
pub const TAKE: &str = "UPDATE sweeper_lease SET holder = $1, expires_at = $2 \
     WHERE name = $3 AND (holder = $1 OR expires_at <= $4) RETURNING holder";

/// Gives the lease `$2` up if `$1` holds it, free from `$3` on.
const RELEASE: &str = "UPDATE sweeper_lease SET holder = '', expires_at = $3 \
     WHERE name = $2 AND holder = $1";

/// Portable mode: one index batch by primary key, no ctid. `$1` = now, `$2` = the batch size.
pub const DELETE_BATCH: &str = "DELETE FROM sessions WHERE id IN (SELECT id \
     FROM sessions WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2)";

/// Who holds a lease: one name per application instance, random, so instances never share
/// one (several can run in one process, as in tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder(&'static str);

impl Holder {
    /// A new holder name. It lives as long as the process: one small string per instance
    /// built.
    pub fn new() -> Self {
        Self(Box::leak(
            format!("instance-{:016x}", fastrand::u64(..)).into_boxed_str(),
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
pub async fn ensure_table(conn: &mut AsyncPgConnection) -> anyhow::Result<()> {
    if conn.batch_execute(ENSURE).await.is_err() {
        conn.batch_execute(ENSURE).await?;
    }
    Ok(())
}

/// Takes or renews lease `name` for `holder` from `now` until `until`; whether it is held.
pub(super) async fn take_until(
    conn: &mut AsyncPgConnection,
    name: &str,
    holder: Holder,
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> diesel::QueryResult<bool> {
    let taken: Option<Taken> = diesel::sql_query(TAKE)
        .bind::<Text, _>(holder.name())
        .bind::<Timestamp, _>(until)
        .bind::<Text, _>(name)
        .bind::<Timestamp, _>(now)
        .get_result(conn)
        .await
        .optional()?;
    Ok(taken.is_some())
}

/// Takes or renews lease `name` for `holder` for `hold` from now (the system clock: startup
/// migrations); whether it is held.
pub async fn take(
    conn: &mut AsyncPgConnection,
    name: &str,
    holder: Holder,
    hold: Duration,
) -> anyhow::Result<bool> {
    let now = chrono::Utc::now().naive_utc();
    Ok(take_until(
        conn,
        name,
        holder,
        now,
        now + chrono::Duration::from_std(hold)?,
    )
    .await?)
}

/// Gives lease `name` up, if `holder` holds it.
pub async fn release(
    conn: &mut AsyncPgConnection,
    name: &str,
    holder: Holder,
) -> anyhow::Result<()> {
    release_at(conn, name, holder, chrono::Utc::now().naive_utc()).await?;
    Ok(())
}

/// Gives lease `name` up as of `now`, if `holder` holds it.
pub(super) async fn release_at(
    conn: &mut AsyncPgConnection,
    name: &str,
    holder: Holder,
    now: NaiveDateTime,
) -> diesel::QueryResult<usize> {
    diesel::sql_query(RELEASE)
        .bind::<Text, _>(holder.name())
        .bind::<Text, _>(name)
        .bind::<Timestamp, _>(now)
        .execute(conn)
        .await
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
