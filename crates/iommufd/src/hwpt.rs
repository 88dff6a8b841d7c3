//! HW page tables: paging HWPTs (a domain mirroring an IOAS) and nested HWPTs (a
//! user-managed stage on a paging parent), and their ioctls: HWPT_ALLOC,
//! GET_HW_INFO, SET_DIRTY_TRACKING, GET_DIRTY_BITMAP, INVALIDATE.
//!
//! A paging HWPT is created under its IOAS's `hwpt_list` lock and added to the
//! io_pagetable before it is finalized, so its domain is fully populated before
//! anyone can see it. Automatic HWPTs (created by attaching a device to an IOAS)
//! are destroyed when their last device leaves.
//!
//! Kernel: `drivers/iommu/iommufd/hw_pagetable.c`, `device.c`
//! (`iommufd_get_hw_info`), `io_pagetable.c` (dirty tracking), v6.12.

use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::{Arc, MutexGuard, OnceLock};

use iommu::fault::IopfHandler;
use iommu::ops::alloc_flags;
use iommu::{Cap, Domain, DomainType, UserData, UserDataArray, UserRead};
use uapi::{
    Errno, HwInfo, HwptAlloc, HwptGetDirtyBitmap, HwptInvalidate, HwptSetDirtyTracking,
    IOMMU_HWPT_ALLOC_DIRTY_TRACKING, IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_DATA_NONE,
    IOMMU_HWPT_DIRTY_TRACKING_ENABLE, IOMMU_HWPT_FAULT_ID_VALID,
    IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR, IOMMU_HW_CAP_DIRTY_TRACKING, IOMMU_HW_CAP_PCI_PASID_EXEC,
    IOMMU_HW_CAP_PCI_PASID_PRIV, IOMMU_HW_INFO_FLAG_INPUT_TYPE, IOMMU_HW_INFO_TYPE_DEFAULT,
    IOMMU_HW_INFO_TYPE_NONE,
};

use crate::ctx::{Ctx, Reservation};
use crate::device::Idev;
use crate::fault::Fault;
use crate::ioas::Ioas;
use crate::mm::{UserMemory, PAGE_SIZE};
use crate::object::{ObjKind, ObjType, Object};
use crate::ucmd::Ucmd;

/// `IOMMU_HWPT_INVALIDATE_ENTRY_NUM_MAX` of the 6.12.117 tree.
const INVALIDATE_ENTRY_NUM_MAX: u32 = 1 << 19;

/// A paging HWPT (`struct iommufd_hwpt_paging`).
pub(crate) struct HwptPaging {
    pub(crate) domain: Arc<dyn Domain>,
    ioas: Arc<Object>,
    pub(crate) auto_domain: AtomicBool,
    nest_parent: bool,
    enforce_cache_coherency: AtomicBool,
    pub(crate) msi_cookie: AtomicBool,
    /// Added to the IOAS (`hwpt_item` on its list, domain in its io_pagetable).
    in_ioas: AtomicBool,
    fault: OnceLock<Arc<Object>>,
}

/// A nested HWPT (`struct iommufd_hwpt_nested`).
pub(crate) struct HwptNested {
    pub(crate) domain: Arc<dyn Domain>,
    parent: Arc<Object>,
    fault: OnceLock<Arc<Object>>,
}

impl HwptPaging {
    /// The IOAS object this HWPT mirrors.
    pub(crate) fn ioas_obj(&self) -> &Arc<Object> {
        &self.ioas
    }

    /// The IOAS this HWPT mirrors.
    pub(crate) fn ioas(&self) -> &Ioas {
        match self.ioas.get::<Ioas>() {
            Some(ioas) => ioas,
            None => unreachable!("paging HWPT on a non-IOAS object"),
        }
    }

    /// Destroy hook (`iommufd_hwpt_paging_destroy`).
    pub(crate) fn destroy(&self) {
        if self.in_ioas.swap(false, Ordering::AcqRel) {
            let ioas = self.ioas();
            ioas.hwpt_list
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|o| !same_domain(domain_of(o), &self.domain));
            ioas.iopt.remove_domain(&self.domain);
        }
        self.release_refs();
    }

    fn release_refs(&self) {
        if let Some(fault) = self.fault.get() {
            fault.users_dec();
        }
        self.ioas.users_dec();
    }
}

impl HwptNested {
    /// The paging HWPT this one nests on.
    pub(crate) fn parent(&self) -> &Arc<Object> {
        &self.parent
    }

    /// Destroy hook (`iommufd_hwpt_nested_destroy`).
    pub(crate) fn destroy(&self) {
        if let Some(fault) = self.fault.get() {
            fault.users_dec();
        }
        self.parent.users_dec();
    }
}

fn same_domain(a: &Arc<dyn Domain>, b: &Arc<dyn Domain>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

/// The domain of a HWPT object.
pub(crate) fn domain_of(obj: &Arc<Object>) -> &Arc<dyn Domain> {
    match &obj.kind {
        ObjKind::HwptPaging(h) => &h.domain,
        ObjKind::HwptNested(h) => &h.domain,
        _ => unreachable!("not a HWPT object"),
    }
}

/// The fault object of a HWPT, if it takes I/O page faults.
pub(crate) fn fault_of(obj: &Arc<Object>) -> Option<&Arc<Object>> {
    match &obj.kind {
        ObjKind::HwptPaging(h) => h.fault.get(),
        ObjKind::HwptNested(h) => h.fault.get(),
        _ => None,
    }
}

/// The paging HWPT behind a HWPT: itself, or a nested HWPT's parent (`find_hwpt_paging`).
pub(crate) fn find_paging(obj: &Arc<Object>) -> Option<&HwptPaging> {
    match &obj.kind {
        ObjKind::HwptPaging(h) => Some(h),
        ObjKind::HwptNested(h) => h.parent.get::<HwptPaging>(),
        _ => None,
    }
}

/// The fault handler a HWPT's attach handles carry.
pub(crate) fn iopf_handler(obj: &Arc<Object>) -> Option<Arc<dyn IopfHandler>> {
    fault_of(obj).map(crate::fault::handler)
}

/// Whether a paging HWPT enforces cache coherency.
pub(crate) fn enforces_cache_coherency(obj: &Arc<Object>) -> bool {
    obj.get::<HwptPaging>()
        .is_some_and(|h| h.enforce_cache_coherency.load(Ordering::Acquire))
}

/// Drops a device's reference on a HWPT; an automatic HWPT left unused is
/// destroyed (`iommufd_hw_pagetable_put`).
pub(crate) fn put(ictx: &Ctx, obj: &Arc<Object>) {
    if obj
        .get::<HwptPaging>()
        .is_some_and(|h| h.auto_domain.load(Ordering::Acquire))
    {
        ictx.put_and_try_destroy(obj);
    } else {
        obj.users_dec();
    }
}

/// Reads user memory for a driver.
struct MmRead<'a>(&'a dyn UserMemory);

impl UserRead for MmRead<'_> {
    fn read_user(&self, uptr: u64, dst: &mut [u8]) -> Result<(), Errno> {
        self.0.read(uptr, dst)
    }
}

fn idev_of(obj: &Arc<Object>) -> &Idev {
    match obj.get::<Idev>() {
        Some(idev) => idev,
        None => unreachable!("not a device object"),
    }
}

/// `iommufd_hwpt_paging_alloc`: a paging HWPT for `idev` on the IOAS, populated and
/// on the IOAS's list; the caller finalizes it or aborts with [`paging_abort`]. The
/// caller holds the IOAS's `hwpt_list` lock.
///
/// # Errors
/// `EOPNOTSUPP` (flags), driver allocation errors, `EINVAL` (coherency, alignment),
/// `EADDRINUSE`, population errors.
#[allow(clippy::too_many_arguments)]
pub(crate) fn paging_alloc<'c>(
    ictx: &'c Ctx,
    list: &mut MutexGuard<'_, Vec<Arc<Object>>>,
    ioas_obj: &Arc<Object>,
    idev_obj: &Arc<Object>,
    flags: u32,
    immediate_attach: bool,
    data: Option<&UserData<'_>>,
) -> Result<(Reservation<'c>, Arc<Object>), Errno> {
    let idev = idev_of(idev_obj);
    let ops = idev.dev.ops();
    if (flags != 0 || data.is_some()) && !ops.has_domain_alloc_user() {
        return Err(Errno::OPNOTSUPP);
    }
    if flags & !(IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_ALLOC_DIRTY_TRACKING) != 0 {
        return Err(Errno::OPNOTSUPP);
    }
    if flags & IOMMU_HWPT_ALLOC_DIRTY_TRACKING != 0 && !idev.dev.capable(Cap::DirtyTracking) {
        return Err(Errno::OPNOTSUPP);
    }
    let resv = ictx.reserve()?;
    let domain = if ops.has_domain_alloc_user() {
        ops.domain_alloc_user(&idev.dev, flags, None, data)?
    } else {
        iommu::paging_domain_alloc(&idev.dev)?
    };
    ioas_obj.users_inc();
    let hwpt = HwptPaging {
        domain: domain.clone(),
        ioas: ioas_obj.clone(),
        auto_domain: AtomicBool::new(false),
        nest_parent: flags & IOMMU_HWPT_ALLOC_NEST_PARENT != 0,
        enforce_cache_coherency: AtomicBool::new(false),
        msi_cookie: AtomicBool::new(false),
        in_ioas: AtomicBool::new(false),
        fault: OnceLock::new(),
    };
    let obj = resv.object(ObjKind::HwptPaging(hwpt));
    let res = populate(list, &obj, idev_obj, immediate_attach);
    if let Err(err) = res {
        paging_abort(list, &obj);
        return Err(err);
    }
    Ok((resv, obj))
}

/// Coherency, optional immediate attach, and adding the domain to the IOAS.
fn populate(
    list: &mut MutexGuard<'_, Vec<Arc<Object>>>,
    obj: &Arc<Object>,
    idev_obj: &Arc<Object>,
    immediate_attach: bool,
) -> Result<(), Errno> {
    let Some(hwpt) = obj.get::<HwptPaging>() else {
        unreachable!("populating a non-paging HWPT");
    };
    if idev_of(idev_obj).enforce_cache_coherency {
        if !hwpt.domain.enforce_cache_coherency() {
            return Err(Errno::INVAL);
        }
        hwpt.enforce_cache_coherency.store(true, Ordering::Release);
    }
    if immediate_attach {
        crate::device::hwpt_attach(obj, idev_obj)?;
    }
    if let Err(err) = hwpt.ioas().iopt.add_domain(&hwpt.domain) {
        if immediate_attach {
            crate::device::hwpt_detach(idev_obj);
        }
        return Err(err);
    }
    list.push(obj.clone());
    hwpt.in_ioas.store(true, Ordering::Release);
    Ok(())
}

/// Undoes [`paging_alloc`] before finalize (`iommufd_hwpt_paging_abort`), with the
/// IOAS's `hwpt_list` lock held by the caller.
pub(crate) fn paging_abort(list: &mut MutexGuard<'_, Vec<Arc<Object>>>, obj: &Arc<Object>) {
    let Some(hwpt) = obj.get::<HwptPaging>() else {
        return;
    };
    if hwpt.in_ioas.swap(false, Ordering::AcqRel) {
        list.retain(|o| !Arc::ptr_eq(o, obj));
        hwpt.ioas().iopt.remove_domain(&hwpt.domain);
    }
    hwpt.release_refs();
}

/// `iommufd_hwpt_nested_alloc`.
fn nested_alloc<'c>(
    ictx: &'c Ctx,
    parent_obj: &Arc<Object>,
    idev_obj: &Arc<Object>,
    flags: u32,
    data: &UserData<'_>,
) -> Result<(Reservation<'c>, Arc<Object>), Errno> {
    let idev = idev_of(idev_obj);
    let ops = idev.dev.ops();
    if flags & !IOMMU_HWPT_FAULT_ID_VALID != 0 || data.len == 0 || !ops.has_domain_alloc_user() {
        return Err(Errno::OPNOTSUPP);
    }
    let Some(parent) = parent_obj.get::<HwptPaging>() else {
        return Err(Errno::INVAL);
    };
    if parent.auto_domain.load(Ordering::Acquire)
        || !parent.nest_parent
        || parent.domain.core().owner() != ops.driver()
    {
        return Err(Errno::INVAL);
    }
    let resv = ictx.reserve()?;
    let domain = ops.domain_alloc_user(
        &idev.dev,
        flags & !alloc_flags::FAULT_ID_VALID,
        Some(&parent.domain),
        Some(data),
    )?;
    if domain.domain_type() != DomainType::Nested || !domain.has_cache_invalidate_user() {
        return Err(Errno::INVAL);
    }
    parent_obj.users_inc();
    let obj = resv.object(ObjKind::HwptNested(HwptNested {
        domain,
        parent: parent_obj.clone(),
        fault: OnceLock::new(),
    }));
    Ok((resv, obj))
}

/// `IOMMU_HWPT_ALLOC`.
pub(crate) fn alloc(ucmd: &Ucmd<'_>, cmd: &mut HwptAlloc) -> Result<(), Errno> {
    if cmd.__reserved != 0 {
        return Err(Errno::OPNOTSUPP);
    }
    if (cmd.data_type == IOMMU_HWPT_DATA_NONE && cmd.data_len != 0)
        || (cmd.data_type != IOMMU_HWPT_DATA_NONE && cmd.data_len == 0)
    {
        return Err(Errno::INVAL);
    }
    let ictx = ucmd.ictx;
    let idev = ictx.get_object(cmd.dev_id, Some(ObjType::Device))?;
    let pt = ictx.get_object(cmd.pt_id, None).map_err(|_| Errno::INVAL)?;
    let reader = MmRead(ucmd.mm().as_ref());
    let data = UserData {
        data_type: cmd.data_type,
        uptr: cmd.data_uptr,
        len: cmd.data_len,
        mem: &reader,
    };
    match pt.obj_type() {
        ObjType::Ioas => {
            let ioas = pt.get::<Ioas>().ok_or(Errno::INVAL)?;
            let mut list = ioas.hwpt_list.lock().unwrap_or_else(|e| e.into_inner());
            let user_data = (cmd.data_len != 0).then_some(&data);
            let (resv, obj) = paging_alloc(
                ictx,
                &mut list,
                pt.arc(),
                idev.arc(),
                cmd.flags,
                false,
                user_data,
            )?;
            finish_alloc(ucmd, cmd, resv, &obj, Some(&mut list))
        }
        ObjType::HwptPaging => {
            let (resv, obj) = nested_alloc(ictx, pt.arc(), idev.arc(), cmd.flags, &data)?;
            finish_alloc(ucmd, cmd, resv, &obj, None)
        }
        _ => Err(Errno::INVAL),
    }
}

/// Fault queue, respond, finalize; or abort.
fn finish_alloc(
    ucmd: &Ucmd<'_>,
    cmd: &mut HwptAlloc,
    resv: Reservation<'_>,
    obj: &Arc<Object>,
    list: Option<&mut MutexGuard<'_, Vec<Arc<Object>>>>,
) -> Result<(), Errno> {
    let mut res = Ok(());
    if cmd.flags & IOMMU_HWPT_FAULT_ID_VALID != 0 {
        res = ucmd.ictx.get::<Fault>(cmd.fault_id).map(|fault| {
            fault.obj().users_inc();
            let cell = match &obj.kind {
                ObjKind::HwptPaging(h) => &h.fault,
                ObjKind::HwptNested(h) => &h.fault,
                _ => unreachable!("not a HWPT object"),
            };
            let _ = cell.set(fault.obj().clone());
        });
    }
    if res.is_ok() {
        cmd.out_hwpt_id = obj.id();
        res = ucmd.respond(cmd);
    }
    match res {
        Ok(()) => {
            resv.finalize(obj);
            Ok(())
        }
        Err(err) => {
            match list {
                Some(list) => paging_abort(list, obj),
                None => obj.destroy(ucmd.ictx),
            }
            drop(resv);
            Err(err)
        }
    }
}

/// `IOMMU_GET_HW_INFO` (with the upstream input type).
pub(crate) fn get_hw_info(ucmd: &Ucmd<'_>, cmd: &mut HwInfo) -> Result<(), Errno> {
    if cmd.flags & !IOMMU_HW_INFO_FLAG_INPUT_TYPE != 0 || cmd.__reserved != [0; 3] {
        return Err(Errno::OPNOTSUPP);
    }
    let in_type = if cmd.flags & IOMMU_HW_INFO_FLAG_INPUT_TYPE != 0 {
        cmd.out_data_type
    } else {
        IOMMU_HW_INFO_TYPE_DEFAULT
    };
    let idev_obj = ucmd.ictx.get_object(cmd.dev_id, Some(ObjType::Device))?;
    let dev = &idev_of(idev_obj.arc()).dev;
    let (data, data_type) = match dev.ops().hw_info(dev, in_type) {
        None if in_type != IOMMU_HW_INFO_TYPE_DEFAULT => return Err(Errno::OPNOTSUPP),
        None => (Vec::new(), IOMMU_HW_INFO_TYPE_NONE),
        Some(info) => {
            let info = info?;
            if info.data_type == IOMMU_HW_INFO_TYPE_NONE {
                return Err(Errno::NODEV);
            }
            (info.data, info.data_type)
        }
    };
    let copy_len = (cmd.data_len as usize).min(data.len());
    let mm = ucmd.mm();
    mm.write(cmd.data_uptr, &data[..copy_len])?;
    if copy_len < cmd.data_len as usize {
        let zeros = vec![0u8; cmd.data_len as usize - copy_len];
        mm.write(cmd.data_uptr + copy_len as u64, &zeros)?;
    }
    cmd.out_data_type = data_type;
    cmd.data_len = data.len() as u32;
    cmd.out_capabilities = 0;
    if dev.capable(Cap::DirtyTracking) {
        cmd.out_capabilities |= IOMMU_HW_CAP_DIRTY_TRACKING;
    }
    cmd.out_max_pasid_log2 = 0;
    if dev.max_pasids() != 0 {
        cmd.out_max_pasid_log2 = (31 - dev.max_pasids().leading_zeros()) as u8;
        if dev.desc().is_pci() {
            if dev.desc().pasid_exec {
                cmd.out_capabilities |= IOMMU_HW_CAP_PCI_PASID_EXEC;
            }
            if dev.desc().pasid_priv {
                cmd.out_capabilities |= IOMMU_HW_CAP_PCI_PASID_PRIV;
            }
        }
    }
    ucmd.respond(cmd)
}

/// `IOMMU_HWPT_SET_DIRTY_TRACKING`.
pub(crate) fn set_dirty_tracking(
    ucmd: &Ucmd<'_>,
    cmd: &mut HwptSetDirtyTracking,
) -> Result<(), Errno> {
    if cmd.flags & !IOMMU_HWPT_DIRTY_TRACKING_ENABLE != 0 {
        return Err(Errno::OPNOTSUPP);
    }
    let hwpt = ucmd.ictx.get::<HwptPaging>(cmd.hwpt_id)?;
    let enable = cmd.flags & IOMMU_HWPT_DIRTY_TRACKING_ENABLE != 0;
    hwpt.ioas()
        .iopt
        .set_dirty_tracking(hwpt.domain.as_ref(), enable)
}

/// `IOMMU_HWPT_GET_DIRTY_BITMAP`. Errors of the walk itself are not reported
/// (the kernel discards them).
pub(crate) fn get_dirty_bitmap(ucmd: &Ucmd<'_>, cmd: &mut HwptGetDirtyBitmap) -> Result<(), Errno> {
    if cmd.flags & !IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR != 0 || cmd.__reserved != 0 {
        return Err(Errno::OPNOTSUPP);
    }
    let hwpt = ucmd.ictx.get::<HwptPaging>(cmd.hwpt_id)?;
    let bitmap = crate::iova_bitmap::IovaBitmap {
        iova: cmd.iova,
        length: cmd.length,
        page_size: cmd.page_size,
        data: cmd.data,
    };
    let no_clear = cmd.flags & IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR != 0;
    hwpt.ioas().iopt.read_and_clear_dirty(
        hwpt.domain.as_ref(),
        ucmd.mm().as_ref(),
        &bitmap,
        no_clear,
    )
}

/// `IOMMU_HWPT_INVALIDATE`: `entry_num` is always written back.
pub(crate) fn invalidate(ucmd: &Ucmd<'_>, cmd: &mut HwptInvalidate) -> Result<(), Errno> {
    let mut done = 0;
    let res = invalidate_entries(ucmd, cmd, &mut done);
    cmd.entry_num = done;
    if ucmd.respond(cmd).is_err() {
        return Err(Errno::FAULT);
    }
    res
}

fn invalidate_entries(ucmd: &Ucmd<'_>, cmd: &HwptInvalidate, done: &mut u32) -> Result<(), Errno> {
    if cmd.__reserved != 0 {
        return Err(Errno::OPNOTSUPP);
    }
    if cmd.entry_num != 0
        && (cmd.data_uptr == 0
            || cmd.entry_len == 0
            || u64::from(cmd.entry_len) > PAGE_SIZE
            || cmd.entry_num > INVALIDATE_ENTRY_NUM_MAX)
    {
        return Err(Errno::INVAL);
    }
    let hwpt = ucmd.ictx.get::<HwptNested>(cmd.hwpt_id)?;
    let reader = MmRead(ucmd.mm().as_ref());
    let mut array = UserDataArray {
        data_type: cmd.data_type,
        uptr: cmd.data_uptr,
        entry_len: cmd.entry_len,
        entry_num: cmd.entry_num,
        mem: &reader,
    };
    let res = hwpt.domain.cache_invalidate_user(&mut array);
    *done = array.entry_num;
    res
}
