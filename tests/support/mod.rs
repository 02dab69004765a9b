//! Helpers for integration tests that run real servers on 127.0.0.1: finding
//! server binaries, free ports, child process guards, temporary directories
//! and small hyper backends.

// Every test crate that declares `mod support;` compiles this module again
// and uses only some of its helpers.
#![allow(dead_code)]

use std::{
    convert::Infallible,
    env, fmt, fs,
    io::{self, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener as StdTcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, Uri, header::COOKIE, request::Parts};
use http_body_util::{BodyExt, Empty, Full};
use hyper::{body::Body, server::conn::http1};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};
use tokio::{net::TcpListener, task::JoinSet, time::Instant};
use tower::{Service, ServiceExt};

/// Environment variable that turns a missing server binary from a skipped
/// test into a failed one when set to `1`. `.ci/run` sets it.
pub const REQUIRE_SERVERS_ENV: &str = "TOWER_STICKY_REQUIRE_SERVERS";

/// Directories searched for server binaries after `PATH`. Debian installs
/// daemons such as haproxy into `/usr/sbin`, which is often not on a normal
/// user's `PATH`.
const EXTRA_BINARY_DIRS: [&str; 4] = ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"];

/// Maximum time a started server process gets to accept connections.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Interval between two connection attempts while a server starts.
const STARTUP_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Maximum time for one request and its response body.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Response header in which a [`Backend`] sends its id.
pub const BACKEND_ID_HEADER: &str = "x-backend-id";

/// Finds the executable `name` on `PATH` or in the usual system directories.
///
/// When it is not found, the test should return early: this function writes
/// a `skipped:` line to stderr and returns `None`. With
/// `TOWER_STICKY_REQUIRE_SERVERS=1` it panics instead, so that CI cannot pass
/// without running the test.
#[track_caller]
pub fn require_binary(name: &str) -> Option<PathBuf> {
    if let Some(path) = find_binary(name) {
        return Some(path);
    }

    let package = debian_package(name);
    if env::var(REQUIRE_SERVERS_ENV).is_ok_and(|value| value == "1") {
        panic!(
            "{name} not found on PATH or in {dirs}, and {REQUIRE_SERVERS_ENV}=1 makes it \
             required: install it with `apt-get install {package}`",
            dirs = EXTRA_BINARY_DIRS.join(", "),
        );
    }

    // libtest captures `eprintln!` of passing tests, but not direct writes
    // to stderr, so the skip stays visible without `--nocapture`.
    let _ = writeln!(
        io::stderr().lock(),
        "skipped: {test}: {name} not found (install Debian package {package}; \
         set {REQUIRE_SERVERS_ENV}=1 to make this a failure)",
        test = current_test_name(),
    );
    None
}

fn find_binary(name: &str) -> Option<PathBuf> {
    let path_dirs = env::var_os("PATH")
        .map(|paths| env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    let extra_dirs = EXTRA_BINARY_DIRS.iter().map(PathBuf::from);
    path_dirs
        .into_iter()
        .chain(extra_dirs)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;

    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// Returns the Debian package that installs the binary `name`.
fn debian_package(name: &str) -> &str {
    match name {
        "redis-server" | "redis-cli" => "redis-server",
        other => other,
    }
}

/// Returns the name libtest gave the current test's thread, which is the
/// test's path.
fn current_test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_owned()
}

/// Returns a TCP port on 127.0.0.1 that was free a moment ago.
///
/// NOTE: another process can take the port between this call and the moment
/// the server binds it. The server then fails to start, and
/// [`ServerProcess::wait_for_port`] panics with its output.
pub fn free_port() -> u16 {
    let listener = StdTcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|error| panic!("failed to bind 127.0.0.1:0 to find a free port: {error}"));
    listener
        .local_addr()
        .expect("a bound listener has a local address")
        .port()
}

/// A directory under [`env::temp_dir`] that is removed, with its contents,
/// on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a new, empty directory whose name contains `label`, the process
    /// id and a counter, so that parallel tests and test processes never
    /// share one.
    pub fn new(label: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);

        let pid = std::process::id();
        loop {
            let count = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = env::temp_dir().join(format!("tower-sticky-{label}-{pid}-{count}"));
            match fs::create_dir(&path) {
                Ok(()) => return TempDir { path },
                // Left over from an earlier process with the same id.
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(error) => panic!("failed to create {}: {error}", path.display()),
            }
        }
    }

    /// Returns the directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A server child process that is killed and reaped on drop, so that a
/// failing test does not leave it running.
#[derive(Debug)]
pub struct ServerProcess {
    name: String,
    child: Child,
    output_path: PathBuf,
}

impl ServerProcess {
    /// Starts `command` with its stdout and stderr written to `output_path`.
    ///
    /// The file keeps a chatty server from blocking on a full pipe, and its
    /// contents go into the panic message when the server fails to start.
    pub fn spawn(name: &str, mut command: Command, output_path: PathBuf) -> Self {
        let output = fs::File::create(&output_path)
            .unwrap_or_else(|error| panic!("failed to create {}: {error}", output_path.display()));
        let stderr = output
            .try_clone()
            .unwrap_or_else(|error| panic!("failed to duplicate the output file handle: {error}"));
        let child = command
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|error| panic!("failed to start {name} ({command:?}): {error}"));
        ServerProcess {
            name: name.to_owned(),
            child,
            output_path,
        }
    }

    /// Waits until 127.0.0.1:`port` accepts TCP connections.
    ///
    /// # Panics
    ///
    /// Panics with the server's output when the process exits first or when
    /// [`STARTUP_TIMEOUT`] passes.
    pub async fn wait_for_port(&mut self, port: u16) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => panic!(
                    "{name} exited with {status} before listening on 127.0.0.1:{port}; \
                     its output:\n{output}",
                    name = self.name,
                    output = self.output(),
                ),
                Ok(None) => {}
                Err(error) => panic!("failed to check whether {} is running: {error}", self.name),
            }
            if tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
                .await
                .is_ok()
            {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {name} to listen on \
                     127.0.0.1:{port}; its output:\n{output}",
                    timeout = STARTUP_TIMEOUT,
                    name = self.name,
                    output = self.output(),
                );
            }
            tokio::time::sleep(STARTUP_POLL_INTERVAL).await;
        }
    }

    /// Returns what the process wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        fs::read_to_string(&self.output_path).unwrap_or_else(|error| {
            format!("(failed to read {}: {error})", self.output_path.display())
        })
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Killing fails only when the process already exited, and waiting
        // reaps it in both cases.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request as a [`Backend`] received it.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    /// The request URI, usually in origin form (`/path?query`).
    pub uri: Uri,
    /// The request headers.
    pub headers: HeaderMap,
}

impl ReceivedRequest {
    /// Returns the values of all `Cookie` headers, in order.
    pub fn cookies(&self) -> Vec<&str> {
        self.headers
            .get_all(COOKIE)
            .iter()
            .map(|value| value.to_str().unwrap_or("<not visible ASCII>"))
            .collect()
    }
}

/// A small HTTP/1 server on 127.0.0.1 that records each request and responds
/// with its id, in the body and in the [`BACKEND_ID_HEADER`] header.
///
/// Dropping it stops the server and closes its connections.
pub struct Backend {
    id: String,
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<ReceivedRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Backend {
    /// Starts a backend that responds to every request with `200 OK` and its id.
    pub async fn start(id: &str) -> Self {
        Backend::start_with(id, |_request, _response| {}).await
    }

    /// Starts a backend whose responses `customize` can change: it receives
    /// the request head and the prepared `200 OK` response carrying the id,
    /// and may set the status or add headers such as `Set-Cookie`.
    pub async fn start_with<F>(id: &str, customize: F) -> Self
    where
        F: Fn(&Parts, &mut Response<Full<Bytes>>) + Send + Sync + 'static,
    {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap_or_else(|error| panic!("failed to bind backend {id} to 127.0.0.1:0: {error}"));
        let addr = listener
            .local_addr()
            .expect("a bound listener has a local address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler = Arc::new(Handler {
            id: id.to_owned(),
            requests: Arc::clone(&requests),
            customize,
        });
        let task = tokio::spawn(accept_loop(listener, handler));
        Backend {
            id: id.to_owned(),
            addr,
            requests,
            task,
        }
    }

    /// Returns the id the backend sends in every response.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Returns the address the backend listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns the port the backend listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Returns a copy of the requests received so far, oldest first.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("id", &self.id)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        // Aborting the accept loop drops its `JoinSet`, which aborts the
        // connection tasks too.
        self.task.abort();
    }
}

struct Handler<F> {
    id: String,
    requests: Arc<Mutex<Vec<ReceivedRequest>>>,
    customize: F,
}

impl<F> Handler<F>
where
    F: Fn(&Parts, &mut Response<Full<Bytes>>),
{
    fn respond(&self, request: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let (parts, _body) = request.into_parts();
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(ReceivedRequest {
                uri: parts.uri.clone(),
                headers: parts.headers.clone(),
            });

        let mut response = Response::new(Full::new(Bytes::from(self.id.clone())));
        let id = HeaderValue::from_str(&self.id)
            .unwrap_or_else(|_| panic!("backend id {:?} is not a valid header value", self.id));
        response.headers_mut().insert(BACKEND_ID_HEADER, id);
        (self.customize)(&parts, &mut response);
        response
    }
}

async fn accept_loop<F>(listener: TcpListener, handler: Arc<Handler<F>>)
where
    F: Fn(&Parts, &mut Response<Full<Bytes>>) + Send + Sync + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                eprintln!("backend {}: accept failed: {error}", handler.id);
                continue;
            }
        };
        let handler = Arc::clone(&handler);
        let service = hyper::service::service_fn(move |request| {
            let response = handler.respond(request);
            async move { Ok::<_, Infallible>(response) }
        });
        connections.spawn(async move {
            // A client that closes its connection early is not a failure of
            // the test, so connection errors are ignored.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        // Reap finished connection tasks so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
}

/// Returns a hyper-util client for plain HTTP with empty request bodies.
///
/// It connects to IP literals directly and resolves any other host name with
/// the system resolver, so tests should only send it `127.0.0.1` URIs.
pub fn http_client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends `GET uri` through `service` and returns the response with its body
/// read into a string.
///
/// # Panics
///
/// Panics when the request fails, the body is not UTF-8 or the exchange takes
/// longer than [`REQUEST_TIMEOUT`].
pub async fn send_get<S, B>(service: &mut S, uri: &str) -> Response<String>
where
    S: Service<Request<Empty<Bytes>>, Response = Response<B>>,
    S::Error: fmt::Debug,
    B: Body,
    B::Error: fmt::Debug,
{
    let request = Request::get(uri)
        .body(Empty::new())
        .unwrap_or_else(|error| panic!("invalid request URI {uri:?}: {error}"));
    let exchange = async {
        let ready = service
            .ready()
            .await
            .unwrap_or_else(|error| panic!("service not ready for GET {uri}: {error:?}"));
        let response = ready
            .call(request)
            .await
            .unwrap_or_else(|error| panic!("GET {uri} failed: {error:?}"));
        let (parts, body) = response.into_parts();
        let bytes = body
            .collect()
            .await
            .unwrap_or_else(|error| panic!("failed to read the body of GET {uri}: {error:?}"))
            .to_bytes();
        let text = String::from_utf8(bytes.to_vec())
            .unwrap_or_else(|error| panic!("body of GET {uri} is not UTF-8: {error}"));
        Response::from_parts(parts, text)
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| panic!("GET {uri} timed out after {REQUEST_TIMEOUT:?}"))
}

/// Returns the backend id that a response carries in [`BACKEND_ID_HEADER`].
pub fn backend_id<B>(response: &Response<B>) -> String {
    let value = response
        .headers()
        .get(BACKEND_ID_HEADER)
        .unwrap_or_else(|| panic!("response has no {BACKEND_ID_HEADER} header"));
    value
        .to_str()
        .unwrap_or_else(|_| panic!("{BACKEND_ID_HEADER} is not visible ASCII: {value:?}"))
        .to_owned()
}
