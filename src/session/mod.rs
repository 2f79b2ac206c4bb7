//! Server-side sessions: the Diesel-backed store ([`store`]) and its SQL ([`queries`]), the
//! metrics decorator every store is wrapped in ([`metered`]), the request-scoped memory the
//! store and the pages share ([`scope`]), one cleanup run ([`sweep`]) and the interval task
//! that runs it ([`cleanup`]), and typed access for handlers ([`typed`]).

pub mod cleanup;
pub mod lifetime;
pub mod metered;
pub mod planner;
pub mod queries;
pub mod redis_store;
pub mod scope;
pub mod store;
pub mod sweep;
pub mod typed;
pub mod walk;

pub use cleanup::CleanupTask;
pub use metered::MeteredStore;
pub use store::DieselSessionStore;
pub use typed::{FileInfo, TextdropSession};
