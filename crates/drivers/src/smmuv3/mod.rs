//! An SMMUv3-like IOMMU driver whose paging domains are *finalized at first
//! attach*, as the Arm SMMU drivers long did: `domain_alloc_paging` returns a
//! domain without a page table, and the first attach (or PASID attach) picks the
//! stage, granule and address sizes of the device's instance and creates the
//! `pt::fmt::ArmV8` table.
//!
//! Per instance: granules (4K/16K/64K), stages (1, 2), OAS (and IAS, derived as
//! the kernel does), HTTU (access flag, dirty state), coherent table walks, SSID
//! (PASID) and stream ID widths. The instance reports them in its ID registers
//! ([`regs::SmmuRegs`], `IOMMU_HW_INFO_TYPE_ARM_SMMUV3`); decisions read them back.
//!
//! Behaviour, from `drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c` (v6.12):
//!
//! - finalization (`arm_smmu_domain_finalise`): stage 1 unless the instance has
//!   only stage 2; stage 1 input 48 bits and output IAS, stage 2 input IAS and
//!   output OAS; the granule `io-pgtable-arm` picks (4K if supported, else 16K,
//!   else 64K); page sizes and geometry fixed then. Before it, `map` fails with
//!   `ENODEV` (`arm_smmu_map_pages` without page-table ops), `unmap` unmaps
//!   nothing, the geometry is the zeroed one of an unfinalized kernel domain, and
//!   the page sizes are the instance's (the kernel uses the union over all
//!   instances, kept in the shared `iommu_ops`).
//! - a domain finalized on another instance is refused with `EINVAL`; a stage 2
//!   domain cannot take PASIDs (`EINVAL`) nor be attached while the device has
//!   PASIDs (`EBUSY`); PASIDs cannot be attached while the device's no-PASID
//!   domain is stage 2 (`EINVAL`).
//! - dirty tracking (`IO_PGTABLE_QUIRK_ARM_HD`, `arm_smmu_dirty_ops`): only for
//!   stage 1 domains allocated with `IOMMU_HWPT_ALLOC_DIRTY_TRACKING`; always on,
//!   writable leaves carry DBM and read back clean until written.
//! - `domain_alloc_user` is *not* implemented by default (iommufd then uses its
//!   immediate-attach path for automatic domains, and refuses allocation flags
//!   with `EOPNOTSUPP`); the `domain_alloc_user` property turns on 6.12's
//!   `arm_smmu_domain_alloc_user`, which finalizes at allocation on the device's
//!   instance (dirty tracking allowed, nesting parents refused).
//! - probe (`arm_smmu_insert_master`): a stream ID beyond SIDSIZE is `ERANGE`, one
//!   already used by another device `EINVAL`. Stream IDs: a platform device's
//!   own; a PCI function's requester ID; `bus_id` for a device without topology.
//! - reserved regions: the software MSI window `0x8000000`, length `0x100000`.
//! - groups: PCI topology for PCI functions, a group of its own for every other
//!   device (`arm_smmu_device_group`: no stream-ID sharing).
//! - no `enforce_cache_coherency` (6.12 has none: `IOMMU_CAP_ENFORCE_CACHE_COHERENCY`
//!   is false), `IOMMU_CAP_NOEXEC` true, `IOMMU_CAP_CACHE_COHERENCY` = COHACC,
//!   `IOMMU_CAP_DIRTY_TRACKING` = HTTU dirty and COHACC.
//!
//! Not modelled: nesting and vIOMMU (post-6.12), ATS, stall / IOPF, ASID and VMID
//! exhaustion, 52-bit addresses.

mod domain;
pub mod regs;

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use iommu::topology::{pci_device_group, Bus};
use iommu::{
    Cap, Device, DeviceDesc, Domain, DriverId, GroupKey, HwInfo, IommuOps, ProbeInfo, Prot,
    ResvRegion, ResvType, UserData,
};
use uapi::{Errno, HwInfoArmSmmuv3, IOMMU_HW_INFO_TYPE_ARM_SMMUV3, IOMMU_HW_INFO_TYPE_DEFAULT};
use zerocopy::IntoBytes;

use domain::{SmmuBlocked, SmmuIdentity};
pub use domain::{SmmuDomain, SmmuStage};
pub use regs::SmmuRegs;

use crate::ConfigError;

/// The SMMUv3 driver's identity (`arm_smmu_ops`).
pub const SMMUV3_DRIVER: DriverId = DriverId("arm-smmu-v3");
/// Base of the software-managed MSI window (`MSI_IOVA_BASE`).
pub const MSI_IOVA_BASE: u64 = 0x800_0000;
/// Length of the software-managed MSI window (`MSI_IOVA_LENGTH`).
pub const MSI_IOVA_LENGTH: u64 = 0x10_0000;
/// Stage 1 input size (`min(48, VA_BITS)`; 52-bit VAX is not emulated).
pub const S1_IAS: u32 = 48;

/// The hardware properties of one SMMUv3 instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmmuV3Config {
    /// Instance name (`smmu0`, ...).
    pub name: String,
    /// 4 KiB granule (IDR5.GRAN4K).
    pub granule_4k: bool,
    /// 16 KiB granule (IDR5.GRAN16K).
    pub granule_16k: bool,
    /// 64 KiB granule (IDR5.GRAN64K).
    pub granule_64k: bool,
    /// Stage 1 translation (IDR0.S1P).
    pub stage1: bool,
    /// Stage 2 translation (IDR0.S2P).
    pub stage2: bool,
    /// Output address size in bits: 32, 36, 40, 42, 44 or 48 (IDR5.OAS).
    pub oas: u32,
    /// AArch32 (LPAE) tables too (IDR0.TTF = 3): the IAS is then at least 40 bits.
    pub ttf_aarch32: bool,
    /// Hardware access-flag update (IDR0.HTTU >= 1).
    pub httu_access: bool,
    /// Hardware dirty-state update (IDR0.HTTU = 2, `ARM_SMMU_FEAT_HD`).
    pub httu_dirty: bool,
    /// Coherent table walks and queues (IDR0.COHACC).
    pub coherent: bool,
    /// Substream ID (PASID) width, 0..=20 (IDR1.SSIDSIZE).
    pub ssid_bits: u32,
    /// Stream ID width, 1..=32 (IDR1.SIDSIZE).
    pub sid_bits: u32,
    /// Implement `domain_alloc_user` as 6.12 does (finalize at allocation).
    pub domain_alloc_user: bool,
    /// MSIs go through an MSI controller that tells devices apart (a GICv3 ITS):
    /// iommufd may bind the devices.
    pub isolated_msi: bool,
}

impl Default for SmmuV3Config {
    /// An SMMUv3.2 with both stages, every granule, HTTU and 20-bit SSIDs, that
    /// finalizes its domains at attach.
    fn default() -> Self {
        SmmuV3Config {
            name: "smmu0".into(),
            granule_4k: true,
            granule_16k: true,
            granule_64k: true,
            stage1: true,
            stage2: true,
            oas: 48,
            ttf_aarch32: false,
            httu_access: true,
            httu_dirty: true,
            coherent: true,
            ssid_bits: 20,
            sid_bits: 16,
            domain_alloc_user: false,
            isolated_msi: true,
        }
    }
}

impl SmmuV3Config {
    /// Checks that the properties describe possible (and emulated) hardware.
    ///
    /// # Errors
    /// A message naming the first bad property.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |msg: String| Err(ConfigError(msg));
        if !self.stage1 && !self.stage2 {
            return bad("no translation stage: set stage1 or stage2".into());
        }
        if !self.granule_4k && !self.granule_16k && !self.granule_64k {
            return bad("no granule: set one of 4K, 16K, 64K".into());
        }
        if self.oas == 52 {
            return bad("oas 52 needs 52-bit table formats, which are not emulated".into());
        }
        if regs::oas_encoding(self.oas).is_none() {
            return bad(format!(
                "oas must be 32, 36, 40, 42, 44 or 48 (got {})",
                self.oas
            ));
        }
        if self.ssid_bits > 20 {
            return bad(format!(
                "ssid_bits must be at most 20 (got {})",
                self.ssid_bits
            ));
        }
        if !(1..=32).contains(&self.sid_bits) {
            return bad(format!("sid_bits must be 1 to 32 (got {})", self.sid_bits));
        }
        Ok(())
    }
}

/// What a master's no-PASID stream table entry points to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Ste {
    /// Abort (blocked) or not attached yet.
    #[default]
    Abort,
    /// Bypass (identity).
    Bypass,
    /// A stage 1 domain through the context descriptor table.
    S1,
    /// A stage 2 domain.
    S2,
}

/// The driver's state of one device (`struct arm_smmu_master`).
#[derive(Debug, Default)]
struct Master {
    ste: Ste,
    pasids: BTreeSet<u32>,
}

/// One SMMUv3 instance (`struct arm_smmu_device`).
pub struct SmmuV3 {
    id: u64,
    cfg: SmmuV3Config,
    regs: SmmuRegs,
    /// Devices whose firmware description names this instance.
    scope: Mutex<BTreeSet<String>>,
    /// Stream ID → device name (`smmu->streams`).
    streams: Mutex<BTreeMap<u32, String>>,
    /// Device id → master state.
    masters: Mutex<HashMap<u64, Master>>,
    blocked: Arc<dyn Domain>,
    identity: Arc<dyn Domain>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The SMMUv3 instance a device is behind (`master->smmu`).
fn smmu_of(dev: &Device) -> Result<&SmmuV3, Errno> {
    dev.ops()
        .as_any()
        .downcast_ref::<SmmuV3>()
        .ok_or(Errno::INVAL)
}

/// The stream IDs of a device (its firmware `iommus` / `iommu-map` IDs).
pub fn stream_ids(desc: &DeviceDesc) -> Vec<u32> {
    match &desc.bus {
        Bus::Platform(p) => p.stream_ids.clone(),
        Bus::Pci(p) => vec![u32::from(p.addr.rid())],
        Bus::None => vec![desc.bus_id as u32],
    }
}

impl SmmuV3 {
    /// A new instance with these properties.
    ///
    /// # Errors
    /// The properties are not possible hardware ([`SmmuV3Config::validate`]).
    pub fn new(cfg: SmmuV3Config) -> Result<Arc<SmmuV3>, ConfigError> {
        cfg.validate()?;
        Ok(Arc::new(SmmuV3 {
            id: crate::next_instance_id(),
            regs: SmmuRegs::from_config(&cfg),
            cfg,
            scope: Mutex::new(BTreeSet::new()),
            streams: Mutex::new(BTreeMap::new()),
            masters: Mutex::new(HashMap::new()),
            blocked: Arc::new(SmmuBlocked::new()),
            identity: Arc::new(SmmuIdentity::new()),
        }))
    }

    /// This instance as the IOMMU core sees it.
    pub fn ops(self: &Arc<Self>) -> Arc<dyn IommuOps> {
        self.clone()
    }

    /// The properties.
    pub fn config(&self) -> &SmmuV3Config {
        &self.cfg
    }

    /// The ID registers.
    pub fn regs(&self) -> SmmuRegs {
        self.regs
    }

    /// A process-unique number identifying this instance.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Names the device `name` as behind this instance (its firmware `iommus`).
    pub fn add_device(&self, name: &str) {
        lock(&self.scope).insert(name.to_string());
    }

    /// Whether `name` is behind this instance.
    pub fn has_device(&self, name: &str) -> bool {
        lock(&self.scope).contains(name)
    }

    /// The device's no-PASID stream table entry now.
    fn ste(&self, dev_id: u64) -> Ste {
        lock(&self.masters)
            .get(&dev_id)
            .map_or(Ste::Abort, |m| m.ste)
    }

    fn set_ste(&self, dev_id: u64, ste: Ste) {
        lock(&self.masters).entry(dev_id).or_default().ste = ste;
    }

    fn has_pasids(&self, dev_id: u64) -> bool {
        lock(&self.masters)
            .get(&dev_id)
            .is_some_and(|m| !m.pasids.is_empty())
    }

    fn set_pasid(&self, dev_id: u64, pasid: u32, on: bool) {
        let mut masters = lock(&self.masters);
        let master = masters.entry(dev_id).or_default();
        if on {
            master.pasids.insert(pasid);
        } else {
            master.pasids.remove(&pasid);
        }
    }
}

impl IommuOps for SmmuV3 {
    fn driver(&self) -> DriverId {
        SMMUV3_DRIVER
    }

    fn name(&self) -> &str {
        &self.cfg.name
    }

    /// `arm_smmu_probe_device` and `arm_smmu_insert_master`.
    fn probe_device(&self, desc: &DeviceDesc) -> Result<ProbeInfo, Errno> {
        if !self.has_device(&desc.name) {
            return Err(Errno::NODEV);
        }
        let sids = stream_ids(desc);
        let limit = 1u64 << self.regs.sid_bits();
        let mut streams = lock(&self.streams);
        for &sid in &sids {
            if u64::from(sid) >= limit {
                return Err(Errno::RANGE);
            }
            if streams.get(&sid).is_some_and(|owner| *owner != desc.name) {
                return Err(Errno::INVAL);
            }
        }
        for sid in sids {
            streams.insert(sid, desc.name.clone());
        }
        let max_pasids = match self.regs.ssid_bits() {
            0 => 0,
            bits => 1 << bits,
        };
        Ok(ProbeInfo {
            max_pasids,
            attach_deferred: false,
            isolated_msi: self.cfg.isolated_msi,
        })
    }

    /// `arm_smmu_device_group`.
    fn device_group(&self, desc: &DeviceDesc) -> GroupKey {
        match &desc.bus {
            Bus::Pci(pci) => pci_device_group(pci),
            _ => GroupKey::Singleton,
        }
    }

    /// `arm_smmu_capable`.
    fn capable(&self, dev: &Device, cap: Cap) -> bool {
        let Ok(inst) = smmu_of(dev) else {
            return false;
        };
        match cap {
            Cap::CacheCoherency => inst.regs.coherent(),
            Cap::NoExec => true,
            Cap::DirtyTracking => inst.regs.dbm_capable(),
            Cap::EnforceCacheCoherency => false,
        }
    }

    /// `arm_smmu_hw_info` (post-6.12 upstream).
    fn hw_info(&self, dev: &Device, data_type: u32) -> Option<Result<HwInfo, Errno>> {
        if data_type != IOMMU_HW_INFO_TYPE_DEFAULT && data_type != IOMMU_HW_INFO_TYPE_ARM_SMMUV3 {
            return Some(Err(Errno::OPNOTSUPP));
        }
        let regs = smmu_of(dev).map_or(self.regs, |inst| inst.regs);
        let info = HwInfoArmSmmuv3 {
            flags: 0,
            __reserved: 0,
            idr: regs.idr,
            iidr: regs.iidr,
            aidr: regs.aidr,
        };
        Some(Ok(HwInfo {
            data_type: IOMMU_HW_INFO_TYPE_ARM_SMMUV3,
            data: info.as_bytes().to_vec(),
        }))
    }

    fn blocked_domain(&self) -> Option<Arc<dyn Domain>> {
        Some(self.blocked.clone())
    }

    fn identity_domain(&self) -> Option<Arc<dyn Domain>> {
        Some(self.identity.clone())
    }

    /// `arm_smmu_domain_alloc_paging` without a device: finalized at attach.
    fn domain_alloc_paging(&self, dev: &Device) -> Result<Arc<dyn Domain>, Errno> {
        let inst = smmu_of(dev).map_err(|_| Errno::NODEV)?;
        Ok(Arc::new(SmmuDomain::new(inst.regs.pgsize_bitmap())))
    }

    fn has_domain_alloc_user(&self) -> bool {
        self.cfg.domain_alloc_user
    }

    /// `arm_smmu_domain_alloc_user` (only with the `domain_alloc_user` property).
    fn domain_alloc_user(
        &self,
        dev: &Device,
        flags: u32,
        parent: Option<&Arc<dyn Domain>>,
        data: Option<&UserData<'_>>,
    ) -> Result<Arc<dyn Domain>, Errno> {
        use iommu::ops::alloc_flags::DIRTY_TRACKING;
        if !self.cfg.domain_alloc_user {
            return Err(Errno::OPNOTSUPP);
        }
        if flags & !DIRTY_TRACKING != 0 {
            return Err(Errno::OPNOTSUPP);
        }
        if parent.is_some() || data.is_some() {
            return Err(Errno::OPNOTSUPP);
        }
        let inst = smmu_of(dev).map_err(|_| Errno::NODEV)?;
        let dirty = flags & DIRTY_TRACKING != 0;
        // iommufd checks the capability first; refuse here too rather than build
        // DBM tables the instance would not update.
        if dirty && !inst.regs.dbm_capable() {
            return Err(Errno::OPNOTSUPP);
        }
        let domain = SmmuDomain::new(inst.regs.pgsize_bitmap());
        domain.finalise(inst, dirty)?;
        Ok(Arc::new(domain))
    }

    /// `arm_smmu_get_resv_regions`.
    fn get_resv_regions(&self, _dev: &Device) -> Vec<ResvRegion> {
        vec![ResvRegion {
            start: MSI_IOVA_BASE,
            length: MSI_IOVA_LENGTH,
            prot: Prot::WRITE | Prot::NOEXEC | Prot::MMIO,
            ty: ResvType::SwMsi,
        }]
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
