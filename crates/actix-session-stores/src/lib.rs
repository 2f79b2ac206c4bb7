//! Server-side session stores for [actix-session]: SQLite, PostgreSQL and MySQL/MariaDB through
//! [Diesel] (pure-Rust drivers for the servers), Redis and Redis Cluster, behind one
//! [`SessionStore`](actix_session::storage::SessionStore) with the same semantics everywhere.
//!
//! What it does that a bare `sessions` table does not:
//! - **its table**: embedded migrations run when the storage connects ([`migrations`] for a
//!   pending check or the SQL for a DBA);
//! - **cleanup**: an interval task deletes expired rows in batches, elected so that one
//!   instance sweeps at a time ([`Storage::spawn_cleanup`]); an expired row is never served,
//!   swept or not;
//! - **keys at rest**: only the SHA-256 of a session key is stored;
//! - **`Session::renew()` as one rotation** with a grace period during which the old key
//!   reads the previous state, read-only ([`layer`]); `Session::purge()` removes the whole
//!   chain;
//! - **an attachment per session**: a large value (a document, a file) stored in a column of
//!   its own and read only by the requests that ask for it ([`layer::Attachment`]);
//! - **503, not 500**, when the storage does not answer ([`layer::StoreFailure`]);
//! - **moving storages** with no one logged out ([`copy_sessions`], and
//!   [`DatabaseConfig::previous_url`]).
//!
//! # Example
//!
//! ```no_run
//! use actix_session::{Session, SessionMiddleware};
//! use actix_session_stores::{layer, Config, DatabaseUrl, Storage};
//! use actix_web::{cookie::Key, middleware::from_fn, web, App, HttpServer};
//!
//! async fn count(session: Session) -> actix_web::Result<String> {
//!     let n = session.get::<u64>("n")?.unwrap_or(0) + 1;
//!     session.insert("n", n)?;
//!     Ok(format!("visit {n}"))
//! }
//!
//! #[actix_web::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let config = Config::new(DatabaseUrl::parse("sqlite://sessions.db")?);
//!     let storage = Storage::connect(config).await?; // creates the table
//!     let cleanup = storage.spawn_cleanup(); // deletes expired rows every 5 minutes
//!     let key = Key::generate();
//!     HttpServer::new(move || {
//!         App::new()
//!             .wrap(SessionMiddleware::new(storage.store(), key.clone()))
//!             .wrap(from_fn(layer::request_scope)) // outside the sessions
//!             .route("/", web::get().to(count))
//!     })
//!     .bind(("127.0.0.1", 8080))?
//!     .run()
//!     .await?;
//!     if let Some(cleanup) = cleanup {
//!         cleanup.stop().await;
//!     }
//!     Ok(())
//! }
//! ```
//!
//! # Features
//!
//! One per backend, each of which compiles alone: `sqlite` (the default; the SQLite library is
//! bundled, so a C compiler is needed), `postgres`, `mysql` (MySQL and MariaDB), `redis`,
//! `redis-cluster`.
//!
//! # actix-session versions
//!
//! Built for actix-session 0.11, whose state is a map of JSON texts. A state whose values are
//! all JSON is stored as `{"v":1,"state":{…}}`, the shape of actix-session's next format, and
//! both shapes read back, so a later version needs no migration of the rows.
//!
//! [actix-session]: https://docs.rs/actix-session
//! [Diesel]: https://diesel.rs

#![deny(missing_docs)]

#[cfg(not(any(
    feature = "sqlite",
    feature = "postgres",
    feature = "mysql",
    feature = "redis"
)))]
compile_error!(
    "enable at least one backend feature: sqlite, postgres, mysql, redis, redis-cluster"
);

pub(crate) mod backends;
mod cache;
mod clock;
mod config;
mod copy;
mod error;
mod events;
mod existing;
pub mod layer;
pub mod migrations;
mod moving;
pub mod records;
pub(crate) mod retry;
#[allow(missing_docs)] // Written by `diesel print-schema`.
pub(crate) mod schema;
pub(crate) mod seal;
pub(crate) mod session;
mod state;
mod storage;
mod store;
pub(crate) mod sweeper;
#[cfg(feature = "__test-support")]
#[doc(hidden)]
pub mod test_support;
pub(crate) mod transfer;
mod url;

pub use clock::Clock;
pub use config::{
    CleanupConfig, CleanupMode, Config, DatabaseConfig, Names, ReadCacheConfig, SessionConfig,
};
pub use copy::{copy_sessions, CopyReport, DEFAULT_BATCH, NAMED_SKIPS};
pub use error::{Error, ErrorKind, Result};
pub use events::{Events, NoEvents, StoreCall};
pub use existing::ExistingPool;
pub use session::rotation::RotationKey;
pub use storage::{Maintenance, Storage};
pub use store::{session_id, Store};
pub use sweeper::{CleanupReport, CleanupTask, SessionCounts, SweepPolicy};
pub use transfer::{Skipped, Written};
pub use url::{Backend, DatabaseUrl, UrlError, SCHEMES};

/// The README's examples, run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
