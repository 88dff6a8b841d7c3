//! The iommufd selftest mock format: AMDv1 entries with a 2 KiB granule.
//!
//! Spec: the AMDv1 layout of [`super::amdv1`] (AMD IOMMU specification §2.2.3),
//! altered as generic_pt's `AMDV1_IOMMUFD_SELFTEST` variant does so that the IO
//! page size (2 KiB) differs from the CPU page size (4 KiB), as the kernel
//! selftest's `MOCK_IO_PAGE_SIZE` does.
//! Kernel: `drivers/iommu/generic_pt/fmt/iommu_mock.c`, `fmt/amdv1.h`;
//! `drivers/iommu/iommufd/selftest.c` (`MOCK_IO_PAGE_SIZE`, `MOCK_HUGE_PAGE_SIZE`).
//!
//! Differences from AMDv1:
//!
//! - granule 2 KiB; tables still 512 entries of 8 bytes (4 KiB), so an entry at
//!   level 1 covers 512 x 2 KiB = 1 MiB, the optional `MOCK_HUGE_PAGE_SIZE` leaf;
//! - the address field (bits 51:12) holds `address >> 11`, so output addresses are
//!   limited to 51 bits (generic_pt `PT_MAX_OUTPUT_ADDRESS_LG2 = 51`);
//! - at most 5 levels (56-bit input, `PT_MAX_TOP_LEVEL = 4`);
//! - A (bit 5) and D (bit 6) act as the software accessed/dirty bits the selftest
//!   sets through `IOMMU_TEST_OP_DIRTY`; dirty tracking exists only when the domain
//!   was created with it (`MockConfig::dirty`), otherwise `set_dirty_tracking`
//!   fails with `EOPNOTSUPP` like a domain without dirty ops.
//!
//! Partial unmap: whole leaf (the AMDv1 / generic_pt rule); the kernel's iommufd
//! core never unmaps part of a map call, which the 6.12 mock checks with its
//! START/LAST bits.

use uapi::Errno;

use super::amdv1::{amd_core_format_methods, AmdCore};
use crate::format::{Format, Geometry, PartialUnmap};

/// `MOCK_IO_PAGE_SIZE`: 2 KiB.
pub const MOCK_IO_PAGE_SIZE: u64 = 2048;
/// `MOCK_HUGE_PAGE_SIZE`: 512 x 2 KiB = 1 MiB.
pub const MOCK_HUGE_PAGE_SIZE: u64 = 512 * MOCK_IO_PAGE_SIZE;

/// Configuration of a mock table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MockConfig {
    /// Input width in bits, 21..=56 (the selftest aperture `[0x1000000, 0x7fffffff]`
    /// needs 31).
    pub va_lg2: u32,
    /// Whether the 1 MiB leaf is allowed (`MOCK_FLAGS_DEVICE_HUGE_IOVA`).
    pub huge: bool,
    /// Whether the domain has dirty tracking (`IOMMU_HWPT_ALLOC_DIRTY_TRACKING`).
    pub dirty: bool,
}

impl MockConfig {
    /// The selftest mock domain: 2 KiB pages only, dirty tracking available.
    pub const SELFTEST: MockConfig = MockConfig {
        va_lg2: 31,
        huge: false,
        dirty: true,
    };
    /// The selftest mock domain of a `MOCK_FLAGS_DEVICE_HUGE_IOVA` device.
    pub const SELFTEST_HUGE: MockConfig = MockConfig {
        va_lg2: 31,
        huge: true,
        dirty: true,
    };
    /// A 48-bit mock table with huge pages.
    pub const WIDE: MockConfig = MockConfig {
        va_lg2: 48,
        huge: true,
        dirty: true,
    };
}

/// The mock format.
#[derive(Clone, Debug)]
pub struct Mock {
    core: AmdCore,
    dirty: bool,
}

impl Format for Mock {
    type Config = MockConfig;
    const NAME: &'static str = "mock";
    const PARTIAL_UNMAP: PartialUnmap = PartialUnmap::WholeLeaf;
    const FIXED_RADIX: Option<(u32, u32)> = Some((11, 9));
    const MIN_RADIX: (u32, u32) = (11, 9);

    fn new(cfg: MockConfig) -> Result<Self, Errno> {
        if !(21..=56).contains(&cfg.va_lg2) {
            return Err(Errno::INVAL);
        }
        let levels = Geometry::levels_for(cfg.va_lg2, 11, 9);
        let leaf_levels = if cfg.huge { 0b11 } else { 0b01 };
        let geo = Geometry::new(11, 9, levels, cfg.va_lg2, 51, leaf_levels)?;
        Ok(Mock {
            core: AmdCore { geo },
            dirty: cfg.dirty,
        })
    }

    fn supports_dirty(&self) -> bool {
        self.dirty
    }

    amd_core_format_methods!();
}
