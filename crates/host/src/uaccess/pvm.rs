//! Portable user access through `process_vm_readv`/`process_vm_writev` on
//! our own pid: the kernel does the copy and reports `EFAULT` for bad
//! addresses, so no signal handler is needed. One syscall per call (a bounce
//! buffer for user-to-user copies).
//!
//! Used on every target but x86-64, and compiled in tests everywhere so that
//! it is exercised on x86-64 too. The write probe only checks VMA
//! permissions (it neither faults pages in nor breaks copy-on-write).

#![allow(unsafe_code)]
#![cfg_attr(all(test, target_arch = "x86_64"), allow(dead_code))]

use core::ffi::{c_int, c_void};
use uapi::Errno;

use super::sig::real_sigaction;

/// Pages per probe batch (well under `IOV_MAX`).
const BATCH: usize = 64;
/// Chunk of the bounce buffer / zero source.
const CHUNK: usize = 4096;

static ZEROS: [u8; CHUNK] = [0; CHUNK];

fn pid() -> libc::pid_t {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() }
}

/// `process_vm_readv` from remote `src` into `local`; returns bytes moved (0 on
/// error).
fn readv(local: &mut [u8], src: u64) -> usize {
    let l = libc::iovec {
        iov_base: local.as_mut_ptr().cast::<c_void>(),
        iov_len: local.len(),
    };
    let r = libc::iovec {
        iov_base: src as *mut c_void,
        iov_len: local.len(),
    };
    // SAFETY: the local iovec describes `local`, borrowed exclusively and
    // writable; the remote one is only read by the kernel, which checks it
    // (EFAULT, no fault).
    let n = unsafe { libc::process_vm_readv(pid(), &l, 1, &r, 1, 0) };
    usize::try_from(n).unwrap_or(0)
}

/// `process_vm_writev` of `local` to remote `dst`; returns bytes moved (0 on
/// error).
fn writev(dst: u64, local: &[u8]) -> usize {
    let l = libc::iovec {
        iov_base: local.as_ptr().cast_mut().cast::<c_void>(),
        iov_len: local.len(),
    };
    let r = libc::iovec {
        iov_base: dst as *mut c_void,
        iov_len: local.len(),
    };
    // SAFETY:
    // 1. the local iovec describes `local`, readable for its length (the
    //    kernel only reads local memory for a writev);
    // 2. the remote iovec is checked by the kernel (EFAULT, no fault).
    let n = unsafe { libc::process_vm_writev(pid(), &l, 1, &r, 1, 0) };
    usize::try_from(n).unwrap_or(0)
}

pub(super) fn install() {}

/// No fault handler here: everything goes to the real `sigaction`.
///
/// # Safety
/// See [`super::chained_sigaction`].
pub(super) unsafe fn chained_sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    oldact: *mut libc::sigaction,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { real_sigaction(sig, act, oldact) }
}

pub(super) fn copy_from_user(dst: &mut [u8], src: u64) -> usize {
    let mut done = 0;
    while done < dst.len() {
        let n = readv(&mut dst[done..], src + done as u64);
        if n == 0 {
            break;
        }
        done += n;
    }
    dst.len() - done
}

pub(super) fn copy_to_user(dst: u64, src: &[u8]) -> usize {
    let mut done = 0;
    while done < src.len() {
        let n = writev(dst + done as u64, &src[done..]);
        if n == 0 {
            break;
        }
        done += n;
    }
    src.len() - done
}

pub(super) fn dma_copy_from_user(dst: &mut [u8], src: u64, _nt: bool) -> usize {
    copy_from_user(dst, src)
}

pub(super) fn dma_copy_to_user(dst: u64, src: &[u8], _nt: bool) -> usize {
    copy_to_user(dst, src)
}

pub(super) fn copy_user_to_user(dst: u64, src: u64, len: usize) -> usize {
    let mut buf = [0u8; CHUNK];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(CHUNK);
        let off = done as u64;
        let got = n - copy_from_user(&mut buf[..n], src + off);
        let put = got - copy_to_user(dst + off, &buf[..got]);
        done += put;
        if put < n {
            break;
        }
    }
    len - done
}

pub(super) fn clear_user(dst: u64, len: usize) -> usize {
    let mut done = 0;
    while done < len {
        let n = (len - done).min(CHUNK);
        let left = copy_to_user(dst + done as u64, &ZEROS[..n]);
        done += n - left;
        if left != 0 {
            break;
        }
    }
    len - done
}

pub(super) fn probe_read(addr: u64, len: u64) -> Result<(), Errno> {
    let last = (addr + len - 1) & !(super::PROBE_PAGE - 1);
    let mut p = addr;
    let mut scratch = [0u8; BATCH];
    loop {
        let mut remote = [libc::iovec {
            iov_base: core::ptr::null_mut(),
            iov_len: 0,
        }; BATCH];
        let mut k = 0;
        while k < BATCH {
            remote[k] = libc::iovec {
                iov_base: p as *mut c_void,
                iov_len: 1,
            };
            k += 1;
            p = (p & !(super::PROBE_PAGE - 1)) + super::PROBE_PAGE;
            if p > last {
                break;
            }
        }
        let l = libc::iovec {
            iov_base: scratch.as_mut_ptr().cast::<c_void>(),
            iov_len: k,
        };
        // SAFETY: the local iovec describes `k <= BATCH` writable bytes of
        // `scratch`; `remote[..k]` are initialized iovecs of user addresses,
        // which the kernel checks (EFAULT, no fault).
        let n = unsafe { libc::process_vm_readv(pid(), &l, 1, remote.as_ptr(), k as _, 0) };
        if usize::try_from(n).ok() != Some(k) {
            return Err(Errno::FAULT);
        }
        if p > last {
            return Ok(());
        }
    }
}

pub(super) fn probe_write(addr: u64, len: u64) -> Result<(), Errno> {
    crate::vma::check_range(addr, len, true).map(|_| ())
}

pub(super) fn get_user_u32(addr: u64) -> Result<u32, Errno> {
    let mut b = [0u8; 4];
    if copy_from_user(&mut b, addr) != 0 {
        return Err(Errno::FAULT);
    }
    Ok(u32::from_ne_bytes(b))
}

pub(super) fn get_user_u64(addr: u64) -> Result<u64, Errno> {
    let mut b = [0u8; 8];
    if copy_from_user(&mut b, addr) != 0 {
        return Err(Errno::FAULT);
    }
    Ok(u64::from_ne_bytes(b))
}

pub(super) fn put_user_u32(addr: u64, val: u32) -> Result<(), Errno> {
    if copy_to_user(addr, &val.to_ne_bytes()) != 0 {
        return Err(Errno::FAULT);
    }
    Ok(())
}

pub(super) fn put_user_u64(addr: u64, val: u64) -> Result<(), Errno> {
    if copy_to_user(addr, &val.to_ne_bytes()) != 0 {
        return Err(Errno::FAULT);
    }
    Ok(())
}
