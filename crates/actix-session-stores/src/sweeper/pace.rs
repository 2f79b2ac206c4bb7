//! How fast a sweep goes: it rests between batches as long as the previous one took (so a
//! sweep inside a serving instance leaves the database half its time), and where the dialect
//! asks for it (SQLite) sizes its batches by the time they hold the one write lock rather than
//! by rows.

use std::time::{Duration, Instant};

use super::dialect::Sizing;

/// Runs batches back to back, resting between them as the policy's `rest` says.
pub(crate) struct Pace {
    rest: f64,
    pub(crate) previous: Option<Duration>,
}

impl Pace {
    pub(crate) fn new(rest: f64) -> Self {
        Self {
            rest,
            previous: None,
        }
    }

    /// Rests after the previous batch if one ran (holding no connection), then runs and times
    /// `batch`.
    pub(crate) async fn batch<T>(&mut self, batch: impl std::future::Future<Output = T>) -> T {
        if let Some(previous) = self.previous.filter(|_| self.rest > 0.0) {
            actix_web::rt::time::sleep(previous.mul_f64(self.rest)).await;
        }
        let started = Instant::now();
        let out = batch.await;
        self.previous = Some(started.elapsed());
        out
    }
}

/// Sized by time: a batch should hold the write lock about this long at most; the rows per
/// batch halve after a slower one and double (up to the batch size) after a much faster one.
const BATCH_TIME: Duration = Duration::from_millis(50);
/// Sized by time: the first batch of a run deletes at most this many rows.
const FIRST_TIMED_BATCH: i64 = 32;
/// Pages given back to the file system per reclaim step (4 MiB of 4 KiB pages).
pub(crate) const RECLAIM_PAGES: i64 = 1_024;

/// How many rows the next batch deletes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchSize {
    pub(crate) rows: i64,
    most: i64,
    timed: bool,
}

impl BatchSize {
    pub(crate) fn new(batch_size: i64, sizing: Sizing) -> Self {
        let timed = sizing == Sizing::ByTime;
        let rows = if timed {
            batch_size.min(FIRST_TIMED_BATCH)
        } else {
            batch_size
        };
        Self {
            rows,
            most: batch_size,
            timed,
        }
    }

    /// Resizes after a batch that took `took`.
    pub(crate) fn after(&mut self, took: Option<Duration>) {
        let Some(took) = took.filter(|_| self.timed) else {
            return;
        };
        if took > BATCH_TIME {
            self.rows = (self.rows / 2).max(1);
        } else if took < BATCH_TIME / 4 {
            self.rows = (self.rows * 2).min(self.most);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn a_paced_batch_waits_as_long_as_the_previous_one_took() {
        let mut pace = Pace::new(1.0);
        let started = Instant::now();
        for _ in 0..2 {
            // An async block: a Sleep's deadline would start counting when it is made.
            pace.batch(async { actix_web::rt::time::sleep(Duration::from_millis(30)).await })
                .await;
        }
        // 30 ms, a 30 ms rest, 30 ms: sleeps never end early, so this holds on any machine.
        assert!(started.elapsed() >= Duration::from_millis(90));
    }
}
