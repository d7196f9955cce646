//! [`TargetPolicy`]: where `http` jobs may send requests.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use url::Host;

/// An allow-list of the hosts `http` jobs may send requests to, for a server
/// that takes jobs from less trusted hands (the HTTP API) than its config
/// file.
///
/// Each pattern is one of:
///
/// * a host name, `api.example.com` (any port), or with a port,
///   `api.example.com:8443`; `*.example.com` matches every name under
///   `example.com` (not `example.com` itself). Names match case-insensitively.
/// * an IP address, `10.1.2.3`, `::1`, with a port `10.1.2.3:80` or
///   `[::1]:8080`;
/// * a CIDR block, `10.0.0.0/8`, `fd00::/8` (any port).
///
/// Names are matched by name patterns and addresses by address patterns: a
/// name is not resolved to be matched against a CIDR block, so
/// `http://localhost/` is allowed by `localhost` and not by `127.0.0.0/8`.
/// Addresses are compared after the URL is normalized (`http://2130706433/`
/// is `127.0.0.1`), and every redirect hop is checked too when the policy is
/// given to the task ([`Options::allowed_targets`](crate::Options::allowed_targets)).
///
/// ```
/// use chime_tasks::TargetPolicy;
///
/// let policy: TargetPolicy = "hooks.example.com, *.internal.example.com:8443, 10.0.0.0/8".parse()?;
/// assert!(policy.check_url("https://hooks.example.com/x").is_ok());
/// assert!(policy.check_url("https://a.internal.example.com:8443/").is_ok());
/// assert!(policy.check_url("http://10.2.3.4:9000/").is_ok());
/// assert_eq!(
///     policy.check_url("http://127.0.0.1:6379/").unwrap_err(),
///     "127.0.0.1:6379 is not an allowed target (allowed: hooks.example.com, *.internal.example.com:8443, 10.0.0.0/8)"
/// );
/// # Ok::<(), String>(())
/// ```
///
/// In a config file or JSON it is a list of strings
/// (`allowed_targets = ["hooks.example.com", "10.0.0.0/8"]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct TargetPolicy {
    patterns: Vec<Pattern>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Pattern {
    /// A lower-case name; `wildcard` for `*.name`.
    Name {
        name: String,
        wildcard: bool,
        port: Option<u16>,
    },
    Addr {
        addr: IpAddr,
        port: Option<u16>,
    },
    Cidr {
        net: IpAddr,
        prefix: u8,
    },
}

impl TargetPolicy {
    /// A policy from patterns.
    ///
    /// # Errors
    ///
    /// The first pattern that is not one of the forms above, and why.
    pub fn new<I, S>(patterns: I) -> Result<TargetPolicy, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let patterns = patterns.into_iter().map(|p| Pattern::parse(p.as_ref())).collect::<Result<Vec<_>, _>>()?;
        Ok(TargetPolicy { patterns })
    }

    /// Whether a request to `host` (as a URL holds it) on `port` is allowed.
    pub fn allows(&self, host: &Host<&str>, port: u16) -> bool {
        self.patterns.iter().any(|p| p.matches(host, port))
    }

    /// Checks a URL's host and port (the URL is validated first, as
    /// [`validate_url`](crate::validate_url) does).
    ///
    /// # Errors
    ///
    /// Why the URL is refused: invalid, or its `host:port` is not allowed.
    pub fn check_url(&self, url: &str) -> Result<(), String> {
        let url = crate::http::parse_url(url)?;
        self.check(&url)
    }

    pub(crate) fn check(&self, url: &url::Url) -> Result<(), String> {
        let host = url.host().ok_or_else(|| "the URL has no host".to_owned())?;
        let port = url.port_or_known_default().unwrap_or(0);
        if self.allows(&host, port) {
            return Ok(());
        }
        let shown = match host {
            Host::Ipv6(a) => format!("[{a}]:{port}"),
            h => format!("{h}:{port}"),
        };
        Err(format!("{shown} is not an allowed target (allowed: {self})"))
    }
}

impl Pattern {
    fn parse(text: &str) -> Result<Pattern, String> {
        let p = text.trim();
        let bad = |why: &str| Err(format!("allowed target {text:?}: {why}"));
        if p.is_empty() {
            return bad("empty");
        }
        if p.chars().any(|c| c.is_whitespace() || c.is_control() || c == '/' && p.contains("://")) {
            return bad("give a host, host:port or CIDR, not a URL or text with spaces");
        }
        if let Some((net, prefix)) = p.split_once('/') {
            let Ok(net) = net.parse::<IpAddr>() else { return bad("not an IP network such as 10.0.0.0/8") };
            let max = if net.is_ipv4() { 32 } else { 128 };
            let Some(prefix) = prefix.parse::<u8>().ok().filter(|n| *n <= max) else {
                return bad(&format!("the prefix length must be 0 to {max}"));
            };
            return Ok(Pattern::Cidr { net: mask(net, prefix), prefix });
        }
        if let Ok(addr) = p.parse::<IpAddr>() {
            return Ok(Pattern::Addr { addr, port: None });
        }
        if let Ok(sock) = p.parse::<std::net::SocketAddr>() {
            return Ok(Pattern::Addr { addr: sock.ip(), port: Some(sock.port()) });
        }
        let (name, port) = match p.rsplit_once(':') {
            Some((name, port)) => match port.parse::<u16>() {
                Ok(port) if port > 0 => (name, Some(port)),
                _ => return bad(&format!("bad port {port:?}")),
            },
            None => (p, None),
        };
        let (name, wildcard) = match name.strip_prefix("*.") {
            Some(rest) => (rest, true),
            None => (name, false),
        };
        let valid = !name.is_empty()
            && name.split('.').all(|l| {
                !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !valid {
            return bad("not a host name such as api.example.com or *.example.com");
        }
        Ok(Pattern::Name { name: name.to_ascii_lowercase(), wildcard, port })
    }

    fn matches(&self, host: &Host<&str>, port: u16) -> bool {
        let port_ok = |p: &Option<u16>| p.is_none_or(|p| p == port);
        match (self, host) {
            (Pattern::Name { name, wildcard, port: p }, Host::Domain(h)) => {
                let h = h.trim_end_matches('.').to_ascii_lowercase();
                let name_ok = if *wildcard {
                    h.strip_suffix(name.as_str()).is_some_and(|sub| sub.len() > 1 && sub.ends_with('.'))
                } else {
                    h == *name
                };
                name_ok && port_ok(p)
            }
            (Pattern::Addr { addr, port: p }, Host::Ipv4(a)) => *addr == IpAddr::V4(*a) && port_ok(p),
            (Pattern::Addr { addr, port: p }, Host::Ipv6(a)) => *addr == IpAddr::V6(*a) && port_ok(p),
            (Pattern::Cidr { net, prefix }, Host::Ipv4(a)) => mask(IpAddr::V4(*a), *prefix) == *net,
            (Pattern::Cidr { net, prefix }, Host::Ipv6(a)) => mask(IpAddr::V6(*a), *prefix) == *net,
            _ => false,
        }
    }
}

/// `addr` with all but its first `prefix` bits zeroed.
fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a) & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(bits.into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a) & u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(bits.into())
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Name { name, wildcard, port } => {
                write!(f, "{}{name}", if *wildcard { "*." } else { "" })?;
                port.map_or(Ok(()), |p| write!(f, ":{p}"))
            }
            Pattern::Addr { addr, port: Some(p) } => write!(f, "{}", std::net::SocketAddr::new(*addr, *p)),
            Pattern::Addr { addr, port: None } => write!(f, "{addr}"),
            Pattern::Cidr { net, prefix } => write!(f, "{net}/{prefix}"),
        }
    }
}

/// The patterns, separated by `, `.
impl fmt::Display for TargetPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.patterns.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Patterns separated by commas.
impl FromStr for TargetPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<TargetPolicy, String> {
        TargetPolicy::new(s.split(',').filter(|p| !p.trim().is_empty()))
    }
}

impl TryFrom<Vec<String>> for TargetPolicy {
    type Error = String;

    fn try_from(patterns: Vec<String>) -> Result<TargetPolicy, String> {
        TargetPolicy::new(patterns)
    }
}

impl From<TargetPolicy> for Vec<String> {
    fn from(policy: TargetPolicy) -> Vec<String> {
        policy.patterns.iter().map(ToString::to_string).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_names_addresses_and_networks() {
        let p: TargetPolicy =
            "Example.com, *.svc.example.com:8443, 10.0.0.0/8, 192.168.1.5:80, [::1]:8080, fd00::/8".parse().unwrap();
        let ok = |u: &str| p.check_url(u).is_ok();
        assert!(ok("http://example.com/") && ok("https://EXAMPLE.com.:8443/"));
        assert!(!ok("http://www.example.com/"));
        assert!(ok("https://a.svc.example.com:8443/") && ok("https://a.b.svc.example.com:8443/"));
        assert!(!ok("https://svc.example.com:8443/") && !ok("https://a.svc.example.com/"));
        assert!(!ok("https://evilsvc.example.com:8443/"));
        assert!(ok("http://10.255.0.1:1/") && !ok("http://11.0.0.1/"));
        assert!(ok("http://192.168.1.5/") && !ok("http://192.168.1.5:81/"));
        assert!(ok("http://[::1]:8080/") && !ok("http://[::1]/"));
        assert!(ok("http://[fd12::1]/"));
        // Other spellings of an address are normalized before matching.
        assert!(ok("http://0x0a.1/") && ok("http://167772161/"));
        // A name is never matched against an address pattern.
        assert!(TargetPolicy::new(["127.0.0.0/8"]).unwrap().check_url("http://localhost/").is_err());
        assert!(p.check_url("file:///etc/passwd").unwrap_err().contains("file"));
    }

    #[test]
    fn bad_patterns_are_refused_and_policies_round_trip() {
        for bad in ["", "http://x/", "10.0.0.0/33", "a b", "x:0", "x:99999", "-/8", "a..b", "*.", "x/y"] {
            assert!(TargetPolicy::new([bad]).unwrap_err().starts_with("allowed target"), "{bad:?}");
        }
        let p = TargetPolicy::new(["10.1.2.3/8", "h:1", "::1", "*.x"]).unwrap();
        assert_eq!(p.to_string(), "10.0.0.0/8, h:1, ::1, *.x");
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json, serde_json::json!(["10.0.0.0/8", "h:1", "::1", "*.x"]));
        assert_eq!(serde_json::from_value::<TargetPolicy>(json).unwrap(), p);
        assert!(serde_json::from_value::<TargetPolicy>(serde_json::json!(["a b"])).is_err());
        let none = TargetPolicy::new(Vec::<String>::new()).unwrap();
        assert!(none.check_url("http://127.0.0.1/").is_err());
    }
}
