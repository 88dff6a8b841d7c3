//! The page-table formats, one per file, each citing the specification it follows.
//!
//! Kernel: `drivers/iommu/generic_pt/fmt/` (one header per format).

pub mod amdv1;
pub mod armv8;
pub mod mock;
pub mod vtdss;
pub mod x86_64;

pub use amdv1::{AmdV1, AmdV1Config};
pub use armv8::{ArmV8, ArmV8Config, Granule, Stage};
pub use mock::{Mock, MockConfig};
pub use vtdss::{VtdSs, VtdSsConfig};
pub use x86_64::{X86_64Config, X86_64};

use uapi::Errno;

use crate::format::Geometry;

/// Bits `hi..=lo` set.
pub(crate) const fn genmask(hi: u32, lo: u32) -> u64 {
    (u64::MAX >> (63 - hi)) & (u64::MAX << lo)
}

/// Bit `n` set.
pub(crate) const fn bit(n: u32) -> u64 {
    1 << n
}

/// Leaf levels allowed by a `max_leaf_lg2` cap over `candidates` (a level bitmap).
pub(crate) fn cap_leaf_levels(
    candidates: u32,
    granule_lg2: u32,
    items_lg2: u32,
    max_leaf_lg2: u32,
) -> u32 {
    (0..32)
        .filter(|&level| candidates & (1 << level) != 0)
        .filter(|&level| granule_lg2 + level * items_lg2 <= max_leaf_lg2)
        .fold(0, |acc, level| acc | 1 << level)
}

/// The geometry of the x86 4-KiB radix (VT-d second stage and x86-64 share
/// it): 4 KiB granule, 512 entries per table, 4 or 5 levels for a 31..=57-bit
/// input, up to 52-bit output, leaves at the PTE, PDE and PDPE levels (capped
/// by `max_leaf_lg2`).
///
/// # Errors
/// `EINVAL` for widths outside those ranges.
pub(crate) fn x86_radix_geometry(
    va_lg2: u32,
    oa_lg2: u32,
    max_leaf_lg2: u32,
) -> Result<Geometry, Errno> {
    if !(31..=57).contains(&va_lg2) || !(13..=52).contains(&oa_lg2) {
        return Err(Errno::INVAL);
    }
    let levels = Geometry::levels_for(va_lg2, 12, 9);
    let leaf_levels = cap_leaf_levels(0b111, 12, 9, max_leaf_lg2);
    Geometry::new(12, 9, levels, va_lg2, oa_lg2, leaf_levels)
}

#[cfg(test)]
mod tests {
    use super::genmask;

    #[test]
    fn genmask_matches_linux_genmask_ull() {
        assert_eq!(genmask(51, 12), 0x000f_ffff_ffff_f000);
        assert_eq!(genmask(63, 0), u64::MAX);
        assert_eq!(genmask(11, 9), 0xe00);
    }
}
