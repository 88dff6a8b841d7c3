//! Hardware page table (HWPT) commands: allocation (paging or nested), dirty tracking and
//! cache invalidation, with the Intel VT-d driver data they may carry.
//!
//! Kernel: `include/uapi/linux/iommufd.h` (v6.12).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `HwptAlloc::flags`: the HWPT may later be the parent of nested HWPTs.
pub const IOMMU_HWPT_ALLOC_NEST_PARENT: u32 = 1 << 0;
/// `HwptAlloc::flags`: allocate a domain that can track dirty IOVAs.
pub const IOMMU_HWPT_ALLOC_DIRTY_TRACKING: u32 = 1 << 1;
/// `HwptAlloc::flags`: `fault_id` is valid; I/O page faults go to that fault object.
pub const IOMMU_HWPT_FAULT_ID_VALID: u32 = 1 << 2;

/// [`HwptVtdS1::flags`]: supervisor requests enabled.
pub const IOMMU_VTD_S1_SRE: u64 = 1 << 0;
/// [`HwptVtdS1::flags`]: extended access flag enabled.
pub const IOMMU_VTD_S1_EAFE: u64 = 1 << 1;
/// [`HwptVtdS1::flags`]: write protect enabled.
pub const IOMMU_VTD_S1_WPE: u64 = 1 << 2;

/// `HwptAlloc::data_type`: no driver data; the HWPT is a kernel-managed paging domain.
pub const IOMMU_HWPT_DATA_NONE: u32 = 0;
/// `HwptAlloc::data_type`: driver data is a [`HwptVtdS1`].
pub const IOMMU_HWPT_DATA_VTD_S1: u32 = 1;

/// `HwptSetDirtyTracking::flags`: enable (set) or disable (clear) dirty tracking.
pub const IOMMU_HWPT_DIRTY_TRACKING_ENABLE: u32 = 1;

/// `HwptGetDirtyBitmap::flags`: report dirty IOVAs without clearing the dirty state.
pub const IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR: u32 = 1 << 0;

/// `HwptInvalidate::data_type`: entries are [`HwptVtdS1Invalidate`].
pub const IOMMU_HWPT_INVALIDATE_DATA_VTD_S1: u32 = 0;

/// [`HwptVtdS1Invalidate::flags`]: invalidate only leaf entries, not the paging-structure caches.
pub const IOMMU_VTD_INV_FLAGS_LEAF: u32 = 1 << 0;

/// Intel VT-d stage-1 page table description, the driver data of a nested HWPT
/// (`struct iommu_hwpt_vtd_s1`).
#[repr(C, align(8))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct HwptVtdS1 {
    /// `IOMMU_VTD_S1_*` flags.
    pub flags: u64,
    /// Guest physical address of the stage-1 page table root.
    pub pgtbl_addr: u64,
    /// Input address width of the stage-1 table.
    pub addr_width: u32,
    /// Must be 0.
    pub __reserved: u32,
}

assert_layout!(
    HwptVtdS1,
    size = 24,
    align = 8,
    flags = 0,
    pgtbl_addr = 8,
    addr_width = 16,
    __reserved = 20,
);

/// Argument of `IOMMU_HWPT_ALLOC` (`struct iommu_hwpt_alloc`).
///
/// The first ABI version ended at `__reserved` (min size 24); `data_type`, `data_len`,
/// `data_uptr`, `fault_id` and `__reserved2` were appended later and read as zero for
/// shorter callers.
#[repr(C, align(8))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct HwptAlloc {
    /// Size of this struct as known to the caller.
    pub size: u32,
    /// `IOMMU_HWPT_ALLOC_*` / `IOMMU_HWPT_FAULT_ID_VALID` flags.
    pub flags: u32,
    /// Device the HWPT is allocated for.
    pub dev_id: u32,
    /// Parent: an IOAS (paging HWPT) or a paging HWPT (nested HWPT).
    pub pt_id: u32,
    /// Output: ID of the new HWPT.
    pub out_hwpt_id: u32,
    /// Must be 0.
    pub __reserved: u32,
    /// `IOMMU_HWPT_DATA_*`: the type of the driver data at `data_uptr`.
    pub data_type: u32,
    /// Length of the driver data; 0 exactly when `data_type` is `IOMMU_HWPT_DATA_NONE`.
    pub data_len: u32,
    /// User pointer to the driver data.
    pub data_uptr: u64,
    /// Fault object receiving I/O page faults, if `IOMMU_HWPT_FAULT_ID_VALID` is set.
    pub fault_id: u32,
    /// Reserved; the kernel does not check it.
    pub __reserved2: u32,
}

assert_layout!(
    HwptAlloc,
    size = 48,
    align = 8,
    size = 0,
    flags = 4,
    dev_id = 8,
    pt_id = 12,
    out_hwpt_id = 16,
    __reserved = 20,
    data_type = 24,
    data_len = 28,
    data_uptr = 32,
    fault_id = 40,
    __reserved2 = 44,
);
ioctl_cmd!(
    HwptAlloc,
    IOMMU_HWPT_ALLOC,
    last = __reserved,
    min_size = 24
);

/// Argument of `IOMMU_HWPT_SET_DIRTY_TRACKING` (`struct iommu_hwpt_set_dirty_tracking`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct HwptSetDirtyTracking {
    /// Size of this struct as known to the caller.
    pub size: u32,
    /// `IOMMU_HWPT_DIRTY_TRACKING_ENABLE` or 0.
    pub flags: u32,
    /// Paging HWPT to change.
    pub hwpt_id: u32,
    /// Reserved; the kernel does not check it.
    pub __reserved: u32,
}

assert_layout!(
    HwptSetDirtyTracking,
    size = 16,
    align = 4,
    size = 0,
    flags = 4,
    hwpt_id = 8,
    __reserved = 12,
);
ioctl_cmd!(
    HwptSetDirtyTracking,
    IOMMU_HWPT_SET_DIRTY_TRACKING,
    last = __reserved,
    min_size = 16
);

/// Argument of `IOMMU_HWPT_GET_DIRTY_BITMAP` (`struct iommu_hwpt_get_dirty_bitmap`).
#[repr(C, align(8))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct HwptGetDirtyBitmap {
    /// Size of this struct as known to the caller.
    pub size: u32,
    /// Paging HWPT to read.
    pub hwpt_id: u32,
    /// `IOMMU_HWPT_GET_DIRTY_BITMAP_*` flags.
    pub flags: u32,
    /// Must be 0.
    pub __reserved: u32,
    /// IOVA that bit 0 of the bitmap describes.
    pub iova: u64,
    /// Length of the IOVA range to report.
    pub length: u64,
    /// Bytes of IOVA each bitmap bit stands for.
    pub page_size: u64,
    /// User pointer to the bitmap (little-endian `u64` words); bits are only ever set.
    pub data: u64,
}

assert_layout!(
    HwptGetDirtyBitmap,
    size = 48,
    align = 8,
    size = 0,
    hwpt_id = 4,
    flags = 8,
    __reserved = 12,
    iova = 16,
    length = 24,
    page_size = 32,
    data = 40,
);
ioctl_cmd!(
    HwptGetDirtyBitmap,
    IOMMU_HWPT_GET_DIRTY_BITMAP,
    last = data,
    min_size = 48
);

/// One Intel VT-d stage-1 invalidation request (`struct iommu_hwpt_vtd_s1_invalidate`).
#[repr(C, align(8))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct HwptVtdS1Invalidate {
    /// Start address, 4 KiB aligned; 0 together with `npages == u64::MAX` means everything.
    pub addr: u64,
    /// Number of 4 KiB pages.
    pub npages: u64,
    /// `IOMMU_VTD_INV_FLAGS_*`.
    pub flags: u32,
    /// Must be 0.
    pub __reserved: u32,
}

assert_layout!(
    HwptVtdS1Invalidate,
    size = 24,
    align = 8,
    addr = 0,
    npages = 8,
    flags = 16,
    __reserved = 20,
);

/// Argument of `IOMMU_HWPT_INVALIDATE` (`struct iommu_hwpt_invalidate`).
#[repr(C, align(8))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct HwptInvalidate {
    /// Size of this struct as known to the caller.
    pub size: u32,
    /// Nested HWPT whose caches are invalidated.
    pub hwpt_id: u32,
    /// User pointer to an array of `entry_num` driver-specific requests.
    pub data_uptr: u64,
    /// Type of every request in the array (`IOMMU_HWPT_INVALIDATE_DATA_*`).
    pub data_type: u32,
    /// Size in bytes of one request.
    pub entry_len: u32,
    /// Input: number of requests. Output: number of requests handled.
    pub entry_num: u32,
    /// Must be 0.
    pub __reserved: u32,
}

assert_layout!(
    HwptInvalidate,
    size = 32,
    align = 8,
    size = 0,
    hwpt_id = 4,
    data_uptr = 8,
    data_type = 16,
    entry_len = 20,
    entry_num = 24,
    __reserved = 28,
);
ioctl_cmd!(
    HwptInvalidate,
    IOMMU_HWPT_INVALIDATE,
    last = __reserved,
    min_size = 32
);
