//! Whole-table inspection: leaf enumeration and an invariant check, for tests,
//! debugging and the brute-force reference comparison of the conformance suite.
//!
//! Kernel: the generic_pt kunit helpers (`kunit_generic_pt.h`), which walk a
//! table and compare it with expectations.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::format::{EntryKind, Format};
use crate::log2;
use crate::table::PageTable;
use crate::Prot;

/// One leaf of a table, as decoded by the format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeafEntry {
    /// First IOVA the leaf maps.
    pub iova: u64,
    /// Size of the leaf in bytes.
    pub size: u64,
    /// Output address of `iova`.
    pub pa: u64,
    /// What the leaf allows.
    pub prot: Prot,
    /// The level the leaf sits at.
    pub level: u32,
    /// The raw entry.
    pub raw: u64,
}

impl<F: Format> PageTable<F> {
    /// Calls `f` for every leaf, in IOVA order. Takes the writer lock.
    pub fn for_each_leaf(&self, f: &mut dyn FnMut(LeafEntry)) {
        let _w = self.lock();
        self.leaves_in(self.arena.top(), self.geo.top_level(), 0, f);
    }

    fn leaves_in(&self, table: &[AtomicU64], level: u32, base: u64, f: &mut dyn FnMut(LeafEntry)) {
        let shift = self.geo.level_shift(level);
        for (i, entry) in table.iter().enumerate() {
            let raw = entry.load(Ordering::Acquire);
            let iova = base + ((i as u64) << shift);
            match self.fmt.entry_kind(level, raw) {
                EntryKind::Empty => {}
                EntryKind::Leaf => f(LeafEntry {
                    iova,
                    size: 1 << shift,
                    pa: self.fmt.leaf_pa(level, raw),
                    prot: self.fmt.leaf_prot(level, raw),
                    level,
                    raw,
                }),
                EntryKind::Table => {
                    if let (true, Some((_, child))) =
                        (level > 0, self.arena.table_at(self.fmt.table_pa(raw)))
                    {
                        self.leaves_in(child, level - 1, iova, f);
                    }
                }
            }
        }
    }

    /// Checks the structural invariants of [`PageTable`]: entry counts, no empty
    /// table below the top, every reachable table live and distinct, free tables
    /// zeroed, `table_bytes` exact. Returns a description of the first violation.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        let w = self.lock();
        let mut seen = HashSet::new();
        let top_nonzero = nonzero(self.arena.top());
        if w.counts[0] as usize != top_nonzero {
            return Err(format!(
                "top count {} != {top_nonzero} entries",
                w.counts[0]
            ));
        }
        self.check_table(&w.counts, self.arena.top(), self.geo.top_level(), &mut seen)?;
        for &unit in &w.free {
            if seen.contains(&unit) {
                return Err(format!("unit {unit} is both reachable and free"));
            }
            let zero = self.arena.table(unit).is_some_and(|t| nonzero(t) == 0);
            if !zero {
                return Err(format!("free unit {unit} is not zeroed"));
            }
        }
        let top_units =
            (1u64 << (self.geo.top_items_lg2 + 3)).div_ceil(1 << self.arena.unit_bytes_lg2());
        let live = top_units + seen.len() as u64;
        if w.live_units != live {
            return Err(format!("live units {} != reachable {live}", w.live_units));
        }
        if self.table_bytes() != live << self.arena.unit_bytes_lg2() {
            return Err(format!(
                "table_bytes {} for {live} units",
                self.table_bytes()
            ));
        }
        Ok(())
    }

    fn check_table(
        &self,
        counts: &[u32],
        table: &[AtomicU64],
        level: u32,
        seen: &mut HashSet<u64>,
    ) -> Result<(), String> {
        for entry in table {
            let raw = entry.load(Ordering::Relaxed);
            if raw != 0 && self.fmt.entry_kind(level, raw) == EntryKind::Empty {
                return Err(format!("non-zero empty entry {raw:#x} at level {level}"));
            }
            if self.fmt.entry_kind(level, raw) == EntryKind::Leaf {
                let pa = self.fmt.leaf_pa(level, raw);
                if !log2::is_aligned(pa, self.geo.level_shift(level)) {
                    return Err(format!("misaligned leaf {raw:#x} at level {level}"));
                }
            }
            if self.fmt.entry_kind(level, raw) != EntryKind::Table {
                continue;
            }
            let Some((unit, child)) = self
                .arena
                .table_at(self.fmt.table_pa(raw))
                .filter(|_| level > 0)
            else {
                return Err(format!(
                    "table entry {raw:#x} at level {level} points nowhere"
                ));
            };
            if !seen.insert(unit) {
                return Err(format!("unit {unit} reachable twice"));
            }
            let n = nonzero(child);
            if n == 0 || counts[unit as usize] as usize != n {
                return Err(format!(
                    "unit {unit}: count {} for {n} entries",
                    counts[unit as usize]
                ));
            }
            self.check_table(counts, child, level - 1, seen)?;
        }
        Ok(())
    }
}

fn nonzero(table: &[AtomicU64]) -> usize {
    table
        .iter()
        .filter(|e| e.load(Ordering::Relaxed) != 0)
        .count()
}
