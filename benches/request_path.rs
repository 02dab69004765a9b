//! The cost the layer adds to one request, next to the floor of any cookie
//! layer and next to reqwest's jar and cookie_store doing the same work.
//!
//! Every variant builds its request in the measured loop the same way and
//! calls an inner `service_fn` that returns a clone of a prepared response,
//! polled once without an executor. The difference between a variant and
//! its bare counterpart is the work of the cookie layer. BENCHMARKS.md
//! explains how the figures are compared.

mod common;

use std::{
    hint::black_box,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use criterion::{
    BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime,
};
use http::{HeaderMap, HeaderValue, header::COOKIE};
use tower_sticky::{CookieJar, MemoryJar, RequestTarget, Sticky};

use common::{
    assert_alb_pair, call_now, call_with_cookie_store, call_with_reqwest_jar, fixed_service,
    plain_request, request_uri, request_with_header, response_without_cookies, rotating_responses,
    rotating_service, url_of,
};

/// Builds a `Cookie` value the way the jar caches one: from `Bytes` that
/// were cloned once, so that cloning the value only counts a reference.
fn shared_cookie_value() -> HeaderValue {
    let bytes = Bytes::from(format!(
        "AWSALB={0}; AWSALBCORS={0}",
        common::ValueSource::new(7).alb_value()
    ));
    drop(bytes.clone());
    let mut value = HeaderValue::from_maybe_shared(bytes).expect("valid header value");
    value.set_sensitive(true);
    value
}

/// Returns a jar holding the ALB pair for the benchmark's origin.
fn jar_with_alb_pair() -> Arc<MemoryJar> {
    let jar = Arc::new(MemoryJar::new());
    let pair = common::alb_set_cookie_pair(&mut common::ValueSource::new(11));
    let uri = request_uri();
    let request = plain_request(&uri);
    let target = RequestTarget::from_request(&request).expect("absolute URI");
    jar.store(&target, &mut pair.iter());
    assert_alb_pair(jar.cookie_header(&target), "MemoryJar");
    jar
}

/// Returns the benchmark group all request-path variants share, so that one
/// report compares them.
fn request_path_group(c: &mut Criterion) -> BenchmarkGroup<'_, WallTime> {
    let mut group = c.benchmark_group("request_path");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(60);
    group
}

fn floor(c: &mut Criterion) {
    let mut group = request_path_group(c);

    let value = shared_cookie_value();
    // The minimum any cookie layer does to a request built with no headers:
    // clone one value into its empty header map, which then allocates.
    group.bench_function("floor", |b| {
        b.iter(|| {
            let mut headers = HeaderMap::new();
            headers.insert(COOKIE, value.clone());
            headers
        })
    });

    // The same into a map that already has room, as in a request that
    // carries other headers: no allocation.
    let mut warm = HeaderMap::new();
    warm.insert(http::header::ACCEPT, HeaderValue::from_static("*/*"));
    warm.insert(COOKIE, value.clone());
    group.bench_function("floor_warm_map", |b| {
        b.iter(|| warm.insert(COOKIE, black_box(&value).clone()))
    });
    group.finish();
}

fn replay(c: &mut Criterion) {
    let mut group = request_path_group(c);

    let uri = request_uri();
    let accept = HeaderValue::from_static("*/*");

    let mut bare = fixed_service(response_without_cookies());
    group.bench_function("bare", |b| {
        b.iter(|| call_now(&mut bare, plain_request(black_box(&uri))))
    });

    let mut empty_jar = Sticky::new(fixed_service(response_without_cookies()));
    group.bench_function("empty_jar", |b| {
        b.iter(|| call_now(&mut empty_jar, plain_request(black_box(&uri))))
    });

    let mut replay = Sticky::with_jar(
        fixed_service(response_without_cookies()),
        jar_with_alb_pair(),
    );
    group.bench_function("replay", |b| {
        b.iter(|| call_now(&mut replay, plain_request(black_box(&uri))))
    });

    group.bench_function("bare_with_header", |b| {
        b.iter(|| call_now(&mut bare, request_with_header(black_box(&uri), &accept)))
    });
    group.bench_function("replay_with_header", |b| {
        b.iter(|| call_now(&mut replay, request_with_header(black_box(&uri), &accept)))
    });
    group.finish();
}

fn capture_and_replay(c: &mut Criterion) {
    let mut group = request_path_group(c);

    let uri = request_uri();
    let responses = rotating_responses(23);

    let mut bare = rotating_service(Arc::clone(&responses), 0);
    group.bench_function("bare_rotating", |b| {
        b.iter(|| call_now(&mut bare, plain_request(black_box(&uri))))
    });

    let mut sticky = Sticky::new(rotating_service(Arc::clone(&responses), 0));
    call_now(&mut sticky, plain_request(&uri));
    let target_request = plain_request(&uri);
    let target = RequestTarget::from_request(&target_request).expect("absolute URI");
    assert_alb_pair(sticky.jar().cookie_header(&target), "MemoryJar");
    group.bench_function("capture_replay", |b| {
        b.iter(|| call_now(&mut sticky, plain_request(black_box(&uri))))
    });

    let reqwest_jar = reqwest::cookie::Jar::default();
    let mut inner = rotating_service(Arc::clone(&responses), 0);
    call_with_reqwest_jar(&reqwest_jar, &mut inner, plain_request(&uri));
    assert_alb_pair(
        reqwest::cookie::CookieStore::cookies(&reqwest_jar, &url_of(&uri)),
        "reqwest::cookie::Jar",
    );
    group.bench_function("reqwest_capture_replay", |b| {
        b.iter(|| call_with_reqwest_jar(&reqwest_jar, &mut inner, plain_request(black_box(&uri))))
    });

    let mut store = cookie_store::CookieStore::default();
    let mut inner = rotating_service(Arc::clone(&responses), 0);
    call_with_cookie_store(&mut store, &mut inner, plain_request(&uri));
    assert_alb_pair(
        common::cookie_store_header(&store, &url_of(&uri)),
        "cookie_store::CookieStore",
    );
    group.bench_function("cookie_store_capture_replay", |b| {
        b.iter(|| call_with_cookie_store(&mut store, &mut inner, plain_request(black_box(&uri))))
    });
    group.finish();
}

/// The fixed costs that the replay path pays on every request, measured
/// alone so that BENCHMARKS.md can set them against the floor: the wall
/// clock read that checks expiry, the jar's lock, and the `Arc` clone that
/// the response future keeps.
fn primitives(c: &mut Criterion) {
    let mut group = c.benchmark_group("primitives");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40);

    group.bench_function("system_time_now", |b| {
        b.iter(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|elapsed| elapsed.as_millis())
        })
    });
    let mutex = Mutex::new(0u64);
    group.bench_function("mutex_lock_unlock", |b| {
        b.iter(|| *black_box(&mutex).lock().expect("not poisoned") += 1)
    });
    let jar = Arc::new(MemoryJar::new());
    group.bench_function("arc_clone_drop", |b| b.iter(|| Arc::clone(black_box(&jar))));
    group.finish();
}

criterion_group!(benches, floor, replay, capture_and_replay, primitives);
criterion_main!(benches);
