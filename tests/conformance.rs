//! Runs every shared cookie test vector through the middleware with a
//! `MemoryJar`.
//!
//! Cases tagged `rfc6265-vs-browsers` expect the RFC 6265 behaviour, which
//! is the crate's documented choice, so they must pass too. Cases tagged
//! `needs-public-suffix-list` run only with the `public-suffix` feature and a
//! list loaded.

mod cases;

use std::sync::Arc;

use cases::{TAG_PUBLIC_SUFFIX, TAG_RFC_VS_BROWSERS};
use tower_sticky::MemoryJar;

fn require_vectors() -> bool {
    std::env::var("TOWER_STICKY_REQUIRE_SERVERS").is_ok_and(|value| value == "1")
}

#[tokio::test]
async fn conformance_vectors() {
    let dir = cases::shared_cases_dir();
    let files = cases::vector_files(&dir);
    if files.is_empty() {
        let message = format!(
            "no cookie vectors found in {} and TOWER_STICKY_EXTRA_VECTORS is unset",
            dir.display()
        );
        assert!(!require_vectors(), "{message}");
        eprintln!("skipped: conformance_vectors: {message} (a published crate ships without them)");
        return;
    }

    let (mut passed, mut tagged, mut skipped) = (0, 0, 0);
    let mut failures = Vec::new();
    for file in &files {
        for case in cases::load_cases(file) {
            if case.has_tag(TAG_PUBLIC_SUFFIX) {
                skipped += 1;
                continue;
            }
            let jar = Arc::new(MemoryJar::new());
            let mismatches = cases::run_case(&case, jar).await;
            if case.has_tag(TAG_RFC_VS_BROWSERS) {
                tagged += 1;
            }
            if mismatches.is_empty() {
                passed += 1;
            } else {
                failures.push(cases::describe(&case, &mismatches));
            }
        }
    }

    println!(
        "conformance summary: passed={passed} failed={} tagged={tagged}",
        failures.len()
    );
    if skipped > 0 {
        println!(
            "conformance: {skipped} cases tagged {TAG_PUBLIC_SUFFIX} not run \
             (they need the public-suffix feature and a list)"
        );
    }
    assert!(
        failures.is_empty(),
        "{} conformance cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
