//! How failures become responses.
//!
//! Policy: a visitor's mistake is answered with a 4xx and a page that says in one plain sentence
//! what went wrong (upload mistakes are shown on the form page itself, see `routes::upload`).
//! Everything else is the server's problem: its cause is logged here and the visitor gets an
//! opaque page with no error text, 503 when the storage cannot be reached, 500 otherwise.
//! Security headers are added by `middleware::security_headers`, to error pages too.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use tera::Context;

use crate::templates;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("page not found")]
    NotFound,
    /// An upload sent with a key another upload had replaced (two tabs, a stale page): the
    /// other one was stored.
    #[error("upload conflict")]
    UploadConflict,
    /// The page exists, but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The address's query is not one the page understands (a repeated or malformed
    /// parameter).
    #[error("bad query: {0}")]
    BadQuery(String),
    /// A parameter the page knows with a value it does not take; the text (textdrop's own
    /// words, never the visitor's) says what it takes, and is shown on the page.
    #[error("bad value: {0}")]
    BadValue(String),
    /// A search longer than `routes::search::MAX_QUERY_CHARS`.
    #[error("search too long")]
    SearchTooLong,
    /// No turn came free for a file page within its queue time (`limits::ViewGate`); the
    /// client may try again after this many seconds.
    #[error("too many file pages being prepared")]
    ViewsBusy { retry_after: u64 },
    /// The client viewed more bytes of files than `VIEW_BYTES_PER_MINUTE` allows; it may try
    /// again after this many seconds.
    #[error("too many file bytes viewed")]
    ViewsTooMany { retry_after: u64 },
    #[error("storage unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::UploadConflict => StatusCode::CONFLICT,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::ViewsTooMany { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::BadQuery(_) | AppError::BadValue(_) | AppError::SearchTooLong => {
                StatusCode::BAD_REQUEST
            }
            AppError::Unavailable(_) | AppError::ViewsBusy { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let explained;
        let (title, message) = match self {
            AppError::NotFound => ("Page not found", "There is no page at this address."),
            AppError::UploadConflict => (
                "A newer upload replaced this file",
                "A newer upload replaced the file of this session a moment ago (another tab or \
                 window, or an earlier try), so this upload was not stored. Open your file page \
                 to see which file is kept, then upload this one again if you want it instead.",
            ),
            AppError::MethodNotAllowed => (
                "Method not allowed",
                "This page cannot be asked for that way; open it in a browser or use its form.",
            ),
            AppError::BadQuery(_) => (
                "Bad address",
                "This address has a query textdrop does not understand; remove what follows the ? and try again.",
            ),
            AppError::BadValue(why) => {
                explained = format!(
                    "This address has a query textdrop does not understand: {why}. Change what \
                     follows the ? and try again."
                );
                ("Bad address", explained.as_str())
            }
            AppError::SearchTooLong => (
                "Search too long",
                "Search for at most 200 characters at a time.",
            ),
            AppError::ViewsTooMany { .. } => (
                "Too many views",
                "You are viewing big files faster than textdrop serves one visitor; the page \
                 will load again in a moment.",
            ),
            AppError::ViewsBusy { .. } => (
                "Busy",
                "textdrop is showing too many files right now. Please try again in a moment.",
            ),
            AppError::Unavailable(_) => (
                "Temporarily unavailable",
                "textdrop cannot reach its database right now. Please try again in a moment.",
            ),
            AppError::Internal(_) => (
                "Something went wrong",
                "textdrop hit an internal error. Please try again.",
            ),
        };
        let mut page = error_page(self.status_code(), title, message);
        match self {
            // A refusal that protects the server, not a fault: not logged as one.
            AppError::ViewsBusy { retry_after } | AppError::ViewsTooMany { retry_after } => {
                let retry_after = (*retry_after).max(1);
                page.headers_mut()
                    .insert(actix_web::http::header::RETRY_AFTER, retry_after.into());
            }
            _ if self.status_code().is_server_error() => log::error!("{self}"),
            _ => {}
        }
        page
    }
}

/// The error page with `status`, a title and one sentence.
fn error_page(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    let mut context = Context::new();
    context.insert("title", title);
    context.insert("message", message);
    templates::page(status, "error.html", &context)
}
