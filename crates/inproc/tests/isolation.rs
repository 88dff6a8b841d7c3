//! Isolation properties (RELIABILITY.md #9): contexts never see each other's
//! objects, no mapping lands in a reserved range, read-only mappings are never
//! written by emulated DMA, and no DMA succeeds after the unmap of its IOVA
//! returned. (Exact locked-page counts after every operation are checked by the
//! model-based state-machine test, crates/model.)

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use proptest::prelude::*;
use support::{buffer, mock_domain, pins, readonly, Fd, FIXED_RW, PAGE, RW};
use uapi::{
    Errno, HwInfo, HwptGetDirtyBitmap, HwptInvalidate, HwptSetDirtyTracking, TestAccessPages,
    TestAccessRw, TestAddReserved, TestCheckIotlb, TestCreateAccess, TestTriggerIopf, VfioIoas,
    IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE, IOMMU_VFIO_IOAS_SET,
    MOCK_ACCESS_RW_SLOW_PATH, MOCK_ACCESS_RW_WRITE, MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES,
};
use zerocopy::FromZeros;

const APERTURE: u64 = 1 << 24;

fn create_access(fd: &Fd, ioas: u32, flags: u32) -> u32 {
    let p = TestCreateAccess {
        out_access_fd: 0,
        flags,
    };
    fd.test(ioas, &p)
        .unwrap()
        .payload_as::<TestCreateAccess>()
        .out_access_fd
}

fn access_rw(fd: &Fd, afd: u32, iova: u64, buf: &mut [u8], flags: u32) -> Result<(), Errno> {
    let p = TestAccessRw {
        iova,
        length: buf.len() as u64,
        uptr: buf.as_mut_ptr() as u64,
        flags,
        ..FromZeros::new_zeroed()
    };
    fd.test(afd, &p).map(|_| ())
}

/// Every ID-taking command of context `b` on ID `id`.
fn lookups(b: &Fd, id: u32, buf: u64) -> Vec<(&'static str, Result<(), Errno>)> {
    let mut out = vec![
        ("DESTROY", b.destroy(id)),
        ("IOVA_RANGES", b.ranges(id).map(|_| ())),
        ("MAP", b.map_auto(id, buf, PAGE).map(|_| ())),
        ("UNMAP", b.unmap(id, 0, u64::MAX).map(|_| ())),
        (
            "COPY src",
            b.copy(id, id, APERTURE, PAGE, 0, RW).map(|_| ()),
        ),
        ("OPTION", b.option(1, 1, id, 0).map(|_| ())),
        (
            "ADD_RESERVED",
            b.test(
                id,
                &TestAddReserved {
                    start: 1 << 40,
                    length: PAGE,
                },
            )
            .map(|_| ()),
        ),
        (
            "MD_CHECK_IOTLB",
            b.test(id, &TestCheckIotlb { id: 0, iotlb: 0 }).map(|_| ()),
        ),
        (
            "TRIGGER_IOPF",
            b.test(
                0,
                &TestTriggerIopf {
                    dev_id: id,
                    ..FromZeros::new_zeroed()
                },
            )
            .map(|_| ()),
        ),
        (
            "CREATE_ACCESS",
            b.test(
                id,
                &TestCreateAccess {
                    out_access_fd: 0,
                    flags: 0,
                },
            )
            .map(|_| ()),
        ),
        ("MD_CHECK_MAP", support::check_map(b, id, APERTURE, 0, buf)),
    ];
    let mut hi = HwInfo::new_zeroed();
    hi.dev_id = id;
    out.push(("GET_HW_INFO", b.ioctl(&mut hi).map(|_| ())));
    let mut sd = HwptSetDirtyTracking::new_zeroed();
    sd.hwpt_id = id;
    out.push(("SET_DIRTY_TRACKING", b.ioctl(&mut sd).map(|_| ())));
    let mut bits = [0u64; 1];
    let mut gd = HwptGetDirtyBitmap::new_zeroed();
    gd.hwpt_id = id;
    gd.iova = APERTURE;
    gd.length = PAGE;
    gd.page_size = PAGE;
    gd.data = bits.as_mut_ptr() as u64;
    out.push(("GET_DIRTY_BITMAP", b.ioctl(&mut gd).map(|_| ())));
    let mut inv = HwptInvalidate::new_zeroed();
    inv.hwpt_id = id;
    out.push(("INVALIDATE", b.ioctl(&mut inv).map(|_| ())));
    let mut v = VfioIoas::new_zeroed();
    v.op = IOMMU_VFIO_IOAS_SET;
    v.ioas_id = id;
    out.push(("VFIO_IOAS SET", b.ioctl(&mut v).map(|_| ())));
    out.push((
        "HWPT_ALLOC dev",
        support::hwpt_alloc(b, id, id, 0, 0, &[]).map(|_| ()),
    ));
    out
}

#[test]
fn foreign_ids_are_always_enoent() {
    let buf = buffer(4 * PAGE as usize);
    let a = Fd::open();
    let ioas = a.ioas_alloc();
    a.map_fixed(ioas, buf.addr(), 2 * PAGE, APERTURE).unwrap();
    let (_stdev, hwpt, idev) = mock_domain(&a, ioas, 0).unwrap();
    support::hwpt_alloc(&a, idev, ioas, 1, 0, &[]).unwrap();
    let afd = create_access(&a, ioas, MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES);
    let ids: Vec<u32> = (1..=6).collect();
    assert!(ids.contains(&hwpt));
    // B is empty: every ID of A is foreign there.
    let b = Fd::open();
    let mut checked = 0;
    for &id in &ids {
        for (what, r) in lookups(&b, id, buf.addr()) {
            assert_eq!(r, Err(Errno::NOENT), "{what} on foreign id {id}");
            checked += 1;
        }
    }
    // B's own objects are found; A is untouched by all of it.
    let b_ioas = b.ioas_alloc();
    assert_eq!(b_ioas, 1);
    assert_eq!(b.ranges(b_ioas).unwrap().0, vec![(0, u64::MAX)]);
    assert_eq!(a.ranges(ioas).unwrap().0, vec![(APERTURE, (1 << 31) - 1)]);
    support::check_map(&a, hwpt, APERTURE, 2 * PAGE, buf.addr()).unwrap();
    assert!(checked >= 100);
    inproc::FdTable::global().close(afd as i32).unwrap();
}

/// IOVA_RANGES with room for 256 ranges.
fn ranges(fd: &Fd, ioas: u32) -> Vec<(u64, u64)> {
    let mut out = [uapi::IovaRange::new_zeroed(); 256];
    let mut cmd = uapi::IoasIovaRanges::new_zeroed();
    cmd.ioas_id = ioas;
    cmd.num_iovas = 256;
    cmd.allowed_iovas = out.as_mut_ptr() as u64;
    fd.ioctl(&mut cmd).unwrap();
    out[..cmd.num_iovas as usize]
        .iter()
        .map(|r| (r.start, r.last))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Random reservations and automatic/fixed maps (with and without a domain):
    /// every mapping lies in a hole of the reserved set, and fixed maps into
    /// reserved space fail with EINVAL.
    #[test]
    fn no_mapping_lands_in_a_reserved_range(
        domain in any::<bool>(),
        ops in prop::collection::vec((0u8..3, 0u64..2048, 1u64..16), 1..40),
    ) {
        let buf = buffer(16 * PAGE as usize);
        let fd = Fd::open();
        let ioas = fd.ioas_alloc();
        if domain {
            mock_domain(&fd, ioas, 0).unwrap();
        }
        let mut mapped: Vec<(u64, u64)> = Vec::new();
        for (kind, page, n) in ops {
            let iova = APERTURE + page * PAGE;
            let len = n * PAGE;
            match kind {
                0 => {
                    let _ = fd.test(ioas, &TestAddReserved { start: iova, length: len });
                }
                1 => {
                    if let Ok(iova) = fd.map_auto(ioas, buf.addr(), len) {
                        mapped.push((iova, iova + len - 1));
                    }
                }
                _ => {
                    match fd.map(ioas, buf.addr(), len, iova, FIXED_RW) {
                        Ok(_) => mapped.push((iova, iova + len - 1)),
                        Err(e) => prop_assert!(matches!(e, Errno::INVAL | Errno::EXIST), "{e:?}"),
                    }
                }
            }
            let holes = ranges(&fd, ioas);
            for &(s, l) in &mapped {
                prop_assert!(
                    holes.iter().any(|&(hs, hl)| hs <= s && l <= hl),
                    "mapping [{s:#x}, {l:#x}] outside the usable ranges {holes:x?}"
                );
            }
        }
    }
}

#[test]
fn read_only_mappings_are_never_written_by_dma() {
    let buf = buffer(4 * PAGE as usize);
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    mock_domain(&fd, ioas, 0).unwrap();
    fd.map(
        ioas,
        buf.addr(),
        2 * PAGE,
        APERTURE,
        IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE,
    )
    .unwrap();
    // Its copy may not become writable either.
    assert_eq!(
        fd.copy(ioas, ioas, APERTURE, PAGE, APERTURE + 8 * PAGE, FIXED_RW),
        Err(Errno::PERM)
    );
    let before = buf.as_slice().unwrap().to_vec();
    for flags in [0, MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES] {
        let afd = create_access(&fd, ioas, flags);
        for rw in [
            MOCK_ACCESS_RW_WRITE,
            MOCK_ACCESS_RW_WRITE | MOCK_ACCESS_RW_SLOW_PATH,
        ] {
            for (iova, len) in [(APERTURE, 1), (APERTURE + 100, 4000), (APERTURE, 2 * PAGE)] {
                let mut data = vec![0xeeu8; len as usize];
                assert_eq!(access_rw(&fd, afd, iova, &mut data, rw), Err(Errno::PERM));
            }
        }
        if flags != 0 {
            let p = TestAccessPages {
                flags: 1,
                out_access_pages_id: 0,
                iova: APERTURE,
                length: PAGE,
                uptr: 0,
            };
            assert_eq!(fd.test(afd, &p).map(|_| ()), Err(Errno::PERM));
        }
        inproc::FdTable::global().close(afd as i32).unwrap();
    }
    assert_eq!(
        buf.as_slice().unwrap(),
        &before[..],
        "read-only memory was written"
    );
}

#[test]
fn writable_map_of_read_only_memory_fails_when_pinned() {
    let ro = readonly(2 * PAGE as usize);
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    // Without a domain nothing is pinned yet; attaching one fails and unwinds.
    fd.map_fixed(ioas, ro.addr(), 2 * PAGE, APERTURE).unwrap();
    assert_eq!(mock_domain(&fd, ioas, 0), Err(Errno::FAULT));
    assert_eq!(pins(ro.addr()), 0);
    fd.unmap(ioas, 0, u64::MAX).unwrap();
    mock_domain(&fd, ioas, 0).unwrap();
    assert_eq!(
        fd.map_fixed(ioas, ro.addr(), 2 * PAGE, APERTURE),
        Err(Errno::FAULT)
    );
    assert_eq!(pins(ro.addr()), 0);
}

#[test]
fn no_dma_succeeds_after_unmap_returned() {
    let buf = buffer(4 * PAGE as usize);
    let fd = Arc::new(Fd::open());
    let ioas = fd.ioas_alloc();
    let (_, hwpt, _) = mock_domain(&fd, ioas, 0).unwrap();
    for slow in [0, MOCK_ACCESS_RW_SLOW_PATH] {
        let afd = create_access(&fd, ioas, MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES);
        for round in 0..200 {
            fd.map_fixed(ioas, buf.addr(), 2 * PAGE, APERTURE).unwrap();
            let unmapped = Arc::new(AtomicBool::new(false));
            let reader = {
                let (fd, unmapped) = (fd.clone(), unmapped.clone());
                std::thread::spawn(move || loop {
                    let after = unmapped.load(Ordering::Acquire);
                    let mut data = [0u8; 64];
                    let r = access_rw(&fd, afd, APERTURE + PAGE - 32, &mut data, slow);
                    if after {
                        return r;
                    }
                })
            };
            if round % 2 == 0 {
                let p = TestAccessPages {
                    flags: 0,
                    out_access_pages_id: 0,
                    iova: APERTURE,
                    length: PAGE,
                    uptr: 0,
                };
                fd.test(afd, &p).unwrap();
            }
            assert_eq!(fd.unmap(ioas, APERTURE, 2 * PAGE), Ok(2 * PAGE));
            unmapped.store(true, Ordering::Release);
            assert_eq!(reader.join().unwrap(), Err(Errno::NOENT), "DMA after unmap");
            assert_eq!(
                support::check_map(&fd, hwpt, APERTURE, PAGE, buf.addr()).err(),
                Some(Errno::INVAL),
                "the domain still maps the unmapped IOVA"
            );
            assert_eq!(pins(buf.addr()), 0);
        }
        inproc::FdTable::global().close(afd as i32).unwrap();
    }
}

/// A COPY in another IOAS shares the source's page store; destroying the copy's
/// IOAS must not unpin pages the source's domain still maps.
#[test]
fn copy_in_another_ioas_keeps_the_sources_pins() {
    let buf = buffer(4 * PAGE as usize);
    let fd = Fd::open();
    let a = fd.ioas_alloc();
    let b = fd.ioas_alloc();
    fd.map_fixed(a, buf.addr(), PAGE, APERTURE).unwrap();
    let (stdev, hwpt, _) = mock_domain(&fd, a, 0).unwrap();
    fd.copy(b, a, APERTURE, PAGE, 0, RW).unwrap();
    assert_eq!(pins(buf.addr()), 1);
    fd.destroy(b).unwrap();
    assert_eq!(
        pins(buf.addr()),
        1,
        "destroying the copy unpinned the source"
    );
    support::check_map(&fd, hwpt, APERTURE, PAGE, buf.addr()).unwrap();
    fd.destroy(stdev).unwrap();
    assert_eq!(pins(buf.addr()), 0);
}
