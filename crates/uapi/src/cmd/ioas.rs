//! IO address space (IOAS) commands: allocate, query and restrict IOVA ranges, map, copy and
//! unmap.
//!
//! An IOAS is the user-visible IOVA → user VA table; the kernel mirrors it into every
//! hardware page table attached to it.
//!
//! Kernel: `include/uapi/linux/iommufd.h` (v6.12).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Map/copy flag: use the caller's `iova` instead of letting the kernel choose one.
pub const IOMMU_IOAS_MAP_FIXED_IOVA: u32 = 1 << 0;
/// Map/copy flag: devices may write through the mapping.
pub const IOMMU_IOAS_MAP_WRITEABLE: u32 = 1 << 1;
/// Map/copy flag: devices may read through the mapping.
pub const IOMMU_IOAS_MAP_READABLE: u32 = 1 << 2;

/// Argument of `IOMMU_IOAS_ALLOC` (`struct iommu_ioas_alloc`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct IoasAlloc {
    /// Size of this struct as known to the caller.
    pub size: u32,
    /// No flags are defined; must be 0.
    pub flags: u32,
    /// Output: ID of the new IOAS.
    pub out_ioas_id: u32,
}

assert_layout!(
    IoasAlloc,
    size = 12,
    align = 4,
    size = 0,
    flags = 4,
    out_ioas_id = 8
);
ioctl_cmd!(
    IoasAlloc,
    IOMMU_IOAS_ALLOC,
    last = out_ioas_id,
    min_size = 12
);

/// One IOVA interval (`struct iommu_iova_range`); an element of the user arrays of
/// `IOMMU_IOAS_IOVA_RANGES` and `IOMMU_IOAS_ALLOW_IOVAS`.
#[repr(C, align(8))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct IovaRange {
    /// First IOVA of the interval.
    pub start: u64,
    /// Last IOVA of the interval, inclusive.
    pub last: u64,
}

assert_layout!(IovaRange, size = 16, align = 8, start = 0, last = 8);

/// Argument of `IOMMU_IOAS_IOVA_RANGES` (`struct iommu_ioas_iova_ranges`).
#[repr(C, align(8))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct IoasIovaRanges {
    /// Size of this struct as known to the caller.
    pub size: u32,
    /// IOAS to query.
    pub ioas_id: u32,
    /// Input: capacity of the `allowed_iovas` array. Output: number of ranges that exist
    /// (`EMSGSIZE` when larger than the capacity).
    pub num_iovas: u32,
    /// Must be 0.
    pub __reserved: u32,
    /// User pointer to an array of [`IovaRange`] that receives the usable ranges.
    pub allowed_iovas: u64,
    /// Output: the alignment every IOVA and length given to MAP/COPY must have.
    pub out_iova_alignment: u64,
}

assert_layout!(
    IoasIovaRanges,
    size = 32,
    align = 8,
    size = 0,
    ioas_id = 4,
    num_iovas = 8,
    __reserved = 12,
    allowed_iovas = 16,
    out_iova_alignment = 24,
);
ioctl_cmd!(
    IoasIovaRanges,
    IOMMU_IOAS_IOVA_RANGES,
    last = out_iova_alignment,
    min_size = 32
);

/// Argument of `IOMMU_IOAS_ALLOW_IOVAS` (`struct iommu_ioas_allow_iovas`).
#[repr(C, align(8))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct IoasAllowIovas {
    /// Size of this struct as known to the caller.
    pub size: u32,
    /// IOAS whose allowed set is replaced.
    pub ioas_id: u32,
    /// Number of entries in `allowed_iovas`; 0 clears the allowed set.
    pub num_iovas: u32,
    /// Must be 0.
    pub __reserved: u32,
    /// User pointer to an array of [`IovaRange`]: the new allowed set.
    pub allowed_iovas: u64,
}

assert_layout!(
    IoasAllowIovas,
    size = 24,
    align = 8,
    size = 0,
    ioas_id = 4,
    num_iovas = 8,
    __reserved = 12,
    allowed_iovas = 16,
);
ioctl_cmd!(
    IoasAllowIovas,
    IOMMU_IOAS_ALLOW_IOVAS,
    last = allowed_iovas,
    min_size = 24
);

/// Argument of `IOMMU_IOAS_MAP` (`struct iommu_ioas_map`).
#[repr(C, align(8))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct IoasMap {
    /// Size of this struct as known to the caller.
    pub size: u32,
    /// `IOMMU_IOAS_MAP_*` flags.
    pub flags: u32,
    /// IOAS to map into.
    pub ioas_id: u32,
    /// Must be 0.
    pub __reserved: u32,
    /// Start of the user memory to map.
    pub user_va: u64,
    /// Number of bytes to map.
    pub length: u64,
    /// Input with `IOMMU_IOAS_MAP_FIXED_IOVA`; output: the IOVA of the new mapping.
    pub iova: u64,
}

assert_layout!(
    IoasMap,
    size = 40,
    align = 8,
    size = 0,
    flags = 4,
    ioas_id = 8,
    __reserved = 12,
    user_va = 16,
    length = 24,
    iova = 32,
);
ioctl_cmd!(IoasMap, IOMMU_IOAS_MAP, last = iova, min_size = 40);

/// Argument of `IOMMU_IOAS_COPY` (`struct iommu_ioas_copy`).
#[repr(C, align(8))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct IoasCopy {
    /// Size of this struct as known to the caller.
    pub size: u32,
    /// `IOMMU_IOAS_MAP_*` flags for the new mapping.
    pub flags: u32,
    /// IOAS that receives the new mapping.
    pub dst_ioas_id: u32,
    /// IOAS whose existing mappings are shared.
    pub src_ioas_id: u32,
    /// Number of bytes to copy.
    pub length: u64,
    /// Input with `IOMMU_IOAS_MAP_FIXED_IOVA`; output: the IOVA of the new mapping.
    pub dst_iova: u64,
    /// First IOVA of the source range.
    pub src_iova: u64,
}

assert_layout!(
    IoasCopy,
    size = 40,
    align = 8,
    size = 0,
    flags = 4,
    dst_ioas_id = 8,
    src_ioas_id = 12,
    length = 16,
    dst_iova = 24,
    src_iova = 32,
);
ioctl_cmd!(IoasCopy, IOMMU_IOAS_COPY, last = src_iova, min_size = 40);

/// Argument of `IOMMU_IOAS_UNMAP` (`struct iommu_ioas_unmap`).
#[repr(C, align(8))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct IoasUnmap {
    /// Size of this struct as known to the caller.
    pub size: u32,
    /// IOAS to unmap from.
    pub ioas_id: u32,
    /// First IOVA of the range; `iova == 0` with `length == u64::MAX` unmaps everything.
    pub iova: u64,
    /// Input: length of the range. Output: number of bytes actually unmapped.
    pub length: u64,
}

assert_layout!(
    IoasUnmap,
    size = 24,
    align = 8,
    size = 0,
    ioas_id = 4,
    iova = 8,
    length = 16
);
ioctl_cmd!(IoasUnmap, IOMMU_IOAS_UNMAP, last = length, min_size = 24);
