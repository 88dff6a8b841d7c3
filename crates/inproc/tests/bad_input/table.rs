//! The cases of the bad-input errno table. Expected errnos are the kernel's
//! (UAPI.md, MOCK.md; checked against the 6.12 source where the spec is terse).

use std::sync::Arc;

use uapi::ioctl::*;
use uapi::*;
use zerocopy::{FromZeros, IntoBytes};

use super::support::{set_size, Fd, PAGE};
use super::{Fix, APERTURE};

type Run = Arc<dyn Fn(&Fix) -> Result<i64, Errno>>;

/// One case: run it on a fresh fixture, expect `expect`, state unchanged.
pub struct Case {
    pub name: String,
    pub expect: Errno,
    pub run: Run,
}

#[derive(Default)]
struct Table(Vec<Case>);

impl Table {
    fn add(
        &mut self,
        name: impl Into<String>,
        expect: Errno,
        run: impl Fn(&Fix) -> Result<i64, Errno> + 'static,
    ) {
        self.0.push(Case {
            name: name.into(),
            expect,
            run: Arc::new(run),
        });
    }
}

/// Issues `C` with `size = sizeof(C)` after `f` filled it.
fn call<C: IoctlCmd>(fd: &Fd, f: impl FnOnce(&mut C)) -> Result<i64, Errno> {
    let mut c = C::new_zeroed();
    set_size(&mut c, C::SIZE as u32);
    f(&mut c);
    fd.ioctl_raw(&mut c)
}

fn test_op<P: TestPayload>(fd: &Fd, id: u32, p: P) -> Result<i64, Errno> {
    let mut c = TestCmd::new(id, &p);
    set_size(&mut c, TestCmd::SIZE as u32);
    fd.ioctl_raw(&mut c)
}

fn test_raw(fd: &Fd, op: u32, id: u32, payload: &[u8]) -> Result<i64, Errno> {
    let mut c = TestCmd::new_zeroed();
    set_size(&mut c, TestCmd::SIZE as u32);
    c.op = op;
    c.id = id;
    c.payload[..payload.len()].copy_from_slice(payload);
    fd.ioctl_raw(&mut c)
}

/// The commands of the iommufd table: (name, ioctl, sizeof, min_size).
const CMDS: [(&str, u32, u32, u32); 16] = [
    ("DESTROY", IOMMU_DESTROY, 8, 8),
    ("IOAS_ALLOC", IOMMU_IOAS_ALLOC, 12, 12),
    ("IOAS_ALLOW_IOVAS", IOMMU_IOAS_ALLOW_IOVAS, 24, 24),
    ("IOAS_COPY", IOMMU_IOAS_COPY, 40, 40),
    ("IOAS_IOVA_RANGES", IOMMU_IOAS_IOVA_RANGES, 32, 32),
    ("IOAS_MAP", IOMMU_IOAS_MAP, 40, 40),
    ("IOAS_UNMAP", IOMMU_IOAS_UNMAP, 24, 24),
    ("OPTION", IOMMU_OPTION, 24, 24),
    ("VFIO_IOAS", IOMMU_VFIO_IOAS, 12, 12),
    ("HWPT_ALLOC", IOMMU_HWPT_ALLOC, 48, 24),
    ("GET_HW_INFO", IOMMU_GET_HW_INFO, 40, 32),
    (
        "HWPT_SET_DIRTY_TRACKING",
        IOMMU_HWPT_SET_DIRTY_TRACKING,
        16,
        16,
    ),
    ("HWPT_GET_DIRTY_BITMAP", IOMMU_HWPT_GET_DIRTY_BITMAP, 48, 48),
    ("HWPT_INVALIDATE", IOMMU_HWPT_INVALIDATE, 32, 32),
    ("FAULT_QUEUE_ALLOC", IOMMU_FAULT_QUEUE_ALLOC, 16, 16),
    ("TEST_CMD", IOMMU_TEST_CMD, 72, 68),
];

/// A buffer of `n` bytes whose first u32 is `size`.
fn sized(size: u32, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n.max(8)];
    v[..4].copy_from_slice(&size.to_ne_bytes());
    v
}

/// Two pages: the first read-write, the second inaccessible; returns the map and
/// the address `back` bytes before the boundary.
fn edge(back: u64) -> (host::sys::Mmap, u64) {
    let mut m = super::support::buffer(2 * PAGE as usize);
    m.protect_range(PAGE as usize, PAGE as usize, libc::PROT_NONE)
        .expect("mprotect");
    let a = m.addr() + PAGE - back;
    (m, a)
}

fn generic(t: &mut Table) {
    for (name, nr, ksize, min) in CMDS {
        t.add(format!("{name}: size 0"), Errno::INVAL, move |f| {
            let mut b = sized(0, ksize as usize);
            f.a.ioctl_ptr(nr, b.as_mut_ptr() as u64)
        });
        t.add(format!("{name}: size min-1"), Errno::INVAL, move |f| {
            let mut b = sized(min - 1, ksize as usize);
            f.a.ioctl_ptr(nr, b.as_mut_ptr() as u64)
        });
        t.add(format!("{name}: size 4"), Errno::INVAL, move |f| {
            let mut b = sized(4, ksize as usize);
            f.a.ioctl_ptr(nr, b.as_mut_ptr() as u64)
        });
        t.add(
            format!("{name}: larger size, nonzero tail byte"),
            Errno::E2BIG,
            move |f| {
                let mut b = sized(ksize + 8, ksize as usize + 8);
                b[ksize as usize + 7] = 1;
                f.a.ioctl_ptr(nr, b.as_mut_ptr() as u64)
            },
        );
        t.add(
            format!("{name}: size +4096, last tail byte nonzero"),
            Errno::E2BIG,
            move |f| {
                let mut b = sized(ksize + 4096, ksize as usize + 4096);
                b[ksize as usize + 4095] = 0x80;
                f.a.ioctl_ptr(nr, b.as_mut_ptr() as u64)
            },
        );
        t.add(format!("{name}: NULL argument"), Errno::FAULT, move |f| {
            f.a.ioctl_ptr(nr, 0)
        });
        t.add(
            format!("{name}: argument in an inaccessible page"),
            Errno::FAULT,
            move |f| f.a.ioctl_ptr(nr, f.none.addr()),
        );
        t.add(
            format!("{name}: struct runs into an inaccessible page"),
            Errno::FAULT,
            move |f| {
                let (m, a) = edge(4);
                host::uaccess::copy_to_user(a, &ksize.to_ne_bytes()).unwrap();
                let r = f.a.ioctl_ptr(nr, a);
                drop(m);
                r
            },
        );
        t.add(
            format!("{name}: zero tail runs into an inaccessible page"),
            Errno::FAULT,
            move |f| {
                let (m, a) = edge(u64::from(ksize) + 8);
                host::uaccess::copy_to_user(a, &(ksize + 64).to_ne_bytes()).unwrap();
                let r = f.a.ioctl_ptr(nr, a);
                drop(m);
                r
            },
        );
        t.add(
            format!("{name}: _IOWR encoding of the same nr"),
            Errno::NOTTY,
            move |f| {
                let mut b = sized(ksize, ksize as usize);
                let cmd = nr | (3 << 30) | (ksize << 16);
                f.a.ioctl_ptr(cmd, b.as_mut_ptr() as u64)
            },
        );
        t.add(
            format!("{name}: other ioctl type byte"),
            Errno::NOTTY,
            move |f| {
                let mut b = sized(ksize, ksize as usize);
                f.a.ioctl_ptr((nr & 0xff) | (u32::from(b'X') << 8), b.as_mut_ptr() as u64)
            },
        );
    }
    for nr in [0x8f, 0x90, 0x9f] {
        t.add(
            format!("hole {nr:#x} in the command table"),
            Errno::NOTTY,
            move |f| {
                let mut b = sized(16, 64);
                f.a.ioctl_ptr(u32::from(b';') << 8 | nr, b.as_mut_ptr() as u64)
            },
        );
        t.add(
            format!("hole {nr:#x} with a NULL argument (size read first)"),
            Errno::FAULT,
            move |f| f.a.ioctl_ptr(u32::from(b';') << 8 | nr, 0),
        );
    }
    for nr in [0x7f_u32, 0xa1, 0xff, 0x00] {
        t.add(
            format!("nr {nr:#x} outside the table"),
            Errno::NOTTY,
            move |f| {
                let mut b = sized(16, 64);
                f.a.ioctl_ptr(u32::from(b';') << 8 | nr, b.as_mut_ptr() as u64)
            },
        );
    }
}

/// Bits that no flags field of 6.12 defines, for `known` defined bits.
fn unknown_bits(known: u32) -> Vec<u32> {
    [1 << 3, 1 << 8, 1 << 15, 1 << 23, 1 << 31]
        .into_iter()
        .chain((0..3).map(|b| 1 << b))
        .filter(|b| b & known == 0)
        .collect()
}

fn destroy(t: &mut Table) {
    let d = |id: fn(&Fix) -> u32| move |f: &Fix| call::<Destroy>(&f.a, |c| c.id = id(f));
    t.add("DESTROY: id 0", Errno::NOENT, d(|_| 0));
    t.add("DESTROY: foreign id", Errno::NOENT, d(|f| f.foreign));
    t.add("DESTROY: id 0x7fffffff", Errno::NOENT, d(|_| 0x7fff_ffff));
    t.add("DESTROY: id u32::MAX", Errno::NOENT, d(|_| u32::MAX));
    t.add(
        "DESTROY: IOAS used by HWPTs and accesses",
        Errno::BUSY,
        d(|f| f.ioas),
    );
    t.add(
        "DESTROY: HWPT with a device attached",
        Errno::BUSY,
        d(|f| f.hwpt),
    );
    t.add(
        "DESTROY: parent HWPT with a nested child",
        Errno::BUSY,
        d(|f| f.parent),
    );
    t.add(
        "DESTROY: device (held by its driver)",
        Errno::BUSY,
        d(|f| f.idev),
    );
    t.add(
        "DESTROY: access (held by its driver)",
        Errno::BUSY,
        d(|f| f.access_id),
    );
    t.add(
        "DESTROY: fault with an open fd",
        Errno::BUSY,
        d(|f| f.fault),
    );
}

fn ioas_alloc(t: &mut Table) {
    for bit in unknown_bits(0) {
        t.add(
            format!("IOAS_ALLOC: flags {bit:#x}"),
            Errno::OPNOTSUPP,
            move |f| call::<IoasAlloc>(&f.a, |c| c.flags = bit),
        );
    }
}

fn ids(f: &Fix) -> [(&'static str, u32); 7] {
    [
        ("id 0", 0),
        ("foreign id", f.foreign),
        ("HWPT id", f.hwpt),
        ("device id", f.idev),
        ("selftest id", f.stdev),
        ("access id", f.access_id),
        ("fault id", f.fault),
    ]
}

/// Adds one case per wrong ID for a parameter that must be an IOAS.
fn not_ioas(t: &mut Table, what: &str, expect: Errno, run: fn(&Fix, u32) -> Result<i64, Errno>) {
    for i in 0..7 {
        let name = [
            "id 0",
            "foreign id",
            "HWPT id",
            "device id",
            "selftest id",
            "access id",
            "fault id",
        ][i];
        t.add(format!("{what}: {name}"), expect, move |f| {
            run(f, ids(f)[i].1)
        });
    }
}

fn allow_iovas(t: &mut Table) {
    fn allow(f: &Fix, ioas: u32, ranges: &[(u64, u64)], resv: u32) -> Result<i64, Errno> {
        let list: Vec<IovaRange> = ranges
            .iter()
            .map(|&(start, last)| IovaRange { start, last })
            .collect();
        call::<IoasAllowIovas>(&f.a, |c| {
            c.ioas_id = ioas;
            c.num_iovas = list.len() as u32;
            c.allowed_iovas = list.as_ptr() as u64;
            c.__reserved = resv;
        })
    }
    t.add("ALLOW_IOVAS: __reserved", Errno::OPNOTSUPP, |f| {
        allow(f, f.ioas, &[], 1)
    });
    t.add("ALLOW_IOVAS: __reserved high bit", Errno::OPNOTSUPP, |f| {
        allow(f, f.ioas, &[], 1 << 31)
    });
    not_ioas(t, "ALLOW_IOVAS", Errno::NOENT, |f, id| {
        allow(f, id, &[(APERTURE, APERTURE + 0xfff)], 0)
    });
    t.add("ALLOW_IOVAS: NULL ranges", Errno::FAULT, |f| {
        call::<IoasAllowIovas>(&f.a, |c| {
            c.ioas_id = f.ioas;
            c.num_iovas = 1;
        })
    });
    t.add(
        "ALLOW_IOVAS: ranges in an inaccessible page",
        Errno::FAULT,
        |f| {
            call::<IoasAllowIovas>(&f.a, |c| {
                c.ioas_id = f.ioas;
                c.num_iovas = 1;
                c.allowed_iovas = f.none.addr();
            })
        },
    );
    t.add("ALLOW_IOVAS: start == last", Errno::INVAL, |f| {
        allow(f, f.ioas, &[(APERTURE, APERTURE)], 0)
    });
    t.add("ALLOW_IOVAS: start > last", Errno::INVAL, |f| {
        allow(f, f.ioas, &[(APERTURE + 1, APERTURE)], 0)
    });
    t.add(
        "ALLOW_IOVAS: second range start == last",
        Errno::INVAL,
        |f| {
            allow(
                f,
                f.ioas,
                &[(APERTURE, APERTURE + 0xfff), (u64::MAX, u64::MAX)],
                0,
            )
        },
    );
    t.add("ALLOW_IOVAS: overlapping ranges", Errno::INVAL, |f| {
        allow(
            f,
            f.ioas,
            &[
                (APERTURE, APERTURE + 0xfff),
                (APERTURE + 0xfff, APERTURE + 0x1fff),
            ],
            0,
        )
    });
    t.add("ALLOW_IOVAS: duplicate ranges", Errno::INVAL, |f| {
        allow(
            f,
            f.ioas,
            &[(APERTURE, APERTURE + 0xfff), (APERTURE, APERTURE + 0xfff)],
            0,
        )
    });
    t.add(
        "ALLOW_IOVAS: range in the domain's reserved space",
        Errno::ADDRINUSE,
        |f| allow(f, f.ioas, &[(0x1000, 0x1fff)], 0),
    );
    t.add(
        "ALLOW_IOVAS: range above the aperture",
        Errno::ADDRINUSE,
        |f| {
            allow(
                f,
                f.ioas,
                &[(APERTURE, APERTURE + 0xfff), (1 << 31, (1 << 31) + 0xfff)],
                0,
            )
        },
    );
    t.add("ALLOW_IOVAS: range up to u64::MAX", Errno::ADDRINUSE, |f| {
        allow(f, f.ioas, &[(u64::MAX - 0xfff, u64::MAX)], 0)
    });
}

fn copy(t: &mut Table) {
    #[allow(clippy::too_many_arguments)]
    fn cp(
        f: &Fix,
        dst: u32,
        src: u32,
        flags: u32,
        src_iova: u64,
        len: u64,
        dst_iova: u64,
    ) -> Result<i64, Errno> {
        call::<IoasCopy>(&f.a, |c| {
            c.dst_ioas_id = dst;
            c.src_ioas_id = src;
            c.flags = flags;
            c.src_iova = src_iova;
            c.length = len;
            c.dst_iova = dst_iova;
        })
    }
    const RW: u32 = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
    const FRW: u32 = RW | IOMMU_IOAS_MAP_FIXED_IOVA;
    for bit in unknown_bits(7).into_iter().filter(|&b| b != 1 << 16) {
        t.add(
            format!("COPY: flags {bit:#x}"),
            Errno::OPNOTSUPP,
            move |f| cp(f, f.ioas2, f.ioas, RW | bit, APERTURE, PAGE, 0),
        );
    }
    t.add("COPY: length u64::MAX", Errno::OVERFLOW, |f| {
        cp(f, f.ioas2, f.ioas, RW, APERTURE, u64::MAX, 0)
    });
    t.add("COPY: src_iova u64::MAX", Errno::OVERFLOW, |f| {
        cp(f, f.ioas2, f.ioas, RW, u64::MAX, PAGE, 0)
    });
    t.add("COPY: dst_iova u64::MAX", Errno::OVERFLOW, |f| {
        cp(f, f.ioas2, f.ioas, FRW, APERTURE, PAGE, u64::MAX)
    });
    t.add("COPY: neither read nor write", Errno::INVAL, |f| {
        cp(f, f.ioas2, f.ioas, 0, APERTURE, PAGE, 0)
    });
    t.add("COPY: only FIXED_IOVA", Errno::INVAL, |f| {
        cp(f, f.ioas2, f.ioas, 1, APERTURE, PAGE, 0x10000)
    });
    not_ioas(t, "COPY src", Errno::NOENT, |f, id| {
        cp(f, f.ioas2, id, RW, APERTURE, PAGE, 0)
    });
    t.add("COPY: length 0", Errno::INVAL, |f| {
        cp(f, f.ioas2, f.ioas, RW, APERTURE, 0, 0)
    });
    t.add("COPY: src_iova + length wraps", Errno::OVERFLOW, |f| {
        cp(f, f.ioas2, f.ioas, RW, u64::MAX - 0xfff, 0x2000, 0)
    });
    t.add("COPY: source not mapped", Errno::NOENT, |f| {
        cp(f, f.ioas2, f.ioas, RW, APERTURE + 8 * PAGE, PAGE, 0)
    });
    t.add("COPY: source runs past its area", Errno::NOENT, |f| {
        cp(f, f.ioas2, f.ioas, RW, APERTURE, 5 * PAGE, 0)
    });
    t.add("COPY: source starts in a hole", Errno::NOENT, |f| {
        cp(f, f.ioas2, f.ioas, RW, APERTURE - PAGE, 2 * PAGE, 0)
    });
    not_ioas(t, "COPY dst", Errno::NOENT, |f, id| {
        cp(f, id, f.ioas, RW, APERTURE, PAGE, 0)
    });
    t.add("COPY: fixed dst onto an area", Errno::EXIST, |f| {
        cp(f, f.ioas, f.ioas, FRW, APERTURE, PAGE, APERTURE + 2 * PAGE)
    });
    t.add("COPY: fixed dst in reserved space", Errno::INVAL, |f| {
        cp(f, f.ioas, f.ioas, FRW, APERTURE, PAGE, 0x10000)
    });
    t.add("COPY: fixed dst misaligned", Errno::INVAL, |f| {
        cp(
            f,
            f.ioas,
            f.ioas,
            FRW,
            APERTURE,
            PAGE,
            APERTURE + 8 * PAGE + 1,
        )
    });
    t.add("COPY: fixed dst + length wraps", Errno::OVERFLOW, |f| {
        cp(
            f,
            f.ioas2,
            f.ioas,
            FRW,
            APERTURE,
            2 * PAGE,
            u64::MAX - PAGE + 1,
        )
    });
    t.add(
        "COPY: length not a multiple of the dst alignment",
        Errno::INVAL,
        |f| cp(f, f.ioas, f.ioas, FRW, APERTURE, 0x100, APERTURE + 8 * PAGE),
    );
    t.add(
        "COPY: source offset not aligned for the dst",
        Errno::INVAL,
        |f| {
            cp(
                f,
                f.ioas,
                f.ioas,
                FRW,
                APERTURE + 0x100,
                0x800,
                APERTURE + 8 * PAGE,
            )
        },
    );
    t.add(
        "COPY: writable copy of a read-only mapping",
        Errno::PERM,
        |f| cp(f, f.ioas2, f.ioas, RW, APERTURE + 16 * PAGE, PAGE, 0),
    );
    t.add(
        "COPY: writable copy of a read-only mapping, fixed",
        Errno::PERM,
        |f| {
            cp(
                f,
                f.ioas,
                f.ioas,
                FRW,
                APERTURE + 16 * PAGE,
                PAGE,
                APERTURE + 24 * PAGE,
            )
        },
    );
}

fn iova_ranges(t: &mut Table) {
    fn r(f: &Fix, ioas: u32, n: u32, ptr: u64, resv: u32) -> Result<i64, Errno> {
        call::<IoasIovaRanges>(&f.a, |c| {
            c.ioas_id = ioas;
            c.num_iovas = n;
            c.allowed_iovas = ptr;
            c.__reserved = resv;
        })
    }
    t.add("IOVA_RANGES: __reserved", Errno::OPNOTSUPP, |f| {
        r(f, f.ioas, 0, 0, 1)
    });
    not_ioas(t, "IOVA_RANGES", Errno::NOENT, |f, id| r(f, id, 0, 0, 0));
    t.add(
        "IOVA_RANGES: capacity 0 for one range",
        Errno::MSGSIZE,
        |f| r(f, f.ioas, 0, 0, 0),
    );
    t.add("IOVA_RANGES: NULL array", Errno::FAULT, |f| {
        r(f, f.ioas, 1, 0, 0)
    });
    t.add("IOVA_RANGES: read-only array", Errno::FAULT, |f| {
        r(f, f.ioas, 1, f.ro.addr(), 0)
    });
    t.add("IOVA_RANGES: inaccessible array", Errno::FAULT, |f| {
        r(f, f.ioas, 4, f.none.addr(), 0)
    });
}

fn map(t: &mut Table) {
    #[allow(clippy::too_many_arguments)]
    fn m(
        f: &Fix,
        ioas: u32,
        flags: u32,
        va: u64,
        len: u64,
        iova: u64,
        resv: u32,
    ) -> Result<i64, Errno> {
        call::<IoasMap>(&f.a, |c| {
            c.ioas_id = ioas;
            c.flags = flags;
            c.user_va = va;
            c.length = len;
            c.iova = iova;
            c.__reserved = resv;
        })
    }
    const RW: u32 = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
    const FRW: u32 = RW | IOMMU_IOAS_MAP_FIXED_IOVA;
    let free = APERTURE + 8 * PAGE;
    for bit in unknown_bits(7) {
        t.add(format!("MAP: flags {bit:#x}"), Errno::OPNOTSUPP, move |f| {
            m(f, f.ioas, FRW | bit, f.buf.addr(), PAGE, free, 0)
        });
    }
    t.add("MAP: __reserved", Errno::OPNOTSUPP, move |f| {
        m(f, f.ioas, FRW, f.buf.addr(), PAGE, free, 1)
    });
    t.add("MAP: iova u64::MAX", Errno::OVERFLOW, |f| {
        m(f, f.ioas, FRW, f.buf.addr(), PAGE, u64::MAX, 0)
    });
    t.add("MAP: iova u64::MAX without FIXED", Errno::OVERFLOW, |f| {
        m(f, f.ioas, RW, f.buf.addr(), PAGE, u64::MAX, 0)
    });
    t.add("MAP: length u64::MAX", Errno::OVERFLOW, move |f| {
        m(f, f.ioas, FRW, f.buf.addr(), u64::MAX, free, 0)
    });
    t.add("MAP: neither read nor write", Errno::INVAL, move |f| {
        m(f, f.ioas, 1, f.buf.addr(), PAGE, free, 0)
    });
    t.add("MAP: flags 0", Errno::INVAL, move |f| {
        m(f, f.ioas, 0, f.buf.addr(), PAGE, free, 0)
    });
    not_ioas(t, "MAP", Errno::NOENT, |f, id| {
        m(f, id, RW, f.buf.addr(), PAGE, 0, 0)
    });
    t.add("MAP: length 0", Errno::INVAL, move |f| {
        m(f, f.ioas, FRW, f.buf.addr(), 0, free, 0)
    });
    t.add(
        "MAP: length > SIZE_MAX - PAGE_SIZE",
        Errno::INVAL,
        move |f| m(f, f.ioas, FRW, 0, u64::MAX - 1, free, 0),
    );
    t.add("MAP: user_va + length wraps", Errno::OVERFLOW, move |f| {
        m(f, f.ioas, FRW, u64::MAX - 0xfff, 0x2000, free, 0)
    });
    t.add("MAP: fixed onto an area", Errno::EXIST, |f| {
        m(f, f.ioas, FRW, f.buf.addr(), PAGE, APERTURE + 3 * PAGE, 0)
    });
    t.add(
        "MAP: fixed overlapping an area's start",
        Errno::EXIST,
        |f| {
            m(
                f,
                f.ioas,
                FRW,
                f.buf.addr(),
                2 * PAGE,
                APERTURE + 15 * PAGE,
                0,
            )
        },
    );
    t.add(
        "MAP: fixed in reserved space below the aperture",
        Errno::INVAL,
        |f| m(f, f.ioas, FRW, f.buf.addr(), PAGE, 0x10000, 0),
    );
    t.add("MAP: fixed across the aperture end", Errno::INVAL, |f| {
        m(f, f.ioas, FRW, f.buf.addr(), 2 * PAGE, (1 << 31) - PAGE, 0)
    });
    t.add(
        "MAP: fixed iova misaligned for the domain",
        Errno::INVAL,
        move |f| m(f, f.ioas, FRW, f.buf.addr(), PAGE, free + 0x400, 0),
    );
    t.add("MAP: fixed iova + length wraps", Errno::OVERFLOW, |f| {
        m(f, f.ioas2, FRW, 0x1000, 0x2000, u64::MAX - 0xfff, 0)
    });
    t.add(
        "MAP: length misaligned for the domain",
        Errno::INVAL,
        move |f| m(f, f.ioas, FRW, f.buf.addr(), 0x801, free, 0),
    );
    t.add(
        "MAP: user_va offset misaligned for the domain",
        Errno::INVAL,
        move |f| m(f, f.ioas, FRW, f.buf.addr() + 1, 0x800, free, 0),
    );
    t.add(
        "MAP: automatic IOVA, length >= 2^63",
        Errno::OVERFLOW,
        |f| m(f, f.ioas2, RW, 0x1000, 1 << 63, 0, 0),
    );
    t.add(
        "MAP: automatic IOVA alignment below the domain's",
        Errno::INVAL,
        |f| m(f, f.ioas, RW, f.buf.addr() + 0x400, 0x800, 0, 0),
    );
    t.add(
        "MAP: automatic IOVA, no room in the aperture",
        Errno::NOSPC,
        |f| m(f, f.ioas, RW, 0, 1 << 32, 0, 0),
    );
    t.add(
        "MAP: writable map of read-only memory into a domain",
        Errno::FAULT,
        move |f| m(f, f.ioas, FRW, f.ro.addr(), PAGE, free, 0),
    );
    t.add(
        "MAP: read map of inaccessible memory into a domain",
        Errno::FAULT,
        move |f| {
            m(
                f,
                f.ioas,
                IOMMU_IOAS_MAP_READABLE | 1,
                f.none.addr(),
                PAGE,
                free,
                0,
            )
        },
    );
    t.add(
        "MAP: unmapped memory into a domain",
        Errno::FAULT,
        move |f| m(f, f.ioas, FRW, 0x1000, PAGE, free, 0),
    );
    t.add(
        "MAP: partly inaccessible memory into a domain",
        Errno::FAULT,
        move |f| {
            let (mm, a) = edge(PAGE);
            let r = m(f, f.ioas, FRW, a, 2 * PAGE, free, 0);
            drop(mm);
            r
        },
    );
    t.add("MAP: over RLIMIT_MEMLOCK", Errno::NOMEM, move |f| {
        m(f, f.ioas, FRW, f.buf.addr() + 5 * PAGE, 3 * PAGE, free, 0)
    });
}

fn edge_pages(back: u64) -> (host::sys::Mmap, u64) {
    edge(back)
}

fn unmap(t: &mut Table) {
    fn u(f: &Fix, ioas: u32, iova: u64, len: u64) -> Result<i64, Errno> {
        call::<IoasUnmap>(&f.a, |c| {
            c.ioas_id = ioas;
            c.iova = iova;
            c.length = len;
        })
    }
    not_ioas(t, "UNMAP", Errno::NOENT, |f, id| u(f, id, APERTURE, PAGE));
    t.add("UNMAP: unmap-all on id 0", Errno::NOENT, |f| {
        u(f, 0, 0, u64::MAX)
    });
    t.add("UNMAP: iova u64::MAX", Errno::OVERFLOW, |f| {
        u(f, f.ioas, u64::MAX, PAGE)
    });
    t.add("UNMAP: length u64::MAX from iova 1", Errno::OVERFLOW, |f| {
        u(f, f.ioas, 1, u64::MAX)
    });
    t.add("UNMAP: length 0", Errno::INVAL, |f| {
        u(f, f.ioas, APERTURE, 0)
    });
    t.add("UNMAP: iova + length wraps", Errno::OVERFLOW, |f| {
        u(f, f.ioas, u64::MAX - 0xfff, 0x2000)
    });
    t.add("UNMAP: nothing mapped there", Errno::NOENT, |f| {
        u(f, f.ioas, APERTURE + 8 * PAGE, PAGE)
    });
    t.add("UNMAP: part of an area", Errno::NOENT, |f| {
        u(f, f.ioas, APERTURE, PAGE)
    });
    t.add("UNMAP: the tail of an area", Errno::NOENT, |f| {
        u(f, f.ioas, APERTURE + PAGE, 3 * PAGE)
    });
    t.add("UNMAP: range starting inside an area", Errno::NOENT, |f| {
        u(f, f.ioas, APERTURE + PAGE, 64 * PAGE)
    });
    t.add("UNMAP: empty IOAS range", Errno::NOENT, |f| {
        u(f, f.ioas2, APERTURE, PAGE)
    });
}

fn option(t: &mut Table) {
    fn o(fd: &Fd, id: u32, op: u16, obj: u32, val: u64, resv: u16) -> Result<i64, Errno> {
        call::<IommuOption>(fd, |c| {
            c.option_id = id;
            c.op = op;
            c.object_id = obj;
            c.val64 = val;
            c.__reserved = resv;
        })
    }
    t.add("OPTION: __reserved", Errno::OPNOTSUPP, |f| {
        o(&f.a, 1, 1, f.ioas, 0, 1)
    });
    for id in [2u32, 3, 0x100, u32::MAX] {
        t.add(
            format!("OPTION: unknown option {id:#x}"),
            Errno::OPNOTSUPP,
            move |f| o(&f.a, id, 1, 0, 0, 0),
        );
    }
    t.add("OPTION RLIMIT_MODE: object_id", Errno::OPNOTSUPP, |f| {
        o(&f.a, 0, 1, 1, 0, 0)
    });
    t.add("OPTION RLIMIT_MODE: op 2", Errno::OPNOTSUPP, |f| {
        o(&f.a, 0, 2, 0, 0, 0)
    });
    t.add("OPTION RLIMIT_MODE: set with objects", Errno::BUSY, |f| {
        o(&f.a, 0, 0, 0, 1, 0)
    });
    t.add("OPTION RLIMIT_MODE: set 2 with objects", Errno::BUSY, |f| {
        o(&f.a, 0, 0, 0, 2, 0)
    });
    t.add(
        "OPTION RLIMIT_MODE: set 2 on an empty context",
        Errno::INVAL,
        |f| {
            let fd = Fd::open_with_mm(f.mm.clone());
            o(&fd, 0, 0, 0, 2, 0)
        },
    );
    not_ioas(t, "OPTION HUGE_PAGES", Errno::NOENT, |f, id| {
        o(&f.a, 1, 1, id, 0, 0)
    });
    t.add("OPTION HUGE_PAGES: op 2", Errno::OPNOTSUPP, |f| {
        o(&f.a, 1, 2, f.ioas, 0, 0)
    });
    t.add("OPTION HUGE_PAGES: set 2", Errno::INVAL, |f| {
        o(&f.a, 1, 0, f.ioas, 2, 0)
    });
    t.add("OPTION HUGE_PAGES: set u64::MAX", Errno::INVAL, |f| {
        o(&f.a, 1, 0, f.ioas2, u64::MAX, 0)
    });
    t.add(
        "OPTION HUGE_PAGES: disable with domains and areas",
        Errno::INVAL,
        |f| o(&f.a, 1, 0, f.ioas, 0, 0),
    );
    t.add(
        "OPTION HUGE_PAGES: disable under a misaligned area",
        Errno::ADDRINUSE,
        |f| o(&f.a, 1, 0, f.ioas2, 0, 0),
    );
}

fn vfio_ioas(t: &mut Table) {
    fn v(fd: &Fd, op: u16, id: u32, resv: u16) -> Result<i64, Errno> {
        call::<VfioIoas>(fd, |c| {
            c.op = op;
            c.ioas_id = id;
            c.__reserved = resv;
        })
    }
    t.add("VFIO_IOAS: __reserved", Errno::OPNOTSUPP, |f| {
        v(&f.v, 0, 0, 1)
    });
    t.add("VFIO_IOAS: op 3", Errno::OPNOTSUPP, |f| v(&f.v, 3, 0, 0));
    t.add("VFIO_IOAS: op 0xffff", Errno::OPNOTSUPP, |f| {
        v(&f.v, 0xffff, 0, 0)
    });
    t.add("VFIO_IOAS: GET without a compat IOAS", Errno::NODEV, |f| {
        v(&f.a, 0, 0, 0)
    });
    for i in 0..7 {
        let name = [
            "id 0",
            "foreign id",
            "HWPT id",
            "device id",
            "selftest id",
            "access id",
            "fault id",
        ][i];
        t.add(format!("VFIO_IOAS SET: {name}"), Errno::NOENT, move |f| {
            v(&f.a, 1, ids(f)[i].1, 0)
        });
    }
}

fn hwpt_alloc(t: &mut Table) {
    #[allow(clippy::too_many_arguments)]
    fn h(
        f: &Fix,
        flags: u32,
        dev: u32,
        pt: u32,
        ty: u32,
        data: &[u8],
        fault: u32,
        resv: u32,
    ) -> Result<i64, Errno> {
        call::<HwptAlloc>(&f.a, |c| {
            c.flags = flags;
            c.dev_id = dev;
            c.pt_id = pt;
            c.data_type = ty;
            c.data_len = data.len() as u32;
            c.data_uptr = if data.is_empty() {
                0
            } else {
                data.as_ptr() as u64
            };
            c.fault_id = fault;
            c.__reserved = resv;
        })
    }
    let sel = IOMMU_HWPT_DATA_SELFTEST;
    let d4: &'static [u8] = &[0xef, 0xbe, 0xad, 0x0b];
    t.add("HWPT_ALLOC: __reserved", Errno::OPNOTSUPP, |f| {
        h(f, 0, f.idev, f.ioas, 0, &[], 0, 1)
    });
    t.add(
        "HWPT_ALLOC: data_len without data_type",
        Errno::INVAL,
        move |f| h(f, 0, f.idev, f.ioas, 0, d4, 0, 0),
    );
    t.add(
        "HWPT_ALLOC: data_type without data_len",
        Errno::INVAL,
        move |f| h(f, 0, f.idev, f.parent, sel, &[], 0, 0),
    );
    for (name, dev) in [
        ("dev 0", 0u32),
        ("foreign dev", 40),
        ("dev = IOAS", 1),
        ("dev = selftest object", 2),
        ("dev = HWPT", 4),
        ("dev = access", 11),
    ] {
        t.add(format!("HWPT_ALLOC: {name}"), Errno::NOENT, move |f| {
            h(f, 0, dev, f.ioas, 0, &[], 0, 0)
        });
    }
    for (name, pt) in [
        ("pt 0", 0u32),
        ("foreign pt", 40),
        ("pt = device", 3),
        ("pt = selftest", 2),
        ("pt = access", 11),
        ("pt = fault", 10),
        ("pt = nested HWPT", 6),
    ] {
        t.add(format!("HWPT_ALLOC: {name}"), Errno::INVAL, move |f| {
            h(f, 0, f.idev, pt, 0, &[], 0, 0)
        });
    }
    for bit in unknown_bits(3) {
        t.add(
            format!("HWPT_ALLOC paging: flags {bit:#x}"),
            Errno::OPNOTSUPP,
            move |f| h(f, bit, f.idev, f.ioas, 0, &[], 0, 0),
        );
    }
    t.add(
        "HWPT_ALLOC paging: driver data",
        Errno::OPNOTSUPP,
        move |f| h(f, 0, f.idev, f.ioas, sel, d4, 0, 0),
    );
    t.add(
        "HWPT_ALLOC paging: dirty tracking on a NO_DIRTY device",
        Errno::OPNOTSUPP,
        |f| {
            h(
                f,
                IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
                f.idev2,
                f.ioas,
                0,
                &[],
                0,
                0,
            )
        },
    );
    t.add("HWPT_ALLOC nested: no data", Errno::OPNOTSUPP, |f| {
        h(f, 0, f.idev, f.parent, 0, &[], 0, 0)
    });
    for bit in [1u32, 2, 8, 1 << 31] {
        t.add(
            format!("HWPT_ALLOC nested: flags {bit:#x}"),
            Errno::OPNOTSUPP,
            move |f| h(f, bit, f.idev, f.parent, sel, d4, 0, 0),
        );
    }
    t.add(
        "HWPT_ALLOC nested: parent without NEST_PARENT",
        Errno::INVAL,
        move |f| h(f, 0, f.idev, f.hwpt, sel, d4, 0, 0),
    );
    t.add("HWPT_ALLOC nested: VT-d data type", Errno::OPNOTSUPP, |f| {
        h(
            f,
            0,
            f.idev,
            f.parent,
            IOMMU_HWPT_DATA_VTD_S1,
            &[0; 24],
            0,
            0,
        )
    });
    t.add("HWPT_ALLOC nested: data_len 3", Errno::INVAL, move |f| {
        h(f, 0, f.idev, f.parent, sel, &d4[..3], 0, 0)
    });
    t.add("HWPT_ALLOC nested: data_len 8", Errno::INVAL, move |f| {
        h(f, 0, f.idev, f.parent, sel, &[0; 8], 0, 0)
    });
    t.add(
        "HWPT_ALLOC nested: data in an inaccessible page",
        Errno::FAULT,
        |f| {
            call::<HwptAlloc>(&f.a, |c| {
                c.dev_id = f.idev;
                c.pt_id = f.parent;
                c.data_type = IOMMU_HWPT_DATA_SELFTEST;
                c.data_len = 4;
                c.data_uptr = f.none.addr();
            })
        },
    );
    for (name, fault) in [
        ("fault_id 0", 0u32),
        ("foreign fault_id", 40),
        ("fault_id = IOAS", 1),
        ("fault_id = HWPT", 4),
    ] {
        t.add(
            format!("HWPT_ALLOC nested: {name}"),
            Errno::NOENT,
            move |f| {
                h(
                    f,
                    IOMMU_HWPT_FAULT_ID_VALID,
                    f.idev,
                    f.parent,
                    sel,
                    d4,
                    fault,
                    0,
                )
            },
        );
    }
}

fn hw_info(t: &mut Table) {
    fn i(f: &Fix, flags: u32, dev: u32, len: u32, ptr: u64, resv: [u8; 3]) -> Result<i64, Errno> {
        call::<HwInfo>(&f.a, |c| {
            c.flags = flags;
            c.dev_id = dev;
            c.data_len = len;
            c.data_uptr = ptr;
            c.__reserved = resv;
        })
    }
    for bit in unknown_bits(1) {
        t.add(
            format!("GET_HW_INFO: flags {bit:#x}"),
            Errno::OPNOTSUPP,
            move |f| i(f, bit, f.idev, 0, 0, [0; 3]),
        );
    }
    for k in 0..3 {
        t.add(
            format!("GET_HW_INFO: __reserved[{k}]"),
            Errno::OPNOTSUPP,
            move |f| {
                let mut r = [0u8; 3];
                r[k] = 1;
                i(f, 0, f.idev, 0, 0, r)
            },
        );
    }
    for (name, dev) in [
        ("dev 0", 0u32),
        ("foreign dev", 40),
        ("dev = IOAS", 1),
        ("dev = selftest", 2),
        ("dev = HWPT", 4),
    ] {
        t.add(format!("GET_HW_INFO: {name}"), Errno::NOENT, move |f| {
            i(f, 0, dev, 0, 0, [0; 3])
        });
    }
    t.add("GET_HW_INFO: NULL data buffer", Errno::FAULT, |f| {
        i(f, 0, f.idev, 8, 0, [0; 3])
    });
    t.add("GET_HW_INFO: read-only data buffer", Errno::FAULT, |f| {
        i(f, 0, f.idev, 8, f.ro.addr(), [0; 3])
    });
    t.add(
        "GET_HW_INFO: data buffer beyond the driver's runs into no access",
        Errno::FAULT,
        |f| {
            let (m, a) = edge_pages(8);
            let r = i(f, 0, f.idev, 16, a, [0; 3]);
            drop(m);
            r
        },
    );
}

fn dirty(t: &mut Table) {
    fn s(f: &Fix, flags: u32, hwpt: u32) -> Result<i64, Errno> {
        call::<HwptSetDirtyTracking>(&f.a, |c| {
            c.flags = flags;
            c.hwpt_id = hwpt;
        })
    }
    for bit in unknown_bits(1) {
        t.add(
            format!("SET_DIRTY_TRACKING: flags {bit:#x}"),
            Errno::OPNOTSUPP,
            move |f| s(f, bit, f.parent),
        );
    }
    for (name, id) in [
        ("hwpt 0", 0u32),
        ("foreign hwpt", 40),
        ("hwpt = IOAS", 1),
        ("hwpt = nested", 6),
        ("hwpt = device", 3),
    ] {
        t.add(
            format!("SET_DIRTY_TRACKING: {name}"),
            Errno::NOENT,
            move |f| s(f, 1, id),
        );
    }
    t.add(
        "SET_DIRTY_TRACKING: HWPT without dirty tracking",
        Errno::OPNOTSUPP,
        |f| s(f, 1, f.hwpt),
    );
    t.add(
        "SET_DIRTY_TRACKING: disable on a HWPT without dirty tracking",
        Errno::OPNOTSUPP,
        |f| s(f, 0, f.hwpt),
    );

    #[allow(clippy::too_many_arguments)]
    fn g(
        f: &Fix,
        hwpt: u32,
        flags: u32,
        iova: u64,
        len: u64,
        page: u64,
        resv: u32,
    ) -> Result<i64, Errno> {
        let mut bitmap = [0u64; 8];
        call::<HwptGetDirtyBitmap>(&f.a, |c| {
            c.hwpt_id = hwpt;
            c.flags = flags;
            c.iova = iova;
            c.length = len;
            c.page_size = page;
            c.data = bitmap.as_mut_ptr() as u64;
            c.__reserved = resv;
        })
    }
    for bit in unknown_bits(1) {
        t.add(
            format!("GET_DIRTY_BITMAP: flags {bit:#x}"),
            Errno::OPNOTSUPP,
            move |f| g(f, f.parent, bit, APERTURE, PAGE, PAGE, 0),
        );
    }
    t.add("GET_DIRTY_BITMAP: __reserved", Errno::OPNOTSUPP, |f| {
        g(f, f.parent, 0, APERTURE, PAGE, PAGE, 1)
    });
    for (name, id) in [
        ("hwpt 0", 0u32),
        ("foreign hwpt", 40),
        ("hwpt = IOAS", 1),
        ("hwpt = nested", 6),
    ] {
        t.add(
            format!("GET_DIRTY_BITMAP: {name}"),
            Errno::NOENT,
            move |f| g(f, id, 0, APERTURE, PAGE, PAGE, 0),
        );
    }
    t.add("GET_DIRTY_BITMAP: length 0", Errno::INVAL, |f| {
        g(f, f.parent, 0, APERTURE, 0, PAGE, 0)
    });
    t.add(
        "GET_DIRTY_BITMAP: iova + length wraps",
        Errno::OVERFLOW,
        |f| g(f, f.parent, 0, u64::MAX - 0xfff, 0x2000, PAGE, 0),
    );
    t.add(
        "GET_DIRTY_BITMAP: iova misaligned to the IOAS",
        Errno::INVAL,
        |f| g(f, f.parent, 0, APERTURE + 0x400, PAGE, 0x400, 0),
    );
    t.add(
        "GET_DIRTY_BITMAP: length misaligned to the IOAS",
        Errno::INVAL,
        |f| g(f, f.parent, 0, APERTURE, PAGE + 0x400, 0x400, 0),
    );
    t.add("GET_DIRTY_BITMAP: page_size 0", Errno::INVAL, |f| {
        g(f, f.parent, 0, APERTURE, PAGE, 0, 0)
    });
    t.add(
        "GET_DIRTY_BITMAP: iova not a multiple of page_size",
        Errno::INVAL,
        |f| g(f, f.parent, 0, APERTURE + PAGE, PAGE, 2 * PAGE, 0),
    );
    t.add(
        "GET_DIRTY_BITMAP: end not a multiple of page_size",
        Errno::INVAL,
        |f| g(f, f.parent, 0, APERTURE, 3 * PAGE, 2 * PAGE, 0),
    );
    t.add(
        "GET_DIRTY_BITMAP: HWPT without dirty tracking",
        Errno::OPNOTSUPP,
        |f| g(f, f.hwpt, 0, APERTURE, PAGE, PAGE, 0),
    );
}

fn invalidate(t: &mut Table) {
    #[allow(clippy::too_many_arguments)]
    fn i(
        f: &Fix,
        hwpt: u32,
        ptr: u64,
        ty: u32,
        len: u32,
        num: u32,
        resv: u32,
    ) -> Result<i64, Errno> {
        call::<HwptInvalidate>(&f.a, |c| {
            c.hwpt_id = hwpt;
            c.data_uptr = ptr;
            c.data_type = ty;
            c.entry_len = len;
            c.entry_num = num;
            c.__reserved = resv;
        })
    }
    fn entry(flags: u32, iotlb_id: u32) -> Vec<u8> {
        HwptInvalidateSelftest { flags, iotlb_id }
            .as_bytes()
            .to_vec()
    }
    let ty = IOMMU_HWPT_INVALIDATE_DATA_SELFTEST;
    t.add("INVALIDATE: __reserved", Errno::OPNOTSUPP, move |f| {
        i(f, f.nested, 0, ty, 8, 0, 1)
    });
    t.add(
        "INVALIDATE: entries with NULL data",
        Errno::INVAL,
        move |f| i(f, f.nested, 0, ty, 8, 1, 0),
    );
    t.add("INVALIDATE: entries of length 0", Errno::INVAL, move |f| {
        let e = entry(0, 0);
        i(f, f.nested, e.as_ptr() as u64, ty, 0, 1, 0)
    });
    t.add(
        "INVALIDATE: entry_len > PAGE_SIZE",
        Errno::INVAL,
        move |f| {
            let e = entry(0, 0);
            i(f, f.nested, e.as_ptr() as u64, ty, PAGE as u32 + 1, 1, 0)
        },
    );
    t.add("INVALIDATE: entry_num > 2^19", Errno::INVAL, move |f| {
        let e = entry(0, 0);
        i(f, f.nested, e.as_ptr() as u64, ty, 8, (1 << 19) + 1, 0)
    });
    for (name, id) in [
        ("hwpt 0", 0u32),
        ("foreign hwpt", 40),
        ("paging hwpt", 5),
        ("IOAS", 1),
        ("device", 3),
    ] {
        t.add(format!("INVALIDATE: {name}"), Errno::NOENT, move |f| {
            i(f, id, 0, ty, 8, 0, 0)
        });
    }
    t.add(
        "INVALIDATE: VT-d data type on the mock",
        Errno::INVAL,
        |f| i(f, f.nested, 0, 0, 8, 0, 0),
    );
    t.add("INVALIDATE: the mock's invalid type", Errno::INVAL, |f| {
        i(
            f,
            f.nested,
            0,
            IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID,
            8,
            0,
            0,
        )
    });
    for len in [4u32, 7, 12, 16] {
        t.add(
            format!("INVALIDATE: entry_len {len}"),
            Errno::INVAL,
            move |f| {
                let e = [0u8; 16];
                i(f, f.nested, e.as_ptr() as u64, ty, len, 1, 0)
            },
        );
    }
    t.add(
        "INVALIDATE: entries in an inaccessible page",
        Errno::FAULT,
        move |f| i(f, f.nested, f.none.addr(), ty, 8, 1, 0),
    );
    t.add(
        "INVALIDATE: unknown entry flag",
        Errno::OPNOTSUPP,
        move |f| {
            let e = entry(2, 0);
            i(f, f.nested, e.as_ptr() as u64, ty, 8, 1, 0)
        },
    );
    t.add("INVALIDATE: iotlb_id 4", Errno::INVAL, move |f| {
        let e = entry(0, 4);
        i(f, f.nested, e.as_ptr() as u64, ty, 8, 1, 0)
    });
    t.add(
        "INVALIDATE: iotlb_id 4 with FLAG_ALL",
        Errno::INVAL,
        move |f| {
            let e = entry(1, 4);
            i(f, f.nested, e.as_ptr() as u64, ty, 8, 1, 0)
        },
    );
}

fn fault_alloc(t: &mut Table) {
    for bit in unknown_bits(0) {
        t.add(
            format!("FAULT_QUEUE_ALLOC: flags {bit:#x}"),
            Errno::OPNOTSUPP,
            move |f| call::<FaultAlloc>(&f.a, |c| c.flags = bit),
        );
    }
}

#[allow(clippy::too_many_lines)]
fn test_cmd(t: &mut Table) {
    for op in [0u32, 16, 99, 0x8000_0000, u32::MAX] {
        t.add(
            format!("TEST_CMD: unknown op {op:#x}"),
            Errno::OPNOTSUPP,
            move |f| test_raw(&f.a, op, f.ioas, &[]),
        );
    }
    // ADD_RESERVED
    let ar = |start: u64, length: u64| TestAddReserved { start, length };
    t.add("ADD_RESERVED: length 0", Errno::INVAL, move |f| {
        test_op(&f.a, f.ioas, ar(APERTURE, 0))
    });
    t.add(
        "ADD_RESERVED: start + length wraps",
        Errno::OVERFLOW,
        move |f| test_op(&f.a, f.ioas, ar(u64::MAX, 2)),
    );
    not_ioas(t, "ADD_RESERVED", Errno::NOENT, |f, id| {
        test_op(
            &f.a,
            id,
            TestAddReserved {
                start: 1 << 40,
                length: PAGE,
            },
        )
    });
    t.add("ADD_RESERVED: over an area", Errno::ADDRINUSE, move |f| {
        test_op(&f.a, f.ioas, ar(APERTURE + PAGE, 1))
    });
    t.add(
        "ADD_RESERVED: over a lazy area",
        Errno::ADDRINUSE,
        move |f| test_op(&f.a, f.ioas2, ar(0, 0x1001)),
    );
    // MOCK_DOMAIN
    let md = TestMockDomain::new_zeroed;
    t.add("MOCK_DOMAIN: pt 0", Errno::NOENT, move |f| {
        test_op(&f.a, 0, md())
    });
    t.add("MOCK_DOMAIN: foreign pt", Errno::NOENT, move |f| {
        test_op(&f.a, f.foreign, md())
    });
    t.add("MOCK_DOMAIN: pt = access", Errno::INVAL, move |f| {
        test_op(&f.a, f.access_id, md())
    });
    t.add("MOCK_DOMAIN: pt = fault", Errno::INVAL, move |f| {
        test_op(&f.a, f.fault, md())
    });
    t.add("MOCK_DOMAIN: pt = device", Errno::INVAL, move |f| {
        test_op(&f.a, f.idev, md())
    });
    t.add(
        "MOCK_DOMAIN: IOAS with areas outside the aperture",
        Errno::ADDRINUSE,
        move |f| test_op(&f.a, f.ioas2, md()),
    );
    for bit in [1u32 << 3, 1 << 8, 1 << 31] {
        t.add(
            format!("MOCK_DOMAIN_FLAGS: flags {bit:#x}"),
            Errno::INVAL,
            move |f| {
                test_op(
                    &f.a,
                    f.ioas,
                    TestMockDomainFlags {
                        dev_flags: bit,
                        ..FromZeros::new_zeroed()
                    },
                )
            },
        );
    }
    t.add(
        "MOCK_DOMAIN_FLAGS: NO_DIRTY device on a dirty-tracking HWPT",
        Errno::INVAL,
        move |f| {
            test_op(
                &f.a,
                f.parent,
                TestMockDomainFlags {
                    dev_flags: MOCK_FLAGS_DEVICE_NO_DIRTY,
                    ..FromZeros::new_zeroed()
                },
            )
        },
    );
    // MOCK_DOMAIN_REPLACE
    let rp = |pt_id: u32| TestMockDomainReplace { pt_id };
    for (name, id) in [
        ("stdev 0", 0u32),
        ("foreign stdev", 40),
        ("stdev = IOAS", 1),
        ("stdev = device", 3),
    ] {
        t.add(
            format!("MOCK_DOMAIN_REPLACE: {name}"),
            Errno::NOENT,
            move |f| test_op(&f.a, id, rp(f.ioas)),
        );
    }
    t.add("MOCK_DOMAIN_REPLACE: pt 0", Errno::NOENT, move |f| {
        test_op(&f.a, f.stdev, rp(0))
    });
    t.add("MOCK_DOMAIN_REPLACE: pt = device", Errno::INVAL, move |f| {
        test_op(&f.a, f.stdev, rp(f.idev))
    });
    t.add("MOCK_DOMAIN_REPLACE: pt = access", Errno::INVAL, move |f| {
        test_op(&f.a, f.stdev, rp(f.access_id))
    });
    t.add(
        "MOCK_DOMAIN_REPLACE: NO_DIRTY device to a dirty HWPT",
        Errno::INVAL,
        move |f| test_op(&f.a, f.stdev2, rp(f.parent)),
    );
    t.add(
        "MOCK_DOMAIN_REPLACE: to an IOAS with areas outside the aperture",
        Errno::ADDRINUSE,
        move |f| test_op(&f.a, f.stdev, rp(f.ioas2)),
    );
    // MD_CHECK_MAP
    let cm = |iova: u64, length: u64, uptr: u64| TestCheckMap { iova, length, uptr };
    t.add("MD_CHECK_MAP: iova misaligned", Errno::INVAL, move |f| {
        test_op(&f.a, f.hwpt, cm(APERTURE + 1, 2048, f.buf.addr()))
    });
    t.add("MD_CHECK_MAP: length misaligned", Errno::INVAL, move |f| {
        test_op(&f.a, f.hwpt, cm(APERTURE, 100, f.buf.addr()))
    });
    t.add("MD_CHECK_MAP: uptr misaligned", Errno::INVAL, move |f| {
        test_op(&f.a, f.hwpt, cm(APERTURE, 2048, f.buf.addr() + 8))
    });
    t.add(
        "MD_CHECK_MAP: uptr + length wraps",
        Errno::INVAL,
        move |f| test_op(&f.a, f.hwpt, cm(APERTURE, 4096, u64::MAX - 2047)),
    );
    for (name, id) in [
        ("hwpt 0", 0u32),
        ("foreign hwpt", 40),
        ("hwpt = IOAS", 1),
        ("hwpt = nested", 6),
    ] {
        t.add(format!("MD_CHECK_MAP: {name}"), Errno::NOENT, move |f| {
            test_op(&f.a, id, cm(APERTURE, PAGE, f.buf.addr()))
        });
    }
    t.add("MD_CHECK_MAP: wrong memory", Errno::INVAL, move |f| {
        test_op(&f.a, f.hwpt, cm(APERTURE, PAGE, f.buf.addr() + PAGE))
    });
    t.add("MD_CHECK_MAP: IOVA not mapped", Errno::INVAL, move |f| {
        test_op(&f.a, f.hwpt, cm(APERTURE + 8 * PAGE, PAGE, f.buf.addr()))
    });
    t.add("MD_CHECK_MAP: inaccessible uptr", Errno::FAULT, move |f| {
        test_op(&f.a, f.hwpt, cm(APERTURE, PAGE, f.none.addr()))
    });
    // MD_CHECK_REFS
    let cr = |length: u64, uptr: u64, refs: u32| TestCheckRefs {
        length,
        uptr,
        refs,
        ..FromZeros::new_zeroed()
    };
    t.add("MD_CHECK_REFS: uptr misaligned", Errno::INVAL, move |f| {
        test_op(&f.a, 0, cr(PAGE, f.buf.addr() + 1, 1))
    });
    t.add("MD_CHECK_REFS: length misaligned", Errno::INVAL, move |f| {
        test_op(&f.a, 0, cr(100, f.buf.addr(), 1))
    });
    t.add(
        "MD_CHECK_REFS: uptr + length wraps",
        Errno::INVAL,
        move |f| test_op(&f.a, 0, cr(2 * PAGE, u64::MAX - PAGE + 1, 0)),
    );
    t.add("MD_CHECK_REFS: wrong count", Errno::IO, move |f| {
        test_op(&f.a, 0, cr(4 * PAGE, f.buf.addr(), 0))
    });
    t.add(
        "MD_CHECK_REFS: count of an unpinned page",
        Errno::IO,
        move |f| test_op(&f.a, 0, cr(PAGE, f.buf.addr() + 7 * PAGE, 1)),
    );
    t.add("MD_CHECK_REFS: inaccessible page", Errno::FAULT, move |f| {
        test_op(&f.a, 0, cr(PAGE, f.none.addr(), 0))
    });
    // CREATE_ACCESS
    for bit in unknown_bits(1) {
        t.add(
            format!("CREATE_ACCESS: flags {bit:#x}"),
            Errno::OPNOTSUPP,
            move |f| {
                test_op(
                    &f.a,
                    f.ioas,
                    TestCreateAccess {
                        out_access_fd: 0,
                        flags: bit,
                    },
                )
            },
        );
    }
    not_ioas(t, "CREATE_ACCESS", Errno::NOENT, |f, id| {
        test_op(
            &f.a,
            id,
            TestCreateAccess {
                out_access_fd: 0,
                flags: 1,
            },
        )
    });
    t.add(
        "CREATE_ACCESS: pinning access on an IOAS with a misaligned area",
        Errno::ADDRINUSE,
        move |f| {
            test_op(
                &f.a,
                f.ioas2,
                TestCreateAccess {
                    out_access_fd: 0,
                    flags: 1,
                },
            )
        },
    );
    // Access fds
    type FdOf = fn(&Fix) -> u32;
    let bad_fds: [(&str, FdOf); 4] = [
        ("fd never opened", |_| 1 << 30),
        ("fd -1", |_| u32::MAX),
        ("fd 0 (not emulated)", |_| 0),
        ("fault fd", |f| f.fault_fd),
    ];
    for (name, fd) in bad_fds {
        t.add(
            format!("DESTROY_ACCESS_PAGES: {name}"),
            Errno::BADFD,
            move |f| test_op(&f.a, fd(f), TestDestroyAccessPages { access_pages_id: 0 }),
        );
        t.add(format!("ACCESS_PAGES: {name}"), Errno::BADFD, move |f| {
            test_op(
                &f.a,
                fd(f),
                TestAccessPages {
                    flags: 0,
                    out_access_pages_id: 0,
                    iova: APERTURE,
                    length: PAGE,
                    uptr: 0,
                },
            )
        });
        t.add(format!("ACCESS_RW: {name}"), Errno::BADFD, move |f| {
            let mut b = [0u8; 8];
            test_op(
                &f.a,
                fd(f),
                TestAccessRw {
                    iova: APERTURE,
                    length: 8,
                    uptr: b.as_mut_ptr() as u64,
                    flags: 0,
                    ..FromZeros::new_zeroed()
                },
            )
        });
        t.add(
            format!("ACCESS_REPLACE_IOAS: {name}"),
            Errno::BADFD,
            move |f| test_op(&f.a, fd(f), TestAccessReplaceIoas { ioas_id: f.ioas2 }),
        );
    }
    t.add(
        "DESTROY_ACCESS_PAGES: unknown item",
        Errno::NOENT,
        move |f| {
            test_op(
                &f.a,
                f.access_fd,
                TestDestroyAccessPages { access_pages_id: 0 },
            )
        },
    );
    t.add(
        "DESTROY_ACCESS_PAGES: item u32::MAX",
        Errno::NOENT,
        move |f| {
            test_op(
                &f.a,
                f.access_fd,
                TestDestroyAccessPages {
                    access_pages_id: u32::MAX,
                },
            )
        },
    );
    // ACCESS_PAGES
    let ap = |flags: u32, iova: u64, length: u64, uptr: u64| TestAccessPages {
        flags,
        out_access_pages_id: 0,
        iova,
        length,
        uptr,
    };
    t.add("ACCESS_PAGES: length > 16 MiB", Errno::NOMEM, move |f| {
        test_op(&f.a, f.access_fd, ap(0, APERTURE, (16 << 20) + 1, 0))
    });
    t.add(
        "ACCESS_PAGES: length u64::MAX (before the fd)",
        Errno::NOMEM,
        move |_| test_op(&Fd::open(), 1 << 30, ap(0, APERTURE, u64::MAX, 0)),
    );
    for bit in [2u32, 8, 1 << 15, 1 << 31] {
        t.add(
            format!("ACCESS_PAGES: flags {bit:#x}"),
            Errno::OPNOTSUPP,
            move |f| test_op(&f.a, f.access_fd, ap(bit, APERTURE, PAGE, 0)),
        );
    }
    t.add(
        "ACCESS_PAGES: access without pin support",
        Errno::OPNOTSUPP,
        move |f| test_op(&f.a, f.nopin_fd, ap(0, APERTURE, PAGE, 0)),
    );
    t.add("ACCESS_PAGES: length 0", Errno::INVAL, move |f| {
        test_op(&f.a, f.access_fd, ap(0, APERTURE, 0, 0))
    });
    t.add(
        "ACCESS_PAGES: iova + length wraps",
        Errno::OVERFLOW,
        move |f| test_op(&f.a, f.access_fd, ap(0, u64::MAX - 0xfff, 0x2000, 0)),
    );
    t.add("ACCESS_PAGES: not mapped", Errno::NOENT, move |f| {
        test_op(&f.a, f.access_fd, ap(0, APERTURE + 8 * PAGE, PAGE, 0))
    });
    t.add("ACCESS_PAGES: runs past the area", Errno::NOENT, move |f| {
        test_op(&f.a, f.access_fd, ap(0, APERTURE + 3 * PAGE, 2 * PAGE, 0))
    });
    t.add(
        "ACCESS_PAGES: iova not page aligned",
        Errno::INVAL,
        move |f| test_op(&f.a, f.access_fd, ap(0, APERTURE + 0x800, PAGE, 0)),
    );
    t.add(
        "ACCESS_PAGES: write to a read-only area",
        Errno::PERM,
        move |f| test_op(&f.a, f.access_fd, ap(1, APERTURE + 16 * PAGE, PAGE, 0)),
    );
    t.add(
        "ACCESS_PAGES: uptr of other memory",
        Errno::BADE,
        move |f| {
            test_op(
                &f.a,
                f.access_fd,
                ap(0, APERTURE, PAGE, f.buf.addr() + PAGE),
            )
        },
    );
    t.add("ACCESS_PAGES: inaccessible uptr", Errno::FAULT, move |f| {
        test_op(&f.a, f.access_fd, ap(0, APERTURE, PAGE, f.none.addr()))
    });
    // ACCESS_RW
    fn rw(f: &Fix, fd: u32, iova: u64, length: u64, uptr: u64, flags: u32) -> Result<i64, Errno> {
        test_op(
            &f.a,
            fd,
            TestAccessRw {
                iova,
                length,
                uptr,
                flags,
                ..FromZeros::new_zeroed()
            },
        )
    }
    t.add("ACCESS_RW: length > 16 MiB", Errno::NOMEM, move |f| {
        rw(f, f.access_fd, APERTURE, (16 << 20) + 1, 0, 0)
    });
    for bit in [2u32, 8, 1 << 15, 1 << 31] {
        t.add(
            format!("ACCESS_RW: flags {bit:#x}"),
            Errno::OPNOTSUPP,
            move |f| {
                let mut b = [0u8; 8];
                rw(f, f.access_fd, APERTURE, 8, b.as_mut_ptr() as u64, bit)
            },
        );
    }
    for (name, flags) in [("read", 0u32), ("slow-path read", 4)] {
        t.add(
            format!("ACCESS_RW {name}: length 0"),
            Errno::INVAL,
            move |f| rw(f, f.access_fd, APERTURE, 0, f.buf.addr(), flags),
        );
        t.add(
            format!("ACCESS_RW {name}: iova + length wraps"),
            Errno::OVERFLOW,
            move |f| {
                let mut b = [0u8; 16];
                rw(
                    f,
                    f.access_fd,
                    u64::MAX - 7,
                    16,
                    b.as_mut_ptr() as u64,
                    flags,
                )
            },
        );
        t.add(
            format!("ACCESS_RW {name}: not mapped"),
            Errno::NOENT,
            move |f| {
                let mut b = [0u8; 16];
                rw(
                    f,
                    f.access_fd,
                    APERTURE + 8 * PAGE,
                    16,
                    b.as_mut_ptr() as u64,
                    flags,
                )
            },
        );
        t.add(
            format!("ACCESS_RW {name}: runs past the area"),
            Errno::NOENT,
            move |f| {
                let mut b = [0u8; 16];
                rw(
                    f,
                    f.nopin_fd,
                    APERTURE + 4 * PAGE - 8,
                    16,
                    b.as_mut_ptr() as u64,
                    flags,
                )
            },
        );
        t.add(
            format!("ACCESS_RW {name}: NULL buffer"),
            Errno::FAULT,
            move |f| rw(f, f.access_fd, APERTURE, 16, 0, flags),
        );
        t.add(
            format!("ACCESS_RW {name}: read-only buffer"),
            Errno::FAULT,
            move |f| rw(f, f.access_fd, APERTURE, 16, f.ro.addr(), flags),
        );
    }
    for (name, flags) in [("write", 1u32), ("slow-path write", 5)] {
        t.add(
            format!("ACCESS_RW {name}: to a read-only area"),
            Errno::PERM,
            move |f| {
                let mut b = [0u8; 16];
                rw(
                    f,
                    f.access_fd,
                    APERTURE + 16 * PAGE,
                    16,
                    b.as_mut_ptr() as u64,
                    flags,
                )
            },
        );
        t.add(
            format!("ACCESS_RW {name}: NULL buffer"),
            Errno::FAULT,
            move |f| rw(f, f.access_fd, APERTURE, 16, 0, flags),
        );
        t.add(
            format!("ACCESS_RW {name}: inaccessible buffer"),
            Errno::FAULT,
            move |f| rw(f, f.access_fd, APERTURE, 16, f.none.addr(), flags),
        );
    }
    // SET_TEMP_MEMORY_LIMIT
    for limit in [0u32, 1, 11] {
        t.add(
            format!("SET_TEMP_MEMORY_LIMIT: {limit}"),
            Errno::INVAL,
            move |f| test_op(&f.a, 0, TestMemoryLimit { limit }),
        );
    }
    // ACCESS_REPLACE_IOAS
    not_ioas(t, "ACCESS_REPLACE_IOAS", Errno::NOENT, |f, id| {
        test_op(&f.a, f.access_fd, TestAccessReplaceIoas { ioas_id: id })
    });
    t.add(
        "ACCESS_REPLACE_IOAS: pinning access to an IOAS with a misaligned area",
        Errno::ADDRINUSE,
        move |f| {
            test_op(
                &f.a,
                f.access_fd,
                TestAccessReplaceIoas { ioas_id: f.ioas2 },
            )
        },
    );
    // DIRTY
    fn d(
        f: &Fix,
        id: u32,
        iova: u64,
        length: u64,
        page_size: u64,
        uptr: u64,
    ) -> Result<i64, Errno> {
        test_op(
            &f.a,
            id,
            TestDirty {
                iova,
                length,
                page_size,
                uptr,
                ..FromZeros::new_zeroed()
            },
        )
    }
    t.add("DIRTY: page_size 0", Errno::INVAL, move |f| {
        d(f, f.parent, APERTURE, PAGE, 0, f.buf.addr())
    });
    t.add("DIRTY: length 0", Errno::INVAL, move |f| {
        d(f, f.parent, APERTURE, 0, 2048, f.buf.addr())
    });
    t.add("DIRTY: iova misaligned", Errno::INVAL, move |f| {
        d(f, f.parent, APERTURE + 1, 2048, 2048, f.buf.addr())
    });
    t.add("DIRTY: length misaligned", Errno::INVAL, move |f| {
        d(f, f.parent, APERTURE, 3000, 2048, f.buf.addr())
    });
    t.add("DIRTY: uptr 0", Errno::INVAL, move |f| {
        d(f, f.parent, APERTURE, 2048, 2048, 0)
    });
    t.add("DIRTY: more than 2^27 pages", Errno::OVERFLOW, move |f| {
        d(f, f.parent, 0, (1 << 27) * 2 + 2, 2, f.buf.addr())
    });
    for (name, id) in [
        ("hwpt 0", 0u32),
        ("foreign hwpt", 40),
        ("hwpt = IOAS", 1),
        ("hwpt = nested", 6),
    ] {
        t.add(format!("DIRTY: {name}"), Errno::NOENT, move |f| {
            d(f, id, APERTURE, 2048, 2048, f.buf.addr())
        });
    }
    t.add("DIRTY: tracking not enabled", Errno::INVAL, move |f| {
        d(f, f.parent, APERTURE, 2048, 2048, f.buf.addr())
    });
    t.add(
        "DIRTY: HWPT without dirty tracking",
        Errno::INVAL,
        move |f| d(f, f.hwpt, APERTURE, 2048, 2048, f.buf.addr()),
    );
    // MD_CHECK_IOTLB
    let ci = |id: u32, iotlb: u32| TestCheckIotlb { id, iotlb };
    for (name, id) in [
        ("hwpt 0", 0u32),
        ("foreign hwpt", 40),
        ("paging hwpt", 5),
        ("IOAS", 1),
    ] {
        t.add(format!("MD_CHECK_IOTLB: {name}"), Errno::NOENT, move |f| {
            test_op(&f.a, id, ci(0, IOMMU_TEST_IOTLB_DEFAULT))
        });
    }
    t.add("MD_CHECK_IOTLB: id 4", Errno::INVAL, move |f| {
        test_op(&f.a, f.nested, ci(4, IOMMU_TEST_IOTLB_DEFAULT))
    });
    t.add("MD_CHECK_IOTLB: id u32::MAX", Errno::INVAL, move |f| {
        test_op(&f.a, f.nested, ci(u32::MAX, IOMMU_TEST_IOTLB_DEFAULT))
    });
    t.add("MD_CHECK_IOTLB: wrong value", Errno::INVAL, move |f| {
        test_op(&f.a, f.nested, ci(1, 0))
    });
    // TRIGGER_IOPF
    for (name, dev) in [
        ("dev 0", 0u32),
        ("foreign dev", 40),
        ("dev = IOAS", 1),
        ("dev = selftest", 2),
    ] {
        t.add(format!("TRIGGER_IOPF: {name}"), Errno::NOENT, move |f| {
            test_op(
                &f.a,
                0,
                TestTriggerIopf {
                    dev_id: dev,
                    ..FromZeros::new_zeroed()
                },
            )
        });
    }
}

fn vfio(t: &mut Table) {
    fn map(
        fd: &Fd,
        argsz: u32,
        flags: u32,
        vaddr: u64,
        iova: u64,
        size: u64,
    ) -> Result<i64, Errno> {
        let mut m = VfioIommuType1DmaMap {
            argsz,
            flags,
            vaddr,
            iova,
            size,
        };
        fd.ioctl_ptr(VFIO_IOMMU_MAP_DMA, m.as_mut_bytes().as_mut_ptr() as u64)
    }
    fn unmap(fd: &Fd, argsz: u32, flags: u32, iova: u64, size: u64) -> Result<i64, Errno> {
        let mut m = VfioIommuType1DmaUnmap {
            argsz,
            flags,
            iova,
            size,
        };
        fd.ioctl_ptr(VFIO_IOMMU_UNMAP_DMA, m.as_mut_bytes().as_mut_ptr() as u64)
    }
    fn info(fd: &Fd, argsz: u32) -> Result<i64, Errno> {
        let mut b = [0u8; 256];
        b[..4].copy_from_slice(&argsz.to_ne_bytes());
        fd.ioctl_ptr(VFIO_IOMMU_GET_INFO, b.as_mut_ptr() as u64)
    }
    const R: u32 = VFIO_DMA_MAP_FLAG_READ;
    const RW: u32 = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
    let free = APERTURE + 8 * PAGE;
    // Without a compat IOAS (context A).
    t.add(
        "VFIO_SET_IOMMU: TYPE1v2 without compat IOAS",
        Errno::NODEV,
        |f| f.a.ioctl_ptr(VFIO_SET_IOMMU, u64::from(VFIO_TYPE1v2_IOMMU)),
    );
    t.add(
        "VFIO_SET_IOMMU: TYPE1 without compat IOAS",
        Errno::NODEV,
        |f| f.a.ioctl_ptr(VFIO_SET_IOMMU, u64::from(VFIO_TYPE1_IOMMU)),
    );
    for ty in [0u64, 2, 4, 6, 7, 8, 99] {
        t.add(
            format!("VFIO_SET_IOMMU: type {ty}"),
            Errno::INVAL,
            move |f| f.v.ioctl_ptr(VFIO_SET_IOMMU, ty),
        );
    }
    t.add(
        "VFIO_CHECK_EXTENSION: DMA_CC_IOMMU without compat IOAS",
        Errno::NODEV,
        |f| {
            f.a.ioctl_ptr(VFIO_CHECK_EXTENSION, u64::from(VFIO_DMA_CC_IOMMU))
        },
    );
    t.add(
        "VFIO_IOMMU_MAP_DMA: without compat IOAS",
        Errno::NODEV,
        move |f| map(&f.a, 32, RW, f.buf.addr(), free, PAGE),
    );
    t.add(
        "VFIO_IOMMU_UNMAP_DMA: without compat IOAS",
        Errno::NODEV,
        |f| unmap(&f.a, 24, 0, APERTURE, PAGE),
    );
    t.add(
        "VFIO_IOMMU_GET_INFO: without compat IOAS",
        Errno::NODEV,
        |f| info(&f.a, 24),
    );
    for (name, nr) in [
        ("VFIO_IOMMU_MAP_DMA", VFIO_IOMMU_MAP_DMA),
        ("VFIO_IOMMU_UNMAP_DMA", VFIO_IOMMU_UNMAP_DMA),
        ("VFIO_IOMMU_GET_INFO", VFIO_IOMMU_GET_INFO),
    ] {
        t.add(format!("{name}: NULL argument"), Errno::FAULT, move |f| {
            f.v.ioctl_ptr(nr, 0)
        });
        t.add(
            format!("{name}: inaccessible argument"),
            Errno::FAULT,
            move |f| f.v.ioctl_ptr(nr, f.none.addr()),
        );
    }
    t.add("VFIO_IOMMU_DIRTY_PAGES: unsupported", Errno::NOTTY, |f| {
        let mut b = [0u8; 64];
        f.v.ioctl_ptr(VFIO_IOMMU_DIRTY_PAGES, b.as_mut_ptr() as u64)
    });
    for nr in [103u32, 104, 111, 115, 116, 118, 0x7e] {
        t.add(format!("VFIO nr {nr}: unknown"), Errno::NOTTY, move |f| {
            let mut b = [0u8; 64];
            f.v.ioctl_ptr(u32::from(b';') << 8 | nr, b.as_mut_ptr() as u64)
        });
    }
    // With the compat IOAS (context V: a domain, an area at APERTURE).
    for argsz in [0u32, 16, 31] {
        t.add(
            format!("VFIO_IOMMU_MAP_DMA: argsz {argsz}"),
            Errno::INVAL,
            move |f| map(&f.v, argsz, RW, f.v_buf.addr() + 2 * PAGE, free, PAGE),
        );
    }
    for flags in [4u32, 8, 1 << 31] {
        t.add(
            format!("VFIO_IOMMU_MAP_DMA: flags {flags:#x}"),
            Errno::INVAL,
            move |f| map(&f.v, 32, RW | flags, f.v_buf.addr() + 2 * PAGE, free, PAGE),
        );
    }
    t.add("VFIO_IOMMU_MAP_DMA: onto a mapping", Errno::EXIST, |f| {
        map(
            &f.v,
            32,
            RW,
            f.v_buf.addr() + 2 * PAGE,
            APERTURE + PAGE,
            PAGE,
        )
    });
    t.add("VFIO_IOMMU_MAP_DMA: in reserved space", Errno::INVAL, |f| {
        map(&f.v, 32, RW, f.v_buf.addr() + 2 * PAGE, 0x1000, PAGE)
    });
    t.add(
        "VFIO_IOMMU_MAP_DMA: iova misaligned",
        Errno::INVAL,
        move |f| map(&f.v, 32, RW, f.v_buf.addr() + 2 * PAGE, free + 0x10, PAGE),
    );
    t.add("VFIO_IOMMU_MAP_DMA: size 0", Errno::INVAL, move |f| {
        map(&f.v, 32, RW, f.v_buf.addr() + 2 * PAGE, free, 0)
    });
    // MAP_DMA goes straight to the io_pagetable: no U64_MAX checks of IOAS_MAP.
    t.add(
        "VFIO_IOMMU_MAP_DMA: size u64::MAX",
        Errno::INVAL,
        move |f| map(&f.v, 32, RW, f.v_buf.addr(), free, u64::MAX),
    );
    t.add(
        "VFIO_IOMMU_MAP_DMA: iova u64::MAX (misaligned)",
        Errno::INVAL,
        |f| map(&f.v, 32, RW, f.v_buf.addr(), u64::MAX, PAGE),
    );
    t.add(
        "VFIO_IOMMU_MAP_DMA: iova + size wraps",
        Errno::OVERFLOW,
        |f| map(&f.v, 32, RW, f.v_buf.addr(), u64::MAX - 0x7ff, PAGE),
    );
    t.add(
        "VFIO_IOMMU_MAP_DMA: vaddr + size wraps",
        Errno::OVERFLOW,
        move |f| map(&f.v, 32, RW, u64::MAX - 0xfff, free, 0x2000),
    );
    t.add(
        "VFIO_IOMMU_MAP_DMA: read-only map of inaccessible memory",
        Errno::FAULT,
        move |f| map(&f.v, 32, R, f.none.addr(), free, PAGE),
    );
    t.add(
        "VFIO_IOMMU_MAP_DMA: writable map of read-only memory",
        Errno::FAULT,
        move |f| map(&f.v, 32, RW, f.ro.addr(), free, PAGE),
    );
    for argsz in [0u32, 8, 23] {
        t.add(
            format!("VFIO_IOMMU_UNMAP_DMA: argsz {argsz}"),
            Errno::INVAL,
            move |f| unmap(&f.v, argsz, 0, APERTURE, 2 * PAGE),
        );
    }
    for flags in [
        VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
        VFIO_DMA_UNMAP_FLAG_VADDR,
        8,
        1 << 31,
    ] {
        t.add(
            format!("VFIO_IOMMU_UNMAP_DMA: flags {flags:#x}"),
            Errno::INVAL,
            move |f| unmap(&f.v, 24, flags, APERTURE, 2 * PAGE),
        );
    }
    t.add(
        "VFIO_IOMMU_UNMAP_DMA: ALL with an iova",
        Errno::INVAL,
        |f| unmap(&f.v, 24, VFIO_DMA_UNMAP_FLAG_ALL, APERTURE, 0),
    );
    t.add("VFIO_IOMMU_UNMAP_DMA: ALL with a size", Errno::INVAL, |f| {
        unmap(&f.v, 24, VFIO_DMA_UNMAP_FLAG_ALL, 0, PAGE)
    });
    t.add(
        "VFIO_IOMMU_UNMAP_DMA: part of a mapping (TYPE1v2)",
        Errno::NOENT,
        |f| unmap(&f.v, 24, 0, APERTURE, PAGE),
    );
    t.add(
        "VFIO_IOMMU_UNMAP_DMA: iova + size wraps",
        Errno::OVERFLOW,
        |f| unmap(&f.v, 24, 0, u64::MAX - 0xfff, 0x2000),
    );
    t.add(
        "VFIO_IOMMU_UNMAP_DMA: size u64::MAX",
        Errno::OVERFLOW,
        |f| unmap(&f.v, 24, 0, PAGE, u64::MAX),
    );
    for argsz in [0u32, 8, 15] {
        t.add(
            format!("VFIO_IOMMU_GET_INFO: argsz {argsz}"),
            Errno::INVAL,
            move |f| info(&f.v, argsz),
        );
    }
}

/// Every case of the table.
pub fn cases() -> Vec<Case> {
    let mut t = Table::default();
    generic(&mut t);
    destroy(&mut t);
    ioas_alloc(&mut t);
    allow_iovas(&mut t);
    copy(&mut t);
    iova_ranges(&mut t);
    map(&mut t);
    unmap(&mut t);
    option(&mut t);
    vfio_ioas(&mut t);
    hwpt_alloc(&mut t);
    hw_info(&mut t);
    dirty(&mut t);
    invalidate(&mut t);
    fault_alloc(&mut t);
    test_cmd(&mut t);
    vfio(&mut t);
    t.0
}
