//! IOAS ioctls, every errno path in the kernel's order of checks (UAPI.md §3.1-3.9),
//! with state unchanged after each failure.

mod support;

use support::{buffer, noaccess, Fd, FIXED_RW, PAGE, RW};
use uapi::{
    Errno, IoasAllowIovas, IoasIovaRanges, IoasMap, IovaRange, TestAddReserved,
    IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_WRITEABLE,
    IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, IOMMU_OPTION_OP_SET, IOMMU_OPTION_RLIMIT_MODE,
};
use zerocopy::FromZeros;

fn allow(fd: &Fd, ioas: u32, ranges: &[(u64, u64)]) -> Result<(), Errno> {
    let list: Vec<IovaRange> = ranges
        .iter()
        .map(|&(start, last)| IovaRange { start, last })
        .collect();
    let mut cmd = IoasAllowIovas::new_zeroed();
    cmd.ioas_id = ioas;
    cmd.num_iovas = list.len() as u32;
    cmd.allowed_iovas = list.as_ptr() as u64;
    fd.ioctl(&mut cmd).map(|_| ())
}

fn reserve(fd: &Fd, ioas: u32, start: u64, length: u64) -> Result<(), Errno> {
    fd.test(ioas, &TestAddReserved { start, length })
        .map(|_| ())
}

// ---- ALLOC / DESTROY --------------------------------------------------------

#[test]
fn ioas_alloc_with_flags_returns_eopnotsupp() {
    let fd = Fd::open();
    let mut cmd = uapi::IoasAlloc::new_zeroed();
    cmd.flags = 1;
    assert_eq!(fd.ioctl(&mut cmd), Err(Errno::OPNOTSUPP));
    assert_eq!(fd.ioas_alloc(), 1, "the failed alloc consumed no id");
}

#[test]
fn object_ids_are_lowest_free_and_reused() {
    let fd = Fd::open();
    assert_eq!(
        (fd.ioas_alloc(), fd.ioas_alloc(), fd.ioas_alloc()),
        (1, 2, 3)
    );
    fd.destroy(2).unwrap();
    assert_eq!(fd.ioas_alloc(), 2);
    assert_eq!(fd.ioas_alloc(), 4);
}

#[test]
fn destroy_unknown_id_returns_enoent() {
    let fd = Fd::open();
    assert_eq!(fd.destroy(0), Err(Errno::NOENT));
    assert_eq!(fd.destroy(12345), Err(Errno::NOENT));
    let ioas = fd.ioas_alloc();
    fd.destroy(ioas).unwrap();
    assert_eq!(fd.destroy(ioas), Err(Errno::NOENT));
}

#[test]
fn destroy_ioas_with_areas_succeeds() {
    let fd = Fd::open();
    let buf = buffer(4 * PAGE as usize);
    let ioas = fd.ioas_alloc();
    fd.map_auto(ioas, buf.addr(), 4 * PAGE).unwrap();
    fd.destroy(ioas).unwrap();
}

// ---- IOVA_RANGES ------------------------------------------------------------

#[test]
fn iova_ranges_of_fresh_ioas_is_whole_space() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    assert_eq!(fd.ranges(ioas).unwrap(), (vec![(0, u64::MAX)], 1));
}

#[test]
fn iova_ranges_with_reserved_field_returns_eopnotsupp() {
    let fd = Fd::open();
    let mut cmd = IoasIovaRanges::new_zeroed();
    cmd.ioas_id = fd.ioas_alloc();
    cmd.__reserved = 1;
    assert_eq!(fd.ioctl(&mut cmd), Err(Errno::OPNOTSUPP));
}

#[test]
fn iova_ranges_of_unknown_ioas_returns_enoent() {
    let fd = Fd::open();
    let mut cmd = IoasIovaRanges::new_zeroed();
    cmd.ioas_id = 7;
    assert_eq!(fd.ioctl(&mut cmd), Err(Errno::NOENT));
}

#[test]
fn iova_ranges_with_small_capacity_returns_emsgsize_and_total() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    reserve(&fd, ioas, 0x10000, 0x1000).unwrap();
    let mut out = [IovaRange { start: 7, last: 7 }; 2];
    let mut cmd = IoasIovaRanges::new_zeroed();
    cmd.ioas_id = ioas;
    cmd.num_iovas = 1;
    cmd.allowed_iovas = out.as_mut_ptr() as u64;
    assert_eq!(fd.ioctl(&mut cmd), Err(Errno::MSGSIZE));
    assert_eq!(cmd.num_iovas, 2);
    assert_eq!((out[0].start, out[0].last), (0, 0xffff));
    assert_eq!(
        (out[1].start, out[1].last),
        (7, 7),
        "entries past the capacity are not written"
    );
}

#[test]
fn iova_ranges_with_zero_capacity_writes_no_entry() {
    let fd = Fd::open();
    let mut cmd = IoasIovaRanges::new_zeroed();
    cmd.ioas_id = fd.ioas_alloc();
    cmd.allowed_iovas = 8; // would fault if written
    assert_eq!(fd.ioctl(&mut cmd), Err(Errno::MSGSIZE));
    assert_eq!(cmd.num_iovas, 1);
}

#[test]
fn iova_ranges_into_unwritable_array_returns_efault() {
    let fd = Fd::open();
    let bad = noaccess(4096);
    let mut cmd = IoasIovaRanges::new_zeroed();
    cmd.ioas_id = fd.ioas_alloc();
    cmd.num_iovas = 1;
    cmd.allowed_iovas = bad.addr();
    assert_eq!(fd.ioctl(&mut cmd), Err(Errno::FAULT));
}

#[test]
fn reserved_ranges_merge_in_iova_ranges() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    reserve(&fd, ioas, 0x1000, 0x1000).unwrap();
    reserve(&fd, ioas, 0x2000, 0x1000).unwrap();
    reserve(&fd, ioas, 0x2800, 0x1000).unwrap();
    let (ranges, _) = fd.ranges(ioas).unwrap();
    assert_eq!(ranges, vec![(0, 0xfff), (0x3800, u64::MAX)]);
}

// ---- ALLOW_IOVAS ------------------------------------------------------------

#[test]
fn allow_iovas_with_reserved_field_returns_eopnotsupp() {
    let fd = Fd::open();
    let mut cmd = IoasAllowIovas::new_zeroed();
    cmd.ioas_id = fd.ioas_alloc();
    cmd.__reserved = 1;
    assert_eq!(fd.ioctl(&mut cmd), Err(Errno::OPNOTSUPP));
}

#[test]
fn allow_iovas_of_unknown_ioas_returns_enoent() {
    let fd = Fd::open();
    assert_eq!(allow(&fd, 99, &[]), Err(Errno::NOENT));
}

#[test]
fn allow_iovas_with_empty_or_one_byte_range_returns_einval() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    assert_eq!(allow(&fd, ioas, &[(0x2000, 0x1000)]), Err(Errno::INVAL));
    assert_eq!(allow(&fd, ioas, &[(0x2000, 0x2000)]), Err(Errno::INVAL));
}

#[test]
fn allow_iovas_with_overlapping_ranges_returns_einval() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    assert_eq!(
        allow(&fd, ioas, &[(0x1000, 0x2fff), (0x2000, 0x3fff)]),
        Err(Errno::INVAL)
    );
}

#[test]
fn allow_iovas_over_reserved_returns_eaddrinuse_and_keeps_old_set() {
    let fd = Fd::open();
    let buf = buffer(PAGE as usize);
    let ioas = fd.ioas_alloc();
    allow(&fd, ioas, &[(0x100000, 0x1fffff)]).unwrap();
    reserve(&fd, ioas, 0x400000, 0x1000).unwrap();
    assert_eq!(
        allow(&fd, ioas, &[(0x300000, 0x4fffff)]),
        Err(Errno::ADDRINUSE)
    );
    // The old allowed set still steers allocation.
    assert_eq!(fd.map_auto(ioas, buf.addr(), PAGE).unwrap(), 0x100000);
}

#[test]
fn allow_iovas_from_unreadable_array_returns_efault() {
    let fd = Fd::open();
    let bad = noaccess(4096);
    let mut cmd = IoasAllowIovas::new_zeroed();
    cmd.ioas_id = fd.ioas_alloc();
    cmd.num_iovas = 1;
    cmd.allowed_iovas = bad.addr();
    assert_eq!(fd.ioctl(&mut cmd), Err(Errno::FAULT));
}

#[test]
fn allow_iovas_with_no_ranges_clears_the_set() {
    let fd = Fd::open();
    let buf = buffer(PAGE as usize);
    let ioas = fd.ioas_alloc();
    allow(&fd, ioas, &[(0x100000, 0x1fffff)]).unwrap();
    allow(&fd, ioas, &[]).unwrap();
    assert_eq!(fd.map_auto(ioas, buf.addr(), PAGE).unwrap(), PAGE);
}

#[test]
fn reserving_inside_allowed_returns_eaddrinuse() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    allow(&fd, ioas, &[(0x100000, 0x1fffff)]).unwrap();
    assert_eq!(reserve(&fd, ioas, 0x180000, 0x1000), Err(Errno::ADDRINUSE));
}

// ---- MAP --------------------------------------------------------------------

fn map_cmd(ioas: u32, va: u64, len: u64, iova: u64, flags: u32) -> IoasMap {
    let mut cmd = IoasMap::new_zeroed();
    cmd.ioas_id = ioas;
    cmd.user_va = va;
    cmd.length = len;
    cmd.iova = iova;
    cmd.flags = flags;
    cmd
}

#[test]
fn map_errnos_follow_the_kernel_order() {
    let fd = Fd::open();
    let buf = buffer(4 * PAGE as usize);
    let va = buf.addr();
    let ioas = fd.ioas_alloc();
    let cases: Vec<(IoasMap, Errno)> = vec![
        (map_cmd(ioas, va, PAGE, 0, RW | 8), Errno::OPNOTSUPP),
        (
            {
                let mut c = map_cmd(ioas, va, PAGE, 0, RW);
                c.__reserved = 1;
                c
            },
            Errno::OPNOTSUPP,
        ),
        (map_cmd(ioas, va, PAGE, u64::MAX, RW), Errno::OVERFLOW),
        (map_cmd(ioas, va, u64::MAX, 0, RW), Errno::OVERFLOW),
        (
            map_cmd(ioas, va, PAGE, 0, IOMMU_IOAS_MAP_FIXED_IOVA),
            Errno::INVAL,
        ),
        (map_cmd(99, va, PAGE, 0, RW), Errno::NOENT),
        (map_cmd(ioas, va, 0, 0, RW), Errno::INVAL),
        (map_cmd(ioas, u64::MAX - 10, PAGE, 0, RW), Errno::OVERFLOW),
        (map_cmd(ioas, va, u64::MAX - 1, 0, RW), Errno::INVAL),
        (map_cmd(ioas, va, 1 << 63, 0, RW), Errno::OVERFLOW),
        (
            map_cmd(ioas, va, PAGE, u64::MAX - 2, FIXED_RW),
            Errno::OVERFLOW,
        ),
    ];
    for (mut cmd, errno) in cases {
        assert_eq!(fd.ioctl(&mut cmd), Err(errno), "{cmd:?}");
    }
    assert_eq!(
        fd.unmap(ioas, 0, u64::MAX),
        Ok(0),
        "no failed map left an area"
    );
}

#[test]
fn map_fixed_over_area_returns_eexist_and_over_reserved_einval() {
    let fd = Fd::open();
    let buf = buffer(4 * PAGE as usize);
    let ioas = fd.ioas_alloc();
    fd.map_fixed(ioas, buf.addr(), 2 * PAGE, 0x10000).unwrap();
    assert_eq!(
        fd.map_fixed(ioas, buf.addr(), PAGE, 0x11000),
        Err(Errno::EXIST)
    );
    assert_eq!(
        fd.map_fixed(ioas, buf.addr(), 2 * PAGE, 0xf000),
        Err(Errno::EXIST)
    );
    reserve(&fd, ioas, 0x20000, PAGE).unwrap();
    assert_eq!(
        fd.map_fixed(ioas, buf.addr(), PAGE, 0x20000),
        Err(Errno::INVAL)
    );
    assert_eq!(fd.unmap(ioas, 0, u64::MAX), Ok(2 * PAGE));
}

#[test]
fn map_without_domain_does_not_touch_user_memory() {
    let fd = Fd::open();
    let bad = noaccess(4 * PAGE as usize);
    let ioas = fd.ioas_alloc();
    let iova = fd.map_auto(ioas, bad.addr(), 4 * PAGE).unwrap();
    assert_eq!(support::pins(bad.addr()), 0);
    assert_eq!(fd.unmap(ioas, iova, 4 * PAGE), Ok(4 * PAGE));
}

#[test]
fn auto_iova_is_aligned_to_length_and_never_zero() {
    let fd = Fd::open();
    let buf = buffer(64 * PAGE as usize);
    let ioas = fd.ioas_alloc();
    for npages in 1..=10u64 {
        let iova = fd.map_auto(ioas, buf.addr(), npages * PAGE).unwrap();
        assert_ne!(iova, 0);
        let align = (npages * PAGE)
            .next_power_of_two()
            .min(1u64 << buf.addr().trailing_zeros());
        assert_eq!(iova % align, 0, "{npages} pages at {iova:#x}");
    }
}

#[test]
fn auto_iova_keeps_the_user_page_offset() {
    let fd = Fd::open();
    let buf = buffer(2 * PAGE as usize);
    let ioas = fd.ioas_alloc();
    let iova = fd.map_auto(ioas, buf.addr() + 0x123, 0x100).unwrap();
    assert_eq!(iova % PAGE, 0x123);
}

#[test]
fn auto_iova_without_room_returns_enospc() {
    let fd = Fd::open();
    let buf = buffer(4 * PAGE as usize);
    let ioas = fd.ioas_alloc();
    allow(&fd, ioas, &[(0x100000, 0x101fff)]).unwrap();
    fd.map_auto(ioas, buf.addr(), 2 * PAGE).unwrap();
    assert_eq!(fd.map_auto(ioas, buf.addr(), PAGE), Err(Errno::NOSPC));
}

// ---- UNMAP ------------------------------------------------------------------

#[test]
fn unmap_checks_the_ioas_before_the_range() {
    let fd = Fd::open();
    assert_eq!(fd.unmap(5, u64::MAX, u64::MAX), Err(Errno::NOENT));
}

#[test]
fn unmap_errnos() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    assert_eq!(fd.unmap(ioas, 0x1000, PAGE), Err(Errno::NOENT));
    assert_eq!(fd.unmap(ioas, u64::MAX, PAGE), Err(Errno::OVERFLOW));
    assert_eq!(fd.unmap(ioas, 0x1000, u64::MAX), Err(Errno::OVERFLOW));
    assert_eq!(fd.unmap(ioas, 0x1000, 0), Err(Errno::INVAL));
    assert_eq!(fd.unmap(ioas, u64::MAX - 1, 3), Err(Errno::OVERFLOW));
    assert_eq!(fd.unmap(ioas, 0, u64::MAX), Ok(0));
}

#[test]
fn unmap_of_part_of_an_area_returns_enoent_and_keeps_it() {
    let fd = Fd::open();
    let buf = buffer(4 * PAGE as usize);
    let ioas = fd.ioas_alloc();
    fd.map_fixed(ioas, buf.addr(), 4 * PAGE, 0x10000).unwrap();
    assert_eq!(fd.unmap(ioas, 0x10000, PAGE), Err(Errno::NOENT));
    assert_eq!(fd.unmap(ioas, 0x11000, 4 * PAGE), Err(Errno::NOENT));
    assert_eq!(fd.unmap(ioas, 0x10000, 4 * PAGE), Ok(4 * PAGE));
}

#[test]
fn unmap_is_not_atomic() {
    let fd = Fd::open();
    let buf = buffer(4 * PAGE as usize);
    let ioas = fd.ioas_alloc();
    fd.map_fixed(ioas, buf.addr(), PAGE, 0x10000).unwrap();
    fd.map_fixed(ioas, buf.addr(), 2 * PAGE, 0x11000).unwrap();
    // The range covers the first area fully and the second partly.
    assert_eq!(fd.unmap(ioas, 0x10000, 2 * PAGE), Err(Errno::NOENT));
    assert_eq!(
        fd.unmap(ioas, 0x10000, PAGE),
        Err(Errno::NOENT),
        "first area already gone"
    );
    assert_eq!(fd.unmap(ioas, 0, u64::MAX), Ok(2 * PAGE));
}

// ---- COPY -------------------------------------------------------------------

#[test]
fn copy_errnos() {
    let fd = Fd::open();
    let buf = buffer(4 * PAGE as usize);
    let src = fd.ioas_alloc();
    let dst = fd.ioas_alloc();
    fd.map_fixed(src, buf.addr(), 2 * PAGE, 0x10000).unwrap();
    let r = IOMMU_IOAS_MAP_READABLE;
    assert_eq!(
        fd.copy(dst, src, 0x10000, PAGE, 0, r | 8),
        Err(Errno::OPNOTSUPP)
    );
    assert_eq!(
        fd.copy(dst, src, 0x10000, u64::MAX, 0, r),
        Err(Errno::OVERFLOW)
    );
    assert_eq!(
        fd.copy(dst, src, u64::MAX, PAGE, 0, r),
        Err(Errno::OVERFLOW)
    );
    assert_eq!(
        fd.copy(dst, src, 0x10000, PAGE, u64::MAX, r),
        Err(Errno::OVERFLOW)
    );
    assert_eq!(fd.copy(dst, src, 0x10000, PAGE, 0, 0), Err(Errno::INVAL));
    assert_eq!(fd.copy(dst, 99, 0x10000, PAGE, 0, r), Err(Errno::NOENT));
    assert_eq!(fd.copy(dst, src, 0x10000, 0, 0, r), Err(Errno::INVAL));
    assert_eq!(
        fd.copy(dst, src, 0x11000, 2 * PAGE, 0, r),
        Err(Errno::NOENT)
    );
    assert_eq!(fd.copy(99, src, 0x10000, PAGE, 0, r), Err(Errno::NOENT));
    assert_eq!(fd.unmap(dst, 0, u64::MAX), Ok(0));
}

#[test]
fn copy_of_a_sub_range_into_another_ioas() {
    let fd = Fd::open();
    let buf = buffer(4 * PAGE as usize);
    let src = fd.ioas_alloc();
    let dst = fd.ioas_alloc();
    fd.map_fixed(src, buf.addr(), 4 * PAGE, 0x10000).unwrap();
    let flags = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_FIXED_IOVA;
    assert_eq!(fd.copy(dst, src, 0x10800, 0x800, 0x800, flags), Ok(0x800));
    assert_eq!(fd.unmap(dst, 0, u64::MAX), Ok(0x800));
}

#[test]
fn copy_writeable_from_a_read_only_map_returns_eperm() {
    let fd = Fd::open();
    let buf = buffer(PAGE as usize);
    let src = fd.ioas_alloc();
    fd.map(
        src,
        buf.addr(),
        PAGE,
        0x10000,
        IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_FIXED_IOVA,
    )
    .unwrap();
    assert_eq!(
        fd.copy(src, src, 0x10000, PAGE, 0, IOMMU_IOAS_MAP_WRITEABLE),
        Err(Errno::PERM)
    );
}

// ---- OPTION -----------------------------------------------------------------

#[test]
fn option_errnos() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    assert_eq!(
        fd.option(7, IOMMU_OPTION_OP_GET, 0, 0),
        Err(Errno::OPNOTSUPP)
    );
    assert_eq!(
        fd.option(IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_OP_GET, ioas, 0),
        Err(Errno::OPNOTSUPP)
    );
    assert_eq!(
        fd.option(IOMMU_OPTION_RLIMIT_MODE, 2, 0, 0),
        Err(Errno::OPNOTSUPP)
    );
    assert_eq!(
        fd.option(IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, 0, 0),
        Err(Errno::NOENT)
    );
    assert_eq!(
        fd.option(IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_SET, ioas, 2),
        Err(Errno::INVAL)
    );
    assert_eq!(
        fd.option(IOMMU_OPTION_HUGE_PAGES, 2, ioas, 0),
        Err(Errno::OPNOTSUPP)
    );
    assert_eq!(
        fd.option(IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, ioas, 0),
        Ok(1)
    );
}

#[test]
fn rlimit_mode_without_cap_sys_resource_returns_eperm() {
    let fd = Fd::open_with_caps("-sys_resource");
    assert_eq!(
        fd.option(IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_OP_SET, 0, 1),
        Err(Errno::PERM)
    );
    assert_eq!(
        fd.option(IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_OP_GET, 0, 0),
        Ok(0)
    );
}

#[test]
fn rlimit_mode_set_needs_an_empty_context_and_a_valid_value() {
    let fd = Fd::open_with_caps("+sys_resource");
    assert_eq!(
        fd.option(IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_OP_SET, 0, 2),
        Err(Errno::INVAL)
    );
    assert_eq!(
        fd.option(IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_OP_SET, 0, 1),
        Ok(1)
    );
    assert_eq!(
        fd.option(IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_OP_GET, 0, 0),
        Ok(1)
    );
    fd.ioas_alloc();
    assert_eq!(
        fd.option(IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_OP_SET, 0, 0),
        Err(Errno::BUSY)
    );
}

#[test]
fn huge_pages_off_raises_alignment_and_refuses_misaligned_areas() {
    let fd = Fd::open();
    let buf = buffer(2 * PAGE as usize);
    let ioas = fd.ioas_alloc();
    fd.map_fixed(ioas, buf.addr() + 0x800, 0x800, 0x10800)
        .unwrap();
    assert_eq!(
        fd.option(IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_SET, ioas, 0),
        Err(Errno::ADDRINUSE)
    );
    assert_eq!(
        fd.option(IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, ioas, 0),
        Ok(1)
    );
    fd.unmap(ioas, 0, u64::MAX).unwrap();
    fd.option(IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_SET, ioas, 0)
        .unwrap();
    assert_eq!(fd.ranges(ioas).unwrap().1, PAGE);
    assert_eq!(
        fd.map_fixed(ioas, buf.addr() + 0x800, 0x800, 0x10800),
        Err(Errno::INVAL)
    );
    fd.option(IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_SET, ioas, 1)
        .unwrap();
    assert_eq!(fd.ranges(ioas).unwrap().1, 1);
}

/// A lookup after the ID was destroyed and reused finds the new object, never
/// the one a thread looked up before (lookups reuse the thread's last one
/// while the object table is unchanged).
#[test]
fn lookups_follow_destroy_and_id_reuse() {
    let fd = Fd::open();
    let a = fd.ioas_alloc();
    let buf = buffer(PAGE as usize);
    let iova = fd.map_auto(a, buf.addr(), PAGE).unwrap();
    assert_eq!(fd.unmap(a, iova, PAGE), Ok(PAGE));
    let (ranges_a, _) = fd.ranges(a).unwrap();
    fd.destroy(a).unwrap();
    assert_eq!(fd.ranges(a), Err(Errno::NOENT));
    assert_eq!(fd.unmap(a, 0, 0), Err(Errno::NOENT));
    // The same ID, now a different IOAS: an area mapped in it is found there.
    let b = fd.ioas_alloc();
    assert_eq!(b, a);
    let iova = fd.map_auto(b, buf.addr(), PAGE).unwrap();
    assert_eq!(fd.ranges(b).unwrap().0, ranges_a);
    assert_eq!(fd.unmap(b, iova, PAGE), Ok(PAGE));
}
