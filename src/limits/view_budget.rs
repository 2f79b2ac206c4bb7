//! Bytes of files one client address has viewed ([`ViewBudget`], `VIEW_BYTES_PER_MINUTE`): a
//! file page costs a read of the whole file from the storage, so a client that asks for a big
//! file's pages as fast as it can costs the server in proportion to the file, however cheap
//! each page is to render. Each view is charged the file's size once it is answered; a client
//! past its budget (a quarter of a minute's worth may be spent at once) waits, holding nothing
//! (no turn, no storage connection, no CPU), until it is within it again; if that is further
//! than the queue time, it waits the queue time and is refused (429 with `Retry-After`). A
//! visitor reading small files, or paging through a big one at a person's pace, never waits.
//!
//! Virtual time, as GCRA: each address has the instant its spending is paid off; a charge of
//! `n` bytes moves it `n / rate` later.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Past this many addresses, the paid-off ones are dropped from the table.
const PRUNE_ABOVE: usize = 10_000;

/// The per-address budget of file bytes viewed. Cheap to clone; unlimited when `None`.
#[derive(Clone)]
pub struct ViewBudget(Option<Arc<Budget>>);

struct Budget {
    /// Bytes per second.
    rate: f64,
    /// How far ahead of now an address may be paid off and still view.
    burst: Duration,
    paid_off: Mutex<HashMap<IpAddr, Instant>>,
}

/// What a file page put in its response's extensions: the bytes of the file it read, which the
/// view is charged.
#[derive(Debug, Clone, Copy)]
pub struct FileShown(pub u64);

/// A view refused: the client may try again after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget {
    pub retry_after: u64,
}

impl ViewBudget {
    /// `per_minute` bytes of files per address and minute, a quarter of it at once; 0:
    /// unlimited.
    pub fn per_minute(per_minute: u64) -> Self {
        Self((per_minute > 0).then(|| {
            Arc::new(Budget {
                rate: per_minute as f64 / 60.0,
                burst: Duration::from_secs(15),
                paid_off: Mutex::default(),
            })
        }))
    }

    /// Waits until `client` is within its budget, at most `queue`; past that, waits `queue`
    /// and refuses.
    pub async fn wait_within(&self, client: IpAddr, queue: Duration) -> Result<(), OverBudget> {
        let Some(budget) = &self.0 else {
            return Ok(());
        };
        let client = super::client_key(client);
        let paid_off = budget
            .paid_off
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&client)
            .copied();
        let now = Instant::now();
        let Some(allowed_at) = paid_off.and_then(|at| at.checked_sub(budget.burst)) else {
            return Ok(());
        };
        if allowed_at <= now {
            return Ok(());
        }
        let wait = allowed_at - now;
        if wait <= queue {
            tokio::time::sleep(wait).await;
            return Ok(());
        }
        tokio::time::sleep(queue).await;
        Err(OverBudget {
            retry_after: (wait - queue).as_secs() + 1,
        })
    }

    /// Charges `client` for `bytes` of file shown.
    pub fn charge(&self, client: IpAddr, bytes: u64) {
        let Some(budget) = &self.0 else { return };
        if bytes == 0 {
            return;
        }
        let now = Instant::now();
        let cost = Duration::from_secs_f64(bytes as f64 / budget.rate);
        let mut paid_off = budget.paid_off.lock().unwrap_or_else(|e| e.into_inner());
        if paid_off.len() > PRUNE_ABOVE {
            paid_off.retain(|_, at| *at > now);
        }
        let at = paid_off.entry(super::client_key(client)).or_insert(now);
        *at = (*at).max(now) + cost;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_past_its_budget_waits_then_is_refused_and_others_do_not_wait() {
        // 60 KiB a minute: 1 KiB/s, 15 KiB at once.
        let budget = ViewBudget::per_minute(60 * 1024);
        let queue = Duration::from_secs(2);
        budget.charge(ip(1), 15 * 1024);
        let started = Instant::now();
        assert_eq!(
            budget.wait_within(ip(1), queue).await,
            Ok(()),
            "within the burst"
        );
        assert_eq!(started.elapsed(), Duration::ZERO);
        // One more KiB: a second to wait, within the queue time.
        budget.charge(ip(1), 1024);
        assert_eq!(budget.wait_within(ip(1), queue).await, Ok(()));
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        // Ten more: ten seconds ahead, past the queue: waits the queue, then refused.
        budget.charge(ip(1), 10 * 1024);
        let asked = Instant::now();
        let refused = budget.wait_within(ip(1), queue).await;
        assert_eq!(asked.elapsed(), queue);
        assert!(
            matches!(refused, Err(OverBudget { retry_after }) if (8..=9).contains(&retry_after))
        );
        // Another address is not affected.
        let other = Instant::now();
        assert_eq!(budget.wait_within(ip(2), queue).await, Ok(()));
        assert_eq!(other.elapsed(), Duration::ZERO);
        // Unlimited: never waits.
        let free = ViewBudget::per_minute(0);
        free.charge(ip(1), u64::MAX / 2);
        assert_eq!(free.wait_within(ip(1), queue).await, Ok(()));
    }
}
