//! The "jobs 51–100 of 10000 · page 2 of 200" line under a listing, with
//! its previous and next links.

use super::params::PAGE_SIZE;

pub(crate) struct Pager {
    /// The first and last row shown, counted from 1; `last` is `first - 1`
    /// when the page shows none.
    pub(crate) first: usize,
    pub(crate) last: usize,
    /// Rows in the whole listing, when known.
    pub(crate) total: usize,
    /// The listing's length is not known (run history is not counted):
    /// only whether there is a next page.
    pub(crate) open: bool,
    pub(crate) page: usize,
    pub(crate) pages: usize,
    pub(crate) prev: Option<String>,
    pub(crate) next: Option<String>,
}

impl Pager {
    /// Paging over `total` rows, on `page` (from 1); `link` makes a page's URL.
    pub(crate) fn new(total: usize, page: usize, link: impl Fn(usize) -> String) -> Pager {
        let pages = total.div_ceil(PAGE_SIZE).max(1);
        Pager {
            first: ((page - 1) * PAGE_SIZE + 1).min(total + 1),
            last: (page * PAGE_SIZE).min(total),
            total,
            open: false,
            page,
            pages,
            // From beyond the last page, "previous" leads back to the last one.
            prev: (page > 1).then(|| link((page - 1).min(pages))),
            next: (page < pages).then(|| link(page + 1)),
        }
    }
}

impl Pager {
    /// Paging over a listing whose length is not counted: `page` shows
    /// `shown` rows, and `more` says whether a next page has any.
    pub(crate) fn open_ended(page: usize, shown: usize, more: bool, link: impl Fn(usize) -> String) -> Pager {
        let first = (page - 1) * PAGE_SIZE + 1;
        Pager {
            first,
            // `first - 1` when the page is empty.
            last: (first + shown).saturating_sub(1),
            total: shown,
            open: true,
            page,
            pages: page,
            prev: (page > 1).then(|| link(page - 1)),
            next: more.then(|| link(page + 1)),
        }
    }
}
