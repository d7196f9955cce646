//! Whether the PostgreSQL tests can run here: `DATABASE_URL` names a server,
//! or `CHIME_REQUIRE_PG` (any value but empty or `0`) demands them. Otherwise
//! they are compiled as `#[ignore]`, so `cargo test` reports them as ignored
//! (with the reason) instead of as passed.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(chime_pg_test)");
    println!("cargo::rerun-if-env-changed=DATABASE_URL");
    println!("cargo::rerun-if-env-changed=CHIME_REQUIRE_PG");
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty() && v.trim() != "0");
    if set("DATABASE_URL") || set("CHIME_REQUIRE_PG") {
        println!("cargo::rustc-cfg=chime_pg_test");
    }
}
