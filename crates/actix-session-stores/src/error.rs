//! The crate's one error type: what went wrong ([`ErrorKind`]) and its cause.

use std::fmt;

/// What kind of failure an [`Error`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The configuration is unusable (a URL of the wrong form, an option out of range).
    Config,
    /// The storage could not be connected to, or refused the credentials: retrying later, or
    /// fixing what the message names, may help.
    Connect,
    /// Applying the migrations failed.
    Migrate,
    /// Migrations are pending and the configuration says not to apply them.
    MigrationsPending,
    /// The storage did not answer (down, overloaded, timed out).
    Unavailable,
    /// The storage answered with an error.
    Failed,
}

/// An error of this crate: its [`ErrorKind`] and the cause, shown on one line by `Display`
/// (never with a password: URLs in messages are redacted).
pub struct Error {
    kind: ErrorKind,
    cause: anyhow::Error,
}

/// A result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn new(kind: ErrorKind, cause: impl Into<anyhow::Error>) -> Self {
        Self {
            kind,
            cause: cause.into(),
        }
    }

    /// An error whose kind is read off its cause: a pending-migrations refusal, a storage
    /// that did not answer, or else `fallback`.
    pub(crate) fn classify(fallback: ErrorKind, cause: anyhow::Error) -> Self {
        let kind = if cause.is::<crate::backends::migrate::Pending>() {
            ErrorKind::MigrationsPending
        } else if cause.is::<crate::backends::NotCompiled>() {
            ErrorKind::Config
        } else if cause
            .downcast_ref::<crate::session::records::StoreError>()
            .is_some_and(|err| err.is_unavailable())
        {
            ErrorKind::Unavailable
        } else {
            fallback
        };
        Self { kind, cause }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.cause)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({:?}: {:#})", self.kind, self.cause)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.source()
    }
}
