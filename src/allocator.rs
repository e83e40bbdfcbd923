//! The module's global allocator on WASI: wasi-libc's `malloc`, `calloc`, `realloc` and `free`,
//! as std's `System` allocator calls them there (`library/std/src/sys/alloc/unix.rs`: the same
//! functions under the same conditions), without std's wrapper between the allocation shim and
//! `malloc`. That wrapper is a function of its own in the module, which sets up a shadow-stack
//! frame on every call for the out-parameter of its rarely taken `posix_memalign` branch: ≈ 50
//! x86 instructions an allocation as wasmtime compiles it, and a fresh evaluation makes ≈ 500
//! (docs/benchmarks.md, twentieth pass). Here that branch is a cold function of its own, and
//! `alloc` alone is inlined into the allocation shim (inlining `dealloc` and `realloc` too
//! grew the module by 12 KB for nothing measurable).
//!
//! Its tests run natively against the C library's allocator, which keeps the same contract, and
//! in wasm32-wasip1 (`make test-wasm`) against wasi-libc's own.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

/// The alignment every `malloc` of wasi-libc gives at least (std's `MIN_ALIGN` on wasm32).
const MIN_ALIGN: usize = 8;

/// wasi-libc's allocator, called as std calls it.
pub struct LibcMalloc;

/// Whether `malloc` (or `realloc`) of `size` bytes is aligned enough for `align`: std's test
/// (an allocator may align a block smaller than `MIN_ALIGN` to less).
fn plain(align: usize, size: usize) -> bool {
    align <= MIN_ALIGN && align <= size
}

/// An allocation `malloc` does not align enough: `posix_memalign`, as std does.
#[cold]
#[inline(never)]
fn aligned(layout: Layout) -> *mut u8 {
    let mut out = std::ptr::null_mut();
    // posix_memalign needs an alignment of at least a pointer's size.
    let align = layout.align().max(size_of::<usize>());
    // SAFETY: `out` is a valid place for the pointer; `align` is a power of two (a `Layout`'s,
    // or a pointer's size) and a multiple of a pointer's size, as `posix_memalign` requires.
    match unsafe { libc::posix_memalign(&mut out, align, layout.size()) } {
        0 => out.cast(),
        _ => std::ptr::null_mut(),
    }
}

// SAFETY: every block comes from wasi-libc's allocator and goes back to it (`free`, `realloc`);
// `malloc`, `calloc` and `realloc` are used only when their alignment suffices (`plain`), else
// `posix_memalign`; a failure is a null pointer, as `GlobalAlloc` requires. The module is
// single-threaded (wasm32-wasip1), and wasi-libc's allocator is its only user of the heap.
unsafe impl GlobalAlloc for LibcMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if plain(layout.align(), layout.size()) {
            // SAFETY: any size; the block is aligned to `MIN_ALIGN` at least.
            unsafe { libc::malloc(layout.size()).cast() }
        } else {
            aligned(layout)
        }
    }

    #[inline(never)]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if plain(layout.align(), layout.size()) {
            // SAFETY: as `alloc`; `calloc` zeroes the block.
            unsafe { libc::calloc(layout.size(), 1).cast() }
        } else {
            let block = aligned(layout);
            if !block.is_null() {
                // SAFETY: the block holds `layout.size()` bytes.
                unsafe { block.write_bytes(0, layout.size()) };
            }
            block
        }
    }

    #[inline(never)]
    unsafe fn dealloc(&self, block: *mut u8, _layout: Layout) {
        // SAFETY: the caller gives back a block this allocator gave (`GlobalAlloc`'s contract).
        unsafe { libc::free(block.cast::<c_void>()) }
    }

    #[inline(never)]
    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if plain(layout.align(), new_size) {
            // SAFETY: a block of this allocator; `realloc` keeps `MIN_ALIGN`.
            unsafe { libc::realloc(block.cast::<c_void>(), new_size).cast() }
        } else {
            // SAFETY: `GlobalAlloc`'s contract, passed on. A new block, the bytes copied, the old
            // one freed: std's `realloc_fallback`, which is also the trait's default.
            unsafe {
                let new = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
                if !new.is_null() {
                    std::ptr::copy_nonoverlapping(block, new, layout.size().min(new_size));
                    self.dealloc(block, layout);
                }
                new
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Every block is aligned as asked, holds its bytes, keeps them through `realloc` (grown
        /// or shrunk), comes zeroed from `alloc_zeroed`, and goes back; for alignments `malloc`
        /// gives and those it does not (the cold `posix_memalign` branch).
        #[test]
        fn blocks_are_aligned_and_keep_their_bytes(
            size in 1usize..5000,
            new_size in 1usize..5000,
            align in prop::sample::select(&[1usize, 2, 4, 8, 16, 32, 64, 4096][..]),
            byte in any::<u8>(),
        ) {
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero sizes; each block used within its size and freed once, with its layout.
            unsafe {
                let block = LibcMalloc.alloc(layout);
                prop_assert!(!block.is_null());
                prop_assert_eq!(block as usize % align, 0);
                block.write_bytes(byte, size);
                let grown = LibcMalloc.realloc(block, layout, new_size);
                prop_assert!(!grown.is_null());
                prop_assert_eq!(grown as usize % align, 0);
                let kept = std::slice::from_raw_parts(grown, size.min(new_size));
                prop_assert!(kept.iter().all(|&b| b == byte));
                LibcMalloc.dealloc(grown, Layout::from_size_align(new_size, align).unwrap());

                let zeroed = LibcMalloc.alloc_zeroed(layout);
                prop_assert!(!zeroed.is_null());
                prop_assert_eq!(zeroed as usize % align, 0);
                prop_assert!(std::slice::from_raw_parts(zeroed, size).iter().all(|&b| b == 0));
                LibcMalloc.dealloc(zeroed, layout);
            }
        }
    }

    #[test]
    fn malloc_is_used_only_where_its_alignment_suffices() {
        assert!(plain(8, 8) && plain(1, 1) && plain(4, 100));
        // Larger than `malloc` guarantees, or than a block this small may be aligned to.
        assert!(!plain(16, 64) && !plain(8, 4) && !plain(4096, 4096));
    }

    /// A request the C library cannot serve is a null pointer, not a crash. Natively only: in
    /// wasm32 `isize::MAX` is 2 GiB, which a wasm memory of 4 GiB may well serve.
    #[cfg(not(target_family = "wasm"))]
    #[test]
    fn an_impossible_block_is_null() {
        let layout = Layout::from_size_align(isize::MAX as usize - 4096, 4096).unwrap();
        // SAFETY: a valid layout; nothing is allocated.
        assert!(unsafe { LibcMalloc.alloc(layout) }.is_null());
        let layout = Layout::from_size_align(isize::MAX as usize - 8, 8).unwrap();
        // SAFETY: as above.
        assert!(unsafe { LibcMalloc.alloc(layout) }.is_null());
    }
}
