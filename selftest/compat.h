/*
 * Force-included when building the kernel's iommufd selftest from Debian's
 * linux-source-6.12 (6.12.117). Stable backports made that selftest use names
 * from later kernels; these are their upstream values (names and numbers only):
 *
 *   IOMMU_HW_INFO_FLAG_INPUT_TYPE  iommu_hw_info.flags bit   (upstream ~v6.17)
 *   IOMMU_HW_INFO_TYPE_DEFAULT     iommu_hw_info_type value  (upstream ~v6.17)
 *   MOCK_FLAGS_DEVICE_PASID        mock device create flag   (upstream v6.15)
 *   MOCK_PASID_WIDTH               mock device PASID width   (upstream v6.15)
 *
 * The fifth, iommu_hw_info::in_data_type, is upstream a union alias of
 * out_data_type; build.sh maps it with -Din_data_type=out_data_type.
 * This implementation supports both extensions.
 */
#ifndef IOMMUFD_RS_SELFTEST_COMPAT_H
#define IOMMUFD_RS_SELFTEST_COMPAT_H
#define IOMMU_HW_INFO_FLAG_INPUT_TYPE (1 << 0)
#define IOMMU_HW_INFO_TYPE_DEFAULT 0
#define MOCK_FLAGS_DEVICE_PASID (1 << 2)
#define MOCK_PASID_WIDTH 20
#endif
