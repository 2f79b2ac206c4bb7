//! Prometheus metrics, served at `GET /metrics` in the text exposition format.
//!
//! Each application owns its registry (tests run several apps in one process). The store records
//! one latency sample per operation; the sweeper records its runs and samples the live-session
//! gauge, so nothing is counted per request beyond that one histogram sample.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    Opts, Registry, TextEncoder,
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
    corrupt_records: IntCounter,
    sweeper: SweeperGauges,
    refusals: IntCounterVec,
    responses: IntCounterVec,
    stored_bytes: IntGauge,
    stored_bytes_limit: IntGauge,
}

/// What the cleanup task says about itself and the backlog, sampled at every tick.
struct SweeperGauges {
    expired: IntGauge,
    oldest_expired_age: Gauge,
    last_success: Gauge,
    lock_held: IntGauge,
    interval: Gauge,
}

/// The `reason` label values of `textdrop_refusals_total`, one per refusal an upload can get,
/// and `views_busy` / `views_too_many` for a file page that found no turn within its queue time
/// / whose address had viewed more than its budget.
pub const REFUSAL_REASONS: [&str; 15] = [
    "cross_site",
    "too_large",
    "not_text",
    "no_file",
    "not_a_file",
    "several_files",
    "unknown_part",
    "not_multipart",
    "malformed",
    "timed_out",
    "too_many",
    "busy",
    "storage_full",
    "views_busy",
    "views_too_many",
];

/// The `class` label values of `textdrop_http_responses_total`.
const RESPONSE_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

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
            "Sessions whose expiry has not passed, as counted by the cleanup task after its \
             last run (every CLEANUP_INTERVAL_SECS; 0 before the first): uploads since are not \
             in it yet.",
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

        let corrupt_records = IntCounter::new(
            "corrupt_records_total",
            "Session records that did not read back (a value that no longer parses, in this \
             storage or the previous one): each was treated as no session.",
        )
        .expect("valid counter");

        let gauge = |name: &str, help: &str| Gauge::new(name, help).expect("valid gauge");
        let int_gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("valid gauge");
        let sweeper = SweeperGauges {
            expired: int_gauge(
                "sessions_expired",
                "Rows whose expiry has passed and that the cleanup task has not deleted yet \
                 (counted through the expires_at index at every cleanup tick).",
            ),
            oldest_expired_age: gauge(
                "sessions_oldest_expired_age_seconds",
                "How long ago the oldest row not yet deleted expired; 0 when none has.",
            ),
            last_success: gauge(
                "cleanup_last_success_timestamp_seconds",
                "When a cleanup run of this instance last completed (Unix time; the process's \
                 start until one has).",
            ),
            lock_held: int_gauge(
                "cleanup_lock_held",
                "1 when this instance held the sweeper's lock at its last tick (it swept), 0 \
                 when another instance held it.",
            ),
            interval: gauge(
                "cleanup_interval_seconds",
                "CLEANUP_INTERVAL_SECS: how often the cleanup task runs (0: it does not).",
            ),
        };
        let refusals = IntCounterVec::new(
            Opts::new(
                "refusals_total",
                "Uploads refused, by reason (the form page's 4xx or 503), and file pages refused \
                 for want of a turn (views_busy, 503).",
            ),
            &["reason"],
        )
        .expect("valid counter");
        let responses = IntCounterVec::new(
            Opts::new("http_responses_total", "Responses sent, by status class."),
            &["class"],
        )
        .expect("valid counter");
        let stored_bytes = int_gauge(
            "stored_bytes",
            "What the storage holds, as the storage cap counts it (SQL: the live files' bytes \
             plus 2 KiB a record; Redis: used_memory), measured every 2 s with a cap, every \
             60 s without (0 until the first measurement).",
        );
        let stored_bytes_limit = int_gauge(
            "stored_bytes_limit",
            "MAX_STORED_BYTES: the storage cap (0: none).",
        );
        for reason in REFUSAL_REASONS {
            refusals.with_label_values(&[reason]);
        }
        for class in RESPONSE_CLASSES {
            responses.with_label_values(&[class]);
        }

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
            Box::new(corrupt_records.clone()),
            Box::new(sweeper.expired.clone()),
            Box::new(sweeper.oldest_expired_age.clone()),
            Box::new(sweeper.last_success.clone()),
            Box::new(sweeper.lock_held.clone()),
            Box::new(sweeper.interval.clone()),
            Box::new(refusals.clone()),
            Box::new(responses.clone()),
            Box::new(stored_bytes.clone()),
            Box::new(stored_bytes_limit.clone()),
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
            corrupt_records,
            sweeper,
            refusals,
            responses,
            stored_bytes,
            stored_bytes_limit,
        }))
    }

    /// The cleanup task starts: its interval, and "the last success" set to now, so that a
    /// sweeper that never succeeds is noticed three intervals after the start.
    pub fn cleanup_started(&self, interval: Duration) {
        self.0.sweeper.interval.set(interval.as_secs_f64());
        self.0.sweeper.last_success.set(unix_now());
    }

    /// A tick's sample of the backlog: rows expired and not yet deleted, and the oldest's age.
    pub fn set_backlog(&self, expired: i64, oldest_expired_age: Duration) {
        self.0.sweeper.expired.set(expired);
        self.0
            .sweeper
            .oldest_expired_age
            .set(oldest_expired_age.as_secs_f64());
    }

    /// The bytes stored as last measured, and the cap (`None`: no cap).
    pub fn set_stored(&self, measured: u64, limit: Option<u64>) {
        let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        self.0.stored_bytes.set(gauge(measured));
        self.0.stored_bytes_limit.set(limit.map_or(0, gauge));
    }

    /// An upload refused for `reason` (one of [`REFUSAL_REASONS`]).
    pub fn refused(&self, reason: &str) {
        self.0.refusals.with_label_values(&[reason]).inc();
    }

    /// A response with `status` was sent.
    pub fn responded(&self, status: u16) {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.0.responses.with_label_values(&[class]).inc();
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
        self.0.sweeper.lock_held.set(1);
        self.0.sweeper.last_success.set(unix_now());
        self.0.cleanup_deleted.inc_by(deleted as u64);
        self.0.cleanup_duration.observe(took.as_secs_f64());
    }

    pub fn cleanup_skipped(&self) {
        self.0.cleanup_skipped.inc();
        self.0.sweeper.lock_held.set(0);
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

/// Now, as Unix seconds.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

/// The store's and the sweeper's reports, as textdrop's metrics.
impl actix_session_stores::Events for Metrics {
    fn store_call(&self, call: actix_session_stores::StoreCall, took: Duration, ok: bool) {
        self.observe_store(call.as_str(), took, ok);
    }

    fn superseded_key_used(&self) {
        self.0.superseded_key_uses.inc();
    }

    fn corrupt_record(&self) {
        self.0.corrupt_records.inc();
    }

    fn cleanup_started(&self, period: Duration) {
        Metrics::cleanup_started(self, period);
    }

    fn cleanup_ran(&self, deleted: usize, took: Duration) {
        self.observe_cleanup(deleted, took);
    }

    fn cleanup_skipped(&self) {
        Metrics::cleanup_skipped(self);
    }

    fn cleanup_failed(&self) {
        Metrics::cleanup_failed(self);
    }

    fn sessions_counted(&self, live: i64, expired: i64, oldest_expired_age: Duration) {
        self.set_live_sessions(live);
        self.set_backlog(expired, oldest_expired_age);
    }
}
