//! Which network addresses a webhook may reach. Unless internal addresses are allowed
//! (development), a webhook may not be sent to loopback, private, link-local or otherwise
//! internal addresses: the service's own network is not the merchants' to probe. The rule is
//! applied twice: to an endpoint's URL when it is registered (a literal address or `localhost`,
//! refused at once), and by the sender to every address a host name resolves to (names can
//! change what they resolve to, so only the send can tell). Pure: resolving names is the sender's.

use std::net::IpAddr;

/// Whether an address is one a webhook may not reach when internal addresses are not allowed:
/// loopback, private (RFC 1918, unique local), link-local, unspecified, broadcast, documentation,
/// shared (carrier-grade NAT), benchmarking, IETF protocol (192.0.0.0/24), multicast and reserved
/// ranges; site-local and Teredo IPv6; and IPv6 forms that carry one of these IPv4 addresses
/// (IPv4-mapped, IPv4-compatible, NAT64, 6to4).
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || (a == 198 && (b == 18 || b == 19))
                || a >= 224
        }
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            let first = segments[0];
            // An IPv4 address carried inside an IPv6 one reaches that IPv4 address: NAT64
            // (64:ff9b::/96), 6to4 (2002::/16) and the deprecated IPv4-compatible form (::a.b.c.d).
            let embedded = |high: u16, low: u16| {
                let [a, b] = high.to_be_bytes();
                let [c, d] = low.to_be_bytes();
                is_internal(IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d)))
            };
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0
                || v6.to_ipv4_mapped().is_some_and(|v4| is_internal(IpAddr::V4(v4)))
                || (segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] && embedded(segments[6], segments[7]))
                || (first == 0x2002 && embedded(segments[1], segments[2]))
                || (segments[..6] == [0; 6] && embedded(segments[6], segments[7]))
                // Teredo tunnels reach an address hidden in the rest: none of the merchants' own.
                || (first == 0x2001 && segments[1] == 0)
        }
    }
}

/// The host of `url` when the URL itself names an internal place: an internal address literal
/// (in any form the URL standard reads as one, such as `127.1` or `0x7f000001`), or `localhost`
/// and its subdomains, which always mean this machine (RFC 6761). `None` for a name that only
/// DNS can place, and for anything that is not a URL with a host.
pub fn internal_host(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    match url.host()? {
        url::Host::Ipv4(v4) => is_internal(IpAddr::V4(v4)).then(|| v4.to_string()),
        url::Host::Ipv6(v6) => is_internal(IpAddr::V6(v6)).then(|| format!("[{v6}]")),
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            (name == "localhost" || name.ends_with(".localhost")).then_some(name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "::127.0.0.1",
            "fec0::1",
            "192.0.0.1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "64:ff9b::5db8:d822", "2002:5db8:d822::"] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn a_url_names_an_internal_host_by_literal_address_or_localhost() {
        for (url, host) in [
            ("https://127.0.0.1:4991/x", "127.0.0.1"),
            ("https://127.1/x", "127.0.0.1"),
            ("https://0x7f000001/x", "127.0.0.1"),
            ("https://10.0.0.5/x", "10.0.0.5"),
            ("https://169.254.169.254/latest/meta-data", "169.254.169.254"),
            ("https://[::1]/x", "[::1]"),
            ("https://[::ffff:10.0.0.1]/x", "[::ffff:10.0.0.1]"),
            ("https://localhost/x", "localhost"),
            ("https://LOCALHOST:8443/x", "localhost"),
            ("https://api.localhost/x", "api.localhost"),
        ] {
            assert_eq!(internal_host(url).as_deref(), Some(host), "{url}");
        }
        for public in [
            "https://shop.example/hooks",
            "https://93.184.216.34/x",
            "https://[2606:4700::1111]/x",
            "https://notlocalhost/x",
            "nope",
        ] {
            assert_eq!(internal_host(public), None, "{public}");
        }
    }
}
