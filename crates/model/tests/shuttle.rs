//! Model checking of the real code's concurrency protocols with shuttle.
//!
//! Built with `RUSTFLAGS="--cfg shuttle"`, which swaps iommufd's `sync` facade
//! (mutexes, rwlocks, condvars, atomics) for shuttle's, so the scheduler explores
//! interleavings at every lock and refcount operation of the real object table,
//! io_pagetable, page stores and accesses. Each test runs a small scenario many
//! times under the randomized and the PCT scheduler and checks the outcomes and
//! the final state (no leaked pins or charges, IDs consistent) in every
//! interleaving; shuttle itself fails a test on deadlock.
//!
//! `SHUTTLE_ITERS` sets the iterations per scheduler (default 200).
//!
//! Protocols: creation aborted at the copy-back racing another creation (the
//! reserved ID is released, never leaked or handed out twice), object
//! users/shortterm refcounts against IOMMU_DESTROY (EBUSY
//! while referenced, exactly one destroy wins), destroy racing a device attach,
//! unmap racing access pin and access read/write (the access's unmap callback,
//! the retry loop), device unbind waiting for a concurrent lookup to drain,
//! close of the iommufd racing ioctls on it and on an access fd.

#![cfg(shuttle)]

use std::sync::Arc;

use model::client::{self, FIXED_RW};
use model::mem::{Arena, ModelMm};
use shuttle::thread;
use uapi::Errno;

const PAGE: u64 = 4096;
const IOVA: u64 = 1 << 24;

fn iters() -> usize {
    std::env::var("SHUTTLE_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// Runs `f` under the random and the PCT schedulers.
fn check(f: impl Fn() + Send + Sync + 'static) {
    let f = Arc::new(f);
    let g = f.clone();
    shuttle::check_random(move || g(), iters());
    shuttle::check_pct(move || f(), iters(), 3);
}

/// Pins and charges are back to zero on the arena.
fn assert_released(arena: &Arena, mm: &ModelMm) {
    for p in 0..model::mem::ARENA_PAGES {
        assert_eq!(
            host::pins::count(arena.base() + p * PAGE),
            0,
            "page {p} pinned"
        );
    }
    assert_eq!(mm.locked(), (0, 0), "pages still charged");
}

#[test]
fn destroy_races_lookup_of_the_same_object() {
    check(|| {
        let arena = Arena::new();
        let mm = ModelMm::new();
        let f = client::open(&mm);
        let ioas = client::ioas_alloc(&f).unwrap();
        client::map(&f, ioas, arena.base(), 2 * PAGE, IOVA, FIXED_RW).unwrap();
        let f2 = f.clone();
        let t = thread::spawn(move || client::iova_ranges(&f2, ioas).map(|r| r.len()));
        let d = client::destroy(&f, ioas);
        let r = t.join().unwrap();
        // The lookup holds a reference: destroy may see it (EBUSY) or win.
        match d {
            Ok(()) => assert!(matches!(r, Ok(1) | Err(Errno::NOENT)), "{r:?}"),
            Err(e) => {
                assert_eq!(e, Errno::BUSY);
                assert_eq!(r, Ok(1));
                client::destroy(&f, ioas).unwrap();
            }
        }
        assert_eq!(client::destroy(&f, ioas), Err(Errno::NOENT));
        drop(f);
        assert_released(&arena, &mm);
    });
}

#[test]
fn concurrent_destroys_exactly_one_wins() {
    check(|| {
        let mm = ModelMm::new();
        let f = client::open(&mm);
        let ioas = client::ioas_alloc(&f).unwrap();
        let f2 = f.clone();
        let t = thread::spawn(move || client::destroy(&f2, ioas));
        let a = client::destroy(&f, ioas);
        let b = t.join().unwrap();
        let oks = [a, b].iter().filter(|r| r.is_ok()).count();
        assert_eq!(oks, 1, "{a:?} {b:?}");
        assert!([a, b].contains(&Err(Errno::NOENT)) || [a, b].contains(&Err(Errno::BUSY)));
        // The ID is free again, and reused lowest-first.
        assert_eq!(client::ioas_alloc(&f).unwrap(), ioas);
    });
}

#[test]
fn destroy_races_attach() {
    check(|| {
        let arena = Arena::new();
        let mm = ModelMm::new();
        let f = client::open(&mm);
        let ioas = client::ioas_alloc(&f).unwrap();
        client::map(&f, ioas, arena.base(), 4 * PAGE, IOVA, FIXED_RW).unwrap();
        let f2 = f.clone();
        let t = thread::spawn(move || client::mock_domain(&f2, ioas));
        let d = client::destroy(&f, ioas);
        let a = t.join().unwrap();
        match (d, a) {
            // The IOAS went first. Its ID is free at once and the mock device
            // may reuse it: then the attach finds a device there (EINVAL), as
            // the kernel's would.
            (Ok(()), Err(Errno::NOENT | Errno::INVAL)) => {}
            (Err(Errno::BUSY), Ok((stdev, _, _))) => {
                // Attached: the domain pins the mapping once.
                client::check_refs(&f, arena.base(), 4 * PAGE, 1).unwrap();
                client::destroy(&f, stdev).unwrap();
                client::check_refs(&f, arena.base(), 4 * PAGE, 0).unwrap();
                client::destroy(&f, ioas).unwrap();
            }
            other => panic!("destroy/attach outcome {other:?}"),
        }
        drop(f);
        assert_released(&arena, &mm);
    });
}

#[test]
fn unmap_races_access_pin() {
    check(|| {
        let arena = Arena::new();
        let mm = ModelMm::new();
        let f = client::open(&mm);
        let ioas = client::ioas_alloc(&f).unwrap();
        client::map(&f, ioas, arena.base(), 4 * PAGE, IOVA, FIXED_RW).unwrap();
        let afd = client::create_access(&f, ioas, true).unwrap();
        let f2 = f.clone();
        let t = thread::spawn(move || client::access_pages(&f2, afd, IOVA + PAGE, 2 * PAGE, true));
        // The access's unmap callback unpins whatever it holds, so the unmap
        // always succeeds.
        let u = client::unmap(&f, ioas, IOVA, 4 * PAGE);
        let p = t.join().unwrap();
        assert_eq!(u, Ok(4 * PAGE));
        assert!(
            matches!(p, Ok(_) | Err(Errno::NOENT) | Err(Errno::INVAL)),
            "{p:?}"
        );
        // Nothing may stay pinned once the unmap returned (no domain).
        client::check_refs(&f, arena.base(), 4 * PAGE, 0).unwrap();
        if let Ok(item) = p {
            assert_eq!(
                client::destroy_access_pages(&f, afd, item),
                Err(Errno::NOENT)
            );
        }
        client::close(afd).unwrap();
        drop(f);
        assert_released(&arena, &mm);
    });
}

#[test]
fn unmap_races_access_rw() {
    check(|| {
        let arena = Arena::new();
        let mm = ModelMm::new();
        let f = client::open(&mm);
        let ioas = client::ioas_alloc(&f).unwrap();
        client::map(&f, ioas, arena.base(), 2 * PAGE, IOVA, FIXED_RW).unwrap();
        let afd = client::create_access(&f, ioas, true).unwrap();
        let item = client::access_pages(&f, afd, IOVA, PAGE, false).unwrap();
        let f2 = f.clone();
        let t = thread::spawn(move || {
            let mut buf = vec![0x5au8; 64];
            client::access_rw(&f2, afd, IOVA + PAGE - 32, &mut buf, true)
        });
        let u = client::unmap(&f, ioas, IOVA, 2 * PAGE);
        let r = t.join().unwrap();
        assert_eq!(u, Ok(2 * PAGE));
        assert!(
            matches!(r, Ok(()) | Err(Errno::NOENT) | Err(Errno::INVAL)),
            "{r:?}"
        );
        // The unmap callback dropped the item.
        assert_eq!(
            client::destroy_access_pages(&f, afd, item),
            Err(Errno::NOENT)
        );
        client::check_refs(&f, arena.base(), 2 * PAGE, 0).unwrap();
        client::close(afd).unwrap();
        drop(f);
        assert_released(&arena, &mm);
    });
}

#[test]
fn unbind_waits_for_a_concurrent_lookup() {
    check(|| {
        let mm = ModelMm::new();
        let f = client::open(&mm);
        let ioas = client::ioas_alloc(&f).unwrap();
        let (stdev, hwpt, idev) = client::mock_domain(&f, ioas).unwrap();
        let f2 = f.clone();
        // HWPT_ALLOC looks the device up; destroying the selftest object unbinds
        // it, which waits for that lookup to drain.
        let t = thread::spawn(move || {
            let mut c = <uapi::HwptAlloc as zerocopy::FromZeros>::new_zeroed();
            c.dev_id = idev;
            c.pt_id = ioas;
            client::ioctl(&f2, &mut c).map(|()| c.out_hwpt_id)
        });
        client::destroy(&f, stdev).unwrap();
        let h = t.join().unwrap();
        match h {
            Ok(id) => {
                assert_ne!(id, hwpt);
                client::destroy(&f, id).unwrap();
            }
            Err(e) => assert_eq!(e, Errno::NOENT),
        }
        client::destroy(&f, ioas).unwrap();
    });
}

#[test]
fn close_races_ioctls() {
    check(|| {
        let arena = Arena::new();
        let mm = ModelMm::new();
        let f = client::open(&mm);
        let ioas = client::ioas_alloc(&f).unwrap();
        client::map(&f, ioas, arena.base(), 2 * PAGE, IOVA, FIXED_RW).unwrap();
        client::mock_domain(&f, ioas).unwrap();
        let afd = client::create_access(&f, ioas, true).unwrap();
        client::access_pages(&f, afd, IOVA, PAGE, false).unwrap();
        let f2 = f.clone();
        let va = arena.base() + 2 * PAGE;
        let t1 = thread::spawn(move || {
            let r = client::map(&f2, ioas, va, PAGE, IOVA + 2 * PAGE, FIXED_RW);
            drop(f2);
            r.map(|_| ())
        });
        // Access fds work from any iommufd of the process.
        let g = client::open(&mm);
        let t2 = thread::spawn(move || {
            let mut buf = [0u8; 16];
            let r = client::access_rw(&g, afd, IOVA, &mut buf, false);
            drop(g);
            r
        });
        // Close the iommufd (our reference) and the access fd while the others run.
        drop(f);
        client::close(afd).unwrap();
        let r1 = t1.join().unwrap();
        let r2 = t2.join().unwrap();
        assert!(r1.is_ok(), "{r1:?}");
        assert!(matches!(r2, Ok(()) | Err(Errno::BADFD)), "{r2:?}");
        assert_released(&arena, &mm);
    });
}

#[test]
fn aborted_creation_races_allocation() {
    check(|| {
        let mm = ModelMm::new();
        let f = client::open(&mm);
        // An IOAS_ALLOC whose struct is read-only: copied in, but the response
        // cannot be written, so the new IOAS is aborted after its ID was taken.
        let mut page = host::sys::Mmap::anon(
            PAGE as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
        )
        .unwrap();
        host::uaccess::copy_to_user(page.addr(), &12u32.to_ne_bytes()).unwrap();
        page.protect(libc::PROT_READ).unwrap();
        let arg = page.addr();
        let f2 = f.clone();
        let t = thread::spawn(move || f2.ioctl(uapi::ioctl::IOMMU_IOAS_ALLOC, arg));
        let b = client::ioas_alloc(&f).unwrap();
        assert_eq!(t.join().unwrap(), Err(Errno::FAULT));
        // B got 1 or 2 (if the aborted one held 1 then); either way the
        // aborted ID is free again and handed out lowest first.
        assert!(b == 1 || b == 2, "{b}");
        assert_eq!(client::ioas_alloc(&f).unwrap(), 3 - b);
        client::destroy(&f, 1).unwrap();
        client::destroy(&f, 2).unwrap();
        // Nothing left in the table, not even a reservation: the accounting
        // mode may be changed.
        let mut o = <uapi::IommuOption as zerocopy::FromZeros>::new_zeroed();
        o.option_id = uapi::IOMMU_OPTION_RLIMIT_MODE;
        o.op = uapi::IOMMU_OPTION_OP_SET;
        o.val64 = 1;
        client::ioctl(&f, &mut o).unwrap();
    });
}
