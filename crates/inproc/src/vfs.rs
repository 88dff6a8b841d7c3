//! The VFS around an emulated file's operations: `read`/`write`, their
//! positioned and vectored variants, and `lseek`, with the kernel's checks in
//! the kernel's order (`fs/read_write.c` and `lib/iov_iter.c`, v6.12).
//!
//! What the VFS knows of a file comes from its operations and from how it was
//! opened:
//!
//! * an iommufd (`/dev/iommu`, `/dev/vfio/vfio`) is a character device opened
//!   by path, so positioned I/O is allowed (`FMODE_PREAD`), but `iommufd_fops`
//!   has neither read, write nor llseek: those fail with `EINVAL`, `lseek`
//!   with `ESPIPE`;
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
    /// `FMODE_CAN_READ` / `FMODE_CAN_WRITE`.
    fn has_op(&self, dir: Dir) -> bool {
        match (self, dir) {
            (FdEntry::Iommufd(_), _) => false,
            (FdEntry::File(f), Dir::Read) => f.has_read(),
            (FdEntry::File(f), Dir::Write) => f.has_write(),
        }
    }

    /// `FMODE_PREAD` / `FMODE_PWRITE`: set for files opened by path.
    fn positional(&self) -> bool {
        matches!(self, FdEntry::Iommufd(_))
    }

    /// The file's read or write op (only called where [`FdEntry::has_op`]).
    fn op(&self, dir: Dir, buf: u64, count: u64) -> Result<u64, Errno> {
        match (self, dir) {
            (FdEntry::Iommufd(_), _) => Err(Errno::INVAL),
            (FdEntry::File(f), Dir::Read) => f.read(buf, count),
            (FdEntry::File(f), Dir::Write) => f.write(buf, count),
        }
    }
}

/// `read(2)` / `write(2)` (`vfs_read` / `vfs_write`).
///
/// # Errors
/// `EINVAL` without the op, `EFAULT` for a buffer beyond user space, else the
/// op's errno.
pub fn read_write(entry: &FdEntry, dir: Dir, buf: u64, count: u64) -> Result<u64, Errno> {
    if !entry.has_op(dir) {
        return Err(Errno::INVAL);
    }
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
/// positioned I/O, `EINVAL` without the op, the errno of the segment array
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
    if !entry.has_op(dir) {
        return Err(Errno::INVAL);
    }
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
        FdEntry::Iommufd(_) => Err(Errno::SPIPE),
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
}
