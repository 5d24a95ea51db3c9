//! Where FiLot may send a request whose URL a client chose (status webhooks): only to global
//! unicast addresses, never into loopback, private, link-local, carrier-grade NAT, benchmark,
//! documentation, multicast or reserved space, in any spelling (IPv4-mapped, IPv4-compatible,
//! NAT64 and 6to4 IPv6 forms carry an IPv4 address that is checked in turn).
//!
//! The same [`is_global`] rule guards both moments: registration (a literal address, or a name
//! that resolves to a forbidden address, is refused) and every delivery, where
//! [`GlobalOnlyResolver`] hands the HTTP client only the addresses that pass, so the address
//! that was checked is the address connected to (no window for DNS rebinding). This module
//! makes no request itself and knows nothing of webhooks' storage.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use reqwest::Url;

/// Why a URL may not be called.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("is not a valid URL")]
    NotUrl,
    #[error("must be http or https")]
    Scheme,
    #[error("must not carry credentials")]
    Credentials,
    #[error("needs a host")]
    NoHost,
    #[error("must be at most {0} characters")]
    TooLong(usize),
    /// The host is, or resolves to, an address FiLot must not call.
    #[error("points at a loopback, private, link-local or otherwise non-public address")]
    Forbidden,
}

/// The longest URL accepted.
pub const MAX_URL_LEN: usize = 2000;

/// True for addresses reachable on the public Internet (the only ones a client may make FiLot
/// call). Embedded IPv4 addresses in IPv6 spellings are judged as IPv4.
pub fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_global_v4(v4),
        IpAddr::V6(v6) => is_global_v6(v6),
    }
}

fn is_global_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let forbidden = a == 0 // "this network", 0.0.0.0/8
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64.0.0/10
        || (a == 169 && b == 254) // link-local (cloud metadata)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18.0.0/15
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224; // multicast 224/4, reserved 240/4, broadcast
    !forbidden
}

fn is_global_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible; :: and ::1 included, both refused).
    if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) {
        return s[5] == 0xffff && is_global_v4(embedded(s[6], s[7]));
    }
    // NAT64 well-known prefix 64:ff9b::/96 carries an IPv4 address; 64:ff9b:1::/48 is local.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_global_v4(embedded(s[6], s[7]));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        return false;
    }
    // 6to4 2002::/16: the next 32 bits are the IPv4 address.
    if s[0] == 0x2002 {
        return is_global_v4(embedded(s[1], s[2]));
    }
    // Only global unicast (2000::/3) is public; inside it, these are special-purpose:
    // Teredo 2001::/32, benchmarking 2001:2::/48, ORCHID 2001:10::/28 and 2001:20::/28,
    // documentation 2001:db8::/32 and 3fff::/20.
    let global_unicast = (s[0] & 0xe000) == 0x2000;
    let special = (s[0] == 0x2001 && s[1] == 0)
        || (s[0] == 0x2001 && s[1] == 2 && s[2] == 0)
        || (s[0] == 0x2001 && (s[1] & 0xffe0) == 0x0020)
        || (s[0] == 0x2001 && (s[1] & 0xfff0) == 0x0010)
        || (s[0] == 0x2001 && s[1] == 0x0db8)
        || (s[0] == 0x3fff && (s[1] & 0xf000) == 0);
    global_unicast && !special
}

/// Host names that always mean this machine or its private network.
fn internal_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host.ends_with(".local")
        || host.ends_with(".internal")
        || host.ends_with(".home.arpa")
}

/// Parses and checks a client-chosen URL without resolving it: scheme, credentials, length,
/// and a literal address (in any spelling the URL parser understands: `2130706433`,
/// `0x7f.1`, `[::ffff:7f00:1]` all become 127.0.0.1) or an internal name.
pub fn check_url(raw: &str, allow_private: bool) -> Result<Url, Refusal> {
    if raw.len() > MAX_URL_LEN {
        return Err(Refusal::TooLong(MAX_URL_LEN));
    }
    let url = Url::parse(raw.trim()).map_err(|_| Refusal::NotUrl)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refusal::Scheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refusal::Credentials);
    }
    if allow_private {
        return url.host().map(|_| url.clone()).ok_or(Refusal::NoHost);
    }
    match url.host().ok_or(Refusal::NoHost)? {
        url::Host::Ipv4(v4) if !is_global_v4(v4) => Err(Refusal::Forbidden),
        url::Host::Ipv6(v6) if !is_global_v6(v6) => Err(Refusal::Forbidden),
        url::Host::Domain(name) if internal_name(name) => Err(Refusal::Forbidden),
        _ => Ok(url),
    }
}

/// [`check_url`], then for a host name its current addresses: refused when any of them is
/// not global. A name that does not resolve (yet) within `timeout` passes: every delivery
/// resolves again through [`GlobalOnlyResolver`] and connects only to global addresses.
pub async fn check_url_resolved(
    raw: &str,
    allow_private: bool,
    timeout: Duration,
) -> Result<Url, Refusal> {
    let url = check_url(raw, allow_private)?;
    if allow_private {
        return Ok(url);
    }
    if let Some(url::Host::Domain(name)) = url.host() {
        let port = url.port_or_known_default().unwrap_or(443);
        if let Ok(Ok(addrs)) = tokio::time::timeout(timeout, lookup(name, port)).await
            && addrs.iter().any(|a| !is_global(a.ip()))
        {
            return Err(Refusal::Forbidden);
        }
    }
    Ok(url)
}

/// A DNS resolver for the webhook client that returns only global addresses (all of them
/// when private ones are allowed). A name with none left fails to resolve, so the client
/// never connects anywhere it was not allowed to, whatever the DNS answered a moment ago.
#[derive(Debug, Clone, Copy)]
pub struct GlobalOnlyResolver {
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for GlobalOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        let allow_private = self.allow_private;
        Box::pin(async move {
            if !allow_private && internal_name(&host) {
                return Err(Box::new(ForbiddenTarget) as Box<dyn std::error::Error + Send + Sync>);
            }
            let addrs: Vec<SocketAddr> = lookup(&host, 0)
                .await?
                .into_iter()
                .filter(|a| allow_private || is_global(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(ForbiddenTarget) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The system resolver (or, in test builds, an address a test pinned for the name: DNS that
/// changes its answer between registration and delivery).
async fn lookup(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    #[cfg(feature = "test-hooks")]
    if let Some(ip) = crate::testing::pinned(host) {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    Ok(tokio::net::lookup_host((host, port)).await?.collect())
}

/// A delivery target that resolved to no permitted address.
#[derive(Debug, thiserror::Error)]
#[error("the host resolves to no public address")]
pub struct ForbiddenTarget;

/// Whether a URL's host, when it is a literal address, may be called (the resolver is not
/// consulted for literals, so the client checks them itself before each request).
pub fn literal_allowed(url: &Url, allow_private: bool) -> bool {
    allow_private
        || match url.host() {
            Some(url::Host::Ipv4(v4)) => is_global_v4(v4),
            Some(url::Host::Ipv6(v6)) => is_global_v6(v6),
            Some(url::Host::Domain(_)) => true,
            None => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_every_spelling_of_an_internal_address() {
        for url in [
            "http://127.0.0.1:8080/x",
            "http://localhost/x",
            "http://api.localhost/x",
            "http://10.1.2.3/x",
            "http://172.16.0.1/x",
            "http://192.168.1.1/x",
            "http://169.254.169.254/latest/meta-data",
            "http://[::ffff:169.254.169.254]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::127.0.0.1]/",
            "http://[64:ff9b::10.0.0.1]/",
            "http://[64:ff9b:1::1]/",
            "http://[2002:7f00:1::]/",
            "http://100.100.100.200/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://0.1.2.3/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://127.1/",
            "http://198.18.0.1/",
            "http://192.0.0.1/",
            "http://224.0.0.1/",
            "http://240.0.0.1/",
            "http://255.255.255.255/",
            "http://[::1]/x",
            "http://[::]/x",
            "http://[fd00::1]/x",
            "http://[fe80::1]/x",
            "http://[ff02::1]/x",
            "http://[2001:db8::1]/x",
            "http://[2001::1]/x",
            "http://metadata.google.internal/",
        ] {
            assert_eq!(check_url(url, false), Err(Refusal::Forbidden), "{url}");
            assert!(check_url(url, true).is_ok(), "{url} with private allowed");
        }
    }

    #[test]
    fn public_addresses_and_names_pass() {
        for url in [
            "https://lender.example/hooks",
            "http://93.184.216.34/x",
            "http://[2606:2800:220:1:248:1893:25c8:1946]/",
            "http://[::ffff:93.184.216.34]/",
            "http://[64:ff9b::93.184.216.34]/",
            "http://100.128.0.1/",
            "http://172.32.0.1/",
        ] {
            assert!(check_url(url, false).is_ok(), "{url}");
        }
    }

    #[test]
    fn malformed_urls_are_refused_with_a_reason() {
        assert_eq!(
            check_url("ftp://lender.example/", false),
            Err(Refusal::Scheme)
        );
        assert_eq!(
            check_url("https://u:p@lender.example/", false),
            Err(Refusal::Credentials)
        );
        assert_eq!(check_url("not a url", false), Err(Refusal::NotUrl));
        let long = format!("https://lender.example/{}", "a".repeat(MAX_URL_LEN));
        assert!(matches!(check_url(&long, false), Err(Refusal::TooLong(_))));
    }

    #[tokio::test]
    async fn names_that_resolve_inside_are_refused_and_the_resolver_filters_them() {
        use reqwest::dns::Resolve;
        // `localhost` is refused by name; a literal loopback name via /etc/hosts too.
        assert_eq!(
            check_url_resolved("http://localhost./x", false, Duration::from_secs(2)).await,
            Err(Refusal::Forbidden)
        );
        let strict = GlobalOnlyResolver {
            allow_private: false,
        };
        assert!(strict.resolve("localhost".parse().unwrap()).await.is_err());
        let open = GlobalOnlyResolver {
            allow_private: true,
        };
        let addrs: Vec<_> = open
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
    }
}
