//! Server-side sessions, the same on every storage: the store's semantics ([`store`]) over one
//! [`Records`] seam that each backend implements, how long a session lives (`lifetime`), the
//! request-scoped memory the store and the pages share (`scope`), the metrics decorator every
//! store is wrapped in ([`MeteredStore`]), and typed access for handlers ([`TextdropSession`]).

pub(crate) mod lifetime;
pub(crate) mod metered;
pub mod records;
pub mod rotation;
pub(crate) mod scope;
pub mod store;
pub(crate) mod typed;

pub use lifetime::MaxLifetime;
pub use metered::MeteredStore;
pub use records::{Records, StoreError};
pub use rotation::RotationKey;
pub use store::{session_id, TextdropStore};
pub use typed::{FileInfo, TextdropSession};

/// The session middleware textdrop runs its pages in.
pub type Sessions = actix_session::SessionMiddleware<MeteredStore>;
