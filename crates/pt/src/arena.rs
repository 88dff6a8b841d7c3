//! Table memory: a safe arena of `AtomicU64` words addressed by fake physical addresses.
//!
//! Kernel: `drivers/iommu/iommu-pages.c` (table allocation) — replaced here by an
//! arena so that table "physical addresses" are indices and no raw pointer exists.
//!
//! Memory is a list of segments whose sizes double (segment `k` holds
//! `2^k * 2^base_units_lg2` tables), each published once through a `OnceLock`.
//! A segment never moves or shrinks while the arena is shared, so a lock-free
//! reader holding `&Arena` can index any table without a lock; a stale index can
//! at worst read another table's words, which is memory-safe. Tables freed by the
//! writer go to a free list ([`Alloc`]) and are reused; [`Arena::release_unused`]
//! returns whole empty segments to the allocator when the caller holds `&mut`.
//!
//! Fake physical addresses name the segment directly: the table at offset `o`
//! units into segment `k` has the address `k << SEG_SHIFT | o << unit_bytes_lg2`,
//! so a reader turns an entry's address into a table with one shift and one
//! load of the segment pointer (no arithmetic on the unit number).

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

use uapi::Errno;

/// The most segments an arena can grow to (segment 0 included).
const MAX_SEGMENTS: usize = 41;
/// Slots of the inline segment array: a power of two above [`MAX_SEGMENTS`],
/// so that a reader indexes it with a mask instead of a bounds check.
const SEG_SLOTS: usize = 64;
/// Bit position of the segment number in a table's fake physical address; a
/// segment holds at most `2^SEG_SHIFT` bytes (1 TiB of tables). Addresses stay
/// below `2^46`, inside every format's address field.
const SEG_SHIFT: u32 = 40;
const SEG_MASK: u64 = (1 << SEG_SHIFT) - 1;

/// Segmented, append-only storage for page tables.
pub(crate) struct Arena {
    /// Words per table unit, lg2.
    unit_words_lg2: u32,
    /// Units in segment 0, lg2.
    base_units_lg2: u32,
    /// Words of the top table (it starts at unit 0 and may span several units).
    top_words: usize,
    /// The top table (the start of segment 0), for walks to start from
    /// without a lookup.
    top: Arc<[AtomicU64]>,
    /// Segment `k` at index `k`: segment 0 (shared with `top`) is allocated
    /// up front, the others on demand by the writer; indices from
    /// [`MAX_SEGMENTS`] on stay empty.
    segs: [OnceLock<Arc<[AtomicU64]>>; SEG_SLOTS],
}

/// Writer-side allocation state: free list, per-table entry counts, limits.
///
/// Lives inside the table's writer mutex.
pub(crate) struct Alloc {
    /// Next never-used unit.
    next_unit: u64,
    /// Freed units (all words zero), reused LIFO.
    pub(crate) free: Vec<u64>,
    /// Number of non-empty entries per unit (index = unit).
    pub(crate) counts: Vec<u32>,
    /// Units currently holding a table (the top table counts as its span).
    pub(crate) live_units: u64,
    /// Allocation fails with `ENOMEM` beyond this many live units.
    pub(crate) max_units: u64,
}

fn zeroed(words: usize) -> Arc<[AtomicU64]> {
    std::iter::repeat_with(|| AtomicU64::new(0))
        .take(words)
        .collect()
}

impl Arena {
    /// Creates an arena of `2^unit_words_lg2`-word tables with a `top_words` top table.
    pub(crate) fn new(unit_words_lg2: u32, top_words: usize) -> (Arena, Alloc) {
        let unit_words = 1usize << unit_words_lg2;
        let top_units = top_words.div_ceil(unit_words).max(1) as u64;
        let base_units_lg2 = top_units.next_power_of_two().max(4).trailing_zeros();
        let segs: [OnceLock<Arc<[AtomicU64]>>; SEG_SLOTS] =
            std::array::from_fn(|_| OnceLock::new());
        let top = Arc::clone(segs[0].get_or_init(|| zeroed(unit_words << base_units_lg2)));
        let arena = Arena {
            unit_words_lg2,
            base_units_lg2,
            top_words,
            top,
            segs,
        };
        let alloc = Alloc {
            next_unit: top_units,
            free: Vec::new(),
            counts: vec![0; (1usize << base_units_lg2).max(top_units as usize)],
            live_units: top_units,
            max_units: u64::MAX,
        };
        (arena, alloc)
    }

    /// Bytes per table unit, lg2.
    pub(crate) fn unit_bytes_lg2(&self) -> u32 {
        self.unit_words_lg2 + 3
    }

    /// The top table.
    #[inline]
    pub(crate) fn top(&self) -> &[AtomicU64] {
        &self.top[..self.top_words]
    }

    /// Segment index and first unit of the segment holding `unit`.
    #[inline]
    fn segment_of(&self, unit: u64) -> (usize, u64) {
        let k = 63 - ((unit >> self.base_units_lg2) + 1).leading_zeros();
        let first = ((1u64 << k) - 1) << self.base_units_lg2;
        (k as usize, first)
    }

    /// The table at `unit`, or `None` if that memory was never allocated.
    #[inline]
    pub(crate) fn table(&self, unit: u64) -> Option<&[AtomicU64]> {
        if unit >= 1 << 50 {
            return None;
        }
        let (k, first) = self.segment_of(unit);
        let seg = self.segs.get(k)?.get()?;
        let off = ((unit - first) as usize) << self.unit_words_lg2;
        seg.get(off..off + (1usize << self.unit_words_lg2))
    }

    /// The table whose fake physical address is `pa`, or `None`.
    #[inline]
    pub(crate) fn table_at(&self, pa: u64) -> Option<(u64, &[AtomicU64])> {
        if (pa >> SEG_SHIFT) as usize >= MAX_SEGMENTS {
            return None;
        }
        let unit = self.unit_of(pa);
        Some((unit, self.table(unit)?))
    }

    /// Entry `index` of the table whose fake physical address is `pa`, or
    /// `None` (the reader's fast path: one shift and mask, one segment load,
    /// one bounds check). `index` must be below the table's entry count.
    #[inline(always)]
    pub(crate) fn entry_at(&self, pa: u64, index: usize) -> Option<&AtomicU64> {
        let seg = self.segs[(pa >> SEG_SHIFT) as usize & (SEG_SLOTS - 1)].get()?;
        seg.get((((pa & SEG_MASK) >> 3) as usize).wrapping_add(index))
    }

    /// The unit whose table has the fake physical address `pa`.
    #[inline]
    pub(crate) fn unit_of(&self, pa: u64) -> u64 {
        let k = pa >> SEG_SHIFT;
        let first = ((1u64 << k.min(63)) - 1) << self.base_units_lg2;
        first + ((pa & SEG_MASK) >> self.unit_bytes_lg2())
    }

    /// The fake physical address of `unit`.
    #[inline]
    pub(crate) fn unit_pa(&self, unit: u64) -> u64 {
        let (k, first) = self.segment_of(unit);
        ((k as u64) << SEG_SHIFT) | ((unit - first) << self.unit_bytes_lg2())
    }

    /// Allocates a zeroed table.
    ///
    /// # Errors
    ///
    /// `ENOMEM` past the configured limit or when the arena is exhausted.
    pub(crate) fn alloc(&self, a: &mut Alloc) -> Result<u64, Errno> {
        if a.live_units >= a.max_units {
            return Err(Errno::NOMEM);
        }
        let unit = match a.free.pop() {
            Some(unit) => unit,
            None => {
                let unit = a.next_unit;
                let (k, first) = self.segment_of(unit);
                let seg_units = (1u64 << k) << self.base_units_lg2;
                if k >= MAX_SEGMENTS
                    || (seg_units << self.unit_bytes_lg2()).trailing_zeros() > SEG_SHIFT
                {
                    return Err(Errno::NOMEM);
                }
                let seg_words = seg_units << self.unit_words_lg2;
                self.segs[k].get_or_init(|| zeroed(seg_words as usize));
                if a.counts.len() <= unit as usize {
                    a.counts.resize((first + seg_units) as usize, 0);
                }
                a.next_unit += 1;
                unit
            }
        };
        a.live_units += 1;
        Ok(unit)
    }

    /// Returns `unit` (all entries zero) to the free list.
    pub(crate) fn free(&self, a: &mut Alloc, unit: u64) {
        debug_assert_eq!(a.counts[unit as usize], 0);
        debug_assert!(self.table(unit).is_some_and(|t| t
            .iter()
            .all(|w| w.load(std::sync::atomic::Ordering::Relaxed) == 0)));
        a.free.push(unit);
        a.live_units -= 1;
    }

    /// Bytes of memory the arena holds (capacity, not live tables).
    pub(crate) fn capacity_bytes(&self) -> u64 {
        let seg_bytes = |s: &[AtomicU64]| s.len() as u64 * 8;
        self.segs
            .iter()
            .filter_map(OnceLock::get)
            .map(|s| seg_bytes(s))
            .sum()
    }

    /// Drops trailing segments that hold no live table.
    ///
    /// Needs `&mut self`: no reader can hold a reference into the arena.
    pub(crate) fn release_unused(&mut self, a: &mut Alloc) {
        let mut free_sorted = a.free.clone();
        free_sorted.sort_unstable();
        // Units at or above `used_end` are all free: forget them and rewind.
        let mut used_end = a.next_unit;
        while used_end > 0 && free_sorted.last() == Some(&(used_end - 1)) {
            free_sorted.pop();
            used_end -= 1;
        }
        for k in 1..MAX_SEGMENTS {
            let first = ((1u64 << k) - 1) << self.base_units_lg2;
            if first >= used_end {
                self.segs[k] = OnceLock::new();
            }
        }
        a.next_unit = used_end;
        a.free.retain(|&u| u < used_end);
        a.counts.truncate(used_end as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_in_new_segments_are_reachable_and_distinct() {
        let (arena, mut a) = Arena::new(9, 512);
        let units: Vec<u64> = (0..100).map(|_| arena.alloc(&mut a).unwrap()).collect();
        assert_eq!(units[0], 1);
        for &u in &units {
            let t = arena.table(u).unwrap();
            assert_eq!(t.len(), 512);
            t[0].store(u, std::sync::atomic::Ordering::Relaxed);
        }
        for &u in &units {
            assert_eq!(
                arena.table(u).unwrap()[0].load(std::sync::atomic::Ordering::Relaxed),
                u
            );
        }
        assert!(arena.table(1 << 40).is_none());
        assert!(arena.table(u64::MAX).is_none());
    }

    #[test]
    fn freed_table_is_reused_before_fresh_memory() {
        let (arena, mut a) = Arena::new(9, 512);
        let u = arena.alloc(&mut a).unwrap();
        arena.free(&mut a, u);
        assert_eq!(arena.alloc(&mut a).unwrap(), u);
    }

    #[test]
    fn allocation_past_limit_returns_enomem() {
        let (arena, mut a) = Arena::new(9, 512);
        a.max_units = 2;
        assert!(arena.alloc(&mut a).is_ok());
        assert_eq!(arena.alloc(&mut a), Err(Errno::NOMEM));
    }

    #[test]
    fn release_unused_drops_empty_trailing_segments() {
        let (mut arena, mut a) = Arena::new(9, 512);
        let before = arena.capacity_bytes();
        let units: Vec<u64> = (0..200).map(|_| arena.alloc(&mut a).unwrap()).collect();
        assert!(arena.capacity_bytes() > before);
        for u in units {
            arena.free(&mut a, u);
        }
        arena.release_unused(&mut a);
        assert_eq!(arena.capacity_bytes(), before);
        let u = arena.alloc(&mut a).unwrap();
        assert!(arena.table(u).is_some());
    }
}
