//! The memory the executor maps: one arena with read-write, read-only and
//! inaccessible pages at fixed page indices, and a [`UserMemory`] over this
//! process that charges pins to its own counters so accounting is exact per run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use host::sys::Mmap;
use inproc::{CapOverrides, HostMm};
use iommufd::mm::{AccountMode, Cap, PhysRun, UserMemory, PAGE_SIZE};
use uapi::Errno;

/// Pages in the arena.
pub const ARENA_PAGES: u64 = 84;
/// Pages an op may choose a user address in (the rest is a guard).
pub const VA_PAGES: u64 = 64;
/// The longest length ops use, so no range leaves the arena.
pub const MAX_LEN_PAGES: u64 = 16;
/// The `RLIMIT_MEMLOCK` of the model's memory, in pages, for each accounting mode.
pub const LOCK_LIMIT_PAGES: u64 = 40;

/// What a page of the arena allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageKind {
    /// Read and write.
    Rw,
    /// Read only.
    Ro,
    /// No access (`PROT_NONE`).
    None,
}

/// The kind of arena page `index` (fixed layout).
pub fn page_kind(index: u64) -> PageKind {
    match index {
        0..40 => PageKind::Rw,
        40..48 => PageKind::Ro,
        48..52 => PageKind::None,
        52..64 => PageKind::Rw,
        _ => PageKind::None,
    }
}

/// The arena: [`ARENA_PAGES`] pages laid out as [`page_kind`] says.
pub struct Arena {
    map: Mmap,
    /// Offset of the arena in `map`.
    offset: u64,
}

/// The span inside which [`Arena::at`] places the arena: the huge page size,
/// which caps automatic IOVA alignment.
const PLACEMENT: u64 = 2 << 20;

impl Arena {
    /// Maps a fresh arena wherever `mmap` puts it.
    ///
    /// # Panics
    /// If `mmap`/`mprotect` fail.
    pub fn new() -> Arena {
        Arena::place(None)
    }

    /// Maps a fresh arena whose base is `pages` pages past a 2 MiB boundary, so
    /// that the alignment of its addresses (which automatic IOVA allocation
    /// follows) is reproducible.
    ///
    /// # Panics
    /// If `mmap`/`mprotect` fail.
    pub fn at(pages: u16) -> Arena {
        Arena::place(Some(u64::from(pages) % (PLACEMENT / PAGE_SIZE)))
    }

    fn place(pages: Option<u64>) -> Arena {
        let len = (ARENA_PAGES * PAGE_SIZE) as usize;
        let extra = if pages.is_some() {
            2 * PLACEMENT as usize
        } else {
            0
        };
        let mut map = Mmap::anon(
            len + extra,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
        )
        .expect("mmap arena");
        let offset = match pages {
            None => 0,
            Some(p) => map.addr().next_multiple_of(PLACEMENT) - map.addr() + p * PAGE_SIZE,
        };
        // Touch every page so its content is defined, then protect by kind.
        let pattern: Vec<u8> = (0..len).map(|i| (i / 7) as u8).collect();
        host::uaccess::copy_to_user(map.addr() + offset, &pattern).expect("fill arena");
        for i in 0..ARENA_PAGES {
            let prot = match page_kind(i) {
                PageKind::Rw => continue,
                PageKind::Ro => libc::PROT_READ,
                PageKind::None => libc::PROT_NONE,
            };
            map.protect_range((offset + i * PAGE_SIZE) as usize, PAGE_SIZE as usize, prot)
                .expect("mprotect arena");
        }
        Arena { map, offset }
    }

    /// Address of the first byte.
    pub fn base(&self) -> u64 {
        self.map.addr() + self.offset
    }

    /// The arena page index of `va`, if inside.
    pub fn page_of(&self, va: u64) -> Option<u64> {
        let off = va.checked_sub(self.base())?;
        (off < ARENA_PAGES * PAGE_SIZE).then_some(off / PAGE_SIZE)
    }

    /// Whether the page at `va` may be pinned (readable; writable for `write`).
    /// Addresses outside the arena are never mapped by the ops except page 0 and
    /// the top of the address space, which are not mapped either.
    pub fn pinnable(&self, va: u64, write: bool) -> bool {
        match self.page_of(va).map(page_kind) {
            Some(PageKind::Rw) => true,
            Some(PageKind::Ro) => !write,
            _ => false,
        }
    }
}

impl Default for Arena {
    fn default() -> Self {
        Arena::new()
    }
}

/// This process's memory, without `CAP_IPC_LOCK` (so pins are charged), with
/// `CAP_SYS_RESOURCE` (so the accounting mode can be switched), charging its own
/// counters against [`LOCK_LIMIT_PAGES`].
pub struct ModelMm {
    host: HostMm,
    user_locked: AtomicU64,
    mm_locked: AtomicU64,
    limit: u64,
}

impl ModelMm {
    /// A fresh memory with zero charges and a limit of [`LOCK_LIMIT_PAGES`].
    pub fn new() -> Arc<ModelMm> {
        ModelMm::with_limit(LOCK_LIMIT_PAGES)
    }

    /// A fresh memory with zero charges and a limit of `limit` pages per mode.
    pub fn with_limit(limit: u64) -> Arc<ModelMm> {
        Arc::new(ModelMm {
            host: HostMm::with_caps(CapOverrides::parse("-ipc_lock,+sys_resource")),
            user_locked: AtomicU64::new(0),
            mm_locked: AtomicU64::new(0),
            limit,
        })
    }

    /// Pages charged in `AccountMode::User` and `AccountMode::Mm`.
    pub fn locked(&self) -> (u64, u64) {
        (
            self.user_locked.load(Ordering::Acquire),
            self.mm_locked.load(Ordering::Acquire),
        )
    }
}

impl UserMemory for ModelMm {
    fn read(&self, va: u64, dst: &mut [u8]) -> Result<(), Errno> {
        self.host.read(va, dst)
    }

    fn write(&self, va: u64, src: &[u8]) -> Result<(), Errno> {
        self.host.write(va, src)
    }

    fn pin(&self, va: u64, npages: u64, write: bool, out: &mut Vec<PhysRun>) -> Result<(), Errno> {
        self.host.pin(va, npages, write, out)
    }

    fn unpin(&self, va: u64, npages: u64) {
        self.host.unpin(va, npages);
    }

    fn read_phys(&self, pa: u64, dst: &mut [u8]) -> Result<(), Errno> {
        self.host.read_phys(pa, dst)
    }

    fn write_phys(&self, pa: u64, src: &[u8]) -> Result<(), Errno> {
        self.host.write_phys(pa, src)
    }

    fn resolve(&self, va: u64) -> Result<u64, Errno> {
        self.host.resolve(va)
    }

    fn pin_count(&self, va: u64) -> Result<Option<u32>, Errno> {
        self.host.pin_count(va)
    }

    fn account(&self, mode: AccountMode, npages: u64, inc: bool) -> Result<(), Errno> {
        let counter = match mode {
            AccountMode::None => return Ok(()),
            AccountMode::User => &self.user_locked,
            AccountMode::Mm => &self.mm_locked,
        };
        if inc {
            counter
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                    cur.checked_add(npages).filter(|&new| new <= self.limit)
                })
                .map(|_| ())
                .map_err(|_| Errno::NOMEM)
        } else {
            counter
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                    cur.checked_sub(npages)
                })
                .map(|_| ())
                .map_err(|_| Errno::NOMEM)
                .inspect_err(|_| panic!("locked_vm underflow: uncharging {npages}"))
        }
    }

    fn capable(&self, cap: Cap) -> bool {
        self.host.capable(cap)
    }
}
