//! textdrop: anonymous visitors upload a text file and see it back on a second page. Their
//! sessions live server-side, in a SQL `sessions` table (SQLite, PostgreSQL or MySQL/MariaDB)
//! that the app creates at startup and cleans up by itself, or in Redis or a Redis Cluster,
//! which expire them themselves.
//!
//! The API is what starts the app and what its tests drive: [`startup::Application`],
//! [`config::Settings`], [`cli`], the [`storage::SessionStorage`] it serves from, the session
//! semantics over one record seam ([`session`]), the cleanup loop ([`sweeper`]), and what
//! textdrop keeps in a SQL database ([`database`]). Everything else is internal.

pub(crate) mod backends;
pub mod cli;
pub mod clock;
pub mod config;
pub(crate) mod connection;
pub mod database;
pub(crate) mod error;
pub mod limits;
pub mod metrics;
pub(crate) mod middleware;
pub(crate) mod retry;
pub(crate) mod routes;
pub(crate) mod schema;
pub mod session;
pub mod startup;
pub mod storage;
pub mod sweeper;
pub(crate) mod templates;
#[doc(hidden)]
pub mod testing;
pub mod transfer;
pub(crate) mod upkeep;
