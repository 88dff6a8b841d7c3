//! The real `sigaction`, bypassing any interposer.
//!
//! The preload library exports its own `sigaction` (which calls
//! [`super::chained_sigaction`]); a plain call to `libc::sigaction` from
//! inside that library would resolve to the interposer. The real one is found
//! once with `dlsym(RTLD_NEXT, "sigaction")` (the next definition after the
//! object containing this code: libc's), falling back to `libc::sigaction`
//! when `dlsym` finds nothing (e.g. static binaries).

#![allow(unsafe_code)]

use core::ffi::c_int;
use core::sync::atomic::{AtomicUsize, Ordering};

type SigactionFn =
    unsafe extern "C" fn(c_int, *const libc::sigaction, *mut libc::sigaction) -> c_int;

/// Cached address of the real `sigaction` (0 = not resolved yet).
static REAL: AtomicUsize = AtomicUsize::new(0);

/// Resolves (once) and returns the real `sigaction`. Not async-signal-safe
/// on first use (`dlsym`): [`resolve`] is called from normal context before
/// our signal handler can need it, after which this is one atomic load.
fn real() -> SigactionFn {
    let mut p = REAL.load(Ordering::Acquire);
    if p == 0 {
        // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name has no
        // preconditions; it returns null or the address of `sigaction`.
        let sym = unsafe { libc::dlsym(libc::RTLD_NEXT, c"sigaction".as_ptr()) };
        p = if sym.is_null() {
            libc::sigaction as SigactionFn as usize
        } else {
            sym as usize
        };
        REAL.store(p, Ordering::Release);
    }
    // SAFETY: `p` is non-zero and is either libc's `sigaction` or the
    // address dlsym returned for the symbol `sigaction`, which has this
    // C signature.
    unsafe { core::mem::transmute::<usize, SigactionFn>(p) }
}

/// Makes sure the real `sigaction` is resolved, so that signal handlers can
/// use it without calling `dlsym`.
pub(super) fn resolve() {
    let _ = real();
}

/// The real `sigaction(2)` (libc's, not the preload interposer's).
///
/// # Safety
/// Exactly the contract of `sigaction(2)`: `act` and `oldact` are null or
/// valid pointers, and the handler in `act` is safe to run as a signal handler.
pub unsafe fn real_sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    oldact: *mut libc::sigaction,
) -> c_int {
    // SAFETY: forwarded contract of this function.
    unsafe { real()(sig, act, oldact) }
}
