//! The unmap retry protocol with in-kernel accesses (SEMANTICS.md §5.4): an
//! unmap that meets an area pinned by an access notifies every access of the IOAS
//! and retries; an access that lets go within the kernel's limit lets the unmap
//! succeed, one that never does makes it fail with EDEADLOCK after 100 retries
//! (a kernel WARN: a debug assertion here), and the area then refuses new pins.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use iommufd::{AccessHandle, AccessOps};
use model::client::{self, FIXED_RW};
use model::mem::{Arena, ModelMm};
use uapi::Errno;

const PAGE: u64 = 4096;
const IOVA: u64 = 1 << 24;

/// An access that ignores the first `ignore` unmap notifications.
struct Stubborn {
    ignore: u32,
    calls: AtomicU32,
    handle: Mutex<Option<AccessHandle>>,
    pinned: Mutex<Vec<(u64, u64)>>,
}

impl AccessOps for Stubborn {
    fn needs_pin_pages(&self) -> bool {
        true
    }

    fn unmap(&self, _iova: u64, _length: u64) {
        if self.calls.fetch_add(1, Ordering::AcqRel) < self.ignore {
            return;
        }
        let h = self.handle.lock().unwrap();
        // No handle while the test holds it (or destroys it).
        let Some(h) = h.as_ref() else { return };
        for (iova, len) in self.pinned.lock().unwrap().drain(..) {
            h.unpin_pages(iova, len);
        }
    }
}

fn setup(
    ignore: u32,
) -> (
    Arena,
    Arc<ModelMm>,
    Arc<iommufd::IommufdFile>,
    u32,
    Arc<Stubborn>,
) {
    let arena = Arena::new();
    let mm = ModelMm::new();
    let f = client::open(&mm);
    let ioas = client::ioas_alloc(&f).unwrap();
    client::map(&f, ioas, arena.base(), 4 * PAGE, IOVA, FIXED_RW).unwrap();
    let ops = Arc::new(Stubborn {
        ignore,
        calls: AtomicU32::new(0),
        handle: Mutex::new(None),
        pinned: Mutex::new(Vec::new()),
    });
    let dyn_ops: Arc<dyn AccessOps> = ops.clone();
    let h = AccessHandle::create(&f, &dyn_ops).unwrap();
    h.attach(ioas).unwrap();
    h.pin_pages(IOVA, 2 * PAGE, true).unwrap();
    ops.pinned.lock().unwrap().push((IOVA, 2 * PAGE));
    *ops.handle.lock().unwrap() = Some(h);
    (arena, mm, f, ioas, ops)
}

#[test]
fn unmap_retries_until_the_access_lets_go() {
    let (arena, mm, f, ioas, ops) = setup(99);
    client::check_refs(&f, arena.base(), 2 * PAGE, 1).unwrap();
    assert_eq!(client::unmap(&f, ioas, IOVA, 4 * PAGE), Ok(4 * PAGE));
    assert_eq!(ops.calls.load(Ordering::Acquire), 100);
    client::check_refs(&f, arena.base(), 4 * PAGE, 0).unwrap();
    let h = ops.handle.lock().unwrap().take().unwrap();
    h.destroy();
    drop(f);
    assert_eq!(mm.locked(), (0, 0));
}

#[test]
fn unmap_gives_up_with_edeadlock() {
    let (arena, mm, f, ioas, ops) = setup(u32::MAX);
    let res = catch_unwind(AssertUnwindSafe(|| client::unmap(&f, ioas, IOVA, 4 * PAGE)));
    match res {
        Ok(r) => assert_eq!(r, Err(Errno::DEADLOCK)),
        // Debug builds assert where the kernel WARNs.
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            assert!(msg.contains("does not respond"), "{msg}");
        }
    }
    // 1 first try + 100 retries notified the access.
    assert_eq!(ops.calls.load(Ordering::Acquire), 101);
    // The area survives, still pinned, and refuses new pins while flagged.
    client::check_refs(&f, arena.base(), 2 * PAGE, 1).unwrap();
    let h = ops.handle.lock().unwrap().take().unwrap();
    assert_eq!(h.pin_pages(IOVA, PAGE, false), Err(Errno::INVAL));
    let mut buf = [0u8; 8];
    assert_eq!(h.rw(IOVA, &mut buf, 0), Err(Errno::INVAL));
    // Once the access lets go the area can be unmapped.
    h.unpin_pages(IOVA, 2 * PAGE);
    ops.pinned.lock().unwrap().clear();
    *ops.handle.lock().unwrap() = Some(h);
    assert_eq!(client::unmap(&f, ioas, IOVA, 4 * PAGE), Ok(4 * PAGE));
    let h = ops.handle.lock().unwrap().take().unwrap();
    h.destroy();
    drop(f);
    client::check_refs(&client::open(&mm), arena.base(), 4 * PAGE, 0).unwrap();
    assert_eq!(mm.locked(), (0, 0));
}
