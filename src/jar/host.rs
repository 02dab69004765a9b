//! Host names as map keys, and the domain and path rules of RFC 6265
//! section 5.1.

use std::{
    borrow::Borrow,
    hash::{BuildHasherDefault, Hash, Hasher},
    net::Ipv4Addr,
};

/// A lowercase host or cookie domain owned by the jar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HostKey(Box<str>);

impl HostKey {
    /// Creates a key, lowercasing ASCII letters.
    pub(super) fn new(host: &str) -> Self {
        HostKey(host.to_ascii_lowercase().into_boxed_str())
    }

    pub(super) fn as_str(&self) -> &str {
        &self.0
    }
}

/// A borrowed host to look up a [`HostKey`] with, compared without regard to
/// ASCII case so that the request path never lowercases into a new string.
#[repr(transparent)]
pub(super) struct HostQuery(str);

impl HostQuery {
    pub(super) fn new(host: &str) -> &HostQuery {
        // SAFETY: `HostQuery` is a `repr(transparent)` wrapper around `str`,
        // so both references have the same layout and lifetime.
        #[allow(unsafe_code)]
        unsafe {
            &*(host as *const str as *const HostQuery)
        }
    }
}

impl Borrow<HostQuery> for HostKey {
    fn borrow(&self) -> &HostQuery {
        HostQuery::new(&self.0)
    }
}

impl PartialEq for HostQuery {
    fn eq(&self, other: &Self) -> bool {
        // Keys are lowercase and most requests spell their host in lower
        // case, so the plain comparison settles most lookups.
        self.0 == other.0 || self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl Eq for HostQuery {}

impl Hash for HostQuery {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Setting bit 0x20 folds ASCII upper case onto lower case. It also
        // changes some punctuation, but identically for both spellings of a
        // host, so hosts that are equal without regard to case hash equally.
        let bytes = self.0.as_bytes();
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let word = u64::from_le_bytes(chunk.try_into().expect("chunk of 8 bytes"));
            state.write_u64(word | 0x2020_2020_2020_2020);
        }
        // The last one to seven bytes, little-endian, as `u64::from_le_bytes`
        // of them padded with zeros, without a call to `memcpy`.
        let tail = chunks
            .remainder()
            .iter()
            .rev()
            .fold(0u64, |word, &byte| (word << 8) | u64::from(byte));
        state.write_u64(tail | 0x2020_2020_2020_2020);
        state.write_usize(bytes.len());
    }
}

impl Hash for HostKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let query: &HostQuery = self.borrow();
        query.hash(state);
    }
}

/// A fast, unkeyed hasher in the style of rustc's FxHasher.
///
/// Keys are request hosts, which the caller chooses, and cookie domains,
/// which must domain-match one of those hosts, so a server cannot flood one
/// bucket with keys of its own choosing. The jar's size limits bound the key
/// count anyway.
#[derive(Default, Clone, Copy)]
pub(super) struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    #[inline]
    fn write_u64(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }

    #[inline]
    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

pub(super) type BuildFxHasher = BuildHasherDefault<FxHasher>;

/// Returns whether `host` is an IP address literal. RFC 6265 never lets a
/// `Domain` attribute suffix-match one.
///
/// Besides dotted quads, a host whose last label is a number (`127.1`,
/// `0x7f.1`, `10.0.0.1.`) counts as an address, as the WHATWG URL standard
/// has it, because resolvers such as `getaddrinfo` read those spellings as
/// IPv4 addresses too.
pub(super) fn is_ip_address(host: &str) -> bool {
    if host.starts_with('[') || host.parse::<Ipv4Addr>().is_ok() {
        return true;
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    let last = host.rsplit('.').next().unwrap_or(host);
    let hex = last
        .strip_prefix("0x")
        .or_else(|| last.strip_prefix("0X"))
        .map(|digits| digits.bytes().all(|b| b.is_ascii_hexdigit()));
    match hex {
        Some(all_hex) => all_hex,
        None => !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()),
    }
}

/// Returns whether `domain` can be stored as a cookie domain: ASCII letters,
/// digits, `-`, `_` and `.` between non-empty labels, or a bracketed IPv6
/// address. A leading or trailing dot, a port or a wildcard makes a domain
/// that no request host would match, so it is invalid.
pub(crate) fn is_valid_domain(domain: &str) -> bool {
    if let Some(inner) = domain.strip_prefix('[') {
        return inner
            .strip_suffix(']')
            .is_some_and(|address| address.parse::<std::net::Ipv6Addr>().is_ok());
    }
    !domain.is_empty()
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Domain matching of RFC 6265 section 5.1.3. `domain` is lowercase.
pub(super) fn domain_matches(host: &str, domain: &str) -> bool {
    if host.eq_ignore_ascii_case(domain) {
        return true;
    }
    if host.len() <= domain.len() || is_ip_address(host) {
        return false;
    }
    let split = host.len() - domain.len();
    host.as_bytes()[split - 1] == b'.'
        && host.as_bytes()[split..].eq_ignore_ascii_case(domain.as_bytes())
}

/// Yields the parent domains of `host`, nearest first: `a.b.c` gives `b.c`
/// and `c`. An IP address has none.
pub(super) fn parent_domains(host: &str) -> impl Iterator<Item = &str> {
    let ip = is_ip_address(host);
    host.match_indices('.')
        .map(move |(at, _)| &host[at + 1..])
        .filter(move |parent| !ip && !parent.is_empty())
}

/// Returns the default path of RFC 6265 section 5.1.4: the request path up to, not
/// including, its last `/`, or `/` when that would be empty.
pub(super) fn default_path(request_path: &str) -> &str {
    if !request_path.starts_with('/') {
        return "/";
    }
    match request_path.rfind('/') {
        Some(0) | None => "/",
        Some(last) => &request_path[..last],
    }
}

/// Path matching of RFC 6265 section 5.1.4.
#[inline]
pub(super) fn path_matches(request_path: &[u8], cookie_path: &[u8]) -> bool {
    let request_path = if request_path.is_empty() {
        b"/"
    } else {
        request_path
    };
    match request_path.strip_prefix(cookie_path) {
        None => false,
        Some([]) => true,
        Some([b'/', ..]) => true,
        Some(_) => cookie_path.last() == Some(&b'/'),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn lookup_ignores_case() {
        let mut map: HashMap<HostKey, u8, BuildFxHasher> = HashMap::default();
        map.insert(HostKey::new("Sub.Example.ORG"), 1);
        assert_eq!(map.get(HostQuery::new("sub.example.org")), Some(&1));
        assert_eq!(map.get(HostQuery::new("SUB.EXAMPLE.ORG")), Some(&1));
        assert_eq!(map.get(HostQuery::new("sub.example.or")), None);
    }

    #[test]
    fn domain_match_rules() {
        assert!(domain_matches("example.org", "example.org"));
        assert!(domain_matches("A.Example.org", "example.org"));
        assert!(!domain_matches("aexample.org", "example.org"));
        assert!(!domain_matches("example.org", "a.example.org"));
        assert!(!domain_matches("192.0.2.10", "0.2.10"));
        assert!(domain_matches("192.0.2.10", "192.0.2.10"));
        assert!(!domain_matches("example.org", "example.org."));
    }

    #[test]
    fn numeric_hosts_are_addresses() {
        for host in ["10.0.0.1", "127.1", "0x7f.0.0.1", "10.0.0.1.", "[::1]", "1"] {
            assert!(is_ip_address(host), "{host}");
        }
        for host in [
            "example.com",
            "1.example",
            "localhost",
            "0x.example",
            "a.0xg",
        ] {
            assert!(!is_ip_address(host), "{host}");
        }
    }

    #[test]
    fn domain_validity() {
        for domain in [
            "example.com",
            "a-b_c.example",
            "localhost",
            "10.0.0.1",
            "[::1]",
        ] {
            assert!(is_valid_domain(domain), "{domain}");
        }
        let invalid = [
            "",
            ".example.com",
            "example.com.",
            "example..com",
            "example.com:8080",
            "*.example.com",
            "exa mple.com",
            "[::1",
            "[nonsense]",
            "bücher.example",
        ];
        for domain in invalid {
            assert!(!is_valid_domain(domain), "{domain}");
        }
    }

    #[test]
    fn parents_nearest_first() {
        let parents: Vec<_> = parent_domains("a.b.example").collect();
        assert_eq!(parents, ["b.example", "example"]);
        assert_eq!(parent_domains("10.0.0.1").count(), 0);
        assert_eq!(parent_domains("[::1]").count(), 0);
        assert_eq!(parent_domains("localhost").count(), 0);
    }

    #[test]
    fn default_path_rules() {
        assert_eq!(default_path(""), "/");
        assert_eq!(default_path("x"), "/");
        assert_eq!(default_path("/"), "/");
        assert_eq!(default_path("/foo"), "/");
        assert_eq!(default_path("/foo/"), "/foo");
        assert_eq!(default_path("/foo/bar"), "/foo");
    }

    #[test]
    fn path_match_rules() {
        assert!(path_matches(b"/foo", b"/foo"));
        assert!(path_matches(b"/foo/bar", b"/foo"));
        assert!(path_matches(b"/foo/bar", b"/foo/"));
        assert!(path_matches(b"/foo//bar", b"/foo/"));
        assert!(!path_matches(b"/foobar", b"/foo"));
        assert!(!path_matches(b"/foo", b"/foo/"));
        assert!(!path_matches(b"/fo", b"/foo"));
        assert!(path_matches(b"", b"/"));
    }
}
