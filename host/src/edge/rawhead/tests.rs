//! The raw-head scanner's cases: exact bytes in, the finding out, whole and split.

use super::*;

const LIMITS: ScanLimits = ScanLimits { request_line: 100, header_size: 200 };

fn scan(input: &[u8]) -> (Option<Finding>, Phase, u64) {
    let mut s = Scanner::new(LIMITS);
    let f = s.feed(input);
    (f, s.phase(), s.heads())
}

/// Feeds `input` one byte at a time: the result must be the same as in one go.
fn scan_bytewise(input: &[u8]) -> (Option<Finding>, Phase, u64) {
    let mut s = Scanner::new(LIMITS);
    let mut f = None;
    for b in input {
        if let Some(found) = s.feed(std::slice::from_ref(b)) {
            f = Some(found);
        }
    }
    (f, s.phase(), s.heads())
}

fn violation(input: &str) -> Option<Violation> {
    let whole = scan(input.as_bytes());
    assert_eq!(whole, scan_bytewise(input.as_bytes()), "split reads change the outcome of {input:?}");
    whole.0.map(|f| f.violation)
}

#[test]
fn accepts_plain_requests_and_follows_bodies() {
    let two = "GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
    assert_eq!(scan(two.as_bytes()), (None, Phase::Idle, 2));
    let chunked = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n3 \r\nabc\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.1\r\n";
    assert_eq!(scan(chunked.as_bytes()), (None, Phase::InHead, 2));
    assert_eq!(scan_bytewise(chunked.as_bytes()), (None, Phase::InHead, 2));
    assert_eq!(scan(b"\r\nGET / HTTP/1.0\r\n\r\n"), (None, Phase::Idle, 1), "a leading empty line is skipped");
    assert_eq!(scan(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc").1, Phase::Body);
}

#[test]
fn a_body_that_looks_like_a_head_is_not_scanned_as_one() {
    let body = "X: 1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
    let req = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}GET / HTTP/1.1\r\n\r\n", body.len());
    assert_eq!(scan(req.as_bytes()), (None, Phase::Idle, 2));
}

#[test]
fn smuggling_shapes() {
    use Violation::*;
    let cases = [
        ("POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", ContentLengthAndTransferEncoding),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n", ContentLengthAndTransferEncoding),
        ("POST / HTTP/1.1\r\ntransfer-encoding: CHUNKED\r\ncontent-length: 0\r\n\r\n", ContentLengthAndTransferEncoding),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", TransferEncodingNotChunked),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: ,chunked\r\n\r\n", TransferEncodingNotChunked),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", TransferEncodingNotChunked),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n", TransferEncodingNotChunked),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", TransferEncodingNotChunked),
        ("POST / HTTP/1.1\r\nTransfer-Encoding:\x0bchunked\r\n\r\n", TransferEncodingNotChunked),
        ("POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n", BadFieldName),
        ("POST / HTTP/1.1\r\nX: 1\r\n Transfer-Encoding: chunked\r\n\r\n", ObsFold),
        ("POST / HTTP/1.1\r\nX: 1\nTransfer-Encoding: chunked\r\n\r\n", BareLf),
        ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", TransferEncodingInHttp10),
        ("POST / HTTP/1.1\r\nContent-Length: +4\r\n\r\n", InvalidContentLength),
        ("POST / HTTP/1.1\r\nContent-Length: 4, 4\r\n\r\n", InvalidContentLength),
        ("POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", InvalidContentLength),
        ("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", InvalidContentLength),
        ("POST / HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n", ConflictingContentLength),
        ("GET /\r HTTP/1.1\r\nX: a\r\n\r\n", BareCr),
        ("GET /\0 HTTP/1.1\r\nX: a\r\n\r\n", Nul),
        ("GET / HTTP/1.1\r\nNoColon\r\n\r\n", NoColon),
        ("GET /\r\n\r\n", BadVersion),
        ("GET / HTTP/1.2\r\n\r\n", BadVersion),
    ];
    for (input, expected) in cases {
        assert_eq!(violation(input), Some(expected), "{input:?}");
    }
    assert_eq!(violation("POST / HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd"), None, "identical repeats are one length");
    assert_eq!(violation("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked \r\n\r\n0\r\n\r\n"), None);
}

#[test]
fn limits_are_checked_before_the_line_ends() {
    let long_line = format!("GET /{} HTTP/1.1", "a".repeat(200));
    assert_eq!(violation(&long_line), Some(Violation::RequestLineTooLong));
    let big = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(300));
    assert_eq!(violation(&big), Some(Violation::HeaderTooLarge));
    let many = format!("GET / HTTP/1.1\r\n{}\r\n", "X: 1234567890\r\n".repeat(20));
    assert_eq!(violation(&many), Some(Violation::HeaderTooLarge));
}

#[test]
fn a_finding_tells_which_bytes_belong_to_its_line() {
    let valid = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
    let long = format!("GET /{} ", "a".repeat(300));
    let mut s = Scanner::new(LIMITS);
    let input = format!("{valid}{long}");
    assert_eq!(s.feed(input.as_bytes()).map(|f| f.violation), Some(Violation::RequestLineTooLong));
    assert_eq!(s.finding_tail(), long.len(), "the valid request before it is not part of it");
    // A line that began in an earlier read: all of the last read is part of it.
    let mut s = Scanner::new(LIMITS);
    assert_eq!(s.feed(format!("{valid}GET /aaa").as_bytes()), None);
    assert!(s.feed("a".repeat(300).as_bytes()).is_some());
    assert_eq!(s.finding_tail(), 300);
    // A complete field line over the limit, after other lines in the same read.
    let mut s = Scanner::new(LIMITS);
    let big = format!("X: {}\r\n", "a".repeat(300));
    assert!(s.feed(format!("GET / HTTP/1.1\r\nHost: t\r\n{big}\r\n").as_bytes()).is_some());
    assert_eq!(s.finding_tail(), big.len() + 2);
}

#[test]
fn findings_name_their_head() {
    let input = b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(scan(input).0, Some(Finding { head: 2, violation: Violation::ContentLengthAndTransferEncoding }));
    let bad_chunk = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
    assert_eq!(scan(bad_chunk).0, Some(Finding { head: 1, violation: Violation::FramingLost }), "every head after it is lost");
}

#[test]
fn http2_preface_turns_scanning_into_following_frames() {
    // The preface and the start of a SETTINGS frame: a frame is arriving.
    let (f, phase, heads) = scan(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04");
    assert_eq!((f, phase, heads), (None, Phase::InHead, 0));
    // The preface and an empty SETTINGS frame: nothing arriving.
    let (f, phase, heads) = scan(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00");
    assert_eq!((f, phase, heads), (None, Phase::Idle, 0));
    // Not on a connection that carried requests before it was parked: the preface is a
    // connection's first bytes or nothing, so here it is an HTTP/1 head with a bad version.
    let mut resumed = Scanner::resumed(LIMITS);
    let finding = resumed.feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    assert!(!resumed.is_http2());
    assert_eq!(finding.map(|f| f.head), Some(0), "{finding:?}");
}

#[test]
fn chunk_sizes_as_hyper_reads_them() {
    assert_eq!(parse_chunk_size(b"1a"), Some(26));
    assert_eq!(parse_chunk_size(b"5 \t;ext"), Some(5));
    assert_eq!(parse_chunk_size(b"5 a"), None);
    assert_eq!(parse_chunk_size(b""), None);
    assert_eq!(parse_chunk_size(b"-1"), None);
    assert_eq!(parse_chunk_size(b"fffffffffffffffff"), None);
}
