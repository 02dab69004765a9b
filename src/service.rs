//! The [`Sticky`] service.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use http::{HeaderMap, HeaderValue, Request, Response, header::COOKIE};
use tower_service::Service;

use crate::{
    CookieJar, MemoryJar, RequestTarget, ResponseFuture, StickyLayer, future::OwnedTarget,
};

/// Middleware that keeps an HTTP client on one backend behind a sticky load
/// balancer.
///
/// It stores the cookies of every response in a jar and sends the matching
/// ones back on later requests, as a browser does. The inner service's
/// response and error types pass through unchanged. See the
/// [crate docs](crate) for the rules it follows.
#[derive(Debug, Clone)]
pub struct Sticky<S, J = Arc<MemoryJar>> {
    inner: S,
    jar: J,
}

impl<S> Sticky<S> {
    /// Wraps `inner` with a new, empty [`MemoryJar`].
    pub fn new(inner: S) -> Self {
        Sticky::with_jar(inner, Arc::new(MemoryJar::new()))
    }

    /// Returns a [`StickyLayer`] with a new, empty [`MemoryJar`].
    pub fn layer() -> StickyLayer {
        StickyLayer::new()
    }
}

impl<S, J> Sticky<S, J> {
    /// Wraps `inner`, keeping cookies in `jar`.
    pub const fn with_jar(inner: S, jar: J) -> Self {
        Sticky { inner, jar }
    }

    /// Returns the jar.
    pub const fn jar(&self) -> &J {
        &self.jar
    }

    /// Returns a reference to the inner service.
    pub const fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Returns a mutable reference to the inner service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, J, ReqBody, ResBody> Service<Request<ReqBody>> for Sticky<S, J>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    J: CookieJar + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, J>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let prepared = match RequestTarget::from_request(&request) {
            Some(target) => {
                let header = self.jar.cookie_header(&target);
                Some((OwnedTarget::new(&target), header))
            }
            None => {
                // The URI is left out of the event: its query may carry a
                // credential.
                tracing::debug!(
                    "request has no absolute http(s) URI and no usable Host header; \
                     sending it without cookies and not storing its response's cookies"
                );
                None
            }
        };

        let target = match prepared {
            Some((target, header)) => {
                if let Some(header) = header {
                    add_cookie_header(request.headers_mut(), header);
                }
                Some(target)
            }
            None => None,
        };

        let future = self.inner.call(request);
        ResponseFuture::new(future, self.jar.clone(), target)
    }
}

/// Adds the jar's cookies to the request as exactly one `Cookie` header.
///
/// Cookies the caller set come first and win: a stored cookie whose name the
/// caller already sent is left out.
fn add_cookie_header(headers: &mut HeaderMap, stored: HeaderValue) {
    if !headers.contains_key(COOKIE) {
        headers.insert(COOKIE, stored);
        return;
    }

    let mut merged: Vec<u8> = Vec::with_capacity(128);
    let mut sent_names: Vec<&[u8]> = Vec::new();
    for value in headers.get_all(COOKIE) {
        for pair in value.as_bytes().split(|&b| b == b';') {
            let pair = pair.trim_ascii();
            if pair.is_empty() {
                continue;
            }
            if !merged.is_empty() {
                merged.extend_from_slice(b"; ");
            }
            merged.extend_from_slice(pair);
            sent_names.push(name_of(pair));
        }
    }
    let mut sensitive = headers
        .get_all(COOKIE)
        .iter()
        .any(HeaderValue::is_sensitive);
    for pair in stored.as_bytes().split(|&b| b == b';') {
        let pair = pair.trim_ascii();
        if pair.is_empty() || sent_names.contains(&name_of(pair)) {
            continue;
        }
        if !merged.is_empty() {
            merged.extend_from_slice(b"; ");
        }
        merged.extend_from_slice(pair);
        sensitive = true;
    }

    // The caller's values were valid header values and so are ours, and the
    // joined bytes keep that property.
    match HeaderValue::from_bytes(&merged) {
        Ok(mut value) => {
            value.set_sensitive(sensitive);
            headers.insert(COOKIE, value);
        }
        Err(_) => {
            tracing::debug!("merged Cookie header was invalid; keeping the caller's header only");
        }
    }
}

fn name_of(pair: &[u8]) -> &[u8] {
    let name = match pair.iter().position(|&b| b == b'=') {
        Some(at) => &pair[..at],
        None => pair,
    };
    name.trim_ascii()
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::header::SET_COOKIE;
    use tower::{ServiceExt, service_fn};

    use super::*;

    type Seen = Arc<std::sync::Mutex<Vec<Option<HeaderValue>>>>;

    /// An inner service that records each request's `Cookie` header and
    /// responds with the given `Set-Cookie` lines.
    fn recording(
        set_cookie: &'static [&'static str],
    ) -> (
        impl Service<Request<()>, Response = Response<()>, Error = Infallible, Future: Send> + Clone,
        Seen,
    ) {
        let seen: Seen = Arc::default();
        let record = Arc::clone(&seen);
        let service = service_fn(move |request: Request<()>| {
            let cookies: Vec<_> = request.headers().get_all(COOKIE).iter().cloned().collect();
            assert!(
                cookies.len() <= 1,
                "more than one Cookie header: {cookies:?}"
            );
            record.lock().unwrap().push(cookies.into_iter().next());
            let mut response = Response::new(());
            for line in set_cookie {
                response
                    .headers_mut()
                    .append(SET_COOKIE, HeaderValue::from_static(line));
            }
            async move { Ok::<_, Infallible>(response) }
        });
        (service, seen)
    }

    fn get(uri: &str) -> Request<()> {
        Request::get(uri).body(()).unwrap()
    }

    #[tokio::test]
    async fn replays_cookie_on_next_request() {
        let (inner, seen) = recording(&["AWSALB=abc; Path=/"]);
        let mut service = Sticky::new(inner);
        service
            .ready()
            .await
            .unwrap()
            .call(get("http://lb.test/a"))
            .await
            .unwrap();
        service
            .ready()
            .await
            .unwrap()
            .call(get("http://lb.test/b"))
            .await
            .unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0], None);
        assert_eq!(seen[1].as_ref().unwrap(), "AWSALB=abc");
        assert!(seen[1].as_ref().unwrap().is_sensitive());
    }

    #[tokio::test]
    async fn captures_cookies_of_error_status() {
        let inner = service_fn(|_request: Request<()>| async {
            let mut response = Response::new(());
            *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
            response
                .headers_mut()
                .append(SET_COOKIE, HeaderValue::from_static("SRV=s1"));
            Ok::<_, Infallible>(response)
        });
        let service = Sticky::new(inner);
        let jar = Arc::clone(service.jar());
        service.oneshot(get("http://lb.test/")).await.unwrap();
        assert_eq!(jar.len(), 1);
    }

    #[tokio::test]
    async fn caller_cookie_kept_and_wins() {
        let (inner, seen) = recording(&["a=stored", "b=stored"]);
        let mut service = Sticky::new(inner);
        service
            .ready()
            .await
            .unwrap()
            .call(get("http://lb.test/"))
            .await
            .unwrap();
        let request = Request::get("http://lb.test/")
            .header(COOKIE, "a=caller")
            .body(())
            .unwrap();
        service.ready().await.unwrap().call(request).await.unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen[1].as_ref().unwrap(), "a=caller; b=stored");
        assert!(seen[1].as_ref().unwrap().is_sensitive());
    }

    #[tokio::test]
    async fn multiple_caller_cookie_headers_become_one() {
        let (inner, seen) = recording(&["c=stored"]);
        let mut service = Sticky::new(inner);
        service
            .ready()
            .await
            .unwrap()
            .call(get("http://lb.test/"))
            .await
            .unwrap();
        let request = Request::get("http://lb.test/")
            .header(COOKIE, "a=1")
            .header(COOKIE, "b=2")
            .body(())
            .unwrap();
        service.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(
            seen.lock().unwrap()[1].as_ref().unwrap(),
            "a=1; b=2; c=stored"
        );
    }

    #[tokio::test]
    async fn caller_cookie_untouched_when_jar_empty() {
        let (inner, seen) = recording(&[]);
        let request = Request::get("http://lb.test/")
            .header(COOKIE, "a=caller")
            .body(())
            .unwrap();
        Sticky::new(inner).oneshot(request).await.unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].as_ref().unwrap(), "a=caller");
        assert!(!seen[0].as_ref().unwrap().is_sensitive());
    }

    #[tokio::test]
    async fn host_header_target_used() {
        let (inner, seen) = recording(&["SRV=s2"]);
        let mut service = Sticky::new(inner);
        for _ in 0..2 {
            let request = Request::get("/items")
                .header(http::header::HOST, "lb.test:8080")
                .body(())
                .unwrap();
            service.ready().await.unwrap().call(request).await.unwrap();
        }
        assert_eq!(seen.lock().unwrap()[1].as_ref().unwrap(), "SRV=s2");
    }

    #[tokio::test]
    async fn request_without_target_passes_through() {
        let (inner, seen) = recording(&["SRV=s2"]);
        let service = Sticky::new(inner);
        let jar = Arc::clone(service.jar());
        let mut service = service;
        for _ in 0..2 {
            service
                .ready()
                .await
                .unwrap()
                .call(get("/no-host"))
                .await
                .unwrap();
        }
        assert_eq!(seen.lock().unwrap()[1], None);
        assert!(jar.is_empty());
    }

    #[tokio::test]
    async fn cookies_stay_on_their_host() {
        let (inner, seen) = recording(&["SRV=a"]);
        let mut service = Sticky::new(inner);
        service
            .ready()
            .await
            .unwrap()
            .call(get("http://a.test/"))
            .await
            .unwrap();
        service
            .ready()
            .await
            .unwrap()
            .call(get("http://b.test/"))
            .await
            .unwrap();
        assert_eq!(seen.lock().unwrap()[1], None);
    }

    #[tokio::test]
    async fn inner_error_passes_through() {
        let inner = service_fn(|_request: Request<()>| async { Err::<Response<()>, _>("down") });
        let result = Sticky::new(inner).oneshot(get("http://a.test/")).await;
        assert_eq!(result.unwrap_err(), "down");
    }

    #[tokio::test]
    async fn layer_shares_jar_between_services() {
        let layer = StickyLayer::new();
        let (inner, seen) = recording(&["SRV=x"]);
        let first = tower_layer::Layer::layer(&layer, inner.clone());
        let second = tower_layer::Layer::layer(&layer, inner);
        first.oneshot(get("http://lb.test/")).await.unwrap();
        second.oneshot(get("http://lb.test/")).await.unwrap();
        assert_eq!(seen.lock().unwrap()[1].as_ref().unwrap(), "SRV=x");
    }

    #[test]
    fn merge_skips_empty_caller_pairs() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_static(";; a=1 ;"));
        add_cookie_header(&mut headers, HeaderValue::from_static("a=2; b=3"));
        assert_eq!(headers[COOKIE], "a=1; b=3");
    }
}
