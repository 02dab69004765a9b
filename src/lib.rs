//! Sticky sessions for HTTP clients built on [tower].
//!
//! Load balancers such as AWS ALB, HAProxy, Envoy, Traefik and ingress-nginx
//! pin a client to one backend with a cookie (`AWSALB`, `SERVERID`, ...).
//! Browsers keep that cookie and send it back; plain HTTP clients do not, so
//! each of their requests may land on another backend. [`StickyLayer`]
//! wraps any `Service<http::Request<B>>`, such as hyper-util's legacy
//! `Client`, stores the cookies of every response and replays the matching
//! ones on later requests, following RFC 6265.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//!
//! use http::{Request, Response, header};
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//! use tower_sticky::StickyLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // A stand-in for an HTTP client behind a balancer that pins with `SRV`.
//! let client = service_fn(|request: Request<()>| async move {
//!     let pinned = request.headers().contains_key(header::COOKIE);
//!     let mut response = Response::new(pinned);
//!     response
//!         .headers_mut()
//!         .insert(header::SET_COOKIE, "SRV=backend-2; Path=/".parse().unwrap());
//!     Ok::<_, Infallible>(response)
//! });
//!
//! let layer = StickyLayer::new();
//! let jar = layer.jar().clone();
//! let mut client = ServiceBuilder::new().layer(layer).service(client);
//!
//! let first = Request::get("http://api.example/records").body(()).unwrap();
//! let response = client.ready().await.unwrap().call(first).await.unwrap();
//! assert!(!response.body(), "nothing to replay yet");
//!
//! let second = Request::get("http://api.example/records/2").body(()).unwrap();
//! let response = client.ready().await.unwrap().call(second).await.unwrap();
//! assert!(response.body(), "the SRV cookie went back to the balancer");
//! assert_eq!(jar.stats().replayed, 1);
//! # }
//! ```
//!
//! Over hyper-util's client, the body and error types stay the client's own:
//!
//! ```no_run
//! use http_body_util::Empty;
//! use hyper::body::Bytes;
//! use hyper_util::{client::legacy::Client, rt::TokioExecutor};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use tower_sticky::StickyLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
//! let mut client = ServiceBuilder::new().layer(StickyLayer::new()).service(client);
//!
//! let request = http::Request::get("http://127.0.0.1:8080/").body(Empty::new())?;
//! let response = client.ready().await?.call(request).await?;
//! println!("{}", response.status());
//! # Ok(())
//! # }
//! ```
//!
//! # Where the layer goes in a stack
//!
//! Put it inside (below) a redirect layer such as tower-http's
//! `FollowRedirect`. Then each hop passes through it: a cookie set on a
//! `302` is stored before the redirected request goes out, and each hop gets
//! only the cookies of its own URL. Put a retry layer outside it as well,
//! so that each attempt picks up the cookies that the response to the
//! attempt before it set.
//!
//! # Sharing a jar
//!
//! All services made by one [`StickyLayer`] share its jar. To share a jar
//! between layers or clients, create it once and clone the [`Arc`]:
//!
//! ```
//! use std::sync::Arc;
//! use tower_sticky::{MemoryJar, StickyLayer};
//!
//! let jar = Arc::new(MemoryJar::new());
//! let for_uploads = StickyLayer::with_jar(Arc::clone(&jar));
//! let for_queries = StickyLayer::with_jar(Arc::clone(&jar));
//! # let _ = (for_uploads, for_queries);
//! ```
//!
//! [`Arc`]: std::sync::Arc
//!
//! # Rules
//!
//! Cookies are captured from every response, whatever its status, from each
//! `Set-Cookie` field line on its own. A value is never split on commas,
//! because `Expires` dates contain one. The jar keeps `name=value` with the
//! scope RFC 6265 section 5.3 gives it: host-only or `Domain`, `Path`,
//! `Secure` and expiry. Requests get one `Cookie` header with the matching
//! cookies, longest path first and then oldest first, marked sensitive so
//! that HTTP/2 and HTTP/3 encoders keep it out of their compression tables.
//!
//! A `Cookie` header that the caller set is kept. Stored cookies are appended
//! to it, except those whose name the caller already sent.
//!
//! The target of a request is its absolute URI, or else its `Host` header
//! (then it counts as not secure). A request with neither passes through
//! untouched, and its response's cookies are not stored. A `tracing` event at
//! debug level records that.
//!
//! Where RFC 6265 and today's browsers (RFC 6265bis) disagree, the crate
//! follows RFC 6265 in the first four points below and browsers in the
//! last:
//!
//! - A `Secure` cookie is never sent over plain `http`, not even to
//!   `localhost` or a loopback address. Browsers treat those as secure; a
//!   client may sit behind a local proxy that forwards in plain text, so the
//!   crate does not.
//! - A `Secure` cookie received over `http` is stored, and sent only over
//!   `https`. RFC 6265bis rejects it. A cookie without `Secure` received over
//!   `http` may replace a stored `Secure` cookie.
//! - A cookie without a name (`=value`) and a value without `=` are rejected.
//!   RFC 6265bis keeps them as nameless cookies.
//! - `Domain=.` leaves an empty domain, so the cookie is host-only.
//! - A host-only cookie and a `Domain` cookie with the same
//!   name and path are two cookies, as in browsers, while RFC 6265 lets one
//!   replace the other. Otherwise a balancer's host-only cookie and an
//!   application's `Domain` cookie of the same name would overwrite each
//!   other on every response.
//!
//! Bytes outside ASCII in a value are kept and sent back as received. The
//! port is not part of a cookie's scope. `HttpOnly` and `SameSite` do not
//! apply to a client that only makes HTTP requests and has no notion of a
//! site, so they are accepted and ignored.
//!
//! # Bad input
//!
//! Any bytes a server sends give a defined result. A `Set-Cookie` value that
//! cannot be used is skipped: a `tracing` warning names the cookie (never its
//! value) and the reason the first time that reason occurs, later ones log
//! at debug level, and [`MemoryJar::stats`] counts each by
//! [`RejectReason`]. A value with control characters is rejected, so a stored
//! cookie can never make the next request's `Cookie` header invalid.
//!
//! # Limits
//!
//! By default a jar keeps at most 4096 bytes of name and value per cookie,
//! 180 cookies per domain and 3000 in all, and ignores an attribute value
//! longer than 1024 bytes. [`MemoryJarBuilder`] changes the limits. A larger
//! cookie is rejected. Past a count limit, the least recently used cookie is
//! evicted, first within its domain, then across the jar, and
//! [`MemoryJar::stats`] counts each rejection and eviction.
//!
//! # Filters
//!
//! [`MemoryJarBuilder::filter`] keeps only the cookies a
//! [`CookieFilter`](jar::CookieFilter) accepts: an allow-list, a deny-list, a
//! predicate, or a preset for a load balancer (`aws_alb`, `aws_elb`,
//! `ingress_nginx`, `haproxy`, `nginx_sticky`, `digitalocean`, `traefik`, or
//! `load_balancers` for all of them). Other cookies are neither stored nor
//! replayed, and count as [`RejectReason::Filtered`].
//!
//! # Inspection
//!
//! [`MemoryJar::cookies`] lists the stored cookies as [`Cookie`](jar::Cookie)
//! values whose `Debug` and `Display` output hides the value;
//! [`Cookie::expose_value`](jar::Cookie::expose_value) reads it.
//! [`MemoryJar::insert`] starts from a session obtained elsewhere, and
//! `remove`, `remove_key`, `remove_domain`, `clear` and `purge_expired`
//! change the jar.
//!
//! # Persistence
//!
//! With the `persist` feature, `MemoryJar::save_to_file` writes the jar as
//! versioned JSON, atomically, and `MemoryJar::load_from_file` loads it
//! through the jar's limits and filter, so a restarted client's first request
//! carries the same `Cookie` header. Session cookies are saved too unless
//! the options leave them out. The `jar::persist` module documents the
//! format.
//!
//! # Public suffixes
//!
//! With the `public-suffix` feature and a `jar::PublicSuffixList` loaded from
//! <https://publicsuffix.org> or Debian's `publicsuffix` package, a jar
//! rejects a `Domain` attribute that names a public suffix such as `co.uk`,
//! so one site cannot set cookies for every site under it. A `Domain` equal
//! to the request host makes a host-only cookie instead. The crate ships no
//! list, so builds never need the network.
//!
//! # Secrets
//!
//! Cookie values are credentials. The crate never logs them, and the `Debug`
//! output of its types shows no value.
//!
//! # Cost
//!
//! The `Cookie` header is rendered when cookies are stored, so a request
//! only clones it: a reference count, no allocation. A request to a host the
//! jar has nothing for allocates nothing. A lookup probes the request's host
//! (and its parent domains while `Domain` cookies are stored), so its cost
//! does not depend on how many other hosts the jar holds.
//!
//! # Feature flags
//!
//! No feature is on by default.
//!
//! - `persist`: save and load a jar as JSON.
//! - `public-suffix`: reject `Domain` attributes that name a public suffix,
//!   such as `com` or `co.uk`, from a list you load.
//! - `mirror`: a jar mirrored between processes through a remote store you
//!   plug in.
//! - `redis`: share one jar between processes and machines through Redis
//!   (turns on `mirror`).
//!
//! [tower]: https://docs.rs/tower

#![cfg_attr(
    feature = "mirror",
    doc = r#"
# Sharing a jar between processes

With the `mirror` feature, [`remote::MirroredJar`] serves requests from a
local [`MemoryJar`] and keeps it in step with other processes through a
remote store; the `redis` feature adds `remote::RedisBackend`. The
[`remote`] module states the consistency model: eventual, last write wins.
"#
)]
#![deny(missing_docs)]
#![deny(unsafe_code)]
#![warn(rust_2018_idioms, unreachable_pub, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod future;
pub mod jar;
mod layer;
#[cfg(feature = "mirror")]
#[cfg_attr(docsrs, doc(cfg(feature = "mirror")))]
pub mod remote;
mod service;
mod target;

pub use future::ResponseFuture;
pub use jar::{CookieJar, JarStats, MemoryJar, MemoryJarBuilder, RejectReason};
pub use layer::StickyLayer;
#[cfg(feature = "mirror")]
#[cfg_attr(docsrs, doc(cfg(feature = "mirror")))]
pub use remote::MirroredJar;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use remote::RedisBackend;
pub use service::Sticky;
pub use target::RequestTarget;

// Compiles the README's examples as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
