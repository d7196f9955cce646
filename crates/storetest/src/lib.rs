//! The conformance suite every chime `JobStore` must pass: the same tests,
//! run on `MemoryStore`, `SqliteStore` and `PostgresStore`.
//!
//! In a store's `tests/conformance.rs`:
//!
//! ```no_run
//! use std::sync::Arc;
//! use chime_core::{JobStore, MemoryStore};
//! use chime_storetest::Harness;
//!
//! /// A fresh harness per test; `None` skips (a server that is not configured).
//! async fn harness() -> Option<Harness> {
//!     Some(Harness::new(|| async { Arc::new(MemoryStore::new()) as Arc<dyn JobStore> }))
//! }
//!
//! chime_storetest::conformance_tests!(harness);
//! # fn main() {}
//! ```
//!
//! That is one `#[tokio::test]` per case (`cargo test` lists
//! `crud_and_conflict_policies`, `concurrent_claims_never_overlap`, ...), so
//! the first failure hides none of the others. Attributes written before the
//! harness (`#[cfg_attr(..., ignore = "...")]`) go on every test.
//!
//! # Overview
//!
//! Each test gets a fresh, empty store from the harness's factory and
//! panics with a message naming the store's behaviour on failure. Stores
//! whose rows can be corrupted from outside (SQL stores) also pass a
//! `corrupt` hook and call [`corrupt_row_tests!`], which checks that a job
//! whose stored trigger no longer parses is kept and reported, never
//! deleted, and does not stop claims.
//!
//! # Crate features
//!
//! None. Not published.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chime_core::{JobId, JobStore};

pub mod cases;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type MakeStore = Box<dyn Fn() -> BoxFuture<Arc<dyn JobStore>> + Send + Sync>;
type CorruptJob = Box<dyn Fn(Arc<dyn JobStore>, JobId) -> BoxFuture<()> + Send + Sync>;

/// Makes fresh stores for the suite, and optionally corrupts a stored job.
pub struct Harness {
    make: MakeStore,
    pub(crate) corrupt: Option<CorruptJob>,
}

impl Harness {
    /// A harness whose stores come from `make`; each call must return an empty store.
    pub fn new<F, Fut>(make: F) -> Harness
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Arc<dyn JobStore>> + Send + 'static,
    {
        Harness { make: Box::new(move || Box::pin(make())), corrupt: None }
    }

    /// Adds the hook that makes a stored job's trigger unreadable, for stores
    /// that can hold such a row.
    pub fn with_corrupt<F, Fut>(mut self, corrupt: F) -> Harness
    where
        F: Fn(Arc<dyn JobStore>, JobId) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.corrupt = Some(Box::new(move |s, id| Box::pin(corrupt(s, id))));
        self
    }

    pub(crate) async fn store(&self) -> Arc<dyn JobStore> {
        (self.make)().await
    }
}

/// One `#[tokio::test]` per case of the suite, each on the harness the
/// async fn `$harness` makes (`async fn() -> Option<Harness>`; `None` ends
/// the test early, for a store whose server is not configured). Attributes
/// before the name go on every test.
#[macro_export]
macro_rules! conformance_tests {
    ($(#[$attr:meta])* $harness:ident) => {
        $crate::conformance_tests!(@cases [$(#[$attr])*] $harness;
            crud_and_conflict_policies,
            add_jobs_is_one_atomic_step,
            concurrent_adds_of_one_id_have_one_winner,
            version_checks,
            acquire_due_claims_each_due_job_once,
            concurrent_claims_never_overlap,
            claims_apply_plan_fire,
            pause_and_resume_survive_a_read,
            runs_move_through_every_status,
            history_filters_and_pages,
            stats_add_up,
            retention_prunes_finished_runs,
            prune_jobs_trims_only_the_listed_jobs,
            recent_stats_cover_the_newest_runs_of_all_jobs,
            listing_jobs_with_alerts_finds_exactly_those,
            listing_jobs_by_state_task_and_search,
            jobs_next_due_are_listed_and_counted_by_span,
            the_change_signal_fires,
            an_unknown_task_name_is_kept,
            nodes_register_renew_and_release,
            max_instances_holds_across_nodes,
            reasons_are_stored_with_their_runs,
            backfills_queue_each_time_once,
            a_claim_skips_a_time_that_already_has_a_run,
            an_alert_is_notified_once_per_episode,
            jobs_are_counted_by_state,
            an_expired_lease_is_swept_exactly_once,
            a_swept_run_with_retries_left_is_requeued,
            two_sweepers_requeue_an_expired_run_exactly_once,
            a_stale_update_from_the_old_holder_changes_nothing,
            request_run_is_atomic,
            requested_runs_are_claimed_by_a_node_with_the_task
        );
    };
    (@cases $attrs:tt $harness:ident; $($case:ident),+ $(,)?) => {
        $( $crate::conformance_tests!(@case $attrs $harness $case); )+
    };
    (@case [$(#[$attr:meta])*] $harness:ident $case:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$attr])*
        async fn $case() {
            let Some(harness) = $harness().await else { return };
            $crate::cases::$case(&harness).await;
        }
    };
}

/// The case for stores whose rows can be edited from outside the process:
/// a job whose stored trigger no longer parses is kept, reported by
/// `broken_jobs`, and claims go on past it. `$harness` must make its
/// harnesses [`with_corrupt`](Harness::with_corrupt).
#[macro_export]
macro_rules! corrupt_row_tests {
    ($(#[$attr:meta])* $harness:ident) => {
        $crate::conformance_tests!(@case [$(#[$attr])*] $harness a_corrupt_job_is_kept_and_reported);
    };
}
