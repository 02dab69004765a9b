//! Public suffixes: domains under which anyone can register a name, such as
//! `com`, `co.uk` or `github.io`, from the list at <https://publicsuffix.org>.

use std::{collections::HashSet, fmt, io, path::Path};

/// The path where Debian's `publicsuffix` package installs the list.
pub const DEBIAN_LIST_PATH: &str = "/usr/share/publicsuffix/public_suffix_list.dat";

/// A loaded public suffix list.
///
/// With a list, a jar rejects a `Domain` attribute that names a public
/// suffix, as RFC 6265 section 5.3 step 5 requires, so `example.co.uk` cannot set
/// a cookie for every site under `co.uk`. A `Domain` equal to the request
/// host is the exception: the cookie then becomes host-only.
///
/// The crate ships no list, so that a build never needs the network and the
/// list can be updated without a new release. Load the file from
/// <https://publicsuffix.org/list/public_suffix_list.dat> or from Debian's
/// `publicsuffix` package ([`DEBIAN_LIST_PATH`]).
///
/// ```no_run
/// use std::sync::Arc;
/// use tower_sticky::{MemoryJar, jar::PublicSuffixList};
///
/// let list = PublicSuffixList::from_file("/usr/share/publicsuffix/public_suffix_list.dat")?;
/// let jar = MemoryJar::builder().public_suffix_list(Arc::new(list)).build();
/// # let _ = jar;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct PublicSuffixList {
    /// Plain rules such as `co.uk`.
    rules: HashSet<Box<str>>,
    /// Parents of wildcard rules: `*.ck` is stored as `ck`.
    wildcard_parents: HashSet<Box<str>>,
    /// Exception rules without their `!`: `!www.ck` is stored as `www.ck`.
    exceptions: HashSet<Box<str>>,
}

impl PublicSuffixList {
    /// Reads a list in the format of `public_suffix_list.dat`.
    ///
    /// # Errors
    ///
    /// Returns the I/O error if the file cannot be read or is not UTF-8.
    pub fn from_file(path: impl AsRef<Path>) -> io::Result<Self> {
        let text = std::fs::read_to_string(path.as_ref())?;
        Ok(PublicSuffixList::parse(&text))
    }

    /// Parses a list in the format of `public_suffix_list.dat`: one rule a
    /// line, `//` comments, `*.` wildcards and `!` exceptions. Rules in
    /// Unicode are stored as A-labels (`xn--`), the form hosts take in URIs.
    pub fn parse(text: &str) -> Self {
        let mut list = PublicSuffixList::default();
        for line in text.lines() {
            // A rule ends at the first whitespace.
            let Some(rule) = line.split_whitespace().next() else {
                continue;
            };
            if rule.starts_with("//") {
                continue;
            }
            let Some(rule) = to_ascii_domain(rule) else {
                continue;
            };
            if let Some(exception) = rule.strip_prefix('!') {
                list.exceptions.insert(exception.into());
            } else if let Some(parent) = rule.strip_prefix("*.") {
                list.wildcard_parents.insert(parent.into());
            } else {
                list.rules.insert(rule.into());
            }
        }
        list
    }

    /// Returns how many rules the list contains.
    pub fn len(&self) -> usize {
        self.rules.len() + self.wildcard_parents.len() + self.exceptions.len()
    }

    /// Returns whether the list contains no rule.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Returns whether `domain` (lowercase, without a leading dot) is a
    /// public suffix.
    ///
    /// A name of one label is always one, by the list's implicit `*` rule.
    pub fn is_public_suffix(&self, domain: &str) -> bool {
        let domain = domain.trim_end_matches('.');
        if domain.is_empty() || self.exceptions.contains(domain) {
            return false;
        }
        if self.rules.contains(domain) {
            return true;
        }
        match domain.split_once('.') {
            Some((_, parent)) => self.wildcard_parents.contains(parent),
            None => true,
        }
    }
}

impl fmt::Debug for PublicSuffixList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicSuffixList")
            .field("rules", &self.len())
            .finish()
    }
}

/// Lowercases a rule and turns its Unicode labels into A-labels. Returns
/// `None` for a rule that cannot be encoded.
fn to_ascii_domain(rule: &str) -> Option<String> {
    if rule.is_ascii() {
        return Some(rule.to_ascii_lowercase());
    }
    let mut labels = Vec::new();
    for label in rule.split('.') {
        if label.is_ascii() {
            labels.push(label.to_ascii_lowercase());
        } else {
            labels.push(format!("xn--{}", punycode_encode(&label.to_lowercase())?));
        }
    }
    Some(labels.join("."))
}

/// Encodes a label with the Punycode algorithm of RFC 3492 section 6.3.
fn punycode_encode(label: &str) -> Option<String> {
    const BASE: u32 = 36;
    const T_MIN: u32 = 1;
    const T_MAX: u32 = 26;
    const SKEW: u32 = 38;
    const DAMP: u32 = 700;
    const INITIAL_BIAS: u32 = 72;
    const INITIAL_N: u32 = 128;

    fn digit(value: u32) -> char {
        let byte = if value < 26 {
            b'a' + value as u8
        } else {
            b'0' + (value - 26) as u8
        };
        char::from(byte)
    }

    fn adapt(mut delta: u32, points: u32, first: bool) -> u32 {
        delta = if first { delta / DAMP } else { delta / 2 };
        delta += delta / points;
        let mut k = 0;
        while delta > ((BASE - T_MIN) * T_MAX) / 2 {
            delta /= BASE - T_MIN;
            k += BASE;
        }
        k + (BASE - T_MIN + 1) * delta / (delta + SKEW)
    }

    let input: Vec<u32> = label.chars().map(u32::from).collect();
    let mut output: String = label.chars().filter(char::is_ascii).collect();
    let basic = output.len() as u32;
    let mut handled = basic;
    if basic > 0 {
        output.push('-');
    }

    let mut n = INITIAL_N;
    let mut delta: u32 = 0;
    let mut bias = INITIAL_BIAS;
    while (handled as usize) < input.len() {
        let next = input.iter().copied().filter(|&c| c >= n).min()?;
        delta = delta.checked_add((next - n).checked_mul(handled + 1)?)?;
        n = next;
        for &c in &input {
            if c < n {
                delta = delta.checked_add(1)?;
            }
            if c == n {
                let mut q = delta;
                let mut k = BASE;
                loop {
                    let t = if k <= bias {
                        T_MIN
                    } else if k >= bias + T_MAX {
                        T_MAX
                    } else {
                        k - bias
                    };
                    if q < t {
                        break;
                    }
                    output.push(digit(t + (q - t) % (BASE - t)));
                    q = (q - t) / (BASE - t);
                    k += BASE;
                }
                output.push(digit(q));
                bias = adapt(delta, handled + 1, handled == basic);
                delta = 0;
                handled += 1;
            }
        }
        delta = delta.checked_add(1)?;
        n = n.checked_add(1)?;
    }
    Some(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = "\
// a comment
com
co.uk
*.ck
!www.ck
bücher.example trailing text ignored

// ===BEGIN PRIVATE DOMAINS===
github.io
";

    #[test]
    fn plain_rules() {
        let list = PublicSuffixList::parse(LIST);
        assert!(list.is_public_suffix("com"));
        assert!(list.is_public_suffix("co.uk"));
        assert!(list.is_public_suffix("github.io"));
        assert!(!list.is_public_suffix("example.com"));
        assert!(!list.is_public_suffix("bbc.co.uk"));
    }

    #[test]
    fn single_label_is_suffix() {
        let list = PublicSuffixList::parse(LIST);
        assert!(list.is_public_suffix("uk"));
        assert!(list.is_public_suffix("localhost"));
    }

    #[test]
    fn wildcard_and_exception() {
        let list = PublicSuffixList::parse(LIST);
        assert!(list.is_public_suffix("anything.ck"));
        assert!(!list.is_public_suffix("www.ck"));
        assert!(!list.is_public_suffix("a.anything.ck"));
    }

    #[test]
    fn unicode_rule_matches_a_label() {
        let list = PublicSuffixList::parse(LIST);
        assert!(list.is_public_suffix("xn--bcher-kva.example"));
    }

    #[test]
    fn punycode_vectors() {
        // From RFC 3492 section 7.1 (sample strings A and L), and the
        // A-label of "bücher" used by IDNA test suites.
        assert_eq!(punycode_encode("bücher").as_deref(), Some("bcher-kva"));
        assert_eq!(
            punycode_encode("ليهمابتكلموشعربي؟").as_deref(),
            Some("egbpdaj6bu4bxfgehfvwxn")
        );
        assert_eq!(
            punycode_encode("3年b組金八先生").as_deref(),
            Some("3b-ww4c5e180e575a65lsy2b")
        );
    }

    #[test]
    fn empty_list_only_single_labels() {
        let list = PublicSuffixList::default();
        assert!(list.is_empty());
        assert!(list.is_public_suffix("com"));
        assert!(!list.is_public_suffix("co.uk"));
    }
}
