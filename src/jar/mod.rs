//! Cookie jars: where the middleware keeps cookies between requests.
//!
//! [`CookieJar`] is the interface the middleware talks to. [`MemoryJar`] is
//! the jar for one process. Wrap a jar in an [`Arc`] to share it between
//! clients: `Arc<J>` is itself a jar.

use std::sync::Arc;

use http::HeaderValue;

use crate::RequestTarget;

mod cookie;
mod filter;
mod host;
mod memory;
pub(crate) mod parse;
#[cfg(feature = "persist")]
#[cfg_attr(docsrs, doc(cfg(feature = "persist")))]
pub mod persist;
#[cfg(feature = "public-suffix")]
mod public_suffix;
mod stats;

#[cfg(feature = "redis")]
pub(crate) use cookie::split_utf8;
pub use cookie::{Cookie, CookieChange, CookieKey};
pub use filter::CookieFilter;
#[cfg(feature = "persist")]
#[cfg_attr(docsrs, doc(cfg(feature = "persist")))]
#[doc(no_inline)]
pub use persist::{LoadReport, PersistError, SaveOptions};
#[cfg(feature = "public-suffix")]
#[cfg_attr(docsrs, doc(cfg(feature = "public-suffix")))]
pub use public_suffix::{DEBIAN_LIST_PATH, PublicSuffixList};

pub use memory::{
    DEFAULT_MAX_COOKIE_SIZE, DEFAULT_MAX_COOKIES, DEFAULT_MAX_COOKIES_PER_DOMAIN, MemoryJar,
    MemoryJarBuilder,
};
pub use stats::{JarStats, RejectReason};

/// Storage for cookies, as the middleware uses it.
///
/// Both methods take `&self` and are synchronous, so a jar can sit behind an
/// `Arc` and serve many clients and tasks at once, and the request path never
/// waits on a network. A jar that talks to a remote store keeps a local copy
/// to answer from.
///
/// The trait is object safe: `Arc<dyn CookieJar>` is a jar.
pub trait CookieJar: Send + Sync {
    /// Returns the `Cookie` header value for a request to `target`, or `None`
    /// when no stored cookie matches.
    ///
    /// The value contains each matching cookie as `name=value`, separated by
    /// `"; "`, longest path first and then oldest first. It should be marked
    /// sensitive with [`HeaderValue::set_sensitive`].
    fn cookie_header(&self, target: &RequestTarget<'_>) -> Option<HeaderValue>;

    /// Stores the `Set-Cookie` values of a response to a request for
    /// `target`.
    ///
    /// `set_cookie` yields each `Set-Cookie` field line on its own. A jar
    /// skips values it cannot use and never fails the response.
    fn store(&self, target: &RequestTarget<'_>, set_cookie: &mut dyn Iterator<Item = &HeaderValue>);
}

impl<J: CookieJar + ?Sized> CookieJar for Arc<J> {
    #[inline]
    fn cookie_header(&self, target: &RequestTarget<'_>) -> Option<HeaderValue> {
        (**self).cookie_header(target)
    }

    #[inline]
    fn store(
        &self,
        target: &RequestTarget<'_>,
        set_cookie: &mut dyn Iterator<Item = &HeaderValue>,
    ) {
        (**self).store(target, set_cookie)
    }
}

impl<J: CookieJar + ?Sized> CookieJar for Box<J> {
    #[inline]
    fn cookie_header(&self, target: &RequestTarget<'_>) -> Option<HeaderValue> {
        (**self).cookie_header(target)
    }

    #[inline]
    fn store(
        &self,
        target: &RequestTarget<'_>,
        set_cookie: &mut dyn Iterator<Item = &HeaderValue>,
    ) {
        (**self).store(target, set_cookie)
    }
}

impl<J: CookieJar + ?Sized> CookieJar for &J {
    #[inline]
    fn cookie_header(&self, target: &RequestTarget<'_>) -> Option<HeaderValue> {
        (**self).cookie_header(target)
    }

    #[inline]
    fn store(
        &self,
        target: &RequestTarget<'_>,
        set_cookie: &mut dyn Iterator<Item = &HeaderValue>,
    ) {
        (**self).store(target, set_cookie)
    }
}
