//! Typed access to what textdrop keeps in a session, so handlers never spell keys.
//!
//! The session map holds only the file's description ([`FileInfo`]); the file itself is the
//! session's attachment (`actix_session_stores::layer`), which comes back only to the page
//! that shows it. An upload rotates the session's key: a new key every time, the old one
//! superseded.

use actix_session::{Session, SessionExt, SessionInsertError};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use serde::{Deserialize, Serialize};
use std::future::{ready, Ready};

use actix_session_stores::layer::{self, Attachment};

use crate::limits::Reservation;

/// What the session map says about the uploaded file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    pub name: String,
    /// Size of the upload in bytes, as received.
    pub size: u64,
    /// Lines of the decoded text.
    pub lines: usize,
    /// The encoding the upload was converted from to UTF-8 (`windows-1252`, `UTF-16LE`, …);
    /// `None` when it was UTF-8 (and in sessions stored before conversions existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// Bytes of a (mostly) UTF-8 upload that were no UTF-8, shown as U+FFFD.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub replaced_bytes: u64,
    /// Terminal escape sequences (colours, cursor moves) removed from the text.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub escapes_removed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A visitor's session, seen through textdrop's own keys.
pub struct TextdropSession(Session);

impl TextdropSession {
    /// The file's description lives under this key.
    pub const FILE: &'static str = "file";

    /// The stored file's description, if any. State that no longer parses counts as no file.
    pub fn file(&self) -> Option<FileInfo> {
        match self.0.get::<FileInfo>(Self::FILE) {
            Ok(info) => info,
            Err(err) => {
                log::warn!("ignoring unreadable session state: {err}");
                None
            }
        }
    }

    /// Stores an uploaded file (whose text's SHA-256 is `digest`), replacing any previous
    /// one, under a new session key: after the handler the store writes the new session and
    /// supersedes the old one in one step, so a key someone else planted or saw never shows
    /// this upload. The reservation under the storage cap is kept once the file is stored,
    /// and released if it never is.
    pub fn store_file(
        &self,
        info: &FileInfo,
        text: String,
        digest: [u8; 32],
        reservation: Reservation,
    ) -> Result<(), SessionInsertError> {
        self.0.insert(Self::FILE, info)?;
        let attachment = Attachment::new(text)
            .with_sha256(digest)
            .on_stored(move |stored| reservation.stored(stored + super::RECORD_CHARGE));
        // Outside the request layer the file cannot be stored: dropped, its room released.
        drop(layer::attach(attachment));
        Ok(())
    }

    /// Forgets everything: the session is deleted and the cookie removed after the response.
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
