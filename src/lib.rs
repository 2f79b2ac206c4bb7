//! textdrop: anonymous visitors upload a text file and see it back on a second page. Their
//! sessions live server-side, in a SQL `sessions` table (SQLite, PostgreSQL or MySQL/MariaDB)
//! that the app creates at startup and cleans up by itself, or in Redis or a Redis Cluster,
//! which expire them themselves.
//!
//! The sessions are kept by the session store crate, `actix-session-stores`
//! (crates/actix-session-stores), through its public API only. This crate is the app: what
//! starts it and what its tests drive ([`startup::Application`], [`config::Settings`],
//! [`cli`]), its pages, its limits and its metrics.

pub mod cli;
pub mod config;
pub(crate) mod connection;
pub mod database;
pub(crate) mod error;
pub mod limits;
pub mod metrics;
pub(crate) mod middleware;
pub(crate) mod progress;
pub(crate) mod routes;
pub mod session;
pub mod startup;
pub mod storage;
pub(crate) mod templates;
pub(crate) mod upkeep;
