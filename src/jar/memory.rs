//! The in-memory jar.

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::SystemTime,
};

use bytes::Bytes;
use http::HeaderValue;

#[cfg(feature = "public-suffix")]
use super::PublicSuffixList;
use super::{
    Cookie, CookieChange, CookieFilter, CookieJar, CookieKey, JarStats, RejectReason,
    cookie::system_time_to_ms,
    host::{
        BuildFxHasher, HostKey, HostQuery, default_path, domain_matches, is_valid_domain,
        parent_domains, path_matches,
    },
    parse::{MAX_ATTRIBUTE_VALUE_LEN, ParseError, parse_set_cookie},
};
use crate::RequestTarget;

/// Default for [`MemoryJarBuilder::max_cookie_size`], in bytes of name plus
/// value. RFC 6265 section 6.1 recommends at least 4096 bytes per cookie.
pub const DEFAULT_MAX_COOKIE_SIZE: usize = 4096;
/// Default for [`MemoryJarBuilder::max_cookies_per_domain`]. Chromium keeps
/// 180 cookies per domain.
pub const DEFAULT_MAX_COOKIES_PER_DOMAIN: usize = 180;
/// Default for [`MemoryJarBuilder::max_cookies`]. Chromium keeps 3300 in all.
pub const DEFAULT_MAX_COOKIES: usize = 3000;

/// Views cache pre-rendered headers for this many distinct cookie sets per
/// host. A host whose requests spread over more path-dependent sets renders
/// some headers on the request path.
const RENDERED_PER_VIEW: usize = 8;

/// A view can cache headers for at most this many candidate cookies, one bit
/// of a `u64` mask each.
const MAX_CACHED_CANDIDATES: usize = 64;

/// An in-memory cookie jar for one process, following RFC 6265.
///
/// Share it between clients by wrapping it in an [`Arc`]: `Arc<MemoryJar>`
/// is a [`CookieJar`] too, and that is what [`StickyLayer::new`] creates.
///
/// # Behaviour
///
/// - Cookies are kept with the scope RFC 6265 gives them: host-only or
///   `Domain`, path, `Secure` and expiry. `Max-Age` takes precedence over
///   `Expires`. `Max-Age<=0` or a past `Expires` deletes the stored cookie.
/// - A cookie replaces a stored one with the same name, domain, path and
///   host-only flag, and keeps the replaced cookie's creation time, so its
///   place in the `Cookie` header does not change.
/// - The `Cookie` header lists longer paths first, then older cookies first.
/// - Expired cookies are removed when a lookup or a store comes across them,
///   and are never sent.
/// - Memory is bounded: see [`MemoryJarBuilder`] for the limits and their
///   defaults. Past a limit, the least recently used cookie is evicted,
///   logged and counted.
///
/// # Inspection
///
/// [`cookies`](MemoryJar::cookies) lists what the jar contains as [`Cookie`]
/// values, whose `Debug` and `Display` output redacts the value.
/// [`insert`](MemoryJar::insert), [`remove`](MemoryJar::remove),
/// [`remove_domain`](MemoryJar::remove_domain), [`clear`](MemoryJar::clear)
/// and [`purge_expired`](MemoryJar::purge_expired) change it, and
/// [`stats`](MemoryJar::stats) returns its counters.
///
/// ```
/// use tower_sticky::{MemoryJar, jar::Cookie};
///
/// let jar = MemoryJar::new();
/// jar.insert(Cookie::new("SRV", "s1", "lb.example")).unwrap();
/// assert_eq!(jar.len(), 1);
/// assert_eq!(jar.cookies()[0].to_string(), "SRV=<redacted>; Host=lb.example; Path=/");
///
/// assert_eq!(jar.remove("lb.example", "/", "SRV"), 1);
/// assert!(jar.is_empty());
/// ```
///
/// # Cost
///
/// A lookup probes the request's host in a hash map and, while any `Domain`
/// cookie is stored, its parent domains. Its cost does not depend on how many
/// other hosts the jar holds. The `Cookie` header is rendered when cookies
/// are stored and cloned (a reference count) on each request.
///
/// [`StickyLayer::new`]: crate::StickyLayer::new
pub struct MemoryJar {
    // NOTE: one mutex guards the whole jar. A request through the layer
    // takes it to look up, and again to store when its response sets
    // cookies. Threads that share a jar whose cookie changes on every
    // response wait for each other, as the contention benchmark in
    // BENCHMARKS.md shows.
    state: Mutex<State>,
    config: Config,
}

/// Builds a [`MemoryJar`] with limits, a filter or a public suffix list.
///
/// ```
/// use tower_sticky::{MemoryJar, jar::CookieFilter};
///
/// let jar = MemoryJar::builder()
///     .max_cookie_size(1024)
///     .max_cookies_per_domain(20)
///     .max_cookies(200)
///     .filter(CookieFilter::load_balancers())
///     .build();
/// assert!(jar.is_empty());
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct MemoryJarBuilder {
    config: Config,
}

#[derive(Clone)]
struct Config {
    max_cookie_size: usize,
    max_cookies_per_domain: usize,
    max_cookies: usize,
    filter: Option<CookieFilter>,
    #[cfg(feature = "public-suffix")]
    public_suffixes: Option<Arc<PublicSuffixList>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_cookie_size: DEFAULT_MAX_COOKIE_SIZE,
            max_cookies_per_domain: DEFAULT_MAX_COOKIES_PER_DOMAIN,
            max_cookies: DEFAULT_MAX_COOKIES,
            filter: None,
            #[cfg(feature = "public-suffix")]
            public_suffixes: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Config");
        debug
            .field("max_cookie_size", &self.max_cookie_size)
            .field("max_cookies_per_domain", &self.max_cookies_per_domain)
            .field("max_cookies", &self.max_cookies)
            .field("filter", &self.filter);
        #[cfg(feature = "public-suffix")]
        debug.field("public_suffixes", &self.public_suffixes);
        debug.finish()
    }
}

impl Config {
    fn accepts_name(&self, name: &[u8]) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|filter| filter.accepts(name))
    }

    #[cfg(feature = "public-suffix")]
    fn is_public_suffix(&self, domain: &str) -> bool {
        self.public_suffixes
            .as_ref()
            .is_some_and(|list| list.is_public_suffix(&domain.to_ascii_lowercase()))
    }

    #[cfg(not(feature = "public-suffix"))]
    fn is_public_suffix(&self, _domain: &str) -> bool {
        false
    }
}

impl MemoryJarBuilder {
    /// Sets the maximum size of one cookie, counted as the bytes of its name
    /// plus its value. A larger cookie is rejected with
    /// [`RejectReason::TooLarge`]. Defaults to 4096, the minimum RFC 6265
    /// recommends a client support.
    pub fn max_cookie_size(mut self, bytes: usize) -> Self {
        self.config.max_cookie_size = bytes;
        self
    }

    /// Sets how many cookies one domain may hold. Storing one more evicts
    /// the least recently used cookie of that domain. Defaults to 180, as in
    /// Chromium.
    ///
    /// A host-only cookie counts against its host, a `Domain` cookie against
    /// its `Domain`.
    ///
    /// # Panics
    ///
    /// Panics if `count` is zero.
    #[track_caller]
    pub fn max_cookies_per_domain(mut self, count: usize) -> Self {
        assert!(count > 0, "max_cookies_per_domain must be at least 1");
        self.config.max_cookies_per_domain = count;
        self
    }

    /// Sets how many cookies the jar may hold in all. Storing one more
    /// evicts the least recently used cookie of the whole jar. Defaults to
    /// 3000.
    ///
    /// # Panics
    ///
    /// Panics if `count` is zero.
    #[track_caller]
    pub fn max_cookies(mut self, count: usize) -> Self {
        assert!(count > 0, "max_cookies must be at least 1");
        self.config.max_cookies = count;
        self
    }

    /// Keeps only the cookies that `filter` accepts. The others are neither
    /// stored nor replayed, and are counted as [`RejectReason::Filtered`].
    pub fn filter(mut self, filter: CookieFilter) -> Self {
        self.config.filter = Some(filter);
        self
    }

    /// Rejects `Domain` attributes that name a public suffix in `list`, with
    /// [`RejectReason::PublicSuffix`]. A `Domain` equal to the request host
    /// makes a host-only cookie instead (RFC 6265 section 5.3 step 5).
    #[cfg(feature = "public-suffix")]
    #[cfg_attr(docsrs, doc(cfg(feature = "public-suffix")))]
    pub fn public_suffix_list(mut self, list: Arc<PublicSuffixList>) -> Self {
        self.config.public_suffixes = Some(list);
        self
    }

    /// Builds the jar.
    pub fn build(self) -> MemoryJar {
        MemoryJar {
            state: Mutex::new(State::default()),
            config: self.config,
        }
    }
}

impl Default for MemoryJar {
    fn default() -> Self {
        MemoryJar::new()
    }
}

impl MemoryJar {
    /// Creates an empty jar with the default limits and no filter.
    pub fn new() -> Self {
        MemoryJar::builder().build()
    }

    /// Returns a builder to set the jar's limits, filter and public suffix
    /// list.
    pub fn builder() -> MemoryJarBuilder {
        MemoryJarBuilder {
            config: Config::default(),
        }
    }

    /// Returns the maximum size of one cookie, in bytes of name plus value.
    pub fn max_cookie_size(&self) -> usize {
        self.config.max_cookie_size
    }

    /// Returns how many cookies one domain may hold.
    pub fn max_cookies_per_domain(&self) -> usize {
        self.config.max_cookies_per_domain
    }

    /// Returns how many cookies the jar may hold in all.
    pub fn max_cookies(&self) -> usize {
        self.config.max_cookies
    }

    /// Returns a snapshot of the jar's counters.
    pub fn stats(&self) -> JarStats {
        let state = self.lock();
        let mut stats = state.counters;
        stats.cookies = state.cookie_count as u64;
        stats.bytes = state.bytes_held as u64;
        stats
    }

    /// Returns how many cookies the jar holds, expired ones not yet purged
    /// included.
    pub fn len(&self) -> usize {
        self.lock().cookie_count
    }

    /// Returns whether the jar contains no cookie.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lists the cookies the jar holds, expired ones not yet purged
    /// included, sorted by domain, then longest path first, then oldest
    /// first.
    pub fn cookies(&self) -> Vec<Cookie> {
        let state = self.lock();
        let mut listed: Vec<(u64, Cookie)> = state
            .nodes
            .iter()
            .flat_map(|(domain, node)| {
                node.cookies
                    .iter()
                    .map(move |cookie| (cookie.sequence, cookie.to_public(domain.as_str())))
            })
            .collect();
        listed.sort_by(|(a_sequence, a), (b_sequence, b)| {
            a.domain
                .cmp(&b.domain)
                .then(b.path.len().cmp(&a.path.len()))
                .then(a_sequence.cmp(b_sequence))
        });
        listed.into_iter().map(|(_, cookie)| cookie).collect()
    }

    /// Returns the cookies with this name, domain and path: at most two, a
    /// host-only one and a `Domain` one.
    pub fn get(&self, domain: &str, path: &str, name: &str) -> Vec<Cookie> {
        let state = self.lock();
        // The stored key is lowercase, whatever the caller's spelling.
        let Some((stored_domain, node)) = state.nodes.get_key_value(HostQuery::new(domain)) else {
            return Vec::new();
        };
        node.cookies
            .iter()
            .filter(|cookie| cookie.name() == name.as_bytes() && *cookie.path == *path.as_bytes())
            .map(|cookie| cookie.to_public(stored_domain.as_str()))
            .collect()
    }

    /// Stores a cookie, replacing one with the same name, domain, path and
    /// host-only flag, as a `Set-Cookie` would. Use it to start from a
    /// session obtained elsewhere.
    ///
    /// The jar's limits, filter and public suffix list apply. An expired
    /// cookie deletes its stored twin and is not stored.
    ///
    /// # Errors
    ///
    /// Returns why the cookie was not stored: an empty name
    /// ([`RejectReason::EmptyName`]), a byte the `Cookie` header cannot carry
    /// ([`RejectReason::InvalidCharacter`]), an invalid domain or path, a
    /// size over the limit, a filtered name or a public-suffix domain. The
    /// rejection is counted like one from a server.
    pub fn insert(&self, cookie: Cookie) -> Result<(), RejectReason> {
        self.insert_at(cookie, unix_time_ms())
    }

    pub(crate) fn insert_at(&self, cookie: Cookie, now_ms: i64) -> Result<(), RejectReason> {
        let mut state = self.lock();
        let result = state.insert_public(&self.config, cookie, now_ms);
        if let Err(reason) = result {
            state.counters.rejected[reason.index()] += 1;
        }
        result
    }

    /// Removes the cookies with this name, domain and path, host-only or
    /// not, and returns how many there were.
    pub fn remove(&self, domain: &str, path: &str, name: &str) -> usize {
        let mut state = self.lock();
        let mut removed = 0;
        while let Some(index) = state.nodes.get(HostQuery::new(domain)).and_then(|node| {
            node.cookies.iter().position(|cookie| {
                cookie.name() == name.as_bytes() && *cookie.path == *path.as_bytes()
            })
        }) {
            state.remove_at(domain, index);
            removed += 1;
        }
        removed
    }

    /// Removes every cookie whose domain is `domain` or one of its
    /// subdomains, and returns how many there were.
    pub fn remove_domain(&self, domain: &str) -> usize {
        let mut state = self.lock();
        let doomed: Vec<HostKey> = state
            .nodes
            .keys()
            .filter(|name| {
                let name = name.as_str();
                name.eq_ignore_ascii_case(domain)
                    || (name.len() > domain.len()
                        && name.as_bytes()[name.len() - domain.len() - 1] == b'.'
                        && name[name.len() - domain.len()..].eq_ignore_ascii_case(domain))
            })
            .cloned()
            .collect();
        let mut removed = 0;
        for name in doomed {
            while state
                .nodes
                .get(HostQuery::new(name.as_str()))
                .is_some_and(|node| !node.cookies.is_empty())
            {
                state.remove_at(name.as_str(), 0);
                removed += 1;
            }
        }
        removed
    }

    /// Removes every cookie whose expiry time has passed, and returns how
    /// many there were. Lookups and stores purge the expired cookies they
    /// come across, so calling this is only needed to free memory sooner.
    pub fn purge_expired(&self) -> usize {
        self.purge_expired_at(unix_time_ms())
    }

    pub(crate) fn purge_expired_at(&self, now_ms: i64) -> usize {
        let mut state = self.lock();
        let before = state.cookie_count;
        state.purge_all_expired(now_ms);
        before - state.cookie_count
    }

    /// Removes every cookie. The counters keep their values.
    pub fn clear(&self) {
        let mut state = self.lock();
        state.nodes.clear();
        state.cookie_count = 0;
        state.domain_cookie_count = 0;
        state.bytes_held = 0;
        state.domain_generation += 1;
    }

    /// Stores `Set-Cookie` values like [`CookieJar::store`] and returns the
    /// stores and deletions they made, for a mirrored jar to publish.
    /// Evictions and expiry are local and are not returned.
    #[cfg(feature = "mirror")]
    pub(crate) fn store_recording(
        &self,
        target: &RequestTarget<'_>,
        set_cookie: &mut dyn Iterator<Item = &HeaderValue>,
        now_ms: i64,
    ) -> Vec<CookieChange> {
        let mut state = self.lock();
        state.recording = Some(Vec::new());
        state.store_all(&self.config, target, set_cookie, now_ms);
        state.recording.take().unwrap_or_default()
    }

    /// Applies a change that another process published. Returns an error
    /// when this jar's checks reject the stored cookie.
    #[cfg(feature = "mirror")]
    pub(crate) fn apply_change(
        &self,
        change: CookieChange,
        now_ms: i64,
    ) -> Result<(), RejectReason> {
        match change {
            CookieChange::Stored(cookie) => self.insert_at(cookie, now_ms),
            CookieChange::Removed(key) => {
                self.remove_key(&key);
                Ok(())
            }
        }
    }

    /// Removes the cookie with exactly this key and returns whether it was
    /// there.
    pub fn remove_key(&self, key: &CookieKey) -> bool {
        let mut state = self.lock();
        let index = state
            .nodes
            .get(HostQuery::new(&key.domain))
            .and_then(|node| {
                node.cookies.iter().position(|cookie| {
                    cookie.name() == key.name.as_slice()
                        && *cookie.path == *key.path
                        && cookie.host_only == key.host_only
                })
            });
        match index {
            Some(index) => {
                state.remove_at(&key.domain, index);
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while the lock is held, and a jar that did should
        // keep serving requests rather than fail each one.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores `Set-Cookie` values as if received at `now_ms`.
    pub(crate) fn store_at(
        &self,
        target: &RequestTarget<'_>,
        set_cookie: &mut dyn Iterator<Item = &HeaderValue>,
        now_ms: i64,
    ) {
        self.lock()
            .store_all(&self.config, target, set_cookie, now_ms);
    }

    /// Returns the `Cookie` header for `target`, reading the clock through
    /// `now_ms` only when a candidate cookie has an expiry time.
    pub(crate) fn cookie_header_at(
        &self,
        target: &RequestTarget<'_>,
        now_ms: &mut dyn FnMut() -> i64,
    ) -> Option<HeaderValue> {
        self.lock().cookie_header(target, now_ms)
    }
}

impl CookieJar for MemoryJar {
    fn cookie_header(&self, target: &RequestTarget<'_>) -> Option<HeaderValue> {
        self.cookie_header_at(target, &mut unix_time_ms)
    }

    fn store(
        &self,
        target: &RequestTarget<'_>,
        set_cookie: &mut dyn Iterator<Item = &HeaderValue>,
    ) {
        self.store_at(target, set_cookie, unix_time_ms());
    }
}

impl fmt::Debug for MemoryJar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Cookie values are credentials, so only counts are shown.
        let state = self.lock();
        f.debug_struct("MemoryJar")
            .field("cookies", &state.cookie_count)
            .field(
                "domains",
                &state
                    .nodes
                    .values()
                    .filter(|n| !n.cookies.is_empty())
                    .count(),
            )
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Returns the current time in milliseconds since the Unix epoch.
pub(crate) fn unix_time_ms() -> i64 {
    system_time_to_ms(SystemTime::now())
}

/// One stored cookie.
///
/// Views share it through an [`Arc`]. A replacement overwrites it in place
/// only while its node holds the sole reference, so no view observes the
/// change. Otherwise the replacement is a new value.
pub(crate) struct StoredCookie {
    /// `name=value`, exactly as the header carries it.
    pair: Box<[u8]>,
    name_len: usize,
    path: Box<[u8]>,
    host_only: bool,
    secure: bool,
    http_only: bool,
    /// `None` for a session cookie.
    expires_ms: Option<i64>,
    created_ms: i64,
    /// Creation order, kept across replacements, for the header order.
    sequence: u64,
    /// Tick of the last store or replay, for least-recently-used eviction.
    last_access: AtomicU64,
}

impl StoredCookie {
    fn name(&self) -> &[u8] {
        &self.pair[..self.name_len]
    }

    fn is_expired(&self, now_ms: i64) -> bool {
        self.expires_ms.is_some_and(|expires| expires <= now_ms)
    }

    fn last_access(&self) -> u64 {
        self.last_access.load(Ordering::Relaxed)
    }

    /// Bytes this cookie counts against the jar's memory.
    fn size(&self) -> usize {
        self.pair.len() + self.path.len()
    }

    /// Creates the stored form of `new`.
    fn new(new: &NewCookie<'_>, sequence: u64, created_ms: i64, tick: u64) -> Self {
        StoredCookie {
            pair: join_pair(new.name, new.value),
            name_len: new.name.len(),
            path: new.path.into(),
            host_only: new.host_only,
            secure: new.secure,
            http_only: new.http_only,
            expires_ms: new.expires_ms,
            created_ms,
            sequence,
            last_access: AtomicU64::new(tick),
        }
    }

    /// Returns whether `new` replaces this cookie: same name, path and
    /// host-only flag, in the same domain.
    fn is_replaced_by(&self, new: &NewCookie<'_>) -> bool {
        self.name() == new.name && *self.path == *new.path && self.host_only == new.host_only
    }

    /// Takes the value and attributes of `new`, a cookie that replaces this
    /// one, and keeps the creation time and order. Reuses the `name=value`
    /// buffer when the length is unchanged, as with a balancer that rotates
    /// a fixed-length value.
    fn replace_with(&mut self, new: &NewCookie<'_>, tick: u64) {
        let value_start = new.name.len() + 1;
        if self.pair.len() == value_start + new.value.len() {
            self.pair[value_start..].copy_from_slice(new.value);
        } else {
            self.pair = join_pair(new.name, new.value);
        }
        self.secure = new.secure;
        self.http_only = new.http_only;
        self.expires_ms = new.expires_ms;
        *self.last_access.get_mut() = tick;
    }

    fn to_public(&self, domain: &str) -> Cookie {
        Cookie {
            name: self.name().into(),
            value: self.pair[self.name_len + 1..].into(),
            domain: domain.into(),
            host_only: self.host_only,
            path: self.path.clone(),
            secure: self.secure,
            http_only: self.http_only,
            expires_ms: self.expires_ms,
            created_ms: self.created_ms,
        }
    }
}

/// Returns `name=value` as one buffer.
fn join_pair(name: &[u8], value: &[u8]) -> Box<[u8]> {
    let mut pair = Vec::with_capacity(name.len() + 1 + value.len());
    pair.extend_from_slice(name);
    pair.push(b'=');
    pair.extend_from_slice(value);
    pair.into_boxed_slice()
}

/// A cookie ready to be stored, borrowed from a header or a [`Cookie`].
struct NewCookie<'a> {
    name: &'a [u8],
    value: &'a [u8],
    domain: &'a str,
    host_only: bool,
    path: &'a [u8],
    secure: bool,
    http_only: bool,
    expires_ms: Option<i64>,
    /// The creation time to keep, for a cookie loaded from elsewhere.
    created_ms: Option<i64>,
}

/// The cookies whose domain is one host or domain name, and the view of
/// requests to that host.
#[derive(Default)]
struct Node {
    cookies: Vec<Arc<StoredCookie>>,
    /// Changes whenever `cookies` changes.
    version: u64,
    view: Option<View>,
}

/// Counter values for a cookie that [`State::put`] stores.
struct Stamp {
    tick: u64,
    version: u64,
    /// Creation order, used only by a cookie that replaces none.
    sequence: u64,
    /// Creation time, used only by a cookie that replaces none.
    created_ms: i64,
}

/// Outcome of [`Node::put`], for [`State::put`] to account for.
enum Put {
    Unchanged,
    /// The cookie at this index is to be deleted.
    Delete(usize),
    Replaced {
        index: usize,
        old_size: usize,
        size: usize,
    },
    Added {
        index: usize,
        size: usize,
    },
}

impl Node {
    fn position_of(&self, new: &NewCookie<'_>) -> Option<usize> {
        self.cookies
            .iter()
            .position(|cookie| cookie.is_replaced_by(new))
    }

    /// Stores `new`, replacing its twin, and returns what changed.
    fn put(&mut self, new: &NewCookie<'_>, stamp: &Stamp) -> Put {
        self.version = stamp.version;
        match self.position_of(new) {
            Some(index) => {
                // The stale view of this host holds the other references to
                // a host-only cookie. Dropping them, while keeping the
                // view's buffers for its rebuild, lets the replacement reuse
                // the stored cookie's memory.
                if let Some(view) = self.view.as_mut() {
                    view.candidates.clear();
                }
                let slot = &mut self.cookies[index];
                let old_size = slot.size();
                match Arc::get_mut(slot) {
                    Some(stored) => stored.replace_with(new, stamp.tick),
                    None => {
                        let replacement =
                            StoredCookie::new(new, slot.sequence, slot.created_ms, stamp.tick);
                        *slot = Arc::new(replacement);
                    }
                }
                Put::Replaced {
                    index,
                    old_size,
                    size: slot.size(),
                }
            }
            None => {
                let cookie = StoredCookie::new(new, stamp.sequence, stamp.created_ms, stamp.tick);
                let size = cookie.size();
                self.cookies.push(Arc::new(cookie));
                Put::Added {
                    index: self.cookies.len() - 1,
                    size,
                }
            }
        }
    }

    /// Empties the view, keeping its buffers for a rebuild.
    fn take_view_buffers(&mut self) -> (Vec<Arc<StoredCookie>>, Vec<(u64, HeaderValue)>) {
        match self.view.take() {
            Some(stale) => {
                let (mut candidates, mut rendered) = (stale.candidates, stale.rendered);
                candidates.clear();
                rendered.clear();
                (candidates, rendered)
            }
            None => (Vec::new(), Vec::new()),
        }
    }

    /// Sorts `candidates` for the header, installs them as this node's
    /// view, and caches the header for `prepare_for`.
    fn install_view(
        &mut self,
        mut candidates: Vec<Arc<StoredCookie>>,
        rendered: Vec<(u64, HeaderValue)>,
        domain_generation: u64,
        prepare_for: Option<&RequestTarget<'_>>,
    ) {
        candidates.sort_by(|a, b| {
            b.path
                .len()
                .cmp(&a.path.len())
                .then(a.sequence.cmp(&b.sequence))
        });
        let min_expires_ms = candidates
            .iter()
            .filter_map(|cookie| cookie.expires_ms)
            .min();
        let view = self.view.insert(View {
            node_version: self.version,
            domain_generation,
            candidates,
            min_expires_ms,
            rendered,
        });
        if let Some(target) = prepare_for
            && let Some(mask) = view.mask(target).filter(|&mask| mask != 0)
        {
            view.header_for_mask(mask);
        }
    }
}

/// Every cookie a request to one host could receive, sorted for the header,
/// with the headers already rendered for the cookie sets seen so far.
struct View {
    node_version: u64,
    domain_generation: u64,
    candidates: Vec<Arc<StoredCookie>>,
    min_expires_ms: Option<i64>,
    /// Headers by the mask of candidates they contain.
    rendered: Vec<(u64, HeaderValue)>,
}

impl View {
    /// Returns the mask of candidates that a request to `target` receives,
    /// or `None` when there are too many candidates for a mask.
    fn mask(&self, target: &RequestTarget<'_>) -> Option<u64> {
        if self.candidates.len() > MAX_CACHED_CANDIDATES {
            return None;
        }
        let path = target.path().as_bytes();
        let secure = target.is_secure();
        let mut mask = 0u64;
        for (index, cookie) in self.candidates.iter().enumerate() {
            if (secure || !cookie.secure) && path_matches(path, &cookie.path) {
                mask |= 1 << index;
            }
        }
        Some(mask)
    }

    /// Returns the header for `mask`, rendering and caching it on a miss.
    fn header_for_mask(&mut self, mask: u64) -> HeaderValue {
        if let Some((_, value)) = self.rendered.iter().find(|(cached, _)| *cached == mask) {
            return value.clone();
        }
        let value = render(
            self.candidates
                .iter()
                .enumerate()
                .filter(|(index, _)| mask & (1 << index) != 0)
                .map(|(_, cookie)| &**cookie),
        );
        if self.rendered.len() >= RENDERED_PER_VIEW {
            self.rendered.remove(0);
        }
        self.rendered.push((mask, value.clone()));
        value
    }

    /// Returns the header for `target` and marks its cookies as used.
    fn header(&mut self, target: &RequestTarget<'_>, tick: u64) -> Option<HeaderValue> {
        let Some(mask) = self.mask(target) else {
            return self.render_uncached(target, tick);
        };
        if mask == 0 {
            return None;
        }
        for (index, cookie) in self.candidates.iter().enumerate() {
            if mask & (1 << index) != 0 {
                cookie.last_access.store(tick, Ordering::Relaxed);
            }
        }
        Some(self.header_for_mask(mask))
    }

    // NOTE: a host with more than 64 candidate cookies renders its header on
    // every request, which allocates.
    fn render_uncached(&self, target: &RequestTarget<'_>, tick: u64) -> Option<HeaderValue> {
        let path = target.path().as_bytes();
        let secure = target.is_secure();
        let matching = self
            .candidates
            .iter()
            .filter(|cookie| (secure || !cookie.secure) && path_matches(path, &cookie.path))
            .map(|cookie| &**cookie);
        let mut used = 0;
        for cookie in matching.clone() {
            cookie.last_access.store(tick, Ordering::Relaxed);
            used += 1;
        }
        if used == 0 {
            return None;
        }
        Some(render(matching))
    }
}

/// Joins cookies into one `Cookie` header value, marked sensitive.
fn render<'a>(cookies: impl Iterator<Item = &'a StoredCookie> + Clone) -> HeaderValue {
    let joined_len = cookies
        .clone()
        .map(|cookie| cookie.pair.len() + 2)
        .sum::<usize>();
    let mut buffer = Vec::with_capacity(joined_len.saturating_sub(2));
    for cookie in cookies {
        if !buffer.is_empty() {
            buffer.extend_from_slice(b"; ");
        }
        buffer.extend_from_slice(&cookie.pair);
    }
    let bytes = Bytes::from(buffer);
    // Cloning a `Bytes` built from a `Vec` moves it into shared storage once,
    // which allocates. Doing it here keeps that allocation off the request
    // path, where the cached value is cloned.
    let _ = bytes.clone();
    // Stored names and values hold no control characters, and `"; "` is
    // valid in a header value, so this never fails.
    let mut value =
        HeaderValue::from_maybe_shared(bytes).unwrap_or_else(|_| HeaderValue::from_static(""));
    value.set_sensitive(true);
    value
}

#[derive(Default)]
struct State {
    nodes: HashMap<HostKey, Node, BuildFxHasher>,
    cookie_count: usize,
    domain_cookie_count: usize,
    bytes_held: usize,
    /// Changes whenever a `Domain` cookie changes anywhere, because that can
    /// change the view of any host below it.
    domain_generation: u64,
    /// Source of node versions.
    version_counter: u64,
    next_sequence: u64,
    tick: u64,
    counters: JarStats,
    /// Whether a warning was logged for each rejection reason. Later
    /// rejections for the same reason log at debug level.
    warned: [bool; RejectReason::ALL.len()],
    warned_eviction: bool,
    /// Collects the changes that stores and deletions make, while a mirrored
    /// jar requests them.
    recording: Option<Vec<CookieChange>>,
}

impl State {
    fn store_all(
        &mut self,
        config: &Config,
        target: &RequestTarget<'_>,
        set_cookie: &mut dyn Iterator<Item = &HeaderValue>,
        now_ms: i64,
    ) {
        let mut changed = false;
        for value in set_cookie {
            changed |= self.store_one(config, target, value.as_bytes(), now_ms);
        }
        if changed {
            // Render the header for the host that set the cookies now, so
            // that its next request only clones it.
            self.rebuild_view(target.host(), Some(target));
        }
    }

    fn next_version(&mut self) -> u64 {
        self.version_counter += 1;
        self.version_counter
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    fn cookie_header(
        &mut self,
        target: &RequestTarget<'_>,
        now_ms: &mut dyn FnMut() -> i64,
    ) -> Option<HeaderValue> {
        if self.cookie_count == 0 {
            return None;
        }
        let host = target.host();
        let tick = self.next_tick();
        let generation = self.domain_generation;

        // Fast path: a current view with nothing expired.
        match self.nodes.get_mut(HostQuery::new(host)) {
            Some(node) => {
                let version = node.version;
                if let Some(view) = node.view.as_mut() {
                    let current =
                        view.node_version == version && view.domain_generation == generation;
                    if current && view.min_expires_ms.is_none_or(|min| now_ms() < min) {
                        let header = view.header(target, tick);
                        self.counters.replayed += u64::from(header.is_some());
                        return header;
                    }
                }
            }
            None if self.domain_cookie_count == 0 => return None,
            None => {}
        }

        self.rebuild_view(host, None);
        let needs_purge = self
            .view(host)
            .and_then(|view| view.min_expires_ms)
            .is_some_and(|min| now_ms() >= min);
        if needs_purge {
            self.purge_expired_for(host, now_ms());
            self.rebuild_view(host, None);
        }
        let header = self.view_mut(host)?.header(target, tick);
        self.counters.replayed += u64::from(header.is_some());
        header
    }

    fn view(&self, host: &str) -> Option<&View> {
        self.nodes.get(HostQuery::new(host))?.view.as_ref()
    }

    fn view_mut(&mut self, host: &str) -> Option<&mut View> {
        self.nodes.get_mut(HostQuery::new(host))?.view.as_mut()
    }

    /// Collects the candidates of `host` into a fresh view, reusing the
    /// buffers of the stale one, and caches the header for `prepare_for`.
    fn rebuild_view(&mut self, host: &str, prepare_for: Option<&RequestTarget<'_>>) {
        let generation = self.domain_generation;
        let with_parents = self.domain_cookie_count > 0;
        let (mut candidates, rendered) = match self.nodes.get_mut(HostQuery::new(host)) {
            Some(node) => {
                let (mut candidates, rendered) = node.take_view_buffers();
                candidates.extend(node.cookies.iter().cloned());
                if !with_parents {
                    node.install_view(candidates, rendered, generation, prepare_for);
                    return;
                }
                (candidates, rendered)
            }
            None => {
                self.drop_idle_views();
                self.nodes.insert(HostKey::new(host), Node::default());
                (Vec::new(), Vec::new())
            }
        };
        if with_parents {
            for parent in parent_domains(host) {
                if let Some(node) = self.nodes.get(HostQuery::new(parent)) {
                    let domain_cookies = node.cookies.iter().filter(|cookie| !cookie.host_only);
                    candidates.extend(domain_cookies.cloned());
                }
            }
        }
        let node = self
            .nodes
            .get_mut(HostQuery::new(host))
            .expect("node inserted above");
        node.install_view(candidates, rendered, generation, prepare_for);
    }

    /// Drops nodes that hold only a view, once there are many of them, so
    /// that requests to ever new hosts cannot grow the jar.
    fn drop_idle_views(&mut self) {
        const MAX_IDLE_NODES: usize = 4096;
        if self.nodes.len() >= self.cookie_count + MAX_IDLE_NODES {
            self.nodes.retain(|_, node| !node.cookies.is_empty());
        }
    }

    /// Removes the expired cookies of `host` and of its parent domains.
    fn purge_expired_for(&mut self, host: &str, now_ms: i64) {
        let parents: Vec<&str> = parent_domains(host).collect();
        for name in std::iter::once(host).chain(parents) {
            self.purge_expired_in(name, now_ms);
        }
    }

    fn purge_expired_in(&mut self, name: &str, now_ms: i64) {
        let Some(node) = self.nodes.get_mut(HostQuery::new(name)) else {
            return;
        };
        let mut purged = Purged::default();
        purged.purge(node, now_ms, &mut self.version_counter);
        self.account_purged(&purged);
    }

    /// Updates the jar's counts after expired cookies were removed.
    fn account_purged(&mut self, purged: &Purged) {
        self.cookie_count -= purged.cookies;
        self.domain_cookie_count -= purged.domain_cookies;
        self.bytes_held -= purged.bytes;
        if purged.domain_cookies > 0 {
            self.domain_generation += 1;
        }
        self.counters.expired += purged.cookies as u64;
    }

    /// Applies one `Set-Cookie` value (RFC 6265 section 5.3). Returns whether
    /// the jar changed.
    fn store_one(
        &mut self,
        config: &Config,
        target: &RequestTarget<'_>,
        header: &[u8],
        now_ms: i64,
    ) -> bool {
        let host = target.host();
        let parsed = match parse_set_cookie(header) {
            Ok(parsed) => parsed,
            Err(error) => {
                let reason = match error {
                    ParseError::MissingEquals => RejectReason::MissingEquals,
                    ParseError::EmptyName => RejectReason::EmptyName,
                    ParseError::InvalidCharacter => RejectReason::InvalidCharacter,
                };
                // Without a valid name-value pair, any part of the header
                // could be a secret, so nothing of it is logged.
                self.reject(reason, None, host, &error);
                return false;
            }
        };

        let size = parsed.name.len() + parsed.value.len();
        if size > config.max_cookie_size {
            let detail = format!(
                "{size} bytes is over the limit of {}",
                config.max_cookie_size
            );
            self.reject(RejectReason::TooLarge, Some(parsed.name), host, &detail);
            return false;
        }
        if !config.accepts_name(parsed.name) {
            self.reject(
                RejectReason::Filtered,
                Some(parsed.name),
                host,
                &RejectReason::Filtered,
            );
            return false;
        }

        let (domain, host_only) = match parsed.domain {
            Some(domain) if !domain.is_empty() => {
                let domain = std::str::from_utf8(domain).unwrap_or_default();
                if config.is_public_suffix(domain) {
                    if domain.eq_ignore_ascii_case(host) {
                        // RFC 6265 section 5.3 step 5: a public suffix that is
                        // the request host itself makes a host-only cookie.
                        (host, true)
                    } else {
                        let reason = RejectReason::PublicSuffix;
                        self.reject(reason, Some(parsed.name), host, &reason);
                        return false;
                    }
                } else if !domain.is_empty() && domain_matches(host, domain) {
                    (domain, false)
                } else {
                    let reason = RejectReason::DomainMismatch;
                    self.reject(reason, Some(parsed.name), host, &reason);
                    return false;
                }
            }
            _ => (host, true),
        };

        let expires_ms = match parsed.max_age {
            Some(seconds) if seconds <= 0 => Some(i64::MIN),
            Some(seconds) => Some(now_ms.saturating_add(seconds.saturating_mul(1000))),
            None => parsed.expires_ms,
        };
        let cookie = NewCookie {
            name: parsed.name,
            value: parsed.value,
            domain,
            host_only,
            path: parsed
                .path
                .unwrap_or_else(|| default_path(target.path()).as_bytes()),
            secure: parsed.secure,
            http_only: parsed.http_only,
            expires_ms,
            created_ms: None,
        };
        self.put(config, cookie, now_ms)
    }

    /// Checks a cookie from the public API and stores it.
    fn insert_public(
        &mut self,
        config: &Config,
        cookie: Cookie,
        now_ms: i64,
    ) -> Result<(), RejectReason> {
        let trimmed = |bytes: &[u8]| bytes.trim_ascii() == bytes;
        let header_safe = |bytes: &[u8]| {
            !bytes
                .iter()
                .any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f || b == b';')
        };

        // The checks the parser makes on a `Set-Cookie` header.
        if cookie.name.is_empty() {
            return Err(RejectReason::EmptyName);
        }
        if !header_safe(&cookie.name)
            || !header_safe(&cookie.value)
            || cookie.name.contains(&b'=')
            || !trimmed(&cookie.name)
            || !trimmed(&cookie.value)
        {
            return Err(RejectReason::InvalidCharacter);
        }
        if !is_valid_domain(&cookie.domain) {
            return Err(RejectReason::InvalidDomain);
        }
        if cookie.path.first() != Some(&b'/')
            || cookie.path.len() > MAX_ATTRIBUTE_VALUE_LEN
            || !header_safe(&cookie.path)
        {
            return Err(RejectReason::InvalidPath);
        }

        // The jar's own rules, as for a cookie from a server.
        if cookie.name.len() + cookie.value.len() > config.max_cookie_size {
            return Err(RejectReason::TooLarge);
        }
        if !config.accepts_name(&cookie.name) {
            return Err(RejectReason::Filtered);
        }
        if !cookie.host_only && config.is_public_suffix(&cookie.domain) {
            return Err(RejectReason::PublicSuffix);
        }

        self.put(
            config,
            NewCookie {
                name: &cookie.name,
                value: &cookie.value,
                domain: &cookie.domain,
                host_only: cookie.host_only,
                path: &cookie.path,
                secure: cookie.secure,
                http_only: cookie.http_only,
                expires_ms: cookie.expires_ms,
                created_ms: Some(cookie.created_ms),
            },
            now_ms,
        );
        Ok(())
    }

    /// Stores, replaces or, for an expired cookie, deletes. Returns whether
    /// the jar changed.
    fn put(&mut self, config: &Config, new: NewCookie<'_>, now_ms: i64) -> bool {
        let domain = new.domain;
        // The counters advance only if the cookie is stored.
        let stamp = Stamp {
            tick: self.tick + 1,
            version: self.version_counter + 1,
            sequence: self.next_sequence + 1,
            created_ms: new.created_ms.unwrap_or(now_ms),
        };
        let expired = new.expires_ms.is_some_and(|expires| expires <= now_ms);

        // A cookie that arrives expired deletes its stored twin and is not
        // stored itself.
        let outcome = match self.nodes.get_mut(HostQuery::new(domain)) {
            Some(node) if expired => node.position_of(&new).map_or(Put::Unchanged, Put::Delete),
            Some(node) => node.put(&new, &stamp),
            None if expired => Put::Unchanged,
            None => {
                let mut node = Node::default();
                let outcome = node.put(&new, &stamp);
                self.nodes.insert(HostKey::new(domain), node);
                outcome
            }
        };

        let (added, index) = match outcome {
            Put::Unchanged => return false,
            Put::Delete(index) => {
                let removed = self.remove_at(domain, index);
                self.counters.deleted += 1;
                if let Some(changes) = self.recording.as_mut() {
                    changes.push(CookieChange::Removed(CookieKey {
                        domain: domain.to_ascii_lowercase(),
                        host_only: removed.host_only,
                        path: removed.path.to_vec(),
                        name: removed.name().to_vec(),
                    }));
                }
                return true;
            }
            Put::Replaced {
                index,
                old_size,
                size,
            } => {
                self.bytes_held = self.bytes_held - old_size + size;
                self.counters.replaced += 1;
                (false, index)
            }
            Put::Added { index, size } => {
                self.next_sequence = stamp.sequence;
                self.cookie_count += 1;
                self.bytes_held += size;
                self.counters.stored += 1;
                if !new.host_only {
                    self.domain_cookie_count += 1;
                }
                (true, index)
            }
        };
        self.tick = stamp.tick;
        self.version_counter = stamp.version;
        if let Some(changes) = self.recording.as_mut() {
            let stored = &self.nodes[HostQuery::new(domain)].cookies[index];
            changes.push(CookieChange::Stored(
                stored.to_public(&domain.to_ascii_lowercase()),
            ));
        }
        if !new.host_only {
            self.domain_generation += 1;
        }

        if added {
            self.enforce_limits(config, domain, now_ms);
        }
        true
    }

    fn remove_at(&mut self, domain: &str, index: usize) -> Arc<StoredCookie> {
        let version = self.next_version();
        let node = self
            .nodes
            .get_mut(HostQuery::new(domain))
            .expect("caller found the cookie in this node");
        let cookie = node.cookies.remove(index);
        node.version = version;
        self.cookie_count -= 1;
        self.bytes_held -= cookie.size();
        if !cookie.host_only {
            self.domain_cookie_count -= 1;
            self.domain_generation += 1;
        }
        cookie
    }

    /// Evicts least recently used cookies until `domain` and the whole jar
    /// are within their limits. Expired cookies go first.
    fn enforce_limits(&mut self, config: &Config, domain: &str, now_ms: i64) {
        let over_domain = self
            .nodes
            .get(HostQuery::new(domain))
            .is_some_and(|node| node.cookies.len() > config.max_cookies_per_domain);
        if over_domain {
            self.purge_expired_in(domain, now_ms);
        }
        while let Some(node) = self.nodes.get(HostQuery::new(domain)) {
            if node.cookies.len() <= config.max_cookies_per_domain {
                break;
            }
            let index = least_recently_used(&node.cookies).expect("node is over its limit");
            let cookie = self.remove_at(domain, index);
            self.note_eviction(&cookie, domain, "the domain is over its cookie limit");
        }

        if self.cookie_count > config.max_cookies {
            self.purge_all_expired(now_ms);
        }
        while self.cookie_count > config.max_cookies {
            // One scan of every cookie, which allocates only the winner's key.
            let oldest = self
                .nodes
                .iter()
                .filter_map(|(name, node)| {
                    let index = least_recently_used(&node.cookies)?;
                    let cookie = &node.cookies[index];
                    Some(((cookie.last_access(), cookie.sequence), name, index))
                })
                .min_by_key(|(rank, _, _)| *rank)
                .map(|(_, name, index)| (name.clone(), index));
            let Some((name, index)) = oldest else {
                break;
            };
            let cookie = self.remove_at(name.as_str(), index);
            self.note_eviction(&cookie, name.as_str(), "the jar is over its cookie limit");
        }
    }

    /// Removes every expired cookie in one pass over the jar.
    fn purge_all_expired(&mut self, now_ms: i64) {
        let mut purged = Purged::default();
        for node in self.nodes.values_mut() {
            purged.purge(node, now_ms, &mut self.version_counter);
        }
        self.account_purged(&purged);
    }

    fn note_eviction(&mut self, cookie: &StoredCookie, domain: &str, why: &str) {
        self.counters.evicted += 1;
        let name = LogName(cookie.name());
        if std::mem::replace(&mut self.warned_eviction, true) {
            tracing::debug!(cookie.name = %name, cookie.domain = domain, "evicted cookie: {why}");
        } else {
            tracing::warn!(
                cookie.name = %name,
                cookie.domain = domain,
                "evicted cookie: {why}; later evictions log at debug level"
            );
        }
    }

    /// Counts and logs a rejected `Set-Cookie`. The first rejection for each
    /// reason logs a warning, later ones log at debug level. Filtered cookies
    /// are the user's choice, so they always log at debug level.
    fn reject(
        &mut self,
        reason: RejectReason,
        name: Option<&[u8]>,
        host: &str,
        detail: &dyn fmt::Display,
    ) {
        self.counters.rejected[reason.index()] += 1;
        let name = name.map(LogName);
        let name = name.as_ref().map(tracing::field::display);
        let first = !std::mem::replace(&mut self.warned[reason.index()], true);
        if first && reason != RejectReason::Filtered {
            tracing::warn!(
                cookie.name = name,
                request.host = host,
                reason = reason.as_str(),
                "skipped Set-Cookie: {detail}; later ones for this reason log at debug level"
            );
        } else {
            tracing::debug!(
                cookie.name = name,
                request.host = host,
                reason = reason.as_str(),
                "skipped Set-Cookie: {detail}"
            );
        }
    }
}

/// Totals of a purge of expired cookies, to update the jar's counts.
#[derive(Default)]
struct Purged {
    cookies: usize,
    domain_cookies: usize,
    bytes: usize,
}

impl Purged {
    /// Removes the expired cookies of `node`, adding them to the totals, and
    /// gives the node a new version if any went.
    fn purge(&mut self, node: &mut Node, now_ms: i64, version_counter: &mut u64) {
        let before = node.cookies.len();
        node.cookies.retain(|cookie| {
            let keep = !cookie.is_expired(now_ms);
            if !keep {
                self.bytes += cookie.size();
                self.domain_cookies += usize::from(!cookie.host_only);
            }
            keep
        });
        let removed = before - node.cookies.len();
        if removed > 0 {
            self.cookies += removed;
            *version_counter += 1;
            node.version = *version_counter;
        }
    }
}

fn least_recently_used(cookies: &[Arc<StoredCookie>]) -> Option<usize> {
    cookies
        .iter()
        .enumerate()
        .min_by_key(|(_, cookie)| (cookie.last_access(), cookie.sequence))
        .map(|(index, _)| index)
}

/// A cookie name for logs: escaped, and cut after 64 bytes so a hostile
/// server cannot flood the log through it.
struct LogName<'a>(&'a [u8]);

impl fmt::Display for LogName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 64;
        let shown = &self.0[..self.0.len().min(MAX)];
        write!(f, "{}", shown.escape_ascii())?;
        if self.0.len() > MAX {
            write!(f, "... ({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn target(url_host: &str, path: &str, secure: bool) -> RequestTarget<'static> {
        let host: &'static str = Box::leak(url_host.to_owned().into_boxed_str());
        let path: &'static str = Box::leak(path.to_owned().into_boxed_str());
        RequestTarget::new(host, path, secure)
    }

    fn store(jar: &MemoryJar, target: &RequestTarget<'_>, lines: &[&str], now_ms: i64) {
        let values: Vec<HeaderValue> = lines
            .iter()
            .map(|line| HeaderValue::from_bytes(line.as_bytes()).expect("valid header"))
            .collect();
        jar.store_at(target, &mut values.iter(), now_ms);
    }

    fn header(jar: &MemoryJar, target: &RequestTarget<'_>, now_ms: i64) -> Option<String> {
        jar.cookie_header_at(target, &mut || now_ms)
            .map(|value| String::from_utf8(value.as_bytes().to_vec()).expect("utf-8 header"))
    }

    #[test]
    fn empty_jar_returns_none() {
        let jar = MemoryJar::new();
        assert_eq!(header(&jar, &target("a.test", "/", false), NOW), None);
    }

    #[test]
    fn stored_cookie_replayed_sensitive() {
        let jar = MemoryJar::new();
        let site = target("a.test", "/", false);
        store(&jar, &site, &["AWSALB=abc; Path=/"], NOW);
        let value = jar.cookie_header_at(&site, &mut || NOW).expect("header");
        assert_eq!(value.as_bytes(), b"AWSALB=abc");
        assert!(value.is_sensitive());
    }

    #[test]
    fn rotation_replaces_value() {
        let jar = MemoryJar::new();
        let site = target("a.test", "/", false);
        store(&jar, &site, &["AWSALB=one; Path=/"], NOW);
        store(&jar, &site, &["AWSALB=two; Path=/"], NOW);
        assert_eq!(header(&jar, &site, NOW).as_deref(), Some("AWSALB=two"));
        let stats = jar.stats();
        assert_eq!(stats.stored, 1);
        assert_eq!(stats.replaced, 1);
        assert_eq!(stats.cookies, 1);
    }

    #[test]
    fn host_only_and_domain_cookie_coexist() {
        let jar = MemoryJar::new();
        let site = target("example.test", "/", false);
        store(
            &jar,
            &site,
            &["id=host", "id=domain; Domain=example.test"],
            NOW,
        );
        assert_eq!(
            header(&jar, &site, NOW).as_deref(),
            Some("id=host; id=domain")
        );
        let child = target("www.example.test", "/", false);
        assert_eq!(header(&jar, &child, NOW).as_deref(), Some("id=domain"));
    }

    #[test]
    fn max_age_expires_later() {
        let jar = MemoryJar::new();
        let site = target("a.test", "/", false);
        store(&jar, &site, &["a=1; Max-Age=10"], NOW);
        assert_eq!(header(&jar, &site, NOW + 9_999).as_deref(), Some("a=1"));
        assert_eq!(header(&jar, &site, NOW + 10_000), None);
        assert_eq!(jar.stats().expired, 1);
        assert!(jar.is_empty());
    }

    #[test]
    fn domain_cookie_expiry_seen_from_subdomain() {
        let jar = MemoryJar::new();
        let parent = target("example.test", "/", false);
        store(&jar, &parent, &["a=1; Domain=example.test; Max-Age=5"], NOW);
        let child = target("api.example.test", "/", false);
        assert_eq!(header(&jar, &child, NOW).as_deref(), Some("a=1"));
        assert_eq!(header(&jar, &child, NOW + 5_000), None);
        assert_eq!(header(&jar, &parent, NOW + 5_000), None);
    }

    #[test]
    fn max_age_beats_expires() {
        let jar = MemoryJar::new();
        let site = target("a.test", "/", false);
        store(
            &jar,
            &site,
            &["a=1; Expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=60"],
            NOW,
        );
        assert_eq!(header(&jar, &site, NOW).as_deref(), Some("a=1"));
    }

    #[test]
    fn secure_only_over_https() {
        let jar = MemoryJar::new();
        store(
            &jar,
            &target("a.test", "/", true),
            &["s=1; Secure", "p=2"],
            NOW,
        );
        assert_eq!(
            header(&jar, &target("a.test", "/", false), NOW).as_deref(),
            Some("p=2")
        );
        assert_eq!(
            header(&jar, &target("a.test", "/", true), NOW).as_deref(),
            Some("s=1; p=2")
        );
    }

    #[test]
    fn path_scoped_headers_cached_per_set() {
        let jar = MemoryJar::new();
        let site = target("a.test", "/", false);
        store(&jar, &site, &["root=1; Path=/", "api=2; Path=/api"], NOW);
        assert_eq!(
            header(&jar, &target("a.test", "/api/x", false), NOW).as_deref(),
            Some("api=2; root=1")
        );
        assert_eq!(
            header(&jar, &target("a.test", "/web", false), NOW).as_deref(),
            Some("root=1")
        );
        assert_eq!(
            header(&jar, &target("a.test", "/api", false), NOW).as_deref(),
            Some("api=2; root=1")
        );
    }

    #[test]
    fn rejections_counted_by_reason() {
        let jar = MemoryJar::new();
        let site = target("a.example", "/", false);
        store(
            &jar,
            &site,
            &["novalue", "=x", "a=b; Domain=other.example", "ok=1"],
            NOW,
        );
        let stats = jar.stats();
        assert_eq!(stats.rejected(RejectReason::MissingEquals), 1);
        assert_eq!(stats.rejected(RejectReason::EmptyName), 1);
        assert_eq!(stats.rejected(RejectReason::DomainMismatch), 1);
        assert_eq!(stats.rejected_total(), 3);
        assert_eq!(stats.stored, 1);
    }

    #[test]
    fn oversized_cookie_rejected() {
        let jar = MemoryJar::builder().max_cookie_size(8).build();
        let site = target("a.test", "/", false);
        store(&jar, &site, &["name=12345", "name=123"], NOW);
        assert_eq!(jar.stats().rejected(RejectReason::TooLarge), 1);
        assert_eq!(header(&jar, &site, NOW).as_deref(), Some("name=123"));
    }

    #[test]
    fn per_domain_limit_evicts_least_recently_used() {
        let jar = MemoryJar::builder().max_cookies_per_domain(2).build();
        let site = target("a.test", "/", false);
        store(&jar, &site, &["a=1", "b=2"], NOW);
        // Using `a` makes `b` the least recently used.
        assert_eq!(header(&jar, &site, NOW).as_deref(), Some("a=1; b=2"));
        store(&jar, &site, &["a=1"], NOW);
        store(&jar, &site, &["c=3"], NOW);
        assert_eq!(header(&jar, &site, NOW).as_deref(), Some("a=1; c=3"));
        assert_eq!(jar.stats().evicted, 1);
        assert_eq!(jar.len(), 2);
    }

    #[test]
    fn total_limit_evicts_across_domains() {
        let jar = MemoryJar::builder().max_cookies(2).build();
        store(&jar, &target("one.test", "/", false), &["a=1"], NOW);
        store(&jar, &target("two.test", "/", false), &["b=2"], NOW);
        store(&jar, &target("three.test", "/", false), &["c=3"], NOW);
        assert_eq!(jar.len(), 2);
        assert_eq!(header(&jar, &target("one.test", "/", false), NOW), None);
        assert_eq!(
            header(&jar, &target("three.test", "/", false), NOW).as_deref(),
            Some("c=3")
        );
        assert_eq!(jar.stats().evicted, 1);
    }

    #[test]
    fn many_hosts_do_not_leak_views() {
        let jar = MemoryJar::new();
        store(
            &jar,
            &target("example.test", "/", false),
            &["a=1; Domain=example.test"],
            NOW,
        );
        for index in 0..10_000 {
            let host = format!("h{index}.example.test");
            let site = RequestTarget::new(&host, "/", false);
            assert_eq!(header(&jar, &site, NOW).as_deref(), Some("a=1"));
        }
        let nodes = jar.lock().nodes.len();
        assert!(nodes <= 4097 + 1, "{nodes} nodes held");
    }

    #[test]
    fn get_reports_stored_domain() {
        let jar = MemoryJar::new();
        store(&jar, &target("lb.example", "/", false), &["SRV=1"], NOW);
        let found = jar.get("LB.Example", "/", "SRV");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].domain(), "lb.example");
    }

    #[test]
    fn insert_rejects_unmatchable_domains() {
        let jar = MemoryJar::new();
        for domain in [
            "example.com:8080",
            "*.example.com",
            "example.com.",
            "example..com",
        ] {
            let result = jar.insert_at(Cookie::new("a", "1", domain), NOW);
            assert_eq!(result, Err(RejectReason::InvalidDomain), "{domain}");
        }
        assert!(jar.is_empty());
    }

    #[test]
    fn insert_drops_leading_dot() {
        let jar = MemoryJar::new();
        jar.insert_at(Cookie::new("a", "1", ".example.com"), NOW)
            .expect("leading dot dropped");
        let site = target("example.com", "/", false);
        assert_eq!(header(&jar, &site, NOW).as_deref(), Some("a=1"));
    }

    #[test]
    fn numeric_host_gets_no_domain_cookie() {
        let jar = MemoryJar::new();
        store(&jar, &target("127.1", "/", false), &["a=1; Domain=1"], NOW);
        assert_eq!(jar.stats().rejected(RejectReason::DomainMismatch), 1);
        assert_eq!(header(&jar, &target("10.1", "/", false), NOW), None);
    }

    #[test]
    fn full_jar_eviction_scans_once() {
        let jar = MemoryJar::builder().max_cookies(300).build();
        for index in 0..600 {
            let host = format!("h{index}.test");
            store(&jar, &RequestTarget::new(&host, "/", false), &["a=1"], NOW);
        }
        assert_eq!(jar.len(), 300);
        assert_eq!(jar.stats().evicted, 300);
        // The 300 most recent hosts keep their cookie.
        assert_eq!(
            header(&jar, &target("h599.test", "/", false), NOW).as_deref(),
            Some("a=1")
        );
        assert_eq!(header(&jar, &target("h299.test", "/", false), NOW), None);
    }

    #[test]
    fn limits_readable() {
        let jar = MemoryJar::builder()
            .max_cookie_size(100)
            .max_cookies_per_domain(7)
            .max_cookies(70)
            .build();
        assert_eq!(jar.max_cookie_size(), 100);
        assert_eq!(jar.max_cookies_per_domain(), 7);
        assert_eq!(jar.max_cookies(), 70);
    }

    #[test]
    fn debug_shows_no_values() {
        let jar = MemoryJar::new();
        store(
            &jar,
            &target("a.test", "/", false),
            &["session=s3cr3t"],
            NOW,
        );
        let shown = format!("{jar:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("cookies: 1"), "{shown}");
    }

    #[test]
    fn clear_empties_jar() {
        let jar = MemoryJar::new();
        let site = target("a.test", "/", false);
        store(&jar, &site, &["a=1", "b=2; Domain=a.test"], NOW);
        jar.clear();
        assert!(jar.is_empty());
        assert_eq!(header(&jar, &site, NOW), None);
    }
}
