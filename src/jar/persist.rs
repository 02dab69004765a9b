//! Saving a [`MemoryJar`] to JSON and loading it back.
//!
//! A client that restarts loses its sticky sessions unless it keeps its
//! cookies somewhere. [`MemoryJar::save_to_file`] writes the jar to a file
//! and [`MemoryJar::load_from_file`] reads it into a jar, so the first
//! request after a restart goes to the same backend as the last one before
//! it. [`MemoryJar::save_json`] and [`MemoryJar::load_json`] do the same
//! with any writer and reader.
//!
//! ```
//! use tower_sticky::{MemoryJar, jar::{Cookie, SaveOptions}};
//!
//! let path = std::env::temp_dir().join(format!("tower-sticky-doc-{}.json", std::process::id()));
//!
//! let jar = MemoryJar::new();
//! jar.insert(Cookie::new("SRV", "s1", "api.example")).unwrap();
//! let saved = jar.save_to_file(&path, &SaveOptions::default())?;
//! assert_eq!(saved, 1);
//!
//! let restored = MemoryJar::new();
//! let report = restored.load_from_file(&path)?;
//! assert_eq!(report.loaded, 1);
//! assert_eq!(restored.cookies(), jar.cookies());
//! # std::fs::remove_file(&path).unwrap();
//! # Ok::<(), tower_sticky::jar::PersistError>(())
//! ```
//!
//! # What is saved
//!
//! Every cookie that has not expired, session cookies included: a client
//! process is the browser session, and the balancer's session cookie is
//! often the one that pins the backend. [`SaveOptions::include_session_cookies`]
//! leaves them out.
//!
//! The jar's counters ([`MemoryJar::stats`]) and its least-recently-used
//! order are not saved. After a load, the cookies created first are the
//! first to be evicted.
//!
//! # Loading
//!
//! Loading stores the file's cookies into the jar as
//! [`MemoryJar::insert`] does, so the jar's limits, filter and public suffix
//! list apply, and a cookie with the same key as a held one replaces it.
//! Cookies that expired since the file was written are skipped. The
//! returned [`LoadReport`] counts what was loaded, skipped and rejected.
//!
//! Cookies are stored oldest first, so that a jar that was empty before the
//! load sends them in the saved order. A loaded cookie that replaces none
//! comes after the cookies the jar already held with the same path length.
//!
//! A file that is not valid JSON, was written by a newer format version or
//! contains an invalid cookie is rejected as a whole, before any cookie is
//! stored. The [`PersistError`] names the line and column, the version, or
//! the cookie's index and field.
//!
//! # Format
//!
//! A JSON object, version 1:
//!
//! ```json
//! {
//!   "format": "tower-sticky-jar",
//!   "version": 1,
//!   "cookies": [
//!     {
//!       "name": "AWSALB",
//!       "value": "opaque",
//!       "domain": "api.example",
//!       "host_only": true,
//!       "path": "/",
//!       "secure": false,
//!       "http_only": false,
//!       "expires_ms": 1800000000000,
//!       "created_ms": 1799999000000
//!     }
//!   ]
//! }
//! ```
//!
//! - `name`, `value` and `path` are JSON strings when their bytes are UTF-8.
//!   Otherwise the cookie has `name_bytes`, `value_bytes` or `path_bytes`
//!   instead: an array of the bytes as numbers from 0 to 255. Each cookie
//!   has exactly one field of each pair.
//! - `domain` is the lowercase host of a host-only cookie, or the `Domain`
//!   attribute without its leading dot.
//! - `expires_ms` is the expiry time in milliseconds since the Unix epoch,
//!   `null` or absent for a session cookie. `created_ms` is the creation
//!   time in the same unit.
//! - `secure` and `http_only` may be left out and then are `false`.
//! - Any other field is an error. A later format that adds fields gets a
//!   new version number.

use std::{
    fmt,
    fs::{self, File, OpenOptions},
    io::{self, BufWriter, Read, Write},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use serde::{Deserialize, Serialize};

use super::{Cookie, MemoryJar, RejectReason, memory::unix_time_ms};

/// The value of the `format` field that marks a jar file.
const FORMAT_MARKER: &str = "tower-sticky-jar";

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u64 = 1;

/// Options for [`MemoryJar::save_json`] and [`MemoryJar::save_to_file`].
///
/// ```
/// use tower_sticky::jar::SaveOptions;
///
/// let persistent_only = SaveOptions::new().include_session_cookies(false);
/// # let _ = persistent_only;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(docsrs, doc(cfg(feature = "persist")))]
pub struct SaveOptions {
    /// Whether cookies without an expiry time are saved. Defaults to `true`.
    pub include_session_cookies: bool,
}

impl Default for SaveOptions {
    fn default() -> Self {
        SaveOptions {
            include_session_cookies: true,
        }
    }
}

impl SaveOptions {
    /// Creates the default options: every cookie that has not expired is
    /// saved.
    pub fn new() -> Self {
        SaveOptions::default()
    }

    /// Sets whether cookies without an expiry time are saved.
    #[must_use]
    pub fn include_session_cookies(mut self, include: bool) -> Self {
        self.include_session_cookies = include;
        self
    }
}

/// Counts from [`MemoryJar::load_json`]: the cookies it loaded, skipped and
/// rejected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(docsrs, doc(cfg(feature = "persist")))]
pub struct LoadReport {
    /// Cookies stored in the jar, new ones and replacements. Storing them
    /// may have evicted others to keep the jar within its limits, as
    /// [`JarStats::evicted`](crate::JarStats::evicted) counts.
    pub loaded: usize,
    /// Cookies skipped because their expiry time had passed.
    pub expired: usize,
    /// Cookies the jar rejected, such as one its filter does not accept or
    /// one over its size limit: the index in the file's `cookies` array and
    /// the reason. [`JarStats::rejected`](crate::JarStats::rejected) counts
    /// them as well.
    pub rejected: Vec<(usize, RejectReason)>,
}

/// An error from saving or loading a jar.
///
/// The variants that concern a file carry its path, or `None` for
/// [`MemoryJar::save_json`] and [`MemoryJar::load_json`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[cfg_attr(docsrs, doc(cfg(feature = "persist")))]
pub enum PersistError {
    /// Reading or writing failed.
    #[error("failed to {operation} {}: {source}", IoTarget(.path, .operation))]
    Io {
        /// The file, or `None` for a reader or writer.
        path: Option<PathBuf>,
        /// The operation that failed, such as `open` or
        /// `rename the temporary file to`.
        operation: &'static str,
        /// The error from the operating system.
        #[source]
        source: io::Error,
    },
    /// The input is not JSON, or its JSON does not have the shape of a jar.
    #[error(
        "{} is not a valid cookie jar: {message} at line {line}, column {column}; \
         fix the file or delete it to start with an empty jar",
        Location(.path)
    )]
    Json {
        /// The file, or `None` for a reader.
        path: Option<PathBuf>,
        /// The line of the error, counted from 1.
        line: usize,
        /// The column of the error, counted from 1, or 0 at the start of a
        /// line.
        column: usize,
        /// The parser's description of the problem.
        message: String,
    },
    /// The input is JSON, but not a jar written by this crate.
    #[error(
        "{} is not a tower-sticky cookie jar: {reason}; load a file written by \
         MemoryJar::save_json or MemoryJar::save_to_file",
        Location(.path)
    )]
    NotAJar {
        /// The file, or `None` for a reader.
        path: Option<PathBuf>,
        /// A description of the missing or different field.
        reason: String,
    },
    /// The file was written in a format version this build cannot read.
    #[error(
        "{} has cookie jar format version {found}, but this build of tower-sticky \
         reads only version {supported}; upgrade tower-sticky to read it, or delete \
         the file to start with an empty jar",
        Location(.path)
    )]
    UnsupportedVersion {
        /// The file, or `None` for a reader.
        path: Option<PathBuf>,
        /// The version in the file.
        found: u64,
        /// The version this build reads, [`FORMAT_VERSION`].
        supported: u64,
    },
    /// A cookie in the file has an invalid field.
    #[error(
        "`cookies[{index}].{field}` in {} is invalid: {reason}; fix or remove that cookie",
        Location(.path)
    )]
    InvalidCookie {
        /// The file, or `None` for a reader.
        path: Option<PathBuf>,
        /// The cookie's index in the `cookies` array, counted from 0.
        index: usize,
        /// The field, such as `name` or `path`.
        field: &'static str,
        /// A description of the problem.
        reason: String,
    },
}

impl PersistError {
    /// Returns whether the error is a file that does not exist, which a
    /// client starting for the first time can treat as an empty jar.
    pub fn is_not_found(&self) -> bool {
        matches!(self, PersistError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    /// Sets the path of an error that has none, such as one from a reader
    /// or writer, to `file`.
    fn at_path(mut self, file: &Path) -> Self {
        let (PersistError::Io { path, .. }
        | PersistError::Json { path, .. }
        | PersistError::NotAJar { path, .. }
        | PersistError::UnsupportedVersion { path, .. }
        | PersistError::InvalidCookie { path, .. }) = &mut self;
        if path.is_none() {
            *path = Some(file.to_path_buf());
        }
        self
    }

    fn io(operation: &'static str, source: io::Error) -> Self {
        PersistError::Io {
            path: None,
            operation,
            source,
        }
    }

    fn invalid_cookie(index: usize, field: &'static str, reason: impl Into<String>) -> Self {
        PersistError::InvalidCookie {
            path: None,
            index,
            field,
            reason: reason.into(),
        }
    }
}

/// Shows an error's path, or names the JSON input when it has none.
struct Location<'a>(&'a Option<PathBuf>);

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(path) => write!(f, "`{}`", path.display()),
            None => f.write_str("the JSON input"),
        }
    }
}

/// Shows the path of an I/O error, or names the JSON input or output when
/// it has none.
struct IoTarget<'a>(&'a Option<PathBuf>, &'a str);

impl fmt::Display for IoTarget<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (Some(_), _) => Location(self.0).fmt(f),
            (None, "read") => f.write_str("the JSON input"),
            (None, _) => f.write_str("the JSON output"),
        }
    }
}

/// The whole file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    format: String,
    version: u64,
    cookies: Vec<Record>,
}

/// Only the fields that decide whether the rest can be read. Other fields are
/// skipped unparsed.
#[derive(Deserialize)]
struct Envelope {
    format: Option<String>,
    version: Option<u64>,
}

/// One cookie in the file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name_bytes: Option<Vec<u8>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value_bytes: Option<Vec<u8>>,
    domain: String,
    host_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path_bytes: Option<Vec<u8>>,
    #[serde(default)]
    secure: bool,
    #[serde(default)]
    http_only: bool,
    #[serde(default)]
    expires_ms: Option<i64>,
    created_ms: i64,
}

/// Joins the string field and the byte-array field of a record back into
/// bytes. Exactly one of them must be present.
fn join_text(
    index: usize,
    field: &'static str,
    text: Option<String>,
    bytes: Option<Vec<u8>>,
) -> Result<Box<[u8]>, PersistError> {
    match (text, bytes) {
        (Some(text), None) => Ok(text.into_bytes().into_boxed_slice()),
        (None, Some(bytes)) => Ok(bytes.into_boxed_slice()),
        (Some(_), Some(_)) => Err(PersistError::invalid_cookie(
            index,
            field,
            format!("both `{field}` and `{field}_bytes` are set, keep only one"),
        )),
        (None, None) => Err(PersistError::invalid_cookie(
            index,
            field,
            format!("missing, set `{field}` or `{field}_bytes`"),
        )),
    }
}

impl Record {
    fn from_cookie(cookie: &Cookie) -> Self {
        let (name, name_bytes) = super::cookie::split_utf8(&cookie.name);
        let (value, value_bytes) = super::cookie::split_utf8(&cookie.value);
        let (path, path_bytes) = super::cookie::split_utf8(&cookie.path);
        Record {
            name,
            name_bytes,
            value,
            value_bytes,
            domain: cookie.domain.to_string(),
            host_only: cookie.host_only,
            path,
            path_bytes,
            secure: cookie.secure,
            http_only: cookie.http_only,
            expires_ms: cookie.expires_ms,
            created_ms: cookie.created_ms,
        }
    }

    /// Converts the record into a cookie, checking each field as
    /// [`MemoryJar::insert`] would, so that a bad cookie is reported with
    /// its field before any cookie is stored.
    fn into_cookie(self, index: usize) -> Result<Cookie, PersistError> {
        let name = join_text(index, "name", self.name, self.name_bytes)?;
        let value = join_text(index, "value", self.value, self.value_bytes)?;
        let path = join_text(index, "path", self.path, self.path_bytes)?;

        let invalid = |field| move |reason| PersistError::invalid_cookie(index, field, reason);
        check_name(&name).map_err(invalid("name"))?;
        check_header_bytes(&value).map_err(invalid("value"))?;
        check_domain(&self.domain).map_err(invalid("domain"))?;
        check_path(&path).map_err(invalid("path"))?;

        Ok(Cookie {
            name,
            value,
            domain: self.domain.to_ascii_lowercase().into_boxed_str(),
            host_only: self.host_only,
            path,
            secure: self.secure,
            http_only: self.http_only,
            expires_ms: self.expires_ms,
            created_ms: self.created_ms,
        })
    }
}

fn check_name(name: &[u8]) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".to_owned());
    }
    if name.contains(&b'=') {
        return Err("it contains `=`".to_owned());
    }
    check_header_bytes(name)
}

fn check_domain(domain: &str) -> Result<(), String> {
    if domain.is_empty() {
        return Err("it is empty".to_owned());
    }
    if !super::host::is_valid_domain(domain) {
        return Err(
            "it is not a host name or IP address (labels of letters, digits, `-` and `_` \
             between dots, with no port or wildcard)"
                .to_owned(),
        );
    }
    Ok(())
}

fn check_path(path: &[u8]) -> Result<(), String> {
    if path.first() != Some(&b'/') {
        return Err("it does not start with `/`".to_owned());
    }
    check_header_bytes(path)
}

/// Checks that bytes can go into a `Cookie` header as a name, value or
/// path: no control character other than tab, no `;`, and no whitespace at
/// either end.
fn check_header_bytes(bytes: &[u8]) -> Result<(), String> {
    if let Some(&bad) = bytes
        .iter()
        .find(|&&b| (b < 0x20 && b != b'\t') || b == 0x7f || b == b';')
    {
        return Err(format!(
            "it contains the byte {:?}, which a Cookie header cannot carry",
            char::from(bad)
        ));
    }
    if bytes.trim_ascii() != bytes {
        return Err("it starts or ends with whitespace".to_owned());
    }
    Ok(())
}

/// Reads and checks a whole document. No cookie is stored before every
/// cookie has passed.
fn parse_document(json: &[u8]) -> Result<Vec<Cookie>, PersistError> {
    // The envelope comes first, so that a file from a newer version is
    // reported as such instead of as a field this version does not know.
    let envelope: Envelope = serde_json::from_slice(json).map_err(json_error)?;
    match envelope.format.as_deref() {
        Some(FORMAT_MARKER) => {}
        Some(other) => {
            return Err(PersistError::NotAJar {
                path: None,
                reason: format!("its `format` is {other:?}, expected {FORMAT_MARKER:?}"),
            });
        }
        None => {
            return Err(PersistError::NotAJar {
                path: None,
                reason: "it has no `format` field".to_owned(),
            });
        }
    }
    match envelope.version {
        Some(FORMAT_VERSION) => {}
        Some(found) => {
            return Err(PersistError::UnsupportedVersion {
                path: None,
                found,
                supported: FORMAT_VERSION,
            });
        }
        None => {
            return Err(PersistError::NotAJar {
                path: None,
                reason: "it has no `version` field".to_owned(),
            });
        }
    }

    let document: Document = serde_json::from_slice(json).map_err(json_error)?;
    document
        .cookies
        .into_iter()
        .enumerate()
        .map(|(index, record)| record.into_cookie(index))
        .collect()
}

/// Converts a serde_json error into [`PersistError::Json`], or into
/// [`PersistError::Io`] when the reader or writer failed.
fn json_error(error: serde_json::Error) -> PersistError {
    if error.is_io() {
        return PersistError::io("write", io::Error::from(error));
    }
    let line = error.line();
    let column = error.column();
    // serde_json's message ends with the position, which the variant stores
    // in its own fields.
    let full = error.to_string();
    let suffix = format!(" at line {line} column {column}");
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
    PersistError::Json {
        path: None,
        line,
        column,
        message,
    }
}

/// Distinguishes the temporary files of concurrent saves in one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes a file through `write` so that `path` contains either its old
/// contents or the complete new ones, never a part.
///
/// The data goes to a new temporary file in the same directory, which is
/// synced to disk and then renamed over `path`. On any error the temporary
/// file is removed and `path` is left as it was.
fn write_atomically<T>(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<&File>) -> Result<T, PersistError>,
) -> Result<T, PersistError> {
    let file_name = path.file_name().ok_or_else(|| PersistError::Io {
        path: Some(path.to_path_buf()),
        operation: "save the jar to",
        source: io::Error::new(io::ErrorKind::InvalidInput, "the path does not name a file"),
    })?;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let temp_path = directory.join(temp_name);

    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    // Cookie values are credentials, so only the owner may read the file.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options
        .open(&temp_path)
        .map_err(|source| PersistError::Io {
            path: Some(temp_path.clone()),
            operation: "create the temporary file",
            source,
        })?;

    let written = write_and_sync(&file, write);
    drop(file);
    let result = written.and_then(|value| {
        fs::rename(&temp_path, path)
            .map(|()| value)
            .map_err(|source| PersistError::Io {
                path: Some(path.to_path_buf()),
                operation: "rename the temporary file to",
                source,
            })
    });
    match result {
        Ok(value) => {
            sync_directory(directory);
            Ok(value)
        }
        Err(error) => {
            // The error that stopped the save matters more than one from
            // this cleanup.
            let _ = fs::remove_file(&temp_path);
            Err(error.at_path(path))
        }
    }
}

fn write_and_sync<T>(
    file: &File,
    write: impl FnOnce(&mut BufWriter<&File>) -> Result<T, PersistError>,
) -> Result<T, PersistError> {
    let mut writer = BufWriter::new(file);
    let value = write(&mut writer)?;
    writer
        .flush()
        .map_err(|source| PersistError::io("write", source))?;
    file.sync_all()
        .map_err(|source| PersistError::io("sync", source))?;
    Ok(value)
}

/// Syncs a directory so that a rename in it survives a crash.
///
/// Best effort: the new file is complete and in place whether or not this
/// succeeds, and some platforms cannot open or sync a directory.
fn sync_directory(directory: &Path) {
    #[cfg(unix)]
    if let Ok(handle) = File::open(directory) {
        let _ = handle.sync_all();
    }
    #[cfg(not(unix))]
    let _ = directory;
}

#[cfg_attr(docsrs, doc(cfg(feature = "persist")))]
impl MemoryJar {
    /// Writes the jar's cookies to `writer` as JSON, in the format the
    /// [module docs](crate::jar::persist) describe, and returns how many
    /// cookies it wrote.
    ///
    /// Expired cookies are left out, and so are session cookies unless
    /// `options` includes them. The cookies are written oldest first.
    ///
    /// # Errors
    ///
    /// Returns [`PersistError::Io`] when writing fails.
    pub fn save_json<W: Write>(
        &self,
        mut writer: W,
        options: &SaveOptions,
    ) -> Result<usize, PersistError> {
        let now_ms = unix_time_ms();
        let mut cookies: Vec<Cookie> = self
            .cookies()
            .into_iter()
            .filter(|cookie| cookie.expires_ms.is_none_or(|expires| expires > now_ms))
            .filter(|cookie| options.include_session_cookies || !cookie.is_session())
            .collect();
        // `cookies()` lists each domain's cookies in creation order, and the
        // stable sort keeps that order for equal creation times.
        // NOTE: two cookies of different domains created in the same
        // millisecond may load in the other order, because the jar's
        // public API does not expose its creation sequence.
        cookies.sort_by_key(|cookie| cookie.created_ms);

        let document = Document {
            format: FORMAT_MARKER.to_owned(),
            version: FORMAT_VERSION,
            cookies: cookies.iter().map(Record::from_cookie).collect(),
        };
        serde_json::to_writer_pretty(&mut writer, &document).map_err(json_error)?;
        writer
            .write_all(b"\n")
            .and_then(|()| writer.flush())
            .map_err(|source| PersistError::io("write", source))?;
        Ok(document.cookies.len())
    }

    /// Reads cookies in the format the [module docs](crate::jar::persist)
    /// describe from `reader` and stores them in this jar.
    ///
    /// The jar's limits, filter and public suffix list apply as for
    /// [`MemoryJar::insert`]. Expired cookies are skipped. The report counts
    /// the cookies loaded, skipped and rejected.
    ///
    /// # Errors
    ///
    /// Returns an error, and stores nothing, when the input cannot be read
    /// ([`PersistError::Io`]), is not JSON of the expected shape
    /// ([`PersistError::Json`]), is not a jar ([`PersistError::NotAJar`]),
    /// has another format version ([`PersistError::UnsupportedVersion`]) or
    /// contains a cookie with an invalid field ([`PersistError::InvalidCookie`]).
    pub fn load_json<R: Read>(&self, mut reader: R) -> Result<LoadReport, PersistError> {
        let mut json = Vec::new();
        reader
            .read_to_end(&mut json)
            .map_err(|source| PersistError::io("read", source))?;
        let mut cookies: Vec<(usize, Cookie)> =
            parse_document(&json)?.into_iter().enumerate().collect();
        // Oldest first, so that the jar's creation order, which sets the
        // header order, follows the saved creation times.
        cookies.sort_by_key(|(_, cookie)| cookie.created_ms);

        let now_ms = unix_time_ms();
        let mut report = LoadReport::default();
        for (index, cookie) in cookies {
            if cookie.expires_ms.is_some_and(|expires| expires <= now_ms) {
                report.expired += 1;
                continue;
            }
            match self.insert_at(cookie, now_ms) {
                Ok(()) => report.loaded += 1,
                Err(reason) => report.rejected.push((index, reason)),
            }
        }
        report.rejected.sort_unstable_by_key(|(index, _)| *index);
        Ok(report)
    }

    /// Saves the jar to the file at `path`, as [`MemoryJar::save_json`]
    /// does, and returns how many cookies it wrote.
    ///
    /// The file is replaced atomically: the JSON goes to a temporary file in
    /// the same directory, which is synced to disk and then renamed to
    /// `path`. A crash or an error leaves either the old file or the new
    /// one, never a part of either, and an error removes the temporary file.
    /// On Unix a new file is readable by its owner only, because cookie
    /// values are credentials.
    ///
    /// # Errors
    ///
    /// Returns [`PersistError::Io`] with the path when the directory does not
    /// exist or cannot be written, or when writing, syncing or renaming
    /// fails.
    pub fn save_to_file(
        &self,
        path: impl AsRef<Path>,
        options: &SaveOptions,
    ) -> Result<usize, PersistError> {
        let path = path.as_ref();
        write_atomically(path, |writer| self.save_json(writer, options))
    }

    /// Loads the cookies of the file at `path` into this jar, as
    /// [`MemoryJar::load_json`] does.
    ///
    /// # Errors
    ///
    /// Returns the errors of [`MemoryJar::load_json`] with the path set.
    /// [`PersistError::is_not_found`] distinguishes a missing file from
    /// other errors.
    pub fn load_from_file(&self, path: impl AsRef<Path>) -> Result<LoadReport, PersistError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| PersistError::Io {
            path: Some(path.to_path_buf()),
            operation: "open",
            source,
        })?;
        self.load_json(io::BufReader::new(file))
            .map_err(|error| error.at_path(path))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::{CookieJar, RequestTarget, jar::CookieFilter};

    /// Returns the time an hour from now, in Unix milliseconds.
    fn in_an_hour_ms() -> i64 {
        unix_time_ms() + 3_600_000
    }

    fn cookie(name: &[u8], value: &[u8], domain: &str, created_ms: i64) -> Cookie {
        let mut cookie = Cookie::new(name, value, domain);
        cookie.created_ms = created_ms;
        cookie
    }

    fn save(jar: &MemoryJar, options: &SaveOptions) -> Vec<u8> {
        let mut json = Vec::new();
        jar.save_json(&mut json, options).expect("save to a Vec");
        json
    }

    fn header(jar: &MemoryJar, host: &str, path: &str) -> Option<Vec<u8>> {
        jar.cookie_header(&RequestTarget::new(host, path, true))
            .map(|value| value.as_bytes().to_vec())
    }

    /// A directory under the system temp directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(label: &str) -> Self {
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            let path = std::env::temp_dir().join(format!(
                "tower-sticky-persist-{label}-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            fs::create_dir_all(&path).expect("create the test directory");
            TempDir(path)
        }

        fn entries(&self) -> Vec<String> {
            let mut names: Vec<String> = fs::read_dir(&self.0)
                .expect("read the test directory")
                .map(|entry| entry.expect("a directory entry").file_name())
                .map(|name| name.to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn varied_jar() -> MemoryJar {
        let jar = MemoryJar::new();
        let expires = in_an_hour_ms();
        let cookies = [
            cookie(b"AWSALB", b"opaque+/=", "lb.example", 1_000),
            cookie(b"SRV", b"s1", "lb.example", 2_000).with_path("/api"),
            cookie(b"shared", b"d", "example", 3_000)
                .with_host_only(false)
                .with_secure(true)
                .with_http_only(true),
            cookie(b"quoted", b"\"a,b\"", "lb.example", 4_000),
        ];
        for mut cookie in cookies {
            if cookie.name_bytes() != b"SRV" {
                cookie.expires_ms = Some(expires);
            }
            jar.insert(cookie).expect("a valid cookie");
        }
        jar
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let jar = varied_jar();
        let json = save(&jar, &SaveOptions::default());

        let restored = MemoryJar::new();
        let report = restored.load_json(&json[..]).expect("load");

        assert_eq!(report.loaded, 4);
        assert_eq!(restored.cookies(), jar.cookies());
    }

    #[test]
    fn round_trip_keeps_header_order() {
        let jar = MemoryJar::new();
        // Inserted newest first, so the creation times and not the insertion
        // order decide the header order after a load.
        for (name, created_ms) in [("c", 3_000), ("a", 1_000), ("b", 2_000)] {
            jar.insert(cookie(name.as_bytes(), b"1", "h.example", created_ms))
                .expect("a valid cookie");
        }
        let restored = MemoryJar::new();
        restored
            .load_json(&save(&jar, &SaveOptions::default())[..])
            .expect("load");

        let expected: &[u8] = b"a=1; b=1; c=1";
        assert_eq!(
            header(&restored, "h.example", "/").as_deref(),
            Some(expected)
        );
    }

    #[test]
    fn non_utf8_bytes_round_trip() {
        let jar = MemoryJar::new();
        let odd = cookie(b"n\xff", b"v\x80\xfe", "h.example", 1_000).with_path(&b"/p\xc3"[..]);
        jar.insert(odd).expect("a valid cookie");

        let json = save(&jar, &SaveOptions::default());
        let text = String::from_utf8(json.clone()).expect("JSON is UTF-8");
        assert!(text.contains("\"name_bytes\""), "{text}");
        assert!(text.contains("\"value_bytes\""), "{text}");
        assert!(text.contains("\"path_bytes\""), "{text}");

        let restored = MemoryJar::new();
        restored.load_json(&json[..]).expect("load");
        assert_eq!(restored.cookies(), jar.cookies());
    }

    #[test]
    fn document_has_marker_and_version() {
        let json = save(&varied_jar(), &SaveOptions::default());
        let value: serde_json::Value = serde_json::from_slice(&json).expect("valid JSON");
        assert_eq!(value["format"], "tower-sticky-jar");
        assert_eq!(value["version"], 1);
        assert_eq!(value["cookies"][0]["name"], "AWSALB");
        assert_eq!(value["cookies"][1]["expires_ms"], serde_json::Value::Null);
    }

    #[test]
    fn session_cookies_left_out_on_request() {
        let jar = varied_jar();
        let options = SaveOptions::new().include_session_cookies(false);
        let mut json = Vec::new();
        let written = jar.save_json(&mut json, &options).expect("save");

        let restored = MemoryJar::new();
        restored.load_json(&json[..]).expect("load");
        let names: Vec<String> = restored
            .cookies()
            .iter()
            .map(|cookie| cookie.name().into_owned())
            .collect();
        assert_eq!(written, 3);
        assert!(!names.contains(&"SRV".to_owned()), "{names:?}");
        assert_eq!(restored.len(), 3);
    }

    #[test]
    fn expired_cookies_not_saved() {
        let jar = MemoryJar::new();
        let mut expired = cookie(b"old", b"1", "h.example", 1_000);
        expired.expires_ms = Some(unix_time_ms() - 1_000);
        // Stored as of the Unix epoch, when it had not expired yet.
        jar.insert_at(expired, 0).expect("a valid cookie");
        jar.insert(cookie(b"live", b"1", "h.example", 2_000))
            .expect("a valid cookie");

        let written = jar
            .save_json(Vec::new(), &SaveOptions::default())
            .expect("save");

        assert_eq!(jar.len(), 2);
        assert_eq!(written, 1);
    }

    #[test]
    fn expired_cookies_skipped_on_load() {
        let json = format!(
            r#"{{"format": "tower-sticky-jar", "version": 1, "cookies": [
                {{"name": "gone", "value": "1", "domain": "h.example", "host_only": true,
                  "path": "/", "expires_ms": 1000, "created_ms": 1}},
                {{"name": "kept", "value": "1", "domain": "h.example", "host_only": true,
                  "path": "/", "expires_ms": {}, "created_ms": 2}}
            ]}}"#,
            in_an_hour_ms()
        );
        let jar = MemoryJar::new();
        let report = jar.load_json(json.as_bytes()).expect("load");

        assert_eq!(report.expired, 1);
        assert_eq!(report.loaded, 1);
        assert_eq!(jar.len(), 1);
    }

    #[test]
    fn jar_filter_applies_on_load() {
        let json = save(&varied_jar(), &SaveOptions::default());
        let jar = MemoryJar::builder()
            .filter(CookieFilter::allow(["AWSALB"]))
            .build();
        let report = jar.load_json(&json[..]).expect("load");

        assert_eq!(report.loaded, 1);
        assert_eq!(report.rejected.len(), 3);
        assert!(
            report
                .rejected
                .iter()
                .all(|(_, reason)| *reason == RejectReason::Filtered),
            "{report:?}"
        );
        assert_eq!(jar.stats().rejected(RejectReason::Filtered), 3);
    }

    #[test]
    fn newer_version_rejected() {
        let json = br#"{"format": "tower-sticky-jar", "version": 2, "cookies": [], "new": 1}"#;
        let error = MemoryJar::new().load_json(&json[..]).unwrap_err();

        assert!(
            matches!(
                error,
                PersistError::UnsupportedVersion {
                    found: 2,
                    supported: 1,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains("version 2"), "{error}");
    }

    #[test]
    fn other_format_rejected() {
        let json = br#"{"format": "something-else", "version": 1, "cookies": []}"#;
        let error = MemoryJar::new().load_json(&json[..]).unwrap_err();
        assert!(matches!(error, PersistError::NotAJar { .. }), "{error:?}");
    }

    #[test]
    fn missing_marker_rejected() {
        let error = MemoryJar::new().load_json(&b"{}"[..]).unwrap_err();
        assert!(matches!(error, PersistError::NotAJar { .. }), "{error:?}");
    }

    #[test]
    fn malformed_json_names_position() {
        let json = b"{\n  \"format\": \"tower-sticky-jar\",\n  \"version\": 1,,\n}";
        let error = MemoryJar::new().load_json(&json[..]).unwrap_err();

        let PersistError::Json {
            line,
            column,
            ref message,
            ..
        } = error
        else {
            panic!("expected a JSON error, got {error:?}");
        };
        assert_eq!(line, 3);
        assert_eq!(column, 16);
        assert!(!message.contains("line"), "{message}");
        assert!(
            error.to_string().contains("at line 3, column 16"),
            "{error}"
        );
    }

    #[test]
    fn wrong_field_type_names_position() {
        let json = br#"{"format": "tower-sticky-jar", "version": 1, "cookies": [
{"name": "a", "value": "1", "domain": "h", "host_only": "yes", "path": "/", "created_ms": 1}]}"#;
        let error = MemoryJar::new().load_json(&json[..]).unwrap_err();
        assert!(
            matches!(error, PersistError::Json { line: 2, .. }),
            "{error:?}"
        );
    }

    #[test]
    fn bad_cookie_names_index_and_field() {
        let json = br#"{"format": "tower-sticky-jar", "version": 1, "cookies": [
            {"name": "a", "value": "1", "domain": "h", "host_only": true, "path": "/", "created_ms": 1},
            {"name": "b", "value": "1", "domain": "h", "host_only": true, "path": "api", "created_ms": 2}
        ]}"#;
        let jar = MemoryJar::new();
        let error = jar.load_json(&json[..]).unwrap_err();

        assert!(
            matches!(
                error,
                PersistError::InvalidCookie {
                    index: 1,
                    field: "path",
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains("`cookies[1].path`"), "{error}");
        assert!(jar.is_empty(), "a rejected file stores nothing");
    }

    #[test]
    fn name_and_name_bytes_conflict() {
        let json = br#"{"format": "tower-sticky-jar", "version": 1, "cookies": [
            {"name": "a", "name_bytes": [97], "value": "1", "domain": "h", "host_only": true,
             "path": "/", "created_ms": 1}
        ]}"#;
        let error = MemoryJar::new().load_json(&json[..]).unwrap_err();
        assert!(
            matches!(
                error,
                PersistError::InvalidCookie {
                    index: 0,
                    field: "name",
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn control_byte_in_value_rejected() {
        let json = br#"{"format": "tower-sticky-jar", "version": 1, "cookies": [
            {"name": "a", "value_bytes": [49, 13, 10, 50], "domain": "h", "host_only": true,
             "path": "/", "created_ms": 1}
        ]}"#;
        let error = MemoryJar::new().load_json(&json[..]).unwrap_err();
        assert!(
            matches!(
                error,
                PersistError::InvalidCookie {
                    index: 0,
                    field: "value",
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn unknown_cookie_field_rejected() {
        let json = br#"{"format": "tower-sticky-jar", "version": 1, "cookies": [
            {"name": "a", "value": "1", "domain": "h", "host_only": true, "path": "/",
             "created_ms": 1, "expires": 5}
        ]}"#;
        let error = MemoryJar::new().load_json(&json[..]).unwrap_err();
        assert!(
            matches!(error, PersistError::Json { line: 3, .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("`expires`"), "{error}");
    }

    /// A writer that fails on every write.
    struct BrokenWriter;

    impl Write for BrokenWriter {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("device unplugged"))
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn writer_error_names_output() {
        let error = varied_jar()
            .save_json(BrokenWriter, &SaveOptions::default())
            .unwrap_err();

        assert!(
            matches!(
                &error,
                PersistError::Io {
                    path: None,
                    operation: "write",
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "failed to write the JSON output: device unplugged"
        );
    }

    #[test]
    fn file_round_trip() {
        let dir = TempDir::new("file");
        let path = dir.0.join("jar.json");
        let jar = varied_jar();

        let written = jar
            .save_to_file(&path, &SaveOptions::default())
            .expect("save");
        let restored = MemoryJar::new();
        let report = restored.load_from_file(&path).expect("load");

        assert_eq!(written, 4);
        assert_eq!(report.loaded, 4);
        assert_eq!(restored.cookies(), jar.cookies());
        assert_eq!(dir.entries(), ["jar.json"]);
    }

    #[cfg(unix)]
    #[test]
    fn saved_file_owner_only() {
        use std::os::unix::fs::PermissionsExt;

        let dir = TempDir::new("mode");
        let path = dir.0.join("jar.json");
        varied_jar()
            .save_to_file(&path, &SaveOptions::default())
            .expect("save");
        let mode = fs::metadata(&path).expect("metadata").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn save_replaces_old_file() {
        let dir = TempDir::new("replace");
        let path = dir.0.join("jar.json");
        fs::write(&path, b"old contents").expect("write the old file");

        varied_jar()
            .save_to_file(&path, &SaveOptions::default())
            .expect("save");

        let restored = MemoryJar::new();
        restored.load_from_file(&path).expect("load");
        assert_eq!(restored.len(), 4);
        assert_eq!(dir.entries(), ["jar.json"]);
    }

    #[test]
    fn failed_write_keeps_old_file() {
        let dir = TempDir::new("failed-write");
        let path = dir.0.join("jar.json");
        fs::write(&path, b"old contents").expect("write the old file");

        let result: Result<(), PersistError> = write_atomically(&path, |writer| {
            writer
                .write_all(b"{\"format\": \"tower-sticky-jar\", \"ver")
                .and_then(|()| writer.flush())
                .map_err(|source| PersistError::io("write", source))?;
            Err(PersistError::io("write", io::Error::other("disk full")))
        });

        let error = result.unwrap_err();
        assert!(
            matches!(&error, PersistError::Io { path: Some(p), .. } if *p == path),
            "{error:?}"
        );
        assert_eq!(fs::read(&path).expect("read"), b"old contents");
        assert_eq!(dir.entries(), ["jar.json"]);
    }

    #[test]
    fn failed_rename_removes_temp_file() {
        let dir = TempDir::new("failed-rename");
        // A directory in the place of the file makes the final rename fail
        // after the temporary file was written.
        let path = dir.0.join("jar.json");
        fs::create_dir(&path).expect("create the blocking directory");
        fs::write(path.join("kept"), b"x").expect("write into it");

        let error = varied_jar()
            .save_to_file(&path, &SaveOptions::default())
            .unwrap_err();

        assert!(
            matches!(&error, PersistError::Io { operation, .. } if operation.starts_with("rename")),
            "{error:?}"
        );
        assert_eq!(dir.entries(), ["jar.json"]);
        assert_eq!(fs::read(path.join("kept")).expect("read"), b"x");
    }

    #[test]
    fn missing_directory_names_path() {
        let dir = TempDir::new("missing-dir");
        let path = dir.0.join("absent").join("jar.json");

        let error = varied_jar()
            .save_to_file(&path, &SaveOptions::default())
            .unwrap_err();

        assert!(matches!(error, PersistError::Io { .. }), "{error:?}");
        assert!(
            error
                .to_string()
                .contains(&dir.0.join("absent").display().to_string()),
            "{error}"
        );
        assert!(error.is_not_found(), "{error:?}");
    }

    #[test]
    fn missing_file_is_not_found() {
        let dir = TempDir::new("missing-file");
        let error = MemoryJar::new()
            .load_from_file(dir.0.join("absent.json"))
            .unwrap_err();
        assert!(error.is_not_found(), "{error:?}");
        assert!(error.to_string().contains("absent.json"), "{error}");
    }

    #[test]
    fn file_errors_carry_path() {
        let dir = TempDir::new("bad-file");
        let path = dir.0.join("jar.json");
        fs::write(&path, b"{\"format\": ").expect("write");

        let error = MemoryJar::new().load_from_file(&path).unwrap_err();

        assert!(
            matches!(&error, PersistError::Json { path: Some(p), .. } if *p == path),
            "{error:?}"
        );
        assert!(!error.is_not_found(), "{error:?}");
    }

    #[test]
    fn load_keeps_expiry_time() {
        let expires = SystemTime::now() + Duration::from_secs(7 * 24 * 3600);
        let jar = MemoryJar::new();
        jar.insert(Cookie::new("AWSALB", "x", "h.example").with_expires(Some(expires)))
            .expect("a valid cookie");
        let restored = MemoryJar::new();
        restored
            .load_json(&save(&jar, &SaveOptions::default())[..])
            .expect("load");
        assert_eq!(restored.cookies()[0].expires(), jar.cookies()[0].expires());
    }
}
