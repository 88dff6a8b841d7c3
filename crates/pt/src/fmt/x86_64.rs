//! x86-64 CPU-style page tables (4- and 5-level), as used by VT-d first-stage and
//! AMD guest (v2) translation.
//!
//! Spec: Intel SDM vol. 3A §4.5 "4-Level Paging and 5-Level Paging" (tables
//! "Format of a PML5 Entry" ... "Format of a Page-Table Entry that Maps a 4-KByte
//! Page"); VT-d specification §9.7 "First-Stage Paging Entries"; AMD IOMMU
//! specification §2.2.6 "I/O Page Tables for Guest Translations".
//! Kernel: `drivers/iommu/generic_pt/fmt/x86_64.h`.
//!
//! Level names: 0 = PTE (4 KiB), 1 = PDE (2 MiB with PS), 2 = PDPTE (1 GiB with
//! PS), 3 = PML4E, 4 = PML5E.
//!
//! | bit | name | meaning |
//! |---|---|---|
//! | 0 | P | present |
//! | 1 | R/W | writes allowed |
//! | 2 | U/S | user (unprivileged) access allowed |
//! | 5 | A | accessed |
//! | 6 | D | dirty (leaves) |
//! | 7 | PS | PDE/PDPTE: maps a 2 MiB / 1 GiB page (in a PTE bit 7 is PAT, never set) |
//! | 51:12 | ADDR | next table or page frame |
//! | 63 | XD | execute disable |
//!
//! Reads are always allowed on a present entry. Tables get P|R/W|U/S|A so the leaf
//! decides (generic_pt `x86_64_pt_install_table`). Leaves get A at map time as
//! Linux does; unlike generic_pt we leave D clear on writable leaves so that a DMA
//! write while dirty tracking is on is what sets it. U/S is set unless
//! `Prot::PRIV`; XD is set for `Prot::NOEXEC`. Canonical sign extension is not
//! modelled: IOVAs are `[0, 2^va_lg2)`.
//!
//! Partial unmap: whole leaf (generic_pt).

use uapi::Errno;

use super::{bit, genmask, x86_radix_geometry};
use crate::format::{EntryKind, Format, Geometry, PartialUnmap};
use crate::Prot;

/// Present.
pub const P: u64 = bit(0);
/// Read/write.
pub const RW: u64 = bit(1);
/// User/supervisor.
pub const US: u64 = bit(2);
/// Accessed.
pub const A: u64 = bit(5);
/// Dirty.
pub const D: u64 = bit(6);
/// Page size (PDE / PDPTE).
pub const PS: u64 = bit(7);
/// Address field, bits 51:12.
pub const ADDR: u64 = genmask(51, 12);
/// Execute disable.
pub const XD: u64 = bit(63);

/// Configuration of an x86-64 table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct X86_64Config {
    /// Input width in bits, 31..=57: > 48 gives 5 levels, > 39 gives 4.
    pub va_lg2: u32,
    /// Output width in bits, 13..=52.
    pub oa_lg2: u32,
    /// Largest leaf, lg2 bytes: 12, 21 or 30.
    pub max_leaf_lg2: u32,
}

impl X86_64Config {
    /// 4-level paging: 48-bit IOVA.
    pub const FOUR_LEVEL: X86_64Config = X86_64Config {
        va_lg2: 48,
        oa_lg2: 52,
        max_leaf_lg2: 30,
    };
    /// 5-level paging: 57-bit IOVA.
    pub const FIVE_LEVEL: X86_64Config = X86_64Config {
        va_lg2: 57,
        oa_lg2: 52,
        max_leaf_lg2: 30,
    };
}

/// The x86-64 format.
#[derive(Clone, Debug)]
pub struct X86_64 {
    geo: Geometry,
}

impl Format for X86_64 {
    type Config = X86_64Config;
    const NAME: &'static str = "x86_64";
    const PARTIAL_UNMAP: PartialUnmap = PartialUnmap::WholeLeaf;
    const FIXED_RADIX: Option<(u32, u32)> = Some((12, 9));
    const MIN_RADIX: (u32, u32) = (12, 9);

    fn new(cfg: X86_64Config) -> Result<Self, Errno> {
        let geo = x86_radix_geometry(cfg.va_lg2, cfg.oa_lg2, cfg.max_leaf_lg2)?;
        Ok(X86_64 { geo })
    }

    fn geometry(&self) -> Geometry {
        self.geo
    }

    fn supports_dirty(&self) -> bool {
        true
    }

    #[inline]
    fn entry_kind(&self, level: u32, raw: u64) -> EntryKind {
        if raw & P == 0 {
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

    fn encode_table(&self, _level: u32, table_pa: u64) -> u64 {
        P | RW | US | A | (table_pa & ADDR)
    }

    fn leaf_attrs(&self, level: u32, prot: Prot) -> Result<u64, Errno> {
        if !prot.intersects(Prot::READ | Prot::WRITE) {
            return Err(Errno::INVAL);
        }
        let mut attrs = P | A;
        if level > 0 {
            attrs |= PS;
        }
        if prot.contains(Prot::WRITE) {
            attrs |= RW;
        }
        if !prot.contains(Prot::PRIV) {
            attrs |= US;
        }
        if prot.contains(Prot::NOEXEC) {
            attrs |= XD;
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
        let mut prot = Prot::READ;
        prot.set(Prot::WRITE, raw & RW != 0);
        prot.set(Prot::PRIV, raw & US == 0);
        prot.set(Prot::NOEXEC, raw & XD != 0);
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
