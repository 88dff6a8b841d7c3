//! What the kernel's GUP (`pin_user_pages`) would say about a user range,
//! from `/proc/self/maps`: is every byte inside a VMA, do the VMAs allow the
//! access, and which page size backs each part ([`VmaSpan`]).
//!
//! `/proc/self/maps` is read with a few `read(2)`s into a reused per-thread
//! buffer and parsed incrementally; as the file is sorted, reading stops at
//! the first VMA past the range.
//!
//! Hugetlb VMAs are recognized by their backing file:
//! * `/anon_hugepage` (`MAP_HUGETLB`), `/memfd:…` and `/SYSV…` (internal
//!   mounts that may be hugetlbfs or shmem): the page size is the VMA's
//!   `KernelPageSize` from `/proc/self/smaps`, looked up only when needed and
//!   cached by device number (each internal mount is one device); without
//!   `/proc/self/smaps`, `/anon_hugepage` gets the default huge page size;
//! * a file under a hugetlbfs mount point (`/proc/self/mountinfo`, read once):
//!   the mount's `pagesize=` option, or the default huge page size
//!   (`Hugepagesize:` in `/proc/meminfo`).
//!
//! VMAs the kernel maps with `VM_PFNMAP`/`VM_IO` that GUP refuses (`[vvar]`,
//! `[vvar_vclock]`) count as inaccessible.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::ops::ControlFlow;
use std::os::fd::AsFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use uapi::Errno;

use crate::fds::InternalFd;

/// Base page size.
pub const BASE_PAGE: u64 = 4096;

/// A part of a checked range and the page size backing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmaSpan {
    /// First byte (clipped to the range).
    pub start: u64,
    /// One past the last byte (clipped to the range).
    pub end: u64,
    /// 4096, or the huge page size of a hugetlb VMA.
    pub page_size: u64,
}

/// One parsed line of `/proc/self/maps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MapsLine<'a> {
    start: u64,
    end: u64,
    read: bool,
    write: bool,
    /// `major:minor` as printed (hex).
    dev: &'a str,
    /// Pathname (possibly empty, possibly ending in ` (deleted)`).
    path: &'a str,
    /// The kernel's page size for the VMA, when the source says
    /// (`PROCMAP_QUERY`); `/proc/self/maps` lines leave it to [`page_size_of`].
    page_size: Option<u64>,
}

fn parse_maps_line(line: &str) -> Option<MapsLine<'_>> {
    let mut rest = line;
    let mut field = || {
        let s = rest.trim_start_matches(' ');
        let i = s.find(' ').unwrap_or(s.len());
        rest = &s[i..];
        &s[..i]
    };
    let range = field();
    let perms = field();
    let _offset = field();
    let dev = field();
    let _inode = field();
    let path = rest.trim_start_matches(' ');
    let (a, b) = range.split_once('-')?;
    let pb = perms.as_bytes();
    if pb.len() < 4 {
        return None;
    }
    Some(MapsLine {
        start: u64::from_str_radix(a, 16).ok()?,
        end: u64::from_str_radix(b, 16).ok()?,
        read: pb[0] == b'r',
        write: pb[1] == b'w',
        dev,
        path,
        page_size: None,
    })
}

/// Calls `f` on each line of `/proc/self/maps` until it breaks.
fn walk_maps<R>(mut f: impl FnMut(&MapsLine<'_>) -> ControlFlow<R>) -> Result<Option<R>, Errno> {
    thread_local! {
        static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    let mut file = File::open("/proc/self/maps").map_err(|_| Errno::FAULT)?;
    BUF.with(|buf| {
        // `f` never walks the maps again, so the buffer is never borrowed twice.
        let mut buf = buf.borrow_mut();
        if buf.len() < 16384 {
            buf.resize(16384, 0);
        }
        let mut filled = 0;
        loop {
            if filled == buf.len() {
                // A line longer than the buffer (a very long path).
                let n = buf.len() * 2;
                buf.resize(n, 0);
            }
            let n = file.read(&mut buf[filled..]).map_err(|_| Errno::FAULT)?;
            let eof = n == 0;
            filled += n;
            let mut consumed = 0;
            while let Some(nl) = buf[consumed..filled].iter().position(|&b| b == b'\n') {
                let line = &buf[consumed..consumed + nl];
                consumed += nl + 1;
                let Ok(line) = std::str::from_utf8(line) else {
                    continue;
                };
                let Some(m) = parse_maps_line(line) else {
                    continue;
                };
                if let ControlFlow::Break(r) = f(&m) {
                    return Ok(Some(r));
                }
            }
            if eof {
                return Ok(None);
            }
            buf.copy_within(consumed..filled, 0);
            filled -= consumed;
        }
    })
}

/// Whether `PROCMAP_QUERY` works on this kernel (cleared at its first
/// `ENOTTY`/`EINVAL`: kernels before 6.11).
static QUERY_WORKS: AtomicBool = AtomicBool::new(true);

thread_local! {
    /// This thread's `/proc/self/maps`, with the process it was opened in
    /// ([`process_key`]). One per thread: the kernel serialises
    /// `PROCMAP_QUERY`s on one open file (two threads querying through one
    /// ran no faster than one; through their own, 1.5 times as fast). A child
    /// after `fork` opens its own (the inherited one describes the parent).
    static MAPS_FILE: RefCell<Option<(u64, Rc<InternalFd>)>> = const { RefCell::new(None) };
}

/// What tells this process from a parent it was forked from: the fork epoch
/// (one load), or the pid (a syscall) where the kernel cannot wipe a page in
/// children.
fn process_key() -> u64 {
    crate::sys::fork_epoch().unwrap_or_else(|| u64::from(std::process::id()))
}

/// This thread's cached `/proc/self/maps` for this process, or a freshly
/// opened one (replacing the cache) if `fresh` or there is none for this
/// process (not cached while the thread's locals are being destroyed).
fn maps_file(fresh: bool) -> Option<Rc<InternalFd>> {
    let key = process_key();
    let open = || {
        File::open("/proc/self/maps")
            .ok()
            .map(|f| Rc::new(InternalFd::private(f)))
    };
    MAPS_FILE
        .try_with(|cache| {
            let mut cache = cache.borrow_mut();
            match &*cache {
                Some((k, file)) if !fresh && *k == key => Some(file.clone()),
                _ => {
                    let file = open()?;
                    *cache = Some((key, file.clone()));
                    Some(file)
                }
            }
        })
        .unwrap_or_else(|_| open())
}

enum QueryWalk<R> {
    /// The walk ran (or failed for a reason other than the query itself).
    Done(Result<Option<R>, Errno>),
    /// The first query failed with this errno: `ENOTTY`/`EINVAL` where the
    /// kernel has no `PROCMAP_QUERY`, or anything from a stale descriptor.
    Unsupported(Errno),
}

thread_local! {
    /// The buffer [`query_walk`] has VMA names written to (a name can be as
    /// long as a path): kept, so that a query does not first zero 4 KiB.
    static NAME_BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0; 4096]);
}

/// Runs `f` on this thread's name buffer (or a fresh one while it is in use
/// or the thread's locals are being destroyed).
fn with_name_buffer<T>(f: impl FnOnce(&mut [u8]) -> T) -> T {
    let mut f = Some(f);
    let mut run = |name: &mut [u8]| f.take().map(|f| f(name));
    let kept = NAME_BUFFER.try_with(|b| b.try_borrow_mut().ok().and_then(|mut b| run(&mut b)));
    match kept {
        Ok(Some(r)) => r,
        _ => run(&mut [0; 4096]).expect("`f` runs once"),
    }
}

/// [`walk_vmas`] with `PROCMAP_QUERY` on `file`.
fn query_walk<R>(
    file: &InternalFd,
    va: u64,
    f: &mut impl FnMut(&MapsLine<'_>) -> ControlFlow<R>,
) -> QueryWalk<R> {
    with_name_buffer(|name| {
        let mut addr = va;
        let mut first = true;
        loop {
            match crate::sys::procmap_query(file.as_fd(), addr, name) {
                Ok(None) => return QueryWalk::Done(Ok(None)),
                Ok(Some(v)) => {
                    first = false;
                    let m = MapsLine {
                        start: v.start,
                        end: v.end,
                        read: v.read,
                        write: v.write,
                        dev: "",
                        path: std::str::from_utf8(&name[..v.name_len]).unwrap_or(""),
                        page_size: Some(v.page_size),
                    };
                    if let ControlFlow::Break(r) = f(&m) {
                        return QueryWalk::Done(Ok(Some(r)));
                    }
                    if v.end <= addr {
                        return QueryWalk::Done(Err(Errno::FAULT));
                    }
                    addr = v.end;
                }
                Err(e) if first => return QueryWalk::Unsupported(e),
                Err(_) => return QueryWalk::Done(Err(Errno::FAULT)),
            }
        }
    })
}

/// Calls `f` on each VMA from the one covering (or else following) `va`
/// upwards, until it breaks, with one `PROCMAP_QUERY` ioctl per VMA: a few
/// hundred nanoseconds each, where reading `/proc/self/maps` costs
/// microseconds plus more per VMA of the process. Falls back to
/// [`walk_maps`] where the query is not available.
fn walk_vmas<R>(
    va: u64,
    mut f: impl FnMut(&MapsLine<'_>) -> ControlFlow<R>,
) -> Result<Option<R>, Errno> {
    if QUERY_WORKS.load(Ordering::Relaxed) {
        // A cached descriptor may still have been closed or replaced behind
        // our back (a raw close syscall, or `dup2` over its number); a failure
        // on it gets one retry on a freshly opened one.
        for fresh in [false, true] {
            let Some(file) = maps_file(fresh) else {
                break;
            };
            match query_walk(&file, va, &mut f) {
                QueryWalk::Done(r) => return r,
                QueryWalk::Unsupported(Errno::NOTTY | Errno::INVAL) if fresh => {
                    QUERY_WORKS.store(false, Ordering::Relaxed);
                }
                QueryWalk::Unsupported(_) => {}
            }
        }
    }
    walk_maps(|m| {
        if m.end <= va {
            ControlFlow::Continue(())
        } else {
            f(m)
        }
    })
}

/// Host facts about hugetlb, read once.
#[derive(Debug, Default)]
struct HugeEnv {
    /// `Hugepagesize:` from `/proc/meminfo` (bytes), 2 MiB if absent.
    default_size: u64,
    /// hugetlbfs mount points and page sizes, longest mount point first.
    mounts: Vec<(String, u64)>,
}

fn huge_env() -> &'static HugeEnv {
    static ENV: OnceLock<HugeEnv> = OnceLock::new();
    ENV.get_or_init(|| {
        let default_size = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| parse_meminfo_hugepagesize(&s))
            .unwrap_or(2 << 20);
        let mounts = std::fs::read_to_string("/proc/self/mountinfo")
            .map(|s| parse_mountinfo(&s, default_size))
            .unwrap_or_default();
        HugeEnv {
            default_size,
            mounts,
        }
    })
}

fn parse_meminfo_hugepagesize(s: &str) -> Option<u64> {
    let line = s.lines().find(|l| l.starts_with("Hugepagesize:"))?;
    let kb: u64 = line["Hugepagesize:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Parses sizes like `2M`, `1G`, `2048K`, `2097152`.
fn parse_size(s: &str) -> Option<u64> {
    let (num, mult) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1 << 10),
        b'm' | b'M' => (&s[..s.len() - 1], 1 << 20),
        b'g' | b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_mountinfo(s: &str, default_size: u64) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = s
        .lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let mut post = post.split(' ');
            if post.next()? != "hugetlbfs" {
                return None;
            }
            let _source = post.next();
            let opts = post.next().unwrap_or("");
            let mp = unescape_mount(pre.split(' ').nth(4)?);
            let size = opts
                .split(',')
                .find_map(|o| o.strip_prefix("pagesize=").and_then(parse_size))
                .unwrap_or(default_size);
            Some((mp, size))
        })
        .collect();
    v.sort_by_key(|(mp, _)| std::cmp::Reverse(mp.len()));
    v
}

/// Page size of the mount containing `path`, if it is a hugetlbfs mount.
fn mount_page_size(env: &HugeEnv, path: &str) -> Option<u64> {
    env.mounts.iter().find_map(|(mp, size)| {
        let inside = if mp == "/" {
            path.starts_with('/')
        } else {
            path.strip_prefix(mp.as_str())
                .is_some_and(|r| r.starts_with('/'))
        };
        inside.then_some(*size)
    })
}

/// `KernelPageSize` of the VMA starting at `start`, from `/proc/self/smaps`.
fn smaps_page_size(start: u64) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let mut found = false;
    for line in s.lines() {
        // VMA header lines parse as maps lines; "Key: value" lines do not.
        if let Some(m) = parse_maps_line(line) {
            if found {
                return None;
            }
            found = m.start == start;
        } else if found {
            if let Some(v) = line.strip_prefix("KernelPageSize:") {
                let kb: u64 = v.trim().trim_end_matches("kB").trim().parse().ok()?;
                return Some(kb * 1024);
            }
        }
    }
    None
}

/// Classifies a VMA by its backing: `Some(page size)` for hugetlb, `None`
/// for base pages. `lookup` resolves internal mounts by VMA start.
fn hugetlb_size(
    env: &HugeEnv,
    m: &MapsLine<'_>,
    lookup: &mut dyn FnMut(&MapsLine<'_>) -> Option<u64>,
) -> Option<u64> {
    let path = m.path;
    let base = path.strip_suffix(" (deleted)").unwrap_or(path);
    if base == "/anon_hugepage" {
        return Some(
            lookup(m)
                .filter(|&s| s > BASE_PAGE)
                .unwrap_or(env.default_size),
        );
    }
    if path.starts_with("/memfd:") || path.starts_with("/SYSV") {
        return lookup(m).filter(|&s| s > BASE_PAGE);
    }
    if path.starts_with('/') {
        return mount_page_size(env, path);
    }
    None
}

/// Page size of internal-mount VMAs, cached by device (each internal
/// hugetlbfs/shmem mount is one device, and such mounts are never destroyed).
fn internal_lookup(m: &MapsLine<'_>) -> Option<u64> {
    static CACHE: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);
    if let Some(&v) = CACHE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_with(HashMap::new)
        .get(m.dev)
    {
        return Some(v);
    }
    let v = smaps_page_size(m.start)?;
    CACHE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_with(HashMap::new)
        .insert(m.dev.to_owned(), v);
    Some(v)
}

fn page_size_of(m: &MapsLine<'_>) -> u64 {
    m.page_size
        .unwrap_or_else(|| hugetlb_size(huge_env(), m, &mut internal_lookup).unwrap_or(BASE_PAGE))
}

/// VMAs GUP refuses whatever their permissions (`VM_PFNMAP`/`VM_IO`).
fn gup_refuses(m: &MapsLine<'_>) -> bool {
    matches!(m.path, "[vvar]" | "[vvar_vclock]")
}

/// Core of [`check_range`] over any sequence of maps lines.
fn check_lines(
    lines: impl FnOnce(
        &mut dyn FnMut(&MapsLine<'_>) -> ControlFlow<Result<(), Errno>>,
    ) -> Result<Option<Result<(), Errno>>, Errno>,
    va: u64,
    end: u64,
    write: bool,
    page_size: &mut dyn FnMut(&MapsLine<'_>) -> u64,
) -> Result<Vec<VmaSpan>, Errno> {
    let mut out: Vec<VmaSpan> = Vec::new();
    let mut cursor = va;
    let r = lines(&mut |m| {
        if m.end <= cursor {
            return ControlFlow::Continue(());
        }
        if m.start > cursor || gup_refuses(m) || !(if write { m.write } else { m.read }) {
            return ControlFlow::Break(Err(Errno::FAULT));
        }
        let ps = page_size(m);
        let e = m.end.min(end);
        match out.last_mut() {
            Some(last) if last.end == cursor && last.page_size == ps => last.end = e,
            _ => out.push(VmaSpan {
                start: cursor,
                end: e,
                page_size: ps,
            }),
        }
        cursor = e;
        if cursor >= end {
            ControlFlow::Break(Ok(()))
        } else {
            ControlFlow::Continue(())
        }
    })?;
    match r {
        Some(Ok(())) => Ok(out),
        Some(Err(e)) => Err(e),
        None => Err(Errno::FAULT),
    }
}

/// Checks `[va, va + len)` as GUP would for a read (`write == false`) or
/// write pin: `EFAULT` if any byte lies outside every VMA, or in a VMA
/// without `r` (read) / `w` (write) permission (or one GUP refuses).
/// Returns the range split by page size (adjacent VMAs with equal page sizes
/// merged), clipped to the range. `len == 0` gives an empty vector;
/// wrapping ranges give `EFAULT`.
pub fn check_range(va: u64, len: u64, write: bool) -> Result<Vec<VmaSpan>, Errno> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let end = va.checked_add(len).ok_or(Errno::FAULT)?;
    check_lines(|f| walk_vmas(va, f), va, end, write, &mut page_size_of)
}

/// Whether the page containing `va` belongs to a hugetlb VMA; `EFAULT` if
/// `va` is not mapped at all (whatever the protection).
pub fn is_hugetlb(va: u64) -> Result<bool, Errno> {
    let r = walk_vmas(va, |m| {
        if m.end <= va {
            ControlFlow::Continue(())
        } else if m.start > va {
            ControlFlow::Break(None)
        } else {
            ControlFlow::Break(Some(page_size_of(m) > BASE_PAGE))
        }
    })?;
    r.flatten().ok_or(Errno::FAULT)
}

#[cfg(test)]
mod tests {
    #![allow(unsafe_code)]

    use super::*;
    use crate::sys::Mmap;
    use libc::{PROT_NONE, PROT_READ, PROT_WRITE};

    const P: u64 = 4096;

    fn span(start: u64, end: u64) -> VmaSpan {
        VmaSpan {
            start,
            end,
            page_size: P,
        }
    }

    #[test]
    fn parse_lines() {
        let l = parse_maps_line("7f00-7f10 rw-p 00000000 00:0f 1234   /anon_hugepage (deleted)")
            .unwrap();
        assert_eq!(
            l,
            MapsLine {
                start: 0x7f00,
                end: 0x7f10,
                read: true,
                write: true,
                dev: "00:0f",
                path: "/anon_hugepage (deleted)",
                page_size: None,
            }
        );
        let l = parse_maps_line("1000-2000 ---p 00000000 00:00 0 ").unwrap();
        assert_eq!((l.read, l.write, l.path), (false, false, ""));
        let l = parse_maps_line("1000-2000 r--s 00000000 00:00 0").unwrap();
        assert_eq!((l.read, l.write, l.path), (true, false, ""));
        assert!(parse_maps_line("garbage").is_none());
    }

    #[test]
    fn parse_env() {
        assert_eq!(
            parse_meminfo_hugepagesize("MemTotal: 1 kB\nHugepagesize:    2048 kB\n"),
            Some(2 << 20)
        );
        let mi = "22 1 0:20 / /dev/hugepages rw,relatime shared:10 - hugetlbfs hugetlbfs rw,pagesize=2M\n\
                  23 1 0:21 / /mnt/huge\\0401g rw - hugetlbfs none rw,pagesize=1024M\n\
                  24 1 0:22 / /mnt/huge\\0401g/deflt rw - hugetlbfs none rw\n\
                  25 1 0:5 / /dev rw - devtmpfs udev rw\n";
        let m = parse_mountinfo(mi, 2 << 20);
        assert_eq!(m.len(), 3);
        let env = HugeEnv {
            default_size: 2 << 20,
            mounts: m,
        };
        assert_eq!(mount_page_size(&env, "/dev/hugepages/x"), Some(2 << 20));
        assert_eq!(
            mount_page_size(&env, "/mnt/huge 1g/f (deleted)"),
            Some(1 << 30)
        );
        assert_eq!(mount_page_size(&env, "/mnt/huge 1g/deflt/f"), Some(2 << 20));
        assert_eq!(mount_page_size(&env, "/dev/hugepagesX/x"), None);
        assert_eq!(mount_page_size(&env, "/dev/zero"), None);
        assert_eq!(parse_size("4K"), Some(4096));
        assert_eq!(parse_size("1G"), Some(1 << 30));
    }

    #[test]
    fn classify() {
        let env = HugeEnv {
            default_size: 2 << 20,
            mounts: vec![("/hp".into(), 1 << 30)],
        };
        let line = |path| MapsLine {
            start: 0,
            end: P,
            read: true,
            write: true,
            dev: "00:01",
            path,
            page_size: None,
        };
        let mut none = |_: &MapsLine<'_>| None;
        let mut one_g = |_: &MapsLine<'_>| Some(1 << 30);
        let mut small = |_: &MapsLine<'_>| Some(P);
        assert_eq!(
            hugetlb_size(&env, &line("/anon_hugepage (deleted)"), &mut none),
            Some(2 << 20)
        );
        assert_eq!(
            hugetlb_size(&env, &line("/anon_hugepage"), &mut one_g),
            Some(1 << 30)
        );
        assert_eq!(
            hugetlb_size(&env, &line("/memfd:x (deleted)"), &mut one_g),
            Some(1 << 30)
        );
        assert_eq!(
            hugetlb_size(&env, &line("/memfd:x (deleted)"), &mut small),
            None
        );
        assert_eq!(
            hugetlb_size(&env, &line("/hp/file"), &mut none),
            Some(1 << 30)
        );
        assert_eq!(
            hugetlb_size(&env, &line("/usr/lib/libc.so"), &mut none),
            None
        );
        assert_eq!(hugetlb_size(&env, &line("[heap]"), &mut none), None);
        assert_eq!(hugetlb_size(&env, &line(""), &mut none), None);
    }

    #[test]
    fn synthetic_merge_and_gaps() {
        let text = "1000-3000 rw-p 0 00:00 0\n3000-5000 r--p 0 00:00 0\n5000-6000 rw-p 0 00:00 0 /anon_hugepage\n7000-8000 rw-p 0 00:00 0\n";
        let run = |va: u64, len: u64, write: bool| {
            let lines = |f: &mut dyn FnMut(&MapsLine<'_>) -> ControlFlow<Result<(), Errno>>| {
                for l in text.lines() {
                    if let ControlFlow::Break(r) = f(&parse_maps_line(l).unwrap()) {
                        return Ok(Some(r));
                    }
                }
                Ok(None)
            };
            let mut ps = |m: &MapsLine<'_>| if m.path.is_empty() { P } else { 2 << 20 };
            check_lines(lines, va, va + len, write, &mut ps)
        };
        assert_eq!(run(0x1800, 0x3000, false), Ok(vec![span(0x1800, 0x4800)]));
        assert_eq!(run(0x1800, 0x3000, true), Err(Errno::FAULT));
        assert_eq!(
            run(0x4000, 0x1800, false),
            Ok(vec![
                span(0x4000, 0x5000),
                VmaSpan {
                    start: 0x5000,
                    end: 0x5800,
                    page_size: 2 << 20
                }
            ])
        );
        assert_eq!(run(0x5000, 0x2000, false), Err(Errno::FAULT)); // hole at 0x6000
        assert_eq!(run(0x7000, 0x2000, false), Err(Errno::FAULT)); // runs off the end
        assert_eq!(run(0x800, 0x1000, false), Err(Errno::FAULT)); // starts before
    }

    /// mprotect of one page of a test mapping.
    fn protect_page(addr: u64, prot: i32) {
        // SAFETY: changes the protection of one page of a mapping the test
        // owns (an `Mmap` it never views as a slice).
        let rc = unsafe { libc::mprotect(addr as *mut libc::c_void, P as usize, prot) };
        assert_eq!(rc, 0);
    }

    #[test]
    fn real_mappings() {
        let m = Mmap::anon(8 * 4096, PROT_READ | PROT_WRITE, 0).unwrap();
        let a = m.addr();
        assert_eq!(check_range(a, 8 * P, true), Ok(vec![span(a, a + 8 * P)]));
        assert_eq!(check_range(a + 1, 10, false), Ok(vec![span(a + 1, a + 11)]));
        assert_eq!(check_range(a, 0, true), Ok(vec![]));
        assert_eq!(is_hugetlb(a + 5), Ok(false));
        // A PROT_NONE page in the middle: a separate VMA without r/w.
        protect_page(a + 2 * P, PROT_NONE);
        assert_eq!(check_range(a, 8 * P, false), Err(Errno::FAULT));
        assert_eq!(check_range(a, 2 * P, true), Ok(vec![span(a, a + 2 * P)]));
        assert_eq!(
            check_range(a + 3 * P, 5 * P, true),
            Ok(vec![span(a + 3 * P, a + 8 * P)])
        );
        assert_eq!(is_hugetlb(a + 2 * P), Ok(false));
        // A read-only page: read ok, write fails.
        protect_page(a + 3 * P, PROT_READ);
        assert_eq!(
            check_range(a + 3 * P, 2 * P, false),
            Ok(vec![span(a + 3 * P, a + 5 * P)])
        );
        assert_eq!(check_range(a + 3 * P, 2 * P, true), Err(Errno::FAULT));
        // An inaccessible page (PROT_NONE, not unmapped: a hole could be reused by
        // a concurrent test's mmap; truly unmapped ranges are checked below).
        protect_page(a + 6 * P, PROT_NONE);
        assert_eq!(check_range(a + 5 * P, 2 * P, false), Err(Errno::FAULT));
        assert_eq!(check_range(a + 5 * P, 2 * P, true), Err(Errno::FAULT));
        assert_eq!(
            check_range(a + 7 * P, P, true),
            Ok(vec![span(a + 7 * P, a + 8 * P)])
        );
        // Nonsense ranges.
        assert_eq!(check_range(0, P, false), Err(Errno::FAULT));
        assert_eq!(check_range(u64::MAX - 10, 100, false), Err(Errno::FAULT));
        assert_eq!(check_range(a, u64::MAX / 2, false), Err(Errno::FAULT));
    }

    /// The raw descriptor of this thread's cached `/proc/self/maps`.
    fn cached_fd() -> Option<i32> {
        use std::os::fd::AsRawFd;
        maps_file(false).map(|f| f.as_raw_fd())
    }

    #[test]
    fn each_thread_queries_its_own_descriptor_which_sees_later_changes() {
        let m = Mmap::anon(4 * 4096, PROT_READ | PROT_WRITE, 0).unwrap();
        let a = m.addr();
        assert_eq!(check_range(a, 4 * P, true), Ok(vec![span(a, a + 4 * P)]));
        let ours = cached_fd();
        let (queried, wait_queried) = std::sync::mpsc::channel();
        let (changed, wait_changed) = std::sync::mpsc::channel();
        let other = std::thread::spawn(move || {
            assert_eq!(check_range(a, 4 * P, true), Ok(vec![span(a, a + 4 * P)]));
            let theirs = cached_fd();
            queried.send(()).unwrap();
            wait_changed.recv().unwrap();
            // The same descriptor answers with the mapping as it is now.
            assert_eq!(check_range(a, 4 * P, true), Err(Errno::FAULT));
            assert_eq!(check_range(a, 4 * P, false), Ok(vec![span(a, a + 4 * P)]));
            assert_eq!(cached_fd(), theirs);
            theirs
        });
        wait_queried.recv().unwrap();
        protect_page(a + P, PROT_READ);
        changed.send(()).unwrap();
        let theirs = other.join().unwrap();
        assert!(ours.is_some() && theirs.is_some());
        assert_ne!(ours, theirs, "threads share one descriptor");
        assert_eq!(cached_fd(), ours);
    }

    #[test]
    fn a_forked_child_queries_its_own_mappings() {
        let m = Mmap::anon(4096, PROT_READ | PROT_WRITE, 0).unwrap();
        // This thread's descriptor describes this process.
        assert_eq!(
            check_range(m.addr(), P, true),
            Ok(vec![span(m.addr(), m.addr() + P)])
        );
        crate::sys::tests::assert_in_forked_child(|| {
            // Memory the parent does not have: the inherited descriptor
            // (the parent's VMAs) would not find it.
            Mmap::anon(4096, PROT_READ | PROT_WRITE, 0).is_ok_and(|c| {
                check_range(c.addr(), P, true) == Ok(vec![span(c.addr(), c.addr() + P)])
            })
        });
    }

    /// `PROCMAP_QUERY` (where the kernel has it) and the text of
    /// `/proc/self/maps` give the same answers.
    #[test]
    fn query_agrees_with_maps_text() {
        let m = Mmap::anon(8 * 4096, PROT_READ | PROT_WRITE, 0).unwrap();
        let a = m.addr();
        protect_page(a + 2 * P, PROT_READ);
        protect_page(a + 5 * P, PROT_NONE);
        let text = |va: u64, len: u64, write: bool| {
            check_lines(|f| walk_maps(f), va, va + len, write, &mut page_size_of)
        };
        for (va, len) in [
            (a, 8 * P),
            (a, 2 * P),
            (a + P, 3 * P),
            (a + 3 * P, 2 * P),
            (a + 6 * P, 2 * P),
        ] {
            for write in [false, true] {
                assert_eq!(
                    check_range(va, len, write),
                    text(va, len, write),
                    "{va:#x}+{len:#x} {write}"
                );
            }
        }
        let stack = &m as *const Mmap as u64;
        assert_eq!(check_range(stack, 8, true), text(stack, 8, true));
        let code = query_agrees_with_maps_text as fn() as usize as u64;
        assert_eq!(check_range(code, 8, false), text(code, 8, false));
        assert_eq!(check_range(code, 8, true), Err(Errno::FAULT));
        // The query is used where the kernel has it (6.11+).
        if let Ok(f) = File::open("/proc/self/maps") {
            let mut name = [0u8; 64];
            if crate::sys::procmap_query(f.as_fd(), a, &mut name).is_ok() {
                let seen = walk_vmas(a, |m| ControlFlow::Break(m.page_size));
                assert_eq!(seen, Ok(Some(Some(P))));
            }
        }
    }

    #[test]
    fn vvar_refused() {
        let vvar = walk_maps(|m| {
            if m.path == "[vvar]" {
                ControlFlow::Break(m.start)
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
        match vvar {
            Some(s) => assert_eq!(check_range(s, 1, false), Err(Errno::FAULT)),
            None => eprintln!("no [vvar] mapping here; skipping"),
        }
    }

    #[test]
    fn many_vmas_stop_early_and_long_files() {
        // Enough distinct VMAs that /proc/self/maps needs many reads.
        let maps: Vec<Mmap> = (0..300)
            .map(|i| {
                Mmap::anon(
                    4096,
                    if i % 2 == 0 {
                        PROT_READ
                    } else {
                        PROT_READ | PROT_WRITE
                    },
                    0,
                )
                .unwrap()
            })
            .collect();
        for (i, m) in maps.iter().enumerate() {
            assert_eq!(
                check_range(m.addr(), P, false),
                Ok(vec![span(m.addr(), m.addr() + P)])
            );
            assert_eq!(check_range(m.addr(), P, true).is_ok(), i % 2 == 1);
        }
    }

    fn nr_hugepages() -> u64 {
        std::fs::read_to_string("/proc/sys/vm/nr_hugepages")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    #[test]
    fn map_hugetlb() {
        if nr_hugepages() == 0 {
            eprintln!("skipping map_hugetlb: /proc/sys/vm/nr_hugepages is 0");
            return;
        }
        let sz = huge_env().default_size as usize;
        let m = match Mmap::anon(sz, PROT_READ | PROT_WRITE, libc::MAP_HUGETLB) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("skipping map_hugetlb: mmap(MAP_HUGETLB) failed: {e:?}");
                return;
            }
        };
        let a = m.addr();
        assert_eq!(is_hugetlb(a), Ok(true));
        assert_eq!(
            check_range(a + 4096, 8192, true),
            Ok(vec![VmaSpan {
                start: a + 4096,
                end: a + 4096 + 8192,
                page_size: sz as u64
            }])
        );
    }

    #[test]
    fn memfd_hugetlb() {
        if nr_hugepages() == 0 {
            eprintln!("skipping memfd_hugetlb: /proc/sys/vm/nr_hugepages is 0");
            return;
        }
        let sz = huge_env().default_size as usize;
        // SAFETY: memfd_create with a NUL-terminated name.
        let fd = unsafe {
            libc::memfd_create(
                c"host-vma-huge".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_HUGETLB,
            )
        };
        if fd < 0 {
            eprintln!("skipping memfd_hugetlb: memfd_create(MFD_HUGETLB) failed");
            return;
        }
        // SAFETY: sizes and maps our own fd at a kernel-chosen address.
        let p = unsafe {
            assert_eq!(libc::ftruncate(fd, sz as libc::off_t), 0);
            let rw = PROT_READ | PROT_WRITE;
            libc::mmap(core::ptr::null_mut(), sz, rw, libc::MAP_SHARED, fd, 0)
        };
        if p == libc::MAP_FAILED {
            eprintln!("skipping memfd_hugetlb: mmap failed");
            // SAFETY: our own fd.
            unsafe { libc::close(fd) };
            return;
        }
        let a = p as u64;
        let want = VmaSpan {
            start: a,
            end: a + sz as u64,
            page_size: sz as u64,
        };
        assert_eq!(check_range(a, sz as u64, true), Ok(vec![want]));
        assert_eq!(is_hugetlb(a + 5), Ok(true));
        // SAFETY: unmapping our own mapping and closing our own fd.
        unsafe {
            libc::munmap(p, sz);
            libc::close(fd);
        }
    }

    #[test]
    fn memfd_shmem_is_base_pages() {
        // SAFETY: memfd_create with a NUL-terminated name; the fd is owned below.
        let fd = unsafe { libc::memfd_create(c"host-vma-test".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0);
        // SAFETY: `fd` is ours; ftruncate then mmap of 2 pages shared.
        let p = unsafe {
            assert_eq!(libc::ftruncate(fd, 8192), 0);
            libc::mmap(
                core::ptr::null_mut(),
                8192,
                PROT_READ | PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        let a = p as u64;
        assert_eq!(check_range(a, 8192, true), Ok(vec![span(a, a + 8192)]));
        assert_eq!(is_hugetlb(a), Ok(false));
        // SAFETY: unmapping our own mapping and closing our own fd.
        unsafe {
            libc::munmap(p, 8192);
            libc::close(fd);
        }
    }
}
