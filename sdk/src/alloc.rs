//! [`Recycling`]: a global allocator for plugins that hands the blocks one call freed to the
//! next call, so a plugin's steady calls stop reaching the system allocator.
//!
//! Every call into a plugin allocates the same way: the host copies the call's lists in
//! through the plugin's allocator, the plugin builds its answer's lists, and all of them are
//! freed as the call ends. Inside Wasm the system allocator is dlmalloc, whose allocations and
//! frees came to about a twentieth of an lbmethod call over 16 members. `Recycling` keeps up
//! to [`KEPT`] freed blocks of at most [`LARGEST`] bytes each and hands one out again to an
//! allocation of exactly its size and alignment, before asking dlmalloc.
//!
//! Opt in with one item in the plugin crate (the default plugins do):
//!
//! ```
//! #[global_allocator]
//! static ALLOCATOR: switchyard_sdk::Recycling = switchyard_sdk::Recycling::new();
//! ```
//!
//! It recycles only in single-threaded Wasm, which is what a plugin instance is: one call at a
//! time, no threads. Built anywhere else (a plugin's native `cargo test`, a Wasm target with
//! threads) it passes every call straight to the system allocator.

// The one place the SDK itself needs `unsafe`: `GlobalAlloc` is an unsafe trait, and the
// shelf is a plain cell that only a single-threaded target may share (see `Sync` below).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::NonNull;

/// How many freed blocks are kept at most.
pub const KEPT: usize = 4;

/// The largest block kept, in bytes: a call's lists are small, and a large block is better
/// back with dlmalloc, which can merge it.
pub const LARGEST: usize = 64 * 1024;

/// Freed blocks waiting for an allocation of their exact layout. Holds pointers only as
/// values: it never reads or writes through them.
#[derive(Debug)]
struct Shelf {
    blocks: [Option<(NonNull<u8>, Layout)>; KEPT],
}

impl Shelf {
    // Natively there is no shelf: only the tests make one.
    #[cfg_attr(not(all(target_family = "wasm", not(target_feature = "atomics"))), allow(dead_code))]
    const fn new() -> Self {
        Self { blocks: [None; KEPT] }
    }

    /// A kept block of exactly `layout`, taken off the shelf.
    fn take(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        self.blocks.iter_mut().find(|slot| slot.is_some_and(|(_, kept)| kept == layout))?.take().map(|(block, _)| block)
    }

    /// Puts a freed block on the shelf; hands it back when it is too large or the shelf is
    /// full (the caller then frees it).
    fn keep(&mut self, block: NonNull<u8>, layout: Layout) -> Option<NonNull<u8>> {
        if layout.size() > LARGEST {
            return Some(block);
        }
        match self.blocks.iter_mut().find(|slot| slot.is_none()) {
            Some(slot) => {
                *slot = Some((block, layout));
                None
            }
            None => Some(block),
        }
    }
}

/// The allocator: see the [module](self) for what it does and where.
#[derive(Debug)]
pub struct Recycling {
    #[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
    shelf: std::cell::UnsafeCell<Shelf>,
}

// SAFETY: on this target there are no threads (no `atomics` feature means no shared memory, so
// no second thread can exist), so the shelf can never be reached from two threads at once.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
unsafe impl Sync for Recycling {}

impl Recycling {
    /// The allocator, with nothing kept yet.
    #[allow(clippy::new_without_default)] // a `static` needs a `const fn`
    pub const fn new() -> Self {
        Self {
            #[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
            shelf: std::cell::UnsafeCell::new(Shelf::new()),
        }
    }

    /// Runs `f` on the shelf, where there is one.
    #[inline]
    fn with_shelf<R>(&self, f: impl FnOnce(&mut Shelf) -> Option<R>) -> Option<R> {
        #[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
        {
            // SAFETY: single-threaded (see `Sync`), and neither `take` nor `keep` allocates,
            // so no other reference to the shelf exists while this one does.
            f(unsafe { &mut *self.shelf.get() })
        }
        #[cfg(not(all(target_family = "wasm", not(target_feature = "atomics"))))]
        {
            let _ = f;
            None
        }
    }
}

// SAFETY: every block handed out was allocated by `System` with the same layout it is asked
// for (the shelf matches layouts exactly), and every block freed goes either back to `System`
// or onto the shelf, never both: the allocator's contract holds as `System`'s does.
unsafe impl GlobalAlloc for Recycling {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.with_shelf(|shelf| shelf.take(layout)) {
            Some(block) => block.as_ptr(),
            // SAFETY: the caller's guarantees are `System`'s.
            None => unsafe { System.alloc(layout) },
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match self.with_shelf(|shelf| shelf.take(layout)) {
            Some(block) => {
                // SAFETY: the block is `layout.size()` bytes, allocated and now ours.
                unsafe { block.as_ptr().write_bytes(0, layout.size()) };
                block.as_ptr()
            }
            // SAFETY: the caller's guarantees are `System`'s.
            None => unsafe { System.alloc_zeroed(layout) },
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(block) = NonNull::new(ptr) else { return };
        if let Some(block) = self.with_shelf(|shelf| Some(shelf.keep(block, layout))).unwrap_or(Some(block)) {
            // SAFETY: `block` came from `System` with this layout, and is not on the shelf.
            unsafe { System.dealloc(block.as_ptr(), layout) }
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: every live block came from `System` (see above), so it may resize it.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize) -> Layout {
        Layout::from_size_align(size, 8).expect("layout")
    }

    fn block(address: usize) -> NonNull<u8> {
        NonNull::new(address as *mut u8).expect("non-null")
    }

    #[test]
    fn a_kept_block_goes_only_to_its_exact_layout() {
        let mut shelf = Shelf::new();
        assert_eq!(shelf.keep(block(0x1000), layout(768)), None, "kept");
        assert_eq!(shelf.take(layout(128)), None, "another size");
        assert_eq!(shelf.take(Layout::from_size_align(768, 16).expect("layout")), None, "another alignment");
        assert_eq!(shelf.take(layout(768)), Some(block(0x1000)));
        assert_eq!(shelf.take(layout(768)), None, "handed out once");
    }

    #[test]
    fn the_shelf_holds_a_few_small_blocks_and_hands_the_rest_back() {
        let mut shelf = Shelf::new();
        for i in 0..KEPT {
            assert_eq!(shelf.keep(block(0x1000 * (i + 1)), layout(64)), None);
        }
        assert_eq!(shelf.keep(block(0x9000), layout(64)), Some(block(0x9000)), "full");
        assert_eq!(shelf.take(layout(64)), Some(block(0x1000)));
        assert_eq!(shelf.keep(block(0xa000), layout(LARGEST + 1)), Some(block(0xa000)), "too large");
        assert_eq!(shelf.keep(block(0xb000), layout(LARGEST)), None);
    }

    #[test]
    fn natively_it_is_the_system_allocator() {
        let allocator = Recycling::new();
        let l = layout(256);
        // SAFETY: a non-zero layout; the block is written within its size and freed once.
        unsafe {
            let p = allocator.alloc_zeroed(l);
            assert!(!p.is_null());
            assert_eq!(*p.add(255), 0);
            let p = allocator.realloc(p, l, 512);
            assert!(!p.is_null());
            allocator.dealloc(p, layout(512));
        }
    }
}
