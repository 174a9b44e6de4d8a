//! `ReserveLargeAllocations`: the broker's global allocator — the system allocator, except that
//! very large requests are served by `mmap(MAP_NORESERVE)`.
//!
//! Why: kafka-protocol sizes a decoded array with `Vec::with_capacity(n)` straight from the
//! length prefix in the request, before it knows whether `n` elements are really there. A
//! hostile 20-byte request claiming 2^31 elements asks for hundreds of GiB; the system allocator
//! refuses, and Rust aborts the process. No decoder option bounds this, so we make the request
//! harmless instead: a NORESERVE mapping only reserves address space, the decoder fails at the
//! first missing element without touching the pages, and the mapping is unmapped. Ordinary
//! allocations never take this path.

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations from this size up are mapped rather than taken from the heap.
const LARGE: usize = 1 << 30;
const PAGE: usize = 4096;

pub struct ReserveLargeAllocations;

fn is_mapped(layout: &Layout) -> bool {
    layout.size() >= LARGE && layout.align() <= PAGE
}

unsafe impl GlobalAlloc for ReserveLargeAllocations {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !is_mapped(&layout) {
            return System.alloc(layout);
        }
        let ptr = libc::mmap(
            std::ptr::null_mut(),
            layout.size(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        );
        if ptr == libc::MAP_FAILED {
            std::ptr::null_mut()
        } else {
            ptr as *mut u8
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_mapped(&layout) {
            // Fresh anonymous mappings are already zero.
            self.alloc(layout)
        } else {
            System.alloc_zeroed(layout)
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_mapped(&layout) {
            libc::munmap(ptr as *mut libc::c_void, layout.size());
        } else {
            System.dealloc(ptr, layout)
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        if !is_mapped(&layout) && !is_mapped(&new_layout) {
            return System.realloc(ptr, layout, new_size);
        }
        let new_ptr = self.alloc(new_layout);
        if !new_ptr.is_null() {
            std::ptr::copy_nonoverlapping(ptr, new_ptr, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        new_ptr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_reservations_succeed_and_small_ones_round_trip() {
        let allocator = ReserveLargeAllocations;
        unsafe {
            // 512 GiB: more than any test machine has, yet only address space is reserved.
            let huge = Layout::from_size_align(512 << 30, 8).unwrap();
            let ptr = allocator.alloc(huge);
            assert!(!ptr.is_null());
            *ptr = 7;
            assert_eq!(*ptr, 7);
            allocator.dealloc(ptr, huge);

            let small = Layout::from_size_align(64, 8).unwrap();
            let ptr = allocator.alloc(small);
            *ptr.add(63) = 1;
            let grown = allocator.realloc(ptr, small, LARGE);
            assert_eq!(*grown.add(63), 1);
            allocator.dealloc(grown, Layout::from_size_align(LARGE, 8).unwrap());
        }
    }
}
