//! A plain-data view of an io_pagetable for leak and invariant checks (tests only).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use iommu::{Domain, Prot};

use super::{IoPagetable, ResvOwner};
use crate::object::Object;
use crate::pages::Pages;

/// One area.
pub(crate) struct AreaView {
    pub(crate) key: u64,
    pub(crate) iova: u64,
    pub(crate) last: u64,
    pub(crate) pages: Option<Arc<Pages>>,
    pub(crate) page_offset: u64,
    pub(crate) index: u64,
    pub(crate) last_index: u64,
    pub(crate) prot: Prot,
    pub(crate) num_accesses: u32,
    pub(crate) prevent_access: bool,
}

/// The io_pagetable, copied out under its locks.
pub(crate) struct IoptView {
    pub(crate) areas: Vec<AreaView>,
    pub(crate) allowed: Vec<(u64, u64)>,
    pub(crate) reserved: Vec<(u64, u64, ResvOwner)>,
    pub(crate) iova_alignment: u64,
    pub(crate) disable_large_pages: bool,
    pub(crate) domains: Vec<Arc<dyn Domain>>,
    /// Attached accesses: (list id, object, required alignment).
    pub(crate) accesses: Vec<(u32, Arc<Object>, u64)>,
}

impl IoPagetable {
    /// Copies the table's state out, taking its locks in order.
    pub(crate) fn debug_view(&self) -> IoptView {
        let domains = self.domains_read();
        let st = self.iova_read();
        let areas = st
            .areas
            .iter()
            .map(|(_, s, l, a)| AreaView {
                key: a.key,
                iova: s,
                last: l,
                pages: a.pages.clone(),
                page_offset: a.page_offset,
                index: a.index,
                last_index: a.last_index,
                prot: a.prot,
                num_accesses: a.num_accesses.load(Ordering::Acquire),
                prevent_access: a.prevent_access.load(Ordering::Acquire),
            })
            .collect();
        let accesses = self
            .accesses()
            .iter()
            .map(|(&id, e)| (id, e.obj.clone(), e.iova_alignment))
            .collect();
        IoptView {
            areas,
            allowed: st.allowed.iter().map(|(_, s, l, _)| (s, l)).collect(),
            reserved: st.reserved.iter().map(|(_, s, l, &o)| (s, l, o)).collect(),
            iova_alignment: st.iova_alignment,
            disable_large_pages: st.disable_large_pages,
            domains: domains.list.clone(),
            accesses,
        }
    }
}
