//! AMD IOMMU v1 host page tables ("I/O page tables for host translations"), 1 to 6
//! levels.
//!
//! Spec: AMD I/O Virtualization Technology (IOMMU) Specification (pub. 48882),
//! §2.2.3 "I/O Page Tables for Host Translations": the figures "I/O Page Table
//! Entry (PTE)" and "I/O Page Directory Entry (PDE)", Table 14 "Example Page Size
//! Encodings" and Table 15 "Page Table Level Parameters"; the A and D bits are the
//! ones hardware updates when host access/dirty tracking (HAD) is enabled.
//! Kernel: `drivers/iommu/generic_pt/fmt/amdv1.h`, `drivers/iommu/amd/amd_iommu_types.h`.
//!
//! Level numbering: generic_pt level `n` is AMD level `n + 1` (mode 1 = one level).
//!
//! | bit | name | meaning |
//! |---|---|---|
//! | 0 | PR | present |
//! | 5 | A | accessed (HAD) |
//! | 6 | D | dirty, leaves only (HAD) |
//! | 11:9 | NextLevel | PDE: level of the next table (1..6); 0: a default-size page; 7: a page of encoded size |
//! | 51:12 | ADDR | next table or page frame |
//! | 59 | U | untranslated access only (never set) |
//! | 60 | FC | force coherent |
//! | 61 | IR | read allowed |
//! | 62 | IW | write allowed |
//!
//! Rules (Table 15): a PDE at AMD level `L` points to a level `L - 1` table and
//! carries `NextLevel = L - 1`; a PTE with `NextLevel = 0` at AMD level `L` maps a
//! page of the level's default size (4 KiB, 2 MiB, 1 GiB, 512 GiB, 256 TiB); the
//! top level (AMD level 6) cannot map pages; IR/IW are ANDed along the walk, so
//! PDEs set both and the PTE decides. generic_pt hides the 512 GiB size ("not
//! supported due to a hardware bug"); so do we. Pages of non-default sizes
//! (`NextLevel = 7`, replicated PTEs) are not produced; such an entry is decoded as
//! a leaf but its size encoding is ignored. `Prot::CACHE` sets FC.
//!
//! Partial unmap: whole leaf. Linux 6.12 `iommu_v1_unmap_pages` clears the whole
//! large PTE it finds and returns its size; generic_pt refines that to refuse a
//! range that starts inside the leaf. We follow generic_pt.

use uapi::Errno;

use super::{bit, cap_leaf_levels, genmask};
use crate::format::{EntryKind, Format, Geometry, PartialUnmap};
use crate::log2;
use crate::Prot;

/// Present.
pub const PR: u64 = bit(0);
/// Accessed (HAD).
pub const A: u64 = bit(5);
/// Dirty (HAD).
pub const D: u64 = bit(6);
/// NextLevel field, bits 11:9.
pub const NEXT_LEVEL: u64 = genmask(11, 9);
/// Address field, bits 51:12.
pub const ADDR: u64 = genmask(51, 12);
/// Force coherent.
pub const FC: u64 = bit(60);
/// Read permission.
pub const IR: u64 = bit(61);
/// Write permission.
pub const IW: u64 = bit(62);

/// NextLevel value of a page of encoded (non-default) size.
const NL_SIZE: u64 = 7;

/// The AMDv1 entry layout, parameterised by the granule so that the iommufd mock
/// format (2 KiB granule) shares it. The address field always starts at bit 12 and
/// holds `address >> granule_lg2` (generic_pt `amdv1pt_entry_oa`).
#[derive(Clone, Debug)]
pub(crate) struct AmdCore {
    pub(crate) geo: Geometry,
}

impl AmdCore {
    #[inline]
    pub(crate) fn entry_kind(&self, level: u32, raw: u64) -> EntryKind {
        if raw & PR == 0 {
            return EntryKind::Empty;
        }
        let next_level = (raw & NEXT_LEVEL) >> 9;
        if level == 0 || next_level == 0 || next_level == NL_SIZE {
            EntryKind::Leaf
        } else {
            EntryKind::Table
        }
    }

    #[inline]
    pub(crate) fn oa_bits(&self, pa: u64) -> u64 {
        ((pa >> self.geo.granule_lg2) << 12) & ADDR
    }

    #[inline]
    pub(crate) fn field_pa(&self, raw: u64) -> u64 {
        ((raw & ADDR) >> 12) << self.geo.granule_lg2
    }

    pub(crate) fn encode_table(&self, level: u32, table_pa: u64) -> u64 {
        // The PDE's NextLevel names the AMD level of the table below: our `level`.
        PR | IR | IW | ((level as u64) << 9) | self.oa_bits(table_pa)
    }

    pub(crate) fn leaf_attrs(&self, prot: Prot) -> Result<u64, Errno> {
        if !prot.intersects(Prot::READ | Prot::WRITE) {
            return Err(Errno::INVAL);
        }
        let mut attrs = PR;
        if prot.contains(Prot::READ) {
            attrs |= IR;
        }
        if prot.contains(Prot::WRITE) {
            attrs |= IW;
        }
        if prot.contains(Prot::CACHE) {
            attrs |= FC;
        }
        Ok(attrs)
    }

    #[inline]
    pub(crate) fn leaf_pa(&self, level: u32, raw: u64) -> u64 {
        log2::align_down(self.field_pa(raw), self.geo.level_shift(level))
    }

    #[inline]
    pub(crate) fn leaf_prot(&self, raw: u64) -> Prot {
        let mut prot = Prot::empty();
        prot.set(Prot::READ, raw & IR != 0);
        prot.set(Prot::WRITE, raw & IW != 0);
        prot.set(Prot::CACHE, raw & FC != 0);
        prot
    }

    pub(crate) fn relevel_attrs(&self, raw: u64) -> u64 {
        raw & !(ADDR | NEXT_LEVEL)
    }
}

/// Implements the `Format` methods shared by AMDv1-layout formats by delegating
/// to their `core: AmdCore` field.
macro_rules! amd_core_format_methods {
    () => {
        fn geometry(&self) -> $crate::format::Geometry {
            self.core.geo
        }

        #[inline]
        fn entry_kind(&self, level: u32, raw: u64) -> $crate::format::EntryKind {
            self.core.entry_kind(level, raw)
        }

        #[inline]
        fn table_pa(&self, raw: u64) -> u64 {
            self.core.field_pa(raw)
        }

        fn encode_table(&self, level: u32, table_pa: u64) -> u64 {
            self.core.encode_table(level, table_pa)
        }

        fn leaf_attrs(&self, _level: u32, prot: $crate::Prot) -> Result<u64, uapi::Errno> {
            self.core.leaf_attrs(prot)
        }

        #[inline]
        fn oa_bits(&self, pa: u64) -> u64 {
            self.core.oa_bits(pa)
        }

        #[inline]
        fn leaf_pa(&self, level: u32, raw: u64) -> u64 {
            self.core.leaf_pa(level, raw)
        }

        #[inline]
        fn leaf_prot(&self, _level: u32, raw: u64) -> $crate::Prot {
            self.core.leaf_prot(raw)
        }

        fn relevel_attrs(&self, _from: u32, _to: u32, raw: u64) -> u64 {
            self.core.relevel_attrs(raw)
        }

        #[inline]
        fn set_accessed(&self, raw: u64) -> u64 {
            raw | $crate::fmt::amdv1::A
        }

        #[inline]
        fn is_dirty(&self, raw: u64) -> bool {
            raw & $crate::fmt::amdv1::D != 0
        }

        #[inline]
        fn make_dirty(&self, raw: u64) -> u64 {
            raw | $crate::fmt::amdv1::D
        }

        #[inline]
        fn make_clean(&self, raw: u64) -> u64 {
            raw & !$crate::fmt::amdv1::D
        }
    };
}
pub(crate) use amd_core_format_methods;

/// Configuration of an AMD v1 table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AmdV1Config {
    /// Paging mode: number of levels, 1..=6. The input width is
    /// `min(12 + 9 * levels, 64)` bits unless `va_lg2` narrows it.
    pub levels: u32,
    /// Narrower input width than the levels cover (generic_pt `hw_max_vasz_lg2`).
    pub va_lg2: Option<u32>,
    /// Output width in bits, 13..=52.
    pub oa_lg2: u32,
    /// Largest leaf, lg2 bytes (e.g. 30 for 4 KiB / 2 MiB / 1 GiB).
    pub max_leaf_lg2: u32,
}

impl AmdV1Config {
    /// Mode 3 (39-bit IOVA), what Linux io-pgtable used by default.
    pub const THREE_LEVEL: AmdV1Config = AmdV1Config {
        levels: 3,
        va_lg2: None,
        oa_lg2: 52,
        max_leaf_lg2: 30,
    };
    /// Mode 4 (48-bit IOVA).
    pub const FOUR_LEVEL: AmdV1Config = AmdV1Config {
        levels: 4,
        va_lg2: None,
        oa_lg2: 52,
        max_leaf_lg2: 30,
    };
    /// Mode 6 (full 64-bit IOVA).
    pub const SIX_LEVEL: AmdV1Config = AmdV1Config {
        levels: 6,
        va_lg2: None,
        oa_lg2: 52,
        max_leaf_lg2: 30,
    };
}

/// The AMD IOMMU v1 format.
#[derive(Clone, Debug)]
pub struct AmdV1 {
    core: AmdCore,
}

impl Format for AmdV1 {
    type Config = AmdV1Config;
    const NAME: &'static str = "amdv1";
    const PARTIAL_UNMAP: PartialUnmap = PartialUnmap::WholeLeaf;
    const FIXED_RADIX: Option<(u32, u32)> = Some((12, 9));
    const MIN_RADIX: (u32, u32) = (12, 9);

    fn new(cfg: AmdV1Config) -> Result<Self, Errno> {
        if !(1..=6).contains(&cfg.levels) || !(13..=52).contains(&cfg.oa_lg2) {
            return Err(Errno::INVAL);
        }
        let span_lg2 = (12 + 9 * cfg.levels).min(64);
        let va_lg2 = cfg.va_lg2.unwrap_or(span_lg2);
        if va_lg2 > span_lg2 {
            return Err(Errno::INVAL);
        }
        // Table 15: AMD levels 1..5 may map pages, level 6 may not; 512 GiB
        // (AMD level 4) is hidden as in generic_pt.
        let candidates = 0b1_0111;
        let leaf_levels = cap_leaf_levels(candidates, 12, 9, cfg.max_leaf_lg2);
        let geo = Geometry::new(12, 9, cfg.levels, va_lg2, cfg.oa_lg2, leaf_levels)?;
        Ok(AmdV1 {
            core: AmdCore { geo },
        })
    }

    fn supports_dirty(&self) -> bool {
        true
    }

    #[inline(always)]
    fn accessed_leaf0(&self, raw: u64) -> Option<u64> {
        // A present level-1 (AMD) PTE is a leaf; the granule is 4 KiB, so the
        // address field is the page address.
        (raw & PR != 0 && raw & A != 0).then_some(raw & ADDR)
    }

    amd_core_format_methods!();
}
