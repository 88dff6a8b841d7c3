//! The host-OS boundary of the userspace iommufd: everything that touches the
//! real process rather than the emulated IOMMU.
//!
//! * [`uaccess`]: fault-safe copies from/to arbitrary user addresses
//!   (`copy_from_user` and friends), built like the kernel's exception table:
//!   assembly copy routines whose faulting instructions a SIGSEGV/SIGBUS
//!   handler redirects to a fixup that returns the number of bytes not copied.
//! * [`vma`]: what the kernel's GUP would say about a user range, from
//!   `/proc/self/maps` (mapped? readable/writable? hugetlb page size?).
//! * [`pins`]: process-wide per-page pin counts (a model of `struct page`
//!   pin refcounts), kept as merged segments so huge ranges stay cheap.
//! * [`fds`]: the descriptors the emulation keeps open for itself, marked so
//!   that a program closing every descriptor leaves them alone.
//! * [`mem`]: plain copies used as benchmark floors (non-temporal copy).
//! * [`sys`]: small safe wrappers (rlimits, capabilities, ids, eventfd,
//!   anonymous mappings).
//!
//! This is the only library crate of the workspace allowed `unsafe`; only the
//! modules that need it opt in with `#![allow(unsafe_code)]`.

#![deny(unsafe_code)]

pub mod fds;
pub mod mem;
pub mod pins;
pub mod sys;
pub mod uaccess;
pub mod vma;

pub use uapi::Errno;
