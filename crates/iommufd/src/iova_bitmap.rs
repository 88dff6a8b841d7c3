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

    /// A recorder that sets bits in the user buffer; call
    /// [`BitmapWriter::finish`] when the walk is done.
    pub(crate) fn writer<'a>(&'a self, mm: &'a dyn UserMemory) -> BitmapWriter<'a> {
        let pgshift = self.page_size.trailing_zeros();
        let words = ((self.length - 1) >> pgshift) / 64 + 1;
        BitmapWriter {
            bitmap: self,
            mm,
            pgshift,
            total_bits: words.saturating_mul(64),
            win: 0,
            buf: vec![0; WINDOW_WORDS].into_boxed_slice(),
            lo: WINDOW_WORDS,
            hi: 0,
        }
    }
}

/// Words of the user bitmap gathered before one write-back (4 KiB, 32768 bits).
const WINDOW_WORDS: usize = 512;
/// Bytes per page of the user bitmap: a fault drops the bits of one such page.
const USER_PAGE: u64 = 4096;

/// Sets bits of an [`IovaBitmap`] for reported dirty ranges (`iova_bitmap_set`).
///
/// Bits are gathered a u64 at a time in a window of [`WINDOW_WORDS`] bitmap
/// words and ORed into the user buffer when the window moves and at
/// [`Self::finish`] (`iova_bitmap` likewise works on a window of pinned pages):
/// one read and one write of the touched words, or only the write when every
/// touched word is all ones. A user page of the bitmap that cannot be read or
/// written loses its bits, the other pages keep theirs.
pub(crate) struct BitmapWriter<'a> {
    bitmap: &'a IovaBitmap,
    mm: &'a dyn UserMemory,
    pgshift: u32,
    total_bits: u64,
    /// Bitmap word index of `buf[0]` (a multiple of [`WINDOW_WORDS`]).
    win: u64,
    /// Bits to OR into the user words `win..win + WINDOW_WORDS`.
    buf: Box<[u64]>,
    /// Touched words of `buf`: `lo..hi` (empty when `lo >= hi`).
    lo: usize,
    hi: usize,
}

impl BitmapWriter<'_> {
    /// ORs `val` into bitmap word `word` (`word < total_bits / 64`).
    #[inline]
    fn or_word(&mut self, word: u64, val: u64) {
        if word.wrapping_sub(self.win) >= WINDOW_WORDS as u64 {
            self.flush();
            self.win = word & !(WINDOW_WORDS as u64 - 1);
        }
        let i = (word - self.win) as usize;
        self.buf[i] |= val;
        self.lo = self.lo.min(i);
        self.hi = self.hi.max(i + 1);
    }

    /// Sets bits `first..=last` (`last < total_bits`): the partial end words
    /// one by one, whole words in between as fills of the window.
    fn set_bits(&mut self, first: u64, last: u64) {
        let (w0, w1) = (first / 64, last / 64);
        let head = u64::MAX << (first % 64);
        let tail = u64::MAX >> (63 - last % 64);
        if w0 == w1 {
            self.or_word(w0, head & tail);
            return;
        }
        self.or_word(w0, head);
        let mut w = w0 + 1;
        while w < w1 {
            self.or_word(w, u64::MAX);
            // `w` is in the window now: fill the rest of it at once.
            let i = (w - self.win) as usize;
            let n = ((w1 - w) as usize).min(WINDOW_WORDS - i);
            self.buf[i..i + n].fill(u64::MAX);
            self.hi = self.hi.max(i + n);
            w += n as u64;
        }
        self.or_word(w1, tail);
    }

    /// Writes the window's touched words back into the user buffer.
    fn flush(&mut self) {
        if self.lo >= self.hi {
            return;
        }
        let (lo, hi) = (self.lo, self.hi);
        self.lo = WINDOW_WORDS;
        self.hi = 0;
        let uptr = self.bitmap.data.wrapping_add((self.win + lo as u64) * 8);
        let len = (hi - lo) * 8;
        let full = self.buf[lo..hi].iter().fold(u64::MAX, |a, &w| a & w) == u64::MAX;
        if !self.or_into_user(uptr, lo * 8, len, full) {
            // Some page faults: retry page by page so the others keep their bits.
            let mut off = 0usize;
            while off < len {
                let at = uptr.wrapping_add(off as u64);
                let n = ((USER_PAGE - at % USER_PAGE) as usize).min(len - off);
                self.or_into_user(at, lo * 8 + off, n, full);
                off += n;
            }
        }
        self.buf[lo..hi].fill(0);
    }

    /// ORs `len` bytes of the window from byte `byte` on into user memory at
    /// `uptr` (`full`: they are all ones, so the user bytes need not be read);
    /// false on a fault.
    fn or_into_user(&self, uptr: u64, byte: usize, len: usize, full: bool) -> bool {
        let bytes: &[u8] = zerocopy::IntoBytes::as_bytes(&self.buf[..]);
        let src = &bytes[byte..byte + len];
        if full {
            return self.mm.write(uptr, src).is_ok();
        }
        let mut cur = [0u8; WINDOW_WORDS * 8];
        let cur = &mut cur[..len];
        if self.mm.read(uptr, cur).is_err() {
            return false;
        }
        for (c, s) in cur.iter_mut().zip(src) {
            *c |= *s;
        }
        self.mm.write(uptr, cur).is_ok()
    }

    /// Writes the last gathered bits into the user buffer.
    pub(crate) fn finish(mut self) {
        self.flush();
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

    /// IO pages of the bitmap's page size: shifted into (at most) two bitmap
    /// words; other sizes go through [`Self::record`].
    fn record_bits(&mut self, iova: u64, page_lg2: u32, mut bits: u64) {
        if page_lg2 != self.pgshift || page_lg2 >= 58 {
            while bits != 0 {
                let i = u64::from(bits.trailing_zeros());
                self.record(iova + (i << page_lg2), 1 << page_lg2);
                bits &= bits - 1;
            }
            return;
        }
        let base = self.bitmap.iova;
        let bit = if iova >= base {
            (iova - base) >> page_lg2
        } else {
            let skip = (base - iova) >> page_lg2;
            if skip >= 64 {
                return;
            }
            bits >>= skip;
            0
        };
        if bits == 0 || bit >= self.total_bits {
            return;
        }
        // Bits past the bitmap's last word are dropped, as `record` clips them.
        let room = self.total_bits - bit;
        if room < 64 {
            bits &= (1u64 << room) - 1;
        }
        let (w, s) = (bit / 64, bit % 64);
        let lo = bits << s;
        if lo != 0 {
            self.or_word(w, lo);
        }
        if s != 0 {
            let hi = bits >> (64 - s);
            if hi != 0 {
                self.or_word(w + 1, hi);
            }
        }
    }
}

#[cfg(test)]
#[path = "iova_bitmap_overflow_tests.rs"]
mod overflow_tests;

#[cfg(test)]
mod writer_tests {
    use std::sync::Mutex;

    use iommu::DirtyRecorder;
    use proptest::prelude::*;
    use uapi::Errno;

    use super::{IovaBitmap, USER_PAGE};
    use crate::mm::{AccountMode, Cap, PhysRun, UserMemory};

    /// User memory of `len` bytes at `BASE_VA`; one page may refuse writes.
    struct Buf {
        bytes: Mutex<Vec<u8>>,
        bad_page: Option<u64>,
    }

    const BASE_VA: u64 = 0x10_0000;

    impl Buf {
        fn range(&self, va: u64, len: usize) -> Result<std::ops::Range<usize>, Errno> {
            let n = self.bytes.lock().unwrap().len() as u64;
            let off = va.checked_sub(BASE_VA).ok_or(Errno::FAULT)?;
            if off + len as u64 > n {
                return Err(Errno::FAULT);
            }
            Ok(off as usize..off as usize + len)
        }
    }

    impl UserMemory for Buf {
        fn read(&self, va: u64, dst: &mut [u8]) -> Result<(), Errno> {
            let r = self.range(va, dst.len())?;
            dst.copy_from_slice(&self.bytes.lock().unwrap()[r]);
            Ok(())
        }
        fn write(&self, va: u64, src: &[u8]) -> Result<(), Errno> {
            let r = self.range(va, src.len())?;
            if let Some(p) = self.bad_page {
                let (first, last) = (va / USER_PAGE, (va + src.len() as u64 - 1) / USER_PAGE);
                if (first..=last).contains(&p) {
                    return Err(Errno::FAULT);
                }
            }
            self.bytes.lock().unwrap()[r].copy_from_slice(src);
            Ok(())
        }
        fn pin(&self, _: u64, _: u64, _: bool, _: &mut Vec<PhysRun>) -> Result<(), Errno> {
            unimplemented!()
        }
        fn unpin(&self, _: u64, _: u64) {}
        fn read_phys(&self, _: u64, _: &mut [u8]) -> Result<(), Errno> {
            unimplemented!()
        }
        fn write_phys(&self, _: u64, _: &[u8]) -> Result<(), Errno> {
            unimplemented!()
        }
        fn resolve(&self, _: u64) -> Result<u64, Errno> {
            unimplemented!()
        }
        fn pin_count(&self, _: u64) -> Result<Option<u32>, Errno> {
            unimplemented!()
        }
        fn account(&self, _: AccountMode, _: u64, _: bool) -> Result<(), Errno> {
            unimplemented!()
        }
        fn capable(&self, _: Cap) -> bool {
            false
        }
    }

    /// The bits one `record(iova, len)` sets, bit by bit (the old writer).
    fn reference_record(bm: &IovaBitmap, out: &mut [u8], iova: u64, len: u64) {
        let shift = bm.page_size.trailing_zeros();
        let total = (((bm.length - 1) >> shift) / 64 + 1) * 64;
        let last_iova = iova + len - 1;
        if len == 0 || last_iova < bm.iova {
            return;
        }
        let first = (iova.max(bm.iova) - bm.iova) >> shift;
        let last = ((last_iova - bm.iova) >> shift).min(total - 1);
        for bit in first..=last {
            out[(bit / 8) as usize] |= 1 << (bit % 8);
        }
    }

    #[derive(Clone, Debug)]
    enum Rec {
        Range(u64, u64),
        Bits(u64, u64),
    }

    fn run(
        data_off: u64,
        base_pages: u64,
        pages: u64,
        page_lg2: u32,
        granule_lg2: u32,
        recs: &[Rec],
        bad_page: Option<u64>,
    ) {
        let words = (pages - 1) / 64 + 1;
        let len = (data_off + words * 8).div_ceil(USER_PAGE) * USER_PAGE + USER_PAGE;
        let init: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8 & 0x11).collect();
        let mem = Buf {
            bytes: Mutex::new(init.clone()),
            bad_page,
        };
        let bm = IovaBitmap {
            iova: base_pages << page_lg2,
            length: pages << page_lg2,
            page_size: 1 << page_lg2,
            data: BASE_VA + data_off,
        };
        let mut want = init.clone();
        let mut w = bm.writer(&mem);
        for r in recs {
            match *r {
                Rec::Range(iova, l) => {
                    w.record(iova, l);
                    reference_record(&bm, &mut want[data_off as usize..], iova, l);
                }
                Rec::Bits(iova, bits) => {
                    let iova = iova & !((64u64 << granule_lg2) - 1);
                    w.record_bits(iova, granule_lg2, bits);
                    for i in 0..64 {
                        if bits & (1 << i) != 0 {
                            let at = iova + (i << granule_lg2);
                            reference_record(
                                &bm,
                                &mut want[data_off as usize..],
                                at,
                                1 << granule_lg2,
                            );
                        }
                    }
                }
            }
        }
        w.finish();
        if let Some(p) = bad_page {
            // The faulting page keeps its old bytes.
            for va in p * USER_PAGE..(p + 1) * USER_PAGE {
                if let Some(i) = va.checked_sub(BASE_VA).filter(|&i| i < len) {
                    want[i as usize] = init[i as usize];
                }
            }
        }
        let got = mem.bytes.lock().unwrap();
        if let Some(i) = (0..want.len()).find(|&i| got[i] != want[i]) {
            panic!(
                "byte {i} (bitmap byte {}): got {:#x}, want {:#x}",
                i as i64 - data_off as i64,
                got[i],
                want[i]
            );
        }
    }

    #[test]
    fn word_records_straddle_unaligned_bitmaps_and_windows() {
        // Base not a multiple of 64 pages, bitmap not 8-byte aligned, more
        // than one window, all ones and mixed words.
        let recs: Vec<Rec> = (0..2000u64)
            .map(|k| {
                Rec::Bits(
                    (5 + k * 64) << 12,
                    if k % 3 == 0 {
                        !0
                    } else {
                        0x8000_0000_0000_0001
                    },
                )
            })
            .chain([Rec::Range(0, 1 << 30), Rec::Range(3 << 12, 1 << 12)])
            .collect();
        run(3, 5, 100_000, 12, 12, &recs, None);
        run(0, 64, 100_000, 12, 12, &recs, None);
    }

    #[test]
    fn a_faulting_bitmap_page_loses_only_its_bits() {
        let recs = [Rec::Range(0, 1 << 32)];
        run(8, 0, 200_000, 12, 12, &recs, Some(BASE_VA / USER_PAGE + 2));
    }

    proptest! {
        #[test]
        fn writer_sets_the_bits_of_the_old_per_range_writer(
            data_off in 0u64..16,
            base_pages in 0u64..200,
            pages in 1u64..70_000,
            (page_lg2, granule_lg2) in prop_oneof![Just((12u32, 12u32)), Just((12, 11)), Just((11, 12)), Just((13, 12))],
            recs in proptest::collection::vec(
                prop_oneof![
                    (0u64..(80_000u64 << 12), 1u64..(1 << 24)).prop_map(|(a, l)| Rec::Range(a, l)),
                    (0u64..(80_000u64 << 12), any::<u64>()).prop_map(|(a, b)| Rec::Bits(a, b | 1)),
                ],
                0..40,
            ),
        ) {
            run(data_off, base_pages, pages, page_lg2, granule_lg2, &recs, None);
        }
    }
}
