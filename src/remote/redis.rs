//! The Redis backend.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use ::redis::{
    AsyncConnectionConfig, Client, ConnectionInfo, IntoConnectionInfo, Msg, ProtocolVersion,
    PushInfo, PushKind, RedisError, Value,
    aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection},
};
use tokio::{sync::mpsc, time::Interval};

use super::{
    ChangeStream, RemoteBackend, RemoteChange,
    clock::unix_time_ms,
    record::{self, KeyLayout},
};
use crate::jar::{CookieChange, CookieKey};

/// Default for [`RedisBackendBuilder::prefix`].
pub const DEFAULT_PREFIX: &str = "tower-sticky:";
/// Default for [`RedisBackendBuilder::session_ttl`]: one day.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Default for [`RedisBackendBuilder::tombstone_ttl`]: one hour.
pub const DEFAULT_TOMBSTONE_TTL: Duration = Duration::from_secs(60 * 60);

const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(5);

/// Keys requested per `SCAN` call, and keys read per `MGET` call.
const SCAN_BATCH: usize = 500;

/// Stores a record and publishes it, unless the key already has a version
/// that is newer or equal. Redis runs a script atomically, like `MULTI`/`EXEC`, and
/// the script can compare versions, which a transaction cannot.
///
/// `KEYS[1]` is the cookie key. `ARGV` contains the version's milliseconds,
/// counter and origin (16 hexadecimal digits, so that string order is
/// number order), the record, `PXAT` or `PX` with its argument in
/// milliseconds, and the channel. Returns 1 when it stored the record, 0
/// when not.
const PUBLISH_SCRIPT: &str = r"
local held = redis.call('GET', KEYS[1])
if held then
  local ok, record = pcall(cjson.decode, held)
  if ok and type(record) == 'table' and type(record.version) == 'table' then
    local ms = tonumber(record.version.ms) or 0
    local counter = tonumber(record.version.counter) or 0
    local origin = tostring(record.version.origin)
    local new_ms = tonumber(ARGV[1])
    local new_counter = tonumber(ARGV[2])
    if ms > new_ms or (ms == new_ms and (counter > new_counter
        or (counter == new_counter and origin >= ARGV[3]))) then
      return 0
    end
  end
end
redis.call('SET', KEYS[1], ARGV[4], ARGV[5], ARGV[6])
redis.call('PUBLISH', ARGV[7], ARGV[4])
return 1
";

/// Shares mirrored jars through Redis (6.2 or later).
///
/// Commands go through a [`ConnectionManager`], which reconnects after a
/// failure. Changes arrive on a dedicated pub/sub connection that uses
/// RESP3, and that the jar opens again, with backoff, when it closes. A
/// `PING` on it every few seconds finds a connection that died silently.
///
/// # Key layout
///
/// Everything lives under a prefix ([`DEFAULT_PREFIX`] unless
/// [set](RedisBackendBuilder::prefix)), so that many shared jars can use one
/// database:
///
/// - `{prefix}cookie:{domain}:{host|domain}:{path}:{name}`: one string key
///   per cookie, `host` for a host-only cookie and `domain` for a cookie
///   with a `Domain` attribute. In the domain, path and name, every byte
///   other than ASCII letters, digits and ``-._~/!$&'()+,;=@`` is written as
///   `%XX`, so `:` and `%` never appear unescaped and no two cookies share a
///   key. [`cookie_key`](RedisBackend::cookie_key) returns it.
/// - The value is a JSON object: `version` (`ms`, `counter`, `origin` as 16
///   hexadecimal digits), `domain`, `host_only`, `path`, `name`, `value`,
///   `secure`, `http_only`, `expires_ms` (absent for a session cookie) and
///   `created_ms`. Names, paths and values that are not UTF-8 are written
///   as `name_bytes`, `path_bytes` or `value_bytes`, arrays of numbers. A
///   deletion is the same object with `"deleted": true` and no value.
/// - `{prefix}changes`: the pub/sub channel. Each message is the JSON
///   object just stored.
///
/// # Expiry
///
/// A cookie's key expires with the cookie (`PXAT` its expiry time). A
/// session cookie's key expires [`session_ttl`](RedisBackendBuilder::session_ttl)
/// after its last write. A deletion (`Max-Age=0`, a past `Expires`, a
/// removal) replaces the key's value with a deletion record that expires
/// after [`tombstone_ttl`](RedisBackendBuilder::tombstone_ttl), so that a
/// write older than the deletion, published late, cannot bring the cookie
/// back in that time.
///
/// # Publishing
///
/// One Lua script stores the record and publishes it, atomically, and only
/// when the key has no newer version. Every process, and every process
/// that loads later, therefore ends with the same last write.
///
/// Loading reads the keys with `SCAN` and `MGET`. `SCAN` walks the whole
/// database, so a database with many other keys makes loads slower.
pub struct RedisBackend {
    commands: ConnectionManager,
    subscriber: Client,
    layout: KeyLayout,
    session_ttl: Duration,
    tombstone_ttl: Duration,
    connection_timeout: Duration,
    response_timeout: Duration,
    ping_interval: Duration,
    warned_undecodable: Arc<AtomicBool>,
}

/// Builds a [`RedisBackend`].
#[must_use]
pub struct RedisBackendBuilder {
    connection: Result<ConnectionInfo, RedisError>,
    prefix: String,
    session_ttl: Duration,
    tombstone_ttl: Duration,
    connection_timeout: Duration,
    response_timeout: Duration,
    ping_interval: Duration,
}

/// The longest TTL the builder accepts: 100 years. Redis rejects an expiry
/// time whose milliseconds since the epoch overflow a signed 64-bit integer.
pub const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// The error of a [`RedisBackend`] operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisBackendError {
    /// A connection or command failed, or the connection settings are
    /// invalid.
    #[error("Redis request failed: {0}")]
    Redis(#[from] RedisError),
    /// The connection settings, such as the URL, are invalid.
    #[error(
        "invalid Redis connection settings: {0} (expected a URL such as redis://127.0.0.1:6379/)"
    )]
    InvalidSettings(RedisError),
    /// The pub/sub connection closed, so changes may have been missed.
    #[error("the Redis pub/sub connection closed")]
    SubscriptionClosed,
    /// A change could not be encoded as JSON.
    #[error("failed to encode a cookie change as JSON: {0}")]
    Encode(#[source] serde_json::Error),
}

impl RedisBackend {
    /// Returns a builder for a backend that connects to `connection`: a URL
    /// such as `redis://127.0.0.1:6379/0`, or a [`ConnectionInfo`].
    pub fn builder(connection: impl IntoConnectionInfo) -> RedisBackendBuilder {
        RedisBackendBuilder {
            connection: connection.into_connection_info(),
            prefix: DEFAULT_PREFIX.to_owned(),
            session_ttl: DEFAULT_SESSION_TTL,
            tombstone_ttl: DEFAULT_TOMBSTONE_TTL,
            connection_timeout: DEFAULT_CONNECTION_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            ping_interval: DEFAULT_PING_INTERVAL,
        }
    }

    /// Returns the prefix of every key and of the channel.
    pub fn prefix(&self) -> &str {
        self.layout.prefix()
    }

    /// Returns the pub/sub channel: `{prefix}changes`.
    pub fn channel(&self) -> &str {
        self.layout.channel()
    }

    /// Returns the Redis key that stores the cookie with this key.
    pub fn cookie_key(&self, key: &CookieKey) -> String {
        self.layout.cookie_key(key)
    }

    /// Returns the time-to-live of a session cookie's key.
    pub fn session_ttl(&self) -> Duration {
        self.session_ttl
    }

    /// Returns the time-to-live of a deletion record.
    pub fn tombstone_ttl(&self) -> Duration {
        self.tombstone_ttl
    }

    /// Logs a record that could not be decoded: at warn level the first
    /// time, at debug level later.
    fn skip_undecodable(&self, source: &str, error: &dyn fmt::Display) {
        skip_undecodable(&self.warned_undecodable, source, error);
    }
}

fn skip_undecodable(warned: &AtomicBool, source: &str, error: &dyn fmt::Display) {
    if warned.swap(true, Ordering::Relaxed) {
        tracing::debug!(source, error = %error, "skipped an undecodable cookie record");
    } else {
        tracing::warn!(
            source,
            error = %error,
            "skipped an undecodable cookie record; later ones log at debug level"
        );
    }
}

impl RedisBackendBuilder {
    /// Sets the prefix of every key and of the channel. Jars that share
    /// cookies use the same prefix, and jars that must not use different
    /// ones. Include a separator at its end, as in `billing:sticky:`.
    /// Defaults to [`DEFAULT_PREFIX`].
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets how long the key of a session cookie (one without `Expires` or
    /// `Max-Age`) lives after its last write. Processes that hold the cookie
    /// keep it; a process that starts later no longer loads it. Defaults to
    /// one day.
    ///
    /// # Panics
    ///
    /// Panics if `ttl` is shorter than one millisecond or longer than
    /// [`MAX_TTL`] (Redis rejects expiry times past its range).
    #[track_caller]
    pub fn session_ttl(mut self, ttl: Duration) -> Self {
        assert!(ttl.as_millis() > 0, "session_ttl must be at least 1 ms");
        assert!(
            ttl <= MAX_TTL,
            "session_ttl must be at most 100 years, got {ttl:?}"
        );
        self.session_ttl = ttl;
        self
    }

    /// Sets how long a deletion record lives. Defaults to one hour.
    ///
    /// # Panics
    ///
    /// Panics if `ttl` is shorter than one millisecond or longer than
    /// [`MAX_TTL`].
    #[track_caller]
    pub fn tombstone_ttl(mut self, ttl: Duration) -> Self {
        assert!(ttl.as_millis() > 0, "tombstone_ttl must be at least 1 ms");
        assert!(
            ttl <= MAX_TTL,
            "tombstone_ttl must be at most 100 years, got {ttl:?}"
        );
        self.tombstone_ttl = ttl;
        self
    }

    /// Sets how long one connection attempt may take. Defaults to 2 seconds.
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// Sets how long Redis may take to respond to a command. Defaults to 2
    /// seconds.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Sets how often the pub/sub connection sends `PING`, to find a
    /// connection that died without closing. Defaults to 5 seconds.
    ///
    /// # Panics
    ///
    /// Panics if `interval` is zero.
    #[track_caller]
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        assert!(!interval.is_zero(), "ping_interval must not be zero");
        self.ping_interval = interval;
        self
    }

    /// Builds the backend. It connects when the jar first uses it.
    ///
    /// # Errors
    ///
    /// Returns [`RedisBackendError::InvalidSettings`] when the connection
    /// settings are invalid, such as a malformed URL.
    ///
    /// # Panics
    ///
    /// Panics when it is not called from within a Tokio runtime, which runs
    /// the connection manager's task.
    pub fn build(self) -> Result<RedisBackend, RedisBackendError> {
        let info = self
            .connection
            .map_err(RedisBackendError::InvalidSettings)?;
        let subscriber_info = info.clone().set_redis_settings(
            info.redis_settings()
                .clone()
                .set_protocol(ProtocolVersion::RESP3),
        );
        let commands = Client::open(info)?;
        let subscriber = Client::open(subscriber_info)?;
        // One attempt per command: the jar retries with its own backoff, so
        // that a command fails fast during an outage instead of waiting
        // through the manager's retries.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connection_timeout))
            .set_response_timeout(Some(self.response_timeout))
            .set_number_of_retries(0);
        let commands = ConnectionManager::new_lazy_with_config(commands, config)?;
        Ok(RedisBackend {
            commands,
            subscriber,
            layout: KeyLayout::new(self.prefix),
            session_ttl: self.session_ttl,
            tombstone_ttl: self.tombstone_ttl,
            connection_timeout: self.connection_timeout,
            response_timeout: self.response_timeout,
            ping_interval: self.ping_interval,
            warned_undecodable: Arc::new(AtomicBool::new(false)),
        })
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl RemoteBackend for RedisBackend {
    type Error = RedisBackendError;
    type Subscription = RedisSubscription;

    async fn load(&self) -> Result<Vec<RemoteChange>, RedisBackendError> {
        let mut connection = self.commands.clone();
        let pattern = self.layout.scan_pattern();
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<Vec<u8>>) = ::redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_BATCH)
                .query_async(&mut connection)
                .await?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        // SCAN may return a key more than once.
        keys.sort_unstable();
        keys.dedup();

        let mut changes = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(SCAN_BATCH) {
            let values: Vec<Option<Vec<u8>>> = ::redis::cmd("MGET")
                .arg(chunk)
                .query_async(&mut connection)
                .await?;
            for (key, value) in chunk.iter().zip(values) {
                // A key that expired since SCAN listed it has no value.
                let Some(value) = value else { continue };
                let source = String::from_utf8_lossy(key);
                match record::decode(&value) {
                    Ok(change) if self.layout.cookie_key(&change.key()).as_bytes() == key => {
                        changes.push(change);
                    }
                    Ok(_) => self.skip_undecodable(&source, &"the record is for another key"),
                    Err(error) => self.skip_undecodable(&source, &error),
                }
            }
        }
        Ok(changes)
    }

    async fn publish(&self, change: &RemoteChange) -> Result<(), RedisBackendError> {
        let key = self.layout.cookie_key(&change.key());
        let now_ms = unix_time_ms();
        let (as_deletion, expiry_option, expiry_ms) = match &change.change {
            CookieChange::Stored(cookie) => match cookie.expires_ms {
                None => (false, "PX", millis(self.session_ttl)),
                Some(expires) if expires > now_ms => (false, "PXAT", expires),
                // Expired before it went out: publish its deletion.
                Some(_) => (true, "PX", millis(self.tombstone_ttl)),
            },
            CookieChange::Removed(_) => (true, "PX", millis(self.tombstone_ttl)),
        };
        let json = record::encode(change, as_deletion).map_err(RedisBackendError::Encode)?;
        let stored: i64 = ::redis::cmd("EVAL")
            .arg(PUBLISH_SCRIPT)
            .arg(1)
            .arg(&key)
            .arg(change.version.unix_ms())
            .arg(change.version.counter())
            .arg(format!("{:016x}", change.version.origin()))
            .arg(&json)
            .arg(expiry_option)
            .arg(expiry_ms)
            .arg(self.layout.channel())
            .query_async(&mut self.commands.clone())
            .await?;
        if stored == 0 {
            tracing::debug!(
                redis.key = %key,
                version = %change.version,
                "Redis holds a newer version of the cookie; the change was not stored"
            );
        }
        Ok(())
    }

    async fn subscribe(&self) -> Result<RedisSubscription, RedisBackendError> {
        let (sender, pushes) = mpsc::unbounded_channel();
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connection_timeout))
            .set_response_timeout(Some(self.response_timeout))
            .set_push_sender(sender);
        let mut connection = self
            .subscriber
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        connection.subscribe(self.layout.channel()).await?;
        let start = tokio::time::Instant::now() + self.ping_interval;
        let mut ping = tokio::time::interval_at(start, self.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(RedisSubscription {
            connection,
            pushes,
            ping,
            layout: self.layout.clone(),
            warned_undecodable: Arc::clone(&self.warned_undecodable),
        })
    }
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The connection settings may hold a password, so they are left out.
        f.debug_struct("RedisBackend")
            .field("prefix", &self.layout.prefix())
            .field("session_ttl", &self.session_ttl)
            .field("tombstone_ttl", &self.tombstone_ttl)
            .field("ping_interval", &self.ping_interval)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for RedisBackendBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackendBuilder")
            .field("prefix", &self.prefix)
            .field("session_ttl", &self.session_ttl)
            .field("tombstone_ttl", &self.tombstone_ttl)
            .field("connection_timeout", &self.connection_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("ping_interval", &self.ping_interval)
            .finish_non_exhaustive()
    }
}

/// The changes published on a [`RedisBackend`]'s channel, received on a
/// dedicated pub/sub connection.
pub struct RedisSubscription {
    connection: MultiplexedConnection,
    pushes: mpsc::UnboundedReceiver<PushInfo>,
    ping: Interval,
    layout: KeyLayout,
    warned_undecodable: Arc<AtomicBool>,
}

impl RedisSubscription {
    /// Returns the change in a pushed message, or `None` for a push that is
    /// not a message on the channel or cannot be decoded.
    fn decode_push(&self, push: PushInfo) -> Option<RemoteChange> {
        let message = Msg::from_push_info(push)?;
        if message.get_channel_name().as_bytes() != self.layout.channel().as_bytes() {
            return None;
        }
        match record::decode(message.get_payload_bytes()) {
            Ok(change) => Some(change),
            Err(error) => {
                skip_undecodable(&self.warned_undecodable, self.layout.channel(), &error);
                None
            }
        }
    }
}

impl ChangeStream for RedisSubscription {
    type Error = RedisBackendError;

    async fn next_change(&mut self) -> Result<RemoteChange, RedisBackendError> {
        loop {
            tokio::select! {
                push = self.pushes.recv() => {
                    let Some(push) = push else {
                        return Err(RedisBackendError::SubscriptionClosed);
                    };
                    match push.kind {
                        PushKind::Disconnection => {
                            return Err(RedisBackendError::SubscriptionClosed);
                        }
                        PushKind::Message => {
                            if let Some(change) = self.decode_push(push) {
                                return Ok(change);
                            }
                        }
                        // Subscription confirmations and other pushes.
                        _ => {}
                    }
                }
                _ = self.ping.tick() => {
                    // The response timeout of the connection bounds the wait.
                    ::redis::cmd("PING")
                        .query_async::<Value>(&mut self.connection)
                        .await?;
                }
            }
        }
    }
}

impl fmt::Debug for RedisSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSubscription")
            .field("channel", &self.layout.channel())
            .finish_non_exhaustive()
    }
}
