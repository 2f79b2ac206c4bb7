//! What the three SQL backends share: the `sessions` table's rows, and its statements written
//! once in Diesel's query builder ([`session_queries!`]) and expanded in each backend's module
//! for its own connection (sync Diesel for SQLite, diesel-async for PostgreSQL and MySQL).
//!
//! "Now" is always a parameter: times are written and compared with the application's UTC
//! clock, never the database's `now()`, so a server in another time zone behaves the same and
//! tests control time.

use std::collections::HashMap;

use chrono::NaiveDateTime;

use crate::schema::sessions;
use crate::session::records::{Loaded, NewRecord, Record};
use crate::transfer::{Census, Exported, Page, Skipped, Written, SAME_EXPIRY};

/// A new row, as an insert writes it.
#[derive(Debug, diesel::Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession<'a> {
    pub id: &'a str,
    pub state: &'a str,
    pub expires_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub file: Option<&'a str>,
    pub file_bytes: i64,
    /// The row this one superseded, when a rotation writes it.
    pub predecessor: Option<&'a str>,
}

impl<'a> NewSession<'a> {
    /// The row that stores `record` under `id`.
    pub fn of(id: &'a str, record: &'a NewRecord) -> Self {
        Self {
            id,
            state: &record.state,
            expires_at: record.expires_at,
            created_at: record.created_at,
            file: record.attachment.as_deref(),
            file_bytes: record.attachment_bytes(),
            predecessor: None,
        }
    }

    /// The same row, written by a rotation from the row `old`: it names `old` as the row it
    /// superseded, so the next rotation and a chain's deletion find `old` by primary key.
    pub fn superseding(self, old: &'a str) -> Self {
        Self {
            predecessor: Some(old),
            ..self
        }
    }
}

/// A row whole, as a copy reads it: id, state, expiry, creation, file, successor, when it was
/// superseded.
pub type StoredRow = (
    String,
    String,
    NaiveDateTime,
    NaiveDateTime,
    Option<String>,
    Option<String>,
    Option<NaiveDateTime>,
);

/// The columns of a [`StoredRow`], in its order.
pub const WHOLE_ROW: (
    sessions::id,
    sessions::state,
    sessions::expires_at,
    sessions::created_at,
    sessions::file,
    sessions::successor,
    sessions::superseded_at,
) = (
    sessions::id,
    sessions::state,
    sessions::expires_at,
    sessions::created_at,
    sessions::file,
    sessions::successor,
    sessions::superseded_at,
);

/// The record a whole row holds; its predecessor comes from another row.
pub fn exported_of(
    (id, state, expires_at, created_at, file, successor, superseded_at): StoredRow,
    predecessor: Option<String>,
) -> Exported {
    // A row superseded while its successor was unknown names itself (see `CopiedRow`).
    let successor = successor.filter(|s| *s != id);
    Exported {
        id,
        state,
        created_at,
        expires_at,
        attachment: file,
        superseded_at,
        successor,
        predecessor,
    }
}

/// A row as a copy writes it, every column.
#[derive(Debug, diesel::Insertable, diesel::AsChangeset)]
#[diesel(table_name = sessions, treat_none_as_null = true)]
pub struct CopiedRow {
    pub id: String,
    pub state: String,
    pub expires_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub file: Option<String>,
    pub file_bytes: i64,
    pub successor: Option<String>,
    pub superseded_at: Option<NaiveDateTime>,
    pub predecessor: Option<String>,
}

impl CopiedRow {
    /// The row that stores `record`. A superseded record whose successor is not known (Redis
    /// keeps the link on the successor) names itself as its successor: it is not current, so
    /// it is never written or rotated, and deleting it by its id deletes it; the successor's
    /// copy links it properly ([`link`](self)).
    pub fn of(record: Exported) -> Self {
        let successor = match (&record.successor, record.superseded_at) {
            (Some(successor), _) => Some(successor.clone()),
            (None, Some(_)) => Some(record.id.clone()),
            (None, None) => None,
        };
        Self {
            file_bytes: record.attachment.as_ref().map_or(0, |f| f.len() as i64),
            id: record.id,
            state: record.state,
            expires_at: record.expires_at,
            created_at: record.created_at,
            file: record.attachment,
            successor,
            superseded_at: record.superseded_at,
            predecessor: record.predecessor,
        }
    }
}

/// Whole records of `rows`, each with its predecessor from `links` (predecessor id, successor
/// id).
pub fn exported_with_links(
    rows: Vec<StoredRow>,
    links: Vec<(String, Option<String>)>,
) -> Vec<Exported> {
    let mut before: HashMap<String, String> = links
        .into_iter()
        .filter_map(|(id, successor)| successor.filter(|s| *s != id).map(|s| (s, id)))
        .collect();
    rows.into_iter()
        .map(|row| {
            let predecessor = before.remove(&row.0);
            exported_of(row, predecessor)
        })
        .collect()
}

/// The ids of `rows`.
pub fn ids_of(rows: &[StoredRow]) -> Vec<String> {
    rows.iter().map(|row| row.0.clone()).collect()
}

/// How a page of a copy is cut: of the next live rows' (id, file bytes), as many as fit
/// `max_bytes` (each row counted with its file and [`RECORD_CHARGE`](crate::transfer::RECORD_OVERHEAD)),
/// at least one; and where the page after it starts (`None`: this is the last).
pub struct PageCut {
    /// The ids the page holds, in order.
    pub ids: Vec<String>,
    pub next: Option<String>,
}

impl PageCut {
    /// The cut of `sizes` (at most `limit` rows, read in id order) at `max_bytes`.
    pub fn of(sizes: Vec<(String, i64)>, limit: usize, max_bytes: u64) -> Self {
        let read = sizes.len();
        let mut total = 0u64;
        let ids: Vec<String> = sizes
            .into_iter()
            .enumerate()
            .take_while(|(n, (_, bytes))| {
                total += u64::try_from(*bytes).unwrap_or(0) + crate::transfer::RECORD_OVERHEAD;
                *n == 0 || total <= max_bytes
            })
            .map(|(_, (id, _))| id)
            .collect();
        let next = (ids.len() < read || read >= limit)
            .then(|| ids.last().cloned())
            .flatten();
        Self { ids, next }
    }
}

/// A page of `rows` (the ids `cut` holds, read whole; `None` when they did not read back
/// together), each with its predecessor from `links`, and what `one` gives for each id when
/// they did not: the rows that read alone are copied, the rest skipped and named.
pub fn page_of(
    cut: PageCut,
    rows: Result<Vec<StoredRow>, (Vec<StoredRow>, Vec<Skipped>)>,
    links: Vec<(String, Option<String>)>,
) -> Page {
    let (rows, skipped) = match rows {
        Ok(rows) => (rows, Vec::new()),
        Err(apart) => apart,
    };
    Page {
        records: exported_with_links(rows, links),
        skipped,
        next: cut.next,
    }
}

/// The session counts as a copy's census.
pub fn census_of(counts: crate::sweeper::SessionCounts) -> Census {
    Census {
        live: u64::try_from(counts.live).unwrap_or(0),
        expired: u64::try_from(counts.expired).unwrap_or(0),
    }
}

/// What a batch of copies writes into a SQL destination, given the expiries of the rows it
/// already has.
pub struct WritePlan {
    /// Rows it does not have.
    pub fresh: Vec<CopiedRow>,
    /// Rows whose copy there expires before ours (less [`SAME_EXPIRY`]): replaced.
    pub older: Vec<CopiedRow>,
    /// (predecessor, successor) pairs to link.
    pub links: Vec<(String, String)>,
    /// Already there, or expired: not written.
    skipped: Written,
}

impl WritePlan {
    /// What the batch did once `changed` rows were inserted or replaced: the others of the
    /// plan were taken meanwhile by a write as new as ours (a visitor's, or another copy's).
    pub fn outcome(&self, changed: usize) -> Written {
        let planned = (self.fresh.len() + self.older.len()) as u64;
        let changed = (changed as u64).min(planned);
        Written {
            copied: changed,
            already: self.skipped.already + planned - changed,
            expired: self.skipped.expired,
        }
    }
}

/// Plans writing `records` at `now` where the destination has the rows `existing` (id →
/// expiry): see the `transfer` module's doc for "already there".
pub fn plan_writes(
    records: Vec<Exported>,
    existing: &HashMap<String, NaiveDateTime>,
    now: NaiveDateTime,
) -> WritePlan {
    let mut plan = WritePlan {
        fresh: Vec::new(),
        older: Vec::new(),
        links: Vec::new(),
        skipped: Written::default(),
    };
    for record in records {
        if record.expires_at <= now {
            plan.skipped.expired += 1;
            continue;
        }
        if let Some(before) = &record.predecessor {
            plan.links.push((before.clone(), record.id.clone()));
        }
        match existing.get(&record.id) {
            None => plan.fresh.push(CopiedRow::of(record)),
            Some(there) if *there < record.expires_at - SAME_EXPIRY => {
                plan.older.push(CopiedRow::of(record))
            }
            Some(_) => plan.skipped.already += 1,
        }
    }
    plan
}

/// A live row as `fetch` reads it: state, expiry, creation, when it was superseded and by
/// which row, and the file when asked for.
pub type LiveRow = (
    String,
    NaiveDateTime,
    NaiveDateTime,
    Option<NaiveDateTime>,
    Option<String>,
    Option<String>,
);

/// The record a live row holds.
pub fn record_of(
    (state, expires_at, created_at, superseded_at, successor, file): LiveRow,
) -> Record {
    Record {
        state,
        loaded: Loaded {
            expires_at,
            created_at,
            superseded_at,
        },
        attachment: file,
        successor,
    }
}

use super::CHAIN_WALK;

/// The ids of a chain, grown by the (id, successor) pairs a step read: every id and every
/// successor named. `None` once it grows no more (or reaches [`CHAIN_WALK`] ids).
pub fn grown_chain(chain: &[String], links: Vec<(String, Option<String>)>) -> Option<Vec<String>> {
    let mut grown = chain.to_vec();
    for (id, successor) in links {
        for id in std::iter::once(id).chain(successor) {
            if !grown.contains(&id) && grown.len() < CHAIN_WALK {
                grown.push(id);
            }
        }
    }
    (grown.len() > chain.len()).then_some(grown)
}

/// The state a tombstone keeps (a record superseded without a grace period): an empty map.
pub const TOMBSTONE_STATE: &str = "{}";

/// A `LIKE` pattern every sealed state matches (`seal::PREFIX`, then anything); a state that
/// does not was written before sealing.
pub const SEALED_PATTERN: &str = "s1.%";

/// The statements every SQL backend runs on the `sessions` table, in Diesel's query builder,
/// expanded in a backend's module for its connection type. `$($run)*` is `.await` for the
/// async connections and empty for SQLite's; the caller brings the matching `RunQueryDsl`
/// into scope.
macro_rules! session_queries {
    ($conn:ty $(, $async:ident)? ; $($run:tt)*) => {
        use chrono::NaiveDateTime;
        use diesel::prelude::*;

        use crate::backends::sql::{LiveRow, NewSession};
        use crate::schema::sessions;
        use crate::session::records::{Extension, Fetch, Replacement, Rotation};

        /// The row `id` if it is live at `fetch.now` and was created after
        /// `fetch.created_after` (the absolute lifetime), with its file when asked for.
        pub(super) $($async)? fn find_live(
            conn: &mut $conn,
            id: &str,
            fetch: Fetch,
        ) -> QueryResult<Option<LiveRow>> {
            let live = sessions::table
                .filter(sessions::id.eq(id))
                .filter(sessions::expires_at.gt(fetch.now))
                .filter(sessions::created_at.gt(fetch.created_after));
            if fetch.with_attachment {
                live.select((
                    sessions::state,
                    sessions::expires_at,
                    sessions::created_at,
                    sessions::superseded_at,
                    sessions::successor,
                    sessions::file,
                ))
                .first::<LiveRow>(conn)
                $($run)*
                .optional()
            } else {
                type WithoutFile =
                    (String, NaiveDateTime, NaiveDateTime, Option<NaiveDateTime>, Option<String>);
                let row = live
                    .select((
                        sessions::state,
                        sessions::expires_at,
                        sessions::created_at,
                        sessions::superseded_at,
                        sessions::successor,
                    ))
                    .first::<WithoutFile>(conn)
                    $($run)*
                    .optional()?;
                Ok(row.map(|(state, expires_at, created_at, superseded_at, successor)| {
                    (state, expires_at, created_at, superseded_at, successor, None)
                }))
            }
        }

        /// Inserts a new row (fails on a duplicate id).
        pub(super) $($async)? fn insert(conn: &mut $conn, row: &NewSession<'_>) -> QueryResult<usize> {
            diesel::insert_into(sessions::table).values(row).execute(conn) $($run)*
        }

        /// The old side of a rotation from `old` to `new`, if `old` is live and current: the
        /// row is marked superseded by `new` and set to expire at `rotation.keep_until`, its
        /// state and file emptied unless `rotation.keep_data`, and the row `old` had superseded
        /// goes. How many rows `old` was (0 or 1): 0 means nothing changed.
        #[allow(dead_code, reason = "PostgreSQL rotates a key in one statement of its own")]
        pub(super) $($async)? fn supersede(
            conn: &mut $conn,
            old: &str,
            new: &str,
            rotation: Rotation,
        ) -> QueryResult<usize> {
            let current = sessions::table
                .filter(sessions::id.eq(old))
                .filter(sessions::expires_at.gt(rotation.now))
                .filter(sessions::successor.is_null());
            let mark = (
                sessions::successor.eq(new),
                sessions::superseded_at.eq(rotation.now),
                sessions::expires_at.eq(rotation.keep_until),
            );
            let changed = if rotation.keep_data {
                diesel::update(current).set(mark).execute(conn) $($run)* ?
            } else {
                diesel::update(current)
                    .set((
                        mark,
                        sessions::state.eq(crate::backends::sql::TOMBSTONE_STATE),
                        sessions::file.eq(None::<String>),
                        sessions::file_bytes.eq(0),
                    ))
                    .execute(conn)
                    $($run)* ?
            };
            if changed > 0 {
                // The row `old` superseded, named on `old` (a row an older version wrote
                // names none: its predecessor expires at its own time).
                let before = sessions::table
                    .filter(sessions::id.eq(old))
                    .select(sessions::predecessor)
                    .first::<Option<String>>(conn)
                    $($run)*
                    .optional()?
                    .flatten();
                if let Some(before) = before {
                    diesel::delete(
                        sessions::table
                            .filter(sessions::id.eq(&before))
                            .filter(sessions::successor.eq(old)),
                    )
                    .execute(conn)
                    $($run)* ?;
                }
            }
            Ok(changed)
        }

        /// Replaces the state of a live row (and its file, when given) and moves its expiry.
        /// Returns 0 when the row has expired or is gone: an expired session is never brought
        /// back.
        pub(super) $($async)? fn update_state(
            conn: &mut $conn,
            id: &str,
            with: &Replacement,
        ) -> QueryResult<usize> {
            let live = sessions::table
                .filter(sessions::id.eq(id))
                .filter(sessions::expires_at.gt(with.now))
                .filter(sessions::successor.is_null());
            let state = (
                sessions::state.eq(&with.state),
                sessions::expires_at.eq(with.expires_at),
            );
            match &with.attachment {
                Some(file) => {
                    diesel::update(live)
                        .set((
                            state,
                            sessions::file.eq(file),
                            sessions::file_bytes.eq(file.len() as i64),
                        ))
                        .execute(conn)
                        $($run)*
                }
                None => diesel::update(live).set(state).execute(conn) $($run)*,
            }
        }

        /// Moves the expiry of a live row as `extension` says: only if it would otherwise
        /// expire before `due` and the move is forward, so a fresh row, or one already at its
        /// absolute bound, is left alone and a read never rewrites it. Returns the rows moved.
        pub(super) $($async)? fn extend_if_due(
            conn: &mut $conn,
            id: &str,
            extension: &Extension,
        ) -> QueryResult<usize> {
            diesel::update(
                sessions::table
                    .filter(sessions::id.eq(id))
                    .filter(sessions::expires_at.gt(extension.now))
                    .filter(sessions::successor.is_null())
                    .filter(sessions::expires_at.lt(extension.due))
                    .filter(sessions::expires_at.lt(extension.expires_at)),
            )
            .set(sessions::expires_at.eq(extension.expires_at))
            .execute(conn)
            $($run)*
        }

        /// Deletes the row `id`, live or not, and its whole chain: the rows it superseded and
        /// the rows that superseded it, found by following `successor` and `predecessor` by
        /// primary key (at most `CHAIN_WALK` rows).
        pub(super) $($async)? fn delete(conn: &mut $conn, id: &str) -> QueryResult<usize> {
            let mut chain = vec![id.to_owned()];
            loop {
                let rows: Vec<(String, Option<String>, Option<String>)> = sessions::table
                    .filter(sessions::id.eq_any(&chain))
                    .select((sessions::id, sessions::successor, sessions::predecessor))
                    .load(conn)
                    $($run)* ?;
                let links = rows
                    .into_iter()
                    .flat_map(|(id, after, before)| [(id.clone(), after), (id, before)])
                    .collect();
                match crate::backends::sql::grown_chain(&chain, links) {
                    Some(grown) => chain = grown,
                    None => break,
                }
            }
            diesel::delete(sessions::table.filter(sessions::id.eq_any(&chain)))
                .execute(conn)
                $($run)*
        }

        /// (id, file bytes) of up to `limit` rows live at `now` whose id sorts after `after`, in
        /// id order: what a copy's page is cut by, before any file is read.
        pub(super) $($async)? fn live_sizes(
            conn: &mut $conn,
            after: &str,
            limit: i64,
            now: NaiveDateTime,
        ) -> QueryResult<Vec<(String, i64)>> {
            sessions::table
                .filter(sessions::expires_at.gt(now))
                .filter(sessions::id.gt(after))
                .order(sessions::id.asc())
                .limit(limit)
                .select((sessions::id, sessions::file_bytes))
                .load(conn)
                $($run)*
        }

        /// The rows `ids` live at `now`, whole, in id order.
        pub(super) $($async)? fn live_rows(
            conn: &mut $conn,
            ids: &[String],
            now: NaiveDateTime,
        ) -> QueryResult<Vec<crate::backends::sql::StoredRow>> {
            sessions::table
                .filter(sessions::expires_at.gt(now))
                .filter(sessions::id.eq_any(ids))
                .order(sessions::id.asc())
                .select(crate::backends::sql::WHOLE_ROW)
                .load(conn)
                $($run)*
        }

        /// The row `id` if it is live at `now`, whole.
        pub(super) $($async)? fn live_one(
            conn: &mut $conn,
            id: &str,
            now: NaiveDateTime,
        ) -> QueryResult<Vec<crate::backends::sql::StoredRow>> {
            sessions::table
                .filter(sessions::expires_at.gt(now))
                .filter(sessions::id.eq(id))
                .select(crate::backends::sql::WHOLE_ROW)
                .load(conn)
                $($run)*
        }

        /// (id, successor) of the rows that `ids` superseded: the rows they name as their
        /// predecessor that still name them as their successor.
        pub(super) $($async)? fn predecessors_of(
            conn: &mut $conn,
            ids: &[String],
        ) -> QueryResult<Vec<(String, Option<String>)>> {
            let named: Vec<Option<String>> = sessions::table
                .filter(sessions::id.eq_any(ids))
                .filter(sessions::predecessor.is_not_null())
                .select(sessions::predecessor)
                .load(conn)
                $($run)* ?;
            let before: Vec<String> = named.into_iter().flatten().collect();
            if before.is_empty() {
                return Ok(Vec::new());
            }
            let links: Vec<(String, Option<String>)> = sessions::table
                .filter(sessions::id.eq_any(&before))
                .select((sessions::id, sessions::successor))
                .load(conn)
                $($run)* ?;
            Ok(links
                .into_iter()
                .filter(|(_, after)| after.as_ref().is_some_and(|after| ids.contains(after)))
                .collect())
        }

        /// (id, expiry) of the rows among `ids`.
        pub(super) $($async)? fn expiries_of(
            conn: &mut $conn,
            ids: &[String],
        ) -> QueryResult<Vec<(String, NaiveDateTime)>> {
            sessions::table
                .filter(sessions::id.eq_any(ids))
                .select((sessions::id, sessions::expires_at))
                .load(conn)
                $($run)*
        }

        /// Inserts `row` unless its id is taken meanwhile; how many rows went in (0 or 1).
        #[allow(dead_code, reason = "the async backends insert a batch in one statement")]
        pub(super) $($async)? fn insert_copy(
            conn: &mut $conn,
            row: &crate::backends::sql::CopiedRow,
        ) -> QueryResult<usize> {
            diesel::insert_into(sessions::table)
                .values(row)
                .on_conflict_do_nothing()
                .execute(conn)
                $($run)*
        }

        /// Replaces the row `row.id` with `row` if it expires before `row`'s expiry less
        /// `SAME_EXPIRY`; how many rows changed.
        pub(super) $($async)? fn replace_older(
            conn: &mut $conn,
            row: &crate::backends::sql::CopiedRow,
        ) -> QueryResult<usize> {
            let older_than = row.expires_at - crate::transfer::SAME_EXPIRY;
            diesel::update(
                sessions::table
                    .filter(sessions::id.eq(&row.id))
                    .filter(sessions::expires_at.lt(older_than)),
            )
            .set(row)
            .execute(conn)
            $($run)*
        }

        /// Names `successor` as the successor of the row `predecessor` when that row was
        /// copied superseded without it (naming itself).
        pub(super) $($async)? fn link(
            conn: &mut $conn,
            predecessor: &str,
            successor: &str,
        ) -> QueryResult<usize> {
            diesel::update(
                sessions::table
                    .filter(sessions::id.eq(predecessor))
                    .filter(sessions::successor.eq(predecessor)),
            )
            .set(sessions::successor.eq(successor))
            .execute(conn)
            $($run)*
        }

        /// How many of `ids` have a row, live or not.
        pub(super) $($async)? fn count_present(conn: &mut $conn, ids: &[String]) -> QueryResult<i64> {
            sessions::table
                .filter(sessions::id.eq_any(ids))
                .count()
                .get_result(conn)
                $($run)*
        }

        /// Deletes the row `id` alone.
        pub(super) $($async)? fn delete_one(conn: &mut $conn, id: &str) -> QueryResult<usize> {
            diesel::delete(sessions::table.filter(sessions::id.eq(id))).execute(conn) $($run)*
        }

        /// Rows still live at `now`.
        pub(super) $($async)? fn count_live(conn: &mut $conn, now: NaiveDateTime) -> QueryResult<i64> {
            sessions::table
                .filter(sessions::expires_at.gt(now))
                .count()
                .get_result(conn)
                $($run)*
        }

        /// Live and expired rows at `now`, and the earliest expiry of any row.
        pub(super) $($async)? fn counts(
            conn: &mut $conn,
            now: NaiveDateTime,
        ) -> QueryResult<crate::sweeper::SessionCounts> {
            let live = count_live(conn, now) $($run)* ?;
            let expired = sessions::table
                .filter(sessions::expires_at.le(now))
                .count()
                .get_result(conn)
                $($run)*
                ?;
            let oldest_expiry = sessions::table
                .select(diesel::dsl::min(sessions::expires_at))
                .get_result(conn)
                $($run)*
                ?;
            let sealed = sessions::table
                .filter(sessions::expires_at.gt(now))
                .filter(sessions::state.like(crate::backends::sql::SEALED_PATTERN))
                .count()
                .get_result(conn)
                $($run)*
                ?;
            let plain = sessions::table
                .filter(sessions::expires_at.gt(now))
                .filter(sessions::state.not_like(crate::backends::sql::SEALED_PATTERN))
                .filter(sessions::state.ne(crate::backends::sql::TOMBSTONE_STATE))
                .count()
                .get_result(conn)
                $($run)*
                ?;
            Ok(crate::sweeper::SessionCounts {
                live,
                expired,
                oldest_expiry,
                sealed,
                plain,
            })
        }

        /// Deletes every record written before sealing (tombstones, which hold nothing, stay
        /// until they expire).
        pub(super) $($async)? fn delete_plain(conn: &mut $conn) -> QueryResult<usize> {
            diesel::delete(
                sessions::table
                    .filter(sessions::state.not_like(crate::backends::sql::SEALED_PATTERN))
                    .filter(sessions::state.ne(crate::backends::sql::TOMBSTONE_STATE)),
            )
            .execute(conn)
            $($run)*
        }

        /// What is stored at `now`: the live rows' attachments' bytes, and `charge` for each
        /// live row. The statement is the module's `STORED_TOTAL` (each server casts to a
        /// 64-bit integer in its own words), bound to `charge` then `now`.
        pub(super) $($async)? fn stored_total(
            conn: &mut $conn,
            now: NaiveDateTime,
            charge: i64,
        ) -> QueryResult<i64> {
            #[derive(QueryableByName)]
            struct Total {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                total: i64,
            }
            let Total { total } = diesel::sql_query(STORED_TOTAL)
                .bind::<diesel::sql_types::BigInt, _>(charge)
                .bind::<diesel::sql_types::Timestamp, _>(now)
                .get_result(conn)
                $($run)* ?;
            Ok(total)
        }
    };
}

pub(crate) use session_queries;

/// The [`Records`](crate::session::records::Records) of a diesel-async backend, on one
/// worker's pool, over the statements its `queries` module expands from [`session_queries!`]
/// and the backend's own rotation: `super::rotate(conn, old_id, row, rotation)`, which answers
/// whether the old record was live and current (and so replaced). Expanded in the backend's
/// module, as `SqlRecords`.
#[cfg(feature = "async-sql")]
macro_rules! async_records {
    ($conn:ty) => {
        use crate::backends::pool::{on_pool, AsyncPool};
        use crate::backends::sql::{record_of, NewSession};
        use crate::session::records::{
            Extension, Fetch, NewRecord, Record, Records, Replacement, Rotated, Rotation,
            StoreFuture,
        };
        use diesel_async::SimpleAsyncConnection as _;

        /// The `sessions` table, through one worker's connections.
        pub(crate) struct SqlRecords {
            pool: AsyncPool<$conn>,
            /// A connection of its own for readiness checks: they say whether the database
            /// answers, not how long visitors' requests wait for a connection.
            probe: AsyncPool<$conn>,
        }

        impl SqlRecords {
            pub(crate) fn new(pool: AsyncPool<$conn>, probe: AsyncPool<$conn>) -> Self {
                Self { pool, probe }
            }
        }

        impl Records for SqlRecords {
            fn fetch<'a>(&'a self, id: &'a str, fetch: Fetch) -> StoreFuture<'a, Option<Record>> {
                Box::pin(async move {
                    let row =
                        on_pool!(self.pool, conn => queries::find_live(&mut conn, id, fetch).await)?;
                    Ok(row.map(record_of))
                })
            }

            fn insert<'a>(&'a self, id: &'a str, record: NewRecord) -> StoreFuture<'a, ()> {
                Box::pin(async move {
                    let row = NewSession::of(id, &record);
                    on_pool!(self.pool, conn => queries::insert(&mut conn, &row).await)?;
                    Ok(())
                })
            }

            fn rotate<'a>(
                &'a self,
                old_id: &'a str,
                new_id: &'a str,
                record: NewRecord,
                rotation: Rotation,
            ) -> StoreFuture<'a, Rotated> {
                Box::pin(async move {
                    let row = NewSession::of(new_id, &record).superseding(old_id);
                    let rotated =
                        on_pool!(self.pool, conn => rotate(&mut conn, old_id, &row, rotation).await)?;
                    Ok(if rotated { Ok(()) } else { Err(record) })
                })
            }

            fn replace<'a>(&'a self, id: &'a str, with: Replacement) -> StoreFuture<'a, bool> {
                Box::pin(async move {
                    let updated = on_pool!(self.pool, conn =>
                        queries::update_state(&mut conn, id, &with).await)?;
                    Ok(updated > 0)
                })
            }

            fn extend<'a>(&'a self, id: &'a str, extension: Extension) -> StoreFuture<'a, ()> {
                Box::pin(async move {
                    on_pool!(self.pool, conn =>
                        queries::extend_if_due(&mut conn, id, &extension).await)?;
                    Ok(())
                })
            }

            fn remove<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()> {
                Box::pin(async move {
                    on_pool!(self.pool, conn => queries::delete(&mut conn, id).await)?;
                    Ok(())
                })
            }

            fn ping(&self) -> StoreFuture<'_, ()> {
                Box::pin(async move {
                    on_pool!(self.probe, conn => conn.batch_execute("SELECT 1").await)
                })
            }
        }
    };
}

#[cfg(feature = "async-sql")]
pub(crate) use async_records;

/// The [`Transfer`](crate::transfer::Transfer) of a diesel-async backend, on a pool of the
/// calling thread's, over the statements its `queries` module expands from
/// [`session_queries!`]. Expanded in the backend's module, as `SqlTransfer`.
#[cfg(feature = "async-sql")]
macro_rules! async_transfer {
    ($conn:ty) => {
        /// The `sessions` table read and written whole, on the calling thread's connections.
        pub(crate) struct SqlTransfer {
            pool: crate::backends::pool::AsyncPool<$conn>,
        }

        impl SqlTransfer {
            pub(crate) fn new(pool: crate::backends::pool::AsyncPool<$conn>) -> Self {
                Self { pool }
            }
        }

        impl crate::transfer::Transfer for SqlTransfer {
            fn census(
                &self,
                now: chrono::NaiveDateTime,
            ) -> crate::transfer::TransferFuture<'_, crate::transfer::Census> {
                Box::pin(async move {
                    let counts = crate::backends::pool::on_pool!(self.pool, conn =>
                        queries::counts(&mut conn, now).await)?;
                    Ok(crate::backends::sql::census_of(counts))
                })
            }

            fn page<'a>(
                &'a self,
                cursor: Option<&'a str>,
                limit: usize,
                max_bytes: u64,
                now: chrono::NaiveDateTime,
            ) -> crate::transfer::TransferFuture<'a, crate::transfer::Page> {
                Box::pin(async move {
                    let after = cursor.unwrap_or_default();
                    let sizes = crate::backends::pool::on_pool!(self.pool, conn =>
                        queries::live_sizes(&mut conn, after, limit as i64, now).await)?;
                    let cut = crate::backends::sql::PageCut::of(sizes, limit, max_bytes);
                    let whole = crate::backends::pool::on_pool!(self.pool, conn =>
                        queries::live_rows(&mut conn, &cut.ids, now).await);
                    let rows = match whole {
                        Ok(rows) => Ok(rows),
                        Err(err) if err.is_unavailable() => return Err(err),
                        // One bad row spoils the batch: each is read alone.
                        Err(_) => {
                            let (mut rows, mut skipped) = (Vec::new(), Vec::new());
                            for id in &cut.ids {
                                match crate::backends::pool::on_pool!(self.pool, conn =>
                                    queries::live_one(&mut conn, id, now).await)
                                {
                                    Ok(one) => rows.extend(one),
                                    Err(err) if err.is_unavailable() => return Err(err),
                                    Err(err) => {
                                        skipped.push(crate::transfer::Skipped::new(id, err))
                                    }
                                }
                            }
                            Err((rows, skipped))
                        }
                    };
                    let ids = match &rows {
                        Ok(rows) | Err((rows, _)) => crate::backends::sql::ids_of(rows),
                    };
                    let links = crate::backends::pool::on_pool!(self.pool, conn =>
                        queries::predecessors_of(&mut conn, &ids).await)?;
                    Ok(crate::backends::sql::page_of(cut, rows, links))
                })
            }

            fn one<'a>(
                &'a self,
                id: &'a str,
                now: chrono::NaiveDateTime,
            ) -> crate::transfer::TransferFuture<'a, Option<crate::transfer::Exported>> {
                Box::pin(async move {
                    let rows = crate::backends::pool::on_pool!(self.pool, conn =>
                        queries::live_one(&mut conn, id, now).await)?;
                    let links = crate::backends::pool::on_pool!(self.pool, conn =>
                        queries::predecessors_of(&mut conn, &[id.to_owned()]).await)?;
                    Ok(crate::backends::sql::exported_with_links(rows, links).pop())
                })
            }

            fn write(
                &self,
                records: Vec<crate::transfer::Exported>,
                now: chrono::NaiveDateTime,
            ) -> crate::transfer::TransferFuture<'_, crate::transfer::Written> {
                Box::pin(async move {
                    let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
                    let existing = crate::backends::pool::on_pool!(self.pool, conn =>
                        queries::expiries_of(&mut conn, &ids).await)?;
                    let existing = existing.into_iter().collect();
                    let plan = crate::backends::sql::plan_writes(records, &existing, now);
                    let changed = crate::backends::pool::on_pool!(self.pool, conn => async {
                        let mut changed = 0;
                        if !plan.fresh.is_empty() {
                            // One statement for the batch (SQLite inserts row by row).
                            let insert = diesel::insert_into(crate::schema::sessions::table)
                                .values(&plan.fresh)
                                .on_conflict_do_nothing();
                            changed += diesel_async::RunQueryDsl::execute(insert, &mut *conn)
                                .await?;
                        }
                        for row in &plan.older {
                            changed += queries::replace_older(&mut conn, row).await?;
                        }
                        for (before, after) in &plan.links {
                            queries::link(&mut conn, before, after).await?;
                        }
                        diesel::QueryResult::Ok(changed)
                    }.await)?;
                    Ok(plan.outcome(changed))
                })
            }

            fn present<'a>(
                &'a self,
                ids: &'a [String],
            ) -> crate::transfer::TransferFuture<'a, u64> {
                Box::pin(async move {
                    let n = crate::backends::pool::on_pool!(self.pool, conn =>
                        queries::count_present(&mut conn, ids).await)?;
                    Ok(n as u64)
                })
            }

            fn forget<'a>(&'a self, id: &'a str) -> crate::transfer::TransferFuture<'a, ()> {
                Box::pin(async move {
                    crate::backends::pool::on_pool!(self.pool, conn =>
                        queries::delete_one(&mut conn, id).await)?;
                    Ok(())
                })
            }
        }
    };
}

#[cfg(feature = "async-sql")]
pub(crate) use async_transfer;

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(files: &[i64]) -> Vec<(String, i64)> {
        files
            .iter()
            .enumerate()
            .map(|(n, bytes)| (format!("{n:02}"), *bytes))
            .collect()
    }

    #[test]
    fn a_copy_page_holds_what_fits_its_bytes_from_the_first_one() {
        // Twelve files of 20 MB: one a page (a page aims at 32 MiB), from the first page on.
        let cut = PageCut::of(sizes(&[20_000_000; 12]), 500, 32 << 20);
        assert_eq!(
            (cut.ids, cut.next.as_deref()),
            (vec!["00".to_owned()], Some("00"))
        );
        // Small files: the page's row limit.
        let cut = PageCut::of(sizes(&[400; 3]), 3, 32 << 20);
        assert_eq!((cut.ids.len(), cut.next.as_deref()), (3, Some("02")));
        // The last page came short: no next.
        let cut = PageCut::of(sizes(&[400; 2]), 3, 32 << 20);
        assert_eq!((cut.ids.len(), cut.next), (2, None));
        // Files of 1 MiB: 31 fit 32 MiB with their records' charge.
        let cut = PageCut::of(sizes(&[1 << 20; 40]), 500, 32 << 20);
        assert_eq!(cut.ids.len(), 31);
        assert_eq!(PageCut::of(Vec::new(), 500, 1).next, None);
    }

    #[test]
    fn a_chain_grows_by_its_links_and_stops() {
        let chain = vec!["b".to_owned()];
        let grown = grown_chain(
            &chain,
            vec![
                ("a".into(), Some("b".into())),
                ("b".into(), Some("c".into())),
            ],
        )
        .expect("it grew");
        assert_eq!(grown, ["b", "a", "c"]);
        assert_eq!(
            grown_chain(&grown, vec![("a".into(), Some("b".into()))]),
            None
        );
    }
}
