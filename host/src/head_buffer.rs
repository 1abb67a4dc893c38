//! Buffers that message heads are written into before they go to a socket, kept by each
//! thread between uses.
//!
//! Every proxied request writes two heads: the request's to its member and the answer's to
//! the client (with a small body behind it); a plain request also has the header lines every
//! member gets written once. Each was a fresh `Vec`: up to three allocations and their frees
//! per request, about 190 instructions of a small request's 24,000 as measured. A
//! [`HeadBuffer`] is taken from its thread's spares instead and goes back to them when
//! dropped, empty (see [`crate::spare`]): at most [`KEPT`] per thread, none that grew past
//! [`LARGEST_KEPT`] (a long head, or a chunked body's pieces copied behind it).

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

use crate::spare;

/// The room a new buffer starts with: a usual head fits.
const FIRST: usize = 512;
/// Spares kept per thread.
const KEPT: usize = 16;
/// Buffers with more room than this are not kept.
const LARGEST_KEPT: usize = 16 * 1024;

thread_local! {
    static SPARES: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer to write a head into: one of this thread's spares, or a new one.
pub(crate) struct HeadBuffer(Vec<u8>);

impl HeadBuffer {
    /// A spare of this thread's, or a new buffer of [`FIRST`] bytes.
    pub(crate) fn take() -> Self {
        Self(spare::take(&SPARES, FIRST))
    }
}

impl Deref for HeadBuffer {
    type Target = Vec<u8>;

    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl DerefMut for HeadBuffer {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl Drop for HeadBuffer {
    fn drop(&mut self) {
        spare::keep(&SPARES, std::mem::take(&mut self.0), KEPT, LARGEST_KEPT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_empty_and_a_grown_one_does_not() {
        // Each test runs on a thread of its own: the spares start empty.
        let mut first = HeadBuffer::take();
        first.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let at = first.as_ptr();
        drop(first);
        let again = HeadBuffer::take();
        assert_eq!(again.as_ptr(), at, "the same memory again");
        assert!(again.is_empty() && again.capacity() >= FIRST, "empty, with its room");

        let mut grown = HeadBuffer::take();
        grown.extend_from_slice(&[b'x'; LARGEST_KEPT + 1]);
        drop(grown);
        drop(again);
        assert_eq!(SPARES.with_borrow(Vec::len), 1, "only the small one is kept");

        let many: Vec<HeadBuffer> = (0..KEPT + 5).map(|_| HeadBuffer::take()).collect();
        drop(many);
        assert_eq!(SPARES.with_borrow(Vec::len), KEPT, "at most KEPT spares");
    }
}
