//! The target of a request: the part of it that cookie matching looks at.

use http::{Request, header::HOST};

/// The destination of a request as cookie matching uses it: the host, the
/// path and whether the connection is secure.
///
/// The middleware builds one from each request with
/// [`RequestTarget::from_request`]. A custom [`CookieJar`](crate::CookieJar)
/// receives it in both of its methods.
///
/// The host is kept as the request spelled it. Jars compare hosts without
/// regard to ASCII case, as RFC 6265 requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestTarget<'a> {
    host: &'a str,
    path: &'a str,
    secure: bool,
}

impl<'a> RequestTarget<'a> {
    /// Creates a target from its parts.
    ///
    /// `host` has no port and no userinfo. An IPv6 address keeps its
    /// brackets, as in `[::1]`. `path` is the request path without the query.
    /// `secure` is true for `https` and `wss`.
    pub const fn new(host: &'a str, path: &'a str, secure: bool) -> Self {
        RequestTarget { host, path, secure }
    }

    /// Finds the target of a request.
    ///
    /// The host and scheme come from the request's absolute URI. A request in
    /// origin form (`/path` only) takes its host from the `Host` header and
    /// counts as not secure, because nothing in it shows that the connection
    /// uses TLS.
    ///
    /// Returns `None` when the request has neither an absolute URI nor a
    /// usable `Host` header, or when its scheme is not `http`, `https`, `ws`
    /// or `wss`. The middleware passes such a request through untouched.
    pub fn from_request<B>(request: &'a Request<B>) -> Option<Self> {
        let uri = request.uri();
        let path = uri.path();

        if let Some(authority) = uri.authority() {
            let host = host_of_uri_authority(authority.as_str());
            let secure = match uri.scheme_str() {
                Some(scheme) if scheme.eq_ignore_ascii_case("https") => true,
                Some(scheme) if scheme.eq_ignore_ascii_case("wss") => true,
                Some(scheme) if scheme.eq_ignore_ascii_case("http") => false,
                Some(scheme) if scheme.eq_ignore_ascii_case("ws") => false,
                // An authority without a scheme, as in a CONNECT request,
                // carries no path that cookies could match.
                _ => return None,
            };
            if host.is_empty() {
                return None;
            }
            return Some(RequestTarget::new(host, path, secure));
        }

        let header = request.headers().get(HOST)?.to_str().ok()?;
        let host = host_of_authority(header.trim())?;
        Some(RequestTarget::new(host, path, false))
    }

    /// Returns the host, without port.
    pub const fn host(&self) -> &'a str {
        self.host
    }

    /// Returns the request path, without the query.
    pub const fn path(&self) -> &'a str {
        self.path
    }

    /// Returns whether the request goes over a secure channel (`https` or
    /// `wss`).
    pub const fn is_secure(&self) -> bool {
        self.secure
    }
}

/// Returns the host of an authority that `http::Uri` has already validated:
/// without userinfo and port, with the brackets of an IPv6 literal.
///
/// It returns what `Authority::host` returns, with byte searches in place of
/// that method's `char` pattern searches, which cost several times more on a
/// path that runs for every request.
fn host_of_uri_authority(authority: &str) -> &str {
    let start = authority
        .bytes()
        .rposition(|b| b == b'@')
        .map_or(0, |at| at + 1);
    let host_and_port = &authority[start..];
    let end = if host_and_port.starts_with('[') {
        host_and_port
            .bytes()
            .position(|b| b == b']')
            .map_or(host_and_port.len(), |bracket| bracket + 1)
    } else {
        host_and_port
            .bytes()
            .position(|b| b == b':')
            .unwrap_or(host_and_port.len())
    };
    &host_and_port[..end]
}

/// Strips the port from a `Host` header value. Returns `None` for a value
/// that cannot name a host: empty, with userinfo, or with a broken IPv6
/// literal.
fn host_of_authority(authority: &str) -> Option<&str> {
    if authority.contains(['@', '/', ' ', ',']) {
        return None;
    }
    let host = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let rest = &authority[end + 1..];
        if !(rest.is_empty() || rest.starts_with(':')) {
            return None;
        }
        &authority[..=end]
    } else {
        match authority.split_once(':') {
            Some((host, _port)) => host,
            None => authority,
        }
    };
    if host.is_empty() { None } else { Some(host) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target_of(request: &Request<()>) -> Option<RequestTarget<'_>> {
        RequestTarget::from_request(request)
    }

    #[test]
    fn absolute_uri_gives_host_path_and_scheme() {
        let request = Request::get("https://user@Example.COM:8443/a/b?q=1")
            .body(())
            .unwrap();
        let target = target_of(&request).expect("target");
        assert_eq!(target.host(), "Example.COM");
        assert_eq!(target.path(), "/a/b");
        assert!(target.is_secure());
    }

    #[test]
    fn absolute_uri_wins_over_host_header() {
        let request = Request::get("http://a.test/x")
            .header(HOST, "b.test")
            .body(())
            .unwrap();
        assert_eq!(target_of(&request).unwrap().host(), "a.test");
    }

    #[test]
    fn origin_form_uses_host_header() {
        let request = Request::get("/x/y")
            .header(HOST, "api.test:8080")
            .body(())
            .unwrap();
        let target = target_of(&request).expect("target");
        assert_eq!(target.host(), "api.test");
        assert_eq!(target.path(), "/x/y");
        assert!(!target.is_secure());
    }

    #[test]
    fn host_header_ipv6_keeps_brackets() {
        let request = Request::get("/").header(HOST, "[::1]:80").body(()).unwrap();
        assert_eq!(target_of(&request).unwrap().host(), "[::1]");
    }

    #[test]
    fn no_host_gives_none() {
        let request = Request::get("/x").body(()).unwrap();
        assert_eq!(target_of(&request), None);
    }

    #[test]
    fn unusable_host_header_gives_none() {
        for value in ["", ":80", "a@b", "[::1", "[::1]x", "a b"] {
            let request = Request::get("/").header(HOST, value).body(()).unwrap();
            assert_eq!(target_of(&request), None, "Host: {value:?}");
        }
    }

    #[test]
    fn uri_host_matches_http_crate() {
        let uris = [
            "http://example.test/",
            "http://Example.TEST:8080/a",
            "https://user@example.test/",
            "https://user:secret@example.test:443/",
            "https://a@b@example.test/",
            "http://[::1]/",
            "http://[::1]:8080/x",
            "http://user@[2001:db8::1]:80/",
            "http://127.0.0.1:9/",
        ];
        for uri in uris {
            let uri: http::Uri = uri.parse().expect("valid URI");
            let authority = uri.authority().expect("authority");
            assert_eq!(
                host_of_uri_authority(authority.as_str()),
                authority.host(),
                "{uri}"
            );
        }
    }

    #[test]
    fn other_scheme_gives_none() {
        let request = Request::get("ftp://files.test/x").body(()).unwrap();
        assert_eq!(target_of(&request), None);
    }
}
