//! One jar shared by many processes through a remote store.
//!
//! A [`MirroredJar`] serves every request from a local [`MemoryJar`], so
//! the request path never waits on the network, and keeps that jar in step
//! with the other processes through a [`RemoteBackend`]: Redis with the
//! `redis` feature (`RedisBackend`), or a store you connect yourself.
//! Give every client of a fleet a mirrored jar with the same key prefix, and
//! the sticky cookie that one of them receives pins the others to the same
//! backend.
//!
//! ```no_run
//! # #[cfg(feature = "redis")]
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use tower_sticky::{StickyLayer, remote::{MirroredJar, RedisBackend}};
//!
//! let backend = RedisBackend::builder("redis://127.0.0.1:6379/")
//!     .prefix("billing-importer:sticky:")
//!     .build()?;
//! let jar = Arc::new(MirroredJar::new(backend).await);
//! let layer = StickyLayer::with_jar(Arc::clone(&jar));
//! # let _ = layer;
//! # Ok(())
//! # }
//! ```
//!
//! # Consistency model
//!
//! - **Eventual.** A process applies its own responses' cookies to its local
//!   jar at once. It publishes them from a background task, and the other
//!   processes apply them when the backend delivers them (`benches/mirror.rs`
//!   measures that delay over Redis on loopback). Until then they keep
//!   sending the cookies they had.
//! - **Last write wins, by version.** Each change carries a [`Version`]: the
//!   Unix time in milliseconds of the write, a counter for writes within one
//!   millisecond, and a random id of the writing process to break ties. A
//!   process applies a remote change only when its version is newer than the
//!   one it holds for that cookie, so two processes that set the same cookie
//!   at once both end with the write that has the higher version. A process
//!   that has seen a change gives its own later writes a higher version,
//!   even when its clock is behind the writer's.
//! - **Coalesced writes.** One cookie is published at most once per
//!   [`coalesce_interval`](MirroredJarBuilder::coalesce_interval), 100 ms by
//!   default, with the last value. An ALB that rotates its cookie on every
//!   response therefore costs a few writes a second, not one per request.
//! - **Local only:** evictions by the jar's limits and the removal of expired
//!   cookies. Each process applies its own limits, and the remote store
//!   expires cookies at the same time (Redis keys carry the cookie's expiry).
//! - **A new process** waits up to
//!   [`load_timeout`](MirroredJarBuilder::load_timeout) (2 s by default) for
//!   the remote state, and then starts with it. If the store does not answer
//!   in time, the process starts with an empty jar (or the cookies of the
//!   jar you gave it), logs a warning and keeps loading in the background.
//!   Its first requests may then go to any backend.
//! - **During an outage** requests go on with the local jar. Local changes
//!   wait in the pending map (bounded, see
//!   [`max_pending`](MirroredJarBuilder::max_pending)) and are retried with
//!   exponential backoff. The outage, each retry and the recovery are logged
//!   with `tracing` and counted in [`MirrorStats`]. When the store answers
//!   again, the jar subscribes again, reloads the remote state, applies what
//!   is newer than its own copy and publishes what is older or missing, such
//!   as the changes it made during the outage.
//!
//! Cookie values never appear in logs.
//!
//! # Writing a backend
//!
//! A backend has three jobs: [`load`](RemoteBackend::load) every change it
//! holds, [`publish`](RemoteBackend::publish) one change, and
//! [`subscribe`](RemoteBackend::subscribe) to the changes that all
//! processes publish. Every process that shares a jar must use the same
//! backend configuration (for Redis, the same prefix). The jar relies on
//! this contract:
//!
//! - **Order and duplicates do not matter.** The jar orders changes by
//!   [`Version`] and ignores any change that is not newer than its copy, so a
//!   backend may deliver a change more than once, out of order, and back to
//!   the process that published it.
//! - **Publishing is idempotent, and the store keeps the newest version.**
//!   The jar publishes a change again after a failure or after an outage.
//!   Store a change only when its version is newer than the stored one for
//!   the same [`CookieKey`] (a compare-and-set), so that a late or repeated
//!   write never replaces a newer one and a process that loads later sees
//!   the same winner as the others. Deliver it to subscribers only when it
//!   was stored.
//! - **A published change is loadable.** Once `publish` returns `Ok`,
//!   `load` returns that change or a newer one for the same key, until the
//!   cookie expires. `load` should also return deletions
//!   ([`CookieChange::Removed`]) for a while, so that a late write older than
//!   the deletion cannot bring the cookie back.
//! - **A subscription never skips silently.** Return an error from
//!   [`ChangeStream::next_change`] as soon as changes may have been missed (a
//!   lost connection, a lagging buffer). The jar then subscribes again and
//!   loads the whole state, which repairs any gap. The jar subscribes before
//!   it loads, so a change published during the load is not lost.
//! - **Fail instead of hanging.** The jar runs each call under
//!   [`operation_timeout`](MirroredJarBuilder::operation_timeout) and counts
//!   a timeout as a failure, but a backend that gives up sooner recovers
//!   sooner.
//!
//! A backend for a process-local map and a broadcast channel:
//!
//! ```
//! use std::{
//!     collections::HashMap,
//!     fmt,
//!     sync::{Arc, Mutex},
//!     time::Duration,
//! };
//!
//! use http::HeaderValue;
//! use tokio::sync::broadcast;
//! use tower_sticky::{
//!     CookieJar, RequestTarget,
//!     jar::CookieKey,
//!     remote::{ChangeStream, MirroredJar, RemoteBackend, RemoteChange},
//! };
//!
//! #[derive(Clone)]
//! struct LocalBackend {
//!     entries: Arc<Mutex<HashMap<CookieKey, RemoteChange>>>,
//!     changes: broadcast::Sender<RemoteChange>,
//! }
//!
//! /// The subscription fell behind the broadcast buffer, or the backend is
//! /// gone.
//! #[derive(Debug)]
//! struct Missed;
//!
//! impl fmt::Display for Missed {
//!     fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
//!         f.write_str("the subscription missed changes")
//!     }
//! }
//!
//! impl std::error::Error for Missed {}
//!
//! struct LocalSubscription(broadcast::Receiver<RemoteChange>);
//!
//! impl RemoteBackend for LocalBackend {
//!     type Error = Missed;
//!     type Subscription = LocalSubscription;
//!
//!     async fn load(&self) -> Result<Vec<RemoteChange>, Missed> {
//!         Ok(self.entries.lock().unwrap().values().cloned().collect())
//!     }
//!
//!     async fn publish(&self, change: &RemoteChange) -> Result<(), Missed> {
//!         let mut entries = self.entries.lock().unwrap();
//!         let key = change.key();
//!         // Keep the newest version, so that a repeated or late publish
//!         // changes nothing.
//!         if entries.get(&key).is_some_and(|held| held.version >= change.version) {
//!             return Ok(());
//!         }
//!         entries.insert(key, change.clone());
//!         // Sending under the lock delivers changes in the order stored.
//!         let _ = self.changes.send(change.clone());
//!         Ok(())
//!     }
//!
//!     async fn subscribe(&self) -> Result<LocalSubscription, Missed> {
//!         Ok(LocalSubscription(self.changes.subscribe()))
//!     }
//! }
//!
//! impl ChangeStream for LocalSubscription {
//!     type Error = Missed;
//!
//!     async fn next_change(&mut self) -> Result<RemoteChange, Missed> {
//!         // A lagging receiver skipped changes: report it, and the jar
//!         // subscribes and loads again.
//!         self.0.recv().await.map_err(|_| Missed)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let backend = LocalBackend {
//!     entries: Arc::default(),
//!     changes: broadcast::channel(1024).0,
//! };
//! let first = MirroredJar::new(backend.clone()).await;
//! let second = MirroredJar::new(backend).await;
//!
//! let target = RequestTarget::new("api.example", "/", false);
//! let set_cookie = HeaderValue::from_static("SRV=app-2; Path=/");
//! first.store(&target, &mut std::iter::once(&set_cookie));
//!
//! let mut header = None;
//! for _ in 0..500 {
//!     header = second.cookie_header(&target);
//!     if header.is_some() {
//!         break;
//!     }
//!     tokio::time::sleep(Duration::from_millis(10)).await;
//! }
//! assert_eq!(header.unwrap(), "SRV=app-2");
//! # }
//! ```
//!
//! [`MemoryJar`]: crate::MemoryJar

use std::{fmt, future::Future};

use crate::jar::{CookieChange, CookieKey};

mod clock;
#[cfg(test)]
mod mirror_tests;
mod mirrored;
#[cfg(feature = "redis")]
mod record;
#[cfg(feature = "redis")]
mod redis;
mod shared;
mod tasks;

pub use mirrored::{
    DEFAULT_COALESCE_INTERVAL, DEFAULT_LOAD_TIMEOUT, DEFAULT_OPERATION_TIMEOUT,
    DEFAULT_RETRY_MAX_DELAY, DEFAULT_RETRY_MIN_DELAY, DEFAULT_SHUTDOWN_TIMEOUT, FlushTimeout,
    MirrorStats, MirroredJar, MirroredJarBuilder,
};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::{
    DEFAULT_PREFIX, DEFAULT_SESSION_TTL, DEFAULT_TOMBSTONE_TTL, MAX_TTL, RedisBackend,
    RedisBackendBuilder, RedisBackendError, RedisSubscription,
};

/// A remote store that mirrored jars share: the place where processes
/// publish their cookie changes and learn about each other's.
///
/// See the [module documentation](self#writing-a-backend) for the contract
/// an implementation must keep, and an example.
///
/// The methods return `Send` futures so that the jar can run them on a
/// spawned task. Implement them with `async fn`.
pub trait RemoteBackend: Send + Sync + 'static {
    /// The error of every operation. The jar logs it with its `Display`
    /// output, so it must not contain cookie values.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The stream of changes that [`subscribe`](RemoteBackend::subscribe)
    /// returns.
    type Subscription: ChangeStream<Error = Self::Error>;

    /// Loads the newest change of every cookie the store holds: stored
    /// cookies, and the deletions it still remembers.
    fn load(&self) -> impl Future<Output = Result<Vec<RemoteChange>, Self::Error>> + Send;

    /// Publishes one change: stores it unless the store contains a newer
    /// version of the same cookie, and delivers it to the subscriptions.
    fn publish(
        &self,
        change: &RemoteChange,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Starts receiving the changes that processes publish from now on,
    /// this one's included.
    fn subscribe(&self) -> impl Future<Output = Result<Self::Subscription, Self::Error>> + Send;
}

/// The changes a [`RemoteBackend`] delivers after
/// [`subscribe`](RemoteBackend::subscribe).
pub trait ChangeStream: Send + 'static {
    /// The error that ends the subscription.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Waits for the next change.
    ///
    /// Returns an error once changes may have been missed. The jar then
    /// drops the subscription, subscribes again and reloads the state.
    fn next_change(&mut self) -> impl Future<Output = Result<RemoteChange, Self::Error>> + Send;
}

/// One change to a shared jar, with the version that orders it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteChange {
    /// Orders this change against other changes to the same cookie.
    pub version: Version,
    /// The cookie stored, or the key of the cookie deleted.
    pub change: CookieChange,
}

impl RemoteChange {
    /// Creates a change.
    pub fn new(version: Version, change: CookieChange) -> Self {
        RemoteChange { version, change }
    }

    /// Returns the key of the cookie the change applies to.
    pub fn key(&self) -> CookieKey {
        change_key(&self.change)
    }

    /// Returns whether the change deletes the cookie.
    pub fn is_removal(&self) -> bool {
        matches!(self.change, CookieChange::Removed(_))
    }
}

pub(crate) fn change_key(change: &CookieChange) -> CookieKey {
    match change {
        CookieChange::Stored(cookie) => cookie.key(),
        CookieChange::Removed(key) => key.clone(),
    }
}

/// The version of a change: the higher version wins.
///
/// Versions compare by Unix time in milliseconds, then by a counter that
/// orders writes within one millisecond, then by the id of the process that
/// wrote. Each process picks a random id when its jar starts, so two
/// processes never make equal versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    unix_ms: i64,
    counter: u32,
    origin: u64,
}

impl Version {
    /// Creates a version from its parts.
    pub const fn new(unix_ms: i64, counter: u32, origin: u64) -> Self {
        Version {
            unix_ms,
            counter,
            origin,
        }
    }

    /// Returns the time of the write, in milliseconds since the Unix epoch.
    /// A writer that has seen a newer version uses that version's time
    /// instead of its own clock, so this can be ahead of the real time by the
    /// clock skew between hosts.
    pub const fn unix_ms(self) -> i64 {
        self.unix_ms
    }

    /// Returns the counter that orders writes within one millisecond.
    pub const fn counter(self) -> u32 {
        self.counter
    }

    /// Returns the id of the process that wrote the change.
    pub const fn origin(self) -> u64 {
        self.origin
    }
}

/// Shows the version as `unix_ms.counter@origin`, with the origin in 16
/// hexadecimal digits.
impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}@{:016x}", self.unix_ms, self.counter, self.origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_orders_time_counter_origin() {
        let base = Version::new(1_000, 0, 5);
        assert!(Version::new(1_001, 0, 0) > base);
        assert!(Version::new(1_000, 1, 0) > base);
        assert!(Version::new(1_000, 0, 6) > base);
        assert!(Version::new(999, 9, 9) < base);
    }

    #[test]
    fn version_display_fixed_origin_width() {
        let version = Version::new(1_700_000_000_123, 2, 0xab);
        assert_eq!(version.to_string(), "1700000000123.2@00000000000000ab");
    }
}
