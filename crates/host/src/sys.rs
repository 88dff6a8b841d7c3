//! Small safe wrappers over the host syscalls the emulation needs: the
//! locked-memory rlimit, capabilities ([`Cap`], via `capget`), ids,
//! `eventfd`, and [`Mmap`], an RAII anonymous mapping (also used by tests to
//! build mapped/unmapped/protected user ranges).

#![allow(unsafe_code)]

use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use uapi::Errno;

fn last_errno() -> Errno {
    Errno::from_raw(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        .unwrap_or(Errno::INVAL)
}

/// `RLIMIT_MEMLOCK` soft limit in bytes; `RLIM_INFINITY` is `u64::MAX`.
pub fn rlimit_memlock() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a writable local rlimit.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut r) };
    if rc != 0 || r.rlim_cur == libc::RLIM_INFINITY {
        return u64::MAX;
    }
    r.rlim_cur
}

/// Capabilities the iommufd paths check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cap {
    /// `CAP_IPC_LOCK` (14): exempt from `RLIMIT_MEMLOCK` accounting.
    IpcLock,
    /// `CAP_SYS_RESOURCE` (24).
    SysResource,
    /// `CAP_SYS_RAWIO` (17).
    SysRawio,
    /// `CAP_SYS_ADMIN` (21).
    SysAdmin,
}

impl Cap {
    /// The capability number.
    pub const fn number(self) -> u32 {
        match self {
            Cap::IpcLock => 14,
            Cap::SysResource => 24,
            Cap::SysRawio => 17,
            Cap::SysAdmin => 21,
        }
    }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Whether the calling thread has `cap` in its effective set (`capget`).
pub fn capable(cap: Cap) -> bool {
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget with a v3 header reads `hdr` and writes two CapData
    // (the v3 layout) into the writable local array.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut hdr as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return false;
    }
    let n = cap.number();
    data[(n / 32) as usize].effective & (1 << (n % 32)) != 0
}

/// Real user id.
pub fn uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// Kernel thread id of the calling thread.
pub fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// A number that changes in every child that gets a copy of this process's
/// address space (`fork`, and `clone` without `CLONE_VM`), read without a
/// syscall; `None` where the kernel cannot tell (no `MADV_WIPEONFORK`,
/// Linux 4.14): compare pids instead.
///
/// One page, mapped for the life of the process, that the kernel gives a
/// child zero-filled: the first call that finds it zero (in this process,
/// or in a child) starts a new epoch and marks it. Two threads of a new
/// child may both start one; callers only compare epochs for equality.
pub fn fork_epoch() -> Option<u64> {
    static MARK: OnceLock<Option<&'static AtomicU64>> = OnceLock::new();
    static EPOCH: AtomicU64 = AtomicU64::new(0);
    let mark = (*MARK.get_or_init(wipe_on_fork_word))?;
    if mark.load(Ordering::Acquire) == 0 {
        EPOCH.fetch_add(1, Ordering::AcqRel);
        mark.store(1, Ordering::Release);
    }
    Some(EPOCH.load(Ordering::Acquire))
}

/// A zeroed word on a page of its own that children get zero-filled.
fn wipe_on_fork_word() -> Option<&'static AtomicU64> {
    let len = page_size();
    let prot = libc::PROT_READ | libc::PROT_WRITE;
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    // SAFETY: an anonymous mapping at a kernel-chosen address (no MAP_FIXED)
    // cannot alias any existing memory.
    let p = unsafe { libc::mmap(core::ptr::null_mut(), len, prot, flags, -1, 0) };
    if p == libc::MAP_FAILED {
        return None;
    }
    // SAFETY: `p` is the page just mapped, ours alone.
    if unsafe { libc::madvise(p, len, libc::MADV_WIPEONFORK) } != 0 {
        // SAFETY: unmaps the page just mapped, which nothing references.
        unsafe { libc::munmap(p, len) };
        return None;
    }
    // SAFETY: the page is mapped readable and writable and never unmapped
    // (so the reference is valid for 'static), page-aligned, zero-filled (a
    // valid `AtomicU64`), and only ever accessed through this atomic.
    Some(unsafe { &*(p as *const AtomicU64) })
}

/// The base page size (cached).
pub fn page_size() -> usize {
    static PS: OnceLock<usize> = OnceLock::new();
    *PS.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(v).ok().filter(|&v| v > 0).unwrap_or(4096)
    })
}

/// Closes the descriptor number `fd` (`close(2)`), for callers that track fds by
/// number, as the emulated fd table does.
///
/// # Errors
/// `EBADF` if `fd` is not open; `EINTR`/`EIO` as close(2).
pub fn close(fd: std::os::fd::RawFd) -> Result<(), Errno> {
    // SAFETY: close(2) on a number the caller says it owns; it has no memory
    // effects on this process, and a wrong number only fails with EBADF or closes
    // a descriptor the caller named.
    if unsafe { libc::close(fd) } < 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// Sets or clears `FD_CLOEXEC` on `fd`.
///
/// # Errors
/// `EBADF` if `fd` is not open.
pub fn set_cloexec(fd: std::os::fd::BorrowedFd<'_>, on: bool) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    let fd = fd.as_raw_fd();
    // SAFETY: F_GETFD on a descriptor the caller borrows; reads only its flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(last_errno());
    }
    let new = if on {
        flags | libc::FD_CLOEXEC
    } else {
        flags & !libc::FD_CLOEXEC
    };
    // SAFETY: F_SETFD changes only the close-on-exec flag of the borrowed descriptor.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, new) } < 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// Sets the file status flags of `fd` that `F_SETFL` changes (`O_APPEND`,
/// `O_NONBLOCK`, `O_ASYNC`, ...) to `flags`.
///
/// # Errors
/// `EBADF`, or `EINVAL`/`EPERM` for a flag the file refuses.
pub fn set_status_flags(fd: std::os::fd::BorrowedFd<'_>, flags: i32) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    // SAFETY: F_SETFL changes only the status flags of the borrowed descriptor.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags) } < 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// A close-on-exec duplicate of `fd` numbered `min` or above, the lowest free
/// (`F_DUPFD_CLOEXEC`).
///
/// # Errors
/// `EINVAL` if `min` is not below `RLIMIT_NOFILE`, `EMFILE`.
pub fn dup_at_least(fd: std::os::fd::BorrowedFd<'_>, min: i32) -> Result<OwnedFd, Errno> {
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on a descriptor the caller borrows; no
    // pointer arguments.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    if new < 0 {
        return Err(last_errno());
    }
    // SAFETY: `new` is a freshly created descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// The soft `RLIMIT_NOFILE` (`u64::MAX` if unlimited or unknown).
pub fn rlimit_nofile() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a writable local rlimit.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    if rc != 0 || r.rlim_cur == libc::RLIM_INFINITY {
        return u64::MAX;
    }
    r.rlim_cur
}

/// A new eventfd with counter `initval`; flags `EFD_NONBLOCK | EFD_CLOEXEC`
/// when `nonblock_cloexec`, none otherwise.
pub fn eventfd(initval: u32, nonblock_cloexec: bool) -> Result<OwnedFd, Errno> {
    let flags = if nonblock_cloexec {
        libc::EFD_NONBLOCK | libc::EFD_CLOEXEC
    } else {
        0
    };
    // SAFETY: eventfd has no pointer arguments.
    let fd = unsafe { libc::eventfd(initval, flags) };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The `struct procmap_query` of `PROCMAP_QUERY` (`include/uapi/linux/fs.h`,
/// Linux 6.11+).
#[repr(C)]
#[derive(Default)]
struct ProcmapQuery {
    size: u64,
    query_flags: u64,
    query_addr: u64,
    vma_start: u64,
    vma_end: u64,
    vma_flags: u64,
    vma_page_size: u64,
    vma_offset: u64,
    inode: u64,
    dev_major: u32,
    dev_minor: u32,
    vma_name_size: u32,
    build_id_size: u32,
    vma_name_addr: u64,
    build_id_addr: u64,
}

/// `_IOWR('f', 17, struct procmap_query)`.
const PROCMAP_QUERY: libc::c_ulong = 0xC068_6611;
const PROCMAP_QUERY_VMA_READABLE: u64 = 0x01;
const PROCMAP_QUERY_VMA_WRITABLE: u64 = 0x02;
const PROCMAP_QUERY_COVERING_OR_NEXT_VMA: u64 = 0x10;

/// One VMA as `PROCMAP_QUERY` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueriedVma {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// `r` permission.
    pub read: bool,
    /// `w` permission.
    pub write: bool,
    /// The kernel's page size for the VMA (`vma_kernel_pagesize`: the huge
    /// page size of hugetlb VMAs, else the base page size).
    pub page_size: u64,
    /// Bytes of the VMA's name written to the caller's buffer (without the
    /// terminating NUL), as `/proc/self/maps` prints it.
    pub name_len: usize,
}

/// `ioctl(fd, PROCMAP_QUERY)` on an open `/proc/<pid>/maps`: the VMA that
/// covers `addr`, or else the next one above it (`Ok(None)` if there is
/// none). Its name goes to `name`.
///
/// # Errors
/// The ioctl's errno: `ENOTTY`/`EINVAL` on kernels without the query,
/// `ENAMETOOLONG` if `name` is too short.
pub fn procmap_query(
    fd: std::os::fd::BorrowedFd<'_>,
    addr: u64,
    name: &mut [u8],
) -> Result<Option<QueriedVma>, Errno> {
    use std::os::fd::AsRawFd;
    let mut q = ProcmapQuery {
        size: std::mem::size_of::<ProcmapQuery>() as u64,
        query_flags: PROCMAP_QUERY_COVERING_OR_NEXT_VMA,
        query_addr: addr,
        vma_name_size: u32::try_from(name.len()).unwrap_or(u32::MAX),
        vma_name_addr: name.as_mut_ptr() as u64,
        ..ProcmapQuery::default()
    };
    // SAFETY: `q` is an initialized `struct procmap_query` (`size` its own),
    // borrowed exclusively; the kernel writes at most `vma_name_size` bytes to
    // `name`, borrowed exclusively and that long; no build-id buffer is passed.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), PROCMAP_QUERY, &mut q as *mut ProcmapQuery) };
    if r < 0 {
        let e = last_errno();
        return if e == Errno::NOENT { Ok(None) } else { Err(e) };
    }
    Ok(Some(QueriedVma {
        start: q.vma_start,
        end: q.vma_end,
        read: q.vma_flags & PROCMAP_QUERY_VMA_READABLE != 0,
        write: q.vma_flags & PROCMAP_QUERY_VMA_WRITABLE != 0,
        page_size: q.vma_page_size,
        name_len: (q.vma_name_size as usize).saturating_sub(1).min(name.len()),
    }))
}

/// An anonymous mapping, unmapped on drop.
///
/// [`Mmap::unmap_range`] punches holes (for fault tests); only the parts still
/// mapped are unmapped on drop, so addresses reused by later mappings are
/// never touched.
#[derive(Debug)]
pub struct Mmap {
    addr: u64,
    len: usize,
    prot: i32,
    /// Still-mapped `(offset, len)` pieces, sorted.
    live: Vec<(usize, usize)>,
}

impl Mmap {
    /// `mmap(NULL, len, prot, flags | MAP_ANONYMOUS, -1, 0)`, adding
    /// `MAP_PRIVATE` when neither `MAP_PRIVATE` nor `MAP_SHARED` is in
    /// `flags`. `len` must be non-zero (`EINVAL` otherwise); a `len` that is
    /// not page-aligned maps whole pages but [`len`](Self::len) reports `len`.
    pub fn anon(len: usize, prot: i32, flags: i32) -> Result<Mmap, Errno> {
        if len == 0 {
            return Err(Errno::INVAL);
        }
        let mut flags = flags | libc::MAP_ANONYMOUS;
        if flags & (libc::MAP_PRIVATE | libc::MAP_SHARED) == 0 {
            flags |= libc::MAP_PRIVATE;
        }
        // SAFETY: an anonymous mapping at a kernel-chosen address (no
        // MAP_FIXED) cannot alias any existing memory.
        let p = unsafe { libc::mmap(core::ptr::null_mut(), len, prot, flags, -1, 0) };
        if p == libc::MAP_FAILED {
            return Err(last_errno());
        }
        Ok(Mmap {
            addr: p as u64,
            len,
            prot,
            live: vec![(0, len)],
        })
    }

    /// Start address.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// Length requested at creation.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true (zero-length mappings cannot be created).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the whole mapping is still mapped and readable.
    fn whole_readable(&self) -> bool {
        self.prot & libc::PROT_READ != 0 && self.live == [(0, self.len)]
    }

    /// The contents, if the whole mapping is still mapped and readable.
    pub fn as_slice(&self) -> Option<&[u8]> {
        if !self.whole_readable() {
            return None;
        }
        // SAFETY: `[addr, addr + len)` is mapped readable (checked above) and
        // stays so while `self` is borrowed (protect/unmap_range need
        // `&mut self`); it is a mapping we own, not Rust-allocated memory.
        Some(unsafe { core::slice::from_raw_parts(self.addr as *const u8, self.len) })
    }

    /// The contents, mutably, if the whole mapping is still mapped, readable
    /// and writable.
    pub fn as_mut_slice(&mut self) -> Option<&mut [u8]> {
        if !self.whole_readable() || self.prot & libc::PROT_WRITE == 0 {
            return None;
        }
        // SAFETY: as in `as_slice`, and writable; `&mut self` makes the
        // borrow exclusive among Rust references.
        Some(unsafe { core::slice::from_raw_parts_mut(self.addr as *mut u8, self.len) })
    }

    /// `mprotect` of every still-mapped piece.
    pub fn protect(&mut self, prot: i32) -> Result<(), Errno> {
        for &(off, len) in &self.live {
            // SAFETY: the piece is part of our own mapping; changing its
            // protection cannot invalidate Rust references, because slices
            // borrow `self` and this takes `&mut self`.
            let rc =
                unsafe { libc::mprotect((self.addr + off as u64) as *mut libc::c_void, len, prot) };
            if rc != 0 {
                return Err(last_errno());
            }
        }
        self.prot = prot;
        Ok(())
    }

    /// `mprotect` of `[offset, offset + len)` (page-aligned). Afterwards the mapping
    /// counts as having only the permissions common to both parts, so
    /// [`Mmap::as_slice`] never covers memory that became inaccessible.
    ///
    /// # Errors
    /// `EINVAL` if out of bounds or misaligned; the errno of `mprotect`.
    pub fn protect_range(&mut self, offset: usize, len: usize, prot: i32) -> Result<(), Errno> {
        let ps = page_size();
        let end = offset.checked_add(len).ok_or(Errno::INVAL)?;
        if !offset.is_multiple_of(ps) || len == 0 || end > self.len.next_multiple_of(ps) {
            return Err(Errno::INVAL);
        }
        // SAFETY: the range lies inside our own mapping; no Rust reference into it
        // can exist (slices borrow `self`, this takes `&mut self`).
        let rc =
            unsafe { libc::mprotect((self.addr + offset as u64) as *mut libc::c_void, len, prot) };
        if rc != 0 {
            return Err(last_errno());
        }
        self.prot &= prot;
        Ok(())
    }

    /// Unmaps `[offset, offset + len)` of the mapping (page-aligned offset;
    /// `len` rounded up to pages by the kernel). `EINVAL` if out of bounds or
    /// misaligned.
    pub fn unmap_range(&mut self, offset: usize, len: usize) -> Result<(), Errno> {
        let ps = page_size();
        let end = offset.checked_add(len).ok_or(Errno::INVAL)?;
        if !offset.is_multiple_of(ps) || len == 0 || end > self.len.next_multiple_of(ps) {
            return Err(Errno::INVAL);
        }
        let end = end.next_multiple_of(ps);
        // SAFETY: the range lies inside our own mapping; no Rust reference
        // into it can exist (slices borrow `self`, this takes `&mut self`).
        let rc = unsafe {
            libc::munmap(
                (self.addr + offset as u64) as *mut libc::c_void,
                end - offset,
            )
        };
        if rc != 0 {
            return Err(last_errno());
        }
        let mut live = Vec::with_capacity(self.live.len() + 1);
        for &(o, l) in &self.live {
            let e = o + l;
            if e <= offset || o >= end {
                live.push((o, l));
                continue;
            }
            if o < offset {
                live.push((o, offset - o));
            }
            if e > end {
                live.push((end, e - end));
            }
        }
        self.live = live;
        Ok(())
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        for &(off, len) in &self.live {
            // SAFETY: each live piece is still part of our mapping (holes are
            // excluded, so later mappings at those addresses are untouched).
            unsafe { libc::munmap((self.addr + off as u64) as *mut libc::c_void, len) };
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Runs `child` in a forked child and asserts that it returned true.
    /// `child` may use this crate, memory allocation (glibc's fork leaves
    /// malloc usable) and libc; the child leaves with _exit, never returning
    /// into the harness.
    pub(crate) fn assert_in_forked_child(child: impl FnOnce() -> bool) {
        // SAFETY: the child runs only `child` (see above) and then _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(false);
            // SAFETY: terminates the child without running the harness.
            unsafe { libc::_exit(i32::from(!ok)) };
        }
        let mut st = 0;
        // SAFETY: waiting for our own child with a writable status.
        assert_eq!(unsafe { libc::waitpid(pid, &mut st, 0) }, pid);
        assert!(
            libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0,
            "child status {st:#x}"
        );
    }

    #[test]
    fn the_fork_epoch_is_stable_in_a_process_and_new_in_a_forked_child() {
        let ours = fork_epoch().expect("MADV_WIPEONFORK (Linux 4.14)");
        assert_eq!(fork_epoch(), Some(ours));
        assert_in_forked_child(|| {
            let theirs = fork_epoch();
            theirs.is_some_and(|e| e != ours) && fork_epoch() == theirs
        });
        assert_eq!(fork_epoch(), Some(ours), "the parent's epoch moved");
    }

    #[test]
    fn ids_and_limits() {
        assert_eq!(page_size(), 4096);
        assert!(gettid() > 0);
        // SAFETY: getuid has no preconditions.
        assert_eq!(uid(), unsafe { libc::getuid() });
        assert!(rlimit_memlock() > 0);
        // Cross-check capget against CapEff in /proc/self/status.
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let hex = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .unwrap()
            .trim();
        let eff = u64::from_str_radix(hex, 16).unwrap();
        for cap in [Cap::IpcLock, Cap::SysResource, Cap::SysRawio, Cap::SysAdmin] {
            assert_eq!(capable(cap), eff & (1 << cap.number()) != 0, "{cap:?}");
        }
    }

    #[test]
    fn rlimit_roundtrip() {
        // Lower the soft limit in a forked child and read it back.
        assert_in_forked_child(|| {
            let mut r = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit/setrlimit on the local `r`.
            unsafe {
                libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut r);
                r.rlim_cur = 65536.min(r.rlim_max);
                let ok = libc::setrlimit(libc::RLIMIT_MEMLOCK, &r) == 0
                    && rlimit_memlock() == r.rlim_cur;
                r.rlim_cur = libc::RLIM_INFINITY;
                r.rlim_max = libc::RLIM_INFINITY;
                // Raising the hard limit needs CAP_SYS_RESOURCE: only check
                // the infinity mapping when that worked.
                let inf_ok =
                    libc::setrlimit(libc::RLIMIT_MEMLOCK, &r) != 0 || rlimit_memlock() == u64::MAX;
                ok && inf_ok
            }
        });
    }

    #[test]
    fn eventfd_works() {
        use std::io::{Read, Write};
        let fd = eventfd(3, true).unwrap();
        let mut f = std::fs::File::from(fd);
        let mut b = [0u8; 8];
        f.read_exact(&mut b).unwrap();
        assert_eq!(u64::from_ne_bytes(b), 3);
        // Non-blocking: the counter is now 0, so a read would block.
        assert_eq!(
            f.read(&mut b).unwrap_err().kind(),
            std::io::ErrorKind::WouldBlock
        );
        f.write_all(&5u64.to_ne_bytes()).unwrap();
        f.read_exact(&mut b).unwrap();
        assert_eq!(u64::from_ne_bytes(b), 5);
        let fd = eventfd(0, false).unwrap();
        // SAFETY: F_GETFL/F_GETFD on a descriptor we own.
        let (fl, fdfl) = unsafe {
            use std::os::fd::AsRawFd;
            (
                libc::fcntl(fd.as_raw_fd(), libc::F_GETFL),
                libc::fcntl(fd.as_raw_fd(), libc::F_GETFD),
            )
        };
        assert_eq!(fl & libc::O_NONBLOCK, 0);
        assert_eq!(fdfl & libc::FD_CLOEXEC, 0);
    }

    #[test]
    fn mmap_lifecycle() {
        let mut m = Mmap::anon(4 * 4096, libc::PROT_READ | libc::PROT_WRITE, 0).unwrap();
        assert_eq!(m.len(), 4 * 4096);
        assert!(!m.is_empty());
        m.as_mut_slice().unwrap()[5] = 7;
        assert_eq!(m.as_slice().unwrap()[5], 7);
        m.protect(libc::PROT_READ).unwrap();
        assert!(m.as_mut_slice().is_none());
        assert_eq!(m.as_slice().unwrap()[5], 7);
        assert_eq!(m.unmap_range(1, 4096), Err(Errno::INVAL));
        assert_eq!(m.unmap_range(4096, 5 * 4096), Err(Errno::INVAL));
        m.unmap_range(4096, 4096).unwrap();
        assert!(m.as_slice().is_none());
        assert_eq!(m.live, vec![(0, 4096), (8192, 8192)]);
        m.unmap_range(3 * 4096, 4096).unwrap();
        assert_eq!(m.live, vec![(0, 4096), (8192, 4096)]);
        m.protect(libc::PROT_NONE).unwrap();
        assert!(Mmap::anon(0, libc::PROT_READ, 0).is_err());
    }
}
