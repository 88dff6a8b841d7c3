//! B1 `ioas_map_bulk`: IOAS_MAP then IOAS_UNMAP of 1 GiB through the ioctl entry
//! of the library (`IommufdFile::ioctl`, as the preload library calls it) into
//! an IOAS with one attached HWPT, pin bookkeeping included.
//!
//! Floors in the same run: a memset of the PTE bytes the driver writes, and a
//! naive per-page radix map ([`NaiveRadix`]) of the same range. Drivers are a
//! list ([`drivers`]): the real-format drivers become one more entry each. The
//! selftest mock's aperture is 2 GiB, so the mock runs 1 GiB; hugetlb runs as
//! much as the host has free (up to 1 GiB) and is reported per GiB.

use std::sync::{Arc, Mutex};

use iommufd::{BoundDevice, IommufdFile};
use uapi::{
    Destroy, IoasAlloc, IoasMap, IoasUnmap, IoctlCmd, TestCmd, TestMockDomain, TestMockDomainFlags,
    IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_WRITEABLE,
    MOCK_FLAGS_DEVICE_HUGE_IOVA,
};
use zerocopy::FromZeros;

use crate::harness::{measure_many, time_ns, Config, Report, Target};
use crate::naive::NaiveRadix;

const NAME: &str = "B1 ioas_map_bulk";
const GIB: u64 = 1 << 30;
const IOVA: u64 = 1 << 30;

/// A driver B1 maps through: creates a device in `fd`'s context attached to
/// `ioas` and returns the IO page size of its domain.
pub struct DriverEntry {
    /// Report name.
    pub name: &'static str,
    /// Attaches a device of this driver to the IOAS (huge: allow large IO pages).
    pub attach: fn(&Client, u32, bool) -> Result<u64, uapi::Errno>,
}

/// The drivers B1 runs on: the selftest's mock, and the real-format drivers
/// (VT-d second stage and SMMUv3 with ARMv8 LPAE 4K tables), each through a
/// device bound to the context and attached to the IOAS.
pub fn drivers() -> Vec<DriverEntry> {
    vec![
        DriverEntry {
            name: "mock",
            attach: |c, ioas, huge| {
                let flags = if huge { MOCK_FLAGS_DEVICE_HUGE_IOVA } else { 0 };
                c.mock_domain(ioas, flags)?;
                Ok(2048)
            },
        },
        DriverEntry {
            name: "vtd",
            attach: |c, ioas, _| {
                let vtd = drivers::Vtd::new(drivers::VtdConfig::default())
                    .map_err(|_| uapi::Errno::INVAL)?;
                vtd.add_device("nic", &[]);
                c.attach_device(&vtd.ops(), "nic", ioas)?;
                Ok(4096)
            },
        },
        DriverEntry {
            name: "smmuv3",
            attach: |c, ioas, _| {
                let smmu = drivers::SmmuV3::new(drivers::SmmuV3Config::default())
                    .map_err(|_| uapi::Errno::INVAL)?;
                smmu.add_device("gpu");
                c.attach_device(&smmu.ops(), "gpu", ioas)?;
                Ok(4096)
            },
        },
    ]
}

/// A context of the library, driven through its ioctl entry.
pub struct Client {
    /// The open `/dev/iommu`.
    pub file: Arc<IommufdFile>,
    /// Devices bound to the context (unbound when the client drops).
    devices: Mutex<Vec<BoundDevice>>,
}

fn set_size<T: IoctlCmd>(cmd: &mut T) {
    cmd.as_mut_bytes()[..4].copy_from_slice(&(T::SIZE as u32).to_ne_bytes());
}

impl Client {
    /// Opens a context whose process may lock any amount of memory.
    pub fn open() -> Client {
        let mut env = inproc::env();
        env.mm = Arc::new(inproc::HostMm::with_caps(inproc::CapOverrides::parse(
            "+ipc_lock",
        )));
        Client {
            file: IommufdFile::open(env, false),
            devices: Mutex::new(Vec::new()),
        }
    }

    /// Probes device `name` of a driver on a platform of its own, binds it to
    /// this context and attaches it to `ioas`.
    pub fn attach_device(
        &self,
        ops: &Arc<dyn iommu::IommuOps>,
        name: &str,
        ioas: u32,
    ) -> Result<(), uapi::Errno> {
        let platform = iommu::Platform::new(iommu::DefaultPolicy::Dma);
        let desc = iommu::DeviceDesc {
            name: name.into(),
            ..Default::default()
        };
        let dev = platform.probe(ops, desc)?;
        let bound = BoundDevice::bind(&self.file, &dev)?;
        bound.attach(ioas)?;
        self.devices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(bound);
        Ok(())
    }

    /// One typed ioctl.
    pub fn ioctl<T: IoctlCmd>(&self, cmd: &mut T) -> Result<i64, uapi::Errno> {
        set_size(cmd);
        self.file
            .ioctl(T::IOCTL, cmd.as_mut_bytes().as_mut_ptr() as u64)
    }

    /// IOAS_ALLOC.
    pub fn ioas(&self) -> u32 {
        let mut cmd = IoasAlloc::new_zeroed();
        self.ioctl(&mut cmd).expect("IOAS_ALLOC");
        cmd.out_ioas_id
    }

    /// IOMMU_TEST_OP_MOCK_DOMAIN(_FLAGS): (stdev, hwpt).
    pub fn mock_domain(&self, ioas: u32, flags: u32) -> Result<(u32, u32), uapi::Errno> {
        let mut cmd = if flags == 0 {
            TestCmd::new(ioas, &TestMockDomain::new_zeroed())
        } else {
            let p = TestMockDomainFlags {
                dev_flags: flags,
                ..FromZeros::new_zeroed()
            };
            TestCmd::new(ioas, &p)
        };
        self.ioctl(&mut cmd)?;
        let out: TestMockDomain = cmd.payload_as();
        Ok((out.out_stdev_id, out.out_hwpt_id))
    }

    /// IOAS_MAP at `iova` (fixed) or automatic (`iova == None`); returns the IOVA.
    pub fn map(&self, ioas: u32, va: u64, len: u64, iova: Option<u64>) -> Result<u64, uapi::Errno> {
        let mut cmd = IoasMap::new_zeroed();
        cmd.ioas_id = ioas;
        cmd.flags = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
        if let Some(iova) = iova {
            cmd.flags |= IOMMU_IOAS_MAP_FIXED_IOVA;
            cmd.iova = iova;
        }
        cmd.user_va = va;
        cmd.length = len;
        self.ioctl(&mut cmd).map(|_| cmd.iova)
    }

    /// IOAS_UNMAP; returns the bytes unmapped.
    pub fn unmap(&self, ioas: u32, iova: u64, len: u64) -> Result<u64, uapi::Errno> {
        let mut cmd = IoasUnmap::new_zeroed();
        cmd.ioas_id = ioas;
        cmd.iova = iova;
        cmd.length = len;
        self.ioctl(&mut cmd).map(|_| cmd.length)
    }

    /// IOMMU_DESTROY.
    pub fn destroy(&self, id: u32) -> Result<(), uapi::Errno> {
        let mut cmd = Destroy::new_zeroed();
        cmd.id = id;
        self.ioctl(&mut cmd).map(|_| ())
    }
}

/// Anonymous memory for the benchmark (never touched: pins only check the VMA).
fn memory(len: usize, extra_flags: i32) -> Option<host::sys::Mmap> {
    host::sys::Mmap::anon(
        len,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | extra_flags,
    )
    .ok()
}

/// Bytes of free default-size hugetlb pages (`/proc/meminfo`).
pub fn free_hugetlb_bytes() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| -> u64 {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    field("HugePages_Free:") * field("Hugepagesize:") * 1024
}

/// The whole of B1.
pub fn run(cfg: &Config, rep: &mut Report) {
    let len: u64 = cfg.pick(GIB, GIB / 4);
    for d in drivers() {
        let mut cases: Vec<(&str, host::sys::Mmap, bool)> = Vec::new();
        if let Some(m) = memory(len as usize, 0) {
            cases.push(("4K anon", m, false));
        }
        // As much hugetlb memory as the host has free (up to 1 GiB): the fixed
        // cost of one ioctl is not spread over a few huge pages only.
        let huge_len = free_hugetlb_bytes().min(GIB);
        if let Some(m) = (huge_len != 0)
            .then(|| memory(huge_len as usize, libc::MAP_HUGETLB))
            .flatten()
        {
            cases.push(("hugetlb 2M", m, true));
        }
        for (case, mem, huge) in cases {
            run_case(cfg, rep, &d, case, &mem, huge);
        }
    }
}

fn run_case(
    cfg: &Config,
    rep: &mut Report,
    d: &DriverEntry,
    case: &str,
    mem: &host::sys::Mmap,
    huge: bool,
) {
    let c = Client::open();
    let ioas = c.ioas();
    let io_page = match (d.attach)(&c, ioas, huge) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("   {}: cannot attach: {e:?}", d.name);
            return;
        }
    };
    let len = mem.len() as u64;
    let per_gib = GIB as f64 / len as f64;
    let ptes = (len / io_page) as usize;
    let mut pte_bytes = vec![0u64; ptes];
    let memset_floor = || {
        time_ns(|| std::hint::black_box(&mut pte_bytes).fill(std::hint::black_box(0x1003)))
            * per_gib
            / 1e3
    };
    let mut unmaps = Vec::new();
    // Several cycles per repetition, so that a small (hugetlb) range is not
    // timed one ioctl at a time.
    let cycles = (GIB / len).clamp(1, 64) * 4;
    let mut map_unmap = || {
        let (mut m, mut u) = (0.0, 0.0);
        for _ in 0..cycles {
            m += time_ns(|| {
                c.map(ioas, mem.addr(), len, Some(IOVA)).expect("IOAS_MAP");
            });
            u += time_ns(|| {
                assert_eq!(c.unmap(ioas, IOVA, len).expect("IOAS_UNMAP"), len);
            });
        }
        unmaps.push(u / cycles as f64 * per_gib / 1e3);
        m / cycles as f64 * per_gib / 1e3
    };
    let mut naive_ns = Vec::new();
    let mut naive = || {
        let mut t = NaiveRadix::new();
        let n = time_ns(|| {
            for i in 0..len >> 12 {
                t.map(IOVA + (i << 12), mem.addr() + (i << 12));
            }
        });
        std::hint::black_box(&t);
        naive_ns.push(n * per_gib / 1e3);
        0.0
    };
    let (ours, floor) = measure_many(cfg.reps(), memset_floor, &mut [&mut map_unmap, &mut naive]);
    let map = ours[0];
    let unmap = crate::harness::median(&mut unmaps);
    let naive_map = crate::harness::median(&mut naive_ns);
    let label = format!("{} {case} map", d.name);
    if huge {
        rep.add(
            NAME,
            &label,
            map,
            floor,
            "us/GiB",
            Target::AbsAtMost(20.0),
            "floor=memset of the PTE bytes",
        );
    } else {
        rep.add(
            NAME,
            &label,
            map,
            floor,
            "us/GiB",
            Target::RatioAtMost(3.0),
            "floor=memset of the PTE bytes",
        );
        rep.add(
            NAME,
            &format!("{label} vs naive"),
            map,
            naive_map,
            "us/GiB",
            Target::None,
            "floor=naive per-page radix map",
        );
    }
    rep.add(
        NAME,
        &format!("{} {case} unmap", d.name),
        unmap,
        map,
        "us/GiB",
        Target::RatioAtMost(1.0),
        "floor=our map (unmap <= map)",
    );
    assert_eq!(host::pins::count(mem.addr()), 0, "pins leaked");
    c.destroy(ioas).ok();
}
