//! Whether the PostgreSQL tests run here: when `DATABASE_URL` names a server,
//! or `CHIME_REQUIRE_PG=1` demands them (only `1` does; `0` or unset leaves
//! it to `DATABASE_URL`). Otherwise they are compiled as `#[ignore]`, so
//! `cargo test` reports them as ignored (with the reason), never as passed.
//! Once compiled in, a test whose server does not answer fails.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(chime_pg_test)");
    // `sqlx::migrate!` embeds `migrations/`: a new migration must rebuild the crate.
    println!("cargo::rerun-if-changed=migrations");
    println!("cargo::rerun-if-env-changed=DATABASE_URL");
    println!("cargo::rerun-if-env-changed=CHIME_REQUIRE_PG");
    let url = std::env::var("DATABASE_URL").is_ok_and(|v| !v.trim().is_empty());
    let required = match std::env::var("CHIME_REQUIRE_PG").as_deref().map(str::trim) {
        Ok("1") => true,
        Ok("" | "0") | Err(_) => false,
        Ok(other) => {
            println!("cargo::warning=CHIME_REQUIRE_PG={other:?} is neither 1 (required) nor 0: taken as 0");
            false
        }
    };
    if url || required {
        println!("cargo::rustc-cfg=chime_pg_test");
    }
}
