//! A passive scanner over the raw bytes a client sends on an HTTP/1 connection: it checks
//! each request head for what hyper's parser normalises away or accepts, and follows the
//! body framing so it knows where the next head starts.
//!
//! hyper parses heads too, and strictly in most respects; this scanner exists for the
//! few rules that cannot be checked once hyper is done: with both Content-Length and
//! Transfer-Encoding hyper silently drops Content-Length; it accepts a bare LF as a line end;
//! it merges nothing but keeps no trace of the raw line layout. The scanner never changes
//! the bytes, never blocks, and keeps at most one partial line; what it finds is a
//! [`Violation`] tied to the index of the head it was found in, for the service to answer.
//!
//! Framing is read by [`codec::framing`](crate::codec::framing)'s rules and bodies are
//! followed by [`codec::body`](crate::codec::body)'s chunk-size rule, which hyper accepts
//! too (hex digits, optional whitespace, optional extensions). Anything hyper would refuse in a
//! body makes hyper close the connection, so the scanner just stops ([`Phase::Off`]) and
//! reports every later head as lost, failing closed.
//!
//! An HTTP/2 connection (prior knowledge) is not scanned, only followed frame by frame
//! ([`H2Frames`]) so that its request heads are timed like HTTP/1 ones.

use super::h2frames::H2Frames;
use crate::codec::ascii::eq_ignore_case;
use crate::codec::body::parse_chunk_size;
use crate::codec::framing::{Declared, FramingError, FramingFields};

/// What the scanner found wrong with a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Violation {
    /// Both Content-Length and Transfer-Encoding (the CL.TE / TE.CL smuggling shape).
    ContentLengthAndTransferEncoding,
    /// A Transfer-Encoding other than exactly one `chunked`.
    TransferEncodingNotChunked,
    /// Transfer-Encoding in an HTTP/1.0 request.
    TransferEncodingInHttp10,
    /// A Content-Length that is not plain digits, or overflows.
    InvalidContentLength,
    /// Two Content-Length values that differ.
    ConflictingContentLength,
    /// A line ended by LF alone.
    BareLf,
    /// A CR that does not end a line.
    BareCr,
    /// A NUL byte in the head.
    Nul,
    /// A field line starting with whitespace (obs-fold).
    ObsFold,
    /// Whitespace between a field name and its colon, or an empty name.
    BadFieldName,
    /// A field line without a colon.
    NoColon,
    /// A request line without an HTTP version (HTTP/0.9) or with one other than 1.0/1.1.
    BadVersion,
    /// The request line is longer than the limit (414).
    RequestLineTooLong,
    /// The header block is larger than the limit (431).
    HeaderTooLarge,
    /// The scanner lost track of the message framing; every later request is refused.
    FramingLost,
}

impl Violation {
    /// A short description for logs and error pages.
    pub fn describe(self) -> &'static str {
        match self {
            Violation::ContentLengthAndTransferEncoding => "both Content-Length and Transfer-Encoding",
            Violation::TransferEncodingNotChunked => "Transfer-Encoding other than exactly one `chunked`",
            Violation::TransferEncodingInHttp10 => "Transfer-Encoding in an HTTP/1.0 request",
            Violation::InvalidContentLength => "Content-Length is not a plain number",
            Violation::ConflictingContentLength => "Content-Length values differ",
            Violation::BareLf => "a line ends in LF without CR",
            Violation::BareCr => "a CR inside a line",
            Violation::Nul => "a NUL byte in the head",
            Violation::ObsFold => "a folded header line (obs-fold)",
            Violation::BadFieldName => "whitespace before a header's colon, or an empty name",
            Violation::NoColon => "a header line without a colon",
            Violation::BadVersion => "HTTP version other than 1.0 or 1.1",
            Violation::RequestLineTooLong => "request line too long",
            Violation::HeaderTooLarge => "header block too large",
            Violation::FramingLost => "message framing lost after an earlier error",
        }
    }
}

/// Size limits the scanner enforces on heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanLimits {
    /// Longest request line, without its CRLF.
    pub request_line: usize,
    /// Largest header block (field lines with their CRLFs, and the final CRLF).
    pub header_size: usize,
}

/// Where the connection is, as far as the scanner knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Between messages, no byte of the next head yet.
    Idle,
    /// Part of a head has arrived.
    InHead,
    /// Inside a request body.
    Body,
    /// No longer scanning (a tunnel, or after a violation).
    Off,
}

/// The longest partial line kept while following a chunked body.
const MAX_BODY_LINE: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before a head (leading empty lines are skipped, as hyper does).
    Start,
    /// Field lines of a head.
    Fields,
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkDataEnd,
    Trailers,
    /// HTTP/2 with prior knowledge: only frame boundaries are followed (see `h2`).
    Http2,
    Off,
}

/// Facts about the head being scanned.
#[derive(Debug, Default, Clone, Copy)]
struct Head {
    http10: bool,
    framing: FramingFields,
    header_bytes: usize,
}

/// A finding: the head with this index (0 = the connection's first request) broke a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    /// Which head, counting from 0 on the connection.
    pub head: u64,
    /// What was wrong.
    pub violation: Violation,
}

/// Scans one connection's client-to-proxy bytes.
#[derive(Debug)]
pub struct Scanner {
    limits: ScanLimits,
    state: State,
    /// The current line when it was split across reads.
    partial: Vec<u8>,
    head: Head,
    /// Heads started so far; the current head's index is `heads - 1`.
    heads: u64,
    /// Whether the next bytes may be HTTP/2's preface: only a connection's first bytes.
    preface_allowed: bool,
    http2: bool,
    /// The frames of an HTTP/2 connection, once its preface was seen.
    h2: Option<H2Frames>,
    /// After a finding: how many bytes at the end of the input it was made in belong to the
    /// line it was made on (from that line's start, or from the input's start when the line
    /// began earlier).
    tail: usize,
}

impl Scanner {
    /// A scanner for a new connection.
    pub fn new(limits: ScanLimits) -> Self {
        Self { limits, state: State::Start, partial: Vec::new(), head: Head::default(), heads: 0, preface_allowed: true, http2: false, h2: None, tail: 0 }
    }

    /// A scanner for an HTTP/1 connection that has carried requests already (a parked one,
    /// woken): heads are counted from 0 again, and HTTP/2's preface is no longer allowed.
    pub(crate) fn resumed(limits: ScanLimits) -> Self {
        Self { preface_allowed: false, ..Self::new(limits) }
    }

    /// Where the connection is. On HTTP/2, `InHead` while a request head (or any control
    /// frame) is partly here, `Idle` otherwise.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::Http2 if self.h2.as_ref().is_some_and(H2Frames::head_arriving) => Phase::InHead,
            State::Http2 => Phase::Idle,
            State::Start if self.partial.is_empty() => Phase::Idle,
            State::Start | State::Fields => Phase::InHead,
            State::Off => Phase::Off,
            _ => Phase::Body,
        }
    }

    /// Whether the connection turned out to speak HTTP/2 (prior knowledge).
    pub fn is_http2(&self) -> bool {
        self.http2
    }

    /// Heads started so far.
    pub fn heads(&self) -> u64 {
        self.heads
    }

    /// After a finding: how many bytes at the end of the last input belong to the line it was
    /// made on — what a caller withholds from the HTTP parser to answer the finding itself
    /// later (the bytes before it may hold earlier, valid pipelined requests).
    pub fn finding_tail(&self) -> usize {
        self.tail
    }

    /// Stops scanning for good (the connection became a tunnel).
    pub fn stop(&mut self) {
        self.state = State::Off;
        self.partial = Vec::new();
        self.h2 = None;
    }

    /// Scans the next `bytes` of the stream; returns the first violation they complete.
    /// After a violation the scanner stops.
    pub fn feed(&mut self, bytes: &[u8]) -> Option<Finding> {
        let mut i = 0;
        while i < bytes.len() {
            match self.state {
                State::Off => return None,
                State::Http2 => {
                    if let Some(h2) = &mut self.h2 {
                        h2.feed(&bytes[i..]);
                    }
                    return None;
                }
                State::Length(left) | State::ChunkData(left) => {
                    let take = (bytes.len() - i).min(usize::try_from(left).unwrap_or(usize::MAX));
                    i += take;
                    let left = left - take as u64;
                    self.state = match (self.state, left) {
                        (State::Length(_), 0) => State::Start,
                        (State::Length(_), _) => State::Length(left),
                        (_, 0) => State::ChunkDataEnd,
                        _ => State::ChunkData(left),
                    };
                }
                _ => {
                    let rest = &bytes[i..];
                    self.tail = bytes.len() - if self.partial.is_empty() { i } else { 0 };
                    match memchr::memchr(b'\n', rest) {
                        Some(end) => {
                            i += end + 1;
                            let finding = if self.partial.is_empty() {
                                self.line(&rest[..end])
                            } else {
                                let mut line = std::mem::take(&mut self.partial);
                                line.extend_from_slice(&rest[..end]);
                                let finding = self.line(&line);
                                line.clear();
                                if !matches!(self.state, State::Off | State::Http2) {
                                    self.partial = line;
                                }
                                finding
                            };
                            if finding.is_some() {
                                return finding;
                            }
                        }
                        None => {
                            i = bytes.len();
                            self.partial.extend_from_slice(rest);
                            if let Some(v) = self.partial_too_long() {
                                return self.found(v);
                            }
                        }
                    }
                }
            }
        }
        None
    }

    /// Checks a partial line against the limits before its end arrives.
    fn partial_too_long(&mut self) -> Option<Violation> {
        let len = self.partial.len();
        match self.state {
            // (+1: the line's CR may already be here.)
            State::Start => (len > self.limits.request_line + 1).then_some(Violation::RequestLineTooLong),
            State::Fields => (self.head.header_bytes + len > self.limits.header_size).then_some(Violation::HeaderTooLarge),
            _ if len > MAX_BODY_LINE => Some(Violation::FramingLost),
            _ => None,
        }
    }

    /// Records a violation and stops. It belongs to the head being read, or, outside a head
    /// (a request line not complete yet, a broken body), to the next one.
    fn found(&mut self, violation: Violation) -> Option<Finding> {
        let head = if self.state == State::Fields { self.heads - 1 } else { self.heads };
        self.stop();
        Some(Finding { head, violation })
    }

    /// One complete line, without its LF.
    fn line(&mut self, line: &[u8]) -> Option<Finding> {
        let Some(content) = line.strip_suffix(b"\r") else {
            return match self.state {
                State::Start | State::Fields => self.found(Violation::BareLf),
                _ => self.found(Violation::FramingLost),
            };
        };
        match self.state {
            State::Start => self.request_line(content),
            State::Fields => self.field_line(content),
            State::ChunkSize => match parse_chunk_size(content) {
                Some(0) => {
                    self.state = State::Trailers;
                    None
                }
                Some(n) => {
                    self.state = State::ChunkData(n);
                    None
                }
                None => self.found(Violation::FramingLost),
            },
            State::ChunkDataEnd if content.is_empty() => {
                self.state = State::ChunkSize;
                None
            }
            State::Trailers if content.is_empty() => {
                self.state = State::Start;
                None
            }
            State::Trailers if !content.contains(&b'\r') => None,
            _ => self.found(Violation::FramingLost),
        }
    }

    fn request_line(&mut self, content: &[u8]) -> Option<Finding> {
        if content.is_empty() {
            return None;
        }
        if content == b"PRI * HTTP/2.0" && self.heads == 0 && self.preface_allowed {
            // HTTP/2 with prior knowledge: binary framing from here on, checked by h2; only
            // the frame boundaries are followed, to time request heads.
            self.http2 = true;
            self.state = State::Http2;
            self.partial = Vec::new();
            self.h2 = Some(H2Frames::after_preface_line());
            return None;
        }
        self.heads += 1;
        self.head = Head::default();
        self.state = State::Fields;
        if content.len() > self.limits.request_line {
            return self.found(Violation::RequestLineTooLong);
        }
        if let Some(v) = forbidden_bytes(content) {
            return self.found(v);
        }
        match content.rsplit(|&b| b == b' ').next() {
            Some(b"HTTP/1.1") => {}
            Some(b"HTTP/1.0") => self.head.http10 = true,
            _ => return self.found(Violation::BadVersion),
        }
        None
    }

    fn field_line(&mut self, content: &[u8]) -> Option<Finding> {
        self.head.header_bytes += content.len() + 2;
        if self.head.header_bytes > self.limits.header_size {
            return self.found(Violation::HeaderTooLarge);
        }
        if content.is_empty() {
            return self.end_of_head();
        }
        if content[0] == b' ' || content[0] == b'\t' {
            return self.found(Violation::ObsFold);
        }
        let Some(colon) = content.iter().position(|&b| b == b':') else {
            return self.found(Violation::NoColon);
        };
        let (name, value) = (&content[..colon], &content[colon + 1..]);
        if name.is_empty() || name.iter().any(|&b| b == b' ' || b == b'\t') {
            return self.found(Violation::BadFieldName);
        }
        // NUL and stray CR in values are left to httparse, which refuses both: checking
        // every value byte here again would double the scanner's cost.
        let value = value.trim_ascii();
        if self.head.http10 && name.len() == 17 && eq_ignore_case(name, b"transfer-encoding") {
            return self.found(Violation::TransferEncodingInHttp10);
        }
        self.head.framing.note(name, value);
        // A bad Content-Length is bad whatever follows: said at once.
        match self.head.framing.length_refused() {
            Some(e) => self.found(e.into()),
            None => None,
        }
    }

    fn end_of_head(&mut self) -> Option<Finding> {
        self.state = match self.head.framing.declared() {
            Err(e) => return self.found(e.into()),
            Ok(Declared::Chunked) => State::ChunkSize,
            Ok(Declared::Length(n)) if n > 0 => State::Length(n),
            Ok(_) => State::Start,
        };
        None
    }
}

/// NUL or a CR inside the request line.
fn forbidden_bytes(bytes: &[u8]) -> Option<Violation> {
    for &b in bytes {
        match b {
            0 => return Some(Violation::Nul),
            b'\r' => return Some(Violation::BareCr),
            _ => {}
        }
    }
    None
}

impl From<FramingError> for Violation {
    fn from(e: FramingError) -> Self {
        match e {
            FramingError::LengthAndTransferEncoding => Violation::ContentLengthAndTransferEncoding,
            FramingError::TransferEncodingNotChunked => Violation::TransferEncodingNotChunked,
            FramingError::InvalidLength => Violation::InvalidContentLength,
            FramingError::ConflictingLength => Violation::ConflictingContentLength,
        }
    }
}

#[cfg(test)]
mod tests;
