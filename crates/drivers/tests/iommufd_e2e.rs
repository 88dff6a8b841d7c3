//! The drivers under iommufd, end to end through the ioctl ABI: devices of the
//! VT-d-like and SMMUv3-like instances are bound and attached through the
//! selftest's device hook (`IOMMU_TEST_OP_MOCK_DOMAIN` with a driver that hands
//! out platform devices), so the real HWPT paths run: `domain_alloc_user` for
//! VT-d, and for the SMMUv3 (no `domain_alloc_user`, finalized at attach) the
//! immediate-attach path of automatic domains.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use common::*;
use drivers::smmuv3::MSI_IOVA_BASE;
use drivers::vtd::IOAPIC_RANGE_START;
use drivers::{SmmuDomain, SmmuV3, SmmuV3Config, Vtd, VtdConfig, VtdDomain};
use host::sys::Mmap;
use iommu::{DefaultPolicy, Device, DeviceDesc, Domain, IommuOps, Platform};
use iommufd::{Env, IommufdFile, SelftestDriver};
use uapi::{
    Errno, HwptAlloc, HwptGetDirtyBitmap, HwptSetDirtyTracking, IoasAlloc, IoasMap, IoctlCmd,
    TestCmd, TestMockDomain, TestMockDomainReplace, IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
    IOMMU_HWPT_DIRTY_TRACKING_ENABLE, IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE,
    IOMMU_IOAS_MAP_WRITEABLE,
};
use zerocopy::FromZeros;

/// Hands out the queued platform devices to `IOMMU_TEST_OP_MOCK_DOMAIN`.
struct Devices {
    platform: Platform,
    queue: Mutex<VecDeque<(Arc<dyn IommuOps>, DeviceDesc)>>,
    created: Mutex<Vec<Arc<Device>>>,
}

impl Devices {
    fn new(devices: Vec<(Arc<dyn IommuOps>, DeviceDesc)>) -> Arc<Devices> {
        Arc::new(Devices {
            platform: Platform::new(DefaultPolicy::Dma),
            queue: Mutex::new(devices.into()),
            created: Mutex::new(Vec::new()),
        })
    }

    fn device(&self, i: usize) -> Arc<Device> {
        self.created.lock().unwrap()[i].clone()
    }
}

impl SelftestDriver for Devices {
    fn create_device(&self, _flags: u32) -> Result<Arc<Device>, Errno> {
        let (ops, desc) = self.queue.lock().unwrap().pop_front().ok_or(Errno::NODEV)?;
        let dev = self.platform.probe(&ops, desc)?;
        self.created.lock().unwrap().push(dev.clone());
        Ok(dev)
    }
    fn destroy_device(&self, dev: &Arc<Device>) {
        self.platform.remove_device(dev);
    }
    fn is_mock_device(&self, _dev: &Device) -> bool {
        true
    }
    fn lookup(&self, domain: &dyn Domain, iova: u64) -> Result<Option<u64>, Errno> {
        let pa = domain.iova_to_phys(iova);
        Ok((pa != 0).then_some(pa))
    }
    fn dirty_tracking(&self, _domain: &dyn Domain) -> Result<bool, Errno> {
        Err(Errno::INVAL)
    }
    fn mark_dirty(&self, _domain: &dyn Domain, _index: u64) -> Result<bool, Errno> {
        Err(Errno::INVAL)
    }
    fn iotlb(&self, _domain: &dyn Domain, _id: u32) -> Result<Option<u32>, Errno> {
        Err(Errno::INVAL)
    }
}

struct Fd(Arc<IommufdFile>);

impl Fd {
    fn open(devices: &Arc<Devices>) -> Fd {
        let env = Env {
            mm: inproc::host_mm().clone(),
            files: inproc::FdTable::global().clone(),
            selftest: Some(devices.clone()),
        };
        Fd(IommufdFile::open(env, false))
    }

    fn ioctl<T: IoctlCmd>(&self, cmd: &mut T) -> Result<i64, Errno> {
        let size = T::SIZE as u32;
        cmd.as_mut_bytes()[..4].copy_from_slice(&size.to_ne_bytes());
        self.0
            .ioctl(T::IOCTL, cmd.as_mut_bytes().as_mut_ptr() as u64)
    }

    fn ioas(&self) -> u32 {
        let mut cmd = IoasAlloc::new_zeroed();
        self.ioctl(&mut cmd).unwrap();
        cmd.out_ioas_id
    }

    /// Binds the next queued device and attaches it to `pt_id`: (stdev, hwpt, idev).
    fn attach_next(&self, pt_id: u32) -> Result<(u32, u32, u32), Errno> {
        let mut cmd = TestCmd::new(pt_id, &TestMockDomain::new_zeroed());
        self.ioctl(&mut cmd)?;
        let out: TestMockDomain = cmd.payload_as();
        Ok((out.out_stdev_id, out.out_hwpt_id, out.out_idev_id))
    }

    fn replace(&self, stdev: u32, pt_id: u32) -> Result<(), Errno> {
        let mut cmd = TestCmd::new(stdev, &TestMockDomainReplace { pt_id });
        self.ioctl(&mut cmd).map(|_| ())
    }

    fn map_fixed(&self, ioas: u32, buf: &Mmap, iova: u64) -> Result<(), Errno> {
        let mut cmd = IoasMap::new_zeroed();
        cmd.ioas_id = ioas;
        cmd.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
        cmd.user_va = buf.addr();
        cmd.length = buf.len() as u64;
        cmd.iova = iova;
        self.ioctl(&mut cmd).map(|_| ())
    }

    fn hwpt_alloc(&self, idev: u32, ioas: u32, flags: u32) -> Result<u32, Errno> {
        let mut cmd = HwptAlloc::new_zeroed();
        cmd.dev_id = idev;
        cmd.pt_id = ioas;
        cmd.flags = flags;
        self.ioctl(&mut cmd).map(|_| cmd.out_hwpt_id)
    }
}

fn buffer(len: usize) -> Mmap {
    Mmap::anon(len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE).expect("mmap")
}

const IOVA: u64 = 0x40_0000;

#[test]
fn smmuv3_automatic_domain_is_finalized_by_immediate_attach_and_populated() {
    let inst = SmmuV3::new(SmmuV3Config::default()).unwrap();
    inst.add_device("nic");
    let devices = Devices::new(vec![(inst.ops(), platform_dev("nic", &[5]))]);
    let fd = Fd::open(&devices);
    let ioas = fd.ioas();
    let buf = buffer(2 * SZ_2M as usize);
    // An area that exists before the domain: populated right after the attach.
    fd.map_fixed(ioas, &buf, IOVA).unwrap();
    let (_stdev, hwpt, idev) = fd.attach_next(ioas).unwrap();
    assert_ne!(hwpt, 0);

    let dev = devices.device(0);
    let domain = dev.group().domain().unwrap();
    let smmu = SmmuDomain::from_domain(domain.as_ref()).expect("an SMMUv3 domain");
    assert!(smmu.is_finalized());
    assert_eq!(domain.iova_to_phys(IOVA + 0x1234), buf.addr() + 0x1234);
    let t = domain.dma_translate(IOVA + SZ_2M, true).unwrap();
    assert_eq!(t.pa, buf.addr() + SZ_2M);

    // The software MSI window is reserved in the IOAS (a fixed map there: EINVAL).
    let msi = buffer(SZ_4K as usize);
    assert_eq!(fd.map_fixed(ioas, &msi, MSI_IOVA_BASE), Err(Errno::INVAL));
    fd.map_fixed(ioas, &msi, MSI_IOVA_BASE - SZ_4K).unwrap();
    // Without domain_alloc_user, allocation flags are refused ...
    assert_eq!(
        fd.hwpt_alloc(idev, ioas, IOMMU_HWPT_ALLOC_DIRTY_TRACKING),
        Err(Errno::OPNOTSUPP)
    );
    // ... and a domain allocated without immediate attach is still unfinalized when
    // iommufd adds it to the IOAS: its zeroed aperture collides with the area, as
    // for such drivers in the kernel (hence immediate attach for automatic domains).
    assert_eq!(fd.hwpt_alloc(idev, ioas, 0), Err(Errno::ADDRINUSE));
}

#[test]
fn vtd_devices_get_populated_domains_and_dirty_tracking_through_iommufd() {
    let inst = Vtd::new(VtdConfig::default()).unwrap();
    inst.add_device("nic", &[]);
    let devices = Devices::new(vec![(inst.ops(), pci("nic", addr(0, 3, 0)))]);
    let fd = Fd::open(&devices);
    let ioas = fd.ioas();
    let (stdev, _hwpt, idev) = fd.attach_next(ioas).unwrap();
    let buf = buffer(2 * SZ_2M as usize);
    fd.map_fixed(ioas, &buf, IOVA).unwrap();

    let dev = devices.device(0);
    let domain = dev.group().domain().unwrap();
    assert!(VtdDomain::from_domain(domain.as_ref()).is_some());
    assert_eq!(domain.iova_to_phys(IOVA + 8), buf.addr() + 8);
    // The interrupt range is reserved in the IOAS (a fixed map there: EINVAL).
    let other = buffer(SZ_4K as usize);
    assert_eq!(
        fd.map_fixed(ioas, &other, IOAPIC_RANGE_START),
        Err(Errno::INVAL)
    );
    fd.map_fixed(ioas, &other, IOAPIC_RANGE_START - SZ_4K)
        .unwrap();

    // A dirty-tracking HWPT, populated from the IOAS, then attached.
    let dirty_hwpt = fd
        .hwpt_alloc(idev, ioas, IOMMU_HWPT_ALLOC_DIRTY_TRACKING)
        .unwrap();
    fd.replace(stdev, dirty_hwpt).unwrap();
    let dirty_domain = dev.group().domain().unwrap();
    assert!(dirty_domain.dirty_ops().is_some());
    assert_eq!(dirty_domain.iova_to_phys(IOVA), buf.addr());

    let mut set = HwptSetDirtyTracking::new_zeroed();
    set.hwpt_id = dirty_hwpt;
    set.flags = IOMMU_HWPT_DIRTY_TRACKING_ENABLE;
    fd.ioctl(&mut set).unwrap();
    // The device writes one byte in the second 4 KiB page.
    dirty_domain.dma_translate(IOVA + SZ_4K + 1, true).unwrap();

    let mut bitmap = [0u64; 8];
    let mut get = HwptGetDirtyBitmap::new_zeroed();
    get.hwpt_id = dirty_hwpt;
    get.iova = IOVA;
    get.length = 2 * SZ_2M;
    get.page_size = SZ_4K;
    get.data = bitmap.as_mut_ptr() as u64;
    fd.ioctl(&mut get).unwrap();
    // The pinned run is 4 KiB pages, so the write dirtied exactly one IO page.
    let set_bits: Vec<usize> = (0..512)
        .filter(|&i| bitmap[i / 64] & (1 << (i % 64)) != 0)
        .collect();
    assert_eq!(set_bits, vec![1]);
}
