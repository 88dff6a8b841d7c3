//! A human-readable report of a built platform.

use std::fmt::Write;
use std::sync::Arc;

use drivers::{SmmuDomain, VtdDomain};
use iommu::topology::Bus;
use iommu::{Domain, DomainType, ResvType};

use crate::{Built, Instance, Policy};

fn sizes(bitmap: u64) -> String {
    let mut out = Vec::new();
    for bit in 0..64 {
        if bitmap & (1 << bit) != 0 {
            out.push(match bit {
                b if b >= 30 => format!("{}G", 1u64 << (b - 30)),
                b if b >= 20 => format!("{}M", 1u64 << (b - 20)),
                b if b >= 10 => format!("{}K", 1u64 << (b - 10)),
                b => format!("{}", 1u64 << b),
            });
        }
    }
    if out.is_empty() {
        "none".into()
    } else {
        out.join(" ")
    }
}

fn resv_type(t: ResvType) -> &'static str {
    match t {
        ResvType::Direct => "direct",
        ResvType::DirectRelaxable => "direct-relaxable",
        ResvType::Reserved => "reserved",
        ResvType::Msi => "msi",
        ResvType::SwMsi => "sw-msi",
    }
}

/// What a default domain is, in words.
fn domain_kind(d: &Arc<dyn Domain>) -> String {
    match d.domain_type() {
        DomainType::Blocked => "blocked".into(),
        DomainType::Identity => "identity".into(),
        ty if ty.is_paging() => {
            // The core allocates paging default domains only for the DMA API.
            let mut s = String::from("DMA (paging");
            if let Some(v) = VtdDomain::from_domain(d.as_ref()) {
                let _ = write!(s, ", {}-bit second stage", v.width());
            }
            if let Some(m) = SmmuDomain::from_domain(d.as_ref()) {
                match (m.stage(), m.granule()) {
                    (Some(stage), Some(granule)) => {
                        let stage = match stage {
                            drivers::smmuv3::SmmuStage::S1 => "stage 1",
                            drivers::smmuv3::SmmuStage::S2 => "stage 2",
                        };
                        let granule = match granule {
                            pt::fmt::Granule::K4 => "4K",
                            pt::fmt::Granule::K16 => "16K",
                            pt::fmt::Granule::K64 => "64K",
                        };
                        let _ = write!(s, ", {stage}, {granule} granule");
                    }
                    _ => s.push_str(", not finalized"),
                }
            }
            let _ = write!(s, ", pages {})", sizes(d.pgsize_bitmap()));
            s
        }
        ty => format!("{ty:?}"),
    }
}

fn yes(b: bool, what: &str) -> Option<String> {
    b.then(|| what.to_string())
}

impl Built {
    /// Instances, devices, groups with their default domains and reserved regions.
    pub fn report(&self) -> String {
        let mut out = String::new();
        let policy = match self.policy {
            Policy::Dma => "dma",
            Policy::Passthrough => "passthrough",
        };
        let _ = writeln!(out, "default domain policy: {policy}");
        let _ = writeln!(out, "\nIOMMU instances:");
        for (name, inst) in &self.instances {
            let detail = match inst {
                Instance::Vtd(v) => {
                    let r = v.regs();
                    let feats: Vec<String> = [
                        yes(r.sc(), "snoop-control"),
                        yes(r.ssads_supported(), "dirty-tracking"),
                        yes(r.nested_supported(), "nesting"),
                        yes(r.sm_supported(), "scalable-mode"),
                        yes(r.coherent(), "coherent"),
                    ]
                    .into_iter()
                    .flatten()
                    .collect();
                    let pasid = if r.pasid_supported() {
                        format!("{} PASID bits", r.pss() + 1)
                    } else {
                        "no PASID".into()
                    };
                    format!(
                        "{}-bit, pages {}, {pasid}, {}\n      CAP {:#018x} ECAP {:#018x}",
                        v.address_width(),
                        sizes(v.pgsize_bitmap()),
                        feats.join(" "),
                        r.cap,
                        r.ecap
                    )
                }
                Instance::SmmuV3(s) => {
                    let r = s.regs();
                    let stages = match (r.stage1(), r.stage2()) {
                        (true, true) => "stage 1+2",
                        (true, false) => "stage 1",
                        _ => "stage 2",
                    };
                    let httu = ["none", "access", "access+dirty", "?"][r.httu() as usize & 3];
                    let feats: Vec<String> = [
                        yes(r.coherent(), "coherent"),
                        yes(s.config().domain_alloc_user, "domain_alloc_user"),
                    ]
                    .into_iter()
                    .flatten()
                    .collect();
                    format!(
                        "{stages}, pages {}, IAS {} OAS {}, HTTU {httu}, {} SSID bits, {} SID bits, {}\n      IDR0 {:#010x} IDR1 {:#010x} IDR3 {:#010x} IDR5 {:#010x} IIDR {:#010x} AIDR {:#010x}",
                        sizes(r.pgsize_bitmap()),
                        r.ias(),
                        r.oas(),
                        r.ssid_bits(),
                        r.sid_bits(),
                        feats.join(" "),
                        r.idr[0],
                        r.idr[1],
                        r.idr[3],
                        r.idr[5],
                        r.iidr,
                        r.aidr
                    )
                }
                Instance::Mock(_) => "the iommufd selftest mock".into(),
            };
            let _ = writeln!(out, "  {name} ({}): {detail}", inst.driver());
        }

        let _ = writeln!(out, "\nDevices:");
        for name in &self.order {
            let dev = &self.devices[name];
            let desc = dev.desc();
            let place = match &desc.bus {
                Bus::Pci(p) => {
                    let mut s = format!("PCI {}", p.addr);
                    if !p.path.is_empty() {
                        let path: Vec<String> = p
                            .path
                            .iter()
                            .map(|b| {
                                format!(
                                    "{}{}{}",
                                    b.addr,
                                    if b.acs { "" } else { " (no ACS)" },
                                    if b.to_pci { " (PCIe-to-PCI)" } else { "" }
                                )
                            })
                            .collect();
                        let _ = write!(s, " below {}", path.join(" > "));
                    }
                    s
                }
                Bus::Platform(p) if p.stream_ids.is_empty() => "platform".into(),
                Bus::Platform(p) => {
                    let sids: Vec<String> =
                        p.stream_ids.iter().map(|s| format!("{s:#x}")).collect();
                    format!("platform, stream IDs {}", sids.join(" "))
                }
                Bus::None => "no bus".into(),
            };
            let _ = writeln!(
                out,
                "  {name}: {place}; iommu {}, group {}, {} PASIDs",
                self.instance_of.get(name).map_or("?", String::as_str),
                dev.group().id(),
                dev.max_pasids()
            );
        }

        let _ = writeln!(out, "\nGroups:");
        for (group, names) in self.groups() {
            let _ = writeln!(out, "  group {}: {}", group.id(), names.join(", "));
            let default = group
                .default_domain()
                .map_or_else(|| "none".into(), |d| domain_kind(&d));
            let _ = writeln!(out, "    default domain: {default}");
            let regions = group.resv_regions();
            if regions.is_empty() {
                let _ = writeln!(out, "    reserved regions: none");
            } else {
                let _ = writeln!(out, "    reserved regions:");
                for r in regions {
                    let _ = writeln!(
                        out,
                        "      {:#012x}..={:#012x} {}",
                        r.start,
                        r.start + (r.length - 1),
                        resv_type(r.ty)
                    );
                }
            }
        }
        out
    }
}
