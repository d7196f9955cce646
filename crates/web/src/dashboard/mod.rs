//! The dashboard: server-rendered pages (askama, escaped by default) with a
//! little plain JavaScript for relative times, polling and the action
//! buttons. One module per page: [`jobs`] (the index), [`job`], [`runs`],
//! [`day`]; [`params`] checks their query strings and [`time`] shows
//! instants.
//!
//! Every link and `fetch()` in the pages is relative to the page (through
//! `root`, the way from the page back to the dashboard's own `/`), so the
//! pages work wherever the app mounts them; the API is expected at `api/v1/`
//! beside the dashboard. Job ids in links are percent-encoded, one segment.
//!
//! Pages are GETs that change nothing; every action is one of the API's
//! POSTs, sent by the page's script.

pub(crate) mod assets;
pub(crate) mod broken;
mod chart;
mod day;
mod job;
mod jobs;
mod pager;
mod params;
mod runs;
mod time;
mod why;

use askama::Template;
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;

pub(crate) use self::day::day;
pub(crate) use self::job::job;
pub(crate) use self::jobs::{index, live};
pub(crate) use self::runs::runs;
use crate::{ApiError, Handle};

/// What every page's frame shows: the way back to the dashboard's root,
/// the scheduler's state and node, whether actions need a token, and the
/// scheduler's "now" (the script measures relative times from it).
pub(crate) struct Chrome {
    pub(crate) root: String,
    pub(crate) state: &'static str,
    pub(crate) node: String,
    pub(crate) token_required: bool,
    pub(crate) now: String,
    /// Which page of the navigation this is: `jobs`, `runs` or `day`.
    pub(crate) section: &'static str,
}

impl Chrome {
    pub(crate) fn new(h: &Handle, root: String, now: Timestamp, section: &'static str) -> Chrome {
        Chrome {
            root,
            state: h.scheduler.state().as_str(),
            node: h.scheduler.node_id().to_owned(),
            token_required: h.has_token(),
            now: time::iso(now),
            section,
        }
    }

    /// `aria-current` for the navigation link of `section`.
    pub(crate) fn current(&self, section: &str) -> &'static str {
        if self.section == section { "page" } else { "false" }
    }
}

/// A page's query pairs, with a malformed query string as a 400.
type QueryPairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// Every page refuses to be framed: a page of another site that framed the
/// dashboard could lay it under its own and lead a click onto "Run now" or
/// "Pause" (clickjacking); the Host and Origin checks cannot see that, as the
/// framed page's requests are its own.
const NO_FRAMING: [(header::HeaderName, &str); 2] =
    [(header::X_FRAME_OPTIONS, "DENY"), (header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'")];

fn html(page: impl Template) -> Response {
    match page.render() {
        Ok(body) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], NO_FRAMING, body).into_response(),
        Err(e) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "render", format!("the page could not be rendered: {e}"))
                .into_response()
        }
    }
}

/// The relative URL of the dashboard's `/` from the index page at `path` (the
/// path the client asked for, prefix included): `./` when it ends with a
/// slash; else the page's own last segment, as in `./scheduler/` for
/// `/scheduler` (nested at `/scheduler`, where axum serves no `/scheduler/`).
fn index_root(path: &str) -> String {
    match path.rsplit_once('/') {
        Some((_, "")) | None => "./".to_owned(),
        Some((_, last)) => format!("./{last}/"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_finds_its_root_from_its_path() {
        assert_eq!(index_root("/"), "./");
        assert_eq!(index_root("/scheduler/"), "./");
        assert_eq!(index_root("/scheduler"), "./scheduler/");
        assert_eq!(index_root("/ops/chime"), "./chime/");
    }
}
