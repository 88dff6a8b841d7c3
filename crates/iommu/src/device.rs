//! Devices behind an IOMMU and the groups they are isolated in.
//!
//! A [`Group`] is the unit of isolation: all its devices are always attached to
//! the same domain. It has a default domain (the kernel DMA API's, identity, or a
//! driver's static one), a lazily allocated blocking domain, the current domain,
//! the DMA owner, and the attach handles per PASID. Attach, replace and detach act
//! on every device of the group and roll back on failure.
//!
//! Kernel: `drivers/iommu/iommu.c` (groups, `__iommu_group_set_domain_internal`,
//! `__iommu_device_set_domain`, DMA ownership, attach handles, PASID), v6.12.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use uapi::Errno;

use crate::fault::{IopfFault, IopfHandler};
use crate::ops::{Cap, IommuOps, ProbeInfo};
use crate::resv::{ResvRegion, ResvType};
use crate::topology::Bus;
use crate::{DmaTranslation, Domain, DomainType};

/// The PASID of DMA without a PASID (`IOMMU_NO_PASID`).
pub const NO_PASID: u32 = 0;

/// What the platform knows about a device before an IOMMU driver takes it.
#[derive(Clone, Debug, Default)]
pub struct DeviceDesc {
    /// Device name (`dev_name`).
    pub name: String,
    /// Bus-level identity the driver uses to find its IOMMU and stream/requester ID.
    pub bus_id: u64,
    /// PASID width the device supports (PCI PASID capability or `pasid-num-bits`).
    pub pasid_bits: u32,
    /// A PCI device on an external-facing port (forces a DMA default domain).
    pub untrusted: bool,
    /// Driver-specific flags (the mock's `MOCK_FLAGS_DEVICE_*`).
    pub flags: u32,
    /// PCI PASID control bits reported by GET_HW_INFO (exec, priv).
    pub pasid_exec: bool,
    /// See `pasid_exec`.
    pub pasid_priv: bool,
    /// Where the device sits: its bus, address and the bridges above it.
    pub bus: Bus,
}

impl DeviceDesc {
    /// A PCI function (GET_HW_INFO reports PASID control bits for these).
    pub fn is_pci(&self) -> bool {
        matches!(self.bus, Bus::Pci(_))
    }
}

/// Identifies who owns a group for DMA (`group->owner`): an iommufd context.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OwnerId(pub u64);

/// What an attacher stores at a PASID of a group (`struct iommu_attach_handle`).
#[derive(Clone)]
pub struct AttachHandle {
    /// The domain attached.
    pub domain: Arc<dyn Domain>,
    /// The attacher's data (iommufd: the device object).
    pub data: Option<Arc<dyn Any + Send + Sync>>,
    /// The fault handler, when the domain takes I/O page faults.
    pub iopf: Option<Arc<dyn IopfHandler>>,
}

/// Faults of incomplete page request groups (`iommu_fault_param.partial`).
#[derive(Default)]
pub(crate) struct IopfPartial {
    faults: Mutex<Vec<IopfFault>>,
}

impl IopfPartial {
    pub(crate) fn push(&self, fault: IopfFault) {
        lock(&self.faults).push(fault);
    }

    /// Removes and returns the buffered faults of group `grpid`, oldest first.
    pub(crate) fn take_group(&self, grpid: u32) -> Vec<IopfFault> {
        let mut faults = lock(&self.faults);
        let (group, rest): (Vec<_>, Vec<_>) = faults.drain(..).partition(|f| f.grpid == grpid);
        *faults = rest;
        group
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A device probed by an IOMMU instance (`struct device` + `dev->iommu`).
pub struct Device {
    id: u64,
    desc: DeviceDesc,
    ops: Arc<dyn IommuOps>,
    group: Arc<Group>,
    max_pasids: u32,
    attach_deferred: AtomicBool,
    require_direct: bool,
    isolated_msi: bool,
    iopf: Mutex<Option<Arc<IopfPartial>>>,
    iopf_users: AtomicU32,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("id", &self.id)
            .field("name", &self.desc.name)
            .field("group", &self.group.id)
            .finish()
    }
}

fn same_domain(a: &Arc<dyn Domain>, b: &Arc<dyn Domain>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

fn same_opt(a: Option<&Arc<dyn Domain>>, b: &Arc<dyn Domain>) -> bool {
    a.is_some_and(|a| same_domain(a, b))
}

impl Device {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: u64,
        desc: DeviceDesc,
        ops: Arc<dyn IommuOps>,
        group: Arc<Group>,
        max_pasids: u32,
        info: ProbeInfo,
        require_direct: bool,
    ) -> Device {
        Device {
            id,
            desc,
            ops,
            group,
            max_pasids,
            attach_deferred: AtomicBool::new(info.attach_deferred),
            require_direct,
            isolated_msi: info.isolated_msi,
            iopf: Mutex::new(None),
            iopf_users: AtomicU32::new(0),
        }
    }

    /// A unique number for this device.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The platform description of the device.
    pub fn desc(&self) -> &DeviceDesc {
        &self.desc
    }

    /// The IOMMU instance the device is behind (`dev_iommu_ops`).
    pub fn ops(&self) -> &Arc<dyn IommuOps> {
        &self.ops
    }

    /// The device's group (`iommu_group_get`).
    pub fn group(&self) -> &Arc<Group> {
        &self.group
    }

    /// PASIDs usable by this device (`dev->iommu->max_pasids`): the smaller of the
    /// device's and the instance's.
    pub fn max_pasids(&self) -> u32 {
        self.max_pasids
    }

    /// Whether attaching the default domain is still deferred.
    pub fn attach_deferred(&self) -> bool {
        self.attach_deferred.load(Ordering::Acquire)
    }

    /// Whether the device needs its direct regions mapped 1:1 at all times.
    pub fn require_direct(&self) -> bool {
        self.require_direct
    }

    /// `device_iommu_capable`.
    pub fn capable(&self, cap: Cap) -> bool {
        self.ops.capable(self, cap)
    }

    /// Whether the device's MSIs are isolated (see [`crate::ProbeInfo::isolated_msi`]).
    pub fn has_isolated_msi(&self) -> bool {
        self.isolated_msi
    }

    /// The device's reserved regions (`iommu_get_resv_regions`).
    pub fn resv_regions(&self) -> Vec<ResvRegion> {
        self.ops.get_resv_regions(self)
    }

    /// Translates one DMA of this device (no PASID) through the domain its group is
    /// attached to now, as the IOMMU would; the DMA API attaches a deferred default
    /// domain first.
    ///
    /// # Errors
    /// `ENOENT` for a DMA fault (nothing mapped, or no domain); `EPERM` if the
    /// mapping forbids the direction; attach errors of a deferred attach.
    pub fn dma_translate(&self, iova: u64, write: bool) -> Result<DmaTranslation, Errno> {
        if self.attach_deferred.load(Ordering::Acquire) {
            self.deferred_attach()?;
        }
        let domain = self.group.lock().domain.clone().ok_or(Errno::NOENT)?;
        domain.dma_translate(iova, write)
    }

    /// Attaches the default domain if it was deferred (`iommu_deferred_attach`),
    /// as the DMA API does on first use.
    ///
    /// # Errors
    /// The driver's attach errno.
    pub fn deferred_attach(&self) -> Result<(), Errno> {
        let domain = self.group.lock().domain.clone();
        let Some(domain) = domain else {
            return Ok(());
        };
        if self.attach_deferred.swap(false, Ordering::AcqRel) {
            if let Err(err) = domain.attach_dev(self) {
                self.attach_deferred.store(true, Ordering::Release);
                return Err(err);
            }
        }
        Ok(())
    }

    /// Claims the group for `owner` (`iommu_device_claim_dma_owner`): the first
    /// claim moves the group to its blocking domain.
    ///
    /// # Errors
    /// `EPERM` if another owner or a DMA-API driver holds the group; `EBUSY` if it is
    /// attached to a non-default domain or has PASID attachments; attach errors.
    pub fn claim_dma_owner(&self, owner: OwnerId) -> Result<(), Errno> {
        let mut g = self.group.lock();
        if g.owner_cnt != 0 {
            if g.owner != Some(owner) {
                return Err(Errno::PERM);
            }
            g.owner_cnt += 1;
            return Ok(());
        }
        if g.domain.is_some() && !g.domain_is(&g.default_domain) || !g.pasid_array.is_empty() {
            return Err(Errno::BUSY);
        }
        let blocking = self.group.blocking_domain(&mut g)?;
        self.group.set_domain(&mut g, &blocking, false)?;
        g.owner = Some(owner);
        g.owner_cnt += 1;
        Ok(())
    }

    /// Releases a claim (`iommu_device_release_dma_owner`); the last one returns the
    /// group to its default domain.
    pub fn release_dma_owner(&self) {
        let mut g = self.group.lock();
        if g.owner_cnt > 1 {
            g.owner_cnt -= 1;
            return;
        }
        if g.owner_cnt == 0 || g.owner.is_none() || !g.pasid_array.is_empty() {
            debug_assert!(false, "releasing DMA ownership that is not held");
            return;
        }
        g.owner_cnt = 0;
        g.owner = None;
        if let Some(default) = g.default_domain.clone() {
            let res = self.group.set_domain(&mut g, &default, true);
            debug_assert!(res.is_ok(), "returning to the default domain failed");
        }
    }

    /// A kernel driver using the DMA API binds (`iommu_device_use_default_domain`).
    ///
    /// # Errors
    /// `EBUSY` if the group is owned, not on its default domain, or has PASIDs.
    pub fn use_default_domain(&self) -> Result<(), Errno> {
        let mut g = self.group.lock();
        if g.owner_cnt != 0
            && (!g.domain_is(&g.default_domain) || g.owner.is_some() || !g.pasid_array.is_empty())
        {
            return Err(Errno::BUSY);
        }
        g.owner_cnt += 1;
        Ok(())
    }

    /// The DMA-API driver unbinds (`iommu_device_unuse_default_domain`).
    pub fn unuse_default_domain(&self) {
        let mut g = self.group.lock();
        if g.owner_cnt == 0 || !g.pasid_array.is_empty() {
            debug_assert!(false, "unbalanced unuse_default_domain");
            return;
        }
        g.owner_cnt -= 1;
    }

    /// Attaches `domain` to `pasid` of this device (`iommu_attach_device_pasid`).
    ///
    /// # Errors
    /// `EOPNOTSUPP` if the domain cannot do PASID; `EINVAL` for another driver's
    /// domain, PASID 0, a PASID beyond a device's width, or a group that is not a
    /// singleton; `EBUSY` if the PASID is taken; the driver's errno.
    pub fn attach_pasid(
        &self,
        domain: &Arc<dyn Domain>,
        pasid: u32,
        handle: AttachHandle,
    ) -> Result<(), Errno> {
        if !domain.supports_pasid() {
            return Err(Errno::OPNOTSUPP);
        }
        if domain.core().owner() != self.ops.driver() || pasid == NO_PASID {
            return Err(Errno::INVAL);
        }
        let mut g = self.group.lock();
        if g.devices.len() != 1 {
            return Err(Errno::INVAL);
        }
        for dev in &g.devices {
            if dev.max_pasids > 0 && pasid >= dev.max_pasids {
                return Err(Errno::INVAL);
            }
        }
        if g.pasid_array.contains_key(&pasid) {
            return Err(Errno::BUSY);
        }
        g.pasid_array.insert(pasid, Some(handle));
        let mut done = Vec::new();
        for dev in &g.devices {
            if dev.max_pasids == 0 {
                continue;
            }
            if let Err(err) = domain.set_dev_pasid(dev, pasid) {
                for d in done {
                    domain.remove_dev_pasid(d, pasid);
                }
                g.pasid_array.remove(&pasid);
                return Err(err);
            }
            done.push(dev.as_ref());
        }
        Ok(())
    }

    /// Detaches `pasid` (`iommu_detach_device_pasid`).
    pub fn detach_pasid(&self, domain: &Arc<dyn Domain>, pasid: u32) {
        let mut g = self.group.lock();
        for dev in &g.devices {
            if dev.max_pasids > 0 {
                domain.remove_dev_pasid(dev, pasid);
            }
        }
        g.pasid_array.remove(&pasid);
    }

    /// Enables I/O page faults (counted; the driver is asked on the first).
    ///
    /// # Errors
    /// The driver's errno (`ENODEV` without support).
    pub fn enable_iopf(&self) -> Result<(), Errno> {
        let mut iopf = lock(&self.iopf);
        if self.iopf_users.load(Ordering::Acquire) == 0 {
            self.ops.enable_iopf(self)?;
            *iopf = Some(Arc::new(IopfPartial::default()));
        }
        self.iopf_users.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Drops one [`Device::enable_iopf`]; the last disables it at the driver.
    pub fn disable_iopf(&self) {
        let mut iopf = lock(&self.iopf);
        match self.iopf_users.load(Ordering::Acquire) {
            0 => debug_assert!(false, "unbalanced disable_iopf"),
            1 => {
                self.iopf_users.store(0, Ordering::Release);
                *iopf = None;
                self.ops.disable_iopf(self);
            }
            _ => {
                self.iopf_users.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    pub(crate) fn iopf_partial(&self) -> Option<Arc<IopfPartial>> {
        lock(&self.iopf).clone()
    }
}

/// The mutable state of a group (`struct iommu_group` under `group->mutex`).
pub(crate) struct GroupInner {
    pub(crate) devices: Vec<Arc<Device>>,
    pub(crate) default_domain: Option<Arc<dyn Domain>>,
    blocking_domain: Option<Arc<dyn Domain>>,
    pub(crate) domain: Option<Arc<dyn Domain>>,
    owner: Option<OwnerId>,
    owner_cnt: u32,
    /// PASID → handle; `None` marks a reservation during replace.
    pasid_array: BTreeMap<u32, Option<AttachHandle>>,
}

impl GroupInner {
    fn domain_is(&self, d: &Option<Arc<dyn Domain>>) -> bool {
        match (&self.domain, d) {
            (Some(a), Some(b)) => same_domain(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

/// An IOMMU group (`struct iommu_group`).
pub struct Group {
    id: u32,
    inner: Mutex<GroupInner>,
    /// Bumped (under `inner`'s lock, after the change) whenever `inner.domain`
    /// changes: a [`DmaHandle`] compares it to revalidate its cached domain.
    domain_gen: AtomicU64,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group").field("id", &self.id).finish()
    }
}

/// Group numbers in use. They are process-wide, as the kernel's
/// `iommu_group_ida` is system-wide: iommufd keys its per-group state by the
/// number, so groups of two [`crate::Platform`]s must never share one.
static GROUP_IDS: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// The lowest free group number (`ida_alloc`).
fn alloc_group_id() -> u32 {
    let mut used = GROUP_IDS.lock().unwrap_or_else(|e| e.into_inner());
    let id = used
        .iter()
        .zip(0u32..)
        .find(|&(&used, want)| used != want)
        .map_or(used.len() as u32, |(_, want)| want);
    used.insert(id);
    id
}

impl Drop for Group {
    fn drop(&mut self) {
        GROUP_IDS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

impl Group {
    /// A new, empty group with the lowest free number.
    pub(crate) fn new() -> Group {
        Group {
            id: alloc_group_id(),
            inner: Mutex::new(GroupInner {
                devices: Vec::new(),
                default_domain: None,
                blocking_domain: None,
                domain: None,
                owner: None,
                owner_cnt: 0,
                pasid_array: BTreeMap::new(),
            }),
            domain_gen: AtomicU64::new(0),
        }
    }

    /// The group number (`iommu_group_id`).
    pub fn id(&self) -> u32 {
        self.id
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, GroupInner> {
        lock(&self.inner)
    }

    /// Marks a change of `inner.domain` (called under the lock, after it).
    fn domain_changed(&self) {
        self.domain_gen.fetch_add(1, Ordering::Release);
    }

    /// The generation of the group's current domain: changes (before the
    /// attach, replace or detach that changed the domain returns) whenever
    /// the domain does.
    #[inline]
    pub fn domain_gen(&self) -> u64 {
        self.domain_gen.load(Ordering::Acquire)
    }

    /// The current domain and its generation, read together.
    pub fn domain_with_gen(&self) -> (Option<Arc<dyn Domain>>, u64) {
        let g = self.lock();
        (g.domain.clone(), self.domain_gen.load(Ordering::Relaxed))
    }

    /// The devices of the group.
    pub fn devices(&self) -> Vec<Arc<Device>> {
        self.lock().devices.clone()
    }

    /// The domain the group is attached to now (`iommu_get_domain_for_dev`).
    pub fn domain(&self) -> Option<Arc<dyn Domain>> {
        self.lock().domain.clone()
    }

    /// The group's default domain.
    pub fn default_domain(&self) -> Option<Arc<dyn Domain>> {
        self.lock().default_domain.clone()
    }

    /// Whether `domain` is the group's blocking domain.
    pub fn is_blocking(&self, domain: &Arc<dyn Domain>) -> bool {
        same_opt(self.lock().blocking_domain.as_ref(), domain)
    }

    /// The current DMA owner, if claimed.
    pub fn owner(&self) -> Option<OwnerId> {
        self.lock().owner
    }

    /// The handle at `pasid` (`iommu_attach_handle_get`).
    pub fn handle(&self, pasid: u32) -> Option<AttachHandle> {
        self.lock().pasid_array.get(&pasid).cloned().flatten()
    }

    /// Whether any of the group's devices may use PASIDs.
    pub fn pasid_capable(&self) -> bool {
        self.lock().devices.iter().any(|d| d.max_pasids > 0)
    }

    /// Allocates the blocking domain on first use (`__iommu_group_alloc_blocking_domain`).
    fn blocking_domain(&self, g: &mut GroupInner) -> Result<Arc<dyn Domain>, Errno> {
        if let Some(d) = &g.blocking_domain {
            return Ok(d.clone());
        }
        let dev = g.devices.first().cloned().ok_or(Errno::NODEV)?;
        let ops = dev.ops();
        let domain = match ops.blocked_domain() {
            Some(d) => d,
            None => match ops.domain_alloc(DomainType::Blocked) {
                Ok(d) => d,
                // An empty paging domain blocks as well.
                Err(_) => ops
                    .domain_alloc_paging(&dev)
                    .or_else(|_| ops.domain_alloc(DomainType::Unmanaged))?,
            },
        };
        g.blocking_domain = Some(domain.clone());
        Ok(domain)
    }

    /// `__iommu_group_set_domain_internal`: switches every device, rolling back on
    /// failure unless `must_succeed`.
    pub(crate) fn set_domain(
        &self,
        g: &mut GroupInner,
        new: &Arc<dyn Domain>,
        must_succeed: bool,
    ) -> Result<(), Errno> {
        if same_opt(g.domain.as_ref(), new) {
            return Ok(());
        }
        let mut result = Ok(());
        for (i, dev) in g.devices.iter().enumerate() {
            if let Err(err) = self.device_set_domain(g, dev, new, must_succeed) {
                result = Err(err);
                if must_succeed {
                    continue;
                }
                if let Some(old) = g.domain.clone() {
                    for prev in &g.devices[..=i] {
                        let res = self.device_set_domain(g, prev, &old, true);
                        debug_assert!(res.is_ok(), "revert to a previous domain failed");
                    }
                }
                return Err(err);
            }
        }
        g.domain = Some(new.clone());
        self.domain_changed();
        result
    }

    /// `__iommu_device_set_domain`.
    fn device_set_domain(
        &self,
        g: &GroupInner,
        dev: &Device,
        new: &Arc<dyn Domain>,
        must_succeed: bool,
    ) -> Result<(), Errno> {
        if dev.require_direct
            && (new.domain_type() == DomainType::Blocked
                || same_opt(g.blocking_domain.as_ref(), new))
        {
            return Err(Errno::INVAL);
        }
        if dev.attach_deferred.load(Ordering::Acquire) {
            if same_opt(g.default_domain.as_ref(), new) {
                return Ok(());
            }
            dev.attach_deferred.store(false, Ordering::Release);
        }
        let res = new.attach_dev(dev);
        if res.is_err() && must_succeed {
            if let Some(blocking) = &g.blocking_domain {
                if !same_domain(blocking, new) {
                    let _ = blocking.attach_dev(dev);
                }
            }
        }
        res
    }

    /// The domain detach returns to: blocking when owned, else default
    /// (`__iommu_group_set_core_domain`).
    fn set_core_domain(&self, g: &mut GroupInner) {
        let core = if g.owner.is_some() {
            g.blocking_domain.clone()
        } else {
            g.default_domain.clone()
        };
        if let Some(core) = core {
            let res = self.set_domain(g, &core, true);
            debug_assert!(res.is_ok(), "returning to the core domain failed");
        }
    }

    /// `__iommu_attach_group`.
    fn attach_locked(&self, g: &mut GroupInner, domain: &Arc<dyn Domain>) -> Result<(), Errno> {
        if let Some(cur) = &g.domain {
            if !same_opt(g.default_domain.as_ref(), cur)
                && !same_opt(g.blocking_domain.as_ref(), cur)
            {
                return Err(Errno::BUSY);
            }
        }
        let first = g.devices.first().ok_or(Errno::INVAL)?;
        if first.ops().driver() != domain.core().owner() {
            return Err(Errno::INVAL);
        }
        self.set_domain(g, domain, false)
    }

    /// Attaches `domain` to the whole group (`iommu_attach_group`).
    ///
    /// # Errors
    /// `EBUSY` if already attached to a user domain; `EINVAL` for another driver's
    /// domain or a driver refusal; the driver's errno.
    pub fn attach(&self, domain: &Arc<dyn Domain>) -> Result<(), Errno> {
        let mut g = self.lock();
        self.attach_locked(&mut g, domain)
    }

    /// Detaches back to the core domain (`iommu_detach_group`).
    pub fn detach(&self) {
        let mut g = self.lock();
        self.set_core_domain(&mut g);
    }

    /// Attaches with a handle stored at no-PASID (`iommu_attach_group_handle`).
    ///
    /// # Errors
    /// `EBUSY` if a handle is already there; as [`Group::attach`].
    pub fn attach_handle(&self, handle: AttachHandle) -> Result<(), Errno> {
        let mut g = self.lock();
        if g.pasid_array.contains_key(&NO_PASID) {
            return Err(Errno::BUSY);
        }
        fault::fail_point!(fault::Site::AttachAlloc, Errno::NOMEM);
        let domain = handle.domain.clone();
        g.pasid_array.insert(NO_PASID, Some(handle));
        if let Err(err) = self.attach_locked(&mut g, &domain) {
            g.pasid_array.remove(&NO_PASID);
            return Err(err);
        }
        Ok(())
    }

    /// Detaches the handle's domain (`iommu_detach_group_handle`).
    pub fn detach_handle(&self) {
        let mut g = self.lock();
        self.set_core_domain(&mut g);
        g.pasid_array.remove(&NO_PASID);
    }

    /// Switches straight to a new domain and handle (`iommu_replace_group_handle`).
    ///
    /// # Errors
    /// The driver's errno (`EINVAL` incompatible); the old attachment stays.
    pub fn replace_handle(&self, handle: AttachHandle) -> Result<(), Errno> {
        let mut g = self.lock();
        fault::fail_point!(fault::Site::AttachAlloc, Errno::NOMEM);
        let domain = handle.domain.clone();
        self.set_domain(&mut g, &domain, false)?;
        g.pasid_array.insert(NO_PASID, Some(handle));
        Ok(())
    }

    /// Whether a user domain (not default, not blocking) is attached.
    pub fn has_user_domain(&self) -> bool {
        let g = self.lock();
        match &g.domain {
            Some(d) => {
                !same_opt(g.default_domain.as_ref(), d) && !same_opt(g.blocking_domain.as_ref(), d)
            }
            None => false,
        }
    }

    /// Whether every device of the group has isolated MSIs
    /// (`iommu_group_has_isolated_msi`).
    pub fn has_isolated_msi(&self) -> bool {
        self.lock().devices.iter().all(|d| d.isolated_msi)
    }

    /// The union of the reserved regions of the group's devices.
    pub fn resv_regions(&self) -> Vec<ResvRegion> {
        let devices = self.devices();
        let mut out: Vec<ResvRegion> = devices.iter().flat_map(|d| d.resv_regions()).collect();
        out.sort_by_key(|r| (r.start, r.length));
        out.dedup();
        out
    }

    pub(crate) fn add_device(&self, dev: Arc<Device>) -> MutexGuard<'_, GroupInner> {
        let mut g = self.lock();
        g.devices.push(dev);
        g
    }

    /// Removes a device (`iommu_release_device`); it must be unowned.
    pub(crate) fn remove_device(&self, dev: &Device) {
        let mut g = self.lock();
        g.devices.retain(|d| d.id != dev.id);
        if g.devices.is_empty() {
            g.domain = None;
            self.domain_changed();
            g.default_domain = None;
            g.blocking_domain = None;
        }
    }

    /// Installs the default domain chosen at probe (`iommu_setup_default_domain`)
    /// and attaches it to the group's devices.
    pub(crate) fn setup_default_domain(
        g: &mut GroupInner,
        group: &Group,
        domain: Arc<dyn Domain>,
    ) -> Result<(), Errno> {
        for dev in g.devices.clone() {
            map_direct_regions(&domain, &dev)?;
        }
        g.default_domain = Some(domain.clone());
        group.set_domain(g, &domain, false)
    }

    /// Attaches a newly added device of a group that already has a domain.
    pub(crate) fn attach_new_device(
        g: &mut GroupInner,
        group: &Group,
        dev: &Arc<Device>,
    ) -> Result<(), Errno> {
        if let Some(default) = g.default_domain.clone() {
            map_direct_regions(&default, dev)?;
        }
        if let Some(cur) = g.domain.clone() {
            group.device_set_domain(g, dev, &cur, false)?;
        }
        Ok(())
    }
}

/// Identity-maps a device's direct regions into a paging default domain
/// (`iommu_create_device_direct_mappings`).
fn map_direct_regions(domain: &Arc<dyn Domain>, dev: &Device) -> Result<(), Errno> {
    if !domain.domain_type().is_paging() {
        return Ok(());
    }
    let min = crate::map::min_pgsize(domain.as_ref()).max(1);
    for r in dev.resv_regions() {
        if !matches!(r.ty, ResvType::Direct | ResvType::DirectRelaxable) {
            continue;
        }
        let start = r.start & !(min - 1);
        let end = (r.start + r.length).next_multiple_of(min);
        let mut addr = start;
        while addr < end {
            if domain.iova_to_phys(addr) == 0 {
                crate::map::map(domain.as_ref(), addr, addr, min, r.prot, min)?;
            }
            addr += min;
        }
    }
    Ok(())
}
