//! The IOMMU core's page-size choice (`iommu_pgsize`) exhaustively at 8 bits and
//! at the top of the `u64` range, against a reference by enumeration in `u128`:
//! the largest size of the bitmap that fits the remaining length and the
//! alignment of `iova | pa`; when a larger size exists and `iova` and `pa` are
//! congruent modulo it, only up to the next boundary of that size.

use iommu::map::pgsize;

fn reference(bitmap: u64, iova: u64, pa: u64, size: u64) -> Option<(u64, u64)> {
    let merged = u128::from(iova | pa);
    let has = |b: u32| bitmap >> b & 1 == 1;
    let pg_lg = (0..64u32)
        .rev()
        .find(|&b| has(b) && (1u128 << b) <= u128::from(size) && merged % (1u128 << b) == 0)?;
    let pg = 1u128 << pg_lg;
    let mut len = u128::from(size);
    if let Some(next_lg) = (pg_lg + 1..64).find(|&b| has(b)) {
        let next = 1u128 << next_lg;
        if (u128::from(iova) ^ u128::from(pa)) % next == 0 {
            let offset = next - merged % next;
            if offset + next <= len {
                len = offset;
            }
        }
    }
    Some((pg as u64, (len / pg) as u64))
}

#[test]
fn pgsize_is_exact_at_8_bits() {
    for bitmap in 1u64..=255 {
        for iova in 0u64..=255 {
            for pa in [iova, iova ^ 0x10] {
                for size in 1u64..=255 {
                    let Some(want) = reference(bitmap, iova, pa, size) else {
                        continue;
                    };
                    assert_eq!(
                        pgsize(bitmap, iova, pa, size),
                        want,
                        "bitmap {bitmap:#b} iova {iova} pa {pa} size {size}"
                    );
                }
            }
        }
    }
}

#[test]
fn pgsize_is_exact_at_u64_edges() {
    let bitmaps = [
        1u64 << 12 | 1 << 21 | 1 << 30,
        1 << 11 | 1 << 20,
        1 << 63 | 1 << 12,
        u64::MAX,
        1 << 12,
    ];
    let addrs: Vec<u64> = (1..=4u64)
        .map(|k| (u64::MAX - k * (1 << 12)) + 1)
        .chain([1 << 63, (1 << 63) + (1 << 21), u64::MAX - (1 << 21) + 1, 0])
        .collect();
    for bitmap in bitmaps {
        for &iova in &addrs {
            for &pa in &addrs {
                for size in [
                    1u64 << 12,
                    2 << 12,
                    1 << 21,
                    (1 << 21) + (1 << 12),
                    1 << 30,
                    1 << 63,
                    u64::MAX,
                ] {
                    let Some(want) = reference(bitmap, iova, pa, size) else {
                        continue;
                    };
                    assert_eq!(
                        pgsize(bitmap, iova, pa, size),
                        want,
                        "bitmap {bitmap:#x} iova {iova:#x} pa {pa:#x} size {size:#x}"
                    );
                }
            }
        }
    }
}
