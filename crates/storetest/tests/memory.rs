//! The conformance suite on `MemoryStore`.

use std::sync::Arc;

use chime_core::{JobStore, MemoryStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_passes_the_suite() {
    chime_storetest::run_all(chime_storetest::Harness::new(|| async {
        Arc::new(MemoryStore::new()) as Arc<dyn JobStore>
    }))
    .await;
}
