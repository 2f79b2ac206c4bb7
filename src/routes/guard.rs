//! What every POST passes before its body is read: it must come from this site's own pages
//! (both forms), and an upload must be within its client's rate, find one of the upload slots
//! free, and arrive whole within the upload timeout. A refused request gets the form page with
//! the reason, without its session being loaded or its body read.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Extensions, Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use futures_util::StreamExt;

use crate::config::Settings;
use crate::limits::{client_address, UploadRate, UploadSlots};
use crate::routes::form::form_page;
use crate::routes::refusal::UploadError;

/// The shared state of the guards.
#[derive(Clone)]
pub struct Guard {
    pub rate: UploadRate,
    pub slots: UploadSlots,
}

/// Middleware for POST / and POST /forget (other methods pass untouched).
pub async fn post_guard(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if req.method() != Method::POST {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let settings = req
        .app_data::<web::Data<Settings>>()
        .expect("Settings are app data")
        .clone();
    let guard = req
        .app_data::<web::Data<Guard>>()
        .expect("Guard is app data")
        .clone();
    let refuse = |req: ServiceRequest, err: UploadError| {
        let page = form_page(err.status(), &settings.limits, false, Some(err), None);
        Ok(req.into_response(page))
    };
    if from_another_site(&req) {
        return refuse(req, UploadError::CrossSite);
    }
    if req.path() != "/" {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    if let Some(client) = client_address(&req, &settings.limits.trusted_proxies) {
        if let Err(wait) = guard.rate.check(client) {
            let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return refuse(req, UploadError::TooMany { retry_after });
        }
    }
    let Some(_slot) = guard.slots.try_take() else {
        return refuse(req, UploadError::Busy);
    };
    limit_body_time(&mut req, settings.limits.upload_timeout);
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// OWASP's Fetch Metadata and Origin checks: a browser says where a POST comes from, and only
/// this site's own pages may send one. Requests that say nothing (curl, old browsers) pass.
fn from_another_site(req: &ServiceRequest) -> bool {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if matches!(header("sec-fetch-site"), Some("cross-site" | "same-site")) {
        return true;
    }
    let Some(origin) = header(header::ORIGIN.as_str()) else {
        return false;
    };
    // This site is whatever host the request was sent to; "null" (a sandboxed or privacy-
    // sensitive context) matches nothing.
    let host = header(header::HOST.as_str());
    origin.split_once("://").map(|(_, authority)| authority) != host || host.is_none()
}

/// Marks a request whose body missed its deadline, so the handler answers 408.
#[derive(Clone)]
pub struct BodyDeadline(Rc<Cell<bool>>);

impl BodyDeadline {
    /// Whether the request these extensions belong to missed its body deadline.
    pub fn passed(extensions: &Extensions) -> bool {
        extensions
            .get::<BodyDeadline>()
            .is_some_and(|deadline| deadline.0.get())
    }
}

/// Makes the request's body end with an error once `timeout` has passed since now: a client
/// that trickles or stalls after its headers cannot hold the upload slot longer than that.
fn limit_body_time(req: &mut ServiceRequest, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    let marker = BodyDeadline(Rc::new(Cell::new(false)));
    req.extensions_mut().insert(marker.clone());
    let body = futures_util::stream::unfold(Some(req.take_payload()), move |payload| {
        let marker = marker.clone();
        async move {
            let mut payload: Payload = payload?;
            match tokio::time::timeout_at(deadline, payload.next()).await {
                Ok(Some(chunk)) => Some((chunk, Some(payload))),
                Ok(None) => None,
                Err(_) => {
                    marker.0.set(true);
                    let late = std::io::Error::new(std::io::ErrorKind::TimedOut, "upload deadline");
                    Some((Err(PayloadError::Io(late)), None))
                }
            }
        }
    });
    // Fused: the multipart reader may poll again after the end.
    let payload: std::pin::Pin<Box<dyn futures_util::Stream<Item = _>>> = Box::pin(body.fuse());
    req.set_payload(Payload::Stream { payload });
}
