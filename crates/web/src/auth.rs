//! The API token: which calls need it, how it is sent, which tokens are
//! refused outright.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{ApiError, ConfigError, Handle, MIN_TOKEN_LEN};

/// The token as it will be compared, or why it is refused. A token of one
/// space once counted as a token and unlocked a public address.
pub(crate) fn check_token(token: &str) -> Result<&str, ConfigError> {
    let token = token.trim();
    if token.len() < MIN_TOKEN_LEN {
        return Err(ConfigError(format!(
            "the API token is {} bytes long (after trimming whitespace); it must be at least {MIN_TOKEN_LEN}: generate one with `openssl rand -hex 32`",
            token.len()
        )));
    }
    // A header value carries visible ASCII and inner spaces reliably; a token
    // holding anything else could never be sent, or would be cut by proxies.
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError(
            "the API token must be visible ASCII characters only (no spaces, control characters or non-ASCII)".into(),
        ));
    }
    Ok(token)
}

/// The credentials of `Authorization: Bearer TOKEN`. The scheme is
/// case-insensitive (RFC 9110 §11.1), as is the run of spaces after it.
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let scheme = value.get(..6)?;
    let rest = value.get(6..)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") || !rest.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
        return None;
    }
    Some(rest.trim_ascii())
}

/// Compares without stopping at the first difference, so timing does not
/// reveal how much of a guess was right. (The length is not secret.)
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Mutating calls need the bearer token when one is set; reads too with
/// `read_token`. Routes that must stay open (`/health`, the OpenAPI
/// document) are outside this layer.
pub(crate) async fn require_token(State(handle): State<Handle>, request: Request, next: Next) -> Response {
    let reading = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if let Some(token) = &handle.token
        && (!reading || handle.read_token)
    {
        match bearer(request.headers()) {
            None => {
                return ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "this call needs Authorization: Bearer TOKEN",
                )
                .into_response();
            }
            Some(given) if !constant_time_eq(given, token.as_bytes()) => {
                return ApiError::new(StatusCode::FORBIDDEN, "forbidden", "the token is wrong").into_response();
            }
            Some(_) => {}
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_tokens_are_refused() {
        for bad in
            ["", " ", "                    ", "short", "fifteen-bytes!!", "sixteen bytes  x", "tøken-tøken-tøken"]
        {
            assert!(check_token(bad).is_err(), "{bad:?}");
        }
        assert_eq!(check_token("  0123456789abcdef\n").unwrap(), "0123456789abcdef");
    }

    #[test]
    fn bearer_is_case_insensitive() {
        let mut h = HeaderMap::new();
        for (value, expected) in [
            ("Bearer abc", Some(&b"abc"[..])),
            ("bearer abc", Some(b"abc")),
            ("BEARER   abc ", Some(b"abc")),
            ("Bearerabc", None),
            ("Basic abc", None),
            ("Bear", None),
        ] {
            h.insert(header::AUTHORIZATION, value.parse().unwrap());
            assert_eq!(bearer(&h), expected, "{value}");
        }
    }
}
