//! Where a device sits on its bus, and which devices the IOMMU cannot tell apart.
//!
//! An IOMMU isolates by requester ID (PCI) or stream ID (platform). Devices whose
//! DMA may arrive with another device's ID, or may be redirected peer-to-peer
//! before reaching the IOMMU, cannot be isolated from each other and share a group:
//!
//! - PCI devices below a bridge or port on whose path to the root complex some
//!   bridge lacks ACS (Access Control Services) isolation: they group at the
//!   topmost such bridge;
//! - the functions of a multi-function device without ACS;
//! - DMA aliases (quirks, PCIe-to-PCI bridges that take ownership of transactions):
//!   a device shares the group of every requester ID it may use;
//! - platform devices that share a stream ID (for drivers that group by stream ID).
//!
//! [`device_group`] turns a description into the keys of [`GroupKey::Shared`]: the
//! device joins the group of any device already probed with one of its keys.
//!
//! Kernel: `drivers/iommu/iommu.c` (`pci_device_group`, `get_pci_alias_group`,
//! `get_pci_function_alias_group`, `generic_device_group`), `drivers/pci/search.c`
//! (`pci_for_each_dma_alias`), `drivers/pci/pci.c` (`pci_acs_path_enabled`), v6.12.

use crate::ops::GroupKey;

/// A PCI function address: segment (domain), bus, device and function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PciAddr {
    /// PCI segment (domain) number.
    pub segment: u16,
    /// Bus number.
    pub bus: u8,
    /// Device (slot) number, 0..32.
    pub dev: u8,
    /// Function number, 0..8.
    pub func: u8,
}

impl PciAddr {
    /// The requester ID the function's DMA carries (`bus << 8 | devfn`).
    pub const fn rid(self) -> u16 {
        (self.bus as u16) << 8 | (self.dev as u16 & 0x1f) << 3 | (self.func as u16 & 7)
    }

    /// The address with the given requester ID on the same segment.
    pub const fn with_rid(self, rid: u16) -> PciAddr {
        PciAddr {
            segment: self.segment,
            bus: (rid >> 8) as u8,
            dev: ((rid >> 3) & 0x1f) as u8,
            func: (rid & 7) as u8,
        }
    }
}

impl std::fmt::Display for PciAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{}",
            self.segment, self.bus, self.dev, self.func
        )
    }
}

/// A bridge or switch port between the root complex and a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PciBridge {
    /// The bridge's own address.
    pub addr: PciAddr,
    /// ACS source validation, request and completion redirect and upstream
    /// forwarding are enabled (`REQ_ACS_FLAGS`): no peer-to-peer below it.
    pub acs: bool,
    /// A PCIe-to-PCI(-X) bridge: DMA from below may carry the bridge's requester ID.
    pub to_pci: bool,
}

/// A PCI function.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PciDevice {
    /// Its address.
    pub addr: PciAddr,
    /// The bridges between the root bus and the device, root first.
    pub path: Vec<PciBridge>,
    /// One function of a multi-function device.
    pub multifunction: bool,
    /// The function has ACS isolation from its sibling functions.
    pub acs: bool,
    /// Requester IDs the device may also use (DMA alias quirks, `dma_alias_mask`).
    pub dma_aliases: Vec<u16>,
}

/// A platform (non-discoverable) device.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PlatformDevice {
    /// The stream IDs its transactions carry (`iommus` / `iommu-map` in firmware).
    pub stream_ids: Vec<u32>,
}

/// The bus a device is on.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Bus {
    /// No topology: the device is isolated on its own.
    #[default]
    None,
    /// PCI / PCIe.
    Pci(PciDevice),
    /// A platform device with stream IDs.
    Platform(PlatformDevice),
}

const KIND_SHIFT: u32 = 56;
const KEY_RID: u64 = 1 << KIND_SHIFT;
const KEY_SLOT: u64 = 2 << KIND_SHIFT;
const KEY_BRIDGE: u64 = 3 << KIND_SHIFT;
const KEY_STREAM: u64 = 4 << KIND_SHIFT;

fn rid_key(addr: PciAddr) -> u64 {
    KEY_RID | u64::from(addr.segment) << 16 | u64::from(addr.rid())
}

/// Whether every bridge from `path[i]` up to the root has ACS (`pci_acs_path_enabled`).
fn acs_path_enabled(path: &[PciBridge], i: usize) -> bool {
    path[..=i].iter().all(|b| b.acs)
}

/// The requester IDs DMA from `dev` may carry (`pci_for_each_dma_alias`): its own,
/// its quirk aliases, and those of PCIe-to-PCI bridges above it.
pub fn pci_dma_aliases(dev: &PciDevice) -> Vec<PciAddr> {
    let mut out = vec![dev.addr];
    out.extend(dev.dma_aliases.iter().map(|&rid| dev.addr.with_rid(rid)));
    out.extend(dev.path.iter().filter(|b| b.to_pci).map(|b| b.addr));
    out
}

/// Group keys of a PCI function (`pci_device_group`).
pub fn pci_device_group(dev: &PciDevice) -> GroupKey {
    let mut keys: Vec<u64> = pci_dma_aliases(dev).into_iter().map(rid_key).collect();
    // The topmost bridge whose path to the root is not fully isolated: every device
    // below it can reach every other peer-to-peer.
    let mut shared_bridge = None;
    for i in (0..dev.path.len()).rev() {
        if acs_path_enabled(&dev.path, i) {
            break;
        }
        shared_bridge = Some(dev.path[i].addr);
    }
    if let Some(bridge) = shared_bridge {
        keys.push(KEY_BRIDGE | u64::from(bridge.segment) << 16 | u64::from(bridge.rid()));
    }
    if dev.multifunction && !dev.acs {
        let slot = PciAddr {
            func: 0,
            ..dev.addr
        };
        keys.push(KEY_SLOT | u64::from(slot.segment) << 16 | u64::from(slot.rid()));
    }
    keys.sort_unstable();
    keys.dedup();
    GroupKey::Shared(keys)
}

/// Group keys of a platform device that shares a group with every device using
/// one of its stream IDs (the Arm SMMU's stream-matching grouping).
pub fn stream_id_group(dev: &PlatformDevice) -> GroupKey {
    if dev.stream_ids.is_empty() {
        return GroupKey::Singleton;
    }
    let mut keys: Vec<u64> = dev
        .stream_ids
        .iter()
        .map(|&sid| KEY_STREAM | u64::from(sid))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    GroupKey::Shared(keys)
}

/// The core's default grouping (`iommu_group_get_for_dev` with the usual driver
/// choices): PCI topology for PCI functions, stream-ID sharing for platform
/// devices, a group of its own otherwise.
pub fn device_group(bus: &Bus) -> GroupKey {
    match bus {
        Bus::None => GroupKey::Singleton,
        Bus::Pci(dev) => pci_device_group(dev),
        Bus::Platform(dev) => stream_id_group(dev),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(bus: u8, dev: u8, func: u8) -> PciAddr {
        PciAddr {
            segment: 0,
            bus,
            dev,
            func,
        }
    }

    #[test]
    fn rid_round_trips() {
        for rid in [0u16, 0x0008, 0x01ff, 0xff07, 0xffff] {
            assert_eq!(PciAddr::default().with_rid(rid).rid(), rid);
        }
        assert_eq!(addr(0x3a, 0x1f, 7).rid(), 0x3aff);
        assert_eq!(addr(1, 2, 3).to_string(), "0000:01:02.3");
    }

    #[test]
    fn topmost_non_acs_bridge_is_the_key() {
        let root = PciBridge {
            addr: addr(0, 1, 0),
            acs: true,
            to_pci: false,
        };
        let switch = PciBridge {
            addr: addr(1, 0, 0),
            acs: false,
            to_pci: false,
        };
        let port = PciBridge {
            addr: addr(2, 3, 0),
            acs: true,
            to_pci: false,
        };
        let dev = PciDevice {
            addr: addr(3, 0, 0),
            path: vec![root, switch, port],
            ..Default::default()
        };
        let GroupKey::Shared(keys) = pci_device_group(&dev) else {
            panic!("PCI devices are keyed");
        };
        // The port has ACS but its path through the switch does not: the switch
        // (topmost non-isolated) is the key, not the port.
        assert!(keys.contains(&(KEY_BRIDGE | u64::from(switch.addr.rid()))));
        assert!(!keys.contains(&(KEY_BRIDGE | u64::from(port.addr.rid()))));
    }
}
