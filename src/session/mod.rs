//! Server-side sessions: the Diesel-backed store, its queries, the cleanup task and typed access.

pub mod backend;
pub mod cleanup;
pub mod queries;
pub mod store;
pub mod typed;

pub use backend::{SessionBackend, StoreKind};
pub use cleanup::CleanupTask;
pub use store::DieselSessionStore;
pub use typed::{StoredFile, TextdropSession};
