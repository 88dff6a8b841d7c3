//! Fault-safe access to arbitrary user addresses: the userspace equivalent of
//! the kernel's `copy_from_user`/`copy_to_user`.
//!
//! The emulated ioctls receive raw pointers from the C program. A bad pointer
//! (NULL, unmapped, wrong protection) must produce `EFAULT`, never a crash,
//! and the common path must cost less than a real syscall.
//!
//! On x86-64 this is done the way the kernel does it (module `x86_64`): the
//! copy, fill and probe routines are written in assembly; a table lists, for
//! each routine, the address range of its one faulting instruction and a fixup
//! label. A process-wide SIGSEGV/SIGBUS handler (installed lazily by
//! [`install`]) checks whether the interrupted RIP lies in such a range and,
//! if so, sets RIP to the fixup, which returns the number of bytes not copied.
//! Faults anywhere else are chained to the program's own handler (see
//! [`chained_sigaction`]) or, failing one, kill the process as they would have.
//!
//! Elsewhere (module `pvm`) the same API is implemented with
//! `process_vm_readv`/`process_vm_writev` on our own pid: slower (a syscall
//! per call) but equally safe.
//!
//! Every function here returns `Err(Errno::FAULT)` when any byte of the user
//! range is inaccessible; address 0 and ranges that wrap or reach
//! [`USER_END`] fail without touching memory; zero-length accesses succeed
//! whatever the address.
//!
//! These functions are safe in the sense that they never crash and never let
//! a fault escape; like writes through `/proc/self/mem`, they can of course
//! write to any mapped writable address the C program names, which is the
//! point. Callers only ever pass addresses that came from the C program.

#![allow(unsafe_code)]

use core::ffi::c_int;
use uapi::Errno;
use zerocopy::{FromBytes, Immutable, IntoBytes};

#[cfg(any(not(target_arch = "x86_64"), test))]
mod pvm;
mod sig;
#[cfg(target_arch = "x86_64")]
mod x86_64;

#[cfg(target_arch = "x86_64")]
use x86_64 as arch;

#[cfg(not(target_arch = "x86_64"))]
use pvm as arch;

pub use sig::real_sigaction;

/// First address above the canonical user half with 4-level paging: user
/// ranges must end at or below it.
pub const USER_END: u64 = 1 << 47;

/// Granule of the probes: one access per 4 KiB page.
pub const PROBE_PAGE: u64 = 4096;

/// Validates a non-empty user range `[addr, addr + len)`: non-NULL, no
/// wrap-around, inside the canonical user half.
fn check_range(addr: u64, len: u64) -> Result<(), Errno> {
    if addr == 0 {
        return Err(Errno::FAULT);
    }
    match addr.checked_add(len) {
        Some(end) if end <= USER_END && usize::try_from(end).is_ok() => Ok(()),
        _ => Err(Errno::FAULT),
    }
}

/// The kernel's `access_ok(addr, len)` for a length not known at build time
/// (x86-64, 4-level paging): the range ends at or below `USER_PTR_MAX`, the
/// start of the last user page, without wrapping. It says nothing of what is
/// mapped: NULL passes.
pub fn access_ok(addr: u64, len: u64) -> bool {
    addr.checked_add(len)
        .is_some_and(|end| end <= USER_END - PROBE_PAGE)
}

/// Installs the SIGSEGV/SIGBUS fixup handler (idempotent). The copy functions
/// call it lazily, so calling it is never required; it costs one atomic load
/// once installed. The previous handlers become the chained (program) ones.
/// A no-op where the `process_vm_*` fallback is used.
#[inline]
pub fn install() {
    arch::install();
}

/// `sigaction(2)` as the C program must see it.
///
/// For `SIGSEGV` and `SIGBUS`, the program's action is recorded as the
/// *chained* action (called by our handler for faults outside our routines,
/// with the program's `sa_mask`/`SA_NODEFER`/`SA_RESETHAND`/`SA_SIGINFO`
/// semantics) and `oldact` receives the previous chained action, while our
/// handler stays installed. For other signals (and on targets without the
/// fault handler) the call is forwarded to [`real_sigaction`].
///
/// Returns 0, or -1 with `errno` set (`EFAULT` when `act`/`oldact` is a bad
/// pointer, `EINVAL` from the real `sigaction`).
///
/// # Safety
/// Same contract as `sigaction(2)`: `act`, if non-null, describes a handler
/// that is safe to call as a signal handler for `sig`. `act` and `oldact` may
/// be null or any address: bad pointers give `EFAULT`, not a crash.
pub unsafe fn chained_sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    oldact: *mut libc::sigaction,
) -> c_int {
    // SAFETY: forwarded contract of this function.
    unsafe { arch::chained_sigaction(sig, act, oldact) }
}

/// Removes SIGSEGV and SIGBUS from a signal set.
///
/// A fault while SIGSEGV/SIGBUS is blocked is not delivered to any handler:
/// the kernel resets the action to `SIG_DFL` and kills the process, even for
/// a fault inside our copy routines. The preload library should pass the
/// sets of the program's `sigprocmask`/`pthread_sigmask` calls through this
/// (POSIX leaves blocking fault signals undefined anyway).
pub fn remove_fault_signals(set: &mut libc::sigset_t) {
    // SAFETY: `set` is a valid, initialized, exclusively borrowed sigset_t.
    unsafe {
        libc::sigdelset(set, libc::SIGSEGV);
        libc::sigdelset(set, libc::SIGBUS);
    }
}

/// Copies `dst.len()` bytes from user address `src` into `dst`.
///
/// On a fault the bytes not copied are zeroed (like the kernel) and
/// `Err(FAULT)` is returned.
pub fn copy_from_user(dst: &mut [u8], src: u64) -> Result<(), Errno> {
    if dst.is_empty() {
        return Ok(());
    }
    check_range(src, dst.len() as u64)?;
    let left = arch::copy_from_user(dst, src);
    if left == 0 {
        return Ok(());
    }
    let n = dst.len();
    dst[n - left.min(n)..].fill(0);
    Err(Errno::FAULT)
}

/// Copies `src` to user address `dst`. On a fault a prefix may have been
/// written.
pub fn copy_to_user(dst: u64, src: &[u8]) -> Result<(), Errno> {
    if src.is_empty() {
        return Ok(());
    }
    check_range(dst, src.len() as u64)?;
    if arch::copy_to_user(dst, src) == 0 {
        Ok(())
    } else {
        Err(Errno::FAULT)
    }
}

/// [`copy_from_user`] for emulated DMA: short copies (16-64 bytes) without
/// `rep movsb`'s start-up cost, and non-temporal stores when `nt` (for large
/// copies whose destination should not displace the CPU's caches).
///
/// On a fault the bytes not copied are zeroed and `Err(FAULT)` is returned;
/// every byte before the faulting one was copied.
#[inline]
pub fn dma_copy_from_user(dst: &mut [u8], src: u64, nt: bool) -> Result<(), Errno> {
    if dst.is_empty() {
        return Ok(());
    }
    check_range(src, dst.len() as u64)?;
    let left = arch::dma_copy_from_user(dst, src, nt);
    if left == 0 {
        return Ok(());
    }
    let n = dst.len();
    dst[n - left.min(n)..].fill(0);
    Err(Errno::FAULT)
}

/// [`copy_to_user`] for emulated DMA (see [`dma_copy_from_user`]). On a
/// fault, every byte before the faulting one was written.
#[inline]
pub fn dma_copy_to_user(dst: u64, src: &[u8], nt: bool) -> Result<(), Errno> {
    if src.is_empty() {
        return Ok(());
    }
    check_range(dst, src.len() as u64)?;
    if arch::dma_copy_to_user(dst, src, nt) == 0 {
        Ok(())
    } else {
        Err(Errno::FAULT)
    }
}

/// Copies `len` bytes from user address `src` to user address `dst`, forward
/// one byte at a time semantically (overlap with `dst > src` replicates the
/// pattern, as `rep movsb` does; it is not `memmove`).
pub fn copy_user_to_user(dst: u64, src: u64, len: usize) -> Result<(), Errno> {
    if len == 0 {
        return Ok(());
    }
    check_range(dst, len as u64)?;
    check_range(src, len as u64)?;
    if arch::copy_user_to_user(dst, src, len) == 0 {
        Ok(())
    } else {
        Err(Errno::FAULT)
    }
}

/// Zeroes `len` bytes at user address `dst`.
pub fn clear_user(dst: u64, len: usize) -> Result<(), Errno> {
    if len == 0 {
        return Ok(());
    }
    check_range(dst, len as u64)?;
    if arch::clear_user(dst, len) == 0 {
        Ok(())
    } else {
        Err(Errno::FAULT)
    }
}

/// Checks that every byte of `[addr, addr + len)` is readable, with one load
/// per 4 KiB page (which also faults the pages in, like a read-only GUP).
pub fn probe_read(addr: u64, len: u64) -> Result<(), Errno> {
    if len == 0 {
        return Ok(());
    }
    check_range(addr, len)?;
    arch::probe_read(addr, len)
}

/// Checks that every byte of `[addr, addr + len)` is writable, with one
/// value-preserving atomic write (`lock or byte [p], 0`) per 4 KiB page: this
/// checks write permission and breaks copy-on-write like a `FOLL_WRITE` pin,
/// without racing other writers.
///
/// Fallback targets only check the VMA permissions (see [`crate::vma`]).
pub fn probe_write(addr: u64, len: u64) -> Result<(), Errno> {
    if len == 0 {
        return Ok(());
    }
    check_range(addr, len)?;
    arch::probe_write(addr, len)
}

/// Reads a `u32` (any alignment) from user address `addr`.
pub fn get_user_u32(addr: u64) -> Result<u32, Errno> {
    check_range(addr, 4)?;
    arch::get_user_u32(addr)
}

/// Reads a `u64` (any alignment) from user address `addr`.
pub fn get_user_u64(addr: u64) -> Result<u64, Errno> {
    check_range(addr, 8)?;
    arch::get_user_u64(addr)
}

/// Writes a `u32` (any alignment) to user address `addr`.
pub fn put_user_u32(addr: u64, val: u32) -> Result<(), Errno> {
    check_range(addr, 4)?;
    arch::put_user_u32(addr, val)
}

/// Writes a `u64` (any alignment) to user address `addr`.
pub fn put_user_u64(addr: u64, val: u64) -> Result<(), Errno> {
    check_range(addr, 8)?;
    arch::put_user_u64(addr, val)
}

/// Reads a `T` from user address `addr` (any alignment).
pub fn read_user<T: FromBytes + IntoBytes>(addr: u64) -> Result<T, Errno> {
    let mut v = T::new_zeroed();
    copy_from_user(v.as_mut_bytes(), addr)?;
    Ok(v)
}

/// Writes `val` to user address `addr` (any alignment).
pub fn write_user<T: IntoBytes + Immutable>(addr: u64, val: &T) -> Result<(), Errno> {
    copy_to_user(addr, val.as_bytes())
}

#[cfg(test)]
mod tests;
