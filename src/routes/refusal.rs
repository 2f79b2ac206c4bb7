//! Why an upload was not stored, each reason with its status and the sentence the form page
//! shows: the visitor's mistakes (4xx) and the server's own bounds (403, 408, 429, 503, 507).

use actix_multipart::MultipartError;
use actix_web::error::PayloadError;
use actix_web::http::StatusCode;

use crate::config::LimitSettings;
use crate::routes::human_bytes;

/// What can be wrong with an upload, each with its status and sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadError {
    TooLarge,
    NotText,
    NoFile,
    NotAFile,
    SeveralFiles,
    /// A part the form does not have.
    UnknownPart,
    NotMultipart,
    Malformed,
    /// The body did not arrive within UPLOAD_TIMEOUT_SECS.
    TimedOut,
    /// Storing it would pass MAX_STORED_BYTES.
    StorageFull,
    /// UPLOADS_PER_MINUTE reached; the client may retry after this many seconds.
    TooMany {
        retry_after: u64,
    },
    /// The upload buffer (UPLOAD_BUFFER_BYTES) had no room for the body within
    /// UPLOAD_QUEUE_SECS.
    Busy,
    /// Sent from another site (Sec-Fetch-Site or Origin say so).
    CrossSite,
}

impl UploadError {
    /// Its `reason` label on `textdrop_refusals_total` (one of `metrics::REFUSAL_REASONS`).
    pub fn reason(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::NotText => "not_text",
            Self::NoFile => "no_file",
            Self::NotAFile => "not_a_file",
            Self::SeveralFiles => "several_files",
            Self::UnknownPart => "unknown_part",
            Self::NotMultipart => "not_multipart",
            Self::Malformed => "malformed",
            Self::TimedOut => "timed_out",
            Self::StorageFull => "storage_full",
            Self::TooMany { .. } => "too_many",
            Self::Busy => "busy",
            Self::CrossSite => "cross_site",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            UploadError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UploadError::NotText => StatusCode::UNPROCESSABLE_ENTITY,
            UploadError::TimedOut => StatusCode::REQUEST_TIMEOUT,
            UploadError::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
            UploadError::TooMany { .. } => StatusCode::TOO_MANY_REQUESTS,
            UploadError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            UploadError::CrossSite => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    pub fn message(self, limits: &LimitSettings) -> String {
        match self {
            UploadError::TooLarge => format!(
                "The file is too large: textdrop accepts files up to {}.",
                human_bytes(limits.max_upload_bytes)
            ),
            UploadError::NotText => "This file looks binary, not like text: textdrop shows text \
                                     files (UTF-8, UTF-16 or a common legacy encoding)."
                .into(),
            UploadError::NoFile => "Choose a text file to upload first.".into(),
            UploadError::NotAFile => "The textfile field must be a file, not plain text.".into(),
            UploadError::SeveralFiles => "Upload one file at a time.".into(),
            UploadError::UnknownPart => {
                "The upload form takes only its textfile part, and nothing else.".into()
            }
            UploadError::NotMultipart => {
                "The upload must be sent as a multipart/form-data form.".into()
            }
            UploadError::Malformed => {
                "The upload arrived incomplete or malformed; please try again.".into()
            }
            UploadError::TimedOut => format!(
                "The upload took longer than {} seconds to arrive; please try again.",
                limits.upload_timeout.as_secs()
            ),
            UploadError::StorageFull => {
                "textdrop is full right now: no room for new files. Please try again later.".into()
            }
            UploadError::TooMany { retry_after } => format!(
                "Too many uploads from your address: you can upload again in {retry_after} \
                 second{}.",
                if retry_after == 1 { "" } else { "s" }
            ),
            UploadError::Busy => {
                "textdrop is receiving too many uploads right now. Please try again in a moment."
                    .into()
            }
            UploadError::CrossSite => {
                "This form must be sent from textdrop's own page; open the page and try again."
                    .into()
            }
        }
    }

    /// Classifies why actix-multipart could not read the form.
    pub(crate) fn from_extractor(err: &actix_web::Error) -> Self {
        match err.as_error::<MultipartError>() {
            Some(err) => Self::from_multipart(err),
            None if err.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE => {
                UploadError::TooLarge
            }
            None => UploadError::Malformed,
        }
    }

    fn from_multipart(err: &MultipartError) -> Self {
        match err {
            MultipartError::Payload(PayloadError::Overflow) => UploadError::TooLarge,
            MultipartError::ContentTypeMissing
            | MultipartError::ContentTypeParse
            | MultipartError::ContentTypeIncompatible => UploadError::NotMultipart,
            MultipartError::DuplicateField(_) => UploadError::SeveralFiles,
            MultipartError::UnknownField(_) => UploadError::UnknownPart,
            MultipartError::MissingField(_) => UploadError::NoFile,
            MultipartError::Field { source, .. } => Self::from_extractor(source),
            _ => UploadError::Malformed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_has_its_status_and_a_sentence() {
        let limits = crate::config::Settings::from_lookup(|_| None)
            .expect("defaults")
            .limits;
        for err in [
            UploadError::TooLarge,
            UploadError::NotText,
            UploadError::NoFile,
            UploadError::NotAFile,
            UploadError::SeveralFiles,
            UploadError::UnknownPart,
            UploadError::NotMultipart,
            UploadError::Malformed,
            UploadError::TimedOut,
            UploadError::TooMany { retry_after: 2 },
            UploadError::CrossSite,
        ] {
            assert!(err.status().is_client_error(), "{err:?}");
            assert!(err.message(&limits).ends_with('.'), "{err:?}");
        }
        assert_eq!(UploadError::Busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(UploadError::StorageFull.status().as_u16(), 507);
        assert!(UploadError::TooLarge.message(&limits).contains("1 MiB"));
        assert!(UploadError::TooMany { retry_after: 7 }
            .message(&limits)
            .contains("in 7 seconds"));
    }
}
