//! IOMMU drivers behind the `iommu` crate's traits: the kernel selftest's mock
//! IOMMU, and drivers over the real page-table formats of the `pt` crate.
//!
//! Kernel: `drivers/iommu/iommufd/selftest.c` (`mock_ops`), v6.12.

#![forbid(unsafe_code)]

pub mod selftest;

pub use selftest::{MockDomain, MockIommu, MockNested, MOCK_DRIVER};
