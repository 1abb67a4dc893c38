//! Reading a response head: status, header lines and how the body is framed (by
//! [`framing`](super::framing)'s rules).
//!
//! Strict, as a proxy must be: a head that does not parse, a header name or value that is not
//! valid, a Content-Length that is not plain digits or disagrees with another, any
//! Transfer-Encoding other than `chunked`, both Transfer-Encoding and Content-Length, obs-fold
//! or a line ended by a bare LF make the response invalid (the client gets 502), never a
//! guess. Framing follows RFC 9112 §6.3.

use std::mem::MaybeUninit;

use bytes::BytesMut;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

use super::ascii::eq_ignore_case;
use super::body::Framing;
use super::fields::{is_hop_by_hop, strip_hop_by_hop};
use super::framing::{Declared, FramingFields};
use super::lines::HeaderLines;

/// Most header lines a response may have.
const MAX_HEADERS: usize = 128;
/// Largest response head accepted.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// A parsed response head.
#[derive(Debug)]
pub struct ResponseHead {
    /// The status code.
    pub status: StatusCode,
    /// The header lines.
    pub fields: Fields,
    /// How the body that follows is delimited.
    pub framing: Framing,
    /// Whether the connection may carry another request after this response's body.
    pub keep_alive: bool,
}

/// A head's header fields, hop-by-hop ones left out (a 101 keeps them: the tunnel reads its
/// Upgrade).
#[derive(Debug)]
pub enum Fields {
    /// The lines as the member sent them: the usual case.
    Raw(RawHeaders),
    /// A map: for a 101, and when Connection names other headers (the map's general removal
    /// takes those).
    Map(HeaderMap),
}

impl Fields {
    /// The fields as a map.
    pub fn into_map(self) -> HeaderMap {
        match self {
            Fields::Raw(raw) => raw.into_map(),
            Fields::Map(map) => map,
        }
    }
}

/// Why a response head was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeadError {
    /// The head breaks a rule (what it is says which).
    #[error("invalid response head: {0}")]
    Invalid(String),
    /// No complete head within [`MAX_HEAD_BYTES`].
    #[error("response head larger than {MAX_HEAD_BYTES} bytes")]
    TooLarge,
}

/// Parses the response head at the start of `buf` and takes it off the buffer. `Ok(None)`:
/// incomplete, read more. Header values are slices of the buffer, not copies.
///
/// This runs for every proxied response, so it avoids work it does not need: the header
/// slots are left uninitialised, and where each line sits is noted once, in the vector the
/// raw lines are kept in.
pub fn parse(buf: &mut BytesMut, method: &Method) -> Result<Option<ResponseHead>, HeadError> {
    parse_with(buf, method, false)
}

/// [`parse`], keeping the hop-by-hop lines when `keep_hop_by_hop` (a health probe shows its
/// judge every line the member sent; a 101 always keeps them, for the tunnel to read).
pub fn parse_with(buf: &mut BytesMut, method: &Method, keep_hop_by_hop: bool) -> Result<Option<ResponseHead>, HeadError> {
    // One pass over the lines notes the framing and connection facts (so no map is ever
    // searched for them) and keeps each line's place, leaving out the hop-by-hop ones unless
    // they are wanted: a 101 keeps them (the tunnel reads its Upgrade), and so does a probe.
    let (len, code, http11, lines, facts, has_date, strip) = {
        let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut response, buf, &mut slots) {
            // A head found whole is held to the limit one arriving in pieces is.
            Ok(httparse::Status::Complete(len)) if len > MAX_HEAD_BYTES => return Err(HeadError::TooLarge),
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => return Err(HeadError::TooLarge),
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(HeadError::Invalid(e.to_string())),
        };
        let base = buf.as_ptr() as usize;
        // Offsets fit: the head is at most MAX_HEAD_BYTES long.
        let offset = |part: &[u8]| (part.as_ptr() as usize - base) as u32;
        let place = |h: &httparse::Header<'_>| [offset(h.name.as_bytes()), h.name.len() as u32, offset(h.value), h.value.len() as u32];
        let strip = !keep_hop_by_hop && response.code != Some(101);
        let mut facts = FramingFields::default();
        let mut has_date = false;
        let mut lines = super::lines::places(response.headers.len());
        // httparse takes a bare LF for a line end; a member that sends one is out of step.
        // Every LF of a head that parsed ends a line (values hold none, obs-fold was refused),
        // and each line ends just before the next line's name or the head's last CRLF: so
        // looking there finds every bare LF, without a scan of the head.
        let mut bare_lf = !buf[..len].ends_with(b"\r\n\r\n");
        for h in response.headers.iter() {
            let name = h.name.as_bytes();
            bare_lf |= !buf[..offset(name) as usize].ends_with(b"\r\n");
            facts.note(name, h.value);
            has_date |= eq_ignore_case(name, b"date");
            if !(strip && is_hop_by_hop(name)) {
                lines.push(place(h));
            }
        }
        if strip && facts.names_others() {
            // Rare: a Connection header naming other headers takes the general removal of a
            // map, which wants every line.
            lines.clear();
            lines.extend(response.headers.iter().map(place));
        }
        if bare_lf {
            return Err(HeadError::Invalid("a line ends in LF without CR".into()));
        }
        (len, response.code, response.version == Some(1), lines, facts, has_date, strip)
    };
    let code = code.ok_or_else(|| HeadError::Invalid("no status code".into()))?;
    let status = StatusCode::from_u16(code).map_err(|_| HeadError::Invalid(format!("status {code}")))?;
    let head = buf.split_to(len).freeze();
    let framing = framing(&facts, status, method)?;
    let keep_alive = !facts.close() && (http11 || facts.keep_alive()) && framing != Framing::UntilClose;
    if status != StatusCode::SWITCHING_PROTOCOLS && !(strip && facts.names_others()) {
        // httparse checked every name (a token) and value (no control bytes but HTAB), the
        // same rules as `HeaderName` and `HeaderValue`: the lines are kept as they are.
        let raw = RawHeaders { lines: HeaderLines::new(head, lines), has_date, has_length: facts.has_length() };
        return Ok(Some(ResponseHead { status, fields: Fields::Raw(raw), framing, keep_alive }));
    }
    let name_of = |&[name_at, name_len, _, _]: &[u32; 4]| name_at as usize..(name_at + name_len) as usize;
    let value_of = |&[_, _, value_at, value_len]: &[u32; 4]| value_at as usize..(value_at + value_len) as usize;
    let mut headers = HeaderMap::with_capacity(lines.len());
    for l in &lines {
        let (name, value) = (&head[name_of(l)], value_of(l));
        let name = HeaderName::from_bytes(name).map_err(|_| HeadError::Invalid(format!("header name `{}`", String::from_utf8_lossy(name))))?;
        let value = HeaderValue::from_maybe_shared(head.slice(value)).map_err(|_| HeadError::Invalid(format!("value of header `{name}`")))?;
        headers.append(name, value);
    }
    if strip {
        strip_hop_by_hop(&mut headers);
    }
    Ok(Some(ResponseHead { status, fields: Fields::Map(headers), framing, keep_alive }))
}

/// A member's header lines as it sent them (hop-by-hop ones left out): an answer's headers
/// until something needs them as a map. Most answers go to an HTTP/1 client as they came,
/// and building a map of them would cost more than the rest of reading the head.
#[derive(Debug)]
pub struct RawHeaders {
    lines: HeaderLines,
    has_date: bool,
    has_length: bool,
}

impl RawHeaders {
    /// The lines, name and value, in the member's order and spelling.
    pub fn lines(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.lines.iter()
    }

    /// Appends the lines to `out` as the member spelled them, each ended by CRLF (see
    /// [`HeaderLines::write_where`]).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        self.lines.write_where(out, |_, _| true);
    }

    /// The first value of header `name` (in any spelling), copied: whoever keeps it (the
    /// access log) does not keep the member connection's read buffer with it.
    pub fn get(&self, name: &HeaderName) -> Option<HeaderValue> {
        let value = self.lines.get_all(name).next()?;
        HeaderValue::from_bytes(value).ok()
    }

    /// Whether the member sent a Date.
    pub fn has_date(&self) -> bool {
        self.has_date
    }

    /// Whether the member sent a Content-Length.
    pub fn has_length(&self) -> bool {
        self.has_length
    }

    /// The lines as a map.
    pub fn into_map(self) -> HeaderMap {
        self.lines.into_map()
    }
}

/// How a response's body is delimited (RFC 9112 §6.3).
fn framing(fields: &FramingFields, status: StatusCode, method: &Method) -> Result<Framing, HeadError> {
    if method == Method::HEAD || status.is_informational() || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok(Framing::Empty);
    }
    Ok(match fields.declared().map_err(|e| HeadError::Invalid(e.to_string()))? {
        Declared::Chunked => Framing::Chunked,
        Declared::Length(0) => Framing::Empty,
        Declared::Length(n) => Framing::Length(n),
        Declared::Nothing => Framing::UntilClose,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Result<Option<ResponseHead>, HeadError> {
        parse(&mut BytesMut::from(raw), &Method::GET)
    }


    fn framing_of(raw: &str) -> Framing {
        head(raw).expect("valid").expect("complete").framing
    }

    #[test]
    fn framings() {
        assert_eq!(framing_of("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), Framing::Length(5));
        assert_eq!(framing_of("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), Framing::Chunked);
        assert_eq!(framing_of("HTTP/1.1 200 OK\r\n\r\n"), Framing::UntilClose);
        assert_eq!(framing_of("HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n"), Framing::Empty);
        assert_eq!(framing_of("HTTP/1.1 304 Not Modified\r\n\r\n"), Framing::Empty);
        assert_eq!(framing_of("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), Framing::Empty);
        let mut buf = BytesMut::from("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nbody");
        let h = parse(&mut buf, &Method::HEAD).expect("valid").expect("complete");
        assert_eq!(h.framing, Framing::Empty);
        assert_eq!(&buf[..], b"body", "only the head is taken off the buffer");
    }

    #[test]
    fn many_headers() {
        let mut raw = String::from("HTTP/1.1 200 OK\r\n");
        for i in 0..29 {
            raw.push_str(&format!("x-h{i}: v{i}\r\n"));
        }
        raw.push_str("content-length: 2\r\n\r\nok");
        let mut buf = BytesMut::from(raw.as_str());
        let head = parse(&mut buf, &Method::GET).expect("valid").expect("complete");
        assert_eq!(head.framing, Framing::Length(2));
        let headers = head.fields.into_map();
        assert_eq!(headers.len(), 30);
        assert_eq!(headers["x-h28"], "v28");
        assert_eq!(&buf[..], b"ok");
    }

    #[test]
    fn hop_by_hop_headers_are_left_out() {
        let names = |raw: &str| {
            let head = head(raw).expect("valid").expect("complete");
            head.fields.into_map().keys().map(|k| k.to_string()).collect::<Vec<_>>()
        };
        let plain = "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(names(plain), ["x-a", "content-length"]);
        let naming = "HTTP/1.1 200 OK\r\nConnection: X-Secret, close\r\nX-Secret: s\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(names(naming), ["x-a", "content-length"], "what Connection names goes too");
        let switching = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
        assert_eq!(names(switching), ["connection", "upgrade"], "a 101 keeps them for the tunnel to read");
    }

    #[test]
    fn keep_alive() {
        let ka = |raw: &str| head(raw).expect("valid").expect("complete").keep_alive;
        assert!(ka("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n"));
        assert!(!ka("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n"));
        assert!(!ka("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n"));
        assert!(ka("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\n"));
        assert!(!ka("HTTP/1.1 200 OK\r\n\r\n"), "close-delimited bodies end the connection");
    }

    #[test]
    fn strictness() {
        let invalid = |raw: &str| matches!(head(raw), Err(HeadError::Invalid(_)));
        assert!(invalid("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"));
        assert!(invalid("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"));
        assert!(invalid("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"));
        assert!(invalid("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n"));
        assert!(invalid("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n"), "the rule requests are held to");
        assert!(invalid("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"));
        assert!(invalid("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n"));
        assert!(invalid("HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\n\r\n"), "obs-fold");
        assert!(invalid("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"), "bare LF");
        assert!(invalid("HTTP/1.1 200 OK\r\nContent-Length: 0\n\n"), "bare LFs ending the head");
        assert!(invalid("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n"));
        // Every line end of a head made bare in turn, alone and with the others: refused
        // whenever some LF has no CR before it, as a scan of the whole head finds.
        let whole = "HTTP/1.1 200 OK\r\nDate: d\r\nX-E:\r\nX-Sp: v \r\nContent-Length: 0\r\n\r\n";
        let ends: Vec<usize> = whole.match_indices("\r\n").map(|(i, _)| i).collect();
        for mask in 0..1u32 << ends.len() {
            let mut raw = whole.as_bytes().to_vec();
            for (k, &i) in ends.iter().enumerate().rev() {
                if mask & 1 << k != 0 {
                    raw.remove(i);
                }
            }
            let scanned = raw.iter().enumerate().any(|(i, &b)| b == b'\n' && (i == 0 || raw[i - 1] != b'\r'));
            let parsed = parse(&mut BytesMut::from(&raw[..]), &Method::GET);
            assert_eq!(matches!(parsed, Err(HeadError::Invalid(_))), scanned, "{:?}", String::from_utf8_lossy(&raw));
            assert!(scanned || matches!(parsed, Ok(Some(_))));
        }
        assert!(invalid("HTTP/1.1 2000 OK\r\n\r\n"));
        assert!(head("HTTP/1.1 200 OK\r\nContent-Le").expect("partial").is_none());
        let huge = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_HEAD_BYTES + 1));
        assert_eq!(head(&huge).err(), Some(HeadError::TooLarge));
    }
}
