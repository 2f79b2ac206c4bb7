//! Session records as rows of PostgreSQL's `sessions` table, on one worker's pool. A key
//! rotation is one statement: a data-modifying `WITH` supersedes the old row (marks it, and
//! empties it without a grace period), deletes the row it superseded (named on it as its
//! predecessor) and inserts the new one naming the old, only if the old one was live and
//! current.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
use diesel::QueryResult;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::queries;

crate::backends::sql::async_records!(AsyncPgConnection);

/// The rotation from `old_id` to `row`, in one statement ([`Rotate`]): whether `old_id` was
/// live and current (and so replaced).
async fn rotate(
    conn: &mut AsyncPgConnection,
    old_id: &str,
    row: &NewSession<'_>,
    rotation: Rotation,
) -> QueryResult<bool> {
    let inserted = if rotation.keep_data {
        Rotate::<KeepingOld>::new(old_id, row, rotation)
            .execute(conn)
            .await?
    } else {
        Rotate::<Emptying>::new(old_id, row, rotation)
            .execute(conn)
            .await?
    };
    Ok(inserted == 1)
}

/// How a rotation leaves the old row: [`KeepingOld`] or [`Emptying`].
pub(crate) trait OldRow: Send + Sync + 'static {
    /// What the old row's `UPDATE` sets besides the link and the expiry.
    const ALSO_SET: &'static str;
}

/// With a grace period: the old row keeps its state and file, marked superseded.
pub(crate) struct KeepingOld;

impl OldRow for KeepingOld {
    const ALSO_SET: &'static str = "";
}

/// Without a grace period: the old row keeps only its link (a tombstone: an empty state, no
/// file), so that a key still has one successor and a retry of this rotation is still told
/// from another upload.
pub(crate) struct Emptying;

impl OldRow for Emptying {
    const ALSO_SET: &'static str = ", state = '{}', file = NULL, file_bytes = 0";
}

/// The rotation statement, bound: the old row is marked superseded by the new id at `now`
/// and set to expire at `keep_until` (only if it is live and current), the row it had
/// superseded (its `predecessor`, if that still names it) is deleted, and the new row
/// inserted naming the old one as its predecessor, all only if the old one was marked. Every
/// part of a `WITH` sees the table as it was before the statement, so `before` deletes the
/// row the old one had superseded, not the old one. Every row is found by primary key.
///
/// Written as a query-builder node, not a `sql_query`, so that Diesel's statement cache keeps
/// it prepared (its type is its cache key): PostgreSQL parses and plans it once per
/// connection, not on every upload.
pub(crate) struct Rotate<'a, Old> {
    old_id: &'a str,
    row: &'a NewSession<'a>,
    rotation: Rotation,
    old: std::marker::PhantomData<Old>,
}

impl<'a, Old> Rotate<'a, Old> {
    fn new(old_id: &'a str, row: &'a NewSession<'a>, rotation: Rotation) -> Self {
        Self {
            old_id,
            row,
            rotation,
            old: std::marker::PhantomData,
        }
    }
}

impl<Old: OldRow> QueryId for Rotate<'_, Old> {
    type QueryId = Old;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<Old: OldRow> QueryFragment<Pg> for Rotate<'_, Old> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let (row, rotation) = (self.row, &self.rotation);
        out.push_sql("WITH old AS (UPDATE sessions SET successor = ");
        out.push_bind_param::<Text, _>(&row.id)?;
        out.push_sql(", superseded_at = ");
        out.push_bind_param::<Timestamp, _>(&rotation.now)?;
        out.push_sql(", expires_at = ");
        out.push_bind_param::<Timestamp, _>(&rotation.keep_until)?;
        out.push_sql(Old::ALSO_SET);
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<Text, _>(&self.old_id)?;
        out.push_sql(" AND expires_at > ");
        out.push_bind_param::<Timestamp, _>(&rotation.now)?;
        out.push_sql(
            " AND successor IS NULL RETURNING predecessor), \
             before AS (DELETE FROM sessions WHERE id = (SELECT predecessor FROM old) \
             AND successor = ",
        );
        out.push_bind_param::<Text, _>(&self.old_id)?;
        out.push_sql(
            ") INSERT INTO sessions \
             (id, state, expires_at, created_at, file, file_bytes, predecessor) SELECT ",
        );
        out.push_bind_param::<Text, _>(&row.id)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&row.state)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&row.expires_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamp, _>(&row.created_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&row.file)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&row.file_bytes)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&self.old_id)?;
        out.push_sql(" FROM old");
        Ok(())
    }
}

/// For tests: on one new connection to the migrated database at `url`, writes a record and
/// rotates it three times (with and without a grace period), then answers the statements that
/// connection holds prepared (`pg_prepared_statements`), as PostgreSQL has them.
#[cfg(feature = "__test-support")]
pub(crate) async fn rotations_prepared(url: &str) -> Vec<String> {
    use crate::backends::pool::Opens as _;
    use crate::session::records::NewRecord;

    let opener = super::Opener::parse(url).expect("a PostgreSQL URL");
    let mut conn = opener.open().await.expect("connect");
    let now = chrono::Utc::now().naive_utc();
    let record = |n: usize| NewRecord {
        state: format!("{{\"n\":{n}}}"),
        created_at: now,
        expires_at: now + chrono::Duration::hours(1),
        attachment: Some(format!("file {n}")),
    };
    let ids: Vec<String> = (0..4)
        .map(|n| format!("prepared-{n}-{:016x}", fastrand::u64(..)))
        .collect();
    let first = record(0);
    queries::insert(&mut conn, &NewSession::of(&ids[0], &first))
        .await
        .expect("insert");
    for n in 1..ids.len() {
        let next = record(n);
        let rotation = Rotation {
            now,
            keep_until: now + chrono::Duration::minutes(1),
            keep_data: n != 2,
        };
        let replaced = rotate(
            &mut conn,
            &ids[n - 1],
            &NewSession::of(&ids[n], &next),
            rotation,
        )
        .await
        .expect("rotate");
        assert!(replaced, "rotation {n} replaced its record");
    }
    #[derive(diesel::QueryableByName)]
    struct Prepared {
        #[diesel(sql_type = Text)]
        statement: String,
    }
    let prepared: Vec<Prepared> = diesel::sql_query("SELECT statement FROM pg_prepared_statements")
        .load(&mut conn)
        .await
        .expect("pg_prepared_statements");
    prepared.into_iter().map(|p| p.statement).collect()
}
