//! Rows as stored: the shapes are chime-sql's (shared with the PostgreSQL
//! store); what is SQLite's own is the `?` placeholders.

use chime_core::Run;
pub(crate) use chime_sql::{
    IN_FLIGHT, JobRow, RUN_COLUMNS, RUN_VALUES, RunRow, bind_run, encode, instant, micros, reason_json, run_ids,
};
use sqlx::AssertSqlSafe;

/// `n` rows of placeholders for [`RUN_COLUMNS`].
pub(crate) fn run_rows(n: usize) -> String {
    let row = format!("({})", vec!["?"; RUN_VALUES].join(", "));
    vec![row; n].join(", ")
}

pub(crate) async fn insert_run<'c, E: sqlx::Executor<'c, Database = sqlx::Sqlite>>(
    e: E,
    run: &Run,
) -> sqlx::Result<u64> {
    let sql = format!(
        "INSERT INTO chime_run {RUN_COLUMNS} VALUES {} ON CONFLICT (job_id, scheduled_for) DO NOTHING",
        run_rows(1)
    );
    Ok(chime_sql::bind_run!(sqlx::query(AssertSqlSafe(sql)), run).execute(e).await?.rows_affected())
}
