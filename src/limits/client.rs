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

    /// Whether `address` (IPv4 seen as `::ffff:a.b.c.d` included) is a trusted proxy.
    pub(crate) fn trusts(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|net| net.contains(&address))
    }
}

/// The key a client address is counted under: IPv4 addresses one by one (also when a
/// dual-stack listener shows them as `::ffff:a.b.c.d`); IPv6 by /64, the block one subscriber
/// usually holds (one client must not get 2^64 keys).
pub fn client_key(client: IpAddr) -> IpAddr {
    match client.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(prefix.into())
        }
        v4 => v4,
    }
}

/// Which header a trusted proxy names the client in (FORWARDED_HEADER): one, never both, so
/// a client's own header cannot win over the proxy's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, …`
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1, …`
    Forwarded,
}

impl ForwardedHeader {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(Self::XForwardedFor),
            "forwarded" => Ok(Self::Forwarded),
            _ => Err(format!(
                "expected x-forwarded-for or forwarded, got `{raw}`"
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
        }
    }
}

/// The address `req` is counted under: the TCP peer, or, from a trusted proxy, the rightmost
/// hop of `header` that no trusted proxy added. A hop that does not parse (`unknown`,
/// `_hidden`, garbage) ends the walk at the last trusted address: nothing left of it is
/// believed.
pub fn client_address(
    req: &ServiceRequest,
    trusted: &TrustedProxies,
    header: ForwardedHeader,
) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip().to_canonical();
    if !trusted.trusts(peer) {
        return Some(peer);
    }
    let hops: Vec<Option<IpAddr>> = req
        .headers()
        .get_all(header.name())
        .flat_map(|value| match value.to_str() {
            Ok(value) => value.split(',').map(|hop| parse_hop(hop, header)).collect(),
            Err(_) => vec![None],
        })
        .collect();
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        let Some(address) = hop else {
            break;
        };
        client = address;
        if !trusted.trusts(address) {
            break;
        }
    }
    Some(client)
}

/// One hop of `header`: a bare address, `a.b.c.d:port`, `[v6]` or `[v6]:port`, quoted or not
/// (and, in `Forwarded`, the `for=` parameter of its element).
fn parse_hop(hop: &str, header: ForwardedHeader) -> Option<IpAddr> {
    let value = match header {
        ForwardedHeader::XForwardedFor => hop.trim(),
        ForwardedHeader::Forwarded => hop.split(';').find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            name.eq_ignore_ascii_case("for").then_some(value)
        })?,
    };
    let value = value.trim().trim_matches('"');
    if let Some(v6) = value.strip_prefix('[') {
        let (address, rest) = v6.split_once(']')?;
        if !(rest.is_empty() || rest.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return address
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|a| IpAddr::V6(a).to_canonical());
    }
    if let Ok(address) = value.parse::<IpAddr>() {
        return Some(address.to_canonical());
    }
    let (v4, port) = value.rsplit_once(':')?;
    if !is_port(port) {
        return None;
    }
    v4.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

fn is_port(port: &str) -> bool {
    !port.is_empty() && port.parse::<u16>().is_ok()
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
        let header = if headers.iter().any(|(name, _)| *name == "forwarded") {
            ForwardedHeader::Forwarded
        } else {
            ForwardedHeader::XForwardedFor
        };
        client_address(
            &req.to_srv_request(),
            &TrustedProxies::parse(trusted).expect("cidrs"),
            header,
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
    fn ports_brackets_and_quotes_are_read_and_an_unparsable_hop_ends_the_walk() {
        let trusted = "127.0.0.1";
        for (value, client) in [
            ("198.51.100.7, 203.0.113.5:4444", "203.0.113.5"),
            ("198.51.100.7, [2001:db8::5]:443", "2001:db8::5"),
            ("198.51.100.7, \"[2001:db8::6]\"", "2001:db8::6"),
            // A hop that does not parse: the walk ends at the proxy, nothing left of it counts.
            ("198.51.100.7, unknown", "127.0.0.1"),
            ("198.51.100.7, 203.0.113.5:99999", "127.0.0.1"),
            ("::ffff:203.0.113.9", "203.0.113.9"),
        ] {
            assert_eq!(
                from("127.0.0.1", &[("x-forwarded-for", value)], trusted),
                client,
                "{value}"
            );
        }
        let hidden = [("forwarded", "for=198.51.100.7, for=_hidden")];
        assert_eq!(from("127.0.0.1", &hidden, trusted), "127.0.0.1");
        let ported = [(
            "forwarded",
            "for=198.51.100.7, for=\"203.0.113.5:80\";proto=http",
        )];
        assert_eq!(from("127.0.0.1", &ported, trusted), "203.0.113.5");
    }

    #[test]
    fn only_the_named_header_counts() {
        let req = TestRequest::default()
            .peer_addr("127.0.0.1:4000".parse().expect("addr"))
            .insert_header(("x-forwarded-for", "198.51.100.1"))
            .insert_header(("forwarded", "for=203.0.113.5"))
            .to_srv_request();
        let trusted = TrustedProxies::parse("127.0.0.1").expect("cidr");
        let by = |header| {
            client_address(&req, &trusted, header)
                .expect("address")
                .to_string()
        };
        assert_eq!(by(ForwardedHeader::XForwardedFor), "198.51.100.1");
        assert_eq!(by(ForwardedHeader::Forwarded), "203.0.113.5");
        assert_eq!(
            ForwardedHeader::parse("Forwarded"),
            Ok(ForwardedHeader::Forwarded)
        );
        assert!(ForwardedHeader::parse("both").is_err());
    }

    #[test]
    fn a_dual_stack_peer_is_matched_against_ipv4_proxies() {
        let headers = [("x-forwarded-for", "203.0.113.9")];
        assert_eq!(
            from("[::ffff:10.0.0.2]", &headers, "10.0.0.0/8"),
            "203.0.113.9"
        );
        assert_eq!(
            from("[::ffff:198.51.100.1]", &headers, "10.0.0.0/8"),
            "198.51.100.1"
        );
    }

    #[test]
    fn bad_cidrs_are_named() {
        let err = TrustedProxies::parse("10.0.0.0/8, proxy.local").expect_err("a name");
        assert!(err.contains("`proxy.local`"), "{err}");
    }
}
