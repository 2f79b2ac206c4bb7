//! Server-side sessions: the store's semantics ([`store`]) over SQL rows ([`sql_records`], their
//! SQL in [`queries`]) or Redis hashes ([`redis_records`]), the metrics decorator every store is
//! wrapped in ([`metered`]), the request-scoped memory the
//! store and the pages share ([`scope`]), one cleanup run ([`sweep`]) and the interval task
//! that runs it ([`cleanup`]), and typed access for handlers ([`typed`]).

pub mod cleanup;
pub mod lease;
pub mod lifetime;
pub mod metered;
pub mod pace;
pub mod planner;
pub mod queries;
pub mod redis_records;
pub mod scope;
pub mod sql_records;
pub mod store;
pub mod sweep;
pub mod sweep_queries;
pub mod typed;
pub mod walk;

pub use cleanup::CleanupTask;
pub use metered::MeteredStore;
pub use redis_records::RedisStore;
pub use sql_records::DieselSessionStore;
pub use typed::{FileInfo, TextdropSession};
