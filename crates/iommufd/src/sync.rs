//! The synchronisation primitives of the subsystem: std's, or under
//! `--cfg shuttle` the shuttle model checker's, so that concurrency tests explore
//! the interleavings of the real code (refcounts, destroy waits, table, IOAS and
//! page-store locks). Process-wide counters (`static`s) stay std atomics.

#[cfg(not(shuttle))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

#[cfg(shuttle)]
pub(crate) use shuttle::sync::{
    Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard,
};

pub(crate) use std::sync::{Arc, OnceLock, Weak};

/// Atomics (`std::sync::atomic` or shuttle's).
pub(crate) mod atomic {
    #[cfg(not(shuttle))]
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8};

    #[cfg(shuttle)]
    pub(crate) use shuttle::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8};

    pub(crate) use std::sync::atomic::Ordering;
}
