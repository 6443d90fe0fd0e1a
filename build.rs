//! Lets the PostgreSQL halves of the integration tests show as ignored,
//! with the reason, when no test database is configured: a skipped test
//! should say so in `cargo test`'s own output, not pass silently.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(vigil_pg)");
    println!("cargo::rerun-if-env-changed=VIGIL_TEST_DATABASE_URL");
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var_os("VIGIL_TEST_DATABASE_URL").is_some_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=vigil_pg");
    }
}
