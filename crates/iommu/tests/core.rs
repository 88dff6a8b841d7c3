//! The IOMMU core's behaviours, each test named after the behaviour it shows:
//! groups from bus topology, DMA ownership, default domains, deferred attach,
//! per-device allocation across instances, PASID rules, reserved regions and
//! software MSI. The driver underneath is `support::TestIommu`, which records
//! every attach the core asks for.

mod support;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use iommu::msi::MsiCookie;
use iommu::ops::alloc_flags;
use iommu::topology::{Bus, PciAddr, PciBridge, PciDevice, PlatformDevice};
use iommu::{
    AttachHandle, DefaultPolicy, Device, DeviceDesc, Domain, DomainType, OwnerId, Platform, Prot,
    ResvRegion, ResvType,
};
use support::{desc, id, Config, TestDomain, TestIommu, OTHER_DRIVER};
use uapi::Errno;

fn addr(bus: u8, dev: u8, func: u8) -> PciAddr {
    PciAddr {
        segment: 0,
        bus,
        dev,
        func,
    }
}

fn bridge(bus: u8, dev: u8, acs: bool) -> PciBridge {
    PciBridge {
        addr: addr(bus, dev, 0),
        acs,
        to_pci: false,
    }
}

fn pci(name: &str, a: PciAddr, path: Vec<PciBridge>) -> DeviceDesc {
    DeviceDesc {
        name: name.into(),
        bus: Bus::Pci(PciDevice {
            addr: a,
            path,
            ..PciDevice::default()
        }),
        ..DeviceDesc::default()
    }
}

fn setup(cfg: Config) -> (Platform, Arc<TestIommu>) {
    (Platform::new(DefaultPolicy::Dma), TestIommu::new(cfg))
}

fn same_group(a: &Device, b: &Device) -> bool {
    Arc::ptr_eq(a.group(), b.group())
}

fn handle(domain: &Arc<dyn Domain>) -> AttachHandle {
    AttachHandle {
        domain: domain.clone(),
        data: None,
        iopf: None,
    }
}

// ---- Groups ------------------------------------------------------------------

#[test]
fn group_pci_devices_behind_a_switch_without_acs_share_a_group() {
    let (p, iommu) = setup(Config::default());
    let root = bridge(0, 1, true);
    let switch = bridge(1, 0, false);
    let port_a = bridge(2, 1, true);
    let port_b = bridge(2, 2, true);
    let a = p
        .probe(
            &iommu.ops(),
            pci("a", addr(3, 0, 0), vec![root, switch, port_a]),
        )
        .unwrap();
    let b = p
        .probe(
            &iommu.ops(),
            pci("b", addr(4, 0, 0), vec![root, switch, port_b]),
        )
        .unwrap();
    let other_root = bridge(0, 2, true);
    let c = p
        .probe(&iommu.ops(), pci("c", addr(5, 0, 0), vec![other_root]))
        .unwrap();
    assert!(same_group(&a, &b), "peer-to-peer through the switch");
    assert!(
        !same_group(&a, &c),
        "an isolated root port has its own group"
    );
    assert_eq!(a.group().devices().len(), 2);

    // With ACS on the switch as well, every device is isolated.
    let (p, iommu) = setup(Config::default());
    let acs_switch = bridge(1, 0, true);
    let a = p
        .probe(
            &iommu.ops(),
            pci("a", addr(3, 0, 0), vec![root, acs_switch, port_a]),
        )
        .unwrap();
    let b = p
        .probe(
            &iommu.ops(),
            pci("b", addr(4, 0, 0), vec![root, acs_switch, port_b]),
        )
        .unwrap();
    assert!(!same_group(&a, &b));
}

#[test]
fn group_dma_alias_joins_the_group_of_the_aliased_device() {
    let (p, iommu) = setup(Config::default());
    let root = bridge(0, 1, true);
    let a = p
        .probe(&iommu.ops(), pci("a", addr(2, 0, 0), vec![root]))
        .unwrap();
    let mut desc = pci("b", addr(2, 1, 0), vec![root]);
    if let Bus::Pci(d) = &mut desc.bus {
        d.dma_aliases.push(addr(2, 0, 0).rid());
    }
    let b = p.probe(&iommu.ops(), desc).unwrap();
    let c = p
        .probe(&iommu.ops(), pci("c", addr(2, 2, 0), vec![root]))
        .unwrap();
    assert!(same_group(&a, &b));
    assert!(!same_group(&a, &c));
}

#[test]
fn group_devices_behind_a_pcie_to_pci_bridge_share_a_group() {
    let (p, iommu) = setup(Config::default());
    let root = bridge(0, 1, true);
    let to_pci = PciBridge {
        addr: addr(1, 0, 0),
        acs: true,
        to_pci: true,
    };
    let a = p
        .probe(&iommu.ops(), pci("a", addr(2, 0, 0), vec![root, to_pci]))
        .unwrap();
    let b = p
        .probe(&iommu.ops(), pci("b", addr(2, 1, 0), vec![root, to_pci]))
        .unwrap();
    assert!(same_group(&a, &b), "both may use the bridge's requester ID");
}

#[test]
fn group_functions_of_a_multifunction_device_without_acs_share_a_group() {
    let (p, iommu) = setup(Config::default());
    let root = bridge(0, 1, true);
    let func = |name: &str, f: u8, acs: bool| DeviceDesc {
        name: name.into(),
        bus: Bus::Pci(PciDevice {
            addr: addr(2, 0, f),
            path: vec![root],
            multifunction: true,
            acs,
            dma_aliases: vec![],
        }),
        ..DeviceDesc::default()
    };
    let f0 = p.probe(&iommu.ops(), func("f0", 0, false)).unwrap();
    let f1 = p.probe(&iommu.ops(), func("f1", 1, false)).unwrap();
    assert!(same_group(&f0, &f1));

    let (p, iommu) = setup(Config::default());
    let f0 = p.probe(&iommu.ops(), func("f0", 0, true)).unwrap();
    let f1 = p.probe(&iommu.ops(), func("f1", 1, true)).unwrap();
    assert!(!same_group(&f0, &f1), "ACS isolates the functions");
}

#[test]
fn group_platform_devices_sharing_a_stream_id_share_a_group() {
    let (p, iommu) = setup(Config::default());
    let plat = |name: &str, sids: &[u32]| DeviceDesc {
        name: name.into(),
        bus: Bus::Platform(PlatformDevice {
            stream_ids: sids.to_vec(),
        }),
        ..DeviceDesc::default()
    };
    let a = p.probe(&iommu.ops(), plat("a", &[0x10, 0x11])).unwrap();
    let b = p.probe(&iommu.ops(), plat("b", &[0x11])).unwrap();
    let c = p.probe(&iommu.ops(), plat("c", &[0x12])).unwrap();
    let d = p.probe(&iommu.ops(), desc("no-bus")).unwrap();
    assert!(same_group(&a, &b));
    assert!(!same_group(&a, &c));
    assert!(!same_group(&c, &d));
}

#[test]
fn group_numbers_are_process_wide() {
    let (p1, iommu1) = setup(Config::default());
    let (p2, iommu2) = setup(Config::default());
    let a = p1.probe(&iommu1.ops(), desc("a")).unwrap();
    let b = p2.probe(&iommu2.ops(), desc("b")).unwrap();
    assert_ne!(a.group().id(), b.group().id());
    // A released number may be handed out again (the kernel's IDA), but never
    // while its group lives.
    p2.remove_device(&b);
    drop(b);
    let c = p2.probe(&iommu2.ops(), desc("c")).unwrap();
    assert_ne!(c.group().id(), a.group().id());
}

#[test]
fn group_groups_are_per_instance() {
    let p = Platform::new(DefaultPolicy::Dma);
    let i0 = TestIommu::new(Config::default());
    let i1 = TestIommu::new(Config {
        name: "test1",
        ..Config::default()
    });
    let root = bridge(0, 1, false);
    let a = p
        .probe(&i0.ops(), pci("a", addr(2, 0, 0), vec![root]))
        .unwrap();
    let b = p
        .probe(&i1.ops(), pci("b", addr(2, 1, 0), vec![root]))
        .unwrap();
    assert!(
        !same_group(&a, &b),
        "different IOMMUs isolate by themselves"
    );
}

fn two_device_group() -> (Platform, Arc<TestIommu>, Arc<Device>, Arc<Device>) {
    let (p, iommu) = setup(Config::default());
    let path = vec![bridge(0, 1, false)];
    let a = p
        .probe(&iommu.ops(), pci("a", addr(1, 0, 0), path.clone()))
        .unwrap();
    let b = p
        .probe(&iommu.ops(), pci("b", addr(1, 1, 0), path))
        .unwrap();
    assert!(same_group(&a, &b));
    iommu.take_events();
    (p, iommu, a, b)
}

#[test]
fn group_attach_replace_and_detach_act_on_every_device() {
    let (_p, iommu, a, _b) = two_device_group();
    let group = a.group().clone();
    let default = group.default_domain().unwrap();
    let d1 = iommu.ops().domain_alloc_paging(&a).unwrap();
    let d2 = iommu.ops().domain_alloc_paging(&a).unwrap();

    group.attach(&d1).unwrap();
    assert_eq!(
        iommu.take_events(),
        vec![("a".into(), id(&d1), None), ("b".into(), id(&d1), None)]
    );
    assert_eq!(
        group.attach(&d2).err(),
        Some(Errno::BUSY),
        "already attached"
    );

    group.attach_handle(handle(&d2)).err();
    group.replace_handle(handle(&d2)).unwrap();
    assert_eq!(
        iommu.take_events(),
        vec![("a".into(), id(&d2), None), ("b".into(), id(&d2), None)]
    );
    group.detach();
    assert_eq!(
        iommu.take_events(),
        vec![
            ("a".into(), id(&default), None),
            ("b".into(), id(&default), None)
        ]
    );
    assert!(Arc::ptr_eq(&group.domain().unwrap(), &default));
}

#[test]
fn group_attach_rolls_back_every_device_when_one_refuses() {
    let (_p, iommu, a, _b) = two_device_group();
    let group = a.group().clone();
    let default = group.default_domain().unwrap();
    let d1 = iommu.ops().domain_alloc_paging(&a).unwrap();
    iommu
        .fail_attach
        .lock()
        .unwrap()
        .insert("b".into(), (Errno::NOSPC, id(&d1)));
    assert_eq!(group.attach(&d1), Err(Errno::NOSPC));
    // `a` was switched, then both are put back on the old domain (the failed
    // device too: its state after a failed attach is unknown).
    assert_eq!(
        iommu.take_events(),
        vec![
            ("a".into(), id(&d1), None),
            ("a".into(), id(&default), None),
            ("b".into(), id(&default), None)
        ]
    );
    assert!(Arc::ptr_eq(&group.domain().unwrap(), &default));
}

// ---- DMA ownership -------------------------------------------------------------

#[test]
fn dma_owner_claim_moves_group_to_blocking_and_release_restores_default() {
    let (_p, iommu, a, b) = two_device_group();
    let group = a.group().clone();
    let default = group.default_domain().unwrap();
    a.claim_dma_owner(OwnerId(1)).unwrap();
    let blocking = group.domain().unwrap();
    assert!(group.is_blocking(&blocking));
    assert_eq!(blocking.domain_type(), DomainType::Blocked);
    assert_eq!(group.owner(), Some(OwnerId(1)));
    // The same owner may claim the other device of the group: counted, no switch.
    b.claim_dma_owner(OwnerId(1)).unwrap();
    assert_eq!(iommu.take_events().len(), 2, "both devices blocked once");
    a.release_dma_owner();
    assert_eq!(group.owner(), Some(OwnerId(1)), "still claimed through b");
    b.release_dma_owner();
    assert_eq!(group.owner(), None);
    assert!(Arc::ptr_eq(&group.domain().unwrap(), &default));
    assert_eq!(
        iommu.take_events(),
        vec![
            ("a".into(), id(&default), None),
            ("b".into(), id(&default), None)
        ]
    );
}

#[test]
fn dma_owner_claim_is_refused_while_a_kernel_driver_owns_a_device_of_the_group() {
    let (_p, _iommu, a, b) = two_device_group();
    // A DMA-API driver is bound to `b` (iommu_device_use_default_domain).
    b.use_default_domain().unwrap();
    // The kernel refuses with EPERM: the group has an owner count and no matching
    // owner (iommu_device_claim_dma_owner).
    assert_eq!(a.claim_dma_owner(OwnerId(7)), Err(Errno::PERM));
    assert_eq!(a.group().owner(), None);
    b.unuse_default_domain();
    a.claim_dma_owner(OwnerId(7)).unwrap();
    a.release_dma_owner();
}

#[test]
fn dma_owner_kernel_driver_bind_is_refused_with_ebusy_while_userspace_owns_the_group() {
    let (_p, _iommu, a, b) = two_device_group();
    a.claim_dma_owner(OwnerId(3)).unwrap();
    assert_eq!(b.use_default_domain(), Err(Errno::BUSY));
    assert_eq!(
        b.claim_dma_owner(OwnerId(4)),
        Err(Errno::PERM),
        "another owner"
    );
    a.release_dma_owner();
    b.use_default_domain().unwrap();
    b.unuse_default_domain();
}

#[test]
fn dma_owner_claim_is_refused_with_ebusy_while_the_group_uses_a_non_default_domain() {
    let (_p, iommu, a, _b) = two_device_group();
    let d = iommu.ops().domain_alloc_paging(&a).unwrap();
    a.group().attach(&d).unwrap();
    assert_eq!(a.claim_dma_owner(OwnerId(1)), Err(Errno::BUSY));
    a.group().detach();
    a.claim_dma_owner(OwnerId(1)).unwrap();
    a.release_dma_owner();
}

// ---- Default domains -------------------------------------------------------------

#[test]
fn default_domain_is_dma_by_policy_or_identity_in_passthrough() {
    let iommu = TestIommu::new(Config::default());
    let p = Platform::new(DefaultPolicy::Dma);
    let a = p.probe(&iommu.ops(), desc("a")).unwrap();
    assert_eq!(
        a.group().default_domain().unwrap().domain_type(),
        DomainType::Dma
    );
    let p = Platform::new(DefaultPolicy::Passthrough);
    let b = p.probe(&iommu.ops(), desc("b")).unwrap();
    assert_eq!(
        b.group().default_domain().unwrap().domain_type(),
        DomainType::Identity
    );
    // A driver without an identity domain gets DMA even in passthrough.
    let no_identity = TestIommu::new(Config {
        identity: false,
        ..Config::default()
    });
    let c = p.probe(&no_identity.ops(), desc("c")).unwrap();
    assert_eq!(
        c.group().default_domain().unwrap().domain_type(),
        DomainType::Dma
    );
}

#[test]
fn default_domain_follows_the_drivers_device_requirement() {
    let iommu = TestIommu::new(Config {
        def_domain_type: vec![("needs-identity", DomainType::Identity)],
        ..Config::default()
    });
    let p = Platform::new(DefaultPolicy::Dma);
    let a = p.probe(&iommu.ops(), desc("needs-identity")).unwrap();
    assert_eq!(
        a.group().default_domain().unwrap().domain_type(),
        DomainType::Identity
    );
}

#[test]
fn default_domain_of_an_untrusted_device_is_always_dma() {
    let iommu = TestIommu::new(Config {
        def_domain_type: vec![("ext-identity", DomainType::Identity)],
        ..Config::default()
    });
    let p = Platform::new(DefaultPolicy::Passthrough);
    let untrusted = |name: &str| DeviceDesc {
        untrusted: true,
        ..desc(name)
    };
    let a = p.probe(&iommu.ops(), untrusted("ext")).unwrap();
    assert_eq!(
        a.group().default_domain().unwrap().domain_type(),
        DomainType::Dma
    );
    // Conflicting requirements: the probe fails and nothing is left behind.
    assert_eq!(
        p.probe(&iommu.ops(), untrusted("ext-identity")).err(),
        Some(Errno::NODEV)
    );
    assert_eq!(p.devices().len(), 1);
}

#[test]
fn default_domain_falls_back_to_the_platform_dma_ops_and_detach_returns_there() {
    let iommu = TestIommu::new(Config {
        static_platform_default: true,
        ..Config::default()
    });
    let p = Platform::new(DefaultPolicy::Dma);
    let a = p.probe(&iommu.ops(), desc("a")).unwrap();
    let group = a.group().clone();
    let platform = group.default_domain().unwrap();
    assert_eq!(platform.domain_type(), DomainType::Platform);
    assert_eq!(iommu.take_events(), vec![("a".into(), id(&platform), None)]);

    a.claim_dma_owner(OwnerId(1)).unwrap();
    let d = iommu.ops().domain_alloc_paging(&a).unwrap();
    group.attach(&d).unwrap();
    group.detach();
    a.release_dma_owner();
    let events = iommu.take_events();
    assert_eq!(events.last(), Some(&("a".into(), id(&platform), None)));
    assert!(Arc::ptr_eq(&group.domain().unwrap(), &platform));
}

// ---- Deferred attach ---------------------------------------------------------------

#[test]
fn deferred_attach_waits_for_the_first_dma_use() {
    let iommu = TestIommu::new(Config {
        attach_deferred: true,
        ..Config::default()
    });
    let p = Platform::new(DefaultPolicy::Dma);
    let a = p.probe(&iommu.ops(), desc("a")).unwrap();
    let default = a.group().default_domain().unwrap();
    assert!(iommu.take_events().is_empty(), "not attached at probe");
    assert!(a.attach_deferred());
    a.deferred_attach().unwrap();
    assert_eq!(iommu.take_events(), vec![("a".into(), id(&default), None)]);
    a.deferred_attach().unwrap();
    assert!(iommu.take_events().is_empty(), "only once");
}

#[test]
fn deferred_attach_never_skips_detach() {
    let iommu = TestIommu::new(Config {
        attach_deferred: true,
        ..Config::default()
    });
    let p = Platform::new(DefaultPolicy::Dma);
    let a = p.probe(&iommu.ops(), desc("a")).unwrap();
    let group = a.group().clone();
    let default = group.default_domain().unwrap();
    // Claimed for userspace before any DMA: the block happens although attach
    // of the default domain was deferred.
    a.claim_dma_owner(OwnerId(1)).unwrap();
    let blocking = group.domain().unwrap();
    let d = iommu.ops().domain_alloc_paging(&a).unwrap();
    group.attach(&d).unwrap();
    group.detach();
    a.release_dma_owner();
    assert_eq!(
        iommu.take_events(),
        vec![
            ("a".into(), id(&blocking), None),
            ("a".into(), id(&d), None),
            ("a".into(), id(&blocking), None),
            ("a".into(), id(&default), None),
        ],
        "every switch reached the driver, the return to default included"
    );
    assert!(!a.attach_deferred());
}

// ---- Per-device allocation across instances --------------------------------------------

#[test]
fn paging_domain_alloc_uses_the_devices_own_instance() {
    let p = Platform::new(DefaultPolicy::Dma);
    let wide = TestIommu::new(Config {
        name: "wide",
        pgsize_bitmap: 0x1000 | 0x20_0000 | 0x4000_0000,
        aperture_end: (1 << 57) - 1,
        ..Config::default()
    });
    let narrow = TestIommu::new(Config {
        name: "narrow",
        pgsize_bitmap: 0x1000,
        aperture_end: (1 << 39) - 1,
        ..Config::default()
    });
    let a = p.probe(&wide.ops(), desc("a")).unwrap();
    let b = p.probe(&narrow.ops(), desc("b")).unwrap();
    let da = iommu::paging_domain_alloc(&a).unwrap();
    let db = iommu::paging_domain_alloc(&b).unwrap();
    assert_eq!(da.pgsize_bitmap(), 0x1000 | 0x20_0000 | 0x4000_0000);
    assert_eq!(db.pgsize_bitmap(), 0x1000);
    assert_eq!(db.geometry().aperture_end, (1 << 39) - 1);
}

#[test]
fn attach_of_a_domain_from_another_instance_fails_with_einval() {
    let p = Platform::new(DefaultPolicy::Dma);
    let i0 = TestIommu::new(Config::default());
    let i1 = TestIommu::new(Config {
        name: "test1",
        ..Config::default()
    });
    let a = p.probe(&i0.ops(), desc("a")).unwrap();
    let b = p.probe(&i1.ops(), desc("b")).unwrap();
    let da = iommu::paging_domain_alloc(&a).unwrap();
    b.claim_dma_owner(OwnerId(1)).unwrap();
    assert_eq!(b.group().attach(&da), Err(Errno::INVAL));
    assert!(b.group().is_blocking(&b.group().domain().unwrap()));

    // A domain of another driver is refused by the core itself.
    let other = TestIommu::new(Config {
        driver: OTHER_DRIVER,
        name: "test1",
        ..Config::default()
    });
    let c = p.probe(&other.ops(), desc("c")).unwrap();
    let dc = iommu::paging_domain_alloc(&c).unwrap();
    i1.take_events();
    assert_eq!(b.group().attach(&dc), Err(Errno::INVAL));
    assert!(i1.take_events().is_empty(), "the driver was not even asked");
    b.release_dma_owner();
}

// ---- PASID -----------------------------------------------------------------------

#[test]
fn pasid_capable_group_gets_a_pasid_compatible_default_domain() {
    let iommu = TestIommu::new(Config {
        max_pasids: 1 << 20,
        pasid_needs_flag: true,
        ..Config::default()
    });
    let p = Platform::new(DefaultPolicy::Dma);
    let plain = p.probe(&iommu.ops(), desc("plain")).unwrap();
    let capable = p
        .probe(
            &iommu.ops(),
            DeviceDesc {
                pasid_bits: 20,
                ..desc("pasid")
            },
        )
        .unwrap();
    assert_eq!(capable.max_pasids(), 1 << 20);
    assert_eq!(plain.max_pasids(), 0);
    assert!(capable.group().default_domain().unwrap().supports_pasid());
    assert!(!plain.group().default_domain().unwrap().supports_pasid());
    let allocs = iommu.allocs.lock().unwrap().clone();
    assert_eq!(
        allocs,
        vec![(DomainType::Dma, 0), (DomainType::Dma, alloc_flags::PASID)]
    );
}

#[test]
fn pasid_attach_is_allowed_only_for_singleton_groups() {
    let cfg = Config {
        max_pasids: 1 << 8,
        ..Config::default()
    };
    let (p, iommu) = setup(cfg);
    let path = vec![bridge(0, 1, false)];
    let mut shared_a = pci("a", addr(1, 0, 0), path.clone());
    shared_a.pasid_bits = 8;
    let mut shared_b = pci("b", addr(1, 1, 0), path);
    shared_b.pasid_bits = 8;
    let a = p.probe(&iommu.ops(), shared_a).unwrap();
    p.probe(&iommu.ops(), shared_b).unwrap();
    let mut single = desc("single");
    single.pasid_bits = 8;
    let s = p.probe(&iommu.ops(), single).unwrap();

    let d = iommu.ops().domain_alloc_paging(&a).unwrap();
    assert_eq!(a.attach_pasid(&d, 1, handle(&d)), Err(Errno::INVAL));
    iommu.take_events();
    s.attach_pasid(&d, 1, handle(&d)).unwrap();
    assert_eq!(
        iommu.take_events(),
        vec![("single".into(), id(&d), Some(1))]
    );
    assert_eq!(s.attach_pasid(&d, 1, handle(&d)), Err(Errno::BUSY));
    assert_eq!(
        s.attach_pasid(&d, 0, handle(&d)),
        Err(Errno::INVAL),
        "no PASID 0"
    );
    assert_eq!(
        s.attach_pasid(&d, 256, handle(&d)),
        Err(Errno::INVAL),
        "beyond the width"
    );
    assert_eq!(
        s.claim_dma_owner(OwnerId(1)),
        Err(Errno::BUSY),
        "PASIDs in use"
    );
    s.detach_pasid(&d, 1);
    s.claim_dma_owner(OwnerId(1)).unwrap();
    s.release_dma_owner();
}

// ---- Reserved regions and software MSI --------------------------------------------------

fn region(start: u64, length: u64, ty: ResvType) -> ResvRegion {
    ResvRegion {
        start,
        length,
        prot: Prot::READ | Prot::WRITE,
        ty,
    }
}

#[test]
fn resv_regions_are_the_union_of_the_group_devices() {
    let msi = region(0x800_0000, 0x10_0000, ResvType::SwMsi);
    let cfg = Config {
        resv: vec![
            ("a", msi),
            ("a", region(0x1000, 0x1000, ResvType::Reserved)),
            ("b", msi),
            ("b", region(0x9000, 0x2000, ResvType::Reserved)),
        ],
        ..Config::default()
    };
    let (p, iommu) = setup(cfg);
    let path = vec![bridge(0, 1, false)];
    let a = p
        .probe(&iommu.ops(), pci("a", addr(1, 0, 0), path.clone()))
        .unwrap();
    p.probe(&iommu.ops(), pci("b", addr(1, 1, 0), path))
        .unwrap();
    let regions = a.group().resv_regions();
    assert_eq!(
        regions,
        vec![
            region(0x1000, 0x1000, ResvType::Reserved),
            region(0x9000, 0x2000, ResvType::Reserved),
            msi,
        ],
        "sorted, with the shared MSI window once"
    );
    assert_eq!(a.resv_regions().len(), 2, "a device reports only its own");
}

#[test]
fn resv_direct_regions_are_identity_mapped_in_the_dma_default_domain() {
    let rmrr = region(0xe_0000, 0x3000, ResvType::Direct);
    let (p, iommu) = setup(Config {
        resv: vec![("a", rmrr)],
        ..Config::default()
    });
    let a = p.probe(&iommu.ops(), desc("a")).unwrap();
    let default = a.group().default_domain().unwrap();
    for off in [0, 0x1000, 0x2fff] {
        assert_eq!(default.iova_to_phys(0xe_0000 + off), 0xe_0000 + off);
    }
    assert_eq!(default.iova_to_phys(0xe_3000), 0);
    assert!(a.require_direct());
}

#[test]
fn resv_direct_region_device_can_never_be_blocked() {
    let (p, iommu) = setup(Config {
        resv: vec![("a", region(0xe_0000, 0x1000, ResvType::Direct))],
        ..Config::default()
    });
    let a = p.probe(&iommu.ops(), desc("a")).unwrap();
    let default = a.group().default_domain().unwrap();
    assert_eq!(a.claim_dma_owner(OwnerId(1)), Err(Errno::INVAL));
    assert!(Arc::ptr_eq(&a.group().domain().unwrap(), &default));
    assert_eq!(a.group().owner(), None);
}

#[test]
fn sw_msi_doorbell_is_mapped_on_first_use_shared_and_unmapped_with_its_last_user() {
    let (p, iommu) = setup(Config::default());
    let a = p.probe(&iommu.ops(), desc("a")).unwrap();
    let d = iommu.ops().domain_alloc_paging(&a).unwrap();
    let cookie: &MsiCookie = d.core().msi();
    assert_eq!(
        cookie.get(d.as_ref(), 0xfee0_0000),
        Err(Errno::NODEV),
        "no cookie"
    );
    cookie.init(0x800_0000).unwrap();
    assert_eq!(cookie.init(0x800_0000), Err(Errno::BUSY));

    let doorbell = 0x2_0000_0040;
    let iova = cookie.get(d.as_ref(), doorbell).unwrap();
    assert_eq!(iova, 0x800_0040, "first page of the window, same offset");
    assert_eq!(d.iova_to_phys(iova), doorbell);
    let leaves = TestDomain::of(&d).leaves.lock().unwrap().clone();
    let (_, _, prot) = leaves[&0x800_0000];
    assert!(prot.contains(Prot::WRITE | Prot::MMIO | Prot::NOEXEC));

    // A second device on the same doorbell page shares the mapping.
    assert_eq!(cookie.get(d.as_ref(), doorbell + 8).unwrap(), iova + 8);
    assert_eq!(cookie.mapped_pages(), 1);
    // Another doorbell gets the next page of the window.
    assert_eq!(cookie.get(d.as_ref(), 0x3_0000_0000).unwrap(), 0x800_1000);

    cookie.put(d.as_ref(), doorbell);
    assert_eq!(d.iova_to_phys(iova), doorbell, "one user left");
    assert_eq!(cookie.lookup(doorbell), Some(iova));
    cookie.put(d.as_ref(), doorbell + 8);
    assert_eq!(d.iova_to_phys(iova), 0, "unmapped with its last user");
    assert_eq!(cookie.lookup(doorbell), None);
    assert_eq!(cookie.mapped_pages(), 1);
    // The freed page is reused before the window grows.
    assert_eq!(cookie.get(d.as_ref(), 0x4_0000_0000).unwrap(), 0x800_0000);
}

#[test]
fn sw_msi_lookup_never_blocks_on_a_mapping_in_progress() {
    let (p, iommu) = setup(Config::default());
    let a = p.probe(&iommu.ops(), desc("a")).unwrap();
    let d = iommu.ops().domain_alloc_paging(&a).unwrap();
    d.core().msi().init(0x800_0000).unwrap();
    let mapped = d.core().msi().get(d.as_ref(), 0x1_0000_0000).unwrap();

    // Another device maps a new doorbell; the driver stalls inside map_pages with
    // the cookie's lock held.
    let gate = Arc::new(Barrier::new(2));
    *TestDomain::of(&d).map_gate.lock().unwrap() = Some(gate.clone());
    let d2 = d.clone();
    let mapper = std::thread::spawn(move || d2.core().msi().get(d2.as_ref(), 0x2_0000_0000));
    gate.wait(); // the mapper is inside map_pages now

    // The interrupt path still composes messages at once.
    let (tx, rx) = std::sync::mpsc::channel();
    let d3 = d.clone();
    std::thread::spawn(move || tx.send(d3.core().msi().lookup(0x1_0000_0000)).unwrap());
    let found = rx.recv_timeout(Duration::from_secs(10));
    *TestDomain::of(&d).map_gate.lock().unwrap() = None;
    gate.wait();
    assert_eq!(
        found,
        Ok(Some(mapped)),
        "lookup completed while the lock was held"
    );
    assert_eq!(mapper.join().unwrap(), Ok(0x800_1000));
}

// ---- Capabilities ---------------------------------------------------------------

#[test]
fn cache_coherency_enforcement_is_granted_or_refused_by_the_domain() {
    let (p, coherent) = setup(Config::default());
    let a = p.probe(&coherent.ops(), desc("a")).unwrap();
    let d = coherent.ops().domain_alloc_paging(&a).unwrap();
    assert!(a.capable(iommu::Cap::EnforceCacheCoherency));
    assert!(d.enforce_cache_coherency());
    assert!(*TestDomain::of(&d).enforced.lock().unwrap());

    let incoherent = TestIommu::new(Config {
        name: "nc",
        coherency: false,
        ..Config::default()
    });
    let b = p.probe(&incoherent.ops(), desc("b")).unwrap();
    let d = incoherent.ops().domain_alloc_paging(&b).unwrap();
    assert!(!b.capable(iommu::Cap::EnforceCacheCoherency));
    assert!(!d.enforce_cache_coherency());
    assert!(
        d.dirty_ops().is_none(),
        "no dirty tracking unless allocated with it"
    );
}

// ---- DMA handles -------------------------------------------------------------------

/// The calls a DMA handle made of its domain's `dma_translate_run` since the
/// last look: (iova, len, write).
fn translations(d: &Arc<dyn Domain>) -> Vec<(u64, u64, bool)> {
    std::mem::take(&mut *TestDomain::of(d).dma_translations.lock().unwrap())
}

#[test]
fn dma_handles_keep_runs_translate_streams_ahead_and_drop_runs_at_unmap() {
    const BASE: u64 = 0x4000_0000;
    const PA: u64 = 0x1_0000_0000;
    const K64: u64 = 64 << 10;
    let (p, iommu) = setup(Config::default());
    let a = p.probe(&iommu.ops(), desc("a")).unwrap();
    let d = a.group().default_domain().unwrap();
    // 8 MiB of 4 KiB leaves, output contiguous.
    d.map_pages(BASE, PA, 0x1000, 2048, Prot::READ | Prot::WRITE)
        .unwrap();
    let mut h = iommu::DmaHandle::new(a.clone());
    let run = |h: &mut iommu::DmaHandle, iova: u64, len: u64, write: bool| {
        h.dma_translate_run(iova, len, write).map(|t| (t.pa, t.len))
    };

    // Without a token every DMA translates, and only what it asks for.
    for i in 0..3 {
        let at = BASE + i * K64;
        assert_eq!(run(&mut h, at, K64, true), Ok((PA + i * K64, K64)));
    }
    assert_eq!(
        translations(&d),
        (0..3)
            .map(|i| (BASE + i * K64, K64, true))
            .collect::<Vec<_>>()
    );

    // With one: a run of several leaves is kept, so the next DMA, starting
    // where it ends, is translated ahead; the DMAs after it use that run.
    TestDomain::of(&d)
        .dma_token
        .store(1 << 40, Ordering::Relaxed);
    assert_eq!(run(&mut h, BASE, K64, true), Ok((PA, K64)));
    assert_eq!(
        run(&mut h, BASE + K64, K64, true),
        Ok((PA + K64, iommu::DMA_AHEAD))
    );
    for i in 2..16 {
        let at = BASE + i * K64;
        assert_eq!(
            run(&mut h, at, K64, true),
            Ok((PA + i * K64, iommu::DMA_AHEAD - (i - 1) * K64))
        );
    }
    assert_eq!(
        translations(&d),
        [(BASE, K64, true), (BASE + K64, iommu::DMA_AHEAD, true)]
    );

    // Reads keep their own run. A DMA elsewhere is not translated ahead,
    // and DMAs of a page or less keep nothing: the next one, right after
    // it, is not taken for a stream.
    let r = BASE + 5 * K64;
    assert_eq!(run(&mut h, r, 0x2000, false), Ok((PA + 5 * K64, 0x2000)));
    assert_eq!(
        run(&mut h, r + 0x1000, 8, false),
        Ok((PA + 5 * K64 + 0x1000, 0x1000))
    );
    let w = BASE + 40 * K64;
    assert_eq!(run(&mut h, w, 0x1000, true), Ok((PA + 40 * K64, 0x1000)));
    assert_eq!(
        run(&mut h, w + 0x1000, 0x1000, true),
        Ok((PA + 40 * K64 + 0x1000, 0x1000))
    );
    assert_eq!(
        translations(&d),
        [
            (r, 0x2000, false),
            (w, 0x1000, true),
            (w + 0x1000, 0x1000, true)
        ]
    );

    // An unmap ends every kept run: the next DMA translates again, and the
    // unmapped page faults although a kept run covered it.
    assert_eq!(run(&mut h, w, K64, true), Ok((PA + 40 * K64, K64)));
    assert_eq!(
        run(&mut h, w + K64, K64, true),
        Ok((PA + 41 * K64, iommu::DMA_AHEAD))
    );
    assert_eq!(
        translations(&d),
        [(w, K64, true), (w + K64, iommu::DMA_AHEAD, true)]
    );
    assert_eq!(d.unmap_pages(BASE + 44 * K64, 0x1000, 1), 0x1000);
    assert_eq!(run(&mut h, BASE + 44 * K64, 8, true), Err(Errno::NOENT));
    assert_eq!(
        run(&mut h, BASE + 42 * K64, 8, true),
        Ok((PA + 42 * K64, 0x1000))
    );
    assert_eq!(run(&mut h, r, 8, false), Ok((PA + 5 * K64, 0x1000)));
    assert_eq!(
        translations(&d),
        [
            (BASE + 44 * K64, 8, true),
            (BASE + 42 * K64, 8, true),
            (r, 8, false),
        ]
    );

    // A replace drops them too: the new domain translates.
    let d2 = iommu.ops().domain_alloc_paging(&a).unwrap();
    d2.map_pages(BASE, PA + (1 << 30), 0x1000, 16, Prot::READ | Prot::WRITE)
        .unwrap();
    TestDomain::of(&d2)
        .dma_token
        .store(2 << 40, Ordering::Relaxed);
    a.group().attach(&d2).unwrap();
    assert_eq!(run(&mut h, BASE + 42 * K64 + 8, 8, true), Err(Errno::NOENT));
    assert_eq!(run(&mut h, BASE, 8, true), Ok((PA + (1 << 30), 0x1000)));
    assert!(translations(&d).is_empty());
    assert_eq!(
        translations(&d2),
        [(BASE + 42 * K64 + 8, 8, true), (BASE, 8, true)]
    );
}
