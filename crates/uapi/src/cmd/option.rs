//! `IOMMU_OPTION`: get or set a context-wide or per-IOAS option.
//!
//! Kernel: `include/uapi/linux/iommufd.h` (`struct iommu_option`, v6.12).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Option: how pinned pages are charged against `RLIMIT_MEMLOCK` (0 per user, 1 per
/// process). Context-wide, so `object_id` must be 0.
pub const IOMMU_OPTION_RLIMIT_MODE: u32 = 0;
/// Option: whether contiguous pages may be mapped with large IOPTEs (1, the default) or
/// only with `PAGE_SIZE` entries (0). Per IOAS; `object_id` names the IOAS.
pub const IOMMU_OPTION_HUGE_PAGES: u32 = 1;

/// Option operation: store `val64`.
pub const IOMMU_OPTION_OP_SET: u16 = 0;
/// Option operation: return the current value in `val64`.
pub const IOMMU_OPTION_OP_GET: u16 = 1;

/// Argument of `IOMMU_OPTION` (`struct iommu_option`).
///
/// Named `IommuOption` rather than `Option` so that it cannot shadow the prelude's `Option`.
#[repr(C, align(8))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct IommuOption {
    /// Size of this struct as known to the caller.
    pub size: u32,
    /// One of the `IOMMU_OPTION_*` option IDs.
    pub option_id: u32,
    /// `IOMMU_OPTION_OP_SET` or `IOMMU_OPTION_OP_GET`.
    pub op: u16,
    /// Must be 0.
    pub __reserved: u16,
    /// Object the option applies to, or 0 for a context-wide option.
    pub object_id: u32,
    /// Value to set, or the value read back.
    pub val64: u64,
}

assert_layout!(
    IommuOption,
    size = 24,
    align = 8,
    size = 0,
    option_id = 4,
    op = 8,
    __reserved = 10,
    object_id = 12,
    val64 = 16,
);
ioctl_cmd!(IommuOption, IOMMU_OPTION, last = val64, min_size = 24);
