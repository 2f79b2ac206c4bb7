//! The table walk: how a sweep of a big PostgreSQL backlog deletes in heap-block order, range
//! by range, instead of through the `expires_at` index. Pure arithmetic on the planner's
//! estimates; the statements are the dialect's, the loop is `run`'s.

use super::dialect::TableEstimate;
use super::policy::SweepPolicy;

/// The planner-estimated share of expired rows from which a sequential walk of the table beats
/// the `expires_at` index. Measured on PostgreSQL 15: walking costs about 0.13 µs per row
/// passed plus 0.4 µs per row deleted, the index about 1 µs per row deleted (docs/benchmarks.md).
pub const WALK_SHARE: f64 = 0.25;

/// How a PostgreSQL run walks a big backlog: heap blocks `0..blocks`, in ranges of `step`
/// blocks to begin with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableWalk {
    pub blocks: i64,
    pub step: i64,
}

impl TableWalk {
    /// A walk when the table is long enough and the planner expects at least [`WALK_SHARE`] of
    /// it expired (what PostgreSQL itself would do for one big DELETE: a sequential scan), with
    /// steps holding about `batch_size` rows on average.
    pub fn choose(table: &TableEstimate, policy: &SweepPolicy) -> Option<Self> {
        if table.blocks < policy.walk_min_blocks
            || table.rows < 1.0
            || table.expired < table.rows * WALK_SHARE
        {
            return None;
        }
        let rows_per_block = table.rows / table.blocks.max(1) as f64;
        let step = (policy.batch_size as f64 / rows_per_block.max(1.0)).floor() as i64;
        Some(Self {
            blocks: table.blocks,
            step: step.max(1),
        })
    }

    /// The length of the range after one of `step` blocks that deleted `deleted` rows: scaled
    /// so the next deletes about `batch_size` (the estimate behind the first step may be off,
    /// and expired rows are not spread evenly), at most halving or doubling at once, and never
    /// longer than the first step, so a dense stretch after a sparse one cannot overfill a batch.
    pub fn next_step(&self, step: i64, deleted: usize, batch_size: i64) -> i64 {
        let scaled = match deleted {
            0 => step * 2,
            _ => (step as f64 * batch_size as f64 / deleted as f64).floor() as i64,
        };
        scaled.clamp((step / 2).max(1), step * 2).min(self.step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: f64, expired: f64, blocks: i64) -> TableEstimate {
        TableEstimate {
            rows,
            expired,
            blocks,
        }
    }

    #[test]
    fn a_long_table_mostly_expired_is_walked_in_steps_of_about_a_batch() {
        let walk = TableWalk::choose(
            &table(1_010_000.0, 1_000_000.0, 10_383),
            &SweepPolicy::default(),
        );
        // 97 rows per block: 51 blocks hold about 5,000 rows.
        assert_eq!(
            walk,
            Some(TableWalk {
                blocks: 10_383,
                step: 51
            })
        );
    }

    #[test]
    fn walk_steps_shrink_when_ranges_overfill_and_recover_up_to_the_first() {
        let walk = TableWalk {
            blocks: 10_000,
            step: 65,
        };
        // The estimate was off (a table never analyzed): the next range is shorter.
        assert_eq!(walk.next_step(65, 6_300, 5_000), 51);
        // Right now: the step stays.
        assert_eq!(walk.next_step(51, 4_950, 5_000), 51);
        // A dense stretch: shorter, at most halving, never empty.
        assert_eq!(walk.next_step(51, 50_000, 5_000), 25);
        assert_eq!(walk.next_step(1, 50_000, 5_000), 1);
        // Few or no expired rows: longer again, at most doubling, never past the first step.
        assert_eq!(walk.next_step(25, 1_000, 5_000), 50);
        assert_eq!(walk.next_step(50, 0, 5_000), 65);
    }

    #[test]
    fn the_index_is_kept_for_a_small_share_or_a_short_table() {
        let policy = SweepPolicy::default();
        assert_eq!(TableWalk::choose(&table(1e6, 0.2e6, 10_000), &policy), None);
        assert_eq!(
            TableWalk::choose(&table(90_000.0, 90_000.0, 1_000), &policy),
            None
        );
        assert_eq!(TableWalk::choose(&table(0.0, 0.0, 5_000), &policy), None);
    }

    #[test]
    fn a_step_is_never_empty_even_when_a_block_holds_more_than_a_batch() {
        let policy = SweepPolicy {
            batch_size: 10,
            ..SweepPolicy::default()
        };
        let walk = TableWalk::choose(&table(200_000.0, 100_000.0, 2_000), &policy);
        assert_eq!(walk.map(|w| w.step), Some(1));
    }
}
