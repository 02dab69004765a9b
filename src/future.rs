//! The response future of [`Sticky`](crate::Sticky).

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use http::{Response, header::SET_COOKIE};
use pin_project_lite::pin_project;

use crate::{CookieJar, RequestTarget};

pin_project! {
    /// Response future of [`Sticky`](crate::Sticky): stores the response's
    /// cookies before it returns the response.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F, J> {
        #[pin]
        inner: F,
        jar: J,
        target: Option<OwnedTarget>,
    }
}

impl<F, J> ResponseFuture<F, J> {
    pub(crate) fn new(inner: F, jar: J, target: Option<OwnedTarget>) -> Self {
        ResponseFuture { inner, jar, target }
    }
}

impl<F, J> std::fmt::Debug for ResponseFuture<F, J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl<F, J, ResBody, E> Future for ResponseFuture<F, J>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    J: CookieJar,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;

        // Every status carries cookies: a balancer may set its cookie on a
        // redirect or an error page as well as on a 200.
        if let Some(target) = this.target.take() {
            let mut set_cookie = response.headers().get_all(SET_COOKIE).iter().peekable();
            if set_cookie.peek().is_some() {
                this.jar.store(&target.as_target(), &mut set_cookie);
            }
        }

        Poll::Ready(Ok(response))
    }
}

/// Bytes of host and path kept inline before the target moves to the heap.
const INLINE_CAPACITY: usize = 94;

/// The part of a request target that storing needs, owned by the future so
/// the request can move into the inner service.
///
/// The path is cut after its last `/`, which keeps what the default path of
/// RFC 6265 section 5.1.4 depends on. Short targets live inline, so most
/// requests do not allocate for this.
pub(crate) struct OwnedTarget {
    secure: bool,
    host_len: u8,
    path_len: u8,
    storage: Storage,
}

enum Storage {
    Inline([u8; INLINE_CAPACITY]),
    Heap(Box<str>),
}

impl OwnedTarget {
    pub(crate) fn new(target: &RequestTarget<'_>) -> Self {
        let host = target.host();
        let path = directory_of(target.path());
        let total = host.len() + path.len();
        if total <= INLINE_CAPACITY {
            let mut buffer = [0u8; INLINE_CAPACITY];
            buffer[..host.len()].copy_from_slice(host.as_bytes());
            buffer[host.len()..total].copy_from_slice(path.as_bytes());
            OwnedTarget {
                secure: target.is_secure(),
                // Both fit in a u8 because their sum fits in the buffer.
                host_len: host.len() as u8,
                path_len: path.len() as u8,
                storage: Storage::Inline(buffer),
            }
        } else {
            let mut joined = String::with_capacity(total);
            joined.push_str(host);
            joined.push_str(path);
            let host_len = u8::try_from(host.len()).unwrap_or(u8::MAX);
            OwnedTarget {
                secure: target.is_secure(),
                host_len,
                path_len: 0,
                storage: Storage::Heap(joined.into_boxed_str()),
            }
        }
    }

    pub(crate) fn as_target(&self) -> RequestTarget<'_> {
        match &self.storage {
            Storage::Inline(buffer) => {
                let host_len = usize::from(self.host_len);
                let end = host_len + usize::from(self.path_len);
                // Both parts were copied whole from `&str` values.
                let host = std::str::from_utf8(&buffer[..host_len]).unwrap_or_default();
                let path = std::str::from_utf8(&buffer[host_len..end]).unwrap_or("/");
                RequestTarget::new(host, path, self.secure)
            }
            Storage::Heap(joined) => {
                // A host longer than 255 bytes is not a DNS name, but the
                // split must still fall on the host boundary: search for the
                // path's leading `/` after the stored prefix length.
                let split = joined[usize::from(self.host_len)..]
                    .find('/')
                    .map_or(joined.len(), |at| at + usize::from(self.host_len));
                RequestTarget::new(&joined[..split], &joined[split..], self.secure)
            }
        }
    }
}

impl std::fmt::Debug for OwnedTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let target = self.as_target();
        f.debug_struct("Target")
            .field("host", &target.host())
            .field("directory", &target.path())
            .field("secure", &target.is_secure())
            .finish()
    }
}

/// Cuts a request path after its last `/`. The result has the same default
/// path as the whole path.
fn directory_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(last) if path.starts_with('/') => &path[..=last],
        _ => "/",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_round_trip() {
        let target = RequestTarget::new("api.example.test", "/v1/records/42", true);
        let owned = OwnedTarget::new(&target);
        assert!(matches!(owned.storage, Storage::Inline(_)));
        let back = owned.as_target();
        assert_eq!(back.host(), "api.example.test");
        assert_eq!(back.path(), "/v1/records/");
        assert!(back.is_secure());
    }

    #[test]
    fn long_target_moves_to_heap() {
        let host = "h".repeat(300);
        let path = format!("/{}/x", "p".repeat(200));
        let target = RequestTarget::new(&host, &path, false);
        let owned = OwnedTarget::new(&target);
        assert!(matches!(owned.storage, Storage::Heap(_)));
        let back = owned.as_target();
        assert_eq!(back.host(), host);
        assert_eq!(back.path(), &path[..path.len() - 1]);
    }

    #[test]
    fn directory_keeps_default_path() {
        assert_eq!(directory_of(""), "/");
        assert_eq!(directory_of("/"), "/");
        assert_eq!(directory_of("/a"), "/");
        assert_eq!(directory_of("/a/b"), "/a/");
        assert_eq!(directory_of("/a/b/"), "/a/b/");
    }
}
