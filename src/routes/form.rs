//! The upload form page, which every refusal of an upload renders again with its reason.

use actix_web::http::{header, ConnectionType, StatusCode};
use actix_web::HttpResponse;
use tera::Context;

use crate::config::LimitSettings;
use crate::routes::human_bytes;
use crate::routes::refusal::UploadError;
use crate::templates;

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
        Some(UploadError::Busy) => {
            let retry_after = limits.upload_queue.as_secs().max(1);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after.into());
            response
                .head_mut()
                .set_connection_type(ConnectionType::Close);
        }
        // The rest of a body that stalled, or that is too large, is not worth reading.
        Some(UploadError::TimedOut | UploadError::TooLarge) => response
            .head_mut()
            .set_connection_type(ConnectionType::Close),
        _ => {}
    }
    response
}
