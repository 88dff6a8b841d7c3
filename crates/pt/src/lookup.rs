//! Read-only leaf lookup.

use crate::audit::LeafEntry;
use crate::format::Format;
use crate::log2;
use crate::table::PageTable;

impl<F: Format> PageTable<F> {
    /// The leaf that maps `iova`, decoded, without side effects (no accessed or
    /// dirty update). Lock-free.
    pub fn lookup(&self, iova: u64) -> Option<LeafEntry> {
        let (_, level, raw) = self.walk(iova)?;
        let shift = self.geo.level_shift(level);
        let base = iova & !log2::low_mask(shift);
        Some(LeafEntry {
            iova: base,
            size: 1 << shift,
            pa: self.fmt.leaf_pa(level, raw),
            prot: self.fmt.leaf_prot(level, raw),
            level,
            raw,
        })
    }
}
