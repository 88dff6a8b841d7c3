//! A software IOTLB in front of [`PageTable::translate`](crate::PageTable::translate):
//! lock-free hits for emulated-device DMA, invalidated by every unmap.
//!
//! Kernel: there is no software IOTLB in Linux; this plays the role of the
//! hardware IOTLB that `iommu_iotlb_sync()` flushes after `unmap_pages`.
//!
//! # Design
//!
//! Each thread owns one direct-mapped cache shared by every page table it
//! translates through (like a device's own ATC): [`SMALL`] slots for leaves
//! smaller than a level-1 block, and [`UPPER`] slots keyed by level-1 block,
//! each holding either a larger leaf (cut into level-1-block chunks) or, as
//! the paging-structure caches of VT-d and x86 do, the level-0 table holding
//! the block's leaves. So a miss on a small leaf usually costs one table-entry
//! load instead of a whole walk, and a large leaf is found with the same
//! probe. Chunk sizes are constants of the format (its smallest granule and
//! level-1 block over all configurations), so the hit path shifts by
//! constants. Slots are indexed by the tag folded with its next bits and the
//! epoch, so that consecutive pages share slot lines and strided pages (one
//! every 64 KiB, say) use every slot. A slot is read and written only by its
//! thread, so a hit is one thread-local access, two loads and one compare,
//! and a fill is plain stores: no locked instruction on either path (a locked
//! instruction would serialise the walks that a DMA engine overlaps).
//! The cache is allocated on a thread's first translation; thread-local
//! storage holds only a reference to it (no lazy-initialisation state to check
//! on the hit path, and threads with small stacks are not affected). Caches
//! are never freed: a thread that exits hands its cache to a process-wide pool
//! and the next new thread takes it over, so the memory is bounded by the
//! most threads that ever translated at once. A cache taken over keeps its
//! slots, which stay valid or dead by their epochs like any other.
//!
//! A slot is tagged with `(page number, epoch)`. Every page table has an
//! *epoch*, a number that changes with every `unmap_pages` (after clearing the
//! entries, before returning, under the writer lock). Epochs come from one
//! process-wide 64-bit counter, in blocks of [`EPOCH_BLOCK`] that a table
//! reserves when it is created and whenever it has used up its block, so they
//! are never reused: the epoch names both the table and the state it is in,
//! and an unmap invalidates every cached translation of its table in every
//! thread at once:
//!
//! - a filler reads the epoch *before* its walk and tags the slot with that
//!   value, so a walk that ran before an unmap's clears carries the old epoch
//!   and is rejected by every translation that starts after the unmap
//!   returned;
//! - a filler that read the new epoch also sees the cleared entries (the epoch
//!   store is a release, the filler's load an acquire), so it cannot cache
//!   them.
//!
//! Maps never invalidate: only present leaves and the tables holding them are
//! cached, a map only turns empty entries into leaves or tables, and tables
//! are detached and freed only by unmaps. An entry reached through a cached
//! table is always loaded afresh.
//!
//! Admission: a leaf found through a cached level-0 table (the *near* path)
//! costs one entry load more than a hit; caching it costs a store to its slot
//! line and evicts the leaf the slot held. A leaf used once (random DMA over
//! a large buffer, many scattered areas) gains nothing from that store, so
//! the near path caches a leaf only on its second use in a row (a device
//! working through a page) or on every [`ADMIT_EVERY`]th near-path
//! translation (leaves that are hot over a longer interleaving get in after
//! a few uses). A walk always caches what it found.
//!
//! Dirty tracking: a write while tracking is enabled never hits; it loads the
//! leaf entry (through a cached table or a walk) and sets its dirty flag
//! atomically, as the hardware does. Reads, and writes without tracking, hit.
//! The accessed flag is set by the walk that fills the slot.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use uapi::Errno;

use crate::Prot;

/// Slots for leaves smaller than a level-1 block, per thread (a power of two).
/// Every translation probes them, so they stay within the L1 cache (32 KiB):
/// 8192 slots made lookups in 2 MiB leaves 30 % slower.
pub const SMALL: usize = 1024;
/// Slots per level-1 block, per thread (a power of two): level-1 and larger
/// leaves, and level-0 tables (the paging-structure cache). 4096 slots (128
/// KiB) hold the leaf tables of 8 GiB of contiguous IOVA without collisions,
/// so that a small leaf not cached costs one entry load over that span.
pub(crate) const UPPER: usize = 4096;

/// The near path caches a leaf used once on every `ADMIT_EVERY`th of its
/// translations (a power of two; see the module documentation).
pub(crate) const ADMIT_EVERY: u64 = 8;

/// The process-wide epoch counter; 0 is never handed out (empty slots).
static NEXT_EPOCH: AtomicU64 = AtomicU64::new(1);

/// Epochs a table reserves from [`NEXT_EPOCH`] at a time, so that unmaps in
/// different tables do not all write one shared counter.
const EPOCH_BLOCK: u64 = 1 << 16;

/// One cached leaf chunk: the granule (small slots) or level-1 block (upper
/// slots) `tag` of the table state `epoch` starts at output address `pa`. An
/// upper slot with `meta == 0` caches a table instead: `pa` is the fake
/// physical address of the level-0 table holding the leaves of level-1 block
/// `tag`.
#[derive(Clone, Copy, Default)]
struct Slot {
    tag: u64,
    epoch: u64,
    pa: u64,
    /// [`Hit::meta`] of the whole leaf (never 0); 0 for a level-0 table.
    meta: u64,
}

impl Slot {
    #[inline(always)]
    fn matches(&self, tag: u64, epoch: u64) -> bool {
        (self.tag ^ tag) | (self.epoch ^ epoch) == 0
    }
}

/// A [`Slot`] in memory. Only the thread owning the cache touches it, so
/// relaxed loads and stores (plain moves) are enough; atomics only make a
/// cache `Sync`, so that an exiting thread can hand it over.
#[derive(Default)]
#[repr(C, align(32))]
struct SlotCell([AtomicU64; 4]);

impl SlotCell {
    #[inline(always)]
    fn get(&self) -> Slot {
        let [tag, epoch, pa, meta] = &self.0;
        Slot {
            tag: tag.load(Ordering::Relaxed),
            epoch: epoch.load(Ordering::Relaxed),
            pa: pa.load(Ordering::Relaxed),
            meta: meta.load(Ordering::Relaxed),
        }
    }

    #[inline(always)]
    fn set(&self, s: Slot) {
        let [tag, epoch, pa, meta] = &self.0;
        tag.store(s.tag, Ordering::Relaxed);
        epoch.store(s.epoch, Ordering::Relaxed);
        pa.store(s.pa, Ordering::Relaxed);
        meta.store(s.meta, Ordering::Relaxed);
    }
}

/// One thread's IOTLB: shared by every page table the thread translates in.
pub(crate) struct Cache {
    /// Granule tag of the last leaf the near path found.
    near_tag: AtomicU64,
    /// Near-path translations so far (wrapping).
    near_count: AtomicU64,
    small: [SlotCell; SMALL],
    upper: [SlotCell; UPPER],
}

thread_local! {
    /// This thread's cache; `None` before its first translation and after
    /// [`OWNER`] handed it back.
    static CACHE: Cell<Option<&'static Cache>> = const { Cell::new(None) };
    /// Hands the thread's cache to [`POOL`] when the thread exits.
    static OWNER: Owner = const { Owner(Cell::new(None)) };
}

/// Caches of exited threads, for new threads to take over.
static POOL: Mutex<Vec<&'static Cache>> = Mutex::new(Vec::new());

struct Owner(Cell<Option<&'static Cache>>);

impl Drop for Owner {
    fn drop(&mut self) {
        if let Some(cache) = self.0.take() {
            // This thread stops using it before another can take it.
            CACHE.set(None);
            POOL.lock().unwrap_or_else(|e| e.into_inner()).push(cache);
        }
    }
}

/// Gives this thread a cache: one from the pool, or a new one. `None` while
/// the thread's locals are being destroyed (the caller walks uncached).
#[cold]
#[inline(never)]
fn install() -> Option<&'static Cache> {
    OWNER
        .try_with(|owner| {
            let pooled = POOL.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let cache = pooled.unwrap_or_else(|| {
                Box::leak(Box::new(Cache {
                    near_tag: AtomicU64::new(0),
                    near_count: AtomicU64::new(0),
                    small: std::array::from_fn(|_| SlotCell::default()),
                    upper: std::array::from_fn(|_| SlotCell::default()),
                }))
            });
            owner.0.set(Some(cache));
            CACHE.set(Some(cache));
            cache
        })
        .ok()
}

/// This thread's cache, installing one on first use; `None` while the
/// thread's locals are being destroyed.
#[inline(always)]
pub(crate) fn cache() -> Option<&'static Cache> {
    CACHE.get().or_else(install)
}

/// This thread's cache if it has one already (no installation: for paths
/// that leave the first translation to a slower path).
#[inline(always)]
pub(crate) fn installed() -> Option<&'static Cache> {
    CACHE.get()
}

/// `2^lg2 - 1` for `lg2 < 64` (leaf and chunk sizes).
#[inline(always)]
fn low_mask(lg2: u32) -> u64 {
    (1u64.wrapping_shl(lg2)).wrapping_sub(1)
}

#[inline(always)]
fn index(tag: u64, epoch: u64, slots: usize) -> usize {
    // The low bits of the tag folded with the next ones: consecutive tags
    // share cache lines of slots (streaming DMAs), and strided tags (one
    // page every 64 KiB, say) spread over every slot instead of sharing the
    // few their low bits select.
    let fold = tag ^ tag.wrapping_shr(slots.trailing_zeros());
    ((fold ^ epoch) as usize) & (slots - 1)
}

/// A translation in two words, as a slot caches it and as the IOTLB paths
/// return it (in registers): the output address, and the leaf's size or'ed
/// with its permission bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Hit {
    /// Output address of the translated IOVA; the errno of a fault.
    pub(crate) pa: u64,
    /// Size of the leaf in bytes (a power of two above [`PROT_BITS`]) or'ed
    /// with the bits of its [`Prot`]; 0 for a fault.
    pub(crate) meta: u64,
}

/// The bits of [`Hit::meta`] that hold the permissions: every [`Prot`] flag
/// is below them, and every leaf is larger (a granule is at least 256 bytes).
pub(crate) const PROT_BITS: u64 = 0xff;

impl Hit {
    /// The translation by a leaf of `size` bytes allowing `prot`.
    #[inline(always)]
    pub(crate) fn leaf(pa: u64, size: u64, prot: Prot) -> Hit {
        Hit {
            pa,
            meta: size | u64::from(prot.bits()),
        }
    }

    /// A fault with errno `e`.
    #[inline(always)]
    pub(crate) fn fault(e: Errno) -> Hit {
        Hit {
            pa: e.raw() as u64,
            meta: 0,
        }
    }

    /// The size of the leaf (0 for a fault).
    #[inline(always)]
    pub(crate) fn size(self) -> u64 {
        self.meta & !PROT_BITS
    }

    /// What the leaf allows.
    #[inline(always)]
    pub(crate) fn prot(self) -> Prot {
        Prot::from_bits_retain((self.meta & PROT_BITS) as u32)
    }

    /// The errno of a fault; `None` for a translation.
    #[inline(always)]
    pub(crate) fn errno(self) -> Option<Errno> {
        if self.meta != 0 {
            return None;
        }
        Some(Errno::from_raw(self.pa as i32).unwrap_or(Errno::FAULT))
    }
}

impl Cache {
    /// The translation of `iova` by the cached chunk `s` (`chunk_lg2`
    /// bytes), if its leaf allows `needed`.
    #[inline(always)]
    fn hit(s: &Slot, iova: u64, chunk_lg2: u32, needed: Prot) -> Option<Hit> {
        let hit = Hit {
            pa: s.pa.wrapping_add(iova & low_mask(chunk_lg2)),
            meta: s.meta,
        };
        hit.prot().contains(needed).then_some(hit)
    }

    /// The cached small leaf (granule `granule_lg2`) covering `iova` in table
    /// state `epoch`, if it allows `needed`.
    #[inline(always)]
    pub(crate) fn lookup_small(
        &self,
        epoch: u64,
        iova: u64,
        needed: Prot,
        granule_lg2: u32,
    ) -> Option<Hit> {
        let tag = iova.wrapping_shr(granule_lg2);
        let s = self.small[index(tag, epoch, SMALL)].get();
        if !s.matches(tag, epoch) {
            return None;
        }
        Self::hit(&s, iova, granule_lg2, needed)
    }

    /// The upper slot of the level-1 block (`2^large_lg2` bytes) of `iova` in
    /// table state `epoch`: `(pa, meta)` of a large-leaf chunk, or of a
    /// level-0 table when `meta == 0`.
    #[inline(always)]
    pub(crate) fn lookup_upper(&self, epoch: u64, iova: u64, large_lg2: u32) -> Option<(u64, u64)> {
        let tag = iova.wrapping_shr(large_lg2);
        let s = self.upper[index(tag, epoch, UPPER)].get();
        s.matches(tag, epoch).then_some((s.pa, s.meta))
    }

    /// The translation of `iova` by the large-leaf chunk `(pa, meta)` that
    /// [`Cache::lookup_upper`] found, if it allows `needed`.
    #[inline(always)]
    pub(crate) fn upper_hit(
        (pa, meta): (u64, u64),
        iova: u64,
        needed: Prot,
        large_lg2: u32,
    ) -> Option<Hit> {
        let s = Slot {
            tag: 0,
            epoch: 0,
            pa,
            meta,
        };
        Self::hit(&s, iova, large_lg2, needed)
    }

    /// Whether the near path caches the leaf of `iova` (granule
    /// `granule_lg2`) it just found: on its second use in a row, or on every
    /// [`ADMIT_EVERY`]th near-path translation (module documentation).
    #[inline(always)]
    pub(crate) fn admit(&self, iova: u64, granule_lg2: u32) -> bool {
        let tag = iova.wrapping_shr(granule_lg2);
        // Plain loads and stores: only this thread touches its cache.
        let last = self.near_tag.load(Ordering::Relaxed);
        self.near_tag.store(tag, Ordering::Relaxed);
        if last == tag {
            return true;
        }
        let n = self.near_count.load(Ordering::Relaxed).wrapping_add(1);
        self.near_count.store(n, Ordering::Relaxed);
        n & (ADMIT_EVERY - 1) == 0
    }

    /// Caches `hit`, the translation of `iova` found in table state `epoch`
    /// (read before the walk that found it).
    #[inline(always)]
    pub(crate) fn insert(&self, epoch: u64, iova: u64, hit: Hit, granule_lg2: u32, large_lg2: u32) {
        let (chunk_lg2, slot) = if hit.size() >= 1u64.wrapping_shl(large_lg2) {
            let tag = iova.wrapping_shr(large_lg2);
            (large_lg2, &self.upper[index(tag, epoch, UPPER)])
        } else {
            let tag = iova.wrapping_shr(granule_lg2);
            (granule_lg2, &self.small[index(tag, epoch, SMALL)])
        };
        slot.set(Slot {
            tag: iova.wrapping_shr(chunk_lg2),
            epoch,
            pa: hit.pa.wrapping_sub(iova & low_mask(chunk_lg2)),
            meta: hit.meta,
        });
    }

    /// Caches `table_pa` as the level-0 table of the level-1 block of `iova`
    /// in table state `epoch` (read before the walk that found it).
    #[inline(always)]
    pub(crate) fn insert_table(&self, epoch: u64, iova: u64, table_pa: u64, large_lg2: u32) {
        let tag = iova.wrapping_shr(large_lg2);
        self.upper[index(tag, epoch, UPPER)].set(Slot {
            tag,
            epoch,
            pa: table_pa,
            meta: 0,
        });
    }
}

/// The IOTLB state of one page table: its epoch.
pub(crate) struct Iotlb {
    epoch: AtomicU64,
    /// End of the block of epochs this table reserved; only the writer (under
    /// the table's lock) touches it.
    block_end: AtomicU64,
}

impl Default for Iotlb {
    fn default() -> Self {
        let first = NEXT_EPOCH.fetch_add(EPOCH_BLOCK, Ordering::Relaxed);
        Iotlb {
            epoch: AtomicU64::new(first),
            block_end: AtomicU64::new(first + EPOCH_BLOCK),
        }
    }
}

impl Iotlb {
    /// The current epoch; read it *before* a walk whose result is inserted.
    #[inline(always)]
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Invalidates every cached translation of this table in every thread
    /// (after entries were cleared, before returning; under the writer lock).
    #[inline]
    pub(crate) fn invalidate(&self) {
        let mut next = self.epoch.load(Ordering::Relaxed) + 1;
        if next == self.block_end.load(Ordering::Relaxed) {
            next = NEXT_EPOCH.fetch_add(EPOCH_BLOCK, Ordering::Relaxed);
            self.block_end.store(next + EPOCH_BLOCK, Ordering::Relaxed);
        }
        self.epoch.store(next, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_addr() -> usize {
        std::ptr::from_ref(cache().expect("cache")) as usize
    }

    #[test]
    fn an_exited_threads_cache_goes_to_the_next_new_thread() {
        // Serialised threads: each takes over the cache the previous one left
        // (other tests' threads may take one too, so compare sets).
        let first = std::thread::spawn(cache_addr).join().unwrap();
        let mut seen = std::collections::HashSet::from([first]);
        for _ in 0..8 {
            seen.insert(std::thread::spawn(cache_addr).join().unwrap());
        }
        assert!(seen.len() < 9, "every thread allocated its own cache");
    }
}
