//! The HTTP routes. Handlers stay thin: typed session access, one store round trip at most.

mod action;
mod assets;
mod health;
mod upload;

use actix_web::web;

pub use health::Readiness;
pub use upload::{decode_text, UploadError};

/// Routes that never need a session: health probes, metrics and the stylesheet.
pub fn probes_and_assets(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics))
        .route("/static/style.css", web::get().to(assets::stylesheet));
}

/// The pages, which run inside the session middleware.
pub fn pages(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/")
            .route(web::get().to(upload::form))
            .route(web::post().to(upload::upload)),
    )
    .route("/action", web::get().to(action::show))
    .route("/forget", web::post().to(action::forget));
}

/// The answer for every path no route matches.
pub async fn not_found() -> Result<actix_web::HttpResponse, crate::error::AppError> {
    Err(crate::error::AppError::NotFound)
}

/// A byte count as a person reads it: "1 MiB", "512 KiB", "100 bytes".
pub(crate) fn human_bytes(bytes: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;
    if bytes >= MIB && bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    } else if bytes >= KIB && bytes % KIB == 0 {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}
