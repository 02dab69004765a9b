//! Mirrored jars over a real `redis-server` on 127.0.0.1.
//!
//! Each test starts its own server on a free port, without persistence, and
//! stops it by its process id through the guard in `support`. Each test
//! uses its own key prefix. Without `redis-server` the tests are skipped,
//! or fail with `TOWER_STICKY_REQUIRE_SERVERS=1`.

#![cfg(feature = "redis")]

/// Writes a `skipped:` line straight to stderr: libtest hides `eprintln!`
/// output of passing tests, and a skip must stay visible.
macro_rules! skip_line {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

#[path = "../examples/support/alb.rs"]
mod alb;
mod cases;
mod support;

use std::{
    convert::Infallible,
    path::PathBuf,
    process::{Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::Full;
use redis::AsyncCommands;
use support::{ServerProcess, TempDir, free_port, require_binary};
use tower::{Service, ServiceExt, service_fn};
use tower_sticky::{
    CookieJar, MemoryJar, RequestTarget, Sticky,
    jar::{Cookie, CookieKey},
    remote::{MirroredJar, RedisBackend},
};

type Jar = MirroredJar<RedisBackend>;

/// Upper bound for a change to reach another jar, polled every 10 ms.
const CONVERGE_WAIT: Duration = Duration::from_secs(5);
/// Upper bound for jars to recover after the server restarts.
const RECOVERY_WAIT: Duration = Duration::from_secs(15);
/// Upper bound for one run of the example client.
const EXAMPLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A `redis-server` child process on 127.0.0.1, killed (SIGKILL) and reaped
/// when dropped.
struct RedisServer {
    port: u16,
    _process: ServerProcess,
    _dir: TempDir,
}

impl RedisServer {
    /// Starts a server on a free port, or returns `None` when
    /// `redis-server` is not installed and the test should be skipped.
    async fn start() -> Option<Self> {
        let binary = require_binary("redis-server")?;
        Some(RedisServer::start_on(binary, free_port()).await)
    }

    async fn start_on(binary: PathBuf, port: u16) -> Self {
        let dir = TempDir::new("redis");
        let mut command = Command::new(binary);
        command
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir.path());
        let output = dir.path().join("redis.log");
        let mut process = ServerProcess::spawn("redis-server", command, output);
        process.wait_for_port(port).await;
        RedisServer {
            port,
            _process: process,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        url(self.port)
    }
}

fn url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}/")
}

/// Returns a key prefix that no other test and no other test process uses.
fn unique_prefix(test: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("test:{test}:{}:{count}:", std::process::id())
}

fn backend(port: u16, prefix: &str) -> RedisBackend {
    RedisBackend::builder(url(port).as_str())
        .prefix(prefix)
        .connection_timeout(Duration::from_millis(500))
        .response_timeout(Duration::from_secs(1))
        .ping_interval(Duration::from_secs(1))
        .build()
        .expect("valid Redis settings")
}

/// Builds a mirrored jar with short retry delays, so that tests recover
/// quickly after an outage.
async fn mirrored(port: u16, prefix: &str) -> Jar {
    MirroredJar::builder(backend(port, prefix))
        .load_timeout(Duration::from_secs(5))
        .operation_timeout(Duration::from_secs(2))
        .retry_delays(Duration::from_millis(20), Duration::from_millis(300))
        .build()
        .await
}

fn store(jar: &impl CookieJar, target: &RequestTarget<'_>, line: &str) {
    let value = HeaderValue::from_str(line).expect("valid Set-Cookie value");
    jar.store(target, &mut std::iter::once(&value));
}

fn header(jar: &impl CookieJar, target: &RequestTarget<'_>) -> Option<String> {
    jar.cookie_header(target)
        .map(|value| value.to_str().expect("ASCII Cookie header").to_owned())
}

/// Polls `check` every 10 ms until it returns true or `limit` passes, and
/// returns its last result.
async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    check()
}

async fn redis_connection(port: u16) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url(port).as_str())
        .expect("valid URL")
        .get_multiplexed_async_connection()
        .await
        .expect("connected to the test server")
}

const SITE: RequestTarget<'static> = RequestTarget::new("api.test", "/", false);

#[tokio::test]
async fn stored_cookie_reaches_other_jar() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let prefix = unique_prefix("reach");
    let first = mirrored(redis.port, &prefix).await;
    let second = mirrored(redis.port, &prefix).await;

    store(&first, &SITE, "AWSALB=backend-2; Path=/");
    let reached = eventually(CONVERGE_WAIT, || {
        header(&second, &SITE).as_deref() == Some("AWSALB=backend-2")
    })
    .await;
    assert!(reached, "second jar holds {:?}", header(&second, &SITE));
    assert_eq!(second.stats().applied, 1);
    assert_eq!(first.stats().published, 1);
}

#[tokio::test]
async fn deletion_reaches_other_jar() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let prefix = unique_prefix("delete");
    let first = mirrored(redis.port, &prefix).await;
    let second = mirrored(redis.port, &prefix).await;

    store(&first, &SITE, "SERVERID=app-1; Path=/");
    assert!(eventually(CONVERGE_WAIT, || header(&second, &SITE).is_some()).await);
    store(&first, &SITE, "SERVERID=; Path=/; Max-Age=0");
    assert_eq!(header(&first, &SITE), None);
    let deleted = eventually(CONVERGE_WAIT, || second.is_empty()).await;
    assert!(deleted, "second jar holds {:?}", header(&second, &SITE));

    // A process that starts after the deletion does not load the cookie.
    let third = mirrored(redis.port, &prefix).await;
    assert_eq!(third.stats().remote_loads, 1);
    assert!(third.is_empty());
}

#[tokio::test]
async fn new_jar_loads_shared_state() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let prefix = unique_prefix("load");
    let first = mirrored(redis.port, &prefix).await;
    store(&first, &SITE, "AWSALB=pinned; Path=/; Max-Age=600");
    first
        .flush(CONVERGE_WAIT)
        .await
        .expect("published to Redis");

    let late = mirrored(redis.port, &prefix).await;
    assert_eq!(header(&late, &SITE).as_deref(), Some("AWSALB=pinned"));
    let loaded = &late.cookies()[0];
    assert_eq!(loaded.expires(), first.cookies()[0].expires());
}

#[tokio::test]
async fn other_prefix_not_shared() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let first = mirrored(redis.port, &unique_prefix("isolated-a")).await;
    store(&first, &SITE, "AWSALB=a; Path=/");
    first
        .flush(CONVERGE_WAIT)
        .await
        .expect("published to Redis");
    let other = mirrored(redis.port, &unique_prefix("isolated-b")).await;
    assert!(other.is_empty());
}

#[tokio::test]
async fn concurrent_writes_converge() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let prefix = unique_prefix("race");
    let first = mirrored(redis.port, &prefix).await;
    let second = mirrored(redis.port, &prefix).await;

    store(&first, &SITE, "AWSALB=from-first; Path=/");
    store(&second, &SITE, "AWSALB=from-second; Path=/");
    let converged = eventually(CONVERGE_WAIT, || {
        let held = header(&first, &SITE);
        held.is_some() && held == header(&second, &SITE)
    })
    .await;
    assert!(
        converged,
        "first holds {:?}, second holds {:?}",
        header(&first, &SITE),
        header(&second, &SITE)
    );

    // Redis stores the same winner, so a process that starts now agrees.
    let late = mirrored(redis.port, &prefix).await;
    assert_eq!(header(&late, &SITE), header(&first, &SITE));
}

#[tokio::test]
async fn cookie_ttls_follow_expiry() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let prefix = unique_prefix("ttl");
    let session_ttl = Duration::from_secs(90);
    let backend = RedisBackend::builder(redis.url().as_str())
        .prefix(&prefix)
        .session_ttl(session_ttl)
        .build()
        .expect("valid Redis settings");
    let jar = MirroredJar::new(backend).await;

    let expires = alb::imf_fixdate(SystemTime::now() + Duration::from_secs(7200));
    store(&jar, &SITE, "by_max_age=1; Path=/; Max-Age=3600");
    store(
        &jar,
        &SITE,
        &format!("by_expires=2; Path=/; Expires={expires}"),
    );
    store(&jar, &SITE, "session=3; Path=/");
    jar.flush(CONVERGE_WAIT).await.expect("published to Redis");

    let mut connection = redis_connection(redis.port).await;
    let mut ttl_of = async |name: &str| -> i64 {
        let key = jar.backend().cookie_key(&CookieKey {
            domain: "api.test".to_owned(),
            host_only: true,
            path: b"/".to_vec(),
            name: name.as_bytes().to_vec(),
        });
        connection.pttl(&key).await.expect("PTTL")
    };
    // Tolerances cover the seconds between the store and PTTL, and the
    // whole-second precision of Expires.
    let by_max_age = ttl_of("by_max_age").await;
    assert!(
        (3_540_000..=3_600_000).contains(&by_max_age),
        "PTTL {by_max_age}"
    );
    let by_expires = ttl_of("by_expires").await;
    assert!(
        (7_140_000..=7_200_000).contains(&by_expires),
        "PTTL {by_expires}"
    );
    let session = ttl_of("session").await;
    assert!((60_000..=90_000).contains(&session), "PTTL {session}");
}

#[tokio::test]
async fn deletion_record_expires() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let prefix = unique_prefix("tombstone");
    let backend = RedisBackend::builder(redis.url().as_str())
        .prefix(&prefix)
        .tombstone_ttl(Duration::from_secs(120))
        .build()
        .expect("valid Redis settings");
    let jar = MirroredJar::new(backend).await;
    store(&jar, &SITE, "gone=1; Path=/");
    jar.flush(CONVERGE_WAIT).await.expect("published to Redis");
    store(&jar, &SITE, "gone=1; Path=/; Max-Age=0");
    jar.flush(CONVERGE_WAIT).await.expect("published to Redis");

    let key = jar.backend().cookie_key(&jar_key("gone"));
    let mut connection = redis_connection(redis.port).await;
    let record: String = connection.get(&key).await.expect("GET");
    assert!(record.contains("\"deleted\":true"), "{record}");
    assert!(!record.contains("\"value\""), "{record}");
    let ttl: i64 = connection.pttl(&key).await.expect("PTTL");
    assert!((90_000..=120_000).contains(&ttl), "PTTL {ttl}");
}

fn jar_key(name: &str) -> CookieKey {
    CookieKey {
        domain: "api.test".to_owned(),
        host_only: true,
        path: b"/".to_vec(),
        name: name.as_bytes().to_vec(),
    }
}

#[tokio::test]
async fn undecodable_record_skipped() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let prefix = unique_prefix("garbage");
    let first = mirrored(redis.port, &prefix).await;
    store(&first, &SITE, "good=1; Path=/");
    first
        .flush(CONVERGE_WAIT)
        .await
        .expect("published to Redis");
    let mut connection = redis_connection(redis.port).await;
    let garbage_key = format!("{prefix}cookie:api.test:host:/:bad");
    let () = connection.set(&garbage_key, "not json").await.expect("SET");

    let late = mirrored(redis.port, &prefix).await;
    assert_eq!(header(&late, &SITE).as_deref(), Some("good=1"));
}

/// The state of the scripted backend behind the layer in
/// [`restart_mid_load_loses_nothing`].
#[derive(Default)]
struct LoadState {
    sent: usize,
    /// The `AWSALB` value of the last response.
    last_value: Option<String>,
    /// Requests that did not carry the last `AWSALB` value.
    unpinned: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_load_loses_nothing() {
    let Some(binary) = require_binary("redis-server") else {
        return;
    };
    let port = free_port();
    let mut redis = Some(RedisServer::start_on(binary.clone(), port).await);
    let prefix = unique_prefix("restart");
    let first = Arc::new(mirrored(port, &prefix).await);
    let second = mirrored(port, &prefix).await;

    // A backend that rotates AWSALB on every response, like an ALB, and
    // checks that each request carries the value of the response before.
    let state = Arc::new(Mutex::new(LoadState::default()));
    let inner = {
        let state = Arc::clone(&state);
        service_fn(move |request: Request<()>| {
            let mut state = state.lock().unwrap();
            let sent = request
                .headers()
                .get(header::COOKIE)
                .map(|value| value.to_str().unwrap_or("<not ASCII>").to_owned())
                .unwrap_or_default();
            if let Some(last) = &state.last_value
                && !sent
                    .split("; ")
                    .any(|pair| pair == format!("AWSALB={last}"))
            {
                state.unpinned.push(sent);
            }
            state.sent += 1;
            let value = format!("v{}", state.sent);
            let mut response = Response::new(());
            let awsalb = format!("AWSALB={value}; Path=/; Max-Age=600");
            response
                .headers_mut()
                .append(header::SET_COOKIE, awsalb.parse().unwrap());
            if state.sent == 150 {
                let marker = "outage=written-during; Path=/".parse().unwrap();
                response.headers_mut().append(header::SET_COOKIE, marker);
            }
            state.last_value = Some(value);
            async move { Ok::<_, Infallible>(response) }
        })
    };
    let mut client = Sticky::with_jar(inner, Arc::clone(&first));

    let mut failed = 0;
    for index in 0..300 {
        if index == 100 {
            // Dropping the guard kills the server with SIGKILL.
            redis = None;
        }
        if index == 200 {
            redis = Some(RedisServer::start_on(binary.clone(), port).await);
        }
        let request = Request::get("http://api.test/records").body(()).unwrap();
        let call = async { client.ready().await?.call(request).await };
        match tokio::time::timeout(Duration::from_secs(5), call).await {
            Ok(Ok(_)) => {}
            Ok(Err(never)) => match never {},
            Err(_) => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    assert!(redis.is_some());
    assert_eq!(failed, 0, "requests timed out");
    let unpinned = state.lock().unwrap().unpinned.clone();
    assert!(
        unpinned.is_empty(),
        "requests without the last AWSALB: {unpinned:?}"
    );

    // The cookie written during the outage reaches the other jar.
    let reached = eventually(RECOVERY_WAIT, || {
        header(&second, &SITE).is_some_and(|header| header.contains("outage=written-during"))
    })
    .await;
    assert!(reached, "second jar holds {:?}", header(&second, &SITE));
    let converged = eventually(RECOVERY_WAIT, || {
        header(&second, &SITE) == header(&*first, &SITE)
    })
    .await;
    assert!(
        converged,
        "first holds {:?}, second holds {:?}",
        header(&*first, &SITE),
        header(&second, &SITE)
    );

    let writer = first.stats();
    let reader = second.stats();
    println!("writer: {writer:?}\nreader: {reader:?}");
    assert!(writer.outages >= 1, "{writer:?}");
    assert!(writer.publish_failures + writer.retries >= 1, "{writer:?}");
    assert!(writer.reconnects >= 1, "{writer:?}");
    assert!(reader.outages >= 1, "{reader:?}");
    assert!(reader.reconnects >= 1, "{reader:?}");
    assert!(reader.resyncs >= 1, "{reader:?}");
    assert!(first.is_connected());
    assert!(second.is_connected());
}

/// Builds the example `name` with this test's features, and returns the
/// path of its binary beside this test's (`target/debug/examples`).
///
/// `cargo test --test redis` does not build examples, so the test builds it
/// itself. The call is quick when the binary is up to date.
fn build_example(name: &str) -> PathBuf {
    let test_binary = std::env::current_exe().expect("path of the test binary");
    let profile_dir = test_binary
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary in target/<profile>/deps");
    let target_dir = profile_dir.parent().expect("target directory");
    let features = [
        ("persist", cfg!(feature = "persist")),
        ("public-suffix", cfg!(feature = "public-suffix")),
        ("mirror", cfg!(feature = "mirror")),
        ("redis", cfg!(feature = "redis")),
    ]
    .iter()
    .filter(|(_, on)| *on)
    .map(|(feature, _)| *feature)
    .collect::<Vec<_>>()
    .join(",");

    let mut command = Command::new(env!("CARGO"));
    command
        .args(["build", "--quiet", "--offline", "--example", name])
        .args(["--features", &features])
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    if profile_dir.file_name().is_some_and(|dir| dir == "release") {
        command.arg("--release");
    }
    let status = command
        .status()
        .unwrap_or_else(|error| panic!("failed to run {command:?}: {error}"));
    assert!(status.success(), "{command:?} failed with {status}");
    profile_dir.join("examples").join(name)
}

/// Runs the example client once and returns its standard output. Fails the
/// test when it exits with an error or runs longer than [`EXAMPLE_TIMEOUT`].
async fn run_example_client(binary: &PathBuf, redis: &str, balancer: &str, prefix: &str) -> String {
    let dir = TempDir::new("redis-shared");
    let stdout_path = dir.path().join("stdout");
    let stderr_path = dir.path().join("stderr");
    let stdout = std::fs::File::create(&stdout_path).expect("stdout file");
    let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
    let child = Command::new(binary)
        .args(["--redis", redis, "--balancer", balancer, "--prefix", prefix])
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|error| panic!("failed to start {}: {error}", binary.display()));
    let mut child = ChildGuard(child);

    let deadline = tokio::time::Instant::now() + EXAMPLE_TIMEOUT;
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("status of the example") {
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the example ran longer than {EXAMPLE_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let output = std::fs::read_to_string(&stdout_path).expect("stdout of the example");
    let errors = std::fs::read_to_string(&stderr_path).expect("stderr of the example");
    assert!(
        status.success(),
        "the example failed with {status}\nstdout:\n{output}\nstderr:\n{errors}"
    );
    output
}

/// Kills and reaps a child process on drop, so a failing test leaves none.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn first_backend(output: &str) -> String {
    output
        .lines()
        .find_map(|line| line.strip_prefix("first-backend: "))
        .unwrap_or_else(|| panic!("no first-backend line in:\n{output}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_process_keeps_backend() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let binary = tokio::task::spawn_blocking(|| build_example("redis_shared"))
        .await
        .expect("build task");
    let balancer = alb::start_balancer(3, |backend, _request| async move {
        let response = Response::builder()
            .header("x-backend", backend)
            .body(Full::new(Bytes::from(format!("backend {backend}"))))?;
        Ok(response)
    })
    .await
    .expect("balancer started");
    let balancer_url = format!("http://{}/", balancer.address);
    let prefix = unique_prefix("processes");

    let first = run_example_client(&binary, &redis.url(), &balancer_url, &prefix).await;
    let second = run_example_client(&binary, &redis.url(), &balancer_url, &prefix).await;
    assert_eq!(first_backend(&second), first_backend(&first), "{second}");
    assert!(second.contains("loaded-cookies: 2"), "{second}");

    // Without the shared cookie the balancer sends a request elsewhere, so
    // the check above could fail.
    let client = support::http_client();
    let mut bare = client.clone();
    let response = support::send_get(&mut bare, &balancer_url).await;
    let fresh = response.headers()["x-backend"].to_str().unwrap().to_owned();
    assert_ne!(fresh, first_backend(&first));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_cases_through_mirrored_jar() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let dir = cases::shared_cases_dir();
    let files = cases::vector_files(&dir);
    if files.is_empty() {
        let message = format!("no cookie vectors found in {}", dir.display());
        let required = std::env::var(support::REQUIRE_SERVERS_ENV).is_ok_and(|value| value == "1");
        assert!(!required, "{message}");
        skip_line!("skipped: conformance_cases_through_mirrored_jar: {message}");
        return;
    }

    let (mut ran, mut tagged) = (0, 0);
    let mut failures = Vec::new();
    for file in &files {
        for case in cases::load_cases(file) {
            if case.has_tag(cases::TAG_PUBLIC_SUFFIX) {
                continue;
            }
            ran += 1;
            tagged += usize::from(case.has_tag(cases::TAG_RFC_VS_BROWSERS));
            let prefix = unique_prefix(&format!("case-{}", case.id));
            let jar = Arc::new(mirrored(redis.port, &prefix).await);
            let mismatches = cases::run_case(&case, Arc::clone(&jar)).await;
            if !mismatches.is_empty() {
                failures.push(cases::describe(&case, &mismatches));
                continue;
            }
            // What the jar published loads into a new process unchanged.
            if let Err(error) = jar.flush(CONVERGE_WAIT).await {
                failures.push(format!("case {}: {error}", case.id));
                continue;
            }
            let reloaded = mirrored(redis.port, &prefix).await;
            let held = sorted_live(jar.cookies());
            let loaded = sorted_live(reloaded.cookies());
            if held != loaded {
                failures.push(format!(
                    "case {}: a new jar loaded {loaded:?}, the jar holds {held:?}",
                    case.id
                ));
            }
        }
    }
    println!(
        "mirrored conformance: ran={ran} failed={} tagged={tagged}",
        failures.len()
    );
    assert!(ran > 0, "no case ran");
    assert!(
        failures.is_empty(),
        "{} cases failed with a mirrored jar:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Returns the cookies that have not expired, sorted by key, for comparing
/// two jars. Cookies compare by value too, although `Debug` hides it.
fn sorted_live(cookies: Vec<Cookie>) -> Vec<Cookie> {
    let now = SystemTime::now();
    let mut listed: Vec<Cookie> = cookies
        .into_iter()
        .filter(|cookie| !cookie.is_expired_at(now))
        .collect();
    listed.sort_by_key(|cookie| {
        let key = cookie.key();
        (key.domain, key.host_only, key.path, key.name)
    });
    listed
}

#[tokio::test]
async fn memory_jar_setup_kept() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let prefix = unique_prefix("filter");
    let filtered = MirroredJar::builder(backend(redis.port, &prefix))
        .jar_builder(MemoryJar::builder().filter(tower_sticky::jar::CookieFilter::load_balancers()))
        .build()
        .await;
    store(&filtered, &SITE, "AWSALB=kept; Path=/");
    store(&filtered, &SITE, "tracking=dropped; Path=/");
    assert_eq!(header(&filtered, &SITE).as_deref(), Some("AWSALB=kept"));
    filtered
        .flush(CONVERGE_WAIT)
        .await
        .expect("published to Redis");
    let plain = mirrored(redis.port, &prefix).await;
    assert_eq!(header(&plain, &SITE).as_deref(), Some("AWSALB=kept"));
}
