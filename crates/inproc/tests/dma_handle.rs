//! The fast DMA path of emulated devices (`inproc::dma::DmaHandle`): faults
//! stop a DMA after the bytes before them, permissions and dirty tracking
//! hold per leaf, a cached domain is never used after attach/replace/detach
//! returned, and runs of leaves are copied correctly whether or not they are
//! physically contiguous.

mod support;

use std::sync::Arc;

use inproc::dma::DmaHandle;
use iommu::Device;
use iommufd::BoundDevice;
use support::{buffer, hwpt_alloc, readonly, Fd, FIXED_RW, PAGE};
use uapi::{
    Errno, HwptGetDirtyBitmap, HwptSetDirtyTracking, IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
    IOMMU_HWPT_DIRTY_TRACKING_ENABLE, IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE,
    MOCK_APERTURE_START,
};
use zerocopy::FromZeros;

const BASE: u64 = MOCK_APERTURE_START;

fn mock_device() -> Arc<Device> {
    mock::selftest::MockIommu::global()
        .create_device(0)
        .expect("mock device")
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(29).wrapping_add(seed) ^ (i >> 12) as u8)
        .collect()
}

/// Both thresholds: short/block copies and non-temporal ones.
fn handles(dev: &Arc<Device>) -> Vec<DmaHandle> {
    let plain = DmaHandle::new(dev.clone());
    let mut nt = DmaHandle::new(dev.clone());
    nt.set_nt_threshold(1);
    vec![plain, nt]
}

#[test]
fn a_fault_mid_dma_stops_after_the_bytes_before_it() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    let buf = buffer(4 * PAGE as usize);
    fd.map_fixed(ioas, buf.addr(), 4 * PAGE, BASE).unwrap();
    let dev = BoundDevice::bind(&fd.file, &mock_device()).unwrap();
    dev.attach(ioas).unwrap();
    for mut h in handles(dev.device()) {
        // Write 6 pages from 1.5 pages in: 2.5 pages land, then ENOENT.
        let data = pattern(6 * PAGE as usize, 3);
        let start = BASE + PAGE + PAGE / 2;
        assert_eq!(h.write(start, &data), Err(Errno::NOENT));
        let mem = buf.as_slice().unwrap();
        let landed = (2 * PAGE + PAGE / 2) as usize;
        assert_eq!(&mem[(PAGE + PAGE / 2) as usize..], &data[..landed]);
        // Read back across the end: the prefix arrives, then ENOENT.
        let mut back = vec![0u8; 6 * PAGE as usize];
        assert_eq!(h.read(start, &mut back), Err(Errno::NOENT));
        assert_eq!(&back[..landed], &data[..landed]);
        // Entirely outside: a fault before any byte.
        assert_eq!(h.read(BASE + 4 * PAGE, &mut back[..8]), Err(Errno::NOENT));
        // IOVA wrap-around is a fault, not a panic.
        assert_eq!(h.read(u64::MAX - 3, &mut back[..8]), Err(Errno::NOENT));
        assert_eq!(h.write(BASE, &[]), Ok(()));
    }
}

#[test]
fn read_only_mappings_are_never_written() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    let rw = buffer(PAGE as usize);
    let ro = readonly(PAGE as usize);
    fd.map_fixed(ioas, rw.addr(), PAGE, BASE).unwrap();
    fd.map(
        ioas,
        ro.addr(),
        PAGE,
        BASE + PAGE,
        IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_FIXED_IOVA,
    )
    .unwrap();
    let dev = BoundDevice::bind(&fd.file, &mock_device()).unwrap();
    dev.attach(ioas).unwrap();
    let before = ro.as_slice().unwrap().to_vec();
    for mut h in handles(dev.device()) {
        let data = vec![0x77u8; 2 * PAGE as usize];
        // The RW page is written, the RO one refuses: EPERM, and unchanged.
        assert_eq!(h.write(BASE, &data), Err(Errno::PERM));
        assert!(rw.as_slice().unwrap().iter().all(|&b| b == 0x77));
        assert_eq!(h.write(BASE + PAGE + 8, &data[..8]), Err(Errno::PERM));
        assert_eq!(ro.as_slice().unwrap(), &before[..]);
        let mut back = vec![0u8; 2 * PAGE as usize];
        h.read(BASE, &mut back).unwrap();
        assert_eq!(&back[PAGE as usize..], &before[..]);
    }
}

fn set_dirty(fd: &Fd, hwpt: u32, enable: bool) {
    let mut cmd = HwptSetDirtyTracking::new_zeroed();
    cmd.hwpt_id = hwpt;
    cmd.flags = if enable {
        IOMMU_HWPT_DIRTY_TRACKING_ENABLE
    } else {
        0
    };
    fd.ioctl(&mut cmd).unwrap();
}

fn dirty_bitmap(fd: &Fd, hwpt: u32, iova: u64, length: u64) -> u64 {
    let mut bits = [0u64; 1];
    let mut cmd = HwptGetDirtyBitmap::new_zeroed();
    cmd.hwpt_id = hwpt;
    cmd.iova = iova;
    cmd.length = length;
    cmd.page_size = PAGE;
    cmd.data = bits.as_mut_ptr() as u64;
    fd.ioctl(&mut cmd).unwrap();
    bits[0]
}

#[test]
fn writes_mark_every_leaf_of_a_coalesced_run_dirty() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    let buf = buffer(64 * PAGE as usize);
    let dev = BoundDevice::bind(&fd.file, &mock_device()).unwrap();
    let hwpt = hwpt_alloc(&fd, dev.id(), ioas, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, 0, &[]).unwrap();
    dev.attach(hwpt).unwrap();
    fd.map(ioas, buf.addr(), 64 * PAGE, BASE, FIXED_RW).unwrap();
    for mut h in handles(dev.device()) {
        // Cached translations from before tracking was on do not hide writes.
        h.write(BASE + 10 * PAGE, b"early").unwrap();
        set_dirty(&fd, hwpt, true);
        assert_eq!(dirty_bitmap(&fd, hwpt, BASE, 64 * PAGE), 0);
        h.write(BASE + 10 * PAGE, b"again").unwrap();
        // One DMA over pages 20..=23 (one contiguous run, eight 2 KiB leaves).
        h.write(BASE + 20 * PAGE + 100, &vec![1u8; 3 * PAGE as usize])
            .unwrap();
        let mut back = vec![0u8; 4 * PAGE as usize];
        h.read(BASE + 40 * PAGE, &mut back).unwrap();
        assert_eq!(
            dirty_bitmap(&fd, hwpt, BASE, 64 * PAGE),
            1 << 10 | 0b1111 << 20,
            "writes only, every page of the run"
        );
        set_dirty(&fd, hwpt, false);
    }
}

#[test]
fn replace_and_detach_are_seen_by_the_next_dma() {
    let fd = Fd::open();
    let ioas_a = fd.ioas_alloc();
    let ioas_b = fd.ioas_alloc();
    let buf_a = buffer(PAGE as usize);
    let buf_b = buffer(PAGE as usize);
    fd.map_fixed(ioas_a, buf_a.addr(), PAGE, BASE).unwrap();
    fd.map_fixed(ioas_b, buf_b.addr(), PAGE, BASE).unwrap();
    let dev = BoundDevice::bind(&fd.file, &mock_device()).unwrap();
    // A handle made before any attach: the device is blocked.
    let mut h = DmaHandle::new(dev.device().clone());
    assert_eq!(h.write(BASE, b"0"), Err(Errno::NOENT));
    dev.attach(ioas_a).unwrap();
    h.write(BASE, b"A").unwrap();
    assert_eq!(buf_a.as_slice().unwrap()[0], b'A');
    dev.attach(ioas_b).unwrap(); // replace
    h.write(BASE, b"B").unwrap();
    assert_eq!(buf_b.as_slice().unwrap()[0], b'B');
    assert_eq!(buf_a.as_slice().unwrap()[0], b'A', "old domain untouched");
    let mut got = [0u8; 1];
    dev.detach();
    assert_eq!(h.read(BASE, &mut got), Err(Errno::NOENT));
    dev.attach(ioas_a).unwrap();
    h.read(BASE, &mut got).unwrap();
    assert_eq!(got, *b"A");
    // Unmap while the handle caches the domain (and its IOTLB the leaf).
    assert_eq!(fd.unmap(ioas_a, BASE, PAGE), Ok(PAGE));
    assert_eq!(h.read(BASE, &mut got), Err(Errno::NOENT));
    // A handle that outlives the device's binding keeps failing safely.
    drop(dev);
    assert_eq!(h.write(BASE, b"x"), Err(Errno::NOENT));
    assert_eq!(buf_b.as_slice().unwrap()[0], b'B');
}

#[test]
fn runs_coalesce_only_where_leaves_are_contiguous() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    let n = 8usize;
    let buf = buffer(n * PAGE as usize);
    // IOVA page i maps user page order[i]: contiguous pairs (2,3) and (6,7)
    // inside a shuffled order.
    let order = [5usize, 2, 3, 0, 6, 7, 1, 4];
    for (i, &p) in order.iter().enumerate() {
        fd.map_fixed(
            ioas,
            buf.addr() + (p as u64) * PAGE,
            PAGE,
            BASE + i as u64 * PAGE,
        )
        .unwrap();
    }
    let dev = BoundDevice::bind(&fd.file, &mock_device()).unwrap();
    dev.attach(ioas).unwrap();
    for mut h in handles(dev.device()) {
        let data = pattern(n * PAGE as usize, 11);
        // Unaligned start and end: partial first and last leaves.
        let (from, len) = (100usize, n * PAGE as usize - 300);
        h.write(BASE + from as u64, &data[from..from + len])
            .unwrap();
        let mem = buf.as_slice().unwrap();
        for (pos, &want) in data.iter().enumerate().skip(from).take(len) {
            let (page, off) = (pos / PAGE as usize, pos % PAGE as usize);
            assert_eq!(
                mem[order[page] * PAGE as usize + off],
                want,
                "IOVA byte {pos}"
            );
        }
        let mut back = vec![0u8; len];
        h.read(BASE + from as u64, &mut back).unwrap();
        assert_eq!(back, &data[from..from + len]);
        // The same through the lock-taking entry points.
        let mut again = vec![0u8; len];
        inproc::dma::read(dev.device(), BASE + from as u64, &mut again).unwrap();
        assert_eq!(again, back);
    }
}
