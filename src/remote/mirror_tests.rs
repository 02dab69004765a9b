//! Tests of the mirrored jar over an in-process backend that can fail on
//! demand.

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use http::HeaderValue;
use tokio::sync::{broadcast, watch};

use super::{ChangeStream, MirroredJar, RemoteBackend, RemoteChange, Version};
use crate::{
    CookieJar, MemoryJar, RequestTarget,
    jar::{Cookie, CookieChange, CookieKey},
};

#[derive(Debug)]
struct Down;

impl fmt::Display for Down {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the test backend is down")
    }
}

impl std::error::Error for Down {}

struct State {
    entries: Mutex<HashMap<CookieKey, RemoteChange>>,
    changes: broadcast::Sender<RemoteChange>,
    down: AtomicBool,
    /// Bumped when the backend goes down, which ends every subscription.
    outages: watch::Sender<u64>,
    publishes: AtomicUsize,
    live_subscriptions: AtomicUsize,
}

#[derive(Clone)]
struct TestBackend(Arc<State>);

impl TestBackend {
    fn new() -> Self {
        TestBackend(Arc::new(State {
            entries: Mutex::default(),
            changes: broadcast::channel(1024).0,
            down: AtomicBool::new(false),
            outages: watch::channel(0).0,
            publishes: AtomicUsize::new(0),
            live_subscriptions: AtomicUsize::new(0),
        }))
    }

    fn set_down(&self, down: bool) {
        self.0.down.store(down, Ordering::SeqCst);
        if down {
            self.0.outages.send_modify(|count| *count += 1);
        }
    }

    fn check(&self) -> Result<(), Down> {
        if self.0.down.load(Ordering::SeqCst) {
            Err(Down)
        } else {
            Ok(())
        }
    }

    /// Delivers a change to subscribers without storing it or comparing
    /// versions, as a late or duplicated message would arrive.
    fn deliver(&self, change: RemoteChange) {
        let _ = self.0.changes.send(change);
    }

    fn value_of(&self, name: &str) -> Option<Vec<u8>> {
        let entries = self.0.entries.lock().unwrap();
        entries.values().find_map(|entry| match &entry.change {
            CookieChange::Stored(cookie) if cookie.name_bytes() == name.as_bytes() => {
                Some(cookie.expose_value().to_vec())
            }
            _ => None,
        })
    }
}

struct TestSubscription {
    changes: broadcast::Receiver<RemoteChange>,
    outages: watch::Receiver<u64>,
    state: Arc<State>,
}

impl Drop for TestSubscription {
    fn drop(&mut self) {
        self.state.live_subscriptions.fetch_sub(1, Ordering::SeqCst);
    }
}

impl RemoteBackend for TestBackend {
    type Error = Down;
    type Subscription = TestSubscription;

    async fn load(&self) -> Result<Vec<RemoteChange>, Down> {
        self.check()?;
        Ok(self.0.entries.lock().unwrap().values().cloned().collect())
    }

    async fn publish(&self, change: &RemoteChange) -> Result<(), Down> {
        self.check()?;
        self.0.publishes.fetch_add(1, Ordering::SeqCst);
        let mut entries = self.0.entries.lock().unwrap();
        let key = change.key();
        if entries
            .get(&key)
            .is_some_and(|held| held.version >= change.version)
        {
            return Ok(());
        }
        entries.insert(key, change.clone());
        let _ = self.0.changes.send(change.clone());
        Ok(())
    }

    async fn subscribe(&self) -> Result<TestSubscription, Down> {
        self.check()?;
        self.0.live_subscriptions.fetch_add(1, Ordering::SeqCst);
        let mut outages = self.0.outages.subscribe();
        outages.mark_unchanged();
        Ok(TestSubscription {
            changes: self.0.changes.subscribe(),
            outages,
            state: Arc::clone(&self.0),
        })
    }
}

impl ChangeStream for TestSubscription {
    type Error = Down;

    async fn next_change(&mut self) -> Result<RemoteChange, Down> {
        tokio::select! {
            change = self.changes.recv() => change.map_err(|_| Down),
            _ = self.outages.changed() => Err(Down),
        }
    }
}

const SITE: RequestTarget<'static> = RequestTarget::new("api.test", "/", false);

fn store(jar: &impl CookieJar, line: &'static str) {
    let value = HeaderValue::from_static(line);
    jar.store(&SITE, &mut std::iter::once(&value));
}

fn header(jar: &impl CookieJar) -> Option<String> {
    jar.cookie_header(&SITE)
        .map(|value| value.to_str().expect("ASCII header").to_owned())
}

/// Polls `check` every 10 ms for up to 5 s and returns whether it held.
async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    check()
}

async fn quick_jar(backend: &TestBackend) -> MirroredJar<TestBackend> {
    MirroredJar::builder(backend.clone())
        .retry_delays(Duration::from_millis(5), Duration::from_millis(20))
        .coalesce_interval(Duration::from_millis(20))
        .build()
        .await
}

#[tokio::test]
async fn store_publishes_change() {
    let backend = TestBackend::new();
    let jar = quick_jar(&backend).await;
    store(&jar, "SRV=a; Path=/");
    jar.flush(Duration::from_secs(5)).await.expect("flushed");
    assert_eq!(backend.value_of("SRV").as_deref(), Some(&b"a"[..]));
    assert_eq!(jar.stats().published, 1);
}

#[tokio::test]
async fn change_reaches_other_jar() {
    let backend = TestBackend::new();
    let first = quick_jar(&backend).await;
    let second = quick_jar(&backend).await;
    store(&first, "SRV=a; Path=/");
    assert!(eventually(|| header(&second).as_deref() == Some("SRV=a")).await);
    assert_eq!(second.stats().applied, 1);
}

#[tokio::test]
async fn own_changes_not_applied_twice() {
    let backend = TestBackend::new();
    let jar = quick_jar(&backend).await;
    store(&jar, "SRV=a; Path=/");
    jar.flush(Duration::from_secs(5)).await.expect("flushed");
    store(&jar, "other=b; Path=/");
    jar.flush(Duration::from_secs(5)).await.expect("flushed");
    let stats = jar.stats();
    assert_eq!(stats.applied, 0);
    assert_eq!(stats.ignored_stale, 0);
}

#[tokio::test]
async fn deletion_reaches_other_jar() {
    let backend = TestBackend::new();
    let first = quick_jar(&backend).await;
    let second = quick_jar(&backend).await;
    store(&first, "SRV=a; Path=/");
    assert!(eventually(|| header(&second).is_some()).await);
    store(&first, "SRV=gone; Path=/; Max-Age=0");
    assert!(first.is_empty());
    assert!(eventually(|| second.is_empty()).await);
}

#[tokio::test]
async fn stale_remote_change_ignored() {
    let backend = TestBackend::new();
    let jar = quick_jar(&backend).await;
    store(&jar, "SRV=new; Path=/");
    let old = RemoteChange::new(
        Version::new(1, 0, 99),
        CookieChange::Stored(Cookie::new("SRV", "old", "api.test")),
    );
    backend.deliver(old);
    assert!(eventually(|| jar.stats().ignored_stale == 1).await);
    assert_eq!(header(&jar).as_deref(), Some("SRV=new"));
}

#[tokio::test]
async fn newer_remote_change_replaces_local() {
    let backend = TestBackend::new();
    let jar = quick_jar(&backend).await;
    store(&jar, "SRV=local; Path=/");
    let newer = RemoteChange::new(
        Version::new(i64::MAX / 2, 0, 99),
        CookieChange::Stored(Cookie::new("SRV", "remote", "api.test")),
    );
    backend.deliver(newer);
    assert!(eventually(|| header(&jar).as_deref() == Some("SRV=remote")).await);
    // A later local write must win over the remote one it saw.
    store(&jar, "SRV=later; Path=/");
    jar.flush(Duration::from_secs(5)).await.expect("flushed");
    assert_eq!(backend.value_of("SRV").as_deref(), Some(&b"later"[..]));
}

#[tokio::test]
async fn repeated_writes_coalesced() {
    let backend = TestBackend::new();
    let jar = MirroredJar::builder(backend.clone())
        .coalesce_interval(Duration::from_millis(200))
        .build()
        .await;
    store(&jar, "SRV=1; Path=/");
    store(&jar, "SRV=2; Path=/");
    store(&jar, "SRV=3; Path=/");
    store(&jar, "SRV=4; Path=/");
    jar.flush(Duration::from_secs(5)).await.expect("flushed");
    let stats = jar.stats();
    assert!(stats.coalesced >= 2, "{stats:?}");
    assert_eq!(stats.coalesced + stats.published, 4, "{stats:?}");
    assert_eq!(backend.value_of("SRV").as_deref(), Some(&b"4"[..]));
}

#[tokio::test]
async fn concurrent_writes_converge() {
    let backend = TestBackend::new();
    let first = quick_jar(&backend).await;
    let second = quick_jar(&backend).await;
    store(&first, "SRV=first; Path=/");
    store(&second, "SRV=second; Path=/");
    let converged = eventually(|| {
        let winner = backend.value_of("SRV");
        let held = |jar: &MirroredJar<TestBackend>| {
            header(jar).map(|header| header.trim_start_matches("SRV=").as_bytes().to_vec())
        };
        winner.is_some() && held(&first) == winner && held(&second) == winner
    })
    .await;
    assert!(converged, "{:?} {:?}", header(&first), header(&second));
}

#[tokio::test]
async fn outage_keeps_local_state() {
    let backend = TestBackend::new();
    let jar = quick_jar(&backend).await;
    backend.set_down(true);
    store(&jar, "SRV=during; Path=/");
    assert!(eventually(|| jar.stats().publish_failures >= 1).await);
    assert_eq!(header(&jar).as_deref(), Some("SRV=during"));
    assert!(!jar.is_connected());
    let stats = jar.stats();
    assert_eq!(stats.outages, 1, "{stats:?}");
    assert_eq!(stats.pending, 1, "{stats:?}");
}

#[tokio::test]
async fn recovery_publishes_outage_writes() {
    let backend = TestBackend::new();
    let jar = quick_jar(&backend).await;
    backend.set_down(true);
    store(&jar, "SRV=during; Path=/");
    assert!(eventually(|| jar.stats().publish_failures >= 1).await);
    backend.set_down(false);
    jar.flush(Duration::from_secs(5)).await.expect("flushed");
    assert_eq!(backend.value_of("SRV").as_deref(), Some(&b"during"[..]));
    assert!(eventually(|| jar.stats().resyncs >= 1).await);
    let stats = jar.stats();
    assert!(stats.reconnects >= 1, "{stats:?}");
    assert!(stats.retries >= 1, "{stats:?}");
    assert!(jar.is_connected());
}

#[tokio::test]
async fn resync_restores_lost_remote_state() {
    let backend = TestBackend::new();
    let first = quick_jar(&backend).await;
    store(&first, "SRV=kept; Path=/");
    first.flush(Duration::from_secs(5)).await.expect("flushed");
    // The store loses everything, as a Redis without persistence does when
    // it restarts.
    backend.set_down(true);
    backend.0.entries.lock().unwrap().clear();
    backend.set_down(false);
    assert!(eventually(|| backend.value_of("SRV").is_some()).await);
    let second = quick_jar(&backend).await;
    assert_eq!(header(&second).as_deref(), Some("SRV=kept"));
}

#[tokio::test]
async fn full_pending_map_drops() {
    let backend = TestBackend::new();
    let jar = MirroredJar::builder(backend.clone())
        .max_pending(1)
        .retry_delays(Duration::from_secs(10), Duration::from_secs(10))
        .build()
        .await;
    backend.set_down(true);
    store(&jar, "a=1; Path=/");
    store(&jar, "b=2; Path=/");
    store(&jar, "a=3; Path=/");
    let stats = jar.stats();
    assert_eq!(stats.dropped, 1, "{stats:?}");
    assert_eq!(header(&jar).as_deref(), Some("a=3; b=2"));
}

#[tokio::test]
async fn pending_bound_follows_jar_limit() {
    let backend = TestBackend::new();
    let jar = MirroredJar::builder(backend.clone())
        .jar_builder(MemoryJar::builder().max_cookies(2))
        .retry_delays(Duration::from_secs(10), Duration::from_secs(10))
        .build()
        .await;
    backend.set_down(true);
    store(&jar, "a=1; Path=/");
    store(&jar, "b=2; Path=/");
    store(&jar, "c=3; Path=/");
    let stats = jar.stats();
    assert_eq!(stats.dropped, 1, "{stats:?}");
}

#[tokio::test]
async fn load_timeout_starts_empty() {
    let backend = TestBackend::new();
    let seed = quick_jar(&backend).await;
    store(&seed, "SRV=remote; Path=/");
    seed.flush(Duration::from_secs(5)).await.expect("flushed");
    backend.set_down(true);
    let jar = MirroredJar::builder(backend.clone())
        .load_timeout(Duration::from_millis(20))
        .retry_delays(Duration::from_millis(5), Duration::from_millis(20))
        .build()
        .await;
    assert_eq!(header(&jar), None);
    assert_eq!(jar.stats().remote_loads, 0);
    backend.set_down(false);
    assert!(eventually(|| header(&jar).as_deref() == Some("SRV=remote")).await);
    assert_eq!(jar.stats().remote_loads, 1);
}

#[tokio::test]
async fn new_jar_loads_remote_state() {
    let backend = TestBackend::new();
    let seed = quick_jar(&backend).await;
    store(&seed, "SRV=remote; Path=/");
    seed.flush(Duration::from_secs(5)).await.expect("flushed");
    let jar = quick_jar(&backend).await;
    assert_eq!(header(&jar).as_deref(), Some("SRV=remote"));
}

#[tokio::test]
async fn loaded_cookies_keep_creation_order() {
    let backend = TestBackend::new();
    let seed = quick_jar(&backend).await;
    store(&seed, "zz=1; Path=/");
    tokio::time::sleep(Duration::from_millis(5)).await;
    store(&seed, "aa=2; Path=/");
    seed.flush(Duration::from_secs(5)).await.expect("flushed");
    assert_eq!(header(&seed).as_deref(), Some("zz=1; aa=2"));
    for _ in 0..5 {
        let jar = quick_jar(&backend).await;
        assert_eq!(header(&jar).as_deref(), Some("zz=1; aa=2"));
    }
}

#[tokio::test]
async fn remove_key_publishes_lowercase_domain() {
    let backend = TestBackend::new();
    let first = quick_jar(&backend).await;
    let second = quick_jar(&backend).await;
    store(&first, "SRV=a; Path=/");
    assert!(eventually(|| header(&second).as_deref() == Some("SRV=a")).await);

    let found = first.get("API.Test", "/", "SRV");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].domain(), "api.test");
    let mut key = found[0].key();
    key.domain = "API.Test".to_owned();
    assert!(first.remove_key(&key));

    assert!(eventually(|| header(&second).is_none()).await);
    let late = quick_jar(&backend).await;
    assert_eq!(header(&late), None);
}

#[tokio::test]
async fn preloaded_cookies_published() {
    let backend = TestBackend::new();
    let local = MemoryJar::new();
    local
        .insert(Cookie::new("SRV", "saved", "api.test"))
        .expect("valid cookie");
    let jar = MirroredJar::builder(backend.clone())
        .jar(local)
        .build()
        .await;
    jar.flush(Duration::from_secs(5)).await.expect("flushed");
    assert_eq!(backend.value_of("SRV").as_deref(), Some(&b"saved"[..]));
}

#[tokio::test]
async fn preloaded_cookie_loses_to_remote() {
    let backend = TestBackend::new();
    let seed = quick_jar(&backend).await;
    store(&seed, "SRV=remote; Path=/");
    seed.flush(Duration::from_secs(5)).await.expect("flushed");
    let local = MemoryJar::new();
    local
        .insert(Cookie::new("SRV", "saved", "api.test"))
        .expect("valid cookie");
    let jar = MirroredJar::builder(backend.clone())
        .jar(local)
        .build()
        .await;
    assert_eq!(header(&jar).as_deref(), Some("SRV=remote"));
}

#[tokio::test]
async fn insert_and_remove_published() {
    let backend = TestBackend::new();
    let jar = quick_jar(&backend).await;
    jar.insert(Cookie::new("SRV", "inserted", "api.test"))
        .expect("valid cookie");
    jar.flush(Duration::from_secs(5)).await.expect("flushed");
    assert_eq!(backend.value_of("SRV").as_deref(), Some(&b"inserted"[..]));
    let key = jar.cookies()[0].key();
    assert!(jar.remove_key(&key));
    jar.flush(Duration::from_secs(5)).await.expect("flushed");
    assert_eq!(backend.value_of("SRV"), None);
}

#[tokio::test]
async fn drop_flushes_and_stops() {
    let backend = TestBackend::new();
    let jar = quick_jar(&backend).await;
    assert!(eventually(|| backend.0.live_subscriptions.load(Ordering::SeqCst) == 1).await);
    store(&jar, "SRV=last; Path=/");
    drop(jar);
    assert!(eventually(|| backend.value_of("SRV").is_some()).await);
    assert!(eventually(|| backend.0.live_subscriptions.load(Ordering::SeqCst) == 0).await);
    // Only the handle keeps the backend alive besides the tasks, so both
    // tasks have returned once this is the last reference.
    assert!(eventually(|| Arc::strong_count(&backend.0) == 1).await);
}

#[tokio::test]
async fn flush_times_out_during_outage() {
    let backend = TestBackend::new();
    let jar = quick_jar(&backend).await;
    backend.set_down(true);
    store(&jar, "SRV=stuck; Path=/");
    let error = jar
        .flush(Duration::from_millis(50))
        .await
        .expect_err("the backend is down");
    assert_eq!(error.unpublished, 1);
}

#[tokio::test]
async fn response_without_cookies_publishes_nothing() {
    let backend = TestBackend::new();
    let jar = quick_jar(&backend).await;
    jar.store(&SITE, &mut std::iter::empty());
    jar.flush(Duration::from_secs(5)).await.expect("flushed");
    assert_eq!(backend.0.publishes.load(Ordering::SeqCst), 0);
}
