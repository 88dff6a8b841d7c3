//! Fault injection for programs run through the preload library, when it is built
//! with the `fault-inject` feature (a test-only artifact): the kernel's per-task
//! `fail-nth` files and the debugfs fault-injection knobs, served in-process over
//! the `fault` crate's fault points.
//!
//! * `/proc/self/task/<tid>/fail-nth`, `/proc/<pid>/task/<tid>/fail-nth`,
//!   `/proc/thread-self/fail-nth` and `/proc/{self,<pid>}/fail-nth` (the thread
//!   group leader) of this process: writing `N` (`kstrtouint`: base prefixes, one
//!   trailing newline) makes that thread's `N`-th fault point fail; reading gives
//!   `"%u\n"` of the remaining count, 0 once the failure fired. As in the kernel,
//!   copying the text from or to the caller is itself a fault point (`EFAULT`).
//! * `/sys/kernel/debug/{failslab,fail_page_alloc,fail_usercopy}/<knob>`: the
//!   knobs exist and keep what is written (the kernel's selftest writes
//!   `ignore-gfp-wait`, `ignore-gfp-highmem` and `verbose`); they do not change
//!   which points fail: every fault point counts for fail-nth, as the kernel's do
//!   with those knobs set as the selftest sets them. The host's own debugfs is
//!   never touched.
//!
//! With `IOMMUFD_FAULT_LOG=path` in the environment, every injected failure
//! appends `<pid> <site>` to that file, so a run can show its failures fired.
//!
//! Kernel: `fs/proc/base.c` (`proc_fail_nth_read/write`), `lib/fault-inject.c`,
//! `lib/kstrtox.c` (`kstrtouint_from_user`), v6.12.

use std::any::Any;
use std::collections::HashMap;
use std::ffi::CStr;
use std::sync::{Arc, Mutex, OnceLock};

use fault::{Site, Task};
use inproc::{FdEntry, FdTable};
use iommufd::mm::FileOps;
use libc::c_int;
use uapi::Errno;

/// The fault-injection directories of debugfs and their knobs.
const KNOBS: &[(&str, &[&str])] = &[
    (
        "failslab",
        &[
            "probability",
            "interval",
            "times",
            "space",
            "verbose",
            "verbose_ratelimit_interval_ms",
            "verbose_ratelimit_burst",
            "task-filter",
            "ignore-gfp-wait",
            "cache-filter",
        ],
    ),
    (
        "fail_page_alloc",
        &[
            "probability",
            "interval",
            "times",
            "space",
            "verbose",
            "verbose_ratelimit_interval_ms",
            "verbose_ratelimit_burst",
            "task-filter",
            "ignore-gfp-wait",
            "ignore-gfp-highmem",
            "min-order",
        ],
    ),
    (
        "fail_usercopy",
        &[
            "probability",
            "interval",
            "times",
            "space",
            "verbose",
            "verbose_ratelimit_interval_ms",
            "verbose_ratelimit_burst",
            "task-filter",
        ],
    ),
];

/// A knob's value before anything is written (`FAULT_ATTR_INITIALIZER`,
/// `RATELIMIT_STATE_INIT_DISABLED`, and the failslab / fail_page_alloc defaults).
fn knob_default(knob: &str) -> &'static str {
    match knob {
        "interval" | "times" | "min-order" => "1",
        "verbose" => "2",
        "ignore-gfp-wait" | "ignore-gfp-highmem" => "Y",
        "task-filter" | "cache-filter" => "N",
        "verbose_ratelimit_burst" => "10",
        _ => "0",
    }
}

/// What a path opened by the program names.
enum Special {
    /// The fail-nth file of thread `tid`.
    FailNth(i32),
    /// A debugfs knob, by its canonical path.
    Knob(String),
}

/// Lexically normalizes an absolute path (`.`, `..`, repeated slashes).
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The absolute form of `path` opened relative to `dirfd`.
fn absolute(dirfd: c_int, path: &str) -> Option<String> {
    if path.starts_with('/') {
        return Some(normalize(path));
    }
    let base = if dirfd == libc::AT_FDCWD {
        std::env::current_dir().ok()?
    } else {
        std::fs::read_link(format!("/proc/self/fd/{dirfd}")).ok()?
    };
    Some(normalize(&format!("{}/{path}", base.to_str()?)))
}

/// Whether `tid` is a thread of this process.
fn is_our_thread(tid: i32) -> bool {
    tid > 0 && std::fs::metadata(format!("/proc/self/task/{tid}")).is_ok()
}

fn classify(dirfd: c_int, path: &CStr) -> Option<Special> {
    let path = path.to_str().ok()?;
    // Cheap filter first: every open of the program passes here.
    let last = path.rsplit('/').next()?;
    let knob = KNOBS.iter().any(|(_, k)| k.contains(&last));
    if last != "fail-nth" && !knob {
        return None;
    }
    let abs = absolute(dirfd, path)?;
    let parts: Vec<&str> = abs.split('/').skip(1).collect();
    let pid = std::process::id() as i32;
    let me = |s: &str| s == "self" || s.parse::<i32>().ok() == Some(pid);
    match parts.as_slice() {
        ["proc", p, "task", t, "fail-nth"] if me(p) => {
            let tid = t.parse().ok()?;
            is_our_thread(tid).then_some(Special::FailNth(tid))
        }
        ["proc", "thread-self", "fail-nth"] => Some(Special::FailNth(host::sys::gettid())),
        ["proc", p, "fail-nth"] if me(p) => Some(Special::FailNth(pid)),
        ["sys", "kernel", "debug", dir, k]
            if KNOBS.iter().any(|(d, ks)| d == dir && ks.contains(k)) =>
        {
            Some(Special::Knob(abs))
        }
        _ => None,
    }
}

/// The fire hook: appends `<pid> <site>` to `$IOMMUFD_FAULT_LOG`, if set.
fn log_fire(site: Site) {
    use std::io::Write;
    static LOG: OnceLock<Option<std::ffi::OsString>> = OnceLock::new();
    let Some(path) = LOG.get_or_init(|| std::env::var_os("IOMMUFD_FAULT_LOG")) else {
        return;
    };
    let line = format!("{} {}\n", std::process::id(), site.name());
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// Serves `open`/`openat` of a fail-nth file or a debugfs knob: `Some(fd)` (or
/// `Some(-1)` with errno set) if `path` names one, `None` to let libc open it.
pub(crate) fn open(dirfd: c_int, path: &CStr, flags: c_int) -> Option<c_int> {
    let special = classify(dirfd, path)?;
    let file: Arc<dyn FileOps> = match special {
        Special::FailNth(tid) => {
            fault::set_tid_source(host::sys::gettid);
            fault::set_fire_hook(log_fire);
            let task = if tid == host::sys::gettid() {
                fault::register_current(tid);
                fault::current()
            } else {
                fault::task(tid)
            };
            Arc::new(FailNthFile {
                task,
                pos: Mutex::new(0),
            })
        }
        Special::Knob(path) => Arc::new(KnobFile {
            path,
            pos: Mutex::new(0),
        }),
    };
    Some(crate::interpose::emulate(|| {
        // Not a fault point: the file is the injection's control, not its target.
        let backing = host::sys::eventfd(0, false)?;
        if flags & libc::O_CLOEXEC != 0 {
            host::sys::set_cloexec(std::os::fd::AsFd::as_fd(&backing), true)?;
        }
        let fd = std::os::fd::IntoRawFd::into_raw_fd(backing);
        FdTable::global().lock().insert(fd, FdEntry::File(file));
        Ok(fd)
    }))
}

/// `pread`/`pwrite` on a fail-nth file or knob: `None` for other fds.
pub(crate) fn pread(fd: c_int, buf: u64, count: u64, off: i64) -> Option<Result<u64, Errno>> {
    with_special(fd, |s| {
        let off = u64::try_from(off).map_err(|_| Errno::INVAL)?;
        s.read_at(buf, count, off)
    })
}

/// See [`pread`].
pub(crate) fn pwrite(fd: c_int, buf: u64, count: u64, off: i64) -> Option<Result<u64, Errno>> {
    with_special(fd, |s| {
        if off < 0 {
            return Err(Errno::INVAL);
        }
        s.write_from(buf, count)
    })
}

fn with_special(
    fd: c_int,
    f: impl FnOnce(&dyn TextFile) -> Result<u64, Errno>,
) -> Option<Result<u64, Errno>> {
    let FdEntry::File(file) = FdTable::global().get(fd)? else {
        return None;
    };
    let any = file.as_any();
    if let Some(s) = any.downcast_ref::<FailNthFile>() {
        return Some(f(s));
    }
    any.downcast_ref::<KnobFile>().map(|s| f(s))
}

/// Positioned I/O of the special files.
trait TextFile {
    fn text(&self) -> String;
    fn store(&self, text: &str) -> Result<(), Errno>;

    /// `simple_read_from_buffer`.
    fn read_at(&self, buf: u64, count: u64, pos: u64) -> Result<u64, Errno> {
        let text = self.text();
        let Some(avail) = (text.len() as u64).checked_sub(pos).filter(|&a| a > 0) else {
            return Ok(0);
        };
        let n = avail.min(count);
        if n == 0 {
            return Ok(0);
        }
        if fault::should_fail(Site::CopyToUser) {
            return Err(Errno::FAULT);
        }
        let start = pos as usize;
        host::uaccess::copy_to_user(buf, &text.as_bytes()[start..start + n as usize])?;
        Ok(n)
    }

    /// Copies the text in (`kstrtouint_from_user`'s bounded copy) and stores it.
    fn write_from(&self, buf: u64, count: u64) -> Result<u64, Errno> {
        let mut bytes = vec![0u8; count.min(66) as usize];
        if fault::should_fail(Site::CopyFromUser) {
            return Err(Errno::FAULT);
        }
        host::uaccess::copy_from_user(&mut bytes, buf)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| Errno::INVAL)?;
        self.store(text)?;
        Ok(count)
    }
}

/// `kstrtouint(s, 0)`: optional `+`, `0x`/`0` base prefixes, one trailing newline.
fn kstrtouint(s: &str) -> Result<u32, Errno> {
    let s = s.strip_suffix('\n').unwrap_or(s);
    let s = s.strip_prefix('+').unwrap_or(s);
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(Errno::INVAL);
    }
    let v = u64::from_str_radix(digits, radix).map_err(|_| Errno::RANGE)?;
    u32::try_from(v).map_err(|_| Errno::RANGE)
}

/// An open `fail-nth` file: the task it names and the file position.
struct FailNthFile {
    task: Arc<Task>,
    pos: Mutex<u64>,
}

impl TextFile for FailNthFile {
    fn text(&self) -> String {
        format!("{}\n", self.task.fail_nth())
    }

    fn store(&self, text: &str) -> Result<(), Errno> {
        self.task.set_fail_nth(kstrtouint(text)?);
        Ok(())
    }
}

/// Values written to the debugfs knobs, by path.
fn knob_values() -> &'static Mutex<HashMap<String, String>> {
    static VALUES: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    VALUES.get_or_init(Default::default)
}

/// An open debugfs knob.
struct KnobFile {
    path: String,
    pos: Mutex<u64>,
}

impl TextFile for KnobFile {
    fn text(&self) -> String {
        let values = knob_values().lock().unwrap_or_else(|e| e.into_inner());
        let v = values.get(&self.path).map_or_else(
            || knob_default(self.path.rsplit('/').next().unwrap_or("")),
            String::as_str,
        );
        format!("{v}\n")
    }

    fn store(&self, text: &str) -> Result<(), Errno> {
        let v = text.trim_end_matches('\n').to_string();
        knob_values()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(self.path.clone(), v);
        Ok(())
    }
}

/// `read`/`write` through the file position.
fn read_pos(s: &dyn TextFile, pos: &Mutex<u64>, buf: u64, count: u64) -> Result<u64, Errno> {
    let mut pos = pos.lock().unwrap_or_else(|e| e.into_inner());
    let n = s.read_at(buf, count, *pos)?;
    *pos += n;
    Ok(n)
}

impl FileOps for FailNthFile {
    fn read(&self, buf: u64, count: u64) -> Result<u64, Errno> {
        read_pos(self, &self.pos, buf, count)
    }
    fn write(&self, buf: u64, count: u64) -> Result<u64, Errno> {
        self.write_from(buf, count)
    }
    fn has_read(&self) -> bool {
        true
    }
    fn has_write(&self) -> bool {
        true
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl FileOps for KnobFile {
    fn read(&self, buf: u64, count: u64) -> Result<u64, Errno> {
        read_pos(self, &self.pos, buf, count)
    }
    fn write(&self, buf: u64, count: u64) -> Result<u64, Errno> {
        self.write_from(buf, count)
    }
    fn has_read(&self) -> bool {
        true
    }
    fn has_write(&self) -> bool {
        true
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kstrtouint_accepts_the_kernel_forms() {
        assert_eq!(kstrtouint("12\n"), Ok(12));
        assert_eq!(kstrtouint("+7"), Ok(7));
        assert_eq!(kstrtouint("0x10"), Ok(16));
        assert_eq!(kstrtouint("010"), Ok(8));
        assert_eq!(kstrtouint("0"), Ok(0));
        assert_eq!(kstrtouint("4294967296"), Err(Errno::RANGE));
        assert_eq!(kstrtouint("-1"), Err(Errno::INVAL));
        assert_eq!(kstrtouint("1\n\n"), Err(Errno::INVAL));
        assert_eq!(kstrtouint(""), Err(Errno::INVAL));
    }

    #[test]
    fn paths_are_classified() {
        let tid = host::sys::gettid();
        let pid = std::process::id();
        let p = |s: String| std::ffi::CString::new(s).unwrap();
        assert!(matches!(
            classify(libc::AT_FDCWD, &p(format!("/proc/self/task/{tid}/fail-nth"))),
            Some(Special::FailNth(t)) if t == tid
        ));
        assert!(matches!(
            classify(libc::AT_FDCWD, &p(format!("/proc/{pid}/task/{tid}/fail-nth"))),
            Some(Special::FailNth(t)) if t == tid
        ));
        assert!(matches!(
            classify(libc::AT_FDCWD, &p("/proc/thread-self/fail-nth".into())),
            Some(Special::FailNth(t)) if t == tid
        ));
        assert!(classify(libc::AT_FDCWD, &p("/proc/1/task/1/fail-nth".into())).is_none());
        assert!(classify(libc::AT_FDCWD, &p("/proc/self/task/0/fail-nth".into())).is_none());
        assert!(matches!(
            classify(libc::AT_FDCWD, &p("/sys/kernel//debug/./failslab/ignore-gfp-wait".into())),
            Some(Special::Knob(k)) if k == "/sys/kernel/debug/failslab/ignore-gfp-wait"
        ));
        assert!(classify(
            libc::AT_FDCWD,
            &p("/sys/kernel/debug/failslab/bogus".into())
        )
        .is_none());
        assert!(classify(libc::AT_FDCWD, &p("/etc/verbose".into())).is_none());
    }
}
