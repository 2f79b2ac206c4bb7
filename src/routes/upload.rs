//! GET / shows the upload form; POST / stores the uploaded text file in the session.
//!
//! A successful upload answers 303 See Other to /action (Post/Redirect/Get). Every upload
//! mistake or refusal renders the form again with a 4xx (or 503) and one sentence saying what
//! went wrong, and leaves the file already in the session untouched. What every POST passes
//! before its body is read (origin, rate, upload buffer, size, deadline) is in `guard`.

use actix_multipart::form::bytes::Bytes;
use actix_multipart::form::MultipartForm;
use actix_session_stores::layer::Attachment;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};

use crate::config::Settings;
use crate::error::AppError;
use crate::limits::StorageCap;
use crate::routes::decode::decode_text;
use crate::routes::form::form_page;
use crate::routes::guard::BodyStop;
pub use crate::routes::refusal::UploadError;
use crate::session::{FileInfo, TextdropSession};
use sha2::{Digest as _, Sha256};

/// Longest file name kept in the session; longer names are cut.
const MAX_NAME_CHARS: usize = 255;

/// The upload form's one field. A second `textfile` part, or a part of any other name, is
/// refused as soon as its headers are read, before its data.
#[derive(MultipartForm)]
#[multipart(duplicate_field = "deny", deny_unknown_fields)]
pub struct UploadForm {
    textfile: Option<Bytes>,
}

/// A file name fit to show: control and format characters (Unicode Cc and Cf, bidirectional
/// overrides among them) and the line and paragraph separators (U+2028, U+2029) removed, at
/// most [`MAX_NAME_CHARS`] characters.
pub fn clean_name(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_control() && !is_format_char(*c) && !matches!(c, '\u{2028}' | '\u{2029}'))
        .take(MAX_NAME_CHARS)
        .collect()
}

/// Unicode's Cf (format) characters, as inclusive ranges of code points: soft hyphen,
/// bidirectional marks, embeddings, overrides and isolates, zero-width characters, invisible
/// operators, the BOM, tags and the like (Unicode 15.1, DerivedGeneralCategory.txt).
const FORMAT_CHARS: [u32; 42] = [
    0xAD, 0xAD, 0x600, 0x605, 0x61C, 0x61C, 0x6DD, 0x6DD, 0x70F, 0x70F, 0x890, 0x891, 0x8E2, 0x8E2,
    0x180E, 0x180E, 0x200B, 0x200F, 0x202A, 0x202E, 0x2060, 0x2064, 0x2066, 0x206F, 0xFEFF, 0xFEFF,
    0xFFF9, 0xFFFB, 0x110BD, 0x110BD, 0x110CD, 0x110CD, 0x13430, 0x1343F, 0x1BCA0, 0x1BCA3,
    0x1D173, 0x1D17A, 0xE0001, 0xE0001, 0xE0020, 0xE007F,
];

fn is_format_char(c: char) -> bool {
    FORMAT_CHARS
        .chunks(2)
        .any(|range| (range[0]..=range[1]).contains(&u32::from(c)))
}

/// The file to store: its description, its text and the text's digest, decoded and hashed off
/// the async executor.
async fn received_file(form: UploadForm) -> Result<(FileInfo, String, [u8; 32]), UploadError> {
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
    let (decoded, digest) = web::block(move || {
        decode_text(&data).map(|decoded| {
            let digest: [u8; 32] = Sha256::digest(decoded.text.as_bytes()).into();
            (decoded, digest)
        })
    })
    .await
    .map_err(|_| UploadError::Malformed)??;
    let info = FileInfo {
        name: clean_name(&name),
        size,
        lines: decoded.lines,
        encoding: decoded.converted_from.map(str::to_owned),
        replaced_bytes: decoded.replaced_bytes as u64,
        escapes_removed: decoded.escapes_removed as u64,
    };
    Ok((info, decoded.text, digest))
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
    metrics: web::Data<crate::metrics::Metrics>,
    form: Result<MultipartForm<UploadForm>, actix_web::Error>,
) -> Result<HttpResponse, AppError> {
    let received = match form {
        Ok(form) => received_file(form.into_inner()).await,
        Err(err) => Err(BodyStop::reason(&req.extensions())
            .unwrap_or_else(|| UploadError::from_extractor(&err))),
    };
    let refuse = |err: UploadError| {
        metrics.refused(err.reason());
        let has_file = session.file().is_some();
        Ok(form_page(
            err.status(),
            &settings.limits,
            has_file,
            Some(err),
            None,
        ))
    };
    let (info, text, digest) = match received {
        Ok(file) => file,
        Err(err) => return refuse(err),
    };
    // The file as stored at most (sealed, in case it does not compress) and the record around
    // it; once stored, only what it took counts.
    let charge = Attachment::stored_bytes_at_most(text.len()) + crate::session::RECORD_CHARGE;
    let Some(reservation) = cap.try_reserve(charge) else {
        return refuse(UploadError::StorageFull);
    };
    session
        .store_file(&info, text, digest, reservation)
        .map_err(|err| AppError::Internal(err.into()))?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/action"))
        .finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_control_and_bidirectional_characters() {
        assert_eq!(clean_name("invoice\u{202E}txt.exe"), "invoicetxt.exe");
        assert_eq!(
            clean_name("a\u{0}b\u{1b}[31mc\u{200B}d\u{2066}e\u{FEFF}"),
            "ab[31mcde"
        );
        assert_eq!(clean_name("Ünïcødé name.txt"), "Ünïcødé name.txt");
        assert_eq!(clean_name("two\u{2028}lines\u{2029}.txt"), "twolines.txt");
        assert_eq!(clean_name(&"x".repeat(300)).chars().count(), MAX_NAME_CHARS);
    }
}
