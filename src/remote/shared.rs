//! The state a mirrored jar shares with its background tasks.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    sync::{
        Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::Notify;

use super::{RemoteChange, Version, change_key, clock::VersionClock};
use crate::{
    MemoryJar,
    jar::{CookieChange, CookieKey},
};

/// How long a process remembers a deletion after it applied or made it, so
/// that an older write arriving late does not bring the cookie back.
pub(crate) const TOMBSTONE_RETENTION: Duration = Duration::from_secs(10 * 60);

/// Settings of a mirrored jar, set through its builder.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) load_timeout: Duration,
    pub(crate) coalesce_interval: Duration,
    pub(crate) max_pending: usize,
    pub(crate) retry_min_delay: Duration,
    pub(crate) retry_max_delay: Duration,
    pub(crate) operation_timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
}

/// The jar, the backend and the bookkeeping that the handle, the request
/// path and the background tasks share.
pub(crate) struct Shared<B> {
    pub(crate) jar: MemoryJar,
    pub(crate) backend: B,
    pub(crate) config: Config,
    pub(crate) counters: Counters,
    /// Notified when a local change is pending.
    pub(crate) wake: Notify,
    /// Notified when the publishing task finished a batch, for `flush`.
    pub(crate) progress: Notify,
    /// Grows each time the receiving task recovered from an outage, so that
    /// the publishing task can drop its backoff.
    pub(crate) recoveries: AtomicU64,
    origin: u64,
    sync: Mutex<SyncState>,
    outage_since: Mutex<Option<Instant>>,
}

/// Versions, the version clock and the pending changes, under one lock.
///
/// Local stores hold this lock while they change the jar, and remote changes
/// are applied under it too, so the jar and the version map always agree.
/// The lock order is this lock first, then the jar's.
pub(crate) struct SyncState {
    clock: VersionClock,
    /// The newest version this process has seen for each cookie.
    versions: HashMap<CookieKey, Known>,
    /// Local changes waiting to be published, one per cookie.
    pending: HashMap<CookieKey, RemoteChange>,
    /// Changes the publishing task took and has not finished.
    in_flight: usize,
    warned_dropped: bool,
}

#[derive(Debug, Clone, Copy)]
struct Known {
    version: Version,
    /// When the cookie was deleted, for a deletion.
    deleted_at: Option<Instant>,
}

/// The counters behind [`MirrorStats`](super::MirrorStats).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) remote_loads: AtomicU64,
    pub(crate) resyncs: AtomicU64,
    pub(crate) published: AtomicU64,
    pub(crate) coalesced: AtomicU64,
    pub(crate) applied: AtomicU64,
    pub(crate) ignored_stale: AtomicU64,
    pub(crate) publish_failures: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) outages: AtomicU64,
    pub(crate) reconnects: AtomicU64,
    pub(crate) dropped: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, amount: u64) {
        counter.fetch_add(amount, Ordering::Relaxed);
    }

    pub(crate) fn read(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

impl<B> Shared<B> {
    pub(crate) fn new(jar: MemoryJar, backend: B, config: Config, origin: u64) -> Self {
        // Cookies the caller put in the jar count as the oldest writes: any
        // remote copy replaces them, and the remote store gets those it
        // lacks at the first load.
        let versions = jar
            .cookies()
            .into_iter()
            .map(|cookie| {
                let known = Known {
                    version: Version::new(0, 0, origin),
                    deleted_at: None,
                };
                (cookie.key(), known)
            })
            .collect();
        Shared {
            jar,
            backend,
            config,
            counters: Counters::default(),
            wake: Notify::new(),
            progress: Notify::new(),
            recoveries: AtomicU64::new(0),
            origin,
            sync: Mutex::new(SyncState {
                clock: VersionClock::new(origin),
                versions,
                pending: HashMap::new(),
                in_flight: 0,
                warned_dropped: false,
            }),
            outage_since: Mutex::new(None),
        }
    }

    pub(crate) fn origin(&self) -> u64 {
        self.origin
    }

    pub(crate) fn lock_sync(&self) -> MutexGuard<'_, SyncState> {
        // Nothing panics while the lock is held, and a jar that did should
        // keep serving requests rather than fail each one.
        self.sync.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns how many local changes are not published yet, in flight
    /// included.
    pub(crate) fn unpublished(&self) -> usize {
        let sync = self.lock_sync();
        sync.pending.len() + sync.in_flight
    }

    /// Gives a local change a version and queues it for publishing. The
    /// caller holds the sync lock across the jar change that made it.
    ///
    /// Returns whether the publishing task needs a wake-up: a change that
    /// replaced a pending one is already on its list.
    pub(crate) fn queue_local(
        &self,
        sync: &mut SyncState,
        change: CookieChange,
        now_ms: i64,
    ) -> bool {
        let version = sync.clock.tick(now_ms);
        let key = change_key(&change);
        let known = Known {
            version,
            deleted_at: matches!(change, CookieChange::Removed(_)).then(Instant::now),
        };
        match sync.versions.get_mut(&key) {
            Some(slot) => *slot = known,
            None => {
                sync.versions.insert(key.clone(), known);
            }
        }
        self.enqueue(sync, key, RemoteChange::new(version, change))
    }

    /// Puts a change in the pending map: it replaces a pending change to the
    /// same cookie, and is dropped when the map is full. Returns whether it
    /// added a cookie to the map.
    fn enqueue(&self, sync: &mut SyncState, key: CookieKey, change: RemoteChange) -> bool {
        if let Some(slot) = sync.pending.get_mut(&key) {
            *slot = change;
            Counters::add(&self.counters.coalesced, 1);
            return false;
        }
        if sync.pending.len() + sync.in_flight >= self.config.max_pending {
            Counters::add(&self.counters.dropped, 1);
            let first = !std::mem::replace(&mut sync.warned_dropped, true);
            let max_pending = self.config.max_pending;
            if first {
                tracing::warn!(
                    cookie.domain = %key.domain,
                    max_pending,
                    "dropped a cookie change: too many changes wait to be published; \
                     later drops log at debug level"
                );
            } else {
                tracing::debug!(
                    cookie.domain = %key.domain,
                    max_pending,
                    "dropped a cookie change: too many changes wait to be published"
                );
            }
            return false;
        }
        sync.pending.insert(key, change);
        true
    }

    /// Applies a change from the remote store if it is newer than the local
    /// copy.
    pub(crate) fn apply_remote(&self, change: RemoteChange, now_ms: i64) {
        let mut sync = self.lock_sync();
        self.apply_locked(&mut sync, change, now_ms);
    }

    fn apply_locked(&self, sync: &mut SyncState, change: RemoteChange, now_ms: i64) {
        sync.clock.observe(change.version);
        let key = change.key();
        if let Some(known) = sync.versions.get(&key) {
            if known.version > change.version {
                Counters::add(&self.counters.ignored_stale, 1);
                return;
            }
            if known.version == change.version {
                // A change this process already has, such as its own.
                return;
            }
        }
        // The pending local change is older than this one, so it lost.
        sync.pending.remove(&key);
        let deleted_at = change.is_removal().then(Instant::now);
        sync.versions.insert(
            key,
            Known {
                version: change.version,
                deleted_at,
            },
        );
        if let Err(reason) = self.jar.apply_change(change.change, now_ms) {
            // The jar counted the rejection in its own stats.
            tracing::debug!(
                reason = reason.as_str(),
                "a remote cookie does not pass this jar's rules"
            );
        }
        Counters::add(&self.counters.applied, 1);
    }

    /// Merges the full remote state after a load: applies what is newer
    /// than the local copy, and queues for publishing the local changes the
    /// store lacks or has in an older version.
    pub(crate) fn merge_loaded(&self, mut entries: Vec<RemoteChange>, now_ms: i64) {
        // The jar orders cookies by when it first stored them, so apply the
        // loaded cookies oldest first to keep the `Cookie` header order of
        // the process that created them.
        entries.sort_by_key(|entry| match &entry.change {
            CookieChange::Stored(cookie) => (cookie.created_ms, entry.version),
            _ => (i64::MIN, entry.version),
        });
        let mut sync = self.lock_sync();
        let mut remote = HashMap::with_capacity(entries.len());
        for entry in entries {
            remote.insert(entry.key(), entry.version);
            self.apply_locked(&mut sync, entry, now_ms);
        }

        let mut live: HashMap<CookieKey, _> = self
            .jar
            .cookies()
            .into_iter()
            .filter(|cookie| cookie.expires_ms.is_none_or(|expires| expires > now_ms))
            .map(|cookie| (cookie.key(), cookie))
            .collect();
        let mut repairs = Vec::new();
        for (key, known) in &sync.versions {
            let remote_version = remote.get(key);
            if remote_version.is_some_and(|version| *version >= known.version)
                || sync.pending.contains_key(key)
            {
                continue;
            }
            let change = if known.deleted_at.is_some() {
                // Only a store that still has an older copy needs the deletion.
                if remote_version.is_none() {
                    continue;
                }
                CookieChange::Removed(key.clone())
            } else {
                // A cookie evicted or expired here since is not sent.
                let Some(cookie) = live.remove(key) else {
                    continue;
                };
                CookieChange::Stored(cookie)
            };
            repairs.push((key.clone(), RemoteChange::new(known.version, change)));
        }
        if !repairs.is_empty() {
            tracing::debug!(
                changes = repairs.len(),
                "publishing local changes the remote store lacks"
            );
        }
        for (key, change) in repairs {
            self.enqueue(&mut sync, key, change);
        }
    }

    /// Takes the pending changes whose cookie was not published within the
    /// coalescing interval, and returns when the next of the others is due.
    pub(crate) fn take_due(
        &self,
        now: Instant,
        last_sent: &HashMap<CookieKey, Instant>,
        ignore_interval: bool,
    ) -> (Vec<RemoteChange>, Option<Instant>) {
        let interval = self.config.coalesce_interval;
        let mut sync = self.lock_sync();
        let mut due = Vec::new();
        let mut next_due: Option<Instant> = None;
        for key in sync.pending.keys() {
            match last_sent.get(key).map(|sent| *sent + interval) {
                Some(at) if at > now && !ignore_interval => {
                    next_due = Some(next_due.map_or(at, |next| next.min(at)));
                }
                _ => due.push(key.clone()),
            }
        }
        let batch: Vec<RemoteChange> = due
            .iter()
            .filter_map(|key| sync.pending.remove(key))
            .collect();
        sync.in_flight += batch.len();
        (batch, next_due)
    }

    /// Marks `count` taken changes as finished.
    pub(crate) fn finish(&self, count: usize) {
        let mut sync = self.lock_sync();
        sync.in_flight = sync.in_flight.saturating_sub(count);
    }

    /// Puts back taken changes that were not published, unless a newer
    /// change to the same cookie came in meanwhile.
    pub(crate) fn requeue(&self, changes: Vec<RemoteChange>) {
        let mut sync = self.lock_sync();
        sync.in_flight = sync.in_flight.saturating_sub(changes.len());
        for change in changes {
            let key = change.key();
            let current = sync
                .versions
                .get(&key)
                .is_some_and(|known| known.version == change.version);
            if current && !sync.pending.contains_key(&key) {
                self.enqueue(&mut sync, key, change);
            }
        }
    }

    /// Drops the versions of cookies the jar no longer contains and of old
    /// deletions, so that the version map stays as small as the jar.
    pub(crate) fn prune_versions(&self) {
        let mut sync = self.lock_sync();
        let live: HashSet<CookieKey> = self
            .jar
            .cookies()
            .into_iter()
            .map(|cookie| cookie.key())
            .collect();
        let SyncState {
            versions, pending, ..
        } = &mut *sync;
        versions.retain(|key, known| {
            pending.contains_key(key)
                || match known.deleted_at {
                    Some(at) => at.elapsed() < TOMBSTONE_RETENTION,
                    None => live.contains(key),
                }
        });
    }

    /// Records that a remote operation failed, and starts an outage if none
    /// is going on.
    pub(crate) fn note_failure(&self, operation: &'static str, error: &dyn fmt::Display) {
        let mut since = self
            .outage_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if since.is_none() {
            *since = Some(Instant::now());
            Counters::add(&self.counters.outages, 1);
            tracing::warn!(
                operation,
                error = %error,
                "remote cookie store unreachable: requests go on with the local jar, \
                 and local changes are kept and retried"
            );
        } else {
            tracing::debug!(operation, error = %error, "remote cookie store still unreachable");
        }
    }

    /// Records that a remote operation succeeded, and ends the outage if
    /// one is going on.
    pub(crate) fn note_success(&self) {
        let mut since = self
            .outage_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(start) = since.take() {
            Counters::add(&self.counters.reconnects, 1);
            let outage_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
            tracing::info!(outage_ms, "remote cookie store reachable again");
        }
    }

    /// Returns whether an outage is going on.
    pub(crate) fn in_outage(&self) -> bool {
        self.outage_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jar::Cookie;

    fn shared() -> Shared<()> {
        let config = Config {
            load_timeout: Duration::from_secs(1),
            coalesce_interval: Duration::from_millis(100),
            max_pending: 10,
            retry_min_delay: Duration::from_millis(10),
            retry_max_delay: Duration::from_millis(100),
            operation_timeout: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(1),
        };
        Shared::new(MemoryJar::new(), (), config, 7)
    }

    fn stored(name: &str) -> CookieChange {
        CookieChange::Stored(Cookie::new(name, "v", "api.test"))
    }

    #[test]
    fn prune_forgets_evicted_cookies() {
        let shared = shared();
        let cookie = Cookie::new("gone", "v", "api.test");
        let key = cookie.key();
        shared.jar.insert(cookie).expect("valid cookie");
        {
            let mut sync = shared.lock_sync();
            shared.queue_local(&mut sync, stored("gone"), 1_000);
            sync.pending.clear();
        }
        // The jar evicts it without telling the mirror.
        shared.jar.remove_key(&key);
        shared.prune_versions();
        assert!(!shared.lock_sync().versions.contains_key(&key));
    }

    #[test]
    fn prune_keeps_live_and_pending() {
        let shared = shared();
        let live = Cookie::new("live", "v", "api.test");
        shared.jar.insert(live.clone()).expect("valid cookie");
        {
            let mut sync = shared.lock_sync();
            shared.queue_local(&mut sync, stored("live"), 1_000);
            shared.queue_local(&mut sync, stored("pending"), 1_000);
        }
        shared.prune_versions();
        let sync = shared.lock_sync();
        assert!(sync.versions.contains_key(&live.key()));
        assert!(
            sync.versions
                .contains_key(&Cookie::new("pending", "v", "api.test").key())
        );
    }

    #[test]
    fn prune_keeps_recent_deletion() {
        let shared = shared();
        let key = Cookie::new("deleted", "v", "api.test").key();
        {
            let mut sync = shared.lock_sync();
            shared.queue_local(&mut sync, CookieChange::Removed(key.clone()), 1_000);
            sync.pending.clear();
        }
        shared.prune_versions();
        assert!(shared.lock_sync().versions.contains_key(&key));
    }

    #[test]
    fn coalesced_change_needs_no_wake() {
        let shared = shared();
        let mut sync = shared.lock_sync();
        assert!(shared.queue_local(&mut sync, stored("a"), 1_000));
        assert!(!shared.queue_local(&mut sync, stored("a"), 1_001));
        assert_eq!(sync.pending.len(), 1);
        assert_eq!(Counters::read(&shared.counters.coalesced), 1);
    }

    #[test]
    fn requeue_skips_superseded_change() {
        let shared = shared();
        let (batch, _) = {
            let mut sync = shared.lock_sync();
            shared.queue_local(&mut sync, stored("a"), 1_000);
            drop(sync);
            shared.take_due(Instant::now(), &HashMap::new(), false)
        };
        assert_eq!(batch.len(), 1);
        {
            let mut sync = shared.lock_sync();
            shared.queue_local(&mut sync, stored("a"), 2_000);
        }
        shared.requeue(batch);
        let sync = shared.lock_sync();
        assert_eq!(sync.in_flight, 0);
        let pending: Vec<&RemoteChange> = sync.pending.values().collect();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].version.unix_ms(), 2_000);
    }
}
