//! Bad-input errno table: hundreds of table-driven cases across every command
//! (`bad_input/table.rs`), each expecting the kernel's exact errno and checking
//! that the observable state did not change; and output structs checked for
//! stray bytes at the minimum, exact and a larger size.
//!
//! Every case runs on a fresh fixture: two contexts (A with an IOAS carrying a
//! mock domain, a mapped and a read-only area, a NEST_PARENT dirty-tracking HWPT
//! with a nested child, a second NO_DIRTY device, an empty IOAS with a lazy
//! area, a fault queue, a pinning and a non-pinning access; B with many IOASes,
//! whose high IDs are foreign to A) and a VFIO-compat context. The snapshot
//! compares IOVA ranges, alignments, options, pins on every fixture page,
//! charged pages, the domain's mappings, the next free ID, automatic IOVA
//! choices, the compat IOAS and the nested IOTLB before and after.

#![allow(missing_docs, unreachable_pub)]

mod support;

#[path = "bad_input/table.rs"]
mod table;

use std::sync::Arc;

use host::sys::Mmap;
use iommufd::mm::{AccountMode, Cap, UserMemory};
use support::{buffer, noaccess, readonly, Fd, HookedMm, LockedLimit, MmHooks, PAGE};
use uapi::{
    Errno, FaultAlloc, HwptSelftest, IommuOption, TestCheckIotlb, TestCreateAccess,
    TestMockDomainFlags, VfioIoas, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, IOMMU_HWPT_ALLOC_NEST_PARENT,
    IOMMU_HWPT_DATA_SELFTEST, IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE,
    IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, IOMMU_TEST_IOTLB_DEFAULT, IOMMU_VFIO_IOAS_GET,
    IOMMU_VFIO_IOAS_SET, MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES, MOCK_FLAGS_DEVICE_NO_DIRTY,
};
use zerocopy::FromZeros;

/// Start of the mock aperture, where the fixture maps.
pub const APERTURE: u64 = 1 << 24;
/// Pages the fixture's mm lets be charged.
pub const LIMIT: u64 = 8;

/// This process's memory without CAP_IPC_LOCK, charging its own counter against
/// [`LIMIT`] pages, with CAP_SYS_RESOURCE.
pub struct CountMm {
    host: inproc::HostMm,
    locked: LockedLimit,
}

impl MmHooks for CountMm {
    fn inner(&self) -> &dyn UserMemory {
        &self.host
    }
    fn account(&self, mode: AccountMode, n: u64, inc: bool) -> Result<(), Errno> {
        self.locked.charge(mode, n, inc)
    }
    fn capable(&self, cap: Cap) -> bool {
        match cap {
            Cap::IpcLock => false,
            Cap::SysResource => true,
            Cap::SysRawio => self.host.capable(cap),
        }
    }
}

/// The fixture every case runs on.
pub struct Fix {
    pub a: Fd,
    pub b: Fd,
    pub v: Fd,
    pub mm: Arc<HookedMm<CountMm>>,
    /// 8 read-write pages; pages 0-3 mapped at APERTURE in `ioas`, 4-5 mapped
    /// read-only at APERTURE + 16 pages.
    pub buf: Mmap,
    pub ro: Mmap,
    pub none: Mmap,
    pub ioas: u32,
    pub stdev: u32,
    pub idev: u32,
    pub hwpt: u32,
    pub parent: u32,
    pub nested: u32,
    pub ioas2: u32,
    pub stdev2: u32,
    pub idev2: u32,
    pub fault: u32,
    pub fault_fd: u32,
    pub access_fd: u32,
    pub access_id: u32,
    pub nopin_fd: u32,
    /// An ID that exists in B but not in A.
    pub foreign: u32,
    /// The compat IOAS of `v`, with a domain and one area at APERTURE.
    pub v_ioas: u32,
    pub v_buf: Mmap,
}

fn ok<T>(r: Result<T, Errno>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("fixture: {what}: {e:?}"))
}

fn create_access(fd: &Fd, ioas: u32, flags: u32) -> u32 {
    let p = TestCreateAccess {
        out_access_fd: 0,
        flags,
    };
    ok(fd.test(ioas, &p), "create access")
        .payload_as::<TestCreateAccess>()
        .out_access_fd
}

impl Default for Fix {
    fn default() -> Self {
        Self::new()
    }
}

impl Fix {
    pub fn new() -> Fix {
        let mm = Arc::new(HookedMm(CountMm {
            host: inproc::HostMm::new(),
            locked: LockedLimit::new(LIMIT),
        }));
        let a = Fd::open_with_mm(mm.clone());
        let b = Fd::open_with_mm(mm.clone());
        let v = Fd::open();
        let buf = buffer(8 * PAGE as usize);
        let ro = readonly(2 * PAGE as usize);
        let none = noaccess(2 * PAGE as usize);
        let ioas = a.ioas_alloc();
        ok(a.map_fixed(ioas, buf.addr(), 4 * PAGE, APERTURE), "map");
        let (stdev, hwpt, idev) = ok(support::mock_domain(&a, ioas, 0), "mock domain");
        ok(
            a.map(
                ioas,
                buf.addr() + 4 * PAGE,
                2 * PAGE,
                APERTURE + 16 * PAGE,
                IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE,
            ),
            "read-only map",
        );
        let parent = ok(
            support::hwpt_alloc(
                &a,
                idev,
                ioas,
                IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
                0,
                &[],
            ),
            "parent",
        );
        let data = HwptSelftest {
            iotlb: IOMMU_TEST_IOTLB_DEFAULT,
        };
        let nested = ok(
            support::hwpt_alloc(
                &a,
                idev,
                parent,
                0,
                IOMMU_HWPT_DATA_SELFTEST,
                zerocopy::IntoBytes::as_bytes(&data),
            ),
            "nested",
        );
        let ioas2 = a.ioas_alloc();
        // A lazy area outside the mock aperture with an odd length.
        ok(a.map_fixed(ioas2, buf.addr(), 0x801, 0x1000), "lazy map");
        let (stdev2, _, idev2) = ok(
            support::mock_domain(&a, ioas, MOCK_FLAGS_DEVICE_NO_DIRTY),
            "no-dirty device",
        );
        let mut fa = FaultAlloc::new_zeroed();
        ok(a.ioctl(&mut fa), "fault alloc");
        let access_fd = create_access(&a, ioas, MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES);
        let access_id = fa.out_fault_id + 1;
        let nopin_fd = create_access(&a, ioas, 0);
        for _ in 0..40 {
            b.ioas_alloc();
        }
        let v_buf = buffer(4 * PAGE as usize);
        let v_ioas = v.ioas_alloc();
        ok(
            v.map_fixed(v_ioas, v_buf.addr(), 2 * PAGE, APERTURE),
            "v map",
        );
        ok(support::mock_domain(&v, v_ioas, 0), "v domain");
        let mut set = VfioIoas::new_zeroed();
        set.op = IOMMU_VFIO_IOAS_SET;
        set.ioas_id = v_ioas;
        ok(v.ioctl(&mut set), "vfio ioas set");
        Fix {
            a,
            b,
            v,
            mm,
            buf,
            ro,
            none,
            ioas,
            stdev,
            idev,
            hwpt,
            parent,
            nested,
            ioas2,
            stdev2,
            idev2,
            fault: fa.out_fault_id,
            fault_fd: fa.out_fault_fd,
            access_fd,
            access_id,
            nopin_fd,
            foreign: 40,
            v_ioas,
            v_buf,
        }
    }
}

impl Drop for Fix {
    fn drop(&mut self) {
        for fd in [self.fault_fd, self.access_fd, self.nopin_fd] {
            let _ = inproc::FdTable::global().close(fd as i32);
        }
    }
}

/// IOVA_RANGES: (holes, alignment).
type Ranges = Result<(Vec<(u64, u64)>, u64), Errno>;

/// Everything observable the cases must not change.
#[derive(Debug, PartialEq, Eq)]
struct Snap {
    ranges: Vec<Ranges>,
    huge: Vec<Result<u64, Errno>>,
    pins: Vec<u32>,
    locked: u64,
    check_map: Vec<Result<(), Errno>>,
    next_id: (u32, u32),
    auto_iova: Vec<Result<u64, Errno>>,
    areas: Vec<Result<u64, Errno>>,
    compat: Result<u32, Errno>,
    iotlb: Result<(), Errno>,
}

fn huge(fd: &Fd, ioas: u32) -> Result<u64, Errno> {
    let mut c = IommuOption::new_zeroed();
    c.option_id = IOMMU_OPTION_HUGE_PAGES;
    c.op = IOMMU_OPTION_OP_GET;
    c.object_id = ioas;
    fd.ioctl(&mut c).map(|_| c.val64)
}

fn next_id(fd: &Fd) -> u32 {
    let id = fd.ioas_alloc();
    fd.destroy(id).unwrap();
    id
}

fn auto_probe(fd: &Fd, ioas: u32, va: u64) -> Result<u64, Errno> {
    let iova = fd.map_auto(ioas, va, PAGE)?;
    fd.unmap(ioas, iova, PAGE).unwrap();
    Ok(iova)
}

fn snapshot(f: &Fix) -> Snap {
    fn pages(m: &Mmap) -> Vec<u64> {
        (0..m.len() as u64 / PAGE)
            .map(|i| m.addr() + i * PAGE)
            .collect()
    }
    let mut vget = VfioIoas::new_zeroed();
    vget.op = IOMMU_VFIO_IOAS_GET;
    let compat = f.v.ioctl(&mut vget).map(|_| vget.ioas_id);
    Snap {
        ranges: [(&f.a, f.ioas), (&f.a, f.ioas2), (&f.v, f.v_ioas)]
            .iter()
            .map(|(fd, id)| fd.ranges(*id))
            .collect(),
        huge: vec![huge(&f.a, f.ioas), huge(&f.a, f.ioas2)],
        pins: pages(&f.buf)
            .into_iter()
            .chain(pages(&f.ro))
            .chain(pages(&f.v_buf))
            .map(support::pins)
            .collect(),
        locked: f.mm.locked.used(),
        check_map: vec![
            support::check_map(&f.a, f.hwpt, APERTURE, 4 * PAGE, f.buf.addr()),
            support::check_map(&f.a, f.parent, APERTURE, 4 * PAGE, f.buf.addr()),
            support::check_map(
                &f.a,
                f.hwpt,
                APERTURE + 16 * PAGE,
                2 * PAGE,
                f.buf.addr() + 4 * PAGE,
            ),
        ],
        next_id: (next_id(&f.a), next_id(&f.v)),
        auto_iova: vec![
            auto_probe(&f.a, f.ioas, f.buf.addr() + 6 * PAGE),
            auto_probe(&f.a, f.ioas2, f.buf.addr() + 6 * PAGE),
        ],
        areas: vec![
            // Each existing area is still there (a fixed map onto it fails).
            f.a.map_fixed(f.ioas, f.buf.addr(), PAGE, APERTURE),
            f.a.map_fixed(f.ioas, f.buf.addr(), PAGE, APERTURE + 3 * PAGE),
            f.a.map_fixed(f.ioas, f.buf.addr(), PAGE, APERTURE + 17 * PAGE),
            f.a.map_fixed(f.ioas2, f.buf.addr(), 1, 0x1800),
            f.v.map_fixed(f.v_ioas, f.v_buf.addr(), PAGE, APERTURE),
        ],
        compat,
        iotlb: f
            .a
            .test(
                f.nested,
                &TestCheckIotlb {
                    id: 0,
                    iotlb: IOMMU_TEST_IOTLB_DEFAULT,
                },
            )
            .map(|_| ()),
    }
}

#[test]
fn errno_table() {
    let cases = table::cases();
    let mut failures = Vec::new();
    for c in &cases {
        let fix = Fix::new();
        let before = snapshot(&fix);
        let got = (c.run)(&fix);
        if got != Err(c.expect) {
            failures.push(format!("{}: expected {:?}, got {got:?}", c.name, c.expect));
            continue;
        }
        let after = snapshot(&fix);
        if before != after {
            failures.push(format!(
                "{}: state changed:\n  {before:?}\n  {after:?}",
                c.name
            ));
        }
    }
    eprintln!(
        "errno table: {} cases, {} failures",
        cases.len(),
        failures.len()
    );
    if let Some(path) = std::env::var_os("ERRNO_TABLE_DUMP") {
        let lines: Vec<String> = cases
            .iter()
            .map(|c| format!("{}|{:?}", c.name, c.expect))
            .collect();
        std::fs::write(path, lines.join("\n") + "\n").expect("dump");
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert!(cases.len() >= 400, "only {} cases", cases.len());
}

#[test]
fn fixture_is_what_the_table_assumes() {
    let f = Fix::new();
    assert_eq!(
        (f.ioas, f.stdev, f.idev, f.hwpt, f.parent, f.nested, f.ioas2),
        (1, 2, 3, 4, 5, 6, 7)
    );
    assert_eq!((f.stdev2, f.idev2, f.fault, f.access_id), (8, 9, 10, 11));
    assert!(f.b.ranges(f.foreign).is_ok());
    assert_eq!(f.a.ranges(f.foreign), Err(Errno::NOENT));
    let s = snapshot(&f);
    assert_eq!(s.check_map, vec![Ok(()), Ok(()), Ok(())]);
    assert_eq!(s.pins[..6], [1, 1, 1, 1, 1, 1]);
    assert_eq!(s.locked, 6);
    assert_eq!(s.compat, Ok(f.v_ioas));
    let _ = TestMockDomainFlags::new_zeroed();
}

// ---- stray output bytes ------------------------------------------------------

const CANARY: u8 = 0xa5;

/// Issues command `nr` with `input` (its `sizeof` bytes) at user sizes `min`,
/// exact and `sizeof + 16` (zero tail), with canary bytes behind the user's
/// size. Only the documented output ranges `outs` may change; nothing at or
/// beyond the user's size may be written. Returns the outputs of the exact call.
fn stray_check(
    fd: &Fd,
    nr: u32,
    input: &[u8],
    min: usize,
    outs: &[(usize, usize)],
    mut each: impl FnMut(&[u8]),
) {
    let ksize = input.len();
    for size in [min, ksize, ksize + 16] {
        let mut buf = vec![CANARY; size + 64];
        let n = size.min(ksize);
        buf[..n].copy_from_slice(&input[..n]);
        buf[..4].copy_from_slice(&(size as u32).to_ne_bytes());
        buf[n..size].fill(0);
        let before = buf.clone();
        let r = fd.ioctl_ptr(nr, buf.as_mut_ptr() as u64);
        assert!(r.is_ok(), "cmd {nr:#x} size {size}: {r:?}");
        for i in 0..buf.len() {
            let out = i < n && outs.iter().any(|&(o, l)| (o..o + l).contains(&i));
            if !out {
                assert_eq!(
                    buf[i], before[i],
                    "cmd {nr:#x} at user size {size}: byte {i} changed"
                );
            }
        }
        each(&buf[..n]);
    }
}

fn bytes<T: zerocopy::IntoBytes + zerocopy::Immutable>(v: &T) -> Vec<u8> {
    zerocopy::IntoBytes::as_bytes(v).to_vec()
}

#[test]
fn output_structs_have_no_stray_bytes() {
    use uapi::ioctl::*;
    use uapi::*;
    let f = Fix::new();
    // IOAS_ALLOC: each call makes an IOAS; destroy them after.
    let mut ids = Vec::new();
    stray_check(
        &f.a,
        IOMMU_IOAS_ALLOC,
        &bytes(&IoasAlloc::new_zeroed()),
        12,
        &[(8, 4)],
        |b| {
            ids.push(u32::from_ne_bytes(b[8..12].try_into().unwrap()));
        },
    );
    for id in ids {
        f.a.destroy(id).unwrap();
    }
    // IOVA_RANGES, with an array whose unused entries must stay untouched.
    let mut arr = vec![CANARY; 4 * 16];
    let mut c = IoasIovaRanges::new_zeroed();
    c.ioas_id = f.ioas;
    c.num_iovas = 4;
    c.allowed_iovas = arr.as_mut_ptr() as u64;
    stray_check(
        &f.a,
        IOMMU_IOAS_IOVA_RANGES,
        &bytes(&c),
        32,
        &[(8, 4), (24, 8)],
        |b| {
            assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 1);
        },
    );
    assert_eq!(&arr[..8], &APERTURE.to_ne_bytes());
    assert!(
        arr[16..].iter().all(|&x| x == CANARY),
        "unused range entries written"
    );
    // MAP (automatic IOVA) and UNMAP of what it mapped.
    let mut m = IoasMap::new_zeroed();
    m.ioas_id = f.ioas2;
    m.flags = support::RW;
    m.user_va = f.buf.addr();
    m.length = PAGE;
    let mut iovas = Vec::new();
    stray_check(&f.a, IOMMU_IOAS_MAP, &bytes(&m), 40, &[(32, 8)], |b| {
        iovas.push(u64::from_ne_bytes(b[32..40].try_into().unwrap()));
    });
    // COPY each of them back to an automatic IOVA.
    let mut cp = IoasCopy::new_zeroed();
    cp.dst_ioas_id = f.ioas2;
    cp.src_ioas_id = f.ioas2;
    cp.flags = support::RW;
    cp.length = PAGE;
    cp.src_iova = iovas[0];
    stray_check(&f.a, IOMMU_IOAS_COPY, &bytes(&cp), 40, &[(24, 8)], |b| {
        iovas.push(u64::from_ne_bytes(b[24..32].try_into().unwrap()));
    });
    for iova in iovas {
        let mut u = IoasUnmap::new_zeroed();
        u.ioas_id = f.ioas2;
        u.iova = iova;
        u.length = PAGE;
        // One call per IOVA (at the exact size and with canaries behind it).
        let mut buf = bytes(&u);
        buf[..4].copy_from_slice(&24u32.to_ne_bytes());
        buf.extend([CANARY; 16]);
        let before = buf.clone();
        f.a.ioctl_ptr(IOMMU_IOAS_UNMAP, buf.as_mut_ptr() as u64)
            .unwrap();
        assert_eq!(buf[..16], before[..16], "UNMAP changed its inputs");
        assert_eq!(buf[24..], before[24..], "UNMAP wrote beyond its size");
        assert_eq!(u64::from_ne_bytes(buf[16..24].try_into().unwrap()), PAGE);
    }
    // OPTION get: only val64 comes back.
    let mut o = IommuOption::new_zeroed();
    o.option_id = IOMMU_OPTION_HUGE_PAGES;
    o.op = IOMMU_OPTION_OP_GET;
    o.object_id = f.ioas;
    stray_check(&f.a, IOMMU_OPTION, &bytes(&o), 24, &[(16, 8)], |b| {
        assert_eq!(u64::from_ne_bytes(b[16..24].try_into().unwrap()), 1);
    });
    // VFIO_IOAS get.
    let mut v = VfioIoas::new_zeroed();
    v.op = IOMMU_VFIO_IOAS_GET;
    stray_check(&f.v, IOMMU_VFIO_IOAS, &bytes(&v), 12, &[(4, 4)], |b| {
        assert_eq!(u32::from_ne_bytes(b[4..8].try_into().unwrap()), f.v_ioas);
    });
    // HWPT_ALLOC (min size 24: the data fields read as zero).
    let mut h = HwptAlloc::new_zeroed();
    h.dev_id = f.idev;
    h.pt_id = f.ioas;
    let mut hwpts = Vec::new();
    stray_check(&f.a, IOMMU_HWPT_ALLOC, &bytes(&h), 24, &[(16, 4)], |b| {
        hwpts.push(u32::from_ne_bytes(b[16..20].try_into().unwrap()));
    });
    for id in hwpts {
        f.a.destroy(id).unwrap();
    }
    // GET_HW_INFO: a 16-byte data buffer for the mock's 8 bytes: the rest is zeroed,
    // nothing beyond it written.
    let mut data = vec![CANARY; 32];
    let mut hi = HwInfo::new_zeroed();
    hi.dev_id = f.idev;
    hi.data_len = 16;
    hi.data_uptr = data.as_mut_ptr() as u64;
    stray_check(
        &f.a,
        IOMMU_GET_HW_INFO,
        &bytes(&hi),
        32,
        &[(12, 4), (24, 5), (32, 8)],
        |b| {
            assert_eq!(&b[29..32], &[0, 0, 0], "__reserved of GET_HW_INFO");
        },
    );
    assert_eq!(&data[8..16], &[0; 8], "data buffer tail not zeroed");
    assert!(
        data[16..].iter().all(|&x| x == CANARY),
        "data buffer overrun"
    );
    // FAULT_QUEUE_ALLOC.
    let mut fds = Vec::new();
    stray_check(
        &f.a,
        IOMMU_FAULT_QUEUE_ALLOC,
        &bytes(&FaultAlloc::new_zeroed()),
        16,
        &[(8, 8)],
        |b| {
            fds.push(u32::from_ne_bytes(b[12..16].try_into().unwrap()));
        },
    );
    for fd in fds {
        inproc::FdTable::global().close(fd as i32).unwrap();
    }
    // TEST_CMD MOCK_DOMAIN (min size 68): only the three IDs come back.
    let mut t = TestCmd::new(f.ioas2 + 100, &TestMockDomain::new_zeroed());
    t.id = f.ioas;
    let mut stdevs = Vec::new();
    stray_check(&f.a, IOMMU_TEST_CMD, &bytes(&t), 68, &[(16, 12)], |b| {
        stdevs.push(u32::from_ne_bytes(b[16..20].try_into().unwrap()));
    });
    for id in stdevs {
        f.a.destroy(id).unwrap();
    }
    // HWPT_INVALIDATE writes back entry_num only.
    let e = HwptInvalidateSelftest {
        flags: 0,
        iotlb_id: 1,
    };
    let mut inv = HwptInvalidate::new_zeroed();
    inv.hwpt_id = f.nested;
    inv.data_uptr = zerocopy::IntoBytes::as_bytes(&e).as_ptr() as u64;
    inv.data_type = IOMMU_HWPT_INVALIDATE_DATA_SELFTEST;
    inv.entry_len = 8;
    inv.entry_num = 1;
    stray_check(
        &f.a,
        IOMMU_HWPT_INVALIDATE,
        &bytes(&inv),
        32,
        &[(24, 4)],
        |b| {
            assert_eq!(u32::from_ne_bytes(b[24..28].try_into().unwrap()), 1);
        },
    );
}

#[test]
fn vfio_get_info_never_writes_beyond_argsz() {
    use uapi::ioctl::VFIO_IOMMU_GET_INFO;
    let f = Fix::new();
    for argsz in [16u32, 20, 24, 32, 39, 40, 56, 71, 72, 100] {
        let mut buf = vec![CANARY; 160];
        buf[..4].copy_from_slice(&argsz.to_ne_bytes());
        buf[4..16].fill(0);
        f.v.ioctl_ptr(VFIO_IOMMU_GET_INFO, buf.as_mut_ptr() as u64)
            .unwrap();
        let total = u32::from_ne_bytes(buf[..4].try_into().unwrap());
        assert_eq!(total, 72, "argsz reports the full size");
        assert!(
            buf[(argsz as usize).max(16)..].iter().all(|&x| x == CANARY),
            "GET_INFO wrote beyond argsz {argsz}"
        );
    }
}
