//! What members send back: response heads and body framing (Content-Length, chunked with
//! trailers, until close), fed whole and in pieces, which must agree.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard::fuzzing::member_response(data));
