//! Read buffers kept by each worker thread between requests.
//!
//! A connection gives its read buffer up whenever it idles between requests, so an idle
//! keep-alive connection holds none. Allocating a fresh one for every request cost two
//! allocations (the buffer, and the shared header `bytes` adds when a head is split off it
//! and frozen) and their frees: about 1,000 instructions of a small request's 30,000. So the
//! buffer goes to a small stack of spares on its worker's thread instead, once every part of
//! the heads cut from it has been dropped, and the next read on that thread takes it.
//!
//! Only buffers of the spares' own size go back: a [`ReadBuffer`] notes when a long head or
//! pipelined bytes grow it, and a grown one is freed as before. So the stack, bounded in
//! count, holds at most 64 × 4 KiB per worker, never anything per connection.
//!
//! Thread-local because a worker is one thread running one current-thread runtime: every
//! connection task of a worker runs on it, and no lock is needed.

use std::cell::RefCell;

use bytes::BytesMut;

/// The size of a read buffer, and of every spare.
pub(super) const BUFFER: usize = 4096;

/// Spares kept per worker thread: at most 256 KiB.
const SPARES: usize = 64;

thread_local! {
    static SPARE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// A connection's read buffer, and whether it may go back to the spares.
#[derive(Default)]
pub(super) struct ReadBuffer {
    /// The bytes read and not yet taken (and the room after them).
    pub(super) bytes: BytesMut,
    /// Taken from the spares (or made at their size) and never grown since.
    spare_sized: bool,
}

impl ReadBuffer {
    /// Room for a read of up to [`BUFFER`] bytes: a spare when the connection holds no buffer;
    /// a buffer without that room grows (or moves its bytes to its front), and is no longer
    /// one the spares keep.
    pub(super) fn make_room(&mut self) {
        if self.bytes.capacity() == 0 {
            self.bytes = take();
            self.spare_sized = true;
        } else if self.bytes.capacity() - self.bytes.len() < BUFFER {
            self.spare_sized = false;
            self.bytes.reserve(BUFFER);
        }
    }

    /// Notes a read into the buffer as it is: into a full buffer, the read grows it.
    pub(super) fn before_read(&mut self) {
        if self.bytes.len() == self.bytes.capacity() {
            self.spare_sized = false;
        }
    }

    /// Between requests: the (empty) buffer goes back to the spares if it may, else to the
    /// allocator; the connection holds none.
    pub(super) fn release(&mut self) {
        let bytes = std::mem::take(&mut self.bytes);
        if std::mem::take(&mut self.spare_sized) {
            give_back(bytes);
        }
    }
}

/// A read buffer with room for [`BUFFER`] bytes: a spare of this thread's, or a new one.
fn take() -> BytesMut {
    SPARE.with_borrow_mut(Vec::pop).unwrap_or_else(|| BytesMut::with_capacity(BUFFER))
}

/// Keeps `buf` (of the spares' size, never grown) as a spare when it is empty, its whole
/// room is free again — no head cut from it is still alive — and there is room.
fn give_back(mut buf: BytesMut) {
    // For a buffer of exactly BUFFER bytes this holds only when nothing else shares it.
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

    /// One request's head read and cut off the buffer, as the fast path does.
    fn read_a_head(buf: &mut ReadBuffer, head: &[u8]) -> bytes::Bytes {
        buf.make_room();
        buf.bytes.extend_from_slice(head);
        buf.bytes.split_to(head.len()).freeze()
    }

    #[test]
    fn a_buffer_comes_back_once_its_heads_are_gone() {
        // Each test runs on a thread of its own: the spares start empty.
        let mut buf = ReadBuffer::default();
        let head = read_a_head(&mut buf, b"GET / HTTP/1.1\r\n\r\n");
        let first = head.as_ptr();
        buf.release();
        assert_eq!(buf.bytes.capacity(), 0, "an idle connection holds no buffer");
        buf.make_room();
        assert_ne!(buf.bytes.as_ptr(), first, "a head cut from it is still alive: not kept");

        let head2 = read_a_head(&mut buf, b"GET / HTTP/1.1\r\n\r\n");
        let second = head2.as_ptr();
        drop(head2);
        buf.release();
        buf.make_room();
        assert_eq!(buf.bytes.as_ptr(), second, "its heads dropped: the same memory, from its start");
        assert!(buf.bytes.capacity() >= BUFFER && buf.bytes.is_empty());
        drop(head);
    }

    #[test]
    fn a_grown_buffer_is_not_kept() {
        let mut buf = ReadBuffer::default();
        // A head in two reads: the second needs more room than the first left.
        buf.make_room();
        buf.bytes.extend_from_slice(&[b'x'; BUFFER - 10]);
        buf.make_room();
        buf.bytes.extend_from_slice(&[b'x'; BUFFER]);
        drop(buf.bytes.split());
        buf.release();
        assert_eq!(SPARE.with_borrow(Vec::len), 0, "grown by a long head");

        // Pipelined bytes filling it while an answer is awaited.
        let mut buf = ReadBuffer::default();
        buf.make_room();
        buf.bytes.extend_from_slice(&[b'x'; BUFFER]);
        buf.before_read();
        buf.bytes.reserve(64);
        drop(buf.bytes.split());
        buf.release();
        assert_eq!(SPARE.with_borrow(Vec::len), 0, "grown by a read into a full buffer");

        let mut buf = ReadBuffer::default();
        drop(read_a_head(&mut buf, b"GET / HTTP/1.1\r\n\r\n"));
        buf.release();
        assert_eq!(SPARE.with_borrow(Vec::len), 1, "one of the spares' size is kept");
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
