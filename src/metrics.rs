//! Prometheus metrics, served at `GET /metrics` in the text exposition format.
//!
//! Each application owns its registry (tests run several apps in one process). The store records
//! one latency sample per operation; the sweeper records its runs and samples the live-session
//! gauge, so nothing is counted per request beyond that one histogram sample.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// The `operation` label values of the store metrics.
pub const STORE_OPERATIONS: [&str; 5] = ["load", "save", "update", "update_ttl", "delete"];

/// Every metric textdrop exports. Cheap to clone (an `Arc`).
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    live_sessions: IntGauge,
    cleanup_runs: IntCounter,
    cleanup_deleted: IntCounter,
    cleanup_skipped: IntCounter,
    cleanup_errors: IntCounter,
    cleanup_duration: Histogram,
    store_latency: HistogramVec,
    store_errors: IntCounterVec,
    superseded_key_uses: IntCounter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("textdrop".into()), None).expect("a valid metric prefix");
        let live_sessions = IntGauge::new(
            "sessions_live",
            "Sessions whose expiry has not passed, sampled by the cleanup task after each run.",
        )
        .expect("valid gauge");
        let cleanup_runs = IntCounter::new("cleanup_runs_total", "Cleanup runs that completed.")
            .expect("valid counter");
        let cleanup_deleted = IntCounter::new(
            "cleanup_deleted_rows_total",
            "Expired session rows deleted by cleanup.",
        )
        .expect("valid counter");
        let cleanup_skipped = IntCounter::new(
            "cleanup_skipped_total",
            "Cleanup ticks skipped because another instance held the sweeper lock.",
        )
        .expect("valid counter");
        let cleanup_errors = IntCounter::new(
            "cleanup_errors_total",
            "Cleanup runs that failed (the task logs the cause and carries on).",
        )
        .expect("valid counter");
        let cleanup_duration = Histogram::with_opts(
            HistogramOpts::new("cleanup_duration_seconds", "Time one cleanup run took.")
                .buckets(vec![0.001, 0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0]),
        )
        .expect("valid histogram");
        let store_latency = HistogramVec::new(
            HistogramOpts::new(
                "store_operation_duration_seconds",
                "Latency of session store operations, including the pool checkout.",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5,
            ]),
            &["operation"],
        )
        .expect("valid histogram");
        let store_errors = IntCounterVec::new(
            Opts::new(
                "store_errors_total",
                "Session store operations that failed.",
            ),
            &["operation"],
        )
        .expect("valid counter");

        let superseded_key_uses = IntCounter::new(
            "superseded_key_uses_total",
            "Session keys used after their grace period, once an upload had replaced them: a \
             replayed or stolen cookie's signal.",
        )
        .expect("valid counter");

        // Export every operation's error count from the start, at 0, so a dashboard sees them.
        for operation in STORE_OPERATIONS {
            store_errors.with_label_values(&[operation]);
        }
        for metric in [
            Box::new(live_sessions.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(cleanup_runs.clone()),
            Box::new(cleanup_deleted.clone()),
            Box::new(cleanup_skipped.clone()),
            Box::new(cleanup_errors.clone()),
            Box::new(cleanup_duration.clone()),
            Box::new(store_latency.clone()),
            Box::new(store_errors.clone()),
            Box::new(superseded_key_uses.clone()),
        ] {
            registry
                .register(metric)
                .expect("each metric registers once");
        }
        Self(Arc::new(Inner {
            registry,
            live_sessions,
            cleanup_runs,
            cleanup_deleted,
            cleanup_skipped,
            cleanup_errors,
            cleanup_duration,
            store_latency,
            store_errors,
            superseded_key_uses,
        }))
    }

    pub fn observe_store(&self, operation: &str, took: Duration, ok: bool) {
        self.0
            .store_latency
            .with_label_values(&[operation])
            .observe(took.as_secs_f64());
        if !ok {
            self.0.store_errors.with_label_values(&[operation]).inc();
        }
    }

    pub fn observe_cleanup(&self, deleted: usize, took: Duration) {
        self.0.cleanup_runs.inc();
        self.0.cleanup_deleted.inc_by(deleted as u64);
        self.0.cleanup_duration.observe(took.as_secs_f64());
    }

    /// The counter of superseded keys used after their grace period, for the stores.
    pub fn superseded_key_uses(&self) -> IntCounter {
        self.0.superseded_key_uses.clone()
    }

    pub fn cleanup_skipped(&self) {
        self.0.cleanup_skipped.inc();
    }

    pub fn cleanup_failed(&self) {
        self.0.cleanup_errors.inc();
    }

    pub fn set_live_sessions(&self, live: i64) {
        self.0.live_sessions.set(live);
    }

    /// Everything, in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if let Err(err) = TextEncoder::new().encode(&self.0.registry.gather(), &mut buffer) {
            log::error!("encoding metrics failed: {err}");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}
