//! Read buffers kept by each worker thread between requests.
//!
//! A connection gives its read buffer up whenever it idles between requests, so an idle
//! keep-alive connection holds none. Allocating a fresh one for every request cost two
//! allocations (the buffer, and the shared header `bytes` adds when a head is split off it
//! and frozen) and their frees: about 600 instructions of a small request's 30,000. So the
//! buffer goes to a small stack of spares on its worker's thread instead, once every part of
//! the last head cut from it has been dropped, and the next read on that thread takes it.
//! The stack is bounded, so what the spares hold is per worker, never per connection.
//!
//! Thread-local because a worker is one thread running one current-thread runtime: every
//! connection task of a worker runs on it, and no lock is needed.

use std::cell::RefCell;

use bytes::BytesMut;

/// The size of a read buffer (a head longer than this grows its own).
pub(super) const BUFFER: usize = 4096;

/// Spares kept per worker thread: at most 256 KiB.
const SPARES: usize = 64;

thread_local! {
    static SPARE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// A read buffer with room for [`BUFFER`] bytes: a spare of this thread's, or a new one.
pub(super) fn take() -> BytesMut {
    SPARE.with_borrow_mut(Vec::pop).unwrap_or_else(|| BytesMut::with_capacity(BUFFER))
}

/// Keeps `buf`, empty, as a spare when nothing else holds a part of it and there is room.
pub(super) fn give_back(mut buf: BytesMut) {
    if buf.is_empty() && buf.try_reclaim(BUFFER) {
        SPARE.with_borrow_mut(|spares| {
            if spares.len() < SPARES {
                spares.push(buf);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_once_its_heads_are_gone() {
        // Each test runs on a thread of its own: the spares start empty.
        let mut buf = take();
        let first = buf.as_ptr();
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let head = buf.split_to(buf.len()).freeze();
        give_back(buf);
        let again = take();
        assert_ne!(again.as_ptr(), first, "a head cut from it is still alive: not kept");

        let mut buf = again;
        let second = buf.as_ptr();
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let head2 = buf.split_to(buf.len()).freeze();
        drop(head2);
        give_back(buf);
        let reused = take();
        assert_eq!(reused.as_ptr(), second, "its heads dropped: the same memory, from its start");
        assert!(reused.capacity() >= BUFFER && reused.is_empty());
        drop(head);
    }

    #[test]
    fn the_spares_are_bounded() {
        for _ in 0..SPARES + 10 {
            give_back(BytesMut::with_capacity(BUFFER));
        }
        assert_eq!(SPARE.with_borrow(Vec::len), SPARES);
        give_back(BytesMut::from(&b"not empty"[..]));
        assert_eq!(SPARE.with_borrow(Vec::len), SPARES);
    }
}
