//! VT-d domains: second-stage paging (`struct dmar_domain`), nested first stage,
//! and the static blocking and identity domains.
//!
//! Kernel: `drivers/iommu/intel/iommu.c` (`intel_iommu_map`, `intel_iommu_unmap`,
//! `prepare_domain_attach_device`, `intel_iommu_enforce_cache_coherency`,
//! `intel_dirty_ops`, `blocking_domain`, `identity_domain`), `nested.c`, v6.12.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use iommu::{
    Device, DirtyOps, DirtyRecorder, DmaRun, DmaTranslation, Domain, DomainCore, DomainType,
    Geometry, Prot, UserDataArray, DIRTY_NO_CLEAR,
};
use pt::fmt::{VtdSs, VtdSsConfig};
use pt::PageTable;
use uapi::{
    Errno, HwptVtdS1, HwptVtdS1Invalidate, IOMMU_HWPT_INVALIDATE_DATA_VTD_S1,
    IOMMU_VTD_INV_FLAGS_LEAF, IOMMU_VTD_S1_EAFE, IOMMU_VTD_S1_SRE,
};
use zerocopy::{FromZeros, IntoBytes};

use super::{lock, vtd_of, Vtd, ADDR_WIDTH_4LEVEL, ADDR_WIDTH_5LEVEL, VTD_DRIVER};

/// Devices attached to a domain at no PASID (`dmar_domain->devices`): device id →
/// whether its instance has snoop control.
#[derive(Debug, Default)]
pub(crate) struct Attachments {
    devices: Mutex<BTreeMap<u64, bool>>,
}

impl Attachments {
    pub(super) fn add(&self, dev_id: u64, snoop_control: bool) {
        lock(&self.devices).insert(dev_id, snoop_control);
    }

    pub(super) fn remove(&self, dev_id: u64) {
        lock(&self.devices).remove(&dev_id);
    }

    fn count(&self) -> usize {
        lock(&self.devices).len()
    }
}

/// A second-stage paging domain (`struct dmar_domain` with `use_first_level` off).
pub struct VtdDomain {
    core: DomainCore,
    pt: PageTable<VtdSs>,
    /// Address width in bits (`domain->gaw`).
    width: u32,
    devices: Arc<Attachments>,
    /// Allocated with `IOMMU_HWPT_ALLOC_DIRTY_TRACKING` (`domain->dirty_ops`).
    dirty: bool,
    /// Allocated with `IOMMU_HWPT_ALLOC_NEST_PARENT`.
    nest_parent: bool,
    /// `force_snooping` (and, for a second stage, `set_pte_snp`).
    force_snooping: AtomicBool,
    has_mappings: AtomicBool,
}

impl VtdDomain {
    /// A domain of `width` bits with the page sizes in `pgsize_bitmap`.
    pub(super) fn new(
        width: u32,
        pgsize_bitmap: u64,
        dirty: bool,
        nest_parent: bool,
    ) -> Result<VtdDomain, Errno> {
        let max_leaf_lg2 = 63 - pgsize_bitmap.leading_zeros();
        let pt = PageTable::new(VtdSsConfig {
            va_lg2: width,
            oa_lg2: 52,
            max_leaf_lg2,
        })
        .map_err(|_| Errno::NOMEM)?;
        Ok(VtdDomain {
            core: DomainCore::new(VTD_DRIVER),
            pt,
            width,
            devices: Arc::new(Attachments::default()),
            dirty,
            nest_parent,
            force_snooping: AtomicBool::new(false),
            has_mappings: AtomicBool::new(false),
        })
    }

    /// The VT-d paging domain behind a domain, if it is one.
    pub fn from_domain(domain: &dyn Domain) -> Option<&VtdDomain> {
        domain.as_any().downcast_ref::<VtdDomain>()
    }

    /// The domain's address width in bits.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Whether the domain can be a nesting parent.
    pub fn nest_parent(&self) -> bool {
        self.nest_parent
    }

    /// Whether the domain forces snooping (sets SNP in every new leaf).
    pub fn force_snooping(&self) -> bool {
        self.force_snooping.load(Ordering::Acquire)
    }

    /// The second-stage table, to inspect entries (SNP, A/D bits).
    pub fn page_table(&self) -> &PageTable<VtdSs> {
        &self.pt
    }

    /// Number of devices attached at no PASID.
    pub fn attached_devices(&self) -> usize {
        self.devices.count()
    }

    /// `prepare_domain_attach_device`: can `inst` use this domain?
    fn prepare(&self, inst: &Vtd) -> Result<(), Errno> {
        let regs = inst.regs();
        if self.force_snooping() && !regs.sc() {
            return Err(Errno::INVAL);
        }
        if self.dirty && !regs.ssads_supported() {
            return Err(Errno::INVAL);
        }
        if self.width > inst.address_width() {
            return Err(Errno::INVAL);
        }
        if self.pt.pgsize_bitmap() & !inst.pgsize_bitmap() != 0 {
            return Err(Errno::INVAL);
        }
        Ok(())
    }
}

impl Domain for VtdDomain {
    fn core(&self) -> &DomainCore {
        &self.core
    }

    fn domain_type(&self) -> DomainType {
        DomainType::Unmanaged
    }

    /// `intel_iommu_attach_device`.
    fn attach_dev(&self, dev: &Device) -> Result<(), Errno> {
        let inst = vtd_of(dev)?;
        inst.block_translation(dev.id());
        self.prepare(inst)?;
        inst.attach(dev.id(), &self.devices);
        Ok(())
    }

    fn supports_pasid(&self) -> bool {
        true
    }

    /// `intel_iommu_set_dev_pasid`.
    fn set_dev_pasid(&self, dev: &Device, _pasid: u32) -> Result<(), Errno> {
        let inst = vtd_of(dev)?;
        if !inst.regs().pasid_supported() {
            return Err(Errno::OPNOTSUPP);
        }
        if self.dirty {
            return Err(Errno::INVAL);
        }
        self.prepare(inst)
    }

    fn geometry(&self) -> Geometry {
        Geometry {
            aperture_start: 0,
            aperture_end: self.pt.max_iova(),
            force_aperture: true,
        }
    }

    fn pgsize_bitmap(&self) -> u64 {
        self.pt.pgsize_bitmap()
    }

    /// `intel_iommu_map_pages`.
    fn map_pages(
        &self,
        iova: u64,
        pa: u64,
        pgsize: u64,
        pgcount: u64,
        prot: Prot,
    ) -> Result<u64, (u64, Errno)> {
        if !matches!(pgsize, 0x1000 | 0x20_0000 | 0x4000_0000) || (iova | pa) & (pgsize - 1) != 0 {
            return Err((0, Errno::INVAL));
        }
        let size = pgsize.checked_mul(pgcount).ok_or((0, Errno::INVAL))?;
        // `max_addr`: the end must fit the domain's width.
        match iova.checked_add(size) {
            Some(end) if end <= 1u64 << self.width => {}
            _ => return Err((0, Errno::FAULT)),
        }
        if !prot.intersects(Prot::READ | Prot::WRITE) {
            return Err((0, Errno::INVAL));
        }
        if !prot.contains(Prot::WRITE) && self.nest_parent {
            return Err((0, Errno::INVAL));
        }
        let mut pt_prot = pt::Prot::empty();
        pt_prot.set(pt::Prot::READ, prot.contains(Prot::READ));
        pt_prot.set(pt::Prot::WRITE, prot.contains(Prot::WRITE));
        // IOMMU_CACHE is ignored; SNP comes from set_pte_snp alone.
        pt_prot.set(pt::Prot::CACHE, self.force_snooping());
        self.has_mappings.store(true, Ordering::Release);
        self.pt.map_pages(iova, pa, pgsize, pgcount, pt_prot)
    }

    fn unmap_pages(&self, iova: u64, pgsize: u64, pgcount: u64) -> u64 {
        self.pt.unmap_pages(iova, pgsize, pgcount)
    }

    fn iova_to_phys(&self, iova: u64) -> u64 {
        self.pt.iova_to_phys(iova).unwrap_or(0)
    }

    fn dma_translate(&self, iova: u64, write: bool) -> Result<DmaTranslation, Errno> {
        self.pt.translate(iova, write).map(crate::dma_translation)
    }

    fn dma_translate_run(&self, iova: u64, len: u64, write: bool) -> DmaRun {
        crate::dma_translate_run(&self.pt, iova, len, write)
    }

    fn dma_cache_token(&self, write: bool) -> Option<u64> {
        self.pt.dma_cache_token(write)
    }

    /// `intel_iommu_enforce_cache_coherency`.
    fn enforce_cache_coherency(&self) -> bool {
        if self.force_snooping() {
            return true;
        }
        let devices = lock(&self.devices.devices);
        if devices.values().any(|&sc| !sc) || self.has_mappings.load(Ordering::Acquire) {
            return false;
        }
        self.force_snooping.store(true, Ordering::Release);
        true
    }

    fn dirty_ops(&self) -> Option<&dyn DirtyOps> {
        if self.dirty {
            Some(self)
        } else {
            None
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl DirtyOps for VtdDomain {
    /// `intel_iommu_set_dirty_tracking`: SSADE in the PASID entries of the domain's
    /// devices, i.e. whether hardware sets D on writes.
    fn set_dirty_tracking(&self, enable: bool) -> Result<(), Errno> {
        self.pt.set_dirty_tracking(enable)
    }

    /// `intel_iommu_read_and_clear_dirty`.
    fn read_and_clear_dirty(
        &self,
        iova: u64,
        size: u64,
        flags: u32,
        mut dirty: Option<&mut dyn DirtyRecorder>,
    ) -> Result<(), Errno> {
        if !self.pt.dirty_tracking() && dirty.is_some() {
            return Err(Errno::INVAL);
        }
        let no_clear = flags & DIRTY_NO_CLEAR != 0;
        self.pt
            .read_and_clear_dirty_bits(iova, size, no_clear, &mut crate::DirtyFeed(&mut dirty));
        Ok(())
    }
}

/// A first-stage table owned by the guest, nested on a second-stage parent
/// (`intel_nested_domain_alloc`).
pub struct VtdNested {
    core: DomainCore,
    parent: Arc<dyn Domain>,
    cfg: HwptVtdS1,
    devices: Arc<Attachments>,
    invalidations: AtomicU64,
}

impl VtdNested {
    pub(super) fn new(parent: Arc<dyn Domain>, cfg: HwptVtdS1) -> VtdNested {
        VtdNested {
            core: DomainCore::new(VTD_DRIVER),
            parent,
            cfg,
            devices: Arc::new(Attachments::default()),
            invalidations: AtomicU64::new(0),
        }
    }

    /// The VT-d nested domain behind a domain, if it is one.
    pub fn from_domain(domain: &dyn Domain) -> Option<&VtdNested> {
        domain.as_any().downcast_ref::<VtdNested>()
    }

    /// The user's stage-1 description.
    pub fn s1_config(&self) -> &HwptVtdS1 {
        &self.cfg
    }

    /// The second-stage parent.
    pub fn parent(&self) -> &Arc<dyn Domain> {
        &self.parent
    }

    /// Invalidation entries handled so far.
    pub fn invalidations(&self) -> u64 {
        self.invalidations.load(Ordering::Acquire)
    }

    fn invalidate_entries(
        &self,
        array: &UserDataArray<'_>,
        processed: &mut u32,
    ) -> Result<(), Errno> {
        if array.data_type != IOMMU_HWPT_INVALIDATE_DATA_VTD_S1 {
            return Err(Errno::INVAL);
        }
        let len = core::mem::size_of::<HwptVtdS1Invalidate>();
        for index in 0..array.entry_num {
            let mut inv = HwptVtdS1Invalidate::new_zeroed();
            array.copy_entry(
                IOMMU_HWPT_INVALIDATE_DATA_VTD_S1,
                inv.as_mut_bytes(),
                index,
                len,
            )?;
            if inv.flags & !IOMMU_VTD_INV_FLAGS_LEAF != 0 || inv.__reserved != 0 {
                return Err(Errno::OPNOTSUPP);
            }
            if inv.addr & 0xfff != 0 || (inv.npages == u64::MAX && inv.addr != 0) {
                return Err(Errno::INVAL);
            }
            // The emulation caches no first-stage translations: nothing to flush.
            self.invalidations.fetch_add(1, Ordering::AcqRel);
            *processed += 1;
        }
        Ok(())
    }
}

impl Domain for VtdNested {
    fn core(&self) -> &DomainCore {
        &self.core
    }

    fn domain_type(&self) -> DomainType {
        DomainType::Nested
    }

    /// `intel_nested_attach_dev` and the checks of `intel_pasid_setup_nested`.
    fn attach_dev(&self, dev: &Device) -> Result<(), Errno> {
        let inst = vtd_of(dev)?;
        inst.block_translation(dev.id());
        let s2 = VtdDomain::from_domain(self.parent.as_ref()).ok_or(Errno::INVAL)?;
        if inst.address_width() < s2.width() {
            return Err(Errno::NODEV);
        }
        s2.prepare(inst)?;
        let regs = inst.regs();
        match self.cfg.addr_width {
            ADDR_WIDTH_4LEVEL => {}
            ADDR_WIDTH_5LEVEL if regs.fl5lp() => {}
            _ => return Err(Errno::INVAL),
        }
        if self.cfg.flags & IOMMU_VTD_S1_SRE != 0 && !regs.srs() {
            return Err(Errno::INVAL);
        }
        if self.cfg.flags & IOMMU_VTD_S1_EAFE != 0 && !regs.eafs() {
            return Err(Errno::INVAL);
        }
        inst.attach(dev.id(), &self.devices);
        Ok(())
    }

    fn pgsize_bitmap(&self) -> u64 {
        0
    }

    fn map_pages(
        &self,
        _iova: u64,
        _pa: u64,
        _pgsize: u64,
        _pgcount: u64,
        _prot: Prot,
    ) -> Result<u64, (u64, Errno)> {
        Err((0, Errno::INVAL))
    }

    fn unmap_pages(&self, _iova: u64, _pgsize: u64, _pgcount: u64) -> u64 {
        0
    }

    fn iova_to_phys(&self, _iova: u64) -> u64 {
        0
    }

    fn has_cache_invalidate_user(&self) -> bool {
        true
    }

    /// `intel_nested_cache_invalidate_user`.
    fn cache_invalidate_user(&self, array: &mut UserDataArray<'_>) -> Result<(), Errno> {
        let mut processed = 0;
        let res = self.invalidate_entries(array, &mut processed);
        array.entry_num = processed;
        res
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The static blocking domain (`blocking_domain`).
pub(crate) struct VtdBlocked {
    core: DomainCore,
}

impl VtdBlocked {
    pub(super) fn new() -> VtdBlocked {
        VtdBlocked {
            core: DomainCore::new(VTD_DRIVER),
        }
    }
}

/// The static identity domain (`identity_domain`).
pub(crate) struct VtdIdentity {
    core: DomainCore,
}

impl VtdIdentity {
    pub(super) fn new() -> VtdIdentity {
        VtdIdentity {
            core: DomainCore::new(VTD_DRIVER),
        }
    }
}

impl Domain for VtdBlocked {
    fn core(&self) -> &DomainCore {
        &self.core
    }
    fn domain_type(&self) -> DomainType {
        DomainType::Blocked
    }
    /// `blocking_domain_attach_dev`.
    fn attach_dev(&self, dev: &Device) -> Result<(), Errno> {
        vtd_of(dev)?.block_translation(dev.id());
        Ok(())
    }
    no_paging!();
}

impl Domain for VtdIdentity {
    fn core(&self) -> &DomainCore {
        &self.core
    }
    fn domain_type(&self) -> DomainType {
        DomainType::Identity
    }
    /// `identity_domain_attach_dev`: pass-through.
    fn attach_dev(&self, dev: &Device) -> Result<(), Errno> {
        vtd_of(dev)?.block_translation(dev.id());
        Ok(())
    }
    fn supports_pasid(&self) -> bool {
        true
    }
    /// `identity_domain_set_dev_pasid`.
    fn set_dev_pasid(&self, dev: &Device, _pasid: u32) -> Result<(), Errno> {
        if !vtd_of(dev)?.regs().pasid_supported() {
            return Err(Errno::OPNOTSUPP);
        }
        Ok(())
    }
    no_paging!();
}
