//! Bodies on the wire: how one is delimited once its head is read, the decoder that takes
//! the body bytes off a buffer as they arrive (Content-Length, chunked, or until the
//! connection closes), and the chunked encoding's pieces for writing one.
//!
//! The decoder works on bytes already read (no I/O), so the member client's streaming body,
//! a health probe reading a prefix and the fuzz target all run the same code. Chunked
//! framing is strict: a chunk size is hex digits, optional spaces or tabs, then the line's
//! end or a `;extension`; every line ends in CRLF; chunk data is followed by CRLF.

use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;

/// Longest chunk-size line or trailer section accepted.
pub const MAX_LINE: usize = 4096;

/// The end of a chunked body with no trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// How a body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 1xx, 204, 304, a request without one).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the sender closes the connection (responses only).
    UntilClose,
}

/// Why body bytes were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// A chunk-size line that is not a size.
    #[error("invalid chunk size")]
    InvalidSize,
    /// A chunk-size line longer than [`MAX_LINE`].
    #[error("chunk size line too long")]
    LineTooLong,
    /// Chunk data not followed by CRLF.
    #[error("chunk data not followed by CRLF")]
    NoDataEnd,
    /// A trailer section that does not parse.
    #[error("invalid trailers")]
    InvalidTrailers,
    /// A trailer section longer than [`MAX_LINE`].
    #[error("trailers too long")]
    TrailersTooLong,
}

/// One step of decoding.
#[derive(Debug)]
pub enum Decoded {
    /// Body bytes, taken off the buffer.
    Data(Bytes),
    /// The trailers of a chunked body; the body has ended.
    Trailers(HeaderMap),
    /// The body has ended.
    End,
    /// The buffer holds no more of the body: read more.
    NeedMore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length { remaining: u64 },
    ChunkSize,
    ChunkData { remaining: u64 },
    ChunkDataEnd,
    Trailers,
    UntilClose,
    Done,
}

/// Takes one body off a buffer as its bytes arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyDecoder {
    state: State,
}

impl BodyDecoder {
    /// A decoder for a body framed as `framing`.
    pub fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length { remaining: n },
            Framing::Chunked => State::ChunkSize,
            Framing::UntilClose => State::UntilClose,
        };
        Self { state }
    }

    /// Whether the body has ended.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The bytes of data the sender still owes in the current piece (the rest of a
    /// Content-Length body, or of the current chunk), when known: how much a read may ask for.
    pub fn owed(&self) -> Option<u64> {
        match self.state {
            State::Length { remaining } | State::ChunkData { remaining } => Some(remaining),
            _ => None,
        }
    }

    /// The bytes of the whole body still to come, when the framing says.
    pub fn exact_remaining(&self) -> Option<u64> {
        match self.state {
            State::Done => Some(0),
            State::Length { remaining } => Some(remaining),
            _ => None,
        }
    }

    /// `n` bytes of a Content-Length body went by without passing through a buffer (moved
    /// socket to socket). `n` is at most what is owed; any other framing is left as it is.
    pub fn passed(&mut self, n: u64) {
        if let State::Length { remaining } = self.state {
            let left = remaining.saturating_sub(n);
            self.state = if left == 0 { State::Done } else { State::Length { remaining: left } };
        }
    }

    /// The connection closed: whether that ends the body (close-delimited) rather than
    /// truncating it. The decoder is done either way.
    pub fn close(&mut self) -> bool {
        let natural = matches!(self.state, State::UntilClose | State::Done);
        self.state = State::Done;
        natural
    }

    /// Decodes what `buf` holds, taking what it decodes off the buffer. Bytes beyond the
    /// body's end stay in `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ChunkError> {
        loop {
            match self.state {
                State::Done => return Ok(Decoded::End),
                State::Length { remaining } | State::ChunkData { remaining } => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let take = (buf.len() as u64).min(remaining) as usize;
                    let data = buf.split_to(take).freeze();
                    let left = remaining - take as u64;
                    self.state = match (self.state, left) {
                        (State::Length { .. }, 0) => State::Done,
                        (State::Length { .. }, _) => State::Length { remaining: left },
                        (_, 0) => State::ChunkDataEnd,
                        _ => State::ChunkData { remaining: left },
                    };
                    return Ok(Decoded::Data(data));
                }
                State::UntilClose if buf.is_empty() => return Ok(Decoded::NeedMore),
                State::UntilClose => return Ok(Decoded::Data(buf.split().freeze())),
                State::ChunkSize => match take_line(buf) {
                    // Refused however the bytes arrived: a line found whole is held to the
                    // limit a line arriving in pieces is.
                    Some(line) if line.len() > MAX_LINE => return Err(ChunkError::LineTooLong),
                    Some(line) => match parse_chunk_size(&line) {
                        Some(0) => self.state = State::Trailers,
                        Some(size) => self.state = State::ChunkData { remaining: size },
                        None => return Err(ChunkError::InvalidSize),
                    },
                    // (+1: the line's CR may be here without its LF.)
                    None if buf.len() > MAX_LINE + 1 => return Err(ChunkError::LineTooLong),
                    None => return Ok(Decoded::NeedMore),
                },
                State::ChunkDataEnd => {
                    if buf.len() < 2 {
                        return Ok(Decoded::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(ChunkError::NoDataEnd);
                    }
                    buf.advance(2);
                    self.state = State::ChunkSize;
                }
                State::Trailers => match take_trailers(buf) {
                    Some(Ok(trailers)) => {
                        self.state = State::Done;
                        return Ok(trailers.map_or(Decoded::End, Decoded::Trailers));
                    }
                    Some(Err(e)) => return Err(e),
                    None if buf.len() > MAX_LINE => return Err(ChunkError::TrailersTooLong),
                    None => return Ok(Decoded::NeedMore),
                },
            }
        }
    }
}

/// A chunk-size line (without its CRLF): hex digits, optional spaces or tabs, optional
/// `;extension` (anything up to the line's end). `None` when it is not one, or overflows.
pub fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return None;
    }
    let size = line[..digits].iter().try_fold(0u64, |n, &b| {
        let d = (b as char).to_digit(16)?;
        n.checked_mul(16)?.checked_add(u64::from(d))
    })?;
    let rest = &line[digits..];
    let ws = rest.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    match rest.get(ws) {
        None | Some(b';') => Some(size),
        Some(_) => None,
    }
}

/// Appends the size line of a chunk of `len` bytes (hex, CRLF) to `out`.
pub fn write_chunk_size(out: &mut Vec<u8>, len: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut at = digits.len();
    let mut n = len;
    loop {
        at -= 1;
        digits[at] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
    out.extend_from_slice(b"\r\n");
}

/// Takes one CRLF-terminated line off the front of `buf`, without the CRLF.
fn take_line(buf: &mut BytesMut) -> Option<BytesMut> {
    let end = memchr::memmem::find(buf, b"\r\n")?;
    let line = buf.split_to(end);
    buf.advance(2);
    Some(line)
}

/// Takes the trailer section (after the last chunk) off `buf`: `None` if incomplete,
/// `Some(Ok(None))` for no trailers.
fn take_trailers(buf: &mut BytesMut) -> Option<Result<Option<HeaderMap>, ChunkError>> {
    if buf.starts_with(b"\r\n") {
        buf.advance(2);
        return Some(Ok(None));
    }
    let end = memchr::memmem::find(buf, b"\r\n\r\n")? + 4;
    if end > MAX_LINE {
        return Some(Err(ChunkError::TrailersTooLong));
    }
    let section = buf.split_to(end);
    let mut slots = [httparse::EMPTY_HEADER; 32];
    match httparse::parse_headers(&section, &mut slots) {
        Ok(httparse::Status::Complete((_, parsed))) => {
            let mut map = HeaderMap::new();
            for h in parsed {
                let (Ok(name), Ok(value)) = (http::HeaderName::from_bytes(h.name.as_bytes()), http::HeaderValue::from_bytes(h.value)) else {
                    return Some(Err(ChunkError::InvalidTrailers));
                };
                map.append(name, value);
            }
            Some(Ok(Some(map)))
        }
        _ => Some(Err(ChunkError::InvalidTrailers)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size(b"1a"), Some(26));
        assert_eq!(parse_chunk_size(b"0"), Some(0));
        assert_eq!(parse_chunk_size(b"10;name=value"), Some(16));
        assert_eq!(parse_chunk_size(b"10 \t;name"), Some(16));
        assert_eq!(parse_chunk_size(b"5 "), Some(5));
        assert_eq!(parse_chunk_size(b""), None);
        assert_eq!(parse_chunk_size(b"-1"), None);
        assert_eq!(parse_chunk_size(b"0x10"), None);
        assert_eq!(parse_chunk_size(b"5 5"), None);
        assert_eq!(parse_chunk_size(b"fffffffffffffffff"), None, "overflow");
        assert_eq!(parse_chunk_size(b" 5"), None);
        for len in [0, 1, 15, 16, 255, 4096, usize::MAX] {
            let mut line = Vec::new();
            write_chunk_size(&mut line, len);
            assert_eq!(line, format!("{len:x}\r\n").as_bytes());
        }
    }

    /// Decodes `input` in one go; returns the data, whether trailers came, and how it ended.
    fn run(framing: Framing, input: &[u8]) -> (Vec<u8>, bool, String) {
        let mut d = BodyDecoder::new(framing);
        let mut buf = BytesMut::from(input);
        let mut data = Vec::new();
        let mut trailers = false;
        loop {
            match d.decode(&mut buf) {
                Ok(Decoded::Data(bytes)) => data.extend_from_slice(&bytes),
                Ok(Decoded::Trailers(_)) => trailers = true,
                Ok(other) => return (data, trailers, format!("{other:?}")),
                Err(e) => return (data, trailers, format!("{e:?}")),
            }
        }
    }

    #[test]
    fn decodes_chunked_bodies() {
        let (data, trailers, end) = run(Framing::Chunked, b"5\r\nhello\r\n1;ext=1\r\n!\r\n0\r\n\r\n");
        assert_eq!((data.as_slice(), trailers, end.as_str()), (&b"hello!"[..], false, "End"));
        let (data, trailers, end) = run(Framing::Chunked, b"3\r\nabc\r\n0\r\nx-sum: 9\r\n\r\n");
        assert_eq!((data.as_slice(), trailers, end.as_str()), (&b"abc"[..], true, "End"));
        assert_eq!(run(Framing::Chunked, b"3\r\nab").2, "NeedMore");
        assert_eq!(run(Framing::Chunked, b"3\r\nabcXY").2, "NoDataEnd");
        assert_eq!(run(Framing::Chunked, b"zz\r\n").2, "InvalidSize");
        assert_eq!(run(Framing::Chunked, &[b'1'; MAX_LINE + 2]).2, "LineTooLong");
        let long_extension = format!("1;{}\r\nx\r\n0\r\n\r\n", "e".repeat(MAX_LINE));
        assert_eq!(run(Framing::Chunked, long_extension.as_bytes()).2, "LineTooLong", "whole or in pieces, the same limit");
    }

    #[test]
    fn decodes_in_pieces_as_in_one_go() {
        let whole = b"5\r\nhello\r\n1;ext=1\r\n!\r\n0\r\nx-a: 1\r\n\r\nNEXT";
        for split in 0..whole.len() {
            let mut d = BodyDecoder::new(Framing::Chunked);
            let mut buf = BytesMut::from(&whole[..split]);
            let mut data = Vec::new();
            let mut fed = false;
            loop {
                match d.decode(&mut buf).expect("valid") {
                    Decoded::Data(bytes) => data.extend_from_slice(&bytes),
                    Decoded::NeedMore if !fed => {
                        buf.extend_from_slice(&whole[split..]);
                        fed = true;
                    }
                    Decoded::Trailers(_) | Decoded::End => break,
                    Decoded::NeedMore => panic!("stuck at split {split}"),
                }
            }
            if !fed {
                buf.extend_from_slice(&whole[split..]);
            }
            assert_eq!(data, b"hello!", "split at {split}");
            assert_eq!(&buf[..], b"NEXT", "split at {split}");
        }
    }

    #[test]
    fn decodes_length_bodies_and_stops_at_the_end() {
        let mut d = BodyDecoder::new(Framing::Length(3));
        let mut buf = BytesMut::from(&b"abcEXTRA"[..]);
        assert!(matches!(d.decode(&mut buf), Ok(Decoded::Data(_))));
        assert!(d.is_done());
        assert_eq!(&buf[..], b"EXTRA", "bytes beyond the body stay (and forbid reuse)");
        let mut until_close = BodyDecoder::new(Framing::UntilClose);
        assert!(until_close.close(), "a close ends a close-delimited body");
        let mut length = BodyDecoder::new(Framing::Length(3));
        assert!(!length.close(), "and truncates a counted one");
    }

    #[test]
    fn bytes_that_went_by_count_against_a_length_body_only() {
        let mut d = BodyDecoder::new(Framing::Length(10));
        d.passed(4);
        assert_eq!(d.exact_remaining(), Some(6));
        d.passed(6);
        assert!(d.is_done());
        let mut chunked = BodyDecoder::new(Framing::Chunked);
        chunked.passed(4);
        assert_eq!(chunked, BodyDecoder::new(Framing::Chunked), "a chunked body's bytes must be decoded, not skipped");
    }

    #[test]
    fn trailers() {
        let mut buf = BytesMut::from(&b"\r\nrest"[..]);
        assert_eq!(take_trailers(&mut buf), Some(Ok(None)));
        assert_eq!(&buf[..], b"rest");
        let mut buf = BytesMut::from(&b"x-sum: 1\r\n\r\n"[..]);
        let map = take_trailers(&mut buf).expect("complete").expect("valid").expect("some");
        assert_eq!(map["x-sum"], "1");
        let mut partial = BytesMut::from(&b"x-sum: 1\r\n"[..]);
        assert_eq!(take_trailers(&mut partial), None);
    }
}
