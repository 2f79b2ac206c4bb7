//! textdrop's sessions: typed access for handlers ([`TextdropSession`]) over the session store
//! crate (`actix-session-stores`), which keeps them, rotates them and cleans up after them.

pub(crate) mod previous_keys;
pub(crate) mod typed;

pub use previous_keys::{CookieKeys, MAX_PREVIOUS_KEYS};
pub use typed::{FileInfo, TextdropSession};

/// What the storage cap counts for each record besides its file: the state, the file's name,
/// the key and the row's own overhead (a row of an empty upload with a 255-character name took
/// 1,485 bytes on SQLite), so that empty uploads fill the cap too.
pub const RECORD_CHARGE: u64 = 2048;

/// The session middleware textdrop runs its pages in.
pub type Sessions = actix_session::SessionMiddleware<actix_session_stores::Store>;
