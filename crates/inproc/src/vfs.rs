//! The VFS around an emulated file's operations: `read`/`write`, their
//! positioned and vectored variants, and `lseek`, with the kernel's checks in
//! the kernel's order (`fs/read_write.c` and `lib/iov_iter.c`, v6.12).
//!
//! What the VFS knows of a file comes from its operations and from how it was
//! opened:
//!
//! * an iommufd (`/dev/iommu`, `/dev/vfio/vfio`) is a character device opened
//!   by path ([`char_device_open`]), so positioned I/O is allowed
//!   (`FMODE_PREAD`), but `iommufd_fops` has neither read, write nor llseek:
//!   those fail with `EINVAL` (`EBADF` first where the access mode lacks the
//!   direction), `lseek` with `ESPIPE`;
//! * the files iommufd creates (fault queues, selftest accesses) are anonymous
//!   inodes: no positioned I/O (`ESPIPE`), and read or write only where the
//!   file has the op ([`FileOps::has_read`]).
//!
//! A vectored transfer on a file with plain read and write ops (all of ours)
//! calls the op once per segment, stopping at the first short or failed one
//! (`do_loop_readv_writev`).

use uapi::Errno;

use crate::FdEntry;

/// The most one call transfers (`MAX_RW_COUNT`: `INT_MAX & PAGE_MASK`).
pub const MAX_RW_COUNT: u64 = 0x7fff_f000;
/// The most segments a vectored call takes (`UIO_MAXIOV`).
pub const UIO_MAXIOV: u32 = 1024;
/// The only `RWF_*` flag a file without `read_iter`/`write_iter` accepts.
pub const RWF_HIPRI: i32 = 0x1;
/// The largest `whence` `lseek` passes to the file (`SEEK_HOLE`).
const SEEK_MAX: i32 = 4;
/// `sizeof(struct iovec)` on 64-bit.
const IOVEC_SIZE: u64 = 16;

/// The kernel's `O_LARGEFILE` (x86-64), which `open` forces on 64-bit (glibc
/// defines it as 0 there).
pub const O_LARGEFILE: i32 = 0o100_000;
/// `__O_TMPFILE`, the bit `O_TMPFILE` adds to `O_DIRECTORY`.
const O_TMPFILE_BIT: i32 = 0o20_000_000;
/// `__O_SYNC`, the bit `O_SYNC` adds to `O_DSYNC`.
const O_SYNC_BIT: i32 = 0o4_000_000;
/// `VALID_OPEN_FLAGS`: `open` ignores every other bit.
const VALID_OPEN_FLAGS: i32 = libc::O_ACCMODE
    | libc::O_CREAT
    | libc::O_EXCL
    | libc::O_NOCTTY
    | libc::O_TRUNC
    | libc::O_APPEND
    | libc::O_NONBLOCK
    | O_SYNC_BIT
    | libc::O_DSYNC
    | libc::O_ASYNC
    | libc::O_DIRECT
    | O_LARGEFILE
    | libc::O_DIRECTORY
    | libc::O_NOFOLLOW
    | libc::O_NOATIME
    | libc::O_CLOEXEC
    | libc::O_PATH
    | O_TMPFILE_BIT;
/// The status flags of an emulated iommufd that live on its backing fd, so
/// that `F_SETFL` changes them: `O_APPEND` and `O_NONBLOCK` (the rest of
/// `SETFL_MASK` cannot be set on either file, or not by every user).
pub const SETFL_MASK: i32 = libc::O_APPEND | libc::O_NONBLOCK;

/// An `open(2)` of a character device (by its path) with `flags`, as the
/// kernel answers it: the file's flags (`f_flags`, what `F_GETFL` returns).
/// `O_PATH` opens no device and is not handled here.
///
/// # Errors
/// `EINVAL` for `O_DIRECTORY | O_CREAT`, for `O_TMPFILE` without write access
/// (`build_open_flags`), or `O_DIRECT` (no direct I/O); `ENOTDIR` for
/// `O_DIRECTORY`; `EEXIST` for `O_CREAT | O_EXCL`.
pub fn char_device_open(flags: i32) -> Result<i32, Errno> {
    let flags = flags & VALID_OPEN_FLAGS & !libc::O_CLOEXEC;
    let all = |f: i32| flags & f == f;
    if all(libc::O_DIRECTORY | libc::O_CREAT) {
        return Err(Errno::INVAL);
    }
    if flags & O_TMPFILE_BIT != 0
        && (flags & libc::O_DIRECTORY == 0 || flags & libc::O_ACCMODE == libc::O_RDONLY)
    {
        return Err(Errno::INVAL);
    }
    if flags & libc::O_DIRECTORY != 0 {
        return Err(Errno::NOTDIR);
    }
    if all(libc::O_CREAT | libc::O_EXCL) {
        return Err(Errno::EXIST);
    }
    if flags & libc::O_DIRECT != 0 {
        return Err(Errno::INVAL);
    }
    let mut f_flags = flags & !(libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY | libc::O_TRUNC);
    if f_flags & O_SYNC_BIT != 0 {
        f_flags |= libc::O_DSYNC;
    }
    Ok(f_flags | O_LARGEFILE)
}

/// `fcntl(F_GETFL)` of an emulated fd whose backing fd answers `backing`.
pub fn getfl(entry: &FdEntry, backing: i32) -> i32 {
    match entry {
        FdEntry::Iommufd(_, f_flags) => (f_flags & !SETFL_MASK) | (backing & SETFL_MASK),
        // Opened O_RDWR by iommufd, as the eventfd is.
        FdEntry::File(_) => backing,
    }
}

/// Which way a transfer goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// `read`, `readv`, `pread`, `preadv`.
    Read,
    /// `write`, `writev`, `pwrite`, `pwritev`.
    Write,
}

/// Where a vectored transfer happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// At the file position: `readv`, or `preadv2` with offset -1.
    Position,
    /// At an offset: `preadv`, `preadv2`.
    Offset(i64),
}

impl FdEntry {
    /// `FMODE_READ` / `FMODE_WRITE`, from the access mode (`OPEN_FMODE`); the
    /// files iommufd creates are opened `O_RDWR`.
    fn opened_for(&self, dir: Dir) -> bool {
        let fmode = match self {
            FdEntry::Iommufd(_, f_flags) => (f_flags + 1) & libc::O_ACCMODE,
            FdEntry::File(_) => 3,
        };
        fmode & if dir == Dir::Read { 1 } else { 2 } != 0
    }

    /// `FMODE_CAN_READ` / `FMODE_CAN_WRITE`.
    fn has_op(&self, dir: Dir) -> bool {
        match (self, dir) {
            (FdEntry::Iommufd(..), _) => false,
            (FdEntry::File(f), Dir::Read) => f.has_read(),
            (FdEntry::File(f), Dir::Write) => f.has_write(),
        }
    }

    /// `FMODE_PREAD` / `FMODE_PWRITE`: set for files opened by path.
    fn positional(&self) -> bool {
        matches!(self, FdEntry::Iommufd(..))
    }

    /// `vfs_read`'s and `vfs_readv`'s first checks: `EBADF` if not opened for
    /// `dir`, `EINVAL` without the op.
    fn check_op(&self, dir: Dir) -> Result<(), Errno> {
        if !self.opened_for(dir) {
            return Err(Errno::BADF);
        }
        if !self.has_op(dir) {
            return Err(Errno::INVAL);
        }
        Ok(())
    }

    /// The file's read or write op (only called where [`FdEntry::has_op`]).
    fn op(&self, dir: Dir, buf: u64, count: u64) -> Result<u64, Errno> {
        match (self, dir) {
            (FdEntry::Iommufd(..), _) => Err(Errno::INVAL),
            (FdEntry::File(f), Dir::Read) => f.read(buf, count),
            (FdEntry::File(f), Dir::Write) => f.write(buf, count),
        }
    }
}

/// `read(2)` / `write(2)` (`vfs_read` / `vfs_write`).
///
/// # Errors
/// `EBADF` if not opened for `dir`, `EINVAL` without the op, `EFAULT` for a
/// buffer beyond user space, else the op's errno.
pub fn read_write(entry: &FdEntry, dir: Dir, buf: u64, count: u64) -> Result<u64, Errno> {
    entry.check_op(dir)?;
    if !host::uaccess::access_ok(buf, count) {
        return Err(Errno::FAULT);
    }
    entry.op(dir, buf, count.min(MAX_RW_COUNT))
}

/// `pread(2)` / `pwrite(2)` (`ksys_pread64` / `ksys_pwrite64`).
///
/// # Errors
/// `EINVAL` for a negative offset, `ESPIPE` on a file without positioned I/O,
/// else as [`read_write`].
pub fn pread_pwrite(
    entry: &FdEntry,
    dir: Dir,
    buf: u64,
    count: u64,
    offset: i64,
) -> Result<u64, Errno> {
    if offset < 0 {
        return Err(Errno::INVAL);
    }
    if !entry.positional() {
        return Err(Errno::SPIPE);
    }
    read_write(entry, dir, buf, count)
}

/// `readv(2)`, `preadv(2)`, `preadv2(2)` and their write twins (`do_readv`,
/// `do_preadv`, `vfs_readv`, `import_iovec`, `do_loop_readv_writev`).
///
/// # Errors
/// `EINVAL` for a negative offset, `ESPIPE` for an offset on a file without
/// positioned I/O, `EBADF` if not opened for `dir`, `EINVAL` without the
/// op, the errno of the segment array
/// (`EINVAL` for too many segments or a negative length, `EFAULT`),
/// `EOPNOTSUPP` for `flags` other than `RWF_HIPRI`, else the op's errno if it
/// failed on the first segment.
pub fn readv_writev(
    entry: &FdEntry,
    dir: Dir,
    iov: u64,
    iovcnt: i32,
    at: At,
    flags: i32,
) -> Result<u64, Errno> {
    if let At::Offset(offset) = at {
        if offset < 0 {
            return Err(Errno::INVAL);
        }
        if !entry.positional() {
            return Err(Errno::SPIPE);
        }
    }
    entry.check_op(dir)?;
    // The syscall takes the count as an unsigned long and the import as an
    // unsigned int: a negative count is a huge one.
    let segs = import_iovec(iov, iovcnt as u32)?;
    let total: u64 = segs.iter().map(|s| s.1).sum();
    if total == 0 {
        return Ok(0);
    }
    if flags & !RWF_HIPRI != 0 {
        return Err(Errno::OPNOTSUPP);
    }
    let mut done = 0u64;
    let mut segs = segs.iter().copied().peekable();
    while done < total {
        let Some((base, len)) = segs.next() else {
            break;
        };
        match entry.op(dir, base, len) {
            Err(err) if done == 0 => return Err(err),
            Err(_) => break,
            Ok(n) => {
                done += n;
                if n != len {
                    break;
                }
            }
        }
        // Advancing past a whole segment skips the empty ones after it.
        while segs.next_if(|s| s.1 == 0).is_some() {}
    }
    Ok(done)
}

/// `import_iovec`: the segments `(base, len)`, lengths capped so that they
/// add up to at most [`MAX_RW_COUNT`].
fn import_iovec(uvec: u64, nr_segs: u32) -> Result<Vec<(u64, u64)>, Errno> {
    let read_seg = |i: u64| -> Result<(u64, u64), Errno> {
        let mut raw = [0u8; IOVEC_SIZE as usize];
        host::uaccess::copy_from_user(&mut raw, uvec + i * IOVEC_SIZE)?;
        let (base, len) = raw.split_at(8);
        let base = u64::from_ne_bytes(base.try_into().expect("8 bytes"));
        let len = u64::from_ne_bytes(len.try_into().expect("8 bytes"));
        // A size_t that does not fit an ssize_t.
        if i64::try_from(len).is_err() {
            return Err(Errno::INVAL);
        }
        Ok((base, len))
    };
    if nr_segs == 1 {
        // `import_ubuf`: capped first, then checked.
        let (base, len) = read_seg(0)?;
        let len = len.min(MAX_RW_COUNT);
        if !host::uaccess::access_ok(base, len) {
            return Err(Errno::FAULT);
        }
        return Ok(vec![(base, len)]);
    }
    if nr_segs == 0 {
        return Ok(Vec::new());
    }
    if nr_segs > UIO_MAXIOV {
        return Err(Errno::INVAL);
    }
    let n = u64::from(nr_segs);
    if !host::uaccess::access_ok(uvec, n * IOVEC_SIZE) {
        return Err(Errno::FAULT);
    }
    let mut segs = (0..n).map(read_seg).collect::<Result<Vec<_>, _>>()?;
    let mut total = 0;
    for (base, len) in &mut segs {
        if !host::uaccess::access_ok(*base, *len) {
            return Err(Errno::FAULT);
        }
        *len = (*len).min(MAX_RW_COUNT - total);
        total += *len;
    }
    Ok(segs)
}

/// `lseek(2)` (`ksys_lseek`, `vfs_llseek`).
///
/// # Errors
/// `EINVAL` for an unknown `whence`, else the file's llseek errno (`ESPIPE`
/// for every file iommufd has).
pub fn lseek(entry: &FdEntry, offset: i64, whence: i32) -> Result<i64, Errno> {
    if !(0..=SEEK_MAX).contains(&whence) {
        return Err(Errno::INVAL);
    }
    match entry {
        FdEntry::Iommufd(..) => Err(Errno::SPIPE),
        FdEntry::File(f) => f.llseek(offset, whence),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use iommufd::mm::FileOps;

    use super::*;

    /// A file whose read op records its calls and answers from a script.
    #[derive(Default)]
    struct Scripted {
        calls: Mutex<Vec<(u64, u64)>>,
        /// Per call: `Ok(n)` transfers `min(n, count)`, or fails.
        answers: Mutex<Vec<Result<u64, Errno>>>,
    }

    impl FileOps for Scripted {
        fn read(&self, buf: u64, count: u64) -> Result<u64, Errno> {
            self.calls.lock().unwrap().push((buf, count));
            let mut answers = self.answers.lock().unwrap();
            if answers.is_empty() {
                return Ok(count);
            }
            answers.remove(0).map(|n| n.min(count))
        }
        fn has_read(&self) -> bool {
            true
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }

    fn scripted(answers: Vec<Result<u64, Errno>>) -> (Arc<Scripted>, FdEntry) {
        let file = Arc::new(Scripted {
            answers: Mutex::new(answers),
            ..Scripted::default()
        });
        (file.clone(), FdEntry::File(file))
    }

    /// An iovec array in this process's memory.
    fn iovecs(segs: &[(u64, u64)]) -> Vec<u64> {
        segs.iter().flat_map(|&(b, l)| [b, l]).collect()
    }

    fn addr(v: &[u64]) -> u64 {
        v.as_ptr() as u64
    }

    const BUF: u64 = 0x1000_0000;

    #[test]
    fn each_segment_is_one_call_and_empty_ones_after_a_full_one_are_skipped() {
        let (file, entry) = scripted(vec![]);
        let v = iovecs(&[
            (BUF, 0),
            (BUF + 100, 8),
            (BUF + 200, 0),
            (BUF + 300, 4),
            (BUF, 0),
        ]);
        let n = readv_writev(&entry, Dir::Read, addr(&v), 5, At::Position, 0);
        assert_eq!(n, Ok(12));
        // The first segment is called even when empty (the iterator starts
        // there); the empty ones after a whole segment and at the end are not.
        assert_eq!(
            *file.calls.lock().unwrap(),
            [(BUF, 0), (BUF + 100, 8), (BUF + 300, 4)]
        );
    }

    #[test]
    fn a_short_segment_ends_the_transfer_and_a_later_failure_returns_the_count() {
        let (file, entry) = scripted(vec![Ok(8), Ok(3)]);
        let v = iovecs(&[(BUF, 8), (BUF + 8, 8), (BUF + 16, 8)]);
        assert_eq!(
            readv_writev(&entry, Dir::Read, addr(&v), 3, At::Position, 0),
            Ok(11)
        );
        assert_eq!(file.calls.lock().unwrap().len(), 2);

        let (_, entry) = scripted(vec![Ok(8), Err(Errno::SPIPE)]);
        assert_eq!(
            readv_writev(&entry, Dir::Read, addr(&v), 3, At::Position, 0),
            Ok(8)
        );
        let (_, entry) = scripted(vec![Err(Errno::SPIPE)]);
        assert_eq!(
            readv_writev(&entry, Dir::Read, addr(&v), 3, At::Position, 0),
            Err(Errno::SPIPE)
        );
    }

    #[test]
    fn the_array_is_checked_before_any_call() {
        let (file, entry) = scripted(vec![]);
        let ok = iovecs(&[(BUF, 8), (BUF, 8)]);
        let rd = |iov, cnt| readv_writev(&entry, Dir::Read, iov, cnt, At::Position, 0);
        assert_eq!(rd(addr(&ok), 0), Ok(0));
        assert_eq!(rd(addr(&ok), 1025), Err(Errno::INVAL));
        assert_eq!(rd(addr(&ok), -1), Err(Errno::INVAL));
        assert_eq!(rd(0, 2), Err(Errno::FAULT));
        assert_eq!(rd(8, 1), Err(Errno::FAULT));
        let negative = iovecs(&[(BUF, 8), (BUF, u64::MAX)]);
        assert_eq!(rd(addr(&negative), 2), Err(Errno::INVAL));
        assert_eq!(rd(addr(&negative[2..]), 1), Err(Errno::INVAL));
        let kernel = iovecs(&[(BUF, 8), (0xffff_8000_0000_0000, 8)]);
        assert_eq!(rd(addr(&kernel), 2), Err(Errno::FAULT));
        assert!(file.calls.lock().unwrap().is_empty());
        // Flags are looked at only when there is something to transfer.
        let empty = iovecs(&[(BUF, 0), (BUF, 0)]);
        let with_flags = |iov, flags| readv_writev(&entry, Dir::Read, iov, 2, At::Position, flags);
        assert_eq!(with_flags(addr(&empty), 0x8), Ok(0));
        assert_eq!(with_flags(addr(&ok), 0x8), Err(Errno::OPNOTSUPP));
        assert_eq!(with_flags(addr(&ok), RWF_HIPRI), Ok(16));
    }

    #[test]
    fn lengths_are_capped_at_max_rw_count() {
        let (file, entry) = scripted(vec![]);
        let v = iovecs(&[(BUF, MAX_RW_COUNT - 4), (BUF, 16), (BUF, 16)]);
        assert_eq!(
            readv_writev(&entry, Dir::Read, addr(&v), 3, At::Position, 0),
            Ok(MAX_RW_COUNT)
        );
        assert_eq!(
            *file.calls.lock().unwrap(),
            [(BUF, MAX_RW_COUNT - 4), (BUF, 4)]
        );
    }

    #[test]
    fn anonymous_files_refuse_offsets_and_files_without_the_op_refuse_first() {
        let (file, entry) = scripted(vec![]);
        let v = iovecs(&[(BUF, 8)]);
        let at = |off| readv_writev(&entry, Dir::Read, addr(&v), 1, At::Offset(off), 0);
        assert_eq!(at(-1), Err(Errno::INVAL));
        assert_eq!(at(0), Err(Errno::SPIPE));
        assert_eq!(
            pread_pwrite(&entry, Dir::Read, BUF, 8, 0),
            Err(Errno::SPIPE)
        );
        assert_eq!(
            pread_pwrite(&entry, Dir::Read, BUF, 8, -1),
            Err(Errno::INVAL)
        );
        // No write op: EINVAL even before a bad array.
        assert_eq!(
            readv_writev(&entry, Dir::Write, 0, 5000, At::Position, 0),
            Err(Errno::INVAL)
        );
        assert_eq!(read_write(&entry, Dir::Write, BUF, 8), Err(Errno::INVAL));
        assert_eq!(
            read_write(&entry, Dir::Read, u64::MAX - 4, 8),
            Err(Errno::FAULT)
        );
        assert_eq!(lseek(&entry, 0, 0), Err(Errno::SPIPE));
        assert_eq!(lseek(&entry, 0, 5), Err(Errno::INVAL));
        assert!(file.calls.lock().unwrap().is_empty());
    }

    #[test]
    fn opening_a_character_device_keeps_the_kernels_flags() {
        use libc::{
            O_CLOEXEC, O_CREAT, O_DIRECT, O_DIRECTORY, O_EXCL, O_NOCTTY, O_NONBLOCK, O_RDONLY,
            O_RDWR, O_SYNC, O_TMPFILE, O_TRUNC, O_WRONLY,
        };
        let lf = super::O_LARGEFILE;
        assert_eq!(char_device_open(O_RDWR | O_CLOEXEC), Ok(O_RDWR | lf));
        assert_eq!(
            char_device_open(O_WRONLY | O_CREAT | O_TRUNC | O_NOCTTY | O_NONBLOCK),
            Ok(O_WRONLY | O_NONBLOCK | lf)
        );
        // O_SYNC is __O_SYNC | O_DSYNC; a bare __O_SYNC gets O_DSYNC too.
        assert_eq!(char_device_open(O_RDWR | O_SYNC), Ok(O_RDWR | O_SYNC | lf));
        assert_eq!(
            char_device_open(O_RDWR | O_SYNC_BIT),
            Ok(O_RDWR | O_SYNC | lf)
        );
        // Unknown bits are ignored by open(2).
        assert_eq!(char_device_open(O_RDWR | 0x4000_0000), Ok(O_RDWR | lf));
        assert_eq!(
            char_device_open(O_RDWR | O_DIRECTORY | O_CREAT),
            Err(Errno::INVAL)
        );
        assert_eq!(char_device_open(O_RDONLY | O_TMPFILE), Err(Errno::INVAL));
        assert_eq!(char_device_open(O_RDWR | O_TMPFILE), Err(Errno::NOTDIR));
        assert_eq!(char_device_open(O_RDWR | O_DIRECTORY), Err(Errno::NOTDIR));
        assert_eq!(
            char_device_open(O_RDWR | O_CREAT | O_EXCL),
            Err(Errno::EXIST)
        );
        assert_eq!(char_device_open(O_RDWR | O_DIRECT), Err(Errno::INVAL));
    }

    #[test]
    fn the_access_mode_is_checked_before_the_op() {
        let entry = |flags| FdEntry::Iommufd(crate::open(false), flags);
        let v = iovecs(&[(BUF, 8)]);
        for (flags, read, write) in [
            (libc::O_RDONLY, Errno::INVAL, Errno::BADF),
            (libc::O_WRONLY, Errno::BADF, Errno::INVAL),
            (libc::O_RDWR, Errno::INVAL, Errno::INVAL),
            (libc::O_ACCMODE, Errno::BADF, Errno::BADF),
        ] {
            let e = entry(flags);
            assert_eq!(read_write(&e, Dir::Read, BUF, 8), Err(read), "{flags}");
            assert_eq!(read_write(&e, Dir::Write, BUF, 8), Err(write), "{flags}");
            let rv = readv_writev(&e, Dir::Read, addr(&v), 1, At::Position, 0);
            assert_eq!(rv, Err(read), "{flags}");
            assert_eq!(
                pread_pwrite(&e, Dir::Write, BUF, 8, 0),
                Err(write),
                "{flags}"
            );
        }
        let e = entry(libc::O_WRONLY | libc::O_SYNC | O_LARGEFILE);
        let backing = libc::O_RDWR | libc::O_NONBLOCK;
        assert_eq!(
            getfl(&e, backing),
            libc::O_WRONLY | libc::O_SYNC | O_LARGEFILE | libc::O_NONBLOCK
        );
        let (_, file) = scripted(vec![]);
        assert_eq!(getfl(&file, backing), backing);
    }
}
