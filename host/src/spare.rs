//! Vectors kept by each thread between uses, for the small scratch vectors every request
//! would otherwise allocate and free (a head's bytes, where its lines sit).
//!
//! Each kind has a thread-local stack of spares of its own ([`Stack`]): [`take`] pops one
//! (or makes one) and [`keep`] pushes one back, emptied. Bounded both ways: a stack holds
//! at most its `kept` vectors, and a vector with room for more than its `largest` elements is
//! freed instead. Thread-local because a worker is one thread running one current-thread
//! runtime: no lock. A vector given back on another thread joins that thread's stack, under
//! the same bounds.

use std::cell::RefCell;
use std::thread::LocalKey;

/// One kind's spares on each thread.
pub(crate) type Stack<T> = LocalKey<RefCell<Vec<Vec<T>>>>;

/// An empty vector with room for `room` elements: a spare from `stack`, or a new one.
pub(crate) fn take<T: 'static>(stack: &'static Stack<T>, room: usize) -> Vec<T> {
    let mut spare = stack.try_with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.pop())).ok().flatten().unwrap_or_default();
    spare.reserve(room);
    spare
}

/// Keeps `spare`, emptied, on `stack` when it has room for no more than `largest` elements
/// and the stack holds fewer than `kept`; else frees it.
pub(crate) fn keep<T: 'static>(stack: &'static Stack<T>, mut spare: Vec<T>, kept: usize, largest: usize) {
    if spare.capacity() == 0 || spare.capacity() > largest {
        return;
    }
    spare.clear();
    // At thread exit the stack may be gone already: the vector is then simply freed.
    let _ = stack.try_with(|s| {
        if let Ok(mut s) = s.try_borrow_mut()
            && s.len() < kept
        {
            s.push(spare);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static NUMBERS: RefCell<Vec<Vec<u32>>> = const { RefCell::new(Vec::new()) };
    }

    #[test]
    fn a_vector_comes_back_empty_unless_it_grew_large_or_the_stack_is_full() {
        // Each test runs on a thread of its own: the stack starts empty.
        let mut first = take(&NUMBERS, 8);
        first.extend([1, 2, 3]);
        let at = first.as_ptr();
        keep(&NUMBERS, first, 2, 16);
        let again = take(&NUMBERS, 4);
        assert_eq!(again.as_ptr(), at, "the same memory again");
        assert!(again.is_empty() && again.capacity() >= 8, "empty, with its room");

        keep(&NUMBERS, Vec::with_capacity(17), 2, 16);
        assert_eq!(NUMBERS.with_borrow(Vec::len), 0, "grown past `largest`: freed");
        keep(&NUMBERS, again, 2, 16);
        keep(&NUMBERS, Vec::with_capacity(4), 2, 16);
        keep(&NUMBERS, Vec::with_capacity(4), 2, 16);
        assert_eq!(NUMBERS.with_borrow(Vec::len), 2, "at most `kept`");
        assert!(take(&NUMBERS, 64).capacity() >= 64, "a spare gets the room asked for");
    }
}
