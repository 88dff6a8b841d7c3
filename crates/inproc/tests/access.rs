//! Accesses, pinning and the device-less test commands (UAPI.md §3.16, MOCK.md §7):
//! every errno path, exact pin counts, lazy pinning, accounting, unmap callbacks.

mod support;

use std::sync::Arc;

use iommufd::mm::{AccountMode, Cap, UserMemory};
use support::{
    buffer, noaccess, pins, readonly, Fd, HookedMm, LockedLimit, MmHooks, FIXED_RW, PAGE,
};
use uapi::{
    Errno, TestAccessPages, TestAccessReplaceIoas, TestAccessRw, TestAddReserved, TestCheckRefs,
    TestCreateAccess, TestDestroyAccessPages, TestMemoryLimit, IOMMU_IOAS_MAP_FIXED_IOVA,
    IOMMU_IOAS_MAP_READABLE, MOCK_ACCESS_RW_SLOW_PATH, MOCK_ACCESS_RW_WRITE,
    MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES, MOCK_FLAGS_ACCESS_WRITE,
};

fn create_access(fd: &Fd, ioas: u32, flags: u32) -> Result<u32, Errno> {
    let cmd = fd.test(
        ioas,
        &TestCreateAccess {
            out_access_fd: 0,
            flags,
        },
    )?;
    Ok(cmd.payload_as::<TestCreateAccess>().out_access_fd)
}

fn access_pages(
    fd: &Fd,
    afd: u32,
    iova: u64,
    length: u64,
    uptr: u64,
    flags: u32,
) -> Result<u32, Errno> {
    let p = TestAccessPages {
        flags,
        out_access_pages_id: 0,
        iova,
        length,
        uptr,
    };
    let cmd = fd.test(afd, &p)?;
    Ok(cmd.payload_as::<TestAccessPages>().out_access_pages_id)
}

fn destroy_pages(fd: &Fd, afd: u32, id: u32) -> Result<(), Errno> {
    fd.test(
        afd,
        &TestDestroyAccessPages {
            access_pages_id: id,
        },
    )
    .map(|_| ())
}

fn access_rw(fd: &Fd, afd: u32, iova: u64, buf: &mut [u8], flags: u32) -> Result<(), Errno> {
    let p = TestAccessRw {
        iova,
        length: buf.len() as u64,
        uptr: buf.as_mut_ptr() as u64,
        flags,
        ..zerocopy::FromZeros::new_zeroed()
    };
    fd.test(afd, &p).map(|_| ())
}

fn check_refs(fd: &Fd, uptr: u64, length: u64, refs: u32) -> Result<(), Errno> {
    let p = TestCheckRefs {
        length,
        uptr,
        refs,
        ..zerocopy::FromZeros::new_zeroed()
    };
    fd.test(0, &p).map(|_| ())
}

fn close(afd: u32) {
    inproc::FdTable::global().close(afd as i32).unwrap();
}

const PIN: u32 = MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES;

#[test]
fn create_access_errnos() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    assert_eq!(create_access(&fd, ioas, 2), Err(Errno::OPNOTSUPP));
    assert_eq!(create_access(&fd, 99, 0), Err(Errno::NOENT));
}

#[test]
fn access_object_keeps_ioas_busy_until_its_fd_closes() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    let afd = create_access(&fd, ioas, PIN).unwrap();
    assert_eq!(fd.destroy(ioas), Err(Errno::BUSY));
    assert_eq!(
        fd.destroy(ioas + 1),
        Err(Errno::BUSY),
        "the access object is held by its driver"
    );
    close(afd);
    fd.destroy(ioas).unwrap();
}

#[test]
fn access_pages_errnos() {
    let fd = Fd::open();
    let buf = buffer(4 * PAGE as usize);
    let ioas = fd.ioas_alloc();
    fd.map_fixed(ioas, buf.addr(), 2 * PAGE, 0x10000).unwrap();
    fd.map(
        ioas,
        buf.addr(),
        PAGE,
        0x20000,
        IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_FIXED_IOVA,
    )
    .unwrap();
    let nopin = create_access(&fd, ioas, 0).unwrap();
    let afd = create_access(&fd, ioas, PIN).unwrap();
    assert_eq!(
        access_pages(&fd, afd, 0x10000, 32 << 20, 0, 0),
        Err(Errno::NOMEM)
    );
    assert_eq!(
        access_pages(&fd, afd, 0x10000, PAGE, 0, 2),
        Err(Errno::OPNOTSUPP)
    );
    assert_eq!(
        access_pages(&fd, 9999, 0x10000, PAGE, 0, 0),
        Err(Errno::BADFD)
    );
    assert_eq!(
        access_pages(&fd, nopin, 0x10000, PAGE, 0, 0),
        Err(Errno::OPNOTSUPP)
    );
    assert_eq!(access_pages(&fd, afd, 0x10000, 0, 0, 0), Err(Errno::INVAL));
    assert_eq!(
        access_pages(&fd, afd, u64::MAX - 10, PAGE, 0, 0),
        Err(Errno::OVERFLOW)
    );
    assert_eq!(
        access_pages(&fd, afd, 0x30000, PAGE, 0, 0),
        Err(Errno::NOENT)
    );
    assert_eq!(
        access_pages(&fd, afd, 0x11000, 2 * PAGE, 0, 0),
        Err(Errno::NOENT)
    );
    assert_eq!(
        access_pages(&fd, afd, 0x10800, PAGE, 0, 0),
        Err(Errno::INVAL)
    );
    assert_eq!(
        access_pages(&fd, afd, 0x20000, PAGE, 0, MOCK_FLAGS_ACCESS_WRITE),
        Err(Errno::PERM)
    );
    assert_eq!(pins(buf.addr()), 0, "failed pins left nothing pinned");
    close(nopin);
    close(afd);
}

#[test]
fn access_pin_counts_are_exact_and_shared() {
    let fd = Fd::open();
    let buf = buffer(4 * PAGE as usize);
    let va = buf.addr();
    let ioas = fd.ioas_alloc();
    fd.map_fixed(ioas, va, 4 * PAGE, 0x10000).unwrap();
    assert_eq!(pins(va), 0, "map without a domain pins nothing");
    let afd = create_access(&fd, ioas, PIN).unwrap();
    let a = access_pages(&fd, afd, 0x10000, 2 * PAGE, va, 0).unwrap();
    let b = access_pages(&fd, afd, 0x10000, 2 * PAGE, va, 0).unwrap();
    let c = access_pages(&fd, afd, 0x11000, 2 * PAGE, va + PAGE, 0).unwrap();
    assert_eq!((a, b, c), (0, 1, 2), "item ids count from 0");
    check_refs(&fd, va, 3 * PAGE, 1).unwrap();
    check_refs(&fd, va + 3 * PAGE, PAGE, 0).unwrap();
    destroy_pages(&fd, afd, a).unwrap();
    destroy_pages(&fd, afd, b).unwrap();
    check_refs(&fd, va + PAGE, 2 * PAGE, 1).unwrap();
    check_refs(&fd, va, PAGE, 0).unwrap();
    assert_eq!(destroy_pages(&fd, afd, a), Err(Errno::NOENT));
    close(afd);
    check_refs(&fd, va, 4 * PAGE, 0).unwrap();
}

#[test]
fn access_pages_of_other_user_pages_returns_ebade() {
    let fd = Fd::open();
    let buf = buffer(2 * PAGE as usize);
    let ioas = fd.ioas_alloc();
    fd.map_fixed(ioas, buf.addr(), PAGE, 0x10000).unwrap();
    let afd = create_access(&fd, ioas, PIN).unwrap();
    assert_eq!(
        access_pages(&fd, afd, 0x10000, PAGE, buf.addr() + PAGE, 0),
        Err(Errno::BADE)
    );
    assert_eq!(pins(buf.addr()), 0);
    close(afd);
}

#[test]
fn access_pages_of_unmapped_memory_returns_efault() {
    let fd = Fd::open();
    let bad = noaccess(PAGE as usize);
    let ioas = fd.ioas_alloc();
    fd.map_fixed(ioas, bad.addr(), PAGE, 0x10000).unwrap();
    let afd = create_access(&fd, ioas, PIN).unwrap();
    assert_eq!(
        access_pages(&fd, afd, 0x10000, PAGE, 0, 0),
        Err(Errno::FAULT)
    );
    close(afd);
}

#[test]
fn write_pin_of_read_only_memory_returns_efault() {
    let fd = Fd::open();
    let ro = readonly(PAGE as usize);
    let ioas = fd.ioas_alloc();
    fd.map_fixed(ioas, ro.addr(), PAGE, 0x10000).unwrap();
    let afd = create_access(&fd, ioas, PIN).unwrap();
    // A writable store pins with FOLL_WRITE, which a read-only VMA refuses.
    assert_eq!(
        access_pages(&fd, afd, 0x10000, PAGE, 0, 0),
        Err(Errno::FAULT)
    );
    close(afd);
}

#[test]
fn unmap_notifies_the_access_which_unpins() {
    let fd = Fd::open();
    let buf = buffer(2 * PAGE as usize);
    let ioas = fd.ioas_alloc();
    fd.map_fixed(ioas, buf.addr(), 2 * PAGE, 0x10000).unwrap();
    let afd = create_access(&fd, ioas, PIN).unwrap();
    let item = access_pages(&fd, afd, 0x10000, PAGE, buf.addr(), 0).unwrap();
    assert_eq!(pins(buf.addr()), 1);
    assert_eq!(fd.unmap(ioas, 0x10000, 2 * PAGE), Ok(2 * PAGE));
    assert_eq!(pins(buf.addr()), 0);
    assert_eq!(destroy_pages(&fd, afd, item), Err(Errno::NOENT));
    close(afd);
}

#[test]
fn access_rw_errnos_and_data() {
    let fd = Fd::open();
    let mut buf = buffer(4 * PAGE as usize);
    let ro = readonly(PAGE as usize);
    let ioas = fd.ioas_alloc();
    fd.map_fixed(ioas, buf.addr(), 4 * PAGE, 0x10000).unwrap();
    fd.map(
        ioas,
        ro.addr(),
        PAGE,
        0x20000,
        IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_FIXED_IOVA,
    )
    .unwrap();
    let afd = create_access(&fd, ioas, 0).unwrap();
    let mut data = vec![0u8; 100];
    assert_eq!(
        access_rw(&fd, afd, 0x10000, &mut vec![0; 17 << 20], 0),
        Err(Errno::NOMEM)
    );
    assert_eq!(
        access_rw(&fd, afd, 0x10000, &mut data, 2),
        Err(Errno::OPNOTSUPP)
    );
    assert_eq!(
        access_rw(&fd, 9999, 0x10000, &mut data, 0),
        Err(Errno::BADFD)
    );
    assert_eq!(access_rw(&fd, afd, 0x10000, &mut [], 0), Err(Errno::INVAL));
    assert_eq!(
        access_rw(&fd, afd, 0x30000, &mut data, 0),
        Err(Errno::NOENT)
    );
    assert_eq!(
        access_rw(&fd, afd, 0x20000, &mut data, MOCK_ACCESS_RW_WRITE),
        Err(Errno::PERM)
    );
    let bad = noaccess(PAGE as usize);
    let p = TestAccessRw {
        iova: 0x10000,
        length: 16,
        uptr: bad.addr(),
        flags: 0,
        ..zerocopy::FromZeros::new_zeroed()
    };
    assert_eq!(fd.test(afd, &p).map(|_| ()), Err(Errno::FAULT));

    // Data: write through the access at a page-crossing offset, on both paths.
    for (flags, off) in [(0, 0xff0u64), (MOCK_ACCESS_RW_SLOW_PATH, 0x1ff0)] {
        let mut w: Vec<u8> = (0..100u8).map(|i| i.wrapping_add(off as u8)).collect();
        access_rw(
            &fd,
            afd,
            0x10000 + off,
            &mut w,
            flags | MOCK_ACCESS_RW_WRITE,
        )
        .unwrap();
        assert_eq!(
            &buf.as_slice().unwrap()[off as usize..off as usize + 100],
            &w[..]
        );
        let mut r = vec![0u8; 100];
        access_rw(&fd, afd, 0x10000 + off, &mut r, flags).unwrap();
        assert_eq!(r, w);
    }
    buf.as_mut_slice().unwrap()[0] = 0xaa;
    let mut one = [0u8; 1];
    access_rw(&fd, afd, 0x10000, &mut one, MOCK_ACCESS_RW_SLOW_PATH).unwrap();
    assert_eq!(one, [0xaa]);
    assert_eq!(pins(buf.addr()), 0, "rw pins only temporarily");
    close(afd);
}

#[test]
fn access_replace_moves_and_unpins() {
    let fd = Fd::open();
    let buf = buffer(PAGE as usize);
    let a = fd.ioas_alloc();
    let b = fd.ioas_alloc();
    fd.map_fixed(a, buf.addr(), PAGE, 0x10000).unwrap();
    let afd = create_access(&fd, a, PIN).unwrap();
    access_pages(&fd, afd, 0x10000, PAGE, 0, 0).unwrap();
    assert_eq!(
        fd.test(afd, &TestAccessReplaceIoas { ioas_id: 99 })
            .map(|_| ()),
        Err(Errno::NOENT)
    );
    assert_eq!(pins(buf.addr()), 1);
    fd.test(afd, &TestAccessReplaceIoas { ioas_id: b }).unwrap();
    assert_eq!(pins(buf.addr()), 0, "the old IOAS's pins were released");
    fd.destroy(a).unwrap();
    assert_eq!(fd.destroy(b), Err(Errno::BUSY));
    assert_eq!(
        fd.test(9999, &TestAccessReplaceIoas { ioas_id: b })
            .map(|_| ()),
        Err(Errno::BADFD)
    );
    close(afd);
}

#[test]
fn check_refs_errnos() {
    let fd = Fd::open();
    let buf = buffer(PAGE as usize);
    let bad = noaccess(PAGE as usize);
    assert_eq!(check_refs(&fd, buf.addr() + 1, PAGE, 0), Err(Errno::INVAL));
    assert_eq!(check_refs(&fd, buf.addr(), PAGE + 1, 0), Err(Errno::INVAL));
    assert_eq!(check_refs(&fd, !(PAGE - 1), 2 * PAGE, 0), Err(Errno::INVAL));
    assert_eq!(check_refs(&fd, buf.addr(), PAGE, 1), Err(Errno::IO));
    assert_eq!(check_refs(&fd, bad.addr(), PAGE, 0), Err(Errno::FAULT));
    check_refs(&fd, buf.addr(), PAGE, 0).unwrap();
}

#[test]
fn add_reserved_errnos() {
    let fd = Fd::open();
    let buf = buffer(PAGE as usize);
    let ioas = fd.ioas_alloc();
    fd.map_fixed(ioas, buf.addr(), PAGE, 0x10000).unwrap();
    let r = |id, start, length| fd.test(id, &TestAddReserved { start, length }).map(|_| ());
    assert_eq!(r(ioas, 0x1000, 0), Err(Errno::INVAL));
    assert_eq!(r(ioas, u64::MAX, 2), Err(Errno::OVERFLOW));
    assert_eq!(r(99, 0x1000, PAGE), Err(Errno::NOENT));
    assert_eq!(r(ioas, 0x10800, PAGE), Err(Errno::ADDRINUSE));
    r(ioas, 0x20000, PAGE).unwrap();
}

#[test]
fn temp_memory_limit_below_batch_entry_returns_einval() {
    let fd = Fd::open();
    assert_eq!(
        fd.test(0, &TestMemoryLimit { limit: 11 }).map(|_| ()),
        Err(Errno::INVAL)
    );
    fd.test(0, &TestMemoryLimit { limit: 65536 }).unwrap();
}

#[test]
fn closing_the_iommufd_unpins_everything() {
    let buf = buffer(4 * PAGE as usize);
    let afd;
    {
        let fd = Fd::open();
        let ioas = fd.ioas_alloc();
        fd.map_fixed(ioas, buf.addr(), 4 * PAGE, 0x10000).unwrap();
        afd = create_access(&fd, ioas, PIN).unwrap();
        access_pages(&fd, afd, 0x10000, 4 * PAGE, 0, 0).unwrap();
    }
    // The access holds the context; closing its fd releases everything.
    assert_eq!(pins(buf.addr()), 1);
    close(afd);
    assert_eq!(pins(buf.addr()), 0);
}

/// User memory with a small locked-memory limit.
struct Limited {
    inner: Arc<dyn UserMemory>,
    locked: LockedLimit,
}

impl MmHooks for Limited {
    fn inner(&self) -> &dyn UserMemory {
        self.inner.as_ref()
    }
    fn account(&self, mode: AccountMode, n: u64, inc: bool) -> Result<(), Errno> {
        assert_eq!(mode, AccountMode::User);
        self.locked.charge(mode, n, inc)
    }
    fn capable(&self, cap: Cap) -> bool {
        cap != Cap::IpcLock
    }
}

#[test]
fn pinning_beyond_the_memlock_limit_returns_enomem_and_unwinds() {
    let mm = Arc::new(HookedMm(Limited {
        inner: inproc::host_mm().clone(),
        locked: LockedLimit::new(2),
    }));
    let fd = Fd::open_with_mm(mm.clone());
    let buf = buffer(4 * PAGE as usize);
    let ioas = fd.ioas_alloc();
    fd.map(ioas, buf.addr(), 4 * PAGE, 0x10000, FIXED_RW)
        .unwrap();
    let afd = create_access(&fd, ioas, PIN).unwrap();
    access_pages(&fd, afd, 0x10000, 2 * PAGE, 0, 0).unwrap();
    assert_eq!(mm.locked.used(), 2);
    assert_eq!(
        access_pages(&fd, afd, 0x12000, 2 * PAGE, 0, 0),
        Err(Errno::NOMEM)
    );
    assert_eq!(
        pins(buf.addr() + 2 * PAGE),
        0,
        "the over-limit pin was undone"
    );
    assert_eq!(mm.locked.used(), 2);
    close(afd);
    assert_eq!(mm.locked.used(), 0, "accounting returns to zero");
}
