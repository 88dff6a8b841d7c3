//! Page stores: the pinned user pages behind one or more areas.
//!
//! A [`Pages`] describes a linear, page-aligned chunk of one process's memory. Areas
//! of any IOAS take byte slices of it (MAP creates one store per call, COPY shares
//! the source's stores). Its indices are pinned lazily and exactly once:
//!
//! * an index is pinned iff it is covered by an area of this store that is mapped
//!   into domains (`domains_itree`) or by an in-kernel access range (`access_itree`);
//! * pinning happens when the first such user appears and unpinning when the last
//!   goes; an IOAS without domains or accesses never touches user memory.
//!
//! The kernel keeps pinned PFNs in three tiers (xarray, domains, mm). Here every
//! pinned index keeps its physical run in one run-length map ([`pfns::PfnMap`]),
//! which is simpler, never fails on destroy paths, and gives the same observable
//! behaviour: pin counts, accounting, `EFAULT` on bad memory, what domains map.
//!
//! Lock order: callers hold the io_pagetable locks; `Pages::inner` is the
//! innermost lock (`pages->mutex`).
//!
//! Kernel: `drivers/iommu/iommufd/pages.c` (v6.12).

mod check;
mod pfns;

use crate::sync::{Arc, Mutex, MutexGuard};
use std::collections::HashMap;

use iommu::{Domain, Prot};
use itree::{double_spans, DoubleSpan, IntervalTree, NodeId};
use uapi::Errno;

use crate::mm::{AccountMode, Cap, UserMemory, PAGE_SIZE};
use pfns::{PfnMap, PfnSeg};

/// The IOVA side of one area, as the page store needs it to map the area.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AreaSpan {
    /// Identifies the area in `domains_itree`.
    pub(crate) key: u64,
    pub(crate) iova: u64,
    pub(crate) last_iova: u64,
    /// Byte offset of `iova` inside the page at `index`.
    pub(crate) page_offset: u64,
    pub(crate) index: u64,
    pub(crate) last_index: u64,
    pub(crate) prot: Prot,
}

impl AreaSpan {
    /// Byte length of the area.
    pub(crate) fn length(&self) -> u64 {
        self.last_iova - self.iova + 1
    }
}

/// One user of a page-index range in `access_itree`.
#[derive(Debug)]
struct AccessNode {
    users: u32,
}

#[derive(Default)]
struct PagesInner {
    access_itree: IntervalTree<AccessNode>,
    domains_itree: IntervalTree<u64>,
    domain_nodes: HashMap<u64, NodeId>,
    pfns: PfnMap,
    /// Pinned pages already charged to the accounting mode (`last_npinned`).
    accounted: u64,
}

/// A page store (`struct iopt_pages`).
pub(crate) struct Pages {
    /// Page-aligned user address of index 0.
    pub(crate) uptr: u64,
    pub(crate) npages: u64,
    pub(crate) writable: bool,
    mm: Arc<dyn UserMemory>,
    account_mode: AccountMode,
    inner: Mutex<PagesInner>,
}

impl Pages {
    /// Describes `[uptr, uptr + length)` of `mm` (`iopt_alloc_pages`).
    ///
    /// # Errors
    /// `EINVAL` for a zero or huge length, `EOVERFLOW` if the range wraps.
    pub(crate) fn new(
        mm: &Arc<dyn UserMemory>,
        uptr: u64,
        length: u64,
        writable: bool,
        ctx_mode: AccountMode,
    ) -> Result<Arc<Pages>, Errno> {
        if length == 0 || length > u64::MAX - PAGE_SIZE {
            return Err(Errno::INVAL);
        }
        uptr.checked_add(length).ok_or(Errno::OVERFLOW)?;
        fault::fail_point!(fault::Site::PagesAlloc, Errno::NOMEM);
        let base = uptr & !(PAGE_SIZE - 1);
        let npages = (length + (uptr - base)).div_ceil(PAGE_SIZE);
        let mut account_mode = if mm.capable(Cap::IpcLock) {
            AccountMode::None
        } else {
            AccountMode::User
        };
        if ctx_mode == AccountMode::Mm && account_mode == AccountMode::User {
            account_mode = AccountMode::Mm;
        }
        crate::debug::LIVE_PAGES.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Ok(Arc::new(Pages {
            uptr: base,
            npages,
            writable,
            mm: mm.clone(),
            account_mode,
            inner: Mutex::new(PagesInner::default()),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, PagesInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ---- pinning ----------------------------------------------------------

    /// Pins every index of `[start, last]` not yet pinned for another user.
    fn pin_holes(&self, inner: &mut PagesInner, start: u64, last: u64) -> Result<(), Errno> {
        let holes: Vec<(u64, u64)> = hole_ranges(inner, start, last);
        let mut runs = Vec::new();
        for (i, &(s, l)) in holes.iter().enumerate() {
            runs.clear();
            let n = l - s + 1;
            if let Err(err) = self
                .mm
                .pin(self.uptr + s * PAGE_SIZE, n, self.writable, &mut runs)
            {
                for &(s2, l2) in &holes[..i] {
                    self.release(inner, s2, l2);
                }
                return Err(err);
            }
            inner.pfns.insert(s, &runs);
        }
        Ok(())
    }

    /// Unpins every index of `[start, last]` that no user covers any more.
    fn unpin_holes(&self, inner: &mut PagesInner, start: u64, last: u64) {
        for (s, l) in hole_ranges(inner, start, last) {
            self.release(inner, s, l);
        }
    }

    fn release(&self, inner: &mut PagesInner, start: u64, last: u64) {
        inner.pfns.remove(start, last);
        self.mm
            .unpin(self.uptr + start * PAGE_SIZE, last - start + 1);
    }

    /// Charges newly pinned pages (`pfn_reader_user_update_pinned`).
    fn update_pinned(&self, inner: &mut PagesInner) -> Result<(), Errno> {
        let npinned = inner.pfns.npages();
        if npinned == inner.accounted {
            return Ok(());
        }
        let (n, inc) = if npinned > inner.accounted {
            (npinned - inner.accounted, true)
        } else {
            (inner.accounted - npinned, false)
        };
        if self.account_mode != AccountMode::None {
            self.mm.account(self.account_mode, n, inc)?;
        }
        inner.accounted = npinned;
        Ok(())
    }

    /// Uncharges pages that were unpinned (`update_unpinned`).
    fn update_unpinned(&self, inner: &mut PagesInner) {
        debug_assert!(inner.pfns.npages() <= inner.accounted);
        // Uncharging cannot fail.
        let _ = self.update_pinned(inner);
    }

    // ---- domains ----------------------------------------------------------

    /// Maps a new area into every domain of its io_pagetable, pinning as needed
    /// (`iopt_area_fill_domains`). On failure every domain is unchanged.
    ///
    /// # Errors
    /// `EFAULT` (bad user memory), `ENOMEM` (accounting), the driver's map errno.
    pub(crate) fn fill_domains(
        &self,
        domains: &[Arc<dyn Domain>],
        area: &AreaSpan,
        small: bool,
    ) -> Result<(), Errno> {
        if domains.is_empty() {
            return Ok(());
        }
        let mut inner = self.lock();
        self.pin_holes(&mut inner, area.index, area.last_index)?;
        let segs = inner.pfns.segments(area.index, area.last_index);
        for (i, domain) in domains.iter().enumerate() {
            if let Err(err) = map_area(domain.as_ref(), area, &segs, small) {
                for done in &domains[..i] {
                    unmap_area(done.as_ref(), area);
                }
                self.unpin_holes(&mut inner, area.index, area.last_index);
                return Err(err);
            }
        }
        if let Err(err) = self.update_pinned(&mut inner) {
            for done in domains {
                unmap_area(done.as_ref(), area);
            }
            self.unpin_holes(&mut inner, area.index, area.last_index);
            return Err(err);
        }
        let node = inner
            .domains_itree
            .insert(area.index, area.last_index, area.key);
        inner.domain_nodes.insert(area.key, node);
        Ok(())
    }

    /// Unmaps an area from every domain and unpins what nobody else needs
    /// (`iopt_area_unfill_domains`).
    pub(crate) fn unfill_domains(&self, domains: &[Arc<dyn Domain>], area: &AreaSpan) {
        let mut inner = self.lock();
        let Some(node) = inner.domain_nodes.remove(&area.key) else {
            return;
        };
        for domain in domains {
            unmap_area(domain.as_ref(), area);
        }
        inner.domains_itree.remove(node);
        self.unpin_holes(&mut inner, area.index, area.last_index);
        self.update_unpinned(&mut inner);
    }

    /// Maps an existing area into one newly added domain (`iopt_area_fill_domain`).
    /// `first` says no other domain holds the area yet, so it must be pinned.
    ///
    /// # Errors
    /// As [`Pages::fill_domains`]; the domain is left without this area.
    pub(crate) fn fill_domain(
        &self,
        domain: &dyn Domain,
        area: &AreaSpan,
        small: bool,
        first: bool,
    ) -> Result<(), Errno> {
        let mut inner = self.lock();
        if first {
            self.pin_holes(&mut inner, area.index, area.last_index)?;
        }
        let segs = inner.pfns.segments(area.index, area.last_index);
        let res = map_area(domain, area, &segs, small);
        let res = res.and_then(|()| {
            if first {
                self.update_pinned(&mut inner)
                    .inspect_err(|_| unmap_area(domain, area))
            } else {
                Ok(())
            }
        });
        if let Err(err) = res {
            if first {
                self.unpin_holes(&mut inner, area.index, area.last_index);
            }
            return Err(err);
        }
        if first {
            let node = inner
                .domains_itree
                .insert(area.index, area.last_index, area.key);
            inner.domain_nodes.insert(area.key, node);
        }
        Ok(())
    }

    /// Unmaps an area from one domain that is being removed; `last` says it was the
    /// only domain, so pins not needed by accesses go too (`iopt_unfill_domain`).
    pub(crate) fn unfill_domain(&self, domain: &dyn Domain, area: &AreaSpan, last: bool) {
        let mut inner = self.lock();
        unmap_area(domain, area);
        if !last {
            return;
        }
        if let Some(node) = inner.domain_nodes.remove(&area.key) {
            inner.domains_itree.remove(node);
        }
        self.unpin_holes(&mut inner, area.index, area.last_index);
        self.update_unpinned(&mut inner);
    }

    /// Whether an area is mapped into domains (`area->storage_domain != NULL`).
    pub(crate) fn is_filled(&self, key: u64) -> bool {
        self.lock().domain_nodes.contains_key(&key)
    }

    /// Re-keys a split area's domain coverage: `old` becomes the given pieces.
    pub(crate) fn split_filled(&self, old: u64, pieces: &[(u64, u64, u64)]) {
        let mut inner = self.lock();
        let Some(node) = inner.domain_nodes.remove(&old) else {
            return;
        };
        inner.domains_itree.remove(node);
        for &(key, start, last) in pieces {
            let node = inner.domains_itree.insert(start, last, key);
            inner.domain_nodes.insert(key, node);
        }
    }

    // ---- in-kernel accesses -----------------------------------------------

    /// Records an access of indices `[start, last]` and returns the physical address
    /// of each page (`iopt_area_add_access`).
    ///
    /// # Errors
    /// `EPERM` for a write access to a read-only store; `EFAULT`, `ENOMEM` from pinning.
    pub(crate) fn add_access(&self, start: u64, last: u64, write: bool) -> Result<Vec<u64>, Errno> {
        if write && !self.writable {
            return Err(Errno::PERM);
        }
        let mut inner = self.lock();
        if let Some(node) = exact_access(&inner, start, last) {
            if let Some(acc) = inner.access_itree.get_mut(node) {
                acc.users += 1;
            }
            return Ok(page_pas(&inner.pfns, start, last));
        }
        self.pin_holes(&mut inner, start, last)?;
        if let Err(err) = self.update_pinned(&mut inner) {
            self.unpin_holes(&mut inner, start, last);
            return Err(err);
        }
        inner
            .access_itree
            .insert(start, last, AccessNode { users: 1 });
        Ok(page_pas(&inner.pfns, start, last))
    }

    /// Releases one [`Pages::add_access`] of exactly `[start, last]`.
    pub(crate) fn remove_access(&self, start: u64, last: u64) {
        let mut inner = self.lock();
        let Some(node) = exact_access(&inner, start, last) else {
            debug_assert!(false, "removing an access that was never added");
            return;
        };
        let Some(acc) = inner.access_itree.get_mut(node) else {
            return;
        };
        acc.users -= 1;
        if acc.users != 0 {
            return;
        }
        inner.access_itree.remove(node);
        self.unpin_holes(&mut inner, start, last);
        self.update_unpinned(&mut inner);
    }

    /// Copies between `buf` and bytes `[start_byte, start_byte + buf.len())` of the
    /// store (`iopt_pages_rw_access`). `slow` forces the pinning paths that a
    /// foreign mm would take (`__IOMMUFD_ACCESS_RW_SLOW_PATH`).
    ///
    /// # Errors
    /// `EPERM` writing a read-only store; `EFAULT` for bad memory.
    pub(crate) fn rw(
        &self,
        current: &Arc<dyn UserMemory>,
        start_byte: u64,
        buf: &mut [u8],
        write: bool,
        slow: bool,
    ) -> Result<(), Errno> {
        if write && !self.writable {
            return Err(Errno::PERM);
        }
        let change_mm = slow || !Arc::ptr_eq(current, &self.mm);
        let start_index = start_byte / PAGE_SIZE;
        let last_index = (start_byte + buf.len() as u64 - 1) / PAGE_SIZE;
        if !change_mm {
            let va = self.uptr + start_byte;
            return if write {
                self.mm.write(va, buf)
            } else {
                self.mm.read(va, buf)
            };
        }
        if start_index == last_index {
            return self.rw_page(start_index, start_byte % PAGE_SIZE, buf, write);
        }
        self.rw_slow(start_index, last_index, start_byte % PAGE_SIZE, buf, write)
    }

    /// Single page through a temporary pin (`iopt_pages_rw_page`).
    fn rw_page(&self, index: u64, offset: u64, buf: &mut [u8], write: bool) -> Result<(), Errno> {
        let va = self.uptr + index * PAGE_SIZE;
        let mut runs = Vec::with_capacity(1);
        self.mm.pin(va, 1, write, &mut runs)?;
        let seg = PfnSeg {
            index,
            pa: runs[0].pa,
            npages: 1,
            max_pgsize: runs[0].max_pgsize,
        };
        let res = copy_segs(self.mm.as_ref(), &[seg], offset, buf, write);
        self.mm.unpin(va, 1);
        res
    }

    /// Through the pinned PFNs, pinning holes temporarily (`iopt_pages_rw_slow`).
    fn rw_slow(
        &self,
        start: u64,
        last: u64,
        offset: u64,
        buf: &mut [u8],
        write: bool,
    ) -> Result<(), Errno> {
        let inner = self.lock();
        let mut segs = Vec::new();
        let mut temp: Vec<(u64, u64)> = Vec::new();
        let mut res = Ok(());
        for span in double_spans(&inner.access_itree, &inner.domains_itree, start, last) {
            let (s, l) = (span.start(), span.last());
            if !span.is_hole() {
                segs.extend(inner.pfns.segments(s, l));
                continue;
            }
            let mut runs = Vec::new();
            if let Err(err) = self.mm.pin(
                self.uptr + s * PAGE_SIZE,
                l - s + 1,
                self.writable,
                &mut runs,
            ) {
                res = Err(err);
                break;
            }
            temp.push((s, l));
            let mut index = s;
            for run in runs {
                segs.push(PfnSeg {
                    index,
                    pa: run.pa,
                    npages: run.npages,
                    max_pgsize: run.max_pgsize,
                });
                index += run.npages;
            }
        }
        if res.is_ok() {
            res = copy_segs(self.mm.as_ref(), &segs, offset, buf, write);
        }
        for (s, l) in temp {
            self.mm.unpin(self.uptr + s * PAGE_SIZE, l - s + 1);
        }
        res
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        crate::debug::LIVE_PAGES.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        debug_assert!(
            inner.access_itree.is_empty(),
            "page store dropped with accesses"
        );
        debug_assert!(
            inner.domains_itree.is_empty(),
            "page store dropped while mapped"
        );
        debug_assert_eq!(inner.pfns.npages(), 0, "page store dropped while pinned");
    }
}

/// Index ranges in `[start, last]` that neither an access nor a domain covers.
fn hole_ranges(inner: &PagesInner, start: u64, last: u64) -> Vec<(u64, u64)> {
    double_spans(&inner.access_itree, &inner.domains_itree, start, last)
        .filter_map(|span| match span {
            DoubleSpan::Hole { start, last } => Some((start, last)),
            _ => None,
        })
        .collect()
}

fn exact_access(inner: &PagesInner, start: u64, last: u64) -> Option<NodeId> {
    inner
        .access_itree
        .iter_overlapping(start, last)
        .find(|&(_, s, l, _)| s == start && l == last)
        .map(|(id, ..)| id)
}

fn page_pas(pfns: &PfnMap, start: u64, last: u64) -> Vec<u64> {
    let mut out = Vec::with_capacity((last - start + 1) as usize);
    for seg in pfns.segments(start, last) {
        out.extend((0..seg.npages).map(|i| seg.pa + i * PAGE_SIZE));
    }
    out
}

/// Maps the whole area into `domain` from its pinned segments (`batch_to_domain`).
/// On failure nothing of the area stays mapped.
fn map_area(
    domain: &dyn Domain,
    area: &AreaSpan,
    segs: &[PfnSeg],
    small: bool,
) -> Result<(), Errno> {
    let mut iova = area.iova;
    for seg in segs {
        let page_offset = if seg.index == area.index {
            area.page_offset
        } else {
            0
        };
        let seg_last = area
            .last_iova
            .min(iova + (seg.npages * PAGE_SIZE - page_offset) - 1);
        let res = if small {
            map_small(
                domain,
                iova,
                seg.pa + page_offset,
                seg_last - iova + 1,
                area.prot,
            )
        } else {
            iommu::map::map(
                domain,
                iova,
                seg.pa + page_offset,
                seg_last - iova + 1,
                area.prot,
                seg.max_pgsize,
            )
        };
        if let Err(err) = res {
            if iova != area.iova {
                unmap_nofail(domain, area.iova, iova - area.iova);
            }
            return Err(err);
        }
        iova = seg_last.wrapping_add(1);
    }
    Ok(())
}

/// One `iommu_map` per `PAGE_SIZE` page, so that a VFIO type1 split can later
/// unmap any page-aligned piece (`batch_iommu_map_small`).
fn map_small(domain: &dyn Domain, iova: u64, pa: u64, size: u64, prot: Prot) -> Result<(), Errno> {
    let mut done = 0;
    while done < size {
        let len = PAGE_SIZE.min(size - done);
        if let Err(err) = iommu::map::map(domain, iova + done, pa + done, len, prot, PAGE_SIZE) {
            if done != 0 {
                unmap_nofail(domain, iova, done);
            }
            return Err(err);
        }
        done += len;
    }
    Ok(())
}

fn unmap_area(domain: &dyn Domain, area: &AreaSpan) {
    unmap_nofail(domain, area.iova, area.length());
}

/// `iommu_unmap_nofail`: unmapping exactly what was mapped cannot fail.
fn unmap_nofail(domain: &dyn Domain, iova: u64, size: u64) {
    let unmapped = iommu::map::unmap(domain, iova, size);
    debug_assert_eq!(unmapped, size, "domain unmapped other than requested");
}

/// Copies between `buf` and the memory described by `segs`, starting `offset`
/// bytes into the first segment.
fn copy_segs(
    mm: &dyn UserMemory,
    segs: &[PfnSeg],
    mut offset: u64,
    buf: &mut [u8],
    write: bool,
) -> Result<(), Errno> {
    let mut done = 0usize;
    for seg in segs {
        if done == buf.len() {
            break;
        }
        let seg_bytes = seg.npages * PAGE_SIZE - offset;
        let n = (buf.len() - done).min(seg_bytes as usize);
        let pa = seg.pa + offset;
        let chunk = &mut buf[done..done + n];
        if write {
            mm.write_phys(pa, chunk)?;
        } else {
            mm.read_phys(pa, chunk)?;
        }
        done += n;
        offset = 0;
    }
    debug_assert_eq!(done, buf.len());
    Ok(())
}
