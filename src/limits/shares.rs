//! Open connections per client address (`MAX_CONNECTIONS_PER_CLIENT`): one address cannot take
//! every connection the instance accepts, so one client's idle or hostile connections leave
//! room for everyone else's. Counted when a connection is accepted, by the TCP peer (IPv6 by
//! /64, like the upload rate); trusted proxies, which carry many clients, are not counted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::{client_key, TrustedProxies};

/// The open connections of each client address, across the instance's workers.
#[derive(Clone)]
pub struct ClientShares {
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
    share: u32,
    trusted: TrustedProxies,
}

/// One connection's place in its client's share, given back when dropped.
pub struct Claim {
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
    client: Option<IpAddr>,
}

impl ClientShares {
    /// At most `share` open connections per client address, none counted for `trusted`.
    pub fn new(share: u32, trusted: TrustedProxies) -> Self {
        Self {
            open: Arc::default(),
            share,
            trusted,
        }
    }

    /// A place for a connection from `peer`, or `None` when its client has its share open.
    pub fn claim(&self, peer: IpAddr) -> Option<Claim> {
        let peer = peer.to_canonical();
        if self.trusted.trusts(peer) {
            return Some(Claim {
                open: Arc::clone(&self.open),
                client: None,
            });
        }
        let client = client_key(peer);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(client).or_default();
        if *count >= self.share {
            return None;
        }
        *count += 1;
        Some(Claim {
            open: Arc::clone(&self.open),
            client: Some(client),
        })
    }

    /// Client addresses with connections open (for tests and the log).
    pub fn clients(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let Some(client) = self.client else { return };
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&client) {
            *count -= 1;
            if *count == 0 {
                open.remove(&client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_gets_its_share_and_gives_it_back() {
        let shares = ClientShares::new(2, TrustedProxies::parse("10.0.0.1").expect("cidr"));
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let first = shares.claim(a).expect("first");
        let _second = shares.claim(a).expect("second");
        assert!(shares.claim(a).is_none(), "a third from one address");
        // The same address over a dual-stack socket is the same client.
        assert!(shares
            .claim("::ffff:192.0.2.1".parse().expect("ip"))
            .is_none());
        // Another client is not affected; a /64 is one client.
        assert!(shares.claim("192.0.2.2".parse().expect("ip")).is_some());
        let _v6 = shares
            .claim("2001:db8::1".parse().expect("ip"))
            .expect("v6");
        let _v6b = shares
            .claim("2001:db8::2".parse().expect("ip"))
            .expect("v6");
        assert!(shares.claim("2001:db8::3".parse().expect("ip")).is_none());
        // A trusted proxy is never counted.
        let proxy: IpAddr = "10.0.0.1".parse().expect("ip");
        let _held: Vec<Claim> = (0..10)
            .map(|_| shares.claim(proxy).expect("proxy"))
            .collect();
        drop(first);
        assert!(shares.claim(a).is_some(), "a place came back");
    }
}
