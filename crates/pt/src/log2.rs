//! Power-of-two helpers with the units in their names (generic_pt `pt_log2.h`).
//!
//! Kernel: `drivers/iommu/generic_pt/pt_log2.h`. Every helper is total: shifts of
//! 64 or more saturate instead of overflowing, so they are safe at the `u64` edges.

/// `2^lg2`, or `None` when it does not fit in a `u64`.
pub const fn to_int(lg2: u32) -> Option<u64> {
    if lg2 >= 64 {
        None
    } else {
        Some(1u64 << lg2)
    }
}

/// A mask of the low `lg2` bits (`2^lg2 - 1`); all ones for `lg2 >= 64`.
pub const fn low_mask(lg2: u32) -> u64 {
    if lg2 >= 64 {
        u64::MAX
    } else {
        (1u64 << lg2) - 1
    }
}

/// Whether `value` is a multiple of `2^lg2`.
pub const fn is_aligned(value: u64, lg2: u32) -> bool {
    value & low_mask(lg2) == 0
}

/// `value` rounded down to a multiple of `2^lg2`.
pub const fn align_down(value: u64, lg2: u32) -> u64 {
    value & !low_mask(lg2)
}

/// The last address of the `2^lg2`-sized, `2^lg2`-aligned block containing `value`.
pub const fn block_last(value: u64, lg2: u32) -> u64 {
    value | low_mask(lg2)
}

/// The number of trailing zero bits (the alignment) of `value`; 64 for zero.
pub const fn ffs_lg2(value: u64) -> u32 {
    value.trailing_zeros()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_saturate_at_u64_edges() {
        assert_eq!(to_int(63), Some(1 << 63));
        assert_eq!(to_int(64), None);
        assert_eq!(low_mask(0), 0);
        assert_eq!(low_mask(64), u64::MAX);
        assert_eq!(low_mask(70), u64::MAX);
        assert!(is_aligned(0, 64));
        assert!(!is_aligned(u64::MAX, 1));
        assert_eq!(align_down(u64::MAX, 12), 0xffff_ffff_ffff_f000);
        assert_eq!(block_last(0x1000, 12), 0x1fff);
        assert_eq!(block_last(u64::MAX, 64), u64::MAX);
        assert_eq!(ffs_lg2(0), 64);
        assert_eq!(ffs_lg2(0x20_0000), 21);
    }

    #[test]
    fn helpers_agree_with_arithmetic_at_8_bits() {
        for v in 0u64..=255 {
            for lg2 in 0..=8 {
                let size = 1u64 << lg2;
                assert_eq!(is_aligned(v, lg2), v % size == 0);
                assert_eq!(align_down(v, lg2), v / size * size);
                assert_eq!(block_last(v, lg2), v / size * size + size - 1);
            }
        }
    }
}
