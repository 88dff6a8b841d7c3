//! The iommufd subsystem: objects, I/O address spaces, page stores, accesses and
//! the ioctl dispatcher of `/dev/iommu`, faithful to Linux 6.12.
//!
//! The crate reaches IOMMU drivers only through the `iommu` crate's traits, user
//! memory only through [`mm::UserMemory`] and file descriptors only through
//! [`mm::Files`]; whoever embeds it (the preload library, tests, a daemon)
//! provides those. [`IommufdFile::open`] is `open("/dev/iommu")` and
//! [`IommufdFile::ioctl`] is `ioctl()` on it.
//!
//! Layers, top down: `dispatch`/`ucmd` (ABI) → handlers (`ioas`, `hwpt`,
//! `vfio_compat`, `test_cmd`) → objects (`ctx`, `object`, `access`) → `iopt` (IOVA
//! space) → `pages` (pinned memory) → `mm` (ports). uAPI structs stop at the
//! handlers.
//!
//! Kernel: `drivers/iommu/iommufd/` (v6.12).

#![forbid(unsafe_code)]

pub mod access;
mod ctx;
#[doc(hidden)]
pub mod debug;
mod device;
mod dispatch;
mod fault;
mod hwpt;
mod ioas;
mod iopt;
mod iova_bitmap;
pub mod mm;
mod object;
mod pages;
mod sync;
#[cfg(feature = "selftest")]
mod test_cmd;
mod ucmd;
mod vfio_compat;

pub use access::{AccessHandle, AccessOps};
pub use ctx::{Ctx, Env, IommufdFile};
pub use device::{set_allow_unsafe_interrupts, BoundDevice};
pub use ioas::Ioas;
pub use object::{ObjType, Object};
#[cfg(feature = "selftest")]
pub use test_cmd::{temp_memory_limit, SelftestDriver};
