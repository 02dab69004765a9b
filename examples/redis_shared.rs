//! Two processes, one sticky session: a jar shared through Redis.
//!
//! Each run of this example is one client process. It builds a
//! [`MirroredJar`] over Redis, which loads the cookies that earlier
//! processes stored, sends a few requests through [`StickyLayer`] to an
//! ALB-like balancer, and prints which backend served its first request as
//! a line `first-backend: N`. The second process's first request carries
//! the `AWSALB` cookie that the first process received, so it lands on the
//! same backend.
//!
//! Start a Redis server and the balancer (this example can serve one), then
//! run the client twice:
//!
//! ```text
//! redis-server --bind 127.0.0.1 --port 6379 --save "" --appendonly no
//! cargo run --features redis --example redis_shared -- --serve-balancer
//! cargo run --features redis --example redis_shared -- \
//!     --redis redis://127.0.0.1:6379/ --balancer http://127.0.0.1:PORT/
//! ```
//!
//! `--serve-balancer` prints the balancer's URL and serves for 5 minutes.
//! Logs go to stderr. `--prefix` sets the Redis key prefix, so that runs
//! that should not share a session use different ones.

#[path = "support/alb.rs"]
mod alb;

use std::{process::ExitCode, sync::Arc, time::Duration};

use alb::BoxError;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{Empty, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_sticky::{MirroredJar, RedisBackend, StickyLayer};

/// Backends behind the balancer that `--serve-balancer` starts.
const BACKENDS: usize = 3;
/// How long `--serve-balancer` serves before it exits.
const SERVE_TIME: Duration = Duration::from_secs(5 * 60);
/// How long the client waits for the shared state when it starts.
const LOAD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the client waits for its changes to reach Redis before it exits.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Maximum time for one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Response header in which the balancer names the backend.
const BACKEND_HEADER: &str = "x-backend";

const USAGE: &str =
    "usage: redis_shared --redis URL --balancer URL [--prefix PREFIX] [--requests N]
       redis_shared --serve-balancer";

/// The mode the command line selects.
enum Mode {
    ServeBalancer,
    Client(ClientOptions),
}

struct ClientOptions {
    redis: String,
    balancer: String,
    prefix: String,
    requests: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO)
        .init();
    let result = match parse_arguments() {
        Ok(Some(Mode::ServeBalancer)) => serve_balancer().await,
        Ok(Some(Mode::Client(options))) => run_client(options).await,
        Ok(None) => Ok(()),
        Err(error) => Err(error),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("redis_shared failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Reads the command line. Returns `None` after printing the help text.
fn parse_arguments() -> Result<Option<Mode>, BoxError> {
    let mut redis = None;
    let mut balancer = None;
    let mut prefix = "tower-sticky-example:".to_owned();
    let mut requests = 3;
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        let mut value = || {
            arguments
                .next()
                .ok_or_else(|| format!("{argument} needs a value\n{USAGE}"))
        };
        match argument.as_str() {
            "--serve-balancer" => return Ok(Some(Mode::ServeBalancer)),
            "--redis" => redis = Some(value()?),
            "--balancer" => balancer = Some(value()?),
            "--prefix" => prefix = value()?,
            "--requests" => {
                let text = value()?;
                requests = text
                    .parse()
                    .ok()
                    .filter(|count| *count > 0)
                    .ok_or_else(|| format!("--requests expects a positive number, not {text:?}"))?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}").into()),
        }
    }
    let (Some(redis), Some(balancer)) = (redis, balancer) else {
        return Err(format!("--redis and --balancer are required\n{USAGE}").into());
    };
    Ok(Some(Mode::Client(ClientOptions {
        redis,
        balancer,
        prefix,
        requests,
    })))
}

/// Serves the ALB-like balancer on a free port of 127.0.0.1. Each backend
/// responds with its number in the body and in the `x-backend` header.
async fn serve_balancer() -> Result<(), BoxError> {
    let balancer = alb::start_balancer(BACKENDS, |backend, _request| async move {
        let response = Response::builder()
            .header(BACKEND_HEADER, backend)
            .body(Full::new(Bytes::from(format!("backend {backend}\n"))))?;
        Ok(response)
    })
    .await?;
    println!("balancer: http://{}/", balancer.address);
    println!("serving for {} seconds", SERVE_TIME.as_secs());
    tokio::time::sleep(SERVE_TIME).await;
    Ok(())
}

async fn run_client(options: ClientOptions) -> Result<(), BoxError> {
    let backend = RedisBackend::builder(options.redis.as_str())
        .prefix(options.prefix)
        .build()?;
    let jar = MirroredJar::builder(backend)
        .load_timeout(LOAD_TIMEOUT)
        .build()
        .await;
    let jar = Arc::new(jar);
    println!("loaded-cookies: {}", jar.len());

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut client = ServiceBuilder::new()
        .layer(StickyLayer::with_jar(Arc::clone(&jar)))
        .service(client);

    let mut served_by = Vec::with_capacity(options.requests);
    for _ in 0..options.requests {
        let request = Request::get(options.balancer.as_str()).body(Empty::new())?;
        let exchange = async { client.ready().await?.call(request).await };
        let response = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                format!(
                    "no response from {} within {REQUEST_TIMEOUT:?}",
                    options.balancer
                )
            })??;
        let backend = response
            .headers()
            .get(BACKEND_HEADER)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| format!("the response has no {BACKEND_HEADER} header"))?
            .to_owned();
        served_by.push(backend);
    }
    println!("first-backend: {}", served_by[0]);
    println!("backends: {}", served_by.join(" "));

    // The background task stops with the runtime, so wait for the changes
    // to reach Redis before returning from `main`.
    if let Err(error) = jar.flush(FLUSH_TIMEOUT).await {
        eprintln!("warning: {error}; other processes may not see the last cookies");
    }
    let stats = jar.stats();
    println!(
        "mirror: loads {}, published {}, coalesced {}, applied {}, outages {}",
        stats.remote_loads, stats.published, stats.coalesced, stats.applied, stats.outages
    );
    Ok(())
}
