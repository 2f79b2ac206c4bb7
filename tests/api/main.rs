//! One integration-test binary: the real application over a real socket, on SQLite and on
//! PostgreSQL (each test gets its own database; see helpers.rs).

#[macro_use]
mod helpers;
mod browser;
mod faults;
mod hardening;
mod migrations;
mod private_pg;
mod redis;
mod scale;
mod sessions;
mod store;
mod upload;
