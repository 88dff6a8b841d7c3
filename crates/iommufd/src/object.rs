//! Objects and their reference counts; the per-context object table lives in `ctx.rs`.
//!
//! Every user-visible thing (IOAS, HWPT, device, access, fault, selftest) is an
//! [`Object`] with an ID in its context's table and two counts:
//!
//! * `users`: every reference that keeps the object alive, long-lived links from
//!   other objects plus temporary lookups. The table itself holds one (the bias),
//!   so an object with `users == 1` is unreferenced and may be destroyed.
//! * `shortterm_users`: only the temporary lookups of an ioctl, plus the table's
//!   bias. Destruction driven by a driver (access destroy, device unbind) waits for
//!   it to drain instead of failing with `EBUSY`.
//!
//! Both counts live in one 64-bit word (`users` in the low half, `shortterm_users`
//! in the high half), so that a lookup takes both with one atomic operation and
//! drops both with one, where the kernel uses two `refcount_t`s; every operation
//! on either count is still atomic on the pair.
//!
//! Inter-object references are explicit `users_inc`/`users_dec` calls paired in
//! the create and destroy paths, as in the kernel; the `Arc` only keeps the memory.
//!
//! Kernel: `drivers/iommu/iommufd/main.c`, `iommufd_private.h` (v6.12).

use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::{Arc, Condvar, Mutex};
use std::marker::PhantomData;
use std::ops::Deref;
use std::time::Duration;

use crate::access::Access;
use crate::ctx::Ctx;
use crate::device::Idev;
use crate::fault::Fault;
use crate::hwpt::{HwptNested, HwptPaging};
use crate::ioas::Ioas;
#[cfg(feature = "selftest")]
use crate::test_cmd::SelftestObj;

/// The type of an object (`enum iommufd_object_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjType {
    /// An I/O address space.
    Ioas,
    /// A kernel-managed paging HW page table.
    HwptPaging,
    /// A user-managed nested HW page table.
    HwptNested,
    /// A bound device.
    Device,
    /// An in-kernel access user (emulated device).
    Access,
    /// An I/O page-fault queue.
    Fault,
    /// A selftest mock-device object.
    Selftest,
}

/// What an object is, with its state.
#[expect(
    clippy::large_enum_variant,
    reason = "each object lives once, in an Arc; boxing would only add an indirection"
)]
pub(crate) enum ObjKind {
    Ioas(Ioas),
    HwptPaging(HwptPaging),
    HwptNested(HwptNested),
    Device(Idev),
    Access(Access),
    Fault(Fault),
    #[cfg(feature = "selftest")]
    Selftest(SelftestObj),
}

impl ObjKind {
    fn obj_type(&self) -> ObjType {
        match self {
            ObjKind::Ioas(_) => ObjType::Ioas,
            ObjKind::HwptPaging(_) => ObjType::HwptPaging,
            ObjKind::HwptNested(_) => ObjType::HwptNested,
            ObjKind::Device(_) => ObjType::Device,
            ObjKind::Access(_) => ObjType::Access,
            ObjKind::Fault(_) => ObjType::Fault,
            #[cfg(feature = "selftest")]
            ObjKind::Selftest(_) => ObjType::Selftest,
        }
    }
}

/// A concrete object type that can be looked up by ID.
pub(crate) trait Kind: Sized + 'static {
    const TYPE: ObjType;
    fn from_kind(kind: &ObjKind) -> Option<&Self>;
}

macro_rules! impl_kind {
    ($ty:ty, $variant:ident) => {
        impl Kind for $ty {
            const TYPE: ObjType = ObjType::$variant;
            fn from_kind(kind: &ObjKind) -> Option<&Self> {
                match kind {
                    ObjKind::$variant(v) => Some(v),
                    #[allow(unreachable_patterns)]
                    _ => None,
                }
            }
        }
    };
}
impl_kind!(Ioas, Ioas);
impl_kind!(HwptPaging, HwptPaging);
impl_kind!(HwptNested, HwptNested);
impl_kind!(Idev, Device);
impl_kind!(Access, Access);
impl_kind!(Fault, Fault);
#[cfg(feature = "selftest")]
impl_kind!(SelftestObj, Selftest);

/// Wakes destroyers waiting for `shortterm_users` to drain (`ictx->destroy_wait`).
#[derive(Default)]
pub(crate) struct DestroyWait {
    lock: Mutex<()>,
    cond: Condvar,
}

impl DestroyWait {
    fn wake(&self) {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.cond.notify_all();
    }

    /// Waits until the shortterm count of `refs` reaches zero; false on timeout.
    fn wait_shortterm_zero(&self, refs: &AtomicU64, timeout: Duration) -> bool {
        let guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let (_guard, res) = self
            .cond
            .wait_timeout_while(guard, timeout, |_| {
                shortterm(refs.load(Ordering::Acquire)) != 0
            })
            .unwrap_or_else(|e| e.into_inner());
        !res.timed_out()
    }
}

/// One object of a context.
pub struct Object {
    id: u32,
    /// `users | shortterm_users << 32`.
    refs: AtomicU64,
    waitq: Arc<DestroyWait>,
    pub(crate) kind: ObjKind,
}

/// How long a destroy waits for racing lookups before giving up (the kernel's 60 s).
const SHORTTERM_TIMEOUT: Duration = Duration::from_secs(60);

impl Object {
    pub(crate) fn new(id: u32, kind: ObjKind, waitq: Arc<DestroyWait>) -> Arc<Object> {
        crate::debug::LIVE_OBJECTS.fetch_add(1, Ordering::AcqRel);
        Arc::new(Object {
            id,
            refs: AtomicU64::new(USER | SHORTTERM),
            waitq,
            kind,
        })
    }

    /// The object's ID in its context.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The object's type.
    pub fn obj_type(&self) -> ObjType {
        self.kind.obj_type()
    }

    /// The concrete state, if the object is of type `T`.
    pub(crate) fn get<T: Kind>(&self) -> Option<&T> {
        T::from_kind(&self.kind)
    }

    /// Takes a long-lived reference; the caller must already hold one.
    pub(crate) fn users_inc(&self) {
        let old = self.refs.fetch_add(USER, Ordering::Relaxed);
        debug_assert!(users(old) > 0, "users_inc on a dead object");
    }

    /// Drops a long-lived reference taken by [`Object::users_inc`].
    pub(crate) fn users_dec(&self) {
        let old = self.refs.fetch_sub(USER, Ordering::Release);
        debug_assert!(users(old) > 1, "users_dec dropped the table's reference");
    }

    /// `refcount_dec_if_one(&users)`.
    pub(crate) fn users_dec_if_one(&self) -> bool {
        self.refs
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |v| {
                (users(v) == 1).then(|| v - USER)
            })
            .is_ok()
    }

    /// `iommufd_lock_obj`: takes a temporary reference unless the object is
    /// dying (either count at zero).
    pub(crate) fn lock_obj(&self) -> bool {
        self.refs
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |v| {
                (users(v) != 0 && shortterm(v) != 0).then(|| v + USER + SHORTTERM)
            })
            .is_ok()
    }

    /// `iommufd_put_object`: drops a temporary reference.
    fn put(&self) {
        let old = self.refs.fetch_sub(USER + SHORTTERM, Ordering::AcqRel);
        if shortterm(old) == 1 {
            self.waitq.wake();
        }
    }

    /// Drops the table's shortterm bias and waits for racing lookups to finish.
    /// On timeout the bias is restored and false returned.
    pub(crate) fn dec_wait_shortterm(&self) -> bool {
        if shortterm(self.refs.fetch_sub(SHORTTERM, Ordering::AcqRel)) == 1 {
            return true;
        }
        if self
            .waitq
            .wait_shortterm_zero(&self.refs, SHORTTERM_TIMEOUT)
        {
            return true;
        }
        self.refs.fetch_add(SHORTTERM, Ordering::AcqRel);
        false
    }

    /// Restores the table's shortterm bias after a failed driver destroy.
    pub(crate) fn restore_shortterm(&self) {
        let _ = self
            .refs
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |v| {
                Some(u64::from(users(v)) | SHORTTERM)
            });
    }

    /// Runs the type's destroy hook (`iommufd_object_ops[type].destroy`).
    pub(crate) fn destroy(self: &Arc<Self>, ictx: &Ctx) {
        match &self.kind {
            ObjKind::Ioas(ioas) => ioas.destroy(),
            ObjKind::HwptPaging(hwpt) => hwpt.destroy(),
            ObjKind::HwptNested(hwpt) => hwpt.destroy(),
            ObjKind::Device(idev) => idev.destroy(),
            ObjKind::Access(access) => access.destroy_object(self),
            ObjKind::Fault(fault) => fault.destroy(),
            #[cfg(feature = "selftest")]
            ObjKind::Selftest(sobj) => sobj.destroy(ictx),
        }
        let _ = ictx;
    }
}

impl Object {
    /// `(users, shortterm_users)`, for invariant checks.
    pub(crate) fn debug_counts(&self) -> (u32, u32) {
        let refs = self.refs.load(Ordering::Acquire);
        (users(refs), shortterm(refs))
    }
}

impl Drop for Object {
    fn drop(&mut self) {
        crate::debug::LIVE_OBJECTS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One `users` reference in [`Object::refs`].
const USER: u64 = 1;
/// One `shortterm_users` reference in [`Object::refs`].
const SHORTTERM: u64 = 1 << 32;

fn users(refs: u64) -> u32 {
    refs as u32
}

fn shortterm(refs: u64) -> u32 {
    (refs >> 32) as u32
}

/// A temporary reference taken by a lookup; dropping it is `iommufd_put_object`.
pub(crate) struct ObjRef {
    obj: Arc<Object>,
}

impl ObjRef {
    /// Wraps an object on which [`Object::lock_obj`] succeeded.
    pub(crate) fn from_locked(obj: Arc<Object>) -> ObjRef {
        ObjRef { obj }
    }

    /// The underlying object, for taking a long-lived link.
    pub(crate) fn arc(&self) -> &Arc<Object> {
        &self.obj
    }

    /// Narrows to a type; `None` if the object is of another type.
    pub(crate) fn downcast<T: Kind>(self) -> Result<Typed<T>, ObjRef> {
        if self.obj.get::<T>().is_some() {
            Ok(Typed {
                r: self,
                _t: PhantomData,
            })
        } else {
            Err(self)
        }
    }
}

impl Deref for ObjRef {
    type Target = Object;
    fn deref(&self) -> &Object {
        &self.obj
    }
}

impl Drop for ObjRef {
    fn drop(&mut self) {
        self.obj.put();
    }
}

/// A temporary reference to an object known to be of type `T`.
pub(crate) struct Typed<T: Kind> {
    r: ObjRef,
    _t: PhantomData<fn() -> T>,
}

impl<T: Kind> Typed<T> {
    /// The object (ID, refcounts).
    pub(crate) fn obj(&self) -> &Arc<Object> {
        self.r.arc()
    }
}

impl<T: Kind> Deref for Typed<T> {
    type Target = T;
    fn deref(&self) -> &T {
        match self.r.obj.get::<T>() {
            Some(v) => v,
            // INVARIANT: `Typed` is only built by `downcast`, which checked the type.
            None => unreachable!("Typed<T> holds an object of another type"),
        }
    }
}
