//! How much one cleanup run may do, whatever the database: the policy, apart from the
//! dialect that carries it out.

use std::time::Duration;

/// How much one cleanup run may do: the policy, whatever the database.
#[derive(Debug, Clone, Copy)]
pub struct SweepPolicy {
    /// Rows deleted per statement, so no single transaction holds locks for long.
    pub batch_size: i64,
    /// A run stops starting new batches after this long; the rest waits for the next tick.
    pub time_budget: Duration,
    /// A table at least this many heap blocks long whose expired share is at least
    /// `WALK_SHARE` (the `walk` module) is swept block range by block range instead of
    /// through the index (where the database can).
    pub walk_min_blocks: i64,
    /// Before each batch but the first, rest this many times as long as the previous batch
    /// took, so a sweep inside a serving instance leaves the database time for requests.
    /// A run by hand does not rest (0).
    pub rest: f64,
}

impl SweepPolicy {
    /// The policy of the task inside a serving instance, deleting `batch_size` rows a batch.
    pub fn serving(batch_size: i64) -> Self {
        Self {
            batch_size,
            time_budget: Duration::from_secs(30),
            // 8 MiB: below that, walking the index is a matter of milliseconds anyway.
            walk_min_blocks: 1_024,
            rest: 1.0,
        }
    }

    /// The policy of a run by hand (`Maintenance::cleanup_once`): no time budget and no rest, run to the end.
    pub fn to_the_end(batch_size: i64) -> Self {
        Self {
            time_budget: Duration::MAX,
            rest: 0.0,
            ..Self::serving(batch_size)
        }
    }
}

impl Default for SweepPolicy {
    fn default() -> Self {
        Self::serving(5_000)
    }
}
