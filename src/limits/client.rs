//! Which address a request comes from: the TCP peer, unless the peer is a proxy listed in
//! TRUSTED_PROXIES; then the address that proxy reports (`X-Forwarded-For`, else `Forwarded`),
//! read from the right past every trusted proxy. Nothing a client sends is trusted otherwise.

use std::net::IpAddr;

use actix_web::dev::ServiceRequest;
use ipnet::IpNet;

/// The proxies whose forwarding headers are believed (TRUSTED_PROXIES, CIDRs).
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses a comma-separated list of CIDRs or single addresses; empty: none.
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                item.parse::<IpNet>()
                    .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!("expected CIDRs such as 10.0.0.0/8 or addresses, comma-separated; `{item}` is neither")
                    })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&address))
    }
}

/// The address `req` is counted under.
pub fn client_address(req: &ServiceRequest, trusted: &TrustedProxies) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    if !trusted.trusts(peer) {
        return Some(peer);
    }
    let headers = req.headers();
    let forwarded_for: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    let hops = if forwarded_for.is_empty() {
        headers
            .get_all("forwarded")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(forwarded_for_element)
            .collect()
    } else {
        forwarded_for
    };
    // The rightmost address no trusted proxy added is the client as far as we can tell.
    Some(
        hops.into_iter()
            .rev()
            .find(|hop| !trusted.trusts(*hop))
            .unwrap_or(peer),
    )
}

/// The address of a `Forwarded` element's `for=` (RFC 7239), quoted IPv6 with brackets and an
/// optional port included.
fn forwarded_for_element(element: &str) -> Option<IpAddr> {
    let value = element
        .split(';')
        .find_map(|pair| {
            pair.trim()
                .strip_prefix("for=")
                .or_else(|| pair.trim().strip_prefix("For="))
        })?
        .trim_matches('"');
    if let Some(v6) = value.strip_prefix('[') {
        return v6.split(']').next()?.parse().ok();
    }
    value
        .split(':')
        .next()?
        .parse()
        .ok()
        .or_else(|| value.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn from(peer: &str, headers: &[(&str, &str)], trusted: &str) -> String {
        let mut req =
            TestRequest::default().peer_addr(format!("{peer}:4000").parse().expect("addr"));
        for (name, value) in headers {
            req = req.insert_header((*name, *value));
        }
        client_address(
            &req.to_srv_request(),
            &TrustedProxies::parse(trusted).expect("cidrs"),
        )
        .expect("an address")
        .to_string()
    }

    #[test]
    fn headers_count_only_from_a_trusted_proxy() {
        let spoofed = [("x-forwarded-for", "203.0.113.9")];
        assert_eq!(from("198.51.100.1", &spoofed, ""), "198.51.100.1");
        assert_eq!(from("10.0.0.2", &spoofed, "10.0.0.0/8"), "203.0.113.9");
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        // The client claims 1.2.3.4; the proxy appended what it saw, 203.0.113.9.
        let headers = [("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.0.0.3")];
        assert_eq!(from("10.0.0.2", &headers, "10.0.0.0/8"), "203.0.113.9");
    }

    #[test]
    fn forwarded_is_read_when_x_forwarded_for_is_absent() {
        let headers = [("forwarded", "for=\"[2001:db8::7]:4711\";proto=https")];
        assert_eq!(from("10.0.0.2", &headers, "10.0.0.2"), "2001:db8::7");
        let headers = [("forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43")];
        assert_eq!(from("10.0.0.2", &headers, "10.0.0.2"), "192.0.2.60");
    }

    #[test]
    fn bad_cidrs_are_named() {
        let err = TrustedProxies::parse("10.0.0.0/8, proxy.local").expect_err("a name");
        assert!(err.contains("`proxy.local`"), "{err}");
    }
}
