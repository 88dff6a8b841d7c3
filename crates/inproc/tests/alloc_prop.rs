//! The automatic IOVA allocator against a brute-force reference (SEMANTICS.md §2.4).
//!
//! Random sequences of maps (automatic and fixed), unmaps, reservations and
//! allowed-range updates run on an IOAS without domains; every automatic map must
//! return exactly the IOVA the reference computes. The reference is written from
//! the specification with its own data structures (sorted lists and a sweep), not
//! from the implementation: windows are the allowed ranges (or the whole space)
//! clipped to `[PAGE_SIZE, 2^64 - PAGE_SIZE - 1]`; in the first window whose
//! aligned start fits, the answer is the first hole of areas ∪ reserved whose
//! candidate `ALIGN(hole_start) | page_offset` is below the hole's last byte with
//! `length - 1` bytes behind it. Because of the OR, this is not always the lowest
//! free address when the alignment is below the page size.

mod support;

use proptest::prelude::*;
use support::{buffer, Fd, FIXED_RW, PAGE};
use uapi::{Errno, IoasAllowIovas, IovaRange, TestAddReserved};
use zerocopy::FromZeros;

/// The universe the test works in: IOVAs below this (plus the kernel's always
/// excluded top page, irrelevant here).
const SPACE: u64 = 1 << 26;

#[derive(Clone, Debug)]
enum Op {
    Auto { len: u64, uptr: u64 },
    Fixed { iova: u64, len: u64 },
    Unmap { nth: usize },
    Reserve { start: u64, len: u64 },
    Allow { ranges: Vec<(u64, u64)> },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (len(), uptr()).prop_map(|(len, uptr)| Op::Auto { len, uptr }),
        2 => (0u64..SPACE / PAGE, 1u64..8).prop_map(|(p, n)| Op::Fixed { iova: p * PAGE, len: n * PAGE }),
        2 => (0usize..8).prop_map(|nth| Op::Unmap { nth }),
        2 => (0u64..SPACE, 1u64..0x40000).prop_map(|(start, len)| Op::Reserve { start, len }),
        1 => prop::collection::vec((0u64..SPACE, 0x800u64..0x80000), 0..3)
            .prop_map(|v| Op::Allow { ranges: v.into_iter().map(|(s, l)| (s, s + l)).collect() }),
    ]
}

/// Lengths from a byte to beyond the 2 MiB alignment cap.
fn len() -> impl Strategy<Value = u64> {
    prop_oneof![1u64..16, 1u64..5 * PAGE, 1u64..(8 << 20)]
}

/// User addresses of every alignment; nothing is touched without a domain, so
/// they need not be mapped. 0 takes the kernel's `uptr == 0` path.
fn uptr() -> impl Strategy<Value = u64> {
    prop_oneof![
        1 => Just(0u64),
        4 => (1u64..1 << 20, 0u32..24, 0u64..PAGE).prop_map(|(k, shift, off)| ((k << shift) << 12) | off),
        2 => (1u64..1 << 20, 12u32..24).prop_map(|(k, shift)| k << shift),
    ]
}

#[derive(Default, Debug)]
struct Model {
    areas: Vec<(u64, u64)>,
    reserved: Vec<(u64, u64)>,
    allowed: Vec<(u64, u64)>,
}

impl Model {
    fn free(&self, start: u64, last: u64) -> bool {
        self.areas
            .iter()
            .chain(&self.reserved)
            .all(|&(s, l)| last < s || start > l)
    }

    /// The holes of (areas ∪ reserved) inside `[lo, hi]`, by a sweep over the sorted
    /// used intervals.
    fn holes(&self, lo: u64, hi: u64) -> Vec<(u64, u64)> {
        let mut used: Vec<(u64, u64)> = self.areas.iter().chain(&self.reserved).copied().collect();
        used.sort();
        let mut out = Vec::new();
        let mut cur = lo;
        for (s, l) in used {
            if l < cur {
                continue;
            }
            if s > hi {
                break;
            }
            if s > cur {
                out.push((cur, s - 1));
            }
            match l.checked_add(1) {
                Some(next) if next <= hi => cur = cur.max(next),
                _ => return out,
            }
        }
        out.push((cur, hi));
        out
    }

    /// The kernel's candidate in `[start, last]`: the aligned start with the page
    /// offset ORed in, if the length fits behind it.
    fn candidate(start: u64, last: u64, len: u64, align: u64, page_offset: u64) -> Option<u64> {
        let aligned = start.checked_add(align - 1)? & !(align - 1);
        let aligned = aligned | page_offset;
        (aligned < last && last - aligned >= len - 1).then_some(aligned)
    }

    /// The reference allocation: first window whose aligned start fits, then the
    /// first hole after that start whose own candidate fits.
    fn alloc(&self, uptr: u64, len: u64) -> Result<u64, Errno> {
        let page_offset = uptr % PAGE;
        let mut align = len.next_power_of_two();
        if uptr != 0 {
            align = align.min(1 << uptr.trailing_zeros());
        }
        align = align.min(2 << 20);
        let mut windows: Vec<(u64, u64)> = if self.allowed.is_empty() {
            vec![(PAGE, u64::MAX - PAGE)]
        } else {
            self.allowed
                .iter()
                .map(|&(s, l)| (s.max(PAGE), l.min(u64::MAX - PAGE)))
                .filter(|&(s, l)| s <= l)
                .collect()
        };
        windows.sort();
        for (ws, wl) in windows {
            let Some(start) = Self::candidate(ws, wl, len, align, page_offset) else {
                continue;
            };
            for (hs, hl) in self.holes(start, wl) {
                if let Some(iova) = Self::candidate(hs, hl, len, align, page_offset) {
                    return Ok(iova);
                }
            }
        }
        Err(Errno::NOSPC)
    }
}

fn allow(fd: &Fd, ioas: u32, ranges: &[(u64, u64)]) -> Result<(), Errno> {
    let list: Vec<IovaRange> = ranges
        .iter()
        .map(|&(start, last)| IovaRange { start, last })
        .collect();
    let mut cmd = IoasAllowIovas::new_zeroed();
    cmd.ioas_id = ioas;
    cmd.num_iovas = list.len() as u32;
    cmd.allowed_iovas = list.as_ptr() as u64;
    fd.ioctl(&mut cmd).map(|_| ())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn auto_iova_matches_reference(ops in prop::collection::vec(op(), 1..40)) {
        let fd = Fd::open();
        let buf = buffer(8 * PAGE as usize);
        let ioas = fd.ioas_alloc();
        let mut m = Model::default();
        // Fixed maps pin nothing without a domain; any user address works.
        for op in ops {
            match op {
                Op::Auto { len, uptr } => {
                    let expect = m.alloc(uptr, len);
                    let got = fd.map_auto(ioas, uptr, len);
                    prop_assert_eq!(got, expect, "auto map of {:#x} bytes from {:#x} in {:?}", len, uptr, m);
                    if let Ok(iova) = got {
                        m.areas.push((iova, iova + len - 1));
                    }
                }
                Op::Fixed { iova, len } => {
                    let free = m.free(iova, iova + len - 1);
                    let got = fd.map(ioas, buf.addr(), len, iova, FIXED_RW);
                    prop_assert_eq!(got.is_ok(), free);
                    if got.is_ok() {
                        m.areas.push((iova, iova + len - 1));
                    }
                }
                Op::Unmap { nth } => {
                    if m.areas.is_empty() {
                        continue;
                    }
                    let (s, l) = m.areas.remove(nth % m.areas.len());
                    prop_assert_eq!(fd.unmap(ioas, s, l - s + 1), Ok(l - s + 1));
                }
                Op::Reserve { start, len } => {
                    let last = start + len - 1;
                    let clash = !m.areas.iter().chain(&m.allowed).all(|&(s, l)| last < s || start > l);
                    let got = fd.test(ioas, &TestAddReserved { start, length: len }).map(|_| ());
                    prop_assert_eq!(got.is_err(), clash);
                    if got.is_ok() {
                        m.reserved.push((start, last));
                    }
                }
                Op::Allow { ranges } => {
                    let mut sorted = ranges.clone();
                    sorted.sort();
                    let overlap = sorted.windows(2).any(|w| w[1].0 <= w[0].1);
                    let clash = ranges.iter().any(|&(s, l)| !m.reserved.iter().all(|&(rs, rl)| l < rs || s > rl));
                    let got = allow(&fd, ioas, &ranges);
                    let expect = if overlap { Err(Errno::INVAL) } else if clash { Err(Errno::ADDRINUSE) } else { Ok(()) };
                    prop_assert_eq!(got, expect);
                    if got.is_ok() {
                        m.allowed = ranges;
                    }
                }
            }
        }
    }
}
