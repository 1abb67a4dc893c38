//! What the edge checks cost per request: the raw-head scanner over a typical browser-sized
//! request head, the strict checks on the parsed request, and parsing a typical member
//! response head (nginx's, eight lines). Compare with the CPU a whole
//! proxied request costs (requests per CPU-second under wrk: the README's Performance section).
//!
//! `cargo bench -p switchyard --bench edge`

use criterion::{Criterion, criterion_group, criterion_main};
use switchyard::config::Limits;
use switchyard::edge::{ScanLimits, Scanner};

const HEAD: &[u8] = b"GET /app/images/logo.png?v=3 HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5\r\n\
Accept-Language: en-GB,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Referer: https://www.example.com/app/\r\n\
Cookie: session=4f9c2a7d1e8b3c5a; theme=dark\r\n\
Connection: keep-alive\r\n\r\n";

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Server: nginx/1.22.1\r\n\
Date: Sun, 06 Dec 2026 10:00:00 GMT\r\n\
Content-Type: application/octet-stream\r\n\
Content-Length: 2\r\n\
Last-Modified: Sun, 06 Dec 2026 09:00:00 GMT\r\n\
Connection: keep-alive\r\n\
ETag: \"6752c9d0-2\"\r\n\
Accept-Ranges: bytes\r\n\r\nok";

fn request() -> http::Request<()> {
    let mut slots = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Request::new(&mut slots);
    parsed.parse(HEAD).expect("parses");
    let mut b = http::Request::builder().method(parsed.method.expect("method")).uri(parsed.path.expect("path"));
    for h in parsed.headers.iter() {
        b = b.header(h.name, h.value);
    }
    b.body(()).expect("request")
}

fn edge(c: &mut Criterion) {
    let limits = ScanLimits { request_line: 8190, header_size: 32 * 1024 };
    c.bench_function("scanner: one 420-byte head", |b| {
        b.iter(|| {
            let mut s = Scanner::new(limits);
            std::hint::black_box(s.feed(std::hint::black_box(HEAD)))
        })
    });
    let req = request();
    let limits = Limits::default();
    c.bench_function("strict checks: same request", |b| b.iter(|| switchyard::fuzzing::strict_check(std::hint::black_box(&req), &limits)));
    let method = http::Method::GET;
    c.bench_function("member response head: nginx's, eight lines", |b| {
        b.iter_batched_ref(
            || bytes::BytesMut::from(RESPONSE),
            |buf| std::hint::black_box(switchyard::codec::response::parse(buf, &method).map(|h| h.map(|h| h.status))),
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, edge);
criterion_main!(benches);
