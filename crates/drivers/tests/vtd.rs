//! The VT-d-like driver: paging domains on real second-stage tables, per-instance
//! properties, attach compatibility, dirty tracking, snoop control, nesting,
//! hw_info and reserved regions.

mod common;

use std::sync::Arc;

use common::*;
use drivers::vtd::{regs::VtdRegs, IOAPIC_RANGE_START};
use drivers::{Rmrr, Vtd, VtdConfig, VtdDomain, VtdNested};
use iommu::ops::alloc_flags::{DIRTY_TRACKING, NEST_PARENT};
use iommu::{
    map, paging_domain_alloc, Cap, DefaultPolicy, Device, Domain, DomainType, Platform, Prot,
    ResvType, UserData, UserDataArray, DIRTY_NO_CLEAR,
};
use uapi::{
    Errno, HwInfoVtd, HwptVtdS1, HwptVtdS1Invalidate, IOMMU_HWPT_DATA_SELFTEST,
    IOMMU_HWPT_DATA_VTD_S1, IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, IOMMU_HW_INFO_TYPE_ARM_SMMUV3,
    IOMMU_HW_INFO_TYPE_DEFAULT, IOMMU_HW_INFO_TYPE_INTEL_VTD,
    IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17, IOMMU_VTD_INV_FLAGS_LEAF, IOMMU_VTD_S1_SRE,
};
use zerocopy::{FromBytes, IntoBytes};

const RW: Prot = Prot::READ.union(Prot::WRITE);

fn vtd(name: &str, f: impl FnOnce(&mut VtdConfig)) -> Arc<Vtd> {
    let mut cfg = VtdConfig {
        name: name.into(),
        ..VtdConfig::default()
    };
    f(&mut cfg);
    Vtd::new(cfg).expect("valid config")
}

/// Probes a PCI device at `00:<slot>.0` behind `inst`.
fn device(platform: &Platform, inst: &Arc<Vtd>, name: &str, slot: u8) -> Arc<Device> {
    inst.add_device(name, &[]);
    probe(platform, &inst.ops(), pci(name, addr(0, slot, 0)))
}

fn setup(f: impl FnOnce(&mut VtdConfig)) -> (Platform, Arc<Vtd>, Arc<Device>) {
    let platform = Platform::new(DefaultPolicy::Dma);
    let inst = vtd("dmar0", f);
    let dev = device(&platform, &inst, "dev0", 1);
    (platform, inst, dev)
}

fn same(a: &Arc<dyn Domain>, b: &Arc<dyn Domain>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

fn leaf_size(domain: &Arc<dyn Domain>, iova: u64) -> Option<u64> {
    let d = VtdDomain::from_domain(domain.as_ref()).expect("a VT-d domain");
    d.page_table().lookup(iova).map(|leaf| leaf.size)
}

#[test]
fn map_uses_large_pages_where_aligned_and_translation_checks_permissions() {
    let (_p, _inst, dev) = setup(|_| {});
    let domain = paging_domain_alloc(&dev).unwrap();
    let iova = SZ_1G;
    let pa = 2 * SZ_1G;
    let len = SZ_1G + SZ_2M + 2 * SZ_4K;
    map::map(domain.as_ref(), iova, pa, len, RW, u64::MAX).unwrap();
    assert_eq!(leaf_size(&domain, iova), Some(SZ_1G));
    assert_eq!(leaf_size(&domain, iova + SZ_1G), Some(SZ_2M));
    assert_eq!(leaf_size(&domain, iova + SZ_1G + SZ_2M), Some(SZ_4K));
    assert_eq!(
        domain.iova_to_phys(iova + SZ_1G + 0x1234),
        pa + SZ_1G + 0x1234
    );

    let t = domain.dma_translate(iova + 0x1234, true).unwrap();
    assert_eq!((t.pa, t.len), (pa + 0x1234, SZ_1G - 0x1234));

    // A read-only mapping refuses DMA writes.
    map::map(
        domain.as_ref(),
        0x10_0000,
        0x10_0000,
        SZ_4K,
        Prot::READ,
        u64::MAX,
    )
    .unwrap();
    assert!(domain.dma_translate(0x10_0000, false).is_ok());
    assert_eq!(domain.dma_translate(0x10_0000, true), Err(Errno::PERM));

    assert_eq!(map::unmap(domain.as_ref(), iova, len), len);
    assert_eq!(domain.iova_to_phys(iova), 0);
    assert_eq!(domain.dma_translate(iova, false), Err(Errno::NOENT));
}

#[test]
fn instance_without_superpages_maps_only_4k_pages() {
    let (_p, _inst, dev) = setup(|c| {
        c.superpage_2m = false;
        c.superpage_1g = false;
    });
    let domain = paging_domain_alloc(&dev).unwrap();
    assert_eq!(domain.pgsize_bitmap(), SZ_4K);
    map::map(domain.as_ref(), SZ_2M, SZ_2M, SZ_2M, RW, u64::MAX).unwrap();
    assert_eq!(leaf_size(&domain, SZ_2M), Some(SZ_4K));
    assert_eq!(leaf_size(&domain, 2 * SZ_2M - SZ_4K), Some(SZ_4K));
}

#[test]
fn paging_domains_take_the_width_and_page_sizes_of_the_device_instance() {
    let platform = Platform::new(DefaultPolicy::Dma);
    let wide = vtd("dmar0", |c| c.address_width = 57);
    let narrow = vtd("dmar1", |c| {
        c.address_width = 39;
        c.superpage_1g = false;
    });
    let a = device(&platform, &wide, "a", 1);
    let b = device(&platform, &narrow, "b", 2);

    let da = paging_domain_alloc(&a).unwrap();
    let db = paging_domain_alloc(&b).unwrap();
    assert_eq!(da.geometry().aperture_end, (1 << 57) - 1);
    assert!(da.geometry().force_aperture);
    assert_eq!(da.pgsize_bitmap(), SZ_4K | SZ_2M | SZ_1G);
    assert_eq!(db.geometry().aperture_end, (1 << 39) - 1);
    assert_eq!(db.pgsize_bitmap(), SZ_4K | SZ_2M);
    assert_eq!(VtdDomain::from_domain(da.as_ref()).unwrap().width(), 57);
    assert_eq!(
        VtdDomain::from_domain(da.as_ref())
            .unwrap()
            .page_table()
            .geometry()
            .levels,
        5
    );
    assert_eq!(
        VtdDomain::from_domain(db.as_ref())
            .unwrap()
            .page_table()
            .geometry()
            .levels,
        3
    );
    // The default DMA domains follow the same rule.
    let default_b = b.group().default_domain().unwrap();
    assert_eq!(default_b.geometry().aperture_end, (1 << 39) - 1);
}

#[test]
fn attach_refuses_a_wider_domain_or_missing_superpages_with_einval() {
    let platform = Platform::new(DefaultPolicy::Dma);
    let wide = vtd("dmar0", |c| c.address_width = 57);
    let narrow = vtd("dmar1", |c| {
        c.address_width = 39;
        c.superpage_1g = false;
    });
    let small = vtd("dmar2", |c| {
        c.address_width = 57;
        c.superpage_2m = false;
        c.superpage_1g = false;
    });
    let a = device(&platform, &wide, "a", 1);
    let b = device(&platform, &narrow, "b", 2);
    let c = device(&platform, &small, "c", 3);

    let da = paging_domain_alloc(&a).unwrap();
    let before = b.group().domain().unwrap();
    assert_eq!(b.group().attach(&da), Err(Errno::INVAL), "wider domain");
    assert!(
        same(&b.group().domain().unwrap(), &before),
        "old domain restored"
    );
    assert_eq!(c.group().attach(&da), Err(Errno::INVAL), "superpages");

    // A narrower domain without 1 GiB pages fits the wide instance.
    let db = paging_domain_alloc(&b).unwrap();
    assert_eq!(a.group().attach(&db), Ok(()));
    // ... but its 2 MiB pages do not fit the instance without superpages.
    assert_eq!(c.group().attach(&db), Err(Errno::INVAL));
    // A domain of the superpage-less instance fits everywhere it is narrow enough.
    let dc = paging_domain_alloc(&c).unwrap();
    assert_eq!(b.group().attach(&dc), Err(Errno::INVAL), "57 bits on 39");
    a.group().detach();
    assert_eq!(a.group().attach(&dc), Ok(()));
}

#[test]
fn attach_refuses_another_drivers_domain() {
    let (_p, _inst, dev) = setup(|_| {});
    let mock = mock::MockIommu::new();
    let mock_dev = mock.create_device(0).unwrap();
    let mock_domain = paging_domain_alloc(&mock_dev).unwrap();
    assert_eq!(dev.group().attach(&mock_domain), Err(Errno::INVAL));
    // And the driver itself refuses a device that is not behind a VT-d instance.
    let domain = paging_domain_alloc(&dev).unwrap();
    assert_eq!(domain.attach_dev(&mock_dev), Err(Errno::INVAL));
}

#[test]
fn mapping_past_the_domain_width_faults() {
    let (_p, _inst, dev) = setup(|c| c.address_width = 39);
    let domain = paging_domain_alloc(&dev).unwrap();
    let last_page = (1 << 39) - SZ_4K;
    map::map(domain.as_ref(), last_page, 0, SZ_4K, RW, u64::MAX).unwrap();
    assert_eq!(
        map::map(domain.as_ref(), 1 << 39, 0, SZ_4K, RW, u64::MAX),
        Err(Errno::FAULT)
    );
}

#[test]
fn dirty_tracking_reports_and_clears_emulated_dma_writes() {
    let (_p, inst, dev) = setup(|_| {});
    assert!(dev.capable(Cap::DirtyTracking));
    let ops = inst.ops();
    let domain = ops
        .domain_alloc_user(&dev, DIRTY_TRACKING, None, None)
        .unwrap();
    let dirty = domain.dirty_ops().expect("dirty ops");
    map::map(domain.as_ref(), 0, 0, 2 * SZ_2M + SZ_4K, RW, u64::MAX).unwrap();
    assert_eq!(dev.group().attach(&domain), Ok(()));

    // Tracking is off: a recorder is refused, and writes leave no trace.
    assert_eq!(read_dirty(dirty, 0, 1 << 30, 0), Err(Errno::INVAL));
    domain.dma_translate(0x1000, true).unwrap();
    dirty.read_and_clear_dirty(0, 1 << 30, 0, None).unwrap();
    dirty.set_dirty_tracking(true).unwrap();
    assert_eq!(read_dirty(dirty, 0, 1 << 30, 0).unwrap(), vec![]);

    domain.dma_translate(0x1000, true).unwrap(); // inside the first 2 MiB leaf
    domain.dma_translate(SZ_2M + 8, false).unwrap(); // a read dirties nothing
    domain.dma_translate(2 * SZ_2M + 4, true).unwrap(); // the 4 KiB leaf
    let expect = vec![(0, SZ_2M), (2 * SZ_2M, SZ_4K)];
    assert_eq!(
        read_dirty(dirty, 0, 1 << 30, DIRTY_NO_CLEAR).unwrap(),
        expect
    );
    assert_eq!(read_dirty(dirty, 0, 1 << 30, 0).unwrap(), expect);
    assert_eq!(read_dirty(dirty, 0, 1 << 30, 0).unwrap(), vec![], "cleared");

    // The accessed flag is set by any DMA (VT-d second-stage A bit, §9.8).
    let d = VtdDomain::from_domain(domain.as_ref()).unwrap();
    let leaf = d.page_table().lookup(SZ_2M).unwrap();
    assert_ne!(leaf.raw & pt::fmt::vtdss::A, 0);
}

#[test]
fn dirty_tracking_is_refused_without_second_stage_ad() {
    let platform = Platform::new(DefaultPolicy::Dma);
    let with = vtd("dmar0", |_| {});
    let without = vtd("dmar1", |c| c.dirty_tracking = false);
    let a = device(&platform, &with, "a", 1);
    let b = device(&platform, &without, "b", 2);
    assert!(!b.capable(Cap::DirtyTracking));
    assert_eq!(
        without
            .ops()
            .domain_alloc_user(&b, DIRTY_TRACKING, None, None)
            .err(),
        Some(Errno::OPNOTSUPP)
    );
    assert!(paging_domain_alloc(&b).unwrap().dirty_ops().is_none());
    // A dirty-tracking domain of another instance is refused at attach.
    let dirty = with
        .ops()
        .domain_alloc_user(&a, DIRTY_TRACKING, None, None)
        .unwrap();
    assert_eq!(b.group().attach(&dirty), Err(Errno::INVAL));
    // ... and cannot be attached to a PASID.
    assert_eq!(dirty.set_dev_pasid(&a, 1), Err(Errno::INVAL));
}

#[test]
fn domain_alloc_user_checks_flags_in_kernel_order() {
    let platform = Platform::new(DefaultPolicy::Dma);
    let plain = vtd("dmar0", |c| {
        c.nesting = false;
        c.dirty_tracking = false;
    });
    let dev = device(&platform, &plain, "a", 1);
    let ops = plain.ops();
    assert!(ops.has_domain_alloc_user());
    let mem = Mem(vec![0; 64]);
    let data = UserData {
        data_type: IOMMU_HWPT_DATA_VTD_S1,
        uptr: 0,
        len: 24,
        mem: &mem,
    };
    let err = |flags, data| ops.domain_alloc_user(&dev, flags, None, data).err();
    assert_eq!(err(1 << 5, None), Some(Errno::OPNOTSUPP), "unknown flag");
    assert_eq!(err(NEST_PARENT, None), Some(Errno::OPNOTSUPP), "no nesting");
    assert_eq!(
        err(DIRTY_TRACKING, None),
        Some(Errno::OPNOTSUPP),
        "no SSADS"
    );
    assert_eq!(
        err(0, Some(&data)),
        Some(Errno::OPNOTSUPP),
        "data without parent"
    );
    assert_eq!(err(0, None), None);
    // A nested domain on an instance without nesting.
    let parent = ops.domain_alloc_user(&dev, 0, None, None).unwrap();
    assert_eq!(
        ops.domain_alloc_user(&dev, 0, Some(&parent), Some(&data))
            .err(),
        Some(Errno::OPNOTSUPP)
    );
}

fn s1_data(mem: &mut Mem, cfg: HwptVtdS1) -> UserData<'_> {
    mem.0[..24].copy_from_slice(cfg.as_bytes());
    UserData {
        data_type: IOMMU_HWPT_DATA_VTD_S1,
        uptr: 0,
        len: 24,
        mem,
    }
}

#[test]
fn nested_first_stage_domains_check_parent_flags_and_attach_limits() {
    let platform = Platform::new(DefaultPolicy::Dma);
    let inst = vtd("dmar0", |_| {}); // 48 bits: no 5-level first stage
    let legacy = vtd("dmar1", |c| {
        c.pasid_bits = 0; // no supervisor requests either
    });
    let narrow = vtd("dmar2", |c| c.address_width = 39);
    let a = device(&platform, &inst, "a", 1);
    let b = device(&platform, &legacy, "b", 2);
    let c = device(&platform, &narrow, "c", 3);
    let ops = inst.ops();

    let plain = ops.domain_alloc_user(&a, 0, None, None).unwrap();
    let parent = ops.domain_alloc_user(&a, NEST_PARENT, None, None).unwrap();
    let mut mem = Mem(vec![0; 64]);
    let good = HwptVtdS1 {
        flags: 0,
        pgtbl_addr: 0x1000,
        addr_width: 48,
        __reserved: 0,
    };
    let nested = |parent: &Arc<dyn Domain>, flags, mem: &mut Mem, cfg| {
        let data = s1_data(mem, cfg);
        ops.domain_alloc_user(&a, flags, Some(parent), Some(&data))
    };
    assert_eq!(
        nested(&parent, NEST_PARENT, &mut mem, good).err(),
        Some(Errno::OPNOTSUPP)
    );
    assert_eq!(
        nested(&plain, 0, &mut mem, good).err(),
        Some(Errno::INVAL),
        "not a parent"
    );
    let wrong_type = UserData {
        data_type: IOMMU_HWPT_DATA_SELFTEST,
        uptr: 0,
        len: 24,
        mem: &mem,
    };
    assert_eq!(
        ops.domain_alloc_user(&a, 0, Some(&parent), Some(&wrong_type))
            .err(),
        Some(Errno::OPNOTSUPP)
    );

    let s1 = nested(&parent, 0, &mut mem, good).unwrap();
    assert_eq!(s1.domain_type(), DomainType::Nested);
    assert_eq!(
        VtdNested::from_domain(s1.as_ref()).unwrap().s1_config(),
        &good
    );
    assert_eq!(a.group().attach(&s1), Ok(()));
    assert_eq!(
        c.group().attach(&s1),
        Err(Errno::NODEV),
        "instance narrower than parent"
    );

    let five = nested(
        &parent,
        0,
        &mut mem,
        HwptVtdS1 {
            addr_width: 57,
            ..good
        },
    )
    .unwrap();
    a.group().detach();
    assert_eq!(a.group().attach(&five), Err(Errno::INVAL), "no FL5LP");
    let sre = nested(
        &parent,
        0,
        &mut mem,
        HwptVtdS1 {
            flags: IOMMU_VTD_S1_SRE,
            ..good
        },
    )
    .unwrap();
    assert_eq!(b.group().attach(&sre), Err(Errno::INVAL), "no SRS");
    assert_eq!(a.group().attach(&sre), Ok(()));

    // Nesting parents refuse read-only mappings (erratum 772415).
    assert_eq!(
        map::map(parent.as_ref(), 0, 0, SZ_4K, Prot::READ, u64::MAX),
        Err(Errno::INVAL)
    );
    map::map(parent.as_ref(), 0, 0, SZ_4K, RW, u64::MAX).unwrap();
}

#[test]
fn nested_cache_invalidation_stops_at_the_first_bad_entry() {
    let (_p, inst, dev) = setup(|_| {});
    let ops = inst.ops();
    let parent = ops
        .domain_alloc_user(&dev, NEST_PARENT, None, None)
        .unwrap();
    let mut mem = Mem(vec![0; 64]);
    let cfg = HwptVtdS1 {
        flags: 0,
        pgtbl_addr: 0,
        addr_width: 48,
        __reserved: 0,
    };
    let data = s1_data(&mut mem, cfg);
    let s1 = ops
        .domain_alloc_user(&dev, 0, Some(&parent), Some(&data))
        .unwrap();
    assert!(s1.has_cache_invalidate_user());

    let entries = [
        HwptVtdS1Invalidate {
            addr: 0x2000,
            npages: 4,
            flags: IOMMU_VTD_INV_FLAGS_LEAF,
            __reserved: 0,
        },
        HwptVtdS1Invalidate {
            addr: 0,
            npages: u64::MAX,
            flags: 0,
            __reserved: 0,
        },
        HwptVtdS1Invalidate {
            addr: 0x2000,
            npages: 1,
            flags: 1 << 7,
            __reserved: 0,
        },
        HwptVtdS1Invalidate {
            addr: 0x2001,
            npages: 1,
            flags: 0,
            __reserved: 0,
        },
    ];
    let mem = Mem(entries.iter().flat_map(|e| e.as_bytes().to_vec()).collect());
    let array = |first: u32, n: u32, data_type: u32| {
        let mut a = UserDataArray {
            data_type,
            uptr: u64::from(first) * 24,
            entry_len: 24,
            entry_num: n,
            mem: &mem,
        };
        let res = s1.cache_invalidate_user(&mut a);
        (res, a.entry_num)
    };
    assert_eq!(array(0, 2, IOMMU_HWPT_INVALIDATE_DATA_VTD_S1), (Ok(()), 2));
    assert_eq!(
        array(0, 3, IOMMU_HWPT_INVALIDATE_DATA_VTD_S1),
        (Err(Errno::OPNOTSUPP), 2)
    );
    assert_eq!(
        array(3, 1, IOMMU_HWPT_INVALIDATE_DATA_VTD_S1),
        (Err(Errno::INVAL), 0)
    );
    assert_eq!(array(0, 1, 1), (Err(Errno::INVAL), 0), "wrong type");
    assert_eq!(
        VtdNested::from_domain(s1.as_ref()).unwrap().invalidations(),
        4
    );
}

#[test]
fn cache_coherency_is_enforced_only_with_snoop_control() {
    let platform = Platform::new(DefaultPolicy::Dma);
    let sc = vtd("dmar0", |_| {});
    let nosc = vtd("dmar1", |c| c.snoop_control = false);
    let a = device(&platform, &sc, "a", 1);
    let b = device(&platform, &nosc, "b", 2);
    assert!(a.capable(Cap::EnforceCacheCoherency));
    assert!(!b.capable(Cap::EnforceCacheCoherency));
    assert!(a.capable(Cap::CacheCoherency) && b.capable(Cap::CacheCoherency));

    // Snoop control: enforced domains set SNP in every new leaf.
    let da = paging_domain_alloc(&a).unwrap();
    assert!(da.enforce_cache_coherency());
    assert_eq!(a.group().attach(&da), Ok(()));
    map::map(da.as_ref(), 0, 0, SZ_4K, RW, u64::MAX).unwrap();
    let vda = VtdDomain::from_domain(da.as_ref()).unwrap();
    assert!(vda
        .page_table()
        .lookup(0)
        .unwrap()
        .prot
        .contains(pt::Prot::CACHE));
    // Without enforcement, IOMMU_CACHE does not set SNP (intel_iommu_map ignores it).
    let plain = paging_domain_alloc(&a).unwrap();
    map::map(plain.as_ref(), 0, 0, SZ_4K, RW | Prot::CACHE, u64::MAX).unwrap();
    let vplain = VtdDomain::from_domain(plain.as_ref()).unwrap();
    assert!(!vplain
        .page_table()
        .lookup(0)
        .unwrap()
        .prot
        .contains(pt::Prot::CACHE));
    // A domain with mappings can no longer start enforcing.
    assert!(!plain.enforce_cache_coherency());

    // No snoop control: refused while a device of that instance is attached...
    let db = paging_domain_alloc(&b).unwrap();
    assert_eq!(b.group().attach(&db), Ok(()));
    assert!(!db.enforce_cache_coherency());
    // ... and an enforcing domain cannot be attached there.
    assert_eq!(
        b.group().attach(&da),
        Err(Errno::BUSY),
        "group holds a user domain"
    );
    b.group().detach();
    assert_eq!(b.group().attach(&da), Err(Errno::INVAL));
    // Once detached, the domain has no device and may enforce, as in the kernel;
    // the attach then fails instead.
    assert_eq!(vtd_attached(&db), 0);
    assert!(db.enforce_cache_coherency());
    assert_eq!(b.group().attach(&db), Err(Errno::INVAL));
}

fn vtd_attached(domain: &Arc<dyn Domain>) -> usize {
    VtdDomain::from_domain(domain.as_ref())
        .unwrap()
        .attached_devices()
}

#[test]
fn detaching_back_to_the_default_domain_drops_the_device_from_the_domain() {
    let (_p, _inst, dev) = setup(|_| {});
    let domain = paging_domain_alloc(&dev).unwrap();
    assert_eq!(vtd_attached(&domain), 0);
    dev.group().attach(&domain).unwrap();
    assert_eq!(vtd_attached(&domain), 1);
    dev.group().detach();
    assert_eq!(vtd_attached(&domain), 0);
    assert_eq!(vtd_attached(&dev.group().default_domain().unwrap()), 1);
}

#[test]
fn hw_info_reports_the_vtd_struct_with_consistent_registers() {
    let (_p, inst, dev) = setup(|c| {
        c.address_width = 57;
        c.snoop_control = false;
        c.pasid_bits = 10;
    });
    let ops = inst.ops();
    let info = ops
        .hw_info(&dev, IOMMU_HW_INFO_TYPE_DEFAULT)
        .unwrap()
        .unwrap();
    assert_eq!(info.data_type, IOMMU_HW_INFO_TYPE_INTEL_VTD);
    assert_eq!(info.data.len(), 24);
    let vtd_info = HwInfoVtd::read_from_bytes(&info.data).unwrap();
    assert_eq!(vtd_info.flags, IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17);
    let regs = VtdRegs {
        cap: vtd_info.cap_reg,
        ecap: vtd_info.ecap_reg,
    };
    assert_eq!(regs, inst.regs());
    assert_eq!(regs.address_width(), 57);
    assert_eq!(regs.mgaw(), 57);
    assert_eq!(regs.sagaw() & 0b1000, 0b1000, "5-level");
    assert_eq!(regs.super_page_val(), 0b11);
    assert!(!regs.sc());
    assert!(regs.pasid_supported());
    assert_eq!(regs.pss(), 9);
    assert!(regs.ssads_supported() && regs.nested_supported());
    assert_eq!(dev.max_pasids(), 0, "a PCI device without PASID capability");
    // The input type must name VT-d (or the default).
    let explicit = ops
        .hw_info(&dev, IOMMU_HW_INFO_TYPE_INTEL_VTD)
        .unwrap()
        .unwrap();
    assert_eq!(explicit, info);
    assert_eq!(
        ops.hw_info(&dev, IOMMU_HW_INFO_TYPE_ARM_SMMUV3)
            .unwrap()
            .err(),
        Some(Errno::OPNOTSUPP)
    );
}

#[test]
fn reserved_regions_have_the_interrupt_range_and_identity_mapped_rmrrs() {
    let platform = Platform::new(DefaultPolicy::Dma);
    let inst = vtd("dmar0", |_| {});
    inst.add_device(
        "usb",
        &[Rmrr {
            base: 0xe_0000,
            end: 0xf_ffff,
            relaxable: false,
        }],
    );
    inst.add_device(
        "gfx",
        &[Rmrr {
            base: 0x7c00_0000,
            end: 0x7c00_3fff,
            relaxable: true,
        }],
    );
    let usb = probe(&platform, &inst.ops(), pci("usb", addr(0, 0x14, 0)));
    let gfx = probe(&platform, &inst.ops(), pci("gfx", addr(0, 2, 0)));

    let regions = usb.resv_regions();
    let direct: Vec<_> = regions
        .iter()
        .filter(|r| r.ty == ResvType::Direct)
        .collect();
    assert_eq!(direct.len(), 1);
    assert_eq!((direct[0].start, direct[0].length), (0xe_0000, 0x2_0000));
    assert_eq!(direct[0].prot, RW);
    let msi: Vec<_> = regions.iter().filter(|r| r.ty == ResvType::Msi).collect();
    assert_eq!(msi.len(), 1);
    assert_eq!(
        (msi[0].start, msi[0].length),
        (IOAPIC_RANGE_START, 0x10_0000)
    );
    assert!(usb.require_direct());

    // The DMA default domain maps the RMRR 1:1.
    let default = usb.group().default_domain().unwrap();
    assert_eq!(
        default.domain_type(),
        DomainType::Unmanaged,
        "a paging domain"
    );
    for a in [0xe_0000u64, 0xe_1234, 0xf_ffff] {
        assert_eq!(default.iova_to_phys(a), a);
    }
    assert_eq!(default.iova_to_phys(0x10_0000), 0);
    // A device that requires direct mappings cannot be blocked.
    let blocked = inst.ops().blocked_domain().unwrap();
    assert_eq!(usb.group().attach(&blocked), Err(Errno::INVAL));

    let gfx_regions = gfx.resv_regions();
    assert!(gfx_regions
        .iter()
        .any(|r| r.ty == ResvType::DirectRelaxable && r.start == 0x7c00_0000));
    assert!(!gfx.require_direct());
    let gfx_default = gfx.group().default_domain().unwrap();
    assert_eq!(gfx_default.iova_to_phys(0x7c00_2000), 0x7c00_2000);
}

#[test]
fn probe_takes_only_devices_in_the_instance_scope() {
    let platform = Platform::new(DefaultPolicy::Dma);
    let inst = vtd("dmar0", |c| c.pasid_bits = 8);
    assert_eq!(
        platform
            .probe(&inst.ops(), pci("stranger", addr(0, 1, 0)))
            .err(),
        Some(Errno::NODEV)
    );
    inst.add_device("nic", &[]);
    let mut desc = pci("nic", addr(0, 1, 0));
    desc.pasid_bits = 20;
    let dev = probe(&platform, &inst.ops(), desc);
    assert_eq!(dev.max_pasids(), 256, "the instance's 8 PASID bits");

    let nopasid = vtd("dmar1", |c| c.pasid_bits = 0);
    nopasid.add_device("nic2", &[]);
    let mut desc = pci("nic2", addr(0, 2, 0));
    desc.pasid_bits = 20;
    let dev2 = probe(&platform, &nopasid.ops(), desc);
    assert_eq!(dev2.max_pasids(), 0);
    let domain = paging_domain_alloc(&dev2).unwrap();
    assert_eq!(domain.set_dev_pasid(&dev2, 1), Err(Errno::OPNOTSUPP));
    let identity = nopasid.ops().identity_domain().unwrap();
    assert_eq!(identity.set_dev_pasid(&dev2, 1), Err(Errno::OPNOTSUPP));
    // With PASIDs, paging and identity domains attach to PASIDs.
    let pd = paging_domain_alloc(&dev).unwrap();
    assert_eq!(pd.set_dev_pasid(&dev, 1), Ok(()));
    assert!(inst
        .ops()
        .identity_domain()
        .unwrap()
        .set_dev_pasid(&dev, 2)
        .is_ok());
}

#[test]
fn non_pci_devices_get_groups_of_their_own() {
    let platform = Platform::new(DefaultPolicy::Dma);
    let inst = vtd("dmar0", |_| {});
    inst.add_device("acpi0", &[]);
    inst.add_device("acpi1", &[]);
    let a = probe(&platform, &inst.ops(), platform_dev("acpi0", &[7]));
    let b = probe(&platform, &inst.ops(), platform_dev("acpi1", &[7]));
    assert_ne!(a.group().id(), b.group().id());
}

#[test]
fn passthrough_policy_uses_the_static_identity_domain() {
    let platform = Platform::new(DefaultPolicy::Passthrough);
    let inst = vtd("dmar0", |_| {});
    let dev = device(&platform, &inst, "a", 1);
    let default = dev.group().default_domain().unwrap();
    assert_eq!(default.domain_type(), DomainType::Identity);
    assert!(same(&default, &inst.ops().identity_domain().unwrap()));
    let t = default.dma_translate(0x1234_5678, true).unwrap();
    assert_eq!(t.pa, 0x1234_5678);
}

#[test]
fn bad_configurations_are_refused_with_a_message() {
    let bad = |f: fn(&mut VtdConfig)| {
        let mut cfg = VtdConfig::default();
        f(&mut cfg);
        Vtd::new(cfg).err().map(|e| e.to_string())
    };
    assert!(bad(|c| c.address_width = 40)
        .unwrap()
        .contains("address_width"));
    assert!(bad(|c| c.superpage_2m = false)
        .unwrap()
        .contains("superpage_1g"));
    assert!(bad(|c| c.pasid_bits = 21).unwrap().contains("pasid_bits"));
    assert!(bad(|c| c.scalable_mode = false)
        .unwrap()
        .contains("scalable_mode"));
    assert!(bad(|c| c.coherent = false).unwrap().contains("coherent"));
    assert_eq!(bad(|_| {}), None);
}
