//! The io_pagetable of one IOAS: areas, allowed and reserved ranges, the domains
//! that mirror it and the in-kernel accesses that use it.
//!
//! The IOAS is the single source of truth; every domain in `domains` maps exactly
//! the union of the areas ("domains are always fully populated"). MAP inserts an
//! area with no page store to reserve its IOVA, fills every domain without the
//! IOVA lock, then publishes the store. UNMAP removes whole areas only, notifying
//! accesses and retrying while they hold pins.
//!
//! Lock order: `domains` (the kernel's `domains_rwsem`) → `iova` (`iova_rwsem`) →
//! `Pages::inner` (`pages->mutex`). `accesses` is taken inside both rwsems for
//! membership changes and alone to notify. The unmap path drops every lock before
//! calling access unmap callbacks.
//!
//! Kernel: `drivers/iommu/iommufd/io_pagetable.c`, `io_pagetable.h` (v6.12).

mod alloc;
pub(crate) mod debug;

use crate::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use crate::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::collections::BTreeMap;

use iommu::{Domain, Prot};
use itree::{IntervalTree, NodeId, Span};
use uapi::Errno;

use crate::access::Access;
use crate::mm::{AccountMode, UserMemory, PAGE_SIZE};
use crate::object::Object;
use crate::pages::{AreaSpan, Pages};

/// Keys of areas in the page stores they share (COPY puts areas of several
/// IOASes on one store), so unique across every io_pagetable.
static NEXT_AREA_KEY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Unmap retries on one area whose accesses do not let go (`EDEADLOCK` after).
const MAX_UNMAP_TRIES: u32 = 100;

/// Who reserved an IOVA range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ResvOwner {
    /// `IOMMU_TEST_OP_ADD_RESERVED` (owner NULL): lives until the IOAS is destroyed.
    Test,
    /// A domain's aperture complement, keyed by the domain's address.
    Domain(usize),
    /// A device's reserved regions, keyed by device identity.
    Device(u64),
}

/// The owner key of a domain.
pub(crate) fn domain_owner(domain: &Arc<dyn Domain>) -> ResvOwner {
    ResvOwner::Domain(Arc::as_ptr(domain) as *const () as usize)
}

/// A mapped IOVA range backed by a slice of a page store (`struct iopt_area`).
pub(crate) struct Area {
    key: u64,
    /// `None` while the area is being created or destroyed.
    pages: Option<Arc<Pages>>,
    page_offset: u64,
    index: u64,
    last_index: u64,
    prot: Prot,
    num_accesses: AtomicU32,
    prevent_access: AtomicBool,
}

impl Area {
    fn span(&self, iova: u64, last_iova: u64) -> AreaSpan {
        AreaSpan {
            key: self.key,
            iova,
            last_iova,
            page_offset: self.page_offset,
            index: self.index,
            last_index: self.last_index,
            prot: self.prot,
        }
    }

    /// Byte offset in the page store of `iova` (`iopt_area_start_byte`).
    fn start_byte(&self, area_iova: u64, iova: u64) -> u64 {
        iova - area_iova + self.page_offset + self.index * PAGE_SIZE
    }

    fn allows(&self, write: bool) -> bool {
        if write {
            self.prot.contains(Prot::WRITE)
        } else {
            self.prot.contains(Prot::READ)
        }
    }
}

/// A slice of a page store to be mapped (`struct iopt_pages_list`).
pub(crate) struct PagesElm {
    pub(crate) pages: Arc<Pages>,
    pub(crate) start_byte: u64,
    pub(crate) length: u64,
}

/// The domains mirroring the IOAS (`iopt->domains`, under `domains_rwsem`).
#[derive(Default)]
pub(crate) struct DomainsState {
    pub(crate) list: Vec<Arc<dyn Domain>>,
}

/// The IOVA space (`iopt` fields under `iova_rwsem`).
pub(crate) struct IovaState {
    pub(crate) areas: IntervalTree<Area>,
    pub(crate) allowed: IntervalTree<()>,
    pub(crate) reserved: IntervalTree<ResvOwner>,
    pub(crate) iova_alignment: u64,
    pub(crate) disable_large_pages: bool,
    /// Where the automatic allocator's search may start (see [`alloc::HoleHint`]).
    pub(crate) hole_hint: alloc::HoleHint,
}

/// An access attached to the io_pagetable.
#[derive(Clone)]
struct AccessEntry {
    obj: Arc<Object>,
    iova_alignment: u64,
}

/// One piece of a contiguous walk over areas (`iopt_area_contig_iter`).
struct Piece {
    node: NodeId,
    area_iova: u64,
    area_last: u64,
    cur: u64,
    last: u64,
}

/// The io_pagetable (`struct io_pagetable`).
pub(crate) struct IoPagetable {
    domains: RwLock<DomainsState>,
    iova: RwLock<IovaState>,
    accesses: Mutex<BTreeMap<u32, AccessEntry>>,
}

impl IoPagetable {
    /// An empty table: no restriction, byte alignment (`iopt_init_table`).
    pub(crate) fn new() -> IoPagetable {
        IoPagetable {
            domains: RwLock::new(DomainsState::default()),
            iova: RwLock::new(IovaState {
                areas: IntervalTree::new(),
                allowed: IntervalTree::new(),
                reserved: IntervalTree::new(),
                iova_alignment: 1,
                disable_large_pages: false,
                hole_hint: alloc::HoleHint::default(),
            }),
            accesses: Mutex::new(BTreeMap::new()),
        }
    }

    pub(crate) fn domains_read(&self) -> RwLockReadGuard<'_, DomainsState> {
        self.domains.read().unwrap_or_else(|e| e.into_inner())
    }

    fn domains_write(&self) -> RwLockWriteGuard<'_, DomainsState> {
        self.domains.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn iova_read(&self) -> RwLockReadGuard<'_, IovaState> {
        self.iova.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn iova_write(&self) -> RwLockWriteGuard<'_, IovaState> {
        self.iova.write().unwrap_or_else(|e| e.into_inner())
    }

    fn accesses(&self) -> MutexGuard<'_, BTreeMap<u32, AccessEntry>> {
        self.accesses.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ---- map ----------------------------------------------------------------

    /// Maps user memory at an IOVA (`iopt_map_user_pages`); with `alloc` the IOVA
    /// is chosen and returned in `iova`.
    ///
    /// # Errors
    /// See `IOMMU_IOAS_MAP`: `EINVAL`, `EOVERFLOW`, `ENOSPC`, `EEXIST`, `EFAULT`,
    /// `ENOMEM`, driver errnos.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn map_user_pages(
        &self,
        mm: &Arc<dyn UserMemory>,
        mode: AccountMode,
        iova: &mut u64,
        uptr: u64,
        length: u64,
        prot: Prot,
        alloc: bool,
    ) -> Result<(), Errno> {
        let pages = Pages::new(mm, uptr, length, prot.contains(Prot::WRITE), mode)?;
        let elm = PagesElm {
            start_byte: uptr - pages.uptr,
            pages,
            length,
        };
        self.map_pages(&[elm], length, iova, prot, alloc)
    }

    /// Maps a list of page-store slices back to back (`iopt_map_pages`).
    ///
    /// # Errors
    /// As [`IoPagetable::map_user_pages`], plus `EPERM` for a writable mapping of a
    /// read-only store.
    pub(crate) fn map_pages(
        &self,
        list: &[PagesElm],
        length: u64,
        dst_iova: &mut u64,
        prot: Prot,
        alloc: bool,
    ) -> Result<(), Errno> {
        let (nodes, small) = self.alloc_area_pages(list, length, dst_iova, prot, alloc)?;
        let domains = self.domains_read();
        let spans = self.spans_of(&nodes);
        for (i, (elm, span)) in list.iter().zip(&spans).enumerate() {
            if let Err(err) = elm.pages.fill_domains(&domains.list, span, small) {
                for (elm, span) in list.iter().zip(&spans).take(i) {
                    elm.pages.unfill_domains(&domains.list, span);
                }
                drop(domains);
                self.remove_areas(&nodes);
                return Err(err);
            }
        }
        let mut st = self.iova_write();
        for (elm, &node) in list.iter().zip(&nodes) {
            if let Some(area) = st.areas.get_mut(node) {
                area.pages = Some(elm.pages.clone());
            }
        }
        Ok(())
    }

    /// Checks or allocates the IOVA and inserts placeholder areas
    /// (`iopt_alloc_area_pages`). Returns the nodes and the huge-page setting.
    fn alloc_area_pages(
        &self,
        list: &[PagesElm],
        length: u64,
        dst_iova: &mut u64,
        prot: Prot,
        alloc: bool,
    ) -> Result<(Vec<NodeId>, bool), Errno> {
        for _ in list {
            fault::fail_point!(fault::Site::AreaAlloc, Errno::NOMEM);
        }
        let mut st = self.iova_write();
        if length == 0 || length & (st.iova_alignment - 1) != 0 {
            return Err(Errno::INVAL);
        }
        if alloc {
            let first = &list[0];
            *dst_iova = alloc::alloc_iova(&st, first.pages.uptr + first.start_byte, length)?;
        } else {
            alloc::check_iova(&st, *dst_iova, length)?;
        }
        let mut nodes = Vec::with_capacity(list.len());
        let mut iova = *dst_iova;
        for elm in list {
            match self.insert_area(&mut st, &elm.pages, iova, elm.start_byte, elm.length, prot) {
                Ok(node) => nodes.push(node),
                Err(err) => {
                    for node in nodes {
                        st.areas.remove(node);
                    }
                    return Err(err);
                }
            }
            iova = iova.wrapping_add(elm.length);
        }
        Ok((nodes, st.disable_large_pages))
    }

    /// Inserts an area without a page store (`iopt_insert_area`).
    fn insert_area(
        &self,
        st: &mut IovaState,
        pages: &Arc<Pages>,
        iova: u64,
        start_byte: u64,
        length: u64,
        prot: Prot,
    ) -> Result<NodeId, Errno> {
        if prot.contains(Prot::WRITE) && !pages.writable {
            return Err(Errno::PERM);
        }
        let page_offset = start_byte % PAGE_SIZE;
        if page_offset & (st.iova_alignment - 1) != 0 {
            return Err(Errno::INVAL);
        }
        let last = iova.checked_add(length - 1).ok_or(Errno::OVERFLOW)?;
        let last_byte = start_byte.checked_add(length - 1).ok_or(Errno::OVERFLOW)?;
        let last_index = last_byte / PAGE_SIZE;
        if last_index >= pages.npages {
            debug_assert!(false, "area beyond its page store");
            return Err(Errno::OVERFLOW);
        }
        let area = Area {
            key: NEXT_AREA_KEY.fetch_add(1, Ordering::Relaxed),
            pages: None,
            page_offset,
            index: start_byte / PAGE_SIZE,
            last_index,
            prot,
            num_accesses: AtomicU32::new(0),
            prevent_access: AtomicBool::new(false),
        };
        Ok(st.areas.insert(iova, last, area))
    }

    fn spans_of(&self, nodes: &[NodeId]) -> Vec<AreaSpan> {
        let st = self.iova_read();
        nodes
            .iter()
            .filter_map(|&node| st.areas.get(node).map(|(s, l, area)| area.span(s, l)))
            .collect()
    }

    fn remove_areas(&self, nodes: &[NodeId]) {
        let mut st = self.iova_write();
        for &node in nodes {
            st.areas.remove(node);
        }
    }

    /// Collects the page-store slices under `[iova, iova + length)` for COPY
    /// (`iopt_get_pages`).
    ///
    /// # Errors
    /// `EINVAL` for zero length, `EOVERFLOW`, `ENOENT` unless fully and contiguously mapped.
    pub(crate) fn get_pages(&self, iova: u64, length: u64) -> Result<Vec<PagesElm>, Errno> {
        if length == 0 {
            return Err(Errno::INVAL);
        }
        let last = iova.checked_add(length - 1).ok_or(Errno::OVERFLOW)?;
        let st = self.iova_read();
        let (pieces, done) = contig_pieces(&st, iova, last);
        if !done {
            return Err(Errno::NOENT);
        }
        Ok(pieces
            .iter()
            .filter_map(|p| {
                let (_, _, area) = st.areas.get(p.node)?;
                Some(PagesElm {
                    pages: area.pages.clone()?,
                    start_byte: area.start_byte(p.area_iova, p.cur),
                    length: p.last - p.cur + 1,
                })
            })
            .collect())
    }

    // ---- unmap --------------------------------------------------------------

    /// Unmaps every area inside `[start, last]` (`iopt_unmap_iova_range`). Returns
    /// the bytes unmapped, which stay unmapped even when an error follows.
    pub(crate) fn unmap_range(&self, mut start: u64, last: u64) -> (u64, Result<(), Errno>) {
        let mut unmapped = 0u64;
        let mut tries = 0u32;
        'again: loop {
            let domains = self.domains_read();
            let mut st = self.iova_write();
            loop {
                let Some((node, first, area_last, area)) = st.areas.first_overlapping(start, last)
                else {
                    return (unmapped, Ok(()));
                };
                let Some(pages) = area.pages.clone() else {
                    return (unmapped, Err(Errno::BUSY));
                };
                if first < start || area_last > last {
                    return (unmapped, Err(Errno::NOENT));
                }
                if first != start {
                    tries = 0;
                }
                if area.num_accesses.load(Ordering::Acquire) != 0 {
                    start = first;
                    area.prevent_access.store(true, Ordering::Release);
                    drop(st);
                    drop(domains);
                    self.notify_unmap(first, area_last - first + 1);
                    tries += 1;
                    if tries > MAX_UNMAP_TRIES {
                        debug_assert!(false, "access does not respond to unmap");
                        return (unmapped, Err(Errno::DEADLOCK));
                    }
                    continue 'again;
                }
                let span = area.span(first, area_last);
                if let Some(area) = st.areas.get_mut(node) {
                    area.pages = None;
                }
                drop(st);
                pages.unfill_domains(&domains.list, &span);
                st = self.iova_write();
                st.areas.remove(node);
                unmapped += area_last - first + 1;
                if area_last >= last {
                    return (unmapped, Ok(()));
                }
                start = area_last + 1;
            }
        }
    }

    /// Unmaps everything (`iopt_unmap_all`); an empty table is success.
    pub(crate) fn unmap_all(&self) -> (u64, Result<(), Errno>) {
        self.unmap_range(0, u64::MAX)
    }

    /// Calls every attached access's unmap callback (`iommufd_access_notify_unmap`).
    fn notify_unmap(&self, iova: u64, length: u64) {
        let entries: Vec<AccessEntry> = self.accesses().values().cloned().collect();
        for entry in entries {
            if !entry.obj.lock_obj() {
                continue;
            }
            let obj = crate::object::ObjRef::from_locked(entry.obj.clone());
            if let Some(access) = obj.get::<Access>() {
                access.notify_unmap(iova, length);
            }
        }
    }

    // ---- allowed and reserved ranges ---------------------------------------

    /// Replaces the allowed ranges atomically (`iopt_set_allow_iova`).
    ///
    /// # Errors
    /// `EADDRINUSE` if a new range intersects a reserved range; nothing changes then.
    pub(crate) fn set_allow_iova(&self, allowed: IntervalTree<()>) -> Result<(), Errno> {
        let mut st = self.iova_write();
        for (_, s, l, _) in allowed.iter() {
            if st.reserved.first_overlapping(s, l).is_some() {
                return Err(Errno::ADDRINUSE);
            }
        }
        st.allowed = allowed;
        Ok(())
    }

    /// Reserves `[start, last]` (`iopt_reserve_iova`).
    ///
    /// # Errors
    /// `EADDRINUSE` if an area or an allowed range intersects it.
    pub(crate) fn reserve_iova(
        st: &mut IovaState,
        start: u64,
        last: u64,
        owner: ResvOwner,
    ) -> Result<(), Errno> {
        if st.areas.first_overlapping(start, last).is_some()
            || st.allowed.first_overlapping(start, last).is_some()
        {
            return Err(Errno::ADDRINUSE);
        }
        st.reserved.insert(start, last, owner);
        Ok(())
    }

    /// Drops every reserved range of `owner` (`iopt_remove_reserved_iova`).
    pub(crate) fn remove_reserved(&self, owner: ResvOwner) {
        self.iova_write().reserved.retain(|_, _, &o| o != owner);
    }

    /// The usable IOVA ranges (holes of the reserved set) and the alignment.
    pub(crate) fn iova_ranges(&self) -> (Vec<(u64, u64)>, u64) {
        let mut holes = Vec::new();
        let alignment = self.for_each_iova_range(|start, last| {
            holes.push((start, last));
            Ok(())
        });
        (holes, alignment.unwrap_or_default())
    }

    /// Calls `f` on each usable IOVA range in order, under the IOVA lock (as
    /// the kernel copies them out under `iova_rwsem`), without allocating;
    /// returns the alignment, or the first error of `f`.
    ///
    /// # Errors
    /// The first error `f` returns.
    pub(crate) fn for_each_iova_range(
        &self,
        mut f: impl FnMut(u64, u64) -> Result<(), Errno>,
    ) -> Result<u64, Errno> {
        let st = self.iova_read();
        for span in st.reserved.spans(0, u64::MAX) {
            if let Span::Hole { start, last } = span {
                f(start, last)?;
            }
        }
        Ok(st.iova_alignment)
    }

    // ---- domains ------------------------------------------------------------

    /// Adds a domain and maps every area into it (`iopt_table_add_domain`). On
    /// failure the domain and the table are unchanged.
    ///
    /// # Errors
    /// `EINVAL` if the domain's smallest page exceeds `PAGE_SIZE`; `EADDRINUSE` for
    /// misaligned areas or areas/allowed ranges outside the aperture; fill errors.
    pub(crate) fn add_domain(&self, domain: &Arc<dyn Domain>) -> Result<(), Errno> {
        let mut domains = self.domains_write();
        let mut st = self.iova_write();
        if domains.list.iter().any(|d| Arc::ptr_eq(d, domain)) {
            debug_assert!(false, "domain added twice");
            return Err(Errno::EXIST);
        }
        let new_alignment = iommu::map::min_pgsize(domain.as_ref()).max(st.iova_alignment);
        if new_alignment > PAGE_SIZE {
            return Err(Errno::INVAL);
        }
        if new_alignment != st.iova_alignment {
            check_iova_alignment(&st, new_alignment)?;
        }
        let owner = domain_owner(domain);
        let geometry = domain.geometry();
        let mut res = Ok(());
        if geometry.aperture_start != 0 {
            res = Self::reserve_iova(&mut st, 0, geometry.aperture_start - 1, owner);
        }
        if res.is_ok() && geometry.aperture_end != u64::MAX {
            res = Self::reserve_iova(&mut st, geometry.aperture_end + 1, u64::MAX, owner);
        }
        if res.is_ok() {
            res = fill_domain(&st, domain.as_ref(), domains.list.is_empty());
        }
        if let Err(err) = res {
            st.reserved.retain(|_, _, &o| o != owner);
            return Err(err);
        }
        st.iova_alignment = new_alignment;
        domains.list.push(domain.clone());
        Ok(())
    }

    /// Removes a domain, unmapping everything from it (`iopt_table_remove_domain`).
    pub(crate) fn remove_domain(&self, domain: &Arc<dyn Domain>) {
        let mut domains = self.domains_write();
        let mut st = self.iova_write();
        let Some(index) = domains.list.iter().position(|d| Arc::ptr_eq(d, domain)) else {
            debug_assert!(false, "removing a domain that is not in the table");
            return;
        };
        domains.list.swap_remove(index);
        let last = domains.list.is_empty();
        for (_, s, l, area) in st.areas.iter() {
            if let Some(pages) = &area.pages {
                pages.unfill_domain(domain.as_ref(), &area.span(s, l), last);
            }
        }
        let owner = domain_owner(domain);
        st.reserved.retain(|_, _, &o| o != owner);
        let res = self.calculate_iova_alignment(&domains, &mut st);
        debug_assert!(res.is_ok(), "alignment cannot rise when a domain goes");
    }

    /// The domains currently mirroring the table.
    pub(crate) fn domains(&self) -> Vec<Arc<dyn Domain>> {
        self.domains_read().list.clone()
    }

    /// Recomputes `iova_alignment` (`iopt_calculate_iova_alignment`).
    fn calculate_iova_alignment(
        &self,
        domains: &DomainsState,
        st: &mut IovaState,
    ) -> Result<(), Errno> {
        let mut new = if st.disable_large_pages { PAGE_SIZE } else { 1 };
        for domain in &domains.list {
            new = new.max(iommu::map::min_pgsize(domain.as_ref()));
        }
        for entry in self.accesses().values() {
            new = new.max(entry.iova_alignment);
        }
        if new > st.iova_alignment {
            check_iova_alignment(st, new)?;
        }
        st.iova_alignment = new;
        Ok(())
    }

    // ---- huge pages ---------------------------------------------------------

    /// Whether large IO pages may be used (`!disable_large_pages`).
    pub(crate) fn large_pages_enabled(&self) -> bool {
        !self.iova_read().disable_large_pages
    }

    /// `IOMMU_OPTION_HUGE_PAGES` = 0 (`iopt_disable_large_pages`).
    ///
    /// # Errors
    /// `EINVAL` with both domains and areas present; `EADDRINUSE` if raising the
    /// alignment to `PAGE_SIZE` conflicts with an area.
    pub(crate) fn disable_large_pages(&self) -> Result<(), Errno> {
        let domains = self.domains_write();
        let mut st = self.iova_write();
        if st.disable_large_pages {
            return Ok(());
        }
        if !domains.list.is_empty() && !st.areas.is_empty() {
            return Err(Errno::INVAL);
        }
        st.disable_large_pages = true;
        let res = self.calculate_iova_alignment(&domains, &mut st);
        if res.is_err() {
            st.disable_large_pages = false;
        }
        res
    }

    /// `IOMMU_OPTION_HUGE_PAGES` = 1 (`iopt_enable_large_pages`).
    pub(crate) fn enable_large_pages(&self) {
        let domains = self.domains_write();
        let mut st = self.iova_write();
        st.disable_large_pages = false;
        let res = self.calculate_iova_alignment(&domains, &mut st);
        debug_assert!(
            res.is_ok(),
            "alignment cannot rise when huge pages are enabled"
        );
    }

    /// Splits the areas containing each IOVA so that it becomes an area's last byte
    /// (`iopt_cut_iova`, VFIO type1 unmap).
    ///
    /// # Errors
    /// `EBUSY` for a busy area; `EINVAL` for misalignment, accesses, or an area
    /// mapped into domains with large pages enabled.
    pub(crate) fn cut_iova(&self, iovas: &[u64]) -> Result<(), Errno> {
        let mut st = self.iova_write();
        for &iova in iovas {
            let Some((node, ..)) = st.areas.first_overlapping(iova, iova) else {
                continue;
            };
            self.split_area(&mut st, node, iova)?;
        }
        Ok(())
    }

    /// `iopt_area_split`.
    fn split_area(&self, st: &mut IovaState, node: NodeId, iova: u64) -> Result<(), Errno> {
        let Some((start, last, area)) = st.areas.get(node) else {
            return Ok(());
        };
        if iova == start || iova == last {
            return Ok(());
        }
        let Some(pages) = area.pages.clone() else {
            return Err(Errno::BUSY);
        };
        if area.prevent_access.load(Ordering::Acquire) {
            return Err(Errno::BUSY);
        }
        let align = st.iova_alignment;
        let new_start = iova + 1;
        let rhs_byte = area.start_byte(start, new_start);
        if new_start & (align - 1) != 0 || rhs_byte & (align - 1) != 0 {
            return Err(Errno::INVAL);
        }
        for _lhs_rhs in 0..2 {
            fault::fail_point!(fault::Site::AreaAlloc, Errno::NOMEM);
        }
        if area.num_accesses.load(Ordering::Acquire) != 0 {
            return Err(Errno::INVAL);
        }
        let filled = pages.is_filled(area.key);
        if filled && !st.disable_large_pages {
            return Err(Errno::INVAL);
        }
        let (old_key, prot, lhs_byte) = (area.key, area.prot, area.start_byte(start, start));
        let Some((_, _, old)) = st.areas.remove(node) else {
            return Ok(());
        };
        let lhs = self.insert_area(st, &pages, start, lhs_byte, new_start - start, prot);
        let rhs = lhs.and_then(|lhs| {
            self.insert_area(st, &pages, new_start, rhs_byte, last - new_start + 1, prot)
                .inspect_err(|_| {
                    st.areas.remove(lhs);
                })
                .map(|rhs| (lhs, rhs))
        });
        let (lhs, rhs) = match rhs {
            Ok(pair) => pair,
            Err(err) => {
                debug_assert!(false, "re-inserting split areas failed");
                st.areas.insert(start, last, old);
                return Err(err);
            }
        };
        let mut pieces = Vec::with_capacity(2);
        for node in [lhs, rhs] {
            if let Some(area) = st.areas.get_mut(node) {
                area.pages = Some(pages.clone());
                pieces.push((area.key, area.index, area.last_index));
            }
        }
        if filled {
            pages.split_filled(old_key, &pieces);
        }
        Ok(())
    }

    // ---- accesses -----------------------------------------------------------

    /// Attaches an access (`iopt_add_access`); returns its id in the table.
    ///
    /// # Errors
    /// `EBUSY` when 65536 accesses exist; `EADDRINUSE` if its alignment conflicts.
    pub(crate) fn add_access(&self, obj: &Arc<Object>, iova_alignment: u64) -> Result<u32, Errno> {
        let domains = self.domains_write();
        let mut st = self.iova_write();
        let id = {
            let mut accesses = self.accesses();
            let id = (0..=u32::from(u16::MAX))
                .find(|id| !accesses.contains_key(id))
                .ok_or(Errno::BUSY)?;
            accesses.insert(
                id,
                AccessEntry {
                    obj: obj.clone(),
                    iova_alignment,
                },
            );
            id
        };
        if let Err(err) = self.calculate_iova_alignment(&domains, &mut st) {
            self.accesses().remove(&id);
            return Err(err);
        }
        Ok(id)
    }

    /// Detaches an access (`iopt_remove_access`).
    pub(crate) fn remove_access(&self, id: u32) {
        let domains = self.domains_write();
        let mut st = self.iova_write();
        self.accesses().remove(&id);
        let res = self.calculate_iova_alignment(&domains, &mut st);
        debug_assert!(res.is_ok(), "alignment cannot rise when an access goes");
    }

    /// Pins the pages under `[iova, last]` for an access and returns their physical
    /// addresses (`iommufd_access_pin_pages`, table part).
    ///
    /// # Errors
    /// `EINVAL` (not page aligned, or unmapping in progress), `EPERM`, `ENOENT`
    /// (not contiguously mapped), `EFAULT`, `ENOMEM`.
    pub(crate) fn access_pin(&self, iova: u64, last: u64, write: bool) -> Result<Vec<u64>, Errno> {
        let st = self.iova_read();
        let (pieces, done) = contig_pieces(&st, iova, last);
        let mut out = Vec::new();
        let mut res = Ok(());
        let mut added = 0;
        for piece in &pieces {
            let Some((_, _, area)) = st.areas.get(piece.node) else {
                break;
            };
            let Some(pages) = &area.pages else {
                break;
            };
            let final_piece = piece.area_last >= last;
            if area.prevent_access.load(Ordering::Acquire)
                || !contig_is_aligned(area, piece, final_piece)
            {
                res = Err(Errno::INVAL);
                break;
            }
            if !area.allows(write) {
                res = Err(Errno::PERM);
                break;
            }
            let (s, l) = piece_indexes(area, piece);
            match pages.add_access(s, l, write) {
                Ok(pas) => {
                    area.num_accesses.fetch_add(1, Ordering::AcqRel);
                    out.extend(pas);
                    added += 1;
                }
                Err(err) => {
                    res = Err(err);
                    break;
                }
            }
        }
        if res.is_ok() && !done {
            res = Err(Errno::NOENT);
        }
        if let Err(err) = res {
            for piece in &pieces[..added] {
                unpin_piece(&st, piece);
            }
            return Err(err);
        }
        Ok(out)
    }

    /// Undoes [`IoPagetable::access_pin`] of exactly the same range.
    pub(crate) fn access_unpin(&self, iova: u64, last: u64) {
        let st = self.iova_read();
        let (pieces, done) = contig_pieces(&st, iova, last);
        debug_assert!(done, "unpinning a range that is not mapped");
        for piece in &pieces {
            unpin_piece(&st, piece);
        }
    }

    /// Reads or writes `[iova, iova + buf.len())` for an access (`iommufd_access_rw`).
    ///
    /// # Errors
    /// `EINVAL` while unmapping, `EPERM`, `ENOENT` (not contiguously mapped), `EFAULT`.
    pub(crate) fn access_rw(
        &self,
        current: &Arc<dyn UserMemory>,
        iova: u64,
        buf: &mut [u8],
        write: bool,
        slow: bool,
    ) -> Result<(), Errno> {
        let last = iova + (buf.len() as u64 - 1);
        let st = self.iova_read();
        let (pieces, done) = contig_pieces(&st, iova, last);
        let mut off = 0usize;
        for piece in &pieces {
            let Some((_, _, area)) = st.areas.get(piece.node) else {
                break;
            };
            let Some(pages) = &area.pages else {
                break;
            };
            if area.prevent_access.load(Ordering::Acquire) {
                return Err(Errno::INVAL);
            }
            if !area.allows(write) {
                return Err(Errno::PERM);
            }
            let bytes = (piece.last - piece.cur + 1) as usize;
            let start_byte = area.start_byte(piece.area_iova, piece.cur);
            pages.rw(current, start_byte, &mut buf[off..off + bytes], write, slow)?;
            off += bytes;
        }
        if !done {
            return Err(Errno::NOENT);
        }
        Ok(())
    }

    /// Turns dirty tracking of a domain of this table on or off; enabling first
    /// clears stale dirty state of every area (`iopt_set_dirty_tracking`).
    ///
    /// # Errors
    /// `EOPNOTSUPP` without dirty ops; the driver's errno.
    pub(crate) fn set_dirty_tracking(
        &self,
        domain: &dyn Domain,
        enable: bool,
    ) -> Result<(), Errno> {
        let ops = domain.dirty_ops().ok_or(Errno::OPNOTSUPP)?;
        let st = self.iova_read();
        if enable {
            let mut res = Ok(());
            for (_, s, l, area) in st.areas.iter() {
                if area.pages.is_none() {
                    continue;
                }
                res = ops.read_and_clear_dirty(s, l - s + 1, 0, None);
                if res.is_err() {
                    break;
                }
            }
            domain.iotlb_sync();
            res?;
        }
        ops.set_dirty_tracking(enable)
    }

    /// Reports the dirty pages of `domain` in the bitmap's range into the user
    /// bitmap (`iopt_read_and_clear_dirty_data`). Walk errors are not reported.
    ///
    /// # Errors
    /// Range errors (`EINVAL`, `EOVERFLOW`); `EOPNOTSUPP` without dirty ops.
    pub(crate) fn read_and_clear_dirty(
        &self,
        domain: &dyn Domain,
        mm: &dyn UserMemory,
        bitmap: &crate::iova_bitmap::IovaBitmap,
        no_clear: bool,
    ) -> Result<(), Errno> {
        let alignment = self.iova_read().iova_alignment;
        bitmap.check_range(alignment)?;
        let ops = domain.dirty_ops().ok_or(Errno::OPNOTSUPP)?;
        fault::fail_point!(fault::Site::Kmalloc, Errno::NOMEM);
        let flags = if no_clear { iommu::DIRTY_NO_CLEAR } else { 0 };
        let st = self.iova_read();
        let last = bitmap.iova + (bitmap.length - 1);
        let (pieces, _done) = contig_pieces(&st, bitmap.iova, last);
        let mut writer = bitmap.writer(mm);
        for piece in &pieces {
            let len = piece.last - piece.cur + 1;
            if ops
                .read_and_clear_dirty(piece.cur, len, flags, Some(&mut writer))
                .is_err()
            {
                break;
            }
        }
        writer.finish();
        if !no_clear {
            domain.iotlb_sync();
        }
        Ok(())
    }

    /// The IOVA of the `nth` area in ascending order, 0 if there is none (syzkaller
    /// IOVA conversion in the selftest).
    pub(crate) fn nth_area_iova(&self, nth: u32) -> Option<u64> {
        self.iova_read()
            .areas
            .iter()
            .nth(nth as usize)
            .map(|(_, s, _, _)| s)
    }

    /// Tears the table down when its IOAS is destroyed (`iopt_destroy_table`).
    pub(crate) fn destroy(&self) {
        let (_, res) = self.unmap_all();
        debug_assert!(res.is_ok(), "IOAS destroyed with busy areas");
        let mut st = self.iova_write();
        st.reserved.retain(|_, _, &o| o != ResvOwner::Test);
        st.allowed.clear();
        debug_assert!(st.reserved.is_empty(), "IOAS destroyed with reservations");
        debug_assert!(st.areas.is_empty(), "IOAS destroyed with areas");
    }
}

/// Maps every area into a newly added domain (`iopt_fill_domain`); on failure
/// unmaps what was done.
fn fill_domain(st: &IovaState, domain: &dyn Domain, first: bool) -> Result<(), Errno> {
    let small = st.disable_large_pages;
    let mut done: Vec<(&Arc<Pages>, AreaSpan)> = Vec::new();
    for (_, s, l, area) in st.areas.iter() {
        let Some(pages) = &area.pages else {
            continue;
        };
        let span = area.span(s, l);
        if let Err(err) = pages.fill_domain(domain, &span, small, first) {
            for (pages, span) in done {
                pages.unfill_domain(domain, &span, first);
            }
            return Err(err);
        }
        done.push((pages, span));
    }
    Ok(())
}

/// Every area conforms to a raised alignment (`iopt_check_iova_alignment`).
fn check_iova_alignment(st: &IovaState, new_alignment: u64) -> Result<(), Errno> {
    let mask = new_alignment - 1;
    for (_, s, l, area) in st.areas.iter() {
        if s & mask != 0 || (l - s + 1) & mask != 0 || area.page_offset & mask != 0 {
            return Err(Errno::ADDRINUSE);
        }
    }
    Ok(())
}

/// Walks areas that contiguously cover `[iova, last]` from `iova`; the flag says
/// whether the walk reached `last` (`iopt_area_contig_done`).
fn contig_pieces(st: &IovaState, iova: u64, last: u64) -> (Vec<Piece>, bool) {
    let mut pieces = Vec::new();
    let mut cur = iova;
    loop {
        let Some((node, area_iova, area_last, area)) = st.areas.first_overlapping(cur, cur) else {
            return (pieces, false);
        };
        if area.pages.is_none() {
            return (pieces, false);
        }
        let piece_last = area_last.min(last);
        pieces.push(Piece {
            node,
            area_iova,
            area_last,
            cur,
            last: piece_last,
        });
        if last <= area_last {
            return (pieces, true);
        }
        cur = area_last + 1;
    }
}

fn piece_indexes(area: &Area, piece: &Piece) -> (u64, u64) {
    (
        area.start_byte(piece.area_iova, piece.cur) / PAGE_SIZE,
        area.start_byte(piece.area_iova, piece.last) / PAGE_SIZE,
    )
}

/// `iopt_area_contig_is_aligned`: the piece starts on a page of user memory, and a
/// piece that is not the final one ends its area on a page end.
fn contig_is_aligned(area: &Area, piece: &Piece, final_piece: bool) -> bool {
    if !area
        .start_byte(piece.area_iova, piece.cur)
        .is_multiple_of(PAGE_SIZE)
    {
        return false;
    }
    final_piece || area.start_byte(piece.area_iova, piece.area_last) % PAGE_SIZE == PAGE_SIZE - 1
}

fn unpin_piece(st: &IovaState, piece: &Piece) {
    let Some((_, _, area)) = st.areas.get(piece.node) else {
        return;
    };
    let Some(pages) = &area.pages else {
        return;
    };
    let (s, l) = piece_indexes(area, piece);
    pages.remove_access(s, l);
    area.num_accesses.fetch_sub(1, Ordering::AcqRel);
}
