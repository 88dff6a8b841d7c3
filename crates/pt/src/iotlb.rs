//! A software IOTLB in front of [`PageTable::translate`]: lock-free hits for
//! emulated-device DMA, invalidated by every unmap.
//!
//! Kernel: there is no software IOTLB in Linux; this plays the role of the
//! hardware IOTLB that `iommu_iotlb_sync()` flushes after `unmap_pages`.
//!
//! # Design
//!
//! Each thread that translates gets a private *lane* of [`SLOTS`] direct-mapped
//! entries (up to [`LANES`] threads; a thread beyond that walks every time), like
//! a device queue's own ATC. A lane is written and read only by its owner, so a
//! hit is a handful of plain loads and a miss fills the slot with plain stores:
//! no locked instruction on either path (a locked instruction would serialise
//! the table walks that a DMA engine overlaps). Lanes are allocated on a
//! thread's first translation through this table; lane ids go back to a global
//! pool when the thread exits.
//!
//! Invalidation is a generation bump shared by all lanes: every `unmap_pages`
//! (which also covers block splits and the freeing of tables) increments `epoch`
//! after clearing the entries and before returning, while still holding the
//! writer lock. A filler reads `epoch` *before* walking the table and tags the
//! slot with that value, so:
//!
//! - a walk that ran before an unmap's clears is tagged with the old epoch and
//!   rejected by every translation that starts after the unmap returned;
//! - a walk that read the new epoch also sees the cleared entries (the bump is a
//!   release, the filler's load an acquire), so it cannot cache them.
//!
//! Maps never invalidate: only present leaves are cached, and a map only turns
//! empty entries into leaves.
//!
//! Dirty tracking: a write while tracking is enabled always takes the full walk,
//! which sets the leaf's dirty flag atomically as the hardware does; reads and
//! writes without tracking hit. The accessed flag is set by the walk that fills
//! the slot.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::Prot;

/// Number of slots per lane (a power of two).
pub const SLOTS: usize = 256;
/// Number of per-thread lanes per table.
pub(crate) const LANES: usize = 16;

const UNCLAIMED: u8 = u8::MAX;
const NO_LANE: u8 = u8::MAX - 1;

/// Free lane ids (bit set = free).
static FREE_LANES: AtomicU64 = AtomicU64::new((1 << LANES) - 1);

thread_local! {
    static LANE: Cell<u8> = const { Cell::new(UNCLAIMED) };
    static GUARD: LaneGuard = const { LaneGuard };
}

/// Returns the thread's lane id to the pool when the thread exits.
struct LaneGuard;

impl Drop for LaneGuard {
    fn drop(&mut self) {
        if let Ok(id) = LANE.try_with(|l| l.replace(NO_LANE)) {
            if (id as usize) < LANES {
                FREE_LANES.fetch_or(1 << id, Ordering::Release);
            }
        }
    }
}

#[cold]
fn claim_lane() -> u8 {
    let taken = FREE_LANES.fetch_update(Ordering::Acquire, Ordering::Relaxed, |free| {
        (free != 0).then(|| free & (free - 1))
    });
    let id = match taken {
        Ok(free) => free.trailing_zeros() as u8,
        Err(_) => NO_LANE,
    };
    LANE.with(|l| l.set(id));
    if id != NO_LANE && GUARD.try_with(|_| ()).is_err() {
        // Thread-local destruction has begun: do not keep the lane.
        FREE_LANES.fetch_or(1 << id, Ordering::Release);
        LANE.with(|l| l.set(NO_LANE));
        return NO_LANE;
    }
    id
}

/// This thread's lane id, or `None` if all lanes are taken.
#[inline]
fn lane() -> Option<usize> {
    let id = LANE.try_with(Cell::get).unwrap_or(NO_LANE);
    let id = if id == UNCLAIMED { claim_lane() } else { id };
    ((id as usize) < LANES).then_some(id as usize)
}

/// One cached leaf. Written and read only by the lane's owner thread; atomics
/// only because the table is shared.
#[repr(align(32))]
#[derive(Default)]
struct Slot {
    /// IOVA of the first byte of the leaf.
    base: AtomicU64,
    /// Output address of `base`.
    pa: AtomicU64,
    /// `size_lg2 | prot << 8`; 0 for an empty slot.
    meta: AtomicU64,
    /// The epoch the slot was filled in.
    gen: AtomicU64,
}

/// A cached translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Hit {
    pub(crate) pa: u64,
    pub(crate) size_lg2: u32,
    pub(crate) prot: Prot,
}

/// The IOTLB of one page table.
pub(crate) struct Iotlb {
    /// Invalidation generation: bumped by every unmap.
    epoch: AtomicU64,
    lanes: [OnceLock<Box<[Slot]>>; LANES],
}

impl Default for Iotlb {
    fn default() -> Self {
        Iotlb {
            epoch: AtomicU64::new(0),
            lanes: std::array::from_fn(|_| OnceLock::new()),
        }
    }
}

impl Iotlb {
    #[inline]
    fn index(iova: u64, granule_lg2: u32) -> usize {
        let n = iova >> granule_lg2;
        ((n ^ (n >> 8)) as usize) & (SLOTS - 1)
    }

    /// The current epoch; read it *before* a walk whose result is inserted.
    #[inline]
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Invalidates every slot of every lane (after entries were cleared, before
    /// returning).
    #[inline]
    pub(crate) fn invalidate(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// The cached leaf covering `iova`, if valid in the current epoch. Leaves
    /// of the granule size live in the first [`SLOTS`] slots of a lane, indexed
    /// by granule number; larger leaves in the next [`SLOTS`], indexed by
    /// `iova >> large_lg2` (the level-1 leaf size).
    #[inline]
    pub(crate) fn lookup(&self, iova: u64, granule_lg2: u32, large_lg2: u32) -> Option<Hit> {
        let epoch = self.epoch.load(Ordering::Acquire);
        let slots = self.lanes.get(lane()?)?.get()?;
        Self::probe(&slots[Self::index(iova, granule_lg2)], iova, epoch)
            .or_else(|| Self::probe(&slots[SLOTS + Self::index(iova, large_lg2)], iova, epoch))
    }

    #[inline]
    fn probe(slot: &Slot, iova: u64, epoch: u64) -> Option<Hit> {
        let meta = slot.meta.load(Ordering::Relaxed);
        let size_lg2 = (meta & 0xff) as u32;
        if meta == 0
            || slot.gen.load(Ordering::Relaxed) != epoch
            || (iova ^ slot.base.load(Ordering::Relaxed)) >> size_lg2 != 0
        {
            return None;
        }
        Some(Hit {
            pa: slot.pa.load(Ordering::Relaxed),
            size_lg2,
            prot: Prot::from_bits_truncate((meta >> 8) as u32),
        })
    }

    /// Caches the leaf covering `iova` (found by a walk that started in epoch
    /// `gen`) in this thread's lane.
    #[inline]
    pub(crate) fn insert(
        &self,
        gen: u64,
        iova: u64,
        base: u64,
        hit: Hit,
        granule_lg2: u32,
        large_lg2: u32,
    ) {
        let Some(lane) = lane() else {
            return;
        };
        let slots = self.lanes[lane].get_or_init(|| {
            std::iter::repeat_with(Slot::default)
                .take(2 * SLOTS)
                .collect()
        });
        let slot = if hit.size_lg2 > granule_lg2 {
            &slots[SLOTS + Self::index(iova, large_lg2)]
        } else {
            &slots[Self::index(iova, granule_lg2)]
        };
        slot.base.store(base, Ordering::Relaxed);
        slot.pa.store(hit.pa, Ordering::Relaxed);
        slot.meta.store(
            u64::from(hit.size_lg2) | (u64::from(hit.prot.bits()) << 8),
            Ordering::Relaxed,
        );
        slot.gen.store(gen, Ordering::Relaxed);
    }
}
