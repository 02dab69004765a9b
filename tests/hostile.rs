//! A hostile server cannot grow a jar past its limits or break the next
//! request's `Cookie` header.
//!
//! Most attacks run through the layer over an in-process echo service: each
//! request's body is the list of `Set-Cookie` lines to respond with, and each
//! response's body is the `Cookie` header the request carried. Bytes that
//! `http::HeaderValue` cannot hold (CR, LF, NUL, DEL) are sent over a real
//! socket instead, by a raw TCP server on 127.0.0.1 that writes a hand-made
//! HTTP/1.1 response to hyper-util's client.
//!
//! Each attack runs against a jar with small limits and one with the
//! defaults, and checks the exact number of cookies and bytes held after it.

mod support;

use std::{convert::Infallible, io, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{
    HeaderValue, Request, Response,
    header::{COOKIE, SET_COOKIE},
};
use http_body_util::Empty;
use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};
use tower::{Service, ServiceExt, service_fn};
use tower_sticky::{
    MemoryJar, RejectReason, Sticky,
    jar::{DEFAULT_MAX_COOKIES, DEFAULT_MAX_COOKIES_PER_DOMAIN},
};

use support::{Backend, REQUEST_TIMEOUT, http_client, send_get};

/// The small limit on one cookie, in bytes of name plus value.
const SMALL_SIZE: usize = 64;
/// The small limit on cookies per domain.
const SMALL_PER_DOMAIN: usize = 8;
/// The small limit on cookies in the jar.
const SMALL_TOTAL: usize = 16;

/// One MiB, the size of the oversized names and values.
const MIB: usize = 1 << 20;

fn small_jar() -> Arc<MemoryJar> {
    Arc::new(
        MemoryJar::builder()
            .max_cookie_size(SMALL_SIZE)
            .max_cookies_per_domain(SMALL_PER_DOMAIN)
            .max_cookies(SMALL_TOTAL)
            .build(),
    )
}

fn default_jar() -> Arc<MemoryJar> {
    Arc::new(MemoryJar::new())
}

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

/// Sends `GET uri` through the layer over `jar` to a server that responds
/// with `set_cookie`, and returns the `Cookie` header the server received.
async fn send(jar: &Arc<MemoryJar>, uri: &str, set_cookie: Vec<HeaderValue>) -> Option<Vec<u8>> {
    let request = Request::get(uri).body(set_cookie).expect("a valid request");
    let client = Sticky::with_jar(service_fn(echo), Arc::clone(jar));
    let Ok(response) = client.oneshot(request).await;
    response.into_body().map(|value| value.as_bytes().to_vec())
}

fn header_value(bytes: impl AsRef<[u8]>) -> HeaderValue {
    HeaderValue::from_bytes(bytes.as_ref()).expect("bytes a HeaderValue accepts")
}

/// Asserts that `header` is a valid header value made only of `name=value`
/// pairs separated by `"; "`, with no control byte other than tab.
#[track_caller]
fn assert_valid_cookie_header(header: &[u8]) {
    let escaped = header.escape_ascii();
    assert!(
        HeaderValue::from_bytes(header).is_ok(),
        "not a valid header value: {escaped}"
    );
    for pair in header.split(|&b| b == b';') {
        let pair = pair.strip_prefix(b" ").unwrap_or(pair);
        let equals = pair.iter().position(|&b| b == b'=');
        assert!(
            equals.is_some_and(|at| at > 0),
            "{escaped}: a pair without a name"
        );
        assert_eq!(
            pair.trim_ascii(),
            pair,
            "{escaped}: a pair with outer whitespace"
        );
        assert!(
            !pair.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f),
            "{escaped}: a control byte"
        );
    }
    assert!(
        !header
            .windows(2)
            .any(|pair| pair[0] == b';' && pair[1] != b' '),
        "{escaped}: a separator other than \"; \""
    );
}

/// Returns `name=value` pairs joined as the `Cookie` header joins them.
fn joined(pairs: impl IntoIterator<Item = String>) -> Vec<u8> {
    pairs
        .into_iter()
        .collect::<Vec<_>>()
        .join("; ")
        .into_bytes()
}

// Many Set-Cookie lines in one response

/// Sends one response with 10,000 `Set-Cookie` lines of 9 bytes each
/// (`c00000=v` and the path `/`), then a plain request.
async fn many_lines_attack(jar: &Arc<MemoryJar>) -> Option<Vec<u8>> {
    let lines = (0..10_000)
        .map(|index| header_value(format!("c{index:05}=v")))
        .collect();
    send(jar, "http://evil.example/", lines).await;
    send(jar, "http://evil.example/", Vec::new()).await
}

#[tokio::test]
async fn many_lines_small_limits() {
    let jar = small_jar();
    let header = many_lines_attack(&jar).await.expect("a Cookie header");

    let survivors = (10_000 - SMALL_PER_DOMAIN..10_000).map(|index| format!("c{index:05}=v"));
    assert_eq!(jar.len(), SMALL_PER_DOMAIN);
    assert_eq!(jar.stats().bytes, 9 * SMALL_PER_DOMAIN as u64);
    assert_eq!(jar.stats().evicted, (10_000 - SMALL_PER_DOMAIN) as u64);
    assert_eq!(header, joined(survivors));
    assert_valid_cookie_header(&header);
}

#[tokio::test]
async fn many_lines_default_limits() {
    let jar = default_jar();
    let header = many_lines_attack(&jar).await.expect("a Cookie header");

    assert_eq!(jar.len(), DEFAULT_MAX_COOKIES_PER_DOMAIN);
    assert_eq!(jar.stats().bytes, 9 * DEFAULT_MAX_COOKIES_PER_DOMAIN as u64);
    assert_eq!(
        jar.stats().evicted,
        (10_000 - DEFAULT_MAX_COOKIES_PER_DOMAIN) as u64
    );
    assert_valid_cookie_header(&header);
}

// Oversized names and values

/// Sends one response with a 1 MiB value, a 1 MiB name and a small cookie,
/// then a plain request.
async fn oversized_attack(jar: &Arc<MemoryJar>) -> Option<Vec<u8>> {
    let lines = vec![
        header_value(format!("big={}", "v".repeat(MIB))),
        header_value(format!("{}=1", "n".repeat(MIB))),
        header_value("ok=1"),
    ];
    send(jar, "http://evil.example/", lines).await;
    send(jar, "http://evil.example/", Vec::new()).await
}

#[tokio::test]
async fn oversized_small_limits() {
    let jar = small_jar();
    let header = oversized_attack(&jar).await.expect("a Cookie header");

    assert_eq!(header, b"ok=1");
    assert_eq!(jar.len(), 1);
    assert_eq!(jar.stats().bytes, 5);
    assert_eq!(jar.stats().rejected(RejectReason::TooLarge), 2);
}

#[tokio::test]
async fn oversized_default_limits() {
    let jar = default_jar();
    let header = oversized_attack(&jar).await.expect("a Cookie header");

    assert_eq!(header, b"ok=1");
    assert_eq!(jar.len(), 1);
    assert_eq!(jar.stats().bytes, 5);
    assert_eq!(jar.stats().rejected(RejectReason::TooLarge), 2);
}

// The size limit counts only name and value, so the parser ignores an
// attribute value longer than 1024 bytes, as RFC 6265bis does. A 1 MiB `Path`
// then falls back to the default path.
#[tokio::test]
async fn long_path_bounded() {
    let jar = small_jar();
    let line = header_value(format!("a=1; Path=/{}", "p".repeat(MIB)));

    send(&jar, "http://evil.example/", vec![line]).await;

    let cookies = jar.cookies();
    assert_eq!(cookies.len(), 1);
    assert_eq!(cookies[0].path(), "/");
    // `a=1` and the path `/`.
    assert_eq!(jar.stats().bytes, 4);
}

// A new cookie name on every response

/// Sends 5,000 responses that each set a new 8-byte cookie (`n0000=v` and the
/// path `/`) on one host, then a plain request.
async fn new_name_attack(jar: &Arc<MemoryJar>) -> Option<Vec<u8>> {
    for index in 0..5_000 {
        let line = header_value(format!("n{index:04}=v"));
        send(jar, "http://evil.example/", vec![line]).await;
    }
    send(jar, "http://evil.example/", Vec::new()).await
}

#[tokio::test]
async fn new_names_small_limits() {
    let jar = small_jar();
    let header = new_name_attack(&jar).await.expect("a Cookie header");

    let survivors = (5_000 - SMALL_PER_DOMAIN..5_000).map(|index| format!("n{index:04}=v"));
    assert_eq!(jar.len(), SMALL_PER_DOMAIN);
    assert_eq!(jar.stats().bytes, 8 * SMALL_PER_DOMAIN as u64);
    assert_eq!(header, joined(survivors));
    assert_valid_cookie_header(&header);
}

#[tokio::test]
async fn new_names_default_limits() {
    let jar = default_jar();
    let header = new_name_attack(&jar).await.expect("a Cookie header");

    assert_eq!(jar.len(), DEFAULT_MAX_COOKIES_PER_DOMAIN);
    assert_eq!(jar.stats().bytes, 8 * DEFAULT_MAX_COOKIES_PER_DOMAIN as u64);
    assert_valid_cookie_header(&header);
}

/// Sends 5,000 responses from 5,000 hosts, each setting one 8-byte cookie,
/// then a request to the last host.
async fn new_host_attack(jar: &Arc<MemoryJar>) -> Option<Vec<u8>> {
    for index in 0..5_000 {
        let line = header_value(format!("n{index:04}=v"));
        send(jar, &format!("http://h{index}.evil.example/"), vec![line]).await;
    }
    send(jar, "http://h4999.evil.example/", Vec::new()).await
}

#[tokio::test]
async fn new_hosts_small_limits() {
    let jar = small_jar();
    let header = new_host_attack(&jar).await.expect("a Cookie header");

    assert_eq!(jar.len(), SMALL_TOTAL);
    assert_eq!(jar.stats().bytes, 8 * SMALL_TOTAL as u64);
    assert_eq!(jar.stats().evicted, (5_000 - SMALL_TOTAL) as u64);
    assert_eq!(header, b"n4999=v");
}

#[tokio::test]
async fn new_hosts_default_limits() {
    let jar = default_jar();
    let header = new_host_attack(&jar).await.expect("a Cookie header");

    assert_eq!(jar.len(), 5_000.min(DEFAULT_MAX_COOKIES));
    assert_eq!(jar.stats().bytes, 8 * 5_000.min(DEFAULT_MAX_COOKIES) as u64);
    assert_eq!(header, b"n4999=v");
}

// Bytes that HeaderValue accepts but RFC 6265 does not want

#[tokio::test]
async fn odd_bytes_replayed_as_received() {
    for jar in [small_jar(), default_jar()] {
        let lines: Vec<HeaderValue> = [
            &b"tab=a\tb"[..],
            b"high=\x80\xff",
            b"quoted=\"a b\"",
            b"comma=a,b, c=d",
            b"back=a\\b",
            b"\tpadded\t=\tv\t",
            b"sp ace=1",
        ]
        .into_iter()
        .map(header_value)
        .collect();
        send(&jar, "http://evil.example/", lines).await;
        let header = send(&jar, "http://evil.example/", Vec::new())
            .await
            .expect("a Cookie header");

        // Whitespace around the name and the value is trimmed, and every
        // other byte goes back as received.
        let expected: &[u8] = b"tab=a\tb; high=\x80\xff; quoted=\"a b\"; comma=a,b, c=d; \
            back=a\\b; padded=v; sp ace=1";
        assert_eq!(
            header.escape_ascii().to_string(),
            expected.escape_ascii().to_string()
        );
        assert_eq!(jar.len(), 7);
        // 64 bytes of pairs and seven paths `/`.
        assert_eq!(jar.stats().bytes, 71);
        assert_valid_cookie_header(&header);
    }
}

// CR, LF, NUL and DEL at the wire

/// Starts a server on 127.0.0.1 that responds to one connection with `response`,
/// byte for byte, and then closes it.
async fn raw_server(response: Vec<u8>) -> (u16, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("a local address").port();
    let task = tokio::spawn(async move {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        if read_request_head(&stream).await.is_ok() {
            let _ = write_all(&stream, &response).await;
        }
        // Dropping the stream closes the connection.
    });
    (port, task)
}

/// Reads until the end of a request head, at most 64 KiB.
async fn read_request_head(stream: &TcpStream) -> io::Result<()> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") && head.len() < 64 * 1024 {
        stream.readable().await?;
        match stream.try_read(&mut buffer) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(read) => head.extend_from_slice(&buffer[..read]),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(written) => bytes = &bytes[written..],
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// What a request to a raw server returned.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// hyper accepted the response, with these `Set-Cookie` values.
    Accepted(Vec<Vec<u8>>),
    /// hyper rejected the response as invalid HTTP.
    Rejected,
}

/// Sends one request through the layer over hyper-util's client to a raw
/// server whose response head contains `set_cookie_line`, then one request
/// to a normal backend on the same host. Returns the first request's outcome
/// and the `Cookie` headers the backend received.
async fn wire_attack(jar: &Arc<MemoryJar>, set_cookie_line: &[u8]) -> (Outcome, Vec<Vec<u8>>) {
    let mut response = b"HTTP/1.1 200 OK\r\n".to_vec();
    response.extend_from_slice(set_cookie_line);
    response.extend_from_slice(
        b"\r\nSet-Cookie: ok=1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    let (port, mut server) = raw_server(response).await;

    let mut client = Sticky::with_jar(http_client(), Arc::clone(jar));
    let request = Request::get(format!("http://127.0.0.1:{port}/"))
        .body(Empty::<Bytes>::new())
        .expect("a valid request");
    let call = async { client.ready().await?.call(request).await };
    let result = tokio::time::timeout(REQUEST_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| panic!("GET to the raw server timed out after {REQUEST_TIMEOUT:?}"));
    let outcome = match result {
        Ok(response) => Outcome::Accepted(
            response
                .headers()
                .get_all(SET_COOKIE)
                .iter()
                .map(|value| value.as_bytes().to_vec())
                .collect(),
        ),
        Err(error) => {
            let is_parse_error = std::error::Error::source(&error)
                .and_then(|source| source.downcast_ref::<hyper::Error>())
                .is_some_and(hyper::Error::is_parse);
            assert!(is_parse_error, "failed for another reason: {error:?}");
            Outcome::Rejected
        }
    };
    // The server task ends once it has written the response.
    if tokio::time::timeout(Duration::from_secs(1), &mut server)
        .await
        .is_err()
    {
        server.abort();
    }

    let backend = Backend::start("normal").await;
    send_get(
        &mut client,
        &format!("http://127.0.0.1:{}/", backend.port()),
    )
    .await;
    let received = backend
        .requests()
        .iter()
        .flat_map(|request| request.headers.get_all(COOKIE).iter())
        .map(|value| value.as_bytes().to_vec())
        .collect();
    (outcome, received)
}

/// Checks that hyper rejects a response whose head contains `line`, and
/// that the jar stays empty, so the next request carries no `Cookie` header.
async fn check_wire_rejected(line: &[u8]) {
    for jar in [small_jar(), default_jar()] {
        let (outcome, received) = wire_attack(&jar, line).await;

        assert_eq!(outcome, Outcome::Rejected);
        assert_eq!(jar.len(), 0);
        assert_eq!(jar.stats().bytes, 0);
        assert_eq!(received, Vec::<Vec<u8>>::new(), "Cookie headers received");
    }
}

#[tokio::test]
async fn wire_nul_rejected_by_hyper() {
    check_wire_rejected(b"Set-Cookie: a=1\x00b").await;
}

#[tokio::test]
async fn wire_bare_cr_rejected_by_hyper() {
    check_wire_rejected(b"Set-Cookie: a=1\rb").await;
}

#[tokio::test]
async fn wire_del_rejected_by_hyper() {
    check_wire_rejected(b"Set-Cookie: a=1\x7fb").await;
}

#[tokio::test]
async fn wire_folded_line_rejected_by_hyper() {
    check_wire_rejected(b"Set-Cookie: a=1\r\n b=2").await;
}

#[tokio::test]
async fn wire_lf_into_bad_line_rejected() {
    // After the bare LF, `b=2` is a header line without a colon.
    check_wire_rejected(b"Set-Cookie: a=1\nb=2").await;
}

#[tokio::test]
async fn wire_bare_lf_ends_line() {
    for jar in [small_jar(), default_jar()] {
        let (outcome, received) = wire_attack(&jar, b"Set-Cookie: a=1\nSet-Cookie: b=2").await;

        // hyper 1 reads a bare LF as the end of a header line, which RFC 9112
        // section 2.2 allows, so the line is two ordinary cookies.
        let lines = [&b"a=1"[..], b"b=2", b"ok=1"].map(<[u8]>::to_vec).to_vec();
        assert_eq!(outcome, Outcome::Accepted(lines));
        assert_eq!(jar.len(), 3);
        // Three pairs of 3, 3 and 4 bytes, each with the path `/`.
        assert_eq!(jar.stats().bytes, 13);
        assert_eq!(received, [b"a=1; b=2; ok=1".to_vec()]);
        assert_valid_cookie_header(&received[0]);
    }
}
