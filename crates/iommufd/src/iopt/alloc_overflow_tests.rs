//! Overflow arithmetic of the IOVA allocator's fit test and the fixed-IOVA check,
//! exhaustively over an 8-bit universe and at the top of the `u64` range, against
//! a reference in `u128` arithmetic (RELIABILITY.md #8).

use itree::IntervalTree;
use uapi::Errno;

use super::{check_iova, check_range};
use crate::iopt::IovaState;

/// `check_range` in u128: the aligned start (with the page offset ORed in) if it
/// lies below `last` with `length - 1` bytes behind it.
fn reference(start: u64, last: u64, length: u64, align: u64, off: u64) -> Option<u64> {
    let aligned = u128::from(start).div_ceil(u128::from(align)) * u128::from(align);
    if aligned > u128::from(u64::MAX) {
        return None;
    }
    let aligned = aligned as u64 | off;
    (aligned < last && u128::from(last - aligned) >= u128::from(length) - 1).then_some(aligned)
}

fn edges() -> Vec<u64> {
    (0..=16u64)
        .map(|d| u64::MAX - d)
        .chain([1 << 63, (1 << 63) - 1, (1 << 63) + 1, u64::MAX / 2])
        .collect()
}

#[test]
fn fit_test_is_exact_at_8_bits() {
    for start in 0u64..=255 {
        for last in start..=255 {
            for length in 1u64..=256 {
                for lg in 0..=8 {
                    let align = 1u64 << lg;
                    for off in [0, align / 2, align - 1] {
                        let off = off & (align - 1);
                        assert_eq!(
                            check_range(start, last, length, align, off),
                            reference(start, last, length, align, off),
                            "start {start} last {last} length {length} align {align} off {off}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn fit_test_is_exact_at_u64_edges() {
    let e = edges();
    for &start in &e {
        for &last in &e {
            for &length in e.iter().chain(&[1, 2, 4096, 1 << 62]) {
                if length == 0 {
                    continue;
                }
                for lg in [0, 1, 12, 21, 62, 63] {
                    let align = 1u64 << lg;
                    for off in [0, (align - 1) & 0xfff] {
                        assert_eq!(
                            check_range(start, last, length, align, off),
                            reference(start, last, length, align, off),
                            "start {start:#x} last {last:#x} length {length:#x} align {align:#x}"
                        );
                    }
                }
            }
        }
    }
}

fn state(alignment: u64, reserved: &[(u64, u64)], areas: &[(u64, u64)]) -> IovaState {
    let mut st = IovaState {
        areas: IntervalTree::new(),
        allowed: IntervalTree::new(),
        reserved: IntervalTree::new(),
        iova_alignment: alignment,
        disable_large_pages: false,
        hole_hint: super::HoleHint::default(),
    };
    for &(s, l) in reserved {
        st.reserved.insert(s, l, super::super::ResvOwner::Test);
    }
    let _ = areas;
    st
}

/// `iopt_check_iova` in u128: alignment, then wrap, then reserved overlap.
fn check_reference(
    alignment: u64,
    reserved: &[(u64, u64)],
    iova: u64,
    length: u64,
) -> Result<(), Errno> {
    if !iova.is_multiple_of(alignment) {
        return Err(Errno::INVAL);
    }
    let last = u128::from(iova) + u128::from(length) - 1;
    if last > u128::from(u64::MAX) {
        return Err(Errno::OVERFLOW);
    }
    if reserved
        .iter()
        .any(|&(s, l)| u128::from(s) <= last && u128::from(iova) <= u128::from(l))
    {
        return Err(Errno::INVAL);
    }
    Ok(())
}

#[test]
fn fixed_iova_check_at_8_bits_and_u64_edges() {
    let reserved: [&[(u64, u64)]; 3] = [&[], &[(16, 31), (200, 255)], &[(u64::MAX - 7, u64::MAX)]];
    let small: Vec<u64> = (0..=255).collect();
    let big = edges();
    for resv in reserved {
        for lg in [0, 1, 2, 11, 12] {
            let alignment = 1u64 << lg;
            let st = state(alignment, resv, &[]);
            for values in [&small, &big] {
                for &iova in values {
                    for &length in values.iter().chain(&[1, 2, 4096]) {
                        if length == 0 {
                            continue;
                        }
                        assert_eq!(
                            check_iova(&st, iova, length),
                            check_reference(alignment, resv, iova, length),
                            "iova {iova:#x} length {length:#x} alignment {alignment}"
                        );
                    }
                }
            }
        }
    }
}
