//! Exact Linux 6.12 iommufd uAPI: the ioctl argument structs, ioctl numbers, flag and enum
//! values of `/dev/iommu`, the selftest (`IOMMU_TEST_CMD`) uAPI, the VFIO type1 container
//! structs that iommufd's compatibility layer serves, and [`Errno`].
//!
//! Kernel: `include/uapi/linux/iommufd.h`, v6.12.
//!
//! # Provenance
//!
//! Hand-curated from Debian `linux-source-6.12` 6.12.117: `include/uapi/linux/iommufd.h`,
//! `include/uapi/linux/vfio.h` (the type1 container subset) and
//! `drivers/iommu/iommufd/iommufd_test.h`. Names, numbers and layouts are the kernel's;
//! the documentation is our own. Layouts are asserted against `abi/uapi-6.12-layout.txt`,
//! `abi/uapi-6.12-pahole.txt` (iommufd and selftest headers, gcc 12.2 x86-64) and
//! `abi/uapi-6.12-extra-layout.txt` (VFIO subset and selftest `#define`s, produced by
//! `abi/gen-extra-layout.c`), by `const` assertions next to every struct, and by
//! `tests/layout.rs`, which parses those files. `tests/bindings.rs` cross-checks the
//! iommufd structs against the bindgen-generated `iommufd-bindings` crate.
//!
//! # Manual edits relative to the C headers
//!
//! - zerocopy's `IntoBytes` forbids implicit padding, so C's implicit padding is an explicit
//!   field named `__pad` (not part of C): `TestCmd` (tail), `TestCheckRefs` (tail),
//!   `TestAccessRw` (tail) and `TestDirty` (the hole after `flags`).
//! - The anonymous union of `struct iommu_test_cmd` is [`TestCmd::payload`], 48 raw bytes;
//!   each member is a struct implementing [`TestPayload`] (`TestAddReserved`, ...).
//! - `struct iommu_option` is [`IommuOption`], not `Option`, to avoid shadowing the prelude.
//! - `__aligned_u64` fields are `u64` in `#[repr(C, align(8))]` structs.
//! - Flexible array members (`vfio_iommu_type1_info_cap_iova_range::iova_ranges[]`,
//!   `vfio_iommu_type1_dma_unmap::data[]`) are left out; they start at `size_of::<T>()`.
//! - C enum constants have the type of the field they are stored in (`u16` for option and
//!   VFIO-IOAS ops, `u64` for `IOMMU_VTD_S1_*`, `IOMMU_HW_CAP_*` and the mock aperture).
//! - Post-6.12 upstream additions this project supports:
//!   [`IOMMU_HW_INFO_FLAG_INPUT_TYPE`], [`IOMMU_HW_INFO_TYPE_DEFAULT`] (and
//!   [`HwInfo::in_data_type`]), [`MOCK_FLAGS_DEVICE_PASID`], [`MOCK_PASID_WIDTH`],
//!   [`HwInfoArmSmmuv3`] and [`IOMMU_HW_INFO_TYPE_ARM_SMMUV3`].

#![forbid(unsafe_code)]

mod cmd;
mod errno;
pub mod ioctl;

pub use cmd::{
    Destroy, FaultAlloc, HwInfo, HwInfoVtd, HwptAlloc, HwptGetDirtyBitmap, HwptInvalidate,
    HwptInvalidateSelftest, HwptPageResponse, HwptPgfault, HwptSelftest, HwptSetDirtyTracking,
    HwptVtdS1, HwptVtdS1Invalidate, IoasAlloc, IoasAllowIovas, IoasCopy, IoasIovaRanges, IoasMap,
    IoasUnmap, IoctlCmd, IommuOption, IovaRange, TestAccessPages, TestAccessReplaceIoas,
    TestAccessRw, TestAddReserved, TestCheckIotlb, TestCheckMap, TestCheckRefs, TestCmd,
    TestCreateAccess, TestDestroyAccessPages, TestDirty, TestHwInfo, TestMemoryLimit,
    TestMockDomain, TestMockDomainFlags, TestMockDomainReplace, TestPayload, TestTriggerIopf,
    VfioInfoCapHeader, VfioIoas, VfioIommuType1DmaMap, VfioIommuType1DmaUnmap, VfioIommuType1Info,
    VfioIommuType1InfoCapIovaRange, VfioIommuType1InfoDmaAvail, VfioIovaRange,
};
pub use cmd::{HwInfoArmSmmuv3, IOMMU_HW_INFO_TYPE_ARM_SMMUV3};
pub use cmd::{
    VFIO_SPAPR_TCE_v2_IOMMU, VFIO_TYPE1v2_IOMMU, IOMMUFD_PAGE_RESP_INVALID,
    IOMMUFD_PAGE_RESP_SUCCESS, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, IOMMU_HWPT_ALLOC_NEST_PARENT,
    IOMMU_HWPT_DATA_NONE, IOMMU_HWPT_DATA_SELFTEST, IOMMU_HWPT_DATA_VTD_S1,
    IOMMU_HWPT_DIRTY_TRACKING_ENABLE, IOMMU_HWPT_FAULT_ID_VALID,
    IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR, IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
    IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID, IOMMU_HWPT_INVALIDATE_DATA_VTD_S1,
    IOMMU_HW_CAP_DIRTY_TRACKING, IOMMU_HW_CAP_PCI_PASID_EXEC, IOMMU_HW_CAP_PCI_PASID_PRIV,
    IOMMU_HW_INFO_FLAG_INPUT_TYPE, IOMMU_HW_INFO_SELFTEST_REGVAL, IOMMU_HW_INFO_TYPE_DEFAULT,
    IOMMU_HW_INFO_TYPE_INTEL_VTD, IOMMU_HW_INFO_TYPE_NONE, IOMMU_HW_INFO_TYPE_SELFTEST,
    IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17, IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE,
    IOMMU_IOAS_MAP_WRITEABLE, IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, IOMMU_OPTION_OP_SET,
    IOMMU_OPTION_RLIMIT_MODE, IOMMU_PGFAULT_FLAGS_LAST_PAGE, IOMMU_PGFAULT_FLAGS_PASID_VALID,
    IOMMU_PGFAULT_PERM_EXEC, IOMMU_PGFAULT_PERM_PRIV, IOMMU_PGFAULT_PERM_READ,
    IOMMU_PGFAULT_PERM_WRITE, IOMMU_TEST_INVALIDATE_FLAG_ALL, IOMMU_TEST_IOTLB_DEFAULT,
    IOMMU_TEST_OP_ACCESS_PAGES, IOMMU_TEST_OP_ACCESS_REPLACE_IOAS, IOMMU_TEST_OP_ACCESS_RW,
    IOMMU_TEST_OP_ADD_RESERVED, IOMMU_TEST_OP_CREATE_ACCESS, IOMMU_TEST_OP_DESTROY_ACCESS_PAGES,
    IOMMU_TEST_OP_DIRTY, IOMMU_TEST_OP_MD_CHECK_IOTLB, IOMMU_TEST_OP_MD_CHECK_MAP,
    IOMMU_TEST_OP_MD_CHECK_REFS, IOMMU_TEST_OP_MOCK_DOMAIN, IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS,
    IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT,
    IOMMU_TEST_OP_TRIGGER_IOPF, IOMMU_VFIO_IOAS_CLEAR, IOMMU_VFIO_IOAS_GET, IOMMU_VFIO_IOAS_SET,
    IOMMU_VTD_INV_FLAGS_LEAF, IOMMU_VTD_S1_EAFE, IOMMU_VTD_S1_SRE, IOMMU_VTD_S1_WPE,
    MOCK_ACCESS_RW_SLOW_PATH, MOCK_ACCESS_RW_WRITE, MOCK_APERTURE_LAST, MOCK_APERTURE_START,
    MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES, MOCK_FLAGS_ACCESS_SYZ, MOCK_FLAGS_ACCESS_WRITE,
    MOCK_FLAGS_DEVICE_HUGE_IOVA, MOCK_FLAGS_DEVICE_NO_DIRTY, MOCK_FLAGS_DEVICE_PASID,
    MOCK_NESTED_DOMAIN_IOTLB_ID_MAX, MOCK_NESTED_DOMAIN_IOTLB_NUM, MOCK_PASID_WIDTH,
    TEST_CMD_PAYLOAD_LEN, VFIO_API_VERSION, VFIO_DMA_CC_IOMMU, VFIO_DMA_MAP_FLAG_READ,
    VFIO_DMA_MAP_FLAG_VADDR, VFIO_DMA_MAP_FLAG_WRITE, VFIO_DMA_UNMAP_FLAG_ALL,
    VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, VFIO_DMA_UNMAP_FLAG_VADDR, VFIO_EEH,
    VFIO_IOMMU_INFO_CAPS, VFIO_IOMMU_INFO_PGSIZES, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
    VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, VFIO_NOIOMMU_IOMMU,
    VFIO_SPAPR_TCE_IOMMU, VFIO_TYPE1_IOMMU, VFIO_TYPE1_NESTING_IOMMU, VFIO_UNMAP_ALL,
    VFIO_UPDATE_VADDR,
};
pub use errno::{Errno, Result};
