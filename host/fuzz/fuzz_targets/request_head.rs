//! Raw request heads: the scanner (whole and in pieces), httparse as hyper uses it, and the
//! strict checks on what parses.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard::fuzzing::request_head(data));
