//! [`copy_sessions`]: every live session of one storage into another, in batches.
//!
//! Each batch is read from the source in key order (SQL) or `SCAN` order (Redis), written to
//! the destination where it is not already there (see the `transfer` module's doc), and then
//! checked: the destination must hold every session of the batch that had not expired by the
//! write. Nothing is kept between runs: a copy run again reads everything again, finds what an
//! earlier run wrote already there, and writes the rest, so an interrupted copy is finished by
//! running it again. A `stop` the caller sets (on Ctrl-C, say) ends it after the batch in flight.

use std::time::{Duration, Instant};

use chrono::NaiveDateTime;

use crate::backends;
use crate::clock::Clock;
use crate::config::{Config, DatabaseUrl};
use crate::error::{Error, ErrorKind, Result};
use crate::session::records::StoreResult;
use crate::transfer::{Exported, Skipped, Transfer, Written};

/// Sessions read and written per batch, unless the caller says otherwise.
pub const DEFAULT_BATCH: u16 = 500;

/// What a batch aims to hold in memory: each page is cut to the sessions whose files (and a
/// record's charge each) fit it, their sizes read before the files are (so 500 files of 1 MiB
/// make batches of about 32, and one file bigger than the aim a batch of its own).
pub(crate) const BATCH_BYTES: u64 = 32 << 20;

/// How many skipped sessions the report names; the rest are counted.
pub const NAMED_SKIPS: usize = 20;

/// What a copy did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// Sessions read from the source: live ones, and the ones that did not read back.
    pub read: u64,
    /// What writing them did: copied, already there, expired before the write.
    pub written: Written,
    /// Expired rows the source still held (its sweeper had not deleted them): not read.
    pub expired_in_source: u64,
    /// Sessions that could not be read from the source or written into the destination (a
    /// value that does not parse, a value the destination refuses): not copied.
    pub skipped: u64,
    /// The first [`NAMED_SKIPS`] of them, with why.
    pub named: Vec<Skipped>,
    /// Of the sessions written or found already there, how many the destination holds.
    pub verified: u64,
    /// Of those, how many it does not: a copy that loses any fails.
    pub missing: u64,
    /// Batches read.
    pub batches: u64,
    /// Stopped by the caller before the end.
    pub interrupted: bool,
    /// How long the copy took.
    pub elapsed: Duration,
}

impl CopyReport {
    /// Sessions not copied because they had expired.
    pub fn skipped_expired(&self) -> u64 {
        self.expired_in_source + self.written.expired
    }

    fn skip(&mut self, skipped: Skipped) {
        log::warn!(
            "copy: session {} skipped: {}",
            skipped.id.chars().take(16).collect::<String>(),
            skipped.why
        );
        self.skipped += 1;
        if self.named.len() < NAMED_SKIPS {
            self.named.push(skipped);
        }
    }

    /// The report as lines of text, for a command to print.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![
            format!("read:            {}", self.read),
            format!("copied:          {}", self.written.copied),
            format!("already there:   {}", self.written.already),
            format!("skipped expired: {}", self.skipped_expired()),
            format!("skipped bad:     {}", self.skipped),
            format!(
                "verified:        {} in the destination, {} missing",
                self.verified, self.missing
            ),
            format!(
                "took:            {:.1} s ({} batch(es))",
                self.elapsed.as_secs_f64(),
                self.batches
            ),
        ];
        for skipped in &self.named {
            lines.push(format!("  not copied: {} ({})", skipped.id, skipped.why));
        }
        if self.skipped > self.named.len() as u64 {
            lines.push(format!(
                "  and {} more (each named in the log)",
                self.skipped - self.named.len() as u64
            ));
        }
        lines
    }
}

/// Writes `records` into `to`; if the batch fails for any reason but an unreachable
/// destination, each record is written alone, and the ones it refuses come back skipped.
async fn write_batch(
    to: &dyn Transfer,
    records: Vec<Exported>,
    now: NaiveDateTime,
) -> StoreResult<(Written, Vec<Skipped>)> {
    let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    let batch = records.clone();
    match to.write(batch, now).await {
        Ok(written) => return Ok((written, Vec::new())),
        Err(err) if err.is_unavailable() => return Err(err),
        Err(err) => log::info!("copy: a batch was refused ({err}); writing it one by one"),
    }
    let (mut written, mut skipped) = (Written::default(), Vec::new());
    for (record, id) in records.into_iter().zip(ids) {
        match to.write(vec![record], now).await {
            Ok(one) => written += one,
            Err(err) if err.is_unavailable() => return Err(err),
            Err(err) => skipped.push(Skipped::new(&id, err)),
        }
    }
    Ok((written, skipped))
}

/// Copies every live session of `from` into `to`, `batch` at a time (fewer, to fit
/// [`BATCH_BYTES`]), until the end or until `stop()` says so between batches; `progress`
/// hears of each batch (sessions read so far).
pub(crate) async fn copy_all(
    from: &dyn Transfer,
    to: &dyn Transfer,
    batch: usize,
    clock: &Clock,
    stop: &dyn Fn() -> bool,
    progress: &mut dyn FnMut(u64),
) -> StoreResult<CopyReport> {
    let started = Instant::now();
    let mut report = CopyReport {
        expired_in_source: from.census(clock.now()).await?.expired,
        ..CopyReport::default()
    };
    let mut cursor: Option<String> = None;
    loop {
        let page = from
            .page(cursor.as_deref(), batch, BATCH_BYTES, clock.now())
            .await?;
        report.read += (page.records.len() + page.skipped.len()) as u64;
        for skipped in page.skipped {
            report.skip(skipped);
        }
        report.batches += 1;
        let now = clock.now();
        let mut expected = live_ids(&page.records, now);
        let (written, refused) = write_batch(to, page.records, now).await?;
        report.written += written;
        expected.retain(|id| !refused.iter().any(|s| &s.id == id));
        for skipped in refused {
            report.skip(skipped);
        }
        let present = to.present(&expected).await?;
        report.verified += present;
        report.missing += (expected.len() as u64).saturating_sub(present);
        progress(report.read);
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
        if stop() {
            report.interrupted = true;
            break;
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The ids of the sessions in `records` still live at `now`.
fn live_ids(records: &[Exported], now: NaiveDateTime) -> Vec<String> {
    records
        .iter()
        .filter(|r| r.expires_at > now)
        .map(|r| r.id.clone())
        .collect()
}

/// Copies every live session of the storage `from` into the storage `to`, `batch` at a time,
/// with no one logged out: each session keeps its key, its expiry and its rotation links.
/// Connects to both (the source as it is, refusing one with migrations pending; the
/// destination migrated first; the rest of `config` for both). `progress` hears, after each
/// batch, how many sessions were read so far and about how many there are; `stop` is asked
/// between batches, and the copy ends after the batch in flight once it says so. Running it
/// again finishes an interrupted copy.
pub async fn copy_sessions(
    config: &Config,
    from: DatabaseUrl,
    to: DatabaseUrl,
    batch: usize,
    mut progress: impl FnMut(u64, u64),
    stop: impl Fn() -> bool,
) -> Result<CopyReport> {
    if from == to {
        return Err(Error::new(
            ErrorKind::Config,
            anyhow::anyhow!(
                "the source and the destination are the same storage ({})",
                from.location()
            ),
        ));
    }
    let mut source = config.clone();
    source.database.url = from;
    source.database.previous_url = None;
    source.database.run_migrations = false;
    let mut destination = config.clone();
    destination.database.url = to;
    destination.database.previous_url = None;
    destination.database.run_migrations = true;
    // Read first, without changing anything (a SQLite file that does not exist is not made).
    if let Some(plan) = crate::migrations::pending(&source).await? {
        if plan.nothing_applied() {
            return Err(Error::new(
                ErrorKind::Config,
                anyhow::anyhow!(
                    "the source, {}, holds no sessions: no migration was ever applied there \
                     (a wrong URL, or an empty database)",
                    plan.database
                ),
            ));
        }
        if !plan.pending.is_empty() {
            return Err(Error::new(
                ErrorKind::MigrationsPending,
                anyhow::anyhow!(
                    "the source, {}, was last migrated by an older version ({} pending): \
                     migrate it first",
                    plan.database,
                    plan.names()
                ),
            ));
        }
    }
    let connect = |config: Config| async move {
        backends::connect(&config)
            .await
            .map_err(|err| Error::classify(ErrorKind::Connect, err))
    };
    let source = connect(source).await?;
    let destination = connect(destination).await?;
    let (Some(from), Some(to)) = (source.transfer(), destination.transfer()) else {
        return Err(Error::new(
            ErrorKind::Config,
            anyhow::anyhow!("these storages cannot copy sessions"),
        ));
    };
    let failed = |err: crate::session::records::StoreError| {
        let kind = if err.is_unavailable() {
            ErrorKind::Unavailable
        } else {
            ErrorKind::Failed
        };
        Error::new(kind, err.into_cause())
    };
    let clock = Clock::system();
    let census = from.census(clock.now()).await.map_err(failed)?;
    log::info!("copy: about {} live session(s) to read", census.live);
    copy_all(
        from.as_ref(),
        to.as_ref(),
        batch,
        &clock,
        &stop,
        &mut |read| progress(read, census.live),
    )
    .await
    .map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_names_the_first_skips_and_counts_the_rest() {
        let mut report = CopyReport::default();
        for n in 0..NAMED_SKIPS + 3 {
            report.skip(Skipped::new(
                &format!("{n:064}"),
                "its `created` field is missing",
            ));
        }
        let lines = report.lines();
        assert!(lines.contains(&format!("skipped bad:     {}", NAMED_SKIPS + 3)));
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with("  not copied: "))
                .count(),
            NAMED_SKIPS
        );
        assert_eq!(
            lines.last().map(String::as_str),
            Some("  and 3 more (each named in the log)")
        );
    }
}
