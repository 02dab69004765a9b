//! The Redis backend's key layout, and the JSON record of a change.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{RemoteChange, Version};
use crate::jar::{Cookie, CookieChange, CookieKey};

/// The Redis keys and channel of a shared jar, all under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct KeyLayout {
    prefix: String,
    channel: String,
}

impl KeyLayout {
    pub(crate) fn new(prefix: String) -> Self {
        let channel = format!("{prefix}changes");
        KeyLayout { prefix, channel }
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn channel(&self) -> &str {
        &self.channel
    }

    /// Returns `{prefix}cookie:{domain}:{host|domain}:{path}:{name}`, with
    /// the domain, path and name escaped.
    pub(crate) fn cookie_key(&self, key: &CookieKey) -> String {
        let mut out = String::with_capacity(
            self.prefix.len() + 16 + key.domain.len() + key.path.len() + key.name.len(),
        );
        out.push_str(&self.prefix);
        out.push_str("cookie:");
        // Domains compare without regard to case, so one cookie has one key
        // whatever spelling a caller used.
        escape_into(&mut out, key.domain.to_ascii_lowercase().as_bytes());
        out.push_str(if key.host_only { ":host:" } else { ":domain:" });
        escape_into(&mut out, &key.path);
        out.push(':');
        escape_into(&mut out, &key.name);
        out
    }

    /// Returns the `SCAN` pattern that matches every cookie key, with the
    /// prefix's glob characters escaped.
    pub(crate) fn scan_pattern(&self) -> String {
        let mut pattern = String::with_capacity(self.prefix.len() + 8);
        for c in self.prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push_str("cookie:*");
        pattern
    }
}

/// Percent-encodes every byte outside a small safe set, `:` and `%`
/// included, so that the parts of a key cannot run into each other and a
/// key never contains a glob character.
fn escape_into(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in bytes {
        let safe = byte.is_ascii_alphanumeric()
            || matches!(
                byte,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'/'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b'@'
            );
        if safe {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
}

/// The JSON stored at a cookie's key and sent on the channel.
///
/// `name`, `value` and `path` are strings when their bytes are UTF-8, and
/// otherwise `name_bytes`, `value_bytes` or `path_bytes`: arrays of byte
/// values. A deletion has `"deleted": true` and no value. Unknown fields are
/// ignored, so that a later version can add some.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    version: RecordVersion,
    domain: String,
    host_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path_bytes: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name_bytes: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "is_false")]
    deleted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value_bytes: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "is_false")]
    secure: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    http_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_ms: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RecordVersion {
    ms: i64,
    counter: u32,
    /// The origin as 16 lowercase hexadecimal digits, so that comparing
    /// the strings compares the numbers. The publish script relies on it.
    origin: String,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// Encodes a change as its JSON record. With `as_deletion`, a stored cookie
/// is encoded as the deletion of its key, for a cookie that expired before
/// it was published.
pub(crate) fn encode(change: &RemoteChange, as_deletion: bool) -> serde_json::Result<String> {
    let version = RecordVersion {
        ms: change.version.unix_ms(),
        counter: change.version.counter(),
        origin: format!("{:016x}", change.version.origin()),
    };
    let key = change.key();
    let (path, path_bytes) = crate::jar::split_utf8(&key.path);
    let (name, name_bytes) = crate::jar::split_utf8(&key.name);
    let mut record = Record {
        version,
        domain: key.domain,
        host_only: key.host_only,
        path,
        path_bytes,
        name,
        name_bytes,
        deleted: true,
        value: None,
        value_bytes: None,
        secure: false,
        http_only: false,
        expires_ms: None,
        created_ms: None,
    };
    if let (CookieChange::Stored(cookie), false) = (&change.change, as_deletion) {
        let (value, value_bytes) = crate::jar::split_utf8(&cookie.value);
        record.deleted = false;
        record.value = value;
        record.value_bytes = value_bytes;
        record.secure = cookie.secure;
        record.http_only = cookie.http_only;
        record.expires_ms = cookie.expires_ms;
        record.created_ms = Some(cookie.created_ms);
    }
    serde_json::to_string(&record)
}

/// The reason a record could not be decoded. It never contains the
/// record's text, which may include a cookie value.
#[derive(Debug)]
pub(crate) enum DecodeError {
    /// The JSON is invalid or does not have the record's shape.
    Json {
        category: &'static str,
        line: usize,
        column: usize,
    },
    /// Neither or both of a string field and its bytes field are present.
    Field(&'static str),
    /// The version's origin is not 16 hexadecimal digits.
    Origin,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Json {
                category,
                line,
                column,
            } => write!(
                f,
                "{category} error in the JSON at line {line}, column {column}"
            ),
            DecodeError::Field(field) => {
                write!(
                    f,
                    "exactly one of `{field}` and `{field}_bytes` must be set"
                )
            }
            DecodeError::Origin => f.write_str("the version origin is not 16 hexadecimal digits"),
        }
    }
}

fn join_bytes(
    field: &'static str,
    text: Option<String>,
    bytes: Option<Vec<u8>>,
) -> Result<Vec<u8>, DecodeError> {
    match (text, bytes) {
        (Some(text), None) => Ok(text.into_bytes()),
        (None, Some(bytes)) => Ok(bytes),
        _ => Err(DecodeError::Field(field)),
    }
}

/// Decodes a JSON record into a change.
pub(crate) fn decode(json: &[u8]) -> Result<RemoteChange, DecodeError> {
    let record: Record = serde_json::from_slice(json).map_err(|error| {
        let category = match error.classify() {
            serde_json::error::Category::Io => "I/O",
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "data",
            serde_json::error::Category::Eof => "end-of-input",
        };
        DecodeError::Json {
            category,
            line: error.line(),
            column: error.column(),
        }
    })?;
    let origin = &record.version.origin;
    if origin.len() != 16 {
        return Err(DecodeError::Origin);
    }
    let origin = u64::from_str_radix(origin, 16).map_err(|_| DecodeError::Origin)?;
    let version = Version::new(record.version.ms, record.version.counter, origin);

    let name = join_bytes("name", record.name, record.name_bytes)?;
    let path = join_bytes("path", record.path, record.path_bytes)?;
    let domain = record.domain.to_ascii_lowercase();
    if record.deleted {
        let key = CookieKey {
            domain,
            host_only: record.host_only,
            path,
            name,
        };
        return Ok(RemoteChange::new(version, CookieChange::Removed(key)));
    }
    let value = join_bytes("value", record.value, record.value_bytes)?;
    let cookie = Cookie {
        name: name.into_boxed_slice(),
        value: value.into_boxed_slice(),
        domain: domain.into_boxed_str(),
        host_only: record.host_only,
        path: path.into_boxed_slice(),
        secure: record.secure,
        http_only: record.http_only,
        expires_ms: record.expires_ms,
        created_ms: record.created_ms.unwrap_or(version.unix_ms()),
    };
    Ok(RemoteChange::new(version, CookieChange::Stored(cookie)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(domain: &str, host_only: bool, path: &[u8], name: &[u8]) -> CookieKey {
        CookieKey {
            domain: domain.to_owned(),
            host_only,
            path: path.to_vec(),
            name: name.to_vec(),
        }
    }

    #[test]
    fn cookie_key_layout() {
        let layout = KeyLayout::new("app:sticky:".to_owned());
        let shown = layout.cookie_key(&key("api.example", true, b"/v1", b"AWSALB"));
        assert_eq!(shown, "app:sticky:cookie:api.example:host:/v1:AWSALB");
        let shown = layout.cookie_key(&key("example.com", false, b"/", b"id"));
        assert_eq!(shown, "app:sticky:cookie:example.com:domain:/:id");
    }

    #[test]
    fn cookie_key_lowercases_domain() {
        let layout = KeyLayout::new("p:".to_owned());
        let upper = layout.cookie_key(&key("LB.Example", true, b"/", b"SRV"));
        let lower = layout.cookie_key(&key("lb.example", true, b"/", b"SRV"));
        assert_eq!(upper, lower);
    }

    #[test]
    fn cookie_key_escapes_separators() {
        let layout = KeyLayout::new("p:".to_owned());
        let shown = layout.cookie_key(&key("h", true, b"/a:b", b"n%*\xff"));
        assert_eq!(shown, "p:cookie:h:host:/a%3Ab:n%25%2A%FF");
    }

    #[test]
    fn cookie_keys_unambiguous() {
        let layout = KeyLayout::new(String::new());
        let first = layout.cookie_key(&key("h", true, b"/a:host:/", b"b"));
        let second = layout.cookie_key(&key("h", true, b"/a", b"host:/:b"));
        assert_ne!(first, second);
    }

    #[test]
    fn scan_pattern_escapes_globs() {
        let layout = KeyLayout::new("a*b?[c]:".to_owned());
        assert_eq!(layout.scan_pattern(), "a\\*b\\?\\[c\\]:cookie:*");
    }

    #[test]
    fn stored_round_trip() {
        let mut cookie = Cookie::new("SRV", "app-2", "api.example")
            .with_path("/v1")
            .with_secure(true);
        cookie.expires_ms = Some(1_800_000_000_000);
        cookie.created_ms = 1_700_000_000_000;
        let change = RemoteChange::new(
            Version::new(1_750_000_000_000, 3, 0xabc),
            CookieChange::Stored(cookie),
        );
        let json = encode(&change, false).expect("encodes");
        assert_eq!(decode(json.as_bytes()).expect("decodes"), change);
    }

    #[test]
    fn non_utf8_bytes_round_trip() {
        let cookie = Cookie::new(b"n\xff".to_vec(), b"v\xfe".to_vec(), "h");
        let change = RemoteChange::new(Version::new(1, 0, u64::MAX), CookieChange::Stored(cookie));
        let json = encode(&change, false).expect("encodes");
        assert!(json.contains("\"value_bytes\":[118,254]"), "{json}");
        assert_eq!(decode(json.as_bytes()).expect("decodes"), change);
    }

    #[test]
    fn removal_round_trip() {
        let change = RemoteChange::new(
            Version::new(5, 0, 1),
            CookieChange::Removed(key("h", false, b"/", b"n")),
        );
        let json = encode(&change, false).expect("encodes");
        assert!(json.contains("\"deleted\":true"), "{json}");
        assert!(!json.contains("value"), "{json}");
        assert_eq!(decode(json.as_bytes()).expect("decodes"), change);
    }

    #[test]
    fn expired_cookie_encoded_as_deletion() {
        let cookie = Cookie::new("n", "secret-value", "h");
        let change = RemoteChange::new(Version::new(5, 0, 1), CookieChange::Stored(cookie));
        let json = encode(&change, true).expect("encodes");
        assert!(!json.contains("secret-value"), "{json}");
        let decoded = decode(json.as_bytes()).expect("decodes");
        assert!(decoded.is_removal());
    }

    #[test]
    fn decode_error_hides_value() {
        let json = br#"{"version":{"ms":1,"counter":0,"origin":"0000000000000001"},
            "domain":"h","host_only":true,"path":"/","name":"n","value":42}"#;
        let error = decode(json).expect_err("value is not a string");
        assert!(!error.to_string().contains("42"), "{error}");
    }

    #[test]
    fn decode_rejects_short_origin() {
        let json = br#"{"version":{"ms":1,"counter":0,"origin":"1"},
            "domain":"h","host_only":true,"path":"/","name":"n","value":"v"}"#;
        assert!(matches!(decode(json), Err(DecodeError::Origin)));
    }

    #[test]
    fn decode_rejects_both_fields() {
        let json = br#"{"version":{"ms":1,"counter":0,"origin":"0000000000000001"},
            "domain":"h","host_only":true,"path":"/","name":"n","name_bytes":[110],"value":"v"}"#;
        assert!(matches!(decode(json), Err(DecodeError::Field("name"))));
    }
}
