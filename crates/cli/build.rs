//! Tells the tests which of them can run here: the dashboard's browser test
//! with Debian's chromium and chromedriver installed, or when
//! `CHIME_REQUIRE_BROWSER` (any value but empty or `0`) demands it; the
//! PostgreSQL chaos test when `DATABASE_URL` is set or `CHIME_REQUIRE_PG`
//! demands it. Otherwise a test is compiled as `#[ignore]`, so `cargo test`
//! reports it as ignored, not as passed.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(chime_browser_test)");
    println!("cargo::rustc-check-cfg=cfg(chime_pg_test)");
    println!("cargo::rerun-if-env-changed=DATABASE_URL");
    println!("cargo::rerun-if-env-changed=CHIME_REQUIRE_PG");
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty() && v.trim() != "0");
    if set("DATABASE_URL") || set("CHIME_REQUIRE_PG") {
        println!("cargo::rustc-cfg=chime_pg_test");
    }
    println!("cargo::rerun-if-env-changed=CHIME_REQUIRE_BROWSER");
    println!("cargo::rerun-if-changed=/usr/bin/chromium");
    println!("cargo::rerun-if-changed=/usr/bin/chromedriver");
    let required = std::env::var("CHIME_REQUIRE_BROWSER").is_ok_and(|v| !v.trim().is_empty() && v.trim() != "0");
    let installed =
        std::path::Path::new("/usr/bin/chromium").exists() && std::path::Path::new("/usr/bin/chromedriver").exists();
    if required || installed {
        println!("cargo::rustc-cfg=chime_browser_test");
    }
}
