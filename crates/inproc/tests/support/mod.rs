//! Test support: an iommufd opened in this process, typed ioctls on real memory,
//! and builders in the style of the kernel selftest's `iommufd_utils.h`.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use host::sys::Mmap;
use iommufd::IommufdFile;
use uapi::{
    Destroy, Errno, IoasAlloc, IoasCopy, IoasIovaRanges, IoasMap, IoasUnmap, IoctlCmd, IommuOption,
    IovaRange, TestCmd, TestPayload, IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE,
    IOMMU_IOAS_MAP_WRITEABLE,
};
use zerocopy::FromZeros;

pub const PAGE: u64 = 4096;
pub const RW: u32 = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
pub const FIXED_RW: u32 = RW | IOMMU_IOAS_MAP_FIXED_IOVA;

/// An open iommufd.
pub struct Fd {
    pub file: Arc<IommufdFile>,
}

impl Default for Fd {
    fn default() -> Self {
        Fd::open()
    }
}

impl Fd {
    pub fn open() -> Fd {
        Fd {
            file: inproc::open(false),
        }
    }

    /// An iommufd whose process has capability overrides (as `IOMMUFD_CAPS`).
    pub fn open_with_caps(spec: &str) -> Fd {
        let mut env = inproc::env();
        env.mm = Arc::new(inproc::HostMm::with_caps(inproc::CapOverrides::parse(spec)));
        Fd {
            file: IommufdFile::open(env, false),
        }
    }

    /// An iommufd with a custom user memory.
    pub fn open_with_mm(mm: Arc<dyn iommufd::mm::UserMemory>) -> Fd {
        let mut env = inproc::env();
        env.mm = mm;
        Fd {
            file: IommufdFile::open(env, false),
        }
    }

    /// `ioctl(fd, T::IOCTL, cmd)` with `cmd.size` set by the caller.
    pub fn ioctl_raw<T: IoctlCmd>(&self, cmd: &mut T) -> Result<i64, Errno> {
        let arg = cmd.as_mut_bytes().as_mut_ptr() as u64;
        self.file.ioctl(T::IOCTL, arg)
    }

    /// `ioctl(fd, T::IOCTL, cmd)` with `cmd.size = sizeof(T)`.
    pub fn ioctl<T: IoctlCmd>(&self, cmd: &mut T) -> Result<i64, Errno> {
        set_size(cmd, T::SIZE as u32);
        self.ioctl_raw(cmd)
    }

    /// An ioctl by number on an arbitrary argument.
    pub fn ioctl_ptr(&self, nr: u32, arg: u64) -> Result<i64, Errno> {
        self.file.ioctl(nr, arg)
    }

    /// A test command with payload `p` for object `id`; returns the command (with
    /// outputs) on success.
    pub fn test<P: TestPayload>(&self, id: u32, p: &P) -> Result<TestCmd, Errno> {
        let mut cmd = TestCmd::new(id, p);
        self.ioctl(&mut cmd).map(|_| cmd)
    }

    pub fn ioas_alloc(&self) -> u32 {
        let mut cmd = IoasAlloc::new_zeroed();
        self.ioctl(&mut cmd).expect("IOAS_ALLOC");
        cmd.out_ioas_id
    }

    pub fn destroy(&self, id: u32) -> Result<(), Errno> {
        let mut cmd = Destroy::new_zeroed();
        cmd.id = id;
        self.ioctl(&mut cmd).map(|_| ())
    }

    /// IOAS_MAP; returns the IOVA.
    pub fn map(&self, ioas: u32, va: u64, len: u64, iova: u64, flags: u32) -> Result<u64, Errno> {
        let mut cmd = IoasMap::new_zeroed();
        cmd.ioas_id = ioas;
        cmd.flags = flags;
        cmd.user_va = va;
        cmd.length = len;
        cmd.iova = iova;
        self.ioctl(&mut cmd).map(|_| cmd.iova)
    }

    pub fn map_fixed(&self, ioas: u32, va: u64, len: u64, iova: u64) -> Result<u64, Errno> {
        self.map(ioas, va, len, iova, FIXED_RW)
    }

    pub fn map_auto(&self, ioas: u32, va: u64, len: u64) -> Result<u64, Errno> {
        self.map(ioas, va, len, 0, RW)
    }

    /// IOAS_UNMAP; returns the bytes unmapped.
    pub fn unmap(&self, ioas: u32, iova: u64, len: u64) -> Result<u64, Errno> {
        let mut cmd = IoasUnmap::new_zeroed();
        cmd.ioas_id = ioas;
        cmd.iova = iova;
        cmd.length = len;
        self.ioctl(&mut cmd).map(|_| cmd.length)
    }

    pub fn copy(
        &self,
        dst: u32,
        src: u32,
        src_iova: u64,
        len: u64,
        dst_iova: u64,
        flags: u32,
    ) -> Result<u64, Errno> {
        let mut cmd = IoasCopy::new_zeroed();
        cmd.dst_ioas_id = dst;
        cmd.src_ioas_id = src;
        cmd.src_iova = src_iova;
        cmd.length = len;
        cmd.dst_iova = dst_iova;
        cmd.flags = flags;
        self.ioctl(&mut cmd).map(|_| cmd.dst_iova)
    }

    /// IOAS_IOVA_RANGES with room for 16 ranges: (ranges, alignment).
    pub fn ranges(&self, ioas: u32) -> Result<(Vec<(u64, u64)>, u64), Errno> {
        let mut out = [IovaRange::new_zeroed(); 16];
        let mut cmd = IoasIovaRanges::new_zeroed();
        cmd.ioas_id = ioas;
        cmd.num_iovas = 16;
        cmd.allowed_iovas = out.as_mut_ptr() as u64;
        self.ioctl(&mut cmd)?;
        let n = cmd.num_iovas as usize;
        Ok((
            out[..n].iter().map(|r| (r.start, r.last)).collect(),
            cmd.out_iova_alignment,
        ))
    }

    pub fn option(
        &self,
        option_id: u32,
        op: u16,
        object_id: u32,
        val64: u64,
    ) -> Result<u64, Errno> {
        let mut cmd = IommuOption::new_zeroed();
        cmd.option_id = option_id;
        cmd.op = op;
        cmd.object_id = object_id;
        cmd.val64 = val64;
        self.ioctl(&mut cmd).map(|_| cmd.val64)
    }
}

pub fn set_size<T: IoctlCmd>(cmd: &mut T, size: u32) {
    cmd.as_mut_bytes()[..4].copy_from_slice(&size.to_ne_bytes());
}

/// `len` bytes of fresh anonymous read-write memory.
pub fn buffer(len: usize) -> Mmap {
    Mmap::anon(
        len,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
    )
    .expect("mmap")
}

/// A range no access is allowed to (PROT_NONE), held while the value lives, so
/// parallel tests cannot map something there.
pub fn noaccess(len: usize) -> Mmap {
    Mmap::anon(
        len,
        libc::PROT_NONE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
    )
    .expect("mmap")
}

/// A read-only range.
pub fn readonly(len: usize) -> Mmap {
    Mmap::anon(
        len,
        libc::PROT_READ,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
    )
    .expect("mmap")
}

/// Pins recorded on the page at `va` (the kernel's page pin count).
pub fn pins(va: u64) -> u32 {
    host::pins::count(va)
}

/// `IOMMU_TEST_OP_MOCK_DOMAIN(_FLAGS)` on `pt`: (stdev id, hwpt id, idev id).
pub fn mock_domain(fd: &Fd, pt: u32, flags: u32) -> Result<(u32, u32, u32), Errno> {
    use uapi::{TestMockDomain, TestMockDomainFlags};
    let cmd = if flags == 0 {
        fd.test(pt, &TestMockDomain::new_zeroed())?
    } else {
        let p = TestMockDomainFlags {
            dev_flags: flags,
            ..FromZeros::new_zeroed()
        };
        fd.test(pt, &p)?
    };
    let out: TestMockDomain = cmd.payload_as();
    Ok((out.out_stdev_id, out.out_hwpt_id, out.out_idev_id))
}

/// `IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE`: the HWPT now attached.
pub fn replace(fd: &Fd, stdev: u32, pt: u32) -> Result<u32, Errno> {
    use uapi::TestMockDomainReplace;
    let cmd = fd.test(stdev, &TestMockDomainReplace { pt_id: pt })?;
    Ok(cmd.payload_as::<TestMockDomainReplace>().pt_id)
}

/// `IOMMU_HWPT_ALLOC`: the new HWPT id.
pub fn hwpt_alloc(
    fd: &Fd,
    dev: u32,
    pt: u32,
    flags: u32,
    data_type: u32,
    data: &[u8],
) -> Result<u32, Errno> {
    let mut cmd = uapi::HwptAlloc::new_zeroed();
    cmd.dev_id = dev;
    cmd.pt_id = pt;
    cmd.flags = flags;
    cmd.data_type = data_type;
    cmd.data_len = data.len() as u32;
    cmd.data_uptr = if data.is_empty() {
        0
    } else {
        data.as_ptr() as u64
    };
    fd.ioctl(&mut cmd).map(|_| cmd.out_hwpt_id)
}

/// `IOMMU_TEST_OP_MD_CHECK_MAP`.
pub fn check_map(fd: &Fd, hwpt: u32, iova: u64, length: u64, uptr: u64) -> Result<(), Errno> {
    use uapi::TestCheckMap;
    fd.test(hwpt, &TestCheckMap { iova, length, uptr })
        .map(|_| ())
}

// ---- user memory wrappers --------------------------------------------------

use std::sync::atomic::{AtomicU64, Ordering};

use iommufd::mm::{AccountMode, Cap, PhysRun, UserMemory};

/// What a test's [`UserMemory`] changes; everything else forwards to
/// [`MmHooks::inner`] (wrapped in [`HookedMm`]).
pub trait MmHooks: Send + Sync + 'static {
    /// The memory the rest forwards to.
    fn inner(&self) -> &dyn UserMemory;
    /// `UserMemory::account`.
    fn account(&self, mode: AccountMode, n: u64, inc: bool) -> Result<(), Errno> {
        self.inner().account(mode, n, inc)
    }
    /// `UserMemory::capable`.
    fn capable(&self, cap: Cap) -> bool {
        self.inner().capable(cap)
    }
    /// Runs before each `write` (a copy to user memory).
    fn before_write(&self) {}
    /// Runs before each `pin`.
    fn before_pin(&self) {}
}

/// A [`UserMemory`] built from [`MmHooks`].
pub struct HookedMm<H>(pub H);

impl<H> std::ops::Deref for HookedMm<H> {
    type Target = H;
    fn deref(&self) -> &H {
        &self.0
    }
}

impl<H: MmHooks> UserMemory for HookedMm<H> {
    fn read(&self, va: u64, dst: &mut [u8]) -> Result<(), Errno> {
        self.0.inner().read(va, dst)
    }
    fn write(&self, va: u64, src: &[u8]) -> Result<(), Errno> {
        self.0.before_write();
        self.0.inner().write(va, src)
    }
    fn pin(&self, va: u64, n: u64, write: bool, out: &mut Vec<PhysRun>) -> Result<(), Errno> {
        self.0.before_pin();
        self.0.inner().pin(va, n, write, out)
    }
    fn unpin(&self, va: u64, n: u64) {
        self.0.inner().unpin(va, n);
    }
    fn read_phys(&self, pa: u64, dst: &mut [u8]) -> Result<(), Errno> {
        self.0.inner().read_phys(pa, dst)
    }
    fn write_phys(&self, pa: u64, src: &[u8]) -> Result<(), Errno> {
        self.0.inner().write_phys(pa, src)
    }
    fn resolve(&self, va: u64) -> Result<u64, Errno> {
        self.0.inner().resolve(va)
    }
    fn pin_count(&self, va: u64) -> Result<Option<u32>, Errno> {
        self.0.inner().pin_count(va)
    }
    fn account(&self, mode: AccountMode, n: u64, inc: bool) -> Result<(), Errno> {
        self.0.account(mode, n, inc)
    }
    fn capable(&self, cap: Cap) -> bool {
        self.0.capable(cap)
    }
}

/// A locked-memory counter with a limit in pages, charged as the kernel
/// charges `locked_vm` (nothing in `AccountMode::None`).
pub struct LockedLimit {
    limit: u64,
    used: AtomicU64,
}

impl LockedLimit {
    pub fn new(limit: u64) -> LockedLimit {
        LockedLimit {
            limit,
            used: AtomicU64::new(0),
        }
    }

    /// Charges (`inc`) or uncharges `n` pages: `ENOMEM` beyond the limit;
    /// uncharging more than was charged is a bug of the code under test.
    pub fn charge(&self, mode: AccountMode, n: u64, inc: bool) -> Result<(), Errno> {
        if mode == AccountMode::None {
            return Ok(());
        }
        let r = self
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |cur| {
                if inc {
                    cur.checked_add(n).filter(|&v| v <= self.limit)
                } else {
                    cur.checked_sub(n)
                }
            });
        assert!(r.is_ok() || inc, "locked_vm underflow");
        r.map(|_| ()).map_err(|_| Errno::NOMEM)
    }

    /// Pages charged now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::SeqCst)
    }
}
