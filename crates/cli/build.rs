//! Tells the tests whether the dashboard's browser test can run here: with
//! Debian's chromium and chromedriver installed, or when `CHIME_REQUIRE_BROWSER`
//! (any value but empty or `0`) demands it. Otherwise that test is compiled as
//! `#[ignore]`, so `cargo test` reports it as ignored, not as passed.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(chime_browser_test)");
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
