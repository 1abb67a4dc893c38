//! How an HTTP/1 message's body is delimited, read from its header lines (RFC 9112 §6): the
//! one place Content-Length, Transfer-Encoding and Connection are interpreted, for requests
//! (the raw-head scanner, the strict checks) and responses (a member's answer, a health
//! probe's) alike.
//!
//! The rules are a proxy's, stricter than a server's, because two parties that frame one
//! message differently is how requests are smuggled: a Transfer-Encoding is exactly one
//! `chunked`; never both Transfer-Encoding and Content-Length; a Content-Length is plain
//! digits (no list, not even `5, 5`), repeated only with an equal value.

use super::ascii::eq_ignore_case;
use super::fields::{connection_tokens, is_hop_by_hop};

/// Why a message's framing headers are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// Both Content-Length and Transfer-Encoding (the CL.TE / TE.CL smuggling shape).
    #[error("both Content-Length and Transfer-Encoding")]
    LengthAndTransferEncoding,
    /// A Transfer-Encoding other than exactly one `chunked`.
    #[error("Transfer-Encoding other than exactly one `chunked`")]
    TransferEncodingNotChunked,
    /// A Content-Length that is not plain digits, or overflows.
    #[error("Content-Length is not a plain number")]
    InvalidLength,
    /// Content-Length values that differ.
    #[error("Content-Length values differ")]
    ConflictingLength,
}

/// What a message's header lines declare about its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declared {
    /// Neither Content-Length nor Transfer-Encoding: a request has no body, a response's runs
    /// until the connection closes.
    Nothing,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// The framing and connection facts of one head, noted line by line.
#[derive(Debug, Default, Clone, Copy)]
pub struct FramingFields {
    content_length: Option<u64>,
    /// The first thing wrong with the Content-Length lines (only an error when the message
    /// has a body).
    bad_length: Option<FramingError>,
    transfer_encodings: u32,
    /// The (last) Transfer-Encoding is `chunked`.
    chunked: bool,
    close: bool,
    keep_alive: bool,
    names_others: bool,
}

impl FramingFields {
    /// Notes one header line (name in any case, value as sent); other headers are ignored.
    #[inline]
    pub fn note(&mut self, name: &[u8], value: &[u8]) {
        match name.len() {
            14 if eq_ignore_case(name, b"content-length") => self.note_length(value),
            17 if eq_ignore_case(name, b"transfer-encoding") => self.note_transfer_encoding(value),
            10 if eq_ignore_case(name, b"connection") => self.note_connection(value),
            _ => {}
        }
    }

    /// Notes a Content-Length value: plain digits (a list, `5, 5`, is refused even when its
    /// values agree; a repeated line with the same value is one length).
    pub fn note_length(&mut self, value: &[u8]) {
        let Some(n) = parse_decimal(value.trim_ascii()) else {
            self.bad_length.get_or_insert(FramingError::InvalidLength);
            return;
        };
        if self.content_length.is_some_and(|l| l != n) {
            self.bad_length.get_or_insert(FramingError::ConflictingLength);
        }
        self.content_length = Some(n);
    }

    /// Notes a Transfer-Encoding value.
    pub fn note_transfer_encoding(&mut self, value: &[u8]) {
        self.transfer_encodings += 1;
        self.chunked = eq_ignore_case(value.trim_ascii(), b"chunked");
    }

    /// Notes a Connection value.
    pub fn note_connection(&mut self, value: &[u8]) {
        // Most members and clients send the one token alone: no list to split.
        if eq_ignore_case(value, b"keep-alive") {
            self.keep_alive = true;
            return;
        }
        if eq_ignore_case(value, b"close") {
            self.close = true;
            return;
        }
        for token in connection_tokens(value) {
            if eq_ignore_case(token, b"close") {
                self.close = true;
            } else if eq_ignore_case(token, b"keep-alive") {
                self.keep_alive = true;
            } else if !is_hop_by_hop(token) {
                self.names_others = true;
            }
        }
    }

    /// What is wrong with the Content-Length lines noted so far, if anything: wrong
    /// whatever the rest of the head says (a scanner may report it at once).
    pub fn length_refused(&self) -> Option<FramingError> {
        self.bad_length
    }

    /// Whether a Transfer-Encoding line was noted.
    pub fn has_transfer_encoding(&self) -> bool {
        self.transfer_encodings > 0
    }

    /// Whether a Content-Length line was noted.
    pub fn has_length(&self) -> bool {
        self.content_length.is_some() || self.bad_length.is_some()
    }

    /// Connection says `close`.
    pub fn close(&self) -> bool {
        self.close
    }

    /// Connection says `keep-alive`.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// Connection names a header other than the hop-by-hop ones (which must then go too).
    pub fn names_others(&self) -> bool {
        self.names_others
    }

    /// What the head declares about its body, or why its framing is refused.
    pub fn declared(&self) -> Result<Declared, FramingError> {
        if self.transfer_encodings > 0 {
            if self.has_length() {
                return Err(FramingError::LengthAndTransferEncoding);
            }
            if self.transfer_encodings == 1 && self.chunked {
                return Ok(Declared::Chunked);
            }
            return Err(FramingError::TransferEncodingNotChunked);
        }
        if let Some(e) = self.bad_length {
            return Err(e);
        }
        Ok(self.content_length.map_or(Declared::Nothing, Declared::Length))
    }
}

/// Plain decimal digits, no sign, no overflow.
pub fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| match b {
        b'0'..=b'9' => n.checked_mul(10)?.checked_add(u64::from(b - b'0')),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(lines: &[(&str, &str)]) -> Result<Declared, FramingError> {
        let mut f = FramingFields::default();
        for (n, v) in lines {
            f.note(n.as_bytes(), v.as_bytes());
        }
        f.declared()
    }

    #[test]
    fn framings() {
        assert_eq!(declared(&[]), Ok(Declared::Nothing));
        assert_eq!(declared(&[("Content-Length", "5")]), Ok(Declared::Length(5)));
        assert_eq!(declared(&[("content-length", "5"), ("Content-Length", "5")]), Ok(Declared::Length(5)));
        assert_eq!(declared(&[("Transfer-Encoding", "Chunked")]), Ok(Declared::Chunked));
    }

    #[test]
    fn refusals() {
        use FramingError::*;
        assert_eq!(declared(&[("content-length", "5"), ("transfer-encoding", "chunked")]), Err(LengthAndTransferEncoding));
        assert_eq!(declared(&[("content-length", "x"), ("transfer-encoding", "chunked")]), Err(LengthAndTransferEncoding));
        assert_eq!(declared(&[("transfer-encoding", "gzip, chunked")]), Err(TransferEncodingNotChunked));
        assert_eq!(declared(&[("transfer-encoding", "xchunked")]), Err(TransferEncodingNotChunked));
        assert_eq!(declared(&[("transfer-encoding", "chunked"), ("transfer-encoding", "chunked")]), Err(TransferEncodingNotChunked));
        assert_eq!(declared(&[("content-length", "+5")]), Err(InvalidLength));
        assert_eq!(declared(&[("content-length", "99999999999999999999")]), Err(InvalidLength));
        assert_eq!(declared(&[("content-length", "5"), ("content-length", "6")]), Err(ConflictingLength));
        assert_eq!(declared(&[("content-length", "5, 5")]), Err(InvalidLength), "no lists, even of one value");
    }

    #[test]
    fn connection_facts() {
        let mut f = FramingFields::default();
        f.note(b"Connection", b"Keep-Alive, X-Secret");
        assert!(f.keep_alive() && f.names_others() && !f.close());
        f.note(b"connection", b"close, upgrade");
        assert!(f.close());
    }

    #[test]
    fn decimals() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_decimal(b"18446744073709551616"), None);
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"-1"), None);
    }
}
