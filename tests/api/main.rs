//! One integration-test binary: the real application over a real socket, on SQLite, PostgreSQL
//! and Redis (each test gets its own database; see helpers.rs).

#[macro_use]
mod helpers;
mod browser;
mod cleanup;
mod cluster;
mod faults;
mod hardening;
mod hostile;
mod instances;
mod limits;
mod metrics;
mod migrations;
mod portable;
mod private_mysql;
mod private_pg;
mod redis;
mod rotation;
mod safety;
mod sessions;
mod statements;
mod store;
mod tls;
mod upload;
