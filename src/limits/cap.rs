//! The total storage cap (MAX_STORED_BYTES): what all sessions' files may take together.
//!
//! The bytes stored are measured every few seconds from the storage itself (a task calls
//! [`StorageCap::measure`]; there is no `SUM()` per upload). Between two measurements this
//! instance adds what it wrote since the last one began and what its uploads in flight have
//! reserved, so one instance never passes the cap by more than nothing: an upload that would
//! pass it is refused before it is written. Space freed (forget, expiry, cleanup, another
//! instance's writes) shows at the next measurement.

use std::future::Future;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct Ledger {
    /// Bytes stored at the last measurement.
    measured: u64,
    /// Bytes this instance wrote since the last measurement began.
    written: u64,
    /// Bytes reserved by uploads not yet written.
    in_flight: u64,
}

impl Ledger {
    fn used(&self) -> u64 {
        self.measured + self.written + self.in_flight
    }
}

/// The cap and this instance's ledger. Cheap to clone.
#[derive(Clone, Debug)]
pub struct StorageCap {
    limit: Option<u64>,
    ledger: Arc<Mutex<Ledger>>,
}

impl StorageCap {
    /// A cap of `limit` bytes; `None`: unlimited (nothing is reserved or measured then).
    pub fn new(limit: Option<u64>) -> Self {
        Self {
            limit,
            ledger: Arc::default(),
        }
    }

    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        // The ledger is a few integers updated in one place each: a poisoned lock still
        // holds consistent numbers.
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes counted as stored or about to be.
    pub fn used(&self) -> u64 {
        self.ledger().used()
    }

    /// Reserves room for an upload of `bytes`, or `None` when it would pass the cap.
    pub fn try_reserve(&self, bytes: u64) -> Option<Reservation> {
        if let Some(limit) = self.limit {
            let mut ledger = self.ledger();
            if ledger.used() + bytes > limit {
                return None;
            }
            ledger.in_flight += bytes;
        }
        Some(Reservation {
            cap: self.clone(),
            bytes,
            settled: false,
        })
    }

    /// Measures the bytes stored with `measure` and makes that the new base. Writes that finish
    /// while it runs stay counted (perhaps twice, until the next measurement): the cap errs on
    /// the side of refusing.
    pub async fn measure<F, E>(&self, measure: F) -> Result<u64, E>
    where
        F: Future<Output = Result<u64, E>>,
    {
        let written_before = self.ledger().written;
        let measured = measure.await?;
        let mut ledger = self.ledger();
        ledger.measured = measured;
        ledger.written -= written_before.min(ledger.written);
        Ok(measured)
    }
}

/// Room reserved for one upload. [`Reservation::stored`] once written; dropped unstored (the
/// upload failed), the room is given back.
#[derive(Debug)]
pub struct Reservation {
    cap: StorageCap,
    bytes: u64,
    settled: bool,
}

impl Reservation {
    /// The file was written and takes `bytes` as stored (at most what was reserved): they
    /// count as stored until the next measurement sees them, and the rest of the reservation
    /// is free again.
    pub fn stored(mut self, bytes: u64) {
        self.settled = true;
        if self.cap.limit.is_some() {
            let mut ledger = self.cap.ledger();
            ledger.in_flight -= self.bytes.min(ledger.in_flight);
            ledger.written += bytes.min(self.bytes);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled && self.cap.limit.is_some() {
            let mut ledger = self.cap.ledger();
            ledger.in_flight -= self.bytes.min(ledger.in_flight);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_count_until_released_or_measured() {
        let cap = StorageCap::new(Some(100));
        let a = cap.try_reserve(60).expect("room");
        assert!(cap.try_reserve(41).is_none(), "60 + 41 > 100");
        let b = cap.try_reserve(40).expect("exactly full");
        drop(b);
        assert_eq!(cap.used(), 60, "a failed upload gives its room back");
        a.stored(60);
        assert_eq!(cap.used(), 60, "a stored file still counts");
    }

    #[test]
    fn a_file_stored_in_less_than_its_reservation_frees_the_rest() {
        let cap = StorageCap::new(Some(100));
        cap.try_reserve(90).expect("room").stored(15);
        assert_eq!(cap.used(), 15, "compressed: only what it took counts");
        assert!(cap.try_reserve(85).is_some());
        cap.try_reserve(20).expect("room").stored(500);
        assert_eq!(cap.used(), 35, "never more than was reserved");
    }

    #[actix_web::test]
    async fn a_measurement_replaces_what_was_written_before_it() {
        let cap = StorageCap::new(Some(100));
        cap.try_reserve(30).expect("room").stored(30);
        // The storage now holds those 30 bytes and 50 written by another instance.
        let measured = cap.measure(async { Ok::<_, ()>(80) }).await;
        assert_eq!(measured, Ok(80));
        assert_eq!(cap.used(), 80);
        assert!(cap.try_reserve(21).is_none());
        // Forget or expiry freed 70 bytes: the next measurement gives them back.
        cap.measure(async { Ok::<_, ()>(10) })
            .await
            .expect("measure");
        assert!(cap.try_reserve(90).is_some());
    }

    #[test]
    fn no_limit_means_every_upload_fits() {
        let cap = StorageCap::new(None);
        assert!(cap.try_reserve(u64::MAX).is_some());
    }
}
