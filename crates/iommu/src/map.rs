//! The IOMMU core's map and unmap: page-size selection over a driver's `map_pages`.
//!
//! `iommu_map()` splits a physically contiguous range into the largest page sizes
//! that the domain supports and that the alignment of both the IOVA and the
//! physical address allow; `iommu_unmap()` mirrors it on the IOVA alone and stops
//! at the first hole.
//!
//! One extension over the kernel: `max_pgsize` caps the page size. The kernel
//! learns physical contiguity from the PFNs themselves; in this project a run of
//! user memory can be numerically contiguous while its backing pages are not (4 KiB
//! anonymous pages), and the cap carries that fact down.
//!
//! Kernel: `drivers/iommu/iommu.c` (`iommu_pgsize`, `__iommu_map`, `__iommu_unmap`), v6.12.

use uapi::Errno;

use crate::{Domain, Prot};

/// Bits `[0, hi]` set (`GENMASK(hi, 0)`).
const fn genmask_low(hi: u32) -> u64 {
    if hi >= 63 {
        u64::MAX
    } else {
        (1u64 << (hi + 1)) - 1
    }
}

/// Chooses the page size and count for the next `map_pages`/`unmap_pages` call.
///
/// `pgsize_bitmap` must contain a size `<= size` that `iova | pa` is aligned to; the
/// callers check alignment to the smallest page size first.
pub fn pgsize(pgsize_bitmap: u64, iova: u64, pa: u64, size: u64) -> (u64, u64) {
    let addr_merge = pa | iova;
    let mut pgsizes = pgsize_bitmap & genmask_low(63 - size.leading_zeros());
    if addr_merge != 0 {
        pgsizes &= genmask_low(addr_merge.trailing_zeros());
    }
    debug_assert!(pgsizes != 0, "no page size fits");
    let idx = 63 - pgsizes.leading_zeros();
    let pgsize = 1u64 << idx;
    let mut size = size;

    let larger = pgsize_bitmap & !genmask_low(idx);
    if larger != 0 {
        let next = 1u64 << larger.trailing_zeros();
        if (iova ^ pa) & (next - 1) == 0 {
            let offset = next - (addr_merge & (next - 1));
            if let Some(end) = offset.checked_add(next) {
                if end <= size {
                    size = offset;
                }
            }
        }
    }
    (pgsize, size >> idx)
}

/// The smallest page size of a domain.
pub fn min_pgsize(domain: &dyn Domain) -> u64 {
    let bitmap = domain.pgsize_bitmap();
    if bitmap == 0 {
        0
    } else {
        1u64 << bitmap.trailing_zeros()
    }
}

/// Maps `[iova, iova + size)` to `[pa, pa + size)` (`iommu_map`), using page sizes no
/// larger than `max_pgsize`. On failure nothing stays mapped.
///
/// # Errors
/// `EINVAL` if the domain is not a paging domain or the range is not aligned to its
/// smallest page size; `ENODEV` for a domain without page sizes; the driver's errno.
pub fn map(
    domain: &dyn Domain,
    iova: u64,
    pa: u64,
    size: u64,
    prot: Prot,
    max_pgsize: u64,
) -> Result<(), Errno> {
    if !domain.domain_type().is_paging() {
        return Err(Errno::INVAL);
    }
    let min = min_pgsize(domain);
    if min == 0 {
        return Err(Errno::NODEV);
    }
    if (iova | pa | size) & (min - 1) != 0 {
        return Err(Errno::INVAL);
    }
    let bitmap = domain.pgsize_bitmap() & genmask_low(63 - max_pgsize.max(min).leading_zeros());
    let mut done = 0u64;
    while done < size {
        let (pgsize, count) = pgsize(bitmap, iova + done, pa + done, size - done);
        match domain.map_pages(iova + done, pa + done, pgsize, count, prot) {
            Ok(mapped) => done += mapped,
            Err((mapped, err)) => {
                done += mapped;
                if done != 0 {
                    unmap(domain, iova, done);
                }
                return Err(err);
            }
        }
    }
    Ok(())
}

/// Unmaps up to `size` bytes at `iova` (`iommu_unmap`), stopping at the first hole.
/// Returns the bytes unmapped (which can exceed `size` if a larger page covered it).
pub fn unmap(domain: &dyn Domain, iova: u64, size: u64) -> u64 {
    let unmapped = unmap_fast(domain, iova, size);
    domain.iotlb_sync();
    unmapped
}

/// [`unmap`] without the IOTLB sync (`iommu_unmap_fast`).
pub fn unmap_fast(domain: &dyn Domain, iova: u64, size: u64) -> u64 {
    if !domain.domain_type().is_paging() {
        return 0;
    }
    let min = min_pgsize(domain);
    if min == 0 || (iova | size) & (min - 1) != 0 {
        return 0;
    }
    let bitmap = domain.pgsize_bitmap();
    let mut unmapped = 0u64;
    while unmapped < size {
        let cur = iova.wrapping_add(unmapped);
        let (pgsize, count) = pgsize(bitmap, cur, cur, size - unmapped);
        let n = domain.unmap_pages(cur, pgsize, count);
        if n == 0 {
            break;
        }
        unmapped += n;
    }
    unmapped
}

#[cfg(test)]
mod tests {
    use super::*;

    const SZ_4K: u64 = 1 << 12;
    const SZ_2M: u64 = 1 << 21;
    const SZ_1G: u64 = 1 << 30;
    const X86: u64 = SZ_4K | SZ_2M | SZ_1G;

    #[test]
    fn pgsize_uses_largest_aligned_size() {
        assert_eq!(pgsize(X86, SZ_2M, SZ_2M, 4 * SZ_2M), (SZ_2M, 4));
        assert_eq!(pgsize(X86, 0, 0, SZ_1G), (SZ_1G, 1));
    }

    #[test]
    fn pgsize_stops_small_pages_at_next_large_boundary() {
        // 4K pages up to the 2M boundary, then the caller continues with 2M pages.
        assert_eq!(
            pgsize(X86, SZ_2M - SZ_4K, SZ_2M - SZ_4K, 3 * SZ_2M),
            (SZ_4K, 1)
        );
    }

    #[test]
    fn pgsize_ignores_larger_size_when_iova_and_pa_are_not_congruent() {
        assert_eq!(pgsize(X86, 0, SZ_4K, 4 * SZ_2M), (SZ_4K, 4 * SZ_2M / SZ_4K));
    }

    #[test]
    fn pgsize_mock_2k_granule() {
        let mock = 2048;
        assert_eq!(pgsize(mock, 0x1000000, 0x7000, 8192), (2048, 4));
        let mock_huge = 2048 | (1 << 20);
        assert_eq!(
            pgsize(mock_huge, 0x1000000, 0x200000, 2 << 20),
            (1 << 20, 2)
        );
    }
}
