//! Test-only fault points, in the style of the kernel's `fail-nth`.
//!
//! Every fallible step the kernel's fault injection can make fail (an allocation,
//! a pin, a user copy, an fd, a locked-memory charge) has a fault point here:
//! [`should_fail`] or the [`fail_point!`] macro at the line that would fail.
//! Without the cargo feature `fault-inject` a point is a constant `false` and
//! compiles to nothing.
//!
//! With the feature, each thread (the kernel's task) has a `fail-nth` counter.
//! Setting it to `N` makes the `N`-th fault point this thread reaches fail:
//! every point reached while the counter is non-zero decrements it, and the one
//! that brings it to zero fails. Reading the counter back gives 0 once the
//! failure fired, the remaining count otherwise. This is `current->fail_nth` of
//! `lib/fault-inject.c` (`should_fail_ex`), which `/proc/<pid>/task/<tid>/fail-nth`
//! reads and writes.
//!
//! Kernel: `lib/fault-inject.c`, `fs/proc/base.c` (`proc_fail_nth_*`),
//! `Documentation/fault-injection/fault-injection.rst` (v6.12).

#![forbid(unsafe_code)]

/// A kind of fallible step, with the errno the kernel returns when it fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Site {
    /// An object of an iommufd context (`_iommufd_object_alloc`: `kzalloc`, `xa_alloc`).
    ObjAlloc,
    /// An IOMMU domain (`domain_alloc_paging`, `domain_alloc_user`).
    DomainAlloc,
    /// A page-table page while mapping (`iommu_alloc_pages`).
    TableAlloc,
    /// An io_pagetable area (`iopt_area_alloc`).
    AreaAlloc,
    /// A page store (`iopt_alloc_pages`).
    PagesAlloc,
    /// A selftest mock device (`mock_dev_create`).
    DeviceAlloc,
    /// A group attach handle (`xa_insert` in `iommu_attach_group_handle`).
    AttachAlloc,
    /// Other kernel allocations: selftest objects, temporary buffers (`kzalloc`, `kvzalloc`).
    Kmalloc,
    /// Pinning user pages (`pin_user_pages`).
    Pin,
    /// Charging pinned pages to `RLIMIT_MEMLOCK` (`incr_user_locked_vm`).
    Account,
    /// A new fd and its file (`get_unused_fd_flags`, `anon_inode_getfile`).
    FdAlloc,
    /// `copy_from_user` (`fail_usercopy`).
    CopyFromUser,
    /// `copy_to_user` (`fail_usercopy`).
    CopyToUser,
}

impl Site {
    /// Every site, in declaration order.
    pub const ALL: [Site; 13] = [
        Site::ObjAlloc,
        Site::DomainAlloc,
        Site::TableAlloc,
        Site::AreaAlloc,
        Site::PagesAlloc,
        Site::DeviceAlloc,
        Site::AttachAlloc,
        Site::Kmalloc,
        Site::Pin,
        Site::Account,
        Site::FdAlloc,
        Site::CopyFromUser,
        Site::CopyToUser,
    ];

    /// The errno an injected failure at this site returns: `ENOMEM` (12) for
    /// allocations, pins, charges and fds, `EFAULT` (14) for user copies.
    pub const fn errno(self) -> i32 {
        match self {
            Site::CopyFromUser | Site::CopyToUser => 14,
            _ => 12,
        }
    }

    /// A short name for reports.
    pub const fn name(self) -> &'static str {
        match self {
            Site::ObjAlloc => "obj_alloc",
            Site::DomainAlloc => "domain_alloc",
            Site::TableAlloc => "table_alloc",
            Site::AreaAlloc => "area_alloc",
            Site::PagesAlloc => "pages_alloc",
            Site::DeviceAlloc => "device_alloc",
            Site::AttachAlloc => "attach_alloc",
            Site::Kmalloc => "kmalloc",
            Site::Pin => "pin",
            Site::Account => "account",
            Site::FdAlloc => "fd_alloc",
            Site::CopyFromUser => "copy_from_user",
            Site::CopyToUser => "copy_to_user",
        }
    }

    #[cfg(feature = "fault-inject")]
    const fn index(self) -> usize {
        self as usize
    }
}

/// Whether fault points are compiled in (the `fault-inject` feature).
pub const ENABLED: bool = cfg!(feature = "fault-inject");

/// Whether the fallible step at `site` must fail now. Always `false` without the
/// `fault-inject` feature.
#[cfg(not(feature = "fault-inject"))]
#[inline(always)]
pub fn should_fail(site: Site) -> bool {
    let _ = site;
    false
}

/// Returns `Err($err)` from the enclosing function if the fault point `$site`
/// fires: `fault::fail_point!(fault::Site::ObjAlloc, Errno::NOMEM);`.
#[macro_export]
macro_rules! fail_point {
    ($site:expr, $err:expr) => {
        if $crate::should_fail($site) {
            return Err($err);
        }
    };
}

#[cfg(feature = "fault-inject")]
pub use imp::*;

#[cfg(feature = "fault-inject")]
mod imp {
    use std::cell::Cell;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
    use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

    use super::Site;

    /// The fail-nth state of one task (thread).
    #[derive(Debug, Default)]
    pub struct Task {
        nth: AtomicU32,
        /// 1 + index of the site that last fired on this task, 0 for none.
        fired: AtomicU8,
    }

    impl Task {
        /// The remaining count (`current->fail_nth`): 0 once the failure fired or
        /// when disarmed.
        pub fn fail_nth(&self) -> u32 {
            self.nth.load(Ordering::Acquire)
        }

        /// Arms the task: its `n`-th fault point from now fails; 0 disarms.
        pub fn set_fail_nth(&self, n: u32) {
            self.nth.store(n, Ordering::Release);
        }

        /// The site that fired on this task since the last call, if any.
        pub fn take_fired(&self) -> Option<Site> {
            match self.fired.swap(0, Ordering::AcqRel) {
                0 => None,
                i => Site::ALL.get(usize::from(i) - 1).copied(),
            }
        }

        /// `should_fail_ex` for this task.
        fn should_fail(&self, site: Site) -> bool {
            // Unarmed: one load. Armed: decrement, racing only with a write of
            // the counter from another thread (the kernel's READ_ONCE/WRITE_ONCE).
            if self.nth.load(Ordering::Acquire) == 0 {
                return false;
            }
            let Ok(n) = self
                .nth
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            else {
                return false;
            };
            REACHED[site.index()].fetch_add(1, Ordering::Relaxed);
            if n != 1 {
                return false;
            }
            FIRED[site.index()].fetch_add(1, Ordering::Relaxed);
            self.fired.store(site.index() as u8 + 1, Ordering::Release);
            if let Some(hook) = FIRE_HOOK.get() {
                hook(site);
            }
            true
        }
    }

    /// Per site: failures injected, process-wide.
    static FIRED: [AtomicU64; Site::ALL.len()] = [const { AtomicU64::new(0) }; Site::ALL.len()];
    /// Per site: points reached while armed, process-wide.
    static REACHED: [AtomicU64; Site::ALL.len()] = [const { AtomicU64::new(0) }; Site::ALL.len()];

    /// Called with the site of every injected failure.
    static FIRE_HOOK: OnceLock<fn(Site)> = OnceLock::new();

    /// Installs a function called with the site of every injected failure (to log
    /// them); the first call wins.
    pub fn set_fire_hook(f: fn(Site)) {
        let _ = FIRE_HOOK.set(f);
    }

    /// How threads learn their kernel thread id, for [`task`] lookups.
    static TID_SOURCE: OnceLock<fn() -> i32> = OnceLock::new();
    /// Registered threads by kernel thread id.
    static TASKS: OnceLock<Mutex<HashMap<i32, Arc<Task>>>> = OnceLock::new();

    fn tasks() -> MutexGuard<'static, HashMap<i32, Arc<Task>>> {
        TASKS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The calling thread's task, registered under its thread id when a
    /// [`set_tid_source`] is installed.
    struct Slot {
        task: Arc<Task>,
        tid: Cell<Option<i32>>,
    }

    impl Slot {
        fn new() -> Slot {
            let Some(tid) = TID_SOURCE.get().map(|f| f()) else {
                return Slot {
                    task: Arc::default(),
                    tid: Cell::new(None),
                };
            };
            let task = tasks().entry(tid).or_default().clone();
            Slot {
                task,
                tid: Cell::new(Some(tid)),
            }
        }
    }

    impl Drop for Slot {
        fn drop(&mut self) {
            if let Some(tid) = self.tid.get() {
                let mut tasks = tasks();
                if tasks.get(&tid).is_some_and(|t| Arc::ptr_eq(t, &self.task)) {
                    tasks.remove(&tid);
                }
            }
        }
    }

    thread_local! {
        static CURRENT: Slot = Slot::new();
    }

    /// Whether the fallible step at `site` must fail now: the calling thread's
    /// counter is decremented if armed, and the step fails when it reaches zero.
    pub fn should_fail(site: Site) -> bool {
        CURRENT
            .try_with(|slot| slot.task.should_fail(site))
            .unwrap_or(false)
    }

    /// The calling thread's task.
    pub fn current() -> Arc<Task> {
        CURRENT.with(|slot| slot.task.clone())
    }

    /// Arms the calling thread (`echo n > /proc/thread-self/fail-nth`); 0 disarms.
    pub fn set_fail_nth(n: u32) {
        CURRENT.with(|slot| slot.task.set_fail_nth(n));
    }

    /// The calling thread's remaining count (`cat /proc/thread-self/fail-nth`).
    pub fn fail_nth() -> u32 {
        CURRENT.with(|slot| slot.task.fail_nth())
    }

    /// The site that fired on the calling thread since the last call, if any.
    pub fn take_fired() -> Option<Site> {
        CURRENT.with(|slot| slot.task.take_fired())
    }

    /// Installs how a thread finds its kernel thread id; threads that start using
    /// fault points afterwards are registered for [`task`]. The first call wins.
    pub fn set_tid_source(f: fn() -> i32) {
        let _ = TID_SOURCE.set(f);
    }

    /// Registers the calling thread as thread `tid` for [`task`] lookups (when it
    /// opens its own fail-nth file; also re-registers a forked child's thread).
    pub fn register_current(tid: i32) {
        CURRENT.with(|slot| {
            let mut tasks = tasks();
            if let Some(old) = slot.tid.replace(Some(tid)) {
                if tasks.get(&old).is_some_and(|t| Arc::ptr_eq(t, &slot.task)) {
                    tasks.remove(&old);
                }
            }
            tasks.insert(tid, slot.task.clone());
        });
    }

    /// The task of thread `tid` of this process (for another thread's
    /// `fail-nth` file). A thread not seen yet gets the returned task when it
    /// first reaches a fault point; a thread that reached one before the tid
    /// source was installed (or, after `fork`, in the parent) is not found.
    pub fn task(tid: i32) -> Arc<Task> {
        tasks().entry(tid).or_default().clone()
    }

    /// Failures injected at `site` so far in this process.
    pub fn fired(site: Site) -> u64 {
        FIRED[site.index()].load(Ordering::Relaxed)
    }

    /// Failures injected so far in this process, at every site.
    pub fn fired_total() -> u64 {
        Site::ALL.iter().map(|&s| fired(s)).sum()
    }

    /// Points of `site` reached while a thread was armed, so far in this process.
    pub fn reached(site: Site) -> u64 {
        REACHED[site.index()].load(Ordering::Relaxed)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn nth_point_fails_and_counter_reads_zero_after() {
            set_fail_nth(3);
            assert!(!should_fail(Site::Pin));
            assert_eq!(fail_nth(), 2);
            assert!(!should_fail(Site::Kmalloc));
            assert!(should_fail(Site::CopyToUser));
            assert_eq!(fail_nth(), 0);
            assert_eq!(take_fired(), Some(Site::CopyToUser));
            assert_eq!(take_fired(), None);
            assert!(!should_fail(Site::CopyToUser), "fires once");
        }

        #[test]
        fn unarmed_thread_never_fails_and_counter_is_per_thread() {
            set_fail_nth(1);
            std::thread::spawn(|| {
                assert_eq!(fail_nth(), 0);
                assert!(!should_fail(Site::ObjAlloc));
            })
            .join()
            .unwrap();
            assert!(should_fail(Site::ObjAlloc));
        }

        fn fake_tid() -> i32 {
            use std::sync::atomic::AtomicI32;
            static NEXT: AtomicI32 = AtomicI32::new(1000);
            thread_local!(static TID: i32 = NEXT.fetch_add(1, Ordering::Relaxed));
            TID.with(|t| *t)
        }

        #[test]
        fn another_thread_arms_a_registered_task() {
            set_tid_source(fake_tid);
            let (tid_tx, tid_rx) = std::sync::mpsc::channel();
            let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
            let h = std::thread::spawn(move || {
                let _ = current();
                tid_tx.send(fake_tid()).unwrap();
                go_rx.recv().unwrap();
                should_fail(Site::Pin)
            });
            let tid = tid_rx.recv().unwrap();
            task(tid).set_fail_nth(1);
            go_tx.send(()).unwrap();
            assert!(h.join().unwrap(), "the armed thread's first point fails");
            assert_eq!(
                task(tid).fail_nth(),
                0,
                "a fresh task after the thread exited"
            );
        }
    }
}
