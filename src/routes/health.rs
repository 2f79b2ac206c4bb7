//! Liveness (`/healthz`: 200 while the process serves HTTP, whatever the storage does) and
//! readiness (`/readyz`: 200 only while the storage answers a trivial request), and metrics.

use actix_web::{web, HttpResponse};

use crate::metrics::Metrics;
use crate::storage::SessionStorage;

pub async fn healthz() -> HttpResponse {
    text(HttpResponse::Ok(), "ok\n")
}

pub async fn readyz(storage: web::Data<SessionStorage>) -> HttpResponse {
    match storage.check_ready().await {
        Ok(()) => text(HttpResponse::Ok(), "ready\n"),
        Err(err) => {
            log::warn!("readiness check failed: {err:#}");
            text(HttpResponse::ServiceUnavailable(), "database unavailable\n")
        }
    }
}

/// Prometheus metrics in the text exposition format.
pub async fn metrics(metrics: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(metrics.render())
}

fn text(mut builder: actix_web::HttpResponseBuilder, body: &'static str) -> HttpResponse {
    builder
        .content_type("text/plain; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(body)
}
