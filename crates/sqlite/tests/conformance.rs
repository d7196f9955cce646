//! The conformance suite on `SqliteStore`, one test per case: on a file
//! (each store a new file in a temporary folder; a hand-edited row is the
//! extra case), and in memory.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chime_core::{JobId, JobStore};
use chime_sqlite::SqliteStore;
use chime_storetest::Harness;
use sqlx::Connection;

/// Stores on files in a temporary folder that lives as long as the harness.
async fn file_harness() -> Option<Harness> {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let last: Arc<Mutex<PathBuf>> = Arc::default();
    let counter = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let (d, l) = (Arc::clone(&dir), Arc::clone(&last));
    let harness = Harness::new(move || {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = d.path().join(format!("store-{n}.db"));
        *l.lock().unwrap() = path.clone();
        async move { Arc::new(SqliteStore::open(path.to_str().unwrap()).await.unwrap()) as Arc<dyn JobStore> }
    })
    .with_corrupt(move |_store, id: JobId| {
        let path = last.lock().unwrap().clone();
        // Keeps the folder for as long as the corrupting hook lives.
        let _dir = Arc::clone(&dir);
        async move {
            // Another connection rewrites the job's trigger into something no chime can read.
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
            sqlx::query("UPDATE chime_job SET trigger = '{\"type\":\"lunar\"}' WHERE id = ?")
                .bind(id.as_str())
                .execute(&mut conn)
                .await
                .unwrap();
        }
    });
    Some(harness)
}

mod file {
    use super::file_harness;
    chime_storetest::conformance_tests!(file_harness);
    chime_storetest::corrupt_row_tests!(file_harness);
}

async fn memory_harness() -> Option<Harness> {
    Some(Harness::new(|| async { Arc::new(SqliteStore::open("sqlite::memory:").await.unwrap()) as Arc<dyn JobStore> }))
}

mod memory {
    use super::memory_harness;
    chime_storetest::conformance_tests!(memory_harness);
}
