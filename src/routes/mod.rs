//! The HTTP routes. Handlers stay thin: typed session access, one store round trip at most.

mod action;
mod assets;
mod decode;
mod forget;
mod form;
pub mod guard;
mod health;
mod highlight;
pub(crate) mod index_cache;
mod lines;
mod markdown;
mod paging;
mod raw;
mod refusal;
mod search;
mod selection;
mod upload;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, ResponseError};

use crate::middleware::store_failure_page;
use std::rc::Rc;

use crate::session::previous_keys::reissue_remade;
use crate::session::{CookieKeys, Sessions};
use actix_session_stores::layer::{request_scope, request_scope_with_attachment};

/// Loads what the pages need once per process (the highlighter's grammars) on a thread of its
/// own, so that no request waits for it.
pub fn warm() {
    highlight::warm();
}

/// Routes that never need a session: health probes and the stylesheet.
pub fn probes_and_assets(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/static/style.css", web::get().to(assets::stylesheet));
}

/// `/metrics`, for the metrics listener only (METRICS_ADDR), never the public port.
pub fn metrics(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(health::metrics));
}

/// The pages, each inside the session middleware that `sessions` builds, the store's request
/// layer around it and the store-failure page around both; the forms' POSTs pass the guard first.
/// Each page's methods: another method gets the 405 page before anything else runs (no
/// session loaded, no cookie set). HEAD answers like GET, without the body.
const FORM_METHODS: &[Method] = &[Method::GET, Method::HEAD, Method::POST];
const FORGET_METHODS: &[Method] = &[Method::POST];
const ACTION_METHODS: &[Method] = &[Method::GET, Method::HEAD];

pub fn pages(
    cfg: &mut web::ServiceConfig,
    sessions: impl Fn() -> Sessions,
    cookie_keys: Rc<CookieKeys>,
) {
    // A cookie made under a previous key (re-made under SECRET_KEY by the app's outermost
    // layer) is set on the response when the session middleware sets none.
    let previous_keys = || {
        let keys = cookie_keys.clone();
        from_fn(move |req, next| reissue_remade(keys.clone(), req, next))
    };
    let page = |resource: actix_web::Resource, methods: &'static [Method]| {
        resource
            .wrap(sessions())
            .wrap(previous_keys())
            .wrap(from_fn(request_scope))
            .wrap(from_fn(store_failure_page))
            .wrap(from_fn(guard::post_guard))
            .wrap(from_fn(move |req, next| allow_only(methods, req, next)))
    };
    // The pages that show the stored file (GET and HEAD only): their session is loaded with it.
    let file_page = |resource: actix_web::Resource| {
        resource
            .wrap(sessions())
            .wrap(previous_keys())
            .wrap(from_fn(request_scope_with_attachment))
            .wrap(from_fn(store_failure_page))
            .wrap(from_fn(guard::view_gate))
            .wrap(from_fn(move |req, next| {
                allow_only(ACTION_METHODS, req, next)
            }))
    };
    cfg.service(page(
        web::resource("/")
            .route(web::get().to(upload::form))
            .route(web::head().to(upload::form))
            .route(web::post().to(upload::upload)),
        FORM_METHODS,
    ))
    .service(page(
        web::resource("/forget").route(web::post().to(forget::forget)),
        FORGET_METHODS,
    ))
    .service(file_page(
        web::resource("/action")
            .route(web::get().to(action::show))
            .route(web::head().to(action::show)),
    ))
    .service(file_page(
        web::resource("/action/raw")
            .route(web::get().to(raw::raw))
            .route(web::head().to(raw::raw)),
    ));
}

/// Middleware, outermost on a page: a method the page does not take gets the 405 page with
/// `Allow`, before the session is loaded or a cookie set.
async fn allow_only(
    methods: &'static [Method],
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if methods.contains(req.method()) {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let mut response = crate::error::AppError::MethodNotAllowed.error_response();
    let allow = methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if let Ok(allow) = header::HeaderValue::from_str(&allow) {
        response.headers_mut().insert(header::ALLOW, allow);
    }
    Ok(req.into_response(response))
}

/// The answer for every path no route matches.
pub async fn not_found() -> Result<actix_web::HttpResponse, crate::error::AppError> {
    Err(crate::error::AppError::NotFound)
}

/// A byte count as a person reads it: "1 MiB", "512 KiB", "100 bytes".
pub(crate) fn human_bytes(bytes: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}
