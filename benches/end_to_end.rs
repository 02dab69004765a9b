//! Requests per second over loopback: hyper-util's legacy client, bare and
//! through the layer, against hyper HTTP/1 servers that this benchmark
//! starts on 127.0.0.1.
//!
//! Two servers pin clients the way two kinds of balancer do:
//!
//! - `rotating`, as AWS ALB: a new ALB pair on every response, so the
//!   layered client captures and replays on each request.
//! - `pinned`, as HAProxy with `cookie SERVERID insert indirect`: a
//!   `Set-Cookie` only on a response to a request without the cookie, so
//!   after its first request the layered client only replays.
//!
//! The bare client ignores the cookies. Both clients keep their connections
//! alive.

mod common;

use std::{
    convert::Infallible,
    net::{Ipv4Addr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::{HeaderValue, Request, Response, Uri, header::COOKIE, header::SET_COOKIE};
use http_body_util::{BodyExt, Empty, Full};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};
use tokio::{net::TcpListener, runtime::Runtime, task::JoinHandle};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_sticky::StickyLayer;

/// Requests in one measured iteration.
const REQUESTS_PER_ITERATION: u64 = 64;

/// Requests in flight to compare.
const IN_FLIGHT: [usize; 2] = [1, 16];

/// Maximum time for one iteration, so a stalled connection fails the run.
const BATCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Body of every response.
const RESPONSE_BODY: &[u8] = b"{\"ok\":true}";

/// The kind of balancer stickiness a test server imitates.
#[derive(Debug, Clone, Copy)]
enum Pinning {
    /// A new ALB pair on every response.
    Rotating,
    /// `SERVERID=s1` on a response to a request that does not send it.
    Pinned,
}

impl Pinning {
    fn name(self) -> &'static str {
        match self {
            Pinning::Rotating => "rotating",
            Pinning::Pinned => "pinned",
        }
    }
}

/// Counters a server keeps, to check that the layered client replays.
#[derive(Default)]
struct ServerCounters {
    requests: AtomicU64,
    with_cookie: AtomicU64,
}

/// A hyper server on 127.0.0.1 that runs until the guard is dropped.
struct Server {
    address: SocketAddr,
    counters: Arc<ServerCounters>,
    accept_loop: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

/// Starts a server on an ephemeral port of 127.0.0.1.
async fn start_server(pinning: Pinning) -> Server {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind 127.0.0.1:0");
    let address = listener.local_addr().expect("local address");
    let counters = Arc::new(ServerCounters::default());
    let pairs: Arc<[[HeaderValue; 2]]> = {
        let mut source = common::ValueSource::new(41);
        (0..common::ROTATION_LENGTH)
            .map(|_| common::alb_set_cookie_pair(&mut source))
            .collect()
    };
    let next_pair = Arc::new(AtomicUsize::new(0));

    let server_counters = Arc::clone(&counters);
    let accept_loop = tokio::spawn(async move {
        loop {
            let Ok((stream, _peer)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let counters = Arc::clone(&server_counters);
            let pairs = Arc::clone(&pairs);
            let next_pair = Arc::clone(&next_pair);
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                counters.requests.fetch_add(1, Ordering::Relaxed);
                if request.headers().contains_key(COOKIE) {
                    counters.with_cookie.fetch_add(1, Ordering::Relaxed);
                }
                let mut response = Response::new(Full::new(Bytes::from_static(RESPONSE_BODY)));
                match pinning {
                    Pinning::Rotating => {
                        let index = next_pair.fetch_add(1, Ordering::Relaxed) % pairs.len();
                        for line in &pairs[index] {
                            response.headers_mut().append(SET_COOKIE, line.clone());
                        }
                    }
                    Pinning::Pinned => {
                        let pinned = request
                            .headers()
                            .get_all(COOKIE)
                            .iter()
                            .any(|value| value.as_bytes().starts_with(b"SERVERID="));
                        if !pinned {
                            response.headers_mut().insert(
                                SET_COOKIE,
                                HeaderValue::from_static("SERVERID=s1; path=/"),
                            );
                        }
                    }
                }
                async move { Ok::<_, Infallible>(response) }
            });
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Server {
        address,
        counters,
        accept_loop,
    }
}

type BareClient = Client<HttpConnector, Empty<Bytes>>;

/// Sends `iterations * REQUESTS_PER_ITERATION` requests with `in_flight`
/// tasks, each with its own clone of `service`, reading every body to its
/// end. Returns the wall time.
fn send_batch<S>(
    runtime: &Runtime,
    service: &S,
    uri: &Uri,
    iterations: u64,
    in_flight: usize,
) -> Duration
where
    S: Service<Request<Empty<Bytes>>, Response = Response<Incoming>> + Clone + Send + 'static,
    S::Error: std::fmt::Debug + Send,
    S::Future: Send,
{
    let total = iterations * REQUESTS_PER_ITERATION;
    runtime.block_on(async {
        let start = Instant::now();
        let mut handles = Vec::with_capacity(in_flight);
        for index in 0..in_flight {
            let count =
                total / in_flight as u64 + u64::from((index as u64) < total % in_flight as u64);
            let mut service = service.clone();
            let uri = uri.clone();
            handles.push(tokio::spawn(async move {
                for _ in 0..count {
                    let request = Request::get(uri.clone())
                        .body(Empty::new())
                        .expect("valid request");
                    let response = service
                        .ready()
                        .await
                        .expect("client ready")
                        .call(request)
                        .await
                        .expect("request to the loopback server");
                    let body = response.into_body().collect().await.expect("response body");
                    assert_eq!(body.to_bytes().len(), RESPONSE_BODY.len());
                }
            }));
        }
        common::join_within(handles, BATCH_TIMEOUT).await;
        start.elapsed()
    })
}

fn end_to_end(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_io()
        .enable_time()
        .build()
        .expect("tokio runtime");

    let mut group = c.benchmark_group("end_to_end");
    group
        .throughput(Throughput::Elements(REQUESTS_PER_ITERATION))
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(20);

    for pinning in [Pinning::Rotating, Pinning::Pinned] {
        let server = runtime.block_on(start_server(pinning));
        let uri: Uri = format!("http://{}/api/v1/items/42", server.address)
            .parse()
            .expect("valid URI");
        let client: BareClient = runtime
            .block_on(async { Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>() });
        let sticky = ServiceBuilder::new()
            .layer(StickyLayer::new())
            .service(client.clone());

        // The layered client must send the cookie from its second request.
        let before = server.counters.with_cookie.load(Ordering::Relaxed);
        send_batch(&runtime, &sticky, &uri, 1, 1);
        let replayed = server.counters.with_cookie.load(Ordering::Relaxed) - before;
        assert_eq!(
            replayed,
            REQUESTS_PER_ITERATION - 1,
            "the layered client did not replay the {} cookie",
            pinning.name()
        );

        for in_flight in IN_FLIGHT {
            let parameter = format!("{}_{in_flight}_in_flight", pinning.name());
            group.bench_function(BenchmarkId::new("bare", &parameter), |b| {
                b.iter_custom(|iterations| {
                    send_batch(&runtime, &client, &uri, iterations, in_flight)
                })
            });
            group.bench_function(BenchmarkId::new("sticky", &parameter), |b| {
                b.iter_custom(|iterations| {
                    send_batch(&runtime, &sticky, &uri, iterations, in_flight)
                })
            });
        }
        assert!(server.counters.requests.load(Ordering::Relaxed) > 0);
        drop(server);
    }
    group.finish();
}

criterion_group!(benches, end_to_end);
criterion_main!(benches);
