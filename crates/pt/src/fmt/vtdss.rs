//! Intel VT-d second-stage page tables, 3, 4 or 5 levels.
//!
//! Spec: Intel Virtualization Technology for Directed I/O Architecture
//! Specification, §3.7 "Second-Stage Translation" (levels, page sizes, the
//! accessed/dirty flags) and §9.8 "Second-Stage Paging Entries" (the formats of
//! SS-PML5E, SS-PML4E, SS-PDPE, SS-PDE and SS-PTE).
//! Kernel: `drivers/iommu/generic_pt/fmt/vtdss.h`, `drivers/iommu/intel/iommu.h`.
//!
//! Level names (generic_pt numbering): 0 = SS-PTE (4 KiB), 1 = SS-PDE (2 MiB with
//! PS), 2 = SS-PDPE (1 GiB with PS), 3 = SS-PML4E, 4 = SS-PML5E.
//!
//! Entry bits (§9.8, common to all SS entries unless noted):
//!
//! | bit | name | meaning |
//! |---|---|---|
//! | 0 | R | read allowed |
//! | 1 | W | write allowed |
//! | 7 | PS | SS-PDE/SS-PDPE only: the entry maps a 2 MiB / 1 GiB page |
//! | 8 | A | accessed (set by hardware when SSADE is on) |
//! | 9 | D | dirty, leaves only (set on writes when SSADE is on) |
//! | 11 | SNP | snoop: force a coherent access |
//! | 51:12 | ADDR | next table or page frame |
//!
//! There is no present bit: an entry with neither R nor W is not present (as
//! generic_pt's `vtdss_pt_iommu_set_prot` notes). Table entries set R and W so that the
//! leaf alone decides permissions, as Linux does. `Prot::CACHE` maps to SNP (the
//! driver sets SNP when it enforces coherency); execute permission (bit 2) is not
//! used by DMA remapping of requests without PASID and is never set.
//!
//! Partial unmap: whole leaf (generic_pt); the 6.12 Intel driver likewise grows the
//! unmap to the full large page ("cope with horrid API") rather than splitting.

use uapi::Errno;

use super::{bit, genmask, x86_radix_geometry};
use crate::format::{EntryKind, Format, Geometry, PartialUnmap};
use crate::Prot;

/// Read (§9.8).
pub const R: u64 = bit(0);
/// Write (§9.8).
pub const W: u64 = bit(1);
/// Page size, SS-PDE/SS-PDPE only (§9.8).
pub const PS: u64 = bit(7);
/// Accessed (§9.8, §3.7 accessed/dirty flags).
pub const A: u64 = bit(8);
/// Dirty, leaves only (§9.8).
pub const D: u64 = bit(9);
/// Snoop (§9.8).
pub const SNP: u64 = bit(11);
/// Address field, bits 51:12.
pub const ADDR: u64 = genmask(51, 12);

/// Configuration of a VT-d second-stage table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VtdSsConfig {
    /// Input (guest-physical / IOVA) width in bits, 31..=57: > 48 gives 5 levels,
    /// > 39 gives 4, otherwise 3 (the AGAW choice of `vtdss_pt_iommu_fmt_init`).
    pub va_lg2: u32,
    /// Host address width in bits, 13..=52.
    pub oa_lg2: u32,
    /// Largest leaf, lg2 bytes: 12, 21 (SLLPS bit 0) or 30 (SLLPS bit 1).
    pub max_leaf_lg2: u32,
}

impl VtdSsConfig {
    /// A 4-level table (48-bit IOVA) with 4 KiB, 2 MiB and 1 GiB pages.
    pub const FOUR_LEVEL: VtdSsConfig = VtdSsConfig {
        va_lg2: 48,
        oa_lg2: 52,
        max_leaf_lg2: 30,
    };
    /// A 5-level table (57-bit IOVA) with 4 KiB, 2 MiB and 1 GiB pages.
    pub const FIVE_LEVEL: VtdSsConfig = VtdSsConfig {
        va_lg2: 57,
        oa_lg2: 52,
        max_leaf_lg2: 30,
    };
}

/// The VT-d second-stage format.
#[derive(Clone, Debug)]
pub struct VtdSs {
    geo: Geometry,
}

impl Format for VtdSs {
    type Config = VtdSsConfig;
    const NAME: &'static str = "vtdss";
    const PARTIAL_UNMAP: PartialUnmap = PartialUnmap::WholeLeaf;
    const FIXED_RADIX: Option<(u32, u32)> = Some((12, 9));
    const MIN_RADIX: (u32, u32) = (12, 9);

    fn new(cfg: VtdSsConfig) -> Result<Self, Errno> {
        // §3.7: leaves at SS-PTE, and with PS at SS-PDE / SS-PDPE.
        let geo = x86_radix_geometry(cfg.va_lg2, cfg.oa_lg2, cfg.max_leaf_lg2)?;
        Ok(VtdSs { geo })
    }

    fn geometry(&self) -> Geometry {
        self.geo
    }

    fn supports_dirty(&self) -> bool {
        true
    }

    #[inline]
    fn entry_kind(&self, level: u32, raw: u64) -> EntryKind {
        if raw & (R | W) == 0 {
            EntryKind::Empty
        } else if level == 0 || (level <= 2 && raw & PS != 0) {
            EntryKind::Leaf
        } else {
            EntryKind::Table
        }
    }

    #[inline]
    fn table_pa(&self, raw: u64) -> u64 {
        raw & ADDR
    }

    #[inline(always)]
    fn accessed_leaf0(&self, raw: u64) -> Option<u64> {
        // An SS-PTE is a leaf whenever R or W is set; ADDR is 4 KiB aligned.
        (raw & (R | W) != 0 && raw & A != 0).then_some(raw & ADDR)
    }

    fn encode_table(&self, _level: u32, table_pa: u64) -> u64 {
        R | W | (table_pa & ADDR)
    }

    fn leaf_attrs(&self, level: u32, prot: Prot) -> Result<u64, Errno> {
        if !prot.intersects(Prot::READ | Prot::WRITE) {
            return Err(Errno::INVAL);
        }
        let mut attrs = if level > 0 { PS } else { 0 };
        if prot.contains(Prot::READ) {
            attrs |= R;
        }
        if prot.contains(Prot::WRITE) {
            attrs |= W;
        }
        if prot.contains(Prot::CACHE) {
            attrs |= SNP;
        }
        Ok(attrs)
    }

    #[inline]
    fn oa_bits(&self, pa: u64) -> u64 {
        pa & ADDR
    }

    #[inline]
    fn leaf_pa(&self, level: u32, raw: u64) -> u64 {
        raw & ADDR & !((1u64 << self.geo.level_shift(level)) - 1)
    }

    #[inline]
    fn leaf_prot(&self, _level: u32, raw: u64) -> Prot {
        let mut prot = Prot::empty();
        prot.set(Prot::READ, raw & R != 0);
        prot.set(Prot::WRITE, raw & W != 0);
        prot.set(Prot::CACHE, raw & SNP != 0);
        prot
    }

    fn relevel_attrs(&self, _from: u32, to: u32, raw: u64) -> u64 {
        let attrs = raw & !(ADDR | PS);
        if to > 0 {
            attrs | PS
        } else {
            attrs
        }
    }

    #[inline]
    fn set_accessed(&self, raw: u64) -> u64 {
        raw | A
    }

    #[inline]
    fn is_dirty(&self, raw: u64) -> bool {
        raw & D != 0
    }

    #[inline]
    fn make_dirty(&self, raw: u64) -> u64 {
        raw | D
    }

    #[inline]
    fn make_clean(&self, raw: u64) -> u64 {
        raw & !D
    }
}
