//! Helpers shared by the driver tests: device descriptions, probing, user memory.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use iommu::topology::{Bus, PciAddr, PciBridge, PciDevice, PlatformDevice};
use iommu::{Device, DeviceDesc, DirtyOps, IommuOps, Platform, UserRead};
use uapi::Errno;

pub const SZ_4K: u64 = 1 << 12;
pub const SZ_2M: u64 = 1 << 21;
pub const SZ_1G: u64 = 1 << 30;

pub fn addr(bus: u8, dev: u8, func: u8) -> PciAddr {
    PciAddr {
        segment: 0,
        bus,
        dev,
        func,
    }
}

/// A PCI function on the root bus.
pub fn pci(name: &str, a: PciAddr) -> DeviceDesc {
    pci_below(name, a, Vec::new())
}

/// A PCI function below `path` (root first).
pub fn pci_below(name: &str, a: PciAddr, path: Vec<PciBridge>) -> DeviceDesc {
    DeviceDesc {
        name: name.into(),
        bus_id: u64::from(a.rid()),
        bus: Bus::Pci(PciDevice {
            addr: a,
            path,
            ..PciDevice::default()
        }),
        ..DeviceDesc::default()
    }
}

/// A platform device with stream IDs.
pub fn platform_dev(name: &str, sids: &[u32]) -> DeviceDesc {
    DeviceDesc {
        name: name.into(),
        bus: Bus::Platform(PlatformDevice {
            stream_ids: sids.to_vec(),
        }),
        ..DeviceDesc::default()
    }
}

pub fn probe(platform: &Platform, ops: &Arc<dyn IommuOps>, desc: DeviceDesc) -> Arc<Device> {
    let name = desc.name.clone();
    platform
        .probe(ops, desc)
        .unwrap_or_else(|e| panic!("probing {name}: {e:?}"))
}

/// User memory for driver data: address `n` is byte `n` of the vector.
pub struct Mem(pub Vec<u8>);

impl UserRead for Mem {
    fn read_user(&self, uptr: u64, dst: &mut [u8]) -> Result<(), Errno> {
        let start = usize::try_from(uptr).map_err(|_| Errno::FAULT)?;
        let src = self.0.get(start..start + dst.len()).ok_or(Errno::FAULT)?;
        dst.copy_from_slice(src);
        Ok(())
    }
}

/// `read_and_clear_dirty` with a recorder: the ranges reported.
pub fn read_dirty(
    ops: &dyn DirtyOps,
    iova: u64,
    len: u64,
    flags: u32,
) -> Result<Vec<(u64, u64)>, Errno> {
    let mut out = Vec::new();
    let mut rec = |iova: u64, len: u64| out.push((iova, len));
    ops.read_and_clear_dirty(iova, len, flags, Some(&mut rec))?;
    Ok(out)
}
