//! Refuses requests a browser could be tricked into sending, before any
//! handler or token check runs:
//!
//! * a `Host` that is neither loopback nor an allowed host: 421. A page on
//!   `evil.example.com` that re-points its DNS name at 127.0.0.1 (DNS
//!   rebinding) is same-origin with the server as far as the browser is
//!   concerned, but its requests still say `Host: evil.example.com`;
//! * a mutating call whose `Origin` is not the server's own, or whose
//!   `Sec-Fetch-Site` says another site sent it: 403. This stops cross-site
//!   `fetch` and form posts, which browsers send without asking (no CORS
//!   preflight for "simple" requests);
//! * a mutating call whose body is not declared `application/json`: 415.
//!   Forms can only send `text/plain`, `multipart/form-data` and
//!   `application/x-www-form-urlencoded`, so this also stops old browsers
//!   that send no `Origin`.
//!
//! No CORS headers are ever sent, so browsers keep other origins from
//! reading answers too.

use std::net::IpAddr;

use axum::body::HttpBody as _;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{ApiError, ConfigError, Handle};

/// An allowed host: a lower-case name or address, and a port unless any port goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HostPattern {
    host: String,
    port: Option<u16>,
}

impl HostPattern {
    pub(crate) fn parse(entry: &str) -> Result<HostPattern, ConfigError> {
        let bad = |why: &str| {
            ConfigError(format!("allowed host {entry:?}: {why}; expected a name or address, with an optional :port"))
        };
        if entry.contains("://") || entry.contains('/') {
            return Err(bad("a host, not a URL"));
        }
        if entry.contains('*') {
            return Err(bad("wildcards are not supported"));
        }
        let (host, port) = split_authority(entry.trim()).ok_or_else(|| bad("not a host"))?;
        Ok(HostPattern { host, port })
    }

    fn matches(&self, host: &str, port: Option<u16>) -> bool {
        self.host == host && (self.port.is_none() || self.port == port)
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port` as (lower-case host without
/// brackets or trailing dot, port); `None` when it is none of these.
pub(crate) fn split_authority(s: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        v6.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (v6, port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse::<u16>().ok()?),
        Some(_) => return None,
    };
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let valid = !host.is_empty()
        && (host.parse::<IpAddr>().is_ok()
            || host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_'));
    valid.then_some((host, port))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The request's authority: the `Host` header, or the authority of an
/// absolute-form request target (`GET http://host/ HTTP/1.1`). Both, when
/// both are present, so neither can smuggle a name past the check.
fn authorities(request: &Request) -> Result<Vec<&str>, ApiError> {
    let mut names = Vec::new();
    // Every Host header, not the first: proxies and servers disagree on which
    // of several wins, so several are refused outright.
    for host in request.headers().get_all(header::HOST) {
        names.push(host.to_str().map_err(|_| misdirected("the Host header is not text"))?);
    }
    if names.len() > 1 {
        return Err(misdirected("the request has more than one Host header"));
    }
    if let Some(authority) = request.uri().authority() {
        names.push(authority.as_str());
    }
    Ok(names)
}

fn misdirected(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::MISDIRECTED_REQUEST, "misdirected", message)
}

fn cross_site(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "cross_site", message)
}

/// 421 unless every name the request is addressed to is loopback or allowed.
/// A request naming no host at all passes: browsers always send one, so it
/// cannot come from a page (and `oneshot` tests and HTTP/1.0 tools send none).
fn check_host(allowed: &[HostPattern], request: &Request) -> Result<(), ApiError> {
    for name in authorities(request)? {
        let Some((host, port)) = split_authority(name) else {
            return Err(misdirected(format!("the request's host {name:?} is not a host name")));
        };
        if !is_loopback(&host) && !allowed.iter().any(|p| p.matches(&host, port)) {
            return Err(misdirected(format!(
                "this server does not answer to the host {name:?}: it answers to loopback names and the hosts its operator allowed ([http] allowed_hosts)"
            )));
        }
    }
    Ok(())
}

/// 403 when a browser says another origin or site sent this mutating call.
fn check_same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(site) = headers.get("sec-fetch-site") {
        // `same-origin` is the dashboard; `none` is the user typing a URL or
        // a bookmark. `same-site` (another port or subdomain) and
        // `cross-site` are other pages.
        if !matches!(site.as_bytes(), b"same-origin" | b"none") {
            return Err(cross_site(format!(
                "refusing a call sent by another site (Sec-Fetch-Site: {})",
                String::from_utf8_lossy(site.as_bytes())
            )));
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().map_err(|_| cross_site("the Origin header is not text"))?;
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if host.is_some_and(|host| same_origin(origin, host)) {
        Ok(())
    } else {
        Err(cross_site(format!(
            "refusing a call from the page at {origin:?}: only this server's own pages may make it (no CORS)"
        )))
    }
}

/// Whether the origin `scheme://host[:port]` names the authority `host`
/// (a missing port being the scheme's default). `null` (sandboxed frames,
/// `file:` pages) names nothing.
fn same_origin(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return false,
    };
    match (split_authority(authority), split_authority(host)) {
        (Some((oh, op)), Some((hh, hp))) => oh == hh && op.unwrap_or(default) == hp.unwrap_or(default),
        _ => false,
    }
}

/// 415 unless a mutating call's body, if it has one, is declared JSON.
/// A `Content-Type` on an empty body must say JSON too: an empty form post
/// is still a form post.
fn check_content_type(request: &Request) -> Result<(), ApiError> {
    let unsupported = |what: String| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("{what}: send the body as Content-Type: application/json"),
        )
    };
    match request.headers().get(header::CONTENT_TYPE) {
        Some(ct) => {
            let ct = String::from_utf8_lossy(ct.as_bytes());
            let essence = ct.split(';').next().unwrap_or_default().trim();
            if essence.eq_ignore_ascii_case("application/json") {
                Ok(())
            } else {
                Err(unsupported(format!("the body is {ct:?}")))
            }
        }
        // The size hint is exact and zero for a request with neither
        // Content-Length nor Transfer-Encoding.
        None if request.body().size_hint().exact() == Some(0) => Ok(()),
        None => Err(unsupported("the body has no Content-Type".to_owned())),
    }
}

fn is_mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

/// The middleware: the checks above, in the order a rebinding or
/// cross-site attacker meets them.
pub(crate) async fn guard(State(h): State<Handle>, request: Request, next: Next) -> Response {
    let checked = check_host(&h.allowed_hosts, &request).and_then(|()| {
        if is_mutating(request.method()) {
            check_same_origin(request.headers())?;
            check_content_type(&request)?;
        }
        Ok(())
    });
    match checked {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_parse() {
        assert_eq!(split_authority("127.0.0.1:8080"), Some(("127.0.0.1".into(), Some(8080))));
        assert_eq!(split_authority("[::1]:80"), Some(("::1".into(), Some(80))));
        assert_eq!(split_authority("[::1]"), Some(("::1".into(), None)));
        assert_eq!(split_authority("LocalHost."), Some(("localhost".into(), None)));
        for bad in ["", ":80", "a:b", "[::1", "[zz]:1", "::1", "a b", "h:99999", "evil.com@127.0.0.1"] {
            assert_eq!(split_authority(bad), None, "{bad}");
        }
    }

    #[test]
    fn origins_compare_with_default_ports() {
        assert!(same_origin("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(same_origin("http://localhost", "localhost:80"));
        assert!(same_origin("https://chime.example.com", "Chime.Example.com"));
        assert!(!same_origin("https://chime.example.com", "chime.example.com:80"));
        assert!(!same_origin("http://localhost:3000", "localhost:8080"));
        assert!(!same_origin("null", "localhost"));
        assert!(!same_origin("http://evil.example.com", "127.0.0.1:8080"));
    }

    #[test]
    fn allowed_hosts_are_hosts() {
        assert!(HostPattern::parse("chime.example.com").unwrap().matches("chime.example.com", Some(443)));
        assert!(!HostPattern::parse("chime.example.com:8443").unwrap().matches("chime.example.com", Some(443)));
        for bad in ["https://chime.example.com", "*.example.com", "host/path", ""] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
