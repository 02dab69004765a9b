//! The cost of finding one host's cookies while the jar contains the ALB pair
//! of 1, 100 or 1,000 other hosts, for this crate's jar, reqwest's jar and
//! cookie_store.
//!
//! The request target is prepared outside the measured loop for every jar:
//! a `RequestTarget` for ours, a parsed `url::Url` for the others. Each
//! lookup returns the rendered `Cookie` header value.

mod common;

use std::{hint::black_box, time::Duration};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::{HeaderMap, Request, header::SET_COOKIE};
use reqwest::cookie::CookieStore as _;
use tower_sticky::{CookieJar, MemoryJar, RequestTarget};

use common::{ValueSource, alb_set_cookie_pair, assert_alb_pair, cookie_store_header};

/// Numbers of other hosts in the jar.
const OTHER_HOSTS: [usize; 3] = [1, 100, 1_000];

/// Returns the URIs of `count` other hosts, each a subdomain of another
/// site so that none of their cookies can match the measured host.
fn other_host_uris(count: usize) -> Vec<String> {
    (0..count)
        .map(|index| format!("https://node-{index}.site-{index}.test/api/"))
        .collect()
}

/// Returns `Set-Cookie` headers with a fresh ALB pair.
fn alb_headers(source: &mut ValueSource) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in alb_set_cookie_pair(source) {
        headers.append(SET_COOKIE, line);
    }
    headers
}

fn lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("lookup");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);

    let request = Request::get(common::REQUEST_URI)
        .body(())
        .expect("valid request");
    let target = RequestTarget::from_request(&request).expect("absolute URI");
    let url = common::url_of(request.uri());

    for count in OTHER_HOSTS {
        let mut source = ValueSource::new(count as u64);
        let others: Vec<(url::Url, HeaderMap)> = other_host_uris(count)
            .into_iter()
            .map(|uri| {
                (
                    url::Url::parse(&uri).expect("valid URL"),
                    alb_headers(&mut source),
                )
            })
            .collect();
        let own = alb_headers(&mut source);

        let ours = MemoryJar::new();
        for (other, headers) in &others {
            let host = other.host_str().expect("host");
            let other_target = RequestTarget::new(host, other.path(), true);
            ours.store(&other_target, &mut headers.get_all(SET_COOKIE).iter());
        }
        ours.store(&target, &mut own.get_all(SET_COOKIE).iter());
        assert_eq!(ours.len(), 2 * (count + 1), "MemoryJar dropped cookies");
        assert_alb_pair(ours.cookie_header(&target), "MemoryJar");
        group.bench_function(BenchmarkId::new("ours", count), |b| {
            b.iter(|| ours.cookie_header(black_box(&target)))
        });

        let reqwest_jar = reqwest::cookie::Jar::default();
        for (other, headers) in &others {
            reqwest_jar.set_cookies(&mut headers.get_all(SET_COOKIE).iter(), other);
        }
        reqwest_jar.set_cookies(&mut own.get_all(SET_COOKIE).iter(), &url);
        assert_alb_pair(reqwest_jar.cookies(&url), "reqwest::cookie::Jar");
        group.bench_function(BenchmarkId::new("reqwest", count), |b| {
            b.iter(|| reqwest_jar.cookies(black_box(&url)))
        });

        let mut store = cookie_store::CookieStore::default();
        for (other, headers) in &others {
            common::cookie_store_capture(&mut store, headers, other);
        }
        common::cookie_store_capture(&mut store, &own, &url);
        assert_eq!(
            store.iter_any().count(),
            2 * (count + 1),
            "cookie_store dropped cookies"
        );
        assert_alb_pair(
            cookie_store_header(&store, &url),
            "cookie_store::CookieStore",
        );
        group.bench_function(BenchmarkId::new("cookie_store", count), |b| {
            b.iter(|| cookie_store_header(&store, black_box(&url)))
        });
    }
    group.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
