//! SQLite's `sessions` table read and written whole (copies, and moves from a previous storage):
//! reads on the calling thread, as the records' are; a batch's writes in one transaction on the
//! blocking pool.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::Connection;

use super::pool::SqlitePool;
use super::queries;
use crate::backends::sql::{census_of, exported_with_links, ids_of, page_of, plan_writes, PageCut};
use crate::transfer::{Census, Exported, Page, Skipped, Transfer, TransferFuture, Written};

/// The `sessions` table of one SQLite database, whole.
pub(crate) struct SqliteTransfer {
    pool: SqlitePool,
}

impl SqliteTransfer {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

impl Transfer for SqliteTransfer {
    fn census(&self, now: NaiveDateTime) -> TransferFuture<'_, Census> {
        Box::pin(async move {
            let counts = self.pool.read(|conn| queries::counts(conn, now)).await?;
            Ok(census_of(counts))
        })
    }

    fn page<'a>(
        &'a self,
        cursor: Option<&'a str>,
        limit: usize,
        max_bytes: u64,
        now: NaiveDateTime,
    ) -> TransferFuture<'a, Page> {
        Box::pin(async move {
            let after = cursor.unwrap_or_default();
            let (cut, rows, links) = self
                .pool
                .read(|conn| {
                    let sizes = queries::live_sizes(conn, after, limit as i64, now)?;
                    let cut = PageCut::of(sizes, limit, max_bytes);
                    // One bad row spoils the batch: each is read alone.
                    let rows = queries::live_rows(conn, &cut.ids, now).map_err(|_| {
                        let (mut rows, mut skipped) = (Vec::new(), Vec::new());
                        for id in &cut.ids {
                            match queries::live_one(conn, id, now) {
                                Ok(one) => rows.extend(one),
                                Err(err) => skipped.push(Skipped::new(id, err)),
                            }
                        }
                        (rows, skipped)
                    });
                    let ids = match &rows {
                        Ok(rows) | Err((rows, _)) => ids_of(rows),
                    };
                    let links = queries::predecessors_of(conn, &ids)?;
                    Ok((cut, rows, links))
                })
                .await?;
            Ok(page_of(cut, rows, links))
        })
    }

    fn one<'a>(&'a self, id: &'a str, now: NaiveDateTime) -> TransferFuture<'a, Option<Exported>> {
        Box::pin(async move {
            let (rows, links) = self
                .pool
                .read(|conn| {
                    let rows = queries::live_one(conn, id, now)?;
                    let links = queries::predecessors_of(conn, &[id.to_owned()])?;
                    Ok((rows, links))
                })
                .await?;
            Ok(exported_with_links(rows, links).pop())
        })
    }

    fn write(&self, records: Vec<Exported>, now: NaiveDateTime) -> TransferFuture<'_, Written> {
        Box::pin(self.pool.write(move |conn| {
            conn.transaction(|conn| {
                let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
                let existing: HashMap<_, _> =
                    queries::expiries_of(conn, &ids)?.into_iter().collect();
                let plan = plan_writes(records, &existing, now);
                // Row by row: SQLite takes no multi-row insert of nullable columns in Diesel,
                // and in one transaction each is a few microseconds.
                let mut changed = 0;
                for row in &plan.fresh {
                    changed += queries::insert_copy(conn, row)?;
                }
                for row in &plan.older {
                    changed += queries::replace_older(conn, row)?;
                }
                for (before, after) in &plan.links {
                    queries::link(conn, before, after)?;
                }
                Ok(plan.outcome(changed))
            })
        }))
    }

    fn present<'a>(&'a self, ids: &'a [String]) -> TransferFuture<'a, u64> {
        Box::pin(async move {
            let n = self
                .pool
                .read(|conn| queries::count_present(conn, ids))
                .await?;
            Ok(n as u64)
        })
    }

    fn forget<'a>(&'a self, id: &'a str) -> TransferFuture<'a, ()> {
        let id = id.to_owned();
        Box::pin(async move {
            self.pool
                .write(move |conn| queries::delete_one(conn, &id))
                .await?;
            Ok(())
        })
    }
}
