//! The generic range walker: one descent per table, then a tight loop over the
//! consecutive entries of that table.
//!
//! Kernel: `drivers/iommu/generic_pt/pt_iter.h` (`pt_walk_range`, `pt_descend`)
//! and `iommu_pt.h` (`__map_range`, `__unmap_range`, `__read_and_clear_dirty`).
//!
//! Every walk recurses from the top table over the inclusive range `[iova, last]`;
//! at each table it visits only the entries the range touches. Writers (map,
//! unmap, dirty clear) run under the table's writer lock and keep
//! `Alloc::counts` exact, so a table is freed the moment its count drops to 0.
//! Readers use [`PageTable::walk`], which never allocates, locks or panics.

use std::sync::atomic::{AtomicU64, Ordering};

use uapi::Errno;

use crate::arena::Alloc;
use crate::format::{EntryKind, Format, PartialUnmap};
use crate::log2;
use crate::table::{DirtySink, PageTable};
use crate::Prot;

/// What every leaf of one `map_pages` call shares.
struct LeafPlan {
    level: u32,
    attrs: u64,
    /// `oa_bits(leaf size)`: added per consecutive leaf.
    oa_step: u64,
}

impl<F: Format> PageTable<F> {
    /// Index of the entry covering `va` in a table of `len` entries at `level`.
    #[inline]
    fn index(&self, va: u64, level: u32, len: usize) -> usize {
        // `len` is a power of two, so the mask keeps the index in bounds.
        ((va >> self.geo.level_shift(level)) as usize) & (len - 1)
    }

    #[inline]
    fn unit_of(&self, table_pa: u64) -> u64 {
        self.arena.unit_of(table_pa)
    }

    /// Lock-free walk to the leaf mapping `iova`: `(entry, level, raw value)`.
    #[inline(always)]
    pub(crate) fn walk(&self, iova: u64) -> Option<(&AtomicU64, u32, u64)> {
        self.walk_leaf(iova)
            .map(|(e, level, raw, _)| (e, level, raw))
    }

    /// Lock-free walk to the leaf mapping `iova`: `(entry, level, raw value,
    /// table)`, where `table` is the fake physical address of the table holding
    /// the entry (`None` for the top table).
    ///
    /// The reader's hot path (every IOTLB miss): specialised for the usual
    /// level counts and for constant radixes ([`PageTable::const_radix`]),
    /// so that the per-level loop unrolls with constant levels, shifts and
    /// masks; other geometries read them precomputed. Index arithmetic is
    /// wrapping (every value is masked or bounds-checked before use).
    #[inline(always)]
    pub(crate) fn walk_leaf(&self, iova: u64) -> Option<(&AtomicU64, u32, u64, Option<u64>)> {
        let Some(radix) = self.const_radix() else {
            return self.walk_dyn(iova, self.geo.top_level());
        };
        match self.geo.top_level() {
            3 => self.walk_from(iova, 3, Some(radix)),
            2 => self.walk_from(iova, 2, Some(radix)),
            4 => self.walk_from(iova, 4, Some(radix)),
            top => self.walk_dyn(iova, top),
        }
    }

    /// The walk for the other level counts and radixes.
    #[inline(never)]
    fn walk_dyn(&self, iova: u64, top: u32) -> Option<(&AtomicU64, u32, u64, Option<u64>)> {
        self.walk_from(iova, top, None)
    }

    /// The walk from the top table at level `top` (a constant where inlined)
    /// with the given `(granule_lg2, items_lg2)` (constants where inlined;
    /// `None`: the geometry's).
    #[inline(always)]
    fn walk_from(
        &self,
        iova: u64,
        top: u32,
        radix: Option<(u32, u32)>,
    ) -> Option<(&AtomicU64, u32, u64, Option<u64>)> {
        let shift = |level: u32| self.shift_with(radix, level);
        let item_mask = match radix {
            Some((_, items_lg2)) => (1usize << items_lg2) - 1,
            None => self.item_mask,
        };
        if iova > self.iova_last {
            return None;
        }
        let table = self.arena.top();
        let index = (iova.wrapping_shr(shift(top)) as usize) & table.len().wrapping_sub(1);
        let mut entry = table.get(index)?;
        let mut table_pa = None;
        let mut level = top;
        loop {
            let raw = entry.load(Ordering::Acquire);
            match self.fmt.entry_kind(level, raw) {
                EntryKind::Empty => return None,
                EntryKind::Leaf => return Some((entry, level, raw, table_pa)),
                EntryKind::Table if level == 0 => return None,
                EntryKind::Table => {
                    level = level.wrapping_sub(1);
                    let index = (iova.wrapping_shr(shift(level)) as usize) & item_mask;
                    let pa = self.fmt.table_pa(raw);
                    entry = self.arena.entry_at(pa, index)?;
                    table_pa = Some(pa);
                }
            }
        }
    }

    /// Walks to the leaf mapping `iova` and replaces it by `update(raw, prot)` with
    /// compare-and-swap, retrying if the entry changed meanwhile. Lock-free.
    pub(crate) fn walk_update(
        &self,
        iova: u64,
        update: impl Fn(u64, Prot) -> Result<u64, Errno>,
    ) -> Result<(u32, u64), Errno> {
        loop {
            let (entry, level, raw) = self.walk(iova).ok_or(Errno::NOENT)?;
            let new = update(raw, self.fmt.leaf_prot(level, raw))?;
            if new == raw {
                return Ok((level, raw));
            }
            if entry
                .compare_exchange(raw, new, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Ok((level, new));
            }
        }
    }

    /// Maps `[iova, last]` to `pa` with leaves at `leaf_level`. Caller holds the lock.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn map_walk(
        &self,
        w: &mut Alloc,
        iova: u64,
        last: u64,
        pa: u64,
        leaf_level: u32,
        attrs: u64,
        mapped: &mut u64,
    ) -> Result<(), Errno> {
        let plan = LeafPlan {
            level: leaf_level,
            attrs,
            oa_step: self.fmt.oa_bits(1 << self.geo.level_shift(leaf_level)),
        };
        let top = self.arena.top();
        self.map_table(
            w,
            0,
            top,
            self.geo.top_level(),
            iova,
            last,
            pa,
            &plan,
            mapped,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn map_table(
        &self,
        w: &mut Alloc,
        unit: u64,
        table: &[AtomicU64],
        level: u32,
        iova: u64,
        last: u64,
        pa: u64,
        plan: &LeafPlan,
        mapped: &mut u64,
    ) -> Result<(), Errno> {
        if level == plan.level {
            return self.map_leaves(w, unit, table, iova, last, pa, plan, mapped);
        }
        let shift = self.geo.level_shift(level);
        let mut va = iova;
        loop {
            let entry = &table[self.index(va, level, table.len())];
            let span_last = log2::block_last(va, shift).min(last);
            let raw = entry.load(Ordering::Relaxed);
            let (child_unit, fresh) = match self.fmt.entry_kind(level, raw) {
                EntryKind::Leaf => return Err(Errno::EXIST),
                EntryKind::Table => (self.unit_of(self.fmt.table_pa(raw)), false),
                EntryKind::Empty => {
                    fault::fail_point!(fault::Site::TableAlloc, Errno::NOMEM);
                    let child_unit = self.arena.alloc(w)?;
                    let table_pa = self.arena.unit_pa(child_unit);
                    entry.store(self.fmt.encode_table(level, table_pa), Ordering::Release);
                    w.counts[unit as usize] += 1;
                    (child_unit, true)
                }
            };
            let child = self.arena.table(child_unit).ok_or(Errno::INVAL)?;
            let child_pa = pa + (va - iova);
            let res = self.map_table(
                w,
                child_unit,
                child,
                level - 1,
                va,
                span_last,
                child_pa,
                plan,
                mapped,
            );
            if let Err(e) = res {
                if fresh && w.counts[child_unit as usize] == 0 {
                    entry.store(0, Ordering::Release);
                    w.counts[unit as usize] -= 1;
                    self.arena.free(w, child_unit);
                }
                return Err(e);
            }
            if span_last == last {
                return Ok(());
            }
            va = span_last + 1;
        }
    }

    /// The hot loop: fills consecutive leaves of one table.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn map_leaves(
        &self,
        w: &mut Alloc,
        unit: u64,
        table: &[AtomicU64],
        iova: u64,
        last: u64,
        pa: u64,
        plan: &LeafPlan,
        mapped: &mut u64,
    ) -> Result<(), Errno> {
        let shift = self.geo.level_shift(plan.level);
        let first = self.index(iova, plan.level, table.len());
        let count = ((last - iova) >> shift) as usize + 1;
        let entries = table.get(first..first + count).ok_or(Errno::INVAL)?;
        let mut entry_val = plan.attrs | self.fmt.oa_bits(pa);
        let mut written = 0usize;
        let mut res = Ok(());
        for entry in entries {
            if self
                .fmt
                .entry_kind(plan.level, entry.load(Ordering::Relaxed))
                != EntryKind::Empty
            {
                res = Err(Errno::EXIST);
                break;
            }
            entry.store(entry_val, Ordering::Release);
            entry_val = entry_val.wrapping_add(plan.oa_step);
            written += 1;
        }
        w.counts[unit as usize] += written as u32;
        *mapped += (written as u64) << shift;
        res
    }

    /// Unmaps `[iova, last]`; returns the bytes unmapped. Caller holds the lock.
    pub(crate) fn unmap_walk(&self, w: &mut Alloc, iova: u64, last: u64) -> u64 {
        let mut unmapped = 0;
        let top = self.arena.top();
        self.unmap_table(w, 0, top, self.geo.top_level(), iova, last, &mut unmapped);
        unmapped
    }

    /// Returns `false` when unmapping must stop: a hole, a refused partial leaf, or
    /// a block that could not be split.
    #[allow(clippy::too_many_arguments)]
    fn unmap_table(
        &self,
        w: &mut Alloc,
        unit: u64,
        table: &[AtomicU64],
        level: u32,
        iova: u64,
        last: u64,
        unmapped: &mut u64,
    ) -> bool {
        if level == 0 {
            return self.unmap_leaves(w, unit, table, iova, last, unmapped);
        }
        let shift = self.geo.level_shift(level);
        let mut va = iova;
        let mut cleared = 0u32;
        let go_on = loop {
            let entry = &table[self.index(va, level, table.len())];
            let entry_last = log2::block_last(va, shift);
            let span_last = entry_last.min(last);
            let raw = entry.load(Ordering::Acquire);
            let go_on = match self.fmt.entry_kind(level, raw) {
                EntryKind::Empty => false,
                EntryKind::Table => {
                    let child_unit = self.unit_of(self.fmt.table_pa(raw));
                    self.unmap_child(
                        w,
                        entry,
                        child_unit,
                        level,
                        va,
                        span_last,
                        unmapped,
                        &mut cleared,
                    )
                }
                EntryKind::Leaf => {
                    let starts_at_leaf = log2::is_aligned(va, shift);
                    let covers = starts_at_leaf && span_last == entry_last;
                    match F::PARTIAL_UNMAP {
                        _ if covers => self.clear_leaf(entry, shift, &mut cleared, unmapped),
                        PartialUnmap::WholeLeaf if starts_at_leaf => {
                            self.clear_leaf(entry, shift, &mut cleared, unmapped)
                        }
                        PartialUnmap::WholeLeaf => false,
                        PartialUnmap::Split => match self.split_leaf(w, level, entry, raw) {
                            Ok(child_unit) => self.unmap_child(
                                w,
                                entry,
                                child_unit,
                                level,
                                va,
                                span_last,
                                unmapped,
                                &mut cleared,
                            ),
                            Err(_) => false,
                        },
                    }
                }
            };
            if !go_on || span_last == last {
                break go_on;
            }
            va = span_last + 1;
        };
        w.counts[unit as usize] -= cleared;
        go_on
    }

    fn clear_leaf(
        &self,
        entry: &AtomicU64,
        shift: u32,
        cleared: &mut u32,
        unmapped: &mut u64,
    ) -> bool {
        entry.store(0, Ordering::Release);
        *cleared += 1;
        *unmapped += 1 << shift;
        true
    }

    /// Unmaps `[va, span_last]` in the table `entry` points to, and frees that table
    /// if it became empty.
    #[allow(clippy::too_many_arguments)]
    fn unmap_child(
        &self,
        w: &mut Alloc,
        entry: &AtomicU64,
        child_unit: u64,
        level: u32,
        va: u64,
        span_last: u64,
        unmapped: &mut u64,
        cleared: &mut u32,
    ) -> bool {
        let Some(child) = self.arena.table(child_unit) else {
            return false;
        };
        let go_on = self.unmap_table(w, child_unit, child, level - 1, va, span_last, unmapped);
        if w.counts[child_unit as usize] == 0 {
            entry.store(0, Ordering::Release);
            *cleared += 1;
            self.arena.free(w, child_unit);
        }
        go_on
    }

    /// The hot loop of unmap: clears consecutive granule leaves of one table.
    fn unmap_leaves(
        &self,
        w: &mut Alloc,
        unit: u64,
        table: &[AtomicU64],
        iova: u64,
        last: u64,
        unmapped: &mut u64,
    ) -> bool {
        let first = self.index(iova, 0, table.len());
        let count = ((last - iova) >> self.geo.granule_lg2) as usize + 1;
        let Some(entries) = table.get(first..first + count) else {
            return false;
        };
        let mut cleared = 0usize;
        if w.counts[unit as usize] as usize == table.len() {
            // Every entry is a leaf (the count is exact): no hole can stop
            // the unmap, so clear without loading the entries (a bulk unmap
            // then writes the table's memory once instead of reading it too).
            for entry in entries {
                entry.store(0, Ordering::Release);
            }
            cleared = count;
        } else {
            for entry in entries {
                if self.fmt.entry_kind(0, entry.load(Ordering::Relaxed)) == EntryKind::Empty {
                    break;
                }
                entry.store(0, Ordering::Release);
                cleared += 1;
            }
        }
        w.counts[unit as usize] -= cleared as u32;
        *unmapped += (cleared as u64) << self.geo.granule_lg2;
        cleared == count
    }

    /// Replaces the block `raw` at `level` by a table of leaves one level down that
    /// map the same addresses with the same attributes; returns the new table.
    fn split_leaf(
        &self,
        w: &mut Alloc,
        level: u32,
        entry: &AtomicU64,
        mut raw: u64,
    ) -> Result<u64, Errno> {
        let child_unit = self.arena.alloc(w)?;
        let child = self.arena.table(child_unit).ok_or(Errno::NOMEM)?;
        let child_level = level - 1;
        let oa_step = self.fmt.oa_bits(1 << self.geo.level_shift(child_level));
        let table_entry = self.fmt.encode_table(level, self.arena.unit_pa(child_unit));
        loop {
            let attrs = self.fmt.relevel_attrs(level, child_level, raw);
            let mut entry_val = attrs | self.fmt.oa_bits(self.fmt.leaf_pa(level, raw));
            for c in child {
                c.store(entry_val, Ordering::Relaxed);
                entry_val = entry_val.wrapping_add(oa_step);
            }
            // A concurrent DMA may have set accessed/dirty on the block: redo then.
            match entry.compare_exchange(raw, table_entry, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => raw = now,
            }
        }
        w.counts[child_unit as usize] = child.len() as u32;
        Ok(child_unit)
    }

    /// Reports (and clears unless `no_clear`) dirty leaves in `[iova, last]`:
    /// granule leaves 64 at a time through [`DirtySink::bits`], larger leaves
    /// whole through [`DirtySink::range`], in ascending IOVA order.
    pub(crate) fn dirty_walk(
        &self,
        iova: u64,
        last: u64,
        no_clear: bool,
        sink: &mut dyn DirtySink,
    ) {
        let top = self.arena.top();
        self.dirty_table(top, self.geo.top_level(), iova, last, no_clear, sink);
    }

    fn dirty_table(
        &self,
        table: &[AtomicU64],
        level: u32,
        iova: u64,
        last: u64,
        no_clear: bool,
        sink: &mut dyn DirtySink,
    ) {
        if level == 0 {
            return self.dirty_leaves(table, iova, last, no_clear, sink);
        }
        let shift = self.geo.level_shift(level);
        let mut va = iova;
        loop {
            let entry = &table[self.index(va, level, table.len())];
            let span_last = log2::block_last(va, shift).min(last);
            let raw = entry.load(Ordering::Acquire);
            match self.fmt.entry_kind(level, raw) {
                EntryKind::Empty => {}
                EntryKind::Table => {
                    if let Some((_, child)) = self.arena.table_at(self.fmt.table_pa(raw)) {
                        self.dirty_table(child, level - 1, va, span_last, no_clear, sink);
                    }
                }
                EntryKind::Leaf => {
                    if self.fmt.is_dirty(raw) {
                        if !no_clear {
                            self.clean_dirty_entry(entry, level);
                        }
                        sink.range(log2::align_down(va, shift), 1 << shift);
                    }
                }
            }
            if span_last == last {
                return;
            }
            va = span_last + 1;
        }
    }

    /// The hot loop of the dirty walk: the granule leaves of one table, 64 at a
    /// time. Each group of (at most) 64 entries that share one 64-granule
    /// aligned IOVA block becomes one mask of dirty leaves; only dirty entries
    /// are written, and clean groups cost one load per entry and no call.
    fn dirty_leaves(
        &self,
        table: &[AtomicU64],
        iova: u64,
        last: u64,
        no_clear: bool,
        sink: &mut dyn DirtySink,
    ) {
        let shift = self.geo.granule_lg2;
        let group_lg2 = shift + 6;
        let mut va = iova;
        loop {
            let group_last = log2::block_last(va, group_lg2).min(last);
            let first = self.index(va, 0, table.len());
            let count = ((group_last - va) >> shift) as usize + 1;
            let Some(entries) = table.get(first..first + count) else {
                return;
            };
            // At level 0 the walker only ever writes leaves and 0 (tables are
            // encoded at level 1 and up), and `is_dirty(0)` is false in every
            // format, so the dirty test alone classifies an entry. A whole
            // group has a constant trip count and unrolls.
            let mut bits = 0u64;
            if let Ok(group) = <&[AtomicU64; 64]>::try_from(entries) {
                // Eight lanes of eight entries: every shift by a constant (a
                // shift by a register is several micro-ops) and the ORs of a
                // lane independent of the other lanes'.
                let (lanes, _) = group.as_chunks::<8>();
                for (k, lane) in lanes.iter().enumerate() {
                    let mut m = 0u64;
                    for (i, entry) in lane.iter().enumerate() {
                        m |= u64::from(self.fmt.is_dirty(entry.load(Ordering::Acquire))) << i;
                    }
                    bits |= m << (8 * k);
                }
            } else {
                for (i, entry) in entries.iter().enumerate() {
                    bits |= u64::from(self.fmt.is_dirty(entry.load(Ordering::Acquire))) << i;
                }
            }
            if bits != 0 {
                if !no_clear && bits == u64::MAX {
                    // A whole dirty group (64 entries): one pass, no bit scan.
                    for entry in entries {
                        self.clean_dirty_entry(entry, 0);
                    }
                } else if !no_clear {
                    let mut b = bits;
                    while b != 0 {
                        if let Some(entry) = entries.get(b.trailing_zeros() as usize) {
                            self.clean_dirty_entry(entry, 0);
                        }
                        b &= b - 1;
                    }
                }
                let bit0 = (va >> shift) & 63;
                sink.bits(log2::align_down(va, group_lg2), shift, bits << bit0);
            }
            if group_last == last {
                return;
            }
            va = group_last + 1;
        }
    }

    /// Clears the dirty flag of the dirty leaf `entry`. The lock-free writers
    /// (DMA translations, `mark_dirty`) only ever add the accessed and dirty
    /// flags, and leave an entry alone when it already has both: such an entry
    /// cannot change under the writer lock, so a plain store clears it; any
    /// other entry goes through compare-and-swap.
    #[inline]
    fn clean_dirty_entry(&self, entry: &AtomicU64, level: u32) {
        let raw = entry.load(Ordering::Acquire);
        if self.fmt.set_accessed(self.fmt.make_dirty(raw)) == raw {
            entry.store(self.fmt.make_clean(raw), Ordering::Release);
        } else {
            self.clean_entry(entry, level);
        }
    }

    fn clean_entry(&self, entry: &AtomicU64, level: u32) {
        let _ = entry.fetch_update(Ordering::AcqRel, Ordering::Acquire, |raw| {
            (self.fmt.entry_kind(level, raw) == EntryKind::Leaf).then(|| self.fmt.make_clean(raw))
        });
    }
}
