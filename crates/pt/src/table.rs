//! [`PageTable`]: one configured page table of some [`Format`], with the Linux
//! `iommu_domain_ops` page-table entry points.
//!
//! Kernel: `drivers/iommu/generic_pt/iommu_pt.h` (`map_pages`, `unmap_pages`,
//! `iova_to_phys`, `read_and_clear_dirty`, `set_dirty`), v6.17+.
//!
//! This file validates arguments and takes locks; the range walks themselves are
//! in [`crate::walk`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use uapi::Errno;

use crate::arena::{Alloc, Arena};
use crate::format::{EntryKind, Format, Geometry};
use crate::iotlb::{self, Cache, Hit, Iotlb};
use crate::log2;
use crate::Prot;

/// `2^lg2 - 1` for table indices (`lg2` below the word size).
#[inline(always)]
fn low_mask_usize(lg2: u32) -> usize {
    1usize.wrapping_shl(lg2).wrapping_sub(1)
}

impl From<Translation> for Hit {
    #[inline(always)]
    fn from(t: Translation) -> Hit {
        Hit::leaf(t.pa, t.leaf_size, t.prot)
    }
}

impl From<Result<Translation, Errno>> for Hit {
    #[inline(always)]
    fn from(r: Result<Translation, Errno>) -> Hit {
        match r {
            Ok(t) => t.into(),
            Err(e) => Hit::fault(e),
        }
    }
}

impl Hit {
    /// The translation of a hit that is not a fault.
    #[inline(always)]
    fn translation(self) -> Translation {
        Translation {
            pa: self.pa,
            leaf_size: self.size(),
            prot: self.prot(),
        }
    }

    /// The translation, or the errno of a fault.
    #[inline(always)]
    fn get(self) -> Result<Translation, Errno> {
        match self.errno() {
            Some(e) => Err(e),
            None => Ok(self.translation()),
        }
    }
}

/// Where [`PageTable::read_and_clear_dirty_bits`] reports dirty leaves.
pub trait DirtySink {
    /// The leaf `[iova, iova + len)` (larger than the granule) is dirty.
    fn range(&mut self, iova: u64, len: u64);
    /// Granule leaves are dirty: bit `i` of `bits` (never 0) stands for the leaf
    /// at `iova + (i << granule_lg2)`; `iova` is aligned to 64 granules.
    fn bits(&mut self, iova: u64, granule_lg2: u32, bits: u64);
}

/// A [`DirtySink`] calling `record(leaf_iova, leaf_size)` once per dirty leaf.
struct PerLeaf<'a>(&'a mut dyn FnMut(u64, u64));

impl DirtySink for PerLeaf<'_> {
    fn range(&mut self, iova: u64, len: u64) {
        (self.0)(iova, len);
    }
    fn bits(&mut self, iova: u64, granule_lg2: u32, mut bits: u64) {
        while bits != 0 {
            let i = u64::from(bits.trailing_zeros());
            (self.0)(iova + (i << granule_lg2), 1 << granule_lg2);
            bits &= bits - 1;
        }
    }
}

/// The result of a hardware-like translation of one IOVA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The physical address the IOVA translates to.
    pub pa: u64,
    /// The size of the leaf that maps it, in bytes.
    pub leaf_size: u64,
    /// What the leaf allows.
    pub prot: Prot,
}

/// What [`PageTable::translate_run`] found: `len` bytes from the IOVA map
/// contiguously to `pa`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// The physical address the IOVA translates to.
    pub pa: u64,
    /// Bytes from `pa` that the run's leaves map contiguously (at least 1).
    pub len: u64,
}

/// A page table of format `F`.
///
/// # Memory and concurrency
///
/// Tables live in a safe arena of `AtomicU64` words (module `arena`); a table's
/// "physical address" is its arena index shifted by the table size. `map_pages`,
/// `unmap_pages`, `read_and_clear_dirty` and `set_dirty_tracking` take `&self`
/// and are serialised by one writer mutex, which also guards the allocator and the
/// per-table entry counts used to free empty tables. `iova_to_phys`, `translate`
/// and `mark_dirty` are lock-free readers: they load entries with `Acquire`, and
/// update accessed/dirty flags with compare-and-swap, as an IOMMU does. A reader
/// racing an unmap of the same IOVA sees either state; if the table it is walking
/// is freed and reused under it, it reads another table's words (which is
/// memory-safe) and at worst returns a stale translation or a fault, never panics.
///
/// # Invariants
///
/// - `Alloc::counts[u]` is the number of non-zero entries of table `u`;
/// - every table on the free list is all zero; every other table below the top
///   has a non-zero count (empty tables are freed as soon as they become empty).
pub struct PageTable<F: Format> {
    pub(crate) fmt: F,
    pub(crate) geo: Geometry,
    pub(crate) arena: Arena,
    /// The writer lock: allocator state and entry counts.
    writer: Mutex<Alloc>,
    /// Whether `translate` sets dirty flags on writes.
    pub(crate) dirty_tracking: AtomicBool,
    /// Bytes of live tables, readable without the lock.
    table_bytes: AtomicU64,
    pgsize_bitmap: u64,
    /// The epoch of this table's entries in the software IOTLB of
    /// [`PageTable::translate`]; every unmap invalidates them.
    iotlb: Iotlb,
    /// `geo.level_shift(level)` for each level, for the lock-free walk.
    pub(crate) shifts: [u32; 8],
    /// Entries per table below the top, minus one.
    pub(crate) item_mask: usize,
    /// `geo.max_iova()`.
    pub(crate) iova_last: u64,
    /// Whether the geometry has the format's smallest radix
    /// ([`Format::MIN_RADIX`]); see [`PageTable::const_radix`].
    min_radix: bool,
}

impl<F: Format> PageTable<F> {
    /// Creates an empty table of format `F` configured by `cfg`.
    ///
    /// # Errors
    ///
    /// `EINVAL` if the format rejects `cfg`.
    pub fn new(cfg: F::Config) -> Result<Self, Errno> {
        // A leaf is larger than the permission bits of `Hit::meta`.
        const { assert!(1u64 << F::MIN_RADIX.0 > iotlb::PROT_BITS) };
        let fmt = F::new(cfg)?;
        let geo = fmt.geometry();
        let (min_granule_lg2, min_items_lg2) = F::MIN_RADIX;
        if F::FIXED_RADIX.is_some_and(|radix| radix != (geo.granule_lg2, geo.items_lg2))
            || geo.granule_lg2 < min_granule_lg2
            || geo.granule_lg2 + geo.items_lg2 < min_granule_lg2 + min_items_lg2
        {
            return Err(Errno::INVAL);
        }
        let top_words = 1usize << geo.top_items_lg2;
        let (arena, alloc) = Arena::new(geo.items_lg2, top_words);
        let table_bytes = alloc.live_units << arena.unit_bytes_lg2();
        Ok(PageTable {
            pgsize_bitmap: geo.pgsize_bitmap(),
            fmt,
            geo,
            arena,
            writer: Mutex::new(alloc),
            dirty_tracking: AtomicBool::new(false),
            table_bytes: AtomicU64::new(table_bytes),
            iotlb: Iotlb::default(),
            shifts: std::array::from_fn(|l| geo.level_shift((l as u32).min(geo.levels - 1))),
            item_mask: (1usize << geo.items_lg2) - 1,
            iova_last: geo.max_iova(),
            min_radix: (geo.granule_lg2, geo.items_lg2) == F::MIN_RADIX,
        })
    }

    /// The format value (for encoding and decoding single entries).
    pub fn format(&self) -> &F {
        &self.fmt
    }

    /// The configured geometry.
    pub fn geometry(&self) -> Geometry {
        self.geo
    }

    /// Every leaf size the configured table supports.
    pub fn pgsize_bitmap(&self) -> u64 {
        self.pgsize_bitmap
    }

    /// The last valid IOVA (inclusive) for the configured input width.
    pub fn max_iova(&self) -> u64 {
        self.geo.max_iova()
    }

    /// Memory currently held by live tables, in bytes (the top table included).
    pub fn table_bytes(&self) -> u64 {
        self.table_bytes.load(Ordering::Relaxed)
    }

    /// Memory the arena holds, in bytes: live tables, freed tables kept for reuse,
    /// and not yet used capacity.
    pub fn arena_bytes(&self) -> u64 {
        self.arena.capacity_bytes()
    }

    /// Returns arena segments that hold no live table to the allocator.
    ///
    /// Takes `&mut self` because a segment may only go away when no reader can be
    /// walking it.
    pub fn release_unused_memory(&mut self) {
        let alloc = self.writer.get_mut().unwrap_or_else(|e| e.into_inner());
        self.arena.release_unused(alloc);
    }

    /// Limits the tables this page table may hold (the top table included) to
    /// `max_bytes`; later allocations fail with `ENOMEM`. A fault-injection hook.
    pub fn set_table_bytes_limit(&self, max_bytes: Option<u64>) {
        let mut w = self.lock();
        w.max_units = max_bytes.map_or(u64::MAX, |b| b >> self.arena.unit_bytes_lg2());
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Alloc> {
        // A panic while holding the lock leaves the tables consistent entry by
        // entry, so a poisoned lock is still usable.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn update_table_bytes(&self, w: &Alloc) {
        self.table_bytes.store(
            w.live_units << self.arena.unit_bytes_lg2(),
            Ordering::Relaxed,
        );
    }

    /// Maps exactly `pgcount` pages of `pgsize` bytes at `iova` to `pa` (the Linux
    /// `map_pages` contract). Returns the bytes mapped.
    ///
    /// # Errors
    ///
    /// On error the pages this call mapped stay mapped and `Err((mapped, errno))`
    /// says how far it got: `EINVAL` for a size not in [`Self::pgsize_bitmap`], a
    /// misaligned `iova`/`pa`, `pgcount == 0` or a `prot` with neither read nor
    /// write; `EOVERFLOW` if the range wraps `u64`; `ERANGE` if it goes past
    /// [`Self::max_iova`] or `pa` past the output width; `EEXIST` if a target entry
    /// is already present (a smaller mapping inside a requested leaf counts);
    /// `ENOMEM` if a table cannot be allocated.
    pub fn map_pages(
        &self,
        iova: u64,
        pa: u64,
        pgsize: u64,
        pgcount: u64,
        prot: Prot,
    ) -> Result<u64, (u64, Errno)> {
        let leaf_level = self
            .check_map(iova, pa, pgsize, pgcount)
            .map_err(|e| (0, e))?;
        let attrs = self.fmt.leaf_attrs(leaf_level, prot).map_err(|e| (0, e))?;
        let len = pgsize * pgcount;
        let mut w = self.lock();
        let mut mapped = 0;
        let res = self.map_walk(
            &mut w,
            iova,
            iova + (len - 1),
            pa,
            leaf_level,
            attrs,
            &mut mapped,
        );
        self.update_table_bytes(&w);
        match res {
            Ok(()) => Ok(mapped),
            Err(e) => Err((mapped, e)),
        }
    }

    /// Validates a `map_pages` request and returns the leaf level for `pgsize`.
    fn check_map(&self, iova: u64, pa: u64, pgsize: u64, pgcount: u64) -> Result<u32, Errno> {
        if pgcount == 0 || !pgsize.is_power_of_two() || self.pgsize_bitmap & pgsize == 0 {
            return Err(Errno::INVAL);
        }
        let size_lg2 = pgsize.trailing_zeros();
        if !log2::is_aligned(iova | pa, size_lg2) {
            return Err(Errno::INVAL);
        }
        let len = pgsize.checked_mul(pgcount).ok_or(Errno::OVERFLOW)?;
        let last = iova.checked_add(len - 1).ok_or(Errno::OVERFLOW)?;
        let pa_last = pa.checked_add(len - 1).ok_or(Errno::OVERFLOW)?;
        if last > self.max_iova() || pa_last > self.geo.max_oa() {
            return Err(Errno::RANGE);
        }
        (0..self.geo.levels)
            .find(|&level| self.geo.level_shift(level) == size_lg2)
            .ok_or(Errno::INVAL)
    }

    /// Maps `[iova, iova + len)` to `pa` with the largest leaves that the alignment
    /// of `iova` and `pa`, the remaining length and `max_leaf` allow.
    ///
    /// Unlike [`Self::map_pages`] this is all-or-nothing: on error whatever this call
    /// mapped is unmapped again (as `iommu_map` does).
    ///
    /// # Errors
    ///
    /// As [`Self::map_pages`]; `EINVAL` also for `len == 0` or a `len`, `iova` or
    /// `pa` not aligned to the smallest page size, or a `max_leaf` below it.
    pub fn map_range(
        &self,
        iova: u64,
        pa: u64,
        len: u64,
        prot: Prot,
        max_leaf: u64,
    ) -> Result<(), Errno> {
        let sizes = self.pgsize_bitmap & log2::low_mask(64 - max_leaf.leading_zeros());
        let min_size = sizes & sizes.wrapping_neg();
        if len == 0
            || min_size == 0
            || !log2::is_aligned(iova | pa | len, min_size.trailing_zeros())
        {
            return Err(Errno::INVAL);
        }
        let mut done = 0u64;
        while done < len {
            let (pgsize, pgcount) = pick_pgsize(sizes, iova + done, pa + done, len - done);
            if let Err((mapped, e)) = self.map_pages(iova + done, pa + done, pgsize, pgcount, prot)
            {
                self.unmap_all_of(iova, done + mapped);
                return Err(e);
            }
            done += pgsize * pgcount;
        }
        Ok(())
    }

    /// Unmaps `len` bytes at `iova` that this caller knows it mapped.
    fn unmap_all_of(&self, iova: u64, len: u64) {
        if len > 0 {
            let granule = 1u64 << self.geo.granule_lg2;
            self.unmap_pages(iova, granule, len / granule);
        }
    }

    /// Unmaps `pgsize * pgcount` bytes at `iova` (Linux `unmap_pages`) and returns
    /// the bytes actually unmapped.
    ///
    /// Unmapping stops at the first hole. When the range cuts a leaf larger than
    /// itself, the format's [`Format::PARTIAL_UNMAP`] rule applies: ARM splits the
    /// block (Linux 6.12 io-pgtable-arm); the other formats remove the whole leaf
    /// when the range ends inside it and stop when the range starts inside it
    /// (generic_pt `__unmap_range`). Empty tables are freed. Returns 0 for a
    /// `pgsize` that is not a power of two, a misaligned `iova`, or a range outside
    /// the address width.
    pub fn unmap_pages(&self, iova: u64, pgsize: u64, pgcount: u64) -> u64 {
        let Some(last) = self.check_range(iova, pgsize, pgcount) else {
            return 0;
        };
        let mut w = self.lock();
        let unmapped = self.unmap_walk(&mut w, iova, last);
        self.update_table_bytes(&w);
        // Before the entries' tables can be reused and before returning: no
        // translation that starts after this call can see the old leaves.
        self.iotlb.invalidate();
        unmapped
    }

    /// The inclusive last IOVA of a `pgsize * pgcount` range at `iova`, if valid.
    fn check_range(&self, iova: u64, pgsize: u64, pgcount: u64) -> Option<u64> {
        if pgcount == 0 || !pgsize.is_power_of_two() || pgsize < 1 << self.geo.granule_lg2 {
            return None;
        }
        if !log2::is_aligned(iova, pgsize.trailing_zeros()) {
            return None;
        }
        let last = iova.checked_add(pgsize.checked_mul(pgcount)? - 1)?;
        (last <= self.max_iova()).then_some(last)
    }

    /// The physical address `iova` maps to, or `None`. Lock-free.
    pub fn iova_to_phys(&self, iova: u64) -> Option<u64> {
        let (_, level, raw) = self.walk(iova)?;
        let shift = self.geo.level_shift(level);
        Some(self.fmt.leaf_pa(level, raw) + (iova & log2::low_mask(shift)))
    }

    /// lg2 of the granule: a constant for formats with a fixed radix.
    #[inline(always)]
    fn granule_lg2(&self) -> u32 {
        match F::FIXED_RADIX {
            Some((granule_lg2, _)) => granule_lg2,
            None => self.geo.granule_lg2,
        }
    }

    /// lg2 of the bytes an entry at `level` covers: constant shifts for
    /// formats with a fixed radix.
    #[inline(always)]
    pub(crate) fn shift_at(&self, level: u32) -> u32 {
        self.shift_with(F::FIXED_RADIX, level)
    }

    /// lg2 of the bytes an entry at `level` covers, computed from `radix`
    /// (`(granule_lg2, items_lg2)`, constants where inlined) or, for
    /// `None`, read from the precomputed shifts.
    #[inline(always)]
    pub(crate) fn shift_with(&self, radix: Option<(u32, u32)>, level: u32) -> u32 {
        match radix {
            Some((granule_lg2, items_lg2)) => {
                granule_lg2.wrapping_add(level.wrapping_mul(items_lg2))
            }
            None => self.shifts[level as usize & 7],
        }
    }

    /// `(granule_lg2, items_lg2)` as constants when the format fixes them or
    /// when this table has the format's smallest radix, which the readers'
    /// fast paths are built for (shifts and masks by constants); `None` for
    /// the other configurations (ARM's 16 and 64 KiB granules), which take
    /// the paths that read them from the geometry.
    #[inline(always)]
    pub(crate) fn const_radix(&self) -> Option<(u32, u32)> {
        match F::FIXED_RADIX {
            Some(radix) => Some(radix),
            None => self.min_radix.then_some(F::MIN_RADIX),
        }
    }

    /// lg2 of the chunks in which the IOTLB caches small leaves, and of those
    /// in which it caches level-0 tables and larger leaves (module `iotlb`):
    /// constants of the format, at most the granule and the level-1 block.
    #[inline(always)]
    const fn iotlb_chunks_lg2() -> (u32, u32) {
        let (granule_lg2, items_lg2) = F::MIN_RADIX;
        (granule_lg2, granule_lg2 + items_lg2)
    }

    /// Translates `iova` for an emulated DMA of the given direction, like the IOMMU
    /// would: checks permission, sets the accessed flag and, on a write while dirty
    /// tracking is enabled, the dirty flag. Lock-free.
    ///
    /// Hits in the software IOTLB (module `iotlb`: per thread, one thread-local
    /// access and one compare); misses usually find a large leaf or the leaf's
    /// table in the same cache's level-1 slots. Every [`Self::unmap_pages`]
    /// invalidates this table's entries before returning, so a translation
    /// that starts after an unmap returned never sees the unmapped leaves.
    /// Writes while dirty tracking is on always load the leaf, so that its
    /// dirty flag is set for each of them.
    ///
    /// # Errors
    ///
    /// `ENOENT` if nothing maps `iova`; `EPERM` if the leaf forbids the access.
    #[inline(always)]
    pub fn translate(&self, iova: u64, write: bool) -> Result<Translation, Errno> {
        // Read before any walk whose result is cached (see module `iotlb`).
        let epoch = self.iotlb.epoch();
        let track = write && self.dirty_tracking.load(Ordering::Relaxed);
        let needed = if write { Prot::WRITE } else { Prot::READ };
        let Some(cache) = iotlb::cache() else {
            return self.translate_uncached(iova, write);
        };
        let (small, block) = Self::iotlb_chunks_lg2();
        if !track {
            if let Some(hit) = cache.lookup_small(epoch, iova, needed, small) {
                return Ok(hit.translation());
            }
            let upper = cache.lookup_upper(epoch, iova, block);
            if let Some(hit) = self.translate_near(cache, epoch, upper, iova, needed, true) {
                return Ok(hit.translation());
            }
        }
        self.translate_miss(epoch, iova, write, track).get()
    }

    /// Translates the DMA of `len` bytes at `iova` (`len > 0`) as far as
    /// its leaves map contiguously: the first leaf as [`Self::translate`],
    /// then each following granule leaf of the same leaf table that the DMA
    /// reaches into, while it allows the access and continues the run. Every
    /// leaf of the result is translated as [`Self::translate`] translates
    /// one (permission, accessed and dirty flags); the following ones are
    /// loaded from their table without going through the IOTLB, so that a
    /// long DMA costs one IOTLB lookup and one table-entry load per leaf
    /// after the first. The run may end before `len` (a larger leaf, the end
    /// of the table, a hole, another permission, a discontiguity): the caller
    /// translates the rest, which decides the errno. `len` of the result
    /// counts from `iova` and covers whole leaves: it may exceed the request
    /// within the last leaf the DMA reaches into.
    ///
    /// # Errors
    ///
    /// As [`Self::translate`] for `iova`.
    #[inline]
    pub fn translate_run(&self, iova: u64, len: u64, write: bool) -> Result<Run, Errno> {
        // Read before the first leaf's translation: an unmap that completes
        // meanwhile ends the run at the first leaf.
        let epoch = self.iotlb.epoch();
        let hit = match self.first_leaf_cached(epoch, iova, len, write) {
            Some(hit) => hit,
            None => self.translate(iova, write)?.into(),
        };
        Ok(self.run_from(epoch, hit, iova, len, write))
    }

    /// [`Self::translate_run`] when the IOTLB answers for the first leaf (a
    /// cached leaf, or a leaf loaded through a cached table with its
    /// accessed flag already set): no walk and no locked instruction for it.
    /// `None` otherwise: call [`Self::translate_run`], which also decides
    /// the errno.
    ///
    /// Meant for callers behind a dynamic call (a driver's DMA
    /// translation), who keep the call of [`Self::translate_run`] and its
    /// walk out of line and return the run in registers: the per-DMA path
    /// then stores little, and stores issued right after a long copy (a
    /// result returned through memory, a large frame) wait behind the
    /// copy's stores.
    #[inline(always)]
    pub fn translate_run_cached(&self, iova: u64, len: u64, write: bool) -> Option<Run> {
        let epoch = self.iotlb.epoch();
        let hit = self.first_leaf_cached(epoch, iova, len, write)?;
        Some(self.run_from(epoch, hit, iova, len, write))
    }

    /// A number that names the table's present translations for a DMA of
    /// the given direction, or `None` if that direction must not reuse a
    /// translation (writes while dirty tracking is enabled: each must set
    /// its leaf's dirty flag).
    ///
    /// A run that [`Self::translate_run`] returned stays valid while the
    /// token read before the translation is unchanged: every unmap changes
    /// it (before it returns), and maps only fill empty entries. Tokens are
    /// never reused, by this table or any other. A DMA engine may keep runs
    /// with their token, as a device keeps translations in its own TLB.
    #[inline]
    pub fn dma_cache_token(&self, write: bool) -> Option<u64> {
        if write && self.dirty_tracking.load(Ordering::Relaxed) {
            return None;
        }
        Some(self.iotlb.epoch())
    }

    /// The run of a DMA of `len` bytes at `iova` whose first leaf translates
    /// as `hit` (found in table state `epoch`).
    #[inline(always)]
    fn run_from(&self, epoch: u64, hit: Hit, iova: u64, len: u64, write: bool) -> Run {
        let leaf_size = hit.size();
        let mut run = Run {
            pa: hit.pa,
            len: leaf_size - (iova & (leaf_size - 1)),
        };
        if run.len < len && leaf_size == 1 << self.granule_lg2() {
            self.extend_run(epoch, iova, len, write, &mut run);
        }
        run
    }

    /// The first leaf of a DMA of `len` bytes at `iova` from the IOTLB, as
    /// [`Self::translate`] finds it without leaving the hit and near paths.
    ///
    /// A DMA that reaches the end of the granule-sized chunk of `iova` is
    /// *streaming*: the next access of its device is most likely beyond that
    /// chunk, so its leaf is neither looked up in nor added to the small-leaf
    /// slots. It is found through the level-1 slot (its table, or its large
    /// leaf) instead: one more load when the leaf was cached, and no store,
    /// no cold slot line per DMA when it was not (streaming DMAs would
    /// otherwise evict the slots of other leaves for nothing).
    #[inline(always)]
    fn first_leaf_cached(&self, epoch: u64, iova: u64, len: u64, write: bool) -> Option<Hit> {
        if write && self.dirty_tracking.load(Ordering::Relaxed) {
            return None;
        }
        let cache = iotlb::installed()?;
        let needed = if write { Prot::WRITE } else { Prot::READ };
        let (small, block) = Self::iotlb_chunks_lg2();
        let streaming = len >= (1 << small) - (iova & log2::low_mask(small));
        let hit = if streaming {
            None
        } else {
            cache.lookup_small(epoch, iova, needed, small)
        };
        hit.or_else(|| {
            let upper = cache.lookup_upper(epoch, iova, block);
            self.translate_near(cache, epoch, upper, iova, needed, !streaming)
        })
    }

    /// Extends `run`, which ends at the end of the granule leaf of `iova`,
    /// with the following leaves of the same leaf table (see
    /// [`Self::translate_run`]).
    #[inline(never)]
    fn extend_run(&self, epoch: u64, iova: u64, len: u64, write: bool, run: &mut Run) {
        let (_, block) = Self::iotlb_chunks_lg2();
        let g = self.granule_lg2();
        // The leaf table of `iova`: usually just cached by the translation.
        let table_pa = match iotlb::cache().and_then(|c| c.lookup_upper(epoch, iova, block)) {
            Some((table_pa, 0)) => Some(table_pa),
            _ => match self.walk_leaf(iova) {
                Some((_, 0, _, table_pa)) => table_pa,
                _ => None,
            },
        };
        let Some(table_pa) = table_pa else {
            return;
        };
        let track = write && self.dirty_tracking.load(Ordering::Relaxed);
        let first = run.len;
        let mut index = (iova.wrapping_shr(g) as usize) & self.item_mask;
        while run.len < len && index < self.item_mask {
            index += 1;
            let at = iova.wrapping_add(run.len);
            let Some(entry) = self.arena.entry_at(table_pa, index) else {
                break;
            };
            match self.translate_entry(entry, 0, entry.load(Ordering::Acquire), at, write, track) {
                Some(hit) if hit.errno().is_none() && hit.pa == run.pa.wrapping_add(run.len) => {
                    run.len += 1 << g;
                }
                _ => break,
            }
        }
        // An unmap that completed meanwhile may have freed the table and a
        // map reused it: keep only the first leaf, translated before it.
        if self.iotlb.epoch() != epoch {
            run.len = first;
        }
    }

    /// The small-leaf miss that the level-1 slot answers without a walk or a
    /// locked instruction: a cached large leaf, or a level-0 leaf, loaded
    /// afresh through its cached table, whose accessed flag is already set
    /// (cached if the IOTLB admits it: module `iotlb`). `upper` is what
    /// [`Cache::lookup_upper`] found for `iova`. `None` sends the caller down
    /// the slow path, which also decides the errno.
    ///
    /// `fill`: whether a leaf found through a cached table may be added to
    /// the small-leaf slots.
    #[inline(always)]
    fn translate_near(
        &self,
        cache: &Cache,
        epoch: u64,
        upper: Option<(u64, u64)>,
        iova: u64,
        needed: Prot,
        fill: bool,
    ) -> Option<Hit> {
        let block = Self::iotlb_chunks_lg2().1;
        let upper = upper?;
        if upper.1 != 0 {
            return Cache::upper_hit(upper, iova, needed, block);
        }
        // One copy per radix kind, so that the usual one shifts by constants.
        match self.const_radix() {
            Some(radix) => self.near_leaf0(cache, epoch, upper.0, iova, needed, fill, radix),
            None => self.near_leaf0(cache, epoch, upper.0, iova, needed, fill, self.radix()),
        }
    }

    /// [`Self::translate_near`] through the cached level-0 table at
    /// `table_pa`, of a table whose `(granule_lg2, items_lg2)` is `radix`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn near_leaf0(
        &self,
        cache: &Cache,
        epoch: u64,
        table_pa: u64,
        iova: u64,
        needed: Prot,
        fill: bool,
        radix: (u32, u32),
    ) -> Option<Hit> {
        let (small, block) = Self::iotlb_chunks_lg2();
        let entry = self.leaf0_entry(table_pa, iova, radix)?;
        let raw = entry.load(Ordering::Acquire);
        let pa = self.fmt.accessed_leaf0(raw)?;
        if !self.fmt.leaf0_allows(raw, needed) {
            return None;
        }
        let size = 1u64.wrapping_shl(radix.0);
        let pa = pa.wrapping_add(iova & size.wrapping_sub(1));
        // The permissions are decoded where they are used: for the slot of
        // an admitted leaf, and for a caller that reads them (the processor
        // retires nothing past a load before it completes, so a decode by
        // table lookup that nobody uses would cost every miss).
        if fill && cache.admit(iova, small) {
            let hit = Hit::leaf(pa, size, self.fmt.leaf_prot(0, raw));
            cache.insert(epoch, iova, hit, small, block);
        }
        Some(Hit::leaf(pa, size, self.fmt.leaf_prot(0, raw)))
    }

    /// The entry for `iova` in the level-0 table at `table_pa` (a table the
    /// IOTLB cached for the level-1 block of `iova`) of a table whose
    /// `(granule_lg2, items_lg2)` is `radix`.
    #[inline(always)]
    fn leaf0_entry(&self, table_pa: u64, iova: u64, radix: (u32, u32)) -> Option<&AtomicU64> {
        let (granule_lg2, items_lg2) = radix;
        let index = (iova.wrapping_shr(granule_lg2) as usize) & low_mask_usize(items_lg2);
        self.arena.entry_at(table_pa, index)
    }

    /// `(granule_lg2, items_lg2)` of the geometry.
    #[inline(always)]
    fn radix(&self) -> (u32, u32) {
        self.const_radix()
            .unwrap_or((self.geo.granule_lg2, self.geo.items_lg2))
    }

    /// The IOTLB miss: finds the leaf through its level-0 table if the IOTLB
    /// holds it, else by a walk; sets its flags, then caches it (and its
    /// table) tagged with `epoch`. Out of line, so that the hit path inlines
    /// into every caller; one frame with the walk inlined, returning in
    /// registers, because the cost of misses is mostly how many of them the
    /// processor overlaps, which their instruction count bounds.
    #[inline(never)]
    fn translate_miss(&self, epoch: u64, iova: u64, write: bool, track: bool) -> Hit {
        let (small, block) = Self::iotlb_chunks_lg2();
        let cache = iotlb::installed();
        let cached_table = match cache.and_then(|c| c.lookup_upper(epoch, iova, block)) {
            Some((table_pa, 0)) => Some(table_pa),
            _ => None,
        };
        loop {
            let walked = match cached_table {
                Some(table_pa) => self
                    .leaf0_entry(table_pa, iova, self.radix())
                    .map(|entry| (entry, 0, entry.load(Ordering::Acquire), None)),
                None => self.walk_leaf(iova),
            };
            let Some((entry, level, raw, table)) = walked else {
                return Hit::fault(Errno::NOENT);
            };
            let Some(hit) = self.translate_entry(entry, level, raw, iova, write, track) else {
                continue;
            };
            if let (Some(cache), None) = (cache, hit.errno()) {
                cache.insert(epoch, iova, hit, small, block);
                if let (0, Some(table_pa)) = (level, table) {
                    cache.insert_table(epoch, iova, table_pa, block);
                }
            }
            return hit;
        }
    }

    /// [`Self::translate`] without the software IOTLB: always walks the table.
    ///
    /// # Errors
    ///
    /// As [`Self::translate`].
    #[inline]
    pub fn translate_uncached(&self, iova: u64, write: bool) -> Result<Translation, Errno> {
        let track = write && self.dirty_tracking.load(Ordering::Relaxed);
        loop {
            let (entry, level, raw) = self.walk(iova).ok_or(Errno::NOENT)?;
            if let Some(hit) = self.translate_entry(entry, level, raw, iova, write, track) {
                return hit.get();
            }
        }
    }

    /// The translation by the entry `entry` at `level`, of value `raw`, that
    /// a walk for `iova` reached: checks it is a leaf allowing the access and
    /// sets the accessed (and, when tracking a write, dirty) flags
    /// atomically, as the hardware does. `None` if the entry changed before
    /// the flags could be set (the caller walks again).
    #[inline(always)]
    fn translate_entry(
        &self,
        entry: &AtomicU64,
        level: u32,
        raw: u64,
        iova: u64,
        write: bool,
        track: bool,
    ) -> Option<Hit> {
        let needed = if write { Prot::WRITE } else { Prot::READ };
        if self.fmt.entry_kind(level, raw) != EntryKind::Leaf {
            return Some(Hit::fault(Errno::NOENT));
        }
        let prot = self.fmt.leaf_prot(level, raw);
        if !prot.contains(needed) {
            return Some(Hit::fault(Errno::PERM));
        }
        let mut new = self.fmt.set_accessed(raw);
        if track {
            new = self.fmt.make_dirty(new);
        }
        if new != raw
            && entry
                .compare_exchange(raw, new, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return None;
        }
        let size = 1u64.wrapping_shl(self.shift_at(level));
        // The accessed and dirty flags change neither the address nor the
        // permissions of a leaf.
        let pa = self.fmt.leaf_pa(level, new);
        Some(Hit::leaf(
            pa.wrapping_add(iova & size.wrapping_sub(1)),
            size,
            prot,
        ))
    }

    /// Enables or disables dirty tracking (whether `translate` records writes).
    ///
    /// # Errors
    ///
    /// `EOPNOTSUPP` if the format (as configured) has no dirty flags.
    pub fn set_dirty_tracking(&self, enable: bool) -> Result<(), Errno> {
        if !self.fmt.supports_dirty() {
            return Err(Errno::OPNOTSUPP);
        }
        self.dirty_tracking.store(enable, Ordering::Relaxed);
        Ok(())
    }

    /// Whether dirty tracking is enabled.
    pub fn dirty_tracking(&self) -> bool {
        self.dirty_tracking.load(Ordering::Relaxed)
    }

    /// Reports every dirty leaf intersecting `[iova, iova + len)` as
    /// `(leaf_iova, leaf_size)` and clears its dirty flag unless `no_clear`.
    ///
    /// A range that wraps or leaves the address width is clipped to it. Formats
    /// without dirty flags report nothing.
    pub fn read_and_clear_dirty(
        &self,
        iova: u64,
        len: u64,
        no_clear: bool,
        record: &mut dyn FnMut(u64, u64),
    ) {
        self.read_and_clear_dirty_bits(iova, len, no_clear, &mut PerLeaf(record));
    }

    /// [`Self::read_and_clear_dirty`] a word at a time: granule leaves are
    /// reported 64 at a time as a mask ([`DirtySink::bits`]), larger leaves
    /// whole ([`DirtySink::range`]), in ascending IOVA order. The same leaves
    /// are reported and cleared.
    pub fn read_and_clear_dirty_bits(
        &self,
        iova: u64,
        len: u64,
        no_clear: bool,
        sink: &mut dyn DirtySink,
    ) {
        if len == 0 || iova > self.max_iova() || !self.fmt.supports_dirty() {
            return;
        }
        let last = iova.saturating_add(len - 1).min(self.max_iova());
        let _w = self.lock();
        self.dirty_walk(iova, last, no_clear, sink);
    }

    /// Test hook: marks the leaf mapping `iova` dirty, as a DMA write would.
    /// Returns whether `iova` is mapped.
    pub fn mark_dirty(&self, iova: u64) -> bool {
        self.walk_update(iova, |raw, _| Ok(self.fmt.make_dirty(raw)))
            .is_ok()
    }
}

/// The largest page size in `sizes` that `iova`, `pa` and `len` allow, and how many
/// pages of it to map before a larger size could take over.
fn pick_pgsize(sizes: u64, iova: u64, pa: u64, len: u64) -> (u64, u64) {
    let align = log2::ffs_lg2(iova | pa).min(63);
    let len_lg2 = 63 - len.leading_zeros();
    let fit = sizes & log2::low_mask(align.min(len_lg2) + 1);
    let pgsize = 1u64 << (63 - fit.leading_zeros());
    // Stop at the next boundary where a larger size becomes usable.
    let larger = sizes & !log2::low_mask(pgsize.trailing_zeros() + 1);
    let mut count = len / pgsize;
    if larger != 0 {
        let next_lg2 = larger.trailing_zeros();
        if log2::is_aligned(iova ^ pa, next_lg2) {
            let to_boundary = (log2::block_last(iova, next_lg2) - iova) / pgsize + 1;
            count = count.min(to_boundary);
        }
    }
    (pgsize, count)
}

#[cfg(test)]
mod tests {
    use uapi::Errno;

    use super::{iotlb, pick_pgsize, Hit, PageTable, Prot, Translation};
    use crate::fmt::{ArmV8, ArmV8Config, VtdSs, VtdSsConfig};
    use crate::Format;

    /// The two-word form that the IOTLB paths return in registers gives back
    /// every translation and errno it was made from.
    #[test]
    fn hits_unpack_to_what_was_packed() {
        for size_lg2 in 8..63 {
            for bits in 0..=Prot::all().bits() {
                let t = Translation {
                    pa: 0x1234_5678_9abc_u64.wrapping_mul(u64::from(bits) + 1),
                    leaf_size: 1 << size_lg2,
                    prot: Prot::from_bits_retain(bits),
                };
                assert_eq!(Hit::from(t).get(), Ok(t));
                assert_eq!(Hit::from(t).errno(), None);
            }
        }
        for e in [Errno::NOENT, Errno::PERM] {
            assert_eq!(Hit::from(Err::<Translation, _>(e)).get(), Err(e));
        }
    }

    /// The readers' fast paths shift by constants for formats of a fixed
    /// radix and for the smallest radix of the others; other radixes read
    /// their geometry.
    #[test]
    fn constant_radix_for_fixed_formats_and_the_smallest_arm_granule() {
        let vtd = PageTable::<VtdSs>::new(VtdSsConfig::FOUR_LEVEL).unwrap();
        assert_eq!(vtd.const_radix(), Some((12, 9)));
        let arm4k = PageTable::<ArmV8>::new(ArmV8Config::S1_4K).unwrap();
        assert_eq!(arm4k.const_radix(), Some(ArmV8::MIN_RADIX));
        for cfg in [ArmV8Config::S1_16K, ArmV8Config::S2_64K] {
            let pt = PageTable::<ArmV8>::new(cfg).unwrap();
            assert_eq!(pt.const_radix(), None);
            let geo = pt.geometry();
            assert_eq!(pt.radix(), (geo.granule_lg2, geo.items_lg2));
        }
    }

    const SIZES: u64 = (1 << 12) | (1 << 21) | (1 << 30);

    #[test]
    fn pick_pgsize_uses_largest_aligned_size() {
        assert_eq!(
            pick_pgsize(SIZES, 0x4000_0000, 0x8000_0000, 1 << 30),
            (1 << 30, 1)
        );
        assert_eq!(
            pick_pgsize(SIZES, 0x20_0000, 0x40_0000, 4 << 20),
            (1 << 21, 2)
        );
    }

    #[test]
    fn pick_pgsize_stops_small_pages_at_next_large_boundary() {
        assert_eq!(
            pick_pgsize(SIZES, 0x1f_f000, 0x3f_f000, 4 << 20),
            (1 << 12, 1)
        );
    }

    #[test]
    fn pick_pgsize_keeps_small_pages_when_pa_is_not_congruent() {
        assert_eq!(
            pick_pgsize(SIZES, 0x1f_f000, 0x3f_e000, 4 << 20),
            (1 << 12, 1024)
        );
    }

    /// Sets the accessed flags of the first `pages` 4 KiB leaves from
    /// 0x40_0000 without caching anything, then caches the leaf table of
    /// their block and the first leaf by a walk.
    fn accessed_with_table_cached(pt: &PageTable<VtdSs>, pages: u64) {
        for page in 0..pages {
            pt.translate_uncached(0x40_0000 + (page << 12), false)
                .unwrap();
        }
        pt.translate(0x40_0000, false).unwrap();
    }

    /// Whether this thread's small slots hold a readable leaf for `iova`.
    fn small_slot_holds(pt: &PageTable<VtdSs>, iova: u64) -> bool {
        let small = PageTable::<VtdSs>::iotlb_chunks_lg2().0;
        iotlb::installed()
            .and_then(|c| c.lookup_small(pt.iotlb.epoch(), iova, Prot::READ, small))
            .is_some()
    }

    /// A DMA that reaches the end of its page is streaming: its leaf is
    /// found through the cached table and neither looked up in nor added to
    /// the small-leaf slots; one that ends inside its page is cached there
    /// by its second access.
    #[test]
    fn streaming_dmas_leave_the_small_slots_alone() {
        const K4: u64 = 1 << 12;
        let pt = PageTable::<VtdSs>::new(VtdSsConfig::FOUR_LEVEL).unwrap();
        pt.map_pages(0x40_0000, 0x8000_0000, K4, 8, Prot::READ | Prot::WRITE)
            .unwrap();
        // A leaf not yet accessed needs a locked update: the slow path's.
        assert_eq!(pt.translate_run_cached(0x40_1000, K4, false), None);
        accessed_with_table_cached(&pt, 8);
        let cached = |iova: u64| small_slot_holds(&pt, iova);
        assert!(cached(0x40_0000));
        for (iova, len) in [
            (0x40_1000, K4),
            (0x40_2100, K4 - 0x100),
            (0x40_3000, 2 * K4),
        ] {
            let run = pt
                .translate_run_cached(iova, len, true)
                .expect("IOTLB answers");
            assert_eq!(run.pa, 0x8000_0000 + iova - 0x40_0000);
            assert!(run.len >= len);
            assert!(!cached(iova), "streaming DMA at {iova:#x} cached");
        }
        for iova in [0x40_5000, 0x40_6f00] {
            for _ in 0..2 {
                let run = pt
                    .translate_run_cached(iova, 0x80, false)
                    .expect("IOTLB answers");
                assert_eq!(run.pa, 0x8000_0000 + iova - 0x40_0000);
            }
            assert!(cached(iova), "DMA inside the page at {iova:#x} not cached");
        }
    }

    /// The near path caches a leaf on its second use in a row, and one used
    /// once on every `ADMIT_EVERY`th near-path translation only: leaves
    /// used once do not evict the cached ones.
    #[test]
    fn near_path_caches_leaves_used_twice_or_every_few() {
        const K4: u64 = 1 << 12;
        let pages = 4 * iotlb::ADMIT_EVERY;
        let pt = PageTable::<VtdSs>::new(VtdSsConfig::FOUR_LEVEL).unwrap();
        pt.map_pages(0x40_0000, 0x8000_0000, K4, pages + 2, Prot::READ)
            .unwrap();
        accessed_with_table_cached(&pt, pages + 2);
        let cached = |iova: u64| small_slot_holds(&pt, iova);
        // Twice in a row: cached whatever the count.
        let twice = 0x40_0000 + (pages + 1) * K4;
        pt.translate(twice, false).unwrap();
        pt.translate(twice, false).unwrap();
        assert!(cached(twice));
        let once: Vec<u64> = (1..=pages).map(|p| 0x40_0000 + p * K4).collect();
        for &iova in &once {
            let t = pt.translate(iova, false).unwrap();
            assert_eq!(t.pa, 0x8000_0000 + iova - 0x40_0000);
        }
        let admitted = once.iter().filter(|&&iova| cached(iova)).count();
        assert_eq!(admitted as u64, pages / iotlb::ADMIT_EVERY);
    }
}
