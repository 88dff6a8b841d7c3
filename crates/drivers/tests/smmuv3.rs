//! The SMMUv3-like driver: domains finalized at first attach on real ARMv8 tables,
//! per-instance stages/granules/sizes, dirty tracking, PASIDs, hw_info, reserved
//! regions and stream IDs.

mod common;

use std::sync::Arc;

use common::*;
use drivers::smmuv3::regs::{SmmuRegs, IDR0_HTTU_ACCESS_DIRTY, IDR0_S1P, IDR0_S2P};
use drivers::smmuv3::{SmmuStage, MSI_IOVA_BASE, MSI_IOVA_LENGTH};
use drivers::{SmmuDomain, SmmuV3, SmmuV3Config};
use iommu::ops::alloc_flags::{DIRTY_TRACKING, NEST_PARENT};
use iommu::{
    map, paging_domain_alloc, AttachHandle, Cap, DefaultPolicy, Device, Domain, DomainType,
    Platform, Prot, ResvType, DIRTY_NO_CLEAR,
};
use pt::fmt::Granule;
use uapi::{
    Errno, HwInfoArmSmmuv3, IOMMU_HW_INFO_TYPE_ARM_SMMUV3, IOMMU_HW_INFO_TYPE_DEFAULT,
    IOMMU_HW_INFO_TYPE_INTEL_VTD,
};
use zerocopy::FromBytes;

const RW: Prot = Prot::READ.union(Prot::WRITE);

fn smmu(name: &str, f: impl FnOnce(&mut SmmuV3Config)) -> Arc<SmmuV3> {
    let mut cfg = SmmuV3Config {
        name: name.into(),
        ..SmmuV3Config::default()
    };
    f(&mut cfg);
    SmmuV3::new(cfg).expect("valid config")
}

fn device(platform: &Platform, inst: &Arc<SmmuV3>, name: &str, sid: u32) -> Arc<Device> {
    inst.add_device(name);
    probe(platform, &inst.ops(), platform_dev(name, &[sid]))
}

fn smmu_domain(domain: &Arc<dyn Domain>) -> &SmmuDomain {
    SmmuDomain::from_domain(domain.as_ref()).expect("an SMMUv3 domain")
}

#[test]
fn paging_domains_are_unfinalized_until_the_first_attach() {
    let platform = Platform::new(DefaultPolicy::Dma);
    let inst = smmu("smmu0", |_| {});
    let dev = device(&platform, &inst, "dev0", 1);
    assert!(!inst.ops().has_domain_alloc_user());

    let domain = paging_domain_alloc(&dev).unwrap();
    let d = smmu_domain(&domain);
    assert!(!d.is_finalized() && d.page_table().is_none());
    assert_eq!(domain.pgsize_bitmap(), inst.regs().pgsize_bitmap());
    assert_eq!(domain.geometry().aperture_end, 0);
    assert!(!domain.geometry().force_aperture);
    assert_eq!(
        map::map(domain.as_ref(), 0, 0, 1 << 16, RW, u64::MAX),
        Err(Errno::NODEV)
    );
    assert_eq!(map::unmap(domain.as_ref(), 0, 1 << 16), 0);
    assert_eq!(domain.dma_translate(0, false), Err(Errno::NOENT));

    assert_eq!(dev.group().attach(&domain), Ok(()));
    assert!(d.is_finalized());
    assert_eq!(d.stage(), Some(SmmuStage::S1));
    assert_eq!(d.granule(), Some(Granule::K4));
    assert_eq!(d.instance_id(), Some(inst.id()));
    assert_eq!(domain.pgsize_bitmap(), SZ_4K | SZ_2M | SZ_1G);
    assert_eq!(domain.geometry().aperture_end, (1 << 48) - 1);
    assert!(domain.geometry().force_aperture);
    map::map(domain.as_ref(), 0, 0x8000_0000, SZ_2M, RW, u64::MAX).unwrap();
    assert_eq!(domain.iova_to_phys(0x1234), 0x8000_1234);
}

#[test]
fn finalization_takes_stage_granule_and_sizes_from_the_instance() {
    let platform = Platform::new(DefaultPolicy::Dma);
    let s2 = smmu("smmu0", |c| {
        c.stage1 = false;
        c.granule_4k = false;
        c.oas = 40;
    });
    let only64 = smmu("smmu1", |c| {
        c.granule_4k = false;
        c.granule_16k = false;
        c.oas = 44;
    });
    let a = device(&platform, &s2, "a", 1);
    let b = device(&platform, &only64, "b", 1);

    // The default DMA domains were finalized by their first attach at probe.
    let da = a.group().default_domain().unwrap();
    let d = smmu_domain(&da);
    assert_eq!(d.stage(), Some(SmmuStage::S2));
    assert_eq!(d.granule(), Some(Granule::K16));
    assert_eq!(da.pgsize_bitmap(), 1 << 14 | 1 << 25);
    assert_eq!(
        da.geometry().aperture_end,
        (1 << 40) - 1,
        "stage 2 input = IAS"
    );
    assert_eq!(d.page_table().unwrap().geometry().oa_lg2, 40);

    let db = b.group().default_domain().unwrap();
    assert_eq!(smmu_domain(&db).granule(), Some(Granule::K64));
    assert_eq!(db.pgsize_bitmap(), 1 << 16 | 1 << 29);
    assert_eq!(db.geometry().aperture_end, (1 << 48) - 1, "stage 1 input");
    assert_eq!(smmu_domain(&db).page_table().unwrap().geometry().oa_lg2, 44);
}

#[test]
fn a_domain_finalized_on_one_instance_is_refused_by_another() {
    let platform = Platform::new(DefaultPolicy::Dma);
    let one = smmu("smmu0", |_| {});
    let two = smmu("smmu1", |_| {});
    let a = device(&platform, &one, "a", 1);
    let b = device(&platform, &two, "b", 1);
    // Allocated for a's instance but first attached to b: finalized on b's.
    let domain = paging_domain_alloc(&a).unwrap();
    assert_eq!(b.group().attach(&domain), Ok(()));
    assert_eq!(smmu_domain(&domain).instance_id(), Some(two.id()));
    let before = a.group().domain().unwrap();
    assert_eq!(a.group().attach(&domain), Err(Errno::INVAL));
    assert!(std::ptr::addr_eq(
        Arc::as_ptr(&a.group().domain().unwrap()),
        Arc::as_ptr(&before)
    ));
    assert_eq!(domain.set_dev_pasid(&a, 1), Err(Errno::INVAL));
}

#[test]
fn map_unmap_translate_use_blocks_where_aligned() {
    let platform = Platform::new(DefaultPolicy::Dma);
    let inst = smmu("smmu0", |_| {});
    let dev = device(&platform, &inst, "a", 1);
    let domain = paging_domain_alloc(&dev).unwrap();
    dev.group().attach(&domain).unwrap();
    let table = smmu_domain(&domain).page_table().unwrap();
    let len = SZ_1G + SZ_2M + SZ_4K;
    map::map(domain.as_ref(), SZ_1G, 4 * SZ_1G, len, RW, u64::MAX).unwrap();
    assert_eq!(table.lookup(SZ_1G).unwrap().size, SZ_1G);
    assert_eq!(table.lookup(2 * SZ_1G).unwrap().size, SZ_2M);
    assert_eq!(table.lookup(2 * SZ_1G + SZ_2M).unwrap().size, SZ_4K);
    let t = domain.dma_translate(2 * SZ_1G + 0x10, true).unwrap();
    assert_eq!((t.pa, t.len), (5 * SZ_1G + 0x10, SZ_2M - 0x10));

    map::map(domain.as_ref(), 0, 0x1000, SZ_4K, Prot::READ, u64::MAX).unwrap();
    assert_eq!(domain.dma_translate(0, true), Err(Errno::PERM));
    assert_eq!(
        map::map(domain.as_ref(), SZ_4K, 0, SZ_4K, Prot::empty(), u64::MAX),
        Err(Errno::INVAL)
    );

    // 6.12's io-pgtable-arm splits a block on a partial unmap.
    assert_eq!(map::unmap(domain.as_ref(), 2 * SZ_1G, SZ_4K), SZ_4K);
    assert_eq!(domain.iova_to_phys(2 * SZ_1G), 0);
    assert_eq!(domain.iova_to_phys(2 * SZ_1G + SZ_4K), 5 * SZ_1G + SZ_4K);
    assert_eq!(map::unmap(domain.as_ref(), SZ_1G, SZ_1G), SZ_1G);
    assert_eq!(domain.dma_translate(SZ_1G, false), Err(Errno::NOENT));
}

#[test]
fn dirty_tracking_with_httu_reports_and_clears_emulated_dma_writes() {
    let platform = Platform::new(DefaultPolicy::Dma);
    let inst = smmu("smmu0", |c| c.domain_alloc_user = true);
    let dev = device(&platform, &inst, "a", 1);
    assert!(dev.capable(Cap::DirtyTracking));
    let ops = inst.ops();
    assert!(ops.has_domain_alloc_user());
    let domain = ops
        .domain_alloc_user(&dev, DIRTY_TRACKING, None, None)
        .unwrap();
    let d = smmu_domain(&domain);
    assert!(
        d.is_finalized(),
        "domain_alloc_user finalizes at allocation"
    );
    assert_eq!(d.stage(), Some(SmmuStage::S1));
    let dirty = domain.dirty_ops().expect("dirty ops");
    map::map(domain.as_ref(), 0, 0, SZ_2M + SZ_4K, RW, u64::MAX).unwrap();
    dirty.set_dirty_tracking(true).unwrap();
    assert_eq!(
        read_dirty(dirty, 0, SZ_1G, 0).unwrap(),
        vec![],
        "mapped clean"
    );

    domain.dma_translate(SZ_2M, true).unwrap();
    domain.dma_translate(8, false).unwrap();
    assert_eq!(
        read_dirty(dirty, 0, SZ_1G, DIRTY_NO_CLEAR).unwrap(),
        vec![(SZ_2M, SZ_4K)]
    );
    domain.dma_translate(0x1000, true).unwrap();
    let all = vec![(0, SZ_2M), (SZ_2M, SZ_4K)];
    assert_eq!(read_dirty(dirty, 0, SZ_1G, 0).unwrap(), all);
    assert_eq!(read_dirty(dirty, 0, SZ_1G, 0).unwrap(), vec![], "cleared");
    // Writes still go through after clearing (DBM makes the leaf writable-clean).
    domain.dma_translate(0x1000, true).unwrap();
    assert_eq!(read_dirty(dirty, 0, SZ_1G, 0).unwrap(), vec![(0, SZ_2M)]);
}

#[test]
fn dirty_tracking_is_refused_without_httu_or_on_stage_2() {
    let platform = Platform::new(DefaultPolicy::Dma);
    let nohd = smmu("smmu0", |c| {
        c.httu_dirty = false;
        c.domain_alloc_user = true;
    });
    let s2 = smmu("smmu1", |c| {
        c.stage1 = false;
        c.domain_alloc_user = true;
    });
    let legacy = smmu("smmu2", |_| {});
    let a = device(&platform, &nohd, "a", 1);
    let b = device(&platform, &s2, "b", 1);
    let c = device(&platform, &legacy, "c", 1);
    assert!(!a.capable(Cap::DirtyTracking));
    assert!(b.capable(Cap::DirtyTracking), "HTTU and coherent");
    let alloc = |inst: &Arc<SmmuV3>, dev: &Device, flags| {
        inst.ops().domain_alloc_user(dev, flags, None, None).err()
    };
    assert_eq!(alloc(&nohd, &a, DIRTY_TRACKING), Some(Errno::OPNOTSUPP));
    assert_eq!(
        alloc(&s2, &b, DIRTY_TRACKING),
        Some(Errno::OPNOTSUPP),
        "stage 2"
    );
    assert_eq!(alloc(&s2, &b, NEST_PARENT), Some(Errno::OPNOTSUPP));
    assert_eq!(
        alloc(&legacy, &c, 0),
        Some(Errno::OPNOTSUPP),
        "no domain_alloc_user"
    );
    assert_eq!(alloc(&s2, &b, 0), None);
    let plain = paging_domain_alloc(&c).unwrap();
    c.group().attach(&plain).unwrap();
    assert!(plain.dirty_ops().is_none());

    let incoherent = smmu("smmu3", |c| c.coherent = false);
    let d = device(&platform, &incoherent, "d", 1);
    assert!(!d.capable(Cap::DirtyTracking), "DBM needs coherency");
    assert!(!d.capable(Cap::CacheCoherency));
    assert!(d.capable(Cap::NoExec));
    assert!(!d.capable(Cap::EnforceCacheCoherency));
}

#[test]
fn pasids_need_stage_1_and_exclude_stage_2_at_the_rid() {
    let platform = Platform::new(DefaultPolicy::Dma);
    let both = smmu("smmu0", |_| {});
    let s2only = smmu("smmu1", |c| c.stage1 = false);
    let mut desc = platform_dev("a", &[1]);
    desc.pasid_bits = 8;
    both.add_device("a");
    let a = probe(&platform, &both.ops(), desc);
    assert_eq!(a.max_pasids(), 256);
    let mut desc = platform_dev("b", &[1]);
    desc.pasid_bits = 8;
    s2only.add_device("b");
    let b = probe(&platform, &s2only.ops(), desc);

    // A stage 2 domain cannot take PASIDs.
    let s2 = paging_domain_alloc(&b).unwrap();
    assert_eq!(s2.set_dev_pasid(&b, 1), Err(Errno::INVAL));
    assert_eq!(smmu_domain(&s2).stage(), Some(SmmuStage::S2));

    // PASID attach finalizes a fresh domain as stage 1.
    let s1 = paging_domain_alloc(&a).unwrap();
    let handle = AttachHandle {
        domain: s1.clone(),
        data: None,
        iopf: None,
    };
    assert_eq!(a.attach_pasid(&s1, 3, handle), Ok(()));
    assert_eq!(smmu_domain(&s1).stage(), Some(SmmuStage::S1));
    a.detach_pasid(&s1, 3);

    // With the RID on a stage 2 domain (a stage 2 instance here), PASIDs are refused.
    b.group().attach(&s2).unwrap();
    let s1_on_b = paging_domain_alloc(&b).unwrap();
    assert_eq!(s1_on_b.set_dev_pasid(&b, 1), Err(Errno::INVAL));
}

#[test]
fn hw_info_reports_the_smmuv3_struct_with_consistent_id_registers() {
    let platform = Platform::new(DefaultPolicy::Dma);
    let inst = smmu("smmu0", |c| {
        c.granule_16k = false;
        c.oas = 44;
        c.ssid_bits = 10;
        c.sid_bits = 12;
    });
    let dev = device(&platform, &inst, "a", 1);
    let ops = inst.ops();
    let info = ops
        .hw_info(&dev, IOMMU_HW_INFO_TYPE_DEFAULT)
        .unwrap()
        .unwrap();
    assert_eq!(info.data_type, IOMMU_HW_INFO_TYPE_ARM_SMMUV3);
    assert_eq!(info.data.len(), 40);
    let s = HwInfoArmSmmuv3::read_from_bytes(&info.data).unwrap();
    assert_eq!((s.flags, s.__reserved), (0, 0));
    let regs = SmmuRegs {
        idr: s.idr,
        iidr: s.iidr,
        aidr: s.aidr,
    };
    assert_eq!(regs, inst.regs());
    assert_eq!(s.idr[0] & (IDR0_S1P | IDR0_S2P), IDR0_S1P | IDR0_S2P);
    assert_eq!((s.idr[0] >> 6) & 3, IDR0_HTTU_ACCESS_DIRTY);
    assert_eq!(regs.oas(), 44);
    assert_eq!(s.idr[5] & 7, 4, "IDR5.OAS encodes 44 bits");
    assert_eq!(regs.ssid_bits(), 10);
    assert_eq!(regs.sid_bits(), 12);
    assert_eq!(
        regs.pgsize_bitmap(),
        SZ_4K | SZ_2M | SZ_1G | 1 << 16 | 1 << 29
    );
    assert_eq!(s.aidr & 0xf0, 0, "SMMUv3.x");
    assert_eq!(
        ops.hw_info(&dev, IOMMU_HW_INFO_TYPE_INTEL_VTD)
            .unwrap()
            .err(),
        Some(Errno::OPNOTSUPP)
    );
}

#[test]
fn reserved_region_is_the_software_msi_window() {
    let platform = Platform::new(DefaultPolicy::Dma);
    let inst = smmu("smmu0", |_| {});
    let dev = device(&platform, &inst, "a", 1);
    let regions = dev.resv_regions();
    assert_eq!(regions.len(), 1);
    let r = regions[0];
    assert_eq!(r.ty, ResvType::SwMsi);
    assert_eq!((r.start, r.length), (MSI_IOVA_BASE, MSI_IOVA_LENGTH));
    assert_eq!((r.start, r.length), (0x800_0000, 0x10_0000));
    assert_eq!(r.prot, Prot::WRITE | Prot::NOEXEC | Prot::MMIO);
    assert_eq!(dev.group().resv_regions(), regions);
}

#[test]
fn probe_checks_scope_and_stream_ids() {
    let platform = Platform::new(DefaultPolicy::Dma);
    let inst = smmu("smmu0", |c| c.sid_bits = 8);
    let ops = inst.ops();
    assert_eq!(
        platform.probe(&ops, platform_dev("x", &[1])).err(),
        Some(Errno::NODEV)
    );
    inst.add_device("big");
    assert_eq!(
        platform.probe(&ops, platform_dev("big", &[256])).err(),
        Some(Errno::RANGE)
    );
    let a = device(&platform, &inst, "a", 7);
    inst.add_device("b");
    assert_eq!(
        platform.probe(&ops, platform_dev("b", &[9, 7])).err(),
        Some(Errno::INVAL),
        "stream 7 belongs to a"
    );
    let b = probe(&platform, &ops, platform_dev("b", &[9, 10]));
    // Platform devices are never grouped by stream ID (arm_smmu_device_group).
    assert_ne!(a.group().id(), b.group().id());
    // PCI functions use their requester ID and the PCI topology.
    inst.add_device("f0");
    assert_eq!(
        platform.probe(&ops, pci("f0", addr(1, 0, 0))).err(),
        Some(Errno::RANGE),
        "RID 0x100 needs 9 bits"
    );
    let wide = smmu("smmu1", |_| {});
    wide.add_device("f0");
    wide.add_device("f1");
    let g0 = probe(&platform, &wide.ops(), pci("f0", addr(1, 0, 0)).with_mf());
    let g1 = probe(&platform, &wide.ops(), pci("f1", addr(1, 0, 1)).with_mf());
    assert_eq!(
        g0.group().id(),
        g1.group().id(),
        "multi-function without ACS"
    );
}

trait WithMf {
    fn with_mf(self) -> Self;
}

impl WithMf for iommu::DeviceDesc {
    fn with_mf(mut self) -> Self {
        if let iommu::topology::Bus::Pci(p) = &mut self.bus {
            p.multifunction = true;
        }
        self
    }
}

#[test]
fn default_domains_follow_the_policy() {
    let platform = Platform::new(DefaultPolicy::Passthrough);
    let inst = smmu("smmu0", |_| {});
    let dev = device(&platform, &inst, "a", 1);
    let default = dev.group().default_domain().unwrap();
    assert_eq!(default.domain_type(), DomainType::Identity);
    let dma = Platform::new(DefaultPolicy::Dma);
    let inst = smmu("smmu1", |_| {});
    let dev = device(&dma, &inst, "b", 1);
    let default = dev.group().default_domain().unwrap();
    assert!(smmu_domain(&default).is_finalized());
    // Claiming DMA ownership moves the group to the static blocking domain.
    dev.claim_dma_owner(iommu::OwnerId(1)).unwrap();
    assert_eq!(
        dev.group().domain().unwrap().domain_type(),
        DomainType::Blocked
    );
    dev.release_dma_owner();
}

#[test]
fn bad_configurations_are_refused_with_a_message() {
    let bad = |f: fn(&mut SmmuV3Config)| {
        let mut cfg = SmmuV3Config::default();
        f(&mut cfg);
        SmmuV3::new(cfg).err().map(|e| e.to_string())
    };
    assert!(bad(|c| {
        c.stage1 = false;
        c.stage2 = false;
    })
    .unwrap()
    .contains("stage"));
    assert!(bad(|c| {
        c.granule_4k = false;
        c.granule_16k = false;
        c.granule_64k = false;
    })
    .unwrap()
    .contains("granule"));
    assert!(bad(|c| c.oas = 52).unwrap().contains("52"));
    assert!(bad(|c| c.oas = 47).unwrap().contains("oas"));
    assert!(bad(|c| c.ssid_bits = 21).unwrap().contains("ssid_bits"));
    assert!(bad(|c| c.sid_bits = 0).unwrap().contains("sid_bits"));
    assert_eq!(bad(|_| {}), None);
}
