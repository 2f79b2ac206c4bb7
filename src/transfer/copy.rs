//! `textdrop sessions copy`: every live session of one storage into another, in batches.
//!
//! Each batch is read from the source in key order (SQL) or `SCAN` order (Redis), written to
//! the destination where it is not already there (see the `transfer` module's doc), and then
//! checked: the destination must hold every session of the batch that had not expired by the
//! write. Nothing is kept between runs: a copy run again reads everything again, finds what an
//! earlier run wrote already there, and writes the rest, so an interrupted copy is finished by
//! running it again. Ctrl-C (SIGINT) ends it after the batch in flight.

use std::time::{Duration, Instant};

use chrono::NaiveDateTime;

use super::progress::Progress;
use super::{Transfer, Written};
use crate::backends;
use crate::clock::Clock;
use crate::config::{DatabaseUrl, Settings};
use crate::session::records::StoreResult;

/// Sessions read and written per batch unless `--batch-size` says otherwise.
pub const DEFAULT_BATCH: u16 = 500;

/// What a batch aims to hold in memory: after each batch the next is sized from the bytes per
/// session it held, so big files make smaller batches (500 files of 1 MiB would be 500 MiB).
pub const BATCH_BYTES: u64 = 32 << 20;

/// The first batch, before any session's size is known.
const FIRST_BATCH: usize = 32;

/// What a copy did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CopyReport {
    /// Live sessions read from the source.
    pub read: u64,
    /// What writing them did: copied, already there, expired before the write.
    pub written: Written,
    /// Expired rows the source still held (its sweeper had not deleted them): not read.
    pub expired_in_source: u64,
    /// Of the sessions written or found already there, how many the destination holds.
    pub verified: u64,
    /// Of those, how many it does not: a copy that loses any fails.
    pub missing: u64,
    pub batches: u64,
    /// Stopped by Ctrl-C before the end.
    pub interrupted: bool,
    pub elapsed: Duration,
}

impl CopyReport {
    /// Sessions not copied because they had expired.
    pub fn skipped_expired(&self) -> u64 {
        self.expired_in_source + self.written.expired
    }

    /// The report's lines, as `textdrop sessions copy` prints them.
    pub fn lines(&self) -> Vec<String> {
        vec![
            format!("read:            {}", self.read),
            format!("copied:          {}", self.written.copied),
            format!("already there:   {}", self.written.already),
            format!("skipped expired: {}", self.skipped_expired()),
            format!(
                "verified:        {} in the destination, {} missing",
                self.verified, self.missing
            ),
            format!(
                "took:            {:.1} s ({} batch(es))",
                self.elapsed.as_secs_f64(),
                self.batches
            ),
        ]
    }
}

/// Copies every live session of `from` into `to`, `batch` at a time, until the end or until
/// `stop()` says so between batches; `progress` hears of each batch.
pub(crate) async fn copy_all(
    from: &dyn Transfer,
    to: &dyn Transfer,
    batch: usize,
    clock: &Clock,
    stop: &dyn Fn() -> bool,
    progress: &mut Progress,
) -> StoreResult<CopyReport> {
    let started = Instant::now();
    let mut report = CopyReport {
        expired_in_source: from.census(clock.now()).await?.expired,
        ..CopyReport::default()
    };
    let mut cursor: Option<String> = None;
    let mut limit = batch.min(FIRST_BATCH);
    loop {
        let page = from.page(cursor.as_deref(), limit, clock.now()).await?;
        report.read += page.records.len() as u64;
        limit = next_limit(&page.records, batch);
        report.batches += 1;
        let now = clock.now();
        let expected = live_ids(&page.records, now);
        report.written += to.write(page.records, now).await?;
        let present = to.present(&expected).await?;
        report.verified += present;
        report.missing += (expected.len() as u64).saturating_sub(present);
        progress.advance(report.read);
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
        if stop() {
            report.interrupted = true;
            break;
        }
    }
    progress.finish();
    report.elapsed = started.elapsed();
    Ok(report)
}

/// How many sessions the next batch reads: as many as fit [`BATCH_BYTES`] at the bytes per
/// session of `records`, at most `batch`.
fn next_limit(records: &[super::Exported], batch: usize) -> usize {
    let bytes: u64 = records
        .iter()
        .map(|r| (r.state.len() + r.file.as_ref().map_or(0, String::len)) as u64)
        .sum();
    let per_session = (bytes / records.len().max(1) as u64).max(1);
    usize::try_from(BATCH_BYTES / per_session)
        .unwrap_or(batch)
        .clamp(1, batch)
}

/// The ids of the sessions in `records` still live at `now`.
fn live_ids(records: &[super::Exported], now: NaiveDateTime) -> Vec<String> {
    records
        .iter()
        .filter(|r| r.expires_at > now)
        .map(|r| r.id.clone())
        .collect()
}

/// `textdrop sessions copy`: connects to both storages (the source as it is, refusing one with
/// migrations pending; the destination migrated first) and copies, stopping after the batch in
/// flight on Ctrl-C.
pub async fn run(
    settings: &Settings,
    from: DatabaseUrl,
    to: DatabaseUrl,
    batch: usize,
) -> anyhow::Result<CopyReport> {
    anyhow::ensure!(
        from != to,
        "--from and --to name the same storage ({})",
        from.location()
    );
    let mut source = settings.clone();
    source.database.url = from;
    source.database.migrate_on_startup = false;
    let mut destination = settings.clone();
    destination.database.url = to;
    destination.database.migrate_on_startup = true;
    // Read first, without changing anything (a SQLite file that does not exist is not made).
    if let Some(plan) = backends::migration_plan(&source).await? {
        anyhow::ensure!(
            !plan.nothing_applied(),
            "the source, {}, holds no textdrop sessions: no migration was ever applied there \
             (a wrong URL, or an empty database)",
            plan.database
        );
        anyhow::ensure!(
            plan.pending.is_empty(),
            "the source, {}, was last migrated by an older textdrop ({} pending): run \
             `textdrop migrate` with DATABASE_URL set to it first",
            plan.database,
            plan.names()
        );
    }
    let source = backends::connect(&source).await?;
    let destination = backends::connect(&destination).await?;
    let (Some(from), Some(to)) = (source.transfer(), destination.transfer()) else {
        anyhow::bail!("these storages cannot copy sessions");
    };

    let stopping = std::rc::Rc::new(std::cell::Cell::new(false));
    let listener = {
        let stopping = std::rc::Rc::clone(&stopping);
        actix_web::rt::spawn(async move {
            if actix_web::rt::signal::ctrl_c().await.is_ok() {
                log::warn!("copy: Ctrl-C: stopping after the batch in flight");
                stopping.set(true);
            }
        })
    };
    let clock = Clock::system();
    let census = from.census(clock.now()).await?;
    log::info!("copy: about {} live session(s) to read", census.live);
    let mut progress = Progress::new(census.live);
    let copied = copy_all(
        from.as_ref(),
        to.as_ref(),
        batch,
        &clock,
        &|| stopping.get(),
        &mut progress,
    )
    .await;
    listener.abort();
    Ok(copied?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::Exported;

    fn sessions(count: usize, file_bytes: usize) -> Vec<Exported> {
        let at = chrono::DateTime::from_timestamp(0, 0)
            .expect("epoch")
            .naive_utc();
        (0..count)
            .map(|n| Exported {
                id: n.to_string(),
                state: String::new(),
                created_at: at,
                expires_at: at,
                file: Some("x".repeat(file_bytes)),
                superseded_at: None,
                successor: None,
                predecessor: None,
            })
            .collect()
    }

    #[test]
    fn batches_of_big_files_are_cut_to_the_memory_aimed_at() {
        assert_eq!(
            next_limit(&sessions(32, 400), 500),
            500,
            "small files: as asked"
        );
        assert_eq!(
            next_limit(&sessions(32, 1 << 20), 500),
            32,
            "1 MiB files: 32 MiB"
        );
        assert_eq!(
            next_limit(&sessions(2, 64 << 20), 500),
            1,
            "never fewer than one"
        );
        assert_eq!(next_limit(&[], 500), 500, "an empty batch says nothing");
    }
}
