//! The [`Format`] trait: everything a page-table format tells the generic walker.
//!
//! Kernel: `drivers/iommu/generic_pt/pt_defs.h` and `pt_fmt_defaults.h` — the
//! per-format ops `pt_load_entry_raw`, `pt_install_leaf_entry`, `pt_install_table`,
//! `pt_entry_oa`, `pt_table_pa`, `pt_possible_sizes`, `pt_entry_is_write_dirty`,
//! `pt_entry_make_write_clean`, re-cut as trait methods on a small value type built
//! from the format's `Config`.
//!
//! Neighbours: [`crate::walk`] is the only user of these methods on the hot path;
//! [`crate::fmt`] holds the implementations.

use crate::log2;
use crate::Prot;
use uapi::Errno;

/// What one table entry is, as the hardware would read it at a given level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// Not present: the walk faults here.
    Empty,
    /// Points to a next-level table.
    Table,
    /// Maps an output address (a page or a block).
    Leaf,
}

/// What `unmap_pages` does when its range cuts a leaf larger than the range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartialUnmap {
    /// Replace the leaf by a next-level table of smaller leaves and unmap only the
    /// requested part (io-pgtable-arm `arm_lpae_split_blk_unmap`, Linux <= 6.15).
    Split,
    /// generic_pt rule: a range that *starts* inside a leaf stops the unmap there;
    /// a range that *ends* inside a leaf removes the whole leaf and reports its
    /// full size (so the return value can exceed the request).
    WholeLeaf,
}

/// The shape of a configured table: granule, levels, entries per table, widths.
///
/// All tables below the top have `2^items_lg2` entries; the top table has
/// `2^top_items_lg2` (fewer when the input width does not fill it, more when the
/// format concatenates start-level tables, as ARM stage 2 does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Size of the smallest page, lg2 bytes.
    pub granule_lg2: u32,
    /// Entries per table below the top, lg2.
    pub items_lg2: u32,
    /// Number of levels; the top table has level `levels - 1`.
    pub levels: u32,
    /// Entries in the top table, lg2.
    pub top_items_lg2: u32,
    /// Input (IOVA) address width in bits: the last IOVA is `2^va_lg2 - 1`.
    pub va_lg2: u32,
    /// Output (physical) address width in bits.
    pub oa_lg2: u32,
    /// Bit `n` set: level `n` may hold leaves.
    pub leaf_levels: u32,
}

impl Geometry {
    /// Levels needed to translate `va_lg2` bits with this granule and table size.
    pub const fn levels_for(va_lg2: u32, granule_lg2: u32, items_lg2: u32) -> u32 {
        (va_lg2 - granule_lg2).div_ceil(items_lg2)
    }

    /// Builds a geometry with `levels` levels covering `va_lg2` input bits.
    ///
    /// # Errors
    ///
    /// `EINVAL` if the widths are out of range or the levels cannot cover `va_lg2`.
    pub fn new(
        granule_lg2: u32,
        items_lg2: u32,
        levels: u32,
        va_lg2: u32,
        oa_lg2: u32,
        leaf_levels: u32,
    ) -> Result<Self, Errno> {
        if levels == 0 || levels > 8 || va_lg2 > 64 || va_lg2 <= granule_lg2 || oa_lg2 > 64 {
            return Err(Errno::INVAL);
        }
        let top_shift = granule_lg2 + (levels - 1) * items_lg2;
        if va_lg2 > top_shift + items_lg2 || oa_lg2 <= granule_lg2 {
            return Err(Errno::INVAL);
        }
        let top_items_lg2 = va_lg2.saturating_sub(top_shift);
        let leaf_levels = leaf_levels & ((1 << levels) - 1);
        if leaf_levels & 1 == 0 {
            return Err(Errno::INVAL);
        }
        Ok(Geometry {
            granule_lg2,
            items_lg2,
            levels,
            top_items_lg2,
            va_lg2,
            oa_lg2,
            leaf_levels,
        })
    }

    /// lg2 of the bytes one entry at `level` covers (the leaf size there).
    #[inline]
    pub const fn level_shift(&self, level: u32) -> u32 {
        // Small numbers (a validated geometry has at most 8 levels and shifts
        // below 128): no overflow check needed on this hot path.
        self.granule_lg2
            .wrapping_add(level.wrapping_mul(self.items_lg2))
    }

    /// The top level.
    #[inline]
    pub const fn top_level(&self) -> u32 {
        self.levels - 1
    }

    /// Entries of a table at `level`, lg2.
    #[inline]
    pub const fn items_lg2_at(&self, level: u32) -> u32 {
        if level == self.levels - 1 {
            self.top_items_lg2
        } else {
            self.items_lg2
        }
    }

    /// Every leaf size this geometry supports, as a bitmap of sizes.
    ///
    /// Sizes wider than the input or output address space are hidden, as
    /// generic_pt `get_info` hides sizes above `max_oasz_lg2`.
    pub fn pgsize_bitmap(&self) -> u64 {
        (0..self.levels)
            .filter(|&level| self.leaf_levels & (1 << level) != 0)
            .map(|level| self.level_shift(level))
            .filter(|&shift| shift < self.va_lg2 && shift < self.oa_lg2)
            .filter_map(log2::to_int)
            .fold(0, |acc, size| acc | size)
    }

    /// The last valid IOVA (inclusive).
    pub const fn max_iova(&self) -> u64 {
        log2::low_mask(self.va_lg2)
    }

    /// The last valid output address (inclusive).
    pub const fn max_oa(&self) -> u64 {
        log2::low_mask(self.oa_lg2)
    }
}

/// A page-table format: entry encodings and level geometry.
///
/// The walker ([`crate::PageTable`]) owns memory, locking and the range walk; a
/// format only encodes and decodes single 64-bit entries. Contracts:
///
/// - an entry of value 0 is [`EntryKind::Empty`] at every level, and the walker
///   writes 0 to clear; formats never produce other non-present values;
/// - [`Format::oa_bits`] is linear for granule-aligned addresses, so the walker
///   fills consecutive leaves by adding `oa_bits(leaf_size)` per entry;
/// - table addresses handed to [`Format::encode_table`] are aligned to the table
///   size (`2^(items_lg2 + 3)` bytes, at least 4 KiB).
pub trait Format: Send + Sync + Sized + 'static {
    /// Construction parameters (levels, input width, granule, stage, ...).
    type Config: Clone + core::fmt::Debug;
    /// A short name for reports and benchmarks.
    const NAME: &'static str;
    /// The partial-unmap rule for this format (see [`PartialUnmap`]).
    const PARTIAL_UNMAP: PartialUnmap;
    /// `(granule_lg2, items_lg2)` when every configuration of the format has
    /// them (the x86 radix, AMD v1, the mock), so that the readers' fast path
    /// shifts by constants; `None` when they are configured.
    const FIXED_RADIX: Option<(u32, u32)> = None;
    /// A `(granule_lg2, items_lg2)` that no configuration goes below, in
    /// granule or in level-1 block size (`granule_lg2 + items_lg2`). The
    /// software IOTLB caches small leaves in chunks of this granule and
    /// larger leaves and level-0 tables per chunk of this block size, so that
    /// its hit path shifts by constants whatever the configuration.
    const MIN_RADIX: (u32, u32);

    /// Validates `cfg` and builds the format value.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a configuration the format does not support.
    fn new(cfg: Self::Config) -> Result<Self, Errno>;
    /// The geometry of the configured table.
    fn geometry(&self) -> Geometry;
    /// Whether leaves carry a hardware dirty state (`set_dirty_tracking` works).
    fn supports_dirty(&self) -> bool;

    /// Classifies `raw` read from a table at `level`.
    fn entry_kind(&self, level: u32, raw: u64) -> EntryKind;
    /// The physical address of the table a [`EntryKind::Table`] entry points to.
    fn table_pa(&self, raw: u64) -> u64;
    /// Encodes a table entry at `level` pointing to the table at `table_pa`.
    fn encode_table(&self, level: u32, table_pa: u64) -> u64;

    /// The bits of a leaf at `level` with `prot`, without the output address.
    ///
    /// # Errors
    ///
    /// `EINVAL` if `prot` cannot be expressed (for example neither read nor write).
    fn leaf_attrs(&self, level: u32, prot: Prot) -> Result<u64, Errno>;
    /// The output-address field for `pa` (granule aligned).
    fn oa_bits(&self, pa: u64) -> u64;
    /// The output address of a [`EntryKind::Leaf`] at `level`.
    fn leaf_pa(&self, level: u32, raw: u64) -> u64;
    /// The permissions and attributes a leaf grants.
    fn leaf_prot(&self, level: u32, raw: u64) -> Prot;
    /// The attribute bits of leaf `raw` at `from`, re-expressed for a leaf at `to`
    /// (output address removed). Used to split a block into smaller leaves.
    fn relevel_attrs(&self, from: u32, to: u32, raw: u64) -> u64;

    /// `raw` with the accessed flag set, as hardware does on any access.
    fn set_accessed(&self, raw: u64) -> u64;
    /// Whether leaf `raw` is write-dirty.
    fn is_dirty(&self, raw: u64) -> bool;
    /// `raw` marked write-dirty (as hardware does on a write while tracking).
    fn make_dirty(&self, raw: u64) -> u64;
    /// `raw` marked write-clean.
    fn make_clean(&self, raw: u64) -> u64;

    /// The output address of `raw`, read at level 0, if it is a leaf whose
    /// accessed flag is already set; `None` otherwise. The IOTLB's fill path
    /// without a walk: a leaf whose flag still has to be set takes the path
    /// with the compare-and-swap.
    #[inline(always)]
    fn accessed_leaf0(&self, raw: u64) -> Option<u64> {
        (self.entry_kind(0, raw) == EntryKind::Leaf && self.set_accessed(raw) == raw)
            .then(|| self.leaf_pa(0, raw))
    }

    /// Whether level-0 leaf `raw` allows `needed`, as
    /// `leaf_prot(0, raw).contains(needed)`. A format whose decode loads from
    /// a table answers [`Prot::READ`] and [`Prot::WRITE`] from the entry's
    /// bits, so that the IOTLB's near path branches on the entry alone and
    /// the decode only feeds its result.
    #[inline(always)]
    fn leaf0_allows(&self, raw: u64, needed: Prot) -> bool {
        self.leaf_prot(0, raw).contains(needed)
    }

    /// Encodes a full leaf: attributes plus output address.
    ///
    /// # Errors
    ///
    /// As [`Format::leaf_attrs`].
    fn encode_leaf(&self, level: u32, pa: u64, prot: Prot) -> Result<u64, Errno> {
        Ok(self.leaf_attrs(level, prot)? | self.oa_bits(pa))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_for_x86_4_level_has_512_entry_top() {
        let g = Geometry::new(12, 9, 4, 48, 52, 0b111).unwrap();
        assert_eq!(g.top_items_lg2, 9);
        assert_eq!(g.max_iova(), (1 << 48) - 1);
        assert_eq!(g.pgsize_bitmap(), (1 << 12) | (1 << 21) | (1 << 30));
    }

    #[test]
    fn geometry_with_partial_top_hides_nothing_below_width() {
        let g = Geometry::new(12, 9, 6, 64, 52, 0b10111).unwrap();
        assert_eq!(g.top_items_lg2, 7);
        assert_eq!(g.max_iova(), u64::MAX);
    }

    #[test]
    fn geometry_rejecting_uncovered_width_returns_einval() {
        assert_eq!(Geometry::new(12, 9, 3, 48, 52, 1), Err(Errno::INVAL));
        assert_eq!(Geometry::new(12, 9, 3, 12, 52, 1), Err(Errno::INVAL));
    }
}
