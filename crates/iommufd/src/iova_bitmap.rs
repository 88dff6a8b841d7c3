//! The user dirty bitmap of `IOMMU_HWPT_GET_DIRTY_BITMAP`.
//!
//! Bit `k` of the user buffer (byte `k / 8`, bit `k % 8`: little-endian u64
//! words) stands for IOVA `iova + (k << pgshift)`, where `pgshift` is the index of
//! the lowest set bit of `page_size`. Bits are only ever set; a range the driver
//! reports sets every bit it touches, up to the end of the last u64 word the
//! bitmap's length needs. Faults writing the user buffer silently drop bits, as the
//! kernel's pinning failures do.
//!
//! Kernel: `drivers/iommu/iommufd/iova_bitmap.c`, `io_pagetable.c`
//! (`iommufd_check_iova_range`), v6.12.

use iommu::DirtyRecorder;
use uapi::Errno;

use crate::mm::UserMemory;

/// The caller's description of the bitmap.
pub(crate) struct IovaBitmap {
    pub(crate) iova: u64,
    pub(crate) length: u64,
    pub(crate) page_size: u64,
    /// User address of the bitmap.
    pub(crate) data: u64,
}

impl IovaBitmap {
    /// `iommufd_check_iova_range`.
    ///
    /// # Errors
    /// `EINVAL` for zero length, zero page size or misalignment to the IOAS
    /// alignment or to `page_size`; `EOVERFLOW` if the range wraps.
    pub(crate) fn check_range(&self, iova_alignment: u64) -> Result<(), Errno> {
        if self.length == 0 {
            return Err(Errno::INVAL);
        }
        let last = self
            .iova
            .checked_add(self.length - 1)
            .ok_or(Errno::OVERFLOW)?;
        let end = last.wrapping_add(1);
        if self.iova & (iova_alignment - 1) != 0 || end & (iova_alignment - 1) != 0 {
            return Err(Errno::INVAL);
        }
        if self.page_size == 0 {
            return Err(Errno::INVAL);
        }
        let mask = self.page_size - 1;
        if self.iova & mask != 0 || end & mask != 0 {
            return Err(Errno::INVAL);
        }
        Ok(())
    }

    /// A recorder that sets bits in the user buffer.
    pub(crate) fn writer<'a>(&'a self, mm: &'a dyn UserMemory) -> BitmapWriter<'a> {
        let pgshift = self.page_size.trailing_zeros();
        let words = ((self.length - 1) >> pgshift) / 64 + 1;
        BitmapWriter {
            bitmap: self,
            mm,
            pgshift,
            total_bits: words.saturating_mul(64),
        }
    }
}

/// Sets bits of an [`IovaBitmap`] for reported dirty ranges (`iova_bitmap_set`).
pub(crate) struct BitmapWriter<'a> {
    bitmap: &'a IovaBitmap,
    mm: &'a dyn UserMemory,
    pgshift: u32,
    total_bits: u64,
}

impl BitmapWriter<'_> {
    fn set_bits(&self, first: u64, last: u64) {
        let mut bit = first;
        let mut buf = [0u8; 256];
        while bit <= last {
            let byte = bit / 8;
            let last_byte = (last / 8).min(byte + buf.len() as u64 - 1);
            let n = (last_byte - byte + 1) as usize;
            let uptr = self.bitmap.data.wrapping_add(byte);
            if self.mm.read(uptr, &mut buf[..n]).is_err() {
                return;
            }
            for (i, b) in buf[..n].iter_mut().enumerate() {
                let base = (byte + i as u64) * 8;
                for k in 0..8 {
                    let abs = base + k;
                    if abs >= bit && abs <= last {
                        *b |= 1 << k;
                    }
                }
            }
            if self.mm.write(uptr, &buf[..n]).is_err() {
                return;
            }
            bit = (last_byte + 1) * 8;
        }
    }
}

impl DirtyRecorder for BitmapWriter<'_> {
    fn record(&mut self, iova: u64, len: u64) {
        if len == 0 {
            return;
        }
        let base = self.bitmap.iova;
        let Some(last_iova) = iova.checked_add(len - 1) else {
            return;
        };
        if last_iova < base {
            return;
        }
        let first = (iova.max(base) - base) >> self.pgshift;
        let last = ((last_iova - base) >> self.pgshift).min(self.total_bits - 1);
        if first > last {
            return;
        }
        self.set_bits(first, last);
    }
}

#[cfg(test)]
#[path = "iova_bitmap_overflow_tests.rs"]
mod overflow_tests;
