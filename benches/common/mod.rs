//! Fixtures shared by the benchmarks: the rotating AWS ALB cookie pair,
//! prepared responses, a poll helper for services that are always ready, and
//! the reqwest and cookie_store jars driven the way a tower layer would
//! drive them.

// Each benchmark binary compiles this module again and uses only part of it.
#![allow(dead_code)]

use std::{
    fmt::Debug,
    pin::pin,
    sync::Arc,
    task::{Context, Poll, Waker},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http::{
    HeaderMap, HeaderValue, Request, Response, Uri,
    header::{CONTENT_LENGTH, CONTENT_TYPE, COOKIE, SET_COOKIE},
};
use tower::Service;

/// Host of the balancer in the request-path benchmarks.
pub const ORIGIN_HOST: &str = "alb.example.test";

/// Target of every request in the request-path benchmarks. It is `https`
/// because `AWSALBCORS` is `Secure`, so every jar both stores and replays it.
pub const REQUEST_URI: &str = "https://alb.example.test/api/v1/items/42";

/// Number of distinct responses in a rotating ring, so that consecutive
/// responses carry new cookie values, as an ALB sends.
pub const ROTATION_LENGTH: usize = 256;

/// Lifetime that ALB gives its cookies: seven days.
const ALB_COOKIE_LIFETIME: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Length of an `AWSALB` value in base64 characters, close to what ALB sends.
const ALB_VALUE_LENGTH: usize = 136;

/// Returns the request URI, parsed once. Cloning it in a loop copies no
/// bytes because it was parsed from a `&'static str`.
pub fn request_uri() -> Uri {
    Uri::from_static(REQUEST_URI)
}

/// Builds the request that every request-path variant sends: a GET to an
/// absolute URI, with no headers.
#[inline]
pub fn plain_request(uri: &Uri) -> Request<()> {
    let mut request = Request::new(());
    *request.uri_mut() = uri.clone();
    request
}

/// Builds the request with one header already set, so that its header map
/// has room and inserting `Cookie` does not allocate.
#[inline]
pub fn request_with_header(uri: &Uri, accept: &HeaderValue) -> Request<()> {
    let mut request = plain_request(uri);
    request
        .headers_mut()
        .insert(http::header::ACCEPT, accept.clone());
    request
}

/// Formats a Unix time as an IMF-fixdate, the `Expires` format of RFC 9110
/// section 5.6.7, such as `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(unix_seconds: u64) -> String {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_seconds / 86_400;
    let seconds_of_day = unix_seconds % 86_400;
    // 1970-01-01 was a Thursday.
    let weekday = WEEKDAYS[(days % 7) as usize];

    // Civil date from a day count, using years that start on 1 March so
    // that the leap day falls at the end of a year.
    let shifted = days as i64 + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);

    format!(
        "{weekday}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        MONTHS[(month - 1) as usize],
        seconds_of_day / 3_600,
        seconds_of_day / 60 % 60,
        seconds_of_day % 60,
    )
}

/// A deterministic source of cookie values (xorshift64).
pub struct ValueSource(u64);

impl ValueSource {
    pub fn new(seed: u64) -> Self {
        ValueSource(seed | 1)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Returns a base64-looking value of `ALB_VALUE_LENGTH` characters.
    pub fn alb_value(&mut self) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        (0..ALB_VALUE_LENGTH)
            .map(|_| char::from(ALPHABET[(self.next_u64() % 64) as usize]))
            .collect()
    }
}

/// Returns the two `Set-Cookie` lines that an ALB with stickiness sends:
/// `AWSALB` and its `SameSite=None; Secure` twin `AWSALBCORS`, with the same
/// value, `Expires` seven days ahead and `Path=/`.
pub fn alb_set_cookie_pair(source: &mut ValueSource) -> [HeaderValue; 2] {
    let expires = SystemTime::now() + ALB_COOKIE_LIFETIME;
    let expires = expires
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let date = http_date(expires);
    let value = source.alb_value();
    let plain = format!("AWSALB={value}; Expires={date}; Path=/");
    let cors = format!("AWSALBCORS={value}; Expires={date}; Path=/; SameSite=None; Secure");
    [
        HeaderValue::try_from(plain).expect("valid header value"),
        HeaderValue::try_from(cors).expect("valid header value"),
    ]
}

/// Builds a response with the headers every prepared response carries.
fn base_response() -> Response<()> {
    let mut response = Response::new(());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    response
}

/// Returns a prepared response with no `Set-Cookie`.
pub fn response_without_cookies() -> Response<()> {
    base_response()
}

/// Returns `ROTATION_LENGTH` prepared responses, each with a new ALB pair.
pub fn rotating_responses(seed: u64) -> Arc<[Response<()>]> {
    let mut source = ValueSource::new(seed);
    (0..ROTATION_LENGTH)
        .map(|_| {
            let mut response = base_response();
            for line in alb_set_cookie_pair(&mut source) {
                response.headers_mut().append(SET_COOKIE, line);
            }
            // Cloning a response clones its header values. Clone each once
            // here so that their bytes are already shared and the clones in
            // the measured loop do not allocate for that.
            drop(response.clone());
            response
        })
        .collect()
}

/// An inner service that returns a clone of one prepared response, like a
/// client whose network round trip costs nothing.
pub fn fixed_service(
    response: Response<()>,
) -> impl Service<Request<()>, Response = Response<()>, Error = std::convert::Infallible, Future: Send>
+ Clone
+ Send {
    drop(response.clone());
    tower::service_fn(move |request: Request<()>| {
        drop(request);
        std::future::ready(Ok(response.clone()))
    })
}

/// An inner service that returns the prepared responses in turn, starting
/// at `offset`, so each response carries a new cookie value. Every clone of
/// the service keeps its own position.
pub fn rotating_service(
    responses: Arc<[Response<()>]>,
    offset: usize,
) -> impl Service<Request<()>, Response = Response<()>, Error = std::convert::Infallible, Future: Send>
+ Clone
+ Send {
    let mut next = offset;
    tower::service_fn(move |request: Request<()>| {
        drop(request);
        let response = responses[next % responses.len()].clone();
        next = next.wrapping_add(1);
        std::future::ready(Ok(response))
    })
}

/// Calls a service whose readiness and response futures complete on their
/// first poll, without an executor.
///
/// # Panics
///
/// Panics when the service is not ready, fails, or its future is pending.
#[inline]
pub fn call_now<S, R>(service: &mut S, request: R) -> S::Response
where
    S: Service<R>,
    S::Error: Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    match service.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(error)) => panic!("service failed to get ready: {error:?}"),
        Poll::Pending => panic!("service was not ready on the first poll"),
    }
    let future = pin!(service.call(request));
    match future.poll(&mut cx) {
        Poll::Ready(Ok(response)) => response,
        Poll::Ready(Err(error)) => panic!("service failed: {error:?}"),
        Poll::Pending => panic!("response future was pending on the first poll"),
    }
}

/// Awaits every task, panicking when one panicked or when all of them take
/// longer than `timeout`, so that a stalled run fails instead of hanging.
pub async fn join_within(handles: Vec<tokio::task::JoinHandle<()>>, timeout: Duration) {
    let joined = tokio::time::timeout(timeout, async {
        for handle in handles {
            handle.await.expect("request task panicked");
        }
    });
    joined.await.expect("batch of requests timed out");
}

/// Converts an `http::Uri` to a `url::Url`, as a tower layer built on a jar
/// that takes a `Url` has to for every request.
#[inline]
pub fn url_of(uri: &Uri) -> url::Url {
    url::Url::parse(&uri.to_string()).expect("absolute URI")
}

/// Sends one request through `inner` with reqwest's jar doing what the
/// layer does: convert the URI, add the `Cookie` header, store the
/// response's `Set-Cookie` values.
#[inline]
pub fn call_with_reqwest_jar<S>(
    jar: &reqwest::cookie::Jar,
    inner: &mut S,
    mut request: Request<()>,
) -> Response<()>
where
    S: Service<Request<()>, Response = Response<()>>,
    S::Error: Debug,
{
    use reqwest::cookie::CookieStore;

    let url = url_of(request.uri());
    if let Some(header) = jar.cookies(&url) {
        request.headers_mut().insert(COOKIE, header);
    }
    let response = call_now(inner, request);
    jar.set_cookies(&mut response.headers().get_all(SET_COOKIE).iter(), &url);
    response
}

/// Renders cookie_store's matches for `url` as one `Cookie` header value.
pub fn cookie_store_header(
    store: &cookie_store::CookieStore,
    url: &url::Url,
) -> Option<HeaderValue> {
    let mut rendered = String::new();
    for (name, value) in store.get_request_values(url) {
        if !rendered.is_empty() {
            rendered.push_str("; ");
        }
        rendered.push_str(name);
        rendered.push('=');
        rendered.push_str(value);
    }
    if rendered.is_empty() {
        return None;
    }
    HeaderValue::from_maybe_shared(Bytes::from(rendered)).ok()
}

/// Stores `Set-Cookie` values in cookie_store, skipping those that do not
/// parse, as reqwest does.
pub fn cookie_store_capture(
    store: &mut cookie_store::CookieStore,
    headers: &HeaderMap,
    url: &url::Url,
) {
    let parsed = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|value| cookie_store::RawCookie::parse(value).ok())
        .map(cookie_store::RawCookie::into_owned);
    store.store_response_cookies(parsed, url);
}

/// Sends one request through `inner` with a `cookie_store::CookieStore`
/// used directly, without reqwest's wrapper and its lock.
#[inline]
pub fn call_with_cookie_store<S>(
    store: &mut cookie_store::CookieStore,
    inner: &mut S,
    mut request: Request<()>,
) -> Response<()>
where
    S: Service<Request<()>, Response = Response<()>>,
    S::Error: Debug,
{
    let url = url_of(request.uri());
    if let Some(header) = cookie_store_header(store, &url) {
        request.headers_mut().insert(COOKIE, header);
    }
    let response = call_now(inner, request);
    cookie_store_capture(store, response.headers(), &url);
    response
}

/// Returns the names in a `Cookie` header value, in order.
pub fn cookie_names(header: &HeaderValue) -> Vec<String> {
    header
        .to_str()
        .expect("ASCII Cookie header")
        .split("; ")
        .map(|pair| pair.split('=').next().unwrap_or_default().to_owned())
        .collect()
}

/// Panics unless `header` carries exactly the ALB pair, in any order:
/// cookie_store does not sort cookies of equal path length by age.
pub fn assert_alb_pair(header: Option<HeaderValue>, jar_name: &str) {
    let header = header.unwrap_or_else(|| panic!("{jar_name} sent no Cookie header"));
    let mut names = cookie_names(&header);
    names.sort();
    assert_eq!(
        names,
        ["AWSALB", "AWSALBCORS"],
        "{jar_name} sent other cookies than the ALB pair"
    );
}
