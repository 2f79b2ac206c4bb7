//! Typed access to what textdrop keeps in a session, so handlers never spell keys.

use actix_session::{Session, SessionExt, SessionInsertError};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use serde::{Deserialize, Serialize};
use std::future::{ready, Ready};

/// The uploaded file as the session stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFile {
    pub name: String,
    /// Size of the upload in bytes, as received.
    pub size: u64,
    pub lines: Vec<String>,
}

/// A visitor's session, seen through textdrop's own keys.
pub struct TextdropSession(Session);

impl TextdropSession {
    /// The lines of the uploaded file live under this key.
    pub const FILE_CONTENTS: &'static str = "file_contents";
    const FILE_NAME: &'static str = "file_name";
    const FILE_SIZE: &'static str = "file_size";

    /// The stored file, if any. State that no longer parses counts as no file.
    pub fn file(&self) -> Option<StoredFile> {
        let lines = match self.0.get::<Vec<String>>(Self::FILE_CONTENTS) {
            Ok(lines) => lines?,
            Err(err) => {
                log::warn!("ignoring unreadable session state: {err}");
                return None;
            }
        };
        Some(StoredFile {
            name: self
                .0
                .get(Self::FILE_NAME)
                .ok()
                .flatten()
                .unwrap_or_default(),
            size: self
                .0
                .get(Self::FILE_SIZE)
                .ok()
                .flatten()
                .unwrap_or_default(),
            lines,
        })
    }

    /// Stores `file`, replacing any previous one. The session is written once, after the handler.
    pub fn set_file(&self, file: &StoredFile) -> Result<(), SessionInsertError> {
        // Separate inserts, not `Session::update`: in actix-session 0.11 `update` never marks
        // the session as changed, so nothing would be saved.
        self.0.insert(Self::FILE_CONTENTS, &file.lines)?;
        self.0.insert(Self::FILE_NAME, &file.name)?;
        self.0.insert(Self::FILE_SIZE, file.size)
    }

    /// Forgets everything: the row is deleted and the cookie removed after the response.
    pub fn purge(&self) {
        self.0.purge();
    }
}

impl FromRequest for TextdropSession {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Self(req.get_session())))
    }
}
