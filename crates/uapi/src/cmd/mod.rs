//! The `#[repr(C)]` argument structs of every iommufd ioctl, and the [`IoctlCmd`] trait that
//! ties a command struct to its ioctl number and minimum size.
//!
//! One file per group of commands, in header order: `destroy`, `ioas`, `option`, `vfio`
//! (`IOMMU_VFIO_IOAS` and the VFIO type1 container structs), `hwpt`, `device`
//! (`IOMMU_GET_HW_INFO`), `fault`, and `test` (`iommufd_test.h`). Each struct carries a
//! `const` assertion of its size, alignment and every field offset.
//!
//! Kernel: `include/uapi/linux/iommufd.h`, `include/uapi/linux/vfio.h`,
//! `drivers/iommu/iommufd/iommufd_test.h` (v6.12).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Asserts at compile time the size, alignment and field offsets of a `#[repr(C)]` struct.
macro_rules! assert_layout {
    ($ty:ty, size = $size:expr, align = $align:expr $(, $field:ident = $off:expr)* $(,)?) => {
        const _: () = {
            assert!(::core::mem::size_of::<$ty>() == $size, "size");
            assert!(::core::mem::align_of::<$ty>() == $align, "align");
            $(assert!(::core::mem::offset_of!($ty, $field) == $off, stringify!($field));)*
        };
    };
}

/// `offsetofend(T, field)`: the offset of the first byte after `field`.
macro_rules! offset_end {
    ($ty:ty, $field:ident) => {
        ::core::mem::offset_of!($ty, $field) + $crate::cmd::field_size(|s: &$ty| &s.$field)
    };
}

/// Implements [`IoctlCmd`] and asserts that the derived `MIN_SIZE` equals the kernel's table.
macro_rules! ioctl_cmd {
    ($ty:ty, $ioctl:ident, last = $last:ident, min_size = $min:expr) => {
        impl $crate::cmd::IoctlCmd for $ty {
            const IOCTL: u32 = $crate::ioctl::$ioctl;
            const NAME: &'static str = stringify!($ioctl);
            const MIN_SIZE: usize = offset_end!($ty, $last);
        }
        const _: () = assert!(<$ty as $crate::cmd::IoctlCmd>::MIN_SIZE == $min, "min_size");
    };
}

mod destroy;
mod device;
mod fault;
mod hwpt;
mod ioas;
mod option;
mod test;
mod vfio;

pub use destroy::Destroy;
pub use device::{
    HwInfo, HwInfoVtd, IOMMU_HW_CAP_DIRTY_TRACKING, IOMMU_HW_CAP_PCI_PASID_EXEC,
    IOMMU_HW_CAP_PCI_PASID_PRIV, IOMMU_HW_INFO_FLAG_INPUT_TYPE, IOMMU_HW_INFO_TYPE_DEFAULT,
    IOMMU_HW_INFO_TYPE_INTEL_VTD, IOMMU_HW_INFO_TYPE_NONE, IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17,
};
pub use device::{HwInfoArmSmmuv3, IOMMU_HW_INFO_TYPE_ARM_SMMUV3};
pub use fault::{
    FaultAlloc, HwptPageResponse, HwptPgfault, IOMMUFD_PAGE_RESP_INVALID,
    IOMMUFD_PAGE_RESP_SUCCESS, IOMMU_PGFAULT_FLAGS_LAST_PAGE, IOMMU_PGFAULT_FLAGS_PASID_VALID,
    IOMMU_PGFAULT_PERM_EXEC, IOMMU_PGFAULT_PERM_PRIV, IOMMU_PGFAULT_PERM_READ,
    IOMMU_PGFAULT_PERM_WRITE,
};
pub use hwpt::{
    HwptAlloc, HwptGetDirtyBitmap, HwptInvalidate, HwptSetDirtyTracking, HwptVtdS1,
    HwptVtdS1Invalidate, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, IOMMU_HWPT_ALLOC_NEST_PARENT,
    IOMMU_HWPT_DATA_NONE, IOMMU_HWPT_DATA_VTD_S1, IOMMU_HWPT_DIRTY_TRACKING_ENABLE,
    IOMMU_HWPT_FAULT_ID_VALID, IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
    IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, IOMMU_VTD_INV_FLAGS_LEAF, IOMMU_VTD_S1_EAFE,
    IOMMU_VTD_S1_SRE, IOMMU_VTD_S1_WPE,
};
pub use ioas::{
    IoasAlloc, IoasAllowIovas, IoasCopy, IoasIovaRanges, IoasMap, IoasUnmap, IovaRange,
    IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_WRITEABLE,
};
pub use option::{
    IommuOption, IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, IOMMU_OPTION_OP_SET,
    IOMMU_OPTION_RLIMIT_MODE,
};
pub use test::{
    HwptInvalidateSelftest, HwptSelftest, TestAccessPages, TestAccessReplaceIoas, TestAccessRw,
    TestAddReserved, TestCheckIotlb, TestCheckMap, TestCheckRefs, TestCmd, TestCreateAccess,
    TestDestroyAccessPages, TestDirty, TestHwInfo, TestMemoryLimit, TestMockDomain,
    TestMockDomainFlags, TestMockDomainReplace, TestPayload, TestTriggerIopf,
    IOMMU_HWPT_DATA_SELFTEST, IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
    IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID, IOMMU_HW_INFO_SELFTEST_REGVAL,
    IOMMU_HW_INFO_TYPE_SELFTEST, IOMMU_TEST_INVALIDATE_FLAG_ALL, IOMMU_TEST_IOTLB_DEFAULT,
    IOMMU_TEST_OP_ACCESS_PAGES, IOMMU_TEST_OP_ACCESS_REPLACE_IOAS, IOMMU_TEST_OP_ACCESS_RW,
    IOMMU_TEST_OP_ADD_RESERVED, IOMMU_TEST_OP_CREATE_ACCESS, IOMMU_TEST_OP_DESTROY_ACCESS_PAGES,
    IOMMU_TEST_OP_DIRTY, IOMMU_TEST_OP_MD_CHECK_IOTLB, IOMMU_TEST_OP_MD_CHECK_MAP,
    IOMMU_TEST_OP_MD_CHECK_REFS, IOMMU_TEST_OP_MOCK_DOMAIN, IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS,
    IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT,
    IOMMU_TEST_OP_TRIGGER_IOPF, MOCK_ACCESS_RW_SLOW_PATH, MOCK_ACCESS_RW_WRITE, MOCK_APERTURE_LAST,
    MOCK_APERTURE_START, MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES, MOCK_FLAGS_ACCESS_SYZ,
    MOCK_FLAGS_ACCESS_WRITE, MOCK_FLAGS_DEVICE_HUGE_IOVA, MOCK_FLAGS_DEVICE_NO_DIRTY,
    MOCK_FLAGS_DEVICE_PASID, MOCK_NESTED_DOMAIN_IOTLB_ID_MAX, MOCK_NESTED_DOMAIN_IOTLB_NUM,
    MOCK_PASID_WIDTH, TEST_CMD_PAYLOAD_LEN,
};
pub use vfio::{
    VFIO_SPAPR_TCE_v2_IOMMU, VFIO_TYPE1v2_IOMMU, VfioInfoCapHeader, VfioIoas, VfioIommuType1DmaMap,
    VfioIommuType1DmaUnmap, VfioIommuType1Info, VfioIommuType1InfoCapIovaRange,
    VfioIommuType1InfoDmaAvail, VfioIovaRange, IOMMU_VFIO_IOAS_CLEAR, IOMMU_VFIO_IOAS_GET,
    IOMMU_VFIO_IOAS_SET, VFIO_API_VERSION, VFIO_DMA_CC_IOMMU, VFIO_DMA_MAP_FLAG_READ,
    VFIO_DMA_MAP_FLAG_VADDR, VFIO_DMA_MAP_FLAG_WRITE, VFIO_DMA_UNMAP_FLAG_ALL,
    VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, VFIO_DMA_UNMAP_FLAG_VADDR, VFIO_EEH,
    VFIO_IOMMU_INFO_CAPS, VFIO_IOMMU_INFO_PGSIZES, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
    VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, VFIO_NOIOMMU_IOMMU,
    VFIO_SPAPR_TCE_IOMMU, VFIO_TYPE1_IOMMU, VFIO_TYPE1_NESTING_IOMMU, VFIO_UNMAP_ALL,
    VFIO_UPDATE_VADDR,
};

/// An iommufd ioctl argument struct, as the dispatcher needs to know it.
///
/// Every command struct starts with a `u32 size` chosen by the caller. The dispatcher
/// rejects `size < MIN_SIZE` with `EINVAL`, zero-fills the kernel copy past a short `size`,
/// and requires the bytes past `size_of::<Self>()` of a long one to be zero (`E2BIG`).
pub trait IoctlCmd: FromBytes + IntoBytes + KnownLayout + Immutable + Default {
    /// The full ioctl command number (`_IO(IOMMUFD_TYPE, nr)`).
    const IOCTL: u32;
    /// The C name of the ioctl, for logs and error messages.
    const NAME: &'static str;
    /// `offsetofend` of the last field of the first ABI version of this struct: the smallest
    /// `size` the kernel accepts. Fields added later read as zero for older callers.
    const MIN_SIZE: usize;
    /// `sizeof` the struct in this ABI version (the kernel's `ksize`).
    const SIZE: usize = core::mem::size_of::<Self>();
}

/// The size of the field that `project` selects; used by `offset_end!` in `const` context.
///
/// The function pointer is never called: it exists so that the field's type can be inferred.
pub(crate) const fn field_size<T, F>(_project: fn(&T) -> &F) -> usize {
    core::mem::size_of::<F>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ioctl;

    fn row<T: IoctlCmd>() -> (u32, &'static str, usize, usize) {
        (T::IOCTL, T::NAME, T::SIZE, T::MIN_SIZE)
    }

    #[test]
    fn dispatch_table_matches_uapi_spec() {
        // (ioctl, name, sizeof, min_size) as in UAPI.md §2.
        let table = [
            (
                row::<Destroy>(),
                (ioctl::IOMMU_DESTROY, "IOMMU_DESTROY", 8, 8),
            ),
            (row::<IoasAlloc>(), (0x3b81, "IOMMU_IOAS_ALLOC", 12, 12)),
            (
                row::<IoasAllowIovas>(),
                (0x3b82, "IOMMU_IOAS_ALLOW_IOVAS", 24, 24),
            ),
            (row::<IoasCopy>(), (0x3b83, "IOMMU_IOAS_COPY", 40, 40)),
            (
                row::<IoasIovaRanges>(),
                (0x3b84, "IOMMU_IOAS_IOVA_RANGES", 32, 32),
            ),
            (row::<IoasMap>(), (0x3b85, "IOMMU_IOAS_MAP", 40, 40)),
            (row::<IoasUnmap>(), (0x3b86, "IOMMU_IOAS_UNMAP", 24, 24)),
            (row::<IommuOption>(), (0x3b87, "IOMMU_OPTION", 24, 24)),
            (row::<VfioIoas>(), (0x3b88, "IOMMU_VFIO_IOAS", 12, 12)),
            (row::<HwptAlloc>(), (0x3b89, "IOMMU_HWPT_ALLOC", 48, 24)),
            (row::<HwInfo>(), (0x3b8a, "IOMMU_GET_HW_INFO", 40, 32)),
            (
                row::<HwptSetDirtyTracking>(),
                (0x3b8b, "IOMMU_HWPT_SET_DIRTY_TRACKING", 16, 16),
            ),
            (
                row::<HwptGetDirtyBitmap>(),
                (0x3b8c, "IOMMU_HWPT_GET_DIRTY_BITMAP", 48, 48),
            ),
            (
                row::<HwptInvalidate>(),
                (0x3b8d, "IOMMU_HWPT_INVALIDATE", 32, 32),
            ),
            (
                row::<FaultAlloc>(),
                (0x3b8e, "IOMMU_FAULT_QUEUE_ALLOC", 16, 16),
            ),
            (row::<TestCmd>(), (0x3ba0, "IOMMU_TEST_CMD", 72, 68)),
        ];
        for (got, want) in table {
            assert_eq!(got, want);
        }
    }
}
