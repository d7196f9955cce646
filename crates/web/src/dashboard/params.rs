//! The query parameters of the dashboard's pages, which make a view
//! shareable as a URL. Every value is checked: a parameter a page does not
//! take, one given twice, or a value out of range is a 400 naming it (never
//! clamped or ignored, so a mistyped link does not quietly show another view).
//! An empty value is the same as none: that is what a form's blank field sends.

use crate::ApiError;
use crate::extract::MAX_OFFSET;

/// Rows on one page of a listing.
pub(crate) const PAGE_SIZE: usize = 50;

/// The deepest page: the API's deepest offset, in pages.
pub(crate) const MAX_PAGE: usize = (MAX_OFFSET as usize) / PAGE_SIZE;

/// The longest search text: a search is for a name, not a document.
pub(crate) const MAX_SEARCH: usize = 200;

/// A page's query, as (name, value) pairs in their order.
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Checks that every name is one of `known`, and none is given twice.
    pub(crate) fn new(pairs: Vec<(String, String)>, known: &[&str]) -> Result<Params, ApiError> {
        for (i, (name, _)) in pairs.iter().enumerate() {
            if !known.contains(&name.as_str()) {
                return Err(ApiError::malformed(format!(
                    "unknown parameter {name:?}: this page takes {}",
                    known.join(", ")
                )));
            }
            if pairs[..i].iter().any(|(earlier, _)| earlier == name) {
                return Err(ApiError::malformed(format!("parameter {name:?} is given twice")));
            }
        }
        Ok(Params { pairs })
    }

    /// The value of `name`, trimmed; `None` when absent or blank.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
    }

    /// `page`: 1 (the default) to [`MAX_PAGE`].
    pub(crate) fn page(&self) -> Result<usize, ApiError> {
        let Some(text) = self.get("page") else { return Ok(1) };
        match text.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            _ => Err(ApiError::malformed(format!("page {text:?}: expected a whole number from 1 to {MAX_PAGE}"))),
        }
    }

    /// `q`, the search text, at most [`MAX_SEARCH`] characters.
    pub(crate) fn search(&self) -> Result<Option<String>, ApiError> {
        match self.get("q") {
            Some(q) if q.chars().count() > MAX_SEARCH => {
                Err(ApiError::malformed(format!("q: at most {MAX_SEARCH} characters")))
            }
            q => Ok(q.map(str::to_owned)),
        }
    }

    /// The value of `name`, which must be one of `choices` (by its word).
    pub(crate) fn choice<T: Copy>(&self, name: &str, choices: &[(&'static str, T)]) -> Result<Option<T>, ApiError> {
        let Some(text) = self.get(name) else { return Ok(None) };
        match choices.iter().find(|(word, _)| *word == text) {
            Some((_, value)) => Ok(Some(*value)),
            None => Err(ApiError::malformed(format!(
                "{name} {text:?}: expected one of {}",
                choices.iter().map(|(word, _)| *word).collect::<Vec<_>>().join(", ")
            ))),
        }
    }
}

/// A link's query string (with its `?`, or empty) from the pairs that have
/// a value, percent-encoded.
pub(crate) fn query_string(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> =
        pairs.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode_component(v)))).collect();
    if parts.is_empty() { String::new() } else { format!("?{}", parts.join("&")) }
}

/// `value` percent-encoded for a query component: every byte but the
/// unreserved ones.
fn encode_component(value: &str) -> String {
    crate::extract::encode_segment(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &[(&str, &str)], known: &[&str]) -> Result<Params, ApiError> {
        Params::new(query.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(), known)
    }

    #[test]
    fn bad_parameters_are_refused_by_name() {
        let message = |r: Result<Params, ApiError>| r.err().unwrap().message;
        assert!(message(params(&[("pgae", "2")], &["page"])).contains("\"pgae\""));
        assert!(message(params(&[("page", "1"), ("page", "2")], &["page"])).contains("twice"));
        for bad in ["-1", "0", "x", "1.5", "20001"] {
            let p = params(&[("page", bad)], &["page"]).unwrap();
            assert!(p.page().unwrap_err().message.starts_with("page "), "{bad}");
        }
        let p = params(&[("state", "bogus")], &["state"]).unwrap();
        let e = p.choice("state", &[("active", 1), ("paused", 2)]).unwrap_err();
        assert_eq!(e.message, "state \"bogus\": expected one of active, paused");
    }

    #[test]
    fn blank_is_absent_and_links_keep_what_has_a_value() {
        let p = params(&[("q", "  "), ("page", "")], &["q", "page"]).unwrap();
        assert_eq!((p.search().unwrap(), p.page().unwrap()), (None, 1));
        assert_eq!(
            query_string(&[("q", Some("a b&c".into())), ("state", None), ("page", Some("2".into()))]),
            "?q=a%20b%26c&page=2"
        );
        assert_eq!(query_string(&[("q", None)]), "");
    }
}
