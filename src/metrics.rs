//! Prometheus metrics, served at `GET /metrics` in the text exposition format.
//!
//! Each application owns its registry (tests run several apps in one process). The store records
//! one latency sample per operation; the sweeper records its runs and samples the live-session
//! gauge, so nothing is counted per request beyond that one histogram sample.

use std::sync::Arc;
use std::time::Duration;

use prometheus::core::Collector;
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
    cleanup: CleanupMetrics,
    sweeper: SweeperGauges,
    store: StoreMetrics,
    traffic: TrafficMetrics,
}

/// What the cleanup task has done, run by run.
struct CleanupMetrics {
    live_sessions: IntGauge,
    runs: IntCounter,
    deleted: IntCounter,
    skipped: IntCounter,
    errors: IntCounter,
    duration: Histogram,
}

/// What the cleanup task says about itself and the backlog, sampled at every tick.
struct SweeperGauges {
    expired: IntGauge,
    oldest_expired_age: Gauge,
    last_success: Gauge,
    lock_held: IntGauge,
    interval: Gauge,
}

/// The session store's calls and what they met.
struct StoreMetrics {
    latency: HistogramVec,
    errors: IntCounterVec,
    superseded_key_uses: IntCounter,
    corrupt_records: IntCounter,
}

/// Visitors' traffic: responses, refusals, and what their files take.
struct TrafficMetrics {
    refusals: IntCounterVec,
    responses: IntCounterVec,
    stored_bytes: IntGauge,
    stored_bytes_limit: IntGauge,
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
        let inner = Inner {
            registry,
            cleanup: CleanupMetrics::new(),
            sweeper: SweeperGauges::new(),
            store: StoreMetrics::new(),
            traffic: TrafficMetrics::new(),
        };
        let collectors = [
            inner.cleanup.collectors(),
            inner.sweeper.collectors(),
            inner.store.collectors(),
            inner.traffic.collectors(),
        ];
        for metric in collectors.into_iter().flatten() {
            inner
                .registry
                .register(metric)
                .expect("each metric registers once");
        }
        Self(Arc::new(inner))
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
        self.0.traffic.stored_bytes.set(gauge(measured));
        self.0
            .traffic
            .stored_bytes_limit
            .set(limit.map_or(0, gauge));
    }

    /// An upload refused for `reason` (one of [`REFUSAL_REASONS`]).
    pub fn refused(&self, reason: &str) {
        self.0.traffic.refusals.with_label_values(&[reason]).inc();
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
        self.0.traffic.responses.with_label_values(&[class]).inc();
    }

    pub fn observe_store(&self, operation: &str, took: Duration, ok: bool) {
        self.0
            .store
            .latency
            .with_label_values(&[operation])
            .observe(took.as_secs_f64());
        if !ok {
            self.0.store.errors.with_label_values(&[operation]).inc();
        }
    }

    pub fn observe_cleanup(&self, deleted: usize, took: Duration) {
        self.0.cleanup.runs.inc();
        self.0.sweeper.lock_held.set(1);
        self.0.sweeper.last_success.set(unix_now());
        self.0.cleanup.deleted.inc_by(deleted as u64);
        self.0.cleanup.duration.observe(took.as_secs_f64());
    }

    pub fn cleanup_skipped(&self) {
        self.0.cleanup.skipped.inc();
        self.0.sweeper.lock_held.set(0);
    }

    pub fn cleanup_failed(&self) {
        self.0.cleanup.errors.inc();
    }

    pub fn set_live_sessions(&self, live: i64) {
        self.0.cleanup.live_sessions.set(live);
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

type Collectors = Vec<Box<dyn Collector>>;

fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).expect("a valid counter")
}

fn int_gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::new(name, help).expect("a valid gauge")
}

fn gauge(name: &str, help: &str) -> Gauge {
    Gauge::new(name, help).expect("a valid gauge")
}

/// A counter with one label, each of `values` exported from the start at 0 (so a dashboard
/// sees them).
fn counter_vec(name: &str, help: &str, label: &str, values: &[&str]) -> IntCounterVec {
    let counters = IntCounterVec::new(Opts::new(name, help), &[label]).expect("a valid counter");
    for value in values {
        counters.with_label_values(&[value]);
    }
    counters
}

impl CleanupMetrics {
    fn new() -> Self {
        Self {
            live_sessions: int_gauge(
                "sessions_live",
                "Sessions whose expiry has not passed, as counted by the cleanup task after its \
                 last run (every CLEANUP_INTERVAL_SECS; 0 before the first): uploads since are \
                 not in it yet.",
            ),
            runs: counter("cleanup_runs_total", "Cleanup runs that completed."),
            deleted: counter(
                "cleanup_deleted_rows_total",
                "Expired session rows deleted by cleanup.",
            ),
            skipped: counter(
                "cleanup_skipped_total",
                "Cleanup ticks skipped because another instance held the sweeper lock.",
            ),
            errors: counter(
                "cleanup_errors_total",
                "Cleanup runs that failed (the task logs the cause and carries on).",
            ),
            duration: Histogram::with_opts(
                HistogramOpts::new("cleanup_duration_seconds", "Time one cleanup run took.")
                    .buckets(vec![0.001, 0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0]),
            )
            .expect("a valid histogram"),
        }
    }

    fn collectors(&self) -> Collectors {
        vec![
            Box::new(self.live_sessions.clone()),
            Box::new(self.runs.clone()),
            Box::new(self.deleted.clone()),
            Box::new(self.skipped.clone()),
            Box::new(self.errors.clone()),
            Box::new(self.duration.clone()),
        ]
    }
}

impl SweeperGauges {
    fn new() -> Self {
        Self {
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
        }
    }

    fn collectors(&self) -> Collectors {
        vec![
            Box::new(self.expired.clone()),
            Box::new(self.oldest_expired_age.clone()),
            Box::new(self.last_success.clone()),
            Box::new(self.lock_held.clone()),
            Box::new(self.interval.clone()),
        ]
    }
}

impl StoreMetrics {
    fn new() -> Self {
        Self {
            latency: HistogramVec::new(
                HistogramOpts::new(
                    "store_operation_duration_seconds",
                    "Latency of session store operations, including the pool checkout.",
                )
                .buckets(vec![
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5,
                ]),
                &["operation"],
            )
            .expect("a valid histogram"),
            errors: counter_vec(
                "store_errors_total",
                "Session store operations that failed.",
                "operation",
                &STORE_OPERATIONS,
            ),
            superseded_key_uses: counter(
                "superseded_key_uses_total",
                "Session keys used after their grace period, once an upload had replaced them: \
                 a replayed or stolen cookie's signal.",
            ),
            corrupt_records: counter(
                "corrupt_records_total",
                "Session records that did not read back (a value that no longer parses, in this \
                 storage or the previous one): each was treated as no session.",
            ),
        }
    }

    fn collectors(&self) -> Collectors {
        vec![
            Box::new(self.latency.clone()),
            Box::new(self.errors.clone()),
            Box::new(self.superseded_key_uses.clone()),
            Box::new(self.corrupt_records.clone()),
        ]
    }
}

impl TrafficMetrics {
    fn new() -> Self {
        Self {
            refusals: counter_vec(
                "refusals_total",
                "Uploads refused, by reason (the form page's 4xx or 503), and file pages refused \
                 for want of a turn (views_busy, 503).",
                "reason",
                &REFUSAL_REASONS,
            ),
            responses: counter_vec(
                "http_responses_total",
                "Responses sent, by status class.",
                "class",
                &RESPONSE_CLASSES,
            ),
            stored_bytes: int_gauge(
                "stored_bytes",
                "What the storage holds, as the storage cap counts it (SQL: the live files' bytes \
                 plus 2 KiB a record; Redis: used_memory), measured every 2 s with a cap, every \
                 60 s without (0 until the first measurement).",
            ),
            stored_bytes_limit: int_gauge(
                "stored_bytes_limit",
                "MAX_STORED_BYTES: the storage cap (0: none).",
            ),
        }
    }

    fn collectors(&self) -> Collectors {
        vec![
            Box::new(self.refusals.clone()),
            Box::new(self.responses.clone()),
            Box::new(self.stored_bytes.clone()),
            Box::new(self.stored_bytes_limit.clone()),
        ]
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
        self.0.store.superseded_key_uses.inc();
    }

    fn corrupt_record(&self) {
        self.0.store.corrupt_records.inc();
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
