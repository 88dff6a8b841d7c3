//! The driver interface of an IOMMU instance (`struct iommu_ops`).
//!
//! One `Arc<dyn IommuOps>` is one IOMMU instance (`struct iommu_device`); several
//! instances of one driver share a [`DriverId`], as kernel instances share their
//! `iommu_ops`. Domains remember the driver that allocated them; the core refuses
//! to attach a domain to a device of another driver, and a driver refuses
//! (`EINVAL`) a domain of another instance it cannot use.
//!
//! Kernel: `include/linux/iommu.h` (`struct iommu_ops`), v6.12.

use std::any::Any;
use std::sync::Arc;

use uapi::Errno;

use crate::device::{Device, DeviceDesc};
use crate::fault::{IopfFault, PageResponseCode};
use crate::resv::ResvRegion;
use crate::user::UserData;
use crate::{Domain, DomainType};

/// Identifies a driver (the kernel compares `iommu_ops` pointers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DriverId(pub &'static str);

/// Device capabilities a driver reports (`enum iommu_cap`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cap {
    /// DMA is coherent with CPU caches (`IOMMU_CAP_CACHE_COHERENCY`).
    CacheCoherency,
    /// Domains can force coherency regardless of the device (`ENFORCE_CACHE_COHERENCY`).
    EnforceCacheCoherency,
    /// Hardware dirty tracking (`IOMMU_CAP_DIRTY_TRACKING`).
    DirtyTracking,
    /// Execute permission can be denied (`IOMMU_CAP_NOEXEC`).
    NoExec,
}

/// How devices are put into groups (`device_group`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GroupKey {
    /// A new group of its own (`generic_device_group`).
    Singleton,
    /// The group of any device probed earlier on this instance with one of these
    /// keys, else a new group known by all of them: PCI devices behind a bridge
    /// without ACS, DMA aliases, platform devices sharing a stream ID
    /// (see [`crate::topology`]).
    Shared(Vec<u64>),
}

/// What the driver says when it takes a device (`probe_device`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ProbeInfo {
    /// PASIDs the instance supports (0: none).
    pub max_pasids: u32,
    /// Translation is already on (kdump): attach the default domain lazily.
    pub attach_deferred: bool,
    /// The device's MSIs are isolated (interrupt remapping, or an MSI controller
    /// that tells devices apart): a DMA write cannot forge another device's
    /// interrupt (`msi_device_has_isolated_msi`).
    pub isolated_msi: bool,
}

/// The `IOMMU_HWPT_ALLOC_*` flags a driver sees in `domain_alloc_user`.
pub mod alloc_flags {
    /// The domain may become a nesting parent.
    pub const NEST_PARENT: u32 = 1 << 0;
    /// The domain tracks dirty pages.
    pub const DIRTY_TRACKING: u32 = 1 << 1;
    /// (iommufd only) a fault queue is attached.
    pub const FAULT_ID_VALID: u32 = 1 << 2;
    /// The domain will be attached at the requester ID of a device that also uses
    /// PASIDs, so it must coexist with PASID attachments (upstream's
    /// `IOMMU_HWPT_ALLOC_PASID`; the core asks for it for default domains).
    pub const PASID: u32 = 1 << 3;
}

/// Hardware information for `IOMMU_GET_HW_INFO`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HwInfo {
    /// `IOMMU_HW_INFO_TYPE_*` of `data`.
    pub data_type: u32,
    /// The driver's info struct, as bytes.
    pub data: Vec<u8>,
}

/// One IOMMU instance as its driver implements it.
pub trait IommuOps: Send + Sync + Any {
    /// The driver this instance belongs to.
    fn driver(&self) -> DriverId;

    /// A name for logs and the platform description.
    fn name(&self) -> &str;

    /// Takes a device (`probe_device`).
    ///
    /// # Errors
    /// `ENODEV` if the device is not behind this instance.
    fn probe_device(&self, desc: &DeviceDesc) -> Result<ProbeInfo, Errno>;

    /// Which group the device joins (`device_group`); by default the core's
    /// topology rules ([`crate::topology::device_group`]).
    fn device_group(&self, desc: &DeviceDesc) -> GroupKey {
        crate::topology::device_group(&desc.bus)
    }

    /// Whether the device has `cap` behind this instance (`capable`).
    fn capable(&self, dev: &Device, cap: Cap) -> bool;

    /// Hardware information (`hw_info`); `None` for a driver without it.
    /// `data_type` is the type userspace asked for (`IOMMU_HW_INFO_TYPE_DEFAULT`
    /// for the driver's own).
    fn hw_info(&self, dev: &Device, data_type: u32) -> Option<Result<HwInfo, Errno>> {
        let _ = (dev, data_type);
        None
    }

    /// A static domain every group of this driver uses as default (`default_domain`).
    fn default_domain(&self) -> Option<Arc<dyn Domain>> {
        None
    }

    /// The driver's static blocking domain (`blocked_domain`).
    fn blocked_domain(&self) -> Option<Arc<dyn Domain>> {
        None
    }

    /// The driver's static identity domain (`identity_domain`).
    fn identity_domain(&self) -> Option<Arc<dyn Domain>> {
        None
    }

    /// The default-domain type this device needs, if it has a preference
    /// (`def_domain_type`).
    fn def_domain_type(&self, dev: &Device) -> Option<DomainType> {
        let _ = dev;
        None
    }

    /// Allocates a paging domain for `dev` on this instance (`domain_alloc_paging`).
    ///
    /// # Errors
    /// `ENOMEM`, driver specific; `EOPNOTSUPP` if only legacy allocation exists.
    fn domain_alloc_paging(&self, dev: &Device) -> Result<Arc<dyn Domain>, Errno>;

    /// Allocates a paging domain with [`alloc_flags`] (`domain_alloc_paging_flags`);
    /// the core passes [`alloc_flags::PASID`] for groups with PASID-capable devices.
    /// A driver whose paging domains all support PASID needs nothing more than
    /// [`IommuOps::domain_alloc_paging`].
    ///
    /// # Errors
    /// `EOPNOTSUPP` for flags the driver does not support; as `domain_alloc_paging`.
    fn domain_alloc_paging_flags(
        &self,
        dev: &Device,
        flags: u32,
    ) -> Result<Arc<dyn Domain>, Errno> {
        let domain = self.domain_alloc_paging(dev)?;
        if flags & !alloc_flags::PASID != 0
            || flags & alloc_flags::PASID != 0 && !domain.supports_pasid()
        {
            return Err(Errno::OPNOTSUPP);
        }
        Ok(domain)
    }

    /// Legacy allocation by type without a device (`domain_alloc`).
    ///
    /// # Errors
    /// `EOPNOTSUPP` if unsupported.
    fn domain_alloc(&self, ty: DomainType) -> Result<Arc<dyn Domain>, Errno> {
        let _ = ty;
        Err(Errno::OPNOTSUPP)
    }

    /// Whether the driver implements [`IommuOps::domain_alloc_user`].
    fn has_domain_alloc_user(&self) -> bool {
        false
    }

    /// Allocates a domain from iommufd's request (`domain_alloc_user`): a paging
    /// domain with `alloc_flags` when `parent` is `None`, else a nested domain on
    /// `parent` described by `data`.
    ///
    /// # Errors
    /// Driver specific (`EOPNOTSUPP`, `EINVAL`, `EFAULT`, `ENOMEM`).
    fn domain_alloc_user(
        &self,
        dev: &Device,
        flags: u32,
        parent: Option<&Arc<dyn Domain>>,
        data: Option<&UserData<'_>>,
    ) -> Result<Arc<dyn Domain>, Errno> {
        let _ = (dev, flags, parent, data);
        Err(Errno::OPNOTSUPP)
    }

    /// The device's reserved regions (`get_resv_regions`).
    fn get_resv_regions(&self, dev: &Device) -> Vec<ResvRegion> {
        let _ = dev;
        Vec::new()
    }

    /// Enables I/O page faults for the device (`dev_enable_feat(IOPF)`).
    ///
    /// # Errors
    /// `ENODEV` if unsupported; `EBUSY` if already enabled.
    fn enable_iopf(&self, dev: &Device) -> Result<(), Errno> {
        let _ = dev;
        Err(Errno::NODEV)
    }

    /// Disables I/O page faults (`dev_disable_feat(IOPF)`).
    fn disable_iopf(&self, dev: &Device) {
        let _ = dev;
    }

    /// Completes a page request at the hardware (`page_response`).
    fn page_response(&self, dev: &Device, fault: &IopfFault, code: PageResponseCode) {
        let _ = (dev, fault, code);
    }

    /// PASID faults route to the nested domain at no-PASID (`user_pasid_table`).
    fn user_pasid_table(&self) -> bool {
        false
    }

    /// Downcast support (drivers and test commands).
    fn as_any(&self) -> &dyn Any;
}
