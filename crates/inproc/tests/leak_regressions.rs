//! Regressions for the leaks and state corruptions the fault-injection sweep
//! (`tests/fail_nth.rs`) found; these run without the `fault-inject` feature.

mod support;

use support::{buffer, check_map, mock_domain, pins, Fd, FIXED_RW, PAGE};
use uapi::{Errno, MOCK_APERTURE_START};

/// IOAS_COPY between two IOASes with a domain each: the source and destination
/// areas share one page store, and both must be unmapped from their own domain
/// and unpinned. Area keys used to be per IOAS, so the two areas had the same key
/// in the shared store: unmapping one forgot the other's domain mapping, which
/// then survived its own unmap (DMA after unmap, pins leaked).
#[test]
fn copy_between_ioases_unmaps_both_domains() {
    let fd = Fd::open();
    let buf = buffer(16 * PAGE as usize);
    let va = buf.addr();
    let src = fd.ioas_alloc();
    let dst = fd.ioas_alloc();
    let (_, src_hwpt, _) = mock_domain(&fd, src, 0).unwrap();
    let (_, dst_hwpt, _) = mock_domain(&fd, dst, 0).unwrap();
    let base = MOCK_APERTURE_START;
    fd.map_fixed(src, va, 16 * PAGE, base).unwrap();
    fd.copy(dst, src, base, 16 * PAGE, base, FIXED_RW).unwrap();
    check_map(&fd, dst_hwpt, base, 16 * PAGE, va).unwrap();
    assert_eq!(pins(va), 1, "one pin per page store");

    fd.unmap(src, base, 16 * PAGE).unwrap();
    assert_eq!(
        check_map(&fd, src_hwpt, base, 16 * PAGE, va),
        Err(Errno::INVAL)
    );
    check_map(&fd, dst_hwpt, base, 16 * PAGE, va).unwrap();
    assert_eq!(pins(va), 1, "the destination still needs the pages");

    fd.unmap(dst, base, 16 * PAGE).unwrap();
    assert_eq!(
        check_map(&fd, dst_hwpt, base, 16 * PAGE, va),
        Err(Errno::INVAL),
        "the destination domain must not map the pages after its unmap"
    );
    assert_eq!(pins(va), 0);
}
