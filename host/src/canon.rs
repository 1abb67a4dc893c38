//! The canonical request path: the one spelling of a path that routing, exclusions, sticky
//! URL parameters and request hashing see, and that members receive.
//!
//! A member (httpd, nginx, an application server) decodes and normalises the path it is sent,
//! so a proxy that matches routes on the raw spelling can be walked around: `/%73tatic/x` or
//! `/a/../static/x` miss an exclusion of `/static/` and still reach `/static/x` behind it.
//! httpd decodes and normalises before ProxyPass maps a request (`ap_unescape_url`,
//! `ap_getparents`, MergeSlashes); so do we, once per request:
//!
//! - a percent-encoded unreserved character (`A-Z a-z 0-9 - . _ ~`) is decoded; any other
//!   escape is kept, with upper-case hex digits; `%00` and a `%` without two hex digits are
//!   refused;
//! - an encoded `/` or `\` (`%2F`, `%5C`, and a raw `\`, which some servers read as a
//!   separator) stays encoded: it never separates segments here, and the request is refused
//!   unless its route allows encoded slashes ([`CanonPath::has_encoded_separator`]);
//! - `.` and `..` segments are resolved (RFC 3986 §5.2.4); a `..` above the root is refused;
//! - repeated slashes are merged (httpd's `MergeSlashes On`);
//! - any other byte outside RFC 3986's `pchar` is percent-encoded, so the result is also the
//!   spelling sent on.
//!
//! The result is idempotent (canonicalising it again changes nothing) and never holds a dot
//! segment or an empty segment other than a trailing one. The query string is not part of it.
//! This module depends on nothing else in the crate: the config check uses it to insist that
//! route prefixes are written canonically.

use std::borrow::Cow;

/// Why a path has no canonical form; the request is answered 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CanonError {
    /// `%00`: a NUL cut paths short in C back ends.
    #[error("the path holds an encoded NUL (%00)")]
    EncodedNul,
    /// A `%` not followed by two hex digits.
    #[error("the path holds a `%` not followed by two hex digits")]
    BadEscape,
    /// More `..` segments than there are segments above them.
    #[error("the path climbs above the root with `..`")]
    AboveRoot,
    /// A `.` or `..` segment with a `;` parameter (`..;x`): servlet containers drop the
    /// parameter and then climb, so it cannot be resolved one way for both.
    #[error("the path holds a dot segment with a `;` parameter (such as `..;`)")]
    DotParameter,
}

/// A path in canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonPath<'a> {
    path: Cow<'a, str>,
    encoded_separator: bool,
}

impl<'a> CanonPath<'a> {
    /// The canonical spelling.
    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// Whether the path holds an encoded `/` or `\` (`%2F`, `%5C`): a separator to some
    /// members and not to the proxy, so refused unless the route allows it.
    pub fn has_encoded_separator(&self) -> bool {
        self.encoded_separator
    }

    /// Whether the canonical spelling is the one the client sent.
    pub fn is_as_sent(&self) -> bool {
        matches!(self.path, Cow::Borrowed(_))
    }
}

/// The canonical form of the path `raw` (without its query). A target that does not start
/// with `/` (`*` of `OPTIONS *`) is returned as it is: no route matches it.
pub fn canonicalize(raw: &str) -> Result<CanonPath<'_>, CanonError> {
    if !raw.starts_with('/') || is_canonical(raw.as_bytes()) {
        return Ok(CanonPath { path: Cow::Borrowed(raw), encoded_separator: false });
    }
    let mut encoded_separator = false;
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    // Where each kept segment's leading slash is in `out`, for `..` to go back to.
    let mut starts: Vec<usize> = Vec::new();
    let mut segment: Vec<u8> = Vec::new();
    let mut pieces = raw[1..].split('/').peekable();
    out.push(b'/');
    while let Some(piece) = pieces.next() {
        let last = pieces.peek().is_none();
        segment.clear();
        decode_segment(piece.as_bytes(), &mut segment, &mut encoded_separator)?;
        if is_dot_with_parameter(&segment) {
            return Err(CanonError::DotParameter);
        }
        match segment.as_slice() {
            b"" | b"." => {}
            b".." => {
                let start = starts.pop().ok_or(CanonError::AboveRoot)?;
                out.truncate(start + 1);
            }
            bytes => {
                if out.last() != Some(&b'/') {
                    out.push(b'/');
                }
                starts.push(out.len() - 1);
                out.extend_from_slice(bytes);
            }
        }
        // A path ending in `/`, `/.` or `/..` names a directory: keep its trailing slash.
        if last && segment.len() <= 2 && segment.iter().all(|&b| b == b'.') && out.last() != Some(&b'/') {
            out.push(b'/');
        }
    }
    // Only ASCII is ever pushed: every other byte was percent-encoded.
    let path = String::from_utf8(out).map_err(|_| CanonError::BadEscape)?;
    Ok(CanonPath { path: Cow::Owned(path), encoded_separator })
}

/// Appends the canonical spelling of one raw segment (no `/` in it) to `out`.
fn decode_segment(raw: &[u8], out: &mut Vec<u8>, encoded_separator: &mut bool) -> Result<(), CanonError> {
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'%' {
            let decoded = escaped_byte(raw, i).ok_or(CanonError::BadEscape)?;
            if decoded == 0 {
                return Err(CanonError::EncodedNul);
            }
            if is_unreserved(decoded) {
                out.push(decoded);
            } else {
                *encoded_separator |= decoded == b'/' || decoded == b'\\';
                push_escaped(out, decoded);
            }
            i += 3;
        } else {
            if is_pchar(b) {
                out.push(b);
            } else {
                *encoded_separator |= b == b'\\';
                push_escaped(out, b);
            }
            i += 1;
        }
    }
    Ok(())
}

/// Whether `path` (starting with `/`) is already canonical: only `pchar`s, slashes and
/// escapes decoding would keep, no empty segment but a trailing one, no dot segment.
fn is_canonical(path: &[u8]) -> bool {
    let mut segment_start = 1;
    let mut i = 1;
    while i < path.len() {
        let b = path[i];
        if b == b'/' {
            let segment = &path[segment_start..i];
            if matches!(segment, b"" | b"." | b"..") || is_dot_with_parameter(segment) {
                return false;
            }
            segment_start = i + 1;
        } else if b == b'%' {
            // Kept only as decoding would keep it: upper-case hex, not unreserved, not NUL,
            // not a separator (which must be flagged).
            let upper_hex = |at: usize| path.get(at).is_some_and(|&h| h.is_ascii_digit() || (b'A'..=b'F').contains(&h));
            if !upper_hex(i + 1) || !upper_hex(i + 2) {
                return false;
            }
            let decoded = escaped_byte(path, i).unwrap_or(0);
            if decoded == 0 || is_unreserved(decoded) || decoded == b'/' || decoded == b'\\' {
                return false;
            }
            i += 2;
        } else if !is_pchar(b) {
            return false;
        }
        i += 1;
    }
    let last = &path[segment_start..];
    !matches!(last, b"." | b"..") && !is_dot_with_parameter(last)
}

/// Whether `segment` is `.` or `..` followed by a `;` parameter.
fn is_dot_with_parameter(segment: &[u8]) -> bool {
    segment.iter().position(|&b| b == b';').is_some_and(|at| matches!(&segment[..at], b"." | b".."))
}

/// RFC 3986 `unreserved`.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 `pchar` without `pct-encoded`: unreserved, sub-delims, `:` and `@`.
fn is_pchar(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' | b':' | b'@')
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// The byte a `%XX` escape at `at` (the `%`) stands for, when two hex digits follow it.
pub(crate) fn escaped_byte(bytes: &[u8], at: usize) -> Option<u8> {
    if bytes.get(at) != Some(&b'%') {
        return None;
    }
    let (hi, lo) = (hex(*bytes.get(at + 1)?)?, hex(*bytes.get(at + 2)?)?);
    Some(hi << 4 | lo)
}

fn push_escaped(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(raw: &str) -> Result<String, CanonError> {
        canonicalize(raw).map(|c| c.as_str().to_string())
    }

    #[test]
    fn plain_paths_are_borrowed() {
        for p in ["/", "/a", "/a/", "/static/x.png", "/a%20b/%C3%A9", "/a/.hidden/b", "/a/...", "/a;jsessionid=1.b", "/:@!$&'()*+,;="] {
            let c = canonicalize(p).expect(p);
            assert!(c.is_as_sent(), "{p}");
            assert_eq!(c.as_str(), p);
        }
    }

    #[test]
    fn unreserved_escapes_are_decoded_in_any_case() {
        assert_eq!(canon("/%73tatic/x"), Ok("/static/x".into()));
        assert_eq!(canon("/%53TATIC/%7e%2D%5f"), Ok("/STATIC/~-_".into()));
        assert_eq!(canon("/a%20b/%3f/%3B"), Ok("/a%20b/%3F/%3B".into()), "other escapes kept, hex upper-cased");
    }

    #[test]
    fn dot_segments_are_resolved_and_slashes_merged() {
        let table = [
            ("/a/../static/x", "/static/x"),
            ("/a/./b", "/a/b"),
            ("/./a", "/a"),
            ("//static//x", "/static/x"),
            ("/a/%2e%2e/static/x", "/static/x"),
            ("/a/%2E./b", "/b"),
            ("/a/.%2e/b", "/b"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/a/..", "/"),
            ("/a//..//b", "/b"),
            ("/a/b/../../c/./d/", "/c/d/"),
            ("/..a/b..", "/..a/b.."),
        ];
        for (raw, want) in table {
            assert_eq!(canon(raw), Ok(want.into()), "{raw}");
        }
    }

    #[test]
    fn bad_paths_are_refused() {
        assert_eq!(canon("/a/%00"), Err(CanonError::EncodedNul));
        for raw in ["/%", "/%2", "/%g0", "/a%2"] {
            assert_eq!(canon(raw), Err(CanonError::BadEscape), "{raw}");
        }
        for raw in ["/..", "/../x", "/a/../..", "/%2e%2e/x", "/a/b/../../../c"] {
            assert_eq!(canon(raw), Err(CanonError::AboveRoot), "{raw}");
        }
        for raw in ["/public/..;/admin/x", "/a/.;x/b", "/a/%2e%2e;jsessionid=1", "/..;"] {
            assert_eq!(canon(raw), Err(CanonError::DotParameter), "{raw}");
        }
        assert_eq!(canon("/a/..x;y/b"), Ok("/a/..x;y/b".into()), "not a dot segment");
    }

    #[test]
    fn encoded_separators_stay_encoded_and_are_flagged() {
        for (raw, want) in [("/a%2fb", "/a%2Fb"), ("/..%2f..%2fetc", "/..%2F..%2Fetc"), ("/a%5cb", "/a%5Cb"), ("/a\\b", "/a%5Cb")] {
            let c = canonicalize(raw).expect(raw);
            assert_eq!(c.as_str(), want);
            assert!(c.has_encoded_separator(), "{raw}");
        }
        assert!(!canonicalize("/a%20b").expect("valid").has_encoded_separator());
    }

    #[test]
    fn bytes_outside_pchar_are_encoded() {
        assert_eq!(canon("/a\"b/é"), Ok("/a%22b/%C3%A9".into()));
    }

    #[test]
    fn canonical_form_is_a_fixed_point() {
        for raw in ["/%73tatic/../a%2f%7e//./b/", "/a\\b/%c3%a9", "/x/%2e/y/..", "/a/b/%2E%2E"] {
            let once = canon(raw).expect(raw);
            let twice = canonicalize(&once).expect("canonical");
            assert_eq!(twice.as_str(), once, "{raw}");
            assert_eq!(twice.is_as_sent(), !twice.has_encoded_separator(), "{raw}: a canonical path is borrowed unless it must be flagged");
        }
    }
}
