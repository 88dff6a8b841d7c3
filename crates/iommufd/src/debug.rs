//! Introspection for leak checks and invariant checks: what a fault-injection
//! sweep needs to prove that a failed or finished operation left nothing behind.
//!
//! * [`live_objects`] and [`live_pages`]: objects and page stores alive in the
//!   process (all contexts); zero once every context is closed.
//! * [`Ctx::debug_table`]: live objects and reserved IDs of a context.
//! * [`Ctx::check_invariants`]: the cross-object invariants of a quiescent context
//!   (no ioctl in flight): object table and ID allocator, `users` counts against
//!   the references that exist, devices and groups against their HWPTs, every
//!   IOAS's areas, page stores, pins, charges, reserved ranges, alignment and
//!   domains, and every domain's mappings against the areas.
//! * [`Ctx::debug_snapshot`]: a normalized description of a context's observable
//!   state, to show that a failed ioctl changed nothing.
//!
//! Test-oriented; not part of the crate's interface.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use iommu::Domain;

use crate::access::Access;
use crate::ctx::Ctx;
use crate::device::Idev;
use crate::hwpt::{self, HwptPaging};
use crate::ioas::Ioas;
use crate::iopt::debug::IoptView;
use crate::iopt::{domain_owner, ResvOwner};
use crate::mm::{AccountMode, PAGE_SIZE};
use crate::object::{ObjKind, Object};
use crate::pages::Pages;

pub(crate) static LIVE_OBJECTS: AtomicUsize = AtomicUsize::new(0);
pub(crate) static LIVE_PAGES: AtomicUsize = AtomicUsize::new(0);

/// Objects alive in this process, in every context (their memory, not their IDs).
pub fn live_objects() -> usize {
    LIVE_OBJECTS.load(Ordering::Acquire)
}

/// Page stores alive in this process.
pub fn live_pages() -> usize {
    LIVE_PAGES.load(Ordering::Acquire)
}

/// The state of a context's object table and ID allocator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Slots ever used (the highest ID + 1).
    pub slots: usize,
    /// IDs in use (live or reserved).
    pub used: usize,
    /// Finalized objects.
    pub live: usize,
    /// IDs reserved by objects under construction.
    pub reserved: usize,
    /// IDs free for reuse below `slots`.
    pub free_ids: usize,
    /// The ID the next object gets (the lowest free one).
    pub next_id: u32,
}

/// What a checked context holds, to compare with process-wide counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Live objects.
    pub objects: usize,
    /// Page stores referenced by areas.
    pub pages: usize,
    /// Pinned pages, summed over page stores.
    pub pinned: u64,
    /// Pages charged to the user's `locked_vm`.
    pub accounted_user: u64,
    /// Pages charged to the mm's `locked_vm`.
    pub accounted_mm: u64,
    /// Distinct domains mirroring an IOAS.
    pub domains: usize,
    /// Nested HWPTs (each owns a domain of its own).
    pub nested: usize,
    /// Selftest objects (each owns a mock device).
    pub selftest: usize,
}

/// Tells the checker what a domain's page table holds: `Ok(Some(bytes))` mapped
/// bytes, `Ok(None)` if unknown (foreign driver), `Err` if the table itself is
/// inconsistent.
pub type DomainProbe<'a> = &'a dyn Fn(&dyn Domain) -> Result<Option<u64>, String>;

fn key(obj: &Arc<Object>) -> *const Object {
    Arc::as_ptr(obj)
}

fn domain_key(d: &Arc<dyn Domain>) -> *const () {
    Arc::as_ptr(d) as *const ()
}

/// A page store, the areas of it mapped into domains (key, first and last
/// index), and the access pins its areas count.
type PagesUse = (Arc<Pages>, Vec<(u64, u64, u64)>, u64);

/// Most translation lookups per area and domain; larger areas are sampled.
const MAX_LOOKUPS: u64 = 1024;

impl Ctx {
    /// Checks the invariants of a quiescent context (see the module doc) and returns
    /// what it holds. `probe` reports a domain's mapped bytes.
    ///
    /// # Errors
    /// A description of the first violation.
    pub fn check_invariants(&self, probe: DomainProbe<'_>) -> Result<Usage, String> {
        self.debug_check_table()?;
        let stats = self.debug_table();
        if stats.reserved != 0 {
            return Err(format!(
                "{} IDs reserved with no ioctl in flight",
                stats.reserved
            ));
        }
        let (objs, _) = self.debug_objects();
        let live: HashMap<*const Object, &Arc<Object>> = objs.iter().map(|o| (key(o), o)).collect();
        let mut refs: HashMap<*const Object, u32> = HashMap::new();
        let mut add_ref = |to: &Arc<Object>, from: &Arc<Object>| -> Result<(), String> {
            if !live.contains_key(&key(to)) {
                return Err(format!(
                    "object {} references dead object {}",
                    from.id(),
                    to.id()
                ));
            }
            *refs.entry(key(to)).or_default() += 1;
            Ok(())
        };
        for obj in &objs {
            let (_, short) = obj.debug_counts();
            if short != 1 {
                return Err(format!(
                    "object {}: shortterm_users {short} at rest",
                    obj.id()
                ));
            }
            if let Some(f) = hwpt::fault_of(obj) {
                add_ref(f, obj)?;
            }
            match &obj.kind {
                ObjKind::HwptPaging(h) => add_ref(h.ioas_obj(), obj)?,
                ObjKind::HwptNested(h) => add_ref(h.parent(), obj)?,
                ObjKind::Device(_) => add_ref(obj, obj)?,
                ObjKind::Access(a) => {
                    add_ref(obj, obj)?;
                    let (ioas, unpin) = a.debug_ioas();
                    if ioas.as_ref().map(key) != unpin.as_ref().map(key) {
                        return Err(format!("access {}: switching IOAS at rest", obj.id()));
                    }
                    if let Some(ioas) = &ioas {
                        add_ref(ioas, obj)?;
                    }
                }
                _ => {}
            }
        }
        // Devices and groups.
        let mut attached_devs: HashMap<*const Object, Vec<u64>> = HashMap::new();
        let mut device_hwpt: HashMap<*const Object, usize> = HashMap::new();
        for g in self.debug_igroups() {
            let inner = g.lock();
            let gid = g.group.id();
            match (&inner.hwpt, inner.devices.is_empty()) {
                (None, true) => {
                    if g.group.handle(iommu::NO_PASID).is_some() {
                        return Err(format!("group {gid}: a handle without a HWPT"));
                    }
                }
                (Some(h), false) => {
                    let dom = hwpt::domain_of(h);
                    let attached = g.group.domain();
                    if attached.as_ref().map(domain_key) != Some(domain_key(dom)) {
                        return Err(format!(
                            "group {gid}: attached domain is not HWPT {}",
                            h.id()
                        ));
                    }
                    let handle = g.group.handle(iommu::NO_PASID);
                    if handle.as_ref().map(|hd| domain_key(&hd.domain)) != Some(domain_key(dom)) {
                        return Err(format!("group {gid}: handle is not HWPT {}", h.id()));
                    }
                    for d in &inner.devices {
                        add_ref(h, d)?;
                        add_ref(d, d)?;
                        let Some(idev) = d.get::<Idev>() else {
                            return Err(format!("group {gid}: object {} is no device", d.id()));
                        };
                        if !Arc::ptr_eq(&idev.igroup, &g) {
                            return Err(format!("device {} listed in a foreign group", d.id()));
                        }
                        *device_hwpt.entry(key(h)).or_default() += 1;
                        if let Some(p) = hwpt::find_paging(h) {
                            attached_devs
                                .entry(key(p.ioas_obj()))
                                .or_default()
                                .push(idev.device().id());
                        }
                    }
                }
                _ => return Err(format!("group {gid}: HWPT and device list disagree")),
            }
        }
        for obj in &objs {
            let (users, _) = obj.debug_counts();
            let expected = 1 + refs.get(&key(obj)).copied().unwrap_or(0);
            let ok = match &obj.kind {
                // Each open fault fd holds one more.
                ObjKind::Fault(_) => users >= expected,
                _ => users == expected,
            };
            if !ok {
                return Err(format!(
                    "object {} ({:?}): users {users}, {expected} references",
                    obj.id(),
                    obj.obj_type()
                ));
            }
            if let Some(h) = obj.get::<HwptPaging>() {
                if h.auto_domain.load(Ordering::Acquire) && !device_hwpt.contains_key(&key(obj)) {
                    return Err(format!("automatic HWPT {} has no device", obj.id()));
                }
            }
        }
        // IOASes, their page stores and domains.
        let mut usage = Usage {
            objects: objs.len(),
            ..Usage::default()
        };
        let mut pages_areas: HashMap<*const Pages, PagesUse> = HashMap::new();
        let mut domains: HashSet<*const ()> = HashSet::new();
        for obj in &objs {
            let Some(ioas) = obj.get::<Ioas>() else {
                continue;
            };
            let view = ioas.iopt.debug_view();
            let devs = attached_devs.remove(&key(obj)).unwrap_or_default();
            check_ioas(obj, ioas, &view, &objs, &devs, probe)
                .map_err(|e| format!("IOAS {}: {e}", obj.id()))?;
            for d in &view.domains {
                domains.insert(domain_key(d));
            }
            for a in &view.areas {
                let Some(pages) = &a.pages else {
                    continue;
                };
                let e = pages_areas
                    .entry(Arc::as_ptr(pages))
                    .or_insert_with(|| (pages.clone(), Vec::new(), 0));
                if !view.domains.is_empty() {
                    e.1.push((a.key, a.index, a.last_index));
                }
                e.2 += u64::from(a.num_accesses);
            }
        }
        if !attached_devs.is_empty() {
            return Err("a device is attached to a HWPT of a dead IOAS".into());
        }
        for (pages, mut filled, num_accesses) in pages_areas.into_values() {
            let pd = pages.debug_check()?;
            filled.sort_unstable();
            if pd.domain_areas != filled {
                return Err(format!(
                    "page store at {:#x}: mapped areas {:?}, expected {filled:?}",
                    pages.uptr, pd.domain_areas
                ));
            }
            if pd.access_users != num_accesses {
                return Err(format!(
                    "page store at {:#x}: {} access users, areas count {num_accesses}",
                    pages.uptr, pd.access_users
                ));
            }
            usage.pages += 1;
            usage.pinned += pd.npinned;
            match pd.account_mode {
                AccountMode::None => {}
                AccountMode::User => usage.accounted_user += pd.accounted,
                AccountMode::Mm => usage.accounted_mm += pd.accounted,
            }
        }
        usage.domains = domains.len();
        for obj in &objs {
            match obj.obj_type() {
                crate::ObjType::HwptNested => usage.nested += 1,
                crate::ObjType::Selftest => usage.selftest += 1,
                _ => {}
            }
        }
        Ok(usage)
    }

    /// A normalized description of the context's observable state: objects and
    /// their `users`, the VFIO IOAS, every IOAS's mappings (merged where
    /// contiguous, so splitting an area changes nothing), allowed and reserved
    /// ranges, alignment and attachments, and every group's HWPT and devices.
    pub fn debug_snapshot(&self) -> String {
        let mut out = String::new();
        let (objs, vfio) = self.debug_objects();
        let stats = self.debug_table();
        // Which IDs are in use and which comes next is observable; how far the
        // allocator's array once grew is not.
        let _ = writeln!(
            out,
            "objects {} reserved {} next id {} vfio {:?}",
            stats.live,
            stats.reserved,
            stats.next_id,
            vfio.map(|o| o.id())
        );
        for obj in &objs {
            let (users, short) = obj.debug_counts();
            let _ = write!(
                out,
                "obj {} {:?} users {users}/{short}",
                obj.id(),
                obj.obj_type()
            );
            if let Some(f) = hwpt::fault_of(obj) {
                let _ = write!(out, " fault {}", f.id());
            }
            if let Some(a) = obj.get::<Access>() {
                let _ = write!(out, " ioas {:?}", a.debug_ioas().0.map(|o| o.id()));
            }
            out.push('\n');
            let Some(ioas) = obj.get::<Ioas>() else {
                continue;
            };
            let v = ioas.iopt.debug_view();
            let hwpts: Vec<u32> = ioas
                .hwpt_list
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|h| h.id())
                .collect();
            let accesses: Vec<u32> = v.accesses.iter().map(|(_, o, _)| o.id()).collect();
            let reserved: Vec<(u64, u64, &str)> = v
                .reserved
                .iter()
                .map(|&(s, l, o)| {
                    let owner = match o {
                        ResvOwner::Test => "test",
                        ResvOwner::Domain(_) => "domain",
                        ResvOwner::Device(_) => "device",
                    };
                    (s, l, owner)
                })
                .collect();
            let _ = writeln!(
                out,
                "  align {:#x} nolarge {} allowed {:x?} reserved {:x?} hwpts {hwpts:?} accesses {accesses:?} domains {}",
                v.iova_alignment,
                v.disable_large_pages,
                v.allowed,
                reserved,
                v.domains.len()
            );
            let mut maps: Vec<(u64, u64, u64, u32)> = Vec::new();
            for a in &v.areas {
                let uva = a
                    .pages
                    .as_ref()
                    .map_or(0, |p| p.uptr + a.index * PAGE_SIZE + a.page_offset);
                let prot = a.prot.bits();
                match maps.last_mut() {
                    Some(m) if m.1 + 1 == a.iova && m.2 + (m.1 - m.0) + 1 == uva && m.3 == prot => {
                        m.1 = a.last;
                    }
                    _ => maps.push((a.iova, a.last, uva, prot)),
                }
            }
            for (s, l, uva, prot) in maps {
                let _ = writeln!(out, "  map {s:#x}..={l:#x} -> {uva:#x} prot {prot:#x}");
            }
        }
        for g in self.debug_igroups() {
            let inner = g.lock();
            let devs: Vec<u32> = inner.devices.iter().map(|d| d.id()).collect();
            let _ = writeln!(
                out,
                "group hwpt {:?} devices {devs:?}",
                inner.hwpt.as_ref().map(|h| h.id())
            );
        }
        out
    }
}

/// The checks of one IOAS (see [`Ctx::check_invariants`]).
fn check_ioas(
    obj: &Arc<Object>,
    ioas: &Ioas,
    v: &IoptView,
    objs: &[Arc<Object>],
    attached_devs: &[u64],
    probe: DomainProbe<'_>,
) -> Result<(), String> {
    let live: HashSet<*const Object> = objs.iter().map(key).collect();
    // HWPTs on the IOAS and its domains.
    let list: Vec<Arc<Object>> = ioas
        .hwpt_list
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut list_domains: Vec<*const ()> = Vec::new();
    for h in &list {
        let Some(p) = h.get::<HwptPaging>() else {
            return Err(format!("HWPT list holds non-paging object {}", h.id()));
        };
        if !live.contains(&key(h)) {
            return Err(format!("HWPT list holds dead HWPT {}", h.id()));
        }
        if !Arc::ptr_eq(p.ioas_obj(), obj) {
            return Err(format!("HWPT {} listed on a foreign IOAS", h.id()));
        }
        list_domains.push(domain_key(&p.domain));
    }
    for o in objs {
        if let Some(p) = o.get::<HwptPaging>() {
            if Arc::ptr_eq(p.ioas_obj(), obj) && !list.iter().any(|h| Arc::ptr_eq(h, o)) {
                return Err(format!("HWPT {} missing from the HWPT list", o.id()));
            }
        }
    }
    let mut domains: Vec<*const ()> = v.domains.iter().map(domain_key).collect();
    domains.sort_unstable();
    list_domains.sort_unstable();
    if domains != list_domains {
        return Err(format!(
            "{} domains in the table, {} HWPTs listed",
            domains.len(),
            list_domains.len()
        ));
    }
    // Accesses.
    let mut access_align = 1;
    for (_, a_obj, align) in &v.accesses {
        let Some(a) = a_obj.get::<Access>() else {
            return Err(format!("access list holds non-access {}", a_obj.id()));
        };
        if !live.contains(&key(a_obj)) {
            return Err(format!("access list holds dead access {}", a_obj.id()));
        }
        if !a.debug_ioas().0.is_some_and(|i| Arc::ptr_eq(&i, obj)) {
            return Err(format!(
                "access {} listed but attached elsewhere",
                a_obj.id()
            ));
        }
        access_align = access_align.max(*align);
    }
    for o in objs {
        if let Some(a) = o.get::<Access>() {
            let here = a.debug_ioas().0.is_some_and(|i| Arc::ptr_eq(&i, obj));
            if here && !v.accesses.iter().any(|(_, x, _)| Arc::ptr_eq(x, o)) {
                return Err(format!("access {} attached but not listed", o.id()));
            }
        }
    }
    // Alignment.
    let mut align = if v.disable_large_pages { PAGE_SIZE } else { 1 };
    for d in &v.domains {
        align = align.max(iommu::map::min_pgsize(d.as_ref()));
    }
    align = align.max(access_align);
    if align != v.iova_alignment {
        return Err(format!(
            "alignment {:#x}, expected {align:#x}",
            v.iova_alignment
        ));
    }
    // Reserved and allowed ranges.
    let owners: Vec<ResvOwner> = v.domains.iter().map(domain_owner).collect();
    for &(s, l, o) in &v.reserved {
        let ok = match o {
            ResvOwner::Test => true,
            ResvOwner::Domain(_) => owners.contains(&o),
            ResvOwner::Device(id) => attached_devs.contains(&id),
        };
        if !ok {
            return Err(format!(
                "reservation [{s:#x}, {l:#x}] of {o:?} outlived its owner"
            ));
        }
        if v.allowed.iter().any(|&(a, b)| a <= l && s <= b) {
            return Err(format!(
                "reservation [{s:#x}, {l:#x}] overlaps an allowed range"
            ));
        }
    }
    // Areas.
    let mask = v.iova_alignment - 1;
    let mut total = 0u64;
    for a in &v.areas {
        let what = format!("area [{:#x}, {:#x}]", a.iova, a.last);
        let Some(pages) = &a.pages else {
            return Err(format!("{what} has no page store at rest"));
        };
        if a.prevent_access {
            return Err(format!("{what} still prevents access"));
        }
        if a.iova & mask != 0 || (a.last - a.iova + 1) & mask != 0 || a.page_offset & mask != 0 {
            return Err(format!("{what} violates alignment {:#x}", v.iova_alignment));
        }
        if v.reserved
            .iter()
            .any(|&(s, l, _)| s <= a.last && a.iova <= l)
        {
            return Err(format!("{what} overlaps a reserved range"));
        }
        let last_byte = a.index * PAGE_SIZE + a.page_offset + (a.last - a.iova);
        if last_byte / PAGE_SIZE != a.last_index || a.last_index >= pages.npages {
            return Err(format!("{what} indexes do not match its length"));
        }
        total += a.last - a.iova + 1;
    }
    // Domains map exactly the areas.
    for d in &v.domains {
        if let Some(bytes) = probe(d.as_ref())? {
            if bytes != total {
                return Err(format!(
                    "a domain maps {bytes:#x} bytes, areas cover {total:#x}"
                ));
            }
        }
        let granule = iommu::map::min_pgsize(d.as_ref()).max(1);
        for a in &v.areas {
            let Some(pages) = &a.pages else {
                continue;
            };
            let n = (a.last - a.iova) / granule + 1;
            let stride = n.div_ceil(MAX_LOOKUPS).max(1);
            let expected_at = |k: u64| -> Result<(), String> {
                let iova = a.iova + k * granule;
                let byte = a.index * PAGE_SIZE + a.page_offset + (iova - a.iova);
                let want = pages
                    .debug_pa(byte / PAGE_SIZE)
                    .map(|pa| pa + byte % PAGE_SIZE)
                    .ok_or_else(|| format!("IOVA {iova:#x} mapped from an unpinned page"))?;
                let got = d.iova_to_phys(iova);
                if got != want {
                    return Err(format!(
                        "IOVA {iova:#x} translates to {got:#x}, not {want:#x}"
                    ));
                }
                Ok(())
            };
            let mut k = 0;
            while k < n {
                expected_at(k)?;
                k += stride;
            }
            expected_at(n - 1)?;
        }
    }
    Ok(())
}
