//! Errno paths of the device, HWPT, fault, VFIO-compat and test commands that the
//! bad-input table (`bad_input/table.rs`) and the per-area tests do not reach:
//! responses written back into read-only memory, fd exhaustion, errors of the
//! layers below the handlers (io_pagetable, page stores, the IOMMU core, another
//! driver's domains), and fault-fd reads and writes. Each test asserts the
//! kernel's errno and, where the kernel undoes the work, that nothing changed.
//!
//! `docs/errno-paths.md` maps every errno path of these commands to the test that
//! triggers it.

#![allow(missing_docs)]

mod support;

use std::sync::Arc;

use host::sys::Mmap;
use iommu::Device;
use iommufd::mm::{AccountMode, Cap, FileOps, Files, UserMemory};
use iommufd::{BoundDevice, IommufdFile};
use support::{
    buffer, hwpt_alloc, mock_domain, noaccess, pins, readonly, replace, set_size, Fd, HookedMm,
    LockedLimit, MmHooks, FIXED_RW, PAGE,
};
use uapi::ioctl::{VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA, VFIO_SET_IOMMU};
use uapi::{
    Errno, FaultAlloc, HwInfo, HwptAlloc, HwptGetDirtyBitmap, HwptInvalidate,
    HwptInvalidateSelftest, HwptPageResponse, HwptPgfault, HwptSetDirtyTracking, IoasAllowIovas,
    IoctlCmd, IovaRange, TestAccessPages, TestAccessRw, TestCheckIotlb, TestCheckMap, TestCmd,
    TestCreateAccess, TestDestroyAccessPages, TestDirty, TestMockDomain, TestMockDomainReplace,
    TestPayload, TestTriggerIopf, VfioIoas, VfioIommuType1DmaMap, VfioIommuType1DmaUnmap,
    IOMMU_HWPT_ALLOC_DIRTY_TRACKING, IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_DATA_SELFTEST,
    IOMMU_HWPT_DATA_VTD_S1, IOMMU_HWPT_DIRTY_TRACKING_ENABLE, IOMMU_HWPT_FAULT_ID_VALID,
    IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_WRITEABLE,
    IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, IOMMU_TEST_IOTLB_DEFAULT, IOMMU_VFIO_IOAS_GET,
    IOMMU_VFIO_IOAS_SET, MOCK_ACCESS_RW_SLOW_PATH, MOCK_APERTURE_START,
    MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES, VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_WRITE,
    VFIO_TYPE1_IOMMU,
};
use zerocopy::{FromZeros, IntoBytes};

const APERTURE: u64 = MOCK_APERTURE_START;
const NEST: u32 = IOMMU_HWPT_ALLOC_NEST_PARENT;
const DIRTY: u32 = IOMMU_HWPT_ALLOC_DIRTY_TRACKING;
const PIN: u32 = MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES;
const VFIO_RW: u32 = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;

// ---- helpers ---------------------------------------------------------------

/// A page holding `bytes` at its start, then made read-only: an ioctl can read
/// its command from it but cannot write its response back.
fn ro_page(bytes: &[u8]) -> Mmap {
    let mut m = buffer(PAGE as usize);
    m.as_mut_slice().expect("fresh mapping")[..bytes.len()].copy_from_slice(bytes);
    m.protect_range(0, PAGE as usize, libc::PROT_READ)
        .expect("mprotect");
    m
}

/// Issues `cmd` (with `size = sizeof`) from a read-only page.
fn ioctl_ro<T: IoctlCmd>(fd: &Fd, mut cmd: T) -> Result<i64, Errno> {
    set_size(&mut cmd, T::SIZE as u32);
    let page = ro_page(cmd.as_bytes());
    fd.ioctl_ptr(T::IOCTL, page.addr())
}

/// Issues a test command from a read-only page.
fn test_ro<P: TestPayload>(fd: &Fd, id: u32, p: &P) -> Result<i64, Errno> {
    ioctl_ro(fd, TestCmd::new(id, p))
}

/// The next object ID the context would hand out (probes with an IOAS).
fn next_id(fd: &Fd) -> u32 {
    let id = fd.ioas_alloc();
    fd.destroy(id).expect("destroy the probe IOAS");
    id
}

/// A context with an IOAS mapping four pages at the mock aperture and a mock
/// device attached to it.
struct Mock {
    fd: Fd,
    buf: Mmap,
    ioas: u32,
    stdev: u32,
    hwpt: u32,
    idev: u32,
}

fn mock() -> Mock {
    let fd = Fd::open();
    let buf = buffer(4 * PAGE as usize);
    let ioas = fd.ioas_alloc();
    fd.map_fixed(ioas, buf.addr(), 4 * PAGE, APERTURE)
        .expect("map");
    let (stdev, hwpt, idev) = mock_domain(&fd, ioas, 0).expect("mock domain");
    Mock {
        fd,
        buf,
        ioas,
        stdev,
        hwpt,
        idev,
    }
}

fn allow(fd: &Fd, ioas: u32, ranges: &[(u64, u64)]) -> Result<i64, Errno> {
    let r: Vec<IovaRange> = ranges
        .iter()
        .map(|&(start, last)| IovaRange { start, last })
        .collect();
    let mut cmd = IoasAllowIovas::new_zeroed();
    cmd.ioas_id = ioas;
    cmd.num_iovas = r.len() as u32;
    cmd.allowed_iovas = r.as_ptr() as u64;
    fd.ioctl(&mut cmd)
}

fn selftest_data() -> [u8; 4] {
    IOMMU_TEST_IOTLB_DEFAULT.to_ne_bytes()
}

/// A nested mock HWPT on a NEST_PARENT one: (parent, nested).
fn nested(m: &Mock) -> (u32, u32) {
    let parent = hwpt_alloc(&m.fd, m.idev, m.ioas, NEST, 0, &[]).expect("parent");
    let nested = hwpt_alloc(
        &m.fd,
        m.idev,
        parent,
        0,
        IOMMU_HWPT_DATA_SELFTEST,
        &selftest_data(),
    )
    .expect("nested");
    (parent, nested)
}

fn iotlb(fd: &Fd, hwpt: u32, id: u32, value: u32) -> Result<(), Errno> {
    fd.test(hwpt, &TestCheckIotlb { id, iotlb: value })
        .map(|_| ())
}

/// A device alone behind a fresh instance of an IOMMU driver.
fn probe(ops: Arc<dyn iommu::IommuOps>, name: &str) -> Arc<Device> {
    let platform = iommu::Platform::new(iommu::DefaultPolicy::Dma);
    let desc = iommu::DeviceDesc {
        name: name.into(),
        ..Default::default()
    };
    platform.probe(&ops, desc).expect("probe")
}

fn vtd_device() -> Arc<Device> {
    let vtd = drivers::Vtd::new(drivers::VtdConfig::default()).expect("vtd");
    vtd.add_device("nic", &[]);
    probe(vtd.ops(), "nic")
}

fn smmu_device(cfg: drivers::SmmuV3Config) -> Arc<Device> {
    let smmu = drivers::SmmuV3::new(cfg).expect("smmu");
    smmu.add_device("gpu");
    probe(smmu.ops(), "gpu")
}

/// User memory without CAP_IPC_LOCK whose locked-memory limit is `limit` pages.
struct Limited {
    inner: Arc<dyn UserMemory>,
    locked: LockedLimit,
}

impl Limited {
    fn new(limit: u64) -> Arc<HookedMm<Limited>> {
        Arc::new(HookedMm(Limited {
            inner: inproc::host_mm().clone(),
            locked: LockedLimit::new(limit),
        }))
    }

    fn used(&self) -> u64 {
        self.locked.used()
    }
}

impl MmHooks for Limited {
    fn inner(&self) -> &dyn UserMemory {
        self.inner.as_ref()
    }
    fn account(&self, mode: AccountMode, n: u64, inc: bool) -> Result<(), Errno> {
        self.locked.charge(mode, n, inc)
    }
    fn capable(&self, cap: Cap) -> bool {
        cap != Cap::IpcLock
    }
}

/// A file table with no free fd (`get_unused_fd_flags` failing with EMFILE).
struct NoFreeFd;

impl Files for NoFreeFd {
    fn reserve_fd(&self) -> Result<i32, Errno> {
        Err(Errno::MFILE)
    }
    fn unreserve_fd(&self, _fd: i32) {
        panic!("no fd was reserved");
    }
    fn install(&self, _fd: i32, _file: Arc<dyn FileOps>) {
        panic!("no fd was reserved");
    }
    fn get(&self, fd: i32) -> Option<Arc<dyn FileOps>> {
        Files::get(inproc::FdTable::global().as_ref(), fd)
    }
}

fn open_without_free_fds() -> Fd {
    let mut env = inproc::env();
    env.files = Arc::new(NoFreeFd);
    Fd {
        file: IommufdFile::open(env, false),
    }
}

fn close(fd: u32) {
    inproc::FdTable::global()
        .close(fd as i32)
        .expect("close an emulated fd");
}

fn create_access(fd: &Fd, ioas: u32, flags: u32) -> u32 {
    let p = TestCreateAccess {
        out_access_fd: 0,
        flags,
    };
    fd.test(ioas, &p)
        .expect("create access")
        .payload_as::<TestCreateAccess>()
        .out_access_fd
}

fn access_pages(fd: &Fd, afd: u32, iova: u64, length: u64, flags: u32) -> Result<u32, Errno> {
    let p = TestAccessPages {
        flags,
        out_access_pages_id: 0,
        iova,
        length,
        uptr: 0,
    };
    fd.test(afd, &p)
        .map(|c| c.payload_as::<TestAccessPages>().out_access_pages_id)
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

fn vfio_set(fd: &Fd, ioas: u32) {
    let mut cmd = VfioIoas::new_zeroed();
    cmd.op = IOMMU_VFIO_IOAS_SET;
    cmd.ioas_id = ioas;
    fd.ioctl(&mut cmd).expect("VFIO_IOAS SET");
}

fn map_dma(fd: &Fd, flags: u32, vaddr: u64, iova: u64, size: u64) -> Result<i64, Errno> {
    let mut m = VfioIommuType1DmaMap {
        argsz: 32,
        flags,
        vaddr,
        iova,
        size,
    };
    fd.ioctl_ptr(VFIO_IOMMU_MAP_DMA, m.as_mut_bytes().as_mut_ptr() as u64)
}

fn unmap_dma(fd: &Fd, iova: u64, size: u64) -> Result<i64, Errno> {
    let mut u = VfioIommuType1DmaUnmap {
        argsz: 24,
        flags: 0,
        iova,
        size,
    };
    fd.ioctl_ptr(VFIO_IOMMU_UNMAP_DMA, u.as_mut_bytes().as_mut_ptr() as u64)
}

/// A VFIO container context whose compat IOAS has a mock domain.
fn vfio_compat(type1: bool) -> (Fd, u32) {
    let fd = Fd {
        file: inproc::open(true),
    };
    let ioas = fd.ioas_alloc();
    vfio_set(&fd, ioas);
    if type1 {
        fd.ioctl_ptr(VFIO_SET_IOMMU, u64::from(VFIO_TYPE1_IOMMU))
            .expect("TYPE1");
    }
    mock_domain(&fd, ioas, 0).expect("mock domain");
    (fd, ioas)
}

// ---- IOMMU_HWPT_ALLOC --------------------------------------------------------

#[test]
fn hwpt_alloc_onto_an_ioas_with_a_misaligned_area_is_eaddrinuse() {
    let m = mock();
    let ioas2 = m.fd.ioas_alloc();
    // Inside the aperture, but 0x801 bytes long: not a multiple of 2048.
    m.fd.map_fixed(ioas2, m.buf.addr(), 0x801, APERTURE)
        .unwrap();
    let id = next_id(&m.fd);
    assert_eq!(
        hwpt_alloc(&m.fd, m.idev, ioas2, 0, 0, &[]),
        Err(Errno::ADDRINUSE)
    );
    assert_eq!(m.fd.ranges(ioas2), Ok((vec![(0, u64::MAX)], 1)));
    assert_eq!(next_id(&m.fd), id);
}

#[test]
fn hwpt_alloc_onto_an_ioas_with_an_area_outside_the_aperture_is_eaddrinuse() {
    let m = mock();
    let ioas2 = m.fd.ioas_alloc();
    m.fd.map_fixed(ioas2, m.buf.addr(), PAGE, APERTURE - PAGE)
        .unwrap();
    assert_eq!(
        hwpt_alloc(&m.fd, m.idev, ioas2, 0, 0, &[]),
        Err(Errno::ADDRINUSE)
    );
    assert_eq!(m.fd.ranges(ioas2), Ok((vec![(0, u64::MAX)], 1)));
}

#[test]
fn hwpt_alloc_onto_an_ioas_allowing_iovas_outside_the_aperture_is_eaddrinuse() {
    let m = mock();
    let ioas2 = m.fd.ioas_alloc();
    allow(&m.fd, ioas2, &[(APERTURE - PAGE, APERTURE + PAGE)]).unwrap();
    assert_eq!(
        hwpt_alloc(&m.fd, m.idev, ioas2, 0, 0, &[]),
        Err(Errno::ADDRINUSE)
    );
    assert_eq!(m.fd.ranges(ioas2), Ok((vec![(0, u64::MAX)], 1)));
}

#[test]
fn hwpt_alloc_of_a_domain_with_pages_above_page_size_is_einval() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    let dev = BoundDevice::bind(
        &fd.file,
        &smmu_device(drivers::SmmuV3Config {
            granule_4k: false,
            granule_16k: false,
            granule_64k: true,
            domain_alloc_user: true,
            ..drivers::SmmuV3Config::default()
        }),
    )
    .unwrap();
    let id = next_id(&fd);
    assert_eq!(
        hwpt_alloc(&fd, dev.id(), ioas, 0, 0, &[]),
        Err(Errno::INVAL)
    );
    assert_eq!(fd.ranges(ioas), Ok((vec![(0, u64::MAX)], 1)));
    assert_eq!(next_id(&fd), id);
}

#[test]
fn hwpt_alloc_populating_from_inaccessible_memory_is_efault() {
    let m = mock();
    let bad = noaccess(PAGE as usize);
    let ioas2 = m.fd.ioas_alloc();
    m.fd.map_fixed(ioas2, bad.addr(), PAGE, APERTURE).unwrap();
    assert_eq!(
        hwpt_alloc(&m.fd, m.idev, ioas2, 0, 0, &[]),
        Err(Errno::FAULT)
    );
    assert_eq!(m.fd.ranges(ioas2), Ok((vec![(0, u64::MAX)], 1)));
    m.fd.destroy(ioas2).unwrap();
}

#[test]
fn populating_a_domain_beyond_the_memlock_limit_is_enomem() {
    let mm = Limited::new(2);
    let fd = Fd::open_with_mm(mm.clone());
    let buf = buffer(4 * PAGE as usize);
    let empty = fd.ioas_alloc();
    let (_, _, idev) = mock_domain(&fd, empty, 0).unwrap();
    let lazy = fd.ioas_alloc();
    fd.map_fixed(lazy, buf.addr(), 4 * PAGE, APERTURE).unwrap();
    let id = next_id(&fd);
    assert_eq!(hwpt_alloc(&fd, idev, lazy, 0, 0, &[]), Err(Errno::NOMEM));
    assert_eq!(mock_domain(&fd, lazy, 0), Err(Errno::NOMEM));
    assert_eq!(next_id(&fd), id);
    assert_eq!(mm.used(), 0);
    assert_eq!(pins(buf.addr()), 0);
}

#[test]
fn hwpt_alloc_whose_response_cannot_be_written_is_efault_and_frees_the_hwpt() {
    let m = mock();
    let id = next_id(&m.fd);
    let mut cmd = HwptAlloc::new_zeroed();
    cmd.dev_id = m.idev;
    cmd.pt_id = m.ioas;
    assert_eq!(ioctl_ro(&m.fd, cmd), Err(Errno::FAULT));
    assert_eq!(next_id(&m.fd), id, "the paging HWPT was destroyed");
    // Nested: the parent is not held by a leftover child.
    let parent = hwpt_alloc(&m.fd, m.idev, m.ioas, NEST, 0, &[]).unwrap();
    let data = selftest_data();
    let mut cmd = HwptAlloc::new_zeroed();
    cmd.dev_id = m.idev;
    cmd.pt_id = parent;
    cmd.data_type = IOMMU_HWPT_DATA_SELFTEST;
    cmd.data_len = 4;
    cmd.data_uptr = data.as_ptr() as u64;
    assert_eq!(ioctl_ro(&m.fd, cmd), Err(Errno::FAULT));
    m.fd.destroy(parent).unwrap();
    assert_eq!(next_id(&m.fd), id);
}

#[test]
fn hwpt_alloc_nested_on_another_drivers_parent_is_einval() {
    let m = mock();
    let vtd = BoundDevice::bind(&m.fd.file, &vtd_device()).unwrap();
    let parent = hwpt_alloc(&m.fd, m.idev, m.ioas, NEST, 0, &[]).unwrap();
    let id = next_id(&m.fd);
    assert_eq!(
        hwpt_alloc(&m.fd, vtd.id(), parent, 0, IOMMU_HWPT_DATA_VTD_S1, &[0; 24]),
        Err(Errno::INVAL)
    );
    assert_eq!(next_id(&m.fd), id);
}

#[test]
fn hwpt_alloc_nested_for_a_driver_without_domain_alloc_user_is_eopnotsupp() {
    let m = mock();
    let smmu =
        BoundDevice::bind(&m.fd.file, &smmu_device(drivers::SmmuV3Config::default())).unwrap();
    let parent = hwpt_alloc(&m.fd, m.idev, m.ioas, NEST, 0, &[]).unwrap();
    assert_eq!(
        hwpt_alloc(
            &m.fd,
            smmu.id(),
            parent,
            0,
            IOMMU_HWPT_DATA_SELFTEST,
            &selftest_data()
        ),
        Err(Errno::OPNOTSUPP)
    );
}

#[test]
fn hwpt_alloc_paging_with_flags_for_a_driver_without_domain_alloc_user_is_eopnotsupp() {
    let m = mock();
    let smmu =
        BoundDevice::bind(&m.fd.file, &smmu_device(drivers::SmmuV3Config::default())).unwrap();
    assert_eq!(
        hwpt_alloc(&m.fd, smmu.id(), m.ioas, NEST, 0, &[]),
        Err(Errno::OPNOTSUPP)
    );
}

#[test]
fn a_device_of_another_platform_does_not_share_the_mock_devices_group_state() {
    // Regression: group numbers were per platform, so the SMMUv3 device's group
    // aliased the mock device's group in the context (and failed the MSI check).
    let m = mock();
    let dev = smmu_device(drivers::SmmuV3Config::default());
    assert!(BoundDevice::bind(&m.fd.file, &dev).is_ok());
}

// ---- IOMMU_GET_HW_INFO, IOMMU_HWPT_GET_DIRTY_BITMAP, IOMMU_HWPT_INVALIDATE ----

#[test]
fn get_hw_info_whose_response_cannot_be_written_is_efault() {
    let m = mock();
    let mut data = [0u8; 8];
    let mut cmd = HwInfo::new_zeroed();
    cmd.dev_id = m.idev;
    cmd.data_len = 8;
    cmd.data_uptr = data.as_mut_ptr() as u64;
    assert_eq!(ioctl_ro(&m.fd, cmd), Err(Errno::FAULT));
}

fn get_dirty(fd: &Fd, hwpt: u32, iova: u64, length: u64, data: u64) -> Result<i64, Errno> {
    let mut cmd = HwptGetDirtyBitmap::new_zeroed();
    cmd.hwpt_id = hwpt;
    cmd.iova = iova;
    cmd.length = length;
    cmd.page_size = 2048;
    cmd.data = data;
    fd.ioctl(&mut cmd)
}

fn set_dirty(fd: &Fd, hwpt: u32, enable: bool) -> Result<i64, Errno> {
    let mut cmd = HwptSetDirtyTracking::new_zeroed();
    cmd.hwpt_id = hwpt;
    cmd.flags = if enable {
        IOMMU_HWPT_DIRTY_TRACKING_ENABLE
    } else {
        0
    };
    fd.ioctl(&mut cmd)
}

fn mark_dirty(fd: &Fd, hwpt: u32, iova: u64, bits: &[u64]) -> Result<u64, Errno> {
    let p = TestDirty {
        iova,
        length: 64 * 2048,
        page_size: 2048,
        uptr: bits.as_ptr() as u64,
        ..FromZeros::new_zeroed()
    };
    Ok(fd.test(hwpt, &p)?.payload_as::<TestDirty>().out_nr_dirty)
}

#[test]
fn get_dirty_bitmap_drops_the_errors_of_its_walk() {
    let m = mock();
    let hwpt = hwpt_alloc(&m.fd, m.idev, m.ioas, DIRTY, 0, &[]).unwrap();
    // The mock refuses to report with tracking off: the ioctl still succeeds.
    let mut bm = [0u64; 1];
    assert_eq!(
        get_dirty(&m.fd, hwpt, APERTURE, 4 * PAGE, bm.as_mut_ptr() as u64),
        Ok(0)
    );
    // A bitmap that cannot be written loses its bits, silently.
    set_dirty(&m.fd, hwpt, true).unwrap();
    assert_eq!(mark_dirty(&m.fd, hwpt, APERTURE, &[1]), Ok(1));
    let ro = readonly(PAGE as usize);
    assert_eq!(get_dirty(&m.fd, hwpt, APERTURE, 4 * PAGE, ro.addr()), Ok(0));
}

#[test]
fn invalidate_whose_response_cannot_be_written_is_efault_even_after_another_error() {
    let m = mock();
    let (_, nested) = nested(&m);
    let e = HwptInvalidateSelftest {
        flags: 0,
        iotlb_id: 1,
    };
    let mut cmd = HwptInvalidate::new_zeroed();
    cmd.hwpt_id = nested;
    cmd.data_uptr = e.as_bytes().as_ptr() as u64;
    cmd.data_type = IOMMU_HWPT_INVALIDATE_DATA_SELFTEST;
    cmd.entry_len = 8;
    cmd.entry_num = 1;
    let mut bad = cmd;
    bad.__reserved = 1;
    assert_eq!(ioctl_ro(&m.fd, bad), Err(Errno::FAULT), "not EOPNOTSUPP");
    iotlb(&m.fd, nested, 1, IOMMU_TEST_IOTLB_DEFAULT).unwrap();
    // A successful invalidation whose count cannot be written back.
    assert_eq!(ioctl_ro(&m.fd, cmd), Err(Errno::FAULT));
    iotlb(&m.fd, nested, 1, 0).unwrap();
}

// ---- IOMMU_FAULT_QUEUE_ALLOC and the fault fd --------------------------------

#[test]
fn fault_queue_alloc_without_a_free_fd_is_emfile() {
    let fd = open_without_free_fds();
    let id = next_id(&fd);
    let mut cmd = FaultAlloc::new_zeroed();
    assert_eq!(fd.ioctl(&mut cmd), Err(Errno::MFILE));
    assert_eq!(next_id(&fd), id);
}

#[test]
fn fault_queue_alloc_whose_response_cannot_be_written_is_efault_and_undone() {
    let fd = Fd::open();
    let id = next_id(&fd);
    assert_eq!(ioctl_ro(&fd, FaultAlloc::new_zeroed()), Err(Errno::FAULT));
    assert_eq!(next_id(&fd), id);
}

/// A mock device on a nested HWPT that takes I/O page faults, with one fault
/// queued: (context, fault fd, the fd's file).
fn queued_fault() -> (Mock, u32, Arc<dyn FileOps>) {
    let m = mock();
    let parent = hwpt_alloc(&m.fd, m.idev, m.ioas, NEST, 0, &[]).unwrap();
    let mut fa = FaultAlloc::new_zeroed();
    m.fd.ioctl(&mut fa).unwrap();
    let data = selftest_data();
    let mut cmd = HwptAlloc::new_zeroed();
    cmd.dev_id = m.idev;
    cmd.pt_id = parent;
    cmd.flags = IOMMU_HWPT_FAULT_ID_VALID;
    cmd.fault_id = fa.out_fault_id;
    cmd.data_type = IOMMU_HWPT_DATA_SELFTEST;
    cmd.data_len = 4;
    cmd.data_uptr = data.as_ptr() as u64;
    m.fd.ioctl(&mut cmd).unwrap();
    replace(&m.fd, m.stdev, cmd.out_hwpt_id).unwrap();
    let trigger = TestTriggerIopf {
        dev_id: m.idev,
        pasid: 0,
        grpid: 1,
        perm: 1,
        addr: APERTURE,
    };
    m.fd.test(0, &trigger).unwrap();
    let file = match inproc::FdTable::global().get(fa.out_fault_fd as i32) {
        Some(inproc::FdEntry::File(f)) => f,
        _ => panic!("the fault fd is not an emulated file"),
    };
    assert!(file.poll().readable);
    (m, fa.out_fault_fd, file)
}

const FAULT_SIZE: u64 = core::mem::size_of::<HwptPgfault>() as u64;

#[test]
fn fault_read_with_no_room_for_the_next_group_is_einval() {
    let (_m, fault_fd, file) = queued_fault();
    let mut rec = HwptPgfault::new_zeroed();
    let addr = rec.as_mut_bytes().as_mut_ptr() as u64;
    assert_eq!(file.read(addr, 0), Err(Errno::INVAL));
    assert!(file.poll().readable, "the group stays queued");
    assert_eq!(file.read(addr, FAULT_SIZE), Ok(FAULT_SIZE));
    drop(file);
    close(fault_fd);
}

#[test]
fn fault_read_into_unwritable_memory_is_efault_and_keeps_the_group() {
    let (_m, fault_fd, file) = queued_fault();
    let ro = readonly(PAGE as usize);
    assert_eq!(file.read(ro.addr(), FAULT_SIZE), Err(Errno::FAULT));
    assert!(file.poll().readable, "the group stays queued");
    let mut rec = HwptPgfault::new_zeroed();
    let addr = rec.as_mut_bytes().as_mut_ptr() as u64;
    assert_eq!(file.read(addr, FAULT_SIZE), Ok(FAULT_SIZE));
    assert_eq!(rec.cookie, 1, "no cookie was consumed by the failed read");
    drop(file);
    close(fault_fd);
}

#[test]
fn fault_write_from_unreadable_memory_is_efault() {
    let (_m, fault_fd, file) = queued_fault();
    let mut rec = HwptPgfault::new_zeroed();
    file.read(rec.as_mut_bytes().as_mut_ptr() as u64, FAULT_SIZE)
        .unwrap();
    let bad = noaccess(PAGE as usize);
    let resp_size = core::mem::size_of::<HwptPageResponse>() as u64;
    assert_eq!(file.write(bad.addr(), resp_size), Err(Errno::FAULT));
    // The group is still waiting for its response.
    let resp = HwptPageResponse {
        cookie: rec.cookie,
        code: 0,
    };
    assert_eq!(
        file.write(resp.as_bytes().as_ptr() as u64, resp_size),
        Ok(resp_size)
    );
    drop(file);
    close(fault_fd);
}

// ---- VFIO compatibility ----------------------------------------------------------

#[test]
fn vfio_ioas_get_whose_response_cannot_be_written_is_efault() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    vfio_set(&fd, ioas);
    let mut cmd = VfioIoas::new_zeroed();
    cmd.op = IOMMU_VFIO_IOAS_GET;
    assert_eq!(ioctl_ro(&fd, cmd), Err(Errno::FAULT));
}

#[test]
fn set_iommu_type1_with_domains_and_areas_is_einval() {
    let (fd, ioas) = vfio_compat(false);
    let buf = buffer(PAGE as usize);
    map_dma(&fd, VFIO_RW, buf.addr(), APERTURE, PAGE).unwrap();
    assert_eq!(
        fd.ioctl_ptr(VFIO_SET_IOMMU, u64::from(VFIO_TYPE1_IOMMU)),
        Err(Errno::INVAL)
    );
    assert_eq!(
        fd.option(IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, ioas, 0),
        Ok(1)
    );
}

#[test]
fn set_iommu_type1_with_an_area_not_page_aligned_is_eaddrinuse() {
    let fd = Fd::open();
    let buf = buffer(PAGE as usize);
    let ioas = fd.ioas_alloc();
    fd.map_fixed(ioas, buf.addr(), 0x801, 0x1000).unwrap();
    vfio_set(&fd, ioas);
    assert_eq!(
        fd.ioctl_ptr(VFIO_SET_IOMMU, u64::from(VFIO_TYPE1_IOMMU)),
        Err(Errno::ADDRINUSE)
    );
    assert_eq!(
        fd.option(IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, ioas, 0),
        Ok(1),
        "huge pages stay enabled"
    );
    assert_eq!(fd.ranges(ioas), Ok((vec![(0, u64::MAX)], 1)));
}

#[test]
fn vfio_get_info_writing_into_unwritable_memory_is_efault() {
    let (fd, _) = vfio_compat(false);
    // The header fits in the writable page; a capability runs into the next,
    // inaccessible page: the DMA_AVAIL capability, the IOVA_RANGE header, one of
    // its ranges.
    for header_at in [PAGE - 24, PAGE - 40, PAGE - 56] {
        let mut m = buffer(2 * PAGE as usize);
        let at = header_at as usize;
        m.as_mut_slice().unwrap()[at..at + 16].copy_from_slice([72u32, 0, 0, 0].as_bytes());
        m.protect_range(PAGE as usize, PAGE as usize, libc::PROT_NONE)
            .unwrap();
        assert_eq!(
            fd.ioctl_ptr(VFIO_IOMMU_GET_INFO, m.addr() + header_at),
            Err(Errno::FAULT),
            "header at {header_at:#x}"
        );
    }
    // A read-only header: only the final write-back fails.
    let page = ro_page([16u32, 0, 0, 0].as_bytes());
    assert_eq!(
        fd.ioctl_ptr(VFIO_IOMMU_GET_INFO, page.addr()),
        Err(Errno::FAULT)
    );
}

#[test]
fn vfio_map_dma_misaligned_to_the_ioas_is_einval() {
    let (fd, ioas) = vfio_compat(false);
    let buf = buffer(2 * PAGE as usize);
    // Length not a multiple of the mock's 2 KiB alignment.
    assert_eq!(
        map_dma(&fd, VFIO_RW, buf.addr(), APERTURE, 0x100),
        Err(Errno::INVAL)
    );
    // User address whose page offset is not a multiple of it.
    assert_eq!(
        map_dma(&fd, VFIO_RW, buf.addr() + 0x100, APERTURE, 2048),
        Err(Errno::INVAL)
    );
    assert_eq!(pins(buf.addr()), 0);
    assert_eq!(
        fd.map_fixed(ioas, buf.addr(), PAGE, APERTURE),
        Ok(APERTURE),
        "nothing was mapped"
    );
}

#[test]
fn vfio_map_dma_beyond_the_memlock_limit_is_enomem() {
    let mm = Limited::new(2);
    let mut env = inproc::env();
    env.mm = mm.clone();
    let fd = Fd {
        file: IommufdFile::open(env, true),
    };
    let ioas = fd.ioas_alloc();
    vfio_set(&fd, ioas);
    mock_domain(&fd, ioas, 0).unwrap();
    let buf = buffer(4 * PAGE as usize);
    assert_eq!(
        map_dma(&fd, VFIO_RW, buf.addr(), APERTURE, 4 * PAGE),
        Err(Errno::NOMEM)
    );
    assert_eq!(mm.used(), 0);
    assert_eq!(pins(buf.addr()), 0);
}

#[test]
fn vfio_unmap_dma_of_size_0_is_einval() {
    let (fd, _) = vfio_compat(false);
    assert_eq!(unmap_dma(&fd, APERTURE, 0), Err(Errno::INVAL));
    let (fd, _) = vfio_compat(true);
    assert_eq!(unmap_dma(&fd, APERTURE, 0), Err(Errno::INVAL));
}

#[test]
fn vfio_unmap_dma_type1_splitting_at_a_misaligned_iova_is_einval() {
    let (fd, _) = vfio_compat(true);
    let buf = buffer(2 * PAGE as usize);
    map_dma(&fd, VFIO_RW, buf.addr(), APERTURE, 2 * PAGE).unwrap();
    assert_eq!(unmap_dma(&fd, APERTURE + 0x800, 0x800), Err(Errno::INVAL));
    assert_eq!(pins(buf.addr()), 1, "nothing was unmapped");
    assert_eq!(unmap_dma(&fd, APERTURE, 2 * PAGE), Ok(0));
    assert_eq!(pins(buf.addr()), 0);
}

#[test]
fn vfio_unmap_dma_type1_splitting_an_area_with_access_pins_is_einval() {
    let (fd, ioas) = vfio_compat(true);
    let buf = buffer(2 * PAGE as usize);
    map_dma(&fd, VFIO_RW, buf.addr(), APERTURE, 2 * PAGE).unwrap();
    let afd = create_access(&fd, ioas, PIN);
    let item = access_pages(&fd, afd, APERTURE, PAGE, 0).unwrap();
    assert_eq!(unmap_dma(&fd, APERTURE, PAGE), Err(Errno::INVAL));
    assert_eq!(pins(buf.addr()), 1);
    let p = TestDestroyAccessPages {
        access_pages_id: item,
    };
    assert!(fd.test(afd, &p).is_ok(), "the access still holds its pages");
    close(afd);
    assert_eq!(unmap_dma(&fd, APERTURE, 2 * PAGE), Ok(0));
    assert_eq!(pins(buf.addr()), 0);
}

#[test]
fn vfio_unmap_dma_whose_result_cannot_be_written_is_efault_after_unmapping() {
    let (fd, _) = vfio_compat(false);
    let buf = buffer(2 * PAGE as usize);
    map_dma(&fd, VFIO_RW, buf.addr(), APERTURE, 2 * PAGE).unwrap();
    let u = VfioIommuType1DmaUnmap {
        argsz: 24,
        flags: 0,
        iova: APERTURE,
        size: 2 * PAGE,
    };
    let page = ro_page(u.as_bytes());
    assert_eq!(
        fd.ioctl_ptr(VFIO_IOMMU_UNMAP_DMA, page.addr()),
        Err(Errno::FAULT)
    );
    assert_eq!(pins(buf.addr()), 0, "the unmap itself happened");
    map_dma(&fd, VFIO_RW, buf.addr(), APERTURE, 2 * PAGE).unwrap();
}

// ---- IOMMU_TEST_OP_MOCK_DOMAIN(_FLAGS) and MOCK_DOMAIN_REPLACE --------------

#[test]
fn mock_domain_on_another_drivers_hwpt_is_einval() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    let vtd = BoundDevice::bind(&fd.file, &vtd_device()).unwrap();
    let hwpt = hwpt_alloc(&fd, vtd.id(), ioas, 0, 0, &[]).unwrap();
    let id = next_id(&fd);
    assert_eq!(mock_domain(&fd, hwpt, 0), Err(Errno::INVAL));
    assert_eq!(next_id(&fd), id);
    fd.destroy(hwpt).unwrap();
}

#[test]
fn mock_domain_passes_over_an_automatic_hwpt_that_refuses_it() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    let vtd = BoundDevice::bind(&fd.file, &vtd_device()).unwrap();
    let vtd_hwpt = vtd.attach(ioas).unwrap();
    let (_, hwpt, _) = mock_domain(&fd, ioas, 0).unwrap();
    assert_ne!(hwpt, vtd_hwpt, "a new automatic HWPT for the mock device");
}

#[test]
fn mock_domain_onto_an_ioas_with_iovas_outside_the_aperture_is_eaddrinuse() {
    let fd = Fd::open();
    let buf = buffer(PAGE as usize);
    let ioas = fd.ioas_alloc();
    fd.map_fixed(ioas, buf.addr(), PAGE, APERTURE - PAGE)
        .unwrap();
    let id = next_id(&fd);
    assert_eq!(mock_domain(&fd, ioas, 0), Err(Errno::ADDRINUSE));
    let ioas2 = fd.ioas_alloc();
    allow(&fd, ioas2, &[(APERTURE - PAGE, APERTURE + PAGE)]).unwrap();
    assert_eq!(mock_domain(&fd, ioas2, 0), Err(Errno::ADDRINUSE));
    fd.destroy(ioas2).unwrap();
    assert_eq!(next_id(&fd), id);
    assert_eq!(fd.ranges(ioas), Ok((vec![(0, u64::MAX)], 1)));
}

#[test]
fn mock_domain_whose_response_cannot_be_written_is_efault_and_undone() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    let id = next_id(&fd);
    assert_eq!(
        test_ro(&fd, ioas, &TestMockDomain::new_zeroed()),
        Err(Errno::FAULT)
    );
    assert_eq!(next_id(&fd), id);
    assert_eq!(fd.ranges(ioas), Ok((vec![(0, u64::MAX)], 1)));
    fd.destroy(ioas).unwrap();
}

#[test]
fn replace_onto_an_ioas_of_inaccessible_memory_is_efault() {
    let m = mock();
    let bad = noaccess(PAGE as usize);
    let ioas2 = m.fd.ioas_alloc();
    m.fd.map_fixed(ioas2, bad.addr(), PAGE, APERTURE).unwrap();
    assert_eq!(replace(&m.fd, m.stdev, ioas2), Err(Errno::FAULT));
    assert_eq!(m.fd.destroy(m.hwpt), Err(Errno::BUSY), "still attached");
    m.fd.destroy(ioas2).unwrap();
}

#[test]
fn replace_whose_response_cannot_be_written_is_efault_but_replaced() {
    let m = mock();
    let hwpt2 = hwpt_alloc(&m.fd, m.idev, m.ioas, 0, 0, &[]).unwrap();
    assert_eq!(
        test_ro(&m.fd, m.stdev, &TestMockDomainReplace { pt_id: hwpt2 }),
        Err(Errno::FAULT)
    );
    assert_eq!(
        m.fd.destroy(hwpt2),
        Err(Errno::BUSY),
        "attached to the new HWPT"
    );
    assert_eq!(
        m.fd.destroy(m.hwpt),
        Err(Errno::NOENT),
        "the old automatic HWPT is gone"
    );
}

// ---- other IOMMU_TEST_CMD ops ------------------------------------------------

/// A context with a VT-d device: (context, device, paging HWPT, nested HWPT).
fn vtd_objects() -> (Fd, BoundDevice, u32, u32) {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    let vtd = BoundDevice::bind(&fd.file, &vtd_device()).unwrap();
    let parent = hwpt_alloc(&fd, vtd.id(), ioas, NEST | DIRTY, 0, &[]).unwrap();
    let nested = hwpt_alloc(&fd, vtd.id(), parent, 0, IOMMU_HWPT_DATA_VTD_S1, &[0; 24]).unwrap();
    set_dirty(&fd, parent, true).unwrap();
    (fd, vtd, parent, nested)
}

#[test]
fn md_check_map_of_another_drivers_domain_is_einval() {
    let (fd, _vtd, parent, _) = vtd_objects();
    let buf = buffer(PAGE as usize);
    let p = TestCheckMap {
        iova: APERTURE,
        length: 0,
        uptr: buf.addr(),
    };
    assert_eq!(fd.test(parent, &p).map(|_| ()), Err(Errno::INVAL));
}

#[test]
fn md_check_iotlb_of_another_drivers_domain_is_einval() {
    let (fd, _vtd, _, nested) = vtd_objects();
    assert_eq!(iotlb(&fd, nested, 0, 0), Err(Errno::INVAL));
}

#[test]
fn dirty_of_another_drivers_domain_is_einval() {
    let (fd, _vtd, parent, _) = vtd_objects();
    assert_eq!(mark_dirty(&fd, parent, APERTURE, &[1]), Err(Errno::INVAL));
}

#[test]
fn trigger_iopf_of_a_device_that_is_not_a_mock_is_einval() {
    let (fd, vtd, _, _) = vtd_objects();
    let p = TestTriggerIopf {
        dev_id: vtd.id(),
        ..FromZeros::new_zeroed()
    };
    assert_eq!(fd.test(0, &p).map(|_| ()), Err(Errno::INVAL));
}

#[test]
fn trigger_iopf_nobody_takes_still_returns_0() {
    let m = mock();
    let p = TestTriggerIopf {
        dev_id: m.idev,
        ..FromZeros::new_zeroed()
    };
    assert!(m.fd.test(0, &p).is_ok());
}

#[test]
fn dirty_reading_its_bitmap_from_unreadable_memory_is_efault() {
    let m = mock();
    let hwpt = hwpt_alloc(&m.fd, m.idev, m.ioas, DIRTY, 0, &[]).unwrap();
    set_dirty(&m.fd, hwpt, true).unwrap();
    let bad = noaccess(PAGE as usize);
    let p = TestDirty {
        iova: APERTURE,
        length: 2048,
        page_size: 2048,
        uptr: bad.addr(),
        ..FromZeros::new_zeroed()
    };
    assert_eq!(m.fd.test(hwpt, &p).map(|_| ()), Err(Errno::FAULT));
    let mut bm = [0u64; 1];
    get_dirty(&m.fd, hwpt, APERTURE, 4 * PAGE, bm.as_mut_ptr() as u64).unwrap();
    assert_eq!(bm[0], 0, "nothing was marked");
}

#[test]
fn dirty_whose_response_cannot_be_written_is_efault() {
    let m = mock();
    let hwpt = hwpt_alloc(&m.fd, m.idev, m.ioas, DIRTY, 0, &[]).unwrap();
    set_dirty(&m.fd, hwpt, true).unwrap();
    let bits = [1u64];
    let p = TestDirty {
        iova: APERTURE,
        length: 2048,
        page_size: 2048,
        uptr: bits.as_ptr() as u64,
        ..FromZeros::new_zeroed()
    };
    assert_eq!(test_ro(&m.fd, hwpt, &p), Err(Errno::FAULT));
}

#[test]
fn create_access_without_a_free_fd_is_enomem() {
    let fd = open_without_free_fds();
    let ioas = fd.ioas_alloc();
    let id = next_id(&fd);
    let p = TestCreateAccess {
        out_access_fd: 0,
        flags: PIN,
    };
    assert_eq!(fd.test(ioas, &p).map(|_| ()), Err(Errno::NOMEM));
    assert_eq!(next_id(&fd), id);
    fd.destroy(ioas).unwrap();
}

#[test]
fn create_access_whose_response_cannot_be_written_is_efault_and_undone() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    let id = next_id(&fd);
    let p = TestCreateAccess {
        out_access_fd: 0,
        flags: PIN,
    };
    assert_eq!(test_ro(&fd, ioas, &p), Err(Errno::FAULT));
    assert_eq!(next_id(&fd), id);
    assert_eq!(fd.ranges(ioas), Ok((vec![(0, u64::MAX)], 1)));
    fd.destroy(ioas).unwrap();
}

#[test]
fn access_reading_a_write_only_area_is_eperm() {
    let fd = Fd::open();
    let buf = buffer(PAGE as usize);
    let ioas = fd.ioas_alloc();
    fd.map(
        ioas,
        buf.addr(),
        PAGE,
        APERTURE,
        IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_FIXED_IOVA,
    )
    .unwrap();
    let afd = create_access(&fd, ioas, PIN);
    assert_eq!(access_pages(&fd, afd, APERTURE, PAGE, 0), Err(Errno::PERM));
    let mut data = [0u8; 16];
    assert_eq!(
        access_rw(&fd, afd, APERTURE, &mut data, 0),
        Err(Errno::PERM)
    );
    assert_eq!(pins(buf.addr()), 0);
    close(afd);
}

#[test]
fn access_pages_whose_response_cannot_be_written_is_efault_and_unpinned() {
    let fd = Fd::open();
    let buf = buffer(PAGE as usize);
    let ioas = fd.ioas_alloc();
    fd.map(ioas, buf.addr(), PAGE, APERTURE, FIXED_RW).unwrap();
    let afd = create_access(&fd, ioas, PIN);
    let p = TestAccessPages {
        flags: 0,
        out_access_pages_id: 0,
        iova: APERTURE,
        length: PAGE,
        uptr: 0,
    };
    assert_eq!(test_ro(&fd, afd, &p), Err(Errno::FAULT));
    assert_eq!(pins(buf.addr()), 0);
    assert_eq!(
        access_pages(&fd, afd, APERTURE, PAGE, 0),
        Ok(1),
        "the failed item's id was used"
    );
    close(afd);
}

#[test]
fn access_rw_of_inaccessible_user_memory_is_efault() {
    let fd = Fd::open();
    let bad = noaccess(2 * PAGE as usize);
    let ioas = fd.ioas_alloc();
    fd.map_fixed(ioas, bad.addr(), 2 * PAGE, APERTURE).unwrap();
    let afd = create_access(&fd, ioas, 0);
    let mut data = [0u8; 16];
    // copy_from_user on the owning mm.
    assert_eq!(
        access_rw(&fd, afd, APERTURE, &mut data, 0),
        Err(Errno::FAULT)
    );
    // The pinning paths: within one page, and across pages.
    assert_eq!(
        access_rw(&fd, afd, APERTURE, &mut data, MOCK_ACCESS_RW_SLOW_PATH),
        Err(Errno::FAULT)
    );
    assert_eq!(
        access_rw(
            &fd,
            afd,
            APERTURE + PAGE - 8,
            &mut data,
            MOCK_ACCESS_RW_SLOW_PATH
        ),
        Err(Errno::FAULT)
    );
    close(afd);
}
