//! The table of file descriptors this process's emulation hands out.
//!
//! Every emulated file (an iommufd, a selftest access, a fault queue) is backed by
//! a real `eventfd`, so `dup`, `close`, `fstat`, fd passing and `poll`/`epoll`
//! work on it; the eventfd's counter carries the file's readability (non-zero:
//! `POLLIN`). The table maps fd numbers to the emulated state; the preload library
//! consults it on every intercepted call, so the "is this fd ours?" test is one
//! atomic load for fds below [`FAST_FDS`].
//!
//! Looking up an entry is on the path of every emulated ioctl, so each thread
//! remembers the last entry it looked up, as a weak reference tagged with the
//! table's *generation* (a process-wide unique number that every insert and
//! remove changes, under the write lock). A lookup whose generation still
//! matches upgrades the weak reference: one atomic load and one increment
//! instead of the read lock, a hash lookup and a clone. A weak reference does
//! not keep the file open, so closing the last fd still releases it at once.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{
    Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak,
};

use host::fds::InternalFd;
use iommufd::mm::{FileOps, Files, PollMask};
use iommufd::IommufdFile;
use uapi::Errno;

/// Fds below this are tracked in a bitmap for the fast "is it ours" test.
pub const FAST_FDS: usize = 1 << 16;

/// What an emulated fd refers to (an open file description).
#[derive(Clone)]
pub enum FdEntry {
    /// `/dev/iommu` or `/dev/vfio/vfio`, with the flags it was opened with
    /// (`f_flags`, see [`crate::vfs::char_device_open`]).
    Iommufd(Arc<IommufdFile>, i32),
    /// A file iommufd created (access, fault queue).
    File(Arc<dyn FileOps>),
}

impl FdEntry {
    fn downgrade(&self) -> WeakEntry {
        match self {
            FdEntry::Iommufd(file, flags) => WeakEntry::Iommufd(Arc::downgrade(file), *flags),
            FdEntry::File(file) => WeakEntry::File(Arc::downgrade(file)),
        }
    }
}

/// An [`FdEntry`] that does not keep its file open.
enum WeakEntry {
    Iommufd(Weak<IommufdFile>, i32),
    File(Weak<dyn FileOps>),
}

impl WeakEntry {
    fn upgrade(&self) -> Option<FdEntry> {
        match self {
            WeakEntry::Iommufd(file, flags) => file.upgrade().map(|f| FdEntry::Iommufd(f, *flags)),
            WeakEntry::File(file) => file.upgrade().map(FdEntry::File),
        }
    }
}

/// Source of table generations: unique across tables and time, 0 never used.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's last lookup: `(fd, table generation, entry)`.
    static LAST_LOOKUP: RefCell<Option<(i32, u64, WeakEntry)>> = const { RefCell::new(None) };
}

/// The process-wide emulated-fd table.
pub struct FdTable {
    bitmap: Box<[AtomicU64]>,
    map: RwLock<HashMap<i32, FdEntry>>,
    /// Changes with every insert and remove (see the module documentation).
    generation: AtomicU64,
    /// Numbers reserved for files not installed yet (`get_unused_fd_flags`):
    /// the emulation's own until installed, as the kernel's `close_range`
    /// skips a reserved number.
    reserved: Mutex<HashMap<i32, InternalFd>>,
}

impl Default for FdTable {
    fn default() -> Self {
        FdTable {
            bitmap: (0..FAST_FDS / 64).map(|_| AtomicU64::new(0)).collect(),
            map: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(NEXT_GENERATION.fetch_add(1, Ordering::Relaxed)),
            reserved: Mutex::new(HashMap::new()),
        }
    }
}

/// The guard of the table's write lock; close and dup run under it so an fd number
/// cannot be reused between the real syscall and the table update.
pub struct TableGuard<'a> {
    table: &'a FdTable,
    map: RwLockWriteGuard<'a, HashMap<i32, FdEntry>>,
}

impl TableGuard<'_> {
    /// The entry of `fd`.
    pub fn get(&self, fd: i32) -> Option<&FdEntry> {
        self.map.get(&fd)
    }

    /// Records `fd` as referring to `entry`, replacing what it referred to.
    pub fn insert(&mut self, fd: i32, entry: FdEntry) -> Option<FdEntry> {
        self.table.set_bit(fd, true);
        self.table.new_generation();
        self.map.insert(fd, entry)
    }

    /// Forgets `fd`; the caller drops the returned entry after unlocking, since
    /// dropping the last reference releases the file.
    pub fn remove(&mut self, fd: i32) -> Option<FdEntry> {
        self.table.set_bit(fd, false);
        self.table.new_generation();
        self.map.remove(&fd)
    }

    /// Forgets every fd numbered `first..=last` (`close_range`); the caller
    /// drops the returned entries after unlocking, as for [`TableGuard::remove`].
    pub fn remove_range(&mut self, first: u32, last: u32) -> Vec<FdEntry> {
        let fds: Vec<i32> = self
            .map
            .keys()
            .copied()
            .filter(|&fd| u32::try_from(fd).is_ok_and(|f| (first..=last).contains(&f)))
            .collect();
        fds.into_iter().filter_map(|fd| self.remove(fd)).collect()
    }
}

impl FdTable {
    /// The table of this process.
    pub fn global() -> &'static Arc<FdTable> {
        static TABLE: OnceLock<Arc<FdTable>> = OnceLock::new();
        TABLE.get_or_init(|| Arc::new(FdTable::default()))
    }

    fn set_bit(&self, fd: i32, on: bool) {
        let Ok(fd) = usize::try_from(fd) else {
            return;
        };
        if fd >= FAST_FDS {
            return;
        }
        let bit = 1u64 << (fd % 64);
        if on {
            self.bitmap[fd / 64].fetch_or(bit, Ordering::Release);
        } else {
            self.bitmap[fd / 64].fetch_and(!bit, Ordering::Release);
        }
    }

    /// Whether `fd` may be an emulated fd (exact below [`FAST_FDS`]).
    #[inline]
    pub fn maybe_ours(&self, fd: i32) -> bool {
        match usize::try_from(fd) {
            Ok(i) if i < FAST_FDS => {
                self.bitmap[i / 64].load(Ordering::Acquire) & (1 << (i % 64)) != 0
            }
            Ok(_) => self.read().contains_key(&fd),
            Err(_) => false,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<i32, FdEntry>> {
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Invalidates every thread's cached lookup (under the write lock).
    fn new_generation(&self) {
        let generation = NEXT_GENERATION.fetch_add(1, Ordering::Relaxed);
        self.generation.store(generation, Ordering::Release);
    }

    /// The entry of `fd`, if it is emulated.
    pub fn get(&self, fd: i32) -> Option<FdEntry> {
        if !self.maybe_ours(fd) {
            return None;
        }
        let generation = self.generation.load(Ordering::Acquire);
        let cached = LAST_LOOKUP
            .try_with(|last| match &*last.borrow() {
                Some((f, g, entry)) if *f == fd && *g == generation => entry.upgrade(),
                _ => None,
            })
            .ok()
            .flatten();
        if cached.is_some() {
            return cached;
        }
        let map = self.read();
        // Stable while the read lock is held: writers change it under the write lock.
        let generation = self.generation.load(Ordering::Acquire);
        let entry = map.get(&fd).cloned()?;
        drop(map);
        let weak = entry.downgrade();
        let _ = LAST_LOOKUP.try_with(|last| *last.borrow_mut() = Some((fd, generation, weak)));
        Some(entry)
    }

    /// `(emulated fds, reserved fds)`, for leak checks in tests.
    #[doc(hidden)]
    pub fn debug_counts(&self) -> (usize, usize) {
        (self.read().len(), self.reserved().len())
    }

    /// Locks the table for an update.
    pub fn lock(&self) -> TableGuard<'_> {
        TableGuard {
            table: self,
            map: self.map.write().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Closes an emulated fd as `close(2)` on it would: forgets it, closes the real
    /// fd, and releases the file if that was its last fd.
    ///
    /// # Errors
    /// The errno of closing the real fd.
    pub fn close(&self, fd: i32) -> Result<(), Errno> {
        let mut guard = self.lock();
        let entry = guard.remove(fd);
        let res = host::sys::close(fd);
        drop(guard);
        drop(entry);
        res
    }

    fn reserved(&self) -> MutexGuard<'_, HashMap<i32, InternalFd>> {
        self.reserved.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates the real fd behind a new emulated file: an eventfd, readable if
    /// `readable`.
    ///
    /// # Errors
    /// The errno of `eventfd(2)` (`EMFILE`, ...).
    pub fn new_backing_fd(readable: bool, cloexec: bool) -> Result<OwnedFd, Errno> {
        fault::fail_point!(fault::Site::FdAlloc, Errno::NOMEM);
        let fd = host::sys::eventfd(u32::from(readable), false)?;
        if cloexec {
            host::sys::set_cloexec(fd.as_fd(), true)?;
        }
        Ok(fd)
    }

    /// Opens an iommufd with `open(2)` flags `flags`: a backing fd, recorded in
    /// the table. Returns the fd.
    ///
    /// # Errors
    /// The errno of an open of a character device with these flags
    /// ([`crate::vfs::char_device_open`]), or of creating the backing fd.
    pub fn open_iommufd(&self, file: Arc<IommufdFile>, flags: i32) -> Result<i32, Errno> {
        let f_flags = crate::vfs::char_device_open(flags)?;
        // An iommufd has no poll op: it always polls readable and writable.
        let fd = Self::new_backing_fd(true, flags & libc::O_CLOEXEC != 0)?;
        host::sys::set_status_flags(fd.as_fd(), f_flags & crate::vfs::SETFL_MASK)?;
        let fd = fd.into_raw_fd();
        self.lock().insert(fd, FdEntry::Iommufd(file, f_flags));
        Ok(fd)
    }
}

/// Makes an eventfd's counter follow a file's readability.
struct Readiness {
    fd: Mutex<(InternalFd, bool)>,
}

impl Readiness {
    fn set(&self, mask: PollMask) {
        let mut guard = self.fd.lock().unwrap_or_else(|e| e.into_inner());
        let (file, readable) = &mut *guard;
        if mask.readable == *readable {
            return;
        }
        let res = if mask.readable {
            file.file().write_all(&1u64.to_ne_bytes())
        } else {
            let mut buf = [0u8; 8];
            file.file().read_exact(&mut buf)
        };
        if res.is_ok() {
            *readable = mask.readable;
        }
    }
}

impl Files for FdTable {
    fn reserve_fd(&self) -> Result<i32, Errno> {
        let fd = InternalFd::new(Self::new_backing_fd(false, true)?);
        let raw = fd.as_raw_fd();
        self.reserved().insert(raw, fd);
        Ok(raw)
    }

    fn unreserve_fd(&self, fd: i32) {
        drop(self.reserved().remove(&fd));
    }

    fn install(&self, fd: i32, file: Arc<dyn FileOps>) {
        let Some(reserved) = self.reserved().remove(&fd) else {
            debug_assert!(false, "installing an fd that was not reserved");
            return;
        };
        let owned = reserved.into_owned();
        // A private duplicate keeps the eventfd reachable for readiness updates even
        // after the program closes or reuses its fd number.
        if let Ok(dup) = owned.try_clone() {
            let readiness = Arc::new(Readiness {
                fd: Mutex::new((InternalFd::private(dup), false)),
            });
            readiness.set(file.poll());
            let weak = Arc::downgrade(&readiness);
            file.set_notify(Arc::new(move |mask| {
                if let Some(r) = weak.upgrade() {
                    r.set(mask);
                }
            }));
            // The entry owns the readiness; the file's notify closure only has a
            // weak reference, so dropping the last fd releases both.
            let entry = Arc::new(WithReadiness {
                file,
                _readiness: readiness,
            });
            self.lock()
                .insert(owned.into_raw_fd(), FdEntry::File(entry));
            return;
        }
        self.lock().insert(owned.into_raw_fd(), FdEntry::File(file));
    }

    fn get(&self, fd: i32) -> Option<Arc<dyn FileOps>> {
        match FdTable::get(self, fd)? {
            FdEntry::File(file) => Some(file),
            FdEntry::Iommufd(..) => None,
        }
    }
}

/// A file together with the eventfd that mirrors its readiness.
struct WithReadiness {
    file: Arc<dyn FileOps>,
    _readiness: Arc<Readiness>,
}

impl FileOps for WithReadiness {
    fn read(&self, buf: u64, count: u64) -> Result<u64, Errno> {
        self.file.read(buf, count)
    }
    fn write(&self, buf: u64, count: u64) -> Result<u64, Errno> {
        self.file.write(buf, count)
    }
    fn has_read(&self) -> bool {
        self.file.has_read()
    }
    fn has_write(&self) -> bool {
        self.file.has_write()
    }
    fn llseek(&self, offset: i64, whence: i32) -> Result<i64, Errno> {
        self.file.llseek(offset, whence)
    }
    fn ioctl(&self, cmd: u32, arg: u64) -> Result<i64, Errno> {
        self.file.ioctl(cmd, arg)
    }
    fn poll(&self) -> PollMask {
        self.file.poll()
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self.file.as_any()
    }
}
