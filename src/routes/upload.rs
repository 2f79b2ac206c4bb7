//! GET / shows the upload form; POST / stores the uploaded text file in the session.
//!
//! A successful upload answers 303 See Other to /action (Post/Redirect/Get). Every upload
//! mistake or refusal renders the form again with a 4xx (or 503) and one sentence saying what
//! went wrong, and leaves the file already in the session untouched. What every POST passes
//! before its body is read (origin, rate, slots, deadline) is in `guard`.

use actix_multipart::form::bytes::Bytes;
use actix_multipart::form::MultipartForm;
use actix_multipart::MultipartError;
use actix_web::error::PayloadError;
use actix_web::http::{header, ConnectionType, StatusCode};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use tera::Context;

use crate::config::{LimitSettings, Settings};
use crate::error::AppError;
use crate::limits::StorageCap;
use crate::routes::guard::BodyDeadline;
use crate::routes::human_bytes;
use crate::session::{FileInfo, TextdropSession};
use crate::templates;

/// Longest file name kept in the session; longer names are cut.
const MAX_NAME_CHARS: usize = 255;

/// The upload form's one field. A second `textfile` part is refused, other fields are ignored.
#[derive(MultipartForm)]
#[multipart(duplicate_field = "deny")]
pub struct UploadForm {
    textfile: Option<Bytes>,
}

/// What can be wrong with an upload, each with its status and sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadError {
    TooLarge,
    NotText,
    NoFile,
    NotAFile,
    SeveralFiles,
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
    /// MAX_UPLOADS_IN_FLIGHT uploads are being read already.
    Busy,
    /// Sent from another site (Sec-Fetch-Site or Origin say so).
    CrossSite,
}

impl UploadError {
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
            UploadError::NotText => "The file must be UTF-8 text; this one is not.".into(),
            UploadError::NoFile => "Choose a text file to upload first.".into(),
            UploadError::NotAFile => "The textfile field must be a file, not plain text.".into(),
            UploadError::SeveralFiles => "Upload one file at a time.".into(),
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
    fn from_extractor(err: &actix_web::Error) -> Self {
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
            MultipartError::MissingField(_) => UploadError::NoFile,
            MultipartError::Field { source, .. } => Self::from_extractor(source),
            _ => UploadError::Malformed,
        }
    }
}

/// Decodes an uploaded file as a text editor would: a UTF-8 byte-order mark is dropped, lines
/// end at `\n` or `\r\n`. NUL bytes mean binary. Returns the text and its line count.
pub fn decode_text(bytes: &[u8]) -> Result<(String, usize), UploadError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.contains(&0) {
        return Err(UploadError::NotText);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| UploadError::NotText)?;
    Ok((text.to_owned(), text.lines().count()))
}

/// A file name fit to show: control and format characters (Unicode Cc and Cf, bidirectional
/// overrides among them) removed, at most [`MAX_NAME_CHARS`] characters.
pub fn clean_name(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_control() && !is_format_char(*c))
        .take(MAX_NAME_CHARS)
        .collect()
}

/// Unicode's Cf (format) characters: soft hyphen, bidirectional marks, embeddings, overrides
/// and isolates, zero-width characters, invisible operators, the BOM, tags and the like
/// (Unicode 15.1, DerivedGeneralCategory.txt).
fn is_format_char(c: char) -> bool {
    matches!(
        c,
        '\u{AD}'
            | '\u{600}'..='\u{605}'
            | '\u{61C}'
            | '\u{6DD}'
            | '\u{70F}'
            | '\u{890}'..='\u{891}'
            | '\u{8E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

/// The file to store: its description and text, decoded off the async executor.
async fn received_file(form: UploadForm) -> Result<(FileInfo, String), UploadError> {
    let part = form.textfile.ok_or(UploadError::NoFile)?;
    let Some(name) = part.file_name else {
        return Err(UploadError::NotAFile);
    };
    // A browser sends an empty, nameless part when no file was chosen.
    if name.is_empty() && part.data.is_empty() {
        return Err(UploadError::NoFile);
    }
    let size = part.data.len() as u64;
    let data = part.data;
    let (text, lines) = web::block(move || decode_text(&data))
        .await
        .map_err(|_| UploadError::Malformed)??;
    let info = FileInfo {
        name: clean_name(&name),
        size,
        lines,
    };
    Ok((info, text))
}

/// The form page, with an optional error sentence, answered with `status`.
pub(crate) fn form_page(
    status: StatusCode,
    limits: &LimitSettings,
    has_file: bool,
    error: Option<UploadError>,
    notice: Option<&str>,
) -> HttpResponse {
    let mut context = Context::new();
    context.insert("notice", &notice);
    context.insert("has_file", &has_file);
    context.insert("max_upload", &human_bytes(limits.max_upload_bytes));
    context.insert("error", &error.map(|e| e.message(limits)));
    let mut response = templates::page(status, "greeting.html", &context);
    match error {
        Some(UploadError::TooMany { retry_after }) => {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after.into());
        }
        // The rest of a body that stalled is not worth waiting for.
        Some(UploadError::TimedOut) => response
            .head_mut()
            .set_connection_type(ConnectionType::Close),
        _ => {}
    }
    response
}

/// The query GET / understands: `?forgotten=1` after "Forget my data now".
#[derive(Debug, serde::Deserialize)]
pub struct FormQuery {
    #[serde(default)]
    forgotten: Option<String>,
}

/// GET /
pub async fn form(
    session: TextdropSession,
    settings: web::Data<Settings>,
    query: web::Query<FormQuery>,
) -> HttpResponse {
    let notice = query
        .forgotten
        .is_some()
        .then_some("Your data was deleted from the server.");
    let has_file = session.file().is_some();
    form_page(StatusCode::OK, &settings.limits, has_file, None, notice)
}

/// POST /
pub async fn upload(
    req: HttpRequest,
    session: TextdropSession,
    settings: web::Data<Settings>,
    cap: web::Data<StorageCap>,
    form: Result<MultipartForm<UploadForm>, actix_web::Error>,
) -> Result<HttpResponse, AppError> {
    let received = match form {
        Ok(form) => received_file(form.into_inner()).await,
        Err(_) if BodyDeadline::passed(&req.extensions()) => Err(UploadError::TimedOut),
        Err(err) => Err(UploadError::from_extractor(&err)),
    };
    let refuse = |err: UploadError| {
        let has_file = session.file().is_some();
        Ok(form_page(
            err.status(),
            &settings.limits,
            has_file,
            Some(err),
            None,
        ))
    };
    let (info, text) = match received {
        Ok(file) => file,
        Err(err) => return refuse(err),
    };
    let Some(reservation) = cap.try_reserve(text.len() as u64) else {
        return refuse(UploadError::StorageFull);
    };
    session
        .store_file(&info, text, reservation)
        .map_err(|err| AppError::Internal(err.into()))?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/action"))
        .finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_decoded_like_an_editor_would() {
        let (text, lines) = decode_text(b"\xEF\xBB\xBFone\r\ntwo\n\nfour\n").expect("text");
        assert_eq!((text.as_str(), lines), ("one\r\ntwo\n\nfour\n", 4));
        assert_eq!(decode_text(b"no newline").expect("text").1, 1);
        assert_eq!(decode_text(b"").expect("empty is text").1, 0);
    }

    #[test]
    fn binary_and_invalid_utf8_are_not_text() {
        assert_eq!(decode_text(b"abc\0def"), Err(UploadError::NotText));
        assert_eq!(decode_text(b"caf\xE9"), Err(UploadError::NotText));
    }

    #[test]
    fn names_lose_control_and_bidirectional_characters() {
        assert_eq!(clean_name("invoice\u{202E}txt.exe"), "invoicetxt.exe");
        assert_eq!(
            clean_name("a\u{0}b\u{1b}[31mc\u{200B}d\u{2066}e\u{FEFF}"),
            "ab[31mcde"
        );
        assert_eq!(clean_name("Ünïcødé name.txt"), "Ünïcødé name.txt");
        assert_eq!(clean_name(&"x".repeat(300)).chars().count(), MAX_NAME_CHARS);
    }

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
