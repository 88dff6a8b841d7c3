//! The description's TOML schema (serde types) and its checks.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use drivers::{Rmrr, SmmuV3Config, VtdConfig};
use iommu::topology::{Bus, PciAddr, PciBridge, PciDevice, PlatformDevice};
use iommu::{DefaultPolicy, DeviceDesc};

use crate::props::{MockProps, SmmuV3Props, VtdProps};
use crate::Error;

/// A platform: IOMMU instances, the PCI topology and platform devices.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Description {
    /// The default-domain policy (`iommu.passthrough`).
    #[serde(default)]
    pub policy: Policy,
    /// IOMMU instances (`[[iommu]]`).
    #[serde(default, rename = "iommu", skip_serializing_if = "Vec::is_empty")]
    pub iommus: Vec<IommuDesc>,
    /// The PCI topology (`[pci]`).
    #[serde(default, skip_serializing_if = "PciDesc::is_empty")]
    pub pci: PciDesc,
    /// Platform devices (`[[platform_device]]`).
    #[serde(
        default,
        rename = "platform_device",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub platform_devices: Vec<PlatformDeviceDesc>,
}

/// The default-domain policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// DMA-API translation (`IOMMU_DOMAIN_DMA`).
    #[default]
    Dma,
    /// Passthrough (`IOMMU_DOMAIN_IDENTITY`).
    Passthrough,
}

impl From<Policy> for DefaultPolicy {
    fn from(p: Policy) -> DefaultPolicy {
        match p {
            Policy::Dma => DefaultPolicy::Dma,
            Policy::Passthrough => DefaultPolicy::Passthrough,
        }
    }
}

/// One IOMMU instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IommuDesc {
    /// Unique instance name.
    pub name: String,
    /// `"vtd"`, `"smmuv3"` or `"mock"`.
    pub driver: String,
    /// Driver properties; missing ones take the driver's defaults.
    #[serde(default)]
    pub properties: toml::Table,
}

/// The PCI topology.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PciDesc {
    /// Segments and the instance covering them (`[[pci.segment]]`).
    #[serde(default, rename = "segment", skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<SegmentDesc>,
    /// Root ports, switch ports and bridges (`[[pci.bridge]]`).
    #[serde(default, rename = "bridge", skip_serializing_if = "Vec::is_empty")]
    pub bridges: Vec<BridgeDesc>,
    /// Functions (`[[pci.function]]`).
    #[serde(default, rename = "function", skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<FunctionDesc>,
}

impl PciDesc {
    fn is_empty(&self) -> bool {
        self.segments.is_empty() && self.bridges.is_empty() && self.functions.is_empty()
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A PCI segment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentDesc {
    /// Segment (domain) number.
    pub segment: u16,
    /// The instance translating every function of the segment that names none
    /// (a DRHD with `INCLUDE_PCI_ALL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iommu: Option<String>,
}

/// A root port, switch port or bridge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeDesc {
    /// Unique name.
    pub name: String,
    /// `SSSS:BB:DD.F` or `BB:DD.F` (segment 0).
    pub address: String,
    /// The bridge above, if not on a root bus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// ACS isolation (source validation, request/completion redirect, upstream
    /// forwarding) on this port.
    #[serde(default, skip_serializing_if = "is_false")]
    pub acs: bool,
    /// A PCIe-to-PCI(-X) bridge: it takes ownership of DMA from below.
    #[serde(default, skip_serializing_if = "is_false")]
    pub to_pci: bool,
}

/// A PCI function.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionDesc {
    /// Unique name.
    pub name: String,
    /// `SSSS:BB:DD.F` or `BB:DD.F` (segment 0).
    pub address: String,
    /// The bridge above, if on a root bus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The instance translating it; default: its segment's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iommu: Option<String>,
    /// PASID capability width, 0 for none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pasid_bits: u32,
    /// PASID execute permission enabled.
    #[serde(default, skip_serializing_if = "is_false")]
    pub pasid_exec: bool,
    /// PASID privileged mode enabled.
    #[serde(default, skip_serializing_if = "is_false")]
    pub pasid_priv: bool,
    /// One function of a multi-function device.
    #[serde(default, skip_serializing_if = "is_false")]
    pub multifunction: bool,
    /// ACS isolation from its sibling functions.
    #[serde(default, skip_serializing_if = "is_false")]
    pub acs: bool,
    /// Requester IDs its DMA may also carry (`BB:DD.F`, same segment).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dma_aliases: Vec<String>,
    /// Behind an external-facing port: always translated.
    #[serde(default, skip_serializing_if = "is_false")]
    pub untrusted: bool,
    /// RMRRs naming this function (VT-d instances only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rmrr: Vec<RmrrDesc>,
}

/// An RMRR: `[base, end]`, both inclusive, 4 KiB granular.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RmrrDesc {
    /// First byte.
    pub base: Addr,
    /// Last byte.
    pub end: Addr,
    /// The device can do without it (reported as `DirectRelaxable`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub relaxable: bool,
}

/// A platform device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformDeviceDesc {
    /// Unique name.
    pub name: String,
    /// The instance translating it.
    pub iommu: String,
    /// Stream IDs of its transactions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stream_ids: Vec<u32>,
    /// PASID (substream ID) width, 0 for none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pasid_bits: u32,
}

/// A 64-bit address: a TOML integer or a string (`"0xfee00000"`); printed in hex.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Addr(pub u64);

impl Serialize for Addr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:#x}", self.0))
    }
}

impl<'de> Deserialize<'de> for Addr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Addr, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Str(String),
        }
        let bad = |v: &dyn std::fmt::Display| {
            serde::de::Error::custom(format!("bad address {v}: expected an integer or \"0x...\""))
        };
        match Raw::deserialize(d)? {
            Raw::Int(n) => u64::try_from(n).map(Addr).map_err(|_| bad(&n)),
            Raw::Str(s) => {
                let t = s.trim().replace('_', "");
                let v = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                    Some(hex) => u64::from_str_radix(hex, 16),
                    None => t.parse(),
                };
                v.map(Addr).map_err(|_| bad(&format!("{s:?}")))
            }
        }
    }
}

/// Parses `SSSS:BB:DD.F` or `BB:DD.F` (hexadecimal; device < 0x20, function < 8).
pub fn parse_pci_addr(s: &str) -> Result<PciAddr, String> {
    let bad = |why: &str| Err(format!("bad PCI address {s:?}: {why}"));
    let (head, func) = match s.rsplit_once('.') {
        Some(parts) => parts,
        None => return bad("expected SSSS:BB:DD.F or BB:DD.F"),
    };
    let parts: Vec<&str> = head.split(':').collect();
    let (seg, bus, dev) = match parts.as_slice() {
        [seg, bus, dev] => (*seg, *bus, *dev),
        [bus, dev] => ("0", *bus, *dev),
        _ => return bad("expected SSSS:BB:DD.F or BB:DD.F"),
    };
    let hex = |v: &str, max: u32| u32::from_str_radix(v, 16).ok().filter(|&n| n <= max);
    let (Some(segment), Some(bus), Some(dev), Some(func)) = (
        hex(seg, 0xffff),
        hex(bus, 0xff),
        hex(dev, 0x1f),
        hex(func, 7),
    ) else {
        return bad("segment, bus, device or function out of range");
    };
    Ok(PciAddr {
        segment: segment as u16,
        bus: bus as u8,
        dev: dev as u8,
        func: func as u8,
    })
}

/// The driver of an instance, with its checked configuration.
#[derive(Clone, Debug)]
pub(crate) enum InstanceConfig {
    Vtd(VtdConfig),
    SmmuV3(SmmuV3Config),
    Mock,
}

/// A device ready to probe.
#[derive(Clone, Debug)]
pub(crate) struct PlannedDevice {
    pub(crate) instance: String,
    pub(crate) desc: DeviceDesc,
    pub(crate) rmrrs: Vec<Rmrr>,
}

/// A checked description: instance configurations and devices in probe order.
pub(crate) struct Plan {
    pub(crate) instances: Vec<(String, InstanceConfig)>,
    pub(crate) devices: Vec<PlannedDevice>,
}

/// The known drivers, for messages.
pub const DRIVERS: &[&str] = &["vtd", "smmuv3", "mock"];

impl IommuDesc {
    /// Checks the driver and properties; returns the configuration and the
    /// properties with every default filled in.
    fn check(&self) -> Result<(InstanceConfig, toml::Table), Error> {
        let bad = |message: String| Error::BadProperty {
            instance: self.name.clone(),
            message,
        };
        let to_table = |v: Result<toml::Table, toml::ser::Error>| v.map_err(|e| bad(e.to_string()));
        match self.driver.as_str() {
            "vtd" => {
                let p: VtdProps = self.props().map_err(bad)?;
                let cfg = p.to_config(&self.name).map_err(bad)?;
                Ok((
                    InstanceConfig::Vtd(cfg),
                    to_table(toml::Table::try_from(&p))?,
                ))
            }
            "smmuv3" => {
                let p: SmmuV3Props = self.props().map_err(bad)?;
                let cfg = p.to_config(&self.name).map_err(bad)?;
                Ok((
                    InstanceConfig::SmmuV3(cfg),
                    to_table(toml::Table::try_from(&p))?,
                ))
            }
            "mock" => {
                let _: MockProps = self.props().map_err(bad)?;
                Ok((InstanceConfig::Mock, toml::Table::new()))
            }
            other => Err(Error::UnknownDriver {
                instance: self.name.clone(),
                driver: other.to_string(),
            }),
        }
    }

    /// The typed properties; an error names the offending key when it can.
    fn props<P: serde::de::DeserializeOwned>(&self) -> Result<P, String> {
        let parse = |t: toml::Table| toml::Value::Table(t).try_into::<P>();
        parse(self.properties.clone()).map_err(|e| {
            // Properties are re-read from a table, which has no location: find
            // the key that fails on its own.
            let culprit = self.properties.iter().find(|(k, v)| {
                let mut one = toml::Table::new();
                one.insert((*k).clone(), (*v).clone());
                parse(one).is_err()
            });
            let message = e.message().trim().to_string();
            match culprit {
                Some((key, _)) if !message.contains(key.as_str()) => format!("{key}: {message}"),
                _ => message,
            }
        })
    }
}

impl Description {
    /// Fills in every instance's default properties (after checking them).
    pub(crate) fn normalize(&mut self) -> Result<(), Error> {
        for iommu in &mut self.iommus {
            let (_, props) = iommu.check()?;
            iommu.properties = props;
        }
        Ok(())
    }

    /// Checks the whole description and plans the build.
    pub(crate) fn plan(&self) -> Result<Plan, Error> {
        // Instances.
        let mut instances = Vec::new();
        let mut by_name: HashMap<&str, InstanceConfig> = HashMap::new();
        for iommu in &self.iommus {
            if by_name.contains_key(iommu.name.as_str()) {
                return Err(Error::DuplicateName {
                    kind: "iommu",
                    name: iommu.name.clone(),
                });
            }
            let (cfg, _) = iommu.check()?;
            by_name.insert(&iommu.name, cfg.clone());
            instances.push((iommu.name.clone(), cfg));
        }
        let instance = |device: &str, name: &str| -> Result<&InstanceConfig, Error> {
            by_name.get(name).ok_or_else(|| Error::UnknownInstance {
                device: device.to_string(),
                instance: name.to_string(),
            })
        };

        // Names and addresses.
        let mut names = BTreeSet::new();
        let all_names = self
            .pci
            .bridges
            .iter()
            .map(|b| &b.name)
            .chain(self.pci.functions.iter().map(|f| &f.name))
            .chain(self.platform_devices.iter().map(|d| &d.name));
        for name in all_names {
            if !names.insert(name.as_str()) {
                return Err(Error::DuplicateName {
                    kind: "device",
                    name: name.clone(),
                });
            }
        }
        let mut addrs: BTreeMap<PciAddr, &str> = BTreeMap::new();
        let mut bridges: HashMap<&str, (PciAddr, &BridgeDesc)> = HashMap::new();
        let pci_entries = self
            .pci
            .bridges
            .iter()
            .map(|b| (&b.name, &b.address))
            .chain(self.pci.functions.iter().map(|f| (&f.name, &f.address)));
        for (name, address) in pci_entries {
            let a = parse_pci_addr(address).map_err(|message| Error::Invalid {
                what: name.clone(),
                message,
            })?;
            if let Some(first) = addrs.insert(a, name) {
                return Err(Error::DuplicateAddress {
                    address: a.to_string(),
                    first: first.to_string(),
                    second: name.clone(),
                });
            }
        }
        for b in &self.pci.bridges {
            let a = parse_pci_addr(&b.address).map_err(|message| Error::Invalid {
                what: b.name.clone(),
                message,
            })?;
            bridges.insert(&b.name, (a, b));
        }
        // The chain of bridges above `parent`, root first.
        let path =
            |who: &str, addr: PciAddr, parent: &Option<String>| -> Result<Vec<PciBridge>, Error> {
                let mut out = Vec::new();
                let mut cur = parent.clone();
                while let Some(p) = cur {
                    let Some((a, b)) = bridges.get(p.as_str()) else {
                        return Err(Error::UnknownParent {
                            device: who.to_string(),
                            parent: p,
                        });
                    };
                    if out.len() > bridges.len() {
                        return Err(Error::Invalid {
                            what: who.to_string(),
                            message: "its parent bridges form a cycle".into(),
                        });
                    }
                    if a.segment != addr.segment {
                        return Err(Error::Invalid {
                            what: who.to_string(),
                            message: format!("segment differs from its parent bridge {}", b.name),
                        });
                    }
                    out.push(PciBridge {
                        addr: *a,
                        acs: b.acs,
                        to_pci: b.to_pci,
                    });
                    cur = b.parent.clone();
                }
                out.reverse();
                Ok(out)
            };
        for b in &self.pci.bridges {
            path(&b.name, bridges[b.name.as_str()].0, &b.parent)?;
        }
        let mut segments: HashMap<u16, &SegmentDesc> = HashMap::new();
        for s in &self.pci.segments {
            if segments.insert(s.segment, s).is_some() {
                return Err(Error::Invalid {
                    what: format!("segment {}", s.segment),
                    message: "listed twice".into(),
                });
            }
            if let Some(i) = &s.iommu {
                instance(&format!("segment {}", s.segment), i)?;
            }
        }

        // Devices, PCI functions first.
        let mut devices = Vec::new();
        for f in &self.pci.functions {
            let invalid = |message: String| Error::Invalid {
                what: f.name.clone(),
                message,
            };
            let a = parse_pci_addr(&f.address).map_err(invalid)?;
            let inst_name = f
                .iommu
                .clone()
                .or_else(|| segments.get(&a.segment).and_then(|s| s.iommu.clone()))
                .ok_or_else(|| Error::NoInstance {
                    device: f.name.clone(),
                })?;
            let inst = instance(&f.name, &inst_name)?;
            let mut dma_aliases = Vec::new();
            for alias in &f.dma_aliases {
                let al = parse_pci_addr(alias).map_err(invalid)?;
                if al.segment != a.segment {
                    return Err(invalid(format!("DMA alias {alias} is on another segment")));
                }
                dma_aliases.push(al.rid());
            }
            let mut rmrrs = Vec::new();
            for r in &f.rmrr {
                if !matches!(inst, InstanceConfig::Vtd(_)) {
                    return Err(invalid(format!(
                        "RMRRs need a vtd instance ({inst_name} is not one)"
                    )));
                }
                let (base, end) = (r.base.0, r.end.0);
                if end < base || base & 0xfff != 0 || end & 0xfff != 0xfff {
                    return Err(invalid(format!(
                        "bad RMRR {base:#x}..={end:#x}: base and end + 1 must be 4 KiB aligned, end >= base"
                    )));
                }
                rmrrs.push(Rmrr {
                    base,
                    end,
                    relaxable: r.relaxable,
                });
            }
            let desc = DeviceDesc {
                name: f.name.clone(),
                bus_id: u64::from(a.segment) << 16 | u64::from(a.rid()),
                pasid_bits: f.pasid_bits,
                untrusted: f.untrusted,
                flags: 0,
                pasid_exec: f.pasid_exec,
                pasid_priv: f.pasid_priv,
                bus: Bus::Pci(PciDevice {
                    addr: a,
                    path: path(&f.name, a, &f.parent)?,
                    multifunction: f.multifunction,
                    acs: f.acs,
                    dma_aliases,
                }),
            };
            devices.push(PlannedDevice {
                instance: inst_name,
                desc,
                rmrrs,
            });
        }
        for d in &self.platform_devices {
            let inst = instance(&d.name, &d.iommu)?;
            if matches!(inst, InstanceConfig::SmmuV3(_)) && d.stream_ids.is_empty() {
                return Err(Error::Invalid {
                    what: d.name.clone(),
                    message: format!(
                        "a device behind smmuv3 instance {} needs stream_ids",
                        d.iommu
                    ),
                });
            }
            let desc = DeviceDesc {
                name: d.name.clone(),
                bus_id: d.stream_ids.first().copied().map_or(0, u64::from),
                pasid_bits: d.pasid_bits,
                bus: Bus::Platform(PlatformDevice {
                    stream_ids: d.stream_ids.clone(),
                }),
                ..DeviceDesc::default()
            };
            devices.push(PlannedDevice {
                instance: d.iommu.clone(),
                desc,
                rmrrs: Vec::new(),
            });
        }
        Ok(Plan { instances, devices })
    }
}
