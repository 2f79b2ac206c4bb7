//! Session records as rows of SQLite's `sessions` table.

use diesel::connection::SimpleConnection;
use diesel::Connection;

use super::pool::SqlitePool;
use super::queries;
use crate::backends::sql::{record_of, NewSession};
use crate::session::records::{
    Extension, Fetch, NewRecord, Record, Records, Replacement, Rotated, Rotation, StoreFuture,
};

/// The `sessions` table of one SQLite database.
pub(crate) struct SqliteRecords {
    pool: SqlitePool,
}

impl SqliteRecords {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }
}

impl Records for SqliteRecords {
    fn fetch<'a>(&'a self, id: &'a str, fetch: Fetch) -> StoreFuture<'a, Option<Record>> {
        Box::pin(async move {
            let row = if fetch.with_attachment {
                let id = id.to_owned();
                self.pool
                    .read_off_thread(move |conn| queries::find_live(conn, &id, fetch))
                    .await?
            } else {
                self.pool
                    .read(|conn| queries::find_live(conn, id, fetch))
                    .await?
            };
            Ok(row.map(record_of))
        })
    }

    fn insert<'a>(&'a self, id: &'a str, record: NewRecord) -> StoreFuture<'a, ()> {
        let id = id.to_owned();
        Box::pin(async move {
            self.pool
                .write(move |conn| queries::insert(conn, &NewSession::of(&id, &record)))
                .await?;
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
        let (old, new) = (old_id.to_owned(), new_id.to_owned());
        Box::pin(self.pool.write(move |conn| {
            conn.transaction(|conn| {
                if queries::supersede(conn, &old, &new, rotation)? == 0 {
                    return Ok(Err(record));
                }
                queries::insert(conn, &NewSession::of(&new, &record).superseding(&old))?;
                Ok(Ok(()))
            })
        }))
    }

    fn replace<'a>(&'a self, id: &'a str, with: Replacement) -> StoreFuture<'a, bool> {
        let id = id.to_owned();
        Box::pin(async move {
            let updated = self
                .pool
                .write(move |conn| queries::update_state(conn, &id, &with))
                .await?;
            Ok(updated > 0)
        })
    }

    fn extend<'a>(&'a self, id: &'a str, extension: Extension) -> StoreFuture<'a, ()> {
        let id = id.to_owned();
        Box::pin(async move {
            self.pool
                .write(move |conn| queries::extend_if_due(conn, &id, &extension))
                .await?;
            Ok(())
        })
    }

    fn remove<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ()> {
        let id = id.to_owned();
        Box::pin(async move {
            self.pool
                .write(move |conn| queries::delete(conn, &id))
                .await?;
            Ok(())
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.pool.read(|conn| conn.batch_execute("SELECT 1")))
    }
}
