//! The same ioctl sequences against every IOMMU driver: a device bound through the
//! library API (`iommufd::BoundDevice`, what VFIO uses in the kernel), IOAS maps,
//! attach, DMA by the emulated device through its domain, dirty tracking, replace
//! and detach.

mod support;

use std::sync::Arc;

use iommu::Device;
use iommufd::BoundDevice;
use support::{buffer, readonly, Fd, FIXED_RW, PAGE};
use uapi::{
    Errno, HwptAlloc, HwptGetDirtyBitmap, HwptSetDirtyTracking, IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
    IOMMU_HWPT_DIRTY_TRACKING_ENABLE, IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE,
};
use zerocopy::FromZeros;

/// A driver under test: makes devices behind one of its IOMMU instances.
struct Rig {
    name: &'static str,
    /// An IOVA where the driver's domains can map (inside aperture, outside
    /// reserved regions).
    base: u64,
    new_device: fn() -> Arc<Device>,
    /// Whether its devices can track dirty pages.
    dirty: bool,
}

fn mock_device() -> Arc<Device> {
    mock::selftest::MockIommu::global()
        .create_device(0)
        .expect("mock device")
}

fn rigs() -> Vec<Rig> {
    vec![Rig {
        name: "mock",
        base: uapi::MOCK_APERTURE_START,
        new_device: mock_device,
        dirty: true,
    }]
}

fn for_each_rig(test: impl Fn(&Rig)) {
    for rig in rigs() {
        eprintln!("driver: {}", rig.name);
        test(&rig);
    }
}

#[test]
fn map_attach_dma_and_unmap_on_every_driver() {
    for_each_rig(|rig| {
        let fd = Fd::open();
        let ioas = fd.ioas_alloc();
        let mut buf = buffer(16 * PAGE as usize);
        fd.map_fixed(ioas, buf.addr(), 16 * PAGE, rig.base).unwrap();

        let dev = BoundDevice::bind(&fd.file, &(rig.new_device)()).unwrap();
        let hwpt = dev.attach(ioas).unwrap();
        assert_ne!(hwpt, ioas, "{}: an automatic HWPT", rig.name);

        // The device writes through its domain and the CPU sees it, and back.
        let msg = b"written by the device through the IOMMU";
        inproc::dma::write(dev.device(), rig.base + 3 * PAGE + 100, msg).unwrap();
        assert_eq!(
            &buf.as_slice().unwrap()[3 * PAGE as usize + 100..][..msg.len()],
            msg,
            "{}",
            rig.name
        );
        buf.as_mut_slice().unwrap()[5 * PAGE as usize..][..4].copy_from_slice(b"cpu!");
        let mut got = [0u8; 4];
        inproc::dma::read(dev.device(), rig.base + 5 * PAGE, &mut got).unwrap();
        assert_eq!(&got, b"cpu!");
        // A DMA spanning pages crosses IOPTEs seamlessly.
        let big = vec![0x5au8; 3 * PAGE as usize];
        inproc::dma::write(dev.device(), rig.base + PAGE / 2, &big).unwrap();
        assert!(buf.as_slice().unwrap()[PAGE as usize / 2..][..big.len()]
            .iter()
            .all(|&b| b == 0x5a));

        // Outside the mapping: a DMA fault.
        assert_eq!(
            inproc::dma::read(dev.device(), rig.base + 16 * PAGE, &mut got),
            Err(Errno::NOENT)
        );
        // After unmap returns, no DMA reaches the memory.
        assert_eq!(fd.unmap(ioas, rig.base, 16 * PAGE), Ok(16 * PAGE));
        assert_eq!(
            inproc::dma::write(dev.device(), rig.base, b"x"),
            Err(Errno::NOENT),
            "{}",
            rig.name
        );
        assert_eq!(fd.destroy(hwpt), Err(Errno::BUSY), "attached");
        dev.detach();
        assert_eq!(fd.destroy(hwpt), Err(Errno::NOENT), "auto HWPT freed");
        drop(dev);
        fd.destroy(ioas).unwrap();
    });
}

#[test]
fn read_only_mappings_refuse_device_writes_on_every_driver() {
    for_each_rig(|rig| {
        let fd = Fd::open();
        let ioas = fd.ioas_alloc();
        let ro = readonly(4 * PAGE as usize);
        fd.map(
            ioas,
            ro.addr(),
            4 * PAGE,
            rig.base,
            IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_FIXED_IOVA,
        )
        .unwrap();
        let dev = BoundDevice::bind(&fd.file, &(rig.new_device)()).unwrap();
        dev.attach(ioas).unwrap();
        let mut b = [0u8; 8];
        inproc::dma::read(dev.device(), rig.base, &mut b).unwrap();
        assert_eq!(
            inproc::dma::write(dev.device(), rig.base, &b),
            Err(Errno::PERM),
            "{}",
            rig.name
        );
    });
}

#[test]
fn maps_after_attach_reach_the_domain_and_replace_moves_the_device() {
    for_each_rig(|rig| {
        let fd = Fd::open();
        let ioas_a = fd.ioas_alloc();
        let ioas_b = fd.ioas_alloc();
        let buf_a = buffer(2 * PAGE as usize);
        let buf_b = buffer(2 * PAGE as usize);
        let dev = BoundDevice::bind(&fd.file, &(rig.new_device)()).unwrap();
        dev.attach(ioas_a).unwrap();
        // Mapped after the attach: the domain is kept fully populated.
        fd.map_fixed(ioas_a, buf_a.addr(), 2 * PAGE, rig.base)
            .unwrap();
        fd.map_fixed(ioas_b, buf_b.addr(), 2 * PAGE, rig.base)
            .unwrap();
        inproc::dma::write(dev.device(), rig.base, b"A").unwrap();
        assert_eq!(buf_a.as_slice().unwrap()[0], b'A');

        let hwpt_b = dev.attach(ioas_b).unwrap(); // attached: replaces
        inproc::dma::write(dev.device(), rig.base, b"B").unwrap();
        assert_eq!(buf_b.as_slice().unwrap()[0], b'B', "{}", rig.name);
        assert_eq!(buf_a.as_slice().unwrap()[0], b'A');
        assert_eq!(fd.destroy(ioas_a), Ok(()), "nothing holds the old IOAS");
        drop(dev);
        assert_eq!(fd.destroy(hwpt_b), Err(Errno::NOENT));
    });
}

fn set_dirty(fd: &Fd, hwpt: u32, enable: bool) -> Result<(), Errno> {
    let mut cmd = HwptSetDirtyTracking::new_zeroed();
    cmd.hwpt_id = hwpt;
    cmd.flags = if enable {
        IOMMU_HWPT_DIRTY_TRACKING_ENABLE
    } else {
        0
    };
    fd.ioctl(&mut cmd).map(|_| ())
}

fn dirty_bitmap(fd: &Fd, hwpt: u32, iova: u64, length: u64) -> Vec<u64> {
    let mut bits = vec![0u64; (length / PAGE).div_ceil(64) as usize];
    let mut cmd = HwptGetDirtyBitmap::new_zeroed();
    cmd.hwpt_id = hwpt;
    cmd.iova = iova;
    cmd.length = length;
    cmd.page_size = PAGE;
    cmd.data = bits.as_mut_ptr() as u64;
    fd.ioctl(&mut cmd).unwrap();
    bits
}

#[test]
fn dirty_tracking_records_device_writes_on_every_driver() {
    for_each_rig(|rig| {
        if !rig.dirty {
            return;
        }
        let fd = Fd::open();
        let ioas = fd.ioas_alloc();
        let buf = buffer(64 * PAGE as usize);
        let dev = BoundDevice::bind(&fd.file, &(rig.new_device)()).unwrap();
        let mut alloc = HwptAlloc::new_zeroed();
        alloc.flags = IOMMU_HWPT_ALLOC_DIRTY_TRACKING;
        alloc.dev_id = dev.id();
        alloc.pt_id = ioas;
        fd.ioctl(&mut alloc).unwrap();
        let hwpt = alloc.out_hwpt_id;
        assert_eq!(dev.attach(hwpt), Ok(hwpt));
        fd.map(ioas, buf.addr(), 64 * PAGE, rig.base, FIXED_RW)
            .unwrap();

        // Writes before tracking is on are not reported.
        inproc::dma::write(dev.device(), rig.base, b"early").unwrap();
        set_dirty(&fd, hwpt, true).unwrap();
        assert!(dirty_bitmap(&fd, hwpt, rig.base, 64 * PAGE)
            .iter()
            .all(|&w| w == 0));

        for page in [1u64, 7, 8, 63] {
            inproc::dma::write(dev.device(), rig.base + page * PAGE + 9, b"d").unwrap();
        }
        let mut bytes = [0u8; 16];
        inproc::dma::read(dev.device(), rig.base + 20 * PAGE, &mut bytes).unwrap();
        let bits = dirty_bitmap(&fd, hwpt, rig.base, 64 * PAGE);
        assert_eq!(
            bits[0],
            1 << 1 | 1 << 7 | 1 << 8 | 1 << 63,
            "{}: writes only, reads are not dirty",
            rig.name
        );
        assert_eq!(
            dirty_bitmap(&fd, hwpt, rig.base, 64 * PAGE)[0],
            0,
            "read-and-clear"
        );
        set_dirty(&fd, hwpt, false).unwrap();
        inproc::dma::write(dev.device(), rig.base, b"late").unwrap();
        set_dirty(&fd, hwpt, true).unwrap();
        assert_eq!(dirty_bitmap(&fd, hwpt, rig.base, 64 * PAGE)[0], 0);
        dev.detach();
    });
}
