//! Plain memory copies used as floors by the benchmarks (no fault handling:
//! both sides are Rust slices).

#![allow(unsafe_code)]

/// Copies `src` into `dst` (equal lengths) with non-temporal (streaming)
/// stores for the whole cache lines (64-byte aligned blocks) of `dst`, then an `sfence`: the
/// textbook NT copy, independent of the fault-safe routines of
/// [`crate::uaccess`]. Elsewhere than x86-64, a plain copy.
///
/// # Panics
/// If the lengths differ.
pub fn copy_nt(dst: &mut [u8], src: &[u8]) {
    assert_eq!(dst.len(), src.len(), "copy_nt: lengths differ");
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_sfence, _mm_stream_si128};
        let head = dst.as_ptr().align_offset(64).min(dst.len());
        dst[..head].copy_from_slice(&src[..head]);
        let blocks = (dst.len() - head) / 64;
        let d = dst[head..].as_mut_ptr();
        let s = src[head..].as_ptr();
        for i in 0..blocks {
            // SAFETY: block `i` (`i < blocks`) lies inside both slices; `d + 64 i`
            // is 64-byte aligned (`head` aligns `dst`), as `_mm_stream_si128`
            // needs, the loads are unaligned ones; SSE2 is x86-64 baseline.
            unsafe {
                let s = s.add(64 * i).cast::<__m128i>();
                let d = d.add(64 * i).cast::<__m128i>();
                let a = _mm_loadu_si128(s);
                let b = _mm_loadu_si128(s.add(1));
                let c = _mm_loadu_si128(s.add(2));
                let e = _mm_loadu_si128(s.add(3));
                _mm_stream_si128(d, a);
                _mm_stream_si128(d.add(1), b);
                _mm_stream_si128(d.add(2), c);
                _mm_stream_si128(d.add(3), e);
            }
        }
        let tail = head + 64 * blocks;
        // SAFETY: `sfence` has no memory-safety preconditions; it orders the
        // streaming stores above before the ordinary ones below.
        unsafe { _mm_sfence() };
        dst[tail..].copy_from_slice(&src[tail..]);
    }
    #[cfg(not(target_arch = "x86_64"))]
    dst.copy_from_slice(src);
}

#[cfg(test)]
mod tests {
    #[test]
    fn copy_nt_copies_every_length_and_alignment() {
        let src: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        for off in 0..17 {
            for len in [0, 1, 15, 16, 63, 64, 65, 200, 500] {
                let mut dst = vec![0u8; 600];
                super::copy_nt(&mut dst[off..off + len], &src[3..3 + len]);
                assert_eq!(&dst[off..off + len], &src[3..3 + len]);
                assert!(dst[..off].iter().all(|&b| b == 0));
                assert!(dst[off + len..].iter().all(|&b| b == 0));
            }
        }
    }
}
