//! In-process assembly of iommufd: this process's memory ([`HostMm`]), its
//! emulated file descriptors ([`FdTable`]), and `open("/dev/iommu")`.
//!
//! The preload library and the CLI build on this crate; so do the handler-level
//! tests, which drive the exact ioctl ABI against real memory of the test process.

#![forbid(unsafe_code)]

pub mod dma;
pub mod files;
mod hostmm;
mod selftest;
pub mod vfs;

use std::sync::{Arc, OnceLock};

use iommufd::mm::UserMemory;
use iommufd::{Env, IommufdFile};

pub use files::{FdEntry, FdTable};
pub use hostmm::{CapOverrides, HostMm, CAPS_ENV};
pub use selftest::MockSelftest;

/// This process's memory, shared by every context (there is one mm per process).
pub fn host_mm() -> &'static Arc<dyn UserMemory> {
    static MM: OnceLock<Arc<dyn UserMemory>> = OnceLock::new();
    MM.get_or_init(|| Arc::new(HostMm::new()))
}

/// The environment every context of this process uses.
pub fn env() -> Env {
    static SELFTEST: OnceLock<Arc<MockSelftest>> = OnceLock::new();
    let selftest = SELFTEST.get_or_init(MockSelftest::global).clone();
    Env {
        mm: host_mm().clone(),
        files: FdTable::global().clone(),
        selftest: Some(selftest),
    }
}

/// `open("/dev/iommu")` (or `/dev/vfio/vfio` with `vfio`), without an fd.
pub fn open(vfio: bool) -> Arc<IommufdFile> {
    IommufdFile::open(env(), vfio)
}
