//! The sweeper on PostgreSQL. By default one sweeper at a time holds a transaction-scoped
//! advisory lock in each batch's transaction (an instance that does not get it skips and never
//! waits), batches delete by ctid through the `expires_at` index, and a big backlog is walked
//! in heap-block order (TID range scans). In portable mode each batch takes the lease row
//! instead, deletes by primary key, and there is no walk. Raw SQL as named constants, so tests
//! EXPLAIN exactly what is sent.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::sql_types::{BigInt, Text, Timestamp};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use super::lease::{self, Holder};
use super::queries;
use crate::backends::pool::on_pool;
use crate::backends::pool::AsyncPool;
use crate::sweeper::{Dialect, DialectFuture, SessionCounts, TableEstimate, Walker};

/// One index batch. `$1` = now, `$2` = the batch size. `= ANY(ARRAY(…))` of ctids makes a TID
/// scan: with `id IN (…)` the planner may pick a hash join over a sequential scan of the whole
/// table, once per batch. No row lock is needed: the advisory lock keeps other sweepers out,
/// and a row the app updates meanwhile gets a new ctid, so the re-check skips it and it stays.
pub const DELETE_BATCH: &str = "DELETE FROM sessions WHERE ctid = ANY(ARRAY(SELECT ctid \
     FROM sessions WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2))";

/// One step of a table walk. `$1..$2` = heap blocks, `$3` = now.
pub const DELETE_BLOCK_RANGE: &str = "DELETE FROM sessions \
     WHERE ctid >= ('(' || $1 || ',0)')::tid AND ctid < ('(' || $2 || ',0)')::tid \
     AND expires_at <= $3";

/// Config for a walk step's transaction. The planner would pick the `expires_at` index
/// whenever its statistics say few rows expired, and then walk the whole expired part of the
/// index for every range.
pub const BLOCK_RANGE_SETTINGS: &str =
    "SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off";

/// Asks the planner for its row estimate of a statement, without running it.
const PLANNED_ROWS: &str = "EXPLAIN (FORMAT JSON) ";

/// How one sweeper is chosen among the instances.
enum Election {
    /// A transaction-scoped advisory lock of this key per batch.
    AdvisoryLock(i64),
    /// Portable mode: the lease row, as this holder and for this long.
    Lease {
        holder: Holder,
        lease: chrono::Duration,
    },
}

/// The sweeper's statements on one PostgreSQL database, on the main thread's pool.
pub(crate) struct PgDialect {
    pool: AsyncPool<AsyncPgConnection>,
    election: Election,
}

impl PgDialect {
    pub(crate) fn new(pool: AsyncPool<AsyncPgConnection>, lock_key: i64) -> Self {
        Self {
            pool,
            election: Election::AdvisoryLock(lock_key),
        }
    }

    /// Portable mode, taking the lease as `holder` for `lease` in every batch.
    pub(crate) fn portable(
        pool: AsyncPool<AsyncPgConnection>,
        holder: Holder,
        lease: Duration,
    ) -> Self {
        let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
        Self {
            pool,
            election: Election::Lease { holder, lease },
        }
    }

    /// Runs `statement` (with `settings` first) in its own transaction if this connection gets
    /// the sweeper lock; `None` when another session holds it. Losing this commit in a crash
    /// only means deleting the rows again next run, so it need not wait for the WAL flush.
    async fn under_lock(
        &self,
        settings: &'static str,
        statement: diesel::query_builder::BoxedSqlQuery<
            'static,
            diesel::pg::Pg,
            diesel::query_builder::SqlQuery,
        >,
    ) -> anyhow::Result<Option<usize>> {
        let key = match self.election {
            Election::AdvisoryLock(key) => key,
            Election::Lease { .. } => anyhow::bail!("the advisory lock elects no sweeper here"),
        };
        let mut conn = self.pool.get().await?;
        let done = conn
            .transaction(async |conn| {
                let Locked { locked } =
                    diesel::sql_query("SELECT pg_try_advisory_xact_lock($1) AS locked")
                        .bind::<BigInt, _>(key)
                        .get_result(conn)
                        .await?;
                if !locked {
                    return Ok(None);
                }
                conn.batch_execute(&format!("SET LOCAL synchronous_commit = off; {settings}"))
                    .await?;
                statement.execute(conn).await.map(Some)
            })
            .await;
        Ok(conn.settle(done)?)
    }
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    locked: bool,
}

#[derive(QueryableByName)]
struct JsonPlan {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    json: String,
}

#[derive(QueryableByName)]
struct Blocks {
    #[diesel(sql_type = BigInt)]
    blocks: i64,
}

/// The top node's `"Plan Rows"` of an `EXPLAIN (FORMAT JSON)` answer.
fn plan_rows(JsonPlan { json }: JsonPlan) -> anyhow::Result<f64> {
    let plan: serde_json::Value = serde_json::from_str(&json)?;
    plan.pointer("/0/Plan/Plan Rows")
        .and_then(serde_json::Value::as_f64)
        .ok_or_else(|| anyhow::anyhow!("no \"Plan Rows\" in the plan {plan}"))
}

impl Dialect for PgDialect {
    fn delete_batch(&self, now: NaiveDateTime, rows: i64) -> DialectFuture<'_, Option<usize>> {
        Box::pin(async move {
            let (holder, lease) = match self.election {
                Election::AdvisoryLock(_) => {
                    let batch = diesel::sql_query(DELETE_BATCH)
                        .into_boxed()
                        .bind::<Timestamp, _>(now)
                        .bind::<BigInt, _>(rows);
                    return self.under_lock("", batch).await;
                }
                Election::Lease { holder, lease } => (holder, lease),
            };
            let mut conn = self.pool.get().await?;
            let deleted = conn
                .transaction(async |conn| {
                    let until = now + lease;
                    if !lease::take_until(conn, lease::SWEEPER, holder, now, until).await? {
                        return Ok(None);
                    }
                    diesel::sql_query(lease::DELETE_BATCH)
                        .bind::<Timestamp, _>(now)
                        .bind::<BigInt, _>(rows)
                        .execute(conn)
                        .await
                        .map(Some)
                })
                .await;
            Ok(conn.settle(deleted)?)
        })
    }

    fn walker(&self) -> Option<&dyn Walker> {
        match self.election {
            Election::AdvisoryLock(_) => Some(self),
            Election::Lease { .. } => None,
        }
    }

    /// Portable mode gives the sweeper lease up at the end of a run, so any instance may take
    /// the next one.
    fn finish(&self, now: NaiveDateTime) -> DialectFuture<'_, ()> {
        Box::pin(async move {
            if let Election::Lease { holder, .. } = self.election {
                on_pool!(self.pool, conn => lease::release_at(&mut conn, lease::SWEEPER, holder, now).await)?;
            }
            Ok(())
        })
    }

    fn delete_plain(&self) -> DialectFuture<'_, usize> {
        Box::pin(
            async move { Ok(on_pool!(self.pool, conn => queries::delete_plain(&mut conn).await)?) },
        )
    }

    fn counts(&self, now: NaiveDateTime) -> DialectFuture<'_, SessionCounts> {
        Box::pin(
            async move { Ok(on_pool!(self.pool, conn => queries::counts(&mut conn, now).await)?) },
        )
    }
}

impl Walker for PgDialect {
    /// Asks the planner how many rows `sessions` holds and how many of them expired at `now`,
    /// and reads the table's size in blocks. Cheap: nothing is scanned.
    fn estimate(&self, now: NaiveDateTime) -> DialectFuture<'_, TableEstimate> {
        Box::pin(async move {
            let (all, expired, Blocks { blocks }) = on_pool!(self.pool, conn => async {
                        let all = diesel::sql_query(format!("{PLANNED_ROWS}SELECT 1 FROM sessions"))
                            .get_result::<JsonPlan>(&mut conn)
                            .await?;
                        let expired = diesel::sql_query(format!(
                            "{PLANNED_ROWS}SELECT 1 FROM sessions WHERE expires_at <= $1"
                        ))
                        .bind::<Timestamp, _>(now)
                        .get_result::<JsonPlan>(&mut conn)
                        .await?;
                        let blocks = diesel::sql_query(
                            "SELECT pg_relation_size('sessions') / \
                             current_setting('block_size')::bigint AS blocks",
                        )
                        .get_result::<Blocks>(&mut conn)
                        .await?;
                        Ok((all, expired, blocks))
                    }.await)?;
            Ok(TableEstimate {
                rows: plan_rows(all)?,
                expired: plan_rows(expired)?,
                blocks,
            })
        })
    }

    /// Deletes the rows that expired at or before `now` among those stored in heap blocks
    /// `first..end`, in one short transaction (a TID range scan: one sequential pass over
    /// those blocks, no index).
    fn delete_blocks(
        &self,
        now: NaiveDateTime,
        first: i64,
        end: i64,
    ) -> DialectFuture<'_, Option<usize>> {
        let range = diesel::sql_query(DELETE_BLOCK_RANGE)
            .into_boxed()
            .bind::<BigInt, _>(first)
            .bind::<BigInt, _>(end)
            .bind::<Timestamp, _>(now);
        Box::pin(self.under_lock(BLOCK_RANGE_SETTINGS, range))
    }
}
