//! Counters that show what a jar did with the cookies it was given.

use std::fmt;

/// The reason a jar did not store a `Set-Cookie` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// The name-value pair has no `=`, so RFC 6265 ignores the whole value.
    MissingEquals,
    /// The cookie name is empty. RFC 6265 ignores such cookies, although
    /// RFC 6265bis and current browsers keep them.
    EmptyName,
    /// The name or value contains a byte the `Cookie` header cannot carry:
    /// a control character other than tab, or, in a cookie given to
    /// [`MemoryJar::insert`](crate::MemoryJar::insert), a `;`, an `=` in the
    /// name, or whitespace at either end.
    InvalidCharacter,
    /// The `Domain` attribute does not domain-match the host that sent the
    /// cookie, so the server tried to set a cookie for another site.
    DomainMismatch,
    /// The `Domain` attribute names a public suffix such as `com` or `co.uk`.
    PublicSuffix,
    /// Name and value together are longer than the jar's limit for one
    /// cookie.
    TooLarge,
    /// A name filter of the jar does not accept the cookie.
    Filtered,
    /// A cookie given to [`MemoryJar::insert`](crate::MemoryJar::insert) has
    /// a domain that no request host can match. Such a domain is empty, is
    /// not ASCII, has an empty label (a leading or trailing dot, or `..`), or
    /// contains a character other than letters, digits, `-`, `_` and `.`,
    /// such as a port or a wildcard.
    InvalidDomain,
    /// A cookie given to [`MemoryJar::insert`](crate::MemoryJar::insert) has
    /// a path that does not start with `/` or is longer than 1024 bytes.
    InvalidPath,
}

impl RejectReason {
    /// Every reason, in the order of their counters.
    pub const ALL: [RejectReason; 9] = [
        RejectReason::MissingEquals,
        RejectReason::EmptyName,
        RejectReason::InvalidCharacter,
        RejectReason::DomainMismatch,
        RejectReason::PublicSuffix,
        RejectReason::TooLarge,
        RejectReason::Filtered,
        RejectReason::InvalidDomain,
        RejectReason::InvalidPath,
    ];

    /// Returns a short, stable, snake_case name for logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            RejectReason::MissingEquals => "missing_equals",
            RejectReason::EmptyName => "empty_name",
            RejectReason::InvalidCharacter => "invalid_character",
            RejectReason::DomainMismatch => "domain_mismatch",
            RejectReason::PublicSuffix => "public_suffix",
            RejectReason::TooLarge => "too_large",
            RejectReason::Filtered => "filtered",
            RejectReason::InvalidDomain => "invalid_domain",
            RejectReason::InvalidPath => "invalid_path",
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RejectReason::MissingEquals => "the name-value pair has no `=`",
            RejectReason::EmptyName => "the cookie name is empty",
            RejectReason::InvalidCharacter => {
                "the name or value contains a byte the Cookie header cannot carry"
            }
            RejectReason::DomainMismatch => "the Domain attribute does not cover the request host",
            RejectReason::PublicSuffix => "the Domain attribute names a public suffix",
            RejectReason::TooLarge => "the cookie is larger than the jar's limit",
            RejectReason::Filtered => "the jar's filter does not accept the cookie name",
            RejectReason::InvalidDomain => "the domain is not a valid host name or IP address",
            RejectReason::InvalidPath => "the path does not start with `/` or is over 1024 bytes",
        })
    }
}

impl std::error::Error for RejectReason {}

/// A snapshot of a jar's counters, from [`MemoryJar::stats`](crate::MemoryJar::stats).
///
/// Every counter starts at zero when the jar is created and only grows,
/// except `cookies` and `bytes`, which show what the jar contains now.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JarStats {
    /// Cookies stored that were not in the jar before.
    pub stored: u64,
    /// Cookies that replaced a stored cookie with the same name, domain and
    /// path (an AWS ALB does this on every response).
    pub replaced: u64,
    /// Stored cookies that a server deleted with `Max-Age<=0` or a past
    /// `Expires`.
    pub deleted: u64,
    /// Stored cookies removed because their expiry time passed.
    pub expired: u64,
    /// Stored cookies removed to keep the jar within its size limits.
    pub evicted: u64,
    /// Requests that received a `Cookie` header from the jar.
    pub replayed: u64,
    /// Cookies held right now.
    pub cookies: u64,
    /// Bytes of names, values and paths held right now.
    pub bytes: u64,
    pub(crate) rejected: [u64; RejectReason::ALL.len()],
}

impl fmt::Debug for JarStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Rejected<'a>(&'a JarStats);
        impl fmt::Debug for Rejected<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let counted = RejectReason::ALL
                    .iter()
                    .filter(|reason| self.0.rejected(**reason) > 0)
                    .map(|reason| (reason.as_str(), self.0.rejected(*reason)));
                f.debug_map().entries(counted).finish()
            }
        }
        f.debug_struct("JarStats")
            .field("stored", &self.stored)
            .field("replaced", &self.replaced)
            .field("deleted", &self.deleted)
            .field("expired", &self.expired)
            .field("evicted", &self.evicted)
            .field("replayed", &self.replayed)
            .field("cookies", &self.cookies)
            .field("bytes", &self.bytes)
            .field("rejected", &Rejected(self))
            .finish()
    }
}

impl JarStats {
    /// Returns how many `Set-Cookie` values were rejected for `reason`.
    pub fn rejected(&self, reason: RejectReason) -> u64 {
        self.rejected[reason.index()]
    }

    /// Returns how many `Set-Cookie` values were rejected for any reason.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_indexes_follow_all() {
        for (position, reason) in RejectReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), position, "{reason}");
        }
    }

    #[test]
    fn debug_labels_rejections() {
        let mut stats = JarStats::default();
        stats.rejected[RejectReason::DomainMismatch.index()] = 4;
        let shown = format!("{stats:?}");
        assert!(
            shown.contains("rejected: {\"domain_mismatch\": 4}"),
            "{shown}"
        );
    }

    #[test]
    fn rejected_total_sums_reasons() {
        let mut stats = JarStats::default();
        stats.rejected[RejectReason::EmptyName.index()] = 2;
        stats.rejected[RejectReason::TooLarge.index()] = 3;
        assert_eq!(stats.rejected(RejectReason::EmptyName), 2);
        assert_eq!(stats.rejected_total(), 5);
    }
}
