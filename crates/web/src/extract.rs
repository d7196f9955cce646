//! Request parts as the handlers want them, with every rejection in the
//! API's JSON error shape (axum's own rejections are plain text).

use axum::extract::{FromRequestParts, Path};
use axum::http::StatusCode;
use axum::http::request::Parts;
use chime_core::JobId;

use crate::ApiError;

/// The `{id}` of a job route: 400 when the path does not decode (bad
/// percent-encoding, not UTF-8), 404 when it is not a valid job id.
pub(crate) struct JobIdPath(pub(crate) JobId);

impl<S: Send + Sync> FromRequestParts<S> for JobIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<JobIdPath, ApiError> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::malformed(format!("the path does not decode: {}", e.body_text())))?;
        JobId::new(&id).map(JobIdPath).map_err(|e| ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string()))
    }
}

/// `segment` percent-encoded for one segment of a URL path: every byte but
/// the unreserved ones (`A-Z a-z 0-9 - . _ ~`), so `/`, `?`, `#`, `%`,
/// spaces and non-ASCII all survive the trip and [`JobIdPath`] decodes the
/// segment back to the same id. (The ids `.` and `..` cannot make that trip:
/// clients resolve them, encoded or not, as dot segments.)
pub(crate) fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The largest `limit` of a listing.
pub(crate) const MAX_LIMIT: u64 = 1000;
/// The largest `offset` of a listing: deeper pages are better reached with
/// filters (`since`, `until`, `status`) than by scanning.
pub(crate) const MAX_OFFSET: u64 = 1_000_000;

/// A listing's `limit` (default 100) and `offset` (default 0), range-checked:
/// a value beyond the bounds is a 400, never clamped or wrapped.
pub(crate) fn page(limit: Option<u64>, offset: Option<u64>) -> Result<(usize, usize), ApiError> {
    let limit = limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::malformed(format!("limit {limit}: expected 1 to {MAX_LIMIT}")));
    }
    let offset = offset.unwrap_or(0);
    if offset > MAX_OFFSET {
        return Err(ApiError::malformed(format!("offset {offset}: expected 0 to {MAX_OFFSET}")));
    }
    let fit = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    Ok((fit(limit), fit(offset)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_encode_everything_but_unreserved() {
        assert_eq!(encode_segment("daily-report_1.x~"), "daily-report_1.x~");
        assert_eq!(encode_segment("a/b?c#d"), "a%2Fb%3Fc%23d");
        assert_eq!(encode_segment("100% done"), "100%25%20done");
        assert_eq!(encode_segment("é+☃"), "%C3%A9%2B%E2%98%83");
    }
}
