//! Fault-injection sweep, kernel `iommufd_fail_nth` style, over the whole stack
//! (ioctl ABI, iommufd, iommu core, mock driver, page tables, host memory, fds).
//!
//! Each scenario is a sequence of steps that succeeds when nothing fails. It is
//! run with the thread's fail-nth set to N = 1, 2, 3, ...: the N-th fault point
//! it reaches fails (an allocation, a pin, a charge, an fd, a user copy), until a
//! run reaches fewer than N points; that last run must succeed. Around every
//! step and every run this checks:
//!
//! * the step that saw the injected failure returns the kernel's errno for it
//!   (`ENOMEM`, `EFAULT`) and, unless the failure was in copying a result out
//!   (after which the kernel also keeps the effect), left the context exactly as
//!   it was (normalized snapshot, pins, charges, objects, domains, fds);
//! * after every step, the invariants of every open context
//!   (`Ctx::check_invariants`: object table and IDs, `users` counts, groups,
//!   areas, page stores, pins, charges, reserved ranges, alignment, domain
//!   mappings) and the page-table invariants of every mock domain, and that the
//!   process-wide pins, charges, objects, page stores, domains and devices equal
//!   what the open contexts hold;
//! * after closing everything, that every count is back to where it started and
//!   the contexts were freed (no reference cycle).
//!
//! Run with `cargo test -p inproc --features fault-inject --test fail_nth`;
//! `-- --nocapture` prints the points swept per scenario, and so does a file
//! named by `FAIL_NTH_REPORT` (one line per scenario).

#![cfg(feature = "fault-inject")]

mod support;

use std::sync::{Arc, Mutex, Weak};

use fault::Site;
use host::sys::Mmap;
use inproc::{CapOverrides, FdTable, HostMm};
use iommu::Domain;
use iommufd::mm::FileOps;
use iommufd::IommufdFile;
use mock::{MockDomain, MockIommu};
use support::{hwpt_alloc, mock_domain, replace, Fd, FIXED_RW, PAGE, RW};
use uapi::ioctl::{VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA, VFIO_SET_IOMMU};
use uapi::{
    Errno, FaultAlloc, HwInfo, HwptGetDirtyBitmap, HwptInvalidate, HwptInvalidateSelftest,
    HwptPageResponse, HwptPgfault, HwptSetDirtyTracking, IoasAlloc, IoasAllowIovas, IovaRange,
    TestAccessPages, TestAccessReplaceIoas, TestAccessRw, TestAddReserved, TestCreateAccess,
    TestDestroyAccessPages, TestDirty, TestMemoryLimit, TestTriggerIopf, VFIO_TYPE1v2_IOMMU,
    VfioIoas, VfioIommuType1DmaMap, VfioIommuType1DmaUnmap, IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
    IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_DATA_SELFTEST, IOMMU_HWPT_DIRTY_TRACKING_ENABLE,
    IOMMU_HWPT_FAULT_ID_VALID, IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
    IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, IOMMU_HW_INFO_TYPE_DEFAULT, IOMMU_OPTION_HUGE_PAGES,
    IOMMU_OPTION_OP_GET, IOMMU_OPTION_OP_SET, IOMMU_OPTION_RLIMIT_MODE,
    IOMMU_TEST_INVALIDATE_FLAG_ALL, IOMMU_TEST_IOTLB_DEFAULT, IOMMU_VFIO_IOAS_GET,
    IOMMU_VFIO_IOAS_SET, MOCK_ACCESS_RW_SLOW_PATH, MOCK_ACCESS_RW_WRITE, MOCK_APERTURE_START,
    MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES, MOCK_FLAGS_ACCESS_WRITE, MOCK_FLAGS_DEVICE_HUGE_IOVA,
    MOCK_FLAGS_DEVICE_PASID, VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_WRITE,
    VFIO_DMA_UNMAP_FLAG_ALL, VFIO_TYPE1_IOMMU,
};
use zerocopy::{FromZeros, IntoBytes};

/// The kernel selftest's buffer size.
const BUFFER_SIZE: u64 = 2 << 20;
/// A run must reach its N-th point within this many iterations.
const MAX_POINTS: u32 = 2000;

/// Sweeps share process-wide counters (pins, charges, fds): one at a time.
static LOCK: Mutex<()> = Mutex::new(());

// ---- process-wide counters -------------------------------------------------

/// Open descriptors of the process, without the `/proc/<pid>/maps` that
/// `host::vma` keeps open per thread for its VMA queries. A descriptor closed
/// between listing and `readlink` is not counted: a finished test's thread
/// closes its maps descriptor as it exits, while the next sweep counts.
fn os_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| {
        d.filter_map(Result::ok)
            .filter(|e| {
                std::fs::read_link(e.path()).is_ok_and(|t| !t.to_string_lossy().ends_with("/maps"))
            })
            .count()
    })
}

/// What must come back to its starting value once every context is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Globals {
    objects: usize,
    pages: usize,
    domains: usize,
    devices: usize,
    pins: u64,
    user_locked: u64,
    table_fds: (usize, usize),
    os_fds: usize,
}

impl Globals {
    fn take() -> Globals {
        // The mock IOMMU's blocking domain is created with it, on first use.
        let devices = MockIommu::global().device_count();
        Globals {
            objects: iommufd::debug::live_objects(),
            pages: iommufd::debug::live_pages(),
            domains: iommu::live_domains(),
            devices,
            pins: host::pins::total(),
            user_locked: HostMm::user_locked_vm(),
            table_fds: FdTable::global().debug_counts(),
            os_fds: os_fds(),
        }
    }
}

/// The `(context, id, type)` of every live object in the snapshots.
fn object_ids(o: &Observed) -> std::collections::BTreeSet<(usize, String)> {
    o.snapshots
        .iter()
        .enumerate()
        .flat_map(|(i, snap)| {
            snap.lines()
                .filter(|l| l.starts_with("obj "))
                .map(move |l| (i, l.split(" users").next().unwrap_or(l).to_string()))
        })
        .collect()
}

/// What a mock domain's page table holds, checking its own invariants.
fn probe(d: &dyn Domain) -> Result<Option<u64>, String> {
    let Some(md) = MockDomain::from_domain(d) else {
        return Ok(None);
    };
    let pt = md.page_table();
    pt.check_invariants()
        .map_err(|e| format!("page table: {e}"))?;
    let mut bytes = 0;
    pt.for_each_leaf(&mut |leaf| bytes += leaf.size);
    Ok(Some(bytes))
}

// ---- one run of a scenario -------------------------------------------------

/// A failure that fired: the step and the site.
type Fired = (String, Site);

/// The state of one run: the fail-nth to arm, what was opened, what fired.
struct Run {
    name: &'static str,
    n: u32,
    armed: bool,
    base: Globals,
    mm: Arc<HostMm>,
    /// Open iommufd fds and their files.
    files: Vec<(i32, Arc<IommufdFile>)>,
    /// Every context opened, to check while alive (an access fd keeps one open).
    ctxs: Vec<Weak<IommufdFile>>,
    /// Access and fault-queue fds.
    extra: Vec<i32>,
    bufs: Vec<Mmap>,
    fired: Option<Fired>,
    tolerated: Vec<Fired>,
}

/// Observable state around a step.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    snapshots: Vec<String>,
    globals: Globals,
    mm_locked: u64,
}

impl Run {
    fn new(name: &'static str, n: u32, base: Globals, caps: &str) -> Run {
        Run {
            name,
            n,
            armed: false,
            base,
            mm: Arc::new(HostMm::with_caps(CapOverrides::parse(caps))),
            files: Vec::new(),
            ctxs: Vec::new(),
            extra: Vec::new(),
            bufs: Vec::new(),
            fired: None,
            tolerated: Vec::new(),
        }
    }

    fn at(&self, step: &str) -> String {
        format!("{} N={} step `{step}`", self.name, self.n)
    }

    /// Starts injecting: the N-th fault point from here fails
    /// (`fail_nth_enable()` in the kernel test).
    fn arm(&mut self) {
        if !self.armed {
            self.armed = true;
            fault::set_fail_nth(self.n);
        }
    }

    /// Runs `f` with injection suspended.
    fn quiet<T>(&self, f: impl FnOnce(&Self) -> T) -> T {
        let nth = fault::fail_nth();
        fault::set_fail_nth(0);
        let v = f(self);
        fault::set_fail_nth(nth);
        v
    }

    fn live_files(&self) -> Vec<Arc<IommufdFile>> {
        self.ctxs.iter().filter_map(Weak::upgrade).collect()
    }

    fn observe(&self) -> Observed {
        Observed {
            snapshots: self
                .live_files()
                .iter()
                .map(|f| f.ctx().debug_snapshot())
                .collect(),
            globals: Globals::take(),
            mm_locked: self.mm.mm_locked_vm(),
        }
    }

    /// Every live context's invariants, and the process-wide counters against
    /// what the contexts hold.
    fn check(&self, step: &str) {
        let mut sum = iommufd::debug::Usage::default();
        for f in self.live_files() {
            let u = f
                .ctx()
                .check_invariants(&probe)
                .unwrap_or_else(|e| panic!("{}: invariant: {e}", self.at(step)));
            sum.objects += u.objects;
            sum.pages += u.pages;
            sum.pinned += u.pinned;
            sum.accounted_user += u.accounted_user;
            sum.accounted_mm += u.accounted_mm;
            sum.domains += u.domains;
            sum.nested += u.nested;
            sum.selftest += u.selftest;
        }
        let g = Globals::take();
        let b = &self.base;
        let held = (
            g.objects - b.objects,
            g.pages - b.pages,
            g.domains - b.domains,
            g.devices - b.devices,
            g.pins - b.pins,
            g.user_locked - b.user_locked,
            self.mm.mm_locked_vm(),
        );
        let expected = (
            sum.objects,
            sum.pages,
            sum.domains + sum.nested,
            sum.selftest,
            sum.pinned,
            sum.accounted_user,
            sum.accounted_mm,
        );
        assert_eq!(
            held,
            expected,
            "{}: (objects, page stores, domains, devices, pins, user locked, mm locked) \
             alive vs held by the contexts",
            self.at(step)
        );
        let fds = self.files.len() + self.extra.len();
        assert_eq!(
            g.table_fds,
            (b.table_fds.0 + fds, b.table_fds.1),
            "{}: emulated fds (installed, reserved)",
            self.at(step)
        );
    }

    /// One step: `f` runs armed; then the checks of the module doc.
    fn step<T>(&mut self, name: &str, f: impl FnOnce() -> Result<T, Errno>) -> Result<T, Errno> {
        self.step_inner(name, f, |_, _| {}, false)
    }

    /// A step whose effect the kernel keeps when copying its result out fails
    /// (`IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE`, which may create an automatic HWPT).
    fn step_keeps<T>(
        &mut self,
        name: &str,
        f: impl FnOnce() -> Result<T, Errno>,
    ) -> Result<T, Errno> {
        self.step_inner(name, f, |_, _| {}, true)
    }

    /// [`Run::step`] that records what a successful `f` opened (`on_ok`) before
    /// the checks.
    fn step_with<T>(
        &mut self,
        name: &str,
        f: impl FnOnce() -> Result<T, Errno>,
        on_ok: impl FnOnce(&mut Run, &T),
    ) -> Result<T, Errno> {
        self.step_inner(name, f, on_ok, false)
    }

    fn step_inner<T>(
        &mut self,
        name: &str,
        f: impl FnOnce() -> Result<T, Errno>,
        on_ok: impl FnOnce(&mut Run, &T),
        keeps: bool,
    ) -> Result<T, Errno> {
        let before = self.quiet(Run::observe);
        let _ = fault::take_fired();
        let res = f();
        let fired = fault::take_fired();
        if let Ok(v) = &res {
            on_ok(self, v);
        }
        self.quiet(|r| r.after(name, res.as_ref().err().copied(), fired, &before, keeps));
        if let Some(site) = fired {
            match res {
                Err(_) => self.fired = Some((name.to_string(), site)),
                Ok(_) => self.tolerated.push((name.to_string(), site)),
            }
        }
        res
    }

    fn after(
        &self,
        name: &str,
        err: Option<Errno>,
        fired: Option<Site>,
        before: &Observed,
        keeps: bool,
    ) {
        if let (Some(err), Some(site)) = (err, fired) {
            assert_eq!(
                err.raw(),
                site.errno(),
                "{}: injected {} failed the step with {err:?}",
                self.at(name),
                site.name()
            );
            let after = self.observe();
            if site != Site::CopyToUser {
                assert_eq!(
                    &after,
                    before,
                    "{}: a failed step (injected {}) changed the state",
                    self.at(name),
                    site.name()
                );
            } else if !keeps {
                // Copying the result out failed after the operation itself: the
                // kernel keeps a map's or an unmap's effect, but aborts an object
                // it was creating, with its fd and its device.
                let (b, a) = (object_ids(before), object_ids(&after));
                assert!(
                    a.is_subset(&b)
                        && after.globals.table_fds.0 <= before.globals.table_fds.0
                        && after.globals.devices <= before.globals.devices,
                    "{}: an object created by a step that failed copying out \
                     survived: {b:?} -> {a:?}, {:?} -> {:?}",
                    self.at(name),
                    before.globals,
                    after.globals
                );
            }
        }
        self.check(name);
    }

    /// A user buffer that lives until the run ends.
    fn buffer(&mut self, len: u64) -> u64 {
        let m = support::buffer(len as usize);
        let va = m.addr();
        self.bufs.push(m);
        va
    }

    /// `open("/dev/iommu")` (or `/dev/vfio/vfio`): a context and its fd.
    fn open_dev(&mut self, vfio: bool) -> Result<Fd, Errno> {
        let mut env = inproc::env();
        env.mm = self.mm.clone();
        let (_, file) = self.step_with(
            "open",
            || {
                let file = IommufdFile::open(env, vfio);
                let fd =
                    FdTable::global().open_iommufd(file.clone(), libc::O_RDWR | libc::O_CLOEXEC)?;
                Ok((fd, file))
            },
            |r, (fd, file)| {
                r.ctxs.push(Arc::downgrade(file));
                r.files.push((*fd, file.clone()));
            },
        )?;
        Ok(Fd { file })
    }

    fn open(&mut self) -> Result<Fd, Errno> {
        self.open_dev(false)
    }

    /// Records an emulated fd created by a step, closed at the end of the run.
    fn track(&mut self, fd: u32) {
        self.extra.push(fd as i32);
    }

    /// `IOMMU_TEST_OP_CREATE_ACCESS` as a step.
    fn create_access(&mut self, fd: &Fd, ioas: u32, flags: u32) -> Result<u32, Errno> {
        self.step_with(
            "create access",
            || create_access(fd, ioas, flags),
            |r, &afd| r.track(afd),
        )
    }

    /// `IOMMU_FAULT_QUEUE_ALLOC` as a step.
    fn fault_alloc(&mut self, fd: &Fd) -> Result<(u32, u32), Errno> {
        self.step_with(
            "fault alloc",
            || fault_alloc(fd),
            |r, &(_, ffd)| r.track(ffd),
        )
    }

    /// `close(fd)` of an access or fault fd, as a step: releasing never fails, so
    /// no fault point may fire in it.
    fn close_extra(&mut self, fd: u32) {
        let fd = fd as i32;
        self.extra.retain(|&x| x != fd);
        let name = format!("close {fd}");
        let _ = fault::take_fired();
        FdTable::global().close(fd).expect("close");
        assert_eq!(
            fault::take_fired(),
            None,
            "{}: a fault point fired while releasing a file",
            self.at(&name)
        );
        self.quiet(|r| r.check(&name));
    }

    /// `close()` of an iommufd fd, as a step (see [`Run::close_extra`]).
    fn close_dev(&mut self, fd: Fd) {
        let pos = self
            .files
            .iter()
            .position(|(_, f)| Arc::ptr_eq(f, &fd.file))
            .expect("an open iommufd");
        let (raw, _) = self.files.remove(pos);
        drop(fd);
        let _ = fault::take_fired();
        FdTable::global().close(raw).expect("close");
        assert_eq!(
            fault::take_fired(),
            None,
            "{}: a fault point fired while releasing a context",
            self.at("close iommufd")
        );
        self.quiet(|r| r.check("close iommufd"));
    }

    /// Disarms, checks once more, closes everything and checks for leaks.
    fn finish(mut self) -> (Option<Fired>, Vec<Fired>) {
        let remaining = fault::fail_nth();
        fault::set_fail_nth(0);
        assert!(self.armed || self.n == 0, "{}: never armed", self.name);
        if self.armed && self.n != 0 && remaining == 0 {
            assert!(
                self.fired.is_some() || !self.tolerated.is_empty(),
                "{}: the failure fired outside any step",
                self.at("end")
            );
        }
        self.check("end");
        for fd in std::mem::take(&mut self.extra) {
            FdTable::global().close(fd).expect("close");
        }
        let weak: Vec<Weak<IommufdFile>> = std::mem::take(&mut self.ctxs);
        let ctx_weak: Vec<_> = weak
            .iter()
            .filter_map(Weak::upgrade)
            .map(|f| Arc::downgrade(f.ctx()))
            .collect();
        for (fd, file) in std::mem::take(&mut self.files) {
            drop(file);
            FdTable::global().close(fd).expect("close");
        }
        assert!(
            weak.iter().all(|w| w.upgrade().is_none()),
            "{}: a context outlived all its fds",
            self.at("close")
        );
        assert!(
            ctx_weak.iter().all(|w| w.upgrade().is_none()),
            "{}: a context's state outlived its file",
            self.at("close")
        );
        let mut g = Globals::take();
        // A leak is a descriptor more than before; one fewer is a descriptor
        // the process (test harness, a dropped handle elsewhere) closed
        // meanwhile, not this scenario's.
        g.os_fds = g.os_fds.max(self.base.os_fds);
        assert_eq!(g, self.base, "{}: leaked after close", self.at("close"));
        assert_eq!(
            self.mm.mm_locked_vm(),
            0,
            "{}: mm charge leaked",
            self.at("close")
        );
        (self.fired.take(), std::mem::take(&mut self.tolerated))
    }
}

impl Drop for Run {
    /// After a failed check: disarm and close what the run opened, so the other
    /// sweeps start clean.
    fn drop(&mut self) {
        fault::set_fail_nth(0);
        let extra = std::mem::take(&mut self.extra);
        let files = std::mem::take(&mut self.files);
        // Best effort: a second panic here would abort the whole test binary.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            for fd in extra {
                let _ = FdTable::global().close(fd);
            }
            for (fd, file) in files {
                drop(file);
                let _ = FdTable::global().close(fd);
            }
        }));
    }
}

/// Sweeps `scenario` over N = 0 (unarmed), 1, 2, ... until the injected failure
/// no longer fires; returns the number of points swept.
fn sweep(name: &'static str, caps: &str, scenario: fn(&mut Run) -> Result<(), Errno>) -> u32 {
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    sweep_locked(name, caps, scenario)
}

/// [`sweep`] for a caller that holds [`LOCK`].
fn sweep_locked(
    name: &'static str,
    caps: &str,
    scenario: fn(&mut Run) -> Result<(), Errno>,
) -> u32 {
    let base = Globals::take();
    let mut points = 0;
    let mut tolerated = 0;
    let mut sites = std::collections::BTreeMap::<&str, u32>::new();
    for n in 0..=MAX_POINTS {
        let mut run = Run::new(name, n, base, caps);
        let res = scenario(&mut run);
        let remaining = if run.armed { fault::fail_nth() } else { 0 };
        let fired_here = n != 0 && run.armed && remaining == 0;
        let (fired, tol) = run.finish();
        if n == 0 {
            assert_eq!(res, Ok(()), "{name}: the run without injection failed");
            continue;
        }
        tolerated += tol.len();
        if !fired_here {
            assert_eq!(
                res,
                Ok(()),
                "{name}: the run without injection (N={n}) failed"
            );
            let line =
                format!("{name}: {points} points swept, {tolerated} tolerated, sites {sites:?}");
            eprintln!("fail_nth {line}");
            if let Some(path) = std::env::var_os("FAIL_NTH_REPORT") {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(path)
                    .expect("FAIL_NTH_REPORT");
                writeln!(f, "{line}").expect("FAIL_NTH_REPORT");
            }
            return points;
        }
        points += 1;
        if let Some((_, site)) = fired {
            *sites.entry(site.name()).or_default() += 1;
        }
    }
    panic!("{name}: more than {MAX_POINTS} fault points");
}

// ---- ioctl helpers returning errors ----------------------------------------

fn ioas_alloc(fd: &Fd) -> Result<u32, Errno> {
    let mut cmd = IoasAlloc::new_zeroed();
    fd.ioctl(&mut cmd).map(|_| cmd.out_ioas_id)
}

fn allow_iovas(fd: &Fd, ioas: u32, ranges: &[(u64, u64)]) -> Result<(), Errno> {
    let r: Vec<IovaRange> = ranges
        .iter()
        .map(|&(start, last)| IovaRange { start, last })
        .collect();
    let mut cmd = IoasAllowIovas::new_zeroed();
    cmd.ioas_id = ioas;
    cmd.num_iovas = r.len() as u32;
    cmd.allowed_iovas = r.as_ptr() as u64;
    fd.ioctl(&mut cmd).map(|_| ())
}

fn temp_memory_limit(fd: &Fd, limit: u32) -> Result<(), Errno> {
    fd.test(0, &TestMemoryLimit { limit }).map(|_| ())
}

fn add_reserved(fd: &Fd, ioas: u32, start: u64, length: u64) -> Result<(), Errno> {
    fd.test(ioas, &TestAddReserved { start, length })
        .map(|_| ())
}

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

fn access_pages(fd: &Fd, afd: u32, iova: u64, length: u64, uptr: u64) -> Result<u32, Errno> {
    let p = TestAccessPages {
        flags: MOCK_FLAGS_ACCESS_WRITE,
        out_access_pages_id: 0,
        iova,
        length,
        uptr,
    };
    Ok(fd
        .test(afd, &p)?
        .payload_as::<TestAccessPages>()
        .out_access_pages_id)
}

fn destroy_access_pages(fd: &Fd, afd: u32, id: u32) -> Result<(), Errno> {
    let p = TestDestroyAccessPages {
        access_pages_id: id,
    };
    fd.test(afd, &p).map(|_| ())
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

fn access_replace(fd: &Fd, afd: u32, ioas: u32) -> Result<(), Errno> {
    fd.test(afd, &TestAccessReplaceIoas { ioas_id: ioas })
        .map(|_| ())
}

fn hw_info(fd: &Fd, dev: u32) -> Result<(), Errno> {
    let mut data = [0u8; 16];
    let mut cmd = HwInfo::new_zeroed();
    cmd.dev_id = dev;
    cmd.out_data_type = IOMMU_HW_INFO_TYPE_DEFAULT;
    cmd.data_len = data.len() as u32;
    cmd.data_uptr = data.as_mut_ptr() as u64;
    fd.ioctl(&mut cmd).map(|_| ())
}

fn selftest_data() -> [u8; 4] {
    IOMMU_TEST_IOTLB_DEFAULT.to_ne_bytes()
}

fn invalidate(fd: &Fd, hwpt: u32, entries: &[HwptInvalidateSelftest]) -> Result<(), Errno> {
    let mut cmd = HwptInvalidate::new_zeroed();
    cmd.hwpt_id = hwpt;
    cmd.data_type = IOMMU_HWPT_INVALIDATE_DATA_SELFTEST;
    cmd.entry_len = 8;
    cmd.entry_num = entries.len() as u32;
    cmd.data_uptr = entries.as_ptr() as u64;
    fd.ioctl(&mut cmd).map(|_| ())
}

fn dirty_tracking(fd: &Fd, hwpt: u32, enable: bool) -> Result<(), Errno> {
    let mut cmd = HwptSetDirtyTracking::new_zeroed();
    cmd.hwpt_id = hwpt;
    cmd.flags = if enable {
        IOMMU_HWPT_DIRTY_TRACKING_ENABLE
    } else {
        0
    };
    fd.ioctl(&mut cmd).map(|_| ())
}

fn get_dirty(fd: &Fd, hwpt: u32, iova: u64, length: u64, flags: u32) -> Result<(), Errno> {
    let mut bitmap = vec![0u64; (length / 2048).div_ceil(64) as usize];
    let mut cmd = HwptGetDirtyBitmap::new_zeroed();
    cmd.hwpt_id = hwpt;
    cmd.iova = iova;
    cmd.length = length;
    cmd.page_size = 2048;
    cmd.data = bitmap.as_mut_ptr() as u64;
    cmd.flags = flags;
    fd.ioctl(&mut cmd).map(|_| ())
}

fn mark_dirty(fd: &Fd, hwpt: u32, iova: u64, length: u64) -> Result<u64, Errno> {
    let bits = vec![0x5555_5555_5555_5555u64; (length / 2048).div_ceil(64) as usize];
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

fn fault_alloc(fd: &Fd) -> Result<(u32, u32), Errno> {
    let mut cmd = FaultAlloc::new_zeroed();
    fd.ioctl(&mut cmd)
        .map(|_| (cmd.out_fault_id, cmd.out_fault_fd))
}

fn emulated_file(fd: u32) -> Result<Arc<dyn FileOps>, Errno> {
    match FdTable::global().get(fd as i32) {
        Some(inproc::FdEntry::File(f)) => Ok(f),
        _ => Err(Errno::BADF),
    }
}

fn vfio_ioas_set(fd: &Fd, ioas: u32) -> Result<(), Errno> {
    let mut cmd = VfioIoas::new_zeroed();
    cmd.op = IOMMU_VFIO_IOAS_SET;
    cmd.ioas_id = ioas;
    fd.ioctl(&mut cmd).map(|_| ())
}

fn vfio_ioas_get(fd: &Fd) -> Result<u32, Errno> {
    let mut cmd = VfioIoas::new_zeroed();
    cmd.op = IOMMU_VFIO_IOAS_GET;
    fd.ioctl(&mut cmd).map(|_| cmd.ioas_id)
}

fn map_dma(fd: &Fd, vaddr: u64, iova: u64, size: u64) -> Result<(), Errno> {
    let mut m = VfioIommuType1DmaMap {
        argsz: 32,
        flags: VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
        vaddr,
        iova,
        size,
    };
    fd.ioctl_ptr(VFIO_IOMMU_MAP_DMA, m.as_mut_bytes().as_mut_ptr() as u64)
        .map(|_| ())
}

fn unmap_dma(fd: &Fd, flags: u32, iova: u64, size: u64) -> Result<u64, Errno> {
    let mut u = VfioIommuType1DmaUnmap {
        argsz: 24,
        flags,
        iova,
        size,
    };
    fd.ioctl_ptr(VFIO_IOMMU_UNMAP_DMA, u.as_mut_bytes().as_mut_ptr() as u64)?;
    Ok(u.size)
}

fn vfio_get_info(fd: &Fd) -> Result<(), Errno> {
    let mut b = [0u8; 128];
    b[..4].copy_from_slice(&128u32.to_ne_bytes());
    fd.ioctl_ptr(VFIO_IOMMU_GET_INFO, b.as_mut_ptr() as u64)
        .map(|_| ())
}

const APERTURE: u64 = MOCK_APERTURE_START;

// ---- the scenarios of the kernel's iommufd_fail_nth -----------------------

/// Kernel `basic`: IOAS alloc, ranges, allow, map, copy, unmap, unmap again.
fn sc_basic(r: &mut Run) -> Result<(), Errno> {
    let buf = r.buffer(BUFFER_SIZE);
    r.arm();
    let fd = r.open()?;
    let ioas = r.step("ioas alloc", || ioas_alloc(&fd))?;
    r.step("iova ranges", || fd.ranges(ioas))?;
    r.step("allow iovas", || {
        allow_iovas(&fd, ioas, &[(16 << 10, BUFFER_SIZE + (16 << 10) * 600 - 1)])
    })?;
    let iova = r.step("map", || fd.map_auto(ioas, buf, BUFFER_SIZE))?;
    r.step("copy", || fd.copy(ioas, ioas, iova, 160, 0, RW))?;
    r.step("unmap", || fd.unmap(ioas, iova, BUFFER_SIZE))?;
    let res = r.step("unmap absent", || fd.unmap(ioas, iova, BUFFER_SIZE));
    assert!(res.is_err());
    Ok(())
}

/// Kernel `map_domain`: a domain, a map into it, the device destroyed and re-added.
fn sc_map_domain(r: &mut Run) -> Result<(), Errno> {
    let buf = r.buffer(BUFFER_SIZE);
    let fd = r.open()?;
    let ioas = r.step("ioas alloc", || ioas_alloc(&fd))?;
    r.step("temp memory limit", || temp_memory_limit(&fd, 32))?;
    r.arm();
    let (stdev, _, _) = r.step("mock domain", || mock_domain(&fd, ioas, 0))?;
    r.step("map", || fd.map_auto(ioas, buf, 262144))?;
    r.step("destroy stdev", || fd.destroy(stdev))?;
    r.step("mock domain again", || mock_domain(&fd, ioas, 0))?;
    Ok(())
}

/// Kernel `map_two_domains`.
fn sc_map_two_domains(r: &mut Run) -> Result<(), Errno> {
    let buf = r.buffer(BUFFER_SIZE);
    let fd = r.open()?;
    let ioas = r.step("ioas alloc", || ioas_alloc(&fd))?;
    r.step("temp memory limit", || temp_memory_limit(&fd, 32))?;
    let (stdev, _, _) = r.step("mock domain", || mock_domain(&fd, ioas, 0))?;
    r.arm();
    let (stdev2, _, _) = r.step("mock domain 2", || mock_domain(&fd, ioas, 0))?;
    r.step("map", || fd.map_auto(ioas, buf, 262144))?;
    r.step("destroy stdev", || fd.destroy(stdev))?;
    r.step("destroy stdev2", || fd.destroy(stdev2))?;
    r.step("mock domain", || mock_domain(&fd, ioas, 0))?;
    r.step("mock domain 2", || mock_domain(&fd, ioas, 0))?;
    Ok(())
}

/// Kernel `access_rw`: fast and slow paths, small and large.
fn sc_access_rw(r: &mut Run) -> Result<(), Errno> {
    let buf = r.buffer(BUFFER_SIZE);
    let fd = r.open()?;
    let ioas = r.step("ioas alloc", || ioas_alloc(&fd))?;
    r.step("temp memory limit", || temp_memory_limit(&fd, 32))?;
    let iova = r.step("map", || fd.map_auto(ioas, buf, 262144))?;
    r.arm();
    let afd = r.create_access(&fd, ioas, 0)?;
    let mut tmp = [0u8; 64];
    for flags in [
        0,
        MOCK_ACCESS_RW_WRITE,
        MOCK_ACCESS_RW_SLOW_PATH,
        MOCK_ACCESS_RW_SLOW_PATH | MOCK_ACCESS_RW_WRITE,
    ] {
        r.step("access rw", || access_rw(&fd, afd, iova, &mut tmp, flags))?;
    }
    let mut big = vec![0u8; 4096 * 8];
    r.step("access rw big slow", || {
        access_rw(&fd, afd, iova, &mut big, MOCK_ACCESS_RW_SLOW_PATH)
    })?;
    r.close_extra(afd);
    Ok(())
}

/// Kernel `access_pin`.
fn sc_access_pin(r: &mut Run) -> Result<(), Errno> {
    let buf = r.buffer(BUFFER_SIZE);
    let fd = r.open()?;
    let ioas = r.step("ioas alloc", || ioas_alloc(&fd))?;
    r.step("temp memory limit", || temp_memory_limit(&fd, 32))?;
    let iova = r.step("map", || fd.map_auto(ioas, buf, BUFFER_SIZE))?;
    let afd = r.create_access(&fd, ioas, MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES)?;
    r.arm();
    let id = r.step("access pages", || {
        access_pages(&fd, afd, iova, BUFFER_SIZE, buf)
    })?;
    r.step("destroy access pages", || {
        destroy_access_pages(&fd, afd, id)
    })?;
    r.close_extra(afd);
    Ok(())
}

/// Kernel `access_pin_domain`.
fn sc_access_pin_domain(r: &mut Run) -> Result<(), Errno> {
    let buf = r.buffer(BUFFER_SIZE);
    let fd = r.open()?;
    let ioas = r.step("ioas alloc", || ioas_alloc(&fd))?;
    r.step("temp memory limit", || temp_memory_limit(&fd, 32))?;
    let (stdev, _, _) = r.step("mock domain", || mock_domain(&fd, ioas, 0))?;
    let iova = r.step("map", || fd.map_auto(ioas, buf, BUFFER_SIZE))?;
    let afd = r.create_access(&fd, ioas, MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES)?;
    r.arm();
    let id = r.step("access pages", || {
        access_pages(&fd, afd, iova, BUFFER_SIZE, buf)
    })?;
    r.step("destroy access pages", || {
        destroy_access_pages(&fd, afd, id)
    })?;
    r.close_extra(afd);
    r.step("destroy stdev", || fd.destroy(stdev))?;
    Ok(())
}

/// Kernel `device`: bind, hw info, HWPT alloc, replace to an IOAS and a HWPT.
fn sc_device(r: &mut Run) -> Result<(), Errno> {
    let buf = r.buffer(BUFFER_SIZE);
    let fd = r.open()?;
    let ioas = r.step("ioas alloc", || ioas_alloc(&fd))?;
    let ioas2 = r.step("ioas alloc 2", || ioas_alloc(&fd))?;
    r.step("map", || fd.map_fixed(ioas, buf, PAGE, APERTURE))?;
    r.step("map 2", || fd.map_fixed(ioas2, buf, PAGE, APERTURE))?;
    r.arm();
    let (stdev, _, idev) = r.step("mock domain", || mock_domain(&fd, ioas, 0))?;
    r.step("hw info", || hw_info(&fd, idev))?;
    let hwpt = r.step("hwpt alloc", || hwpt_alloc(&fd, idev, ioas, 0, 0, &[]))?;
    r.step_keeps("replace ioas2", || replace(&fd, stdev, ioas2))?;
    r.step_keeps("replace hwpt", || replace(&fd, stdev, hwpt))?;
    Ok(())
}

// ---- more scenarios ----------------------------------------------------------

/// Fixed and automatic IOVAs into several areas, then a domain added over them
/// (every area filled into a new domain), a second domain, unmap of one area.
fn sc_map_then_attach(r: &mut Run) -> Result<(), Errno> {
    let buf = r.buffer(BUFFER_SIZE);
    r.arm();
    let fd = r.open()?;
    let ioas = r.step("ioas alloc", || ioas_alloc(&fd))?;
    r.step("allow iovas", || {
        allow_iovas(&fd, ioas, &[(APERTURE, APERTURE + (64 << 20) - 1)])
    })?;
    let a = r.step("map fixed", || fd.map_fixed(ioas, buf, 16 * PAGE, APERTURE))?;
    r.step("map fixed 2", || {
        fd.map_fixed(ioas, buf + 16 * PAGE, 16 * PAGE, APERTURE + (1 << 20))
    })?;
    r.step("map auto", || fd.map_auto(ioas, buf + 32 * PAGE, 64 * PAGE))?;
    r.step("mock domain", || mock_domain(&fd, ioas, 0))?;
    let (stdev2, _, _) = r.step("mock domain 2", || mock_domain(&fd, ioas, 0))?;
    r.step("unmap", || fd.unmap(ioas, a, 16 * PAGE))?;
    r.step("destroy stdev2", || fd.destroy(stdev2))?;
    r.step("map again", || fd.map_fixed(ioas, buf, 8 * PAGE, a))?;
    Ok(())
}

/// COPY between two IOASes, each with a domain, fixed and automatic destination.
fn sc_copy_between_ioas(r: &mut Run) -> Result<(), Errno> {
    let buf = r.buffer(BUFFER_SIZE);
    let fd = r.open()?;
    let src = r.step("ioas alloc", || ioas_alloc(&fd))?;
    let dst = r.step("ioas alloc 2", || ioas_alloc(&fd))?;
    r.arm();
    r.step("mock domain src", || mock_domain(&fd, src, 0))?;
    r.step("mock domain dst", || mock_domain(&fd, dst, 0))?;
    let iova = r.step("map", || fd.map_fixed(src, buf, 64 * PAGE, APERTURE))?;
    r.step("copy fixed", || {
        fd.copy(dst, src, iova, 32 * PAGE, APERTURE + (4 << 20), FIXED_RW)
    })?;
    let d = r.step("copy auto", || {
        fd.copy(dst, src, iova + 32 * PAGE, 32 * PAGE, 0, RW)
    })?;
    r.step("unmap src", || fd.unmap(src, iova, 64 * PAGE))?;
    r.step("unmap dst", || fd.unmap(dst, d, 32 * PAGE))?;
    Ok(())
}

/// UNMAP of everything (iova 0, length ~0) with several areas and a domain.
fn sc_unmap_all(r: &mut Run) -> Result<(), Errno> {
    let buf = r.buffer(BUFFER_SIZE);
    let fd = r.open()?;
    let ioas = r.step("ioas alloc", || ioas_alloc(&fd))?;
    r.arm();
    r.step("mock domain", || mock_domain(&fd, ioas, 0))?;
    for i in 0..3 {
        r.step("map", || {
            fd.map_fixed(
                ioas,
                buf + i * 32 * PAGE,
                32 * PAGE,
                APERTURE + i * (1 << 20),
            )
        })?;
    }
    r.step("unmap all", || fd.unmap(ioas, 0, u64::MAX))?;
    Ok(())
}

/// Allowed ranges, a test reservation, maps inside them.
fn sc_allow_and_reserve(r: &mut Run) -> Result<(), Errno> {
    let buf = r.buffer(BUFFER_SIZE);
    let fd = r.open()?;
    let ioas = r.step("ioas alloc", || ioas_alloc(&fd))?;
    r.arm();
    r.step("allow iovas", || {
        allow_iovas(
            &fd,
            ioas,
            &[
                (APERTURE, APERTURE + (8 << 20) - 1),
                (APERTURE + (64 << 20), APERTURE + (128 << 20) - 1),
            ],
        )
    })?;
    r.step("add reserved", || {
        add_reserved(&fd, ioas, APERTURE + (256 << 20), 1 << 20)
    })?;
    r.step("iova ranges", || fd.ranges(ioas))?;
    r.step("map auto", || fd.map_auto(ioas, buf, 64 * PAGE))?;
    r.step("mock domain", || mock_domain(&fd, ioas, 0))?;
    r.step("map auto 2", || {
        fd.map_auto(ioas, buf + 64 * PAGE, 64 * PAGE)
    })?;
    r.step("allow iovas again", || {
        allow_iovas(&fd, ioas, &[(APERTURE, APERTURE + (16 << 20) - 1)])
    })?;
    Ok(())
}

/// A paging HWPT allocated on an IOAS with areas, a device moved onto it and
/// back, the HWPT destroyed.
fn sc_hwpt_paging(r: &mut Run) -> Result<(), Errno> {
    let buf = r.buffer(BUFFER_SIZE);
    let fd = r.open()?;
    let ioas = r.step("ioas alloc", || ioas_alloc(&fd))?;
    r.step("map", || fd.map_fixed(ioas, buf, 128 * PAGE, APERTURE))?;
    r.arm();
    let (stdev, _, idev) = r.step("mock domain", || mock_domain(&fd, ioas, 0))?;
    let hwpt = r.step("hwpt alloc", || hwpt_alloc(&fd, idev, ioas, 0, 0, &[]))?;
    r.step_keeps("replace hwpt", || replace(&fd, stdev, hwpt))?;
    r.step("map more", || {
        fd.map_fixed(ioas, buf + 128 * PAGE, 128 * PAGE, APERTURE + (1 << 20))
    })?;
    r.step_keeps("replace ioas", || replace(&fd, stdev, ioas))?;
    r.step("destroy hwpt", || fd.destroy(hwpt))?;
    Ok(())
}

/// Nesting: a parent HWPT, a nested HWPT with selftest data, the device on it,
/// cache invalidation, teardown in order.
fn sc_hwpt_nested(r: &mut Run) -> Result<(), Errno> {
    let buf = r.buffer(BUFFER_SIZE);
    let fd = r.open()?;
    let ioas = r.step("ioas alloc", || ioas_alloc(&fd))?;
    let (stdev, _, idev) = r.step("mock domain", || mock_domain(&fd, ioas, 0))?;
    r.arm();
    let parent = r.step("hwpt alloc parent", || {
        hwpt_alloc(&fd, idev, ioas, IOMMU_HWPT_ALLOC_NEST_PARENT, 0, &[])
    })?;
    let data = selftest_data();
    let nested = r.step("hwpt alloc nested", || {
        hwpt_alloc(&fd, idev, parent, 0, IOMMU_HWPT_DATA_SELFTEST, &data)
    })?;
    r.step_keeps("replace nested", || replace(&fd, stdev, nested))?;
    r.step("map", || fd.map_fixed(ioas, buf, 64 * PAGE, APERTURE))?;
    let e = [
        HwptInvalidateSelftest {
            flags: 0,
            iotlb_id: 1,
        },
        HwptInvalidateSelftest {
            flags: IOMMU_TEST_INVALIDATE_FLAG_ALL,
            iotlb_id: 0,
        },
    ];
    r.step("invalidate", || invalidate(&fd, nested, &e))?;
    r.step_keeps("replace parent", || replace(&fd, stdev, parent))?;
    r.step("destroy nested", || fd.destroy(nested))?;
    r.step_keeps("replace ioas", || replace(&fd, stdev, ioas))?;
    r.step("destroy parent", || fd.destroy(parent))?;
    Ok(())
}

/// Dirty tracking: a dirty-capable HWPT, marks, bitmap reads with and without
/// clearing.
fn sc_hwpt_dirty(r: &mut Run) -> Result<(), Errno> {
    let buf = r.buffer(BUFFER_SIZE);
    let fd = r.open()?;
    let ioas = r.step("ioas alloc", || ioas_alloc(&fd))?;
    let (stdev, _, idev) = r.step("mock domain", || mock_domain(&fd, ioas, 0))?;
    r.arm();
    let hwpt = r.step("hwpt alloc dirty", || {
        hwpt_alloc(&fd, idev, ioas, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, 0, &[])
    })?;
    r.step_keeps("replace hwpt", || replace(&fd, stdev, hwpt))?;
    let len = 64 * PAGE;
    r.step("map", || fd.map_fixed(ioas, buf, len, APERTURE))?;
    r.step("enable tracking", || dirty_tracking(&fd, hwpt, true))?;
    r.step("mark dirty", || mark_dirty(&fd, hwpt, APERTURE, len))?;
    r.step("read dirty no clear", || {
        get_dirty(
            &fd,
            hwpt,
            APERTURE,
            len,
            IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
        )
    })?;
    r.step("read dirty", || get_dirty(&fd, hwpt, APERTURE, len, 0))?;
    r.step("disable tracking", || dirty_tracking(&fd, hwpt, false))?;
    r.step_keeps("replace ioas", || replace(&fd, stdev, ioas))?;
    Ok(())
}

/// A fault queue: allocation, a fault-capable nested HWPT, a page request read
/// and answered through the fd, the fd closed with the HWPT still live.
fn sc_fault_queue(r: &mut Run) -> Result<(), Errno> {
    let fd = r.open()?;
    let ioas = r.step("ioas alloc", || ioas_alloc(&fd))?;
    let (stdev, _, idev) = r.step("mock domain", || mock_domain(&fd, ioas, 0))?;
    let parent = r.step("hwpt alloc parent", || {
        hwpt_alloc(&fd, idev, ioas, IOMMU_HWPT_ALLOC_NEST_PARENT, 0, &[])
    })?;
    r.arm();
    let (fault_id, fault_fd) = r.fault_alloc(&fd)?;
    let data = selftest_data();
    let nested = r.step("hwpt alloc iopf", || {
        let mut cmd = uapi::HwptAlloc::new_zeroed();
        cmd.dev_id = idev;
        cmd.pt_id = parent;
        cmd.flags = IOMMU_HWPT_FAULT_ID_VALID;
        cmd.fault_id = fault_id;
        cmd.data_type = IOMMU_HWPT_DATA_SELFTEST;
        cmd.data_len = 4;
        cmd.data_uptr = data.as_ptr() as u64;
        fd.ioctl(&mut cmd).map(|_| cmd.out_hwpt_id)
    })?;
    r.step_keeps("replace iopf", || replace(&fd, stdev, nested))?;
    let trigger = TestTriggerIopf {
        dev_id: idev,
        pasid: 1,
        grpid: 2,
        perm: 3,
        addr: 0x1000,
    };
    r.step("trigger iopf", || fd.test(0, &trigger))?;
    r.step("trigger iopf 2", || fd.test(0, &trigger))?;
    let mut rec = [HwptPgfault::new_zeroed(); 2];
    let n = r.step("read faults", || {
        emulated_file(fault_fd)?.read(rec.as_mut_ptr() as u64, 40)
    })?;
    assert_eq!(n, 40);
    let resp = HwptPageResponse {
        cookie: rec[0].cookie,
        code: 0,
    };
    r.step("respond", || {
        emulated_file(fault_fd)?.write(&resp as *const HwptPageResponse as u64, 8)
    })?;
    r.close_extra(fault_fd);
    r.step_keeps("replace parent", || replace(&fd, stdev, parent))?;
    r.step("destroy iopf hwpt", || fd.destroy(nested))?;
    r.step("destroy fault", || fd.destroy(fault_id))?;
    Ok(())
}

/// VFIO type1v2 on `/dev/vfio/vfio`: compat IOAS, MM accounting, map, get info,
/// unmap, unmap all.
fn sc_vfio_type1v2(r: &mut Run) -> Result<(), Errno> {
    let buf = r.buffer(BUFFER_SIZE);
    r.arm();
    let fd = r.open_dev(true)?;
    let ioas = r.step("ioas alloc", || ioas_alloc(&fd))?;
    r.step("mock domain", || mock_domain(&fd, ioas, 0))?;
    r.step("vfio ioas set", || vfio_ioas_set(&fd, ioas))?;
    r.step("vfio ioas get", || vfio_ioas_get(&fd))?;
    r.step("set iommu", || {
        fd.ioctl_ptr(VFIO_SET_IOMMU, u64::from(VFIO_TYPE1v2_IOMMU))
    })?;
    r.step("map dma", || map_dma(&fd, buf, APERTURE, 64 * PAGE))?;
    r.step("map dma 2", || {
        map_dma(&fd, buf + 64 * PAGE, APERTURE + (1 << 20), 64 * PAGE)
    })?;
    r.step("get info", || vfio_get_info(&fd))?;
    r.step("unmap dma", || unmap_dma(&fd, 0, APERTURE, 64 * PAGE))?;
    r.step("unmap all", || {
        unmap_dma(&fd, VFIO_DMA_UNMAP_FLAG_ALL, 0, 0)
    })?;
    Ok(())
}

/// VFIO type1 (huge pages off): unmapping inside a mapping splits its area.
fn sc_vfio_type1_split(r: &mut Run) -> Result<(), Errno> {
    let buf = r.buffer(BUFFER_SIZE);
    let fd = r.open_dev(true)?;
    let ioas = r.step("ioas alloc", || ioas_alloc(&fd))?;
    r.step("mock domain", || mock_domain(&fd, ioas, 0))?;
    r.step("vfio ioas set", || vfio_ioas_set(&fd, ioas))?;
    r.arm();
    r.step("set iommu", || {
        fd.ioctl_ptr(VFIO_SET_IOMMU, u64::from(VFIO_TYPE1_IOMMU))
    })?;
    r.step("map dma", || map_dma(&fd, buf, APERTURE, 16 * PAGE))?;
    r.step("unmap middle", || {
        unmap_dma(&fd, 0, APERTURE + 4 * PAGE, 4 * PAGE)
    })?;
    r.step("unmap head", || unmap_dma(&fd, 0, APERTURE, PAGE))?;
    r.step("unmap all", || {
        unmap_dma(&fd, VFIO_DMA_UNMAP_FLAG_ALL, 0, 0)
    })?;
    Ok(())
}

/// IOMMU_OPTION: accounting mode (MM), huge pages off and on around a domain.
fn sc_options(r: &mut Run) -> Result<(), Errno> {
    let buf = r.buffer(BUFFER_SIZE);
    r.arm();
    let fd = r.open()?;
    r.step("get rlimit mode", || {
        fd.option(IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_OP_GET, 0, 0)
    })?;
    r.step("set rlimit mode mm", || {
        fd.option(IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_OP_SET, 0, 1)
    })?;
    let ioas = r.step("ioas alloc", || ioas_alloc(&fd))?;
    r.step("huge pages off", || {
        fd.option(IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_SET, ioas, 0)
    })?;
    r.step("mock domain", || mock_domain(&fd, ioas, 0))?;
    r.step("map", || fd.map_fixed(ioas, buf, 32 * PAGE, APERTURE))?;
    r.step("get huge pages", || {
        fd.option(IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, ioas, 0)
    })?;
    r.step("huge pages on", || {
        fd.option(IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_SET, ioas, 1)
    })?;
    r.step("map 2", || {
        fd.map_fixed(ioas, buf + 32 * PAGE, 32 * PAGE, APERTURE + (1 << 20))
    })?;
    Ok(())
}

/// A device with 1 MiB IO pages and a 2 MiB-aligned mapping (hugetlb when the
/// host has huge pages reserved, ordinary pages otherwise).
fn sc_huge_pages(r: &mut Run) -> Result<(), Errno> {
    let m = Mmap::anon(
        4 << 20,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB,
    )
    .or_else(|_| {
        Mmap::anon(
            4 << 20,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
        )
    })
    .expect("mmap");
    let va = (m.addr() + (2 << 20) - 1) & !((2 << 20) - 1);
    r.bufs.push(m);
    let fd = r.open()?;
    let ioas = r.step("ioas alloc", || ioas_alloc(&fd))?;
    r.arm();
    let (stdev, _, _) = r.step("mock domain huge", || {
        mock_domain(&fd, ioas, MOCK_FLAGS_DEVICE_HUGE_IOVA)
    })?;
    let iova = r.step("map", || {
        fd.map_fixed(ioas, va, 2 << 20, APERTURE + (2 << 20))
    })?;
    r.step("mock domain 2", || mock_domain(&fd, ioas, 0))?;
    r.step("unmap", || fd.unmap(ioas, iova, 2 << 20))?;
    r.step("map auto", || fd.map_auto(ioas, va, 2 << 20))?;
    r.step("destroy stdev", || fd.destroy(stdev))?;
    Ok(())
}

/// Everything live at close: domains, areas, an access with pins, a fault
/// queue, nested HWPTs; the iommufd closed first, then the files that hold it.
fn sc_close_everything_live(r: &mut Run) -> Result<(), Errno> {
    let buf = r.buffer(BUFFER_SIZE);
    r.arm();
    let fd = r.open()?;
    let ioas = r.step("ioas alloc", || ioas_alloc(&fd))?;
    let ioas2 = r.step("ioas alloc 2", || ioas_alloc(&fd))?;
    let (stdev, _, idev) = r.step("mock domain", || mock_domain(&fd, ioas, 0))?;
    r.step("mock domain 2", || mock_domain(&fd, ioas2, 0))?;
    let iova = r.step("map", || fd.map_fixed(ioas, buf, 64 * PAGE, APERTURE))?;
    r.step("copy", || {
        fd.copy(ioas2, ioas, iova, 64 * PAGE, APERTURE, FIXED_RW)
    })?;
    let parent = r.step("hwpt alloc parent", || {
        hwpt_alloc(&fd, idev, ioas, IOMMU_HWPT_ALLOC_NEST_PARENT, 0, &[])
    })?;
    let data = selftest_data();
    let nested = r.step("hwpt alloc nested", || {
        hwpt_alloc(&fd, idev, parent, 0, IOMMU_HWPT_DATA_SELFTEST, &data)
    })?;
    r.step_keeps("replace nested", || replace(&fd, stdev, nested))?;
    let afd = r.create_access(&fd, ioas2, MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES)?;
    r.step("access pages", || {
        access_pages(&fd, afd, APERTURE, 16 * PAGE, buf)
    })?;
    let (_, fault_fd) = r.fault_alloc(&fd)?;
    r.close_dev(fd);
    r.close_extra(fault_fd);
    r.close_extra(afd);
    Ok(())
}

/// An access moved between IOASes while it holds pins (the unmap callback
/// drops them), then pinning on the new IOAS.
fn sc_access_replace(r: &mut Run) -> Result<(), Errno> {
    let buf = r.buffer(BUFFER_SIZE);
    let fd = r.open()?;
    let ioas = r.step("ioas alloc", || ioas_alloc(&fd))?;
    let ioas2 = r.step("ioas alloc 2", || ioas_alloc(&fd))?;
    r.step("map", || fd.map_fixed(ioas, buf, 32 * PAGE, APERTURE))?;
    r.step("map 2", || fd.map_fixed(ioas2, buf, 32 * PAGE, APERTURE))?;
    r.arm();
    let afd = r.create_access(&fd, ioas, MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES)?;
    r.step("access pages", || {
        access_pages(&fd, afd, APERTURE, 8 * PAGE, buf)
    })?;
    r.step_keeps("replace ioas", || access_replace(&fd, afd, ioas2))?;
    r.step("access pages 2", || {
        access_pages(&fd, afd, APERTURE + 8 * PAGE, 8 * PAGE, buf + 8 * PAGE)
    })?;
    r.close_extra(afd);
    Ok(())
}

/// UNMAP of a range an access has pinned: the access's callback unpins it, the
/// unmap retries and succeeds; with a domain on the IOAS.
fn sc_unmap_with_access_pins(r: &mut Run) -> Result<(), Errno> {
    let buf = r.buffer(BUFFER_SIZE);
    let fd = r.open()?;
    let ioas = r.step("ioas alloc", || ioas_alloc(&fd))?;
    r.arm();
    r.step("mock domain", || mock_domain(&fd, ioas, 0))?;
    r.step("map", || fd.map_fixed(ioas, buf, 64 * PAGE, APERTURE))?;
    let afd = r.create_access(&fd, ioas, MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES)?;
    r.step("access pages", || {
        access_pages(&fd, afd, APERTURE, 16 * PAGE, buf)
    })?;
    r.step("access pages again", || {
        access_pages(&fd, afd, APERTURE, 16 * PAGE, buf)
    })?;
    r.step("unmap", || fd.unmap(ioas, APERTURE, 64 * PAGE))?;
    r.close_extra(afd);
    Ok(())
}

/// Mock-domain replace across IOASes (automatic HWPTs created and freed) and
/// detach by destroying the device.
fn sc_replace_detach(r: &mut Run) -> Result<(), Errno> {
    let buf = r.buffer(BUFFER_SIZE);
    let fd = r.open()?;
    let ioas = r.step("ioas alloc", || ioas_alloc(&fd))?;
    let ioas2 = r.step("ioas alloc 2", || ioas_alloc(&fd))?;
    r.step("map", || fd.map_fixed(ioas, buf, 32 * PAGE, APERTURE))?;
    r.step("map 2", || fd.map_fixed(ioas2, buf, 64 * PAGE, APERTURE))?;
    r.arm();
    let (stdev, _, _) = r.step("mock domain", || mock_domain(&fd, ioas, 0))?;
    r.step_keeps("replace ioas2", || replace(&fd, stdev, ioas2))?;
    r.step_keeps("replace ioas", || replace(&fd, stdev, ioas))?;
    r.step("destroy stdev", || fd.destroy(stdev))?;
    r.step("destroy ioas2", || fd.destroy(ioas2))?;
    Ok(())
}

/// Two devices sharing an automatic HWPT; each destroyed in turn.
fn sc_shared_auto_hwpt(r: &mut Run) -> Result<(), Errno> {
    let buf = r.buffer(BUFFER_SIZE);
    let fd = r.open()?;
    let ioas = r.step("ioas alloc", || ioas_alloc(&fd))?;
    r.arm();
    let (s1, h1, _) = r.step("mock domain", || mock_domain(&fd, ioas, 0))?;
    let (s2, h2, _) = r.step("mock domain 2", || mock_domain(&fd, ioas, 0))?;
    assert_eq!(h1, h2);
    r.step("map", || fd.map_fixed(ioas, buf, 128 * PAGE, APERTURE))?;
    r.step("destroy 1", || fd.destroy(s1))?;
    r.step("map 2", || {
        fd.map_fixed(ioas, buf + 128 * PAGE, 16 * PAGE, APERTURE + (1 << 20))
    })?;
    r.step("destroy 2", || fd.destroy(s2))?;
    r.step("destroy ioas", || fd.destroy(ioas))?;
    Ok(())
}

/// Two contexts mapping the same memory into their own domains (shared pin
/// counts); one closed while the other keeps working.
fn sc_two_contexts(r: &mut Run) -> Result<(), Errno> {
    let buf = r.buffer(BUFFER_SIZE);
    r.arm();
    let fd = r.open()?;
    let fd2 = r.open()?;
    let a = r.step("ioas alloc", || ioas_alloc(&fd))?;
    let b = r.step("ioas alloc 2", || ioas_alloc(&fd2))?;
    r.step("mock domain", || mock_domain(&fd, a, 0))?;
    r.step("mock domain 2", || mock_domain(&fd2, b, 0))?;
    r.step("map", || fd.map_fixed(a, buf, 64 * PAGE, APERTURE))?;
    r.step("map 2", || fd2.map_fixed(b, buf, 64 * PAGE, APERTURE))?;
    r.close_dev(fd);
    r.step("unmap 2", || fd2.unmap(b, APERTURE, 64 * PAGE))?;
    Ok(())
}

/// Access RW across two areas and with an IOAS that has a domain (pinned pages
/// used directly), reads and writes.
fn sc_access_rw_domain(r: &mut Run) -> Result<(), Errno> {
    let buf = r.buffer(BUFFER_SIZE);
    let fd = r.open()?;
    let ioas = r.step("ioas alloc", || ioas_alloc(&fd))?;
    r.step("mock domain", || mock_domain(&fd, ioas, 0))?;
    r.step("map", || fd.map_fixed(ioas, buf, 8 * PAGE, APERTURE))?;
    r.step("map 2", || {
        fd.map_fixed(ioas, buf + 8 * PAGE, 8 * PAGE, APERTURE + 8 * PAGE)
    })?;
    r.arm();
    let afd = r.create_access(&fd, ioas, 0)?;
    let mut tmp = vec![0u8; 4 * PAGE as usize];
    let iova = APERTURE + 6 * PAGE;
    r.step("rw across areas", || access_rw(&fd, afd, iova, &mut tmp, 0))?;
    r.step("rw across areas slow", || {
        access_rw(&fd, afd, iova, &mut tmp, MOCK_ACCESS_RW_SLOW_PATH)
    })?;
    r.step("write slow", || {
        access_rw(
            &fd,
            afd,
            iova,
            &mut tmp,
            MOCK_ACCESS_RW_SLOW_PATH | MOCK_ACCESS_RW_WRITE,
        )
    })?;
    r.close_extra(afd);
    Ok(())
}

/// IOAS destroy refused while busy, then allowed once the device is gone;
/// IOVA_RANGES into a too-small array.
fn sc_destroy_rules(r: &mut Run) -> Result<(), Errno> {
    let buf = r.buffer(BUFFER_SIZE);
    let fd = r.open()?;
    let ioas = r.step("ioas alloc", || ioas_alloc(&fd))?;
    r.arm();
    let (stdev, hwpt, _) = r.step("mock domain", || mock_domain(&fd, ioas, 0))?;
    r.step("map", || fd.map_auto(ioas, buf, 16 * PAGE))?;
    let busy = r.step("destroy busy ioas", || fd.destroy(ioas));
    assert!(busy.is_err());
    let busy = r.step("destroy busy hwpt", || fd.destroy(hwpt));
    assert!(busy.is_err());
    r.step("add reserved", || add_reserved(&fd, ioas, 1 << 40, 1 << 20))?;
    r.step("iova ranges", || fd.ranges(ioas))?;
    r.step("destroy stdev", || fd.destroy(stdev))?;
    r.step("destroy ioas", || fd.destroy(ioas))?;
    Ok(())
}

/// Three domains on one IOAS (the automatic one, a plain HWPT, a dirty-tracking
/// HWPT): a map fills all three, so a failure in the last unwinds the others.
fn sc_map_three_domains(r: &mut Run) -> Result<(), Errno> {
    let buf = r.buffer(BUFFER_SIZE);
    let fd = r.open()?;
    let ioas = r.step("ioas alloc", || ioas_alloc(&fd))?;
    r.arm();
    let (_, _, idev) = r.step("mock domain", || mock_domain(&fd, ioas, 0))?;
    r.step("hwpt alloc", || hwpt_alloc(&fd, idev, ioas, 0, 0, &[]))?;
    r.step("hwpt alloc dirty", || {
        hwpt_alloc(&fd, idev, ioas, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, 0, &[])
    })?;
    let iova = r.step("map", || fd.map_fixed(ioas, buf, BUFFER_SIZE, APERTURE))?;
    r.step("map auto", || fd.map_auto(ioas, buf, 64 * PAGE))?;
    r.step("unmap", || fd.unmap(ioas, iova, BUFFER_SIZE))?;
    Ok(())
}

/// An access pin spanning two adjacent areas: a failure on the second area
/// releases the first.
fn sc_access_pin_two_areas(r: &mut Run) -> Result<(), Errno> {
    let buf = r.buffer(BUFFER_SIZE);
    let fd = r.open()?;
    let ioas = r.step("ioas alloc", || ioas_alloc(&fd))?;
    r.step("map", || fd.map_fixed(ioas, buf, 16 * PAGE, APERTURE))?;
    r.step("map 2", || {
        fd.map_fixed(ioas, buf + 16 * PAGE, 16 * PAGE, APERTURE + 16 * PAGE)
    })?;
    let afd = r.create_access(&fd, ioas, MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES)?;
    r.arm();
    let id = r.step("access pages across areas", || {
        access_pages(&fd, afd, APERTURE + 8 * PAGE, 16 * PAGE, buf + 8 * PAGE)
    })?;
    r.step("access pages inside", || {
        access_pages(&fd, afd, APERTURE + 10 * PAGE, 4 * PAGE, buf + 10 * PAGE)
    })?;
    r.step("destroy access pages", || {
        destroy_access_pages(&fd, afd, id)
    })?;
    r.step("mock domain", || mock_domain(&fd, ioas, 0))?;
    r.close_extra(afd);
    Ok(())
}

/// COPY of a range made of two source areas into an IOAS with a domain: the
/// destination gets two areas filled in turn.
fn sc_copy_multi_area(r: &mut Run) -> Result<(), Errno> {
    let buf = r.buffer(BUFFER_SIZE);
    let fd = r.open()?;
    let src = r.step("ioas alloc", || ioas_alloc(&fd))?;
    let dst = r.step("ioas alloc 2", || ioas_alloc(&fd))?;
    r.step("map", || fd.map_fixed(src, buf, 32 * PAGE, APERTURE))?;
    r.step("map 2", || {
        fd.map_fixed(src, buf + 64 * PAGE, 32 * PAGE, APERTURE + 32 * PAGE)
    })?;
    r.arm();
    r.step("mock domain dst", || mock_domain(&fd, dst, 0))?;
    r.step("copy across areas", || {
        fd.copy(
            dst,
            src,
            APERTURE + 16 * PAGE,
            32 * PAGE,
            APERTURE,
            FIXED_RW,
        )
    })?;
    r.step("unmap src", || fd.unmap(src, 0, u64::MAX))?;
    r.step("unmap dst", || fd.unmap(dst, APERTURE, 32 * PAGE))?;
    Ok(())
}

/// An IOAS with an attached access cannot be destroyed until the access fd is
/// closed; PASID-capable mock devices attach like others.
fn sc_access_holds_ioas(r: &mut Run) -> Result<(), Errno> {
    let buf = r.buffer(BUFFER_SIZE);
    let fd = r.open()?;
    let ioas = r.step("ioas alloc", || ioas_alloc(&fd))?;
    r.step("map", || fd.map_fixed(ioas, buf, 16 * PAGE, APERTURE))?;
    r.arm();
    let afd = r.create_access(&fd, ioas, 0)?;
    let busy = r.step("destroy busy", || fd.destroy(ioas));
    assert!(busy.is_err());
    let (stdev, _, _) = r.step("mock domain pasid", || {
        mock_domain(&fd, ioas, MOCK_FLAGS_DEVICE_PASID)
    })?;
    r.close_extra(afd);
    r.step("destroy stdev", || fd.destroy(stdev))?;
    r.step("destroy ioas", || fd.destroy(ioas))?;
    Ok(())
}

/// The device the real-driver scenarios bind: made before the sweep's baseline,
/// since its group's default domain lives as long as it does.
static DRIVER_DEVICE: Mutex<Option<(Arc<iommu::Device>, u64)>> = Mutex::new(None);

/// A device of a real-format driver (VT-d, SMMUv3) bound through the library
/// API (`BoundDevice`, what VFIO uses), attached to an IOAS with mappings (the
/// driver's page tables grow and shrink under injection), mapped into after
/// attach, replaced onto a second IOAS, detached and unbound.
fn sc_real_driver(r: &mut Run) -> Result<(), Errno> {
    let (dev, base) = DRIVER_DEVICE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .expect("a driver device");
    let buf = r.buffer(BUFFER_SIZE);
    let fd = r.open()?;
    let ioas = r.step("ioas alloc", || ioas_alloc(&fd))?;
    let ioas2 = r.step("ioas alloc 2", || ioas_alloc(&fd))?;
    r.step("map", || fd.map_fixed(ioas, buf, 64 * PAGE, base))?;
    r.step("map 2", || fd.map_fixed(ioas2, buf, 32 * PAGE, base))?;
    r.arm();
    let bound = r.step("bind", || iommufd::BoundDevice::bind(&fd.file, &dev))?;
    r.step("attach", || bound.attach(ioas))?;
    r.step("map after attach", || {
        fd.map_fixed(ioas, buf + 64 * PAGE, 256 * PAGE, base + (1 << 21))
    })?;
    r.step("replace", || bound.attach(ioas2))?;
    r.step("unmap", || fd.unmap(ioas, base, 64 * PAGE))?;
    r.step("replace back", || bound.attach(ioas))?;
    let _ = fault::take_fired();
    drop(bound);
    assert_eq!(fault::take_fired(), None, "unbinding cannot fail");
    r.step("unmap 2", || fd.unmap(ioas2, base, 32 * PAGE))?;
    Ok(())
}

/// Sweeps [`sc_real_driver`] with a device made by `make`.
fn sweep_real_driver(name: &'static str, make: fn() -> Arc<iommu::Device>) {
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    *DRIVER_DEVICE.lock().unwrap_or_else(|e| e.into_inner()) = Some((make(), 0x100_0000));
    let points = sweep_locked(name, CAPS, sc_real_driver);
    *DRIVER_DEVICE.lock().unwrap_or_else(|e| e.into_inner()) = None;
    assert!(points > 0);
}

/// A device alone behind its own platform and IOMMU instance.
fn probe_alone(ops: Arc<dyn iommu::IommuOps>, name: &str) -> Arc<iommu::Device> {
    let platform = iommu::Platform::new(iommu::DefaultPolicy::Dma);
    let desc = iommu::DeviceDesc {
        name: name.into(),
        ..Default::default()
    };
    platform.probe(&ops, desc).expect("probe")
}

#[test]
fn real_driver_vtd() {
    sweep_real_driver("real_driver_vtd", || {
        let vtd = drivers::Vtd::new(drivers::VtdConfig::default()).expect("vtd");
        vtd.add_device("nic", &[]);
        probe_alone(vtd.ops(), "nic")
    });
}

#[test]
fn real_driver_smmuv3() {
    sweep_real_driver("real_driver_smmuv3", || {
        // As in 6.12: domain_alloc_user, so replace can add a domain to an IOAS
        // with mappings before attaching it.
        let smmu = drivers::SmmuV3::new(drivers::SmmuV3Config {
            domain_alloc_user: true,
            ..drivers::SmmuV3Config::default()
        })
        .expect("smmu");
        smmu.add_device("gpu");
        probe_alone(smmu.ops(), "gpu")
    });
}

// ---- the sweeps --------------------------------------------------------------

/// Accounting applies (the program lacks CAP_IPC_LOCK) so charges are swept too.
const CAPS: &str = "-ipc_lock";
const CAPS_ADMIN: &str = "-ipc_lock,+sys_resource";

macro_rules! sweeps {
    ($($test:ident: $caps:expr, $f:ident;)*) => {
        $(
            #[test]
            fn $test() {
                let points = sweep(stringify!($test), $caps, $f);
                assert!(points > 0, "{}: no fault point reached", stringify!($test));
            }
        )*
    };
}

sweeps! {
    basic: CAPS, sc_basic;
    map_domain: CAPS, sc_map_domain;
    map_two_domains: CAPS, sc_map_two_domains;
    access_rw_paths: CAPS, sc_access_rw;
    access_pin: CAPS, sc_access_pin;
    access_pin_domain: CAPS, sc_access_pin_domain;
    device: CAPS, sc_device;
    map_then_attach: CAPS, sc_map_then_attach;
    copy_between_ioas: CAPS, sc_copy_between_ioas;
    unmap_all: CAPS, sc_unmap_all;
    allow_and_reserve: CAPS, sc_allow_and_reserve;
    hwpt_paging: CAPS, sc_hwpt_paging;
    hwpt_nested: CAPS, sc_hwpt_nested;
    hwpt_dirty: CAPS, sc_hwpt_dirty;
    fault_queue: CAPS, sc_fault_queue;
    vfio_type1v2: CAPS, sc_vfio_type1v2;
    vfio_type1_split: CAPS, sc_vfio_type1_split;
    options: CAPS_ADMIN, sc_options;
    huge_pages: CAPS, sc_huge_pages;
    close_everything_live: CAPS, sc_close_everything_live;
    access_replace_ioas: CAPS, sc_access_replace;
    unmap_with_access_pins: CAPS, sc_unmap_with_access_pins;
    replace_detach: CAPS, sc_replace_detach;
    shared_auto_hwpt: CAPS, sc_shared_auto_hwpt;
    two_contexts: CAPS, sc_two_contexts;
    access_rw_domain: CAPS, sc_access_rw_domain;
    destroy_rules: CAPS, sc_destroy_rules;
    map_three_domains: CAPS, sc_map_three_domains;
    access_pin_two_areas: CAPS, sc_access_pin_two_areas;
    copy_multi_area: CAPS, sc_copy_multi_area;
    access_holds_ioas: CAPS, sc_access_holds_ioas;
}

/// Pins the leaky scenario left behind, released by its test.
static LEAKED: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// A scenario whose error path "forgets" a pin, as a buggy unwind would.
fn sc_leaky_error_path(r: &mut Run) -> Result<(), Errno> {
    let buf = r.buffer(4 * PAGE);
    r.arm();
    let fd = r.open()?;
    let ioas = r.step("ioas alloc", || ioas_alloc(&fd))?;
    r.step("mock domain", || mock_domain(&fd, ioas, 0))?;
    r.step("map", || {
        let res = fd.map_fixed(ioas, buf, 4 * PAGE, APERTURE);
        if res.is_err() {
            host::pins::pin(buf, 1);
            LEAKED.lock().unwrap_or_else(|e| e.into_inner()).push(buf);
        }
        res
    })?;
    Ok(())
}

/// The sweep can fail: a pin leaked on an error path is caught at that step.
#[test]
fn sweep_catches_a_leak_on_an_error_path() {
    // The lock is held until the leaked pins are released, so no other sweep
    // takes them into its baseline.
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let res = std::panic::catch_unwind(|| sweep_locked("leaky", CAPS, sc_leaky_error_path));
    for va in LEAKED.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
        host::pins::unpin(va, 1);
    }
    let err = res.expect_err("the leak went unnoticed");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("changed the state"), "{msg}");
}

/// A scenario whose error path returns the wrong errno.
fn sc_wrong_errno(r: &mut Run) -> Result<(), Errno> {
    r.arm();
    let fd = r.open()?;
    r.step("ioas alloc", || ioas_alloc(&fd).map_err(|_| Errno::INVAL))?;
    Ok(())
}

/// The sweep can fail: an injected ENOMEM surfacing as another errno is caught.
#[test]
fn sweep_catches_a_wrong_errno() {
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let res = std::panic::catch_unwind(|| sweep_locked("wrong errno", CAPS, sc_wrong_errno));
    let err = res.expect_err("the wrong errno went unnoticed");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("failed the step with"), "{msg}");
}

/// The invariant checker is not vacuous: a domain that lost one IO page of an
/// area behind iommufd's back is reported.
#[test]
fn invariants_catch_a_domain_missing_a_mapping() {
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let fd = Fd::open();
    let buf = support::buffer(4 * PAGE as usize);
    let ioas = ioas_alloc(&fd).unwrap();
    mock_domain(&fd, ioas, 0).unwrap();
    fd.map_fixed(ioas, buf.addr(), 4 * PAGE, APERTURE).unwrap();
    fd.file.ctx().check_invariants(&probe).unwrap();
    let corrupt = |d: &dyn Domain| -> Result<Option<u64>, String> {
        let pt = MockDomain::from_domain(d).expect("mock").page_table();
        pt.unmap_pages(APERTURE + 2048, 2048, 1);
        Ok(None)
    };
    let err = fd.file.ctx().check_invariants(&corrupt).unwrap_err();
    assert!(err.contains("translates to 0x0"), "{err}");
    let err = fd.file.ctx().check_invariants(&probe).unwrap_err();
    assert!(err.contains("a domain maps"), "{err}");
}
