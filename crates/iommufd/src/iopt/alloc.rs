//! IOVA allocation and fixed-IOVA checks.
//!
//! The automatic allocator is first-fit, lowest address, over the allowed ranges
//! (or the whole space when none are set) clipped to
//! `[PAGE_SIZE, ULONG_MAX - PAGE_SIZE]`, avoiding reserved ranges and areas. The
//! alignment is the length rounded up to a power of two, capped by the alignment
//! of the user address and by the huge page size, and the sub-page offset of the
//! user address is kept so large IOPTEs stay possible.
//!
//! Kernel: `drivers/iommu/iommufd/io_pagetable.c` (`iopt_alloc_iova`,
//! `iopt_check_iova`), v6.12.

use std::sync::atomic::{AtomicU64, Ordering};

use itree::{double_spans, DoubleSpan, IntervalTree, Span};
use uapi::Errno;

use super::IovaState;
use crate::mm::{HPAGE_SIZE, PAGE_SIZE};

/// The lowest possible hole of areas ∪ reserved ranges, learned by the
/// allocator: no address in `[PAGE_SIZE, at)` is outside both trees, as long
/// as neither tree lost an interval since (their [`IntervalTree::shrinks`]
/// counts are the ones recorded; insertions only shrink holes). It lets a
/// first-fit search skip a dense low region, where the kernel walks every
/// area of it, with the same result.
#[derive(Default, Debug)]
pub(crate) struct HoleHint {
    at: AtomicU64,
    areas_shrinks: AtomicU64,
    reserved_shrinks: AtomicU64,
}

impl HoleHint {
    /// The start of the lowest hole of areas ∪ reserved in `[PAGE_SIZE, hi]`
    /// (`hi + 1` if there is none), found from the last one still valid and
    /// recorded: amortized, each area is stepped over once between removals.
    fn refresh<A, R>(&self, areas: &IntervalTree<A>, reserved: &IntervalTree<R>, hi: u64) -> u64 {
        let valid = self.areas_shrinks.load(Ordering::Relaxed) == areas.shrinks()
            && self.reserved_shrinks.load(Ordering::Relaxed) == reserved.shrinks();
        let from = if valid {
            self.at.load(Ordering::Relaxed).max(PAGE_SIZE)
        } else {
            PAGE_SIZE
        };
        if from > hi {
            return from;
        }
        let at = double_spans(reserved, areas, from, hi)
            .find_map(|span| match span {
                DoubleSpan::Hole { start, .. } => Some(start),
                _ => None,
            })
            .unwrap_or(hi + 1);
        self.at.store(at, Ordering::Relaxed);
        self.areas_shrinks.store(areas.shrinks(), Ordering::Relaxed);
        self.reserved_shrinks
            .store(reserved.shrinks(), Ordering::Relaxed);
        at
    }
}

/// `__alloc_iova_check_range`: the aligned start of a fit for `length` bytes in
/// `[start, last]`, if any.
fn check_range(start: u64, last: u64, length: u64, align: u64, page_offset: u64) -> Option<u64> {
    let aligned = start.checked_add(align - 1)? & !(align - 1);
    let aligned = aligned | page_offset;
    if aligned >= last || last - aligned < length - 1 {
        return None;
    }
    Some(aligned)
}

/// Chooses an IOVA for `length` bytes mapped from user address `uptr`.
///
/// # Errors
/// `EOVERFLOW` for a zero or huge length; `EINVAL` if the derived alignment is
/// below the io_pagetable's; `ENOSPC` if nothing fits.
pub(crate) fn alloc_iova(st: &IovaState, uptr: u64, length: u64) -> Result<u64, Errno> {
    if length == 0 || length >= u64::MAX / 2 {
        return Err(Errno::OVERFLOW);
    }
    let page_offset = uptr % PAGE_SIZE;
    let mut align = length.next_power_of_two();
    if uptr != 0 {
        align = align.min(1u64 << uptr.trailing_zeros());
    }
    align = align.min(HPAGE_SIZE);
    if align < st.iova_alignment {
        return Err(Errno::INVAL);
    }

    let (lo, hi) = (PAGE_SIZE, u64::MAX - PAGE_SIZE);
    let windows: Vec<(u64, u64)> = if st.allowed.is_empty() {
        vec![(lo, hi)]
    } else {
        st.allowed
            .spans(lo, hi)
            .filter_map(|span| match span {
                Span::Used { start, last } => Some((start, last)),
                Span::Hole { .. } => None,
            })
            .collect()
    };
    // No hole lies below the hint, so a window's search may start there
    // instead of at its first aligned address: the holes it visits from there
    // are the ones the kernel's search visits.
    let hint = st.hole_hint.refresh(&st.areas, &st.reserved, hi);
    for (start, last) in windows {
        let Some(start) = check_range(start, last, length, align, page_offset) else {
            continue;
        };
        let from = start.max(hint);
        if from > last {
            continue;
        }
        for span in double_spans(&st.reserved, &st.areas, from, last) {
            let DoubleSpan::Hole { start, last } = span else {
                continue;
            };
            if let Some(iova) = check_range(start, last, length, align, page_offset) {
                return Ok(iova);
            }
        }
    }
    Err(Errno::NOSPC)
}

/// Checks that a fixed `[iova, iova + length)` may be mapped (`iopt_check_iova`).
///
/// # Errors
/// `EINVAL` if misaligned or reserved; `EOVERFLOW` if it wraps; `EEXIST` if mapped.
pub(crate) fn check_iova(st: &IovaState, iova: u64, length: u64) -> Result<(), Errno> {
    if iova & (st.iova_alignment - 1) != 0 {
        return Err(Errno::INVAL);
    }
    let last = iova.checked_add(length - 1).ok_or(Errno::OVERFLOW)?;
    if st.reserved.first_overlapping(iova, last).is_some() {
        return Err(Errno::INVAL);
    }
    if st.areas.first_overlapping(iova, last).is_some() {
        return Err(Errno::EXIST);
    }
    Ok(())
}

#[cfg(test)]
#[path = "alloc_overflow_tests.rs"]
mod overflow_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_range_rejects_a_fit_ending_on_the_last_byte_for_length_one() {
        assert_eq!(check_range(0x1000, 0x1000, 1, 1, 0), None);
        assert_eq!(check_range(0x1000, 0x1001, 1, 1, 0), Some(0x1000));
    }

    #[test]
    fn check_range_keeps_page_offset() {
        assert_eq!(
            check_range(0x1000, 0xffff, 0x800, 0x1000, 0x800),
            Some(0x1800)
        );
    }

    #[test]
    fn check_range_overflowing_align_fails() {
        assert_eq!(check_range(u64::MAX - 2, u64::MAX, 1, 0x1000, 0), None);
    }
}
