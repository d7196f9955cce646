//! The dashboard's stylesheet and script, served by chime itself (no CDN,
//! no build step): the pages work offline.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const CSS: &str = include_str!("../../assets/dashboard.css");
const JS: &str = include_str!("../../assets/dashboard.js");

/// Revalidated on every use (cheap: a few kilobytes), so a new version of
/// chime never runs against an old script left in a browser's cache.
const CACHE: &str = "no-cache";

pub(crate) async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, CACHE)], CSS).into_response()
}

pub(crate) async fn js() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, CACHE)], JS).into_response()
}
