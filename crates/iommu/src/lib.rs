//! The IOMMU core model: devices and groups, domains and their driver operations,
//! DMA ownership, default and blocking domains, attach handles, reserved regions and
//! software MSI, I/O page faults, and page-size selection for map and unmap.
//!
//! iommufd reaches IOMMU hardware only through these types and traits, as the
//! kernel's iommufd reaches it only through `iommu_ops` and `iommu_domain_ops`.
//! Drivers (the selftest mock, the real-format drivers) implement [`IommuOps`] and
//! [`Domain`] in the `mock` crate.
//!
//! Kernel: `drivers/iommu/iommu.c`, `dma-iommu.c`, `io-pgfault.c`,
//! `include/linux/iommu.h` (v6.12).

#![forbid(unsafe_code)]

pub mod device;
pub mod dma;
mod domain;
pub mod fault;
pub mod iova;
pub mod map;
pub mod msi;
pub mod ops;
pub mod platform;
mod prot;
pub mod resv;
pub mod topology;
pub mod user;

pub use device::{AttachHandle, Device, DeviceDesc, Group, OwnerId, NO_PASID};
pub use dma::{DmaHandle, DMA_AHEAD};
pub use domain::{
    live_domains, DirtyOps, DirtyRecorder, DmaRun, DmaTranslation, Domain, DomainCore, DomainType,
    Geometry, DIRTY_NO_CLEAR,
};
pub use ops::{Cap, DriverId, GroupKey, HwInfo, IommuOps, ProbeInfo};
pub use platform::{paging_domain_alloc, DefaultPolicy, Platform};
pub use prot::Prot;
pub use resv::{ResvRegion, ResvType};
pub use user::{UserData, UserDataArray, UserRead};
