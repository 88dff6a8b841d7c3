//! A DMA-API style IOVA allocator for library users (device models and VMMs
//! that allocate IOVAs for their own DMA mappings), with per-thread caches.
//!
//! Kernel: `drivers/iommu/iova.c` (`alloc_iova`, `free_iova`, `reserve_iova`,
//! and the per-CPU `iova_rcache` magazines of `alloc_iova_fast` /
//! `free_iova_fast`), v6.12. This is *not* iommufd's uAPI allocator (that one
//! lives in iommufd's `iopt::alloc` and chooses exactly what the kernel's
//! `iopt_alloc_iova` chooses); this one only has to be fast and never overlap.
//!
//! # Design
//!
//! Units are pages ("pfns" of the allocator's granule, as in `iova.c`).
//!
//! - **Free space, not allocations, is indexed.** [`FreeSpace`] keeps the free
//!   ranges in a `BTreeMap` by start (merged: no two touch) and, per size class
//!   `floor(log2(len))`, a `BTreeSet` of the starts of the free ranges of that
//!   class, plus a bitmap of the non-empty classes. Its size is the number of
//!   holes, not the number of live allocations.
//! - **Allocation** is size-aligned and top-down like `iova.c`: a request of
//!   `size` pages with alignment `A = roundup_pow_of_two(size)` takes the highest
//!   aligned block below the limit inside the chosen free range. Classes whose
//!   ranges may be too short once aligned are probed at most [`MAYBE_PROBES`]
//!   times each; from class `ceil_log2(size + A - 1)` up every range fits, so the
//!   first (smallest) non-empty such class answers with one `range().next_back()`
//!   (two when one range straddles the limit). Every path is a bounded number of
//!   B-tree operations: `O(log n)`, no scan of live entries.
//! - **Free** merges with its neighbours (two B-tree lookups) and detects double
//!   frees and frees outside the space (overlap with free space).
//! - **Per-thread caches** ([`IovaAllocator::alloc_fast`] / [`IovaAllocator::free_fast`])
//!   mirror the kernel's rcache: sizes up to [`CACHED_MAX_PAGES`] are rounded up
//!   to a power of two; each thread keeps two magazines of [`MAG_SIZE`] pfns per
//!   order and exchanges full and empty ones with a shared depot. A cached pair
//!   touches no lock and no shared cache line. A thread's cached pfns go back to
//!   the allocator when the thread exits or [`IovaAllocator::flush_thread_cache`]
//!   runs; pfns cached by other threads count as allocated.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use uapi::Errno;

/// Largest size (pages) served by the per-thread caches (kernel: 32 pages, order 5).
pub const CACHED_MAX_PAGES: u64 = 32;
/// Cache orders: 0..=5.
const ORDERS: usize = 6;
/// Pfns per magazine (kernel `IOVA_MAG_SIZE`).
pub const MAG_SIZE: usize = 127;
/// Full magazines per order kept in the depot before they are returned to the tree.
const DEPOT_MAX: usize = 32;
/// Candidates tried in each class whose ranges may not fit once aligned.
pub const MAYBE_PROBES: usize = 4;

fn ceil_log2(x: u64) -> u32 {
    debug_assert!(x > 0);
    64 - (x - 1).leading_zeros()
}

fn class_of(len: u64) -> usize {
    (63 - len.leading_zeros()) as usize
}

/// The free ranges of an IOVA space (inclusive pfn ranges).
#[derive(Debug)]
pub struct FreeSpace {
    /// First and last pfn of the whole space.
    first: u64,
    last: u64,
    /// start -> last of every free range; disjoint and never touching.
    by_addr: BTreeMap<u64, u64>,
    /// Starts of the free ranges of each size class.
    by_class: Vec<BTreeSet<u64>>,
    /// Bit `k`: class `k` is non-empty.
    nonempty: u64,
    /// Free pages in total.
    free_pages: u64,
    /// Candidate ranges examined by the last allocation (a structural bound,
    /// checked by tests instead of timing).
    last_probes: usize,
}

impl FreeSpace {
    /// A space whose pfns `[first, last]` are all free.
    ///
    /// # Errors
    /// `EINVAL` if `first > last` or the space is the whole `u64` range.
    pub fn new(first: u64, last: u64) -> Result<FreeSpace, Errno> {
        if first > last || last - first == u64::MAX {
            return Err(Errno::INVAL);
        }
        let mut fs = FreeSpace {
            first,
            last,
            by_addr: BTreeMap::new(),
            by_class: (0..64).map(|_| BTreeSet::new()).collect(),
            nonempty: 0,
            free_pages: 0,
            last_probes: 0,
        };
        fs.insert_range(first, last);
        Ok(fs)
    }

    fn insert_range(&mut self, s: u64, l: u64) {
        let k = class_of(l - s + 1);
        self.by_addr.insert(s, l);
        self.by_class[k].insert(s);
        self.nonempty |= 1 << k;
        self.free_pages += l - s + 1;
    }

    fn remove_range(&mut self, s: u64, l: u64) {
        let k = class_of(l - s + 1);
        self.by_addr.remove(&s);
        self.by_class[k].remove(&s);
        if self.by_class[k].is_empty() {
            self.nonempty &= !(1 << k);
        }
        self.free_pages -= l - s + 1;
    }

    /// Free pages in total.
    pub fn free_pages(&self) -> u64 {
        self.free_pages
    }

    /// Number of free ranges (holes).
    pub fn holes(&self) -> usize {
        self.by_addr.len()
    }

    /// Candidates examined by the last [`FreeSpace::alloc`].
    pub fn last_probes(&self) -> usize {
        self.last_probes
    }

    /// Highest `size`-page block aligned to `2^align_lg2` inside free range
    /// `[s, l]` and at or below `limit`.
    fn fit(s: u64, l: u64, size: u64, align_lg2: u32, limit: u64) -> Option<u64> {
        let top = l.min(limit);
        if top < s || top - s + 1 < size {
            return None;
        }
        let a = (top + 1 - size) & !((1u64 << align_lg2) - 1);
        (a >= s).then_some(a)
    }

    /// Allocates `size` pages aligned to `roundup_pow_of_two(size)`, ending at or
    /// below `limit` (`alloc_iova(size_aligned = true)`). Returns the first pfn.
    pub fn alloc(&mut self, size: u64, limit: u64) -> Option<u64> {
        self.alloc_aligned(size, ceil_log2(size.max(1)), limit)
    }

    /// Allocates `size` pages aligned to `2^align_lg2`, at or below `limit`.
    pub fn alloc_aligned(&mut self, size: u64, align_lg2: u32, limit: u64) -> Option<u64> {
        if size == 0 || align_lg2 >= 63 {
            return None;
        }
        self.last_probes = 0;
        let sure = size.checked_add((1u64 << align_lg2) - 1)?;
        let sure_class = ceil_log2(sure) as usize;
        let min_class = class_of(size);
        let mut found = None;
        // Classes whose ranges may be too short once aligned: a few probes each.
        for k in min_class..sure_class.min(64) {
            if self.nonempty & (1 << k) == 0 {
                continue;
            }
            for &s in self.by_class[k].range(..=limit).rev().take(MAYBE_PROBES) {
                self.last_probes += 1;
                let l = self.by_addr[&s];
                if let Some(a) = Self::fit(s, l, size, align_lg2, limit) {
                    found = Some((s, l, a));
                    break;
                }
            }
            if found.is_some() {
                break;
            }
        }
        // Classes where every range fits unless it straddles the limit.
        if found.is_none() {
            let mut classes = self.nonempty & !((1u64 << sure_class.min(63)) - 1);
            if sure_class >= 64 {
                classes = 0;
            }
            while classes != 0 && found.is_none() {
                let k = classes.trailing_zeros() as usize;
                classes &= classes - 1;
                for &s in self.by_class[k].range(..=limit).rev().take(2) {
                    self.last_probes += 1;
                    let l = self.by_addr[&s];
                    if let Some(a) = Self::fit(s, l, size, align_lg2, limit) {
                        found = Some((s, l, a));
                        break;
                    }
                }
            }
        }
        let (s, l, a) = found?;
        self.remove_range(s, l);
        if a > s {
            self.insert_range(s, a - 1);
        }
        if a + size - 1 < l {
            self.insert_range(a + size, l);
        }
        Some(a)
    }

    /// Returns `[pfn, pfn + size)` to the free space, merging with neighbours.
    ///
    /// # Errors
    /// `EINVAL` for an empty or wrapping range or one outside the space;
    /// `EEXIST` if any page of it is already free (a double free).
    pub fn free(&mut self, pfn: u64, size: u64) -> Result<(), Errno> {
        if size == 0 {
            return Err(Errno::INVAL);
        }
        let l = pfn.checked_add(size - 1).ok_or(Errno::INVAL)?;
        if pfn < self.first || l > self.last {
            return Err(Errno::INVAL);
        }
        let pred = self.by_addr.range(..=l).next_back().map(|(&a, &b)| (a, b));
        if let Some((_, pl)) = pred {
            if pl >= pfn {
                return Err(Errno::EXIST);
            }
        }
        let (mut s, mut e) = (pfn, l);
        if let Some((ps, pl)) = pred {
            if pl + 1 == pfn {
                self.remove_range(ps, pl);
                s = ps;
            }
        }
        if let Some(next) = l.checked_add(1) {
            if let Some((&ns, &nl)) = self.by_addr.range(next..).next() {
                if ns == next {
                    self.remove_range(ns, nl);
                    e = nl;
                }
            }
        }
        self.insert_range(s, e);
        Ok(())
    }

    /// Takes `[pfn, pfn + size)` out of the free space (`reserve_iova`); pages of
    /// it that are not free stay as they are.
    pub fn reserve(&mut self, pfn: u64, size: u64) {
        if size == 0 {
            return;
        }
        let l = pfn.saturating_add(size - 1);
        let overlapping: Vec<(u64, u64)> = {
            let first = self
                .by_addr
                .range(..=pfn)
                .next_back()
                .map_or(pfn, |(&s, _)| s);
            self.by_addr
                .range(first..=l)
                .map(|(&a, &b)| (a, b))
                .filter(|&(_, b)| b >= pfn)
                .collect()
        };
        for (s, e) in overlapping {
            self.remove_range(s, e);
            if s < pfn {
                self.insert_range(s, pfn - 1);
            }
            if e > l {
                self.insert_range(l + 1, e);
            }
        }
    }

    /// Whether every page of `[pfn, pfn + size)` is free.
    pub fn is_free(&self, pfn: u64, size: u64) -> bool {
        let l = pfn.saturating_add(size.max(1) - 1);
        matches!(self.by_addr.range(..=pfn).next_back(), Some((_, &e)) if e >= l)
    }

    /// Checks every structural invariant; panics with a description if one fails.
    pub fn check(&self) {
        let mut prev: Option<u64> = None;
        let mut total = 0;
        let mut count = 0;
        for (&s, &l) in &self.by_addr {
            assert!(s <= l, "empty range at {s}");
            assert!(s >= self.first && l <= self.last, "range outside the space");
            if let Some(p) = prev {
                assert!(p + 1 < s, "ranges touch or overlap at {s}");
            }
            let k = class_of(l - s + 1);
            assert!(
                self.by_class[k].contains(&s),
                "range {s} missing in class {k}"
            );
            total += l - s + 1;
            count += 1;
            prev = Some(l);
        }
        let in_classes: usize = self.by_class.iter().map(BTreeSet::len).sum();
        assert_eq!(in_classes, count, "class sets hold stale ranges");
        for (k, set) in self.by_class.iter().enumerate() {
            assert_eq!(
                self.nonempty & (1 << k) != 0,
                !set.is_empty(),
                "bitmap of class {k}"
            );
        }
        assert_eq!(total, self.free_pages, "free page count");
    }
}

/// A magazine: a stack of free pfns of one order.
type Magazine = Vec<u64>;

struct Shared {
    id: u64,
    space: Mutex<FreeSpace>,
    /// Full magazines per order.
    depot: Vec<Mutex<Vec<Magazine>>>,
}

impl Shared {
    fn space(&self) -> MutexGuard<'_, FreeSpace> {
        self.space.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn depot(&self, order: usize) -> MutexGuard<'_, Vec<Magazine>> {
        self.depot[order].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn free_all(&self, order: usize, pfns: &[u64]) {
        let mut space = self.space();
        for &pfn in pfns {
            let res = space.free(pfn, 1 << order);
            debug_assert!(res.is_ok(), "cached pfn {pfn:#x} was not allocated");
        }
    }
}

/// One thread's caches for one allocator.
struct ThreadCache {
    id: u64,
    shared: Weak<Shared>,
    loaded: [Magazine; ORDERS],
    prev: [Magazine; ORDERS],
}

impl ThreadCache {
    fn flush(&mut self) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        for order in 0..ORDERS {
            shared.free_all(order, &self.loaded[order]);
            shared.free_all(order, &self.prev[order]);
            self.loaded[order].clear();
            self.prev[order].clear();
        }
    }
}

impl ThreadCache {
    /// Takes a cached pfn of `order` at or below `limit` (`iova_rcache_get`).
    #[inline]
    fn pop(&mut self, shared: &Shared, order: usize, limit: u64) -> Option<u64> {
        let pages = 1u64 << order;
        if let Some(pfn) = pop_below(&mut self.loaded[order], limit, pages) {
            return Some(pfn);
        }
        self.pop_slow(shared, order, limit)
    }

    #[cold]
    fn pop_slow(&mut self, shared: &Shared, order: usize, limit: u64) -> Option<u64> {
        let pages = 1u64 << order;
        if !self.prev[order].is_empty() {
            std::mem::swap(&mut self.loaded[order], &mut self.prev[order]);
            if let Some(pfn) = pop_below(&mut self.loaded[order], limit, pages) {
                return Some(pfn);
            }
        }
        let full = shared.depot(order).pop()?;
        let empty = std::mem::replace(&mut self.loaded[order], full);
        if empty.is_empty() && self.prev[order].is_empty() {
            self.prev[order] = empty;
        } else {
            shared.free_all(order, &empty);
        }
        pop_below(&mut self.loaded[order], limit, pages)
    }

    /// Caches a freed pfn of `order` (`iova_rcache_insert`).
    #[inline]
    fn push(&mut self, shared: &Shared, order: usize, pfn: u64) {
        if self.loaded[order].len() < MAG_SIZE {
            self.loaded[order].push(pfn);
            return;
        }
        self.push_slow(shared, order, pfn);
    }

    #[cold]
    fn push_slow(&mut self, shared: &Shared, order: usize, pfn: u64) {
        if self.prev[order].len() < MAG_SIZE {
            std::mem::swap(&mut self.loaded[order], &mut self.prev[order]);
            self.loaded[order].push(pfn);
            return;
        }
        // Both full: the previous one goes to the depot.
        let full = std::mem::replace(
            &mut self.prev[order],
            std::mem::take(&mut self.loaded[order]),
        );
        let mut depot = shared.depot(order);
        if depot.len() < DEPOT_MAX {
            depot.push(full);
        } else {
            drop(depot);
            shared.free_all(order, &full);
        }
        self.loaded[order].push(pfn);
    }
}

/// A cache handle owned by one thread or device queue (the per-CPU rcache of
/// `iova.c` as an owned value): `&mut self` operations touch no lock, no
/// thread-local and no shared cache line. Dropping it returns its pfns.
pub struct IovaCache {
    shared: Arc<Shared>,
    mags: ThreadCache,
}

impl IovaCache {
    /// Allocates like [`IovaAllocator::alloc_fast`], from this handle's magazines.
    #[inline]
    pub fn alloc(&mut self, size: u64, limit: u64) -> Option<u64> {
        if size == 0 || size > CACHED_MAX_PAGES {
            return self.shared.space().alloc(size, limit);
        }
        let order = ceil_log2(size) as usize;
        self.mags
            .pop(&self.shared, order, limit)
            .or_else(|| self.shared.space().alloc(1 << order, limit))
    }

    /// Frees like [`IovaAllocator::free_fast`], into this handle's magazines.
    ///
    /// # Errors
    /// As [`FreeSpace::free`] for sizes the cache does not take.
    #[inline]
    pub fn free(&mut self, pfn: u64, size: u64) -> Result<(), Errno> {
        if size == 0 || size > CACHED_MAX_PAGES {
            return self.shared.space().free(pfn, size);
        }
        self.mags.push(&self.shared, ceil_log2(size) as usize, pfn);
        Ok(())
    }
}

impl Drop for ThreadCache {
    fn drop(&mut self) {
        self.flush();
    }
}

thread_local! {
    static CACHES: RefCell<Vec<ThreadCache>> = const { RefCell::new(Vec::new()) };
}

/// An IOVA allocator (`struct iova_domain`) over pfns `[first, last]`.
#[derive(Clone)]
pub struct IovaAllocator {
    shared: Arc<Shared>,
}

impl IovaAllocator {
    /// An allocator whose pfns `[first, last]` are all free.
    ///
    /// # Errors
    /// As [`FreeSpace::new`].
    pub fn new(first: u64, last: u64) -> Result<IovaAllocator, Errno> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Ok(IovaAllocator {
            shared: Arc::new(Shared {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                space: Mutex::new(FreeSpace::new(first, last)?),
                depot: (0..ORDERS).map(|_| Mutex::new(Vec::new())).collect(),
            }),
        })
    }

    /// A cache handle for one thread or queue (see [`IovaCache`]).
    pub fn cache(&self) -> IovaCache {
        IovaCache {
            shared: self.shared.clone(),
            mags: ThreadCache {
                id: self.shared.id,
                shared: Arc::downgrade(&self.shared),
                loaded: Default::default(),
                prev: Default::default(),
            },
        }
    }

    /// Allocates from the tree, bypassing the caches (`alloc_iova`, size aligned).
    pub fn alloc(&self, size: u64, limit: u64) -> Option<u64> {
        self.shared.space().alloc(size, limit)
    }

    /// Frees to the tree, bypassing the caches (`free_iova`).
    ///
    /// # Errors
    /// As [`FreeSpace::free`].
    pub fn free(&self, pfn: u64, size: u64) -> Result<(), Errno> {
        self.shared.space().free(pfn, size)
    }

    /// Reserves pfns so they are never handed out (`reserve_iova`).
    pub fn reserve(&self, pfn: u64, size: u64) {
        self.shared.space().reserve(pfn, size);
    }

    /// Runs `f` on the free space (inspection and tests).
    pub fn with_space<R>(&self, f: impl FnOnce(&FreeSpace) -> R) -> R {
        f(&self.shared.space())
    }

    fn with_cache<R>(&self, f: impl FnOnce(&mut ThreadCache) -> R) -> R {
        CACHES.with(|caches| {
            let mut caches = caches.borrow_mut();
            let idx = match caches.iter().position(|c| c.id == self.shared.id) {
                Some(i) => i,
                None => {
                    // Forget caches of allocators that are gone.
                    caches.retain(|c| c.shared.strong_count() > 0);
                    caches.push(ThreadCache {
                        id: self.shared.id,
                        shared: Arc::downgrade(&self.shared),
                        loaded: Default::default(),
                        prev: Default::default(),
                    });
                    caches.len() - 1
                }
            };
            f(&mut caches[idx])
        })
    }

    /// Allocates `size` pages (`alloc_iova_fast`): sizes up to
    /// [`CACHED_MAX_PAGES`] are rounded up to a power of two and served from this
    /// thread's cache when it holds a pfn at or below `limit`. Free with
    /// [`IovaAllocator::free_fast`] and the same `size`.
    pub fn alloc_fast(&self, size: u64, limit: u64) -> Option<u64> {
        if size == 0 || size > CACHED_MAX_PAGES {
            return self.alloc(size, limit);
        }
        let order = ceil_log2(size) as usize;
        let cached = self.with_cache(|c| c.pop(&self.shared, order, limit));
        cached.or_else(|| self.alloc(1 << order, limit))
    }

    /// Frees an [`IovaAllocator::alloc_fast`] allocation into this thread's cache
    /// (`free_iova_fast`).
    ///
    /// # Errors
    /// As [`FreeSpace::free`] for sizes the cache does not take; a double free
    /// into the cache is only detected when the cache is flushed (debug builds).
    pub fn free_fast(&self, pfn: u64, size: u64) -> Result<(), Errno> {
        if size == 0 || size > CACHED_MAX_PAGES {
            return self.free(pfn, size);
        }
        let order = ceil_log2(size) as usize;
        self.with_cache(|c| c.push(&self.shared, order, pfn));
        Ok(())
    }

    /// Returns this thread's cached pfns to the allocator.
    pub fn flush_thread_cache(&self) {
        self.with_cache(ThreadCache::flush);
    }

    /// Returns every cached pfn (this thread's and the depot's) to the allocator;
    /// other threads keep theirs (`free_cpu_cached_iovas` for the calling CPU).
    pub fn flush_caches(&self) {
        self.flush_thread_cache();
        for order in 0..ORDERS {
            let mags = std::mem::take(&mut *self.shared.depot(order));
            for mag in mags {
                self.shared.free_all(order, &mag);
            }
        }
    }
}

/// Pops a pfn whose block ends at or below `limit` from a magazine.
#[inline]
fn pop_below(mag: &mut Magazine, limit: u64, pages: u64) -> Option<u64> {
    match mag.last() {
        Some(&pfn) if pfn + (pages - 1) <= limit => mag.pop(),
        Some(_) => {
            let i = mag.iter().rposition(|&pfn| pfn + (pages - 1) <= limit)?;
            Some(mag.swap_remove(i))
        }
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap as Model;

    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
    }

    fn assert_disjoint(live: &Model<u64, u64>, fs: &FreeSpace) {
        let mut prev_end = 0u64;
        for (&pfn, &size) in live {
            assert!(pfn >= prev_end, "allocations overlap at {pfn:#x}");
            assert!(!fs.is_free(pfn, 1), "allocated pfn {pfn:#x} is also free");
            prev_end = pfn + size;
        }
    }

    #[test]
    fn top_down_size_aligned_like_iova_c() {
        let mut fs = FreeSpace::new(1, 0xfff).unwrap();
        assert_eq!(fs.alloc(1, 0xfff), Some(0xfff));
        assert_eq!(fs.alloc(4, 0xfff), Some(0xff8));
        assert_eq!(
            fs.alloc(3, 0xfff),
            Some(0xffc),
            "3 pages align to 4, highest fit"
        );
        assert_eq!(fs.alloc(1, 0x7ff), Some(0x7ff), "limit respected");
        fs.check();
        assert_eq!(fs.alloc(0x2000, 0xfff), None);
        assert_eq!(fs.alloc(0, 0xfff), None);
    }

    #[test]
    fn free_merges_and_rejects_double_free() {
        let mut fs = FreeSpace::new(0, 1023).unwrap();
        let a = fs.alloc(8, 1023).unwrap();
        let b = fs.alloc(8, 1023).unwrap();
        assert_eq!(fs.holes(), 1);
        fs.free(a, 8).unwrap();
        assert_eq!(fs.free(a, 8), Err(Errno::EXIST));
        assert_eq!(fs.free(a + 4, 1), Err(Errno::EXIST));
        fs.free(b, 8).unwrap();
        assert_eq!((fs.holes(), fs.free_pages()), (1, 1024));
        assert_eq!(fs.free(2000, 1), Err(Errno::INVAL));
        fs.check();
    }

    #[test]
    fn reserve_is_never_handed_out() {
        let mut fs = FreeSpace::new(0, 255).unwrap();
        fs.reserve(100, 56);
        let mut got = Vec::new();
        while let Some(p) = fs.alloc(1, 255) {
            got.push(p);
        }
        assert_eq!(got.len(), 200);
        assert!(got.iter().all(|&p| !(100..156).contains(&p)));
        fs.check();
    }

    #[test]
    fn random_ops_never_overlap_and_keep_invariants() {
        let mut rng = Lcg(42);
        let mut fs = FreeSpace::new(16, (1 << 16) - 1).unwrap();
        let mut live: Model<u64, u64> = Model::new();
        for step in 0..20_000 {
            if !rng.next().is_multiple_of(3) || live.is_empty() {
                let size = 1 + rng.next() % 40;
                let limit = if rng.next().is_multiple_of(4) {
                    0x7fff
                } else {
                    0xffff
                };
                if let Some(pfn) = fs.alloc(size, limit) {
                    let align = 1u64 << ceil_log2(size);
                    assert_eq!(pfn % align, 0, "misaligned");
                    assert!(pfn + size - 1 <= limit, "above limit");
                    assert!(pfn >= 16);
                    live.insert(pfn, size);
                }
            } else {
                let k = *live.keys().nth((rng.next() as usize) % live.len()).unwrap();
                let size = live.remove(&k).unwrap();
                fs.free(k, size).unwrap();
            }
            if step % 500 == 0 {
                fs.check();
                assert_disjoint(&live, &fs);
                let used: u64 = live.values().sum();
                assert_eq!(fs.free_pages() + used, (1 << 16) - 16);
            }
        }
        fs.check();
        assert_disjoint(&live, &fs);
    }

    #[test]
    fn allocation_probes_are_bounded_when_fragmented() {
        // Every other page allocated: 32k one-page holes; then ask for 2 pages.
        let mut fs = FreeSpace::new(0, (1 << 16) - 1).unwrap();
        let all: Vec<u64> = (0..1 << 16)
            .map(|_| fs.alloc(1, u64::MAX).unwrap())
            .collect();
        for &p in all.iter().filter(|&&p| p % 2 == 0) {
            fs.free(p, 1).unwrap();
        }
        assert_eq!(fs.holes(), 1 << 15);
        assert_eq!(fs.alloc(2, u64::MAX), None);
        assert!(
            fs.last_probes() <= MAYBE_PROBES * 64 + 2 * 64,
            "probes {}",
            fs.last_probes()
        );
        assert!(fs.alloc(1, u64::MAX).is_some());
        assert!(fs.last_probes() <= 1);
        fs.check();
    }

    #[test]
    fn cached_pairs_reuse_and_flush_back() {
        let a = IovaAllocator::new(1, (1 << 20) - 1).unwrap();
        let p = a.alloc_fast(3, u64::MAX).unwrap();
        assert_eq!(p % 4, 0);
        a.free_fast(p, 3).unwrap();
        assert_eq!(a.alloc_fast(4, u64::MAX), Some(p), "served from the cache");
        a.free_fast(p, 4).unwrap();
        // Many frees overflow magazines into the depot and the tree.
        let ps: Vec<u64> = (0..2000)
            .map(|_| a.alloc_fast(1, u64::MAX).unwrap())
            .collect();
        let mut sorted = ps.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ps.len(), "duplicate pfns handed out");
        for p in ps {
            a.free_fast(p, 1).unwrap();
        }
        a.flush_caches();
        a.with_space(|fs| {
            fs.check();
            assert_eq!(fs.free_pages(), (1 << 20) - 1);
        });
    }

    #[test]
    fn cache_handle_pairs_and_returns_on_drop() {
        let a = IovaAllocator::new(1, (1 << 20) - 1).unwrap();
        let mut c = a.cache();
        let mut held = Vec::new();
        for i in 0..1000u64 {
            let size = 1 + i % 32;
            let p = c.alloc(size, u64::MAX).unwrap();
            held.push((p, size));
            if i % 2 == 0 {
                let (p, s) = held.swap_remove(0);
                c.free(p, s).unwrap();
            }
        }
        for (p, s) in held {
            c.free(p, s).unwrap();
        }
        drop(c);
        a.flush_caches();
        a.with_space(|fs| {
            fs.check();
            assert_eq!(fs.free_pages(), (1 << 20) - 1);
        });
    }

    #[test]
    fn cached_alloc_respects_limit() {
        let a = IovaAllocator::new(1, (1 << 20) - 1).unwrap();
        let high = a.alloc_fast(1, u64::MAX).unwrap();
        a.free_fast(high, 1).unwrap();
        let low = a.alloc_fast(1, 0xffff).unwrap();
        assert!(low <= 0xffff);
        assert_ne!(low, high);
    }

    #[test]
    fn threads_never_get_the_same_pfn() {
        let a = IovaAllocator::new(1, (1 << 24) - 1).unwrap();
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let a = a.clone();
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    for i in 0..5000u64 {
                        let size = 1 + (i + t) % 8;
                        let p = a.alloc_fast(size, u64::MAX).unwrap();
                        mine.push((p, size));
                        if i % 3 == 0 {
                            let (p, s) = mine.swap_remove((i as usize * 7) % mine.len());
                            a.free_fast(p, s).unwrap();
                        }
                    }
                    mine
                })
            })
            .collect();
        let mut all: Vec<(u64, u64)> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort_unstable();
        for w in all.windows(2) {
            let (p, s) = w[0];
            let round = 1u64 << ceil_log2(s);
            assert!(
                p + round <= w[1].0,
                "overlap {:#x}+{round} / {:#x}",
                p,
                w[1].0
            );
        }
    }
}
