//! Runs cookie test vectors through the whole middleware.
//!
//! A vector file is a JSON array of cases. Each case lists responses
//! (`steps`: a request URL and the `Set-Cookie` lines of its response) and
//! later requests (`expect`: a request URL and the exact `Cookie` header the
//! client must send, or `""` for none). Steps and expectations run in order
//! on one fresh jar.

use std::{
    convert::Infallible,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use http::{HeaderValue, Request, Response, header};
use serde_json::Value;
use tower::{Service, ServiceExt, service_fn};
use tower_sticky::{CookieJar, Sticky};

/// Tag of cases where RFC 6265 and browsers disagree. The expectation
/// follows RFC 6265, and so does this crate.
pub const TAG_RFC_VS_BROWSERS: &str = "rfc6265-vs-browsers";
/// Tag of cases that only hold with a public suffix list loaded.
pub const TAG_PUBLIC_SUFFIX: &str = "needs-public-suffix-list";

/// One case of a vector file.
pub struct Case {
    pub id: String,
    pub file: PathBuf,
    pub tags: Vec<String>,
    steps: Vec<Step>,
    expect: Vec<Expectation>,
}

struct Step {
    url: String,
    set_cookie: Vec<String>,
}

struct Expectation {
    url: String,
    cookie: String,
}

/// A request whose `Cookie` header differed from the expected one.
pub struct Mismatch {
    pub url: String,
    pub expected: String,
    pub actual: String,
}

impl Case {
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

/// Returns the folder of the shared cookie vectors, beside the crate.
pub fn shared_cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/cases")
}

/// Lists the vector files to run: every `*.json` in `dir` (sorted), then each
/// path of the colon-separated `TOWER_STICKY_EXTRA_VECTORS`.
pub fn vector_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|entry| entry.expect("readable directory entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    if let Ok(extra) = std::env::var("TOWER_STICKY_EXTRA_VECTORS") {
        files.extend(
            extra
                .split(':')
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
        );
    }
    files
}

/// Reads the cases of one vector file. Panics with the file name on a
/// malformed file, so a broken vector never passes unnoticed.
pub fn load_cases(file: &Path) -> Vec<Case> {
    let text = std::fs::read_to_string(file)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", file.display()));
    let json: Value = serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("{} is not valid JSON: {error}", file.display()));
    let cases = json
        .as_array()
        .unwrap_or_else(|| panic!("{} is not a JSON array", file.display()));
    cases.iter().map(|case| parse_case(case, file)).collect()
}

fn string_field(value: &Value, field: &str, context: &str) -> String {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("{context}: field `{field}` is missing or not a string"))
        .to_owned()
}

fn parse_case(case: &Value, file: &Path) -> Case {
    let id = string_field(case, "id", &file.display().to_string());
    let context = format!("{} case {id}", file.display());
    let array = |field: &str| -> Vec<Value> {
        case[field]
            .as_array()
            .unwrap_or_else(|| panic!("{context}: field `{field}` is missing or not an array"))
            .clone()
    };
    let steps = array("steps")
        .iter()
        .map(|step| Step {
            url: string_field(step, "request_url", &context),
            set_cookie: step["set_cookie"]
                .as_array()
                .unwrap_or_else(|| panic!("{context}: a step has no `set_cookie` array"))
                .iter()
                .map(|line| {
                    line.as_str()
                        .expect("Set-Cookie line is a string")
                        .to_owned()
                })
                .collect(),
        })
        .collect();
    let expect = array("expect")
        .iter()
        .map(|expectation| Expectation {
            url: string_field(expectation, "request_url", &context),
            cookie: string_field(expectation, "cookie", &context),
        })
        .collect();
    let tags = case["tags"]
        .as_array()
        .map(|tags| {
            tags.iter()
                .map(|tag| tag.as_str().expect("tag is a string").to_owned())
                .collect()
        })
        .unwrap_or_default();
    Case {
        id,
        file: file.to_owned(),
        tags,
        steps,
        expect,
    }
}

type Script = Arc<Mutex<Vec<HeaderValue>>>;
type Recorded = Arc<Mutex<Option<HeaderValue>>>;

/// Runs `case` through a [`Sticky`] service over `jar` and returns every
/// expectation that did not hold.
pub async fn run_case<J>(case: &Case, jar: J) -> Vec<Mismatch>
where
    J: CookieJar + Clone,
{
    // The inner service responds with the `Set-Cookie` lines queued in
    // `script` and records the `Cookie` header it received.
    let script: Script = Arc::default();
    let recorded: Recorded = Arc::default();
    let inner = {
        let script = Arc::clone(&script);
        let recorded = Arc::clone(&recorded);
        service_fn(move |request: Request<()>| {
            let mut cookies = request.headers().get_all(header::COOKIE).iter();
            let first = cookies.next().cloned();
            assert!(
                cookies.next().is_none(),
                "the middleware sent two Cookie headers"
            );
            *recorded.lock().unwrap() = first;
            let mut response = Response::new(());
            for value in script.lock().unwrap().drain(..) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            async move { Ok::<_, Infallible>(response) }
        })
    };
    let mut service = Sticky::with_jar(inner, jar);

    for step in &case.steps {
        let lines = step.set_cookie.iter().map(|line| {
            HeaderValue::from_bytes(line.as_bytes()).unwrap_or_else(|error| {
                panic!(
                    "case {}: Set-Cookie {line:?} is not a header value: {error}",
                    case.id
                )
            })
        });
        script.lock().unwrap().extend(lines);
        send(&mut service, &step.url, &case.id).await;
    }

    let mut mismatches = Vec::new();
    for expectation in &case.expect {
        send(&mut service, &expectation.url, &case.id).await;
        let actual = recorded
            .lock()
            .unwrap()
            .take()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .unwrap_or_default();
        if actual != expectation.cookie {
            mismatches.push(Mismatch {
                url: expectation.url.clone(),
                expected: expectation.cookie.clone(),
                actual,
            });
        }
    }
    mismatches
}

async fn send<S>(service: &mut S, url: &str, id: &str)
where
    S: Service<Request<()>, Response = Response<()>, Error = Infallible>,
{
    let request = Request::get(url)
        .body(())
        .unwrap_or_else(|error| panic!("case {id}: request URL {url:?} is invalid: {error}"));
    service
        .ready()
        .await
        .expect("infallible")
        .call(request)
        .await
        .expect("infallible");
}

/// Formats the mismatches of one case for a failure message.
pub fn describe(case: &Case, mismatches: &[Mismatch]) -> String {
    let mut text = format!("case {} ({}):", case.id, case.file.display());
    for mismatch in mismatches {
        text.push_str(&format!(
            "\n    {}\n      expected Cookie: {:?}\n      actual Cookie:   {:?}",
            mismatch.url, mismatch.expected, mismatch.actual
        ));
    }
    text
}
