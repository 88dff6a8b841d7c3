/* Runs 101 of the bad-input table's cases (the ones whose errno depends on
 * the order of checks) on the real 6.12 kernel under the oracle VM, printing
 * "name|ERRNO"; scripts/oracle-errno-probe.sh compares them with the table. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>
#include "iommufd_test.h"

#define PAGE 4096UL
#define AP (1UL << 24)
static int fd, vfd;
static char *buf, *ro, *none;
static unsigned ioas, stdev, hwpt, idev, parent, nested, ioas2, stdev2, idev2, fault, fault_fd, afd, nopin;

static void rep(const char *name, int ret) { printf("%s|%s\n", name, ret ? strerrorname_np(errno) : "OK"); }
#define T(name, ...) rep(name, ioctl(__VA_ARGS__))

static int tcmd(int f, struct iommu_test_cmd *c) { c->size = sizeof(*c); return ioctl(f, IOMMU_TEST_CMD, c); }

int main(void)
{
	fd = open("/dev/iommu", O_RDWR);
	buf = mmap(0, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(buf, 1, 8 * PAGE);
	ro = mmap(0, 2 * PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	none = mmap(0, 2 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct iommu_ioas_alloc a = { .size = sizeof(a) };
	ioctl(fd, IOMMU_IOAS_ALLOC, &a); ioas = a.out_ioas_id;
	struct iommu_ioas_map m = { .size = sizeof(m), .flags = 7, .ioas_id = ioas, .user_va = (uintptr_t)buf, .length = 4 * PAGE, .iova = AP };
	if (ioctl(fd, IOMMU_IOAS_MAP, &m)) perror("map");
	struct iommu_test_cmd md = { .op = IOMMU_TEST_OP_MOCK_DOMAIN, .id = ioas };
	if (tcmd(fd, &md)) perror("md");
	stdev = md.mock_domain.out_stdev_id; hwpt = md.mock_domain.out_hwpt_id; idev = md.mock_domain.out_idev_id;
	m.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE; m.user_va = (uintptr_t)buf + 4 * PAGE; m.length = 2 * PAGE; m.iova = AP + 16 * PAGE;
	if (ioctl(fd, IOMMU_IOAS_MAP, &m)) perror("map ro");
	struct iommu_hwpt_alloc h = { .size = sizeof(h), .flags = IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_ALLOC_DIRTY_TRACKING, .dev_id = idev, .pt_id = ioas };
	if (ioctl(fd, IOMMU_HWPT_ALLOC, &h)) perror("parent"); parent = h.out_hwpt_id;
	struct iommu_hwpt_selftest sd = { .iotlb = IOMMU_TEST_IOTLB_DEFAULT };
	struct iommu_hwpt_alloc hn = { .size = sizeof(hn), .dev_id = idev, .pt_id = parent, .data_type = IOMMU_HWPT_DATA_SELFTEST, .data_len = 4, .data_uptr = (uintptr_t)&sd };
	if (ioctl(fd, IOMMU_HWPT_ALLOC, &hn)) perror("nested"); nested = hn.out_hwpt_id;
	ioctl(fd, IOMMU_IOAS_ALLOC, &a); ioas2 = a.out_ioas_id;
	struct iommu_ioas_map m2 = { .size = sizeof(m2), .flags = 7, .ioas_id = ioas2, .user_va = (uintptr_t)buf, .length = 0x801, .iova = 0x1000 };
	if (ioctl(fd, IOMMU_IOAS_MAP, &m2)) perror("map2");
	struct iommu_test_cmd md2 = { .op = IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS, .id = ioas, .mock_domain_flags = { .dev_flags = MOCK_FLAGS_DEVICE_NO_DIRTY } };
	if (tcmd(fd, &md2)) perror("md2");
	stdev2 = md2.mock_domain_flags.out_stdev_id; idev2 = md2.mock_domain_flags.out_idev_id;
	struct iommu_fault_alloc fa = { .size = sizeof(fa) };
	if (ioctl(fd, IOMMU_FAULT_QUEUE_ALLOC, &fa)) perror("fault"); fault = fa.out_fault_id; fault_fd = fa.out_fault_fd;
	struct iommu_test_cmd ca = { .op = IOMMU_TEST_OP_CREATE_ACCESS, .id = ioas, .create_access = { .flags = MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES } };
	if (tcmd(fd, &ca)) perror("access"); afd = ca.create_access.out_access_fd;
	struct iommu_test_cmd ca2 = { .op = IOMMU_TEST_OP_CREATE_ACCESS, .id = ioas };
	if (tcmd(fd, &ca2)) perror("access2"); nopin = ca2.create_access.out_access_fd;
	printf("ids %u %u %u %u %u %u %u %u %u %u\n", ioas, stdev, idev, hwpt, parent, nested, ioas2, stdev2, idev2, fault);

	{ unsigned char b[64] = {0}; *(unsigned*)b = 0; T("IOAS_MAP: size 0", fd, IOMMU_IOAS_MAP, b); }
	{ unsigned char b[64] = {0}; *(unsigned*)b = 48; b[47] = 1; T("IOAS_MAP: larger size, nonzero tail byte", fd, IOMMU_IOAS_MAP, b); }
	{ unsigned char b[64] = {0}; *(unsigned*)b = 40; T("IOAS_MAP: _IOWR encoding of the same nr", fd, IOMMU_IOAS_MAP | (3u << 30) | (40 << 16), b); }
	{ unsigned char b[64] = {0}; *(unsigned*)b = 16; T("hole 0x8f in the command table", fd, (';' << 8) | 0x8f, b); }
	T("hole 0x8f with a NULL argument (size read first)", fd, (';' << 8) | 0x8f, 0);
	{ unsigned char b[64] = {0}; *(unsigned*)b = 16; T("nr 0x7f outside the table", fd, (';' << 8) | 0x7f, b); }
	{ char *p = mmap(0, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); mprotect(p + PAGE, PAGE, PROT_NONE);
	  *(unsigned *)(p + PAGE - 4) = 40; T("IOAS_MAP: struct runs into an inaccessible page", fd, IOMMU_IOAS_MAP, p + PAGE - 4);
	  memset(p + PAGE - 48, 0, 48); *(unsigned *)(p + PAGE - 48) = 40 + 64; T("IOAS_MAP: zero tail runs into an inaccessible page", fd, IOMMU_IOAS_MAP, p + PAGE - 48); }
	{ struct iommu_destroy d = { .size = 8, .id = fault }; T("DESTROY: fault with an open fd", fd, IOMMU_DESTROY, &d); }
	{ struct iommu_destroy d = { .size = 8, .id = parent }; T("DESTROY: parent HWPT with a nested child", fd, IOMMU_DESTROY, &d); }
#define CP(name, dst, src, fl, si, len, di) { struct iommu_ioas_copy c = { .size = sizeof(c), .flags = fl, .dst_ioas_id = dst, .src_ioas_id = src, .length = len, .dst_iova = di, .src_iova = si }; T(name, fd, IOMMU_IOAS_COPY, &c); }
	CP("COPY: fixed dst in reserved space", ioas, ioas, 7, AP, PAGE, 0x10000);
	CP("COPY: source starts in a hole", ioas2, ioas, 6, AP - PAGE, 2 * PAGE, 0);
	CP("COPY: writable copy of a read-only mapping", ioas2, ioas, 6, AP + 16 * PAGE, PAGE, 0);
	CP("COPY: length not a multiple of the dst alignment", ioas, ioas, 7, AP, 0x100, AP + 8 * PAGE);
	CP("COPY: source offset not aligned for the dst", ioas, ioas, 7, AP + 0x100, 0x800, AP + 8 * PAGE);
	CP("COPY: only FIXED_IOVA", ioas2, ioas, 1, AP, PAGE, 0x10000);
	CP("COPY: fixed dst + length wraps", ioas2, ioas, 7, AP, 2 * PAGE, -PAGE);
#define MP(name, io, fl, va, len, iova_) { struct iommu_ioas_map c = { .size = sizeof(c), .flags = fl, .ioas_id = io, .user_va = va, .length = len, .iova = iova_ }; T(name, fd, IOMMU_IOAS_MAP, &c); }
	MP("MAP: automatic IOVA alignment below the domain's", ioas, 6, (uintptr_t)buf + 0x400, 0x800, 0);
	MP("MAP: automatic IOVA, no room in the aperture", ioas, 6, 0, 1UL << 32, 0);
	MP("MAP: length > SIZE_MAX - PAGE_SIZE", ioas, 7, 0, -2UL, AP + 8 * PAGE);
	MP("MAP: fixed across the aperture end", ioas, 7, (uintptr_t)buf, 2 * PAGE, (1UL << 31) - PAGE);
	MP("MAP: read map of inaccessible memory into a domain", ioas, 5, (uintptr_t)none, PAGE, AP + 8 * PAGE);
	MP("MAP: fixed iova + length wraps", ioas2, 7, 0x1000, 0x2000, -0x1000UL);
#define UM(name, io, iova_, len) { struct iommu_ioas_unmap c = { .size = sizeof(c), .ioas_id = io, .iova = iova_, .length = len }; T(name, fd, IOMMU_IOAS_UNMAP, &c); }
	UM("UNMAP: iova u64::MAX", ioas, -1UL, PAGE);
	UM("UNMAP: length u64::MAX from iova 1", ioas, 1, -1UL);
	UM("UNMAP: unmap-all on id 0", 0, 0, -1UL);
	UM("UNMAP: range starting inside an area", ioas, AP + PAGE, 64 * PAGE);
#define OP(name, id, op_, obj, val, res) { struct iommu_option c = { .size = sizeof(c), .option_id = id, .op = op_, .__reserved = res, .object_id = obj, .val64 = val }; T(name, fd, IOMMU_OPTION, &c); }
	OP("OPTION HUGE_PAGES: disable under a misaligned area", 1, 0, ioas2, 0, 0);
	OP("OPTION HUGE_PAGES: set u64::MAX", 1, 0, ioas2, -1UL, 0);
	OP("OPTION HUGE_PAGES: disable with domains and areas", 1, 0, ioas, 0, 0);
	OP("OPTION RLIMIT_MODE: set 2 with objects", 0, 0, 0, 2, 0);
	OP("OPTION RLIMIT_MODE: op 2", 0, 2, 0, 0, 0);
#define HA(name, fl, dev, pt, ty, data, len, fid) { struct iommu_hwpt_alloc c = { .size = sizeof(c), .flags = fl, .dev_id = dev, .pt_id = pt, .data_type = ty, .data_len = len, .data_uptr = (uintptr_t)(data), .fault_id = fid }; T(name, fd, IOMMU_HWPT_ALLOC, &c); }
	HA("HWPT_ALLOC: pt = fault", 0, idev, fault, 0, 0, 0, 0);
	HA("HWPT_ALLOC: pt = nested HWPT", 0, idev, nested, 0, 0, 0, 0);
	HA("HWPT_ALLOC: dev = selftest object", 0, stdev, ioas, 0, 0, 0, 0);
	{ char d[24] = {0}; HA("HWPT_ALLOC nested: VT-d data type", 0, idev, parent, IOMMU_HWPT_DATA_VTD_S1, d, 24, 0); }
	{ char d[8] = {0}; HA("HWPT_ALLOC nested: data_len 8", 0, idev, parent, IOMMU_HWPT_DATA_SELFTEST, d, 8, 0); }
	HA("HWPT_ALLOC nested: flags 0x1", 1, idev, parent, IOMMU_HWPT_DATA_SELFTEST, &sd, 4, 0);
	HA("HWPT_ALLOC nested: fault_id 0", IOMMU_HWPT_FAULT_ID_VALID, idev, parent, IOMMU_HWPT_DATA_SELFTEST, &sd, 4, 0);
	HA("HWPT_ALLOC nested: parent without NEST_PARENT", 0, idev, hwpt, IOMMU_HWPT_DATA_SELFTEST, &sd, 4, 0);
	HA("HWPT_ALLOC paging: driver data", 0, idev, ioas, IOMMU_HWPT_DATA_SELFTEST, &sd, 4, 0);
	HA("HWPT_ALLOC paging: flags 0x4", 4, idev, ioas, 0, 0, 0, 0);
	HA("HWPT_ALLOC nested: data in an inaccessible page", 0, idev, parent, IOMMU_HWPT_DATA_SELFTEST, none, 4, 0);
	{ struct iommu_hw_info c = { .size = sizeof(c), .flags = 2, .dev_id = idev }; T("GET_HW_INFO: flags 0x2", fd, IOMMU_GET_HW_INFO, &c); }
	{ char *p = mmap(0, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); mprotect(p + PAGE, PAGE, PROT_NONE);
	  struct iommu_hw_info c = { .size = sizeof(c), .dev_id = idev, .data_len = 16, .data_uptr = (uintptr_t)p + PAGE - 8 }; T("GET_HW_INFO: data buffer beyond the driver's runs into no access", fd, IOMMU_GET_HW_INFO, &c); }
	{ struct iommu_hw_info c = { .size = sizeof(c), .dev_id = stdev }; T("GET_HW_INFO: dev = selftest", fd, IOMMU_GET_HW_INFO, &c); }
	{ struct iommu_hwpt_set_dirty_tracking c = { .size = sizeof(c), .flags = 0, .hwpt_id = hwpt }; T("SET_DIRTY_TRACKING: disable on a HWPT without dirty tracking", fd, IOMMU_HWPT_SET_DIRTY_TRACKING, &c); }
	{ struct iommu_hwpt_set_dirty_tracking c = { .size = sizeof(c), .flags = 1, .hwpt_id = nested }; T("SET_DIRTY_TRACKING: hwpt = nested", fd, IOMMU_HWPT_SET_DIRTY_TRACKING, &c); }
	{ unsigned long bm[8]; struct iommu_hwpt_get_dirty_bitmap c = { .size = sizeof(c), .hwpt_id = hwpt, .iova = AP, .length = PAGE, .page_size = PAGE, .data = (uintptr_t)bm }; T("GET_DIRTY_BITMAP: HWPT without dirty tracking", fd, IOMMU_HWPT_GET_DIRTY_BITMAP, &c);
	  c.hwpt_id = parent; c.iova = AP + PAGE; c.length = PAGE; c.page_size = 2 * PAGE; T("GET_DIRTY_BITMAP: iova not a multiple of page_size", fd, IOMMU_HWPT_GET_DIRTY_BITMAP, &c);
	  c.iova = AP + 0x400; c.length = PAGE; c.page_size = 0x400; T("GET_DIRTY_BITMAP: iova misaligned to the IOAS", fd, IOMMU_HWPT_GET_DIRTY_BITMAP, &c); }
	{ char e[16] = {0}; struct iommu_hwpt_invalidate c = { .size = sizeof(c), .hwpt_id = nested, .data_uptr = (uintptr_t)e, .data_type = IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, .entry_len = 16, .entry_num = 1 };
	  T("INVALIDATE: entry_len 16", fd, IOMMU_HWPT_INVALIDATE, &c);
	  c.entry_len = 8; c.entry_num = (1 << 19) + 1; T("INVALIDATE: entry_num > 2^19", fd, IOMMU_HWPT_INVALIDATE, &c);
	  struct iommu_hwpt_invalidate_selftest s = { .flags = 1, .iotlb_id = 4 }; c.data_uptr = (uintptr_t)&s; c.entry_num = 1; T("INVALIDATE: iotlb_id 4 with FLAG_ALL", fd, IOMMU_HWPT_INVALIDATE, &c);
	  c.data_type = 0; c.entry_num = 0; T("INVALIDATE: VT-d data type on the mock", fd, IOMMU_HWPT_INVALIDATE, &c);
	  c.data_type = IOMMU_HWPT_INVALIDATE_DATA_SELFTEST; c.hwpt_id = parent; T("INVALIDATE: paging hwpt", fd, IOMMU_HWPT_INVALIDATE, &c); }
	{ struct iommu_test_cmd c = { .op = IOMMU_TEST_OP_MOCK_DOMAIN, .id = fault }; T("MOCK_DOMAIN: pt = fault", fd, IOMMU_TEST_CMD, (c.size = sizeof(c), &c)); }
	{ struct iommu_test_cmd c = { .op = IOMMU_TEST_OP_MOCK_DOMAIN, .id = ioas2 }; T("MOCK_DOMAIN: IOAS with areas outside the aperture", fd, IOMMU_TEST_CMD, (c.size = sizeof(c), &c)); }
	{ struct iommu_test_cmd c = { .op = IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, .id = stdev, .mock_domain_replace = { .pt_id = ioas2 } }; T("MOCK_DOMAIN_REPLACE: to an IOAS with areas outside the aperture", fd, IOMMU_TEST_CMD, (c.size = sizeof(c), &c)); }
	{ struct iommu_test_cmd c = { .op = IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, .id = stdev2, .mock_domain_replace = { .pt_id = parent } }; T("MOCK_DOMAIN_REPLACE: NO_DIRTY device to a dirty HWPT", fd, IOMMU_TEST_CMD, (c.size = sizeof(c), &c)); }
	{ char b[8]; struct iommu_test_cmd c = { .op = IOMMU_TEST_OP_DIRTY, .id = parent, .dirty = { .iova = 0, .length = (1UL << 27) * 2 + 2, .page_size = 2, .uptr = (uintptr_t)b } }; T("DIRTY: more than 2^27 pages", fd, IOMMU_TEST_CMD, (c.size = sizeof(c), &c));
	  c.dirty.iova = AP; c.dirty.length = 2048; c.dirty.page_size = 2048; T("DIRTY: tracking not enabled", fd, IOMMU_TEST_CMD, &c);
	  c.id = hwpt; T("DIRTY: HWPT without dirty tracking", fd, IOMMU_TEST_CMD, &c); }
	{ struct iommu_test_cmd c = { .op = IOMMU_TEST_OP_ACCESS_PAGES, .id = fault_fd, .access_pages = { .iova = AP, .length = PAGE } }; T("ACCESS_PAGES: fault fd", fd, IOMMU_TEST_CMD, (c.size = sizeof(c), &c));
	  c.id = afd; c.access_pages.length = -1UL; T("ACCESS_PAGES: length u64::MAX (before the fd)", fd, IOMMU_TEST_CMD, &c);
	  c.access_pages.length = PAGE; c.access_pages.uptr = (uintptr_t)buf + PAGE; T("ACCESS_PAGES: uptr of other memory", fd, IOMMU_TEST_CMD, &c);
	  c.access_pages.uptr = (uintptr_t)none; T("ACCESS_PAGES: inaccessible uptr", fd, IOMMU_TEST_CMD, &c);
	  c.access_pages.uptr = 0; c.access_pages.iova = AP + 0x800; T("ACCESS_PAGES: iova not page aligned", fd, IOMMU_TEST_CMD, &c);
	  c.access_pages.iova = AP + 16 * PAGE; c.access_pages.flags = 1; T("ACCESS_PAGES: write to a read-only area", fd, IOMMU_TEST_CMD, &c);
	  c.id = nopin; c.access_pages.flags = 0; c.access_pages.iova = AP; T("ACCESS_PAGES: access without pin support", fd, IOMMU_TEST_CMD, &c); }
	{ struct iommu_test_cmd c = { .op = IOMMU_TEST_OP_ACCESS_RW, .id = afd, .access_rw = { .iova = AP, .length = 16, .uptr = (uintptr_t)ro } }; T("ACCESS_RW read: read-only buffer", fd, IOMMU_TEST_CMD, (c.size = sizeof(c), &c));
	  c.access_rw.flags = 4; T("ACCESS_RW slow-path read: read-only buffer", fd, IOMMU_TEST_CMD, &c);
	  c.access_rw.flags = 5; c.access_rw.uptr = (uintptr_t)none; T("ACCESS_RW slow-path write: inaccessible buffer", fd, IOMMU_TEST_CMD, &c);
	  c.access_rw.flags = 1; c.access_rw.iova = AP + 16 * PAGE; c.access_rw.uptr = (uintptr_t)buf; T("ACCESS_RW write: to a read-only area", fd, IOMMU_TEST_CMD, &c);
	  c.access_rw.flags = 0; c.access_rw.iova = -8UL; T("ACCESS_RW read: iova + length wraps", fd, IOMMU_TEST_CMD, &c);
	  c.id = nopin; c.access_rw.iova = AP + 4 * PAGE - 8; T("ACCESS_RW read: runs past the area", fd, IOMMU_TEST_CMD, &c); }
	{ struct iommu_test_cmd c = { .op = IOMMU_TEST_OP_MD_CHECK_REFS, .check_refs = { .length = PAGE, .uptr = (uintptr_t)none } }; T("MD_CHECK_REFS: inaccessible page", fd, IOMMU_TEST_CMD, (c.size = sizeof(c), &c)); }
	{ struct iommu_test_cmd c = { .op = IOMMU_TEST_OP_MD_CHECK_MAP, .id = hwpt, .check_map = { .iova = AP, .length = PAGE, .uptr = (uintptr_t)none } }; T("MD_CHECK_MAP: inaccessible uptr", fd, IOMMU_TEST_CMD, (c.size = sizeof(c), &c));
	  c.check_map.uptr = -2048UL; c.check_map.length = 4096; T("MD_CHECK_MAP: uptr + length wraps", fd, IOMMU_TEST_CMD, &c); }
	{ struct iommu_test_cmd c = { .op = IOMMU_TEST_OP_CREATE_ACCESS, .id = ioas2, .create_access = { .flags = 1 } }; T("CREATE_ACCESS: pinning access on an IOAS with a misaligned area", fd, IOMMU_TEST_CMD, (c.size = sizeof(c), &c)); }
	{ struct iommu_test_cmd c = { .op = IOMMU_TEST_OP_ACCESS_REPLACE_IOAS, .id = afd, .access_replace_ioas = { .ioas_id = ioas2 } }; T("ACCESS_REPLACE_IOAS: pinning access to an IOAS with a misaligned area", fd, IOMMU_TEST_CMD, (c.size = sizeof(c), &c));
	  c.access_replace_ioas.ioas_id = hwpt; T("ACCESS_REPLACE_IOAS: HWPT id", fd, IOMMU_TEST_CMD, &c); }
	{ struct iommu_test_cmd c = { .op = IOMMU_TEST_OP_ADD_RESERVED, .id = ioas2, .add_reserved = { .start = 0, .length = 0x1001 } }; T("ADD_RESERVED: over a lazy area", fd, IOMMU_TEST_CMD, (c.size = sizeof(c), &c)); }
	{ struct iommu_test_cmd c = { .op = IOMMU_TEST_OP_TRIGGER_IOPF, .trigger_iopf = { .dev_id = stdev } }; T("TRIGGER_IOPF: dev = selftest", fd, IOMMU_TEST_CMD, (c.size = sizeof(c), &c)); }
	{ struct iommu_test_cmd c = { .op = IOMMU_TEST_OP_MD_CHECK_IOTLB, .id = parent }; T("MD_CHECK_IOTLB: paging hwpt", fd, IOMMU_TEST_CMD, (c.size = sizeof(c), &c)); }
	/* VFIO */
	T("VFIO_CHECK_EXTENSION: DMA_CC_IOMMU without compat IOAS", fd, VFIO_CHECK_EXTENSION, VFIO_DMA_CC_IOMMU);
	T("VFIO_SET_IOMMU: TYPE1 without compat IOAS", fd, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU);
	{ char b[64] = {0}; T("VFIO nr 103: unknown", fd, (';' << 8) | 103, b); T("VFIO_IOMMU_DIRTY_PAGES: unsupported", fd, VFIO_IOMMU_DIRTY_PAGES, b); }
	struct iommu_vfio_ioas vi = { .size = sizeof(vi), .ioas_id = ioas, .op = IOMMU_VFIO_IOAS_SET };
	if (ioctl(fd, IOMMU_VFIO_IOAS, &vi)) perror("vfio set");
	T("VFIO_SET_IOMMU: type 0", fd, VFIO_SET_IOMMU, 0);
	T("VFIO_SET_IOMMU: type 8", fd, VFIO_SET_IOMMU, 8);
	{ struct vfio_iommu_type1_dma_map c = { .argsz = 16, .flags = 3, .vaddr = (uintptr_t)buf, .iova = AP + 8 * PAGE, .size = PAGE }; T("VFIO_IOMMU_MAP_DMA: argsz 16", fd, VFIO_IOMMU_MAP_DMA, &c);
	  c.argsz = 32; c.size = -1UL; T("VFIO_IOMMU_MAP_DMA: size u64::MAX", fd, VFIO_IOMMU_MAP_DMA, &c);
	  c.size = PAGE; c.iova = -1UL; T("VFIO_IOMMU_MAP_DMA: iova u64::MAX (misaligned)", fd, VFIO_IOMMU_MAP_DMA, &c);
	  c.iova = -0x1000UL; c.size = 2 * PAGE; T("VFIO_IOMMU_MAP_DMA: iova + size wraps", fd, VFIO_IOMMU_MAP_DMA, &c);
	  c.size = PAGE; c.iova = AP + 8 * PAGE; c.vaddr = (uintptr_t)ro; T("VFIO_IOMMU_MAP_DMA: writable map of read-only memory", fd, VFIO_IOMMU_MAP_DMA, &c); }
	{ struct vfio_iommu_type1_dma_unmap c = { .argsz = 24, .flags = VFIO_DMA_UNMAP_FLAG_VADDR, .iova = AP, .size = 2 * PAGE }; T("VFIO_IOMMU_UNMAP_DMA: flags 0x4", fd, VFIO_IOMMU_UNMAP_DMA, &c);
	  c.flags = 0; c.size = PAGE; T("VFIO_IOMMU_UNMAP_DMA: part of a mapping (TYPE1v2)", fd, VFIO_IOMMU_UNMAP_DMA, &c);
	  c.flags = VFIO_DMA_UNMAP_FLAG_ALL; c.size = 0; T("VFIO_IOMMU_UNMAP_DMA: ALL with an iova", fd, VFIO_IOMMU_UNMAP_DMA, &c);
	  c.flags = 0; c.iova = PAGE; c.size = -1UL; T("VFIO_IOMMU_UNMAP_DMA: size u64::MAX", fd, VFIO_IOMMU_UNMAP_DMA, &c); }
	{ char b[64] = {0}; *(unsigned *)b = 15; T("VFIO_IOMMU_GET_INFO: argsz 15", fd, VFIO_IOMMU_GET_INFO, b); }
	return 0;
}
