//! Multi-thread stress with invariant checks: `STRESS_THREADS` threads (default
//! 16) each run `STRESS_OPS` operations (default 2,000; the full reliability run
//! uses 1,000,000) against one shared iommufd, mixing private and shared objects:
//!
//! * a private IOAS with a mock domain per thread, whose pages' pin counts the
//!   thread checks exactly after every map and unmap (its pages are its own);
//! * a shared IOAS with a domain, each thread mapping and copying into its own
//!   IOVA window, while others attach and detach mock devices to it;
//! * a private pinning access per thread: pin, read/write (data verified),
//!   unpin;
//! * a junk context where every thread allocates IOASes and destroys random
//!   IDs, whose results must be Ok, ENOENT or EBUSY.
//!
//! At the end everything is closed and no pin or charge may remain. The longest
//! time any single request took is reported (not asserted); a request taking
//! more than a minute is a hang and fails the test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use model::client::{self, FIXED_RW};
use model::mem::{Arena, ModelMm, ARENA_PAGES};
use uapi::Errno;

const PAGE: u64 = 4096;
const PRIV_IOVA: u64 = 1 << 24;
const SHARED_IOVA: u64 = 1 << 25;
const HANG: Duration = Duration::from_secs(60);

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Times one request.
fn timed<T>(max: &mut Duration, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    let d = t.elapsed();
    assert!(d < HANG, "a request hung for {d:?}");
    *max = (*max).max(d);
    r
}

#[allow(clippy::too_many_lines)]
fn worker(
    t: u64,
    ops: u64,
    f: Arc<iommufd::IommufdFile>,
    junk: Arc<iommufd::IommufdFile>,
    shared: u32,
) -> (Duration, Arena) {
    let mut max = Duration::ZERO;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
    let arena = Arena::new();
    let base = arena.base();
    let ioas = client::ioas_alloc(&f).unwrap();
    client::mock_domain(&f, ioas).unwrap();
    let afd = client::create_access(&f, ioas, true).unwrap();
    // Pages [0, 32) of the arena are read-write; each slot k maps page k.
    let mut mapped = [false; 32];
    // Shared-IOAS copies: (iova, slot, store). A store is one MAP; a copy keeps
    // it (and its pin, the shared IOAS having a domain) alive.
    let mut shared_maps: Vec<(u64, usize, u64)> = Vec::new();
    let window = SHARED_IOVA + t * 64 * PAGE;
    let mut store = [0u64; 32];
    let mut next_store = 1u64;
    let pins = |k: usize, mapped: &[bool; 32], store: &[u64; 32], shared: &[(u64, usize, u64)]| {
        let mut stores: Vec<u64> = shared.iter().filter(|c| c.1 == k).map(|c| c.2).collect();
        if mapped[k] {
            stores.push(store[k]);
        }
        stores.sort_unstable();
        stores.dedup();
        stores.len() as u32
    };
    for i in 0..ops {
        match rng.below(10) {
            0..=2 => {
                let k = rng.below(32) as usize;
                let iova = PRIV_IOVA + k as u64 * PAGE;
                if mapped[k] {
                    let r = timed(&mut max, || client::unmap(&f, ioas, iova, PAGE));
                    assert_eq!(r, Ok(PAGE), "thread {t} op {i}");
                    mapped[k] = false;
                } else {
                    let r = timed(&mut max, || {
                        client::map(&f, ioas, base + k as u64 * PAGE, PAGE, iova, FIXED_RW)
                    });
                    assert_eq!(r, Ok(iova), "thread {t} op {i}");
                    mapped[k] = true;
                    store[k] = next_store;
                    next_store += 1;
                }
                let want = pins(k, &mapped, &store, &shared_maps);
                let r = timed(&mut max, || {
                    client::check_refs(&f, base + k as u64 * PAGE, PAGE, want)
                });
                assert_eq!(
                    r,
                    Ok(()),
                    "thread {t} op {i}: page {k} should have {want} pins"
                );
            }
            3 => {
                // Copy a private mapping into the shared IOAS (same store: no
                // new pin), or undo one.
                if rng.below(2) == 0 && !shared_maps.is_empty() {
                    let (iova, k, _) =
                        shared_maps.swap_remove(rng.below(shared_maps.len() as u64) as usize);
                    let r = timed(&mut max, || client::unmap(&f, shared, iova, PAGE));
                    assert_eq!(r, Ok(PAGE), "thread {t} op {i}");
                    let want = pins(k, &mapped, &store, &shared_maps);
                    let r = timed(&mut max, || {
                        client::check_refs(&f, base + k as u64 * PAGE, PAGE, want)
                    });
                    assert_eq!(
                        r,
                        Ok(()),
                        "thread {t} op {i}: page {k} should have {want} pins"
                    );
                } else if let Some(k) = (0..32).map(|_| rng.below(32) as usize).find(|&k| mapped[k])
                {
                    let Some(dst) = (0..64)
                        .map(|_| window + rng.below(64) * PAGE)
                        .find(|d| shared_maps.iter().all(|c| c.0 != *d))
                    else {
                        continue;
                    };
                    let mut c = <uapi::IoasCopy as zerocopy::FromZeros>::new_zeroed();
                    c.dst_ioas_id = shared;
                    c.src_ioas_id = ioas;
                    c.flags = FIXED_RW;
                    c.src_iova = PRIV_IOVA + k as u64 * PAGE;
                    c.length = PAGE;
                    c.dst_iova = dst;
                    let r = timed(&mut max, || client::ioctl(&f, &mut c));
                    assert_eq!(r, Ok(()), "thread {t} op {i}");
                    shared_maps.push((dst, k, store[k]));
                    let want = pins(k, &mapped, &store, &shared_maps);
                    let r = timed(&mut max, || {
                        client::check_refs(&f, base + k as u64 * PAGE, PAGE, want)
                    });
                    assert_eq!(
                        r,
                        Ok(()),
                        "thread {t} op {i}: a copy shares its source's pin"
                    );
                }
            }
            4 | 5 => {
                let Some(k) = (0..32).map(|_| rng.below(32) as usize).find(|&k| mapped[k]) else {
                    continue;
                };
                let iova = PRIV_IOVA + k as u64 * PAGE;
                let item = timed(&mut max, || client::access_pages(&f, afd, iova, PAGE, true))
                    .unwrap_or_else(|e| panic!("thread {t} op {i}: pin: {e:?}"));
                let mut data: Vec<u8> =
                    (0..64).map(|j| (j as u8) ^ (i as u8) ^ (t as u8)).collect();
                let off = rng.below(PAGE - 64);
                timed(&mut max, || {
                    client::access_rw(&f, afd, iova + off, &mut data, true)
                })
                .unwrap();
                let mut back = vec![0u8; 64];
                timed(&mut max, || {
                    client::access_rw(&f, afd, iova + off, &mut back, false)
                })
                .unwrap();
                assert_eq!(back, data, "thread {t} op {i}: data read back differs");
                timed(&mut max, || client::destroy_access_pages(&f, afd, item)).unwrap();
            }
            6 => {
                let r = timed(&mut max, || client::mock_domain(&f, shared));
                let (stdev, _, _) = r.unwrap_or_else(|e| panic!("thread {t} op {i}: attach {e:?}"));
                let r = timed(&mut max, || client::destroy(&f, stdev));
                assert_eq!(r, Ok(()), "thread {t} op {i}");
            }
            7 => {
                let r = timed(&mut max, || client::iova_ranges(&f, shared));
                assert_eq!(r, Ok(vec![(1 << 24, (1 << 31) - 1)]), "thread {t} op {i}");
            }
            _ => {
                let r = if rng.below(2) == 0 {
                    timed(&mut max, || client::ioas_alloc(&junk)).map(|_| ())
                } else {
                    let id = 1 + rng.below(64) as u32;
                    timed(&mut max, || client::destroy(&junk, id))
                };
                assert!(
                    matches!(r, Ok(()) | Err(Errno::NOENT | Errno::BUSY)),
                    "thread {t} op {i}: junk {r:?}"
                );
            }
        }
    }
    client::close(afd).unwrap();
    for (iova, _, _) in shared_maps {
        assert_eq!(client::unmap(&f, shared, iova, PAGE), Ok(PAGE));
    }
    // Closing the whole context later unpins the private mappings; leave some.
    for p in 32..ARENA_PAGES {
        assert_eq!(host::pins::count(base + p * PAGE), 0);
    }
    // The arena stays mapped until the context is closed.
    (max, arena)
}

#[test]
fn stress_with_invariants() {
    let threads = env("STRESS_THREADS", 16);
    let ops = env("STRESS_OPS", 2_000);
    let mm = ModelMm::with_limit(1 << 40);
    let f = client::open(&mm);
    let junk = client::open(&mm);
    let shared = client::ioas_alloc(&f).unwrap();
    let (stdev, _, _) = client::mock_domain(&f, shared).unwrap();
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (f, junk) = (f.clone(), junk.clone());
            std::thread::spawn(move || worker(t, ops, f, junk, shared))
        })
        .collect();
    let (times, arenas): (Vec<Duration>, Vec<Arena>) = handles
        .into_iter()
        .map(|h| h.join().expect("worker"))
        .unzip();
    let max = times.into_iter().max().unwrap_or_default();
    client::destroy(&f, stdev).unwrap();
    drop(f);
    drop(junk);
    for a in &arenas {
        for p in 0..ARENA_PAGES {
            assert_eq!(
                host::pins::count(a.base() + p * PAGE),
                0,
                "pinned after close"
            );
        }
    }
    drop(arenas);
    assert_eq!(mm.locked(), (0, 0), "pages still charged after close");
    eprintln!(
        "stress: {threads} threads x {ops} ops in {:?}; longest request {max:?}",
        start.elapsed()
    );
}
