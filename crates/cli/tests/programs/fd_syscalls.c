// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * fd_syscalls: the descriptor system calls of an ordinary program on iommufd's
 * files, other than ioctl: read and write with their vectored and positioned
 * variants, lseek, close_range and closefrom.
 *
 * Every expectation is what Linux 6.12 answers (run in the oracle VM, built
 * with -static); `iommufd run -- fd_syscalls` must answer the same. Exits 0
 * when every check passed, 1 otherwise, printing each failed check.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <linux/types.h>

/* The structs and numbers of include/uapi/linux/iommufd.h (Linux 6.12). */
#define IOMMUFD_TYPE ';'
#define IOMMU_IOAS_ALLOC _IO(IOMMUFD_TYPE, 0x81)
#define IOMMU_FAULT_QUEUE_ALLOC _IO(IOMMUFD_TYPE, 0x8e)
struct iommu_ioas_alloc { __u32 size, flags, out_ioas_id; };
struct iommu_fault_alloc { __u32 size, flags, out_fault_id, out_fault_fd; };
/* sizeof(struct iommu_hwpt_pgfault), sizeof(struct iommu_hwpt_page_response) */
#define FAULT_SIZE 40
#define RESPONSE_SIZE 8

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
/* The kernel's O_LARGEFILE, which open forces on 64-bit (0 in glibc there). */
#define KERNEL_O_LARGEFILE 0100000
#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x8
#endif

static int failed;

/* A call that must return `want` (and, when -1, set errno to `err`). */
#define EXPECT(call, want, err)                                                  \
	do {                                                                     \
		errno = 0;                                                       \
		long long got_ = (long long)(call);                              \
		int errno_ = errno;                                              \
		if (got_ != (long long)(want) ||                                 \
		    ((want) == -1 && errno_ != (err))) {                         \
			printf("FAIL line %d: %s = %lld (%s), want %lld (%s)\n", \
			       __LINE__, #call, got_, strerror(errno_),          \
			       (long long)(want), strerror(err));                \
			failed = 1;                                              \
		}                                                                \
	} while (0)

static int open_iommufd(void)
{
	int fd = open("/dev/iommu", O_RDWR);
	if (fd < 0) {
		perror("open /dev/iommu");
		exit(2);
	}
	return fd;
}

static int ioas_alloc(int fd)
{
	struct iommu_ioas_alloc cmd = { .size = sizeof(cmd) };
	return ioctl(fd, IOMMU_IOAS_ALLOC, &cmd);
}

static int fault_queue(int fd)
{
	struct iommu_fault_alloc cmd = { .size = sizeof(cmd) };
	if (ioctl(fd, IOMMU_FAULT_QUEUE_ALLOC, &cmd)) {
		perror("IOMMU_FAULT_QUEUE_ALLOC");
		exit(2);
	}
	return cmd.out_fault_fd;
}

static char buf[4096];
/* An address nothing is mapped at (hidden from the compiler's checks). */
static void *volatile unmapped = (void *)8;
/* Segment counts the compiler would warn of. */
static volatile int too_many = 1025, negative = -1;
/* The descriptors the program started with (inherited). */
static int inherited[4096];

static void note_inherited(void)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *e;

	while (dir && (e = readdir(dir))) {
		int f = atoi(e->d_name);
		if (e->d_name[0] != '.' && f < 4096)
			inherited[f] = 1;
	}
	if (dir)
		closedir(dir);
}

/* An iommufd has neither read, write nor llseek ops, but was opened by path. */
static void iommufd_file(void)
{
	int fd = open_iommufd();
	struct iovec iov = { buf, 8 };

	EXPECT(read(fd, buf, 8), -1, EINVAL);
	EXPECT(write(fd, buf, 8), -1, EINVAL);
	EXPECT(readv(fd, &iov, 1), -1, EINVAL);
	EXPECT(readv(fd, NULL, 0), -1, EINVAL);
	EXPECT(writev(fd, unmapped, 2000), -1, EINVAL);
	EXPECT(pread(fd, buf, 8, 0), -1, EINVAL);
	EXPECT(pread(fd, buf, 8, -1), -1, EINVAL);
	EXPECT(pwrite(fd, buf, 8, 4096), -1, EINVAL);
	EXPECT(preadv(fd, &iov, 1, 0), -1, EINVAL);
	EXPECT(preadv(fd, &iov, 1, -5), -1, EINVAL);
	EXPECT(preadv2(fd, &iov, 1, -1, 0), -1, EINVAL);
	EXPECT(pwritev2(fd, &iov, 1, 0, 0), -1, EINVAL);
	EXPECT(lseek(fd, 0, SEEK_SET), -1, ESPIPE);
	EXPECT(lseek(fd, 0, 7), -1, EINVAL);
	EXPECT(ioas_alloc(fd), 0, 0);
	close(fd);
}

/* A fault queue is an anonymous file with read and write ops. */
static void fault_file(void)
{
	int fd = open_iommufd();
	int ffd = fault_queue(fd);
	__u32 resp[2] = { 12345, 0 };
	struct iovec two[2] = { { buf, FAULT_SIZE }, { buf + 64, FAULT_SIZE } };
	struct iovec empty_first[2] = { { buf, 0 }, { buf, FAULT_SIZE } };
	struct iovec odd = { buf, 7 };
	struct iovec huge = { buf, SIZE_MAX };
	struct iovec kernel = { (void *)0xffff800000000000ull, FAULT_SIZE };
	struct iovec response = { resp, RESPONSE_SIZE };
	struct iovec odd_response = { resp, RESPONSE_SIZE - 1 };

	/* The lowest free numbers, as for any file. */
	int next = open("/dev/null", O_RDONLY);
	EXPECT(ffd, fd + 1, 0);
	EXPECT(next, ffd + 1, 0);
	close(next);

	/* Created close-on-exec, opened for reading and writing. */
	EXPECT(fcntl(ffd, F_GETFD), FD_CLOEXEC, 0);
	EXPECT(fcntl(ffd, F_GETFL), O_RDWR, 0);
	EXPECT(fcntl(fd, F_GETFD), 0, 0);
	EXPECT(fcntl(fd, F_GETFL), O_RDWR | KERNEL_O_LARGEFILE, 0);

	/* Nothing pending: reads return 0 and never block. */
	EXPECT(read(ffd, buf, FAULT_SIZE), 0, 0);
	EXPECT(read(ffd, buf, 7), -1, ESPIPE);
	EXPECT(readv(ffd, two, 2), 0, 0);
	EXPECT(readv(ffd, empty_first, 2), 0, 0);
	EXPECT(readv(ffd, NULL, 0), 0, 0);
	EXPECT(readv(ffd, &odd, 1), -1, ESPIPE);
	EXPECT(readv(ffd, two, too_many), -1, EINVAL);
	EXPECT(readv(ffd, two, negative), -1, EINVAL);
	EXPECT(readv(ffd, unmapped, 2), -1, EFAULT);
	EXPECT(readv(ffd, &huge, 1), -1, EINVAL);
	EXPECT(readv(ffd, &kernel, 1), -1, EFAULT);
	EXPECT(preadv2(ffd, two, 2, -1, 0), 0, 0);
	EXPECT(preadv2(ffd, two, 2, -1, RWF_NOWAIT), -1, EOPNOTSUPP);
	EXPECT(preadv2(ffd, two, 2, -2, 0), -1, EINVAL);
	EXPECT(preadv(ffd, two, 2, 0), -1, ESPIPE);
	EXPECT(pread(ffd, buf, FAULT_SIZE, 0), -1, ESPIPE);
	EXPECT(pwrite(ffd, resp, RESPONSE_SIZE, 0), -1, ESPIPE);
	EXPECT(pwritev(ffd, &response, 1, 0), -1, ESPIPE);
	/* No such cookie. */
	EXPECT(write(ffd, resp, RESPONSE_SIZE), -1, EINVAL);
	EXPECT(writev(ffd, &response, 1), -1, EINVAL);
	EXPECT(writev(ffd, &odd_response, 1), -1, ESPIPE);
	EXPECT(pwritev2(ffd, &response, 1, -1, 0), -1, EINVAL);
	EXPECT(lseek(ffd, 0, SEEK_CUR), -1, ESPIPE);
	close(ffd);
	close(fd);
}

/*
 * How /dev/iommu was opened: its access mode decides read and write
 * (EBADF before EINVAL), O_PATH gives a descriptor no ioctl works on, and it is
 * a character device, not a directory, and exists.
 */
static void open_modes(void)
{
	struct iovec iov = { buf, 8 };
	int fd;

	fd = open("/dev/iommu", O_WRONLY);
	EXPECT(ioas_alloc(fd), 0, 0);
	EXPECT(read(fd, buf, 8), -1, EBADF);
	EXPECT(readv(fd, &iov, 1), -1, EBADF);
	EXPECT(pread(fd, buf, 8, 0), -1, EBADF);
	EXPECT(write(fd, buf, 8), -1, EINVAL);
	EXPECT(fcntl(fd, F_GETFL) & O_ACCMODE, O_WRONLY, 0);
	close(fd);

	fd = open("/dev/iommu", O_RDONLY | O_NONBLOCK);
	EXPECT(ioas_alloc(fd), 0, 0);
	EXPECT(read(fd, buf, 8), -1, EINVAL);
	EXPECT(write(fd, buf, 8), -1, EBADF);
	EXPECT(writev(fd, &iov, 1), -1, EBADF);
	EXPECT(pwrite(fd, buf, 8, 0), -1, EBADF);
	EXPECT(fcntl(fd, F_GETFL), O_RDONLY | O_NONBLOCK | KERNEL_O_LARGEFILE, 0);
	EXPECT(fcntl(fd, F_SETFL, O_APPEND), 0, 0);
	EXPECT(fcntl(fd, F_GETFL), O_RDONLY | O_APPEND | KERNEL_O_LARGEFILE, 0);
	EXPECT(fcntl(fd, F_SETFL, O_DIRECT), -1, EINVAL);
	close(fd);

	fd = open("/dev/iommu", O_RDWR | O_SYNC | O_TRUNC | O_NOCTTY | O_CLOEXEC);
	EXPECT(fcntl(fd, F_GETFL), O_RDWR | O_SYNC | KERNEL_O_LARGEFILE, 0);
	EXPECT(fcntl(fd, F_GETFD), FD_CLOEXEC, 0);
	close(fd);

	/* Access mode 3: neither read nor write, ioctls only. */
	fd = open("/dev/iommu", O_ACCMODE);
	EXPECT(ioas_alloc(fd), 0, 0);
	EXPECT(read(fd, buf, 8), -1, EBADF);
	EXPECT(write(fd, buf, 8), -1, EBADF);
	close(fd);

	EXPECT(open("/dev/iommu", O_RDWR | O_DIRECTORY), -1, ENOTDIR);
	EXPECT(open("/dev/iommu", O_RDWR | O_CREAT | O_EXCL, 0600), -1, EEXIST);
	EXPECT(openat(AT_FDCWD, "/dev/iommu", O_RDWR | O_DIRECTORY), -1, ENOTDIR);
	EXPECT(open("/dev/iommu", O_RDWR | O_DIRECTORY | O_CREAT, 0600), -1, EINVAL);
	EXPECT(open("/dev/iommu", O_RDONLY | O_TMPFILE, 0600), -1, EINVAL);
	EXPECT(open("/dev/iommu", O_RDWR | O_TMPFILE, 0600), -1, ENOTDIR);
	EXPECT(open("/dev/iommu", O_RDWR | O_DIRECT), -1, EINVAL);
	fd = open("/dev/iommu", O_RDWR | O_CREAT, 0600);
	EXPECT(ioas_alloc(fd), 0, 0);
	close(fd);

	fd = open("/dev/iommu", O_PATH);
	EXPECT(fd >= 0, 1, 0);
	EXPECT(ioas_alloc(fd), -1, EBADF);
	EXPECT(read(fd, buf, 8), -1, EBADF);
	EXPECT(close(fd), 0, 0);
}

/*
 * The nodes exist as misc character devices, and an iommufd's fstat is its
 * node's stat. (A fault queue is an anonymous inode: not checked here.)
 */
static void device_nodes(void)
{
	struct stat st, fst;
	struct statx stx;
	int fd;

	EXPECT(access("/dev/iommu", F_OK), 0, 0);
	EXPECT(access("/dev/iommu", R_OK | W_OK), 0, 0);
	EXPECT(access("/dev/iommu", X_OK), -1, EACCES);
	EXPECT(faccessat(AT_FDCWD, "/dev/vfio/vfio", R_OK | W_OK, 0), 0, 0);
	EXPECT(euidaccess("/dev/iommu", W_OK), 0, 0);

	/* A successful call leaves errno alone (as the kernel's wrappers do). */
	errno = EXDEV;
	int ret = stat("/dev/iommu", &st);
	int after = errno;
	EXPECT(after, EXDEV, 0);
	EXPECT(ret, 0, 0);
	EXPECT(S_ISCHR(st.st_mode), 1, 0);
	/* No extended attributes: listing finds none, a user one is missing. */
	char names[256];
	EXPECT(llistxattr("/dev/iommu", names, sizeof(names)), 0, 0);
	EXPECT(listxattr("/dev/vfio/vfio", names, sizeof(names)), 0, 0);
	EXPECT(getxattr("/dev/iommu", "user.x", names, sizeof(names)), -1, ENODATA);
	EXPECT(st.st_mode & 07777, 0660, 0);
	EXPECT(major(st.st_rdev), 10, 0);
	EXPECT(st.st_uid, 0, 0);
	EXPECT(lstat("/dev/iommu", &fst), 0, 0);
	EXPECT(fst.st_ino == st.st_ino && fst.st_rdev == st.st_rdev, 1, 0);

	fd = open("/dev/iommu", O_RDWR);
	EXPECT(fstat(fd, &fst), 0, 0);
	EXPECT(fst.st_dev == st.st_dev && fst.st_ino == st.st_ino, 1, 0);
	EXPECT(fst.st_rdev == st.st_rdev && fst.st_mode == st.st_mode, 1, 0);
	EXPECT(fstatat(fd, "", &fst, AT_EMPTY_PATH), 0, 0);
	EXPECT(fst.st_ino == st.st_ino, 1, 0);
	EXPECT(statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx), 0, 0);
	EXPECT(stx.stx_ino == st.st_ino && stx.stx_rdev_major == major(st.st_rdev) &&
		       stx.stx_rdev_minor == minor(st.st_rdev),
	       1, 0);
	EXPECT(statx(AT_FDCWD, "/dev/iommu", 0, STATX_BASIC_STATS, &stx), 0, 0);
	EXPECT(stx.stx_mode, st.st_mode, 0);
	close(fd);

	/*
	 * Programs built against glibc before 2.33 call __xstat and friends;
	 * where the dynamic linker finds them (not in a static build), they
	 * answer as stat does.
	 */
	int (*xstat)(int, const char *, struct stat *) = dlsym(RTLD_DEFAULT, "__xstat");
	int (*fxstat)(int, int, struct stat *) = dlsym(RTLD_DEFAULT, "__fxstat");
	if (xstat && fxstat) {
		EXPECT(xstat(1, "/dev/iommu", &fst), 0, 0);
		EXPECT(fst.st_ino == st.st_ino && fst.st_rdev == st.st_rdev, 1, 0);
		fd = open("/dev/iommu", O_RDWR);
		EXPECT(fxstat(1, fd, &fst), 0, 0);
		EXPECT(fst.st_ino == st.st_ino && fst.st_rdev == st.st_rdev, 1, 0);
		close(fd);
	}

	EXPECT(stat("/dev/vfio/vfio", &st), 0, 0);
	EXPECT(st.st_mode, S_IFCHR | 0666, 0);
	EXPECT(major(st.st_rdev), 10, 0);
	EXPECT(minor(st.st_rdev), 196, 0);
	fd = open("/dev/vfio/vfio", O_RDWR);
	EXPECT(fstat(fd, &fst), 0, 0);
	EXPECT(fst.st_rdev == st.st_rdev && fst.st_ino == st.st_ino, 1, 0);
	close(fd);
}

/* Whether `fd` is open. */
static int is_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

static void closing_ranges(void)
{
	int fd = open_iommufd();
	int null;

	EXPECT(close_range(5, 4, 0), -1, EINVAL);
	EXPECT(close_range(fd, fd, 0x80), -1, EINVAL);

	/* Closed by close_range, the number is free for the next file. */
	EXPECT(close_range(fd, fd, 0), 0, 0);
	EXPECT(ioas_alloc(fd), -1, EBADF);
	null = open("/dev/null", O_RDWR);
	EXPECT(null, fd, 0);
	EXPECT(ioas_alloc(null), -1, ENOTTY);
	EXPECT(read(null, buf, 8), 0, 0);
	close(null);

	/* CLOSE_RANGE_CLOEXEC closes nothing. */
	fd = open_iommufd();
	EXPECT(close_range(fd, fd, CLOSE_RANGE_CLOEXEC), 0, 0);
	EXPECT(fcntl(fd, F_GETFD), FD_CLOEXEC, 0);
	EXPECT(ioas_alloc(fd), 0, 0);

	/*
	 * closefrom past the last descriptor the program opened closes none of
	 * its files, and nothing it opens later is disturbed when the fault
	 * queue goes.
	 */
	int ffd = fault_queue(fd);
	closefrom(ffd + 1);
	EXPECT(is_open(ffd), 1, 0);
	int mem = memfd_create("fd_syscalls", MFD_CLOEXEC);
	EXPECT(write(mem, "data", 4), 4, 0);
	close(ffd);
	EXPECT(is_open(mem), 1, 0);
	EXPECT(pread(mem, buf, 4, 0), 4, 0);
	EXPECT(memcmp(buf, "data", 4), 0, 0);
	close(mem);

	/* closefrom over the iommufd. */
	closefrom(fd);
	EXPECT(ioas_alloc(fd), -1, EBADF);
	EXPECT(is_open(fd), 0, 0);
}

/*
 * The only descriptors a program has are the ones it inherited or opened:
 * closing any other number it finds in /proc/self/fd fails (in the kernel
 * there is none).
 */
static void only_own_descriptors(void)
{
	int fd = open_iommufd();
	int ffd = fault_queue(fd);
	int seen[4096];
	int fds[64], n = 0;
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *e;

	memcpy(seen, inherited, sizeof(seen));
	seen[fd] = seen[ffd] = 1;
	seen[dirfd(dir)] = 1;
	while ((e = readdir(dir)) && n < 64) {
		int f = atoi(e->d_name);
		if (e->d_name[0] != '.' && f < 4096 && !seen[f])
			fds[n++] = f;
	}
	closedir(dir);
	for (int i = 0; i < n; i++)
		EXPECT(close(fds[i]), -1, EBADF);
	EXPECT(ioas_alloc(fd), 0, 0);
	EXPECT(read(ffd, buf, FAULT_SIZE), 0, 0);
	close(ffd);
	close(fd);
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		void (*run)(void);
	} sections[] = {
		{ "iommufd_file", iommufd_file },
		{ "fault_file", fault_file },
		{ "closing_ranges", closing_ranges },
		{ "open_modes", open_modes },
		{ "device_nodes", device_nodes },
		{ "only_own_descriptors", only_own_descriptors },
	};

	setvbuf(stdout, NULL, _IONBF, 0);
	note_inherited();
	/* All sections, or the ones named on the command line. */
	for (unsigned i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		int wanted = argc == 1;
		for (int a = 1; a < argc; a++)
			wanted |= !strcmp(argv[a], sections[i].name);
		if (wanted)
			sections[i].run();
	}
	if (!failed)
		printf("fd_syscalls: all checks passed\n");
	return failed;
}
