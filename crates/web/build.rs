//! Tells the tests whether `promtool` (Prometheus's checker) is on `PATH`,
//! or `CHIME_REQUIRE_PROMTOOL=1` demands it: otherwise its test is compiled
//! as `#[ignore]`, so `cargo test` reports it as ignored, not as passed.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(chime_promtool_test)");
    println!("cargo::rerun-if-env-changed=CHIME_REQUIRE_PROMTOOL");
    println!("cargo::rerun-if-env-changed=PATH");
    let required = std::env::var("CHIME_REQUIRE_PROMTOOL").is_ok_and(|v| v.trim() == "1");
    let installed = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("promtool").is_file()));
    if required || installed {
        println!("cargo::rustc-cfg=chime_promtool_test");
    }
}
