//! Platform descriptions: parsing, printing back, errors, and what building the
//! built-in platform produces.

use std::sync::Arc;

use drivers::smmuv3::SmmuStage;
use drivers::{SmmuDomain, VtdDomain};
use iommu::{Device, DomainType, ResvType};
use platform::{Addr, Built, Description, Error, Instance, Policy};
use uapi::Errno;

fn built() -> Built {
    Description::default_platform()
        .build()
        .expect("the built-in platform builds")
}

fn dev<'a>(b: &'a Built, name: &str) -> &'a Arc<Device> {
    b.device(name).unwrap_or_else(|| panic!("no device {name}"))
}

fn same_group(b: &Built, x: &str, y: &str) -> bool {
    dev(b, x).group().id() == dev(b, y).group().id()
}

fn err(text: &str) -> Error {
    Description::parse(text).expect_err("the description is refused")
}

#[test]
fn default_platform_builds_and_probes_every_device() {
    let desc = Description::default_platform();
    let b = built();
    let expected = desc.pci.functions.len() + desc.platform_devices.len();
    assert_eq!(b.devices.len(), expected);
    assert_eq!(b.probe_order().len(), expected);
    assert!(expected >= 15);
    for (name, driver) in [
        ("dmar0", "vtd"),
        ("dmar1", "vtd"),
        ("smmu0", "smmuv3"),
        ("smmu1", "smmuv3"),
        ("mock0", "mock"),
    ] {
        assert_eq!(b.instance(name).map(Instance::driver), Some(driver));
    }
    assert_eq!(b.instance_of("igpu"), Some("dmar1"));
    assert_eq!(
        b.instance_of("gpu0"),
        Some("dmar0"),
        "the segment's instance"
    );
    assert_eq!(dev(&b, "uart0").ops().driver(), drivers::SMMUV3_DRIVER);
    assert_eq!(dev(&b, "mockdev0").ops().driver(), mock::MOCK_DRIVER);
}

#[test]
fn groups_come_out_as_the_topology_says() {
    let b = built();
    assert!(same_group(&b, "gpu0", "gpu1"), "switch without ACS");
    assert!(!same_group(&b, "nvme0", "nvme1"), "switch with ACS");
    assert!(
        same_group(&b, "nic-f0", "nic-f1"),
        "multi-function without ACS"
    );
    assert!(
        !same_group(&b, "ssd-f0", "ssd-f1"),
        "multi-function with ACS"
    );
    assert!(same_group(&b, "legacy0", "legacy1"), "PCIe-to-PCI bridge");
    assert!(same_group(&b, "sata", "sata-ide"), "DMA alias");
    assert!(!same_group(&b, "usb", "sata"));
    assert!(!same_group(&b, "uart0", "dma0"));
    let groups = b.groups();
    let gpu = groups
        .iter()
        .find(|(_, names)| names.contains(&"gpu0".to_string()))
        .unwrap();
    assert_eq!(gpu.1, vec!["gpu0".to_string(), "gpu1".to_string()]);
    let total: usize = groups.iter().map(|(_, n)| n.len()).sum();
    assert_eq!(total, b.devices.len());
}

#[test]
fn default_domains_and_reserved_regions_follow_the_drivers() {
    let b = built();
    // VT-d: DMA domains of the instance's width, RMRRs mapped 1:1.
    let usb = dev(&b, "usb").group().default_domain().unwrap();
    assert_eq!(VtdDomain::from_domain(usb.as_ref()).unwrap().width(), 48);
    assert_eq!(usb.iova_to_phys(0xe_0000), 0xe_0000);
    assert_eq!(usb.iova_to_phys(0xf_f000), 0xf_f000);
    let regions = dev(&b, "usb").group().resv_regions();
    assert!(regions
        .iter()
        .any(|r| r.ty == ResvType::Direct && r.start == 0xe_0000 && r.length == 0x2_0000));
    assert!(regions
        .iter()
        .any(|r| r.ty == ResvType::Msi && r.start == 0xfee0_0000));
    let igpu = dev(&b, "igpu").group().default_domain().unwrap();
    assert_eq!(VtdDomain::from_domain(igpu.as_ref()).unwrap().width(), 39);
    assert_eq!(igpu.iova_to_phys(0x7c12_3000), 0x7c12_3000);

    // SMMUv3: finalized by the default domain's attach; the S2-only instance's.
    let accel = dev(&b, "accel0").group().default_domain().unwrap();
    let s = SmmuDomain::from_domain(accel.as_ref()).unwrap();
    assert_eq!(s.stage(), Some(SmmuStage::S2));
    assert_eq!(accel.pgsize_bitmap(), 1 << 14 | 1 << 25);
    let sw_msi = dev(&b, "uart0").group().resv_regions();
    assert_eq!(sw_msi.len(), 1);
    assert_eq!(
        (sw_msi[0].ty, sw_msi[0].start),
        (ResvType::SwMsi, 0x800_0000)
    );

    // The mock: its static blocking domain.
    let m = dev(&b, "mockdev0").group().default_domain().unwrap();
    assert_eq!(m.domain_type(), DomainType::Blocked);

    // PASIDs: the smaller of the device's and the instance's.
    assert_eq!(dev(&b, "gpu0").max_pasids(), 1 << 20);
    assert_eq!(dev(&b, "dma0").max_pasids(), 1 << 8);
    assert_eq!(dev(&b, "nvme0").max_pasids(), 0);
}

#[test]
fn printing_and_parsing_round_trips() {
    let desc = Description::default_platform();
    let text = desc.to_toml();
    let again = Description::parse(&text).unwrap();
    assert_eq!(again, desc);
    assert_eq!(again.to_toml(), text);
    // Printing fills in default properties and prints addresses in hex.
    let small = Description::parse(
        r#"
        [[iommu]]
        name = "dmar0"
        driver = "vtd"
        [[pci.function]]
        name = "usb"
        address = "00:14.0"
        iommu = "dmar0"
        rmrr = [{ base = 0xe0000, end = "0xfffff" }]
        "#,
    )
    .unwrap();
    assert_eq!(
        small.iommus[0].properties.get("address_width"),
        Some(&toml::Value::Integer(48))
    );
    assert_eq!(small.pci.functions[0].rmrr[0].base, Addr(0xe_0000));
    assert_eq!(small.pci.functions[0].rmrr[0].end, Addr(0xf_ffff));
    let printed = small.to_toml();
    assert!(printed.contains("\"0xe0000\""), "{printed}");
    assert_eq!(Description::parse(&printed).unwrap(), small);
    assert_eq!(small.policy, Policy::Dma);
}

#[test]
fn passthrough_policy_gives_identity_default_domains() {
    let mut desc = Description::default_platform();
    desc.policy = Policy::Passthrough;
    let b = Description::parse(&desc.to_toml())
        .unwrap()
        .build()
        .unwrap();
    let nvme = dev(&b, "nvme0").group().default_domain().unwrap();
    assert_eq!(nvme.domain_type(), DomainType::Identity);
    let uart = dev(&b, "uart0").group().default_domain().unwrap();
    assert_eq!(uart.domain_type(), DomainType::Identity);
    // A device with a direct (non-relaxable) RMRR still gets identity.
    let usb = dev(&b, "usb").group().default_domain().unwrap();
    assert_eq!(usb.domain_type(), DomainType::Identity);
}

#[test]
fn report_lists_instances_groups_default_domains_and_reserved_regions() {
    let b = built();
    let report = b.report();
    for needle in [
        "dmar0 (vtd): 48-bit",
        "smmu1 (smmuv3): stage 2",
        "mock0 (mock)",
        ": gpu0, gpu1", // one group (its number is process-wide)
        "nic-f0, nic-f1",
        "0x00000e0000..=0x00000fffff direct",
        "0x0008000000..=0x00080fffff sw-msi",
        "0x00fee00000..=0x00feefffff msi",
        "DMA (paging, stage 2, 16K granule",
        "default domain: blocked",
        "mockdev0: platform; iommu mock0",
    ] {
        assert!(
            report.contains(needle),
            "{needle:?} missing from:\n{report}"
        );
    }
}

const ONE_VTD: &str = r#"
[[iommu]]
name = "dmar0"
driver = "vtd"
"#;

#[test]
fn errors_name_the_unknown_driver() {
    let e = err("[[iommu]]\nname = \"x\"\ndriver = \"amd\"\n");
    assert_eq!(
        e,
        Error::UnknownDriver {
            instance: "x".into(),
            driver: "amd".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "iommu \"x\": unknown driver \"amd\" (expected one of vtd, smmuv3, mock)"
    );
}

#[test]
fn errors_name_the_unknown_instance() {
    let e = err(&format!(
        "{ONE_VTD}[[platform_device]]\nname = \"d\"\niommu = \"dmar9\"\n"
    ));
    assert_eq!(e.to_string(), "\"d\": unknown iommu instance \"dmar9\"");
    let e = err(&format!(
        "{ONE_VTD}[[pci.function]]\nname = \"f\"\naddress = \"00:01.0\"\n"
    ));
    assert_eq!(e, Error::NoInstance { device: "f".into() });
}

#[test]
fn errors_name_a_duplicate_address() {
    let e = err(&format!(
        "{ONE_VTD}[[pci.segment]]\nsegment = 0\niommu = \"dmar0\"\n\
         [[pci.function]]\nname = \"a\"\naddress = \"00:01.0\"\n\
         [[pci.bridge]]\nname = \"b\"\naddress = \"0000:00:01.0\"\n"
    ));
    assert_eq!(
        e.to_string(),
        "duplicate PCI address 0000:00:01.0: used by \"b\" and \"a\""
    );
}

#[test]
fn errors_explain_bad_properties() {
    let bad = |props: &str| err(&format!("{ONE_VTD}[iommu.properties]\n{props}\n")).to_string();
    let e = bad("address_width = 40");
    assert!(
        e.starts_with("iommu \"dmar0\": bad property: address_width must be"),
        "{e}"
    );
    let e = bad("colour = \"blue\"");
    assert!(e.contains("bad property") && e.contains("colour"), "{e}");
    let e = bad("snoop_control = 3");
    assert!(
        e.contains("bad property: snoop_control: invalid type"),
        "{e}"
    );
    let e = bad("superpages = [\"4M\"]");
    assert!(e.contains("superpages: unknown size \"4M\""), "{e}");
    let e =
        err("[[iommu]]\nname = \"s\"\ndriver = \"smmuv3\"\n[iommu.properties]\nhttu = \"full\"\n")
            .to_string();
    assert!(e.contains("httu: unknown level \"full\""), "{e}");
    let e =
        err("[[iommu]]\nname = \"m\"\ndriver = \"mock\"\n[iommu.properties]\nx = 1\n").to_string();
    assert!(e.starts_with("iommu \"m\": bad property"), "{e}");
}

#[test]
fn errors_for_toml_and_topology_mistakes() {
    let e = err("[[iommu]\nname = 1");
    assert!(matches!(e, Error::Toml(_)));
    assert!(e.to_string().contains("line 1"), "{e}");
    let e = err("policy = \"sometimes\"");
    assert!(e.to_string().contains("sometimes"), "{e}");
    let e = err("[[iommu]]\nname = \"x\"\ndriver = \"vtd\"\nspeed = 3\n");
    assert!(e.to_string().contains("speed"), "{e}");

    let base = format!("{ONE_VTD}[[pci.segment]]\nsegment = 0\niommu = \"dmar0\"\n");
    let e = err(&format!(
        "{base}[[pci.function]]\nname = \"f\"\naddress = \"00:01.0\"\nparent = \"nope\"\n"
    ));
    assert_eq!(e.to_string(), "\"f\": unknown parent bridge \"nope\"");
    let e = err(&format!(
        "{base}[[pci.function]]\nname = \"f\"\naddress = \"00:20.0\"\n"
    ));
    assert!(e.to_string().contains("bad PCI address \"00:20.0\""), "{e}");
    let e = err(&format!(
        "{base}[[pci.bridge]]\nname = \"a\"\naddress = \"00:01.0\"\nparent = \"b\"\n\
         [[pci.bridge]]\nname = \"b\"\naddress = \"00:02.0\"\nparent = \"a\"\n"
    ));
    assert!(e.to_string().contains("cycle"), "{e}");
    let e = err(&format!(
        "{base}[[pci.function]]\nname = \"f\"\naddress = \"00:01.0\"\n\
         [[platform_device]]\nname = \"f\"\niommu = \"dmar0\"\n"
    ));
    assert_eq!(e.to_string(), "duplicate device name \"f\"");
    let e = err(&format!(
        "{base}[[pci.function]]\nname = \"f\"\naddress = \"00:01.0\"\n\
         rmrr = [{{ base = 0x1000, end = 0x1800 }}]\n"
    ));
    assert!(e.to_string().contains("bad RMRR"), "{e}");
    let e = err("[[iommu]]\nname = \"s\"\ndriver = \"smmuv3\"\n\
         [[pci.function]]\nname = \"f\"\naddress = \"00:01.0\"\niommu = \"s\"\n\
         rmrr = [{ base = 0x1000, end = 0x1fff }]\n");
    assert!(e.to_string().contains("RMRRs need a vtd instance"), "{e}");
}

#[test]
fn probe_failures_are_reported_with_the_errno() {
    let text = r#"
        [[iommu]]
        name = "smmu0"
        driver = "smmuv3"
        [iommu.properties]
        sid_bits = 4
        [[platform_device]]
        name = "a"
        iommu = "smmu0"
        stream_ids = [3]
        [[platform_device]]
        name = "b"
        iommu = "smmu0"
        stream_ids = [3]
    "#;
    let desc = Description::parse(text).unwrap();
    let e = desc.build().err().unwrap();
    assert_eq!(
        e,
        Error::Probe {
            device: "b".into(),
            instance: "smmu0".into(),
            errno: Errno::INVAL
        }
    );
    assert_eq!(e.to_string(), "\"b\": probe by \"smmu0\" failed: EINVAL");
    let e = Description::parse(&text.replace(
        "[3]\n        [[platform_device]]",
        "[16]\n        [[platform_device]]",
    ))
    .unwrap()
    .build()
    .err()
    .unwrap();
    assert!(
        matches!(
            e,
            Error::Probe {
                errno: Errno::RANGE,
                ..
            }
        ),
        "{e}"
    );
}
