//! `IOMMU_DESTROY`: remove one object from the context's object table.
//!
//! Kernel: `include/uapi/linux/iommufd.h` (`struct iommu_destroy`, v6.12).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Argument of `IOMMU_DESTROY` (`struct iommu_destroy`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct Destroy {
    /// Size of this struct as known to the caller.
    pub size: u32,
    /// ID of the object to destroy; any object type that may be destroyed explicitly.
    pub id: u32,
}

assert_layout!(Destroy, size = 8, align = 4, size = 0, id = 4);
ioctl_cmd!(Destroy, IOMMU_DESTROY, last = id, min_size = 8);
