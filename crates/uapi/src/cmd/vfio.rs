//! VFIO compatibility: `IOMMU_VFIO_IOAS`, and the VFIO type1 container structs and
//! constants that iommufd serves in place of the VFIO container.
//!
//! Only the type1 subset that iommufd's compatibility layer implements is mirrored here.
//! Flexible array members (`iova_ranges[]`, `data[]`) are not fields: they start at
//! `size_of::<Self>()`.
//!
//! Kernel: `include/uapi/linux/iommufd.h` (`struct iommu_vfio_ioas`),
//! `include/uapi/linux/vfio.h` (v6.12).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `IOMMU_VFIO_IOAS` op: report the current compatibility IOAS.
pub const IOMMU_VFIO_IOAS_GET: u16 = 0;
/// `IOMMU_VFIO_IOAS` op: make `ioas_id` the compatibility IOAS.
pub const IOMMU_VFIO_IOAS_SET: u16 = 1;
/// `IOMMU_VFIO_IOAS` op: forget the compatibility IOAS.
pub const IOMMU_VFIO_IOAS_CLEAR: u16 = 2;

/// Argument of `IOMMU_VFIO_IOAS` (`struct iommu_vfio_ioas`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct VfioIoas {
    /// Size of this struct as known to the caller.
    pub size: u32,
    /// Input for `SET`, output for `GET`: the compatibility IOAS.
    pub ioas_id: u32,
    /// One of `IOMMU_VFIO_IOAS_{GET,SET,CLEAR}`.
    pub op: u16,
    /// Must be 0.
    pub __reserved: u16,
}

assert_layout!(
    VfioIoas,
    size = 12,
    align = 4,
    size = 0,
    ioas_id = 4,
    op = 8,
    __reserved = 10
);
ioctl_cmd!(VfioIoas, IOMMU_VFIO_IOAS, last = __reserved, min_size = 12);

/// The value `VFIO_GET_API_VERSION` returns.
pub const VFIO_API_VERSION: i32 = 0;

/// Extension / IOMMU model: the original type1 IOMMU.
pub const VFIO_TYPE1_IOMMU: u32 = 1;
/// Extension / IOMMU model: POWER sPAPR TCE (never supported by iommufd).
pub const VFIO_SPAPR_TCE_IOMMU: u32 = 2;
/// Extension / IOMMU model: type1 version 2 (no partial unmaps).
#[expect(non_upper_case_globals, reason = "keep the C name")]
pub const VFIO_TYPE1v2_IOMMU: u32 = 3;
/// Extension: whether every domain of the container enforces DMA cache coherency.
pub const VFIO_DMA_CC_IOMMU: u32 = 4;
/// Extension: POWER EEH (never supported by iommufd).
pub const VFIO_EEH: u32 = 5;
/// Extension / IOMMU model: type1 with nesting (not supported by iommufd).
pub const VFIO_TYPE1_NESTING_IOMMU: u32 = 6;
/// Extension / IOMMU model: POWER sPAPR TCE v2 (never supported by iommufd).
#[expect(non_upper_case_globals, reason = "keep the C name")]
pub const VFIO_SPAPR_TCE_v2_IOMMU: u32 = 7;
/// Extension / IOMMU model: no IOMMU at all (unsafe, opt-in).
pub const VFIO_NOIOMMU_IOMMU: u32 = 8;
/// Extension: `VFIO_DMA_UNMAP_FLAG_ALL` is supported.
pub const VFIO_UNMAP_ALL: u32 = 9;
/// Extension: `VFIO_DMA_MAP_FLAG_VADDR` / `VFIO_DMA_UNMAP_FLAG_VADDR` (not supported by iommufd).
pub const VFIO_UPDATE_VADDR: u32 = 10;

/// `VfioIommuType1Info::flags`: `iova_pgsizes` is valid.
pub const VFIO_IOMMU_INFO_PGSIZES: u32 = 1 << 0;
/// `VfioIommuType1Info::flags`: a capability chain may follow the struct.
pub const VFIO_IOMMU_INFO_CAPS: u32 = 1 << 1;

/// Capability ID of [`VfioIommuType1InfoCapIovaRange`].
pub const VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE: u16 = 1;
/// Capability ID of the migration capability (not produced by iommufd).
pub const VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION: u16 = 2;
/// Capability ID of [`VfioIommuType1InfoDmaAvail`].
pub const VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL: u16 = 3;

/// `VfioIommuType1DmaMap::flags`: the device may read.
pub const VFIO_DMA_MAP_FLAG_READ: u32 = 1 << 0;
/// `VfioIommuType1DmaMap::flags`: the device may write.
pub const VFIO_DMA_MAP_FLAG_WRITE: u32 = 1 << 1;
/// `VfioIommuType1DmaMap::flags`: update the user VA of an existing mapping (rejected by iommufd).
pub const VFIO_DMA_MAP_FLAG_VADDR: u32 = 1 << 2;

/// `VfioIommuType1DmaUnmap::flags`: return a dirty bitmap (rejected by iommufd).
pub const VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP: u32 = 1 << 0;
/// `VfioIommuType1DmaUnmap::flags`: unmap everything (`iova` and `size` must be 0).
pub const VFIO_DMA_UNMAP_FLAG_ALL: u32 = 1 << 1;
/// `VfioIommuType1DmaUnmap::flags`: invalidate the user VA only (rejected by iommufd).
pub const VFIO_DMA_UNMAP_FLAG_VADDR: u32 = 1 << 2;

/// Header of every entry of a VFIO capability chain (`struct vfio_info_cap_header`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct VfioInfoCapHeader {
    /// Capability ID (`VFIO_IOMMU_TYPE1_INFO_*`).
    pub id: u16,
    /// Version of that capability's layout.
    pub version: u16,
    /// Offset of the next capability from the start of the info struct; 0 ends the chain.
    pub next: u32,
}

assert_layout!(
    VfioInfoCapHeader,
    size = 8,
    align = 4,
    id = 0,
    version = 2,
    next = 4
);

/// Argument of `VFIO_IOMMU_GET_INFO` (`struct vfio_iommu_type1_info`).
#[repr(C, align(8))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct VfioIommuType1Info {
    /// Input: size of the user buffer. Output: size needed for the full capability chain.
    pub argsz: u32,
    /// Output: `VFIO_IOMMU_INFO_*` flags.
    pub flags: u32,
    /// Output: bitmap of the supported IOMMU page sizes.
    pub iova_pgsizes: u64,
    /// Output: offset of the first capability, or 0 if the chain did not fit in `argsz`.
    pub cap_offset: u32,
    /// Padding declared by the header.
    pub pad: u32,
}

assert_layout!(
    VfioIommuType1Info,
    size = 24,
    align = 8,
    argsz = 0,
    flags = 4,
    iova_pgsizes = 8,
    cap_offset = 16,
    pad = 20,
);

/// One IOVA interval of the IOVA-range capability (`struct vfio_iova_range`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct VfioIovaRange {
    /// First IOVA.
    pub start: u64,
    /// Last IOVA, inclusive despite the name.
    pub end: u64,
}

assert_layout!(VfioIovaRange, size = 16, align = 8, start = 0, end = 8);

/// The IOVA-range capability (`struct vfio_iommu_type1_info_cap_iova_range`), without its
/// trailing flexible array of `nr_iovas` [`VfioIovaRange`] entries.
///
/// The flexible array of 8-byte-aligned ranges gives the C struct an alignment of 8, so
/// this type is `align(8)` too.
#[repr(C, align(8))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct VfioIommuType1InfoCapIovaRange {
    /// Chain header; `id` is `VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE`.
    pub header: VfioInfoCapHeader,
    /// Number of ranges that follow.
    pub nr_iovas: u32,
    /// Unused, zero.
    pub reserved: u32,
}

assert_layout!(
    VfioIommuType1InfoCapIovaRange,
    size = 16,
    align = 8,
    header = 0,
    nr_iovas = 8,
    reserved = 12,
);

/// The DMA-mappings-available capability (`struct vfio_iommu_type1_info_dma_avail`).
///
/// 12 bytes with 4-byte alignment; in a capability chain it is followed by 4 bytes of
/// padding so that the next capability starts 8-byte aligned.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct VfioIommuType1InfoDmaAvail {
    /// Chain header; `id` is `VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL`.
    pub header: VfioInfoCapHeader,
    /// Number of further DMA mappings allowed (iommufd reports `u32::MAX`).
    pub avail: u32,
}

assert_layout!(
    VfioIommuType1InfoDmaAvail,
    size = 12,
    align = 4,
    header = 0,
    avail = 8
);

/// Argument of `VFIO_IOMMU_MAP_DMA` (`struct vfio_iommu_type1_dma_map`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct VfioIommuType1DmaMap {
    /// Size of this struct as known to the caller; at least 32.
    pub argsz: u32,
    /// `VFIO_DMA_MAP_FLAG_*`.
    pub flags: u32,
    /// User virtual address of the memory to map.
    pub vaddr: u64,
    /// IOVA to map at (always fixed).
    pub iova: u64,
    /// Number of bytes to map.
    pub size: u64,
}

assert_layout!(
    VfioIommuType1DmaMap,
    size = 32,
    align = 8,
    argsz = 0,
    flags = 4,
    vaddr = 8,
    iova = 16,
    size = 24,
);

/// Argument of `VFIO_IOMMU_UNMAP_DMA` (`struct vfio_iommu_type1_dma_unmap`), without the
/// trailing flexible `data[]` used only by the (unsupported) dirty-bitmap flag.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct VfioIommuType1DmaUnmap {
    /// Size of this struct as known to the caller; at least 24.
    pub argsz: u32,
    /// `VFIO_DMA_UNMAP_FLAG_*`.
    pub flags: u32,
    /// First IOVA to unmap.
    pub iova: u64,
    /// Input: number of bytes to unmap. Output: number of bytes unmapped.
    pub size: u64,
}

assert_layout!(
    VfioIommuType1DmaUnmap,
    size = 24,
    align = 8,
    argsz = 0,
    flags = 4,
    iova = 8,
    size = 16,
);
