//! The public view of a stored cookie.

use std::{
    borrow::Cow,
    fmt,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// A cookie as a jar stores it: name, value and scope.
///
/// The value is a credential, so `Debug` and `Display` never show it.
/// Reading it takes an explicit call to [`Cookie::expose_value`].
///
/// [`MemoryJar::cookies`](crate::MemoryJar::cookies) lists the cookies of a
/// jar this way, and [`MemoryJar::insert`](crate::MemoryJar::insert) stores
/// one, for example to start from a session obtained elsewhere:
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_sticky::{MemoryJar, jar::Cookie};
///
/// let jar = MemoryJar::new();
/// let session = Cookie::new("SERVERID", "app-2", "api.example")
///     .with_expires(Some(SystemTime::now() + Duration::from_secs(3600)));
/// jar.insert(session).expect("a valid cookie");
///
/// let listed = jar.cookies();
/// assert_eq!(listed[0].name(), "SERVERID");
/// assert_eq!(listed[0].expose_value(), b"app-2");
/// assert!(!format!("{:?}", listed[0]).contains("app-2"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Cookie {
    pub(crate) name: Box<[u8]>,
    pub(crate) value: Box<[u8]>,
    pub(crate) domain: Box<str>,
    pub(crate) host_only: bool,
    pub(crate) path: Box<[u8]>,
    pub(crate) secure: bool,
    pub(crate) http_only: bool,
    pub(crate) expires_ms: Option<i64>,
    pub(crate) created_ms: i64,
}

impl Cookie {
    /// Creates a host-only session cookie for `domain` with path `/`.
    ///
    /// The domain is lowercased, and a leading dot is dropped as RFC 6265
    /// does for a `Domain` attribute (tools that export cookies often write
    /// `.example.com`). A leading dot does not make the cookie a `Domain`
    /// cookie: use [`Cookie::with_host_only`] for that.
    ///
    /// The jar checks the name, value and domain when it stores the cookie:
    /// see [`MemoryJar::insert`](crate::MemoryJar::insert).
    pub fn new(
        name: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        domain: impl Into<String>,
    ) -> Self {
        Cookie {
            name: name.into().into_boxed_slice(),
            value: value.into().into_boxed_slice(),
            domain: {
                let domain = domain.into().to_ascii_lowercase();
                match domain.strip_prefix('.') {
                    Some(rest) => rest.into(),
                    None => domain.into_boxed_str(),
                }
            },
            host_only: true,
            path: Box::from(&b"/"[..]),
            secure: false,
            http_only: false,
            expires_ms: None,
            created_ms: super::memory::unix_time_ms(),
        }
    }

    /// Sets whether the cookie goes only to its domain's host (`true`, the
    /// default) or to its subdomains as well, like a `Domain` attribute.
    #[must_use]
    pub fn with_host_only(mut self, host_only: bool) -> Self {
        self.host_only = host_only;
        self
    }

    /// Sets the path. It must start with `/`. Defaults to `/`.
    #[must_use]
    pub fn with_path(mut self, path: impl Into<Vec<u8>>) -> Self {
        self.path = path.into().into_boxed_slice();
        self
    }

    /// Sets whether the cookie goes only over `https`. Defaults to `false`.
    #[must_use]
    pub fn with_secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// Sets the `HttpOnly` flag, which the jar keeps but does not act on.
    /// Defaults to `false`.
    #[must_use]
    pub fn with_http_only(mut self, http_only: bool) -> Self {
        self.http_only = http_only;
        self
    }

    /// Sets the expiry time, or `None` for a session cookie (the default).
    #[must_use]
    pub fn with_expires(mut self, expires: Option<SystemTime>) -> Self {
        self.expires_ms = expires.map(system_time_to_ms);
        self
    }

    /// Returns the name, with any bytes that are not UTF-8 replaced.
    pub fn name(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.name)
    }

    /// Returns the name as received.
    pub fn name_bytes(&self) -> &[u8] {
        &self.name
    }

    /// Returns the value as received. Cookie values are credentials: keep
    /// them out of logs.
    pub fn expose_value(&self) -> &[u8] {
        &self.value
    }

    /// Returns the domain: the host of a host-only cookie, or the `Domain`
    /// attribute without its leading dot. Always lowercase.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Returns whether the cookie goes only to the host of its domain.
    pub fn is_host_only(&self) -> bool {
        self.host_only
    }

    /// Returns the path, with any bytes that are not UTF-8 replaced.
    pub fn path(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.path)
    }

    /// Returns whether the cookie goes only over `https`.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// Returns whether the server set `HttpOnly`.
    pub fn is_http_only(&self) -> bool {
        self.http_only
    }

    /// Returns when the cookie expires, or `None` for a session cookie.
    pub fn expires(&self) -> Option<SystemTime> {
        self.expires_ms.map(ms_to_system_time)
    }

    /// Returns whether the cookie lasts only as long as the jar (it has no
    /// `Expires` or `Max-Age`).
    pub fn is_session(&self) -> bool {
        self.expires_ms.is_none()
    }

    /// Returns when the jar first stored a cookie with this name, domain and
    /// path. A replacement keeps the time of the cookie it replaced.
    pub fn created(&self) -> SystemTime {
        ms_to_system_time(self.created_ms)
    }

    /// Returns whether the cookie has expired at `now`.
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        self.expires_ms
            .is_some_and(|expires| expires <= system_time_to_ms(now))
    }
}

impl fmt::Debug for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cookie")
            .field("name", &self.name())
            .field("value", &format_args!("<redacted>"))
            .field("domain", &self.domain)
            .field("host_only", &self.host_only)
            .field("path", &self.path())
            .field("secure", &self.secure)
            .field("http_only", &self.http_only)
            .field("expires", &self.expires())
            .field("created", &self.created())
            .finish()
    }
}

/// Shows the cookie in `Set-Cookie` form with the value redacted, as in
/// `AWSALB=<redacted>; Domain=api.example; Path=/; Secure`. A host-only
/// cookie shows its host as `Host=`, which is not a real attribute.
impl fmt::Display for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}=<redacted>", self.name())?;
        if self.host_only {
            write!(f, "; Host={}", self.domain)?;
        } else {
            write!(f, "; Domain={}", self.domain)?;
        }
        write!(f, "; Path={}", self.path())?;
        if self.secure {
            f.write_str("; Secure")?;
        }
        if self.http_only {
            f.write_str("; HttpOnly")?;
        }
        if let Some(expires) = self.expires_ms {
            write!(f, "; Expires-Unix-Ms={expires}")?;
        }
        Ok(())
    }
}

/// The identity of a stored cookie: a new cookie with the same key replaces
/// it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CookieKey {
    /// The lowercase domain: the host of a host-only cookie, or the
    /// `Domain` attribute.
    pub domain: String,
    /// Whether the cookie is host-only.
    pub host_only: bool,
    /// The path.
    pub path: Vec<u8>,
    /// The name.
    pub name: Vec<u8>,
}

impl Cookie {
    /// Returns the key that identifies this cookie in a jar.
    pub fn key(&self) -> CookieKey {
        CookieKey {
            domain: self.domain.to_string(),
            host_only: self.host_only,
            path: self.path.to_vec(),
            name: self.name.to_vec(),
        }
    }
}

/// A change to a jar's contents, as a mirrored jar sends it to the other
/// processes that share the jar.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CookieChange {
    /// A cookie was stored, or replaced the cookie with the same key.
    Stored(Cookie),
    /// The cookie with this key was deleted, by a server (`Max-Age<=0` or a
    /// past `Expires`) or by a call such as
    /// [`MemoryJar::remove`](crate::MemoryJar::remove).
    Removed(CookieKey),
}

/// Splits bytes into a string when they are UTF-8, or else a byte vector,
/// for the JSON records that store names, values and paths losslessly.
#[cfg(any(feature = "persist", feature = "redis"))]
pub(crate) fn split_utf8(bytes: &[u8]) -> (Option<String>, Option<Vec<u8>>) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (Some(text.to_owned()), None),
        Err(_) => (None, Some(bytes.to_vec())),
    }
}

pub(crate) fn system_time_to_ms(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(elapsed) => i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

pub(crate) fn ms_to_system_time(ms: i64) -> SystemTime {
    let magnitude = Duration::from_millis(ms.unsigned_abs());
    let time = if ms >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    };
    // Out-of-range times clamp to the epoch, which reads as long expired.
    time.unwrap_or(UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_value() {
        let cookie = Cookie::new("AWSALB", "s3cr3t-value", "lb.example");
        let shown = format!("{cookie:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("AWSALB"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn display_redacts_value() {
        let cookie = Cookie::new("AWSALB", "s3cr3t-value", "lb.example")
            .with_host_only(false)
            .with_secure(true);
        let shown = cookie.to_string();
        assert_eq!(
            shown,
            "AWSALB=<redacted>; Domain=lb.example; Path=/; Secure"
        );
    }

    #[test]
    fn domain_lowercased() {
        assert_eq!(Cookie::new("a", "b", "API.Example").domain(), "api.example");
    }

    #[test]
    fn time_round_trip() {
        let time = UNIX_EPOCH + Duration::from_millis(1_800_000_000_123);
        assert_eq!(ms_to_system_time(system_time_to_ms(time)), time);
        let before = UNIX_EPOCH - Duration::from_millis(5_000);
        assert_eq!(system_time_to_ms(before), -5_000);
        assert_eq!(ms_to_system_time(-5_000), before);
    }

    #[test]
    fn expiry_checked_against_given_time() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let cookie = Cookie::new("a", "b", "h").with_expires(Some(now));
        assert!(cookie.is_expired_at(now));
        assert!(!cookie.is_expired_at(now - Duration::from_millis(1)));
        assert!(!Cookie::new("a", "b", "h").is_expired_at(now));
    }
}
