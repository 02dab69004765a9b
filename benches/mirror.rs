//! The request-path cost of a mirrored jar, and the time a change takes to
//! reach another jar through Redis.
//!
//! The request-path groups call the jar through `CookieJar` directly, the
//! in-memory jar beside a mirrored jar over an in-process backend whose
//! operations do nothing (loads are empty, publishes succeed at once, and
//! no change ever arrives). The difference is the mirrored jar's own work:
//! the lock around the store, the change record and the coalescing map.
//! These groups need no Redis.
//!
//! The propagation measurement starts `redis-server` on a free port of
//! 127.0.0.1 when it is installed, and times 200 changes from `store` on
//! one jar until another jar, on its own connections, sends the new value.
//! Coalescing is off for it, so each change goes out at once. Without
//! `redis-server` it prints a `skipped:` line.

use std::{
    convert::Infallible,
    future::{Future, pending},
    hint::black_box,
    net::{Ipv4Addr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::Criterion;
use http::HeaderValue;
use tokio::runtime::Runtime;
use tower_sticky::{
    CookieJar, MemoryJar, RequestTarget,
    remote::{ChangeStream, MirroredJar, RedisBackend, RemoteBackend, RemoteChange},
};

const TARGET: RequestTarget<'static> = RequestTarget::new("api.example", "/records", false);

/// Distinct rotating values the capture benchmark cycles through.
const ROTATIONS: usize = 1024;

/// Changes timed in the propagation measurement.
const PROPAGATION_SAMPLES: usize = 200;

/// Upper bound for one change to propagate before the measurement gives up.
const PROPAGATION_TIMEOUT: Duration = Duration::from_secs(5);

/// A backend that does nothing, so the benchmark measures only the jar's
/// work.
struct NoopBackend;

struct NoChanges;

impl RemoteBackend for NoopBackend {
    type Error = Infallible;
    type Subscription = NoChanges;

    async fn load(&self) -> Result<Vec<RemoteChange>, Infallible> {
        Ok(Vec::new())
    }

    async fn publish(&self, _change: &RemoteChange) -> Result<(), Infallible> {
        Ok(())
    }

    async fn subscribe(&self) -> Result<NoChanges, Infallible> {
        Ok(NoChanges)
    }
}

impl ChangeStream for NoChanges {
    type Error = Infallible;

    fn next_change(&mut self) -> impl Future<Output = Result<RemoteChange, Infallible>> + Send {
        pending()
    }
}

/// Returns `Set-Cookie` pairs as an ALB sends them, with a new value on each
/// response.
fn rotating_pairs() -> Vec<[HeaderValue; 2]> {
    (0..ROTATIONS)
        .map(|index| {
            let value = format!(
                "{:032x}",
                (index as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            );
            let awsalb = format!("AWSALB={value}; Expires=Wed, 01 Jan 2031 00:00:00 GMT; Path=/");
            let cors = format!(
                "AWSALBCORS={value}; Expires=Wed, 01 Jan 2031 00:00:00 GMT; Path=/; SameSite=None"
            );
            [
                HeaderValue::try_from(awsalb).expect("valid header"),
                HeaderValue::try_from(cors).expect("valid header"),
            ]
        })
        .collect()
}

fn bench_jar(criterion: &mut Criterion, group_name: &str, name: &str, jar: &dyn CookieJar) {
    let pairs = rotating_pairs();
    jar.store(&TARGET, &mut pairs[0].iter());

    let mut group = criterion.benchmark_group(group_name);
    group.bench_function(format!("{name}/replay"), |bencher| {
        bencher.iter(|| black_box(jar.cookie_header(black_box(&TARGET))));
    });
    let mut next = 0;
    group.bench_function(format!("{name}/capture_and_replay"), |bencher| {
        bencher.iter(|| {
            next = (next + 1) % ROTATIONS;
            jar.store(black_box(&TARGET), &mut pairs[next].iter());
            black_box(jar.cookie_header(black_box(&TARGET)))
        });
    });
    group.finish();
}

fn request_path(criterion: &mut Criterion, runtime: &Runtime) {
    let memory = Arc::new(MemoryJar::new());
    bench_jar(criterion, "request_path", "memory_jar", &memory);

    let mirrored = Arc::new(runtime.block_on(MirroredJar::new(NoopBackend)));
    bench_jar(criterion, "request_path", "mirrored_jar", &mirrored);
    let stats = mirrored.stats();
    println!(
        "mirrored jar over the no-op backend: published {}, coalesced {}, dropped {}",
        stats.published, stats.coalesced, stats.dropped
    );
}

/// Finds `redis-server` on `PATH` or in the usual system directories.
fn find_redis_server() -> Option<PathBuf> {
    let path_dirs = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    let system_dirs = ["/usr/bin", "/usr/sbin", "/usr/local/bin"].map(PathBuf::from);
    path_dirs
        .into_iter()
        .chain(system_dirs)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
}

/// A `redis-server` child process, killed and reaped on drop.
struct ServerGuard(Child);

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis(binary: &PathBuf) -> Result<(ServerGuard, u16), String> {
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map_err(|error| format!("no free port on 127.0.0.1: {error}"))?
        .port();
    let child = Command::new(binary)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|error| format!("failed to start {}: {error}", binary.display()))?;
    let guard = ServerGuard(child);
    for _ in 0..500 {
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok((guard, port));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(format!(
        "redis-server did not listen on 127.0.0.1:{port} within 5 s"
    ))
}

async fn propagation_jar(port: u16, prefix: &str) -> Result<MirroredJar<RedisBackend>, String> {
    let backend = RedisBackend::builder(format!("redis://127.0.0.1:{port}/").as_str())
        .prefix(prefix)
        .build()
        .map_err(|error| error.to_string())?;
    let jar = MirroredJar::builder(backend)
        .coalesce_interval(Duration::ZERO)
        .build()
        .await;
    if jar.stats().remote_loads == 0 {
        return Err("the jar did not load from redis-server".to_owned());
    }
    Ok(jar)
}

/// Times changes from `store` on one jar until the other jar replays them.
/// The polling thread checks every 20 µs, which bounds the resolution.
fn measure_propagation(runtime: &Runtime, port: u16) -> Result<Vec<Duration>, String> {
    let prefix = format!("bench:{}:", std::process::id());
    let writer = runtime.block_on(propagation_jar(port, &prefix))?;
    let reader = runtime.block_on(propagation_jar(port, &prefix))?;

    let mut samples = Vec::with_capacity(PROPAGATION_SAMPLES);
    for index in 0..PROPAGATION_SAMPLES {
        let value = format!("AWSALB=v{index}; Path=/");
        let expected = format!("AWSALB=v{index}");
        let set_cookie = HeaderValue::try_from(value).expect("valid header");
        let started = Instant::now();
        writer.store(&TARGET, &mut std::iter::once(&set_cookie));
        loop {
            if reader
                .cookie_header(&TARGET)
                .is_some_and(|header| header.as_bytes() == expected.as_bytes())
            {
                samples.push(started.elapsed());
                break;
            }
            if started.elapsed() > PROPAGATION_TIMEOUT {
                return Err(format!(
                    "change {index} did not arrive within {PROPAGATION_TIMEOUT:?}"
                ));
            }
            std::thread::sleep(Duration::from_micros(20));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(samples)
}

fn propagation(runtime: &Runtime) {
    let Some(binary) = find_redis_server() else {
        println!("skipped: propagation: redis-server not found (Debian package redis-server)");
        return;
    };
    let (_server, port) = match start_redis(&binary) {
        Ok(started) => started,
        Err(error) => {
            println!("skipped: propagation: {error}");
            return;
        }
    };
    let mut samples = match measure_propagation(runtime, port) {
        Ok(samples) => samples,
        Err(error) => {
            println!("propagation failed: {error}");
            return;
        }
    };
    samples.sort();
    let at = |fraction: f64| {
        let index = ((samples.len() - 1) as f64 * fraction).round() as usize;
        samples[index].as_secs_f64() * 1e6
    };
    println!(
        "propagation over redis-server on 127.0.0.1, store to replay in another jar, \
         {} changes: min {:.0} us, median {:.0} us, p99 {:.0} us, max {:.0} us",
        samples.len(),
        at(0.0),
        at(0.5),
        at(0.99),
        at(1.0),
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("Tokio runtime");
    let mut criterion = Criterion::default().configure_from_args();
    request_path(&mut criterion, &runtime);
    criterion.final_summary();
    propagation(&runtime);
}
