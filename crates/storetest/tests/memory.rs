//! The conformance suite on `MemoryStore`, one test per case.

use std::sync::Arc;

use chime_core::{JobStore, MemoryStore};
use chime_storetest::Harness;

async fn harness() -> Option<Harness> {
    Some(Harness::new(|| async { Arc::new(MemoryStore::new()) as Arc<dyn JobStore> }))
}

chime_storetest::conformance_tests!(harness);
