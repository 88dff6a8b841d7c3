//! The errno values the iommufd uAPI returns, as a newtype with named constants.
//!
//! Kernel: `include/uapi/asm-generic/errno-base.h`, `errno.h` (x86-64 values).

use core::fmt;
use core::num::NonZeroI32;

/// A positive Linux errno value, as returned (negated) by a kernel ioctl handler.
///
/// Every path reachable from the uAPI returns `Result<T, Errno>`; the errno is
/// chosen at the line that corresponds to the kernel's choice.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(NonZeroI32);

macro_rules! errnos {
    ($($name:ident = $val:literal, $doc:literal;)*) => {
        impl Errno {
            $(
                #[doc = $doc]
                pub const $name: Errno = Errno(match NonZeroI32::new($val) {
                    Some(v) => v,
                    None => panic!("errno 0"),
                });
            )*

            /// The symbolic name (`"EINVAL"`), or `None` for a value without a constant here.
            pub const fn name(self) -> Option<&'static str> {
                match self.0.get() {
                    $($val => Some(concat!("E", stringify!($name))),)*
                    _ => None,
                }
            }
        }
    };
}

errnos! {
    PERM = 1, "Operation not permitted.";
    NOENT = 2, "No such object or IOVA.";
    SRCH = 3, "No such process.";
    INTR = 4, "Interrupted system call.";
    IO = 5, "I/O error.";
    BADF = 9, "Bad file descriptor.";
    AGAIN = 11, "Try again.";
    NOMEM = 12, "Out of memory (or over the locked-memory limit).";
    ACCES = 13, "Permission denied.";
    FAULT = 14, "Bad address.";
    BUSY = 16, "Object or range busy.";
    EXIST = 17, "Already exists.";
    NODEV = 19, "No such device.";
    NOTDIR = 20, "Not a directory.";
    INVAL = 22, "Understood but invalid argument.";
    NFILE = 23, "File table overflow.";
    MFILE = 24, "Too many open files.";
    NOTTY = 25, "Unknown ioctl.";
    NOSPC = 28, "No IOVA space left.";
    SPIPE = 29, "Illegal seek (also: wrong read/write size on a fault fd).";
    RANGE = 34, "Result out of range.";
    DEADLK = 35, "Resource deadlock would occur (EDEADLOCK).";
    BADE = 52, "Invalid exchange.";
    OVERFLOW = 75, "Value too large / arithmetic overflow.";
    BADFD = 77, "File descriptor in bad state.";
    MSGSIZE = 90, "Message too long (output array too small).";
    OPNOTSUPP = 95, "Operation not supported (unknown flag, non-zero reserved field).";
    ADDRINUSE = 98, "Address already in use (reserved-range conflict).";
    TIMEDOUT = 110, "Timed out.";
    TOOBIG = 7, "Argument list too long (E2BIG: non-zero unknown tail).";
}

impl Errno {
    /// `EDEADLOCK`, which Linux defines as `EDEADLK`.
    pub const DEADLOCK: Errno = Errno::DEADLK;
    /// `E2BIG` under its C spelling.
    pub const E2BIG: Errno = Errno::TOOBIG;

    /// Builds an `Errno` from a positive raw value; `None` for zero or negative values.
    pub const fn from_raw(raw: i32) -> Option<Errno> {
        if raw <= 0 {
            return None;
        }
        match NonZeroI32::new(raw) {
            Some(v) => Some(Errno(v)),
            None => None,
        }
    }

    /// The positive raw value (`22` for `EINVAL`).
    pub const fn raw(self) -> i32 {
        self.0.get()
    }

    /// The value a kernel handler returns: the negated errno.
    pub const fn to_neg(self) -> i32 {
        -self.0.get()
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "Errno({})", self.0),
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for Errno {}

/// Shorthand for results on the uAPI path.
pub type Result<T, E = Errno> = core::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_x86_64_linux() {
        assert_eq!(Errno::NOENT.raw(), 2);
        assert_eq!(Errno::E2BIG.raw(), 7);
        assert_eq!(Errno::FAULT.raw(), 14);
        assert_eq!(Errno::INVAL.raw(), 22);
        assert_eq!(Errno::NOTTY.raw(), 25);
        assert_eq!(Errno::DEADLOCK.raw(), 35);
        assert_eq!(Errno::OVERFLOW.raw(), 75);
        assert_eq!(Errno::BADFD.raw(), 77);
        assert_eq!(Errno::MSGSIZE.raw(), 90);
        assert_eq!(Errno::OPNOTSUPP.raw(), 95);
        assert_eq!(Errno::ADDRINUSE.raw(), 98);
    }

    #[test]
    fn names_and_raw_round_trip() {
        assert_eq!(Errno::INVAL.name(), Some("EINVAL"));
        assert_eq!(Errno::from_raw(22), Some(Errno::INVAL));
        assert_eq!(Errno::from_raw(0), None);
        assert_eq!(Errno::from_raw(-1), None);
        assert_eq!(Errno::INVAL.to_neg(), -22);
        assert_eq!(
            format!("{:?}", Errno::from_raw(1000).unwrap()),
            "Errno(1000)"
        );
    }
}
