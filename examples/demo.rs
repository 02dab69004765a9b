//! Sticky sessions against a load balancer that behaves like an AWS ALB.
//!
//! The demo starts, in this process and on 127.0.0.1 only, a load balancer in
//! front of three backends that follows ALB duration-based stickiness. A
//! request without a valid `AWSALB` cookie goes to the next backend in
//! round-robin order, a request with one goes to the backend the cookie names,
//! and every response sets new, opaque `AWSALB` and `AWSALBCORS` values.
//! Each backend caches the data of a few tenants, and a cache miss costs
//! time.
//!
//! A fleet of importers, one client per tenant, posts JSON records to the
//! balancer twice: once with bare hyper-util clients and once with each
//! client wrapped in [`StickyLayer`]. The demo then prints, for both runs,
//! where the requests went, the cache hit rate, throughput and latency, and
//! the jar counters of one sticky client.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example demo
//! cargo run --example demo -- --quick    # fewer records, for CI
//! TOWER_STICKY_DEMO_QUICK=1 cargo run --example demo
//! ```
//!
//! The demo exits with status 1 when the sticky run kept less than 95% of a
//! client's requests on its first backend, or when a client sent the
//! `Secure` cookie `AWSALBCORS` over plain HTTP.

#[path = "support/alb.rs"]
mod alb;

use std::{
    collections::VecDeque,
    process::ExitCode,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use alb::{Balancer, BoxError, CookieTotals, check_cookie_codec, start_balancer};
use bytes::Bytes;
use http::{Request, Response, StatusCode, header::CONTENT_TYPE};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use tokio::task::JoinSet;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_sticky::{MemoryJar, RejectReason, StickyLayer};

/// Backends behind the balancer.
const BACKENDS: usize = 3;
/// Tenants, each with its own importer client and jar.
const TENANTS: usize = 12;
/// Records each importer sends in a normal run.
const RECORDS_PER_TENANT: usize = 100;
/// Records each importer sends with `--quick`.
const QUICK_RECORDS_PER_TENANT: usize = 20;
/// Requests one importer keeps in flight at once. Kept low so that the CPU
/// time of the HTTP stack does not hide the modelled miss cost: on 2 cores
/// with a debug build, 4 in flight cut the measured speed-up from about 2x
/// to about 1.2x.
const IN_FLIGHT_PER_CLIENT: usize = 2;
/// Tenants one backend keeps in its cache: a third of all tenants, so a
/// backend that receives requests for every tenant misses often.
const CACHE_CAPACITY: usize = 4;
/// Modelled cost of loading a tenant's data on a cache miss.
const MISS_COST: Duration = Duration::from_millis(5);
/// Lifetime of the stickiness cookies, as an ALB sets them.
/// The sticky run fails below this share of requests on a client's first
/// backend.
const MIN_STICKY_SHARE: f64 = 0.95;
/// Time limit for one request, so that a broken run stops.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Environment variable that selects the quick mode when set to `1`.
const QUICK_ENV: &str = "TOWER_STICKY_DEMO_QUICK";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("demo failed: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), BoxError> {
    let Some(records) = records_per_tenant()? else {
        return Ok(());
    };
    check_cookie_codec()?;
    print_intro(records);

    let bare_clients: Vec<_> = (0..TENANTS).map(|_| http_client()).collect();
    let bare = summarize("bare hyper-util", &run_fleet(bare_clients, records).await?);

    let layers: Vec<StickyLayer> = (0..TENANTS).map(|_| StickyLayer::new()).collect();
    let sample_jar = Arc::clone(layers[0].jar());
    let sticky_clients: Vec<_> = layers
        .iter()
        .map(|layer| {
            ServiceBuilder::new()
                .layer(layer.clone())
                .service(http_client())
        })
        .collect();
    let sticky = summarize(
        "with StickyLayer",
        &run_fleet(sticky_clients, records).await?,
    );

    print_table(&bare, &sticky);
    print_jar(&sample_jar, records);
    print_model_notes(&sticky);
    check_sticky(&sticky)
}

/// Reads the command line and [`QUICK_ENV`]. Returns `None` after printing
/// the help text.
fn records_per_tenant() -> Result<Option<usize>, BoxError> {
    let mut quick = std::env::var(QUICK_ENV).is_ok_and(|value| value == "1");
    for argument in std::env::args().skip(1) {
        match argument.as_str() {
            "--quick" => quick = true,
            "-h" | "--help" => {
                println!("usage: cargo run --example demo [-- --quick]");
                println!("  --quick  send {QUICK_RECORDS_PER_TENANT} records per tenant");
                println!(
                    "           instead of {RECORDS_PER_TENANT} ({QUICK_ENV}=1 does the same)"
                );
                return Ok(None);
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: cargo run --example demo [-- --quick]"
                )
                .into());
            }
        }
    }
    Ok(Some(if quick {
        QUICK_RECORDS_PER_TENANT
    } else {
        RECORDS_PER_TENANT
    }))
}

fn http_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

// ---------------------------------------------------------------------------
// Backends: a per-tenant LRU cache with a modelled miss cost
// ---------------------------------------------------------------------------

/// Tenants whose data a backend holds, most recently used first.
struct TenantCache {
    recent: VecDeque<String>,
}

impl TenantCache {
    /// Returns whether `tenant` is cached, and marks it most recently used.
    fn touch(&mut self, tenant: &str) -> bool {
        let Some(position) = self.recent.iter().position(|cached| cached == tenant) else {
            return false;
        };
        if let Some(entry) = self.recent.remove(position) {
            self.recent.push_front(entry);
        }
        true
    }

    /// Adds `tenant` as most recently used and evicts the least recently used
    /// tenant past [`CACHE_CAPACITY`].
    fn insert(&mut self, tenant: &str) {
        if self.touch(tenant) {
            return;
        }
        self.recent.push_front(tenant.to_owned());
        self.recent.truncate(CACHE_CAPACITY);
    }
}

struct Backend {
    cache: Mutex<TenantCache>,
}

impl Backend {
    fn new() -> Self {
        Backend {
            cache: Mutex::new(TenantCache {
                recent: VecDeque::with_capacity(CACHE_CAPACITY + 1),
            }),
        }
    }

    /// Handles one record of `tenant`. Returns whether its data was cached.
    ///
    /// A miss waits [`MISS_COST`] and then caches the tenant, so requests
    /// that miss at the same time all pay the cost, as concurrent loads
    /// would.
    async fn handle_record(&self, tenant: &str) -> bool {
        let hit = self.lock_cache().touch(tenant);
        if !hit {
            tokio::time::sleep(MISS_COST).await;
            self.lock_cache().insert(tenant);
        }
        hit
    }

    fn lock_cache(&self) -> MutexGuard<'_, TenantCache> {
        // No code panics while it holds the lock, and a poisoned cache is
        // still a valid list of tenants.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Serves one request on the backend the balancer picked: the body names a
/// tenant, and the response reports whether its data was cached.
async fn handle_record_request(
    caches: Arc<Vec<Backend>>,
    backend: usize,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, BoxError> {
    let body = request.into_body().collect().await?.to_bytes();
    let response = match tenant_of(&body) {
        Some(tenant) => {
            let hit = caches[backend].handle_record(&tenant).await;
            let cache = if hit { "hit" } else { "miss" };
            let body = serde_json::json!({ "backend": backend, "cache": cache }).to_string();
            Response::builder()
                .header(CONTENT_TYPE, "application/json")
                .header("x-backend", backend)
                .header("x-cache", cache)
                .body(Full::from(body))?
        }
        None => Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(Full::from(
                "expected a JSON object with a string field \"tenant\"\n",
            ))?,
    };
    Ok(response)
}

fn tenant_of(body: &[u8]) -> Option<String> {
    let record: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(record.get("tenant")?.as_str()?.to_owned())
}

// ---------------------------------------------------------------------------
// Importer fleet
// ---------------------------------------------------------------------------

/// One request as its client measured it.
#[derive(Debug, Clone, Copy)]
struct Sample {
    backend: usize,
    hit: bool,
    latency: Duration,
}

/// The samples of every client of one fleet run. A client's first sample is
/// its first request, and the others follow in completion order.
struct FleetRun {
    samples: Vec<Vec<Sample>>,
    elapsed: Duration,
    cookies: CookieTotals,
}

/// Runs one importer per client against a new balancer and collects what
/// each request returned.
async fn run_fleet<S>(clients: Vec<S>, records: usize) -> Result<FleetRun, BoxError>
where
    S: Service<Request<Full<Bytes>>, Response = Response<Incoming>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    let caches: Arc<Vec<Backend>> = Arc::new((0..BACKENDS).map(|_| Backend::new()).collect());
    let balancer = start_balancer(BACKENDS, move |backend, request| {
        handle_record_request(Arc::clone(&caches), backend, request)
    })
    .await?;
    let uri: Arc<str> = format!("http://{}/records", balancer.address).into();

    let started = Instant::now();
    let mut importers = JoinSet::new();
    for (tenant, client) in clients.into_iter().enumerate() {
        importers.spawn(run_importer(client, Arc::clone(&uri), tenant, records));
    }
    let mut samples = Vec::with_capacity(TENANTS);
    while let Some(joined) = importers.join_next().await {
        samples.push(joined??);
    }
    let elapsed = started.elapsed();

    Ok(FleetRun {
        samples,
        elapsed,
        cookies: balancer.state.totals(),
    })
}

/// Sends `records` records of one tenant, at most [`IN_FLIGHT_PER_CLIENT`]
/// at a time.
async fn run_importer<S>(
    client: S,
    uri: Arc<str>,
    tenant: usize,
    records: usize,
) -> Result<Vec<Sample>, BoxError>
where
    S: Service<Request<Full<Bytes>>, Response = Response<Incoming>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    // The first record goes alone, so a sticky client has stored its cookie
    // before it sends more. Requests sent in parallel before any response
    // carry no cookie, and the balancer would spread them over the backends.
    let mut samples = vec![send_record(client.clone(), &uri, tenant, 0).await?];

    let next_record = Arc::new(AtomicUsize::new(1));
    let mut workers = JoinSet::new();
    for _ in 0..IN_FLIGHT_PER_CLIENT {
        let client = client.clone();
        let uri = Arc::clone(&uri);
        let next_record = Arc::clone(&next_record);
        workers.spawn(async move {
            let mut samples = Vec::new();
            loop {
                let record = next_record.fetch_add(1, Ordering::Relaxed);
                if record >= records {
                    return Ok::<_, BoxError>(samples);
                }
                samples.push(send_record(client.clone(), &uri, tenant, record).await?);
            }
        });
    }
    while let Some(joined) = workers.join_next().await {
        samples.extend(joined??);
    }
    Ok(samples)
}

/// Posts one JSON record and reads the whole response.
async fn send_record<S>(
    client: S,
    uri: &str,
    tenant: usize,
    record: usize,
) -> Result<Sample, BoxError>
where
    S: Service<Request<Full<Bytes>>, Response = Response<Incoming>>,
    S::Error: Into<BoxError>,
{
    let body = serde_json::json!({
        "tenant": format!("tenant-{tenant:02}"),
        "record": record,
        "amount_cents": (record * 137 + tenant * 31) % 100_000,
    });
    let request = Request::post(uri)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::from(body.to_string()))?;

    let started = Instant::now();
    let exchange = async {
        let response = client.oneshot(request).await.map_err(Into::into)?;
        let (parts, body) = response.into_parts();
        body.collect().await?;
        Ok::<_, BoxError>(parts)
    };
    let parts = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| {
            format!("record {record} of tenant {tenant} timed out after {REQUEST_TIMEOUT:?}")
        })??;
    let latency = started.elapsed();

    if !parts.status.is_success() {
        return Err(format!(
            "balancer returned status {} for record {record} of tenant {tenant}",
            parts.status
        )
        .into());
    }
    let backend = parts
        .headers
        .get("x-backend")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok())
        .filter(|&backend| backend < BACKENDS)
        .ok_or("response has no valid x-backend header")?;
    let hit = parts
        .headers
        .get("x-cache")
        .is_some_and(|value| value == "hit");
    Ok(Sample {
        backend,
        hit,
        latency,
    })
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

struct Summary {
    label: &'static str,
    requests: usize,
    per_backend: [usize; BACKENDS],
    first_backend_share: f64,
    hit_rate: f64,
    throughput: f64,
    mean: Duration,
    p50: Duration,
    p99: Duration,
    cookies: CookieTotals,
}

fn summarize(label: &'static str, run: &FleetRun) -> Summary {
    let mut per_backend = [0; BACKENDS];
    let mut hits = 0;
    let mut latencies = Vec::new();
    let mut share_sum = 0.0;
    for client in &run.samples {
        let Some(first) = client.first() else {
            continue;
        };
        let on_first = client.iter().filter(|s| s.backend == first.backend).count();
        share_sum += on_first as f64 / client.len() as f64;
        for sample in client {
            per_backend[sample.backend] += 1;
            hits += usize::from(sample.hit);
            latencies.push(sample.latency);
        }
    }
    latencies.sort_unstable();
    let requests = latencies.len();
    let total: Duration = latencies.iter().sum();
    Summary {
        label,
        requests,
        per_backend,
        first_backend_share: share_sum / run.samples.len().max(1) as f64,
        hit_rate: hits as f64 / requests.max(1) as f64,
        throughput: requests as f64 / run.elapsed.as_secs_f64(),
        mean: total / u32::try_from(requests.max(1)).unwrap_or(u32::MAX),
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        cookies: run.cookies,
    }
}

/// Returns the nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn percent(fraction: f64) -> String {
    format!("{:.1}%", fraction * 100.0)
}

fn milliseconds(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1000.0)
}

fn print_intro(records: usize) {
    println!("tower-sticky demo: sticky sessions behind an ALB-like load balancer");
    println!(
        "{TENANTS} importer clients (one per tenant, each with its own jar) post {records} JSON \
         records each, {IN_FLIGHT_PER_CLIENT} in flight per client,"
    );
    println!(
        "to a balancer on 127.0.0.1 with {BACKENDS} backends. Each run starts a new balancer \
         with empty caches."
    );
    let sample = Balancer::new(BACKENDS).stickiness_cookies(0);
    if let Ok([awsalb, awsalbcors]) = sample {
        println!("Every response sets new values, such as:");
        for cookie in [awsalb, awsalbcors] {
            println!(
                "  Set-Cookie: {}",
                String::from_utf8_lossy(cookie.as_bytes())
            );
        }
    }
    println!();
}

fn print_table(bare: &Summary, sticky: &Summary) {
    let row = |label: &str, value: &dyn Fn(&Summary) -> String| {
        println!("{label:<34}{:>18}{:>18}", value(bare), value(sticky));
    };
    row("", &|summary| summary.label.to_owned());

    row("requests", &|summary| summary.requests.to_string());
    row("  with a valid AWSALB cookie", &|summary| {
        summary.cookies.valid_awsalb.to_string()
    });
    row("  with an invalid AWSALB cookie", &|summary| {
        summary.cookies.invalid_awsalb.to_string()
    });
    row("  with an AWSALBCORS cookie", &|summary| {
        summary.cookies.awsalbcors.to_string()
    });

    row("requests on backend 0 / 1 / 2", &|summary| {
        let counts: Vec<String> = summary.per_backend.iter().map(usize::to_string).collect();
        counts.join(" / ")
    });
    row("share on client's first backend", &|summary| {
        percent(summary.first_backend_share)
    });

    row("cache hit rate *", &|summary| percent(summary.hit_rate));
    row("throughput, requests/s *", &|summary| {
        format!("{:.0}", summary.throughput)
    });
    row("latency mean, ms *", &|summary| milliseconds(summary.mean));
    row("latency p50, ms *", &|summary| milliseconds(summary.p50));
    row("latency p99, ms *", &|summary| milliseconds(summary.p99));

    println!(
        "speed-up with StickyLayer *: {:.1}x the requests per second",
        sticky.throughput / bare.throughput,
    );
    println!();
}

fn print_jar(jar: &MemoryJar, records: usize) {
    let stats = jar.stats();
    println!("jar of the tenant-00 client in the sticky run ({records} responses):");
    println!(
        "  stored {}, replaced {}, replayed {}, rejected {}, cookies held {}",
        stats.stored,
        stats.replaced,
        stats.replayed,
        stats.rejected_total(),
        stats.cookies,
    );
    for reason in RejectReason::ALL {
        let count = stats.rejected(reason);
        if count > 0 {
            println!("  rejected as {reason}: {count}");
        }
    }
    let later = records - 1;
    println!(
        "  The first response stored AWSALB and AWSALBCORS. The balancer rotates both values on \
         every response,"
    );
    println!(
        "  so each of the {later} later responses replaced both (expected replaced: {}), and the \
         jar sent",
        2 * later
    );
    println!(
        "  the last AWSALB value it had received on each of the {later} later requests (expected \
         replayed: {later})."
    );
    println!();
}

fn print_model_notes(sticky: &Summary) {
    println!("What is modelled and what is real:");
    println!(
        "  * Marked rows follow from the backend model, not from a real ALB: a cache miss costs a \
         fixed {} ms",
        MISS_COST.as_millis()
    );
    println!(
        "    (tokio sleep) and each backend caches {CACHE_CAPACITY} of the {TENANTS} tenants \
         (LRU). Hit rate, throughput"
    );
    println!(
        "    and latency are consequences of those two numbers and of this machine ({} cores \
         available, {} build).",
        std::thread::available_parallelism().map_or(1, usize::from),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    );
    println!(
        "    When the bare hit rate is near 50%, the bare p50 can fall on a hit or on a miss, so \
         compare the means."
    );
    println!(
        "  The routing rows are real: the balancer routes by the cookie each request carried, \
         and both runs"
    );
    println!("  use the same hyper-util clients, wrapped in StickyLayer in the second run.");
    println!(
        "  AWSALBCORS is marked Secure, so a client keeps it but does not send it over this plain \
         HTTP demo"
    );
    println!(
        "  (RFC 6265 section 5.4). AWSALB has no Secure attribute and is sent. The balancer saw \
         AWSALBCORS {} times.",
        sticky.cookies.awsalbcors
    );
    println!();
}

/// Fails when the sticky run did what the layer exists to prevent.
fn check_sticky(sticky: &Summary) -> Result<(), BoxError> {
    if sticky.first_backend_share < MIN_STICKY_SHARE {
        return Err(format!(
            "stickiness check failed: with StickyLayer only {:.1}% of each client's requests \
             reached its first backend on average (expected at least {:.0}%). The clients did not \
             replay the AWSALB cookie.",
            sticky.first_backend_share * 100.0,
            MIN_STICKY_SHARE * 100.0,
        )
        .into());
    }
    if sticky.cookies.awsalbcors > 0 {
        return Err(format!(
            "Secure cookie check failed: sticky clients sent AWSALBCORS over plain HTTP {} times \
             (expected 0)",
            sticky.cookies.awsalbcors
        )
        .into());
    }
    println!(
        "stickiness check passed: {:.1}% of requests on each client's first backend (minimum \
         {:.0}%)",
        sticky.first_backend_share * 100.0,
        MIN_STICKY_SHARE * 100.0,
    );
    Ok(())
}
