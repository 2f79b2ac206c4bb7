//! GET /action/raw: the stored text itself, as `text/plain; charset=utf-8`; with `?download=1`
//! as an attachment named after the upload (RFC 6266, the name in UTF-8 per RFC 5987 and an
//! ASCII fallback). The session's own file only; without one, the 404 page.

use actix_web::http::header::{
    self, Charset, ContentDisposition, DispositionParam, DispositionType, ExtendedValue,
};
use actix_web::{web, HttpResponse};

use crate::error::AppError;
use crate::limits::FileShown;
use crate::session::TextdropSession;
use actix_session_stores::layer;

/// The query /action/raw understands: `?download=1`.
#[derive(Debug, serde::Deserialize)]
pub struct RawQuery {
    #[serde(default)]
    download: Option<String>,
}

/// The name a download gets when the upload had none.
const UNNAMED: &str = "textdrop.txt";

/// GET /action/raw
pub async fn raw(
    session: TextdropSession,
    query: web::Query<RawQuery>,
) -> Result<HttpResponse, AppError> {
    let (Some(info), Some(text)) = (session.file(), layer::take_loaded_attachment()) else {
        return Err(AppError::NotFound);
    };
    let mut response = HttpResponse::Ok();
    response
        .content_type("text/plain; charset=utf-8")
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    match query.download.as_deref() {
        None | Some("0") => {}
        Some("1") => {
            response.insert_header(attachment(&info.name));
        }
        Some(_) => {
            return Err(AppError::BadValue("download takes 1 or 0".into()));
        }
    }
    // The loaded String becomes the body as it is (no copy): the file is in memory once.
    let shown = text.len() as u64;
    let mut response = response.body(text);
    response.extensions_mut().insert(FileShown(shown));
    Ok(response)
}

/// `Content-Disposition: attachment` for `name`: `filename*=UTF-8''…` (percent-encoded) and an
/// ASCII `filename` fallback in which anything but printable ASCII, and the quote, backslash,
/// semicolon and percent sign, became `_`.
pub fn attachment(name: &str) -> ContentDisposition {
    let name = if name.trim().is_empty() {
        UNNAMED
    } else {
        name
    };
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && !matches!(c, '"' | '\\' | ';' | '%' | '/') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    // A path separator or a line break has no place in a saved file's name, in either form.
    let name: String = name
        .chars()
        .map(|c| match c {
            '/' | '\\' => '_',
            c => c,
        })
        .filter(|c| !c.is_control() && !matches!(c, '\u{2028}' | '\u{2029}'))
        .collect();
    ContentDisposition {
        disposition: DispositionType::Attachment,
        parameters: vec![
            DispositionParam::Filename(fallback),
            DispositionParam::FilenameExt(ExtendedValue {
                charset: Charset::Ext("UTF-8".into()),
                language_tag: None,
                value: name.as_bytes().to_vec(),
            }),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::attachment;

    #[test]
    fn download_names_are_encoded_with_an_ascii_fallback() {
        let shown = |name: &str| attachment(name).to_string();
        assert_eq!(
            shown("notes.txt"),
            "attachment; filename=\"notes.txt\"; filename*=UTF-8''notes.txt"
        );
        assert_eq!(
            shown("naïve résumé.txt"),
            "attachment; filename=\"na_ve r_sum_.txt\"; \
             filename*=UTF-8''na%C3%AFve%20r%C3%A9sum%C3%A9.txt"
        );
        let hostile = shown("a\"b;c\\d%e\r\nf.txt");
        assert!(!hostile.contains(['\r', '\n']), "{hostile}");
        assert!(
            hostile.starts_with("attachment; filename=\"a_b_c_d_e__f.txt\"; filename*=UTF-8''"),
            "{hostile}"
        );
        assert!(hostile.contains("a%22b%3Bc_d%25ef.txt"), "{hostile}");
        assert_eq!(
            shown(""),
            "attachment; filename=\"textdrop.txt\"; filename*=UTF-8''textdrop.txt"
        );
        assert_eq!(
            shown("../etc/pass\u{2028}wd"),
            "attachment; filename=\".._etc_pass_wd\"; filename*=UTF-8''.._etc_passwd"
        );
    }
}
