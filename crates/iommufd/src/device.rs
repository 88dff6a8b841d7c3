//! Devices bound to a context and their groups: bind, attach, replace, detach.
//!
//! An [`Idev`] is a device bound to an iommufd context; its [`Igroup`] is the
//! context's view of the device's iommu_group. All devices of a group share one
//! HWPT: the first device to attach attaches the domain to the whole group, the
//! others only add their reserved regions. Attaching to an IOAS picks the first
//! compatible automatic HWPT of the IOAS or creates one.
//!
//! Lock order: `ioas.hwpt_list` (the kernel's `ioas->mutex`) → `Igroup::inner`
//! (`igroup->lock`) → io_pagetable locks.
//!
//! Kernel: `drivers/iommu/iommufd/device.c` (v6.12).

use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::{Arc, Mutex, MutexGuard};

use iommu::{AttachHandle, Cap, Device, ResvType};
use uapi::Errno;

use crate::ctx::{Ctx, IommufdFile};
use crate::hwpt::{self, HwptPaging};
use crate::ioas::Ioas;
use crate::iopt::{IoPagetable, ResvOwner};
use crate::object::{ObjKind, ObjRef, ObjType, Object};

/// The context's state of one iommu_group (`struct iommufd_group`).
pub(crate) struct Igroup {
    pub(crate) group: Arc<iommu::Group>,
    inner: Mutex<IgroupInner>,
}

pub(crate) struct IgroupInner {
    /// The HWPT every attached device of the group uses.
    pub(crate) hwpt: Option<Arc<Object>>,
    /// Attached devices (`device_list`).
    pub(crate) devices: Vec<Arc<Object>>,
    /// Base of the group's software MSI window, if a device has one.
    sw_msi_start: Option<u64>,
}

impl Igroup {
    pub(crate) fn lock(&self) -> MutexGuard<'_, IgroupInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A device bound to a context (`struct iommufd_device`).
pub(crate) struct Idev {
    pub(crate) dev: Arc<Device>,
    pub(crate) igroup: Arc<Igroup>,
    pub(crate) enforce_cache_coherency: bool,
    /// The context reference real devices take (mock devices do not).
    file: Mutex<Option<Arc<IommufdFile>>>,
    /// I/O page-fault enables held by fault-capable HWPTs (`iopf_enabled`).
    iopf_enabled: AtomicU32,
}

impl Idev {
    /// The bound device.
    pub(crate) fn device(&self) -> &Arc<Device> {
        &self.dev
    }

    /// Destroy hook (`iommufd_device_destroy`).
    pub(crate) fn destroy(&self) {
        self.dev.release_dma_owner();
        drop(self.file.lock().unwrap_or_else(|e| e.into_inner()).take());
    }

    /// `iommufd_fault_iopf_enable`.
    pub(crate) fn iopf_enable(&self) -> Result<(), Errno> {
        if self.iopf_enabled.load(Ordering::Acquire) == 0 {
            self.dev.enable_iopf()?;
        }
        self.iopf_enabled.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// `iommufd_fault_iopf_disable`.
    pub(crate) fn iopf_disable(&self) {
        if self.iopf_enabled.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.dev.disable_iopf();
        }
    }
}

fn idev_of(obj: &Arc<Object>) -> &Idev {
    match obj.get::<Idev>() {
        Some(idev) => idev,
        None => unreachable!("not a device object"),
    }
}

/// The igroup of `dev` in this context, created on first use (`iommufd_get_group`).
fn get_igroup(ictx: &Ctx, dev: &Device) -> Arc<Igroup> {
    let group = dev.group().clone();
    let mut groups = ictx.groups.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(igroup) = groups.get(&group.id()).and_then(std::sync::Weak::upgrade) {
        return igroup;
    }
    let igroup = Arc::new(Igroup {
        group,
        inner: Mutex::new(IgroupInner {
            hwpt: None,
            devices: Vec::new(),
            sw_msi_start: None,
        }),
    });
    groups.insert(igroup.group.id(), Arc::downgrade(&igroup));
    igroup
}

/// Binds a device to the context (`iommufd_device_bind`); the returned object is
/// finalized and holds a `users` reference for the caller until
/// [`device_unbind`].
///
/// # Errors
/// `EINVAL` without cache coherency; `EPERM` if the group is owned elsewhere or
/// MSIs cannot be isolated; `EBUSY` if the group is attached elsewhere.
pub(crate) fn device_bind(
    file: &Arc<IommufdFile>,
    dev: &Arc<Device>,
) -> Result<Arc<Object>, Errno> {
    let ictx = file.ctx();
    if !dev.capable(Cap::CacheCoherency) {
        return Err(Errno::INVAL);
    }
    let is_mock = is_selftest_device(ictx, dev);
    let igroup = get_igroup(ictx, dev);
    // A DMA write must not be able to raise another context's interrupts; VFIO's
    // historical escape hatch is the `allow_unsafe_interrupts` parameter.
    if !is_mock && !igroup.group.has_isolated_msi() && !allow_unsafe_interrupts() {
        return Err(Errno::PERM);
    }
    dev.claim_dma_owner(ictx.owner())?;
    let idev = Idev {
        dev: dev.clone(),
        igroup,
        enforce_cache_coherency: dev.capable(Cap::EnforceCacheCoherency),
        file: Mutex::new((!is_mock).then(|| file.clone())),
        iopf_enabled: AtomicU32::new(0),
    };
    let obj = match ictx.insert(ObjKind::Device(idev)) {
        Ok(obj) => obj,
        Err(err) => {
            dev.release_dma_owner();
            return Err(err);
        }
    };
    obj.users_inc();
    Ok(obj)
}

static ALLOW_UNSAFE_INTERRUPTS: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// The `allow_unsafe_interrupts` module parameter: lets devices whose MSIs are not
/// isolated be bound (a DMA write could then trigger interrupts outside the
/// context). Off by default, as in the kernel.
pub fn set_allow_unsafe_interrupts(allow: bool) {
    ALLOW_UNSAFE_INTERRUPTS.store(allow, Ordering::Relaxed);
}

fn allow_unsafe_interrupts() -> bool {
    ALLOW_UNSAFE_INTERRUPTS.load(Ordering::Relaxed)
}

/// `iommufd_selftest_is_mock_dev`: mock devices are exempt from the MSI check and
/// hold no reference on the context.
fn is_selftest_device(ictx: &Ctx, dev: &Device) -> bool {
    #[cfg(feature = "selftest")]
    if let Some(driver) = &ictx.env().selftest {
        return driver.is_mock_device(dev);
    }
    let _ = (ictx, dev);
    false
}

/// Unbinds (`iommufd_device_unbind`), waiting for concurrent ioctls on it.
pub(crate) fn device_unbind(ictx: &Ctx, idev: &Arc<Object>) {
    let res = ictx.destroy_user(idev);
    debug_assert!(res.is_ok(), "device unbind failed");
}

/// Reserves the device's regions in `iopt` (`iopt_table_enforce_dev_resv_regions`);
/// with `sw_msi` the software-MSI base is recorded there.
fn enforce_dev_resv_regions(
    iopt: &IoPagetable,
    dev: &Device,
    sw_msi: Option<&mut Option<u64>>,
) -> Result<(), Errno> {
    let owner = ResvOwner::Device(dev.id());
    let regions = dev.resv_regions();
    let mut st = iopt.iova_write();
    let (mut num_hw_msi, mut num_sw_msi) = (0, 0);
    let mut sw_base = None;
    let res = (|| {
        for r in &regions {
            if r.ty == ResvType::DirectRelaxable {
                continue;
            }
            if r.ty == ResvType::Msi {
                num_hw_msi += 1;
            }
            if r.ty == ResvType::SwMsi {
                sw_base = Some(r.start);
                num_sw_msi += 1;
            }
            let last = r.last().ok_or(Errno::INVAL)?;
            IoPagetable::reserve_iova(&mut st, r.start, last, owner)?;
        }
        if (num_sw_msi != 0 && num_hw_msi != 0) || num_sw_msi > 1 {
            return Err(Errno::INVAL);
        }
        Ok(())
    })();
    if let Err(err) = res {
        st.reserved.retain(|_, _, &o| o != owner);
        return Err(err);
    }
    if let (Some(out), Some(base)) = (sw_msi, sw_base) {
        *out = Some(base);
    }
    Ok(())
}

/// Installs the software-MSI cookie on a paging HWPT once (`iommufd_group_setup_msi`).
fn group_setup_msi(g: &IgroupInner, hwpt: &HwptPaging) -> Result<(), Errno> {
    let Some(base) = g.sw_msi_start else {
        return Ok(());
    };
    if hwpt.msi_cookie.load(Ordering::Acquire) {
        return Ok(());
    }
    if hwpt.domain.domain_type() != iommu::DomainType::Unmanaged {
        return Err(Errno::INVAL);
    }
    hwpt.domain.core().msi().init(base)?;
    hwpt.msi_cookie.store(true, Ordering::Release);
    Ok(())
}

fn remove_dev_resv(hwpt: &HwptPaging, dev: &Device) {
    hwpt.ioas()
        .iopt
        .remove_reserved(ResvOwner::Device(dev.id()));
}

/// The attach handle iommufd stores in the group for a HWPT.
fn attach_handle(hwpt_obj: &Arc<Object>, idev_obj: &Arc<Object>) -> AttachHandle {
    AttachHandle {
        domain: hwpt::domain_of(hwpt_obj).clone(),
        data: Some(idev_obj.clone()),
        iopf: hwpt::iopf_handler(hwpt_obj),
    }
}

/// `iommufd_hw_pagetable_attach`: attaches `idev` to `hwpt_obj` (paging or nested).
pub(crate) fn hwpt_attach(hwpt_obj: &Arc<Object>, idev_obj: &Arc<Object>) -> Result<(), Errno> {
    let idev = idev_of(idev_obj);
    let mut g = idev.igroup.lock();
    if g.hwpt
        .as_ref()
        .is_some_and(|cur| !Arc::ptr_eq(cur, hwpt_obj))
    {
        return Err(Errno::INVAL);
    }
    let paging = hwpt::find_paging(hwpt_obj);
    if let Some(p) = paging {
        let mut sw_msi = g.sw_msi_start;
        enforce_dev_resv_regions(&p.ioas().iopt, &idev.dev, Some(&mut sw_msi))?;
        g.sw_msi_start = sw_msi;
        if g.devices.is_empty() {
            if let Err(err) = group_setup_msi(&g, p) {
                remove_dev_resv(p, &idev.dev);
                return Err(err);
            }
        }
    }
    if g.devices.is_empty() {
        if let Err(err) = hwpt_attach_device(hwpt_obj, idev_obj) {
            if let Some(p) = paging {
                remove_dev_resv(p, &idev.dev);
            }
            return Err(err);
        }
        g.hwpt = Some(hwpt_obj.clone());
    }
    hwpt_obj.users_inc();
    g.devices.push(idev_obj.clone());
    Ok(())
}

/// `iommufd_hwpt_attach_device`: attaches the domain to the whole group.
fn hwpt_attach_device(hwpt_obj: &Arc<Object>, idev_obj: &Arc<Object>) -> Result<(), Errno> {
    let idev = idev_of(idev_obj);
    let has_fault = hwpt::fault_of(hwpt_obj).is_some();
    if has_fault {
        idev.iopf_enable()?;
    }
    if let Err(err) = idev
        .igroup
        .group
        .attach_handle(attach_handle(hwpt_obj, idev_obj))
    {
        if has_fault {
            idev.iopf_disable();
        }
        return Err(err);
    }
    Ok(())
}

/// `iommufd_hw_pagetable_detach`: returns the HWPT the caller must put.
pub(crate) fn hwpt_detach(idev_obj: &Arc<Object>) -> Option<Arc<Object>> {
    let idev = idev_of(idev_obj);
    let mut g = idev.igroup.lock();
    let hwpt_obj = g.hwpt.clone()?;
    g.devices.retain(|d| !Arc::ptr_eq(d, idev_obj));
    if g.devices.is_empty() {
        let handle = idev.igroup.group.handle(iommu::NO_PASID);
        idev.igroup.group.detach_handle();
        if let Some(fault) = hwpt::fault_of(&hwpt_obj) {
            if let Some(handle) = handle {
                crate::fault::auto_response(fault, &handle);
            }
            idev.iopf_disable();
        }
        g.hwpt = None;
    }
    if let Some(p) = hwpt::find_paging(&hwpt_obj) {
        remove_dev_resv(p, &idev.dev);
    }
    Some(hwpt_obj)
}

/// Whether [`change_pt`] attaches or replaces.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Attach,
    Replace,
}

impl Mode {
    /// Attaches or replaces; returns the HWPT the caller must put afterwards.
    fn run(
        self,
        idev_obj: &Arc<Object>,
        hwpt_obj: &Arc<Object>,
    ) -> Result<Option<Arc<Object>>, Errno> {
        match self {
            Mode::Attach => hwpt_attach(hwpt_obj, idev_obj).map(|()| None),
            Mode::Replace => do_replace(idev_obj, hwpt_obj),
        }
    }
}

/// `iommufd_group_do_replace_reserved_iova`.
fn group_replace_reserved(g: &IgroupInner, new: &HwptPaging) -> Result<(), Errno> {
    let old = g.hwpt.as_ref().and_then(hwpt::find_paging);
    let same_ioas = old.is_some_and(|o| Arc::ptr_eq(o.ioas_obj(), new.ioas_obj()));
    let res = (|| {
        if !same_ioas {
            for d in &g.devices {
                enforce_dev_resv_regions(&new.ioas().iopt, &idev_of(d).dev, None)?;
            }
        }
        group_setup_msi(g, new)
    })();
    if res.is_err() {
        for d in &g.devices {
            remove_dev_resv(new, &idev_of(d).dev);
        }
    }
    res
}

/// `iommufd_device_do_replace`.
fn do_replace(
    idev_obj: &Arc<Object>,
    hwpt_obj: &Arc<Object>,
) -> Result<Option<Arc<Object>>, Errno> {
    let idev = idev_of(idev_obj);
    let mut g = idev.igroup.lock();
    let old = g.hwpt.clone().ok_or(Errno::INVAL)?;
    if !g.devices.iter().any(|d| Arc::ptr_eq(d, idev_obj)) {
        return Err(Errno::INVAL);
    }
    if Arc::ptr_eq(&old, hwpt_obj) {
        return Ok(None);
    }
    let paging = hwpt::find_paging(hwpt_obj);
    if let Some(p) = paging {
        group_replace_reserved(&g, p)?;
    }
    if let Err(err) = replace_device(idev, idev_obj, hwpt_obj, &old) {
        if let Some(p) = paging {
            for d in &g.devices {
                remove_dev_resv(p, &idev_of(d).dev);
            }
        }
        return Err(err);
    }
    if let Some(old_p) = hwpt::find_paging(&old) {
        if paging.is_none_or(|p| !Arc::ptr_eq(p.ioas_obj(), old_p.ioas_obj())) {
            for d in &g.devices {
                remove_dev_resv(old_p, &idev_of(d).dev);
            }
        }
    }
    g.hwpt = Some(hwpt_obj.clone());
    let n = g.devices.len();
    for _ in 0..n {
        hwpt_obj.users_inc();
    }
    for _ in 1..n {
        old.users_dec();
    }
    Ok(Some(old))
}

/// `iommufd_hwpt_replace_device`: one driver switch for the whole group.
fn replace_device(
    idev: &Idev,
    idev_obj: &Arc<Object>,
    hwpt_obj: &Arc<Object>,
    old: &Arc<Object>,
) -> Result<(), Errno> {
    let new_fault = hwpt::fault_of(hwpt_obj).is_some();
    let old_fault = hwpt::fault_of(old);
    let old_handle = idev.igroup.group.handle(iommu::NO_PASID);
    if new_fault && old_fault.is_none() {
        idev.iopf_enable()?;
    }
    if let Err(err) = idev
        .igroup
        .group
        .replace_handle(attach_handle(hwpt_obj, idev_obj))
    {
        if new_fault && old_fault.is_none() {
            idev.iopf_disable();
        }
        return Err(err);
    }
    if let Some(fault) = old_fault {
        if let Some(h) = old_handle {
            crate::fault::auto_response(fault, &h);
        }
        if !new_fault {
            idev.iopf_disable();
        }
    }
    Ok(())
}

/// `iommufd_device_auto_get_domain`: reuse a compatible automatic HWPT of the IOAS
/// or create one. Returns the HWPT the caller must put.
fn auto_get_domain(
    ictx: &Ctx,
    idev_obj: &Arc<Object>,
    ioas_obj: &Arc<Object>,
    pt_id: &mut u32,
    mode: Mode,
) -> Result<Option<Arc<Object>>, Errno> {
    // Attaching a new domain right away supports drivers that finish a domain
    // only at attach (`immediate_attach`).
    let immediate = mode == Mode::Attach;
    let ioas = ioas_of(ioas_obj);
    let mut list = ioas.hwpt_list.lock().unwrap_or_else(|e| e.into_inner());
    for hwpt_obj in list.clone() {
        let Some(p) = hwpt_obj.get::<HwptPaging>() else {
            continue;
        };
        if !p.auto_domain.load(Ordering::Acquire) || !hwpt_obj.lock_obj() {
            continue;
        }
        let r = ObjRef::from_locked(hwpt_obj.clone());
        match mode.run(idev_obj, &hwpt_obj) {
            Err(Errno::INVAL) => continue,
            Err(err) => return Err(err),
            Ok(destroy) => {
                *pt_id = r.id();
                return Ok(destroy);
            }
        }
    }
    let (resv, hwpt_obj) =
        hwpt::paging_alloc(ictx, &mut list, ioas_obj, idev_obj, 0, immediate, None)?;
    let mut destroy = None;
    if !immediate {
        match mode.run(idev_obj, &hwpt_obj) {
            Ok(d) => destroy = d,
            Err(err) => {
                hwpt::paging_abort(&mut list, &hwpt_obj);
                drop(resv);
                return Err(err);
            }
        }
    }
    if let Some(p) = hwpt_obj.get::<HwptPaging>() {
        p.auto_domain.store(true, Ordering::Release);
    }
    *pt_id = hwpt_obj.id();
    resv.finalize(&hwpt_obj);
    Ok(destroy)
}

fn ioas_of(obj: &Arc<Object>) -> &Ioas {
    match obj.get::<Ioas>() {
        Some(ioas) => ioas,
        None => unreachable!("not an IOAS object"),
    }
}

/// `iommufd_device_change_pt`.
fn change_pt(ictx: &Ctx, idev_obj: &Arc<Object>, pt_id: &mut u32, mode: Mode) -> Result<(), Errno> {
    let pt = ictx.get_object(*pt_id, None)?;
    let destroy = match pt.obj_type() {
        ObjType::HwptPaging | ObjType::HwptNested => mode.run(idev_obj, pt.arc())?,
        ObjType::Ioas => auto_get_domain(ictx, idev_obj, pt.arc(), pt_id, mode)?,
        _ => return Err(Errno::INVAL),
    };
    drop(pt);
    if let Some(old) = destroy {
        hwpt::put(ictx, &old);
    }
    Ok(())
}

/// Attaches a bound device to an IOAS or HWPT (`iommufd_device_attach`); `pt_id`
/// returns the HWPT used.
///
/// # Errors
/// `ENOENT` (unknown id), `EINVAL` (wrong type, group on another HWPT, driver
/// incompatibility), `EADDRINUSE` (reserved regions), `EFAULT`/`ENOMEM` (populating).
pub(crate) fn device_attach(
    ictx: &Ctx,
    idev_obj: &Arc<Object>,
    pt_id: &mut u32,
) -> Result<(), Errno> {
    change_pt(ictx, idev_obj, pt_id, Mode::Attach)?;
    idev_obj.users_inc();
    Ok(())
}

/// Switches an attached device to another IOAS or HWPT (`iommufd_device_replace`).
///
/// # Errors
/// As [`device_attach`]; `EINVAL` if not attached. On error nothing changes.
pub(crate) fn device_replace(
    ictx: &Ctx,
    idev_obj: &Arc<Object>,
    pt_id: &mut u32,
) -> Result<(), Errno> {
    change_pt(ictx, idev_obj, pt_id, Mode::Replace)
}

/// Detaches (`iommufd_device_detach`).
pub(crate) fn device_detach(ictx: &Ctx, idev_obj: &Arc<Object>) {
    if let Some(hwpt_obj) = hwpt_detach(idev_obj) {
        hwpt::put(ictx, &hwpt_obj);
    }
    idev_obj.users_dec();
}

/// A device bound to a context by its driver: the API the kernel exports to VFIO
/// (`iommufd_device_bind`, `_attach`, `_replace`, `_detach`, `_unbind`), for device
/// models and VMMs that embed iommufd. Dropping it detaches and unbinds.
pub struct BoundDevice {
    file: Arc<IommufdFile>,
    idev: Arc<Object>,
    attached: Mutex<bool>,
}

impl std::fmt::Debug for BoundDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundDevice")
            .field("id", &self.idev.id())
            .field("device", idev_of(&self.idev).device())
            .finish()
    }
}

impl BoundDevice {
    /// Binds `dev` to the context of `file` (`iommufd_device_bind`): claims its
    /// group's DMA ownership and creates the device object.
    ///
    /// # Errors
    /// `EINVAL` without cache coherency; `EPERM` if another owner or a kernel
    /// driver holds the group; `EBUSY` if the group is on a non-default domain.
    pub fn bind(file: &Arc<IommufdFile>, dev: &Arc<Device>) -> Result<BoundDevice, Errno> {
        let idev = device_bind(file, dev)?;
        Ok(BoundDevice {
            file: file.clone(),
            idev,
            attached: Mutex::new(false),
        })
    }

    /// The device object's ID, as `IOMMU_HWPT_ALLOC`, `IOMMU_GET_HW_INFO` and
    /// fault records name it.
    pub fn id(&self) -> u32 {
        self.idev.id()
    }

    /// The IOMMU core's device.
    pub fn device(&self) -> &Arc<Device> {
        idev_of(&self.idev).device()
    }

    fn state(&self) -> MutexGuard<'_, bool> {
        self.attached.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Attaches to the IOAS or HWPT `pt_id` (`iommufd_device_attach`), or replaces
    /// the current attachment as VFIO does when already attached; returns the ID
    /// of the HWPT used (an automatic one for an IOAS).
    ///
    /// # Errors
    /// As `IOMMU_TEST_OP_MOCK_DOMAIN`'s attach: `ENOENT`, `EINVAL`, `EADDRINUSE`,
    /// `EFAULT`, `ENOMEM`, the driver's errno. On error nothing changes.
    pub fn attach(&self, pt_id: u32) -> Result<u32, Errno> {
        let mut attached = self.state();
        let mut id = pt_id;
        if *attached {
            device_replace(self.file.ctx(), &self.idev, &mut id)?;
        } else {
            device_attach(self.file.ctx(), &self.idev, &mut id)?;
            *attached = true;
        }
        Ok(id)
    }

    /// Detaches (`iommufd_device_detach`); nothing happens if not attached.
    pub fn detach(&self) {
        let mut attached = self.state();
        if std::mem::take(&mut *attached) {
            device_detach(self.file.ctx(), &self.idev);
        }
    }
}

impl Drop for BoundDevice {
    fn drop(&mut self) {
        self.detach();
        device_unbind(self.file.ctx(), &self.idev);
    }
}
