//! Software-managed MSI: doorbells mapped into a domain's reserved MSI window.
//!
//! When a group's devices advertise a `SwMsi` reserved region, iommufd installs an
//! MSI cookie on the paging domain (`iommu_get_msi_cookie`). A device that sets up
//! MSIs then maps its doorbell's physical page into the window at the cookie's
//! next free IOVA (`iommu_dma_prepare_msi`); devices using the same doorbell share
//! the mapping, which is reference counted and unmapped with its last user. The
//! interrupt path composes messages from a lock-free snapshot of the mappings.
//!
//! Kernel: `drivers/iommu/dma-iommu.c` (`iommu_get_msi_cookie`,
//! `iommu_dma_get_msi_page`), v6.12.

use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use uapi::Errno;

use crate::{Domain, Prot};

/// The granule of one doorbell mapping.
pub const MSI_PAGE_SIZE: u64 = 4096;

#[derive(Debug, Clone, Copy)]
struct MsiPage {
    doorbell: u64,
    iova: u64,
    users: u32,
}

#[derive(Debug, Default)]
struct CookieState {
    base: Option<u64>,
    next: u64,
    pages: Vec<MsiPage>,
    /// IOVAs of unmapped pages, reused before growing the window.
    free: Vec<u64>,
}

/// The MSI cookie of one domain (`struct iommu_dma_cookie` of type MSI).
#[derive(Debug, Default)]
pub struct MsiCookie {
    state: Mutex<CookieState>,
    /// Doorbell page → IOVA, for lookups that must not block.
    published: ArcSwap<Vec<(u64, u64)>>,
}

impl MsiCookie {
    fn lock(&self) -> MutexGuard<'_, CookieState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Installs the cookie with window base `base` (`iommu_get_msi_cookie`).
    ///
    /// # Errors
    /// `EBUSY` if the domain already has one.
    pub fn init(&self, base: u64) -> Result<(), Errno> {
        let mut st = self.lock();
        if st.base.is_some() {
            return Err(Errno::BUSY);
        }
        st.base = Some(base);
        st.next = base;
        Ok(())
    }

    /// Whether a cookie is installed.
    pub fn is_set(&self) -> bool {
        self.lock().base.is_some()
    }

    /// Maps (or shares) the page of `doorbell` in `domain` and returns its IOVA
    /// (`iommu_dma_get_msi_page`).
    ///
    /// # Errors
    /// `ENODEV` without a cookie; the domain's map errno.
    pub fn get(&self, domain: &dyn Domain, doorbell: u64) -> Result<u64, Errno> {
        let page = doorbell & !(MSI_PAGE_SIZE - 1);
        let mut st = self.lock();
        if st.base.is_none() {
            return Err(Errno::NODEV);
        }
        if let Some(p) = st.pages.iter_mut().find(|p| p.doorbell == page) {
            p.users += 1;
            return Ok(p.iova + (doorbell - page));
        }
        let iova = match st.free.pop() {
            Some(iova) => iova,
            None => {
                let iova = st.next;
                st.next = iova.checked_add(MSI_PAGE_SIZE).ok_or(Errno::NOSPC)?;
                iova
            }
        };
        let prot = Prot::WRITE | Prot::NOEXEC | Prot::MMIO;
        if let Err(err) = crate::map::map(domain, iova, page, MSI_PAGE_SIZE, prot, MSI_PAGE_SIZE) {
            st.free.push(iova);
            return Err(err);
        }
        st.pages.push(MsiPage {
            doorbell: page,
            iova,
            users: 1,
        });
        self.publish(&st);
        Ok(iova + (doorbell - page))
    }

    /// Drops one user of `doorbell`'s mapping; the last user unmaps it.
    pub fn put(&self, domain: &dyn Domain, doorbell: u64) {
        let page = doorbell & !(MSI_PAGE_SIZE - 1);
        let mut st = self.lock();
        let Some(i) = st.pages.iter().position(|p| p.doorbell == page) else {
            debug_assert!(false, "releasing an MSI doorbell that is not mapped");
            return;
        };
        st.pages[i].users -= 1;
        if st.pages[i].users != 0 {
            return;
        }
        let p = st.pages.swap_remove(i);
        self.publish(&st);
        crate::map::unmap(domain, p.iova, MSI_PAGE_SIZE);
        st.free.push(p.iova);
    }

    fn publish(&self, st: &CookieState) {
        let snapshot: Vec<(u64, u64)> = st.pages.iter().map(|p| (p.doorbell, p.iova)).collect();
        self.published.store(Arc::new(snapshot));
    }

    /// The IOVA a device must write to reach `doorbell`, without blocking
    /// (`iommu_dma_compose_msi_msg`).
    pub fn lookup(&self, doorbell: u64) -> Option<u64> {
        let page = doorbell & !(MSI_PAGE_SIZE - 1);
        self.published
            .load()
            .iter()
            .find(|&&(d, _)| d == page)
            .map(|&(_, iova)| iova + (doorbell - page))
    }

    /// Number of doorbell pages mapped.
    pub fn mapped_pages(&self) -> usize {
        self.lock().pages.len()
    }
}
