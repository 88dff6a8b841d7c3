//! Errno paths of the IOAS, option, destroy and access commands that the
//! bad-input table (`bad_input/table.rs`) and the per-area tests do not reach:
//! responses written back into read-only memory (the kernel keeps the effect of
//! MAP, COPY, UNMAP and OPTION SET, and undoes IOAS_ALLOC), lower-layer errors
//! of COPY into a domain, automatic IOVA choice for COPY, and the states another
//! thread can observe mid-ioctl: an ID reserved by an object under construction,
//! an object held by a running ioctl, an area whose domains are being populated.
//!
//! The mid-ioctl states are reached deterministically: the context's user
//! memory runs a one-shot hook at the moment the kernel would touch user memory
//! (copying a response out, pinning pages), and the hook issues the competing
//! ioctl on the same context, as a second thread could at that instant.
//!
//! `docs/errno-paths.md` maps every errno path to the test that triggers it.

#![allow(missing_docs)]

mod support;

use std::sync::{Arc, Mutex, Weak};

use host::sys::Mmap;
use iommufd::mm::{AccountMode, Cap, UserMemory};
use iommufd::IommufdFile;
use support::{
    buffer, mock_domain, pins, set_size, Fd, HookedMm, LockedLimit, MmHooks, FIXED_RW, PAGE, RW,
};
use uapi::{
    Errno, IoasAlloc, IoasAllowIovas, IoasCopy, IoasIovaRanges, IoasMap, IoasUnmap, IoctlCmd,
    IommuOption, IovaRange, TestAccessPages, TestAccessRw, TestCreateAccess, TestPayload,
    IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, IOMMU_OPTION_OP_SET, IOMMU_OPTION_RLIMIT_MODE,
    MOCK_APERTURE_START, MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES,
};
use zerocopy::{FromZeros, IntoBytes};

const APERTURE: u64 = MOCK_APERTURE_START;

// ---- helpers ---------------------------------------------------------------

/// A page holding `bytes` at its start, then made read-only: an ioctl can read
/// its command from it but cannot write its response back.
fn ro_page(bytes: &[u8]) -> Mmap {
    let mut m = buffer(PAGE as usize);
    m.as_mut_slice().expect("fresh mapping")[..bytes.len()].copy_from_slice(bytes);
    m.protect_range(0, PAGE as usize, libc::PROT_READ)
        .expect("mprotect");
    m
}

/// Issues `cmd` (with `size = sizeof`) from a read-only page.
fn ioctl_ro<T: IoctlCmd>(fd: &Fd, mut cmd: T) -> Result<i64, Errno> {
    set_size(&mut cmd, T::SIZE as u32);
    let page = ro_page(cmd.as_bytes());
    fd.ioctl_ptr(T::IOCTL, page.addr())
}

/// The next object ID the context would hand out (probes with an IOAS).
fn next_id(fd: &Fd) -> u32 {
    let id = fd.ioas_alloc();
    fd.destroy(id).expect("destroy the probe IOAS");
    id
}

fn option_cmd(option_id: u32, op: u16, object_id: u32, val64: u64) -> IommuOption {
    let mut cmd = IommuOption::new_zeroed();
    cmd.option_id = option_id;
    cmd.op = op;
    cmd.object_id = object_id;
    cmd.val64 = val64;
    cmd
}

fn huge_pages(fd: &Fd, ioas: u32) -> u64 {
    fd.option(IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, ioas, 0)
        .expect("HUGE_PAGES get")
}

fn iova_ranges_into(fd: &Fd, ioas: u32, out: &mut [IovaRange]) -> Result<i64, Errno> {
    let mut cmd = IoasIovaRanges::new_zeroed();
    cmd.ioas_id = ioas;
    cmd.num_iovas = out.len() as u32;
    cmd.allowed_iovas = out.as_mut_ptr() as u64;
    fd.ioctl(&mut cmd)
}

fn allow(fd: &Fd, ioas: u32, ranges: &[(u64, u64)]) -> Result<i64, Errno> {
    let r: Vec<IovaRange> = ranges
        .iter()
        .map(|&(start, last)| IovaRange { start, last })
        .collect();
    let mut cmd = IoasAllowIovas::new_zeroed();
    cmd.ioas_id = ioas;
    cmd.num_iovas = r.len() as u32;
    cmd.allowed_iovas = r.as_ptr() as u64;
    fd.ioctl(&mut cmd)
}

fn create_access(fd: &Fd, ioas: u32) -> u32 {
    let p = TestCreateAccess {
        out_access_fd: 0,
        flags: MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES,
    };
    fd.test(ioas, &p)
        .expect("create access")
        .payload_as::<TestCreateAccess>()
        .out_access_fd
}

fn close(fd: u32) {
    inproc::FdTable::global()
        .close(fd as i32)
        .expect("close an emulated fd");
}

fn test_cmd<P: TestPayload>(fd: &Fd, id: u32, p: &P) -> Result<(), Errno> {
    fd.test(id, p).map(|_| ())
}

/// Where a hook fires.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum On {
    /// The first write to user memory (a response or an output array).
    Write,
    /// The first pin of user pages (populating a domain).
    Pin,
}

type HookFn = Box<dyn FnOnce(&Fd) + Send>;

/// This process's memory, with a one-shot hook run on the context that uses it
/// just before the first matching user-memory operation. Grants
/// CAP_SYS_RESOURCE (for the accounting-mode option) and optionally charges
/// pinned pages against a limit (without CAP_IPC_LOCK then).
struct HookMm {
    inner: Arc<dyn UserMemory>,
    hook: Mutex<Option<(On, HookFn)>>,
    file: Mutex<Weak<IommufdFile>>,
    /// Charged pages and their limit, if any.
    locked: Option<LockedLimit>,
}

impl HookMm {
    fn run(&self, on: On) {
        let hook = {
            let mut slot = self.hook.lock().unwrap();
            match slot.as_ref() {
                Some((o, _)) if *o == on => slot.take(),
                _ => None,
            }
        };
        if let Some((_, f)) = hook {
            let file = self.file.lock().unwrap().upgrade().expect("context open");
            f(&Fd { file });
        }
    }

    fn arm(&self, on: On, f: impl FnOnce(&Fd) + Send + 'static) {
        *self.hook.lock().unwrap() = Some((on, Box::new(f)));
    }

    fn fired(&self) -> bool {
        self.hook.lock().unwrap().is_none()
    }
}

impl MmHooks for HookMm {
    fn inner(&self) -> &dyn UserMemory {
        self.inner.as_ref()
    }
    fn before_write(&self) {
        self.run(On::Write);
    }
    fn before_pin(&self) {
        self.run(On::Pin);
    }
    fn account(&self, mode: AccountMode, n: u64, inc: bool) -> Result<(), Errno> {
        match &self.locked {
            Some(locked) => locked.charge(mode, n, inc),
            None => self.inner.account(mode, n, inc),
        }
    }
    fn capable(&self, cap: Cap) -> bool {
        match cap {
            Cap::SysResource => true,
            Cap::IpcLock => self.locked.is_none() && self.inner.capable(cap),
            Cap::SysRawio => self.inner.capable(cap),
        }
    }
}

/// A context on a [`HookMm`]; `limit` pages may be charged if given.
fn hooked(limit: Option<u64>) -> (Fd, Arc<HookedMm<HookMm>>) {
    let mm = Arc::new(HookedMm(HookMm {
        inner: inproc::host_mm().clone(),
        hook: Mutex::new(None),
        file: Mutex::new(Weak::new()),
        locked: limit.map(LockedLimit::new),
    }));
    let fd = Fd::open_with_mm(mm.clone());
    *mm.file.lock().unwrap() = Arc::downgrade(&fd.file);
    (fd, mm)
}

/// Records what a hook saw, for assertions after the outer ioctl returned.
fn slot<T: Send + 'static>() -> Arc<Mutex<Option<T>>> {
    Arc::new(Mutex::new(None))
}

fn take<T>(s: &Arc<Mutex<Option<T>>>) -> T {
    s.lock().unwrap().take().expect("the hook ran")
}

// ---- IOMMU_DESTROY -------------------------------------------------------------

#[test]
fn destroy_of_an_id_reserved_by_an_object_under_construction_is_enoent() {
    let (fd, mm) = hooked(None);
    let id = next_id(&fd);
    let seen = slot();
    let s = seen.clone();
    // IOAS_ALLOC has reserved `id` and is writing its response: the ID is not
    // in the table yet for destroy or lookups.
    mm.arm(On::Write, move |fd| {
        *s.lock().unwrap() = Some((fd.destroy(id), fd.ranges(id).map(|_| ())));
    });
    let mut cmd = IoasAlloc::new_zeroed();
    assert_eq!(fd.ioctl(&mut cmd), Ok(0));
    assert_eq!(cmd.out_ioas_id, id);
    assert_eq!(take(&seen), (Err(Errno::NOENT), Err(Errno::NOENT)));
    // The object was finalized regardless.
    assert_eq!(fd.ranges(id), Ok((vec![(0, u64::MAX)], 1)));
    assert_eq!(fd.destroy(id), Ok(()));
}

#[test]
fn destroy_of_an_object_held_by_a_running_ioctl_is_ebusy() {
    let (fd, mm) = hooked(None);
    let ioas = fd.ioas_alloc();
    let seen = slot();
    let s = seen.clone();
    // IOAS_IOVA_RANGES holds the IOAS while it writes the ranges out.
    mm.arm(On::Write, move |fd| {
        *s.lock().unwrap() = Some(fd.destroy(ioas));
    });
    let mut out = [IovaRange::new_zeroed(); 1];
    assert_eq!(iova_ranges_into(&fd, ioas, &mut out), Ok(0));
    assert_eq!(take(&seen), Err(Errno::BUSY));
    assert_eq!((out[0].start, out[0].last), (0, u64::MAX));
    // Still there, and destroyable once the ioctl finished.
    assert_eq!(fd.ranges(ioas), Ok((vec![(0, u64::MAX)], 1)));
    assert_eq!(fd.destroy(ioas), Ok(()));
}

// ---- IOMMU_IOAS_ALLOC ----------------------------------------------------------

#[test]
fn ioas_alloc_whose_response_cannot_be_written_is_efault_and_frees_the_id() {
    let fd = Fd::open();
    let before = next_id(&fd);
    assert_eq!(ioctl_ro(&fd, IoasAlloc::new_zeroed()), Err(Errno::FAULT));
    assert_eq!(fd.ranges(before), Err(Errno::NOENT));
    assert_eq!(next_id(&fd), before);
}

// ---- IOMMU_IOAS_IOVA_RANGES ----------------------------------------------------

#[test]
fn iova_ranges_whose_response_cannot_be_written_is_efault_after_the_array() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    let mut out = [IovaRange { start: 7, last: 7 }; 2];
    let mut cmd = IoasIovaRanges::new_zeroed();
    cmd.ioas_id = ioas;
    cmd.num_iovas = 2;
    cmd.allowed_iovas = out.as_mut_ptr() as u64;
    assert_eq!(ioctl_ro(&fd, cmd), Err(Errno::FAULT));
    // The entries are copied out before the struct, as in the kernel.
    assert_eq!((out[0].start, out[0].last), (0, u64::MAX));
    assert_eq!((out[1].start, out[1].last), (7, 7));
}

// ---- IOMMU_IOAS_ALLOW_IOVAS ----------------------------------------------------

#[test]
fn allow_iovas_with_a_later_range_unreadable_is_efault_and_keeps_the_old_set() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    allow(&fd, ioas, &[(APERTURE, APERTURE + 0xffff)]).expect("allow");
    // Range 0 readable, range 1 in an inaccessible page.
    let mut m = buffer(2 * PAGE as usize);
    let first = IovaRange {
        start: 0x10000,
        last: 0x1ffff,
    };
    let at = PAGE as usize - 16;
    m.as_mut_slice().expect("mapping")[at..at + 16].copy_from_slice(first.as_bytes());
    m.protect_range(PAGE as usize, PAGE as usize, libc::PROT_NONE)
        .expect("mprotect");
    let mut cmd = IoasAllowIovas::new_zeroed();
    cmd.ioas_id = ioas;
    cmd.num_iovas = 2;
    cmd.allowed_iovas = m.addr() + at as u64;
    assert_eq!(fd.ioctl(&mut cmd), Err(Errno::FAULT));
    // The old set still rules automatic IOVAs.
    let buf = buffer(PAGE as usize);
    assert_eq!(fd.map_auto(ioas, buf.addr(), PAGE), Ok(APERTURE));
}

// ---- IOMMU_IOAS_MAP -----------------------------------------------------------

#[test]
fn map_whose_response_cannot_be_written_is_efault_but_keeps_the_mapping() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    mock_domain(&fd, ioas, 0).expect("mock domain");
    let buf = buffer(PAGE as usize);
    let mut cmd = IoasMap::new_zeroed();
    cmd.ioas_id = ioas;
    cmd.flags = FIXED_RW;
    cmd.user_va = buf.addr();
    cmd.length = PAGE;
    cmd.iova = APERTURE;
    assert_eq!(ioctl_ro(&fd, cmd), Err(Errno::FAULT));
    // iommufd_ioas_map does not undo the area when the response fails.
    assert_eq!(pins(buf.addr()), 1);
    assert_eq!(fd.unmap(ioas, APERTURE, PAGE), Ok(PAGE));
    assert_eq!(pins(buf.addr()), 0);
}

#[test]
fn map_with_automatic_iova_outside_every_allowed_range_is_enospc() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    allow(&fd, ioas, &[(APERTURE, APERTURE + PAGE - 1)]).expect("allow");
    let buf = buffer(2 * PAGE as usize);
    assert_eq!(fd.map_auto(ioas, buf.addr(), 2 * PAGE), Err(Errno::NOSPC));
    assert_eq!(fd.unmap(ioas, 0, u64::MAX), Ok(0));
    assert_eq!(fd.map_auto(ioas, buf.addr(), PAGE), Ok(APERTURE));
}

// ---- IOMMU_IOAS_COPY ----------------------------------------------------------

#[test]
fn copy_whose_response_cannot_be_written_is_efault_but_keeps_the_copy() {
    let fd = Fd::open();
    let src = fd.ioas_alloc();
    let dst = fd.ioas_alloc();
    let buf = buffer(PAGE as usize);
    fd.map_fixed(src, buf.addr(), PAGE, APERTURE).expect("map");
    let mut cmd = IoasCopy::new_zeroed();
    cmd.dst_ioas_id = dst;
    cmd.src_ioas_id = src;
    cmd.flags = FIXED_RW;
    cmd.src_iova = APERTURE;
    cmd.length = PAGE;
    cmd.dst_iova = 2 * APERTURE;
    assert_eq!(ioctl_ro(&fd, cmd), Err(Errno::FAULT));
    assert_eq!(fd.unmap(dst, 2 * APERTURE, PAGE), Ok(PAGE));
}

#[test]
fn copy_into_a_domain_from_memory_no_longer_accessible_is_efault_and_undone() {
    let fd = Fd::open();
    let src = fd.ioas_alloc();
    let dst = fd.ioas_alloc();
    mock_domain(&fd, dst, 0).expect("mock domain");
    let mut buf = buffer(2 * PAGE as usize);
    // The source has no domain: its pages were never pinned.
    fd.map_fixed(src, buf.addr(), 2 * PAGE, APERTURE)
        .expect("lazy map");
    buf.protect_range(PAGE as usize, PAGE as usize, libc::PROT_NONE)
        .expect("mprotect");
    assert_eq!(
        fd.copy(dst, src, APERTURE, 2 * PAGE, APERTURE, FIXED_RW),
        Err(Errno::FAULT)
    );
    assert_eq!(pins(buf.addr()), 0);
    assert_eq!(fd.unmap(dst, 0, u64::MAX), Ok(0));
    // The first page alone still copies.
    assert_eq!(
        fd.copy(dst, src, APERTURE, PAGE, APERTURE, FIXED_RW),
        Ok(APERTURE)
    );
    assert_eq!(pins(buf.addr()), 1);
}

#[test]
fn copy_into_a_domain_beyond_the_memlock_limit_is_enomem_and_undone() {
    let (fd, mm) = hooked(Some(2));
    let src = fd.ioas_alloc();
    let dst = fd.ioas_alloc();
    mock_domain(&fd, dst, 0).expect("mock domain");
    let buf = buffer(4 * PAGE as usize);
    fd.map_fixed(src, buf.addr(), 4 * PAGE, APERTURE)
        .expect("lazy map");
    assert_eq!(
        fd.copy(dst, src, APERTURE, 4 * PAGE, APERTURE, FIXED_RW),
        Err(Errno::NOMEM)
    );
    assert_eq!(mm.locked.as_ref().map_or(0, LockedLimit::used), 0);
    assert_eq!(pins(buf.addr()), 0);
    assert_eq!(fd.unmap(dst, 0, u64::MAX), Ok(0));
    assert_eq!(
        fd.copy(dst, src, APERTURE, 2 * PAGE, APERTURE, FIXED_RW),
        Ok(APERTURE)
    );
    assert_eq!(mm.locked.as_ref().map_or(0, LockedLimit::used), 2);
}

#[test]
fn copy_with_automatic_iova_and_no_room_in_the_destination_is_enospc() {
    let fd = Fd::open();
    let src = fd.ioas_alloc();
    let dst = fd.ioas_alloc();
    mock_domain(&fd, dst, 0).expect("mock domain");
    // 4 GiB mapped lazily in the source: larger than the mock aperture.
    fd.map_fixed(src, 0x1000, 1 << 32, 0).expect("lazy map");
    assert_eq!(fd.copy(dst, src, 0, 1 << 32, 0, RW), Err(Errno::NOSPC));
    assert_eq!(fd.unmap(dst, 0, u64::MAX), Ok(0));
}

#[test]
fn copy_with_automatic_iova_of_length_2_63_is_eoverflow() {
    let fd = Fd::open();
    let src = fd.ioas_alloc();
    let dst = fd.ioas_alloc();
    fd.map_fixed(src, 0x1000, 1 << 63, 0).expect("lazy map");
    assert_eq!(fd.copy(dst, src, 0, 1 << 63, 0, RW), Err(Errno::OVERFLOW));
    assert_eq!(fd.unmap(dst, 0, u64::MAX), Ok(0));
}

#[test]
fn copy_with_automatic_iova_from_a_user_va_below_the_destination_alignment_is_einval() {
    let fd = Fd::open();
    let src = fd.ioas_alloc();
    let dst = fd.ioas_alloc();
    mock_domain(&fd, dst, 0).expect("mock domain");
    let buf = buffer(2 * PAGE as usize);
    // Source user VA 0x400 into a page: the derived IOVA alignment is 0x400,
    // below the mock domain's 2048.
    fd.map_fixed(src, buf.addr() + 0x400, PAGE, APERTURE)
        .expect("lazy map");
    assert_eq!(fd.copy(dst, src, APERTURE, 0x800, 0, RW), Err(Errno::INVAL));
    assert_eq!(fd.unmap(dst, 0, u64::MAX), Ok(0));
    assert_eq!(pins(buf.addr()), 0);
}

#[test]
fn copy_from_an_area_whose_domains_are_being_populated_is_enoent() {
    let (fd, mm) = hooked(None);
    let ioas = fd.ioas_alloc();
    let dst = fd.ioas_alloc();
    mock_domain(&fd, ioas, 0).expect("mock domain");
    let buf = buffer(PAGE as usize);
    let seen = slot();
    let s = seen.clone();
    mm.arm(On::Pin, move |fd| {
        *s.lock().unwrap() = Some(fd.copy(dst, ioas, APERTURE, PAGE, APERTURE, FIXED_RW));
    });
    assert_eq!(fd.map_fixed(ioas, buf.addr(), PAGE, APERTURE), Ok(APERTURE));
    assert!(mm.fired());
    assert_eq!(take(&seen), Err(Errno::NOENT));
    assert_eq!(fd.unmap(dst, 0, u64::MAX), Ok(0));
    // Once the map returned the area can be copied.
    assert_eq!(
        fd.copy(dst, ioas, APERTURE, PAGE, APERTURE, FIXED_RW),
        Ok(APERTURE)
    );
}

// ---- IOMMU_IOAS_UNMAP ---------------------------------------------------------

#[test]
fn unmap_whose_response_cannot_be_written_is_efault_after_unmapping() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    mock_domain(&fd, ioas, 0).expect("mock domain");
    let buf = buffer(PAGE as usize);
    fd.map_fixed(ioas, buf.addr(), PAGE, APERTURE).expect("map");
    let mut cmd = IoasUnmap::new_zeroed();
    cmd.ioas_id = ioas;
    cmd.iova = APERTURE;
    cmd.length = PAGE;
    assert_eq!(ioctl_ro(&fd, cmd), Err(Errno::FAULT));
    assert_eq!(pins(buf.addr()), 0);
    assert_eq!(fd.unmap(ioas, APERTURE, PAGE), Err(Errno::NOENT));
}

#[test]
fn unmap_of_an_area_whose_domains_are_being_populated_is_ebusy() {
    let (fd, mm) = hooked(None);
    let ioas = fd.ioas_alloc();
    mock_domain(&fd, ioas, 0).expect("mock domain");
    let buf = buffer(PAGE as usize);
    let seen = slot();
    let s = seen.clone();
    mm.arm(On::Pin, move |fd| {
        *s.lock().unwrap() = Some((fd.unmap(ioas, APERTURE, PAGE), fd.unmap(ioas, 0, u64::MAX)));
    });
    assert_eq!(fd.map_fixed(ioas, buf.addr(), PAGE, APERTURE), Ok(APERTURE));
    assert_eq!(take(&seen), (Err(Errno::BUSY), Err(Errno::BUSY)));
    assert_eq!(pins(buf.addr()), 1);
    assert_eq!(fd.unmap(ioas, 0, u64::MAX), Ok(PAGE));
    assert_eq!(pins(buf.addr()), 0);
}

// ---- IOMMU_OPTION -------------------------------------------------------------

#[test]
fn option_get_whose_value_cannot_be_written_is_efault() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    let cmd = option_cmd(IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, ioas, 7);
    assert_eq!(ioctl_ro(&fd, cmd), Err(Errno::FAULT));
    let cmd = option_cmd(IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_OP_GET, 0, 7);
    assert_eq!(ioctl_ro(&fd, cmd), Err(Errno::FAULT));
    assert_eq!(huge_pages(&fd, ioas), 1);
}

#[test]
fn option_set_whose_value_cannot_be_written_is_efault_but_set() {
    let fd = Fd::open_with_caps("+sys_resource");
    // RLIMIT_MODE on an empty context: set to MM, then the write-back faults.
    let cmd = option_cmd(IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_OP_SET, 0, 1);
    assert_eq!(ioctl_ro(&fd, cmd), Err(Errno::FAULT));
    assert_eq!(
        fd.option(IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_OP_GET, 0, 0),
        Ok(1)
    );
    let ioas = fd.ioas_alloc();
    let cmd = option_cmd(IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_SET, ioas, 0);
    assert_eq!(ioctl_ro(&fd, cmd), Err(Errno::FAULT));
    assert_eq!(huge_pages(&fd, ioas), 0);
    assert_eq!(fd.ranges(ioas), Ok((vec![(0, u64::MAX)], PAGE)));
}

#[test]
fn rlimit_mode_set_while_an_object_is_under_construction_is_ebusy() {
    let (fd, mm) = hooked(None);
    let seen = slot();
    let s = seen.clone();
    // The only entry of the table is the ID IOAS_ALLOC reserved.
    mm.arm(On::Write, move |fd| {
        *s.lock().unwrap() = Some(fd.option(IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_OP_SET, 0, 1));
    });
    let ioas = fd.ioas_alloc();
    assert_eq!(take(&seen), Err(Errno::BUSY));
    assert_eq!(
        fd.option(IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_OP_GET, 0, 0),
        Ok(0)
    );
    fd.destroy(ioas).expect("destroy");
    assert_eq!(
        fd.option(IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_OP_SET, 0, 1),
        Ok(1)
    );
}

#[test]
fn huge_pages_disable_when_already_disabled_succeeds_before_the_domain_check() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    assert_eq!(
        fd.option(IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_SET, ioas, 0),
        Ok(0)
    );
    mock_domain(&fd, ioas, 0).expect("mock domain");
    let buf = buffer(PAGE as usize);
    fd.map_fixed(ioas, buf.addr(), PAGE, APERTURE).expect("map");
    // Domains and areas now, but disabling again is a no-op, not EINVAL.
    assert_eq!(
        fd.option(IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_SET, ioas, 0),
        Ok(0)
    );
    // Enabling never fails; disabling then is EINVAL.
    assert_eq!(
        fd.option(IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_SET, ioas, 1),
        Ok(1)
    );
    assert_eq!(
        fd.option(IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_SET, ioas, 0),
        Err(Errno::INVAL)
    );
    assert_eq!(huge_pages(&fd, ioas), 1);
}

// ---- access commands (IOMMU_TEST_OP_ACCESS_*) ----------------------------------

#[test]
fn access_pages_and_rw_on_an_area_whose_domains_are_being_populated_are_enoent() {
    let (fd, mm) = hooked(None);
    let ioas = fd.ioas_alloc();
    mock_domain(&fd, ioas, 0).expect("mock domain");
    let afd = create_access(&fd, ioas);
    let buf = buffer(PAGE as usize);
    let seen = slot();
    let s = seen.clone();
    mm.arm(On::Pin, move |fd| {
        let pages = TestAccessPages {
            flags: 0,
            out_access_pages_id: 0,
            iova: APERTURE,
            length: PAGE,
            uptr: 0,
        };
        let mut data = [0u8; 16];
        let rw = TestAccessRw {
            iova: APERTURE,
            length: 16,
            uptr: data.as_mut_ptr() as u64,
            ..FromZeros::new_zeroed()
        };
        *s.lock().unwrap() = Some((test_cmd(fd, afd, &pages), test_cmd(fd, afd, &rw)));
    });
    assert_eq!(fd.map_fixed(ioas, buf.addr(), PAGE, APERTURE), Ok(APERTURE));
    assert_eq!(take(&seen), (Err(Errno::NOENT), Err(Errno::NOENT)));
    // Only the domain's pin.
    assert_eq!(pins(buf.addr()), 1);
    close(afd);
    assert_eq!(fd.unmap(ioas, 0, u64::MAX), Ok(PAGE));
}
