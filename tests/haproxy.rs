//! Sticky sessions through a real HAProxy with cookie persistence.
//!
//! Each test writes an HAProxy configuration, starts HAProxy in the
//! foreground in front of three in-process backends on 127.0.0.1, and sends
//! requests once through the layer and once with a bare client. Without
//! HAProxy installed the tests are skipped, see `support::require_binary`.

mod support;

use std::{collections::HashMap, fmt::Write as _, path::Path, process::Command, sync::Arc};

use http::{
    HeaderValue,
    header::{COOKIE, SET_COOKIE},
};
use tower::ServiceBuilder;
use tower_sticky::{CookieJar, RequestTarget, StickyLayer};

use support::{Backend, ServerProcess, TempDir, backend_id, free_port, http_client, send_get};

const BACKEND_IDS: [&str; 3] = ["s1", "s2", "s3"];

/// Requests sent without the layer. Round robin over three backends reaches
/// each of them within any three consecutive requests.
const BARE_REQUESTS: usize = 30;

/// Requests sent through the layer.
const STICKY_REQUESTS: usize = 10;

/// A running HAProxy, stopped on drop.
struct Haproxy {
    port: u16,
    _process: ServerProcess,
    _dir: TempDir,
}

impl Haproxy {
    /// Starts HAProxy with one `roundrobin` backend over `backends`, using
    /// `cookie_directive` as its `cookie` line. Each server's cookie value is
    /// its backend id.
    async fn start(binary: &Path, cookie_directive: &str, backends: &[Backend]) -> Self {
        let dir = TempDir::new("haproxy");
        let port = free_port();
        let config_path = dir.path().join("haproxy.cfg");
        let config = config(port, cookie_directive, backends);
        std::fs::write(&config_path, config)
            .unwrap_or_else(|error| panic!("failed to write {}: {error}", config_path.display()));

        // `-db` keeps HAProxy in the foreground as a single process, so that
        // killing its pid stops it completely.
        let mut command = Command::new(binary);
        command.arg("-db").arg("-f").arg(&config_path);
        let mut process = ServerProcess::spawn("haproxy", command, dir.path().join("output.log"));
        process.wait_for_port(port).await;
        Haproxy {
            port,
            _process: process,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
}

/// Returns the configuration text. It has no `log` lines and no stats
/// socket, and everything listens on or connects to 127.0.0.1.
fn config(port: u16, cookie_directive: &str, backends: &[Backend]) -> String {
    let mut config = format!(
        "\
global
    maxconn 64

defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend web
    bind 127.0.0.1:{port}
    default_backend app

backend app
    balance roundrobin
    {cookie_directive}
"
    );
    for backend in backends {
        let id = backend.id();
        let port = backend.port();
        writeln!(config, "    server {id} 127.0.0.1:{port} cookie {id}").unwrap();
    }
    config
}

async fn start_backends() -> Vec<Backend> {
    let mut backends = Vec::new();
    for id in BACKEND_IDS {
        backends.push(Backend::start(id).await);
    }
    backends
}

/// Starts backends that create a session on the first request of a client
/// by setting `JSESSIONID=<id>-session`, as a Java servlet container does.
async fn start_session_backends() -> Vec<Backend> {
    let mut backends = Vec::new();
    for id in BACKEND_IDS {
        let set_cookie =
            HeaderValue::from_str(&format!("JSESSIONID={id}-session; Path=/")).unwrap();
        let backend = Backend::start_with(id, move |request, response| {
            let has_session = request
                .headers
                .get_all(COOKIE)
                .iter()
                .any(|value| value.as_bytes().starts_with(b"JSESSIONID="));
            if !has_session {
                response
                    .headers_mut()
                    .append(SET_COOKIE, set_cookie.clone());
            }
        })
        .await;
        backends.push(backend);
    }
    backends
}

/// Sends [`BARE_REQUESTS`] requests without the layer and asserts that each
/// backend received at least one of them.
async fn assert_bare_client_spreads(url: &str) {
    let mut client = http_client();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..BARE_REQUESTS {
        let response = send_get(&mut client, url).await;
        *counts.entry(backend_id(&response)).or_insert(0) += 1;
    }
    for id in BACKEND_IDS {
        assert!(
            counts.get(id).is_some_and(|&count| count > 0),
            "bare client never reached backend {id}: {counts:?}"
        );
    }
}

/// Sends [`STICKY_REQUESTS`] requests through `layer`, asserts that all of
/// them reach the backend of the first one, and returns that backend's id.
async fn assert_layer_sticks(layer: StickyLayer, url: &str) -> String {
    let mut client = ServiceBuilder::new().layer(layer).service(http_client());
    let first = send_get(&mut client, url).await;
    let first_id = backend_id(&first);
    for request in 1..STICKY_REQUESTS {
        let response = send_get(&mut client, url).await;
        assert_eq!(backend_id(&response), first_id, "request {request}");
    }
    first_id
}

fn jar_target() -> RequestTarget<'static> {
    RequestTarget::new("127.0.0.1", "/", false)
}

#[tokio::test]
async fn insert_mode_sticks() {
    let Some(haproxy) = support::require_binary("haproxy") else {
        return;
    };
    let backends = start_backends().await;
    let proxy = Haproxy::start(&haproxy, "cookie SRV insert indirect nocache", &backends).await;
    let url = proxy.url();

    assert_bare_client_spreads(&url).await;

    let layer = StickyLayer::new();
    let jar = Arc::clone(layer.jar());
    let first_id = assert_layer_sticks(layer, &url).await;

    assert_eq!(jar.len(), 1);
    // Read the counter before `cookie_header` below, which counts as a
    // replay too.
    assert_eq!(jar.stats().replayed, (STICKY_REQUESTS - 1) as u64);
    let stored = jar.cookie_header(&jar_target()).unwrap();
    assert_eq!(stored, format!("SRV={first_id}").as_str());
}

#[tokio::test]
async fn prefix_mode_sticks() {
    let Some(haproxy) = support::require_binary("haproxy") else {
        return;
    };
    let backends = start_session_backends().await;
    let proxy = Haproxy::start(&haproxy, "cookie JSESSIONID prefix nocache", &backends).await;
    let url = proxy.url();

    assert_bare_client_spreads(&url).await;
    let received_before: Vec<usize> = backends
        .iter()
        .map(|backend| backend.requests().len())
        .collect();

    let layer = StickyLayer::new();
    let jar = Arc::clone(layer.jar());
    let first_id = assert_layer_sticks(layer, &url).await;

    // HAProxy puts `<server cookie>~` in front of the value the backend set,
    // and the jar stores the result.
    assert_eq!(jar.len(), 1);
    let stored = jar.cookie_header(&jar_target()).unwrap();
    assert_eq!(
        stored,
        format!("JSESSIONID={first_id}~{first_id}-session").as_str()
    );

    // HAProxy strips the prefix again, so the backend gets back exactly the
    // value it set.
    let index = BACKEND_IDS.iter().position(|&id| id == first_id).unwrap();
    let sticky_requests = &backends[index].requests()[received_before[index]..];
    assert_eq!(sticky_requests.len(), STICKY_REQUESTS);
    let cookies = sticky_requests[0].cookies();
    assert!(cookies.is_empty(), "first request sent cookies {cookies:?}");
    let expected = format!("JSESSIONID={first_id}-session");
    for (request, received) in sticky_requests.iter().enumerate().skip(1) {
        assert_eq!(received.cookies(), [expected.as_str()], "request {request}");
    }
}
