//! What the limits need done now and then while the server runs: measuring the bytes stored
//! for the storage cap (and the `textdrop_stored_bytes` metric), and letting the upload rate
//! limiter forget idle addresses.

use std::time::Duration;

use actix_web::web;
use tokio_util::sync::CancellationToken;

use crate::limits::{StorageCap, UploadRate};
use crate::metrics::Metrics;
use actix_session_stores::Storage;

use crate::session::RECORD_CHARGE;

/// How often the bytes stored are measured for the storage cap.
const CAP_MEASURE_EVERY: Duration = Duration::from_secs(2);
/// How often the bytes stored are measured for the metric alone, when there is no cap.
const METRIC_MEASURE_EVERY: Duration = Duration::from_secs(60);
/// How often the rate limiter forgets addresses that have not uploaded lately.
const RATE_FORGET_EVERY: Duration = Duration::from_secs(60);

/// Measures the bytes stored for the cap every couple of seconds (every minute for the metric
/// alone when there is no cap), and lets the rate limiter forget idle addresses every minute,
/// until the returned token is cancelled.
pub fn spawn_upkeep(
    storage: web::Data<Storage>,
    cap: StorageCap,
    rate: UploadRate,
    metrics: Metrics,
) -> CancellationToken {
    let token = CancellationToken::new();
    let stop = token.clone();
    actix_web::rt::spawn(async move {
        let mut since_forget = Duration::ZERO;
        // Without a cap, the first measurement for the metric comes a minute after the start.
        let mut since_metric = Duration::ZERO;
        loop {
            let measured = if cap.limit().is_some() {
                Some(cap.measure(storage.stored_bytes(RECORD_CHARGE)).await)
            } else if since_metric >= METRIC_MEASURE_EVERY {
                since_metric = Duration::ZERO;
                Some(storage.stored_bytes(RECORD_CHARGE).await)
            } else {
                None
            };
            match measured {
                Some(Ok(bytes)) => metrics.set_stored(bytes, cap.limit()),
                Some(Err(err)) => log::warn!(
                    "measuring the bytes stored failed, keeping the last figure: {err:#}"
                ),
                None => {}
            }
            since_metric += CAP_MEASURE_EVERY;
            since_forget += CAP_MEASURE_EVERY;
            if since_forget >= RATE_FORGET_EVERY {
                rate.forget_idle();
                since_forget = Duration::ZERO;
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = actix_web::rt::time::sleep(CAP_MEASURE_EVERY) => {}
            }
        }
    });
    token
}
