//! The iommufd context: one per open of `/dev/iommu`, owning the object table.
//!
//! [`IommufdFile`] is the open file; dropping its last reference is the kernel's
//! release: every object is destroyed, leaves first. Objects that hold the file
//! (access objects, fault queues) keep the context alive as `iommufd_ctx_get` does.
//!
//! Kernel: `drivers/iommu/iommufd/main.c` (v6.12).

use crate::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use crate::sync::{Arc, Mutex, MutexGuard, Weak};
use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use iommu::OwnerId;

use uapi::Errno;

use crate::device::Igroup;
use crate::mm::{AccountMode, Cap, FileOps, Files, UserMemory};
use crate::object::{DestroyWait, Kind, ObjKind, ObjRef, ObjType, Object, Typed};

mod debug;

/// Owner identities of contexts (the kernel uses the context pointer).
static NEXT_OWNER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The largest object ID (`xa_limit_31b`).
const MAX_ID: u32 = (1 << 31) - 1;

/// What a context needs from the process that opened it.
#[derive(Clone)]
pub struct Env {
    /// The memory of the process issuing ioctls (`current->mm`).
    pub mm: Arc<dyn UserMemory>,
    /// The process's file table, for fds iommufd creates or looks up.
    pub files: Arc<dyn Files>,
    /// The selftest mock driver behind `IOMMU_TEST_CMD`, if available.
    #[cfg(feature = "selftest")]
    pub selftest: Option<Arc<dyn crate::test_cmd::SelftestDriver>>,
}

enum Slot {
    Empty,
    /// An ID reserved by an object under construction (`XA_ZERO_ENTRY`).
    Reserved,
    Live(Arc<Object>),
}

/// Source of table generations: unique across contexts and time.
static NEXT_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

thread_local! {
    /// This thread's last object lookup: `(table generation, ID, object)`.
    static LAST_LOOKUP: RefCell<Option<(u64, u32, Weak<Object>)>> = const { RefCell::new(None) };
}

/// The ID → object map (`ictx->objects`) and what its lock protects.
///
/// Every change of a slot gives the table a new *generation* (a process-wide
/// unique number, also readable without the lock), so that a thread can
/// reuse its last lookup while the generation has not moved: the slot still
/// holds the same object, and taking the temporary reference
/// ([`Object::lock_obj`]) decides, as under the lock, whether it is alive.
#[derive(Default)]
pub(crate) struct Table {
    generation: Arc<AtomicU64>,
    slots: Vec<Slot>,
    free: BinaryHeap<Reverse<u32>>,
    used: usize,
    /// The VFIO compatibility IOAS; a pointer, not a reference.
    pub(crate) vfio_ioas: Option<Arc<Object>>,
}

impl Table {
    fn alloc_id(&mut self) -> Result<u32, Errno> {
        if self.slots.is_empty() {
            self.slots.push(Slot::Empty);
        }
        let id = match self.free.pop() {
            Some(Reverse(id)) => id,
            None => {
                let id = u32::try_from(self.slots.len()).map_err(|_| Errno::BUSY)?;
                if id > MAX_ID {
                    return Err(Errno::BUSY);
                }
                self.slots.try_reserve(1).map_err(|_| Errno::NOMEM)?;
                self.slots.push(Slot::Empty);
                id
            }
        };
        self.slots[id as usize] = Slot::Reserved;
        self.used += 1;
        self.new_generation();
        Ok(id)
    }

    fn new_generation(&self) {
        let generation = NEXT_GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.generation.store(generation, Ordering::Release);
    }

    fn release_id(&mut self, id: u32) {
        self.new_generation();
        self.slots[id as usize] = Slot::Empty;
        self.free.push(Reverse(id));
        self.used -= 1;
    }

    fn live(&self, id: u32) -> Option<&Arc<Object>> {
        match self.slots.get(id as usize) {
            Some(Slot::Live(obj)) => Some(obj),
            _ => None,
        }
    }

    /// Removes a live object whose `users` already dropped to zero.
    fn remove_dead(&mut self, obj: &Arc<Object>) {
        self.release_id(obj.id());
        if self
            .vfio_ioas
            .as_ref()
            .is_some_and(|ioas| Arc::ptr_eq(ioas, obj))
        {
            self.vfio_ioas = None;
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.used == 0
    }

    fn live_ids(&self) -> Vec<u32> {
        (0..self.slots.len())
            .filter(|&i| matches!(self.slots[i], Slot::Live(_)))
            .map(|i| i as u32)
            .collect()
    }
}

/// One iommufd context (`struct iommufd_ctx`).
pub struct Ctx {
    table: Mutex<Table>,
    /// The table's generation, read without its lock by lookups.
    generation: Arc<AtomicU64>,
    waitq: Arc<DestroyWait>,
    account_mode: AtomicU8,
    no_iommu_mode: AtomicBool,
    env: Env,
    /// iommu_group id → the context's igroup (`ictx->groups`).
    pub(crate) groups: Mutex<HashMap<u32, Weak<Igroup>>>,
    /// This context as a DMA owner of groups.
    owner: OwnerId,
}

/// A reserved object ID; dropping it without [`Reservation::finalize`] releases the
/// ID (`iommufd_object_abort`).
pub(crate) struct Reservation<'a> {
    ictx: &'a Ctx,
    id: u32,
}

impl Reservation<'_> {
    pub(crate) fn id(&self) -> u32 {
        self.id
    }

    /// Builds the object for this ID (not yet visible to lookups).
    pub(crate) fn object(&self, kind: ObjKind) -> Arc<Object> {
        Object::new(self.id, kind, self.ictx.waitq.clone())
    }

    /// Publishes `obj` (`iommufd_object_finalize`); nothing after this may fail.
    pub(crate) fn finalize(self, obj: &Arc<Object>) {
        debug_assert_eq!(obj.id(), self.id);
        let mut table = self.ictx.lock_table();
        table.slots[self.id as usize] = Slot::Live(obj.clone());
        table.new_generation();
        drop(table);
        std::mem::forget(self);
    }

    /// Runs `obj`'s destroy hook and releases the ID (`iommufd_object_abort_and_destroy`).
    pub(crate) fn abort_and_destroy(self, obj: &Arc<Object>) {
        obj.destroy(self.ictx);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.ictx.lock_table().release_id(self.id);
    }
}

impl Ctx {
    /// Opens a context (`iommufd_fops_open`); `vfio` selects the `/dev/vfio/vfio`
    /// defaults (MM accounting).
    pub fn new(env: Env, vfio: bool) -> Arc<Ctx> {
        let mode = if vfio {
            AccountMode::Mm
        } else {
            AccountMode::User
        };
        let table = Table::default();
        Arc::new(Ctx {
            generation: table.generation.clone(),
            table: Mutex::new(table),
            waitq: Arc::new(DestroyWait::default()),
            account_mode: AtomicU8::new(mode_to_u8(mode)),
            no_iommu_mode: AtomicBool::new(false),
            env,
            groups: Mutex::new(HashMap::new()),
            owner: OwnerId(NEXT_OWNER.fetch_add(1, Ordering::Relaxed)),
        })
    }

    /// This context's identity as a DMA owner.
    pub(crate) fn owner(&self) -> OwnerId {
        self.owner
    }

    pub(crate) fn env(&self) -> &Env {
        &self.env
    }

    pub(crate) fn mm(&self) -> &Arc<dyn UserMemory> {
        &self.env.mm
    }

    pub(crate) fn lock_table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The accounting mode new page stores of this context use.
    pub fn account_mode(&self) -> AccountMode {
        u8_to_mode(self.account_mode.load(Ordering::Acquire))
    }

    pub(crate) fn no_iommu_mode(&self) -> bool {
        self.no_iommu_mode.load(Ordering::Acquire)
    }

    /// Reserves an ID for an object under construction (`_iommufd_object_alloc`).
    ///
    /// # Errors
    /// `EBUSY` if the 31-bit ID space is exhausted, `ENOMEM`.
    pub(crate) fn reserve(&self) -> Result<Reservation<'_>, Errno> {
        fault::fail_point!(fault::Site::ObjAlloc, Errno::NOMEM);
        let id = self.lock_table().alloc_id()?;
        Ok(Reservation { ictx: self, id })
    }

    /// Creates and publishes an object in one step, for objects whose creation has
    /// no fallible step after the ID is known.
    pub(crate) fn insert(&self, kind: ObjKind) -> Result<Arc<Object>, Errno> {
        let resv = self.reserve()?;
        let obj = resv.object(kind);
        resv.finalize(&obj);
        Ok(obj)
    }

    /// Looks up a finalized, live object of any type (`IOMMUFD_OBJ_ANY`) or of `ty`.
    ///
    /// # Errors
    /// `ENOENT` if the ID is absent, reserved, of another type, or dying.
    pub(crate) fn get_object(&self, id: u32, ty: Option<ObjType>) -> Result<ObjRef, Errno> {
        let generation = self.generation.load(Ordering::Acquire);
        let cached = LAST_LOOKUP
            .try_with(|last| match &*last.borrow() {
                Some((g, i, obj)) if *g == generation && *i == id => obj.upgrade(),
                _ => None,
            })
            .ok()
            .flatten();
        if let Some(obj) = cached {
            if ty.is_some_and(|ty| obj.obj_type() != ty) {
                return Err(Errno::NOENT);
            }
            if obj.lock_obj() {
                return Ok(ObjRef::from_locked(obj));
            }
        }
        let table = self.lock_table();
        // Stable while the lock is held: slots change only under it.
        let generation = self.generation.load(Ordering::Acquire);
        let obj = table.live(id).ok_or(Errno::NOENT)?;
        if ty.is_some_and(|ty| obj.obj_type() != ty) || !obj.lock_obj() {
            return Err(Errno::NOENT);
        }
        let obj = obj.clone();
        drop(table);
        let weak = Arc::downgrade(&obj);
        let _ = LAST_LOOKUP.try_with(|last| *last.borrow_mut() = Some((generation, id, weak)));
        Ok(ObjRef::from_locked(obj))
    }

    /// Typed [`Ctx::get_object`].
    ///
    /// # Errors
    /// `ENOENT` as for [`Ctx::get_object`].
    pub(crate) fn get<T: Kind>(&self, id: u32) -> Result<Typed<T>, Errno> {
        self.get_object(id, Some(T::TYPE))?
            .downcast::<T>()
            .map_err(|_| Errno::NOENT)
    }

    /// `IOMMU_DESTROY`: removes an unreferenced object.
    ///
    /// # Errors
    /// `ENOENT` if absent or reserved; `EBUSY` if anything else references it.
    pub(crate) fn destroy_id(&self, id: u32) -> Result<(), Errno> {
        let mut table = self.lock_table();
        let obj = table.live(id).ok_or(Errno::NOENT)?.clone();
        if !obj.users_dec_if_one() {
            return Err(Errno::BUSY);
        }
        table.remove_dead(&obj);
        drop(table);
        if !obj.dec_wait_shortterm() {
            return Err(Errno::BUSY);
        }
        obj.destroy(self);
        Ok(())
    }

    /// Destroys an object its creating driver holds (`iommufd_object_destroy_user`):
    /// drops the driver's `users` reference after waiting for temporary users.
    ///
    /// # Errors
    /// `EBUSY` if temporary users do not drain or long-lived references remain; the
    /// object is then left for close.
    pub(crate) fn destroy_user(&self, obj: &Arc<Object>) -> Result<(), Errno> {
        if !obj.dec_wait_shortterm() {
            obj.users_dec();
            return Err(Errno::BUSY);
        }
        let mut table = self.lock_table();
        obj.users_dec();
        if !obj.users_dec_if_one() {
            obj.restore_shortterm();
            return Err(Errno::BUSY);
        }
        table.remove_dead(obj);
        drop(table);
        obj.destroy(self);
        Ok(())
    }

    /// Drops a `users` reference and destroys the object if only the table's bias
    /// remains (`iommufd_object_put_and_try_destroy`).
    #[allow(dead_code)]
    pub(crate) fn put_and_try_destroy(&self, obj: &Arc<Object>) {
        let mut table = self.lock_table();
        obj.users_dec();
        if !obj.users_dec_if_one() {
            return;
        }
        table.remove_dead(obj);
        drop(table);
        if obj.dec_wait_shortterm() {
            obj.destroy(self);
        }
    }

    /// Destroys every object, leaves first (`iommufd_fops_release`).
    fn release(&self) {
        loop {
            let ids = self.lock_table().live_ids();
            if ids.is_empty() {
                return;
            }
            let mut destroyed = 0;
            for id in ids {
                let mut table = self.lock_table();
                let Some(obj) = table.live(id).cloned() else {
                    continue;
                };
                if !obj.users_dec_if_one() {
                    continue;
                }
                table.remove_dead(&obj);
                drop(table);
                obj.destroy(self);
                destroyed += 1;
            }
            if destroyed == 0 {
                debug_assert!(false, "object users graph cannot be torn down");
                return;
            }
        }
    }

    /// Sets the accounting mode (`IOMMU_OPTION_RLIMIT_MODE` set).
    ///
    /// # Errors
    /// `EPERM` without `CAP_SYS_RESOURCE`; `EBUSY` if any object exists; `EINVAL`
    /// for a value other than 0 or 1.
    pub(crate) fn set_account_mode(&self, val: u64) -> Result<(), Errno> {
        if !self.env.mm.capable(Cap::SysResource) {
            return Err(Errno::PERM);
        }
        let table = self.lock_table();
        if !table.is_empty() {
            return Err(Errno::BUSY);
        }
        let mode = match val {
            0 => AccountMode::User,
            1 => AccountMode::Mm,
            _ => return Err(Errno::INVAL),
        };
        self.account_mode.store(mode_to_u8(mode), Ordering::Release);
        Ok(())
    }
}

fn mode_to_u8(mode: AccountMode) -> u8 {
    match mode {
        AccountMode::None => 0,
        AccountMode::User => 1,
        AccountMode::Mm => 2,
    }
}

fn u8_to_mode(v: u8) -> AccountMode {
    match v {
        0 => AccountMode::None,
        1 => AccountMode::User,
        _ => AccountMode::Mm,
    }
}

/// An open iommufd (`struct file` with `iommufd_fops`); the last reference going
/// away releases the context.
pub struct IommufdFile {
    ictx: Arc<Ctx>,
    vfio: bool,
}

impl IommufdFile {
    /// Opens `/dev/iommu` (or, with `vfio`, `/dev/vfio/vfio` served by iommufd).
    pub fn open(env: Env, vfio: bool) -> Arc<IommufdFile> {
        Arc::new(IommufdFile {
            ictx: Ctx::new(env, vfio),
            vfio,
        })
    }

    /// Whether the file was opened as `/dev/vfio/vfio` (else `/dev/iommu`).
    pub fn is_vfio_node(&self) -> bool {
        self.vfio
    }

    /// The context behind this file.
    pub fn ctx(&self) -> &Arc<Ctx> {
        &self.ictx
    }

    /// `ioctl(2)` on the iommufd: returns the ioctl's non-negative result.
    ///
    /// # Errors
    /// The errno the kernel would return.
    pub fn ioctl(self: &Arc<Self>, cmd: u32, arg: u64) -> Result<i64, Errno> {
        crate::dispatch::ioctl(self, cmd, arg)
    }
}

impl Drop for IommufdFile {
    fn drop(&mut self) {
        self.ictx.release();
    }
}

impl FileOps for IommufdFile {
    fn ioctl(&self, _cmd: u32, _arg: u64) -> Result<i64, Errno> {
        // Callers go through `IommufdFile::ioctl`, which needs the `Arc`.
        Err(Errno::NOTTY)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
