//! The ports to user memory and to the caller's file table.
//!
//! iommufd reaches the memory of the process that maps it only through
//! [`UserMemory`], and the process's file descriptors only through [`Files`]; the
//! in-process preload library, a future daemon and the tests implement them. This
//! is where the kernel would use `current->mm`, GUP, `copy_{to,from}_user`, the
//! task's credentials and rlimits, and the task's fd table.

use std::any::Any;
use std::sync::Arc;

use uapi::Errno;

/// The CPU page size all page stores work in.
pub const PAGE_SIZE: u64 = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;
/// The transparent huge page size; caps the automatic IOVA alignment.
pub const HPAGE_SIZE: u64 = 2 << 20;

/// A run of pinned user pages that is contiguous in "physical" address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysRun {
    /// Physical address of the first page.
    pub pa: u64,
    /// Number of `PAGE_SIZE` pages.
    pub npages: u64,
    /// The largest IO page size that may map part of this run: the size of the
    /// naturally aligned blocks it is physically contiguous in (4 KiB for ordinary
    /// pages, the huge page size for hugetlb memory).
    pub max_pgsize: u64,
}

/// How pinned pages are charged against `RLIMIT_MEMLOCK` (`IOPT_PAGES_ACCOUNT_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountMode {
    /// Not charged (the mapping task had `CAP_IPC_LOCK`).
    None,
    /// Per-user `locked_vm`, shared by every process of the user (io_uring style).
    User,
    /// Per-mm `locked_vm`, as VFIO type1 charges it.
    Mm,
}

/// Capabilities iommufd checks (`capable()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cap {
    /// `CAP_IPC_LOCK`: pins are not charged.
    IpcLock,
    /// `CAP_SYS_RESOURCE`: may change the accounting mode.
    SysResource,
    /// `CAP_SYS_RAWIO`: may use VFIO no-iommu mode.
    SysRawio,
}

/// The memory of one process (the kernel's `mm_struct`, GUP and user copies).
///
/// Addresses are user virtual addresses (`va`) or the "physical" addresses (`pa`)
/// that pinning hands out and that page tables hold.
pub trait UserMemory: Send + Sync {
    /// Copies `dst.len()` bytes from user address `va` (`copy_from_user`).
    ///
    /// # Errors
    /// `EFAULT` if any byte is not readable.
    fn read(&self, va: u64, dst: &mut [u8]) -> Result<(), Errno>;

    /// [`UserMemory::read`] that is not itself one of the kernel's user
    /// copies: the dispatcher reads a whole command struct at once where the
    /// kernel reads its size and then the struct, and accounts for those two
    /// copies itself (fault injection counts them as the kernel does).
    ///
    /// # Errors
    /// `EFAULT` if any byte is not readable.
    fn read_ahead(&self, va: u64, dst: &mut [u8]) -> Result<(), Errno> {
        self.read(va, dst)
    }

    /// Copies `src` to user address `va` (`copy_to_user`).
    ///
    /// # Errors
    /// `EFAULT` if any byte is not writable.
    fn write(&self, va: u64, src: &[u8]) -> Result<(), Errno>;

    /// Pins `npages` pages from the page-aligned `va` (`pin_user_pages(FOLL_LONGTERM
    /// [| FOLL_WRITE])`), appending runs that cover exactly those pages in order.
    ///
    /// # Errors
    /// `EFAULT` if a page is unmapped or lacks the needed permission; nothing stays
    /// pinned then.
    fn pin(&self, va: u64, npages: u64, write: bool, out: &mut Vec<PhysRun>) -> Result<(), Errno>;

    /// Releases pins taken by [`UserMemory::pin`], at page granularity.
    fn unpin(&self, va: u64, npages: u64);

    /// Reads from pinned physical memory (a DMA read).
    ///
    /// # Errors
    /// `EFAULT` if the memory is gone.
    fn read_phys(&self, pa: u64, dst: &mut [u8]) -> Result<(), Errno>;

    /// Writes to pinned physical memory (a DMA write).
    ///
    /// # Errors
    /// `EFAULT` if the memory is gone.
    fn write_phys(&self, pa: u64, src: &[u8]) -> Result<(), Errno>;

    /// The physical address of the page that backs `va` now (GUP and put, faulting it in).
    ///
    /// # Errors
    /// `EFAULT` if `va` is not mapped readable.
    fn resolve(&self, va: u64) -> Result<u64, Errno>;

    /// The number of long-term pins on the page backing `va`, or `None` for a compound
    /// (huge) page, whose count the selftest does not check.
    ///
    /// # Errors
    /// `EFAULT` if `va` is not mapped readable.
    fn pin_count(&self, va: u64) -> Result<Option<u32>, Errno>;

    /// Charges (`inc`) or uncharges `npages` pinned pages in `mode`.
    ///
    /// # Errors
    /// `ENOMEM` if charging would exceed `RLIMIT_MEMLOCK`.
    fn account(&self, mode: AccountMode, npages: u64, inc: bool) -> Result<(), Errno>;

    /// Whether the task has capability `cap`.
    fn capable(&self, cap: Cap) -> bool;
}

/// Readiness of an emulated file, as `poll()` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PollMask {
    /// Data can be read (`EPOLLIN | EPOLLRDNORM`).
    pub readable: bool,
    /// Data can be written (`EPOLLOUT`).
    pub writable: bool,
}

/// File operations of a file iommufd creates (the selftest access file, the fault
/// queue file), as the kernel's `file_operations`. The file is released (its
/// `release` runs) when the last reference, i.e. the last fd, goes: implement that
/// in `Drop`.
pub trait FileOps: Send + Sync + Any {
    /// `read(2)` into user memory at `buf`.
    ///
    /// # Errors
    /// `EINVAL` by default (no read op).
    fn read(&self, _buf: u64, _count: u64) -> Result<u64, Errno> {
        Err(Errno::INVAL)
    }

    /// `write(2)` from user memory at `buf`.
    ///
    /// # Errors
    /// `EINVAL` by default (no write op).
    fn write(&self, _buf: u64, _count: u64) -> Result<u64, Errno> {
        Err(Errno::INVAL)
    }

    /// Whether the file has a read op (`FMODE_CAN_READ`): the VFS refuses
    /// `read(2)` and `readv(2)` on a file without one (`EINVAL`) before it
    /// looks at their buffers.
    fn has_read(&self) -> bool {
        false
    }

    /// Whether the file has a write op (`FMODE_CAN_WRITE`); see
    /// [`FileOps::has_read`].
    fn has_write(&self) -> bool {
        false
    }

    /// `lseek(2)` with `whence` at most `SEEK_MAX`: the new position.
    ///
    /// # Errors
    /// `ESPIPE` by default: a file without an llseek op (no `FMODE_LSEEK`),
    /// as iommufd's anonymous files are.
    fn llseek(&self, _offset: i64, _whence: i32) -> Result<i64, Errno> {
        Err(Errno::SPIPE)
    }

    /// `ioctl(2)`.
    ///
    /// # Errors
    /// `ENOTTY` by default.
    fn ioctl(&self, _cmd: u32, _arg: u64) -> Result<i64, Errno> {
        Err(Errno::NOTTY)
    }

    /// `poll(2)` readiness; without a poll op the kernel reports readable and
    /// writable (`DEFAULT_POLLMASK`).
    fn poll(&self) -> PollMask {
        PollMask {
            readable: true,
            writable: true,
        }
    }

    /// Registers the callback the file calls when its readiness may have changed.
    fn set_notify(&self, _notify: Arc<dyn Fn(PollMask) + Send + Sync>) {}

    /// Downcast support (`file->f_op == &some_fops`).
    fn as_any(&self) -> &dyn Any;
}

/// The calling task's file table, for creating and looking up fds.
pub trait Files: Send + Sync {
    /// Reserves an unused fd number, close-on-exec (`get_unused_fd_flags(O_CLOEXEC)`).
    ///
    /// # Errors
    /// `EMFILE` and similar when no fd is available.
    fn reserve_fd(&self) -> Result<i32, Errno>;

    /// Gives back a reserved fd that was never installed (`put_unused_fd`).
    fn unreserve_fd(&self, fd: i32);

    /// Installs `file` at the reserved `fd` (`fd_install`); cannot fail.
    fn install(&self, fd: i32, file: Arc<dyn FileOps>);

    /// Looks up the file behind `fd` (`fget`).
    fn get(&self, fd: i32) -> Option<Arc<dyn FileOps>>;
}
