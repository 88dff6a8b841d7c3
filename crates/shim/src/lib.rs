//! `libiommufd_preload.so`: serves `/dev/iommu` to an unmodified program, in-process.
//!
//! Loaded with `LD_PRELOAD` (the `iommufd run` command does that), it interposes the
//! libc entry points a program uses on `/dev/iommu`: `open` and its variants,
//! `ioctl`, `close`, the `dup` family and `fcntl(F_DUPFD*)`, `read` and `write`, and
//! `sigaction`/`signal` so that the fault handler behind `EFAULT` stays installed.
//! Built with the `fault-inject` feature (a separate, test-only artifact), it also
//! serves the kernel's per-task `fail-nth` files and debugfs fault-injection knobs
//! over the emulation's fault points (module `failnth`), with `pread`/`pwrite`.
//! Every fd it returns is a real fd (an eventfd) mapped to emulated state.
//!
//! Limits: statically linked programs and raw `syscall()` calls bypass it; state
//! lives in the process, so a forked child gets a private copy of every context
//! (the kernel would share them), and emulated fds that survive `exec` lose their
//! state; `close_range()` and `readv`/`writev` on emulated fds are not intercepted.

#![deny(unsafe_code)]

#[cfg(feature = "fault-inject")]
mod failnth;
mod interpose;
