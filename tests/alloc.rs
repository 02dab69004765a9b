//! Heap allocations on the request path, counted by a global allocator that
//! this test binary installs.
//!
//! Each test calls a bare inner service and the same service behind
//! `Sticky` the same number of times, builds its requests the same way
//! inside the counted region, and compares the counts. The counter is kept
//! per thread, so tests running in parallel do not disturb each other.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
    convert::Infallible,
    fmt::Debug,
    hint::black_box,
    pin::pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll, Waker},
};

use http::{
    HeaderMap, HeaderValue, Request, Response, Uri,
    header::{ACCEPT, CONTENT_TYPE, COOKIE},
};
use tower::{Service, service_fn};
use tower_sticky::{CookieJar, MemoryJar, RequestTarget, Sticky};

/// A global allocator that counts the allocations of the current thread.
struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_allocation() {
    // `try_with` fails only while the thread's locals are being destroyed,
    // after every measurement has finished.
    let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's arguments, so
// the `GlobalAlloc` contract is met as it is for `System`. Counting touches
// only a thread-local `Cell` with a const initializer, which never
// allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: forwarded unchanged from our caller.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: forwarded unchanged from our caller.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        // SAFETY: forwarded unchanged from our caller.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged from our caller.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Calls per measurement.
const CALLS: u64 = 200;

/// Returns how many allocations `work` made on this thread.
fn allocations_during(work: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    work();
    ALLOCATIONS.with(Cell::get) - before
}

/// Calls a service whose futures complete on their first poll, without an
/// executor, so that no runtime allocates on the way.
fn call_now<S, R>(service: &mut S, request: R) -> S::Response
where
    S: Service<R>,
    S::Error: Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(
        matches!(service.poll_ready(&mut cx), Poll::Ready(Ok(()))),
        "service was not ready on the first poll"
    );
    let future = pin!(service.call(request));
    match future.poll(&mut cx) {
        Poll::Ready(result) => result.expect("service call"),
        Poll::Pending => panic!("response future was pending on the first poll"),
    }
}

const URI: &str = "https://alb.example.test/api/items/42";

/// Builds a request with no headers.
fn plain_request(uri: &Uri) -> Request<()> {
    let mut request = Request::new(());
    *request.uri_mut() = uri.clone();
    request
}

/// Builds a request that already carries one header, as requests from real
/// clients do, so its header map has room for `Cookie`.
fn request_with_header(uri: &Uri) -> Request<()> {
    let mut request = plain_request(uri);
    request
        .headers_mut()
        .insert(ACCEPT, HeaderValue::from_static("*/*"));
    request
}

/// An inner service that returns a clone of a prepared response without
/// `Set-Cookie`, and counts the requests that arrived with a `Cookie` header.
fn inner_service(
    with_cookie: Arc<AtomicU64>,
) -> impl Service<Request<()>, Response = Response<()>, Error = Infallible> + Clone {
    let mut response = Response::new(());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    service_fn(move |request: Request<()>| {
        if request.headers().contains_key(COOKIE) {
            with_cookie.fetch_add(1, Ordering::Relaxed);
        }
        std::future::ready(Ok::<_, Infallible>(response.clone()))
    })
}

/// Returns a jar holding the ALB pair for `URI`.
fn jar_with_alb_pair() -> Arc<MemoryJar> {
    let jar = Arc::new(MemoryJar::new());
    let uri = Uri::from_static(URI);
    let request = plain_request(&uri);
    let target = RequestTarget::from_request(&request).expect("absolute URI");
    let set_cookie = [
        HeaderValue::from_static("AWSALB=c2Vzc2lvbg; Max-Age=604800; Path=/"),
        HeaderValue::from_static(
            "AWSALBCORS=c2Vzc2lvbg; Max-Age=604800; Path=/; SameSite=None; Secure",
        ),
    ];
    jar.store(&target, &mut set_cookie.iter());
    assert_eq!(jar.len(), 2, "the jar did not store the ALB pair");
    jar
}

/// Sends `CALLS` requests built by `build` through `service` after a few
/// uncounted ones, and returns the allocations of the counted calls.
fn count_calls<S>(service: &mut S, build: fn(&Uri) -> Request<()>) -> u64
where
    S: Service<Request<()>, Response = Response<()>, Error = Infallible>,
{
    let uri = Uri::from_static(URI);
    for _ in 0..3 {
        drop(call_now(service, build(&uri)));
    }
    allocations_during(|| {
        for _ in 0..CALLS {
            let response = call_now(service, build(black_box(&uri)));
            drop(black_box(response));
        }
    })
}

#[test]
fn counter_counts_a_box() {
    let count = allocations_during(|| drop(black_box(Box::new(7u64))));
    assert_eq!(count, 1);
}

#[test]
fn replay_adds_no_allocation() {
    let bare_seen = Arc::new(AtomicU64::new(0));
    let mut bare = inner_service(Arc::clone(&bare_seen));
    let bare_count = count_calls(&mut bare, request_with_header);

    let jar = jar_with_alb_pair();
    let sticky_seen = Arc::new(AtomicU64::new(0));
    let mut sticky = Sticky::with_jar(inner_service(Arc::clone(&sticky_seen)), Arc::clone(&jar));
    let sticky_count = count_calls(&mut sticky, request_with_header);

    assert_eq!(bare_seen.load(Ordering::Relaxed), 0);
    assert_eq!(sticky_seen.load(Ordering::Relaxed), CALLS + 3);
    assert_eq!(jar.stats().replayed, CALLS + 3);
    assert_eq!(
        sticky_count, bare_count,
        "replay allocated on the request path"
    );
}

#[test]
fn empty_jar_adds_no_allocation() {
    let mut bare = inner_service(Arc::default());
    let bare_count = count_calls(&mut bare, plain_request);

    let jar = Arc::new(MemoryJar::new());
    let mut sticky = Sticky::with_jar(inner_service(Arc::default()), Arc::clone(&jar));
    let sticky_count = count_calls(&mut sticky, plain_request);

    assert!(jar.is_empty());
    assert_eq!(
        sticky_count, bare_count,
        "an empty jar allocated on the request path"
    );
}

/// A request built with no headers has an empty header map, which allocates
/// on its first insert. Replaying into it costs exactly that growth, which
/// hyper-util 0.1's legacy client would otherwise pay when it adds `Host`
/// to an HTTP/1 request.
#[test]
fn replay_into_empty_map_adds_map_growth() {
    let growth = allocations_during(|| {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_static("a=b"));
        drop(black_box(headers));
    });
    assert!(growth > 0, "an empty HeaderMap did not allocate on insert");

    let mut bare = inner_service(Arc::default());
    let bare_count = count_calls(&mut bare, plain_request);

    let jar = jar_with_alb_pair();
    let mut sticky = Sticky::with_jar(inner_service(Arc::default()), Arc::clone(&jar));
    let sticky_count = count_calls(&mut sticky, plain_request);

    assert_eq!(jar.stats().replayed, CALLS + 3);
    assert_eq!(sticky_count, bare_count + CALLS * growth);
}

#[test]
fn capture_allocates_per_response() {
    // Storing a new cookie value allocates. This checks that the counter
    // records the jar's allocations at all, so the equal counts above mean
    // something.
    let jar = MemoryJar::new();
    let uri = Uri::from_static(URI);
    let request = plain_request(&uri);
    let target = RequestTarget::from_request(&request).expect("absolute URI");
    let set_cookie = HeaderValue::from_static("AWSALB=bmV3; Path=/");
    let count = allocations_during(|| jar.store(&target, &mut std::iter::once(&set_cookie)));
    assert!(count > 0);
    assert_eq!(jar.len(), 1);
}
