//! `libiommufd_preload.so`: serves `/dev/iommu` to an unmodified program, in-process.
//!
//! Loaded with `LD_PRELOAD` (the `iommufd run` command does that), it interposes the
//! libc entry points a program uses on `/dev/iommu`: `open` and its variants,
//! `ioctl`, `close`, `close_range` and `closefrom`, the `dup` family and
//! `fcntl(F_DUPFD*)`, `read` and `write` with their vectored and positioned
//! variants and `lseek` (answered as the VFS would, `inproc::vfs`), the `stat`
//! and `access` families (the device nodes exist, module `devnode`), and
//! `sigaction`/`signal` so that the fault handler behind `EFAULT` stays installed.
//! Built with the `fault-inject` feature (a separate, test-only artifact), it also
//! serves the kernel's per-task `fail-nth` files and debugfs fault-injection knobs
//! over the emulation's fault points (module `failnth`), with `pread`/`pwrite`.
//! Every fd it returns is a real fd (an eventfd) mapped to emulated state. The
//! descriptors the emulation keeps for itself (`host::fds`) are not the program's:
//! `close` refuses them (`EBADF`) and `close_range` skips them.
//!
//! Limits: statically linked programs and raw `syscall()` calls bypass it; state
//! lives in the process, so a forked child gets a private copy of every context
//! (the kernel would share them), and emulated fds that survive `exec` lose their
//! state; other calls on an emulated fd (`fstat`, `splice`, ...) reach its eventfd.

#![deny(unsafe_code)]

mod devnode;
#[cfg(feature = "fault-inject")]
mod failnth;
mod interpose;
