//! GET / shows the upload form; POST / stores the uploaded text file in the session.
//!
//! A successful upload answers 303 See Other to /action (Post/Redirect/Get). Every upload
//! mistake renders the form again with a 4xx and one sentence saying what went wrong, and leaves
//! the file already in the session untouched.

use actix_multipart::form::bytes::Bytes;
use actix_multipart::form::MultipartForm;
use actix_multipart::MultipartError;
use actix_web::error::PayloadError;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use tera::Context;

use crate::config::Settings;
use crate::error::AppError;
use crate::routes::human_bytes;
use crate::session::{StoredFile, TextdropSession};
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
}

impl UploadError {
    pub fn status(self) -> StatusCode {
        match self {
            UploadError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UploadError::NotText => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    pub fn message(self, limit: usize) -> String {
        match self {
            UploadError::TooLarge => format!(
                "The file is too large: textdrop accepts files up to {}.",
                human_bytes(limit)
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
/// end at `\n` or `\r\n`, a final line ending adds no empty line. NUL bytes mean binary.
pub fn decode_text(bytes: &[u8]) -> Result<Vec<String>, UploadError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.contains(&0) {
        return Err(UploadError::NotText);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| UploadError::NotText)?;
    Ok(text.lines().map(str::to_owned).collect())
}

fn stored_file(form: UploadForm) -> Result<StoredFile, UploadError> {
    let part = form.textfile.ok_or(UploadError::NoFile)?;
    let Some(name) = part.file_name else {
        return Err(UploadError::NotAFile);
    };
    // A browser sends an empty, nameless part when no file was chosen.
    if name.is_empty() && part.data.is_empty() {
        return Err(UploadError::NoFile);
    }
    let lines = decode_text(&part.data)?;
    Ok(StoredFile {
        name: name.chars().take(MAX_NAME_CHARS).collect(),
        size: part.data.len() as u64,
        lines,
    })
}

/// The form page, with an optional error sentence, answered with `status`.
fn form_page(
    session: &TextdropSession,
    settings: &Settings,
    status: StatusCode,
    error: Option<String>,
    notice: Option<&str>,
) -> HttpResponse {
    let mut context = Context::new();
    context.insert("notice", &notice);
    context.insert("has_file", &session.file().is_some());
    context.insert("max_upload", &human_bytes(settings.limits.max_upload_bytes));
    context.insert("error", &error);
    templates::page(status, "greeting.html", &context)
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
    form_page(&session, &settings, StatusCode::OK, None, notice)
}

/// POST /
pub async fn upload(
    session: TextdropSession,
    settings: web::Data<Settings>,
    form: Result<MultipartForm<UploadForm>, actix_web::Error>,
) -> Result<HttpResponse, AppError> {
    let file = form
        .map_err(|err| UploadError::from_extractor(&err))
        .and_then(|form| stored_file(form.into_inner()));
    let file = match file {
        Ok(file) => file,
        Err(err) => {
            let message = err.message(settings.limits.max_upload_bytes);
            return Ok(form_page(
                &session,
                &settings,
                err.status(),
                Some(message),
                None,
            ));
        }
    };
    session
        .set_file(&file)
        .map_err(|err| AppError::Internal(err.into()))?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/action"))
        .finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_split_like_an_editor_would() {
        assert_eq!(
            decode_text(b"\xEF\xBB\xBFone\r\ntwo\n\nfour\n").expect("text"),
            ["one", "two", "", "four"]
        );
        assert_eq!(decode_text(b"no newline").expect("text"), ["no newline"]);
        assert!(decode_text(b"").expect("empty is text").is_empty());
    }

    #[test]
    fn binary_and_invalid_utf8_are_not_text() {
        assert_eq!(decode_text(b"abc\0def"), Err(UploadError::NotText));
        assert_eq!(decode_text(b"caf\xE9"), Err(UploadError::NotText));
    }

    #[test]
    fn each_mistake_has_a_4xx_status() {
        for err in [
            UploadError::TooLarge,
            UploadError::NotText,
            UploadError::NoFile,
            UploadError::NotAFile,
            UploadError::SeveralFiles,
            UploadError::NotMultipart,
            UploadError::Malformed,
        ] {
            assert!(err.status().is_client_error(), "{err:?}");
            assert!(err.message(1024).ends_with('.'), "{err:?}");
        }
        assert_eq!(
            UploadError::TooLarge.status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert!(UploadError::TooLarge.message(1_048_576).contains("1 MiB"));
    }
}
