//! Which worker thread this is. The proxy runs one single-threaded runtime per core; per-worker
//! state (member connection pools) is indexed by this number, so a worker never touches
//! another's connections. Threads that are not workers count as worker 0.

use std::cell::Cell;

thread_local! {
    static CURRENT: Cell<usize> = const { Cell::new(0) };
}

/// Marks the calling thread as worker `index` (done once, when the worker starts).
pub fn enter(index: usize) {
    CURRENT.with(|c| c.set(index));
}

/// The calling thread's worker index.
pub(crate) fn current() -> usize {
    CURRENT.with(Cell::get)
}
