//! With telemetry off, an instrumented call allocates nothing: counted by a
//! global allocator that counts this thread's allocations.

#![allow(unsafe_code)] // a counting allocator is a `GlobalAlloc`

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use devsy_telemetry::telemetry_command;

struct Counting;

thread_local! {
    // `const` and without a destructor: reading it never allocates.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; counting touches only a
// thread-local `Cell`.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[telemetry_command(provider = name)]
fn provider_delete(name: &str) -> Result<usize, &'static str> {
    if name.is_empty() {
        Err("empty")
    } else {
        Ok(name.len())
    }
}

#[telemetry_command]
async fn up(n: u32) -> Result<u32, &'static str> {
    Ok(n + 1)
}

#[test]
fn an_instrumented_call_allocates_nothing_when_telemetry_is_off() {
    // No client is started in this binary: telemetry is off.
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let before = allocations();
    for i in 0..1000_u32 {
        assert_eq!(provider_delete("docker"), Ok(6));
        assert_eq!(provider_delete(""), Err("empty"));
        let mut future = std::pin::pin!(up(i));
        assert_eq!(
            future.as_mut().poll(&mut cx),
            std::task::Poll::Ready(Ok(i + 1))
        );
    }
    assert_eq!(allocations() - before, 0);

    // The counter does see allocations.
    let boxed = Box::new(1_u8);
    assert_eq!(allocations() - before, 1);
    drop(boxed);
}
