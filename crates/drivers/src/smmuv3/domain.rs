//! SMMUv3 domains: paging domains finalized at first attach (`struct
//! arm_smmu_domain`), and the static blocking and identity domains.
//!
//! Kernel: `drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c` (`arm_smmu_domain_finalise`,
//! `arm_smmu_attach_dev`, `arm_smmu_s1_set_dev_pasid`, `arm_smmu_set_pasid`,
//! `arm_smmu_map_pages`, `arm_smmu_dirty_ops`, `arm_smmu_blocked_domain`,
//! `arm_smmu_identity_domain`), `drivers/iommu/io-pgtable-arm.c`
//! (`arm_lpae_restrict_pgsizes`), v6.12.

use std::any::Any;
use std::sync::{Mutex, OnceLock};

use iommu::{
    Device, DirtyOps, DirtyRecorder, DmaRun, DmaTranslation, Domain, DomainCore, DomainType,
    Geometry, Prot, DIRTY_NO_CLEAR,
};
use pt::fmt::{ArmV8, ArmV8Config, Granule};
use pt::PageTable;
use uapi::Errno;

pub use pt::fmt::Stage as SmmuStage;

use super::{lock, smmu_of, SmmuV3, Ste, S1_IAS, SMMUV3_DRIVER};

/// What finalization fixed.
struct Finalized {
    instance: u64,
    stage: SmmuStage,
    granule: Granule,
    /// Input address size of the table.
    ias: u32,
    pt: PageTable<ArmV8>,
    dirty: bool,
}

/// A paging domain (`struct arm_smmu_domain`), without a page table until its first
/// attach.
pub struct SmmuDomain {
    core: DomainCore,
    /// Page sizes reported before finalization.
    alloc_pgsize: u64,
    /// `init_mutex`.
    init: Mutex<()>,
    fin: OnceLock<Finalized>,
}

impl SmmuDomain {
    pub(super) fn new(alloc_pgsize: u64) -> SmmuDomain {
        SmmuDomain {
            core: DomainCore::new(SMMUV3_DRIVER),
            alloc_pgsize,
            init: Mutex::new(()),
            fin: OnceLock::new(),
        }
    }

    /// The SMMUv3 paging domain behind a domain, if it is one.
    pub fn from_domain(domain: &dyn Domain) -> Option<&SmmuDomain> {
        domain.as_any().downcast_ref::<SmmuDomain>()
    }

    /// Whether the domain has its page table (`smmu_domain->smmu != NULL`).
    pub fn is_finalized(&self) -> bool {
        self.fin.get().is_some()
    }

    /// The stage chosen at finalization.
    pub fn stage(&self) -> Option<SmmuStage> {
        self.fin.get().map(|f| f.stage)
    }

    /// The granule chosen at finalization.
    pub fn granule(&self) -> Option<Granule> {
        self.fin.get().map(|f| f.granule)
    }

    /// The id ([`SmmuV3::id`]) of the instance the domain was finalized on.
    pub fn instance_id(&self) -> Option<u64> {
        self.fin.get().map(|f| f.instance)
    }

    /// The page table, once finalized.
    pub fn page_table(&self) -> Option<&PageTable<ArmV8>> {
        self.fin.get().map(|f| &f.pt)
    }

    /// `arm_smmu_domain_finalise` on `inst`; a no-op if already finalized there.
    ///
    /// # Errors
    /// `EINVAL` if finalized on another instance; `EOPNOTSUPP` for dirty tracking
    /// on a stage 2 domain; `ENOMEM` if the table cannot be built.
    pub(super) fn finalise(&self, inst: &SmmuV3, dirty: bool) -> Result<(), Errno> {
        let _init = lock(&self.init);
        self.finalise_locked(inst, dirty)
    }

    fn finalise_locked(&self, inst: &SmmuV3, dirty: bool) -> Result<(), Errno> {
        if let Some(fin) = self.fin.get() {
            return if fin.instance == inst.id() {
                Ok(())
            } else {
                Err(Errno::INVAL)
            };
        }
        let regs = inst.regs();
        let stage = if regs.stage1() {
            SmmuStage::S1
        } else {
            SmmuStage::S2
        };
        // arm_lpae_restrict_pgsizes with a 4 KiB PAGE_SIZE: the page size if
        // supported, else the smallest larger granule.
        let bitmap = regs.pgsize_bitmap();
        let granule = if bitmap & (1 << 12) != 0 {
            Granule::K4
        } else if bitmap & (1 << 14) != 0 {
            Granule::K16
        } else {
            Granule::K64
        };
        let (va_lg2, oa_lg2) = match stage {
            SmmuStage::S1 => (S1_IAS, regs.ias()),
            SmmuStage::S2 => {
                if dirty {
                    return Err(Errno::OPNOTSUPP);
                }
                (regs.ias(), regs.oas())
            }
        };
        let pt = PageTable::new(ArmV8Config {
            granule,
            stage,
            va_lg2,
            oa_lg2,
            hw_dirty: dirty,
        })
        .map_err(|_| Errno::NOMEM)?;
        if dirty {
            // HTTU dirty is always on: writes dirty DBM leaves from the start.
            pt.set_dirty_tracking(true)?;
        }
        let fin = Finalized {
            instance: inst.id(),
            stage,
            granule,
            ias: va_lg2,
            pt,
            dirty,
        };
        self.fin.set(fin).map_err(|_| Errno::INVAL)
    }

    /// Finalizes on `inst` if needed, else checks it was finalized there.
    fn finalise_for(&self, inst: &SmmuV3) -> Result<&Finalized, Errno> {
        self.finalise(inst, false)?;
        self.fin.get().ok_or(Errno::INVAL)
    }
}

impl Domain for SmmuDomain {
    fn core(&self) -> &DomainCore {
        &self.core
    }

    fn domain_type(&self) -> DomainType {
        DomainType::Unmanaged
    }

    /// `arm_smmu_attach_dev`.
    fn attach_dev(&self, dev: &Device) -> Result<(), Errno> {
        let inst = smmu_of(dev)?;
        let fin = self.finalise_for(inst)?;
        let ste = match fin.stage {
            SmmuStage::S1 => Ste::S1,
            SmmuStage::S2 => {
                if inst.has_pasids(dev.id()) {
                    return Err(Errno::BUSY);
                }
                Ste::S2
            }
        };
        inst.set_ste(dev.id(), ste);
        Ok(())
    }

    fn supports_pasid(&self) -> bool {
        true
    }

    /// `arm_smmu_s1_set_dev_pasid` and `arm_smmu_set_pasid`.
    fn set_dev_pasid(&self, dev: &Device, pasid: u32) -> Result<(), Errno> {
        let inst = smmu_of(dev)?;
        let fin = self.finalise_for(inst)?;
        if fin.stage != SmmuStage::S1 || inst.ste(dev.id()) == Ste::S2 {
            return Err(Errno::INVAL);
        }
        inst.set_pasid(dev.id(), pasid, true);
        Ok(())
    }

    /// `arm_smmu_remove_dev_pasid`.
    fn remove_dev_pasid(&self, dev: &Device, pasid: u32) {
        if let Ok(inst) = smmu_of(dev) {
            inst.set_pasid(dev.id(), pasid, false);
        }
    }

    fn geometry(&self) -> Geometry {
        match self.fin.get() {
            Some(fin) => Geometry {
                aperture_start: 0,
                aperture_end: pt::log2::low_mask(fin.ias),
                force_aperture: true,
            },
            // An unfinalized kernel domain's geometry is all zero.
            None => Geometry {
                aperture_start: 0,
                aperture_end: 0,
                force_aperture: false,
            },
        }
    }

    fn pgsize_bitmap(&self) -> u64 {
        self.fin
            .get()
            .map_or(self.alloc_pgsize, |fin| fin.pt.pgsize_bitmap())
    }

    /// `arm_smmu_map_pages`.
    fn map_pages(
        &self,
        iova: u64,
        pa: u64,
        pgsize: u64,
        pgcount: u64,
        prot: Prot,
    ) -> Result<u64, (u64, Errno)> {
        let Some(fin) = self.fin.get() else {
            return Err((0, Errno::NODEV));
        };
        // io-pgtable-arm maps nothing and reports success for a mapping without
        // access, which would make iommu_map() loop; refuse it instead.
        if !prot.intersects(Prot::READ | Prot::WRITE) {
            return Err((0, Errno::INVAL));
        }
        let prot = pt::Prot::from_bits_truncate(prot.bits());
        fin.pt.map_pages(iova, pa, pgsize, pgcount, prot)
    }

    /// `arm_smmu_unmap_pages`.
    fn unmap_pages(&self, iova: u64, pgsize: u64, pgcount: u64) -> u64 {
        self.fin
            .get()
            .map_or(0, |fin| fin.pt.unmap_pages(iova, pgsize, pgcount))
    }

    fn iova_to_phys(&self, iova: u64) -> u64 {
        self.fin
            .get()
            .and_then(|fin| fin.pt.iova_to_phys(iova))
            .unwrap_or(0)
    }

    fn dma_translate(&self, iova: u64, write: bool) -> Result<DmaTranslation, Errno> {
        let fin = self.fin.get().ok_or(Errno::NOENT)?;
        fin.pt.translate(iova, write).map(crate::dma_translation)
    }

    fn dma_translate_run(&self, iova: u64, len: u64, write: bool) -> DmaRun {
        match self.fin.get() {
            Some(fin) => crate::dma_translate_run(&fin.pt, iova, len, write),
            None => DmaRun::fault(Errno::NOENT),
        }
    }

    fn dma_cache_token(&self, write: bool) -> Option<u64> {
        self.fin.get()?.pt.dma_cache_token(write)
    }

    fn dirty_ops(&self) -> Option<&dyn DirtyOps> {
        match self.fin.get() {
            Some(fin) if fin.dirty => Some(self),
            _ => None,
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl DirtyOps for SmmuDomain {
    /// `arm_smmu_set_dirty_tracking`: always enabled.
    fn set_dirty_tracking(&self, _enable: bool) -> Result<(), Errno> {
        Ok(())
    }

    /// `arm_smmu_read_and_clear_dirty` (`arm_lpae_read_and_clear_dirty`).
    fn read_and_clear_dirty(
        &self,
        iova: u64,
        size: u64,
        flags: u32,
        mut dirty: Option<&mut dyn DirtyRecorder>,
    ) -> Result<(), Errno> {
        let fin = self.fin.get().ok_or(Errno::INVAL)?;
        let no_clear = flags & DIRTY_NO_CLEAR != 0;
        fin.pt
            .read_and_clear_dirty_bits(iova, size, no_clear, &mut crate::DirtyFeed(&mut dirty));
        Ok(())
    }
}

/// The static blocking domain (`arm_smmu_blocked_domain`): an abort STE.
pub(crate) struct SmmuBlocked {
    core: DomainCore,
}

impl SmmuBlocked {
    pub(super) fn new() -> SmmuBlocked {
        SmmuBlocked {
            core: DomainCore::new(SMMUV3_DRIVER),
        }
    }
}

/// The static identity domain (`arm_smmu_identity_domain`): a bypass STE.
pub(crate) struct SmmuIdentity {
    core: DomainCore,
}

impl SmmuIdentity {
    pub(super) fn new() -> SmmuIdentity {
        SmmuIdentity {
            core: DomainCore::new(SMMUV3_DRIVER),
        }
    }
}

impl Domain for SmmuBlocked {
    fn core(&self) -> &DomainCore {
        &self.core
    }
    fn domain_type(&self) -> DomainType {
        DomainType::Blocked
    }
    /// `arm_smmu_attach_dev_blocked`.
    fn attach_dev(&self, dev: &Device) -> Result<(), Errno> {
        smmu_of(dev)?.set_ste(dev.id(), Ste::Abort);
        Ok(())
    }
    no_paging!();
}

impl Domain for SmmuIdentity {
    fn core(&self) -> &DomainCore {
        &self.core
    }
    fn domain_type(&self) -> DomainType {
        DomainType::Identity
    }
    /// `arm_smmu_attach_dev_identity`.
    fn attach_dev(&self, dev: &Device) -> Result<(), Errno> {
        smmu_of(dev)?.set_ste(dev.id(), Ste::Bypass);
        Ok(())
    }
    no_paging!();
}
