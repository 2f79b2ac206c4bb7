//! Session records as rows of the `sessions` table (PostgreSQL or SQLite), through
//! [`db::with_conn`]: every Diesel call, the pool checkout included, off the async executor.

use crate::clock::Clock;
use crate::db::{self, DbConnection, DbPool};
use crate::session::lifetime::MaxLifetime;
use crate::session::queries::{self, NewSession};
use crate::session::scope::Loaded;
use crate::session::store::{
    Extension, Fetch, NewRecord, Record, Records, Replacement, TextdropStore,
};

/// The `sessions` table behind a pool.
#[derive(Clone)]
pub struct SqlRecords {
    pool: DbPool,
}

/// actix-session's `SessionStore` on the `sessions` table.
pub type DieselSessionStore = TextdropStore<SqlRecords>;

impl DieselSessionStore {
    pub fn new(pool: DbPool, clock: Clock, max: MaxLifetime) -> Self {
        Self::with_records(SqlRecords { pool }, clock, max)
    }
}

impl SqlRecords {
    async fn run<T, F>(&self, work: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: Fn(&mut DbConnection) -> diesel::QueryResult<T> + Send + 'static,
    {
        Ok(db::with_conn(&self.pool, work).await?)
    }

    async fn write<T, F>(&self, work: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: Fn(&mut DbConnection) -> diesel::QueryResult<T> + Send + 'static,
    {
        Ok(db::with_write_conn(&self.pool, work).await?)
    }
}

impl Records for SqlRecords {
    async fn fetch(&self, id: &str, fetch: Fetch) -> anyhow::Result<Option<Record>> {
        let id = id.to_owned();
        let row = self
            .run(move |conn| {
                queries::find_live(conn, &id, fetch.now, fetch.created_after, fetch.with_file)
            })
            .await?;
        Ok(row.map(|row| Record {
            state: row.state,
            loaded: Loaded {
                expires_at: row.expires_at,
                created_at: row.created_at,
            },
            file: row.file,
        }))
    }

    async fn insert(&self, id: &str, record: NewRecord) -> anyhow::Result<()> {
        let id = id.to_owned();
        self.write(move |conn| {
            let row = NewSession {
                id: &id,
                state: &record.state,
                expires_at: record.expires_at,
                created_at: record.created_at,
                file: record.file.as_deref(),
                file_bytes: record.file.as_ref().map_or(0, |f| f.len() as i64),
            };
            queries::insert(conn, &row, record.replaces.as_deref())
        })
        .await?;
        Ok(())
    }

    async fn replace(&self, id: &str, with: Replacement) -> anyhow::Result<bool> {
        let id = id.to_owned();
        let updated = self
            .write(move |conn| queries::update_state(conn, &id, &with))
            .await?;
        Ok(updated > 0)
    }

    async fn extend(&self, id: &str, extension: Extension) -> anyhow::Result<()> {
        let id = id.to_owned();
        self.write(move |conn| queries::extend_if_due(conn, &id, &extension))
            .await?;
        Ok(())
    }

    async fn remove(&self, id: &str) -> anyhow::Result<()> {
        let id = id.to_owned();
        self.write(move |conn| queries::delete(conn, &id)).await?;
        Ok(())
    }
}
