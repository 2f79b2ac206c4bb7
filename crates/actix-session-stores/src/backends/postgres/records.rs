//! Session records as rows of PostgreSQL's `sessions` table, on one worker's pool. A key
//! rotation is one statement: a data-modifying `WITH` supersedes the old row (marks it, and
//! empties it without a grace period), deletes the row it superseded and inserts the new one,
//! only if the old one was live and current.

use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
use diesel::QueryResult;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::queries;

/// The rotation with a grace period: `$1` the old id, `$2` now, then the new row's columns
/// (`$3` its id); the old row is kept, marked superseded by `$3` at `$2`, expiring at `$9`.
/// Every part of a `WITH` sees the table as it was before the statement, so `before` deletes
/// the row the old one had superseded, not the old one.
pub const ROTATE_KEEPING_OLD: &str = "WITH old AS (\
     UPDATE sessions SET successor = $3, superseded_at = $2, expires_at = $9 \
     WHERE id = $1 AND expires_at > $2 AND successor IS NULL RETURNING id), \
     before AS (DELETE FROM sessions WHERE successor = $1 AND EXISTS (SELECT 1 FROM old)) \
     INSERT INTO sessions (id, state, expires_at, created_at, file, file_bytes) \
     SELECT $3, $4, $5, $6, $7, $8 FROM old";

/// The rotation without a grace period: as [`ROTATE_KEEPING_OLD`], but the old row keeps only
/// its link (a tombstone: an empty state, no file) until `$9`, so that a key still has one
/// successor and a retry of this rotation is still told from another upload.
pub const ROTATE: &str = "WITH old AS (\
     UPDATE sessions SET successor = $3, superseded_at = $2, expires_at = $9, \
     state = '{}', file = NULL, file_bytes = 0 \
     WHERE id = $1 AND expires_at > $2 AND successor IS NULL RETURNING id), \
     before AS (DELETE FROM sessions WHERE successor = $1 AND EXISTS (SELECT 1 FROM old)) \
     INSERT INTO sessions (id, state, expires_at, created_at, file, file_bytes) \
     SELECT $3, $4, $5, $6, $7, $8 FROM old";

crate::backends::sql::async_records!(AsyncPgConnection);

/// The rotation from `old_id` to `row`, in one statement ([`ROTATE_KEEPING_OLD`] or
/// [`ROTATE`]): whether `old_id` was live and current (and so replaced).
async fn rotate(
    conn: &mut AsyncPgConnection,
    old_id: &str,
    row: &NewSession<'_>,
    rotation: Rotation,
) -> QueryResult<bool> {
    let sql = if rotation.keep_data {
        ROTATE_KEEPING_OLD
    } else {
        ROTATE
    };
    let inserted = diesel::sql_query(sql)
        .bind::<Text, _>(old_id)
        .bind::<Timestamp, _>(rotation.now)
        .bind::<Text, _>(row.id)
        .bind::<Text, _>(row.state)
        .bind::<Timestamp, _>(row.expires_at)
        .bind::<Timestamp, _>(row.created_at)
        .bind::<Nullable<Text>, _>(row.file)
        .bind::<BigInt, _>(row.file_bytes)
        .bind::<Timestamp, _>(rotation.keep_until)
        .execute(conn)
        .await?;
    Ok(inserted == 1)
}
