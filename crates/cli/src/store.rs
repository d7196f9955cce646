//! Which store a command uses, and opening it.

use std::sync::Arc;

use anyhow::Context as _;
use chime_core::{JobStore, MemoryStore};
use chime_postgres::PostgresStore;
use chime_sqlite::SqliteStore;

use crate::error::CliError;

/// The store URL: the flag, then `CHIME_STORE`, then `DATABASE_URL`, then the
/// config file's, then `sqlite://chime.db`. `postgres://…` (with an optional
/// `?schema=NAME`, default `chime`) is the PostgreSQL store, for several nodes.
pub(crate) fn resolve(flag: Option<&str>, from_config: Option<&str>) -> String {
    flag.map(str::to_owned)
        .or_else(|| std::env::var("CHIME_STORE").ok().filter(|s| !s.is_empty()))
        .or_else(|| std::env::var("DATABASE_URL").ok().filter(|s| !s.is_empty()))
        .or_else(|| from_config.map(str::to_owned))
        .unwrap_or_else(|| "sqlite://chime.db".to_owned())
}

/// Opens the store. Only `chime serve` creates a SQLite file; the other
/// commands refuse a path with no database, so a typo is an error rather
/// than a new empty database.
pub(crate) async fn open(url: &str, create: bool) -> Result<Arc<dyn JobStore>, CliError> {
    if url == "memory:" {
        return Ok(Arc::new(MemoryStore::new()));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PostgresStore::connect(url).await.map_err(|e| match e {
            chime_core::Error::Invalid(m) => CliError::Usage(m),
            other => CliError::Failed(anyhow::anyhow!(other)),
        })?;
        return Ok(Arc::new(store));
    }
    let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    let path = path.split('?').next().unwrap_or(path);
    if !create && !path.contains(":memory:") && !std::path::Path::new(path).exists() {
        return Err(CliError::Failed(anyhow::anyhow!(
            "opening store at {url}: there is no database at {path} (start `chime serve` there first, or pass --store)"
        )));
    }
    let store = SqliteStore::open(url).await.with_context(|| format!("opening store at {url}"))?;
    Ok(Arc::new(store))
}
