//! How fast a sweep goes: it rests between batches as long as the previous one took (so a
//! sweep inside a serving instance leaves the database half its time), and on SQLite sizes its
//! batches by the time they hold the one write lock rather than by rows.

use std::time::{Duration, Instant};

use crate::session::sweep::SweepLimits;

/// Runs batches back to back, resting between them as [`SweepLimits::rest`] says.
pub(crate) struct Pace {
    rest: f64,
    pub(crate) previous: Option<Duration>,
}

impl Pace {
    pub(crate) fn new(limits: &SweepLimits) -> Self {
        Self {
            rest: limits.rest,
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

/// SQLite: a batch should hold the write lock about this long at most; the rows per batch
/// halve after a slower one and double (up to the batch size) after a much faster one.
const SQLITE_BATCH_TIME: Duration = Duration::from_millis(50);
/// SQLite: the first batch of a run deletes at most this many rows.
const SQLITE_FIRST_BATCH: i64 = 32;
/// SQLite: pages given back to the file system per step (4 MiB of 4 KiB pages).
pub(crate) const SQLITE_RECLAIM_PAGES: i64 = 1_024;

/// How many rows the next batch deletes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchSize {
    pub(crate) rows: i64,
    most: i64,
    timed: bool,
}

impl BatchSize {
    pub(crate) fn new(limits: &SweepLimits) -> Self {
        let rows = if limits.sqlite {
            limits.batch_size.min(SQLITE_FIRST_BATCH)
        } else {
            limits.batch_size
        };
        Self {
            rows,
            most: limits.batch_size,
            timed: limits.sqlite,
        }
    }

    /// Resizes after a batch that took `took`.
    pub(crate) fn after(&mut self, took: Option<Duration>) {
        let Some(took) = took.filter(|_| self.timed) else {
            return;
        };
        if took > SQLITE_BATCH_TIME {
            self.rows = (self.rows / 2).max(1);
        } else if took < SQLITE_BATCH_TIME / 4 {
            self.rows = (self.rows * 2).min(self.most);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn a_paced_batch_waits_as_long_as_the_previous_one_took() {
        let limits = SweepLimits {
            rest: 1.0,
            ..SweepLimits::default()
        };
        let mut pace = Pace::new(&limits);
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
