//! In-kernel access users of an IOAS (emulated devices, mdev drivers, the selftest).
//!
//! An access reads and writes IOAS memory by IOVA without a domain: it pins pages
//! ([`AccessHandle::pin_pages`]) or copies ([`AccessHandle::rw`]). When userspace
//! unmaps an area that an access has pinned, the access's [`AccessOps::unmap`]
//! callback must synchronously unpin everything in the range; the unmap retries
//! until it does.
//!
//! Kernel: `drivers/iommu/iommufd/device.c` (`iommufd_access_*`), v6.12.

use crate::sync::{Arc, Mutex, MutexGuard, Weak};

use uapi::Errno;

use crate::ctx::{Ctx, IommufdFile};
use crate::ioas::Ioas;
use crate::mm::PAGE_SIZE;
use crate::object::{ObjKind, Object};

/// The driver side of an access (`struct iommufd_access_ops`).
pub trait AccessOps: Send + Sync {
    /// Whether the driver pins pages (`needs_pin_pages`); forces page alignment.
    fn needs_pin_pages(&self) -> bool;

    /// Unpin everything intersecting `[iova, iova + length)` before returning.
    fn unmap(&self, iova: u64, length: u64);
}

/// `IOMMUFD_ACCESS_RW_WRITE`.
pub const ACCESS_RW_WRITE: u32 = 1 << 0;
/// `IOMMUFD_ACCESS_RW_KTHREAD`.
pub const ACCESS_RW_KTHREAD: u32 = 1 << 1;
/// `__IOMMUFD_ACCESS_RW_SLOW_PATH` (selftest): force the pinning paths.
pub const ACCESS_RW_SLOW_PATH: u32 = 1 << 2;

struct AccessState {
    /// The IOAS new pins and copies go to; `None` while switching.
    ioas: Option<Arc<Object>>,
    /// The IOAS unpins go to.
    ioas_unpin: Option<Arc<Object>>,
    /// Our id in that IOAS's access list.
    list_id: u32,
}

/// The access object (`struct iommufd_access`).
pub struct Access {
    /// The context reference taken at create (`iommufd_ctx_get`).
    file: Mutex<Option<Arc<IommufdFile>>>,
    ops: Weak<dyn AccessOps>,
    iova_alignment: u64,
    state: Mutex<AccessState>,
}

/// The creating driver's handle on an access.
pub struct AccessHandle {
    obj: Arc<Object>,
    ictx: Arc<Ctx>,
}

impl Access {
    fn lock(&self) -> MutexGuard<'_, AccessState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Calls the driver's unmap callback, if the driver is still there.
    pub(crate) fn notify_unmap(&self, iova: u64, length: u64) {
        if let Some(ops) = self.ops.upgrade() {
            ops.unmap(iova, length);
        }
    }

    /// Moves the access to `new` (`iommufd_access_change_ioas`); drops the state
    /// lock around the driver's unmap callback.
    fn change_ioas<'a>(
        &'a self,
        mut st: MutexGuard<'a, AccessState>,
        me: &Arc<Object>,
        new: Option<&Arc<Object>>,
    ) -> (MutexGuard<'a, AccessState>, Result<(), Errno>) {
        let cur = st.ioas.clone();
        let old_id = st.list_id;
        if !same(cur.as_ref(), st.ioas_unpin.as_ref()) {
            return (st, Err(Errno::BUSY));
        }
        if same(cur.as_ref(), new) {
            return (st, Ok(()));
        }
        st.ioas = None;
        let mut new_id = 0;
        if let Some(new) = new {
            match ioas_of(new).iopt.add_access(me, self.iova_alignment) {
                Ok(id) => new_id = id,
                Err(err) => {
                    st.ioas = cur;
                    return (st, Err(err));
                }
            }
            new.users_inc();
        }
        if let Some(cur) = cur {
            drop(st);
            self.notify_unmap(0, u64::MAX);
            st = self.lock();
            ioas_of(&cur).iopt.remove_access(old_id);
            cur.users_dec();
        }
        st.ioas = new.cloned();
        st.ioas_unpin = new.cloned();
        st.list_id = new_id;
        (st, Ok(()))
    }

    /// The IOAS for new pins and the IOAS for unpins (invariant checks).
    pub(crate) fn debug_ioas(&self) -> (Option<Arc<Object>>, Option<Arc<Object>>) {
        let st = self.lock();
        (st.ioas.clone(), st.ioas_unpin.clone())
    }

    /// Destroy hook (`iommufd_access_destroy_object`).
    pub(crate) fn destroy_object(&self, me: &Arc<Object>) {
        let st = self.lock();
        if st.ioas.is_some() {
            let (_st, res) = self.change_ioas(st, me, None);
            debug_assert!(res.is_ok(), "access detach on destroy failed");
        }
        let file = self.file.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(file);
    }
}

fn ioas_of(obj: &Arc<Object>) -> &Ioas {
    match obj.get::<Ioas>() {
        Some(ioas) => ioas,
        None => unreachable!("access attached to a non-IOAS object"),
    }
}

fn same(a: Option<&Arc<Object>>, b: Option<&Arc<Object>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

impl AccessHandle {
    /// Creates an access in the context of `file` (`iommufd_access_create`). The
    /// object is finalized at once; it holds the file until destroyed.
    ///
    /// # Errors
    /// `EBUSY`/`ENOMEM` if no ID is available.
    pub fn create(
        file: &Arc<IommufdFile>,
        ops: &Arc<dyn AccessOps>,
    ) -> Result<AccessHandle, Errno> {
        let ictx = file.ctx().clone();
        let access = Access {
            file: Mutex::new(Some(file.clone())),
            ops: Arc::downgrade(ops),
            iova_alignment: if ops.needs_pin_pages() { PAGE_SIZE } else { 1 },
            state: Mutex::new(AccessState {
                ioas: None,
                ioas_unpin: None,
                list_id: 0,
            }),
        };
        let obj = ictx.insert(ObjKind::Access(access))?;
        // The calling driver is a user until `destroy`.
        obj.users_inc();
        Ok(AccessHandle { obj, ictx })
    }

    fn access(&self) -> &Access {
        match self.obj.get::<Access>() {
            Some(access) => access,
            None => unreachable!("access handle to a non-access object"),
        }
    }

    /// The access object's ID.
    pub fn id(&self) -> u32 {
        self.obj.id()
    }

    /// Attaches to IOAS `ioas_id` (`iommufd_access_attach`).
    ///
    /// # Errors
    /// `EINVAL` if already attached; `ENOENT` for a bad IOAS; `EBUSY`, `EADDRINUSE`.
    pub fn attach(&self, ioas_id: u32) -> Result<(), Errno> {
        let access = self.access();
        let st = access.lock();
        if st.ioas.is_some() {
            return Err(Errno::INVAL);
        }
        self.change_ioas_id(st, ioas_id)
    }

    /// Moves to IOAS `ioas_id` (`iommufd_access_replace`).
    ///
    /// # Errors
    /// `ENOENT` if not attached or for a bad IOAS; `EBUSY`, `EADDRINUSE`.
    pub fn replace(&self, ioas_id: u32) -> Result<(), Errno> {
        let st = self.access().lock();
        if st.ioas.is_none() {
            return Err(Errno::NOENT);
        }
        self.change_ioas_id(st, ioas_id)
    }

    fn change_ioas_id(&self, st: MutexGuard<'_, AccessState>, ioas_id: u32) -> Result<(), Errno> {
        let ioas = self.ictx.get::<Ioas>(ioas_id)?;
        let (_st, res) = self.access().change_ioas(st, &self.obj, Some(ioas.obj()));
        res
    }

    /// Detaches from its IOAS (`iommufd_access_detach`).
    pub fn detach(&self) {
        let access = self.access();
        let st = access.lock();
        if st.ioas.is_none() {
            debug_assert!(false, "detaching an access that is not attached");
            return;
        }
        let (_st, res) = access.change_ioas(st, &self.obj, None);
        debug_assert!(res.is_ok(), "access detach failed");
    }

    /// Pins `[iova, iova + length)` and returns the physical address of each page
    /// (`iommufd_access_pin_pages`).
    ///
    /// # Errors
    /// `EINVAL` (zero length, misaligned, unmapping, driver without pin support),
    /// `EOVERFLOW`, `ENOENT` (not attached / not mapped), `EPERM`, `EFAULT`, `ENOMEM`.
    pub fn pin_pages(&self, iova: u64, length: u64, write: bool) -> Result<Vec<u64>, Errno> {
        let access = self.access();
        if access.iova_alignment != PAGE_SIZE {
            return Err(Errno::INVAL);
        }
        if length == 0 {
            return Err(Errno::INVAL);
        }
        let last = iova.checked_add(length - 1).ok_or(Errno::OVERFLOW)?;
        let st = access.lock();
        let ioas = st.ioas.as_ref().ok_or(Errno::NOENT)?;
        ioas_of(ioas).iopt.access_pin(iova, last, write)
    }

    /// Undoes [`AccessHandle::pin_pages`] of exactly the same range
    /// (`iommufd_access_unpin_pages`).
    pub fn unpin_pages(&self, iova: u64, length: u64) {
        let Some(last) = length.checked_sub(1).and_then(|l| iova.checked_add(l)) else {
            debug_assert!(false, "bad unpin range");
            return;
        };
        let st = self.access().lock();
        let Some(ioas) = st.ioas_unpin.as_ref() else {
            debug_assert!(false, "unpin without an IOAS");
            return;
        };
        ioas_of(ioas).iopt.access_unpin(iova, last);
    }

    /// Copies between `buf` and IOVA `iova` (`iommufd_access_rw`); `flags` are the
    /// `ACCESS_RW_*` bits.
    ///
    /// # Errors
    /// `EINVAL` (zero length, unmapping), `EOVERFLOW`, `ENOENT`, `EPERM`, `EFAULT`.
    pub fn rw(&self, iova: u64, buf: &mut [u8], flags: u32) -> Result<(), Errno> {
        if buf.is_empty() {
            return Err(Errno::INVAL);
        }
        iova.checked_add(buf.len() as u64 - 1)
            .ok_or(Errno::OVERFLOW)?;
        let st = self.access().lock();
        let ioas = st.ioas.as_ref().ok_or(Errno::NOENT)?;
        ioas_of(ioas).iopt.access_rw(
            self.ictx.mm(),
            iova,
            buf,
            flags & ACCESS_RW_WRITE != 0,
            flags & ACCESS_RW_SLOW_PATH != 0,
        )
    }

    /// The IOVA of the `nth` area of the attached IOAS (selftest syzkaller mode).
    pub(crate) fn nth_area_iova(&self, nth: u32) -> Option<u64> {
        let st = self.access().lock();
        let ioas = st.ioas.as_ref()?;
        ioas_of(ioas).iopt.nth_area_iova(nth)
    }

    /// Destroys the access (`iommufd_access_destroy`), detaching it first.
    pub fn destroy(self) {
        let res = self.ictx.destroy_user(&self.obj);
        debug_assert!(res.is_ok(), "access destroy failed");
    }
}
