//! Overflow arithmetic of `iommufd_check_iova_range` (GET_DIRTY_BITMAP), over an
//! 8-bit universe exhaustively and at the `u64` edges, against `u128` arithmetic.

use uapi::Errno;

use super::IovaBitmap;

fn reference(iova: u64, length: u64, page_size: u64, alignment: u64) -> Result<(), Errno> {
    if length == 0 {
        return Err(Errno::INVAL);
    }
    let end = u128::from(iova) + u128::from(length);
    if end - 1 > u128::from(u64::MAX) {
        return Err(Errno::OVERFLOW);
    }
    // The end may be 2^64, which the kernel's unsigned long wraps to 0.
    let end = (end % (1u128 << 64)) as u64;
    if !iova.is_multiple_of(alignment) || !end.is_multiple_of(alignment) {
        return Err(Errno::INVAL);
    }
    if page_size == 0 {
        return Err(Errno::INVAL);
    }
    // The kernel masks with page_size - 1, also for sizes that are not powers of two.
    let mask = page_size - 1;
    if iova & mask != 0 || end & mask != 0 {
        return Err(Errno::INVAL);
    }
    Ok(())
}

fn check(iova: u64, length: u64, page_size: u64, alignment: u64) {
    let b = IovaBitmap {
        iova,
        length,
        page_size,
        data: 0,
    };
    assert_eq!(
        b.check_range(alignment),
        reference(iova, length, page_size, alignment),
        "iova {iova:#x} length {length:#x} page_size {page_size:#x} alignment {alignment}"
    );
}

#[test]
fn range_check_is_exact_at_8_bits() {
    for iova in 0u64..=255 {
        for length in 0u64..=255 {
            for page_size in 0u64..=64 {
                for alignment in [1u64, 2, 8, 64] {
                    check(iova, length, page_size, alignment);
                }
            }
        }
    }
}

#[test]
fn range_check_is_exact_at_u64_edges() {
    let edges: Vec<u64> = (0..=8u64)
        .map(|d| u64::MAX - d)
        .chain((0..=8).map(|d| (u64::MAX - 0xfff) + d))
        .chain([0, 1, 0x1000, 1 << 63])
        .collect();
    for &iova in &edges {
        for &length in &edges {
            for page_size in [0u64, 1, 2, 3, 0x1000, 0x1001, 1 << 63, u64::MAX] {
                for alignment in [1u64, 0x800, 0x1000] {
                    check(iova, length, page_size, alignment);
                }
            }
        }
    }
}
