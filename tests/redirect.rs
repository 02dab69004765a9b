//! The layer under tower-http's `FollowRedirect`, against real HTTP servers.
//!
//! `FollowRedirect` sits outside the layer, so every hop of a redirect chain
//! passes through the jar: cookies set on a redirect response reach the next
//! hop, and cookies never cross to another host.
//!
//! The two hosts `a.test` and `b.test` are backends on 127.0.0.1. The client
//! resolves exactly these two names itself and never uses the system
//! resolver.

mod support;

use std::{
    future::{Ready, ready},
    io,
    iter::{Once, once},
    net::{Ipv4Addr, SocketAddr},
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{
    HeaderValue, Response, StatusCode,
    header::{LOCATION, SET_COOKIE},
};
use http_body_util::{Empty, Full};
use hyper_util::{
    client::legacy::{
        Client,
        connect::{HttpConnector, dns::Name},
    },
    rt::TokioExecutor,
};
use tower::{Service, ServiceBuilder};
use tower_http::follow_redirect::{FollowRedirect, FollowRedirectLayer};
use tower_sticky::{Sticky, StickyLayer};

use support::{Backend, backend_id, send_get};

/// Resolves `a.test` and `b.test` to 127.0.0.1 and fails for every other
/// name. The connector puts the port from the URI on the address.
#[derive(Debug, Clone, Copy)]
struct TestHostResolver;

impl Service<Name> for TestHostResolver {
    type Response = Once<SocketAddr>;
    type Error = io::Error;
    type Future = Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let result = match name.as_str() {
            "a.test" | "b.test" => Ok(once(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))),
            other => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("host {other} is not a test host; only a.test and b.test resolve"),
            )),
        };
        ready(result)
    }
}

type TestClient = Client<HttpConnector<TestHostResolver>, Empty<Bytes>>;

/// Returns a client that follows redirects outside the layer, so that each
/// hop passes through the jar.
fn redirecting_client() -> FollowRedirect<Sticky<TestClient>> {
    let client = Client::builder(TokioExecutor::new())
        .build(HttpConnector::new_with_resolver(TestHostResolver));
    ServiceBuilder::new()
        .layer(FollowRedirectLayer::new())
        .layer(StickyLayer::new())
        .service(client)
}

fn redirect(response: &mut Response<Full<Bytes>>, location: &str, set_cookie: &'static str) {
    *response.status_mut() = StatusCode::FOUND;
    let headers = response.headers_mut();
    headers.insert(LOCATION, HeaderValue::from_str(location).unwrap());
    headers.append(SET_COOKIE, HeaderValue::from_static(set_cookie));
}

/// Starts `b.test`, which responds `200 OK` to every request, and `a.test`,
/// which redirects `/login` to its own `/home` and `/to-b` to `b.test`. Both
/// redirects set a cookie.
async fn start_hosts() -> (Backend, Backend) {
    let host_b = Backend::start("b").await;
    let b_landing = format!("http://b.test:{}/landing", host_b.port());
    let host_a = Backend::start_with("a", move |request, response| match request.uri.path() {
        "/login" => redirect(response, "/home", "session=a1; Path=/"),
        "/to-b" => redirect(response, &b_landing, "SRV=a; Path=/"),
        _ => {}
    })
    .await;
    (host_a, host_b)
}

#[tokio::test]
async fn cookie_from_302_reaches_target() {
    let (host_a, _host_b) = start_hosts().await;
    let mut client = redirecting_client();

    let url = format!("http://a.test:{}/login", host_a.port());
    let response = send_get(&mut client, &url).await;
    assert_eq!(response.status(), StatusCode::OK);

    let received = host_a.requests();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].uri.path(), "/login");
    let cookies = received[0].cookies();
    assert!(cookies.is_empty(), "first request sent cookies {cookies:?}");
    assert_eq!(received[1].uri.path(), "/home");
    assert_eq!(received[1].cookies(), ["session=a1"]);
}

#[tokio::test]
async fn cookie_stays_on_its_host() {
    let (host_a, host_b) = start_hosts().await;
    let mut client = redirecting_client();

    let url = format!("http://a.test:{}/to-b", host_a.port());
    let response = send_get(&mut client, &url).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(backend_id(&response), "b");

    let received_by_b = host_b.requests();
    assert_eq!(received_by_b.len(), 1);
    let cookies = received_by_b[0].cookies();
    assert!(cookies.is_empty(), "b.test received cookies {cookies:?}");

    // The jar did store the cookie: the next request to a.test carries it.
    let url = format!("http://a.test:{}/home", host_a.port());
    send_get(&mut client, &url).await;
    let received_by_a = host_a.requests();
    assert_eq!(received_by_a.len(), 2);
    assert_eq!(received_by_a[1].cookies(), ["SRV=a"]);
}
