//! `IOMMU_FAULT_QUEUE_ALLOC` and the records read from and written to a fault fd.
//!
//! A fault fd delivers I/O page faults as [`HwptPgfault`] records (`read`) and accepts
//! [`HwptPageResponse`] records (`write`).
//!
//! Kernel: `include/uapi/linux/iommufd.h` (v6.12).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// [`HwptPgfault::flags`]: `pasid` is valid.
pub const IOMMU_PGFAULT_FLAGS_PASID_VALID: u32 = 1 << 0;
/// [`HwptPgfault::flags`]: this is the last fault of its group; respond with its `cookie`.
pub const IOMMU_PGFAULT_FLAGS_LAST_PAGE: u32 = 1 << 1;

/// [`HwptPgfault::perm`]: read access requested.
pub const IOMMU_PGFAULT_PERM_READ: u32 = 1 << 0;
/// [`HwptPgfault::perm`]: write access requested.
pub const IOMMU_PGFAULT_PERM_WRITE: u32 = 1 << 1;
/// [`HwptPgfault::perm`]: execute access requested (PCIe PASID prefix).
pub const IOMMU_PGFAULT_PERM_EXEC: u32 = 1 << 2;
/// [`HwptPgfault::perm`]: privileged access requested (PCIe PASID prefix).
pub const IOMMU_PGFAULT_PERM_PRIV: u32 = 1 << 3;

/// [`HwptPageResponse::code`]: the fault was handled; the device retries.
pub const IOMMUFD_PAGE_RESP_SUCCESS: u32 = 0;
/// [`HwptPageResponse::code`]: the fault could not be handled; the device does not retry.
pub const IOMMUFD_PAGE_RESP_INVALID: u32 = 1;

/// One I/O page fault record read from a fault fd (`struct iommu_hwpt_pgfault`).
#[repr(C, align(8))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct HwptPgfault {
    /// `IOMMU_PGFAULT_FLAGS_*`.
    pub flags: u32,
    /// iommufd device object ID of the faulting device.
    pub dev_id: u32,
    /// PASID of the request, if `IOMMU_PGFAULT_FLAGS_PASID_VALID`.
    pub pasid: u32,
    /// PCI page request group index.
    pub grpid: u32,
    /// `IOMMU_PGFAULT_PERM_*`.
    pub perm: u32,
    /// Zero.
    pub __reserved: u32,
    /// Faulting address.
    pub addr: u64,
    /// Hint of how many bytes the device will access; 0 when unknown.
    pub length: u32,
    /// Kernel-chosen cookie of the fault group, echoed back in the response.
    pub cookie: u32,
}

assert_layout!(
    HwptPgfault,
    size = 40,
    align = 8,
    flags = 0,
    dev_id = 4,
    pasid = 8,
    grpid = 12,
    perm = 16,
    __reserved = 20,
    addr = 24,
    length = 32,
    cookie = 36,
);

/// One page response record written to a fault fd (`struct iommu_hwpt_page_response`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct HwptPageResponse {
    /// Cookie of the fault group being answered.
    pub cookie: u32,
    /// `IOMMUFD_PAGE_RESP_*`.
    pub code: u32,
}

assert_layout!(HwptPageResponse, size = 8, align = 4, cookie = 0, code = 4);

/// Argument of `IOMMU_FAULT_QUEUE_ALLOC` (`struct iommu_fault_alloc`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct FaultAlloc {
    /// Size of this struct as known to the caller.
    pub size: u32,
    /// No flags are defined; must be 0.
    pub flags: u32,
    /// Output: ID of the new fault object.
    pub out_fault_id: u32,
    /// Output: the new fault fd.
    pub out_fault_fd: u32,
}

assert_layout!(
    FaultAlloc,
    size = 16,
    align = 4,
    size = 0,
    flags = 4,
    out_fault_id = 8,
    out_fault_fd = 12,
);
ioctl_cmd!(
    FaultAlloc,
    IOMMU_FAULT_QUEUE_ALLOC,
    last = out_fault_fd,
    min_size = 16
);
