//! Liveness (`/healthz`: 200 while the process serves HTTP, whatever the database does) and
//! readiness (`/readyz`: 200 only while the database answers a trivial query), and metrics.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use diesel::connection::SimpleConnection;

use crate::db::DbPool;
use crate::metrics::Metrics;

/// Readiness waits at most this long for a connection.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz() -> HttpResponse {
    text(HttpResponse::Ok(), "ok\n")
}

pub async fn readyz(pool: web::Data<DbPool>) -> HttpResponse {
    let pool = pool.into_inner();
    let answer = web::block(move || -> anyhow::Result<()> {
        let mut conn = pool.get_timeout(READY_TIMEOUT)?;
        conn.batch_execute("SELECT 1")?;
        Ok(())
    })
    .await;
    match answer {
        Ok(Ok(())) => text(HttpResponse::Ok(), "ready\n"),
        Ok(Err(err)) => {
            log::warn!("readiness check failed: {err:#}");
            text(HttpResponse::ServiceUnavailable(), "database unavailable\n")
        }
        Err(err) => {
            log::error!("readiness check could not run: {err}");
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
