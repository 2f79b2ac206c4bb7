//! One integration-test binary: the real application over a real socket, on SQLite, PostgreSQL,
//! MySQL, Redis and a Redis Cluster (each test gets its own database; see helpers), run by its
//! own harness ([`helpers::harness`]): a test whose service is missing is counted as ignored.

#[macro_use]
mod helpers;
mod browser;
mod cleanup;
mod cluster;
mod deadlines;
mod faults;
mod hardening;
mod highlighting;
mod hostile;
mod instances;
mod limits;
mod metrics;
mod migrations;
mod portable;
mod previous_keys;
mod private_mysql;
mod private_pg;
mod read_cache;
mod redis;
mod rotation;
mod safety;
mod sealed;
mod sessions;
mod statements;
mod store;
mod tls;
mod transfer;
mod upload;
mod viewer;
mod views;

fn main() -> std::process::ExitCode {
    helpers::harness::main()
}
