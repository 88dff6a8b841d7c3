//! The same ioctl sequences against every IOMMU driver: a device bound through the
//! library API (`iommufd::BoundDevice`, what VFIO uses in the kernel), IOAS maps,
//! attach, DMA by the emulated device through its domain, dirty tracking, replace
//! and detach.

mod support;

use std::sync::Arc;

use iommu::Device;
use iommufd::BoundDevice;
use support::{buffer, hwpt_alloc, readonly, Fd, FIXED_RW, PAGE};
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
    /// Domains get their format only at their first attach: before that they have
    /// no aperture, so only the immediate-attach path (automatic domains at
    /// attach) can add them to an IOAS that has mappings.
    finalize_at_attach: bool,
}

fn mock_device() -> Arc<Device> {
    mock::selftest::MockIommu::global()
        .create_device(0)
        .expect("mock device")
}

/// A device alone behind a fresh instance (its own platform), so that tests
/// running in parallel never share a group.
fn probe(ops: Arc<dyn iommu::IommuOps>, name: &str) -> Arc<Device> {
    let platform = iommu::Platform::new(iommu::DefaultPolicy::Dma);
    let desc = iommu::DeviceDesc {
        name: name.into(),
        ..Default::default()
    };
    platform.probe(&ops, desc).expect("probe")
}

fn vtd_device() -> Arc<Device> {
    let vtd = drivers::Vtd::new(drivers::VtdConfig::default()).unwrap();
    vtd.add_device("nic", &[]);
    probe(vtd.ops(), "nic")
}

/// SMMUv3 as the Arm drivers long were: no `domain_alloc_user`, domains finalized
/// at their first attach (iommufd's immediate-attach path).
fn smmu_device() -> Arc<Device> {
    let smmu = drivers::SmmuV3::new(drivers::SmmuV3Config::default()).unwrap();
    smmu.add_device("gpu");
    probe(smmu.ops(), "gpu")
}

/// SMMUv3 as in 6.12: `domain_alloc_user`, HTTU dirty tracking.
fn smmu_612_device() -> Arc<Device> {
    let smmu = drivers::SmmuV3::new(drivers::SmmuV3Config {
        domain_alloc_user: true,
        httu_access: true,
        httu_dirty: true,
        ..drivers::SmmuV3Config::default()
    })
    .unwrap();
    smmu.add_device("gpu");
    probe(smmu.ops(), "gpu")
}

fn rigs() -> Vec<Rig> {
    vec![
        Rig {
            name: "mock",
            base: uapi::MOCK_APERTURE_START,
            new_device: mock_device,
            dirty: true,
            finalize_at_attach: false,
        },
        Rig {
            name: "vtd",
            base: 0x100_0000,
            new_device: vtd_device,
            dirty: true,
            finalize_at_attach: false,
        },
        Rig {
            name: "smmuv3 (finalize at attach)",
            base: 0x100_0000,
            new_device: smmu_device,
            dirty: false,
            finalize_at_attach: true,
        },
        Rig {
            name: "smmuv3 (6.12, domain_alloc_user)",
            base: 0x100_0000,
            new_device: smmu_612_device,
            dirty: true,
            finalize_at_attach: false,
        },
    ]
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

/// A DMA engine (`DmaHandle`, the drivers' run translation) on every
/// driver: DMAs inside a page, DMAs reaching a page's end and DMAs across
/// pages land where the CPU sees them on the first pass (walks) and on
/// later ones (the IOTLB answering); read-only leaves refuse writes, and no
/// DMA reaches memory whose mapping is gone.
#[test]
fn dma_engines_read_and_write_through_every_driver() {
    for_each_rig(|rig| {
        let fd = Fd::open();
        let ioas = fd.ioas_alloc();
        let mut buf = buffer(8 * PAGE as usize);
        // Three areas, so that the middle one can be unmapped.
        for (first, pages) in [(0, 2), (2, 2), (4, 4)] {
            let at = first * PAGE;
            fd.map_fixed(ioas, buf.addr() + at, pages * PAGE, rig.base + at)
                .unwrap();
        }
        let ro = readonly(PAGE as usize);
        let ro_iova = rig.base + 8 * PAGE;
        fd.map(
            ioas,
            ro.addr(),
            PAGE,
            ro_iova,
            IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_FIXED_IOVA,
        )
        .unwrap();
        let dev = BoundDevice::bind(&fd.file, &(rig.new_device)()).unwrap();
        dev.attach(ioas).unwrap();
        let mut h = inproc::dma::DmaHandle::new(dev.device().clone());
        let page = PAGE as usize;
        // (offset, length): inside a page, to its end, across pages.
        let dmas = [
            (100, 64),
            (page, page),
            (2 * page + 0x800, 0x800),
            (3 * page + 8, 3 * page),
            (0, 8 * page),
        ];
        for round in 0..3u8 {
            for (i, &(off, len)) in dmas.iter().enumerate() {
                let data: Vec<u8> = (0..len)
                    .map(|b| (b as u8).wrapping_mul(7) ^ round ^ i as u8)
                    .collect();
                h.write(rig.base + off as u64, &data).unwrap();
                assert_eq!(
                    &buf.as_slice().unwrap()[off..off + len],
                    &data[..],
                    "{} round {round}: write {off:#x}+{len:#x}",
                    rig.name
                );
                buf.as_mut_slice().unwrap()[off..off + len].reverse();
                let mut got = vec![0u8; len];
                h.read(rig.base + off as u64, &mut got).unwrap();
                assert_eq!(
                    &got[..],
                    &buf.as_slice().unwrap()[off..off + len],
                    "{} round {round}: read {off:#x}+{len:#x}",
                    rig.name
                );
            }
            let mut b = [0u8; 16];
            h.read(ro_iova + 16, &mut b).unwrap();
            assert_eq!(h.write(ro_iova + 16, &b), Err(Errno::PERM), "{}", rig.name);
            assert_eq!(h.write(ro_iova, &[0; PAGE as usize]), Err(Errno::PERM));
        }
        assert_eq!(fd.unmap(ioas, rig.base + 2 * PAGE, 2 * PAGE), Ok(2 * PAGE));
        let before = buf.as_slice().unwrap().to_vec();
        for (off, len) in [(2 * page, page), (3 * page + 8, 8), (2 * page, 2 * page)] {
            assert_eq!(
                h.write(rig.base + off as u64, &vec![0xee; len]),
                Err(Errno::NOENT),
                "{}",
                rig.name
            );
        }
        assert!(buf.as_slice().unwrap() == &before[..], "{}", rig.name);
        h.write(rig.base + page as u64, &vec![0xdd; page]).unwrap();
    });
}

/// A DMA engine streaming through a buffer keeps the run it translated
/// ahead (`iommu::DmaHandle`): a remap inside that run, and dirty tracking
/// turned on, are seen by the very next DMA.
#[test]
fn streaming_dmas_see_a_remap_inside_their_run_on_every_driver() {
    for_each_rig(|rig| {
        let page = PAGE as usize;
        let fd = Fd::open();
        let ioas = fd.ioas_alloc();
        let buf = buffer(64 * page);
        let other = buffer(16 * page);
        // Three areas of one contiguous buffer: one run of leaves.
        for (first, pages) in [(0u64, 32u64), (32, 16), (48, 16)] {
            let at = first * PAGE;
            fd.map_fixed(ioas, buf.addr() + at, pages * PAGE, rig.base + at)
                .unwrap();
        }
        let dev = BoundDevice::bind(&fd.file, &(rig.new_device)()).unwrap();
        dev.attach(ioas).unwrap();
        let mut h = inproc::dma::DmaHandle::new(dev.device().clone());
        let chunk = 4 * page;
        let data = |i: usize| vec![i as u8 + 1; chunk];
        for i in 0..8 {
            h.write(rig.base + (i * chunk) as u64, &data(i)).unwrap();
        }
        assert!(buf.as_slice().unwrap()[..32 * page]
            .chunks(chunk)
            .enumerate()
            .all(|(i, c)| c == &data(i)[..]));
        // Pages 32..48 move to another buffer while the stream goes on.
        assert_eq!(
            fd.unmap(ioas, rig.base + 32 * PAGE, 16 * PAGE),
            Ok(16 * PAGE)
        );
        let at = rig.base + 32 * PAGE;
        assert_eq!(h.write(at, &data(8)), Err(Errno::NOENT), "{}", rig.name);
        fd.map_fixed(ioas, other.addr(), 16 * PAGE, at).unwrap();
        h.write(at, &data(8)).unwrap();
        h.write(at + chunk as u64, &data(9)).unwrap();
        assert_eq!(
            &other.as_slice().unwrap()[..chunk],
            &data(8)[..],
            "{}",
            rig.name
        );
        assert_eq!(&other.as_slice().unwrap()[chunk..2 * chunk], &data(9)[..]);
        assert!(
            buf.as_slice().unwrap()[32 * page..48 * page]
                .iter()
                .all(|&b| b == 0),
            "{}: the old pages are not written",
            rig.name
        );
        let mut back = vec![0u8; chunk];
        h.read(at + chunk as u64, &mut back).unwrap();
        assert_eq!(back, data(9));
        dev.detach();
    });
}

/// A device of `rig` attached to a new dirty-tracking HWPT whose IOAS maps
/// 64 pages of a fresh buffer at `rig.base` (tracking not enabled yet).
fn tracked_rig(rig: &Rig) -> (Fd, host::sys::Mmap, BoundDevice, u32) {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    let buf = buffer(64 * PAGE as usize);
    let dev = BoundDevice::bind(&fd.file, &(rig.new_device)()).unwrap();
    let hwpt = hwpt_alloc(&fd, dev.id(), ioas, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, 0, &[]).unwrap();
    assert_eq!(dev.attach(hwpt), Ok(hwpt));
    fd.map(ioas, buf.addr(), 64 * PAGE, rig.base, FIXED_RW)
        .unwrap();
    (fd, buf, dev, hwpt)
}

#[test]
fn dirty_tracking_sees_writes_inside_a_kept_run_on_every_driver() {
    for_each_rig(|rig| {
        if !rig.dirty {
            return;
        }
        let (fd, _buf, dev, hwpt) = tracked_rig(rig);
        let mut h = inproc::dma::DmaHandle::new(dev.device().clone());
        // Untracked streaming writes: the engine keeps a run over pages 4..64.
        for i in 0..4u64 {
            h.write(rig.base + i * 4 * PAGE, &[1; 4 * PAGE as usize])
                .unwrap();
        }
        set_dirty(&fd, hwpt, true).unwrap();
        assert!(dirty_bitmap(&fd, hwpt, rig.base, 64 * PAGE)
            .iter()
            .all(|&w| w == 0));
        h.write(rig.base + 16 * PAGE, &[2; 8]).unwrap();
        h.write(rig.base + 40 * PAGE + 8, &[3; 8]).unwrap();
        assert_eq!(
            dirty_bitmap(&fd, hwpt, rig.base, 64 * PAGE)[0],
            1 << 16 | 1 << 40,
            "{}",
            rig.name
        );
        set_dirty(&fd, hwpt, false).unwrap();
        dev.detach();
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

        if rig.finalize_at_attach {
            // Replace allocates without attaching first: the unfinalized domain's
            // empty aperture collides with ioas_b's mapping, as in the kernel.
            assert_eq!(dev.attach(ioas_b), Err(Errno::ADDRINUSE));
            inproc::dma::write(dev.device(), rig.base, b"a").unwrap();
            assert_eq!(buf_a.as_slice().unwrap()[0], b'a', "still on ioas_a");
            return;
        }
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
        let (fd, _buf, dev, hwpt) = tracked_rig(rig);

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

fn vtd_with(cfg: drivers::VtdConfig) -> Arc<Device> {
    let vtd = drivers::Vtd::new(cfg).unwrap();
    vtd.add_device("nic", &[]);
    probe(vtd.ops(), "nic")
}

/// `VFIO_CHECK_EXTENSION(VFIO_DMA_CC_IOMMU)` on the compat IOAS: 1 when every
/// domain of the IOAS enforces cache coherency.
fn cc_iommu(fd: &Fd, ioas: u32) -> i64 {
    let mut cmd = uapi::VfioIoas::new_zeroed();
    cmd.op = uapi::IOMMU_VFIO_IOAS_SET;
    cmd.ioas_id = ioas;
    fd.ioctl(&mut cmd).unwrap();
    fd.ioctl_ptr(
        uapi::ioctl::VFIO_CHECK_EXTENSION,
        u64::from(uapi::VFIO_DMA_CC_IOMMU),
    )
    .unwrap()
}

#[test]
fn cache_coherency_is_enforced_where_the_iommu_can_and_dirty_tracking_refused_where_it_cannot() {
    // Snoop control: the automatic domain is upgraded to enforce coherency.
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    let dev = BoundDevice::bind(&fd.file, &vtd_device()).unwrap();
    dev.attach(ioas).unwrap();
    assert_eq!(cc_iommu(&fd, ioas), 1);
    drop(dev);

    // Without snoop control the domain stays non-enforcing, and without
    // second-stage A/D bits a dirty-tracking HWPT is refused.
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    let dev = BoundDevice::bind(
        &fd.file,
        &vtd_with(drivers::VtdConfig {
            snoop_control: false,
            dirty_tracking: false,
            ..drivers::VtdConfig::default()
        }),
    )
    .unwrap();
    dev.attach(ioas).unwrap();
    assert_eq!(cc_iommu(&fd, ioas), 0);
    let mut alloc = HwptAlloc::new_zeroed();
    alloc.flags = IOMMU_HWPT_ALLOC_DIRTY_TRACKING;
    alloc.dev_id = dev.id();
    alloc.pt_id = ioas;
    assert_eq!(fd.ioctl(&mut alloc), Err(Errno::OPNOTSUPP));
    // A driver without domain_alloc_user refuses every allocation flag.
    let smmu = BoundDevice::bind(&fd.file, &smmu_device()).unwrap();
    alloc.dev_id = smmu.id();
    assert_eq!(fd.ioctl(&mut alloc), Err(Errno::OPNOTSUPP));
}

#[test]
fn devices_without_isolated_msi_are_refused_unless_unsafe_interrupts_are_allowed() {
    let fd = Fd::open();
    let dev = vtd_with(drivers::VtdConfig {
        interrupt_remapping: false,
        ..drivers::VtdConfig::default()
    });
    assert_eq!(BoundDevice::bind(&fd.file, &dev).err(), Some(Errno::PERM));
    assert_eq!(dev.group().owner(), None, "ownership untouched");
    // (The module parameter is process-wide; this test only reads the default.)
    let smmu = drivers::SmmuV3::new(drivers::SmmuV3Config {
        isolated_msi: false,
        ..drivers::SmmuV3Config::default()
    })
    .unwrap();
    smmu.add_device("gpu");
    let dev = probe(smmu.ops(), "gpu");
    assert_eq!(BoundDevice::bind(&fd.file, &dev).err(), Some(Errno::PERM));
    // Mock devices are exempt, as in the kernel.
    BoundDevice::bind(&fd.file, &mock_device()).unwrap();
}
