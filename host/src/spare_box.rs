//! Boxes whose memory each thread keeps for the next box of the same size.
//!
//! A request's answering future is several kilobytes, and it is boxed once per request (so an
//! idle connection's task holds none of it). That is too large for glibc's per-thread cache,
//! which keeps blocks of up to 1,032 bytes: every such box went through malloc's general path
//! and back, about 480 instructions of a small proxied request (callgrind). A [`SpareBox`]
//! takes its block from a short per-thread stack of blocks that earlier boxes of the same
//! layout gave back, and gives its own back when dropped.
//!
//! A request's head and a member's body reader are each boxed once per request too (so the
//! futures that carry them stay small); they are small enough for glibc's cache, but a block
//! from the thread's stack still costs less than malloc and free (together about 85
//! instructions fewer per request). A value that may move (`Unpin`) can be edited in its box
//! and moved out ([`SpareBox::into_inner`]); one that is not `Unpin`, such as most futures,
//! cannot.
//!
//! Bounded both ways, like `crate::spare`: a thread keeps at most [`KEPT`] blocks, none larger
//! than [`LARGEST`] bytes; any other block is freed. A box dropped on another thread gives its
//! block to that thread (the global allocator frees memory from any thread).
//!
//! This is one of the crate's few `unsafe` places: a block of raw memory holds the value, as
//! `Box` does inside. The safety argument is at each use.
#![allow(unsafe_code)]

use std::alloc::{self, Layout};
use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll};

/// Blocks kept per thread.
const KEPT: usize = 8;
/// Blocks larger than this many bytes are not kept.
const LARGEST: usize = 64 * 1024;

/// A thread's kept blocks, each with the layout it was allocated with; freed with the thread.
struct Blocks(Vec<(Layout, NonNull<u8>)>);

impl Drop for Blocks {
    fn drop(&mut self) {
        for (layout, block) in self.0.drain(..) {
            // SAFETY: each block was allocated by the global allocator with this layout and
            // is owned by this list alone (a box gave it back and no longer uses it).
            unsafe { alloc::dealloc(block.as_ptr(), layout) };
        }
    }
}

thread_local! {
    static BLOCKS: RefCell<Blocks> = const { RefCell::new(Blocks(Vec::new())) };
}

/// A block for `layout` (not zero-sized): a kept one, or a new one.
fn take(layout: Layout) -> NonNull<u8> {
    let kept = BLOCKS
        .try_with(|blocks| {
            let mut blocks = blocks.try_borrow_mut().ok()?;
            let at = blocks.0.iter().position(|(l, _)| *l == layout)?;
            Some(blocks.0.swap_remove(at).1)
        })
        .ok()
        .flatten();
    if let Some(block) = kept {
        return block;
    }
    // SAFETY: `layout` is not zero-sized (the caller's promise).
    let block = unsafe { alloc::alloc(layout) };
    NonNull::new(block).unwrap_or_else(|| alloc::handle_alloc_error(layout))
}

/// Keeps `block` (allocated with `layout`, no longer used) for the next box, or frees it.
fn give_back(layout: Layout, block: NonNull<u8>) {
    let kept = layout.size() <= LARGEST
        && BLOCKS
            .try_with(|blocks| {
                let Ok(mut blocks) = blocks.try_borrow_mut() else { return false };
                if blocks.0.len() >= KEPT {
                    return false;
                }
                blocks.0.push((layout, block));
                true
            })
            // At thread exit the list may be gone already: the block is then freed.
            .unwrap_or(false);
    if !kept {
        // SAFETY: the block was allocated by the global allocator with this layout and
        // nothing uses it any more.
        unsafe { alloc::dealloc(block.as_ptr(), layout) };
    }
}

/// A value in a heap block that its thread keeps when the box is dropped (see the module
/// header). Like `Box`, it owns the value; it never moves a value that is not `Unpin` (only
/// an `Unpin` one can be moved out, by [`SpareBox::into_inner`]), so a future in it is pinned.
pub struct SpareBox<T> {
    value: NonNull<T>,
}

// SAFETY: a `SpareBox<T>` owns its `T` as a `Box<T>` does; the block's bookkeeping is
// per thread and never shared.
unsafe impl<T: Send> Send for SpareBox<T> {}
// SAFETY: as for `Box<T>`: a shared `SpareBox` gives only shared access to its `T`.
unsafe impl<T: Sync> Sync for SpareBox<T> {}

impl<T> SpareBox<T> {
    /// `make()`'s value in a block of this thread's, written straight into it (built on the
    /// stack and copied instead, a request's answering cost a 7 KB copy).
    pub(crate) fn new(make: impl FnOnce() -> T) -> Self {
        let layout = Layout::new::<T>();
        if layout.size() == 0 {
            let value = NonNull::<T>::dangling();
            // SAFETY: a zero-sized value may be written through a dangling, aligned pointer.
            unsafe { value.as_ptr().write(make()) };
            return Self { value };
        }
        let block = take(layout);
        // Should `make` panic, the block goes back instead of leaking.
        struct Unwinding(Layout, NonNull<u8>);
        impl Drop for Unwinding {
            fn drop(&mut self) {
                give_back(self.0, self.1);
            }
        }
        let unwinding = Unwinding(layout, block);
        let value = block.cast::<T>();
        // SAFETY: the block was allocated for `T`'s layout and holds no value.
        unsafe { value.as_ptr().write(make()) };
        std::mem::forget(unwinding);
        Self { value }
    }
}

impl<T: Unpin> SpareBox<T> {
    /// The value, moved out of its block (which goes back to the thread). Only for a value
    /// that may move: a future polled in the box stays where it was pinned.
    pub(crate) fn into_inner(self) -> T {
        let this = ManuallyDrop::new(self);
        // SAFETY: the box owns an initialised `T` there. It is read out once, and the box is
        // never dropped (`ManuallyDrop`), so the value is not dropped twice.
        let value = unsafe { this.value.as_ptr().read() };
        let layout = Layout::new::<T>();
        if layout.size() != 0 {
            give_back(layout, this.value.cast());
        }
        value
    }
}

impl<T> Deref for SpareBox<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the box owns an initialised `T` there for as long as it lives; a shared
        // borrow of the box lends a shared borrow of it.
        unsafe { self.value.as_ref() }
    }
}

/// Mutable access only to a value that may move: through `&mut T` a value can be swapped
/// out, which a pinned future must not be.
impl<T: Unpin> DerefMut for SpareBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`, and the box is borrowed mutably, so no other borrow of the
        // value exists.
        unsafe { self.value.as_mut() }
    }
}

impl<T: fmt::Debug> fmt::Debug for SpareBox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T> Drop for SpareBox<T> {
    fn drop(&mut self) {
        // SAFETY: the box owns an initialised `T` there, dropped once, here.
        unsafe { std::ptr::drop_in_place(self.value.as_ptr()) };
        let layout = Layout::new::<T>();
        if layout.size() != 0 {
            give_back(layout, self.value.cast());
        }
    }
}

impl<F: Future> Future for SpareBox<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: the future stays at this address until the box drops it: nothing moves it
        // out (the box gives owned or mutable access only to an `Unpin` value, which may
        // move), so it is pinned whether or not the box is.
        let future = unsafe { Pin::new_unchecked(&mut *self.value.as_ptr()) };
        future.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;
    use std::task::Waker;

    /// Counts its drops.
    struct Counted(Rc<Cell<u32>>, [u64; 64]);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }

    fn address<T>(b: &SpareBox<T>) -> usize {
        b.value.as_ptr() as usize
    }

    #[test]
    fn a_dropped_box_gives_its_block_to_the_next_of_the_same_layout() {
        // Each test runs on a thread of its own: the list starts empty.
        let drops = Rc::new(Cell::new(0));
        let first = SpareBox::new(|| Counted(Rc::clone(&drops), [7; 64]));
        let at = address(&first);
        drop(first);
        assert_eq!(drops.get(), 1, "the value is dropped with its box, once");
        let other = SpareBox::new(|| [0u8; 3]);
        assert_ne!(address(&other), at, "another layout gets a block of its own");
        let second = SpareBox::new(|| Counted(Rc::clone(&drops), [9; 64]));
        assert_eq!(address(&second), at, "the same block again");
        // SAFETY (test): reading the value the box owns.
        assert_eq!(unsafe { second.value.as_ref() }.1[63], 9, "holding the new value");
        drop(second);
        assert_eq!(drops.get(), 2);
    }

    #[test]
    fn the_list_is_bounded() {
        let many: Vec<SpareBox<[u64; 32]>> = (0..KEPT + 3).map(|_| SpareBox::new(|| [1; 32])).collect();
        drop(many);
        assert_eq!(BLOCKS.with_borrow(|b| b.0.len()), KEPT, "at most KEPT blocks");
        drop(SpareBox::new(|| [0u8; LARGEST + 1]));
        assert!(BLOCKS.with_borrow(|b| b.0.iter().all(|(l, _)| l.size() <= LARGEST)), "a large block is freed");
    }

    #[test]
    fn a_panic_while_making_the_value_gives_the_block_back() {
        let first = SpareBox::new(|| [5u32; 100]);
        let at = address(&first);
        drop(first);
        let made = std::panic::catch_unwind(|| SpareBox::<[u32; 100]>::new(|| panic!("no value")));
        assert!(made.is_err());
        assert_eq!(address(&SpareBox::new(|| [6u32; 100])), at, "the block came back");
    }

    #[test]
    fn zero_sized_values_take_no_block() {
        thread_local! {
            static DROPPED: Cell<u32> = const { Cell::new(0) };
        }
        struct Marker;
        impl Drop for Marker {
            fn drop(&mut self) {
                DROPPED.set(DROPPED.get() + 1);
            }
        }
        drop(SpareBox::new(|| Marker));
        assert_eq!(DROPPED.get(), 1, "dropped once");
        assert_eq!(BLOCKS.with_borrow(|b| b.0.len()), 0, "no block taken or kept");
    }

    #[test]
    fn a_future_in_a_box_runs_pinned_to_its_end() {
        // An async block holding a borrow of its own local across a pending point: moving it
        // after the first poll would break it.
        let mut yielded = false;
        let mut future = SpareBox::new(|| async {
            let local = [3u8; 16];
            let view = &local[..];
            std::future::poll_fn(|cx| {
                if yielded {
                    Poll::Ready(())
                } else {
                    yielded = true;
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            })
            .await;
            view.iter().map(|&b| u32::from(b)).sum::<u32>()
        });
        let mut cx = Context::from_waker(Waker::noop());
        assert!(Pin::new(&mut future).poll(&mut cx).is_pending());
        assert_eq!(Pin::new(&mut future).poll(&mut cx), Poll::Ready(48));
    }

    #[test]
    fn a_value_moved_out_leaves_its_block_for_the_next_box() {
        let drops = Rc::new(Cell::new(0));
        let mut boxed = SpareBox::new(|| Counted(Rc::clone(&drops), [1; 64]));
        boxed.1[0] = 4;
        assert_eq!(boxed.1[0], 4, "edited in place");
        let at = address(&boxed);
        let value = boxed.into_inner();
        assert_eq!(drops.get(), 0, "moved out, not dropped");
        assert_eq!(value.1[0], 4);
        assert_eq!(address(&SpareBox::new(|| Counted(Rc::clone(&drops), [2; 64]))), at, "the block went back");
        assert_eq!(drops.get(), 1, "only the second value was dropped (with its box)");
        drop(value);
        assert_eq!(drops.get(), 2);
        assert_eq!(format!("{:?}", SpareBox::new(|| [1u8, 2])), "[1, 2]");
    }

    #[test]
    fn blocks_given_back_on_other_threads_are_kept_there() {
        let boxes: Vec<SpareBox<[u64; 16]>> = (0..3).map(|_| SpareBox::new(|| [2; 16])).collect();
        let kept = std::thread::spawn(move || {
            drop(boxes);
            BLOCKS.with_borrow(|b| b.0.len())
        })
        .join()
        .expect("thread");
        assert_eq!(kept, 3);
        assert_eq!(BLOCKS.with_borrow(|b| b.0.len()), 0, "none came back here");
    }
}
