//! Invariants of a page store, for leak and invariant checks (tests only).

use itree::double_spans;

use super::{Pages, PagesInner};
use crate::mm::AccountMode;

/// What the io_pagetable checks need to know about one page store.
pub(crate) struct PagesDebug {
    /// Pinned indices.
    pub(crate) npinned: u64,
    /// Pages charged to `account_mode`.
    pub(crate) accounted: u64,
    pub(crate) account_mode: AccountMode,
    /// Area keys mapped into domains, with their index ranges.
    pub(crate) domain_areas: Vec<(u64, u64, u64)>,
    /// Sum of the users of every access range.
    pub(crate) access_users: u64,
}

impl PagesInner {
    /// Pinned exactly where an access or a domain needs it, charged exactly that.
    fn check(&self, npages: u64) -> Result<(), String> {
        let mut needed = 0;
        for span in double_spans(&self.access_itree, &self.domains_itree, 0, npages - 1) {
            let (s, l) = (span.start(), span.last());
            let stored = self.pfns.count_in(s, l);
            if span.is_hole() && stored != 0 {
                return Err(format!("pages: {stored} pinned pages in unused [{s}, {l}]"));
            }
            if !span.is_hole() {
                if stored != l - s + 1 {
                    return Err(format!("pages: [{s}, {l}] used but {stored} pinned"));
                }
                needed += stored;
            }
        }
        if needed != self.pfns.npages() {
            return Err(format!(
                "pages: {} pinned, {needed} needed (pins beyond the store)",
                self.pfns.npages()
            ));
        }
        if self.accounted != self.pfns.npages() {
            return Err(format!(
                "pages: {} charged for {} pinned",
                self.accounted,
                self.pfns.npages()
            ));
        }
        if self.domain_nodes.len() != self.domains_itree.len() {
            return Err("pages: domain nodes and tree differ".into());
        }
        for (_, _, _, acc) in self.access_itree.iter() {
            if acc.users == 0 {
                return Err("pages: access range without users".into());
            }
        }
        Ok(())
    }
}

impl Pages {
    /// Checks the store's invariants and describes it.
    pub(crate) fn debug_check(&self) -> Result<PagesDebug, String> {
        let inner = self.lock();
        inner.check(self.npages)?;
        let mut domain_areas = Vec::with_capacity(inner.domain_nodes.len());
        for (&key, &node) in &inner.domain_nodes {
            match inner.domains_itree.get(node) {
                Some((s, l, &k)) if k == key => domain_areas.push((key, s, l)),
                _ => return Err(format!("pages: domain node of area {key} is wrong")),
            }
        }
        domain_areas.sort_unstable();
        Ok(PagesDebug {
            npinned: inner.pfns.npages(),
            accounted: inner.accounted,
            account_mode: self.account_mode,
            domain_areas,
            access_users: inner
                .access_itree
                .iter()
                .map(|(_, _, _, a)| u64::from(a.users))
                .sum(),
        })
    }

    /// The physical address pinned for `index`, if pinned.
    pub(crate) fn debug_pa(&self, index: u64) -> Option<u64> {
        self.lock().pfns.pa_of(index)
    }
}
