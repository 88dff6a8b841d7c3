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
//! The handle also keeps the last run [`DmaHandle::dma_translate_run`]
//! translated in each direction, as a device keeps translations in its own
//! TLB (PCIe ATS), tagged with the domain's
//! [`dma_cache_token`](Domain::dma_cache_token). A DMA inside a kept run
//! whose token is unchanged uses it without translating: one load of the
//! token instead of the table entries. Every unmap changes the token before
//! it returns, so a DMA that starts after an unmap returned never uses a
//! kept run; domains that give no token (and writes while dirty tracking is
//! enabled) are translated on every DMA. A DMA that starts where the kept
//! run of its direction ends (a device streaming through a buffer) has its
//! run translated ahead, up to [`DMA_AHEAD`] bytes: the leaves ahead are
//! checked and marked accessed then, as a device that prefetches
//! translations would have them. Only DMAs of more than a page make runs
//! to keep (any DMA uses them): the path of smaller ones, and of scattered
//! leaves, stays as short and free of stores as without the handle's
//! runs.
//!
//! Kernel: none (hardware reads the context/stream table entry per request and
//! caches it in its context cache; `dev_iommu_ops`/`iommu_get_domain_for_dev`
//! play the lock-taking role of [`Device::dma_translate`]).

use std::sync::Arc;

use uapi::Errno;

use crate::{Device, DmaTranslation, Domain};

/// How far a streaming DMA's run is translated ahead: the leaf table of a 2
/// MiB block of 4 KiB leaves (a run never extends past its leaf table).
pub const DMA_AHEAD: u64 = 2 << 20;

/// A run kept by a [`DmaHandle`]: `len` bytes from `iova` map to `pa`, as
/// translated while the domain's token was `token` (0: nothing kept; tokens
/// are never 0).
#[derive(Clone, Copy, Debug, Default)]
struct KeptRun {
    iova: u64,
    len: u64,
    pa: u64,
    token: u64,
}

/// DMAs of at most this many bytes use a kept run but do not make one.
const KEEP_ABOVE: u64 = 4096;

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
    /// The last run translated for reads (index 0) and for writes (1).
    kept: [KeptRun; 2],
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
            kept: [KeptRun::default(); 2],
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
        self.revalidate()?;
        self.domain_of_dma()
    }

    /// Looks the domain up again if the group's domain generation moved
    /// (one load when it did not).
    #[inline(always)]
    fn revalidate(&mut self) -> Result<(), Errno> {
        if self.dev.group().domain_gen() != self.gen {
            self.refresh()?;
        }
        Ok(())
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
        self.kept = [KeptRun::default(); 2];
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
    /// contiguously, as [`Domain::dma_translate_run`], from the run kept for
    /// its direction when it lies inside it (see the module documentation).
    /// The translation may go on past `len` (up to the end of the kept run).
    ///
    /// # Errors
    /// As [`Device::dma_translate`].
    #[inline(always)]
    pub fn dma_translate_run(
        &mut self,
        iova: u64,
        len: u64,
        write: bool,
    ) -> Result<DmaTranslation, Errno> {
        self.revalidate()?;
        // Not `domain_of_dma`: the run is borrowed beside the domain.
        let domain = self.domain.as_deref().ok_or(Errno::NOENT)?;
        let kept = &mut self.kept[usize::from(write)];
        let off = iova.wrapping_sub(kept.iova);
        if off < kept.len && domain.dma_cache_token(write) == Some(kept.token) {
            return Ok(DmaTranslation {
                pa: kept.pa.wrapping_add(off),
                len: kept.len - off,
            });
        }
        // DMAs of a page or less keep nothing and take the domain's path
        // as it is: a store or an out-of-line call here would wait behind
        // the previous copy's stores.
        if len <= KEEP_ABOVE {
            return domain.dma_translate_run(iova, len, write).get();
        }
        Self::translate_and_keep(domain, kept, iova, len, write)
    }

    /// The domain the last translation through the handle was made in, not
    /// revalidated: for the rest of a DMA whose first translation did not
    /// cover it (scattered leaves, whose runs are not kept), so that one DMA
    /// is translated in one domain with one generation check.
    ///
    /// # Errors
    /// `ENOENT` when nothing is cached (no translation succeeded since the
    /// handle was made or released).
    #[inline(always)]
    pub fn domain_of_dma(&self) -> Result<&dyn Domain, Errno> {
        self.domain.as_deref().ok_or(Errno::NOENT)
    }

    /// [`Self::dma_translate_run`] of a DMA of more than [`KEEP_ABOVE`]
    /// bytes outside the kept run: translates (ahead for a DMA that
    /// continues the kept run) and keeps the result when it covers the DMA.
    #[inline(never)]
    fn translate_and_keep(
        domain: &dyn Domain,
        kept: &mut KeptRun,
        iova: u64,
        len: u64,
        write: bool,
    ) -> Result<DmaTranslation, Errno> {
        // Read before the translation: an unmap that completes meanwhile
        // changes it, and the run is not used again.
        let token = domain.dma_cache_token(write);
        let streaming = kept.token != 0 && iova == kept.iova.wrapping_add(kept.len);
        let want = if streaming { len.max(DMA_AHEAD) } else { len };
        let t = domain.dma_translate_run(iova, want, write).get()?;
        // Kept even when the DMA uses it up: the next DMA then tells whether
        // the device streams through the buffer. A run shorter than the DMA
        // (scattered leaves) is not.
        if let Some(token) = token.filter(|_| t.len >= len) {
            *kept = KeptRun {
                iova,
                len: t.len,
                pa: t.pa,
                token,
            };
        }
        Ok(t)
    }
}
