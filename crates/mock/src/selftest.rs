//! The selftest mock IOMMU: mock devices, a 2 KiB-page paging domain with dirty
//! tracking, a nested domain with a 4-entry "IOTLB", and a static blocking domain.
//!
//! Devices are created by `IOMMU_TEST_OP_MOCK_DOMAIN(_FLAGS)`, each in its own
//! group, with the blocking domain as default. Paging domains map through a real
//! page table in the mock format (`pt::fmt::Mock`: 2 KiB leaves, optional 1 MiB
//! leaves for `MOCK_FLAGS_DEVICE_HUGE_IOVA` devices), so IO page size and CPU page
//! size differ as in the kernel. Two post-6.12 upstream behaviours are supported:
//! PASID-capable mock devices (`MOCK_FLAGS_DEVICE_PASID`, 20 PASID bits) and the
//! GET_HW_INFO input type.
//!
//! Kernel: `drivers/iommu/iommufd/selftest.c` (`mock_ops`), v6.12.

use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use iommu::fault::{IopfFault, PageResponseCode};
use iommu::{
    Cap, Device, DeviceDesc, DirtyOps, DirtyRecorder, Domain, DomainCore, DomainType, DriverId,
    Geometry, HwInfo, IommuOps, Platform, ProbeInfo, Prot, UserData, UserDataArray, DIRTY_NO_CLEAR,
};
use pt::fmt::{Mock, MockConfig};
use pt::PageTable;
use uapi::{
    Errno, HwptInvalidateSelftest, HwptSelftest, TestHwInfo, IOMMU_HWPT_DATA_SELFTEST,
    IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, IOMMU_HW_INFO_SELFTEST_REGVAL, IOMMU_HW_INFO_TYPE_DEFAULT,
    IOMMU_HW_INFO_TYPE_SELFTEST, IOMMU_TEST_INVALIDATE_FLAG_ALL, MOCK_APERTURE_LAST,
    MOCK_APERTURE_START, MOCK_FLAGS_DEVICE_HUGE_IOVA, MOCK_FLAGS_DEVICE_NO_DIRTY,
    MOCK_FLAGS_DEVICE_PASID, MOCK_NESTED_DOMAIN_IOTLB_ID_MAX, MOCK_NESTED_DOMAIN_IOTLB_NUM,
    MOCK_PASID_WIDTH,
};
use zerocopy::{FromZeros, IntoBytes};

/// The mock driver's identity.
pub const MOCK_DRIVER: DriverId = DriverId("iommufd-mock");
/// The mock IO page size (`MOCK_IO_PAGE_SIZE` = PAGE_SIZE / 2).
pub const MOCK_IO_PAGE_SIZE: u64 = 2048;
/// The optional large IO page (`MOCK_HUGE_PAGE_SIZE`).
pub const MOCK_HUGE_PAGE_SIZE: u64 = 512 * MOCK_IO_PAGE_SIZE;

/// Device flags the mock accepts.
const MOCK_DEVICE_FLAGS: u32 =
    MOCK_FLAGS_DEVICE_NO_DIRTY | MOCK_FLAGS_DEVICE_HUGE_IOVA | MOCK_FLAGS_DEVICE_PASID;

/// The mock IOMMU instance (`mock_iommu_device` with `mock_ops`).
pub struct MockIommu {
    platform: Platform,
    blocking: Arc<dyn Domain>,
    /// Devices with IOPF enabled (the mock IOPF queue).
    iopf_queue: Mutex<Vec<u64>>,
    next_id: AtomicU32,
    me: OnceLock<std::sync::Weak<MockIommu>>,
}

impl MockIommu {
    /// A new mock IOMMU with its own platform (the kernel has one, module-global).
    pub fn new() -> Arc<MockIommu> {
        let mock = Arc::new(MockIommu {
            platform: Platform::default(),
            blocking: Arc::new(MockBlocking {
                core: DomainCore::new(MOCK_DRIVER),
            }),
            iopf_queue: Mutex::new(Vec::new()),
            next_id: AtomicU32::new(0),
            me: OnceLock::new(),
        });
        let _ = mock.me.set(Arc::downgrade(&mock));
        mock
    }

    /// The process-wide mock IOMMU.
    pub fn global() -> &'static Arc<MockIommu> {
        static MOCK: OnceLock<Arc<MockIommu>> = OnceLock::new();
        MOCK.get_or_init(MockIommu::new)
    }

    fn ops(&self) -> Arc<dyn IommuOps> {
        match self.me.get().and_then(std::sync::Weak::upgrade) {
            Some(me) => me,
            None => unreachable!("a MockIommu is always built by MockIommu::new"),
        }
    }

    /// Creates and probes a mock device (`mock_dev_create`).
    ///
    /// # Errors
    /// `EINVAL` for unknown flags.
    pub fn create_device(&self, flags: u32) -> Result<Arc<Device>, Errno> {
        if flags & !MOCK_DEVICE_FLAGS != 0 {
            return Err(Errno::INVAL);
        }
        fault::fail_point!(fault::Site::DeviceAlloc, Errno::NOMEM);
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let desc = DeviceDesc {
            name: format!("iommufd_mock{n}"),
            flags,
            pasid_bits: if flags & MOCK_FLAGS_DEVICE_PASID != 0 {
                MOCK_PASID_WIDTH
            } else {
                0
            },
            ..DeviceDesc::default()
        };
        self.platform.probe(&self.ops(), desc)
    }

    /// Removes a mock device (`mock_dev_destroy`).
    pub fn destroy_device(&self, dev: &Arc<Device>) {
        self.platform.remove_device(dev);
    }

    /// Mock devices present (leak checks in tests).
    #[doc(hidden)]
    pub fn device_count(&self) -> usize {
        self.platform.devices().len()
    }

    /// Whether `dev` is a mock device (`iommufd_selftest_is_mock_dev`).
    pub fn is_mock_device(dev: &Device) -> bool {
        dev.ops().driver() == MOCK_DRIVER
    }

    /// Whether IOPF is enabled for `dev` (in the mock IOPF queue).
    pub fn iopf_enabled(&self, dev: &Device) -> bool {
        lock(&self.iopf_queue).contains(&dev.id())
    }

    fn alloc_paging(dev: &Device, dirty: bool) -> Arc<dyn Domain> {
        let huge = dev.desc().flags & MOCK_FLAGS_DEVICE_HUGE_IOVA != 0;
        Arc::new(MockDomain::new(huge, dirty))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl IommuOps for MockIommu {
    fn driver(&self) -> DriverId {
        MOCK_DRIVER
    }

    fn name(&self) -> &str {
        "mock_iommu_device"
    }

    fn probe_device(&self, _desc: &DeviceDesc) -> Result<ProbeInfo, Errno> {
        Ok(ProbeInfo {
            max_pasids: 1 << MOCK_PASID_WIDTH,
            // Mock devices have no MSIs; iommufd exempts them from the check.
            ..ProbeInfo::default()
        })
    }

    fn capable(&self, dev: &Device, cap: Cap) -> bool {
        match cap {
            Cap::CacheCoherency => true,
            Cap::DirtyTracking => dev.desc().flags & MOCK_FLAGS_DEVICE_NO_DIRTY == 0,
            _ => false,
        }
    }

    fn hw_info(&self, _dev: &Device, data_type: u32) -> Option<Result<HwInfo, Errno>> {
        if data_type != IOMMU_HW_INFO_TYPE_DEFAULT && data_type != IOMMU_HW_INFO_TYPE_SELFTEST {
            return Some(Err(Errno::OPNOTSUPP));
        }
        let info = TestHwInfo {
            flags: 0,
            test_reg: IOMMU_HW_INFO_SELFTEST_REGVAL,
        };
        Some(Ok(HwInfo {
            data_type: IOMMU_HW_INFO_TYPE_SELFTEST,
            data: info.as_bytes().to_vec(),
        }))
    }

    fn default_domain(&self) -> Option<Arc<dyn Domain>> {
        Some(self.blocking.clone())
    }

    fn blocked_domain(&self) -> Option<Arc<dyn Domain>> {
        Some(self.blocking.clone())
    }

    fn domain_alloc_paging(&self, dev: &Device) -> Result<Arc<dyn Domain>, Errno> {
        fault::fail_point!(fault::Site::DomainAlloc, Errno::NOMEM);
        Ok(Self::alloc_paging(dev, false))
    }

    fn has_domain_alloc_user(&self) -> bool {
        true
    }

    fn domain_alloc_user(
        &self,
        dev: &Device,
        flags: u32,
        parent: Option<&Arc<dyn Domain>>,
        data: Option<&UserData<'_>>,
    ) -> Result<Arc<dyn Domain>, Errno> {
        use iommu::ops::alloc_flags::{DIRTY_TRACKING, NEST_PARENT};
        let Some(parent) = parent else {
            let dirty = flags & DIRTY_TRACKING != 0;
            if flags & !(NEST_PARENT | DIRTY_TRACKING) != 0 {
                return Err(Errno::OPNOTSUPP);
            }
            if data.is_some() || (dirty && !self.capable(dev, Cap::DirtyTracking)) {
                return Err(Errno::OPNOTSUPP);
            }
            fault::fail_point!(fault::Site::DomainAlloc, Errno::NOMEM);
            return Ok(Self::alloc_paging(dev, dirty));
        };
        let data = data.ok_or(Errno::OPNOTSUPP)?;
        if data.data_type != IOMMU_HWPT_DATA_SELFTEST || flags != 0 {
            return Err(Errno::OPNOTSUPP);
        }
        if parent.as_any().downcast_ref::<MockDomain>().is_none() {
            return Err(Errno::INVAL);
        }
        let mut cfg = HwptSelftest::new_zeroed();
        data.copy_struct(
            IOMMU_HWPT_DATA_SELFTEST,
            cfg.as_mut_bytes(),
            core::mem::size_of::<u32>(),
        )?;
        fault::fail_point!(fault::Site::DomainAlloc, Errno::NOMEM);
        Ok(Arc::new(MockNested {
            core: DomainCore::new(MOCK_DRIVER),
            iotlb: std::array::from_fn(|_| AtomicU32::new(cfg.iotlb)),
        }))
    }

    fn enable_iopf(&self, dev: &Device) -> Result<(), Errno> {
        let mut queue = lock(&self.iopf_queue);
        if queue.contains(&dev.id()) {
            return Err(Errno::BUSY);
        }
        queue.push(dev.id());
        Ok(())
    }

    fn disable_iopf(&self, dev: &Device) {
        lock(&self.iopf_queue).retain(|&id| id != dev.id());
    }

    fn page_response(&self, _dev: &Device, _fault: &IopfFault, _code: PageResponseCode) {}

    fn user_pasid_table(&self) -> bool {
        true
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// `mock_domain_nop_attach`: refuses only a dirty-tracking domain on a device
/// that cannot track.
fn mock_attach(domain: &dyn Domain, dev: &Device) -> Result<(), Errno> {
    if domain.dirty_ops().is_some() && dev.desc().flags & MOCK_FLAGS_DEVICE_NO_DIRTY != 0 {
        return Err(Errno::INVAL);
    }
    Ok(())
}

/// The static blocking domain (`mock_blocking_domain`).
struct MockBlocking {
    core: DomainCore,
}

impl Domain for MockBlocking {
    fn core(&self) -> &DomainCore {
        &self.core
    }
    fn domain_type(&self) -> DomainType {
        DomainType::Blocked
    }
    fn attach_dev(&self, dev: &Device) -> Result<(), Errno> {
        mock_attach(self, dev)
    }
    fn pgsize_bitmap(&self) -> u64 {
        0
    }
    fn map_pages(
        &self,
        _iova: u64,
        _pa: u64,
        _pgsize: u64,
        _pgcount: u64,
        _prot: Prot,
    ) -> Result<u64, (u64, Errno)> {
        Err((0, Errno::INVAL))
    }
    fn unmap_pages(&self, _iova: u64, _pgsize: u64, _pgcount: u64) -> u64 {
        0
    }
    fn iova_to_phys(&self, _iova: u64) -> u64 {
        0
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A mock paging domain (`struct mock_iommu_domain`).
pub struct MockDomain {
    core: DomainCore,
    pt: PageTable<Mock>,
    /// Allocated with `IOMMU_HWPT_ALLOC_DIRTY_TRACKING` (has dirty ops).
    dirty_ops: bool,
    /// `MOCK_DIRTY_TRACK`: tracking enabled.
    tracking: AtomicBool,
}

impl MockDomain {
    fn new(huge: bool, dirty_ops: bool) -> MockDomain {
        let cfg = if huge {
            MockConfig::SELFTEST_HUGE
        } else {
            MockConfig::SELFTEST
        };
        let pt = match PageTable::new(cfg) {
            Ok(pt) => pt,
            Err(_) => unreachable!("the selftest mock configuration is valid"),
        };
        MockDomain {
            core: DomainCore::new(MOCK_DRIVER),
            pt,
            dirty_ops,
            tracking: AtomicBool::new(false),
        }
    }

    /// The mock domain behind a domain, if it is one (`get_md_pagetable`).
    pub fn from_domain(domain: &dyn Domain) -> Option<&MockDomain> {
        domain.as_any().downcast_ref::<MockDomain>()
    }

    /// The physical address the IO page at `iova` maps, if mapped
    /// (`MD_CHECK_MAP`'s xarray lookup).
    pub fn lookup(&self, iova: u64) -> Option<u64> {
        self.pt.iova_to_phys(iova)
    }

    /// Marks the IO page at `iova` dirty, as a device write would; false if it is
    /// not mapped (`IOMMU_TEST_OP_DIRTY`).
    pub fn mark_dirty(&self, iova: u64) -> bool {
        self.pt.mark_dirty(iova)
    }

    /// The domain's page table (leak and invariant checks in tests).
    #[doc(hidden)]
    pub fn page_table(&self) -> &PageTable<Mock> {
        &self.pt
    }

    /// Whether dirty tracking is on (`MOCK_DIRTY_TRACK`).
    pub fn tracking(&self) -> bool {
        self.tracking.load(Ordering::Acquire)
    }

    /// The page size of the leaf mapping `iova`, if any.
    fn leaf_size(&self, iova: u64) -> Option<u64> {
        self.pt.lookup(iova).map(|leaf| leaf.size)
    }
}

impl Domain for MockDomain {
    fn core(&self) -> &DomainCore {
        &self.core
    }
    fn domain_type(&self) -> DomainType {
        DomainType::Unmanaged
    }
    fn geometry(&self) -> Geometry {
        Geometry {
            aperture_start: MOCK_APERTURE_START,
            aperture_end: MOCK_APERTURE_LAST,
            force_aperture: true,
        }
    }
    fn attach_dev(&self, dev: &Device) -> Result<(), Errno> {
        mock_attach(self, dev)
    }
    fn pgsize_bitmap(&self) -> u64 {
        self.pt.pgsize_bitmap()
    }
    fn map_pages(
        &self,
        iova: u64,
        pa: u64,
        pgsize: u64,
        pgcount: u64,
        prot: Prot,
    ) -> Result<u64, (u64, Errno)> {
        let mut prot = pt::Prot::from_bits_truncate(prot.bits());
        // The kernel's mock keeps no permissions, so a mapping with neither READ
        // nor WRITE (VFIO_IOMMU_MAP_DMA with flags 0) still succeeds; the AMD-like
        // format underneath needs one of them to encode a present leaf.
        if !prot.intersects(pt::Prot::READ | pt::Prot::WRITE) {
            prot |= pt::Prot::READ;
        }
        self.pt.map_pages(iova, pa, pgsize, pgcount, prot)
    }
    fn dma_translate(&self, iova: u64, write: bool) -> Result<iommu::DmaTranslation, Errno> {
        let t = self.pt.translate(iova, write)?;
        Ok(iommu::DmaTranslation {
            pa: t.pa,
            len: t.leaf_size - (t.pa & (t.leaf_size - 1)),
        })
    }
    fn unmap_pages(&self, iova: u64, pgsize: u64, pgcount: u64) -> u64 {
        // The mock reports the bytes requested even where nothing was mapped.
        self.pt.unmap_pages(iova, pgsize, pgcount);
        pgsize * pgcount
    }
    fn iova_to_phys(&self, iova: u64) -> u64 {
        self.pt.iova_to_phys(iova).unwrap_or(0)
    }
    fn dirty_ops(&self) -> Option<&dyn DirtyOps> {
        if self.dirty_ops {
            Some(self)
        } else {
            None
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl DirtyOps for MockDomain {
    fn set_dirty_tracking(&self, enable: bool) -> Result<(), Errno> {
        if enable && !self.dirty_ops {
            return Err(Errno::INVAL);
        }
        self.tracking.store(enable, Ordering::Release);
        // Emulated DMA (`dma_translate`) marks written IO pages dirty only while
        // tracking is on, as the hardware the mock stands for would.
        if self.dirty_ops {
            self.pt.set_dirty_tracking(enable)?;
        }
        Ok(())
    }

    /// `mock_domain_read_and_clear_dirty`: steps by each entry's page size and
    /// reports `(iova, pgsize)` where any part of that page is dirty.
    fn read_and_clear_dirty(
        &self,
        mut iova: u64,
        size: u64,
        flags: u32,
        mut dirty: Option<&mut dyn DirtyRecorder>,
    ) -> Result<(), Errno> {
        if !self.tracking() && dirty.is_some() {
            return Err(Errno::INVAL);
        }
        let end = iova.wrapping_add(size);
        loop {
            let Some(pgsize) = self.leaf_size(iova) else {
                iova = iova.wrapping_add(MOCK_IO_PAGE_SIZE);
                if iova >= end {
                    return Ok(());
                }
                continue;
            };
            let head = iova & !(pgsize - 1);
            let mut was_dirty = false;
            self.pt
                .read_and_clear_dirty(head, pgsize, flags & DIRTY_NO_CLEAR != 0, &mut |_, _| {
                    was_dirty = true;
                });
            if was_dirty {
                if let Some(rec) = dirty.as_deref_mut() {
                    rec.record(iova, pgsize);
                }
            }
            iova = iova.wrapping_add(pgsize);
            if iova >= end {
                return Ok(());
            }
        }
    }
}

/// A mock nested domain (`struct mock_iommu_domain_nested`).
pub struct MockNested {
    core: DomainCore,
    iotlb: [AtomicU32; MOCK_NESTED_DOMAIN_IOTLB_NUM as usize],
}

impl MockNested {
    /// The mock nested domain behind a domain, if it is one (`get_md_pagetable_nested`).
    pub fn from_domain(domain: &dyn Domain) -> Option<&MockNested> {
        domain.as_any().downcast_ref::<MockNested>()
    }

    /// IOTLB entry `id`, if `id` is valid.
    pub fn iotlb(&self, id: u32) -> Option<u32> {
        self.iotlb
            .get(id as usize)
            .map(|e| e.load(Ordering::Acquire))
    }
}

impl Domain for MockNested {
    fn core(&self) -> &DomainCore {
        &self.core
    }
    fn domain_type(&self) -> DomainType {
        DomainType::Nested
    }
    fn attach_dev(&self, dev: &Device) -> Result<(), Errno> {
        mock_attach(self, dev)
    }
    fn pgsize_bitmap(&self) -> u64 {
        0
    }
    fn map_pages(
        &self,
        _iova: u64,
        _pa: u64,
        _pgsize: u64,
        _pgcount: u64,
        _prot: Prot,
    ) -> Result<u64, (u64, Errno)> {
        Err((0, Errno::INVAL))
    }
    fn unmap_pages(&self, _iova: u64, _pgsize: u64, _pgcount: u64) -> u64 {
        0
    }
    fn iova_to_phys(&self, _iova: u64) -> u64 {
        0
    }
    fn has_cache_invalidate_user(&self) -> bool {
        true
    }
    /// `mock_domain_cache_invalidate_user`.
    fn cache_invalidate_user(&self, array: &mut UserDataArray<'_>) -> Result<(), Errno> {
        let mut processed = 0;
        let res = self.invalidate_entries(array, &mut processed);
        array.entry_num = processed;
        res
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl MockNested {
    fn invalidate_entries(
        &self,
        array: &UserDataArray<'_>,
        processed: &mut u32,
    ) -> Result<(), Errno> {
        if array.data_type != IOMMU_HWPT_INVALIDATE_DATA_SELFTEST {
            return Err(Errno::INVAL);
        }
        let min_len = core::mem::size_of::<HwptInvalidateSelftest>();
        for i in 0..array.entry_num {
            let mut inv = HwptInvalidateSelftest::new_zeroed();
            array.copy_entry(
                IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
                inv.as_mut_bytes(),
                i,
                min_len,
            )?;
            if inv.flags & !IOMMU_TEST_INVALIDATE_FLAG_ALL != 0 {
                return Err(Errno::OPNOTSUPP);
            }
            if inv.iotlb_id > MOCK_NESTED_DOMAIN_IOTLB_ID_MAX {
                return Err(Errno::INVAL);
            }
            if inv.flags & IOMMU_TEST_INVALIDATE_FLAG_ALL != 0 {
                for e in &self.iotlb {
                    e.store(0, Ordering::Release);
                }
            } else {
                self.iotlb[inv.iotlb_id as usize].store(0, Ordering::Release);
            }
            *processed += 1;
        }
        Ok(())
    }
}
