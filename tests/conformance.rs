//! Runs every shared cookie test vector through the middleware with a
//! `MemoryJar`.
//!
//! Cases tagged `rfc6265-vs-browsers` expect the RFC 6265 behaviour, which
//! is the crate's documented choice, so they must pass too. Cases tagged
//! `needs-public-suffix-list` run only with the `public-suffix` feature and
//! Debian's copy of the list (package `publicsuffix`). The other cases run
//! on a jar without a list and, when a list is loaded, on a jar with one.

/// Writes a `skipped:` line straight to stderr: libtest hides `eprintln!`
/// output of passing tests, and a skip must stay visible.
macro_rules! skip_line {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

/// Writes a line straight to stdout, past libtest's output capture.
macro_rules! report_line {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

mod cases;

use std::sync::Arc;

use cases::{TAG_PUBLIC_SUFFIX, TAG_RFC_VS_BROWSERS};
use tower_sticky::MemoryJar;

fn require_vectors() -> bool {
    std::env::var("TOWER_STICKY_REQUIRE_SERVERS").is_ok_and(|value| value == "1")
}

/// Makes the jars a case runs on: one without a public suffix list and,
/// with the `public-suffix` feature and a list on disk, one with it.
struct Jars {
    #[cfg(feature = "public-suffix")]
    list: Option<Arc<tower_sticky::jar::PublicSuffixList>>,
}

impl Jars {
    fn new() -> Self {
        #[cfg(feature = "public-suffix")]
        {
            use tower_sticky::jar::{DEBIAN_LIST_PATH, PublicSuffixList};
            let list = match PublicSuffixList::from_file(DEBIAN_LIST_PATH) {
                Ok(list) => Some(Arc::new(list)),
                Err(error) => {
                    let message = format!(
                        "cannot read the public suffix list at {DEBIAN_LIST_PATH}: {error} \
                         (install Debian package publicsuffix)"
                    );
                    assert!(!require_vectors(), "{message}");
                    skip_line!("skipped: public-suffix conformance cases: {message}");
                    None
                }
            };
            Jars { list }
        }
        #[cfg(not(feature = "public-suffix"))]
        Jars {}
    }

    /// Returns each jar to run a case on, with its name for messages.
    fn for_case(&self, needs_list: bool) -> Vec<(&'static str, Arc<MemoryJar>)> {
        let mut jars = Vec::new();
        if !needs_list {
            jars.push(("without a public suffix list", Arc::new(MemoryJar::new())));
        }
        #[cfg(feature = "public-suffix")]
        if let Some(list) = &self.list {
            let jar = MemoryJar::builder()
                .public_suffix_list(Arc::clone(list))
                .build();
            jars.push(("with the public suffix list", Arc::new(jar)));
        }
        jars
    }
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
        skip_line!(
            "skipped: conformance_vectors: {message} (a published crate ships without them)"
        );
        return;
    }

    let jars = Jars::new();
    let (mut passed, mut failed_cases, mut tagged, mut skipped) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for file in &files {
        for case in cases::load_cases(file) {
            let runs = jars.for_case(case.has_tag(TAG_PUBLIC_SUFFIX));
            if runs.is_empty() {
                skipped += 1;
                continue;
            }
            if case.has_tag(TAG_RFC_VS_BROWSERS) {
                tagged += 1;
            }
            let mut case_failed = false;
            for (jar_name, jar) in runs {
                let mismatches = cases::run_case(&case, jar).await;
                if !mismatches.is_empty() {
                    case_failed = true;
                    failures.push(format!(
                        "{} {jar_name}",
                        cases::describe(&case, &mismatches)
                    ));
                }
            }
            if case_failed {
                failed_cases += 1;
            } else {
                passed += 1;
            }
        }
    }

    // Written past libtest's capture, so the summary shows in every run.
    report_line!("conformance summary: passed={passed} failed={failed_cases} tagged={tagged}");
    if skipped > 0 {
        report_line!(
            "conformance: {skipped} cases tagged {TAG_PUBLIC_SUFFIX} not run \
             (they need the public-suffix feature and a list)"
        );
    }
    assert!(
        failures.is_empty(),
        "{failed_cases} conformance cases failed:\n{}",
        failures.join("\n")
    );
}
