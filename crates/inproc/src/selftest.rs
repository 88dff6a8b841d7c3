//! The selftest mock IOMMU behind `IOMMU_TEST_CMD`: the `mock` crate's driver,
//! adapted to iommufd's [`SelftestDriver`] port.

use std::sync::Arc;

use iommu::{Device, Domain};
use iommufd::SelftestDriver;
use mock::{MockDomain, MockIommu, MockNested};
use uapi::Errno;

/// The process's mock IOMMU as iommufd's selftest driver.
pub struct MockSelftest {
    mock: Arc<MockIommu>,
}

impl MockSelftest {
    /// The adapter over the process-wide mock IOMMU.
    pub fn global() -> Arc<MockSelftest> {
        Arc::new(MockSelftest {
            mock: MockIommu::global().clone(),
        })
    }
}

fn mock_domain(domain: &dyn Domain) -> Result<&MockDomain, Errno> {
    MockDomain::from_domain(domain).ok_or(Errno::INVAL)
}

impl SelftestDriver for MockSelftest {
    fn create_device(&self, flags: u32) -> Result<Arc<Device>, Errno> {
        self.mock.create_device(flags)
    }

    fn destroy_device(&self, dev: &Arc<Device>) {
        self.mock.destroy_device(dev);
    }

    fn is_mock_device(&self, dev: &Device) -> bool {
        MockIommu::is_mock_device(dev)
    }

    fn lookup(&self, domain: &dyn Domain, iova: u64) -> Result<Option<u64>, Errno> {
        Ok(mock_domain(domain)?.lookup(iova))
    }

    fn dirty_tracking(&self, domain: &dyn Domain) -> Result<bool, Errno> {
        Ok(mock_domain(domain)?.tracking())
    }

    fn mark_dirty(&self, domain: &dyn Domain, index: u64) -> Result<bool, Errno> {
        Ok(mock_domain(domain)?.mark_dirty(index * mock::selftest::MOCK_IO_PAGE_SIZE))
    }

    fn iotlb(&self, domain: &dyn Domain, id: u32) -> Result<Option<u32>, Errno> {
        let nested = MockNested::from_domain(domain).ok_or(Errno::INVAL)?;
        Ok(nested.iotlb(id))
    }
}
