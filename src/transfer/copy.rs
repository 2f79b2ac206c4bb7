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
    loop {
        let page = from.page(cursor.as_deref(), batch, clock.now()).await?;
        report.read += page.records.len() as u64;
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
