//! The conformance suite on `SqliteStore`: a file per test, and in memory.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chime_core::{JobId, JobStore};
use chime_sqlite::SqliteStore;
use sqlx::Connection;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_store_passes_the_suite() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let last: Arc<Mutex<PathBuf>> = Arc::default();
    let counter = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let (d, l) = (Arc::clone(&dir), Arc::clone(&last));
    let harness = chime_storetest::Harness::new(move || {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = d.path().join(format!("store-{n}.db"));
        *l.lock().unwrap() = path.clone();
        async move { Arc::new(SqliteStore::open(path.to_str().unwrap()).await.unwrap()) as Arc<dyn JobStore> }
    })
    .with_corrupt(move |_store, id: JobId| {
        let path = last.lock().unwrap().clone();
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
    chime_storetest::run_all(harness).await;
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_memory_store_passes_the_suite() {
    chime_storetest::run_all(chime_storetest::Harness::new(|| async {
        Arc::new(SqliteStore::open("sqlite::memory:").await.unwrap()) as Arc<dyn JobStore>
    }))
    .await;
}
