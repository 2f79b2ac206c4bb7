//! Liveness (`/healthz`: 200 while the process serves HTTP, whatever the storage does) and
//! readiness (`/readyz`: 200 only while the storage answers a trivial request), and metrics.

use actix_web::{web, HttpResponse};

use crate::metrics::Metrics;
use actix_session_stores::Store;

/// Readiness waits at most this long for the storage to answer.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

pub async fn healthz() -> HttpResponse {
    text(HttpResponse::Ok(), "ok\n")
}

/// Asks the storage through this worker's own store, with a short deadline.
pub async fn readyz(store: web::Data<Store>) -> HttpResponse {
    let ready = tokio::time::timeout(READY_TIMEOUT, store.ping()).await;
    let ready = match ready {
        Ok(ready) => ready.map_err(|e| anyhow::anyhow!(e)),
        Err(_) => Err(anyhow::anyhow!("no answer within {READY_TIMEOUT:?}")),
    };
    match ready {
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
