//! The two background tasks of a mirrored jar: one subscribes, loads and
//! applies remote changes, the other publishes local changes.
//!
//! Both hold the shared state but not the [`MirroredJar`] handle. Dropping
//! the handle drops the sender of their stop channel: the receiving task
//! then returns at once, and the publishing task publishes what is pending
//! for at most the shutdown timeout and returns.
//!
//! [`MirroredJar`]: super::MirroredJar

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use tokio::{
    sync::watch,
    time::{Instant, sleep, sleep_until, timeout},
};

use super::{
    ChangeStream, RemoteBackend,
    clock::unix_time_ms,
    shared::{Counters, Shared},
};
use crate::jar::CookieKey;

/// How often the receiving task drops versions the jar no longer needs.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// Why a remote operation failed: the backend's error, or the jar's timeout.
enum Failure<E> {
    Backend(E),
    TimedOut(Duration),
}

impl<E: fmt::Display> fmt::Display for Failure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Backend(error) => error.fmt(f),
            Failure::TimedOut(limit) => write!(f, "timed out after {limit:?}"),
        }
    }
}

/// Runs a backend call under the operation timeout.
async fn bounded<T, E>(
    limit: Duration,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, Failure<E>> {
    match timeout(limit, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(Failure::Backend(error)),
        Err(_) => Err(Failure::TimedOut(limit)),
    }
}

/// Exponential backoff between retries, capped, with jitter so that many
/// processes do not retry in step after a shared outage.
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    /// State of a xorshift generator for the jitter.
    seed: u64,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration, seed: u64) -> Self {
        Backoff {
            min,
            max,
            next: min,
            seed: seed | 1,
        }
    }

    /// Returns the delay before the next retry: between half and all of the
    /// current step, which doubles up to the maximum.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(self.max);
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let fraction = 0.5 + (self.seed % 1024) as f64 / 2048.0;
        step.mul_f64(fraction).max(Duration::from_millis(1))
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Waits until the stop channel's sender is dropped.
async fn stopped(stop: &mut watch::Receiver<()>) {
    // The sender never sends, so `changed` only returns when it is dropped.
    while stop.changed().await.is_ok() {}
}

/// Subscribes, loads the remote state and applies remote changes, again
/// after every failure, until stopped.
pub(crate) async fn receive_changes<B: RemoteBackend>(
    shared: Arc<Shared<B>>,
    mut stop: watch::Receiver<()>,
    loaded: watch::Sender<bool>,
) {
    let limit = shared.config.operation_timeout;
    let mut backoff = Backoff::new(
        shared.config.retry_min_delay,
        shared.config.retry_max_delay,
        shared.origin().rotate_left(17),
    );
    let mut retrying = false;
    let mut has_loaded = false;
    loop {
        if retrying {
            Counters::add(&shared.counters.retries, 1);
            tracing::debug!("retrying the remote subscription and load");
        }
        // Subscribing first means a change published during the load is
        // delivered afterwards instead of being lost.
        let connect = async {
            let subscription = bounded(limit, shared.backend.subscribe()).await?;
            let entries = bounded(limit, shared.backend.load()).await?;
            Ok::<_, Failure<B::Error>>((subscription, entries))
        };
        let outcome = tokio::select! {
            () = stopped(&mut stop) => return,
            outcome = connect => outcome,
        };
        let mut subscription = match outcome {
            Ok((subscription, entries)) => {
                let count = entries.len();
                shared.merge_loaded(entries, unix_time_ms());
                Counters::add(&shared.counters.remote_loads, 1);
                if has_loaded {
                    Counters::add(&shared.counters.resyncs, 1);
                    tracing::debug!(entries = count, "reloaded the remote cookie state");
                } else {
                    has_loaded = true;
                    tracing::debug!(entries = count, "loaded the remote cookie state");
                    // The builder may have stopped waiting already.
                    let _ = loaded.send(true);
                }
                shared.note_success();
                shared.recoveries.fetch_add(1, Ordering::Relaxed);
                shared.wake.notify_one();
                backoff.reset();
                subscription
            }
            Err(failure) => {
                shared.note_failure("subscribe and load", &failure);
                let delay = backoff.next_delay();
                tracing::debug!(?delay, "waiting before the next subscription attempt");
                tokio::select! {
                    () = stopped(&mut stop) => return,
                    () = sleep(delay) => {}
                }
                retrying = true;
                continue;
            }
        };

        let mut prune = tokio::time::interval_at(Instant::now() + PRUNE_INTERVAL, PRUNE_INTERVAL);
        loop {
            tokio::select! {
                () = stopped(&mut stop) => return,
                next = subscription.next_change() => match next {
                    Ok(change) if change.version.origin() == shared.origin() => {
                        // This process's own change, which it already has.
                    }
                    Ok(change) => shared.apply_remote(change, unix_time_ms()),
                    Err(error) => {
                        shared.note_failure("subscription", &error);
                        break;
                    }
                },
                _ = prune.tick() => shared.prune_versions(),
            }
        }
        // Try again at once: a lost connection is often replaced quickly.
        retrying = true;
    }
}

/// Publishes pending local changes, at most one per cookie and coalescing
/// interval, retrying with backoff, until stopped.
pub(crate) async fn publish_changes<B: RemoteBackend>(
    shared: Arc<Shared<B>>,
    mut stop: watch::Receiver<()>,
) {
    let mut publisher = Publisher {
        backoff: Backoff::new(
            shared.config.retry_min_delay,
            shared.config.retry_max_delay,
            shared.origin(),
        ),
        shared,
        last_sent: HashMap::new(),
        retry_at: None,
        recoveries_seen: 0,
    };
    loop {
        publisher.follow_recovery();
        let now = Instant::now();
        let (batch, next_due) = match publisher.retry_at {
            Some(at) if at > now => (Vec::new(), Some(at.into_std())),
            _ => publisher
                .shared
                .take_due(now.into_std(), &publisher.last_sent, false),
        };
        if batch.is_empty() {
            let wake = publisher.shared.wake.notified();
            tokio::select! {
                () = stopped(&mut stop) => break,
                () = wake => {}
                () = sleep_until(next_due.map_or(now, Instant::from_std)), if next_due.is_some() => {}
            }
            continue;
        }
        publisher.publish_batch(batch, None).await;
    }
    publisher.flush_before_exit().await;
}

struct Publisher<B> {
    shared: Arc<Shared<B>>,
    /// When each recently published cookie went out, for coalescing.
    last_sent: HashMap<CookieKey, std::time::Instant>,
    backoff: Backoff,
    /// When to try again after a failure.
    retry_at: Option<Instant>,
    recoveries_seen: u64,
}

impl<B: RemoteBackend> Publisher<B> {
    /// Drops the backoff when the receiving task reconnected, so that the
    /// changes made during an outage go out right away.
    fn follow_recovery(&mut self) {
        let recoveries = self.shared.recoveries.load(Ordering::Relaxed);
        if recoveries != self.recoveries_seen {
            self.recoveries_seen = recoveries;
            self.retry_at = None;
            self.backoff.reset();
        }
    }

    /// Publishes the changes one after the other. On the first failure it
    /// puts the rest back and schedules a retry. Returns whether all went
    /// out.
    async fn publish_batch(
        &mut self,
        batch: Vec<crate::remote::RemoteChange>,
        deadline: Option<Instant>,
    ) -> bool {
        let shared = Arc::clone(&self.shared);
        let mut limit = shared.config.operation_timeout;
        if let Some(deadline) = deadline {
            limit = limit.min(deadline.saturating_duration_since(Instant::now()));
        }
        if self.retry_at.take().is_some() {
            Counters::add(&shared.counters.retries, 1);
            tracing::debug!(changes = batch.len(), "retrying to publish cookie changes");
        }
        let mut changes = batch.into_iter();
        while let Some(change) = changes.next() {
            match bounded(limit, shared.backend.publish(&change)).await {
                Ok(()) => {
                    Counters::add(&shared.counters.published, 1);
                    shared.finish(1);
                    shared.note_success();
                    self.backoff.reset();
                    self.last_sent
                        .insert(change.key(), std::time::Instant::now());
                }
                Err(failure) => {
                    Counters::add(&shared.counters.publish_failures, 1);
                    shared.note_failure("publish", &failure);
                    let mut unpublished = vec![change];
                    unpublished.extend(changes);
                    shared.requeue(unpublished);
                    let delay = self.backoff.next_delay();
                    tracing::debug!(?delay, "waiting before publishing again");
                    self.retry_at = Some(Instant::now() + delay);
                    shared.progress.notify_waiters();
                    return false;
                }
            }
        }
        self.forget_old_sends();
        shared.progress.notify_waiters();
        true
    }

    fn forget_old_sends(&mut self) {
        let interval = self.shared.config.coalesce_interval;
        self.last_sent.retain(|_, sent| sent.elapsed() < interval);
    }

    /// Publishes everything pending, without waiting for the coalescing
    /// interval, for at most the shutdown timeout.
    async fn flush_before_exit(&mut self) {
        let deadline = Instant::now() + self.shared.config.shutdown_timeout;
        self.retry_at = None;
        loop {
            let (batch, _) = self
                .shared
                .take_due(Instant::now().into_std(), &self.last_sent, true);
            if batch.is_empty() {
                return;
            }
            if !self.publish_batch(batch, Some(deadline)).await {
                let retry_at = self.retry_at.unwrap_or(deadline).min(deadline);
                sleep_until(retry_at).await;
            }
            if Instant::now() >= deadline {
                let unpublished = self.shared.unpublished();
                if unpublished > 0 {
                    tracing::warn!(
                        unpublished,
                        "mirrored jar stopped before it could publish all local changes"
                    );
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_cap() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1), 42);
        let delays: Vec<Duration> = (0..8).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(50), "{delays:?}");
        assert!(delays[0] <= Duration::from_millis(100), "{delays:?}");
        assert!(delays[7] >= Duration::from_millis(500), "{delays:?}");
        assert!(delays[7] <= Duration::from_secs(1), "{delays:?}");
    }

    #[test]
    fn backoff_reset_starts_over() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1), 7);
        for _ in 0..5 {
            backoff.next_delay();
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}
