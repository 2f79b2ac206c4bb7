//! The HTTP routes. Handlers stay thin: typed session access, one store round trip at most.

mod action;
mod assets;
mod form;
pub mod guard;
mod health;
mod paging;
mod refusal;
mod upload;

use actix_web::middleware::from_fn;
use actix_web::web;

use crate::middleware::store_failure_page;
use crate::session::scope::{request_scope, request_scope_with_file};
use crate::session::Sessions;

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

/// The pages, each inside the session middleware that `sessions` builds, the store-failure
/// page around it and the request scope around both; the forms' POSTs pass the guard first.
pub fn pages(cfg: &mut web::ServiceConfig, sessions: impl Fn() -> Sessions) {
    let page = |resource: actix_web::Resource| {
        resource
            .wrap(sessions())
            .wrap(from_fn(store_failure_page))
            .wrap(from_fn(request_scope))
            .wrap(from_fn(guard::post_guard))
    };
    cfg.service(page(
        web::resource("/")
            .route(web::get().to(upload::form))
            .route(web::post().to(upload::upload)),
    ))
    .service(page(
        web::resource("/forget").route(web::post().to(action::forget)),
    ))
    // The one page that shows the file: its session is loaded with it.
    .service(
        web::resource("/action")
            .route(web::get().to(action::show))
            .wrap(sessions())
            .wrap(from_fn(store_failure_page))
            .wrap(from_fn(request_scope_with_file)),
    );
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
