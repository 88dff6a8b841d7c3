// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * iommufd-demo: a small, ordinary program that uses /dev/iommu.
 *
 * It allocates an I/O address space, maps a buffer at an automatically chosen
 * IOVA, lists the usable IOVA ranges, copies the mapping into a second IOAS,
 * and unmaps everything, printing what the kernel ABI returns at each step.
 * Run it through `iommufd run -- ./iommufd-demo` to get this project's
 * /dev/iommu; on a kernel with CONFIG_IOMMUFD it runs unchanged.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/types.h>

/* The structs and numbers of include/uapi/linux/iommufd.h (Linux 6.12). */
#define IOMMUFD_TYPE ';'
#define IOMMU_DESTROY _IO(IOMMUFD_TYPE, 0x80)
#define IOMMU_IOAS_ALLOC _IO(IOMMUFD_TYPE, 0x81)
#define IOMMU_IOAS_COPY _IO(IOMMUFD_TYPE, 0x83)
#define IOMMU_IOAS_IOVA_RANGES _IO(IOMMUFD_TYPE, 0x84)
#define IOMMU_IOAS_MAP _IO(IOMMUFD_TYPE, 0x85)
#define IOMMU_IOAS_UNMAP _IO(IOMMUFD_TYPE, 0x86)
#define IOMMU_IOAS_MAP_FIXED_IOVA 1
#define IOMMU_IOAS_MAP_WRITEABLE 2
#define IOMMU_IOAS_MAP_READABLE 4

struct iommu_destroy { __u32 size, id; };
struct iommu_ioas_alloc { __u32 size, flags, out_ioas_id; };
struct iommu_iova_range { __aligned_u64 start, last; };
struct iommu_ioas_iova_ranges {
	__u32 size, ioas_id, num_iovas, __reserved;
	__aligned_u64 allowed_iovas, out_iova_alignment;
};
struct iommu_ioas_map {
	__u32 size, flags, ioas_id, __reserved;
	__aligned_u64 user_va, length, iova;
};
struct iommu_ioas_copy {
	__u32 size, flags, dst_ioas_id, src_ioas_id;
	__aligned_u64 length, dst_iova, src_iova;
};
struct iommu_ioas_unmap { __u32 size, ioas_id; __aligned_u64 iova, length; };

static int fd;

static void check(int rc, const char *what)
{
	if (rc) {
		fprintf(stderr, "%s: %s\n", what, strerror(errno));
		exit(1);
	}
}

static __u32 ioas_alloc(void)
{
	struct iommu_ioas_alloc cmd = { .size = sizeof(cmd) };

	check(ioctl(fd, IOMMU_IOAS_ALLOC, &cmd), "IOMMU_IOAS_ALLOC");
	return cmd.out_ioas_id;
}

int main(void)
{
	size_t len = 64 * 4096;
	struct iommu_iova_range ranges[4];
	struct iommu_ioas_iova_ranges r;
	struct iommu_ioas_map map;
	struct iommu_ioas_copy copy;
	struct iommu_ioas_unmap unmap;
	struct iommu_destroy destroy = { .size = sizeof(destroy), .id = 9999 };
	__u32 ioas, ioas2;
	void *buf;
	int rc;

	fd = open("/dev/iommu", O_RDWR);
	if (fd < 0) {
		perror("open /dev/iommu");
		return 1;
	}
	ioas = ioas_alloc();
	ioas2 = ioas_alloc();
	printf("ioas ids: %u %u\n", ioas, ioas2);

	r = (struct iommu_ioas_iova_ranges){ .size = sizeof(r), .ioas_id = ioas,
		.num_iovas = 4, .allowed_iovas = (uintptr_t)ranges };
	check(ioctl(fd, IOMMU_IOAS_IOVA_RANGES, &r), "IOMMU_IOAS_IOVA_RANGES");
	printf("usable iova ranges: %u, first [0x%llx, 0x%llx], alignment %llu\n",
	       r.num_iovas, (unsigned long long)ranges[0].start,
	       (unsigned long long)ranges[0].last,
	       (unsigned long long)r.out_iova_alignment);

	buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		return perror("mmap"), 1;
	memset(buf, 0xa5, len);
	map = (struct iommu_ioas_map){ .size = sizeof(map), .ioas_id = ioas,
		.flags = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
		.user_va = (uintptr_t)buf, .length = len };
	check(ioctl(fd, IOMMU_IOAS_MAP, &map), "IOMMU_IOAS_MAP");
	printf("mapped %zu bytes at iova 0x%llx\n", len, (unsigned long long)map.iova);

	copy = (struct iommu_ioas_copy){ .size = sizeof(copy), .src_ioas_id = ioas,
		.dst_ioas_id = ioas2, .src_iova = map.iova, .length = len,
		.flags = IOMMU_IOAS_MAP_READABLE };
	check(ioctl(fd, IOMMU_IOAS_COPY, &copy), "IOMMU_IOAS_COPY");
	printf("copied into ioas %u at iova 0x%llx\n", ioas2, (unsigned long long)copy.dst_iova);

	rc = ioctl(fd, IOMMU_DESTROY, &destroy);
	printf("destroy of unknown id 9999: %d (%s)\n", rc, rc ? strerror(errno) : "ok");
	destroy.id = ioas;
	rc = ioctl(fd, IOMMU_DESTROY, &destroy);
	printf("destroy of ioas %u while mapped: %d (%s)\n", ioas, rc, rc ? strerror(errno) : "ok");

	unmap = (struct iommu_ioas_unmap){ .size = sizeof(unmap), .ioas_id = ioas2,
		.iova = 0, .length = UINT64_MAX };
	check(ioctl(fd, IOMMU_IOAS_UNMAP, &unmap), "IOMMU_IOAS_UNMAP");
	printf("unmapped %llu bytes from ioas %u\n", (unsigned long long)unmap.length, ioas2);
	close(fd);
	printf("ok\n");
	return 0;
}
