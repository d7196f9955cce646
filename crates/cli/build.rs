//! Tells the tests which of them can run here: the dashboard's browser test
//! with Debian's chromium and chromedriver installed, or when
//! `CHIME_REQUIRE_BROWSER=1` demands it; the PostgreSQL tests when
//! `DATABASE_URL` is set or `CHIME_REQUIRE_PG=1` demands them (only `1`
//! demands; `0` or unset does not). Otherwise a test is compiled as
//! `#[ignore]`, so `cargo test` reports it as ignored, not as passed; once
//! compiled in, a test whose browser or server is missing fails.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(chime_browser_test)");
    println!("cargo::rustc-check-cfg=cfg(chime_pg_test)");
    println!("cargo::rerun-if-env-changed=DATABASE_URL");
    println!("cargo::rerun-if-env-changed=CHIME_REQUIRE_PG");
    let url = std::env::var("DATABASE_URL").is_ok_and(|v| !v.trim().is_empty());
    if url || required("CHIME_REQUIRE_PG") {
        println!("cargo::rustc-cfg=chime_pg_test");
    }
    println!("cargo::rerun-if-env-changed=CHIME_REQUIRE_BROWSER");
    println!("cargo::rerun-if-changed=/usr/bin/chromium");
    println!("cargo::rerun-if-changed=/usr/bin/chromedriver");
    let required = required("CHIME_REQUIRE_BROWSER");
    let installed =
        std::path::Path::new("/usr/bin/chromium").exists() && std::path::Path::new("/usr/bin/chromedriver").exists();
    if required || installed {
        println!("cargo::rustc-cfg=chime_browser_test");
    }
}

/// Whether `CHIME_REQUIRE_...` is `1`; any other value but `0` or empty is
/// warned about and taken as `0`.
fn required(name: &str) -> bool {
    match std::env::var(name).as_deref().map(str::trim) {
        Ok("1") => true,
        Ok("" | "0") | Err(_) => false,
        Ok(other) => {
            println!("cargo::warning={name}={other:?} is neither 1 (required) nor 0: taken as 0");
            false
        }
    }
}
