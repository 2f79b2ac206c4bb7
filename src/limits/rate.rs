//! Uploads per client address and minute (UPLOADS_PER_MINUTE), with `governor`'s keyed GCRA
//! limiter: a client may upload that many at once, then one every 60/N seconds.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// The per-address upload limiter. Cheap to clone; `None` inside means unlimited.
#[derive(Clone)]
pub struct UploadRate(Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>);

impl UploadRate {
    /// `per_minute` uploads per address and minute; 0: unlimited.
    pub fn per_minute(per_minute: u32) -> Self {
        Self(
            NonZeroU32::new(per_minute).map(|n| Arc::new(RateLimiter::keyed(Quota::per_minute(n)))),
        )
    }

    /// Counts one upload from `client`; `Err(wait)` when it must wait that long first.
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        let Some(limiter) = &self.0 else {
            return Ok(());
        };
        limiter
            .check_key(&super::client_key(client))
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Forgets addresses whose limit has fully recovered, so the table holds only recent
    /// uploaders (call it now and then).
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.0 {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_the_limit_passes_then_the_next_must_wait() {
        let rate = UploadRate::per_minute(3);
        let client: IpAddr = "192.0.2.7".parse().expect("ip");
        for _ in 0..3 {
            assert_eq!(rate.check(client), Ok(()));
        }
        let wait = rate.check(client).expect_err("the fourth waits");
        assert!(
            wait > Duration::from_secs(15) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert_eq!(
            rate.check("192.0.2.8".parse().expect("ip")),
            Ok(()),
            "others are not"
        );
    }

    #[test]
    fn ipv6_addresses_of_one_slash_64_share_a_limit() {
        let rate = UploadRate::per_minute(1);
        assert_eq!(rate.check("2001:db8::1".parse().expect("ip")), Ok(()));
        assert!(rate.check("2001:db8::ffff:2".parse().expect("ip")).is_err());
        assert_eq!(rate.check("2001:db8:0:1::1".parse().expect("ip")), Ok(()));
    }

    #[test]
    fn a_dual_stack_listener_keeps_ipv4_clients_apart() {
        let rate = UploadRate::per_minute(1);
        assert_eq!(rate.check("::ffff:192.0.2.7".parse().expect("ip")), Ok(()));
        assert!(
            rate.check("192.0.2.7".parse().expect("ip")).is_err(),
            "the same client, seen over IPv4"
        );
        assert_eq!(rate.check("::ffff:192.0.2.8".parse().expect("ip")), Ok(()));
        assert_eq!(rate.check("::1".parse().expect("ip")), Ok(()));
    }

    #[test]
    fn zero_means_unlimited() {
        let rate = UploadRate::per_minute(0);
        let client: IpAddr = "192.0.2.7".parse().expect("ip");
        assert!((0..1_000).all(|_| rate.check(client).is_ok()));
    }
}
