//! A device's DMA engine view of its IOMMU: a handle that caches the domain the
//! device's group is attached to, for emulated devices issuing many DMAs.
//!
//! [`Device::dma_translate`] takes the group lock and clones the domain `Arc`
//! on every call (two locked instructions and a lock round trip). A
//! [`DmaHandle`] instead keeps the domain and the group's *domain generation*
//! ([`Group::domain_gen`](crate::Group::domain_gen)), which every attach,
//! replace and detach bumps under the group lock after changing the domain and
//! before returning. Each DMA loads the generation once (one acquire load, no
//! locked instruction) and takes the lock only when it changed, so:
//!
//! - a DMA that starts after an attach/replace/detach returned always uses the
//!   new domain (never a stale one);
//! - a DMA racing with the change may use either domain, as a DMA in flight
//!   during a real domain switch may.
//!
//! Kernel: none (hardware reads the context/stream table entry per request and
//! caches it in its context cache; `dev_iommu_ops`/`iommu_get_domain_for_dev`
//! play the lock-taking role of [`Device::dma_translate`]).

use std::sync::Arc;

use uapi::Errno;

use crate::{Device, DmaTranslation, Domain};

/// A device's cached view of its current domain (one per DMA engine/thread:
/// the methods take `&mut self`, so no synchronisation is needed inside).
///
/// The handle keeps the domain it cached alive until its next DMA notices the
/// change (or until it is dropped or [`DmaHandle::release`]d).
pub struct DmaHandle {
    dev: Arc<Device>,
    /// Generation of `domain`; `u64::MAX` when nothing is cached.
    gen: u64,
    domain: Option<Arc<dyn Domain>>,
}

impl std::fmt::Debug for DmaHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DmaHandle")
            .field("dev", &self.dev)
            .field("gen", &self.gen)
            .finish()
    }
}

impl DmaHandle {
    /// A handle for DMA by `dev` (no PASID).
    pub fn new(dev: Arc<Device>) -> DmaHandle {
        DmaHandle {
            dev,
            gen: u64::MAX,
            domain: None,
        }
    }

    /// The device.
    pub fn device(&self) -> &Arc<Device> {
        &self.dev
    }

    /// The domain the device's group is attached to now, for one DMA.
    ///
    /// # Errors
    /// `ENOENT` without a domain (a DMA fault); attach errors of a deferred
    /// default-domain attach (as [`Device::dma_translate`]).
    #[inline]
    pub fn domain(&mut self) -> Result<&dyn Domain, Errno> {
        if self.dev.group().domain_gen() != self.gen {
            self.refresh()?;
        }
        self.domain.as_deref().ok_or(Errno::NOENT)
    }

    #[cold]
    #[inline(never)]
    fn refresh(&mut self) -> Result<(), Errno> {
        self.release();
        if self.dev.attach_deferred() {
            self.dev.deferred_attach()?;
        }
        let (domain, gen) = self.dev.group().domain_with_gen();
        self.domain = domain;
        self.gen = gen;
        Ok(())
    }

    /// Drops the cached domain (the next DMA looks it up again).
    pub fn release(&mut self) {
        self.domain = None;
        self.gen = u64::MAX;
    }

    /// Translates one DMA access at `iova`, as [`Device::dma_translate`].
    ///
    /// # Errors
    /// As [`Device::dma_translate`].
    #[inline]
    pub fn dma_translate(&mut self, iova: u64, write: bool) -> Result<DmaTranslation, Errno> {
        self.domain()?.dma_translate(iova, write)
    }

    /// Translates the DMA of `len` bytes at `iova` as far as its leaves map
    /// contiguously, as [`Domain::dma_translate_run`].
    ///
    /// # Errors
    /// As [`Device::dma_translate`].
    #[inline]
    pub fn dma_translate_run(
        &mut self,
        iova: u64,
        len: u64,
        write: bool,
    ) -> Result<DmaTranslation, Errno> {
        self.domain()?.dma_translate_run(iova, len, write).get()
    }
}
