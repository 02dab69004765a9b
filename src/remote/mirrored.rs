//! The mirrored jar: a local jar kept in step with a remote store.

use std::{fmt, sync::Arc, time::Duration};

use http::HeaderValue;
use tokio::sync::watch;

use super::{
    RemoteBackend,
    clock::{random_origin, unix_time_ms},
    shared::{Config, Counters, Shared},
    tasks,
};
use crate::{
    CookieJar, JarStats, MemoryJar, MemoryJarBuilder, RejectReason, RequestTarget,
    jar::{Cookie, CookieChange, CookieKey, DEFAULT_MAX_COOKIES},
};

/// Default for [`MirroredJarBuilder::load_timeout`].
pub const DEFAULT_LOAD_TIMEOUT: Duration = Duration::from_secs(2);
/// Default for [`MirroredJarBuilder::coalesce_interval`].
pub const DEFAULT_COALESCE_INTERVAL: Duration = Duration::from_millis(100);
/// Default for the first delay of [`MirroredJarBuilder::retry_delays`].
pub const DEFAULT_RETRY_MIN_DELAY: Duration = Duration::from_millis(100);
/// Default for the maximum delay of [`MirroredJarBuilder::retry_delays`].
pub const DEFAULT_RETRY_MAX_DELAY: Duration = Duration::from_secs(10);
/// Default for [`MirroredJarBuilder::operation_timeout`].
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(5);
/// Default for [`MirroredJarBuilder::shutdown_timeout`].
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// A cookie jar shared with other processes through a [`RemoteBackend`].
///
/// Requests are served from a local [`MemoryJar`], with its limits, filter
/// and RFC 6265 rules, so [`cookie_header`](CookieJar::cookie_header) and
/// [`store`](CookieJar::store) never wait on the network. A store records
/// the changes it made in a pending map; a background task publishes them,
/// and another applies the changes other processes publish. The
/// [module documentation](super) describes the consistency model.
///
/// Share it between clients of one process by wrapping it in an [`Arc`]:
/// `Arc<MirroredJar<B>>` is a [`CookieJar`]. Dropping the last handle stops
/// the background tasks, which first publish the pending changes for at most
/// the [shutdown timeout](MirroredJarBuilder::shutdown_timeout). When the
/// Tokio runtime shuts down first, they stop at once, so call
/// [`flush`](MirroredJar::flush) before a process exits.
///
/// ```
/// # async fn example<B: tower_sticky::remote::RemoteBackend>(backend: B) {
/// use std::{sync::Arc, time::Duration};
/// use tower_sticky::{MemoryJar, StickyLayer, jar::CookieFilter, remote::MirroredJar};
///
/// let jar = MirroredJar::builder(backend)
///     .jar_builder(MemoryJar::builder().filter(CookieFilter::load_balancers()))
///     .load_timeout(Duration::from_millis(500))
///     .build()
///     .await;
/// let jar = Arc::new(jar);
/// let layer = StickyLayer::with_jar(Arc::clone(&jar));
/// # let _ = layer;
/// # }
/// ```
pub struct MirroredJar<B: RemoteBackend> {
    shared: Arc<Shared<B>>,
    /// Dropping it stops the background tasks.
    _stop: watch::Sender<()>,
}

/// Builds a [`MirroredJar`].
#[must_use]
pub struct MirroredJarBuilder<B> {
    backend: B,
    jar: Option<MemoryJar>,
    /// `None` follows the local jar's `max_cookies`.
    max_pending: Option<usize>,
    config: Config,
}

/// A snapshot of a mirrored jar's counters, from [`MirroredJar::stats`].
///
/// Every count is since the jar was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MirrorStats {
    /// Successful loads of the remote state, the first one included.
    pub remote_loads: u64,
    /// Loads after the first one: after a lost subscription or an outage.
    pub resyncs: u64,
    /// Local changes published.
    pub published: u64,
    /// Local changes that replaced a pending change to the same cookie
    /// before it was published.
    pub coalesced: u64,
    /// Remote changes applied to the local jar, from subscriptions and
    /// loads.
    pub applied: u64,
    /// Remote changes ignored because the local copy is newer.
    pub ignored_stale: u64,
    /// Attempts to publish a change that failed.
    pub publish_failures: u64,
    /// Attempts, after a failure, to publish or to subscribe and load
    /// again.
    pub retries: u64,
    /// Times the remote store became unreachable.
    pub outages: u64,
    /// Times the remote store became reachable again after an outage.
    pub reconnects: u64,
    /// Local changes not published because the pending map was full.
    pub dropped: u64,
    /// Local changes waiting to be published now.
    pub pending: u64,
    /// The local jar's counters.
    pub jar: JarStats,
}

/// The error of [`MirroredJar::flush`]: some local changes were still not
/// published when the timeout passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushTimeout {
    /// Changes still waiting to be published.
    pub unpublished: usize,
}

impl fmt::Display for FlushTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timed out with {} cookie changes not yet published",
            self.unpublished
        )
    }
}

impl std::error::Error for FlushTimeout {}

impl<B: RemoteBackend> MirroredJarBuilder<B> {
    /// Uses `jar` for the local copy, with its limits, filter and public
    /// suffix list. Cookies it already contains count as older than any remote
    /// copy: a remote cookie with the same key replaces them, and the others
    /// are published at the first load. Defaults to [`MemoryJar::new`].
    ///
    /// Change the jar afterwards only through the mirrored jar: changes made
    /// to a `MemoryJar` directly are not published.
    pub fn jar(mut self, jar: MemoryJar) -> Self {
        self.jar = Some(jar);
        self
    }

    /// Builds the local copy with `builder`, like [`jar`](Self::jar).
    pub fn jar_builder(self, builder: MemoryJarBuilder) -> Self {
        self.jar(builder.build())
    }

    /// Sets how long [`build`](Self::build) waits for the first load of the
    /// remote state. When it passes, the jar starts without it, logs a
    /// warning and keeps loading in the background. Defaults to 2 seconds.
    pub fn load_timeout(mut self, timeout: Duration) -> Self {
        self.config.load_timeout = timeout;
        self
    }

    /// Sets the minimum time between two publications of the same cookie.
    /// Changes in between replace each other, and the last one is published.
    /// Defaults to 100 ms. Zero publishes every change.
    pub fn coalesce_interval(mut self, interval: Duration) -> Self {
        self.config.coalesce_interval = interval;
        self
    }

    /// Sets how many changes to distinct cookies may wait to be published.
    /// Past it, new changes are dropped, logged and counted in
    /// [`MirrorStats::dropped`], and the next resynchronisation publishes
    /// the cookies the remote store lacks. Defaults to the local jar's
    /// [`max_cookies`](MemoryJar::max_cookies), so every cookie the jar can
    /// hold can wait at once.
    ///
    /// # Panics
    ///
    /// Panics if `count` is zero.
    #[track_caller]
    pub fn max_pending(mut self, count: usize) -> Self {
        assert!(count > 0, "max_pending must be at least 1");
        self.max_pending = Some(count);
        self
    }

    /// Sets the delays between retries after a failure: the first delay,
    /// doubled after each further failure up to `max`, each shortened by a
    /// random part of up to half. Defaults to 100 ms and 10 s.
    ///
    /// # Panics
    ///
    /// Panics if `min` is zero or greater than `max`.
    #[track_caller]
    pub fn retry_delays(mut self, min: Duration, max: Duration) -> Self {
        assert!(!min.is_zero(), "the first retry delay must not be zero");
        assert!(
            min <= max,
            "the first retry delay must not exceed the maximum"
        );
        self.config.retry_min_delay = min;
        self.config.retry_max_delay = max;
        self
    }

    /// Sets how long one backend call (load, publish or subscribe) may take
    /// before it counts as failed. Defaults to 5 seconds.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.config.operation_timeout = timeout;
        self
    }

    /// Sets how long the background task keeps publishing pending changes
    /// after the last handle is dropped. Defaults to 2 seconds.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.config.shutdown_timeout = timeout;
        self
    }

    /// Starts the background tasks and waits for the first load of the
    /// remote state, for at most the [load timeout](Self::load_timeout).
    ///
    /// # Panics
    ///
    /// Panics when it is not called from within a Tokio runtime, which runs
    /// the background tasks.
    pub async fn build(self) -> MirroredJar<B> {
        let origin = random_origin();
        let load_timeout = self.config.load_timeout;
        let jar = self.jar.unwrap_or_default();
        let mut config = self.config;
        config.max_pending = self.max_pending.unwrap_or_else(|| jar.max_cookies());
        let shared = Arc::new(Shared::new(jar, self.backend, config, origin));

        let (stop, stop_receiver) = watch::channel(());
        let (loaded, mut loaded_receiver) = watch::channel(false);
        tokio::spawn(tasks::receive_changes(
            Arc::clone(&shared),
            stop_receiver.clone(),
            loaded,
        ));
        tokio::spawn(tasks::publish_changes(Arc::clone(&shared), stop_receiver));

        let waited = tokio::time::timeout(load_timeout, loaded_receiver.wait_for(|done| *done));
        if !matches!(waited.await, Ok(Ok(_))) {
            tracing::warn!(
                ?load_timeout,
                "remote cookie state not loaded in time: starting without it \
                 and loading in the background"
            );
        }
        MirroredJar {
            shared,
            _stop: stop,
        }
    }
}

impl<B: RemoteBackend> MirroredJar<B> {
    /// Builds a mirrored jar with the default settings and an empty
    /// [`MemoryJar`]. See [`MirroredJarBuilder::build`].
    ///
    /// # Panics
    ///
    /// Panics when it is not called from within a Tokio runtime.
    pub async fn new(backend: B) -> Self {
        MirroredJar::builder(backend).build().await
    }

    /// Returns a builder to set the local jar, timeouts and intervals.
    pub fn builder(backend: B) -> MirroredJarBuilder<B> {
        MirroredJarBuilder {
            backend,
            jar: None,
            max_pending: None,
            config: Config {
                load_timeout: DEFAULT_LOAD_TIMEOUT,
                coalesce_interval: DEFAULT_COALESCE_INTERVAL,
                // Replaced in `build` by `max_pending` or the jar's limit.
                max_pending: DEFAULT_MAX_COOKIES,
                retry_min_delay: DEFAULT_RETRY_MIN_DELAY,
                retry_max_delay: DEFAULT_RETRY_MAX_DELAY,
                operation_timeout: DEFAULT_OPERATION_TIMEOUT,
                shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            },
        }
    }

    /// Returns the backend.
    pub fn backend(&self) -> &B {
        &self.shared.backend
    }

    /// Returns the random id that this jar puts in the versions of its
    /// writes.
    pub fn origin(&self) -> u64 {
        self.shared.origin()
    }

    /// Returns a snapshot of the counters, the local jar's included.
    pub fn stats(&self) -> MirrorStats {
        let counters = &self.shared.counters;
        let read = Counters::read;
        MirrorStats {
            remote_loads: read(&counters.remote_loads),
            resyncs: read(&counters.resyncs),
            published: read(&counters.published),
            coalesced: read(&counters.coalesced),
            applied: read(&counters.applied),
            ignored_stale: read(&counters.ignored_stale),
            publish_failures: read(&counters.publish_failures),
            retries: read(&counters.retries),
            outages: read(&counters.outages),
            reconnects: read(&counters.reconnects),
            dropped: read(&counters.dropped),
            pending: self.shared.unpublished() as u64,
            jar: self.shared.jar.stats(),
        }
    }

    /// Returns whether the last remote operation succeeded: false
    /// during an outage, from the first failure to the next success.
    pub fn is_connected(&self) -> bool {
        !self.shared.in_outage()
    }

    /// Lists the cookies of the local copy, as [`MemoryJar::cookies`] does.
    pub fn cookies(&self) -> Vec<Cookie> {
        self.shared.jar.cookies()
    }

    /// Returns the cookies of the local copy with this name, domain and
    /// path, as [`MemoryJar::get`] does.
    pub fn get(&self, domain: &str, path: &str, name: &str) -> Vec<Cookie> {
        self.shared.jar.get(domain, path, name)
    }

    /// Returns how many cookies the local copy contains.
    pub fn len(&self) -> usize {
        self.shared.jar.len()
    }

    /// Returns whether the local copy contains no cookie.
    pub fn is_empty(&self) -> bool {
        self.shared.jar.is_empty()
    }

    /// Stores a cookie as [`MemoryJar::insert`] does, and publishes it. An
    /// expired cookie deletes its stored twin, and the deletion is
    /// published.
    ///
    /// # Errors
    ///
    /// Returns why the local jar rejected the cookie. Nothing is published
    /// then.
    pub fn insert(&self, cookie: Cookie) -> Result<(), RejectReason> {
        let now_ms = unix_time_ms();
        let mut sync = self.shared.lock_sync();
        let wake = if cookie.expires_ms.is_some_and(|expires| expires <= now_ms) {
            let key = cookie.key();
            self.shared.jar.remove_key(&key)
                && self
                    .shared
                    .queue_local(&mut sync, CookieChange::Removed(key), now_ms)
        } else {
            self.shared.jar.insert(cookie.clone())?;
            self.shared
                .queue_local(&mut sync, CookieChange::Stored(cookie), now_ms)
        };
        drop(sync);
        if wake {
            self.shared.wake.notify_one();
        }
        Ok(())
    }

    /// Removes the cookie with exactly this key, publishes the deletion,
    /// and returns whether the local copy held it.
    pub fn remove_key(&self, key: &CookieKey) -> bool {
        let now_ms = unix_time_ms();
        // Other processes match keys exactly, so publish the stored,
        // lowercase spelling of the domain.
        let key = CookieKey {
            domain: key.domain.to_ascii_lowercase(),
            ..key.clone()
        };
        let mut sync = self.shared.lock_sync();
        let removed = self.shared.jar.remove_key(&key);
        let wake = removed
            && self
                .shared
                .queue_local(&mut sync, CookieChange::Removed(key), now_ms);
        drop(sync);
        if wake {
            self.shared.wake.notify_one();
        }
        removed
    }

    /// Waits until no local change is waiting to be published, or until
    /// `timeout` passes. Changes made while it waits are waited for too.
    ///
    /// Changes to a cookie published less than the coalescing interval ago
    /// wait for that interval first.
    ///
    /// # Errors
    ///
    /// Returns [`FlushTimeout`] with the number of changes still waiting
    /// when `timeout` passes, for example during an outage.
    pub async fn flush(&self, timeout: Duration) -> Result<(), FlushTimeout> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let progress = self.shared.progress.notified();
            tokio::pin!(progress);
            progress.as_mut().enable();
            let unpublished = self.shared.unpublished();
            if unpublished == 0 {
                return Ok(());
            }
            self.shared.wake.notify_one();
            if tokio::time::timeout_at(deadline, progress).await.is_err() {
                return Err(FlushTimeout {
                    unpublished: self.shared.unpublished(),
                });
            }
        }
    }
}

impl<B: RemoteBackend> CookieJar for MirroredJar<B> {
    fn cookie_header(&self, target: &RequestTarget<'_>) -> Option<HeaderValue> {
        self.shared.jar.cookie_header(target)
    }

    fn store(
        &self,
        target: &RequestTarget<'_>,
        set_cookie: &mut dyn Iterator<Item = &HeaderValue>,
    ) {
        let mut values = set_cookie.peekable();
        if values.peek().is_none() {
            return;
        }
        let now_ms = unix_time_ms();
        let mut wake = false;
        {
            let mut sync = self.shared.lock_sync();
            let changes = self.shared.jar.store_recording(target, &mut values, now_ms);
            for change in changes {
                wake |= self.shared.queue_local(&mut sync, change, now_ms);
            }
        }
        // A rotating cookie that is already pending needs no wake-up, which
        // keeps a cross-thread wake-up off most requests.
        if wake {
            self.shared.wake.notify_one();
        }
    }
}

impl<B: RemoteBackend> fmt::Debug for MirroredJar<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Cookie values are credentials, so only counts are shown.
        f.debug_struct("MirroredJar")
            .field("origin", &format_args!("{:016x}", self.shared.origin()))
            .field("jar", &self.shared.jar)
            .field("unpublished", &self.shared.unpublished())
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

impl<B> fmt::Debug for MirroredJarBuilder<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MirroredJarBuilder")
            .field("jar", &self.jar)
            .field("max_pending", &self.max_pending)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
