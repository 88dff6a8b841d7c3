/* B10 shim_ioctl: small ioctls on /dev/iommu, run through the preload library
 * (`iommufd run`), against this program's own getppid() loop as the floor.
 *
 * Usage: shim_ioctl COUNT REPS
 * Prints one line per repetition and case:
 *   <case> <ns per call> <ns per getppid floor>
 * where the floor loop runs right before and right after the measured loop
 * (the mean of both is printed). Exits 2 if /dev/iommu does not behave. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define IOMMUFD_TYPE (';')
#define IOMMU_DESTROY _IO(IOMMUFD_TYPE, 0x80)
#define IOMMU_IOAS_ALLOC _IO(IOMMUFD_TYPE, 0x81)
#define IOMMU_IOAS_IOVA_RANGES _IO(IOMMUFD_TYPE, 0x84)

struct iommu_destroy { uint32_t size; uint32_t id; };
struct iommu_ioas_alloc { uint32_t size; uint32_t flags; uint32_t out_ioas_id; };
struct iommu_iova_range { uint64_t start; uint64_t last; };
struct iommu_ioas_iova_ranges {
	uint32_t size; uint32_t ioas_id; uint32_t num_iovas; uint32_t __reserved;
	uint64_t allowed_iovas; uint64_t out_iova_alignment;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static double floor_loop(long n)
{
	uint64_t t = now_ns();
	for (long i = 0; i < n; i++)
		(void)getppid();
	return (double)(now_ns() - t) / n;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	int reps = argc > 2 ? atoi(argv[2]) : 5;
	int fd = open("/dev/iommu", O_RDWR);
	if (fd < 0) { perror("open /dev/iommu"); return 2; }
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	if (ioctl(fd, IOMMU_IOAS_ALLOC, &alloc)) { perror("IOAS_ALLOC"); return 2; }
	struct iommu_iova_range ranges[4];
	struct iommu_ioas_iova_ranges r = {
		.size = sizeof(r), .ioas_id = alloc.out_ioas_id,
	};
	struct iommu_destroy d = { .size = sizeof(d), .id = 0x7fffffff };
	r.num_iovas = 4; r.allowed_iovas = (uintptr_t)ranges;
	if (ioctl(fd, IOMMU_IOAS_IOVA_RANGES, &r) || r.num_iovas < 1) {
		perror("IOAS_IOVA_RANGES"); return 2;
	}
	if (ioctl(fd, IOMMU_DESTROY, &d) != -1 || errno != ENOENT) {
		fprintf(stderr, "DESTROY of a bad id did not fail with ENOENT\n"); return 2;
	}
	for (int rep = 0; rep < reps; rep++) {
		double f0 = floor_loop(n);
		uint64_t t = now_ns();
		for (long i = 0; i < n; i++) {
			r.num_iovas = 4;
			if (ioctl(fd, IOMMU_IOAS_IOVA_RANGES, &r)) return 3;
		}
		double ours = (double)(now_ns() - t) / n;
		double f1 = floor_loop(n);
		printf("iova_ranges %.2f %.2f\n", ours, (f0 + f1) / 2);
		f0 = f1;
		t = now_ns();
		for (long i = 0; i < n; i++)
			if (ioctl(fd, IOMMU_DESTROY, &d) != -1) return 3;
		ours = (double)(now_ns() - t) / n;
		f1 = floor_loop(n);
		printf("destroy_bad_id %.2f %.2f\n", ours, (f0 + f1) / 2);
	}
	close(fd);
	return 0;
}
