//! `IOMMU_TEST_CMD`: the selftest's introspection and in-kernel-user ops.
//!
//! Reserved ranges, pin-count checks, selftest access objects (each a real fd
//! whose number is the handle for later ops), and the mock-device ops: create,
//! attach and replace mock devices, inspect mock domains, mark dirty pages,
//! trigger page faults. The mock driver itself is reached through
//! [`SelftestDriver`], which the embedder provides.
//!
//! Kernel: `drivers/iommu/iommufd/selftest.c`, `iommufd_test.h` (v6.12).

use crate::sync::atomic::Ordering;
use crate::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::any::Any;

use iommu::fault::{IopfFault, FAULT_LAST_PAGE, FAULT_PASID_VALID};
use iommu::{Device, Domain};
use uapi::{
    Errno, TestAccessPages, TestAccessReplaceIoas, TestAccessRw, TestAddReserved, TestCheckIotlb,
    TestCheckMap, TestCheckRefs, TestCmd, TestCreateAccess, TestDestroyAccessPages, TestDirty,
    TestMemoryLimit, TestMockDomain, TestMockDomainFlags, TestMockDomainReplace, TestTriggerIopf,
    IOMMU_TEST_OP_ACCESS_PAGES, IOMMU_TEST_OP_ACCESS_REPLACE_IOAS, IOMMU_TEST_OP_ACCESS_RW,
    IOMMU_TEST_OP_ADD_RESERVED, IOMMU_TEST_OP_CREATE_ACCESS, IOMMU_TEST_OP_DESTROY_ACCESS_PAGES,
    IOMMU_TEST_OP_DIRTY, IOMMU_TEST_OP_MD_CHECK_IOTLB, IOMMU_TEST_OP_MD_CHECK_MAP,
    IOMMU_TEST_OP_MD_CHECK_REFS, IOMMU_TEST_OP_MOCK_DOMAIN, IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS,
    IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT,
    IOMMU_TEST_OP_TRIGGER_IOPF, MOCK_ACCESS_RW_SLOW_PATH, MOCK_ACCESS_RW_WRITE,
    MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES, MOCK_FLAGS_ACCESS_SYZ, MOCK_FLAGS_ACCESS_WRITE,
};

use crate::access::{AccessHandle, AccessOps};
use crate::ctx::Ctx;
use crate::device::{self, Idev};
use crate::hwpt::{HwptNested, HwptPaging};
use crate::ioas::Ioas;
use crate::iopt::{IoPagetable, ResvOwner};
use crate::mm::{FileOps, PAGE_SIZE};
use crate::object::{ObjKind, ObjType, Object};
use crate::ucmd::Ucmd;

/// The mock IO page size (`MOCK_IO_PAGE_SIZE`).
const MOCK_IO_PAGE_SIZE: u64 = 2048;

/// What `IOMMU_TEST_CMD` needs from the mock IOMMU driver (`selftest.c`'s side of
/// the mock, which the kernel builds into iommufd). The embedder provides it.
pub trait SelftestDriver: Send + Sync {
    /// Creates and probes a mock device (`mock_dev_create`).
    ///
    /// # Errors
    /// `EINVAL` for unknown device flags.
    fn create_device(&self, flags: u32) -> Result<Arc<Device>, Errno>;

    /// Removes a mock device (`mock_dev_destroy`).
    fn destroy_device(&self, dev: &Arc<Device>);

    /// Whether `dev` is a mock device.
    fn is_mock_device(&self, dev: &Device) -> bool;

    /// The PA the mock paging domain maps at `iova`; `Err(EINVAL)` if `domain` is
    /// not a mock paging domain.
    ///
    /// # Errors
    /// `EINVAL` for a foreign domain.
    fn lookup(&self, domain: &dyn Domain, iova: u64) -> Result<Option<u64>, Errno>;

    /// Whether dirty tracking is on in a mock paging domain.
    ///
    /// # Errors
    /// `EINVAL` for a foreign domain.
    fn dirty_tracking(&self, domain: &dyn Domain) -> Result<bool, Errno>;

    /// Marks the mock IO page with index `index` dirty; false if absent.
    ///
    /// # Errors
    /// `EINVAL` for a foreign domain.
    fn mark_dirty(&self, domain: &dyn Domain, index: u64) -> Result<bool, Errno>;

    /// IOTLB entry `id` of a mock nested domain, if `id` is valid.
    ///
    /// # Errors
    /// `EINVAL` for a foreign domain.
    fn iotlb(&self, domain: &dyn Domain, id: u32) -> Result<Option<u32>, Errno>;
}

/// A selftest object: a mock device bound and attached (`struct selftest_obj`).
pub(crate) struct SelftestObj {
    idev: Arc<Object>,
    dev: Arc<Device>,
    driver: Arc<dyn SelftestDriver>,
}

impl SelftestObj {
    /// Destroy hook (`iommufd_selftest_destroy`): detach, unbind, remove the device.
    pub(crate) fn destroy(&self, ictx: &Ctx) {
        device::device_detach(ictx, &self.idev);
        device::device_unbind(ictx, &self.idev);
        self.driver.destroy_device(&self.dev);
    }
}

fn selftest_driver(ictx: &Ctx) -> Result<Arc<dyn SelftestDriver>, Errno> {
    ictx.env().selftest.clone().ok_or(Errno::NODEV)
}

/// Largest length ACCESS_PAGES and ACCESS_RW accept (a syzkaller guard).
const MAX_ACCESS_LEN: u64 = 16 * 1024 * 1024;

/// `iommufd_test_memory_limit`: the cap on temporary batch memory. Results never
/// depend on it; it is kept so the selftest can set and restore it.
static TEMP_MEMORY_LIMIT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(65536);

/// The current temporary-memory limit in bytes.
pub fn temp_memory_limit() -> u32 {
    TEMP_MEMORY_LIMIT.load(Ordering::Relaxed)
}

/// `iommufd_test`.
pub(crate) fn test_cmd(ucmd: &Ucmd<'_>, cmd: &mut TestCmd) -> Result<(), Errno> {
    match cmd.op {
        IOMMU_TEST_OP_ADD_RESERVED => {
            let p: TestAddReserved = cmd.payload_as();
            add_reserved(ucmd.ictx, cmd.id, p.start, p.length)
        }
        IOMMU_TEST_OP_MD_CHECK_REFS => {
            let p: TestCheckRefs = cmd.payload_as();
            check_refs(ucmd, p.uptr, p.length, p.refs)
        }
        IOMMU_TEST_OP_CREATE_ACCESS => create_access(ucmd, cmd),
        IOMMU_TEST_OP_ACCESS_REPLACE_IOAS => {
            let p: TestAccessReplaceIoas = cmd.payload_as();
            let file = get_staccess(ucmd.ictx, cmd.id)?;
            staccess(&file).handle()?.replace(p.ioas_id)
        }
        IOMMU_TEST_OP_ACCESS_PAGES => access_pages(ucmd, cmd),
        IOMMU_TEST_OP_ACCESS_RW => access_rw(ucmd, cmd),
        IOMMU_TEST_OP_DESTROY_ACCESS_PAGES => {
            let p: TestDestroyAccessPages = cmd.payload_as();
            destroy_access_pages(ucmd.ictx, cmd.id, p.access_pages_id)
        }
        IOMMU_TEST_OP_MOCK_DOMAIN | IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS => mock_domain(ucmd, cmd),
        IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE => mock_domain_replace(ucmd, cmd),
        IOMMU_TEST_OP_MD_CHECK_MAP => {
            let p: TestCheckMap = cmd.payload_as();
            check_map(ucmd, cmd.id, p.iova, p.length, p.uptr)
        }
        IOMMU_TEST_OP_MD_CHECK_IOTLB => {
            let p: TestCheckIotlb = cmd.payload_as();
            check_iotlb(ucmd.ictx, cmd.id, p.id, p.iotlb)
        }
        IOMMU_TEST_OP_DIRTY => dirty(ucmd, cmd),
        IOMMU_TEST_OP_TRIGGER_IOPF => trigger_iopf(ucmd.ictx, cmd),
        IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT => {
            let p: TestMemoryLimit = cmd.payload_as();
            if (p.limit as usize) < core::mem::size_of::<u64>() + core::mem::size_of::<u32>() {
                return Err(Errno::INVAL);
            }
            TEMP_MEMORY_LIMIT.store(p.limit, Ordering::Relaxed);
            Ok(())
        }
        _ => Err(Errno::OPNOTSUPP),
    }
}

/// `IOMMU_TEST_OP_ADD_RESERVED`.
fn add_reserved(ictx: &Ctx, ioas_id: u32, start: u64, length: u64) -> Result<(), Errno> {
    if length == 0 {
        return Err(Errno::INVAL);
    }
    let last = start.checked_add(length - 1).ok_or(Errno::OVERFLOW)?;
    let ioas = ictx.get::<Ioas>(ioas_id)?;
    let mut st = ioas.iopt.iova_write();
    IoPagetable::reserve_iova(&mut st, start, last, ResvOwner::Test)
}

/// `IOMMU_TEST_OP_MD_CHECK_REFS`: every page of the range has `refs` pins.
fn check_refs(ucmd: &Ucmd<'_>, uptr: u64, length: u64, refs: u32) -> Result<(), Errno> {
    if !length.is_multiple_of(PAGE_SIZE)
        || !uptr.is_multiple_of(PAGE_SIZE)
        || uptr.checked_add(length).is_none()
    {
        return Err(Errno::INVAL);
    }
    for page in 0..length / PAGE_SIZE {
        match ucmd.mm().pin_count(uptr + page * PAGE_SIZE)? {
            Some(count) if count != refs => return Err(Errno::IO),
            _ => {}
        }
    }
    Ok(())
}

/// Rewrites a syzkaller-style IOVA (`{u32 nth_area, u32 offset}`) against `iopt`.
fn syz_conv(nth_area_iova: impl FnOnce(u32) -> Option<u64>, iova: u64) -> u64 {
    let nth = iova as u32;
    let offset = iova >> 32;
    nth_area_iova(nth).map_or(0, |base| base.wrapping_add(offset))
}

/// `iommufd_test_syz_conv_iova_id`: the IOAS_COPY source IOVA in syzkaller mode.
pub(crate) fn syz_conv_iova_id(ictx: &Ctx, ioas_id: u32, iova: &mut u64, flags: &mut u32) {
    if *flags & MOCK_FLAGS_ACCESS_SYZ == 0 {
        return;
    }
    *flags &= !MOCK_FLAGS_ACCESS_SYZ;
    let Ok(ioas) = ictx.get::<Ioas>(ioas_id) else {
        return;
    };
    *iova = syz_conv(|nth| ioas.iopt.nth_area_iova(nth), *iova);
}

// ---- selftest access objects ---------------------------------------------

/// One pinned range of a selftest access.
struct Item {
    iova: u64,
    length: u64,
    id: u32,
}

#[derive(Default)]
struct Items {
    list: Vec<Item>,
    next_id: u32,
}

/// The `[iommufd_test_staccess]` file: an access plus the ranges it pinned.
pub(crate) struct Staccess {
    needs_pin_pages: bool,
    items: Mutex<Items>,
    access: OnceLock<AccessHandle>,
}

impl Staccess {
    fn lock(&self) -> MutexGuard<'_, Items> {
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn handle(&self) -> Result<&AccessHandle, Errno> {
        self.access.get().ok_or(Errno::BADFD)
    }
}

impl AccessOps for Staccess {
    fn needs_pin_pages(&self) -> bool {
        self.needs_pin_pages
    }

    /// `iommufd_test_access_unmap`: unpins and forgets every intersecting item.
    fn unmap(&self, iova: u64, length: u64) {
        let Some(access) = self.access.get() else {
            return;
        };
        let last = iova.saturating_add(length.saturating_sub(1));
        let mut items = self.lock();
        items.list.retain(|item| {
            let item_last = item.iova + (item.length - 1);
            if iova > item_last || last < item.iova {
                return true;
            }
            access.unpin_pages(item.iova, item.length);
            false
        });
    }
}

impl FileOps for Staccess {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Drop for Staccess {
    /// `iommufd_test_staccess_release`.
    fn drop(&mut self) {
        if self.access.get().is_some() {
            self.unmap(0, u64::MAX);
        }
        if let Some(access) = self.access.take() {
            access.destroy();
        }
    }
}

/// `iommufd_access_get`: the staccess behind an fd.
///
/// # Errors
/// `EBADFD` if the fd is not open or not a selftest access.
fn get_staccess(ictx: &Ctx, fd: u32) -> Result<Arc<dyn FileOps>, Errno> {
    let fd = i32::try_from(fd).map_err(|_| Errno::BADFD)?;
    let file = ictx.env().files.get(fd).ok_or(Errno::BADFD)?;
    if file.as_any().downcast_ref::<Staccess>().is_none() {
        return Err(Errno::BADFD);
    }
    Ok(file)
}

fn staccess(file: &Arc<dyn FileOps>) -> &Staccess {
    match file.as_any().downcast_ref::<Staccess>() {
        Some(s) => s,
        None => unreachable!("get_staccess checked the file type"),
    }
}

/// `IOMMU_TEST_OP_CREATE_ACCESS`.
fn create_access(ucmd: &Ucmd<'_>, cmd: &mut TestCmd) -> Result<(), Errno> {
    let mut p: TestCreateAccess = cmd.payload_as();
    if p.flags & !MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES != 0 {
        return Err(Errno::OPNOTSUPP);
    }
    let files = &ucmd.ictx.env().files;
    fault::fail_point!(fault::Site::Kmalloc, Errno::NOMEM);
    let staccess = Arc::new(Staccess {
        needs_pin_pages: p.flags & MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES != 0,
        items: Mutex::new(Items::default()),
        access: OnceLock::new(),
    });
    let fd = files.reserve_fd().map_err(|_| Errno::NOMEM)?;
    let ops: Arc<dyn AccessOps> = staccess.clone();
    let access = match AccessHandle::create(ucmd.file, &ops) {
        Ok(access) => access,
        Err(err) => {
            files.unreserve_fd(fd);
            return Err(err);
        }
    };
    p.out_access_fd = fd as u32;
    cmd.set_payload(&p);
    if let Err(err) = access.attach(cmd.id).and_then(|()| ucmd.respond(cmd)) {
        access.destroy();
        files.unreserve_fd(fd);
        return Err(err);
    }
    if staccess.access.set(access).is_err() {
        unreachable!("a new staccess has no access yet");
    }
    files.install(fd, staccess);
    Ok(())
}

/// `IOMMU_TEST_OP_ACCESS_PAGES`.
fn access_pages(ucmd: &Ucmd<'_>, cmd: &mut TestCmd) -> Result<(), Errno> {
    let mut p: TestAccessPages = cmd.payload_as();
    if p.length > MAX_ACCESS_LEN {
        return Err(Errno::NOMEM);
    }
    if p.flags & !(MOCK_FLAGS_ACCESS_WRITE | MOCK_FLAGS_ACCESS_SYZ) != 0 {
        return Err(Errno::OPNOTSUPP);
    }
    let file = get_staccess(ucmd.ictx, cmd.id)?;
    let sa = staccess(&file);
    let access = sa.handle()?;
    if !sa.needs_pin_pages {
        return Err(Errno::OPNOTSUPP);
    }
    let mut iova = p.iova;
    if p.flags & MOCK_FLAGS_ACCESS_SYZ != 0 {
        iova = syz_conv(|nth| access.nth_area_iova(nth), p.iova);
    }
    fault::fail_point!(fault::Site::Kmalloc, Errno::NOMEM);
    let mut items = sa.lock();
    let pas = access.pin_pages(iova, p.length, p.flags & MOCK_FLAGS_ACCESS_WRITE != 0)?;
    if p.uptr != 0 {
        let uptr = p.uptr.wrapping_sub(iova % PAGE_SIZE);
        if let Err(err) = check_pages(ucmd, uptr, &pas) {
            access.unpin_pages(iova, p.length);
            return Err(err);
        }
    }
    if fault::should_fail(fault::Site::Kmalloc) {
        access.unpin_pages(iova, p.length);
        return Err(Errno::NOMEM);
    }
    let id = items.next_id;
    items.next_id = items.next_id.wrapping_add(1);
    items.list.push(Item {
        iova,
        length: p.length,
        id,
    });
    p.out_access_pages_id = id;
    cmd.set_payload(&p);
    if let Err(err) = ucmd.respond(cmd) {
        items.list.pop();
        access.unpin_pages(iova, p.length);
        return Err(err);
    }
    Ok(())
}

/// `iommufd_test_check_pages`: each pinned page is the page backing the user VA.
fn check_pages(ucmd: &Ucmd<'_>, uptr: u64, pas: &[u64]) -> Result<(), Errno> {
    for (i, &pa) in pas.iter().enumerate() {
        let page = ucmd.mm().resolve(uptr.wrapping_add(i as u64 * PAGE_SIZE))?;
        if page != pa {
            return Err(Errno::BADE);
        }
    }
    Ok(())
}

/// `IOMMU_TEST_OP_ACCESS_RW`.
fn access_rw(ucmd: &Ucmd<'_>, cmd: &mut TestCmd) -> Result<(), Errno> {
    let p: TestAccessRw = cmd.payload_as();
    if p.length > MAX_ACCESS_LEN {
        return Err(Errno::NOMEM);
    }
    if p.flags & !(MOCK_ACCESS_RW_WRITE | MOCK_ACCESS_RW_SLOW_PATH | MOCK_FLAGS_ACCESS_SYZ) != 0 {
        return Err(Errno::OPNOTSUPP);
    }
    let file = get_staccess(ucmd.ictx, cmd.id)?;
    let access = staccess(&file).handle()?;
    fault::fail_point!(fault::Site::Kmalloc, Errno::NOMEM);
    let mut buf = vec![0u8; p.length as usize];
    let write = p.flags & MOCK_ACCESS_RW_WRITE != 0;
    if write {
        ucmd.mm().read(p.uptr, &mut buf)?;
    }
    let mut iova = p.iova;
    if p.flags & MOCK_FLAGS_ACCESS_SYZ != 0 {
        iova = syz_conv(|nth| access.nth_area_iova(nth), p.iova);
    }
    access.rw(
        iova,
        &mut buf,
        p.flags & (MOCK_ACCESS_RW_WRITE | MOCK_ACCESS_RW_SLOW_PATH),
    )?;
    if !write {
        ucmd.mm().write(p.uptr, &buf)?;
    }
    Ok(())
}

/// `IOMMU_TEST_OP_DESTROY_ACCESS_PAGES`.
fn destroy_access_pages(ictx: &Ctx, fd: u32, item_id: u32) -> Result<(), Errno> {
    let file = get_staccess(ictx, fd)?;
    let sa = staccess(&file);
    let access = sa.handle()?;
    let mut items = sa.lock();
    let pos = items
        .list
        .iter()
        .position(|item| item.id == item_id)
        .ok_or(Errno::NOENT)?;
    let item = items.list.remove(pos);
    access.unpin_pages(item.iova, item.length);
    Ok(())
}

// ---- mock devices ----------------------------------------------------------

/// `IOMMU_TEST_OP_MOCK_DOMAIN(_FLAGS)`: create a mock device, bind it and attach
/// it to `cmd.id`.
fn mock_domain(ucmd: &Ucmd<'_>, cmd: &mut TestCmd) -> Result<(), Errno> {
    let ictx = ucmd.ictx;
    let resv = ictx.reserve()?;
    let flags = if cmd.op == IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS {
        cmd.payload_as::<TestMockDomainFlags>().dev_flags
    } else {
        0
    };
    let driver = selftest_driver(ictx)?;
    let dev = driver.create_device(flags)?;
    let idev = match device::device_bind(ucmd.file, &dev) {
        Ok(idev) => idev,
        Err(err) => {
            driver.destroy_device(&dev);
            return Err(err);
        }
    };
    let mut pt_id = cmd.id;
    let res = device::device_attach(ictx, &idev, &mut pt_id).and_then(|()| {
        let out = TestMockDomain {
            out_stdev_id: resv.id(),
            out_hwpt_id: pt_id,
            out_idev_id: idev.id(),
        };
        cmd.set_payload(&out);
        ucmd.respond(cmd)
            .inspect_err(|_| device::device_detach(ictx, &idev))
    });
    if let Err(err) = res {
        device::device_unbind(ictx, &idev);
        driver.destroy_device(&dev);
        return Err(err);
    }
    let obj = resv.object(ObjKind::Selftest(SelftestObj { idev, dev, driver }));
    resv.finalize(&obj);
    Ok(())
}

/// `IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE`.
fn mock_domain_replace(ucmd: &Ucmd<'_>, cmd: &mut TestCmd) -> Result<(), Errno> {
    let sobj = ucmd.ictx.get::<SelftestObj>(cmd.id)?;
    let mut p: TestMockDomainReplace = cmd.payload_as();
    device::device_replace(ucmd.ictx, &sobj.idev, &mut p.pt_id)?;
    cmd.set_payload(&p);
    ucmd.respond(cmd)
}

/// `IOMMU_TEST_OP_MD_CHECK_MAP`: the domain maps exactly the pages backing `uptr`.
fn check_map(
    ucmd: &Ucmd<'_>,
    hwpt_id: u32,
    mut iova: u64,
    length: u64,
    mut uptr: u64,
) -> Result<(), Errno> {
    if !iova.is_multiple_of(MOCK_IO_PAGE_SIZE)
        || !length.is_multiple_of(MOCK_IO_PAGE_SIZE)
        || !uptr.is_multiple_of(MOCK_IO_PAGE_SIZE)
        || uptr.checked_add(length).is_none()
    {
        return Err(Errno::INVAL);
    }
    let hwpt = ucmd.ictx.get::<HwptPaging>(hwpt_id)?;
    let driver = selftest_driver(ucmd.ictx)?;
    driver.lookup(hwpt.domain.as_ref(), iova)?;
    for _ in 0..length / MOCK_IO_PAGE_SIZE {
        let page = ucmd.mm().resolve(uptr & !(PAGE_SIZE - 1))?;
        let expected = page + uptr % PAGE_SIZE;
        if driver.lookup(hwpt.domain.as_ref(), iova)? != Some(expected) {
            return Err(Errno::INVAL);
        }
        iova += MOCK_IO_PAGE_SIZE;
        uptr += MOCK_IO_PAGE_SIZE;
    }
    Ok(())
}

/// `IOMMU_TEST_OP_MD_CHECK_IOTLB`.
fn check_iotlb(ictx: &Ctx, hwpt_id: u32, id: u32, value: u32) -> Result<(), Errno> {
    let hwpt = ictx.get::<HwptNested>(hwpt_id)?;
    let driver = selftest_driver(ictx)?;
    match driver.iotlb(hwpt.domain.as_ref(), id)? {
        Some(v) if v == value => Ok(()),
        _ => Err(Errno::INVAL),
    }
}

/// `IOMMU_TEST_OP_DIRTY`: marks the IO pages of set bits dirty.
fn dirty(ucmd: &Ucmd<'_>, cmd: &mut TestCmd) -> Result<(), Errno> {
    let mut p: TestDirty = cmd.payload_as();
    if p.page_size == 0
        || p.length == 0
        || !p.iova.is_multiple_of(p.page_size)
        || !p.length.is_multiple_of(p.page_size)
        || p.uptr == 0
    {
        return Err(Errno::INVAL);
    }
    let max = p.length / p.page_size;
    if max > (16 << 20) * 8 {
        return Err(Errno::OVERFLOW);
    }
    let hwpt = ucmd.ictx.get::<HwptPaging>(cmd.id)?;
    let driver = selftest_driver(ucmd.ictx)?;
    if !driver.dirty_tracking(hwpt.domain.as_ref())? {
        return Err(Errno::INVAL);
    }
    fault::fail_point!(fault::Site::Kmalloc, Errno::NOMEM);
    let mut bits = vec![0u8; max.div_ceil(8) as usize];
    ucmd.mm().read(p.uptr, &mut bits)?;
    let mut count = 0u64;
    for i in 0..max {
        if bits[(i / 8) as usize] & (1 << (i % 8)) == 0 {
            continue;
        }
        // The kernel indexes its 2 KiB-entry xarray by `iova / page_size`.
        let cur = p.iova + i * p.page_size;
        if driver.mark_dirty(hwpt.domain.as_ref(), cur / p.page_size)? {
            count += 1;
        }
    }
    p.out_nr_dirty = count;
    cmd.set_payload(&p);
    ucmd.respond(cmd)
}

/// `IOMMU_TEST_OP_TRIGGER_IOPF`: reports one page request from a mock device.
fn trigger_iopf(ictx: &Ctx, cmd: &TestCmd) -> Result<(), Errno> {
    let p: TestTriggerIopf = cmd.payload_as();
    let idev_obj = ictx.get_object(p.dev_id, Some(ObjType::Device))?;
    let Some(idev) = idev_obj.get::<Idev>() else {
        return Err(Errno::NOENT);
    };
    let driver = selftest_driver(ictx)?;
    if !driver.is_mock_device(idev.device()) {
        return Err(Errno::INVAL);
    }
    let mut flags = FAULT_LAST_PAGE;
    if p.pasid != iommu::NO_PASID {
        flags |= FAULT_PASID_VALID;
    }
    let fault = IopfFault {
        flags,
        pasid: p.pasid,
        grpid: p.grpid,
        perm: p.perm,
        addr: p.addr,
    };
    // The kernel ignores the result: an unhandled fault is answered INVALID.
    let _ = iommu::fault::report_device_fault(idev.device(), fault);
    Ok(())
}
