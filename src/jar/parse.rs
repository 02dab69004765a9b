//! The `Set-Cookie` parser of RFC 6265 section 5.2 and the cookie-date
//! algorithm of section 5.1.1.
//!
//! The parser works on raw header bytes and never allocates. It follows the
//! user-agent algorithm, not the stricter server grammar of section 4.1: a
//! comma never splits a value, quotes are ordinary bytes, and an attribute it
//! does not understand is ignored.

use std::fmt;

/// A `Set-Cookie` value split into its parts, borrowed from the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParsedSetCookie<'a> {
    pub(crate) name: &'a [u8],
    pub(crate) value: &'a [u8],
    /// `Expires` as milliseconds since the Unix epoch, from the last valid
    /// `Expires` attribute.
    pub(crate) expires_ms: Option<i64>,
    /// `Max-Age` in seconds, from the last valid `Max-Age` attribute.
    pub(crate) max_age: Option<i64>,
    /// The last `Domain` attribute with its leading dot removed, not yet
    /// lowercased. `Some(b"")` means `Domain=.`, which RFC 6265 turns into a
    /// host-only cookie.
    pub(crate) domain: Option<&'a [u8]>,
    /// The last `Path` attribute that starts with `/`. A `Path` that is empty
    /// or does not start with `/` resets this to `None`, so the default path
    /// applies.
    pub(crate) path: Option<&'a [u8]>,
    pub(crate) secure: bool,
    pub(crate) http_only: bool,
}

/// The reason a `Set-Cookie` value could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// The name-value pair has no `=`.
    MissingEquals,
    /// The name is empty after trimming.
    EmptyName,
    /// The name or value contains a control character other than tab.
    InvalidCharacter,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseError::MissingEquals => "the name-value pair has no `=`",
            ParseError::EmptyName => "the cookie name is empty",
            ParseError::InvalidCharacter => "the name or value contains a control character",
        })
    }
}

/// Trims the whitespace that RFC 6265 calls WSP (space and horizontal tab).
fn trim_wsp(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

fn is_control_character(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// `0x01` in every byte of a word.
const LOW_BITS: u64 = u64::from_ne_bytes([0x01; 8]);
/// `0x80` in every byte of a word.
const HIGH_BITS: u64 = u64::from_ne_bytes([0x80; 8]);

/// Returns whether a byte of `word` is below `0x20`, `0x7f` or `;`: a byte
/// that [`scan_pair`] must look at one by one. The result is exact for the
/// word as a whole, not per byte.
fn word_needs_bytewise_scan(word: u64) -> bool {
    // A byte's high bit survives `byte - n` and `!byte` only when the byte
    // is below `n` (for `n <= 0x80`), so this tests for a byte below 0x20.
    let below_space = word.wrapping_sub(LOW_BITS * 0x20) & !word & HIGH_BITS;
    let semicolon = zero_bytes(word ^ (LOW_BITS * u64::from(b';')));
    let delete = zero_bytes(word ^ (LOW_BITS * 0x7f));
    below_space | semicolon | delete != 0
}

/// Returns the high bit of each byte of `word` that is zero. Below the
/// lowest zero byte no bit is set, so in a word loaded little-endian the
/// lowest set bit marks the first zero byte.
fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(LOW_BITS) & !word & HIGH_BITS
}

/// Finds the first `needle` in `haystack`, eight bytes at a time.
fn find_byte(haystack: &[u8], needle: u8) -> Option<usize> {
    let pattern = LOW_BITS * u64::from(needle);
    let mut words = haystack.chunks_exact(8);
    let mut start = 0;
    for word in &mut words {
        let word = u64::from_le_bytes(word.try_into().expect("chunk of 8 bytes"));
        let found = zero_bytes(word ^ pattern);
        if found != 0 {
            return Some(start + found.trailing_zeros() as usize / 8);
        }
        start += 8;
    }
    let rest = words.remainder().iter().position(|&b| b == needle)?;
    Some(start + rest)
}

/// Finds the end of the name-value pair, the first `;` or the end of the
/// header, and whether the pair contains a control character.
///
/// Cookie values are long runs of ordinary bytes, so the scan tests eight
/// bytes at a time and looks at single bytes only in words that contain a
/// `;` or a control character.
fn scan_pair(header: &[u8]) -> (usize, bool) {
    let mut has_control = false;
    let mut start = 0;
    let mut words = header.chunks_exact(8);
    for word in &mut words {
        let bytes: [u8; 8] = word.try_into().expect("chunk of 8 bytes");
        if word_needs_bytewise_scan(u64::from_ne_bytes(bytes)) {
            for (offset, &b) in bytes.iter().enumerate() {
                if b == b';' {
                    return (start + offset, has_control);
                }
                has_control |= is_control_character(b);
            }
        }
        start += 8;
    }
    for (offset, &b) in words.remainder().iter().enumerate() {
        if b == b';' {
            return (start + offset, has_control);
        }
        has_control |= is_control_character(b);
    }
    (header.len(), has_control)
}

/// Parses one `Set-Cookie` header value (RFC 6265 section 5.2).
pub(crate) fn parse_set_cookie(header: &[u8]) -> Result<ParsedSetCookie<'_>, ParseError> {
    let (pair_end, pair_has_control) = scan_pair(header);
    let (pair, mut attributes) = header.split_at(pair_end);

    let equals = find_byte(pair, b'=').ok_or(ParseError::MissingEquals)?;
    let name = trim_wsp(&pair[..equals]);
    let value = trim_wsp(&pair[equals + 1..]);
    if name.is_empty() {
        return Err(ParseError::EmptyName);
    }
    // Trimming removes only spaces and tabs, and the `=` between name and
    // value is no control character, so a control character anywhere in the
    // pair lies in the name or the value.
    if pair_has_control {
        return Err(ParseError::InvalidCharacter);
    }

    let mut cookie = ParsedSetCookie {
        name,
        value,
        expires_ms: None,
        max_age: None,
        domain: None,
        path: None,
        secure: false,
        http_only: false,
    };

    // Each attribute runs from one `;` to the next. `attributes` starts at a
    // `;` or is empty.
    while let [b';', rest @ ..] = attributes {
        let end = find_byte(rest, b';').unwrap_or(rest.len());
        let attribute = &rest[..end];
        attributes = &rest[end..];

        let (key, value) = match find_byte(attribute, b'=') {
            Some(at) => (trim_wsp(&attribute[..at]), trim_wsp(&attribute[at + 1..])),
            None => (trim_wsp(attribute), &attribute[attribute.len()..]),
        };
        apply_attribute(&mut cookie, key, value);
    }

    Ok(cookie)
}

/// Maximum length of an attribute value the parser uses. RFC 6265bis section 5.6 has user
/// agents ignore a longer one, which keeps a hostile `Path` or `Domain` from
/// growing the jar past its cookie size limit.
pub(crate) const MAX_ATTRIBUTE_VALUE_LEN: usize = 1024;

fn apply_attribute<'a>(cookie: &mut ParsedSetCookie<'a>, key: &[u8], value: &'a [u8]) {
    if value.len() > MAX_ATTRIBUTE_VALUE_LEN {
        return;
    }
    if key.eq_ignore_ascii_case(b"expires") {
        if let Some(ms) = parse_cookie_date(value) {
            cookie.expires_ms = Some(ms);
        }
    } else if key.eq_ignore_ascii_case(b"max-age") {
        if let Some(seconds) = parse_max_age(value) {
            cookie.max_age = Some(seconds);
        }
    } else if key.eq_ignore_ascii_case(b"domain") {
        // RFC 6265 leaves an empty Domain undefined and recommends ignoring
        // the attribute, which keeps the cookie host-only.
        if !value.is_empty() {
            cookie.domain = Some(value.strip_prefix(b".").unwrap_or(value));
        }
    } else if key.eq_ignore_ascii_case(b"path") {
        cookie.path = match value.first() {
            Some(b'/') => Some(value),
            _ => None,
        };
    } else if key.eq_ignore_ascii_case(b"secure") {
        cookie.secure = true;
    } else if key.eq_ignore_ascii_case(b"httponly") {
        cookie.http_only = true;
    }
}

/// Parses a `Max-Age` value: an optional `-` followed by digits only.
/// Values beyond the range of `i64` saturate.
fn parse_max_age(value: &[u8]) -> Option<i64> {
    let (negative, digits) = match value {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, value),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let magnitude = digits.iter().fold(0i64, |total, &digit| {
        total
            .saturating_mul(10)
            .saturating_add(i64::from(digit - b'0'))
    });
    Some(if negative { -magnitude } else { magnitude })
}

/// Returns whether `b` is a delimiter of the cookie-date grammar (RFC 6265
/// section 5.1.1).
fn is_date_delimiter(b: u8) -> bool {
    matches!(b, 0x09 | 0x20..=0x2f | 0x3b..=0x40 | 0x5b..=0x60 | 0x7b..=0x7e)
}

/// Splits off the leading digits of `token` when there are between `min`
/// and `max` of them, and returns their value and the rest of the token.
fn leading_number(token: &[u8], min: usize, max: usize) -> Option<(u32, &[u8])> {
    let count = token.iter().take_while(|b| b.is_ascii_digit()).count();
    if count < min || count > max {
        return None;
    }
    let value = token[..count]
        .iter()
        .fold(0u32, |total, &digit| total * 10 + u32::from(digit - b'0'));
    Some((value, &token[count..]))
}

/// Matches `hms-time ( non-digit *OCTET )`.
fn parse_time(token: &[u8]) -> Option<(u32, u32, u32)> {
    let (hour, rest) = leading_number(token, 1, 2)?;
    let rest = rest.strip_prefix(b":")?;
    let (minute, rest) = leading_number(rest, 1, 2)?;
    let rest = rest.strip_prefix(b":")?;
    let (second, _) = leading_number(rest, 1, 2)?;
    Some((hour, minute, second))
}

/// Lowercases the first three bytes of `token`, as far as they are ASCII
/// letters. Setting bit `0x20` turns an upper-case letter into its lower
/// case and never turns any other byte into a lower-case letter.
fn lowercase_prefix(token: &[u8]) -> Option<[u8; 3]> {
    let prefix = token.get(..3)?;
    Some([prefix[0] | 0x20, prefix[1] | 0x20, prefix[2] | 0x20])
}

fn parse_month(token: &[u8]) -> Option<u32> {
    let month = match &lowercase_prefix(token)? {
        b"jan" => 1,
        b"feb" => 2,
        b"mar" => 3,
        b"apr" => 4,
        b"may" => 5,
        b"jun" => 6,
        b"jul" => 7,
        b"aug" => 8,
        b"sep" => 9,
        b"oct" => 10,
        b"nov" => 11,
        b"dec" => 12,
        _ => return None,
    };
    Some(month)
}

/// The fields of a cookie-date, before the range checks of RFC 6265 section
/// 5.1.1.
struct DateFields {
    day: u32,
    month: u32,
    year: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

/// Parses a cookie-date (RFC 6265 section 5.1.1) into milliseconds since the
/// Unix epoch. Returns `None` where the algorithm fails.
pub(crate) fn parse_cookie_date(input: &[u8]) -> Option<i64> {
    let fields = match imf_fixdate_fields(input) {
        Some(fields) => fields,
        None => cookie_date_fields(input)?,
    };
    fields.into_unix_ms()
}

/// Reads the fields of an IMF-fixdate (RFC 9110 section 5.6.7), such as
/// `Sun, 06 Nov 1994 08:49:37 GMT`, the form servers send in `Expires`.
///
/// Returns `None` for any other layout. For an input it accepts, the
/// general algorithm finds the same fields: the day name is no month name
/// and no number, so it skips that token, and it reads the day, month, year
/// and time from the others.
fn imf_fixdate_fields(input: &[u8]) -> Option<DateFields> {
    let input: &[u8; 29] = input.try_into().ok()?;
    let is_day_name = matches!(
        &lowercase_prefix(input)?,
        b"mon" | b"tue" | b"wed" | b"thu" | b"fri" | b"sat" | b"sun"
    );
    let layout_matches = is_day_name
        && input[3..5] == *b", "
        && input[7] == b' '
        && input[11] == b' '
        && input[16] == b' '
        && input[19] == b':'
        && input[22] == b':'
        && input[25..] == *b" GMT";
    if !layout_matches {
        return None;
    }
    let number = |range: std::ops::Range<usize>| {
        let digits = &input[range];
        digits.iter().all(u8::is_ascii_digit).then(|| {
            digits
                .iter()
                .fold(0u32, |total, &digit| total * 10 + u32::from(digit - b'0'))
        })
    };
    Some(DateFields {
        day: number(5..7)?,
        month: parse_month(&input[8..11])?,
        year: number(12..16)?,
        hour: number(17..19)?,
        minute: number(20..22)?,
        second: number(23..25)?,
    })
}

/// Reads the fields of a cookie-date with the general tokenizing algorithm
/// of RFC 6265 section 5.1.1.
fn cookie_date_fields(input: &[u8]) -> Option<DateFields> {
    let mut time = None;
    let mut day = None;
    let mut month = None;
    let mut year = None;

    let tokens = input
        .split(|&b| is_date_delimiter(b))
        .filter(|token| !token.is_empty());
    for token in tokens {
        if time.is_none()
            && let Some(found) = parse_time(token)
        {
            time = Some(found);
            continue;
        }
        if day.is_none()
            && let Some((found, _)) = leading_number(token, 1, 2)
        {
            day = Some(found);
            continue;
        }
        if month.is_none()
            && let Some(found) = parse_month(token)
        {
            month = Some(found);
            continue;
        }
        if year.is_none()
            && let Some((found, _)) = leading_number(token, 2, 4)
        {
            year = Some(found);
            continue;
        }
    }

    let (hour, minute, second) = time?;
    Some(DateFields {
        day: day?,
        month: month?,
        year: year?,
        hour,
        minute,
        second,
    })
}

impl DateFields {
    /// Applies the two-digit year rule and the range checks, and converts
    /// to milliseconds since the Unix epoch.
    fn into_unix_ms(self) -> Option<i64> {
        let DateFields {
            day,
            month,
            mut year,
            hour,
            minute,
            second,
        } = self;
        if (70..=99).contains(&year) {
            year += 1900;
        } else if year <= 69 {
            year += 2000;
        }
        if !(1..=31).contains(&day) || year < 1601 || hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        if day > days_in_month(year, month) {
            return None;
        }

        let days = days_from_civil(i64::from(year), month, day);
        let seconds =
            days * 86_400 + i64::from(hour) * 3_600 + i64::from(minute) * 60 + i64::from(second);
        Some(seconds * 1_000)
    }
}

fn is_leap_year(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date, after Howard
/// Hinnant's `days_from_civil` algorithm.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &str) -> ParsedSetCookie<'_> {
        parse_set_cookie(input.as_bytes()).expect("valid Set-Cookie")
    }

    #[test]
    fn name_and_value_trimmed() {
        let cookie = parse(" \tfoo \t= \tbar baz\t ; Secure");
        assert_eq!(cookie.name, b"foo");
        assert_eq!(cookie.value, b"bar baz");
        assert!(cookie.secure);
    }

    #[test]
    fn value_keeps_quotes_and_commas() {
        let cookie = parse("token=\"a,b\"");
        assert_eq!(cookie.value, b"\"a,b\"");
    }

    #[test]
    fn missing_equals_rejected() {
        assert_eq!(
            parse_set_cookie(b"five; max-age=2"),
            Err(ParseError::MissingEquals)
        );
    }

    #[test]
    fn empty_name_rejected() {
        assert_eq!(parse_set_cookie(b"=bar"), Err(ParseError::EmptyName));
        assert_eq!(parse_set_cookie(b" =bar"), Err(ParseError::EmptyName));
    }

    #[test]
    fn control_characters_rejected() {
        assert_eq!(
            parse_set_cookie(b"a=b\x00c"),
            Err(ParseError::InvalidCharacter)
        );
        assert_eq!(
            parse_set_cookie(b"a\rb=c"),
            Err(ParseError::InvalidCharacter)
        );
        assert_eq!(
            parse_set_cookie(b"a=\x7f"),
            Err(ParseError::InvalidCharacter)
        );
    }

    #[test]
    fn last_domain_wins_and_dot_dropped() {
        let cookie = parse("a=b; Domain=.example.org; domain=.Home.example.org");
        assert_eq!(cookie.domain, Some(&b"Home.example.org"[..]));
    }

    #[test]
    fn empty_domain_ignored() {
        assert_eq!(parse("a=b; Domain=").domain, None);
        assert_eq!(parse("a=b; Domain=.").domain, Some(&b""[..]));
    }

    #[test]
    fn path_without_slash_resets() {
        assert_eq!(parse("a=b; Path=/x").path, Some(&b"/x"[..]));
        assert_eq!(parse("a=b; Path=/x; Path=y").path, None);
        assert_eq!(parse("a=b; Path=").path, None);
    }

    #[test]
    fn max_age_forms() {
        assert_eq!(parse("a=b; Max-Age=60").max_age, Some(60));
        assert_eq!(parse("a=b; Max-Age=-1").max_age, Some(-1));
        assert_eq!(parse("a=b; Max-Age=50,399").max_age, None);
        assert_eq!(parse("a=b; Max-Age=2.5").max_age, None);
        assert_eq!(parse("a=b; Max-Age=-").max_age, None);
        assert_eq!(
            parse("a=b; Max-Age=99999999999999999999999").max_age,
            Some(i64::MAX)
        );
    }

    #[test]
    fn overlong_attribute_values_ignored() {
        let too_long = "p".repeat(MAX_ATTRIBUTE_VALUE_LEN);
        let header = format!("a=b; Path=/{too_long}");
        assert_eq!(parse(&header).path, None);
        let header = format!("a=b; Domain={too_long}.example");
        assert_eq!(parse(&header).domain, None);

        let longest = format!("/{}", "p".repeat(MAX_ATTRIBUTE_VALUE_LEN - 1));
        let header = format!("a=b; Path={longest}");
        assert_eq!(parse(&header).path, Some(longest.as_bytes()));
    }

    #[test]
    fn quoted_attribute_name_unknown() {
        assert!(!parse("a=b; \"Secure\"").secure);
    }

    /// The byte-by-byte reference for `scan_pair`.
    fn scan_pair_bytewise(header: &[u8]) -> (usize, bool) {
        let end = header
            .iter()
            .position(|&b| b == b';')
            .unwrap_or(header.len());
        let has_control = header[..end].iter().any(|&b| is_control_character(b));
        (end, has_control)
    }

    #[test]
    fn scan_pair_matches_bytewise_scan() {
        let special = [b';', b'\t', 0x00, 0x1f, 0x7f, 0x80, 0xff, b' ', b'='];
        for length in 0..40 {
            let plain = vec![b'v'; length];
            assert_eq!(scan_pair(&plain), (length, false), "plain, length {length}");
            for position in 0..length {
                for &byte in &special {
                    let mut header = plain.clone();
                    header[position] = byte;
                    assert_eq!(
                        scan_pair(&header),
                        scan_pair_bytewise(&header),
                        "byte {byte:#04x} at {position} of {length}"
                    );
                }
            }
        }
    }

    #[test]
    fn find_byte_matches_position() {
        for length in 0..40 {
            let plain = vec![b'a'; length];
            assert_eq!(find_byte(&plain, b';'), None, "length {length}");
            for first in 0..length {
                for second in first..length {
                    let mut haystack = plain.clone();
                    haystack[second] = b';';
                    haystack[first] = b';';
                    assert_eq!(
                        find_byte(&haystack, b';'),
                        Some(first),
                        "at {first} and {second} of {length}"
                    );
                }
            }
        }
        // Bytes next to `;` in value, in whole eight-byte words.
        assert_eq!(find_byte(b"\x01\x00;\x3c\x3a\xbb\xff\x7f", b';'), Some(2));
        assert_eq!(
            find_byte(&[0x3c, 0x3a, 0xbb, 0x3b, 0, 0, 0, 0], b';'),
            Some(3)
        );
    }

    #[test]
    fn control_character_after_semicolon_allowed() {
        let cookie = parse("a=b; x=\x01; Secure");
        assert_eq!(cookie.value, b"b");
        assert!(cookie.secure);
    }

    #[test]
    fn imf_fixdate_fast_path_matches_general() {
        let dates: [&[u8]; 9] = [
            b"Sun, 06 Nov 1994 08:49:37 GMT",
            b"sun, 06 nov 1994 08:49:37 GMT",
            b"Thu, 11 Dec 2025 16:20:00 GMT",
            b"Tue, 29 Feb 2028 23:59:59 GMT",
            b"Wed, 29 Feb 2027 00:00:00 GMT",
            b"Fri, 00 Jan 2038 00:00:00 GMT",
            b"Sat, 01 Jan 0069 00:00:00 GMT",
            b"Mon, 31 Apr 2030 12:00:00 GMT",
            b"Sun, 06 Nov 1994 24:49:37 GMT",
        ];
        for date in dates {
            let fast = imf_fixdate_fields(date).expect("IMF-fixdate layout");
            let general = cookie_date_fields(date).and_then(DateFields::into_unix_ms);
            assert_eq!(
                fast.into_unix_ms(),
                general,
                "{}",
                String::from_utf8_lossy(date)
            );
        }
    }

    #[test]
    fn month_names_any_case() {
        assert_eq!(parse_month(b"jan"), Some(1));
        assert_eq!(parse_month(b"DEC"), Some(12));
        assert_eq!(parse_month(b"sEpTember"), Some(9));
        assert_eq!(parse_month(b"ja"), None);
        assert_eq!(parse_month(b"j@n"), None);
        assert_eq!(parse_month(b"JAN\xff"), Some(1));
        assert_eq!(parse_month(b"\xca\xc1\xce"), None);
    }

    #[test]
    fn imf_fixdate_fast_path_skips_other_layouts() {
        let others: [&[u8]; 4] = [
            b"Sunday, 06-Nov-94 08:49:37 GMT",
            b"Sun Nov  6 08:49:37 1994",
            b"Mar, 06 Nov 1994 08:49:37 GMT",
            b"Sun, 06 Nov 1994 08:49:37 UTC",
        ];
        for date in others {
            assert!(
                imf_fixdate_fields(date).is_none(),
                "{}",
                String::from_utf8_lossy(date)
            );
        }
    }

    #[test]
    fn date_imf_fixdate() {
        // 2037-08-07T08:04:19Z is 2133245059 seconds after the epoch
        // (`date -u -d 2037-08-07T08:04:19Z +%s`).
        assert_eq!(
            parse_cookie_date(b"Fri, 07 Aug 2037 08:04:19 GMT"),
            Some(2_133_245_059_000)
        );
    }

    #[test]
    fn date_epoch() {
        assert_eq!(parse_cookie_date(b"Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
    }

    #[test]
    fn date_two_digit_years() {
        let sixty = parse_cookie_date(b"Fri, 10-Sep-60 20:00:00 GMT");
        let full = parse_cookie_date(b"Fri, 10-Sep-2060 20:00:00 GMT");
        assert_eq!(sixty, full);
        let seventy = parse_cookie_date(b"Thu, 01-Jan-70 00:00:00 GMT");
        assert_eq!(seventy, Some(0));
    }

    #[test]
    fn date_skips_junk_tokens() {
        assert_eq!(
            parse_cookie_date(b"Fri 01 Jan 2038 00:00:00 GMT, baz=qux"),
            parse_cookie_date(b"Fri, 01 Jan 2038 00:00:00 GMT")
        );
        assert!(parse_cookie_date(b"Fri, 01 Jan 2038 00:00:00 GMT").is_some());
    }

    #[test]
    fn date_invalid_rejected() {
        assert_eq!(parse_cookie_date(b"Fri, 30 Feb 2038 00:00:00 GMT"), None);
        assert_eq!(parse_cookie_date(b"Fri, 01 Jan 1600 00:00:00 GMT"), None);
        assert_eq!(parse_cookie_date(b"Fri, 01 Jan 2038 24:00:00 GMT"), None);
        assert_eq!(parse_cookie_date(b"Fri, 01 Jan 2038"), None);
        assert_eq!(parse_cookie_date(b""), None);
        assert_eq!(parse_cookie_date(b"Fri, 01 Foo 2038 00:00:00 GMT"), None);
    }

    #[test]
    fn date_leap_day() {
        assert!(parse_cookie_date(b"29 Feb 2028 00:00:00").is_some());
        assert_eq!(parse_cookie_date(b"29 Feb 2027 00:00:00"), None);
    }

    #[test]
    fn every_byte_sequence_parses_without_panic() {
        // A cheap exhaustive sweep over short inputs built from the bytes that
        // steer the parser.
        let alphabet = [
            b'a', b'=', b';', b' ', b'\t', b'.', b'/', b'-', b'1', 0x00, 0xff,
        ];
        let mut input = Vec::new();
        for first in alphabet {
            for second in alphabet {
                for third in alphabet {
                    for fourth in alphabet {
                        input.clear();
                        input.extend_from_slice(&[first, second, third, fourth]);
                        let _ = parse_set_cookie(&input);
                        let _ = parse_cookie_date(&input);
                    }
                }
            }
        }
    }
}
