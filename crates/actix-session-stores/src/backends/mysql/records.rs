//! Session records as rows of MySQL's `sessions` table, on one worker's pool. A key rotation
//! is one transaction: supersede the old row if it is live and current (mark it, or delete it
//! without a grace period), delete the row it superseded, insert the new one.

use diesel::QueryResult;
use diesel_async::{AsyncConnection, AsyncMysqlConnection};

use super::queries;

crate::backends::sql::async_records!(AsyncMysqlConnection);

/// The rotation from `old_id` to `row`, in one transaction: whether `old_id` was live and
/// current (and so replaced).
async fn rotate(
    conn: &mut AsyncMysqlConnection,
    old_id: &str,
    row: &NewSession<'_>,
    rotation: Rotation,
) -> QueryResult<bool> {
    conn.transaction(async |tx| {
        if queries::supersede(tx, old_id, row.id, rotation).await? == 0 {
            return Ok(false);
        }
        queries::insert(tx, row).await?;
        Ok(true)
    })
    .await
}
