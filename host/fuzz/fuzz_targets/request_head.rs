//! Raw request heads: the scanner (whole and in pieces), httparse as hyper uses it, the
//! strict checks on what parses, and the fast path's header lines against the same head in a
//! map: the same strict verdict, and the same head sent to a member.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard::fuzzing::request_head(data));
