//! ARMv8-A VMSAv8-64 (LPAE) translation tables: 4 KiB, 16 KiB and 64 KiB granules,
//! stage 1 and stage 2 attributes.
//!
//! Spec: Arm Architecture Reference Manual for A-profile (DDI 0487), chapter D8
//! "The AArch64 Virtual Memory System Architecture": D8.3 "Translation table
//! descriptor formats" (table/block/page descriptors, the level at which blocks are
//! allowed per granule), D8.4 "Memory access control" (AP, S2AP, XN), D8.5 "Memory
//! region attributes" (AttrIndx, MemAttr, SH) and D8.6 "Hardware updates to the
//! translation tables" (AF, DBM); D8.2 for concatenated stage 2 start tables. The
//! SMMUv3 specification (IHI 0070) uses these formats unchanged.
//! Kernel: `drivers/iommu/io-pgtable-arm.c` (v6.12).
//!
//! Level numbering: generic_pt level 0 is Arm lookup level 3.
//!
//! | bits | stage 1 | stage 2 |
//! |---|---|---|
//! | 1:0 | 0b11 table (levels 0-2) or page (level 3); 0b01 block | same |
//! | 4:2 / 5:2 | AttrIndx (MAIR index) | MemAttr |
//! | 6 | AP\[1\]: unprivileged access | S2AP\[0\]: read |
//! | 7 | AP\[2\]: read-only | S2AP\[1\]: write |
//! | 9:8 | SH | SH |
//! | 10 | AF | AF |
//! | 11 | nG | — |
//! | 47:g | output address / next table | same |
//! | 51 | DBM | DBM |
//! | 54:53 | UXN, PXN | XN |
//!
//! Attribute choices follow `arm_lpae_prot_to_pte`: stage 1 sets nG, AP\[2\] for
//! read-only, AP\[1\] unless `Prot::PRIV`, AttrIndx 2 (device) for `MMIO`, 1
//! (write-back) for `CACHE`, else 0 (non-cacheable), SH inner-shareable for `CACHE`
//! else outer; stage 2 sets S2AP from read/write and MemAttr 0b0001 / 0b1111 /
//! 0b0101. Both set AF at map time and XN for `NOEXEC`.
//!
//! Dirty state (D8.6, "dirty state" with DBM): with hardware dirty management
//! (`hw_dirty`), writable leaves carry DBM; the write permission bit then *is*
//! the dirty flag — AP\[2\] clear (stage 1) or S2AP\[1\] set (stage 2) means dirty.
//! Unlike Linux, which maps writable-dirty and relies on iommufd's clear-on-enable
//! pass, we map writable-clean so a fresh mapping reads back clean on every format.
//!
//! Output addresses are limited to 48 bits (no 52-bit LPA/LPA2 encodings), and
//! level-1 blocks of the 16K/64K granules (which need LPA2/LPA) are not offered.
//!
//! Partial unmap: split. Linux 6.12 `arm_lpae_split_blk_unmap` replaces a block
//! that the range cuts by a table of the next level's leaves and unmaps only the
//! requested part (later kernels dropped this, but 6.12 is our ABI target).

use uapi::Errno;

use super::{bit, cap_leaf_levels, genmask};
use crate::format::{EntryKind, Format, Geometry, PartialUnmap};
use crate::log2;
use crate::Prot;

/// Descriptor type field, bits 1:0.
pub const TYPE_MASK: u64 = genmask(1, 0);
/// Table descriptor (levels 0-2) or page descriptor (level 3).
pub const TYPE_TABLE_OR_PAGE: u64 = 0b11;
/// Block descriptor.
pub const TYPE_BLOCK: u64 = 0b01;
/// Stage 1 AttrIndx field, bits 4:2.
pub const ATTR_INDX_SHIFT: u32 = 2;
/// Stage 2 MemAttr field, bits 5:2.
pub const MEMATTR: u64 = genmask(5, 2);
/// Stage 1 AP\[1\]: unprivileged access.
pub const AP_UNPRIV: u64 = bit(6);
/// Stage 1 AP\[2\]: read-only.
pub const AP_RDONLY: u64 = bit(7);
/// Stage 2 S2AP\[0\]: read.
pub const S2AP_READ: u64 = bit(6);
/// Stage 2 S2AP\[1\]: write.
pub const S2AP_WRITE: u64 = bit(7);
/// Outer shareable.
pub const SH_OS: u64 = 2 << 8;
/// Inner shareable.
pub const SH_IS: u64 = 3 << 8;
/// Access flag.
pub const AF: u64 = bit(10);
/// Not global (stage 1).
pub const NG: u64 = bit(11);
/// Output address, bits 47:12 (the granule's low bits are zero).
pub const ADDR: u64 = genmask(47, 12);
/// Dirty bit modifier.
pub const DBM: u64 = bit(51);
/// Execute never (stage 1 UXN|PXN, stage 2 XN\[1:0\]).
pub const XN: u64 = genmask(54, 53);

/// MAIR index of non-cacheable memory (io-pgtable-arm `ARM_LPAE_MAIR_ATTR_IDX_NC`).
pub const MAIR_IDX_NC: u64 = 0;
/// MAIR index of write-back cacheable memory.
pub const MAIR_IDX_CACHE: u64 = 1;
/// MAIR index of device memory.
pub const MAIR_IDX_DEV: u64 = 2;
/// Stage 2 MemAttr: Device-nGnRE.
pub const MEMATTR_DEV: u64 = 0x1 << 2;
/// Stage 2 MemAttr: Normal, outer and inner write-back.
pub const MEMATTR_OIWB: u64 = 0xf << 2;
/// Stage 2 MemAttr: Normal non-cacheable.
pub const MEMATTR_NC: u64 = 0x5 << 2;

/// Translation granule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Granule {
    /// 4 KiB pages, 512-entry tables; blocks of 2 MiB and 1 GiB.
    K4,
    /// 16 KiB pages, 2048-entry tables; blocks of 32 MiB.
    K16,
    /// 64 KiB pages, 8192-entry tables; blocks of 512 MiB.
    K64,
}

impl Granule {
    /// lg2 of the granule size.
    pub const fn lg2(self) -> u32 {
        match self {
            Granule::K4 => 12,
            Granule::K16 => 14,
            Granule::K64 => 16,
        }
    }
}

/// Translation stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Stage 1 (VA to IPA/PA), AP/AttrIndx attributes.
    S1,
    /// Stage 2 (IPA to PA), S2AP/MemAttr attributes.
    S2,
}

/// Configuration of an ARM table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArmV8Config {
    /// Granule.
    pub granule: Granule,
    /// Stage.
    pub stage: Stage,
    /// Input width in bits (64 - TxSZ), from 2 granule bits above the granule up to 48.
    pub va_lg2: u32,
    /// Output width in bits, up to 48.
    pub oa_lg2: u32,
    /// Hardware dirty-state management (FEAT_HAFDBS / SMMU HTTU with HD).
    pub hw_dirty: bool,
}

impl ArmV8Config {
    /// Stage 1, 4 KiB granule, 48-bit input, HTTU dirty tracking.
    pub const S1_4K: ArmV8Config = ArmV8Config {
        granule: Granule::K4,
        stage: Stage::S1,
        va_lg2: 48,
        oa_lg2: 48,
        hw_dirty: true,
    };
    /// Stage 2, 4 KiB granule, 40-bit input (concatenated start tables).
    pub const S2_4K_40: ArmV8Config = ArmV8Config {
        granule: Granule::K4,
        stage: Stage::S2,
        va_lg2: 40,
        oa_lg2: 48,
        hw_dirty: true,
    };
    /// Stage 1, 16 KiB granule, 48-bit input.
    pub const S1_16K: ArmV8Config = ArmV8Config {
        granule: Granule::K16,
        stage: Stage::S1,
        va_lg2: 48,
        oa_lg2: 48,
        hw_dirty: true,
    };
    /// Stage 2, 64 KiB granule, 48-bit input, no hardware dirty management.
    pub const S2_64K: ArmV8Config = ArmV8Config {
        granule: Granule::K64,
        stage: Stage::S2,
        va_lg2: 48,
        oa_lg2: 48,
        hw_dirty: false,
    };
}

/// The ARMv8 VMSA format.
#[derive(Clone, Debug)]
pub struct ArmV8 {
    geo: Geometry,
    stage: Stage,
    hw_dirty: bool,
    /// The output-address bits of a page (level 0) entry: `ADDR` without the
    /// bits below the granule.
    page_addr: u64,
    prot_of: ProtTable,
    access: AccessBits,
}

/// The bits of a leaf that grant reads and writes, for a test on the entry
/// alone ([`Format::leaf0_allows`]): reads need all of `read_all`; writes
/// need one of `write_any` set after flipping `write_flip`.
#[derive(Clone, Copy, Debug)]
struct AccessBits {
    read_all: u64,
    write_flip: u64,
    write_any: u64,
}

impl AccessBits {
    fn new(stage: Stage) -> AccessBits {
        match stage {
            // Always readable; writable unless AP[2] says read-only, or
            // writable-clean (DBM).
            Stage::S1 => AccessBits {
                read_all: 0,
                write_flip: AP_RDONLY,
                write_any: AP_RDONLY | DBM,
            },
            Stage::S2 => AccessBits {
                read_all: S2AP_READ,
                write_flip: 0,
                write_any: S2AP_WRITE | DBM,
            },
        }
    }
}

/// The leaf permissions of one stage by the bits that decide them: bits 7:2
/// (AP or S2AP, and AttrIndx or MemAttr) and 54:51 (XN, contiguous, DBM),
/// gathered into a 10-bit index. Precomputed from [`ArmV8::decode_prot`], so
/// that a translation decodes a leaf with one load instead of a dozen tests.
/// Boxed, so that the page table's hot fields stay on few cache lines.
#[derive(Clone)]
struct ProtTable(Box<[u8; 1 << 10]>);

impl ProtTable {
    #[inline(always)]
    fn index(raw: u64) -> usize {
        (((raw >> 2) & 0x3f) | (((raw >> 51) & 0xf) << 6)) as usize
    }

    /// The raw bits an index stands for (the inverse of [`ProtTable::index`]).
    fn raw_of(index: usize) -> u64 {
        let index = index as u64;
        ((index & 0x3f) << 2) | ((index >> 6) << 51)
    }

    fn new(stage: Stage) -> ProtTable {
        ProtTable(Box::new(std::array::from_fn(|i| {
            // Every Prot flag is below bit 8 (checked by `prot_flags_fit_a_byte`).
            ArmV8::decode_prot(stage, Self::raw_of(i)).bits() as u8
        })))
    }
}

impl core::fmt::Debug for ProtTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ProtTable(..)")
    }
}

/// Stage 2 may concatenate up to 16 start-level tables (io-pgtable-arm
/// `ARM_LPAE_S2_MAX_CONCAT_PAGES`).
const S2_MAX_CONCAT_LG2: u32 = 4;

impl ArmV8 {
    /// Applies stage 2 concatenation: a 4-level stage 2 table whose top would have
    /// at most 16 entries starts one level lower with that many tables concatenated
    /// (D8.2; io-pgtable-arm `arm_64_lpae_alloc_pgtable_s2`).
    fn concatenate_start(geo: &mut Geometry) {
        if geo.levels == 4 && geo.top_items_lg2 <= S2_MAX_CONCAT_LG2 {
            geo.levels = 3;
            geo.top_items_lg2 += geo.items_lg2;
            geo.leaf_levels &= 0b111;
        }
    }

    fn leaf_type(level: u32) -> u64 {
        if level == 0 {
            TYPE_TABLE_OR_PAGE
        } else {
            TYPE_BLOCK
        }
    }

    /// The bit that is set on a writable-dirty leaf / clear on a writable-clean one.
    #[inline]
    fn write_bit_dirty(&self, raw: u64) -> bool {
        match self.stage {
            Stage::S1 => raw & AP_RDONLY == 0,
            Stage::S2 => raw & S2AP_WRITE != 0,
        }
    }

    /// The permissions a leaf `raw` of `stage` grants (D8.4 stage 1 AP and
    /// AttrIndx, D8.5 stage 2 S2AP and MemAttr; DBM makes a read-only leaf
    /// writable-clean). Only bits 7:2 and 54:51 count (see [`ProtTable`]).
    fn decode_prot(stage: Stage, raw: u64) -> Prot {
        let mut prot = Prot::empty();
        match stage {
            Stage::S1 => {
                prot |= Prot::READ;
                prot.set(Prot::WRITE, raw & AP_RDONLY == 0 || raw & DBM != 0);
                prot.set(Prot::PRIV, raw & AP_UNPRIV == 0);
                let idx = (raw >> ATTR_INDX_SHIFT) & 0b111;
                prot.set(Prot::CACHE, idx == MAIR_IDX_CACHE);
                prot.set(Prot::MMIO, idx == MAIR_IDX_DEV);
            }
            Stage::S2 => {
                prot.set(Prot::READ, raw & S2AP_READ != 0);
                prot.set(Prot::WRITE, raw & (S2AP_WRITE | DBM) != 0);
                prot.set(Prot::CACHE, raw & MEMATTR == MEMATTR_OIWB);
                prot.set(Prot::MMIO, raw & MEMATTR == MEMATTR_DEV);
            }
        }
        prot.set(Prot::NOEXEC, raw & XN == XN);
        prot
    }

    fn s1_attrs(&self, prot: Prot) -> u64 {
        let mut attrs = NG;
        if !prot.contains(Prot::WRITE) {
            attrs |= AP_RDONLY;
        } else if self.hw_dirty {
            // Writable-clean: DBM set, AP[2] set until the first write.
            attrs |= DBM | AP_RDONLY;
        }
        if !prot.contains(Prot::PRIV) {
            attrs |= AP_UNPRIV;
        }
        let idx = if prot.contains(Prot::MMIO) {
            MAIR_IDX_DEV
        } else if prot.contains(Prot::CACHE) {
            MAIR_IDX_CACHE
        } else {
            MAIR_IDX_NC
        };
        attrs | idx << ATTR_INDX_SHIFT
    }

    fn s2_attrs(&self, prot: Prot) -> u64 {
        let mut attrs = 0;
        if prot.contains(Prot::READ) {
            attrs |= S2AP_READ;
        }
        if prot.contains(Prot::WRITE) {
            attrs |= if self.hw_dirty { DBM } else { S2AP_WRITE };
        }
        attrs
            | if prot.contains(Prot::MMIO) {
                MEMATTR_DEV
            } else if prot.contains(Prot::CACHE) {
                MEMATTR_OIWB
            } else {
                MEMATTR_NC
            }
    }
}

impl Format for ArmV8 {
    type Config = ArmV8Config;
    const NAME: &'static str = "armv8";
    const PARTIAL_UNMAP: PartialUnmap = PartialUnmap::Split;
    // 4 KiB granule, 512 entries: the smallest of the 4/16/64 KiB granules.
    const MIN_RADIX: (u32, u32) = (12, 9);

    fn new(cfg: ArmV8Config) -> Result<Self, Errno> {
        let g = cfg.granule.lg2();
        let items_lg2 = g - 3;
        if cfg.va_lg2 > 48 || cfg.va_lg2 < g + items_lg2 || cfg.oa_lg2 > 48 || cfg.oa_lg2 <= g {
            return Err(Errno::INVAL);
        }
        let levels = Geometry::levels_for(cfg.va_lg2, g, items_lg2);
        // D8.3: 4K blocks at lookup levels 1 and 2; 16K/64K blocks at level 2 only
        // (level-1 blocks need 52-bit addressing).
        let candidates = match cfg.granule {
            Granule::K4 => 0b111,
            Granule::K16 | Granule::K64 => 0b011,
        };
        let leaf_levels = cap_leaf_levels(candidates, g, items_lg2, 63);
        let mut geo = Geometry::new(g, items_lg2, levels, cfg.va_lg2, cfg.oa_lg2, leaf_levels)?;
        if cfg.stage == Stage::S2 {
            Self::concatenate_start(&mut geo);
        }
        Ok(ArmV8 {
            geo,
            stage: cfg.stage,
            hw_dirty: cfg.hw_dirty,
            page_addr: log2::align_down(ADDR, g),
            prot_of: ProtTable::new(cfg.stage),
            access: AccessBits::new(cfg.stage),
        })
    }

    fn geometry(&self) -> Geometry {
        self.geo
    }

    fn supports_dirty(&self) -> bool {
        self.hw_dirty
    }

    #[inline]
    fn entry_kind(&self, level: u32, raw: u64) -> EntryKind {
        match (raw & TYPE_MASK, level) {
            (TYPE_TABLE_OR_PAGE, 0) | (TYPE_BLOCK, 1..) => EntryKind::Leaf,
            (TYPE_TABLE_OR_PAGE, _) => EntryKind::Table,
            // Invalid, or 0b01 at lookup level 3 (reserved, faults).
            _ => EntryKind::Empty,
        }
    }

    #[inline]
    fn table_pa(&self, raw: u64) -> u64 {
        raw & ADDR
    }

    fn encode_table(&self, _level: u32, table_pa: u64) -> u64 {
        TYPE_TABLE_OR_PAGE | (table_pa & ADDR)
    }

    fn leaf_attrs(&self, level: u32, prot: Prot) -> Result<u64, Errno> {
        if !prot.intersects(Prot::READ | Prot::WRITE) {
            return Err(Errno::INVAL);
        }
        let stage_attrs = match self.stage {
            Stage::S1 => self.s1_attrs(prot),
            Stage::S2 => self.s2_attrs(prot),
        };
        let sh = if prot.contains(Prot::CACHE) {
            SH_IS
        } else {
            SH_OS
        };
        let xn = if prot.contains(Prot::NOEXEC) { XN } else { 0 };
        Ok(Self::leaf_type(level) | AF | sh | xn | stage_attrs)
    }

    #[inline]
    fn oa_bits(&self, pa: u64) -> u64 {
        pa & ADDR
    }

    #[inline]
    fn leaf_pa(&self, level: u32, raw: u64) -> u64 {
        log2::align_down(raw & ADDR, self.geo.level_shift(level))
    }

    #[inline(always)]
    fn accessed_leaf0(&self, raw: u64) -> Option<u64> {
        (raw & TYPE_MASK == TYPE_TABLE_OR_PAGE && raw & AF != 0).then_some(raw & self.page_addr)
    }

    #[inline(always)]
    fn leaf0_allows(&self, raw: u64, needed: Prot) -> bool {
        if !(Prot::READ | Prot::WRITE).contains(needed) {
            return self.leaf_prot(0, raw).contains(needed);
        }
        let a = self.access;
        let read = raw & a.read_all == a.read_all;
        let write = (raw ^ a.write_flip) & a.write_any != 0;
        (read || !needed.contains(Prot::READ)) && (write || !needed.contains(Prot::WRITE))
    }

    #[inline]
    fn leaf_prot(&self, _level: u32, raw: u64) -> Prot {
        Prot::from_bits_retain(u32::from(self.prot_of.0[ProtTable::index(raw)]))
    }

    fn relevel_attrs(&self, _from: u32, to: u32, raw: u64) -> u64 {
        (raw & !(ADDR | TYPE_MASK)) | Self::leaf_type(to)
    }

    #[inline]
    fn set_accessed(&self, raw: u64) -> u64 {
        raw | AF
    }

    #[inline]
    fn is_dirty(&self, raw: u64) -> bool {
        raw & DBM != 0 && self.write_bit_dirty(raw)
    }

    #[inline]
    fn make_dirty(&self, raw: u64) -> u64 {
        if raw & DBM == 0 {
            return raw;
        }
        match self.stage {
            Stage::S1 => raw & !AP_RDONLY,
            Stage::S2 => raw | S2AP_WRITE,
        }
    }

    #[inline]
    fn make_clean(&self, raw: u64) -> u64 {
        if raw & DBM == 0 {
            return raw;
        }
        match self.stage {
            Stage::S1 => raw | AP_RDONLY,
            Stage::S2 => raw & !S2AP_WRITE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prot_flags_fit_a_byte() {
        assert!(Prot::all().bits() <= u32::from(u8::MAX));
    }

    #[test]
    fn prot_table_decodes_like_the_bit_tests_for_every_leaf() {
        for stage in [Stage::S1, Stage::S2] {
            let fmt = ArmV8::new(ArmV8Config {
                stage,
                ..ArmV8Config::S1_4K
            })
            .unwrap();
            // Every combination of the deciding bits, over varied other bits.
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            for i in 0..1usize << 10 {
                for _ in 0..8 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let deciding = ProtTable::raw_of(i);
                    let mask = ProtTable::raw_of((1 << 10) - 1);
                    let raw = (x & !mask) | deciding;
                    assert_eq!(ProtTable::index(raw), i);
                    let prot = ArmV8::decode_prot(stage, raw);
                    assert_eq!(fmt.leaf_prot(0, raw), prot, "{raw:#x}");
                    for needed in [
                        Prot::READ,
                        Prot::WRITE,
                        Prot::READ | Prot::WRITE,
                        Prot::NOEXEC,
                    ] {
                        assert_eq!(
                            fmt.leaf0_allows(raw, needed),
                            prot.contains(needed),
                            "{raw:#x} {needed:?}"
                        );
                    }
                }
            }
        }
    }
}
