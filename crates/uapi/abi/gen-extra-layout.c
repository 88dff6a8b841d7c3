// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * Generator of uapi-6.12-extra-layout.txt: sizeof/offsetof of the VFIO type1
 * container structs that iommufd's VFIO compatibility layer serves, the VFIO
 * ioctl numbers and constants, and the #define values of iommufd_test.h, in
 * the format of uapi-6.12-layout.txt.
 *
 * Build against the 6.12 uapi headers ('make headers_install') and the kernel
 * tree's drivers/iommu/iommufd directory:
 *
 *   gcc -Wall -I$HDR/include -I$KSRC/drivers/iommu/iommufd \
 *       -o gen gen-extra-layout.c && ./gen > uapi-6.12-extra-layout.txt
 */
#include <stdio.h>
#include <stddef.h>
#include <linux/vfio.h>
#include "iommufd_test.h"

#define S(t) printf("struct %s: sizeof=%zu alignof=%zu\n", #t, sizeof(struct t), _Alignof(struct t))
#define F(t, f, ty) printf("  %-24s offset=%-4zu size=%-4zu type=%s\n", #f, offsetof(struct t, f), sizeof(((struct t *)0)->f), ty)
#define I(n) printf("ioctl %-32s = 0x%08lx\n", #n, (unsigned long)(n))
#define D(n) printf("define %-44s = 0x%lx (%lu)\n", #n, (unsigned long)(n), (unsigned long)(n))

int main(void)
{
	printf("# sizeof/offsetof of the VFIO type1 container structs served by iommufd's VFIO\n");
	printf("# compatibility layer, VFIO ioctl numbers and constants, and the #define values of\n");
	printf("# drivers/iommu/iommufd/iommufd_test.h. Source: Debian linux-source-6.12 (6.12.117)\n");
	printf("# after 'make headers_install'; host build: gcc %s, x86_64.\n", __VERSION__);
	printf("# Generator: gen-extra-layout.c (beside this file). Flexible array members are\n");
	printf("# listed with size=0.\n");
	printf("=== linux/vfio.h (type1 container subset) ===\n");
	S(vfio_info_cap_header);
	F(vfio_info_cap_header, id, "__u16");
	F(vfio_info_cap_header, version, "__u16");
	F(vfio_info_cap_header, next, "__u32");
	S(vfio_iommu_type1_info);
	F(vfio_iommu_type1_info, argsz, "__u32");
	F(vfio_iommu_type1_info, flags, "__u32");
	F(vfio_iommu_type1_info, iova_pgsizes, "__aligned_u64");
	F(vfio_iommu_type1_info, cap_offset, "__u32");
	F(vfio_iommu_type1_info, pad, "__u32");
	S(vfio_iova_range);
	F(vfio_iova_range, start, "__u64");
	F(vfio_iova_range, end, "__u64");
	S(vfio_iommu_type1_info_cap_iova_range);
	F(vfio_iommu_type1_info_cap_iova_range, header, "struct vfio_info_cap_header");
	F(vfio_iommu_type1_info_cap_iova_range, nr_iovas, "__u32");
	F(vfio_iommu_type1_info_cap_iova_range, reserved, "__u32");
	printf("  %-24s offset=%-4zu size=%-4d type=%s\n", "iova_ranges", offsetof(struct vfio_iommu_type1_info_cap_iova_range, iova_ranges), 0, "struct vfio_iova_range[]");
	S(vfio_iommu_type1_info_dma_avail);
	F(vfio_iommu_type1_info_dma_avail, header, "struct vfio_info_cap_header");
	F(vfio_iommu_type1_info_dma_avail, avail, "__u32");
	S(vfio_iommu_type1_dma_map);
	F(vfio_iommu_type1_dma_map, argsz, "__u32");
	F(vfio_iommu_type1_dma_map, flags, "__u32");
	F(vfio_iommu_type1_dma_map, vaddr, "__u64");
	F(vfio_iommu_type1_dma_map, iova, "__u64");
	F(vfio_iommu_type1_dma_map, size, "__u64");
	S(vfio_iommu_type1_dma_unmap);
	F(vfio_iommu_type1_dma_unmap, argsz, "__u32");
	F(vfio_iommu_type1_dma_unmap, flags, "__u32");
	F(vfio_iommu_type1_dma_unmap, iova, "__u64");
	F(vfio_iommu_type1_dma_unmap, size, "__u64");
	printf("  %-24s offset=%-4zu size=%-4d type=%s\n", "data", offsetof(struct vfio_iommu_type1_dma_unmap, data), 0, "__u8[]");
	I(VFIO_GET_API_VERSION);
	I(VFIO_CHECK_EXTENSION);
	I(VFIO_SET_IOMMU);
	I(VFIO_IOMMU_GET_INFO);
	I(VFIO_IOMMU_MAP_DMA);
	I(VFIO_IOMMU_UNMAP_DMA);
	I(VFIO_IOMMU_DIRTY_PAGES);
	D(VFIO_API_VERSION);
	D(VFIO_TYPE1_IOMMU);
	D(VFIO_SPAPR_TCE_IOMMU);
	D(VFIO_TYPE1v2_IOMMU);
	D(VFIO_DMA_CC_IOMMU);
	D(VFIO_EEH);
	D(VFIO_TYPE1_NESTING_IOMMU);
	D(VFIO_SPAPR_TCE_v2_IOMMU);
	D(VFIO_NOIOMMU_IOMMU);
	D(VFIO_UNMAP_ALL);
	D(VFIO_UPDATE_VADDR);
	D(VFIO_IOMMU_INFO_PGSIZES);
	D(VFIO_IOMMU_INFO_CAPS);
	D(VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE);
	D(VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION);
	D(VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL);
	D(VFIO_DMA_MAP_FLAG_READ);
	D(VFIO_DMA_MAP_FLAG_WRITE);
	D(VFIO_DMA_MAP_FLAG_VADDR);
	D(VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP);
	D(VFIO_DMA_UNMAP_FLAG_ALL);
	D(VFIO_DMA_UNMAP_FLAG_VADDR);
	printf("=== iommufd_test.h (#define values) ===\n");
	D(IOMMU_HW_INFO_TYPE_SELFTEST);
	D(IOMMU_HW_INFO_SELFTEST_REGVAL);
	D(IOMMU_HWPT_DATA_SELFTEST);
	D(IOMMU_TEST_IOTLB_DEFAULT);
	D(IOMMU_HWPT_INVALIDATE_DATA_SELFTEST);
	D(IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID);
	D(IOMMU_TEST_INVALIDATE_FLAG_ALL);
	return 0;
}
