//! The interposed libc functions. Every `extern "C"` of the library is here.
//!
//! Each function checks whether the fd (or path) is emulated; if not it calls the
//! next definition of the symbol (`dlsym(RTLD_NEXT)`), so programs that never touch
//! `/dev/iommu` see no difference beyond one atomic load per call. Emulated calls
//! run inside `catch_unwind`: a bug in the emulation becomes `EIO`, never an unwind
//! into C.
//!
//! Variadic C functions (`open`, `openat`, `ioctl`, `fcntl`) are defined with their
//! optional argument as a fixed one: on x86-64 and aarch64 the variadic and fixed
//! conventions pass integer arguments in the same registers, and the callee reads a
//! register the caller may leave undefined only where C would read `va_arg`.

#![allow(unsafe_code)]
#![expect(
    unreachable_pub,
    reason = "the #[no_mangle] C symbols are the library's interface, exported to the program"
)]

use std::ffi::CStr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use crate::devnode::Node;
use inproc::vfs::{self, At, Dir};
use inproc::{FdEntry, FdTable};
use libc::{c_char, c_int, c_uint, c_ulong, c_void, iovec, mode_t, off_t, size_t, ssize_t};
use uapi::Errno;

type OpenFn = unsafe extern "C" fn(*const c_char, c_int, mode_t) -> c_int;
type OpenatFn = unsafe extern "C" fn(c_int, *const c_char, c_int, mode_t) -> c_int;
type IoctlFn = unsafe extern "C" fn(c_int, c_ulong, *mut c_void) -> c_int;
type CloseFn = unsafe extern "C" fn(c_int) -> c_int;
type Dup2Fn = unsafe extern "C" fn(c_int, c_int) -> c_int;
type Dup3Fn = unsafe extern "C" fn(c_int, c_int, c_int) -> c_int;
type FcntlFn = unsafe extern "C" fn(c_int, c_int, c_ulong) -> c_int;
type ReadFn = unsafe extern "C" fn(c_int, *mut c_void, size_t) -> ssize_t;
type WriteFn = unsafe extern "C" fn(c_int, *const c_void, size_t) -> ssize_t;
type PreadFn = unsafe extern "C" fn(c_int, *mut c_void, size_t, off_t) -> ssize_t;
type PwriteFn = unsafe extern "C" fn(c_int, *const c_void, size_t, off_t) -> ssize_t;
type ReadvFn = unsafe extern "C" fn(c_int, *const iovec, c_int) -> ssize_t;
type PreadvFn = unsafe extern "C" fn(c_int, *const iovec, c_int, off_t) -> ssize_t;
type Preadv2Fn = unsafe extern "C" fn(c_int, *const iovec, c_int, off_t, c_int) -> ssize_t;
type LseekFn = unsafe extern "C" fn(c_int, off_t, c_int) -> off_t;
type SignalFn = unsafe extern "C" fn(c_int, libc::sighandler_t) -> libc::sighandler_t;

/// The next definitions of the symbols we interpose.
struct Real {
    open: OpenFn,
    openat: OpenatFn,
    ioctl: IoctlFn,
    close: CloseFn,
    dup: CloseFn,
    dup2: Dup2Fn,
    dup3: Dup3Fn,
    fcntl: FcntlFn,
    read: ReadFn,
    write: WriteFn,
    pread: PreadFn,
    pwrite: PwriteFn,
    readv: ReadvFn,
    writev: ReadvFn,
    preadv: PreadvFn,
    pwritev: PreadvFn,
    lseek: LseekFn,
    signal: SignalFn,
}

/// Resolves `name` with `dlsym(RTLD_NEXT)`; aborts if libc lacks it, since nothing
/// can run without it.
fn next_symbol(name: &CStr) -> *mut c_void {
    // SAFETY: `name` is a valid NUL-terminated string; RTLD_NEXT asks the dynamic
    // linker for the next definition after this library, which has no other effect.
    let sym = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) };
    if sym.is_null() {
        std::process::abort();
    }
    sym
}

macro_rules! resolve {
    ($name:literal, $ty:ty) => {
        // SAFETY: the symbol is the libc function of that name, whose C prototype is
        // `$ty` (checked against glibc's declarations; variadic tails are passed as
        // one fixed argument, see the module doc); `next_symbol` never returns null.
        unsafe { core::mem::transmute::<*mut c_void, $ty>(next_symbol($name)) }
    };
}

/// Exports another name of an interposed function: glibc's 64-bit-offset
/// twins (`open64`, `pread64`, ...: on 64-bit glibc the same function) and
/// aliases (`eaccess`).
macro_rules! alias {
    ($alias:ident => $target:ident($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        #[doc = concat!("`", stringify!($alias), "`: [`", stringify!($target), "`].")]
        ///
        /// # Safety
        #[doc = concat!("As glibc's `", stringify!($alias), "`.")]
        #[no_mangle]
        pub unsafe extern "C" fn $alias($($arg: $ty),*) -> $ret {
            // SAFETY: the same contract as the target's.
            unsafe { $target($($arg),*) }
        }
    };
}

fn real() -> &'static Real {
    static REAL: OnceLock<Real> = OnceLock::new();
    REAL.get_or_init(|| Real {
        open: resolve!(c"open", OpenFn),
        openat: resolve!(c"openat", OpenatFn),
        ioctl: resolve!(c"ioctl", IoctlFn),
        close: resolve!(c"close", CloseFn),
        dup: resolve!(c"dup", CloseFn),
        dup2: resolve!(c"dup2", Dup2Fn),
        dup3: resolve!(c"dup3", Dup3Fn),
        fcntl: resolve!(c"fcntl", FcntlFn),
        read: resolve!(c"read", ReadFn),
        write: resolve!(c"write", WriteFn),
        pread: resolve!(c"pread64", PreadFn),
        pwrite: resolve!(c"pwrite64", PwriteFn),
        readv: resolve!(c"readv", ReadvFn),
        writev: resolve!(c"writev", ReadvFn),
        preadv: resolve!(c"preadv64", PreadvFn),
        pwritev: resolve!(c"pwritev64", PreadvFn),
        lseek: resolve!(c"lseek64", LseekFn),
        signal: resolve!(c"signal", SignalFn),
    })
}

/// The next definition of a symbol libc may lack (newer than the oldest glibc
/// the library loads with), looked up on first use: `Option<$ty>`.
macro_rules! next_optional {
    ($name:literal, $ty:ty) => {{
        static SYM: OnceLock<Option<$ty>> = OnceLock::new();
        *SYM.get_or_init(|| {
            // SAFETY: as `next_symbol`, without aborting when the symbol is missing.
            let sym = unsafe { libc::dlsym(libc::RTLD_NEXT, $name.as_ptr()) };
            // SAFETY: the symbol is glibc's function of that name, whose C
            // prototype is `$ty` (checked against glibc's declarations).
            (!sym.is_null()).then(|| unsafe { core::mem::transmute::<*mut c_void, $ty>(sym) })
        })
    }};
}

/// Calls `f` if libc has it, else fails with `ENOSYS`.
fn call_or_enosys<F, T: From<i8>>(f: Option<F>, call: impl FnOnce(F) -> T) -> T {
    match f {
        Some(f) => call(f),
        None => {
            set_errno(libc::ENOSYS);
            T::from(-1)
        }
    }
}

fn set_errno(errno: c_int) {
    // SAFETY: `__errno_location` returns the calling thread's errno slot, valid for
    // the thread's lifetime.
    unsafe { *libc::__errno_location() = errno };
}

/// Runs an emulated call: `Ok(v)` returns `v`, `Err(e)` sets errno and returns -1,
/// a panic becomes `EIO`.
pub(crate) fn emulate<T: From<i8>>(f: impl FnOnce() -> Result<T, Errno>) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            set_errno(e.raw());
            T::from(-1)
        }
        Err(_) => {
            eprintln!("libiommufd_preload: internal error (panic) in an emulated call");
            set_errno(libc::EIO);
            T::from(-1)
        }
    }
}

/// Which device node `path` names: `Some(false)` for `/dev/iommu`, `Some(true)` for
/// `/dev/vfio/vfio`.
fn emulated_path(path: *const c_char) -> Option<bool> {
    if path.is_null() {
        return None;
    }
    // SAFETY: the caller passed `path` to open(2) as a NUL-terminated string; a bad
    // pointer would fault in libc's own open as well.
    let path = unsafe { CStr::from_ptr(path) }.to_bytes();
    match path {
        b"/dev/iommu" => Some(false),
        b"/dev/vfio/vfio" => Some(true),
        _ => None,
    }
}

/// A fail-nth file or debugfs fault-injection knob (`crate::failnth`).
#[cfg(feature = "fault-inject")]
fn fault_file(dirfd: c_int, path: *const c_char, flags: c_int) -> Option<c_int> {
    if path.is_null() {
        return None;
    }
    // SAFETY: the caller passed `path` to open(2) as a NUL-terminated string.
    let path = unsafe { CStr::from_ptr(path) };
    crate::failnth::open(dirfd, path, flags)
}

/// Opens an emulated device node. With `O_PATH` no device is opened: the
/// program gets a real path descriptor (on which every ioctl fails with
/// `EBADF`), of the node itself where the host has it, else of `/dev/null`,
/// another character device.
///
/// # Safety
/// `path` is the caller's NUL-terminated path.
unsafe fn open_emulated(vfio: bool, path: *const c_char, flags: c_int) -> c_int {
    if flags & libc::O_PATH != 0 {
        // SAFETY: forwarding the caller's path and flags to libc's open.
        let fd = unsafe { (real().open)(path, flags, 0) };
        if fd >= 0 || errno() != libc::ENOENT {
            return fd;
        }
        // SAFETY: a static path and the caller's flags.
        return unsafe { (real().open)(c"/dev/null".as_ptr(), flags, 0) };
    }
    emulate(|| {
        let file = inproc::open(vfio);
        FdTable::global().open_iommufd(file, flags)
    })
}

/// `open(2)`.
///
/// # Safety
/// As libc's `open`.
#[no_mangle]
pub unsafe extern "C" fn open(path: *const c_char, flags: c_int, mode: mode_t) -> c_int {
    if let Some(vfio) = emulated_path(path) {
        // SAFETY: the caller's path, as open(2) takes it.
        return unsafe { open_emulated(vfio, path, flags) };
    }
    #[cfg(feature = "fault-inject")]
    if let Some(fd) = fault_file(libc::AT_FDCWD, path, flags) {
        return fd;
    }
    // SAFETY: forwarding the caller's arguments unchanged to libc's open.
    unsafe { (real().open)(path, flags, mode) }
}

alias!(open64 => open(path: *const c_char, flags: c_int, mode: mode_t) -> c_int);

/// `openat(2)`.
///
/// # Safety
/// As libc's `openat`.
#[no_mangle]
pub unsafe extern "C" fn openat(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: mode_t,
) -> c_int {
    if let Some(vfio) = emulated_path(path) {
        // SAFETY: the caller's path, as open(2) takes it.
        return unsafe { open_emulated(vfio, path, flags) };
    }
    #[cfg(feature = "fault-inject")]
    if let Some(fd) = fault_file(dirfd, path, flags) {
        return fd;
    }
    // SAFETY: forwarding the caller's arguments unchanged to libc's openat.
    unsafe { (real().openat)(dirfd, path, flags, mode) }
}

alias!(openat64 => openat(dirfd: c_int, path: *const c_char, flags: c_int, mode: mode_t) -> c_int);

/// `__open_2`, the fortified `open` without a mode.
///
/// # Safety
/// As glibc's `__open_2`.
#[no_mangle]
pub unsafe extern "C" fn __open_2(path: *const c_char, flags: c_int) -> c_int {
    // SAFETY: same contract as open; no mode is needed without O_CREAT.
    unsafe { open(path, flags, 0) }
}

/// `__open64_2`.
///
/// # Safety
/// As glibc's `__open64_2`.
#[no_mangle]
pub unsafe extern "C" fn __open64_2(path: *const c_char, flags: c_int) -> c_int {
    // SAFETY: same contract as open.
    unsafe { open(path, flags, 0) }
}

/// `__openat_2`.
///
/// # Safety
/// As glibc's `__openat_2`.
#[no_mangle]
pub unsafe extern "C" fn __openat_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    // SAFETY: same contract as openat.
    unsafe { openat(dirfd, path, flags, 0) }
}

/// `__openat64_2`.
///
/// # Safety
/// As glibc's `__openat64_2`.
#[no_mangle]
pub unsafe extern "C" fn __openat64_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    // SAFETY: same contract as openat.
    unsafe { openat(dirfd, path, flags, 0) }
}

/// Ioctls the VFS handles before any driver sees them; they act on the backing fd.
const VFS_IOCTLS: [c_ulong; 4] = [
    libc::FIOCLEX as c_ulong,
    libc::FIONCLEX as c_ulong,
    libc::FIONBIO as c_ulong,
    libc::FIOASYNC as c_ulong,
];

/// `ioctl(2)`.
///
/// # Safety
/// As libc's `ioctl`.
#[no_mangle]
pub unsafe extern "C" fn ioctl(fd: c_int, request: c_ulong, arg: *mut c_void) -> c_int {
    let table = FdTable::global();
    if table.maybe_ours(fd) && !VFS_IOCTLS.contains(&request) {
        if let Some(entry) = table.get(fd) {
            // The kernel takes the command as an unsigned int.
            let cmd = request as u32;
            return emulate(|| {
                let ret = match entry {
                    FdEntry::Iommufd(file, _) => file.ioctl(cmd, arg as u64)?,
                    FdEntry::File(file) => file.ioctl(cmd, arg as u64)?,
                };
                Ok(c_int::try_from(ret).unwrap_or(c_int::MAX))
            });
        }
    }
    // SAFETY: forwarding the caller's arguments unchanged to libc's ioctl.
    unsafe { (real().ioctl)(fd, request, arg) }
}

/// `close(2)`: forgets the emulated fd under the table lock, so the number cannot
/// be reused before the table knows; the file is released after unlocking. The
/// emulation's own descriptors (`host::fds`) are not the program's to close.
///
/// # Safety
/// As libc's `close`.
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    if host::fds::is_internal(fd) {
        // One of the emulation's own descriptors: in the kernel no file is
        // there to close.
        set_errno(libc::EBADF);
        return -1;
    }
    let table = FdTable::global();
    if !table.maybe_ours(fd) {
        // SAFETY: forwarding to libc's close.
        return unsafe { (real().close)(fd) };
    }
    let mut guard = table.lock();
    let entry = guard.remove(fd);
    // SAFETY: forwarding to libc's close.
    let ret = unsafe { (real().close)(fd) };
    drop(guard);
    release(entry);
    ret
}

/// `CLOSE_RANGE_UNSHARE`.
const CLOSE_RANGE_UNSHARE: c_uint = 1 << 1;
/// `CLOSE_RANGE_CLOEXEC`.
const CLOSE_RANGE_CLOEXEC: c_uint = 1 << 2;

/// The `close_range` system call itself.
fn sys_close_range(first: c_uint, last: c_uint, flags: c_uint) -> c_int {
    // SAFETY: close_range(2) has no pointer arguments; it only closes (or marks
    // close-on-exec) descriptors in the range the caller named.
    unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) as c_int }
}

/// `close_range(2)`: forgets the emulated fds in the range under the table
/// lock, as [`close`] does, and leaves the emulation's own descriptors open
/// (closing the gaps between them).
///
/// # Safety
/// As glibc's `close_range`.
#[no_mangle]
pub unsafe extern "C" fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    let flags = flags as c_uint;
    if flags & !(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) != 0 || first > last {
        set_errno(libc::EINVAL);
        return -1;
    }
    if flags & CLOSE_RANGE_CLOEXEC != 0 {
        // Nothing is closed; the emulation's own descriptors are close-on-exec
        // already.
        return sys_close_range(first, last, flags);
    }
    let table = FdTable::global();
    let mut guard = table.lock();
    let forgotten = guard.remove_range(first, last);
    // The gaps between the emulation's own descriptors (numbers below 2^31,
    // so `own + 1` does not wrap).
    let mut ret = 0;
    let mut from = first;
    for own in host::fds::internal_in(first, last) {
        let own = own as c_uint;
        if own > from && ret == 0 {
            ret = sys_close_range(from, own - 1, flags);
        }
        from = own + 1;
    }
    if from <= last && ret == 0 {
        ret = sys_close_range(from, last, flags);
    }
    let errno = errno();
    drop(guard);
    for entry in forgotten {
        release(Some(entry));
    }
    set_errno(errno);
    ret
}

/// `closefrom(3)`: `close_range(lowfd, ~0U, 0)`, or where the kernel lacks it,
/// every open descriptor from `lowfd` on, one by one (as glibc falls back).
///
/// # Safety
/// As glibc's `closefrom`.
#[no_mangle]
pub unsafe extern "C" fn closefrom(lowfd: c_int) {
    let low = lowfd.max(0) as c_uint;
    // SAFETY: the same contract, for the whole range from `low`.
    if unsafe { close_range(low, c_uint::MAX, 0) } == 0 {
        return;
    }
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<c_int> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd: &c_int| fd >= lowfd)
        .collect();
    for fd in fds {
        // SAFETY: close(2) of a number; a closed one (the directory's own) fails
        // with EBADF.
        unsafe { close(fd) };
    }
}

/// Drops an fd entry, which may release the file (`fput`), inside `catch_unwind`.
fn release(entry: Option<FdEntry>) {
    if let Some(entry) = entry {
        let errno = errno();
        let _: c_int = emulate(|| {
            drop(entry);
            Ok(0)
        });
        set_errno(errno);
    }
}

fn errno() -> c_int {
    // SAFETY: as in `set_errno`.
    unsafe { *libc::__errno_location() }
}

/// Runs a real dup-like call and makes `newfd` refer to `oldfd`'s emulated file.
fn dup_with(oldfd: c_int, newfd: Option<c_int>, call: impl FnOnce() -> c_int) -> c_int {
    let table = FdTable::global();
    let involved = table.maybe_ours(oldfd) || newfd.is_some_and(|fd| table.maybe_ours(fd));
    if !involved {
        return call();
    }
    let mut guard = table.lock();
    let entry = guard.get(oldfd).cloned();
    let ret = call();
    let mut replaced = None;
    if ret >= 0 && Some(ret) != newfd.filter(|&n| n == oldfd) {
        replaced = match entry {
            Some(entry) => guard.insert(ret, entry),
            None => guard.remove(ret),
        };
    }
    drop(guard);
    release(replaced);
    ret
}

/// `dup(2)`.
///
/// # Safety
/// As libc's `dup`.
#[no_mangle]
pub unsafe extern "C" fn dup(oldfd: c_int) -> c_int {
    // SAFETY: forwarding to libc's dup.
    dup_with(oldfd, None, || unsafe { (real().dup)(oldfd) })
}

/// `dup2(2)`.
///
/// # Safety
/// As libc's `dup2`.
#[no_mangle]
pub unsafe extern "C" fn dup2(oldfd: c_int, newfd: c_int) -> c_int {
    // SAFETY: forwarding to libc's dup2.
    dup_with(oldfd, Some(newfd), || unsafe {
        (real().dup2)(oldfd, newfd)
    })
}

/// `dup3(2)`.
///
/// # Safety
/// As libc's `dup3`.
#[no_mangle]
pub unsafe extern "C" fn dup3(oldfd: c_int, newfd: c_int, flags: c_int) -> c_int {
    // SAFETY: forwarding to libc's dup3.
    dup_with(oldfd, Some(newfd), || unsafe {
        (real().dup3)(oldfd, newfd, flags)
    })
}

/// `fcntl(2)`; `F_DUPFD` and `F_DUPFD_CLOEXEC` of an emulated fd are dups, and
/// `F_GETFL` of an emulated iommufd shows the flags it was opened with.
///
/// # Safety
/// As libc's `fcntl`.
#[no_mangle]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    if cmd == libc::F_DUPFD || cmd == libc::F_DUPFD_CLOEXEC {
        // SAFETY: forwarding to libc's fcntl.
        return dup_with(fd, None, || unsafe { (real().fcntl)(fd, cmd, arg) });
    }
    if cmd == libc::F_GETFL {
        if let Some(entry) = FdTable::global().get(fd) {
            // SAFETY: F_GETFL reads the backing fd's status flags.
            let backing = unsafe { (real().fcntl)(fd, cmd, arg) };
            return if backing < 0 {
                backing
            } else {
                vfs::getfl(&entry, backing)
            };
        }
    }
    // SAFETY: forwarding to libc's fcntl.
    unsafe { (real().fcntl)(fd, cmd, arg) }
}

alias!(fcntl64 => fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int);

/// Runs `f` on `fd`'s entry if `fd` is emulated, as the C call returns.
fn on_entry<T: From<i8>>(fd: c_int, f: impl FnOnce(&FdEntry) -> Result<T, Errno>) -> Option<T> {
    let entry = FdTable::global().get(fd)?;
    Some(emulate(|| f(&entry)))
}

/// A transfer's result as `ssize_t` (at most `MAX_RW_COUNT`).
fn transferred(n: u64) -> ssize_t {
    n as ssize_t
}

/// `read(2)`.
///
/// # Safety
/// As libc's `read`.
#[no_mangle]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, count: size_t) -> ssize_t {
    if let Some(r) = on_entry(fd, |e| {
        vfs::read_write(e, Dir::Read, buf as u64, count as u64).map(transferred)
    }) {
        return r;
    }
    // SAFETY: forwarding to libc's read.
    unsafe { (real().read)(fd, buf, count) }
}

/// `write(2)`.
///
/// # Safety
/// As libc's `write`.
#[no_mangle]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, count: size_t) -> ssize_t {
    if let Some(r) = on_entry(fd, |e| {
        vfs::read_write(e, Dir::Write, buf as u64, count as u64).map(transferred)
    }) {
        return r;
    }
    // SAFETY: forwarding to libc's write.
    unsafe { (real().write)(fd, buf, count) }
}

/// `pread(2)`: on an emulated fd as the VFS has it (`EINVAL` on an iommufd,
/// `ESPIPE` on its anonymous files); in `fault-inject` builds, positioned
/// reads of the fault-injection files.
///
/// # Safety
/// As libc's `pread`.
#[no_mangle]
pub unsafe extern "C" fn pread(fd: c_int, buf: *mut c_void, count: size_t, off: off_t) -> ssize_t {
    #[cfg(feature = "fault-inject")]
    if FdTable::global().maybe_ours(fd) {
        if let Some(res) = crate::failnth::pread(fd, buf as u64, count as u64, off) {
            return emulate(|| res.map(|n| n as ssize_t));
        }
    }
    if let Some(r) = on_entry(fd, |e| {
        vfs::pread_pwrite(e, Dir::Read, buf as u64, count as u64, off).map(transferred)
    }) {
        return r;
    }
    // SAFETY: forwarding to libc's pread.
    unsafe { (real().pread)(fd, buf, count, off) }
}

alias!(pread64 => pread(fd: c_int, buf: *mut c_void, count: size_t, off: off_t) -> ssize_t);

/// `pwrite(2)`: see [`pread`].
///
/// # Safety
/// As libc's `pwrite`.
#[no_mangle]
pub unsafe extern "C" fn pwrite(
    fd: c_int,
    buf: *const c_void,
    count: size_t,
    off: off_t,
) -> ssize_t {
    #[cfg(feature = "fault-inject")]
    if FdTable::global().maybe_ours(fd) {
        if let Some(res) = crate::failnth::pwrite(fd, buf as u64, count as u64, off) {
            return emulate(|| res.map(|n| n as ssize_t));
        }
    }
    if let Some(r) = on_entry(fd, |e| {
        vfs::pread_pwrite(e, Dir::Write, buf as u64, count as u64, off).map(transferred)
    }) {
        return r;
    }
    // SAFETY: forwarding to libc's pwrite.
    unsafe { (real().pwrite)(fd, buf, count, off) }
}

alias!(pwrite64 => pwrite(fd: c_int, buf: *const c_void, count: size_t, off: off_t) -> ssize_t);

/// A vectored transfer on an emulated fd (`inproc::vfs::readv_writev`).
fn vectored(
    fd: c_int,
    dir: Dir,
    iov: *const iovec,
    iovcnt: c_int,
    at: At,
    flags: c_int,
) -> Option<ssize_t> {
    on_entry(fd, |e| {
        vfs::readv_writev(e, dir, iov as u64, iovcnt, at, flags).map(transferred)
    })
}

/// `readv(2)`: on an emulated file, its read op once per segment.
///
/// # Safety
/// As libc's `readv`.
#[no_mangle]
pub unsafe extern "C" fn readv(fd: c_int, iov: *const iovec, iovcnt: c_int) -> ssize_t {
    if let Some(r) = vectored(fd, Dir::Read, iov, iovcnt, At::Position, 0) {
        return r;
    }
    // SAFETY: forwarding to libc's readv.
    unsafe { (real().readv)(fd, iov, iovcnt) }
}

/// `writev(2)`: see [`readv`].
///
/// # Safety
/// As libc's `writev`.
#[no_mangle]
pub unsafe extern "C" fn writev(fd: c_int, iov: *const iovec, iovcnt: c_int) -> ssize_t {
    if let Some(r) = vectored(fd, Dir::Write, iov, iovcnt, At::Position, 0) {
        return r;
    }
    // SAFETY: forwarding to libc's writev.
    unsafe { (real().writev)(fd, iov, iovcnt) }
}

/// `preadv(2)`.
///
/// # Safety
/// As libc's `preadv`.
#[no_mangle]
pub unsafe extern "C" fn preadv(
    fd: c_int,
    iov: *const iovec,
    iovcnt: c_int,
    off: off_t,
) -> ssize_t {
    if let Some(r) = vectored(fd, Dir::Read, iov, iovcnt, At::Offset(off), 0) {
        return r;
    }
    // SAFETY: forwarding to libc's preadv.
    unsafe { (real().preadv)(fd, iov, iovcnt, off) }
}

alias!(preadv64 => preadv(fd: c_int, iov: *const iovec, iovcnt: c_int, off: off_t) -> ssize_t);

/// `pwritev(2)`.
///
/// # Safety
/// As libc's `pwritev`.
#[no_mangle]
pub unsafe extern "C" fn pwritev(
    fd: c_int,
    iov: *const iovec,
    iovcnt: c_int,
    off: off_t,
) -> ssize_t {
    if let Some(r) = vectored(fd, Dir::Write, iov, iovcnt, At::Offset(off), 0) {
        return r;
    }
    // SAFETY: forwarding to libc's pwritev.
    unsafe { (real().pwritev)(fd, iov, iovcnt, off) }
}

alias!(pwritev64 => pwritev(fd: c_int, iov: *const iovec, iovcnt: c_int, off: off_t) -> ssize_t);

/// `preadv2`/`pwritev2`: offset -1 is the file position; other fds go to
/// libc's `preadv64v2`/`pwritev64v2` (`ENOSYS` where libc has none).
///
/// # Safety
/// As glibc's `preadv2`/`pwritev2`.
unsafe fn vectored_v2(
    dir: Dir,
    fd: c_int,
    iov: *const iovec,
    iovcnt: c_int,
    off: off_t,
    flags: c_int,
) -> ssize_t {
    let at = if off == -1 {
        At::Position
    } else {
        At::Offset(off)
    };
    if let Some(r) = vectored(fd, dir, iov, iovcnt, at, flags) {
        return r;
    }
    let next = if dir == Dir::Read {
        next_optional!(c"preadv64v2", Preadv2Fn)
    } else {
        next_optional!(c"pwritev64v2", Preadv2Fn)
    };
    // SAFETY: forwarding the caller's arguments to libc's function.
    call_or_enosys(next, |f| unsafe { f(fd, iov, iovcnt, off, flags) })
}

/// `preadv2(2)`.
///
/// # Safety
/// As glibc's `preadv2`.
#[no_mangle]
pub unsafe extern "C" fn preadv2(
    fd: c_int,
    iov: *const iovec,
    iovcnt: c_int,
    off: off_t,
    flags: c_int,
) -> ssize_t {
    // SAFETY: the caller's arguments, under preadv2's contract.
    unsafe { vectored_v2(Dir::Read, fd, iov, iovcnt, off, flags) }
}

alias!(preadv64v2 => preadv2(fd: c_int, iov: *const iovec, iovcnt: c_int, off: off_t, flags: c_int) -> ssize_t);

/// `pwritev2(2)`.
///
/// # Safety
/// As glibc's `pwritev2`.
#[no_mangle]
pub unsafe extern "C" fn pwritev2(
    fd: c_int,
    iov: *const iovec,
    iovcnt: c_int,
    off: off_t,
    flags: c_int,
) -> ssize_t {
    // SAFETY: the caller's arguments, under pwritev2's contract.
    unsafe { vectored_v2(Dir::Write, fd, iov, iovcnt, off, flags) }
}

alias!(pwritev64v2 => pwritev2(fd: c_int, iov: *const iovec, iovcnt: c_int, off: off_t, flags: c_int) -> ssize_t);

/// `lseek(2)`: `ESPIPE` on every emulated file (none has an llseek op).
///
/// # Safety
/// As libc's `lseek`.
#[no_mangle]
pub unsafe extern "C" fn lseek(fd: c_int, off: off_t, whence: c_int) -> off_t {
    if let Some(r) = on_entry(fd, |e| vfs::lseek(e, off, whence)) {
        return r;
    }
    // SAFETY: forwarding to libc's lseek.
    unsafe { (real().lseek)(fd, off, whence) }
}

alias!(lseek64 => lseek(fd: c_int, off: off_t, whence: c_int) -> off_t);

// ---- stat and access of the emulated device nodes (`crate::devnode`) ----------

type StatFn = unsafe extern "C" fn(*const c_char, *mut libc::stat) -> c_int;
type FstatFn = unsafe extern "C" fn(c_int, *mut libc::stat) -> c_int;
type FstatatFn = unsafe extern "C" fn(c_int, *const c_char, *mut libc::stat, c_int) -> c_int;
type StatxFn = unsafe extern "C" fn(c_int, *const c_char, c_int, c_uint, *mut libc::statx) -> c_int;
type XstatFn = unsafe extern "C" fn(c_int, *const c_char, *mut libc::stat) -> c_int;
type FxstatFn = unsafe extern "C" fn(c_int, c_int, *mut libc::stat) -> c_int;
type FxstatatFn =
    unsafe extern "C" fn(c_int, c_int, *const c_char, *mut libc::stat, c_int) -> c_int;
type AccessFn = unsafe extern "C" fn(*const c_char, c_int) -> c_int;
type FaccessatFn = unsafe extern "C" fn(c_int, *const c_char, c_int, c_int) -> c_int;

/// The emulated node `path` names, if it does.
fn node_of_path(path: *const c_char) -> Option<Node> {
    if path.is_null() {
        return None;
    }
    // SAFETY: the caller passed `path` as a NUL-terminated string; a bad
    // pointer would fault in libc's own function as well.
    Node::of_path(unsafe { CStr::from_ptr(path) }.to_bytes())
}

/// The node behind an emulated iommufd `fd`, if it is one.
fn node_of_fd(fd: c_int) -> Option<Node> {
    match FdTable::global().get(fd)? {
        FdEntry::Iommufd(file, _) if file.is_vfio_node() => Some(Node::Vfio),
        FdEntry::Iommufd(..) => Some(Node::Iommu),
        FdEntry::File(_) => None,
    }
}

/// The node a `*at` call names: an emulated path, or with `AT_EMPTY_PATH` and
/// an empty path, the emulated iommufd `dirfd`.
fn node_at(dirfd: c_int, path: *const c_char, flags: c_int) -> Option<Node> {
    if let Some(node) = node_of_path(path) {
        return Some(node);
    }
    if flags & libc::AT_EMPTY_PATH == 0 || path.is_null() {
        return None;
    }
    // SAFETY: as in `node_of_path`.
    let empty = unsafe { CStr::from_ptr(path) }.is_empty();
    empty.then(|| node_of_fd(dirfd)).flatten()
}

/// Writes `value` to the caller's `dst`: 0, or -1 with `EFAULT`.
fn put<T>(dst: *mut T, value: &T) -> c_int {
    // SAFETY: `value` is a live `T` (a plain C struct), viewed as its bytes.
    let bytes = unsafe {
        core::slice::from_raw_parts((value as *const T).cast::<u8>(), core::mem::size_of::<T>())
    };
    match host::uaccess::copy_to_user(dst as u64, bytes) {
        Ok(()) => 0,
        Err(_) => {
            set_errno(libc::EFAULT);
            -1
        }
    }
}

/// A stat of `node` into `buf` as the C call returns it, or without a node,
/// `forward` (libc's function).
fn stat_or(node: Option<Node>, buf: *mut libc::stat, forward: impl FnOnce() -> c_int) -> c_int {
    let Some(node) = node else {
        return forward();
    };
    let saved = errno();
    match crate::devnode::stat(node) {
        Ok(st) => {
            set_errno(saved);
            put(buf, &st)
        }
        Err(errno) => {
            set_errno(errno);
            -1
        }
    }
}

/// `stat(2)`: the emulated nodes exist (`crate::devnode`).
///
/// # Safety
/// As glibc's `stat`.
#[no_mangle]
pub unsafe extern "C" fn stat(path: *const c_char, buf: *mut libc::stat) -> c_int {
    stat_or(node_of_path(path), buf, || {
        // SAFETY: forwarding to libc's stat.
        call_or_enosys(next_optional!(c"stat", StatFn), |f| unsafe { f(path, buf) })
    })
}

alias!(stat64 => stat(path: *const c_char, buf: *mut libc::stat) -> c_int);

/// `lstat(2)`: see [`stat`] (the nodes are not links).
///
/// # Safety
/// As glibc's `lstat`.
#[no_mangle]
pub unsafe extern "C" fn lstat(path: *const c_char, buf: *mut libc::stat) -> c_int {
    stat_or(node_of_path(path), buf, || {
        // SAFETY: forwarding to libc's lstat.
        call_or_enosys(next_optional!(c"lstat", StatFn), |f| unsafe {
            f(path, buf)
        })
    })
}

alias!(lstat64 => lstat(path: *const c_char, buf: *mut libc::stat) -> c_int);

/// `fstat(2)`: an emulated iommufd is its device node.
///
/// # Safety
/// As glibc's `fstat`.
#[no_mangle]
pub unsafe extern "C" fn fstat(fd: c_int, buf: *mut libc::stat) -> c_int {
    stat_or(node_of_fd(fd), buf, || {
        // SAFETY: forwarding to libc's fstat.
        call_or_enosys(next_optional!(c"fstat", FstatFn), |f| unsafe { f(fd, buf) })
    })
}

alias!(fstat64 => fstat(fd: c_int, buf: *mut libc::stat) -> c_int);

/// `fstatat(2)`.
///
/// # Safety
/// As glibc's `fstatat`.
#[no_mangle]
pub unsafe extern "C" fn fstatat(
    dirfd: c_int,
    path: *const c_char,
    buf: *mut libc::stat,
    flags: c_int,
) -> c_int {
    stat_or(node_at(dirfd, path, flags), buf, || {
        let next = next_optional!(c"fstatat", FstatatFn);
        // SAFETY: forwarding to libc's fstatat.
        call_or_enosys(next, |f| unsafe { f(dirfd, path, buf, flags) })
    })
}

alias!(fstatat64 => fstatat(dirfd: c_int, path: *const c_char, buf: *mut libc::stat, flags: c_int) -> c_int);

/// `statx(2)`.
///
/// # Safety
/// As glibc's `statx`.
#[no_mangle]
pub unsafe extern "C" fn statx(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mask: c_uint,
    buf: *mut libc::statx,
) -> c_int {
    if let Some(node) = node_at(dirfd, path, flags) {
        let saved = errno();
        return match crate::devnode::statx(node, mask) {
            Ok(stx) => {
                set_errno(saved);
                put(buf, &stx)
            }
            Err(errno) => {
                set_errno(errno);
                -1
            }
        };
    }
    let next = next_optional!(c"statx", StatxFn);
    // SAFETY: forwarding to libc's statx.
    call_or_enosys(next, |f| unsafe { f(dirfd, path, flags, mask, buf) })
}

/// `__xstat`, what programs built against glibc before 2.33 call for `stat`.
///
/// # Safety
/// As glibc's `__xstat`.
#[no_mangle]
pub unsafe extern "C" fn __xstat(ver: c_int, path: *const c_char, buf: *mut libc::stat) -> c_int {
    stat_or(node_of_path(path), buf, || {
        // SAFETY: forwarding to libc's __xstat.
        call_or_enosys(next_optional!(c"__xstat", XstatFn), |f| unsafe {
            f(ver, path, buf)
        })
    })
}

alias!(__xstat64 => __xstat(ver: c_int, path: *const c_char, buf: *mut libc::stat) -> c_int);

/// `__lxstat`: see [`__xstat`].
///
/// # Safety
/// As glibc's `__lxstat`.
#[no_mangle]
pub unsafe extern "C" fn __lxstat(ver: c_int, path: *const c_char, buf: *mut libc::stat) -> c_int {
    stat_or(node_of_path(path), buf, || {
        // SAFETY: forwarding to libc's __lxstat.
        call_or_enosys(next_optional!(c"__lxstat", XstatFn), |f| unsafe {
            f(ver, path, buf)
        })
    })
}

alias!(__lxstat64 => __lxstat(ver: c_int, path: *const c_char, buf: *mut libc::stat) -> c_int);

/// `__fxstat`: see [`__xstat`] and [`fstat`].
///
/// # Safety
/// As glibc's `__fxstat`.
#[no_mangle]
pub unsafe extern "C" fn __fxstat(ver: c_int, fd: c_int, buf: *mut libc::stat) -> c_int {
    stat_or(node_of_fd(fd), buf, || {
        // SAFETY: forwarding to libc's __fxstat.
        call_or_enosys(next_optional!(c"__fxstat", FxstatFn), |f| unsafe {
            f(ver, fd, buf)
        })
    })
}

alias!(__fxstat64 => __fxstat(ver: c_int, fd: c_int, buf: *mut libc::stat) -> c_int);

/// `__fxstatat`: see [`__xstat`] and [`fstatat`].
///
/// # Safety
/// As glibc's `__fxstatat`.
#[no_mangle]
pub unsafe extern "C" fn __fxstatat(
    ver: c_int,
    dirfd: c_int,
    path: *const c_char,
    buf: *mut libc::stat,
    flags: c_int,
) -> c_int {
    stat_or(node_at(dirfd, path, flags), buf, || {
        let next = next_optional!(c"__fxstatat", FxstatatFn);
        // SAFETY: forwarding to libc's __fxstatat.
        call_or_enosys(next, |f| unsafe { f(ver, dirfd, path, buf, flags) })
    })
}

alias!(__fxstatat64 => __fxstatat(ver: c_int, dirfd: c_int, path: *const c_char, buf: *mut libc::stat, flags: c_int) -> c_int);

type GetxattrFn =
    unsafe extern "C" fn(*const c_char, *const c_char, *mut c_void, size_t) -> ssize_t;
type ListxattrFn = unsafe extern "C" fn(*const c_char, *mut c_char, size_t) -> ssize_t;

/// The path an xattr read of `path` goes to: the node's stand-in for an
/// emulated node (`crate::devnode::stand_in`), else `path`.
fn xattr_path(path: *const c_char) -> *const c_char {
    node_of_path(path).map_or(path, |node| crate::devnode::stand_in(node).as_ptr())
}

/// `getxattr(2)`: an emulated node has the attributes of its stand-in.
///
/// # Safety
/// As glibc's `getxattr`.
#[no_mangle]
pub unsafe extern "C" fn getxattr(
    path: *const c_char,
    name: *const c_char,
    value: *mut c_void,
    size: size_t,
) -> ssize_t {
    let path = xattr_path(path);
    let next = next_optional!(c"getxattr", GetxattrFn);
    // SAFETY: forwarding the caller's arguments (or a static path) to libc.
    call_or_enosys(next, |f| unsafe { f(path, name, value, size) })
}

/// `lgetxattr(2)`: see [`getxattr`].
///
/// # Safety
/// As glibc's `lgetxattr`.
#[no_mangle]
pub unsafe extern "C" fn lgetxattr(
    path: *const c_char,
    name: *const c_char,
    value: *mut c_void,
    size: size_t,
) -> ssize_t {
    let path = xattr_path(path);
    let next = next_optional!(c"lgetxattr", GetxattrFn);
    // SAFETY: forwarding the caller's arguments (or a static path) to libc.
    call_or_enosys(next, |f| unsafe { f(path, name, value, size) })
}

/// `listxattr(2)`: see [`getxattr`].
///
/// # Safety
/// As glibc's `listxattr`.
#[no_mangle]
pub unsafe extern "C" fn listxattr(
    path: *const c_char,
    list: *mut c_char,
    size: size_t,
) -> ssize_t {
    let path = xattr_path(path);
    let next = next_optional!(c"listxattr", ListxattrFn);
    // SAFETY: forwarding the caller's arguments (or a static path) to libc.
    call_or_enosys(next, |f| unsafe { f(path, list, size) })
}

/// `llistxattr(2)`: see [`getxattr`].
///
/// # Safety
/// As glibc's `llistxattr`.
#[no_mangle]
pub unsafe extern "C" fn llistxattr(
    path: *const c_char,
    list: *mut c_char,
    size: size_t,
) -> ssize_t {
    let path = xattr_path(path);
    let next = next_optional!(c"llistxattr", ListxattrFn);
    // SAFETY: forwarding the caller's arguments (or a static path) to libc.
    call_or_enosys(next, |f| unsafe { f(path, list, size) })
}

/// An access check of `node` as the C call returns it, or without a node,
/// `forward` (libc's function).
fn access_or(node: Option<Node>, mode: c_int, forward: impl FnOnce() -> c_int) -> c_int {
    let Some(node) = node else {
        return forward();
    };
    let saved = errno();
    match crate::devnode::access(node, mode) {
        Ok(()) => {
            set_errno(saved);
            0
        }
        Err(errno) => {
            set_errno(errno);
            -1
        }
    }
}

/// `access(2)`: the emulated nodes exist (`crate::devnode`).
///
/// # Safety
/// As glibc's `access`.
#[no_mangle]
pub unsafe extern "C" fn access(path: *const c_char, mode: c_int) -> c_int {
    access_or(node_of_path(path), mode, || {
        // SAFETY: forwarding to libc's access.
        call_or_enosys(next_optional!(c"access", AccessFn), |f| unsafe {
            f(path, mode)
        })
    })
}

/// `faccessat(2)`.
///
/// # Safety
/// As glibc's `faccessat`.
#[no_mangle]
pub unsafe extern "C" fn faccessat(
    dirfd: c_int,
    path: *const c_char,
    mode: c_int,
    flags: c_int,
) -> c_int {
    access_or(node_of_path(path), mode, || {
        let next = next_optional!(c"faccessat", FaccessatFn);
        // SAFETY: forwarding to libc's faccessat.
        call_or_enosys(next, |f| unsafe { f(dirfd, path, mode, flags) })
    })
}

/// `euidaccess(3)` (also `eaccess`).
///
/// # Safety
/// As glibc's `euidaccess`.
#[no_mangle]
pub unsafe extern "C" fn euidaccess(path: *const c_char, mode: c_int) -> c_int {
    access_or(node_of_path(path), mode, || {
        let next = next_optional!(c"euidaccess", AccessFn);
        // SAFETY: forwarding to libc's euidaccess.
        call_or_enosys(next, |f| unsafe { f(path, mode) })
    })
}

alias!(eaccess => euidaccess(path: *const c_char, mode: c_int) -> c_int);

/// `sigaction(2)`: SIGSEGV and SIGBUS actions are kept as the chained handlers of
/// the user-access fault handler.
///
/// # Safety
/// As libc's `sigaction`.
#[no_mangle]
pub unsafe extern "C" fn sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    oldact: *mut libc::sigaction,
) -> c_int {
    // SAFETY: the caller's pointers are passed on under the sigaction(2) contract.
    unsafe { host::uaccess::chained_sigaction(sig, act, oldact) }
}

/// `signal(2)` (BSD semantics, as glibc's).
///
/// # Safety
/// As libc's `signal`.
#[no_mangle]
pub unsafe extern "C" fn signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    if sig != libc::SIGSEGV && sig != libc::SIGBUS {
        // SAFETY: forwarding to libc's signal.
        return unsafe { (real().signal)(sig, handler) };
    }
    // SAFETY: all-zero is a valid `sigaction` (empty mask, no flags, SIG_DFL).
    let mut act: libc::sigaction = unsafe { core::mem::zeroed() };
    act.sa_sigaction = handler;
    act.sa_flags = libc::SA_RESTART;
    // SAFETY: all-zero is a valid `sigaction`.
    let mut old: libc::sigaction = unsafe { core::mem::zeroed() };
    // SAFETY: both pointers are to live locals.
    if unsafe { host::uaccess::chained_sigaction(sig, &act, &mut old) } != 0 {
        return libc::SIG_ERR;
    }
    old.sa_sigaction
}
