//! Descriptors the emulation keeps open for itself.
//!
//! The emulation opens real descriptors the program never asked for: a
//! `/proc/self/maps` per thread for VMA queries, the private duplicate that
//! mirrors a fault queue's readiness, an fd number reserved before its file is
//! installed. In the kernel none of them exists, so a program may close them
//! without knowing: `close_range(3, ~0U, 0)`, or a loop closing every number.
//! If it did, the emulation would later query, write to, or close whatever
//! file the program opened under the same number.
//!
//! So each such descriptor is held as an [`InternalFd`], which marks its
//! number here for as long as it is open; the preload library refuses to close
//! a marked number (`EBADF`, as the kernel answers for a number with no file)
//! and leaves marked numbers out of `close_range`. The test is one atomic load
//! for numbers below [`FAST_FDS`].

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Numbers below this are marked in a bitmap; higher ones in a list.
pub const FAST_FDS: usize = 1 << 16;

static BITMAP: [AtomicU64; FAST_FDS / 64] = [const { AtomicU64::new(0) }; FAST_FDS / 64];
/// Marked numbers of [`FAST_FDS`] and above (rare: only where the program
/// keeps that many descriptors open).
static HIGH: Mutex<Vec<RawFd>> = Mutex::new(Vec::new());

fn high() -> std::sync::MutexGuard<'static, Vec<RawFd>> {
    HIGH.lock().unwrap_or_else(|e| e.into_inner())
}

fn mark(fd: RawFd, on: bool) {
    let Ok(i) = usize::try_from(fd) else {
        return;
    };
    if i < FAST_FDS {
        let bit = 1u64 << (i % 64);
        if on {
            BITMAP[i / 64].fetch_or(bit, Ordering::Release);
        } else {
            BITMAP[i / 64].fetch_and(!bit, Ordering::Release);
        }
    } else if on {
        high().push(fd);
    } else {
        high().retain(|&f| f != fd);
    }
}

/// Whether `fd` is one of the emulation's own descriptors.
#[inline]
pub fn is_internal(fd: RawFd) -> bool {
    match usize::try_from(fd) {
        Ok(i) if i < FAST_FDS => BITMAP[i / 64].load(Ordering::Acquire) & (1 << (i % 64)) != 0,
        Ok(_) => high().contains(&fd),
        Err(_) => false,
    }
}

/// The emulation's own descriptors numbered `first..=last`, ascending.
pub fn internal_in(first: u32, last: u32) -> Vec<RawFd> {
    let mut out = Vec::new();
    let fast_last = (last as usize).min(FAST_FDS - 1);
    let mut word = first as usize / 64;
    while (first as usize) < FAST_FDS && word <= fast_last / 64 {
        let mut bits = BITMAP[word].load(Ordering::Acquire);
        while bits != 0 {
            let i = word * 64 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if (first as usize..=fast_last).contains(&i) {
                out.extend(RawFd::try_from(i).ok());
            }
        }
        word += 1;
    }
    let mut high: Vec<RawFd> = high()
        .iter()
        .copied()
        .filter(|&fd| u32::try_from(fd).is_ok_and(|f| (first..=last).contains(&f)))
        .collect();
    high.sort_unstable();
    out.extend(high);
    out
}

/// The lowest number for the emulation's private descriptors: 256 below the
/// soft `RLIMIT_NOFILE`, at most 4096 (a higher number grows the process's
/// descriptor table to it), at least 3.
pub fn private_floor() -> RawFd {
    let soft = crate::sys::rlimit_nofile();
    soft.saturating_sub(256).clamp(3, 4096) as RawFd
}

/// A descriptor the emulation opened for itself, marked for as long as it is
/// open (see the module documentation). Dropping it closes it.
#[derive(Debug)]
pub struct InternalFd(Option<File>);

impl InternalFd {
    /// Marks `fd` as the emulation's own.
    pub fn new(fd: impl Into<OwnedFd>) -> InternalFd {
        let fd = fd.into();
        mark(fd.as_raw_fd(), true);
        InternalFd(Some(File::from(fd)))
    }

    /// Marks `fd` as the emulation's own, moved to a number at or above
    /// [`private_floor`] where one is free: the emulation's private
    /// descriptors then leave the low numbers to the program, whose opens get
    /// the numbers the kernel would give them (the lowest free).
    pub fn private(fd: impl Into<OwnedFd>) -> InternalFd {
        let fd = fd.into();
        // The original is closed as `fd` drops; it was never marked.
        let fd = crate::sys::dup_at_least(fd.as_fd(), private_floor()).unwrap_or(fd);
        InternalFd::new(fd)
    }

    /// The descriptor as a file (`&File` reads and writes).
    pub fn file(&self) -> &File {
        self.0
            .as_ref()
            .expect("present until dropped or handed over")
    }

    /// Hands the descriptor over (to the program: an installed fd), unmarked.
    pub fn into_owned(mut self) -> OwnedFd {
        let file = self.0.take().expect("present until dropped or handed over");
        mark(file.as_raw_fd(), false);
        file.into()
    }
}

impl Drop for InternalFd {
    /// Unmarks, then closes: the preload library's `close` refuses marked
    /// numbers, and the emulation's own closes go through it too.
    fn drop(&mut self) {
        if let Some(fd) = self.0.take() {
            mark(fd.as_raw_fd(), false);
        }
    }
}

impl AsFd for InternalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file().as_fd()
    }
}

impl AsRawFd for InternalFd {
    fn as_raw_fd(&self) -> RawFd {
        self.file().as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eventfd() -> OwnedFd {
        crate::sys::eventfd(0, true).expect("eventfd")
    }

    #[test]
    fn marked_while_open_and_listed_in_range() {
        let a = InternalFd::new(eventfd());
        let b = InternalFd::new(eventfd());
        let (fa, fb) = (a.as_raw_fd(), b.as_raw_fd());
        assert!(is_internal(fa) && is_internal(fb));
        let lo = fa.min(fb) as u32;
        let hi = fa.max(fb) as u32;
        let listed = internal_in(lo, hi);
        assert_eq!(listed.first(), Some(&(lo as RawFd)));
        assert_eq!(listed.last(), Some(&(hi as RawFd)));
        assert!(listed.windows(2).all(|w| w[0] < w[1]));
        assert!(!internal_in(hi + 1, u32::MAX).contains(&(hi as RawFd)));
        drop(a);
        assert!(!is_internal(fa));
        let owned = b.into_owned();
        assert!(!is_internal(fb));
        assert_eq!(owned.as_raw_fd(), fb);
    }

    #[test]
    fn private_descriptors_leave_the_low_numbers_to_the_program() {
        let fd = InternalFd::private(eventfd());
        assert!(fd.as_raw_fd() >= private_floor(), "{}", fd.as_raw_fd());
        assert!(is_internal(fd.as_raw_fd()));
        assert!(private_floor() >= 3 && private_floor() <= 4096);
        // A descriptor opened now gets a low number again.
        let next = eventfd();
        assert!(next.as_raw_fd() < private_floor());
    }

    #[test]
    fn high_numbers_are_marked_in_the_list() {
        // Bookkeeping only: no real descriptor needs that number (the hard
        // RLIMIT_NOFILE may be lower).
        let n = FAST_FDS as RawFd + 7;
        mark(n, true);
        assert!(is_internal(n));
        assert!(!is_internal(n + 1));
        assert_eq!(internal_in(n as u32, u32::MAX), vec![n]);
        assert!(!internal_in(0, n as u32 - 1).contains(&n));
        mark(n, false);
        assert!(!is_internal(n));
    }
}
