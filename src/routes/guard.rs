//! What every POST passes before its body is read: it must come from this site's own pages
//! (both forms), and an upload must be within its client's rate, find room for its bytes in
//! the upload buffer (waiting for it a moment), stay within `MAX_UPLOAD_BYTES` plus framing,
//! and arrive whole within the upload timeout. A refused request gets the form page with the
//! reason, without its session being loaded or the rest of its body read.

use std::cell::Cell;
use std::rc::Rc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Extensions, Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use futures_util::StreamExt;

use crate::config::Settings;
use crate::limits::{
    client_address, BufferRoom, FileShown, UploadBuffer, UploadRate, ViewBudget, ViewGate,
    FRAMING_ALLOWANCE,
};
use crate::routes::form::form_page;
use crate::routes::refusal::UploadError;

/// The shared state of the guards.
#[derive(Clone)]
pub struct Guard {
    pub rate: UploadRate,
    pub buffer: UploadBuffer,
    pub views: ViewGate,
    pub budget: ViewBudget,
}

/// The settings and the guards' state, which every app that runs these middlewares holds.
fn guards_of(req: &ServiceRequest) -> (web::Data<Settings>, web::Data<Guard>) {
    let settings = req
        .app_data::<web::Data<Settings>>()
        .expect("Settings are app data")
        .clone();
    let guard = req
        .app_data::<web::Data<Guard>>()
        .expect("Guard is app data")
        .clone();
    (settings, guard)
}

/// Middleware for the file pages, before their session is loaded: a view from an address past
/// its budget of file bytes waits until it is within it (`limits::ViewBudget`; too long: the
/// 429 page), then waits for its turn among the views in progress (`limits::ViewGate`), and
/// holds it until its response is ready (none within the queue time: the 503 page); the
/// address is then charged the bytes of the file the page read. A view whose connection closes while it waits
/// is dropped with its place in the line.
pub async fn view_gate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let (settings, guard) = guards_of(&req);
    let limits = &settings.limits;
    let client = client_address(&req, &limits.trusted_proxies, limits.forwarded_header);
    if let Some(client) = client {
        if let Err(over) = guard.budget.wait_within(client, guard.views.queue()).await {
            if let Some(metrics) = req.app_data::<web::Data<crate::metrics::Metrics>>() {
                metrics.refused("views_too_many");
            }
            let refused = crate::error::AppError::ViewsTooMany {
                retry_after: over.retry_after,
            };
            let page = actix_web::ResponseError::error_response(&refused);
            return Ok(req.into_response(page));
        }
    }
    let Ok(turn) = guard.views.enter(client).await else {
        if let Some(metrics) = req.app_data::<web::Data<crate::metrics::Metrics>>() {
            metrics.refused("views_busy");
        }
        let busy = crate::error::AppError::ViewsBusy {
            retry_after: guard.views.queue().as_secs(),
        };
        let page = actix_web::ResponseError::error_response(&busy);
        return Ok(req.into_response(page));
    };
    let response = next.call(req).await?.map_into_boxed_body();
    drop(turn);
    let shown = response.response().extensions().get::<FileShown>().copied();
    if let (Some(client), Some(FileShown(bytes))) = (client, shown) {
        guard.budget.charge(client, bytes);
    }
    Ok(response)
}

/// Middleware for POST / and POST /forget (other methods pass untouched).
pub async fn post_guard(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if req.method() != Method::POST {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let (settings, guard) = guards_of(&req);
    let refuse = |req: ServiceRequest, err: UploadError| {
        if let Some(metrics) = req.app_data::<web::Data<crate::metrics::Metrics>>() {
            metrics.refused(err.reason());
        }
        let page = form_page(err.status(), &settings.limits, false, Some(err), None);
        Ok(req.into_response(page))
    };
    if from_another_site(&req) {
        return refuse(req, UploadError::CrossSite);
    }
    if req.path() != "/" {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let limits = &settings.limits;
    let client = client_address(&req, &limits.trusted_proxies, limits.forwarded_header);
    if let Some(client) = client {
        if let Err(wait) = guard.rate.check(client) {
            let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return refuse(req, UploadError::TooMany { retry_after });
        }
    }
    let limits = BodyLimits {
        bytes: settings.limits.max_upload_bytes + FRAMING_ALLOWANCE,
        deadline: tokio::time::Instant::now() + settings.limits.upload_timeout,
        declared: declared_length(&req),
    };
    let room = guard.buffer.room_for(client);
    // A chunked body (no declared length) reserves its room chunk by chunk as it arrives.
    if let Some(length) = limits.declared {
        if length > limits.bytes {
            return refuse(req, UploadError::TooLarge);
        }
        if guard.buffer.reserve(&room, length).await.is_err() {
            return refuse(req, UploadError::Busy);
        }
    }
    limit_body(&mut req, limits, guard.buffer.clone(), room.clone());
    let response = next.call(req).await?.map_into_boxed_body();
    // The body and everything decoded from it are gone once the response is ready.
    drop(room);
    Ok(response)
}

/// The body's declared length, if it has one.
fn declared_length(req: &ServiceRequest) -> Option<usize> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
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

/// Why a request's body was cut short, for the handler's answer: it missed its deadline
/// (408), found no room in the upload buffer (503), or ran past the size limit (413).
#[derive(Clone, Default)]
pub struct BodyStop(Rc<Cell<Option<UploadError>>>);

impl BodyStop {
    /// Why the body of the request these extensions belong to was cut short, if it was.
    pub fn reason(extensions: &Extensions) -> Option<UploadError> {
        extensions.get::<BodyStop>().and_then(|stop| stop.0.get())
    }
}

/// What a body may take: bytes in all, a deadline, and its declared length (whose room was
/// reserved up front).
#[derive(Clone, Copy)]
struct BodyLimits {
    bytes: usize,
    deadline: tokio::time::Instant,
    declared: Option<usize>,
}

/// The chunk that stops a body, after noting why.
fn stop(marker: &BodyStop, why: UploadError, io: std::io::ErrorKind) -> PayloadError {
    marker.0.set(Some(why));
    match why {
        UploadError::TooLarge => PayloadError::Overflow,
        _ => PayloadError::Io(std::io::Error::new(io, "upload body stopped")),
    }
}

/// Makes the request's body end with an error once its deadline passes, once it runs past its
/// byte limit (every byte counts, framing included), or when a chunked body's next chunk finds
/// no room in the buffer within the queue time: a client that trickles, stalls or pads its body
/// cannot hold the buffer longer or larger than that.
fn limit_body(
    req: &mut ServiceRequest,
    limits: BodyLimits,
    buffer: UploadBuffer,
    room: BufferRoom,
) {
    let marker = BodyStop::default();
    req.extensions_mut().insert(marker.clone());
    let start = (Some(req.take_payload()), 0usize);
    let body = futures_util::stream::unfold(start, move |(payload, read)| {
        let (marker, buffer, room) = (marker.clone(), buffer.clone(), room.clone());
        async move {
            let mut payload: Payload = payload?;
            let chunk = match tokio::time::timeout_at(limits.deadline, payload.next()).await {
                Ok(Some(Ok(chunk))) => chunk,
                Ok(Some(Err(err))) => return Some((Err(err), (None, read))),
                Ok(None) => return None,
                Err(_) => {
                    let late = stop(&marker, UploadError::TimedOut, std::io::ErrorKind::TimedOut);
                    return Some((Err(late), (None, read)));
                }
            };
            let read = read + chunk.len();
            if read > limits.bytes {
                let over = stop(&marker, UploadError::TooLarge, std::io::ErrorKind::Other);
                return Some((Err(over), (None, read)));
            }
            if limits.declared.is_none() && buffer.reserve(&room, chunk.len()).await.is_err() {
                let full = stop(&marker, UploadError::Busy, std::io::ErrorKind::WouldBlock);
                return Some((Err(full), (None, read)));
            }
            Some((Ok(chunk), (Some(payload), read)))
        }
    });
    // Fused: the multipart reader may poll again after the end.
    let payload: std::pin::Pin<Box<dyn futures_util::Stream<Item = _>>> =
        Box::pin(part_headers_as_text(Box::pin(body.fuse())).fuse());
    req.set_payload(Payload::Stream { payload });
}

/// A body whose first part's headers (everything up to the first blank line, at most
/// [`FRAMING_ALLOWANCE`] bytes) are made UTF-8 before the multipart reader sees them: a file
/// name sent in a legacy encoding (a Latin-1 `é`), which the reader would refuse as a
/// malformed part, is read as windows-1252 instead. Nothing else of the body changes.
fn part_headers_as_text<S>(body: S) -> impl futures_util::Stream<Item = S::Item>
where
    S: futures_util::Stream<Item = Result<actix_web::web::Bytes, PayloadError>> + Unpin,
{
    let start = (body, Some(Vec::new()));
    futures_util::stream::unfold(start, |(mut body, mut head)| async move {
        let Some(collected) = head.as_mut() else {
            let next = body.next().await?;
            return Some((next, (body, None)));
        };
        loop {
            match body.next().await {
                Some(Ok(chunk)) => {
                    collected.extend_from_slice(&chunk);
                    let end = memchr::memmem::find(collected, b"\r\n\r\n").map(|at| at + 4);
                    if end.is_none() && collected.len() <= FRAMING_ALLOWANCE {
                        continue;
                    }
                    let mut bytes = std::mem::take(collected);
                    let end = end.unwrap_or(bytes.len());
                    if std::str::from_utf8(&bytes[..end]).is_err() {
                        let (text, _, _) = encoding_rs::WINDOWS_1252.decode(&bytes[..end]);
                        let mut fixed = text.into_owned().into_bytes();
                        fixed.extend_from_slice(&bytes[end..]);
                        bytes = fixed;
                    }
                    return Some((Ok(bytes.into()), (body, None)));
                }
                // Ended or failed before the headers did: what came so far, as it is.
                other => {
                    let bytes = std::mem::take(collected);
                    let item = match other {
                        Some(Err(err)) => Err(err),
                        _ if bytes.is_empty() => return None,
                        _ => Ok(bytes.into()),
                    };
                    return Some((item, (body, None)));
                }
            }
        }
    })
}
