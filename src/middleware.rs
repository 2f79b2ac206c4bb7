//! The app's own middleware: security headers on every response, and the page a visitor gets
//! when the session middleware fails.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{DefaultHeaders, Next};
use actix_web::ResponseError;

use crate::error::AppError;
use actix_session_stores::layer::{FailureKind, StoreFailure};

/// Headers every response carries: no inline script, no framing, no sniffing.
const SECURITY_HEADERS: [(&str, &str); 4] = [
    (
        "content-security-policy",
        "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    ("x-frame-options", "DENY"),
];

/// Behind TLS (COOKIE_SECURE): browsers use only HTTPS for this host for the next two years.
const HSTS: (&str, &str) = ("strict-transport-security", "max-age=63072000");

/// The one place security headers are added, `Strict-Transport-Security` among them when
/// `hsts`. Error pages get them too: every failure becomes a response before it reaches this
/// middleware.
pub fn security_headers(hsts: bool) -> DefaultHeaders {
    let headers = SECURITY_HEADERS
        .iter()
        .fold(DefaultHeaders::new(), |headers, &pair| headers.add(pair));
    if hsts {
        headers.add(HSTS)
    } else {
        headers
    }
}

/// actix-session answers a failing store with an error and no page, before or after the
/// handler. This turns it into a page: 503 "temporarily unavailable" when the store could not
/// be reached, 409 when an upload lost a race with another of the same session (the store's
/// request layer, inside this, says which in a `StoreFailure`), otherwise an opaque 500. Either way
/// the cause is logged and the page is a response, so the outer middleware adds its headers.
///
/// It wraps a resource, not a scope: routing is done by then, so holding a second handle on the
/// request is allowed (a scope's router needs the only one).
pub async fn store_failure_page(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let request = req.request().clone();
    match next.call(req).await {
        Ok(response) => Ok(response.map_into_boxed_body()),
        Err(err) => {
            let failure = match err.as_error::<StoreFailure>().map(StoreFailure::kind) {
                Some(FailureKind::Conflict) => AppError::UploadConflict,
                Some(FailureKind::Unavailable) => {
                    AppError::Unavailable(anyhow::anyhow!("session store unreachable: {err}"))
                }
                _ => AppError::Internal(anyhow::anyhow!("session middleware failed: {err}")),
            };
            Ok(ServiceResponse::new(request, failure.error_response()))
        }
    }
}

/// The most of a request's target (path and query) an access-log line quotes; the rest is
/// counted, not written, so a visitor cannot grow the log by more than this a request.
pub const LOGGED_TARGET_BYTES: usize = 256;

/// A request line as the access log shows it: the method, at most [`LOGGED_TARGET_BYTES`] of
/// the target with quotes, backslashes and anything not printable ASCII escaped (`\xNN`), a
/// note of how much was left out, and the version.
pub fn logged_request_line(req: &ServiceRequest) -> String {
    let target = req
        .uri()
        .path_and_query()
        .map_or("/", |target| target.as_str())
        .as_bytes();
    let shown = &target[..target.len().min(LOGGED_TARGET_BYTES)];
    let mut line = format!("{} ", req.method());
    for &byte in shown {
        match byte {
            b'"' | b'\\' => line.push_str(&format!("\\x{byte:02x}")),
            0x20..=0x7e => line.push(char::from(byte)),
            _ => line.push_str(&format!("\\x{byte:02x}")),
        }
    }
    if target.len() > shown.len() {
        line.push_str(&format!("…(+{} bytes)", target.len() - shown.len()));
    }
    line.push_str(&format!(" {:?}", req.version()));
    line
}

/// Middleware: counts every response by its status class (`textdrop_http_responses_total`).
pub async fn count_responses(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let metrics = req
        .app_data::<actix_web::web::Data<crate::metrics::Metrics>>()
        .cloned();
    let response = next.call(req).await?;
    if let Some(metrics) = metrics {
        metrics.responded(response.status().as_u16());
    }
    Ok(response)
}
