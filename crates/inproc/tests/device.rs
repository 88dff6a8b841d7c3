//! Devices, HWPTs, dirty tracking, fault queues and the mock-device test commands:
//! errno paths in the kernel's order and the object rules (UAPI.md §3.10-3.16,
//! SEMANTICS.md §3-7), against the selftest mock IOMMU.

mod support;

use support::{buffer, check_map, hwpt_alloc, mock_domain, noaccess, pins, replace, Fd, PAGE};
use uapi::{
    Errno, FaultAlloc, HwInfo, HwptGetDirtyBitmap, HwptInvalidate, HwptInvalidateSelftest,
    HwptPageResponse, HwptPgfault, HwptSetDirtyTracking, TestCheckIotlb, TestDirty, TestHwInfo,
    TestTriggerIopf, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, IOMMU_HWPT_ALLOC_NEST_PARENT,
    IOMMU_HWPT_DATA_SELFTEST, IOMMU_HWPT_DIRTY_TRACKING_ENABLE, IOMMU_HWPT_FAULT_ID_VALID,
    IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR, IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
    IOMMU_HW_CAP_DIRTY_TRACKING, IOMMU_HW_INFO_FLAG_INPUT_TYPE, IOMMU_HW_INFO_SELFTEST_REGVAL,
    IOMMU_HW_INFO_TYPE_SELFTEST, IOMMU_TEST_INVALIDATE_FLAG_ALL, IOMMU_TEST_IOTLB_DEFAULT,
    MOCK_APERTURE_LAST, MOCK_APERTURE_START, MOCK_FLAGS_DEVICE_HUGE_IOVA,
    MOCK_FLAGS_DEVICE_NO_DIRTY, MOCK_FLAGS_DEVICE_PASID, MOCK_PASID_WIDTH,
};
use zerocopy::{FromZeros, IntoBytes};

const NEST: u32 = IOMMU_HWPT_ALLOC_NEST_PARENT;
const DIRTY: u32 = IOMMU_HWPT_ALLOC_DIRTY_TRACKING;

fn selftest_data() -> [u8; 4] {
    IOMMU_TEST_IOTLB_DEFAULT.to_ne_bytes()
}

#[test]
fn mock_domain_ids_and_aperture() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    let (stdev, hwpt, idev) = mock_domain(&fd, ioas, 0).unwrap();
    assert_eq!((stdev, idev, hwpt), (2, 3, 4));
    assert_eq!(
        fd.ranges(ioas).unwrap(),
        (vec![(MOCK_APERTURE_START, MOCK_APERTURE_LAST)], 2048)
    );
    let (_, hwpt2, _) = mock_domain(&fd, ioas, 0).unwrap();
    assert_eq!(hwpt2, hwpt, "compatible devices share the automatic HWPT");
}

#[test]
fn mock_domain_errors_consume_no_id() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    assert_eq!(mock_domain(&fd, 99, 0), Err(Errno::NOENT));
    assert_eq!(mock_domain(&fd, ioas, 1 << 7), Err(Errno::INVAL));
    let (stdev, ..) = mock_domain(&fd, ioas, 0).unwrap();
    assert_eq!(
        mock_domain(&fd, stdev, 0),
        Err(Errno::INVAL),
        "a selftest object is no page table"
    );
    assert_eq!(fd.ioas_alloc(), 5);
}

#[test]
fn destroy_rules_with_an_attached_device() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    let (stdev, hwpt, idev) = mock_domain(&fd, ioas, 0).unwrap();
    assert_eq!(fd.destroy(idev), Err(Errno::BUSY));
    assert_eq!(fd.destroy(hwpt), Err(Errno::BUSY));
    assert_eq!(fd.destroy(ioas), Err(Errno::BUSY));
    fd.destroy(stdev).unwrap();
    assert_eq!(
        fd.destroy(hwpt),
        Err(Errno::NOENT),
        "the automatic HWPT went with its last device"
    );
    assert_eq!(fd.destroy(idev), Err(Errno::NOENT));
    fd.destroy(ioas).unwrap();
}

#[test]
fn domain_maps_exactly_the_pinned_user_pages() {
    let fd = Fd::open();
    let buf = buffer(8 * PAGE as usize);
    let va = buf.addr();
    let ioas = fd.ioas_alloc();
    let (_, hwpt, _) = mock_domain(&fd, ioas, 0).unwrap();
    let iova = fd.map_auto(ioas, va + 0x800, 6 * PAGE).unwrap();
    assert_eq!(iova, MOCK_APERTURE_START + 0x800);
    check_map(&fd, hwpt, iova, 6 * PAGE, va + 0x800).unwrap();
    assert_eq!(check_map(&fd, hwpt, iova, 2048, va), Err(Errno::INVAL));
    assert_eq!(
        (pins(va), pins(va + 6 * PAGE), pins(va + 7 * PAGE)),
        (1, 1, 0)
    );
    fd.unmap(ioas, iova, 6 * PAGE).unwrap();
    assert_eq!(pins(va), 0);
}

#[test]
fn mapping_unmapped_memory_into_a_domain_returns_efault_and_unwinds() {
    let fd = Fd::open();
    let mut buf = buffer(4 * PAGE as usize);
    buf.protect_range(2 * PAGE as usize, 2 * PAGE as usize, libc::PROT_NONE)
        .unwrap();
    let ioas = fd.ioas_alloc();
    mock_domain(&fd, ioas, 0).unwrap();
    assert_eq!(fd.map_auto(ioas, buf.addr(), 4 * PAGE), Err(Errno::FAULT));
    assert_eq!(pins(buf.addr()), 0);
    assert_eq!(fd.unmap(ioas, 0, u64::MAX), Ok(0));
}

#[test]
fn adding_a_domain_pins_existing_areas_and_checks_them() {
    let fd = Fd::open();
    let buf = buffer(2 * PAGE as usize);
    let bad = noaccess(PAGE as usize);
    let ioas = fd.ioas_alloc();
    fd.map_fixed(ioas, buf.addr(), PAGE, 0x2000000).unwrap();
    assert_eq!(pins(buf.addr()), 0);
    let (stdev, ..) = mock_domain(&fd, ioas, 0).unwrap();
    assert_eq!(pins(buf.addr()), 1);
    fd.destroy(stdev).unwrap();
    assert_eq!(pins(buf.addr()), 0, "removing the last domain unpins");
    // Areas outside the aperture or unmapped user memory block the attach.
    fd.map_fixed(ioas, buf.addr(), PAGE, 0x1000).unwrap();
    assert_eq!(mock_domain(&fd, ioas, 0), Err(Errno::ADDRINUSE));
    fd.unmap(ioas, 0x1000, PAGE).unwrap();
    fd.map_fixed(ioas, bad.addr(), PAGE, 0x3000000).unwrap();
    assert_eq!(mock_domain(&fd, ioas, 0), Err(Errno::FAULT));
    assert_eq!(
        pins(buf.addr()),
        0,
        "the failed domain add unpinned what it pinned"
    );
}

#[test]
fn replace_moves_the_device_and_frees_the_old_auto_hwpt() {
    let fd = Fd::open();
    let a = fd.ioas_alloc();
    let b = fd.ioas_alloc();
    let (stdev, hwpt_a, _) = mock_domain(&fd, a, 0).unwrap();
    let hwpt_b = replace(&fd, stdev, b).unwrap();
    assert_ne!(hwpt_a, hwpt_b);
    assert_eq!(replace(&fd, stdev, hwpt_a), Err(Errno::NOENT));
    assert_eq!(
        replace(&fd, stdev, hwpt_b),
        Ok(hwpt_b),
        "replacing with the current HWPT is a no-op"
    );
    assert_eq!(replace(&fd, stdev, 99), Err(Errno::NOENT));
    assert_eq!(replace(&fd, 99, a), Err(Errno::NOENT));
    fd.destroy(a).unwrap();
}

#[test]
fn hwpt_alloc_errnos() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    let (_, auto, dev) = mock_domain(&fd, ioas, 0).unwrap();
    let (_, _, nodirty) = mock_domain(&fd, ioas, MOCK_FLAGS_DEVICE_NO_DIRTY).unwrap();
    let data = selftest_data();
    let mut cmd = uapi::HwptAlloc::new_zeroed();
    cmd.__reserved = 1;
    assert_eq!(fd.ioctl(&mut cmd), Err(Errno::OPNOTSUPP));
    assert_eq!(hwpt_alloc(&fd, dev, ioas, 0, 0, &data), Err(Errno::INVAL));
    assert_eq!(
        hwpt_alloc(&fd, dev, ioas, 0, IOMMU_HWPT_DATA_SELFTEST, &[]),
        Err(Errno::INVAL)
    );
    assert_eq!(hwpt_alloc(&fd, 99, ioas, 0, 0, &[]), Err(Errno::NOENT));
    assert_eq!(hwpt_alloc(&fd, dev, 99, 0, 0, &[]), Err(Errno::INVAL));
    assert_eq!(hwpt_alloc(&fd, dev, dev, 0, 0, &[]), Err(Errno::INVAL));
    assert_eq!(
        hwpt_alloc(&fd, dev, ioas, 1 << 5, 0, &[]),
        Err(Errno::OPNOTSUPP)
    );
    assert_eq!(
        hwpt_alloc(&fd, dev, ioas, IOMMU_HWPT_FAULT_ID_VALID, 0, &[]),
        Err(Errno::OPNOTSUPP)
    );
    assert_eq!(
        hwpt_alloc(&fd, nodirty, ioas, DIRTY, 0, &[]),
        Err(Errno::OPNOTSUPP)
    );
    assert_eq!(
        hwpt_alloc(&fd, dev, ioas, 0, IOMMU_HWPT_DATA_SELFTEST, &data),
        Err(Errno::OPNOTSUPP)
    );
    let parent = hwpt_alloc(&fd, dev, ioas, NEST, 0, &[]).unwrap();
    let plain = hwpt_alloc(&fd, dev, ioas, 0, 0, &[]).unwrap();
    assert_eq!(
        hwpt_alloc(&fd, dev, plain, 0, IOMMU_HWPT_DATA_SELFTEST, &data),
        Err(Errno::INVAL)
    );
    assert_eq!(
        hwpt_alloc(&fd, dev, auto, 0, IOMMU_HWPT_DATA_SELFTEST, &data),
        Err(Errno::INVAL)
    );
    assert_eq!(
        hwpt_alloc(&fd, dev, parent, NEST, IOMMU_HWPT_DATA_SELFTEST, &data),
        Err(Errno::OPNOTSUPP)
    );
    assert_eq!(
        hwpt_alloc(&fd, dev, parent, 0, 0, &[]),
        Err(Errno::OPNOTSUPP)
    );
    assert_eq!(
        hwpt_alloc(&fd, dev, parent, 0, 0xbeef, &data),
        Err(Errno::OPNOTSUPP)
    );
    assert_eq!(
        hwpt_alloc(&fd, dev, parent, 0, IOMMU_HWPT_DATA_SELFTEST, &data[..3]),
        Err(Errno::INVAL)
    );
    assert_eq!(
        hwpt_alloc(&fd, dev, parent, 0, IOMMU_HWPT_DATA_SELFTEST, &[0; 5]),
        Err(Errno::INVAL)
    );
    let mut bad = uapi::HwptAlloc::new_zeroed();
    bad.dev_id = dev;
    bad.pt_id = parent;
    bad.data_type = IOMMU_HWPT_DATA_SELFTEST;
    bad.data_len = 4;
    assert_eq!(fd.ioctl(&mut bad), Err(Errno::FAULT));
    let nested = hwpt_alloc(&fd, dev, parent, 0, IOMMU_HWPT_DATA_SELFTEST, &data).unwrap();
    assert_eq!(
        hwpt_alloc(&fd, dev, nested, 0, IOMMU_HWPT_DATA_SELFTEST, &data),
        Err(Errno::INVAL)
    );
    let mut f = uapi::HwptAlloc::new_zeroed();
    f.dev_id = dev;
    f.pt_id = parent;
    f.flags = IOMMU_HWPT_FAULT_ID_VALID;
    f.fault_id = 99;
    f.data_type = IOMMU_HWPT_DATA_SELFTEST;
    f.data_len = 4;
    f.data_uptr = data.as_ptr() as u64;
    assert_eq!(fd.ioctl(&mut f), Err(Errno::NOENT));
    assert_eq!(
        fd.destroy(parent),
        Err(Errno::BUSY),
        "a nested child holds its parent"
    );
    fd.destroy(nested).unwrap();
    fd.destroy(parent).unwrap();
    fd.destroy(plain).unwrap();
}

#[test]
fn dirty_hwpt_refuses_a_device_that_cannot_track() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    let (_, _, dev) = mock_domain(&fd, ioas, 0).unwrap();
    let hwpt = hwpt_alloc(&fd, dev, ioas, DIRTY, 0, &[]).unwrap();
    assert_eq!(
        mock_domain(&fd, hwpt, MOCK_FLAGS_DEVICE_NO_DIRTY),
        Err(Errno::INVAL)
    );
    mock_domain(&fd, hwpt, 0).unwrap();
}

fn hw_info(
    fd: &Fd,
    dev: u32,
    flags: u32,
    in_type: u32,
    data: &mut [u8],
    size: u32,
) -> Result<HwInfo, Errno> {
    let mut cmd = HwInfo::new_zeroed();
    cmd.dev_id = dev;
    cmd.flags = flags;
    cmd.out_data_type = in_type;
    cmd.data_len = data.len() as u32;
    cmd.data_uptr = data.as_mut_ptr() as u64;
    cmd.out_capabilities = 0xdead;
    support::set_size(&mut cmd, size);
    fd.ioctl_raw(&mut cmd).map(|_| cmd)
}

#[test]
fn get_hw_info_errnos_and_data() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    let (_, _, dev) = mock_domain(&fd, ioas, 0).unwrap();
    let (_, _, pasid_dev) = mock_domain(&fd, ioas, MOCK_FLAGS_DEVICE_PASID).unwrap();
    let mut buf = [0xffu8; 16];
    assert_eq!(
        hw_info(&fd, dev, 2, 0, &mut buf, 40).map(|_| ()),
        Err(Errno::OPNOTSUPP)
    );
    assert_eq!(
        hw_info(&fd, 99, 0, 0, &mut buf, 40).map(|_| ()),
        Err(Errno::NOENT)
    );
    let wrong = IOMMU_HW_INFO_TYPE_SELFTEST + 1;
    let flag = IOMMU_HW_INFO_FLAG_INPUT_TYPE;
    assert_eq!(
        hw_info(&fd, dev, flag, wrong, &mut buf, 40).map(|_| ()),
        Err(Errno::OPNOTSUPP)
    );
    let info = hw_info(&fd, dev, flag, IOMMU_HW_INFO_TYPE_SELFTEST, &mut buf, 40).unwrap();
    assert_eq!(
        (info.out_data_type, info.data_len),
        (IOMMU_HW_INFO_TYPE_SELFTEST, 8)
    );
    assert_eq!(info.out_capabilities, IOMMU_HW_CAP_DIRTY_TRACKING);
    let hw = TestHwInfo {
        flags: 0,
        test_reg: IOMMU_HW_INFO_SELFTEST_REGVAL,
    };
    assert_eq!(&buf[..8], hw.as_bytes());
    assert_eq!(
        &buf[8..],
        &[0u8; 8],
        "the rest of a larger buffer is zeroed"
    );
    // A 32-byte caller does not get out_capabilities written.
    let info = hw_info(&fd, dev, 0, 0, &mut buf[..4], 32).unwrap();
    assert_eq!(info.out_capabilities, 0xdead);
    assert_eq!(info.out_max_pasid_log2, 0);
    let info = hw_info(&fd, pasid_dev, 0, 0, &mut [], 40).unwrap();
    assert_eq!(u32::from(info.out_max_pasid_log2), MOCK_PASID_WIDTH);
}

fn invalidate(
    fd: &Fd,
    hwpt: u32,
    data_type: u32,
    entries: &[HwptInvalidateSelftest],
    entry_len: u32,
) -> (Result<i64, Errno>, u32) {
    let mut cmd = HwptInvalidate::new_zeroed();
    cmd.hwpt_id = hwpt;
    cmd.data_type = data_type;
    cmd.entry_len = entry_len;
    cmd.entry_num = entries.len() as u32;
    cmd.data_uptr = if entries.is_empty() {
        0
    } else {
        entries.as_ptr() as u64
    };
    let r = fd.ioctl(&mut cmd);
    (r, cmd.entry_num)
}

fn iotlb(fd: &Fd, hwpt: u32, id: u32, value: u32) -> Result<(), Errno> {
    fd.test(hwpt, &TestCheckIotlb { id, iotlb: value })
        .map(|_| ())
}

#[test]
fn invalidate_errnos_and_partial_progress() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    let (_, _, dev) = mock_domain(&fd, ioas, 0).unwrap();
    let parent = hwpt_alloc(&fd, dev, ioas, NEST, 0, &[]).unwrap();
    let nested = hwpt_alloc(
        &fd,
        dev,
        parent,
        0,
        IOMMU_HWPT_DATA_SELFTEST,
        &selftest_data(),
    )
    .unwrap();
    let t = IOMMU_HWPT_INVALIDATE_DATA_SELFTEST;
    let e = |flags, iotlb_id| HwptInvalidateSelftest { flags, iotlb_id };
    let mut cmd = HwptInvalidate::new_zeroed();
    cmd.hwpt_id = nested;
    cmd.__reserved = 1;
    cmd.entry_num = 5;
    assert_eq!(fd.ioctl(&mut cmd), Err(Errno::OPNOTSUPP));
    assert_eq!(cmd.entry_num, 0, "entry_num is written back even on errors");
    assert_eq!(invalidate(&fd, parent, t, &[], 8), (Err(Errno::NOENT), 0));
    assert_eq!(
        invalidate(&fd, nested, t, &[], 8),
        (Ok(0), 0),
        "probing the type with no entries"
    );
    assert_eq!(
        invalidate(&fd, nested, t + 1, &[], 8),
        (Err(Errno::INVAL), 0)
    );
    assert_eq!(
        invalidate(&fd, nested, t, &[e(0, 0)], 0),
        (Err(Errno::INVAL), 0)
    );
    assert_eq!(
        invalidate(&fd, nested, t, &[e(0, 0)], 4097),
        (Err(Errno::INVAL), 0)
    );
    assert_eq!(
        invalidate(&fd, nested, t, &[e(0, 0)], 9),
        (Err(Errno::INVAL), 0)
    );
    assert_eq!(
        invalidate(&fd, nested, t, &[e(0, 0)], 7),
        (Err(Errno::INVAL), 0)
    );
    assert_eq!(
        invalidate(&fd, nested, t, &[e(2, 0)], 8),
        (Err(Errno::OPNOTSUPP), 0)
    );
    assert_eq!(
        invalidate(&fd, nested, t, &[e(0, 4)], 8),
        (Err(Errno::INVAL), 0)
    );
    iotlb(&fd, nested, 1, IOMMU_TEST_IOTLB_DEFAULT).unwrap();
    assert_eq!(
        invalidate(&fd, nested, t, &[e(0, 1), e(0, 9)], 8),
        (Err(Errno::INVAL), 1)
    );
    iotlb(&fd, nested, 1, 0).unwrap();
    iotlb(&fd, nested, 2, IOMMU_TEST_IOTLB_DEFAULT).unwrap();
    assert_eq!(
        invalidate(&fd, nested, t, &[e(IOMMU_TEST_INVALIDATE_FLAG_ALL, 0)], 8),
        (Ok(0), 1)
    );
    for id in 0..4 {
        iotlb(&fd, nested, id, 0).unwrap();
    }
    assert_eq!(iotlb(&fd, nested, 4, 0), Err(Errno::INVAL));
    assert_eq!(iotlb(&fd, parent, 0, 0), Err(Errno::NOENT));
}

fn dirty_tracking(fd: &Fd, hwpt: u32, flags: u32) -> Result<(), Errno> {
    let mut cmd = HwptSetDirtyTracking::new_zeroed();
    cmd.hwpt_id = hwpt;
    cmd.flags = flags;
    fd.ioctl(&mut cmd).map(|_| ())
}

fn get_dirty(
    fd: &Fd,
    hwpt: u32,
    iova: u64,
    length: u64,
    page_size: u64,
    bitmap: &mut [u64],
    flags: u32,
) -> Result<(), Errno> {
    let mut cmd = HwptGetDirtyBitmap::new_zeroed();
    cmd.hwpt_id = hwpt;
    cmd.iova = iova;
    cmd.length = length;
    cmd.page_size = page_size;
    cmd.data = bitmap.as_mut_ptr() as u64;
    cmd.flags = flags;
    fd.ioctl(&mut cmd).map(|_| ())
}

fn mark_dirty(fd: &Fd, hwpt: u32, iova: u64, length: u64, bits: &[u64]) -> Result<u64, Errno> {
    let p = TestDirty {
        flags: 0,
        iova,
        length,
        page_size: 2048,
        uptr: bits.as_ptr() as u64,
        ..FromZeros::new_zeroed()
    };
    Ok(fd.test(hwpt, &p)?.payload_as::<TestDirty>().out_nr_dirty)
}

#[test]
fn dirty_tracking_errnos_and_bitmaps() {
    let fd = Fd::open();
    let buf = buffer(16 * PAGE as usize);
    let ioas = fd.ioas_alloc();
    let (_, plain, dev) = mock_domain(&fd, ioas, 0).unwrap();
    let base = MOCK_APERTURE_START;
    fd.map_fixed(ioas, buf.addr(), 16 * PAGE, base).unwrap();
    let hwpt = hwpt_alloc(&fd, dev, ioas, DIRTY, 0, &[]).unwrap();
    let mut bm = [0u64; 4];
    assert_eq!(dirty_tracking(&fd, hwpt, 2), Err(Errno::OPNOTSUPP));
    assert_eq!(dirty_tracking(&fd, 99, 1), Err(Errno::NOENT));
    assert_eq!(dirty_tracking(&fd, plain, 1), Err(Errno::OPNOTSUPP));
    let len = 16 * PAGE;
    assert_eq!(
        get_dirty(&fd, hwpt, base, len, 2048, &mut bm, 2),
        Err(Errno::OPNOTSUPP)
    );
    assert_eq!(
        get_dirty(&fd, 99, base, len, 2048, &mut bm, 0),
        Err(Errno::NOENT)
    );
    assert_eq!(
        get_dirty(&fd, hwpt, base, 0, 2048, &mut bm, 0),
        Err(Errno::INVAL)
    );
    assert_eq!(
        get_dirty(&fd, hwpt, u64::MAX - 10, len, 2048, &mut bm, 0),
        Err(Errno::OVERFLOW)
    );
    assert_eq!(
        get_dirty(&fd, hwpt, base + 1024, len, 2048, &mut bm, 0),
        Err(Errno::INVAL)
    );
    assert_eq!(
        get_dirty(&fd, hwpt, base, len, 0, &mut bm, 0),
        Err(Errno::INVAL)
    );
    assert_eq!(
        get_dirty(&fd, hwpt, base, len - 2048, 4096, &mut bm, 0),
        Err(Errno::INVAL)
    );
    assert_eq!(
        get_dirty(&fd, plain, base, len, 2048, &mut bm, 0),
        Err(Errno::OPNOTSUPP)
    );
    // Marking needs tracking on.
    assert_eq!(mark_dirty(&fd, hwpt, base, len, &[1]), Err(Errno::INVAL));
    dirty_tracking(&fd, hwpt, IOMMU_HWPT_DIRTY_TRACKING_ENABLE).unwrap();
    // Every other one of the 32 mapped IO pages; bits past the mapping find nothing.
    let marks = [0xffff_ffff_5555_5555u64; 1];
    assert_eq!(mark_dirty(&fd, hwpt, base, 64 * 2048, &marks), Ok(16));
    get_dirty(
        &fd,
        hwpt,
        base,
        len,
        2048,
        &mut bm,
        IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
    )
    .unwrap();
    assert_eq!(bm[0], 0x5555_5555);
    bm = [0; 4];
    get_dirty(&fd, hwpt, base, len, 2048, &mut bm, 0).unwrap();
    assert_eq!(bm[0], 0x5555_5555);
    bm = [0; 4];
    get_dirty(&fd, hwpt, base, len, 2048, &mut bm, 0).unwrap();
    assert_eq!(bm, [0; 4], "the previous read cleared the dirty bits");
    // A range beyond the mapping is not an error (the kernel drops walk errors).
    get_dirty(&fd, hwpt, base, 2 * len, 2048, &mut bm, 0).unwrap();
}

#[test]
fn dirty_bits_follow_huge_iopte_granularity() {
    let fd = Fd::open();
    let buf = buffer(4 << 20);
    let va = (buf.addr() + (1 << 20) - 1) & !((1 << 20) - 1);
    let ioas = fd.ioas_alloc();
    let (_, _, dev) = mock_domain(&fd, ioas, MOCK_FLAGS_DEVICE_HUGE_IOVA).unwrap();
    let hwpt = hwpt_alloc(&fd, dev, ioas, DIRTY, 0, &[]).unwrap();
    dirty_tracking(&fd, hwpt, IOMMU_HWPT_DIRTY_TRACKING_ENABLE).unwrap();
    let base = MOCK_APERTURE_START;
    fd.map_fixed(ioas, va, 2 << 20, base).unwrap();
    // Ordinary 4 KiB pages are not physically contiguous: 2 KiB IOPTEs only, so
    // one marked IO page reports one bit.
    assert_eq!(mark_dirty(&fd, hwpt, base, 2048, &[1]), Ok(1));
    let mut bm = [0u64; 16];
    get_dirty(&fd, hwpt, base, 2 << 20, 2048, &mut bm, 0).unwrap();
    assert_eq!(bm[0], 1);
    assert!(bm[1..].iter().all(|&w| w == 0));
}

fn fault_alloc(fd: &Fd) -> Result<(u32, u32), Errno> {
    let mut cmd = FaultAlloc::new_zeroed();
    fd.ioctl(&mut cmd)
        .map(|_| (cmd.out_fault_id, cmd.out_fault_fd))
}

fn fault_file(fd: u32) -> std::sync::Arc<dyn iommufd::mm::FileOps> {
    match inproc::FdTable::global().get(fd as i32) {
        Some(inproc::FdEntry::File(f)) => f,
        _ => panic!("fault fd {fd} is not an emulated file"),
    }
}

#[test]
fn fault_queue_read_write_and_destroy() {
    let fd = Fd::open();
    let mut bad = FaultAlloc::new_zeroed();
    bad.flags = 1;
    assert_eq!(fd.ioctl(&mut bad), Err(Errno::OPNOTSUPP));
    let ioas = fd.ioas_alloc();
    let (stdev, _, dev) = mock_domain(&fd, ioas, 0).unwrap();
    let parent = hwpt_alloc(&fd, dev, ioas, NEST, 0, &[]).unwrap();
    let (fault_id, fault_fd) = fault_alloc(&fd).unwrap();
    let data = selftest_data();
    let mut cmd = uapi::HwptAlloc::new_zeroed();
    cmd.dev_id = dev;
    cmd.pt_id = parent;
    cmd.flags = IOMMU_HWPT_FAULT_ID_VALID;
    cmd.fault_id = fault_id;
    cmd.data_type = IOMMU_HWPT_DATA_SELFTEST;
    cmd.data_len = 4;
    cmd.data_uptr = data.as_ptr() as u64;
    fd.ioctl(&mut cmd).unwrap();
    let iopf_hwpt = cmd.out_hwpt_id;
    replace(&fd, stdev, iopf_hwpt).unwrap();

    let file = fault_file(fault_fd);
    let mut rec = [HwptPgfault::new_zeroed(); 2];
    let rec_addr = rec.as_mut_ptr() as u64;
    assert_eq!(file.read(rec_addr, 39), Err(Errno::SPIPE));
    assert_eq!(
        file.read(rec_addr, 40),
        Ok(0),
        "an empty queue reads nothing"
    );
    assert!(!file.poll().readable);
    let trigger = TestTriggerIopf {
        dev_id: dev,
        pasid: 1,
        grpid: 2,
        perm: 3,
        addr: 0xdeadbeaf,
    };
    fd.test(0, &trigger).unwrap();
    assert!(file.poll().readable);
    assert_eq!(file.read(rec_addr, 80), Ok(40));
    let r = rec[0];
    assert_eq!(
        (r.flags, r.dev_id, r.pasid, r.grpid, r.perm, r.addr, r.length),
        (3, dev, 1, 2, 3, 0xdeadbeaf, 0)
    );
    assert_eq!(r.cookie, 1);
    let respond = |cookie: u32, code: u32, len: u64| {
        let resp = HwptPageResponse { cookie, code };
        file.write(&resp as *const HwptPageResponse as u64, len)
    };
    assert_eq!(respond(7, 0, 7), Err(Errno::SPIPE));
    assert_eq!(respond(7, 0, 8), Err(Errno::INVAL), "unknown cookie");
    assert_eq!(respond(1, 2, 8), Err(Errno::INVAL), "unknown code");
    assert_eq!(respond(1, 0, 8), Ok(8));
    assert_eq!(
        respond(1, 0, 8),
        Err(Errno::INVAL),
        "the cookie was consumed"
    );
    // The FAULT object stays busy while its fd is open and a HWPT uses it.
    drop(file);
    assert_eq!(fd.destroy(fault_id), Err(Errno::BUSY));
    replace(&fd, stdev, parent).unwrap();
    fd.destroy(iopf_hwpt).unwrap();
    assert_eq!(fd.destroy(fault_id), Err(Errno::BUSY));
    inproc::FdTable::global().close(fault_fd as i32).unwrap();
    fd.destroy(fault_id).unwrap();
}
