//! Liveness (`/healthz`: 200 while the process serves HTTP, whatever the database does) and
//! readiness (`/readyz`: 200 only while the database answers a trivial query), and metrics.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use diesel::connection::SimpleConnection;

use crate::db::{self, DbPool};
use crate::metrics::Metrics;
use redis::aio::ConnectionManager;

/// Readiness waits at most this long for a connection.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz() -> HttpResponse {
    text(HttpResponse::Ok(), "ok\n")
}

/// How readiness is checked: a trivial query on the pool, or a PING to Redis.
pub enum Readiness {
    Sql(DbPool),
    Redis(ConnectionManager),
}

impl Readiness {
    async fn check(&self) -> anyhow::Result<()> {
        match self {
            Readiness::Sql(pool) => {
                let pool = pool.clone();
                web::block(move || -> anyhow::Result<()> {
                    let mut slot = pool.get_timeout(READY_TIMEOUT)?;
                    db::run(&mut slot, |conn| conn.batch_execute("SELECT 1"))?;
                    Ok(())
                })
                .await?
            }
            Readiness::Redis(connection) => {
                let mut connection = connection.clone();
                let command = redis::cmd("PING");
                let ping = command.query_async::<String>(&mut connection);
                actix_web::rt::time::timeout(READY_TIMEOUT, ping).await??;
                Ok(())
            }
        }
    }
}

pub async fn readyz(readiness: web::Data<Readiness>) -> HttpResponse {
    match readiness.check().await {
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
