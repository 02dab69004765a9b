//! Every limit, filter, preset and control of `MemoryJar`, seen through the
//! middleware.
//!
//! The inner service is an in-process echo server: each request's body is the
//! list of `Set-Cookie` lines to respond with, and each response's body is
//! the `Cookie` header the request carried. A test therefore observes exactly
//! what the layer stored and what it sent back.

use std::{
    convert::Infallible,
    sync::Arc,
    thread,
    time::{Duration, SystemTime},
};

use http::{
    HeaderValue, Request, Response,
    header::{COOKIE, SET_COOKIE},
};
use tower::{ServiceExt, service_fn};
use tower_sticky::{
    MemoryJar, RejectReason, Sticky,
    jar::{Cookie, CookieFilter},
};

/// Responds with the `Set-Cookie` lines in the request body, and returns the
/// request's `Cookie` header in the response body.
async fn echo(
    request: Request<Vec<HeaderValue>>,
) -> Result<Response<Option<HeaderValue>>, Infallible> {
    let cookie = request.headers().get(COOKIE).cloned();
    let mut response = Response::new(cookie);
    for line in request.into_body() {
        response.headers_mut().append(SET_COOKIE, line);
    }
    Ok(response)
}

/// Sends `GET uri` through the layer over `jar`, with a server that sets
/// `set_cookie`, and returns the `Cookie` header the server received.
async fn send(jar: &Arc<MemoryJar>, uri: &str, set_cookie: &[&str]) -> Option<String> {
    let lines = set_cookie
        .iter()
        .map(|line| HeaderValue::from_str(line).expect("a valid header value"))
        .collect();
    let request = Request::get(uri).body(lines).expect("a valid request");
    let client = Sticky::with_jar(service_fn(echo), Arc::clone(jar));
    let Ok(response) = client.oneshot(request).await;
    response
        .into_body()
        .map(|value| value.to_str().expect("an ASCII header").to_owned())
}

fn shared(jar: MemoryJar) -> Arc<MemoryJar> {
    Arc::new(jar)
}

fn names(jar: &MemoryJar) -> Vec<String> {
    jar.cookies()
        .iter()
        .map(|cookie| cookie.name().into_owned())
        .collect()
}

// Limits

#[tokio::test]
async fn max_cookie_size_rejects_larger() {
    let jar = shared(MemoryJar::builder().max_cookie_size(16).build());
    let at_limit = format!("a={}", "x".repeat(15));
    let over_limit = format!("b={}", "y".repeat(16));

    send(&jar, "http://a.example/", &[&at_limit, &over_limit]).await;
    let header = send(&jar, "http://a.example/", &[]).await;

    assert_eq!(header.as_deref(), Some(at_limit.as_str()));
    assert_eq!(jar.stats().rejected(RejectReason::TooLarge), 1);
    assert_eq!(jar.len(), 1);
}

#[tokio::test]
async fn max_cookie_size_keeps_old_value() {
    let jar = shared(MemoryJar::builder().max_cookie_size(16).build());
    let too_large = format!("a={}", "z".repeat(16));

    send(&jar, "http://a.example/", &["a=small"]).await;
    send(&jar, "http://a.example/", &[&too_large]).await;
    let header = send(&jar, "http://a.example/", &[]).await;

    assert_eq!(header.as_deref(), Some("a=small"));
    assert_eq!(jar.stats().rejected(RejectReason::TooLarge), 1);
}

#[tokio::test]
async fn per_domain_limit_evicts_least_used() {
    let jar = shared(MemoryJar::builder().max_cookies_per_domain(2).build());
    send(&jar, "http://other.example/", &["z=0"]).await;
    // `a` is created before `b`, then only `a` is used.
    send(&jar, "http://a.example/", &["a=1; Path=/x", "b=2; Path=/y"]).await;
    let used = send(&jar, "http://a.example/x", &[]).await;

    send(&jar, "http://a.example/", &["c=3; Path=/"]).await;

    assert_eq!(used.as_deref(), Some("a=1"));
    assert_eq!(
        send(&jar, "http://a.example/x", &[]).await.as_deref(),
        Some("a=1; c=3")
    );
    assert_eq!(
        send(&jar, "http://a.example/y", &[]).await.as_deref(),
        Some("c=3")
    );
    assert_eq!(
        send(&jar, "http://other.example/", &[]).await.as_deref(),
        Some("z=0")
    );
    assert_eq!(jar.stats().evicted, 1);
    assert_eq!(jar.len(), 3);
}

#[tokio::test]
async fn max_cookies_evicts_least_used() {
    let jar = shared(MemoryJar::builder().max_cookies(3).build());
    send(&jar, "http://one.example/", &["c1=1"]).await;
    send(&jar, "http://two.example/", &["c2=2"]).await;
    send(&jar, "http://three.example/", &["c3=3"]).await;
    // Using `c1` makes `c2` the least recently used cookie.
    send(&jar, "http://one.example/", &[]).await;

    send(&jar, "http://four.example/", &["c4=4"]).await;

    assert_eq!(send(&jar, "http://two.example/", &[]).await, None);
    assert_eq!(
        send(&jar, "http://one.example/", &[]).await.as_deref(),
        Some("c1=1")
    );
    assert_eq!(
        send(&jar, "http://three.example/", &[]).await.as_deref(),
        Some("c3=3")
    );
    assert_eq!(
        send(&jar, "http://four.example/", &[]).await.as_deref(),
        Some("c4=4")
    );
    assert_eq!(jar.stats().evicted, 1);
    assert_eq!(jar.len(), 3);
}

// Filters and presets

/// Checks that a jar with `filter` stores and replays exactly the `kept`
/// names, and rejects each of the `dropped` ones as filtered.
async fn check_filter(filter: CookieFilter, kept: &[&str], dropped: &[&str]) {
    let jar = shared(MemoryJar::builder().filter(filter).build());
    let lines: Vec<String> = kept
        .iter()
        .chain(dropped)
        .map(|name| format!("{name}=1"))
        .collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();

    send(&jar, "http://lb.example/", &lines).await;
    let header = send(&jar, "http://lb.example/", &[]).await;

    let expected: Vec<String> = kept.iter().map(|name| format!("{name}=1")).collect();
    let expected = (!expected.is_empty()).then(|| expected.join("; "));
    assert_eq!(header, expected, "Cookie header");
    assert_eq!(names(&jar), kept, "stored names");
    let filtered = jar.stats().rejected(RejectReason::Filtered);
    assert_eq!(filtered, dropped.len() as u64, "filtered count");
}

#[tokio::test]
async fn aws_alb_preset_keeps_alb_names() {
    check_filter(
        CookieFilter::aws_alb(),
        &[
            "AWSALB",
            "AWSALBCORS",
            "AWSALBAPP",
            "AWSALBAPP-0",
            "AWSALBTG",
            "AWSALBTGCORS",
        ],
        &["AWSELB", "awsalb", "AWSALBX", "JSESSIONID"],
    )
    .await;
}

#[tokio::test]
async fn aws_elb_preset_keeps_elb_names() {
    check_filter(
        CookieFilter::aws_elb(),
        &["AWSELB", "AWSELBCORS"],
        &["AWSALB", "awselb"],
    )
    .await;
}

#[tokio::test]
async fn ingress_nginx_preset_keeps_ingresscookie() {
    check_filter(
        CookieFilter::ingress_nginx(),
        &["INGRESSCOOKIE"],
        &["route", "INGRESS"],
    )
    .await;
}

#[tokio::test]
async fn haproxy_preset_keeps_serverid_srv() {
    check_filter(
        CookieFilter::haproxy(),
        &["SERVERID", "SRV"],
        &["SERVER", "srv"],
    )
    .await;
}

#[tokio::test]
async fn nginx_sticky_preset_keeps_route() {
    check_filter(
        CookieFilter::nginx_sticky(),
        &["route"],
        &["Route", "routes"],
    )
    .await;
}

#[tokio::test]
async fn digitalocean_preset_keeps_do_lb() {
    check_filter(
        CookieFilter::digitalocean(),
        &["DO-LB"],
        &["DO-LB2", "do-lb"],
    )
    .await;
}

#[tokio::test]
async fn traefik_preset_keeps_hex_names() {
    check_filter(
        CookieFilter::traefik(),
        &["_1a2b3", "_ABCDE"],
        &["_1a2b", "_1a2b3c", "_ghijk", "1a2b3c"],
    )
    .await;
}

#[tokio::test]
async fn load_balancers_preset_keeps_all_presets() {
    check_filter(
        CookieFilter::load_balancers(),
        &[
            "AWSALB",
            "AWSELB",
            "INGRESSCOOKIE",
            "SERVERID",
            "route",
            "DO-LB",
            "_0f0f0",
        ],
        &["JSESSIONID", "_ga", "session"],
    )
    .await;
}

#[tokio::test]
async fn allow_filter_keeps_listed_names() {
    check_filter(CookieFilter::allow(["SRV"]), &["SRV"], &["_ga", "srv"]).await;
}

#[tokio::test]
async fn deny_filter_drops_listed_names() {
    check_filter(
        CookieFilter::deny(["_ga", "_gid"]),
        &["SRV", "id"],
        &["_ga", "_gid"],
    )
    .await;
}

#[tokio::test]
async fn from_fn_filter_uses_predicate() {
    let filter = CookieFilter::from_fn(|name| name.starts_with(b"lb_"));
    check_filter(filter, &["lb_a", "lb_b"], &["a_lb", "lb"]).await;
}

#[tokio::test]
async fn or_filter_keeps_either() {
    let filter = CookieFilter::allow(["A"]).or(CookieFilter::allow(["B"]));
    check_filter(filter, &["A", "B"], &["C"]).await;
}

// Controls

#[tokio::test]
async fn inserted_cookie_reaches_first_request() {
    let jar = shared(MemoryJar::new());
    jar.insert(Cookie::new("SRV", "s1", "api.example"))
        .expect("a valid cookie");

    let header = send(&jar, "http://api.example/orders", &[]).await;

    assert_eq!(header.as_deref(), Some("SRV=s1"));
    assert_eq!(send(&jar, "http://other.example/", &[]).await, None);
}

#[tokio::test]
async fn inserted_domain_cookie_reaches_subdomain() {
    let jar = shared(MemoryJar::new());
    let cookie = Cookie::new("lb", "1", "example").with_host_only(false);
    jar.insert(cookie).expect("a valid cookie");

    let header = send(&jar, "http://api.example/", &[]).await;

    assert_eq!(header.as_deref(), Some("lb=1"));
}

#[tokio::test]
async fn inserted_secure_cookie_needs_https() {
    let jar = shared(MemoryJar::new());
    let cookie = Cookie::new("lb", "1", "api.example").with_secure(true);
    jar.insert(cookie).expect("a valid cookie");

    assert_eq!(send(&jar, "http://api.example/", &[]).await, None);
    assert_eq!(
        send(&jar, "https://api.example/", &[]).await.as_deref(),
        Some("lb=1")
    );
}

#[tokio::test]
async fn insert_rejects_invalid_cookie() {
    let jar = shared(MemoryJar::new());

    let result = jar.insert(Cookie::new("SRV", "a;b", "api.example"));

    assert_eq!(result, Err(RejectReason::InvalidCharacter));
    assert_eq!(send(&jar, "http://api.example/", &[]).await, None);
    assert_eq!(jar.stats().rejected(RejectReason::InvalidCharacter), 1);
}

#[tokio::test]
async fn remove_drops_one_cookie() {
    let jar = shared(MemoryJar::new());
    send(&jar, "http://a.example/", &["a=1", "b=2"]).await;

    let removed = jar.remove("a.example", "/", "a");
    let header = send(&jar, "http://a.example/", &[]).await;

    assert_eq!(removed, 1);
    assert_eq!(header.as_deref(), Some("b=2"));
    assert_eq!(jar.remove("a.example", "/", "a"), 0);
}

#[tokio::test]
async fn remove_key_drops_exact_cookie() {
    let jar = shared(MemoryJar::new());
    send(
        &jar,
        "http://www.example/",
        &["id=host", "id=domain; Domain=www.example"],
    )
    .await;
    let key = jar
        .cookies()
        .iter()
        .find(|cookie| cookie.is_host_only())
        .expect("the host-only cookie")
        .key();

    let removed = jar.remove_key(&key);
    let header = send(&jar, "http://www.example/", &[]).await;

    assert!(removed);
    assert_eq!(header.as_deref(), Some("id=domain"));
    assert!(!jar.remove_key(&key));
}

#[tokio::test]
async fn remove_domain_drops_subdomains() {
    let jar = shared(MemoryJar::new());
    send(&jar, "http://example.test/", &["a=1"]).await;
    send(&jar, "http://api.example.test/", &["b=2"]).await;
    send(&jar, "http://notexample.test/", &["c=3"]).await;

    let removed = jar.remove_domain("example.test");

    assert_eq!(removed, 2);
    assert_eq!(send(&jar, "http://example.test/", &[]).await, None);
    assert_eq!(send(&jar, "http://api.example.test/", &[]).await, None);
    assert_eq!(
        send(&jar, "http://notexample.test/", &[]).await.as_deref(),
        Some("c=3")
    );
}

#[tokio::test]
async fn clear_empties_but_keeps_counters() {
    let jar = shared(MemoryJar::new());
    send(&jar, "http://a.example/", &["a=1", "b=2; Domain=a.example"]).await;

    jar.clear();
    let header = send(&jar, "http://a.example/", &[]).await;

    assert_eq!(header, None);
    assert_eq!(jar.len(), 0);
    let stats = jar.stats();
    assert_eq!(stats.stored, 2);
    assert_eq!(stats.cookies, 0);
    assert_eq!(stats.bytes, 0);
}

#[tokio::test]
async fn purge_expired_removes_only_expired() {
    let jar = shared(MemoryJar::new());
    send(&jar, "http://a.example/", &["short=1; Max-Age=1", "long=1"]).await;
    let expires = jar.get("a.example", "/", "short")[0]
        .expires()
        .expect("an expiry time");

    // The only sleep in this file: long enough for `Max-Age=1` to pass.
    let wait = expires
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    thread::sleep(wait + Duration::from_millis(50));
    let held_before = jar.len();
    let purged = jar.purge_expired();

    assert_eq!(held_before, 2, "expired cookies stay until purged");
    assert_eq!(purged, 1);
    assert_eq!(jar.len(), 1);
    assert_eq!(jar.stats().expired, 1);
    assert_eq!(
        send(&jar, "http://a.example/", &[]).await.as_deref(),
        Some("long=1")
    );
    assert_eq!(jar.purge_expired(), 0);
}

#[tokio::test]
async fn len_and_stats_follow_traffic() {
    let jar = shared(MemoryJar::new());

    // Stores `a` (3 bytes + path `/`) and `b` (4 bytes + path `/p`).
    send(&jar, "http://a.example/", &["a=1", "b=22; Path=/p"]).await;
    let stats = jar.stats();
    assert_eq!(jar.len(), 2);
    assert_eq!(stats.stored, 2);
    assert_eq!(stats.cookies, 2);
    assert_eq!(stats.bytes, 10);
    assert_eq!(stats.replayed, 0);

    // Replays `a` and replaces it with a 5-byte pair.
    let header = send(&jar, "http://a.example/", &["a=333"]).await;
    let stats = jar.stats();
    assert_eq!(header.as_deref(), Some("a=1"));
    assert_eq!(stats.replaced, 1);
    assert_eq!(stats.bytes, 12);
    assert_eq!(stats.replayed, 1);

    // Replays both, and the server deletes `b`.
    let header = send(&jar, "http://a.example/p", &["b=; Path=/p; Max-Age=0"]).await;
    let stats = jar.stats();
    assert_eq!(header.as_deref(), Some("b=22; a=333"));
    assert_eq!(stats.deleted, 1);
    assert_eq!(stats.replayed, 2);
    assert_eq!(stats.cookies, 1);
    assert_eq!(stats.bytes, 6);
    assert_eq!(jar.len(), 1);

    // A host with no cookies gets no header and is not counted.
    assert_eq!(send(&jar, "http://other.example/", &[]).await, None);
    assert_eq!(jar.stats().replayed, 2);

    // Values the jar cannot use are counted by reason.
    send(&jar, "http://a.example/", &["=x", "noequals"]).await;
    let stats = jar.stats();
    assert_eq!(stats.rejected(RejectReason::EmptyName), 1);
    assert_eq!(stats.rejected(RejectReason::MissingEquals), 1);
    assert_eq!(stats.rejected_total(), 2);
    assert_eq!(jar.len(), 1);
}
