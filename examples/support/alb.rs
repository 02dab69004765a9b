//! A load balancer on 127.0.0.1 that behaves like an AWS ALB with
//! duration-based stickiness, shared by the examples and the tests that
//! include this file with `#[path]`.
//!
//! A request without a valid `AWSALB` cookie goes to the next backend in
//! round-robin order, a request with one goes to the backend the cookie
//! names, and every response sets new, opaque `AWSALB` and `AWSALBCORS`
//! values. What a backend does with a request is up to the includer.

// Each includer uses only some of these items.
#![allow(dead_code)]

use std::{
    collections::hash_map::RandomState,
    error::Error,
    future::Future,
    hash::BuildHasher,
    net::{Ipv4Addr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use http::{
    HeaderMap, HeaderValue, Request, Response,
    header::{COOKIE, InvalidHeaderValue, SET_COOKIE},
};
use http_body_util::Full;
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub type BoxError = Box<dyn Error + Send + Sync>;

/// Lifetime of the stickiness cookies, as the `Expires` attribute gives it.
pub const COOKIE_LIFETIME: Duration = Duration::from_secs(7 * 24 * 60 * 60);

// ---------------------------------------------------------------------------
// Cookie codec
// ---------------------------------------------------------------------------

/// Seals a backend id into an opaque cookie value and opens it again.
///
/// A value is 32 lowercase hex digits: a 64-bit tag, then the 64-bit payload
/// (a counter and the backend id) XORed with a pad derived from the tag. Tag
/// and pad come from SipHash with the random keys of a [`RandomState`], a
/// keyed function that a client without the keys cannot predict. A client
/// therefore cannot read the backend from the value or forge one, and each
/// response gets a new value because the counter grows.
///
/// NOTE: this imitates what an ALB cookie looks like from outside. It is not
/// a reviewed cookie format: a real one would use an AEAD or HMAC with a
/// managed key.
pub struct CookieCodec {
    key: RandomState,
    counter: AtomicU64,
    backends: usize,
}

impl CookieCodec {
    /// Creates a codec with new random keys for values that name one of
    /// `backends` backends.
    pub fn new(backends: usize) -> Self {
        CookieCodec {
            key: RandomState::new(),
            counter: AtomicU64::new(0),
            backends,
        }
    }

    /// Seals `backend` into a new cookie value.
    pub fn seal(&self, backend: usize) -> String {
        // The low 8 bits hold the backend and the other 56 the counter, which
        // would take over 200,000 years to wrap at 10,000 requests per second.
        let count = self.counter.fetch_add(1, Ordering::Relaxed);
        let payload = (count << 8) | backend as u64;
        let tag = self.key.hash_one(("tag", payload));
        let sealed = payload ^ self.key.hash_one(("pad", tag));
        format!("{tag:016x}{sealed:016x}")
    }

    /// Returns the backend a value names, or `None` for a value this codec
    /// did not issue.
    pub fn open(&self, value: &str) -> Option<usize> {
        let is_lower_hex = |byte: u8| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte);
        if value.len() != 32 || !value.bytes().all(is_lower_hex) {
            return None;
        }
        let tag = u64::from_str_radix(&value[..16], 16).ok()?;
        let sealed = u64::from_str_radix(&value[16..], 16).ok()?;
        let payload = sealed ^ self.key.hash_one(("pad", tag));
        if self.key.hash_one(("tag", payload)) != tag {
            return None;
        }
        let backend = (payload & 0xff) as usize;
        (backend < self.backends).then_some(backend)
    }
}

/// Checks that the codec opens its own values and rejects changed or foreign
/// ones, because the balancer's "forged value counts as no cookie" rule
/// depends on it.
pub fn check_cookie_codec() -> Result<(), BoxError> {
    let codec = CookieCodec::new(3);
    let value = codec.seal(2);
    if codec.open(&value) != Some(2) {
        return Err(format!("cookie codec did not open its own value {value}").into());
    }

    let mut changed = value.clone().into_bytes();
    changed[31] = if changed[31] == b'0' { b'1' } else { b'0' };
    let changed = String::from_utf8(changed).expect("hex digits are ASCII");
    if codec.open(&changed).is_some() {
        return Err(format!("cookie codec accepted the changed value {changed}").into());
    }
    if CookieCodec::new(3).open(&value).is_some() {
        return Err("cookie codec accepted a value sealed with another key".into());
    }
    Ok(())
}

/// Formats a time as an HTTP date in IMF-fixdate form (RFC 9110 section
/// 5.6.7), such as `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn imf_fixdate(time: SystemTime) -> String {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];

    let seconds = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let days = seconds / 86_400;
    let second_of_day = seconds % 86_400;
    let (year, month, day) = civil_date(days);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        // 1 January 1970 was a Thursday.
        WEEKDAYS[(days % 7) as usize],
        MONTHS[month],
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60,
    )
}

/// Converts days since 1970-01-01 to (year, month index from 0, day of month
/// from 1) in the proleptic Gregorian calendar.
fn civil_date(mut days: u64) -> (u64, usize, u64) {
    let is_leap = |year: u64| {
        (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
    };
    let mut year = 1970;
    loop {
        let length = if is_leap(year) { 366 } else { 365 };
        if days < length {
            break;
        }
        days -= length;
        year += 1;
    }
    let february = if is_leap(year) { 29 } else { 28 };
    let month_lengths = [31, february, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let mut month = 0;
    while days >= month_lengths[month] {
        days -= month_lengths[month];
        month += 1;
    }
    (year, month, days + 1)
}

// ---------------------------------------------------------------------------
// Load balancer with ALB duration-based stickiness
// ---------------------------------------------------------------------------

/// The routing state of an ALB-like balancer: which backend a request goes
/// to, and which cookies pin it there.
pub struct Balancer {
    codec: CookieCodec,
    backends: usize,
    next_backend: AtomicUsize,
    counts: CookieCounts,
}

/// Counts of the stickiness cookies in the `Cookie` headers the balancer
/// received.
#[derive(Default)]
struct CookieCounts {
    valid_awsalb: AtomicU64,
    invalid_awsalb: AtomicU64,
    awsalbcors: AtomicU64,
}

/// A snapshot of [`CookieCounts`].
#[derive(Debug, Clone, Copy)]
pub struct CookieTotals {
    pub valid_awsalb: u64,
    pub invalid_awsalb: u64,
    pub awsalbcors: u64,
}

impl Balancer {
    /// Creates a balancer in front of `backends` backends, numbered from 0.
    pub fn new(backends: usize) -> Self {
        Balancer {
            codec: CookieCodec::new(backends),
            backends,
            next_backend: AtomicUsize::new(0),
            counts: CookieCounts::default(),
        }
    }

    /// Picks the backend for a request: the one its `AWSALB` cookie names or,
    /// without a valid cookie, the next in round-robin order.
    pub fn pick_backend(&self, headers: &HeaderMap) -> usize {
        let mut sticky = None;
        let mut awsalb_sent = false;
        let mut awsalbcors_sent = false;
        let pairs = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|header| header.to_str().ok())
            .flat_map(|header| header.split(';'));
        for pair in pairs {
            let Some((name, value)) = pair.trim().split_once('=') else {
                continue;
            };
            match name.trim() {
                "AWSALB" => {
                    awsalb_sent = true;
                    sticky = sticky.or_else(|| self.codec.open(value.trim()));
                }
                "AWSALBCORS" => awsalbcors_sent = true,
                _ => {}
            }
        }

        if awsalbcors_sent {
            self.counts.awsalbcors.fetch_add(1, Ordering::Relaxed);
        }
        match sticky {
            Some(backend) => {
                self.counts.valid_awsalb.fetch_add(1, Ordering::Relaxed);
                backend
            }
            None => {
                // A forged, foreign or garbled value counts as no cookie.
                if awsalb_sent {
                    self.counts.invalid_awsalb.fetch_add(1, Ordering::Relaxed);
                }
                self.next_backend.fetch_add(1, Ordering::Relaxed) % self.backends
            }
        }
    }

    /// Builds the two `Set-Cookie` values an ALB adds to every response. Both
    /// carry the same new value, and `AWSALBCORS` adds the attributes that
    /// let browsers send it on cross-site requests.
    pub fn stickiness_cookies(
        &self,
        backend: usize,
    ) -> Result<[HeaderValue; 2], InvalidHeaderValue> {
        let value = self.codec.seal(backend);
        let expires = imf_fixdate(SystemTime::now() + COOKIE_LIFETIME);
        Ok([
            HeaderValue::try_from(format!("AWSALB={value}; Expires={expires}; Path=/"))?,
            HeaderValue::try_from(format!(
                "AWSALBCORS={value}; Expires={expires}; Path=/; SameSite=None; Secure"
            ))?,
        ])
    }

    /// Returns the counts of stickiness cookies received so far.
    pub fn totals(&self) -> CookieTotals {
        CookieTotals {
            valid_awsalb: self.counts.valid_awsalb.load(Ordering::Relaxed),
            invalid_awsalb: self.counts.invalid_awsalb.load(Ordering::Relaxed),
            awsalbcors: self.counts.awsalbcors.load(Ordering::Relaxed),
        }
    }
}

/// A balancer that accepts connections on `address` until it is dropped.
pub struct RunningBalancer {
    pub address: SocketAddr,
    pub state: Arc<Balancer>,
    accept_task: tokio::task::JoinHandle<()>,
}

impl Drop for RunningBalancer {
    fn drop(&mut self) {
        // Open connections end when their clients drop them.
        self.accept_task.abort();
    }
}

/// Starts a balancer in front of `backends` backends on a free port of
/// 127.0.0.1. `handle` serves a request that the balancer routed to the
/// backend with the given number.
pub async fn start_balancer<H, F>(backends: usize, handle: H) -> Result<RunningBalancer, BoxError>
where
    H: Fn(usize, Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Response<Full<Bytes>>, BoxError>> + Send + 'static,
{
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let address = listener.local_addr()?;
    let state = Arc::new(Balancer::new(backends));
    let accept_task = tokio::spawn(accept_connections(
        listener,
        Arc::clone(&state),
        Arc::new(handle),
    ));
    Ok(RunningBalancer {
        address,
        state,
        accept_task,
    })
}

async fn accept_connections<H, F>(listener: TcpListener, balancer: Arc<Balancer>, handle: Arc<H>)
where
    H: Fn(usize, Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Response<Full<Bytes>>, BoxError>> + Send + 'static,
{
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                eprintln!("balancer: accept failed, no longer accepting connections: {error}");
                return;
            }
        };
        let balancer = Arc::clone(&balancer);
        let handle = Arc::clone(&handle);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                route(Arc::clone(&balancer), Arc::clone(&handle), request)
            });
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            if let Err(error) = connection.await {
                eprintln!("balancer: connection failed: {error}");
            }
        });
    }
}

/// Routes one request to a backend and adds the stickiness cookies to the
/// backend's response.
async fn route<H, F>(
    balancer: Arc<Balancer>,
    handle: Arc<H>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, BoxError>
where
    H: Fn(usize, Request<Incoming>) -> F,
    F: Future<Output = Result<Response<Full<Bytes>>, BoxError>>,
{
    let backend = balancer.pick_backend(request.headers());
    let mut response = handle(backend, request).await?;
    // The cookies go on every response, errors included, so a client that got
    // an error keeps its backend.
    for cookie in balancer.stickiness_cookies(backend)? {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    Ok(response)
}
