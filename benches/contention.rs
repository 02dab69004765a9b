//! Per-request cost when 64 tasks on a two-worker tokio runtime share one
//! jar, against one task alone.
//!
//! Every task gets a service from one shared `StickyLayer`, so all of them
//! use one jar and one origin. In the `sticky` variants each response
//! carries a new ALB pair, so every request both replays and captures. The
//! `sticky_replay` variants replay a stored pair and capture nothing, as
//! behind a balancer that sets its cookie once. The bare variants run the
//! same tasks without the layer, to show the runtime's own share.

mod common;

use std::{
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::{Request, Response, Uri};
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceExt};
use tower_sticky::StickyLayer;

use common::{
    fixed_service, plain_request, request_uri, response_without_cookies, rotating_responses,
    rotating_service,
};

/// Worker threads of the runtime.
const WORKERS: usize = 2;

/// Task counts to compare.
const TASKS: [usize; 2] = [1, 64];

/// Maximum time for one measured batch, so a deadlock fails the run.
const BATCH_TIMEOUT: Duration = Duration::from_secs(60);

/// Returns how many of `total` requests task `index` of `tasks` sends.
fn share_of(total: u64, tasks: usize, index: usize) -> u64 {
    let tasks = tasks as u64;
    let index = index as u64;
    total / tasks + u64::from(index < total % tasks)
}

/// Sends `total` requests split over `tasks` tasks, each with the service
/// that `make_service` returns for its index, and returns the wall time.
fn run_tasks<S, F>(runtime: &Runtime, total: u64, tasks: usize, make_service: F) -> Duration
where
    S: Service<Request<()>, Response = Response<()>, Error = std::convert::Infallible>
        + Send
        + 'static,
    S::Future: Send,
    F: Fn(usize) -> S,
{
    let uri = request_uri();
    let services: Vec<S> = (0..tasks).map(&make_service).collect();
    runtime.block_on(async move {
        let start = Instant::now();
        let mut handles = Vec::with_capacity(tasks);
        for (index, mut service) in services.into_iter().enumerate() {
            let count = share_of(total, tasks, index);
            let uri: Uri = uri.clone();
            handles.push(tokio::spawn(async move {
                for _ in 0..count {
                    let request = plain_request(&uri);
                    let response = service
                        .ready()
                        .await
                        .expect("infallible")
                        .call(request)
                        .await
                        .expect("infallible");
                    black_box(response);
                }
            }));
        }
        common::join_within(handles, BATCH_TIMEOUT).await;
        start.elapsed()
    })
}

fn contention(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_time()
        .build()
        .expect("tokio runtime");
    let responses = rotating_responses(31);

    let mut group = c.benchmark_group("contention");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);

    for tasks in TASKS {
        // Offsets differ per task so that tasks send different values.
        group.bench_function(BenchmarkId::new("bare", format!("{tasks}_tasks")), |b| {
            b.iter_custom(|total| {
                run_tasks(&runtime, total, tasks, |index| {
                    rotating_service(Arc::clone(&responses), index * 7)
                })
            })
        });

        let layer = StickyLayer::new();
        let make_sticky =
            |index: usize| layer.layer(rotating_service(Arc::clone(&responses), index * 7));
        // Check the setup once, outside the measurement, so that the check
        // also runs when a filter skips this benchmark.
        run_tasks(&runtime, 2 * tasks as u64, tasks, make_sticky);
        let stats = layer.jar().stats();
        assert_eq!(stats.cookies, 2, "the jar should hold only the ALB pair");
        assert!(stats.replayed > 0, "no request replayed the ALB pair");

        group.bench_function(BenchmarkId::new("sticky", format!("{tasks}_tasks")), |b| {
            b.iter_custom(|total| run_tasks(&runtime, total, tasks, make_sticky))
        });

        // The jar keeps the pair that the rotating runs above stored last.
        let make_replaying = |_index: usize| layer.layer(fixed_service(response_without_cookies()));
        let replayed_before = layer.jar().stats().replayed;
        run_tasks(&runtime, 2 * tasks as u64, tasks, make_replaying);
        assert_eq!(
            layer.jar().stats().replayed - replayed_before,
            2 * tasks as u64,
            "a request went out without the ALB pair"
        );
        group.bench_function(
            BenchmarkId::new("sticky_replay", format!("{tasks}_tasks")),
            |b| b.iter_custom(|total| run_tasks(&runtime, total, tasks, make_replaying)),
        );
    }
    group.finish();
}

criterion_group!(benches, contention);
criterion_main!(benches);
