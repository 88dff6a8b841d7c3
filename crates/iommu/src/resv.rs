//! Reserved regions of a device (`struct iommu_resv_region`).
//!
//! Kernel: `include/linux/iommu.h` (`enum iommu_resv_type`), v6.12.

use crate::Prot;

/// What a reserved region is (`enum iommu_resv_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResvType {
    /// Must be mapped 1:1 (firmware DMA); the device cannot be blocked.
    Direct,
    /// Advertised 1:1 but may be relaxed; iommufd ignores it.
    DirectRelaxable,
    /// Never map anything here.
    Reserved,
    /// Hardware MSI window, not translated.
    Msi,
    /// Software-managed MSI window: doorbells are mapped here on demand.
    SwMsi,
}

/// One reserved IOVA region of a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResvRegion {
    /// First IOVA.
    pub start: u64,
    /// Length in bytes (non-zero).
    pub length: u64,
    /// Protection of a direct mapping.
    pub prot: Prot,
    /// Region type.
    pub ty: ResvType,
}

impl ResvRegion {
    /// Last IOVA of the region (inclusive), or `None` if it wraps.
    pub fn last(&self) -> Option<u64> {
        self.start.checked_add(self.length.checked_sub(1)?)
    }
}
