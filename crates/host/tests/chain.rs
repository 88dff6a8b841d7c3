//! Signal chaining of the uaccess fault handler, each case in a forked child
//! (genuine faults kill or redirect the process, so they cannot run in the
//! test harness itself).

#![cfg(target_arch = "x86_64")]

use core::ffi::{c_int, c_void};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::Mutex;

use host::sys::Mmap;
use host::uaccess::{self, chained_sigaction, real_sigaction};
use host::Errno;

/// Forks are serialized so that no child inherits a lock another test
/// thread of ours was holding.
static FORK_LOCK: Mutex<()> = Mutex::new(());

/// Runs `f` in a forked child (no core dumps) and returns the raw wait status.
/// `f`'s return value becomes the exit code.
fn in_child(f: fn() -> i32) -> c_int {
    let _g = FORK_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    uaccess::install();
    // SAFETY: the child runs `f` (which only uses this crate's API and libc)
    // and leaves with _exit, never returning into the harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: setrlimit reads the local `r`.
        unsafe { libc::setrlimit(libc::RLIMIT_CORE, &r) };
        let code = std::panic::catch_unwind(f).unwrap_or(99);
        // SAFETY: _exit terminates the child without running the harness.
        unsafe { libc::_exit(code) };
    }
    let mut st = 0;
    // SAFETY: waiting for our own child with a writable status.
    assert_eq!(unsafe { libc::waitpid(pid, &mut st, 0) }, pid);
    st
}

fn assert_exit(st: c_int, code: i32) {
    assert!(libc::WIFEXITED(st), "child did not exit: status {st:#x}");
    assert_eq!(libc::WEXITSTATUS(st), code, "child exit code");
}

fn assert_killed_by(st: c_int, sig: c_int) {
    assert!(
        libc::WIFSIGNALED(st),
        "child not killed by a signal: status {st:#x}"
    );
    assert_eq!(libc::WTERMSIG(st), sig);
}

/// A genuine NULL write, outside the uaccess routines.
fn null_write() {
    // SAFETY: deliberately faults; the tests run this in children where the
    // fault either kills the process or reaches a handler that exits or
    // skips the instruction.
    unsafe { core::arch::asm!("mov byte ptr [{0}], 1", in(reg) 0usize, options(nostack)) };
}

fn action(handler: usize, flags: c_int, mask: &[c_int]) -> libc::sigaction {
    let mut sa = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: all-zero is a valid sigaction; sigemptyset/sigaddset
    // initialize the mask in place.
    let mut sa = unsafe {
        libc::sigemptyset(&raw mut (*sa.as_mut_ptr()).sa_mask);
        for &s in mask {
            libc::sigaddset(&raw mut (*sa.as_mut_ptr()).sa_mask, s);
        }
        sa.assume_init()
    };
    sa.sa_sigaction = handler;
    sa.sa_flags = flags;
    sa
}

fn set(sig: c_int, act: Option<&libc::sigaction>) -> libc::sigaction {
    let mut old = MaybeUninit::<libc::sigaction>::zeroed();
    let p = act.map_or(core::ptr::null(), |a| a as *const _);
    // SAFETY: valid pointers; the handlers installed are the test's own.
    let rc = unsafe { chained_sigaction(sig, p, old.as_mut_ptr()) };
    assert_eq!(rc, 0);
    // SAFETY: written by the successful call (and zero-initialized anyway).
    unsafe { old.assume_init() }
}

fn blocked(sig: c_int) -> bool {
    let mut cur = MaybeUninit::<libc::sigset_t>::zeroed();
    // SAFETY: query of the current mask into a writable local.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, core::ptr::null(), cur.as_mut_ptr());
        libc::sigismember(cur.as_ptr(), sig) == 1
    }
}

fn errno() -> c_int {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

extern "C" fn exit42_on_null_segv(sig: c_int, info: *mut libc::siginfo_t, _ctx: *mut c_void) {
    // SAFETY: SA_SIGINFO handler: `info` is the kernel's siginfo.
    let addr = unsafe { (*info).si_addr() } as usize;
    // The kernel would block sa_mask (SIGUSR1) and the signal itself.
    let ok = sig == libc::SIGSEGV && addr == 0 && blocked(libc::SIGUSR1) && blocked(libc::SIGSEGV);
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(if ok { 42 } else { 43 }) };
}

#[test]
fn program_handler_is_chained() {
    let st = in_child(|| {
        let h =
            exit42_on_null_segv as extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) as usize;
        let act = action(h, libc::SA_SIGINFO, &[libc::SIGUSR1]);
        let prev = set(libc::SIGSEGV, Some(&act));
        // Round trip: what we set is reported back, and so is what was there.
        let cur = set(libc::SIGSEGV, None);
        if cur.sa_sigaction != h || cur.sa_flags != libc::SA_SIGINFO {
            return 2;
        }
        // SAFETY: `cur.sa_mask` is an initialized sigset_t.
        if unsafe {
            libc::sigismember(&cur.sa_mask, libc::SIGUSR1) != 1
                || libc::sigismember(&cur.sa_mask, libc::SIGUSR2) != 0
        } {
            return 3;
        }
        let ign = action(libc::SIG_IGN, 0, &[]);
        if set(libc::SIGSEGV, Some(&ign)).sa_sigaction != h {
            return 4;
        }
        if set(libc::SIGSEGV, Some(&prev)).sa_sigaction != libc::SIG_IGN {
            return 5;
        }
        let back = set(libc::SIGSEGV, Some(&act));
        if back.sa_sigaction != prev.sa_sigaction || back.sa_flags != prev.sa_flags {
            return 6;
        }
        // Bad pointers give EFAULT like the kernel.
        // SAFETY: deliberately bad pointers, which chained_sigaction checks.
        let rc = unsafe {
            chained_sigaction(
                libc::SIGSEGV,
                16 as *const libc::sigaction,
                core::ptr::null_mut(),
            )
        };
        if rc != -1 || errno() != libc::EFAULT {
            return 7;
        }
        // SAFETY: as above.
        let rc = unsafe {
            chained_sigaction(libc::SIGSEGV, core::ptr::null(), 16 as *mut libc::sigaction)
        };
        if rc != -1 || errno() != libc::EFAULT {
            return 8;
        }
        // Our handler stays installed for real...
        let mut real = MaybeUninit::<libc::sigaction>::zeroed();
        // SAFETY: query into a writable local.
        unsafe { real_sigaction(libc::SIGSEGV, core::ptr::null(), real.as_mut_ptr()) };
        // SAFETY: zero-initialized and filled by the query.
        if unsafe { real.assume_init() }.sa_sigaction == h {
            return 9;
        }
        // ...so uaccess faults still become EFAULT, not the program's handler.
        let mut m = Mmap::anon(8192, libc::PROT_READ | libc::PROT_WRITE, 0).unwrap();
        m.unmap_range(4096, 4096).unwrap();
        let mut b = [0u8; 8];
        if uaccess::copy_from_user(&mut b, m.addr() + 4096) != Err(Errno::FAULT) {
            return 10;
        }
        null_write();
        1
    });
    assert_exit(st, 42);
}

#[test]
fn no_program_handler_dies_with_sigsegv() {
    let st = in_child(|| {
        set(libc::SIGSEGV, Some(&action(libc::SIG_DFL, 0, &[])));
        null_write();
        1
    });
    assert_killed_by(st, libc::SIGSEGV);
}

#[test]
fn inherited_handler_still_dies_with_sigsegv() {
    // Whatever was installed before us (SIG_DFL, or std's stack-overflow
    // handler, which resets to SIG_DFL for faults outside guard pages).
    let st = in_child(|| {
        null_write();
        1
    });
    assert_killed_by(st, libc::SIGSEGV);
}

#[test]
fn ignored_fault_still_dies() {
    // As in the kernel's force_sig_fault: SIG_IGN does not survive a fault.
    let st = in_child(|| {
        set(libc::SIGSEGV, Some(&action(libc::SIG_IGN, 0, &[])));
        null_write();
        1
    });
    assert_killed_by(st, libc::SIGSEGV);
}

#[test]
fn sent_signals_honour_ignore_and_default() {
    let st = in_child(|| {
        set(libc::SIGSEGV, Some(&action(libc::SIG_IGN, 0, &[])));
        // SAFETY: raise is always safe to call.
        unsafe { libc::raise(libc::SIGSEGV) };
        // Still alive, and uaccess still works.
        if uaccess::probe_read(16, 1) != Err(Errno::FAULT) {
            return 2;
        }
        let (_m, hole) = {
            let mut m = Mmap::anon(8192, libc::PROT_READ, 0).unwrap();
            m.unmap_range(0, 4096).unwrap();
            let a = m.addr();
            (m, a)
        };
        if uaccess::probe_read(hole, 1) != Err(Errno::FAULT) {
            return 3;
        }
        set(libc::SIGSEGV, Some(&action(libc::SIG_DFL, 0, &[])));
        // SAFETY: as above.
        unsafe { libc::raise(libc::SIGSEGV) };
        1
    });
    assert_killed_by(st, libc::SIGSEGV);
}

static PIPE_W: AtomicI32 = AtomicI32::new(-1);
static CALLS: AtomicI32 = AtomicI32::new(0);

extern "C" fn plain_counting(sig: c_int) {
    if sig != libc::SIGSEGV || CALLS.fetch_add(1, Ordering::Relaxed) > 0 {
        // SAFETY: async-signal-safe exit.
        unsafe { libc::_exit(45) };
    }
    // SAFETY: write of one byte from a static to the pipe's write end.
    unsafe { libc::write(PIPE_W.load(Ordering::Relaxed), b"x".as_ptr().cast(), 1) };
}

#[test]
fn resethand_plain_handler_runs_once_then_default() {
    let mut fds = [0; 2];
    // SAFETY: pipe writes two descriptors into the local array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    PIPE_W.store(fds[1], Ordering::Relaxed);
    let st = in_child(|| {
        let h = plain_counting as extern "C" fn(c_int) as usize;
        set(libc::SIGSEGV, Some(&action(h, libc::SA_RESETHAND, &[])));
        // The handler returns, the write faults again, now with SIG_DFL.
        null_write();
        1
    });
    // SAFETY: closing our write end, then reading from our read end into a
    // local buffer.
    let n = unsafe {
        libc::close(fds[1]);
        let mut b = [0u8; 8];
        let n = libc::read(fds[0], b.as_mut_ptr().cast(), 8);
        libc::close(fds[0]);
        n
    };
    assert_killed_by(st, libc::SIGSEGV);
    assert_eq!(n, 1, "handler ran once");
}

static RESUME: AtomicUsize = AtomicUsize::new(0);

extern "C" fn skip_fault(_sig: c_int, _info: *mut libc::siginfo_t, ctx: *mut c_void) {
    let resume = RESUME.load(Ordering::Relaxed) as i64;
    // SAFETY: SA_SIGINFO handler: `ctx` is the kernel's ucontext, writable.
    let uc = unsafe { &mut *ctx.cast::<libc::ucontext_t>() };
    uc.uc_mcontext.gregs[libc::REG_RIP as usize] = resume;
}

#[test]
fn program_handler_context_changes_take_effect() {
    let st = in_child(|| {
        let h = skip_fault as extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) as usize;
        set(libc::SIGSEGV, Some(&action(h, libc::SA_SIGINFO, &[])));
        for _ in 0..3 {
            // SAFETY: the NULL write faults; the program handler resumes at
            // label 2, right after it, with all registers as they were.
            unsafe {
                core::arch::asm!(
                    "lea {t}, [rip + 2f]",
                    "mov qword ptr [{slot}], {t}",
                    "mov byte ptr [{z}], 1",
                    "2:",
                    t = out(reg) _,
                    slot = in(reg) RESUME.as_ptr(),
                    z = in(reg) 0usize,
                    options(nostack),
                );
            }
        }
        0
    });
    assert_exit(st, 0);
}

extern "C" fn exit42_on_sigbus(sig: c_int, info: *mut libc::siginfo_t, _ctx: *mut c_void) {
    // SAFETY: SA_SIGINFO handler: `info` is the kernel's siginfo.
    let code = unsafe { (*info).si_code };
    // SAFETY: _exit is async-signal-safe.
    unsafe {
        libc::_exit(if sig == libc::SIGBUS && code == libc::BUS_ADRERR {
            42
        } else {
            43
        })
    };
}

#[test]
fn sigbus_is_chained_too() {
    let st = in_child(|| {
        let h =
            exit42_on_sigbus as extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) as usize;
        set(libc::SIGBUS, Some(&action(h, libc::SA_SIGINFO, &[])));
        // SAFETY: memfd_create with a NUL-terminated name.
        let fd = unsafe { libc::memfd_create(c"chain-bus".as_ptr(), 0) };
        // SAFETY: maps our own empty memfd: every access is beyond EOF.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                4096,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return 2;
        }
        let mut b = [0u8; 4];
        if uaccess::copy_from_user(&mut b, p as u64) != Err(Errno::FAULT) {
            return 3;
        }
        // SAFETY: deliberately reads beyond EOF: SIGBUS to the handler, which exits.
        unsafe { core::ptr::read_volatile(p.cast::<u8>()) };
        1
    });
    assert_exit(st, 42);
}

static USR1: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_usr1(_sig: c_int) {
    USR1.fetch_add(1, Ordering::Relaxed);
}

#[test]
fn other_signals_are_forwarded() {
    let st = in_child(|| {
        let h = on_usr1 as extern "C" fn(c_int) as usize;
        let prev = set(libc::SIGUSR1, Some(&action(h, 0, &[])));
        if prev.sa_sigaction != libc::SIG_DFL {
            return 2;
        }
        let mut real = MaybeUninit::<libc::sigaction>::zeroed();
        // SAFETY: query into a writable local; then raise.
        unsafe {
            real_sigaction(libc::SIGUSR1, core::ptr::null(), real.as_mut_ptr());
            if real.assume_init().sa_sigaction != h {
                return 3;
            }
            libc::raise(libc::SIGUSR1);
        }
        if USR1.load(Ordering::Relaxed) != 1 {
            return 4;
        }
        // SAFETY: an invalid signal number; EINVAL from the real sigaction.
        let rc = unsafe { chained_sigaction(0, core::ptr::null(), core::ptr::null_mut()) };
        if rc != -1 || errno() != libc::EINVAL {
            return 5;
        }
        0
    });
    assert_exit(st, 0);
}
