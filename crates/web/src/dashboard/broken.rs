//! The store's broken rows, remembered between requests: finding them means
//! decoding every stored row again (as costly as listing the jobs), and
//! the index and its poll need them on every request. The store's change
//! signal (which every write moves, another process's included) says when
//! to look again.

use std::sync::Mutex;

use chime_core::{BrokenJob, JobStore};

#[derive(Debug, Default)]
pub(crate) struct BrokenCache {
    /// The change count the list was read at, and the list.
    seen: Mutex<Option<(u64, Vec<BrokenJob>)>>,
}

impl BrokenCache {
    /// The broken rows, read again only when the store changed since.
    pub(crate) async fn get(&self, store: &dyn JobStore) -> chime_core::Result<Vec<BrokenJob>> {
        // Read the count before the rows: a change while reading leaves a
        // count that is already old, so the next request reads again.
        let version = *store.changes().borrow();
        if let Some((seen, broken)) = self.seen.lock().unwrap_or_else(|e| e.into_inner()).as_ref()
            && *seen == version
        {
            return Ok(broken.clone());
        }
        // The marked rows, through their index: reading every job to find
        // them took 12 s at 1,000,000, on the first poll after any change.
        let broken = store.marked_broken().await?;
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some((version, broken.clone()));
        Ok(broken)
    }
}
