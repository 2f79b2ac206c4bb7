//! textdrop: anonymous visitors upload a text file and see it back on a second page. Their
//! sessions live server-side, in a SQL `sessions` table (PostgreSQL or SQLite) that the app
//! creates at startup and cleans up by itself, or in Redis, which expires them itself.

pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod middleware;
pub mod retry;
pub mod routes;
pub mod schema;
pub mod session;
pub mod startup;
pub mod storage;
pub mod templates;
pub mod upkeep;
