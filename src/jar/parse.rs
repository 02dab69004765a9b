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

fn has_control_character(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
}

/// Parses one `Set-Cookie` header value (RFC 6265 section 5.2).
pub(crate) fn parse_set_cookie(header: &[u8]) -> Result<ParsedSetCookie<'_>, ParseError> {
    let (pair, mut attributes) = match header.iter().position(|&b| b == b';') {
        Some(at) => (&header[..at], &header[at..]),
        None => (header, &header[header.len()..]),
    };

    let equals = pair
        .iter()
        .position(|&b| b == b'=')
        .ok_or(ParseError::MissingEquals)?;
    let name = trim_wsp(&pair[..equals]);
    let value = trim_wsp(&pair[equals + 1..]);
    if name.is_empty() {
        return Err(ParseError::EmptyName);
    }
    if has_control_character(name) || has_control_character(value) {
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
        let end = rest.iter().position(|&b| b == b';').unwrap_or(rest.len());
        let attribute = &rest[..end];
        attributes = &rest[end..];

        let (key, value) = match attribute.iter().position(|&b| b == b'=') {
            Some(at) => (trim_wsp(&attribute[..at]), trim_wsp(&attribute[at + 1..])),
            None => (trim_wsp(attribute), &attribute[attribute.len()..]),
        };
        apply_attribute(&mut cookie, key, value);
    }

    Ok(cookie)
}

/// Longest attribute value the parser uses. RFC 6265bis section 5.6 has user
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

fn parse_month(token: &[u8]) -> Option<u32> {
    const MONTHS: [&[u8; 3]; 12] = [
        b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov",
        b"dec",
    ];
    let prefix = token.get(..3)?;
    MONTHS
        .iter()
        .position(|month| prefix.eq_ignore_ascii_case(&month[..]))
        .map(|index| index as u32 + 1)
}

/// Parses a cookie-date (RFC 6265 section 5.1.1) into milliseconds since the
/// Unix epoch. Returns `None` where the algorithm fails.
pub(crate) fn parse_cookie_date(input: &[u8]) -> Option<i64> {
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
    let (day, month, mut year) = (day?, month?, year?);
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
