//! `IOMMU_GET_HW_INFO`: report the IOMMU hardware behind a bound device, with the Intel
//! VT-d driver data it may return.
//!
//! Kernel: `include/uapi/linux/iommufd.h` (`struct iommu_hw_info`, v6.12).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// [`HwInfoVtd::flags`]: the hardware has Intel erratum 772415 (SPR17), so a nesting-parent
/// domain must not contain read-only mappings.
pub const IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17: u32 = 1 << 0;

/// `HwInfo::out_data_type`: no driver data (the driver does not report any).
pub const IOMMU_HW_INFO_TYPE_NONE: u32 = 0;
/// `HwInfo::out_data_type`: driver data is a [`HwInfoVtd`].
pub const IOMMU_HW_INFO_TYPE_INTEL_VTD: u32 = 1;

/// `HwInfo::out_capabilities`: the device can use dirty-tracking HWPTs.
pub const IOMMU_HW_CAP_DIRTY_TRACKING: u64 = 1 << 0;
/// `HwInfo::out_capabilities`: PCI PASID execute permission is enabled.
pub const IOMMU_HW_CAP_PCI_PASID_EXEC: u64 = 1 << 1;
/// `HwInfo::out_capabilities`: PCI PASID privileged mode is enabled.
pub const IOMMU_HW_CAP_PCI_PASID_PRIV: u64 = 1 << 2;

/// `HwInfo::flags` (**post-6.12 upstream addition**, not in 6.12): `out_data_type` is also an
/// input (`in_data_type`) selecting which driver data type to report. A 6.12 kernel rejects
/// any non-zero `flags` with `EOPNOTSUPP`.
pub const IOMMU_HW_INFO_FLAG_INPUT_TYPE: u32 = 1 << 0;
/// Input data type (**post-6.12 upstream addition**): let the driver choose its default type.
/// Same value as [`IOMMU_HW_INFO_TYPE_NONE`].
pub const IOMMU_HW_INFO_TYPE_DEFAULT: u32 = 0;

/// Intel VT-d hardware information (`struct iommu_hw_info_vtd`).
#[repr(C, align(8))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct HwInfoVtd {
    /// `IOMMU_HW_INFO_VTD_*` flags.
    pub flags: u32,
    /// Must be 0.
    pub __reserved: u32,
    /// The VT-d capability register.
    pub cap_reg: u64,
    /// The VT-d extended capability register.
    pub ecap_reg: u64,
}

assert_layout!(
    HwInfoVtd,
    size = 24,
    align = 8,
    flags = 0,
    __reserved = 4,
    cap_reg = 8,
    ecap_reg = 16,
);

/// `HwInfo::out_data_type`: driver data is a [`HwInfoArmSmmuv3`] (**post-6.12 upstream
/// addition**; 6.12 reports no SMMUv3 data).
pub const IOMMU_HW_INFO_TYPE_ARM_SMMUV3: u32 = 2;

/// Arm SMMUv3 hardware information (`struct iommu_hw_info_arm_smmuv3`, **post-6.12 upstream
/// addition**): the raw ID registers `SMMU_IDR0..5`, `SMMU_IIDR` and `SMMU_AIDR`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct HwInfoArmSmmuv3 {
    /// Must be 0.
    pub flags: u32,
    /// Must be 0.
    pub __reserved: u32,
    /// `SMMU_IDR0` .. `SMMU_IDR5`.
    pub idr: [u32; 6],
    /// `SMMU_IIDR`.
    pub iidr: u32,
    /// `SMMU_AIDR`.
    pub aidr: u32,
}

assert_layout!(
    HwInfoArmSmmuv3,
    size = 40,
    align = 4,
    flags = 0,
    __reserved = 4,
    idr = 8,
    iidr = 32,
    aidr = 36,
);

/// Argument of `IOMMU_GET_HW_INFO` (`struct iommu_hw_info`).
///
/// The first ABI version ended at `__reserved` (min size 32); `out_capabilities` was added
/// later. Upstream after 6.12 turned `out_data_type` into a union with `in_data_type`
/// (same offset and size), used with `IOMMU_HW_INFO_FLAG_INPUT_TYPE`.
#[repr(C, align(8))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct HwInfo {
    /// Size of this struct as known to the caller.
    pub size: u32,
    /// Must be 0 in 6.12.
    pub flags: u32,
    /// Device to query.
    pub dev_id: u32,
    /// Input: size of the user buffer at `data_uptr`. Output: size of the driver data.
    pub data_len: u32,
    /// User pointer that receives the driver data; the unused tail up to `data_len` is zeroed.
    pub data_uptr: u64,
    /// Output: `IOMMU_HW_INFO_TYPE_*` of the driver data.
    pub out_data_type: u32,
    /// Output: log2 of the number of PASIDs the device supports, 0 without PASID.
    pub out_max_pasid_log2: u8,
    /// Must be 0.
    pub __reserved: [u8; 3],
    /// Output: `IOMMU_HW_CAP_*` bits.
    pub out_capabilities: u64,
}

assert_layout!(
    HwInfo,
    size = 40,
    align = 8,
    size = 0,
    flags = 4,
    dev_id = 8,
    data_len = 12,
    data_uptr = 16,
    out_data_type = 24,
    out_max_pasid_log2 = 28,
    __reserved = 29,
    out_capabilities = 32,
);
ioctl_cmd!(HwInfo, IOMMU_GET_HW_INFO, last = __reserved, min_size = 32);

impl HwInfo {
    /// The input data type requested with `IOMMU_HW_INFO_FLAG_INPUT_TYPE`.
    ///
    /// Post-6.12 upstream names the same 4 bytes `in_data_type` on input and
    /// `out_data_type` on output (a union); this reads them under the input name.
    pub fn in_data_type(&self) -> u32 {
        self.out_data_type
    }
}
