//! Ioctl command numbers of `/dev/iommu` and of the VFIO container ioctls it also serves.
//!
//! Every iommufd ioctl is encoded with `_IO()`: no direction and no size bits, so a command
//! number is just `(IOMMUFD_TYPE << 8) | nr`. The VFIO type1 container ioctls use the same
//! type byte (`';'`) with `nr` from 100 upwards, which is why the dispatcher can hand every
//! number outside the iommufd table to the VFIO compatibility layer.
//!
//! Kernel: `include/uapi/linux/iommufd.h`, `include/uapi/linux/vfio.h`,
//! `drivers/iommu/iommufd/iommufd_test.h` (v6.12).

/// The ioctl type byte shared by iommufd and VFIO (`';'`, 0x3b).
pub const IOMMUFD_TYPE: u8 = b';';

/// The VFIO ioctl type byte; identical to [`IOMMUFD_TYPE`].
pub const VFIO_TYPE: u8 = b';';

/// The first VFIO command `nr`; VFIO commands are `VFIO_BASE + k`.
pub const VFIO_BASE: u8 = 100;

// Direction-less ioctls put the type byte above the 8 `nr` bits; the direction (bits 30..32)
// and size (bits 16..30) fields are zero.
const IOC_TYPESHIFT: u32 = 8;
const IOC_NRSHIFT: u32 = 0;

/// The kernel's `_IO(ty, nr)`: a command number without direction or size bits.
pub const fn io(ty: u8, nr: u8) -> u32 {
    ((ty as u32) << IOC_TYPESHIFT) | ((nr as u32) << IOC_NRSHIFT)
}

/// The `nr` of the first iommufd command; the dispatch table is indexed by `nr - IOMMUFD_CMD_BASE`.
pub const IOMMUFD_CMD_BASE: u8 = 0x80;
/// `nr` of [`IOMMU_DESTROY`].
pub const IOMMUFD_CMD_DESTROY: u8 = IOMMUFD_CMD_BASE;
/// `nr` of [`IOMMU_IOAS_ALLOC`].
pub const IOMMUFD_CMD_IOAS_ALLOC: u8 = 0x81;
/// `nr` of [`IOMMU_IOAS_ALLOW_IOVAS`].
pub const IOMMUFD_CMD_IOAS_ALLOW_IOVAS: u8 = 0x82;
/// `nr` of [`IOMMU_IOAS_COPY`].
pub const IOMMUFD_CMD_IOAS_COPY: u8 = 0x83;
/// `nr` of [`IOMMU_IOAS_IOVA_RANGES`].
pub const IOMMUFD_CMD_IOAS_IOVA_RANGES: u8 = 0x84;
/// `nr` of [`IOMMU_IOAS_MAP`].
pub const IOMMUFD_CMD_IOAS_MAP: u8 = 0x85;
/// `nr` of [`IOMMU_IOAS_UNMAP`].
pub const IOMMUFD_CMD_IOAS_UNMAP: u8 = 0x86;
/// `nr` of [`IOMMU_OPTION`].
pub const IOMMUFD_CMD_OPTION: u8 = 0x87;
/// `nr` of [`IOMMU_VFIO_IOAS`].
pub const IOMMUFD_CMD_VFIO_IOAS: u8 = 0x88;
/// `nr` of [`IOMMU_HWPT_ALLOC`].
pub const IOMMUFD_CMD_HWPT_ALLOC: u8 = 0x89;
/// `nr` of [`IOMMU_GET_HW_INFO`].
pub const IOMMUFD_CMD_GET_HW_INFO: u8 = 0x8a;
/// `nr` of [`IOMMU_HWPT_SET_DIRTY_TRACKING`].
pub const IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING: u8 = 0x8b;
/// `nr` of [`IOMMU_HWPT_GET_DIRTY_BITMAP`].
pub const IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP: u8 = 0x8c;
/// `nr` of [`IOMMU_HWPT_INVALIDATE`].
pub const IOMMUFD_CMD_HWPT_INVALIDATE: u8 = 0x8d;
/// `nr` of [`IOMMU_FAULT_QUEUE_ALLOC`].
pub const IOMMUFD_CMD_FAULT_QUEUE_ALLOC: u8 = 0x8e;
/// `nr` of [`IOMMU_TEST_CMD`]: `IOMMUFD_CMD_BASE + 32`, leaving a hole of 17 unused numbers.
pub const IOMMUFD_CMD_TEST: u8 = IOMMUFD_CMD_BASE + 32;

/// Destroy any destroyable object by ID ([`crate::Destroy`]).
pub const IOMMU_DESTROY: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_DESTROY);
/// Allocate an IO address space ([`crate::IoasAlloc`]).
pub const IOMMU_IOAS_ALLOC: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOC);
/// Replace the allowed IOVA ranges of an IOAS ([`crate::IoasAllowIovas`]).
pub const IOMMU_IOAS_ALLOW_IOVAS: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOW_IOVAS);
/// Copy an existing mapping from one IOAS into another ([`crate::IoasCopy`]).
pub const IOMMU_IOAS_COPY: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_COPY);
/// Report the usable IOVA ranges of an IOAS ([`crate::IoasIovaRanges`]).
pub const IOMMU_IOAS_IOVA_RANGES: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_IOVA_RANGES);
/// Map user memory into an IOAS ([`crate::IoasMap`]).
pub const IOMMU_IOAS_MAP: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_MAP);
/// Unmap an IOVA range of an IOAS ([`crate::IoasUnmap`]).
pub const IOMMU_IOAS_UNMAP: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_UNMAP);
/// Get or set a context or IOAS option ([`crate::IommuOption`]).
pub const IOMMU_OPTION: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_OPTION);
/// Get, set or clear the IOAS used by the VFIO compatibility ioctls ([`crate::VfioIoas`]).
pub const IOMMU_VFIO_IOAS: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_VFIO_IOAS);
/// Allocate a hardware page table ([`crate::HwptAlloc`]).
pub const IOMMU_HWPT_ALLOC: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_ALLOC);
/// Query the IOMMU hardware behind a device ([`crate::HwInfo`]).
pub const IOMMU_GET_HW_INFO: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_GET_HW_INFO);
/// Enable or disable dirty tracking on a paging HWPT ([`crate::HwptSetDirtyTracking`]).
pub const IOMMU_HWPT_SET_DIRTY_TRACKING: u32 =
    io(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING);
/// Read (and by default clear) the dirty bitmap of a paging HWPT ([`crate::HwptGetDirtyBitmap`]).
pub const IOMMU_HWPT_GET_DIRTY_BITMAP: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP);
/// Invalidate caches of a nested HWPT ([`crate::HwptInvalidate`]).
pub const IOMMU_HWPT_INVALIDATE: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_INVALIDATE);
/// Allocate a fault queue object and its fd ([`crate::FaultAlloc`]).
pub const IOMMU_FAULT_QUEUE_ALLOC: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_FAULT_QUEUE_ALLOC);
/// The selftest multiplexer, only present in test kernels ([`crate::TestCmd`]).
pub const IOMMU_TEST_CMD: u32 = io(IOMMUFD_TYPE, IOMMUFD_CMD_TEST);

/// VFIO: return `VFIO_API_VERSION` as the ioctl result.
pub const VFIO_GET_API_VERSION: u32 = io(VFIO_TYPE, VFIO_BASE);
/// VFIO: report whether an extension (passed by value) is supported.
pub const VFIO_CHECK_EXTENSION: u32 = io(VFIO_TYPE, VFIO_BASE + 1);
/// VFIO: select the IOMMU model (passed by value) of the container.
pub const VFIO_SET_IOMMU: u32 = io(VFIO_TYPE, VFIO_BASE + 2);
/// VFIO: query page sizes and capabilities ([`crate::VfioIommuType1Info`]).
pub const VFIO_IOMMU_GET_INFO: u32 = io(VFIO_TYPE, VFIO_BASE + 12);
/// VFIO: map user memory at a fixed IOVA ([`crate::VfioIommuType1DmaMap`]).
pub const VFIO_IOMMU_MAP_DMA: u32 = io(VFIO_TYPE, VFIO_BASE + 13);
/// VFIO: unmap an IOVA range ([`crate::VfioIommuType1DmaUnmap`]).
pub const VFIO_IOMMU_UNMAP_DMA: u32 = io(VFIO_TYPE, VFIO_BASE + 14);
/// VFIO: dirty page tracking of the type1 backend; iommufd does not implement it (ENOTTY).
pub const VFIO_IOMMU_DIRTY_PAGES: u32 = io(VFIO_TYPE, VFIO_BASE + 17);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_matches_kernel_encoding() {
        assert_eq!(io(b';', 0x80), 0x3b80);
        assert_eq!(io(0xff, 0xff), 0xffff);
        assert_eq!(io(0, 1), 1);
    }

    #[test]
    fn every_ioctl_number_is_pinned() {
        let pinned: [(u32, u32); 23] = [
            (IOMMU_DESTROY, 0x3b80),
            (IOMMU_IOAS_ALLOC, 0x3b81),
            (IOMMU_IOAS_ALLOW_IOVAS, 0x3b82),
            (IOMMU_IOAS_COPY, 0x3b83),
            (IOMMU_IOAS_IOVA_RANGES, 0x3b84),
            (IOMMU_IOAS_MAP, 0x3b85),
            (IOMMU_IOAS_UNMAP, 0x3b86),
            (IOMMU_OPTION, 0x3b87),
            (IOMMU_VFIO_IOAS, 0x3b88),
            (IOMMU_HWPT_ALLOC, 0x3b89),
            (IOMMU_GET_HW_INFO, 0x3b8a),
            (IOMMU_HWPT_SET_DIRTY_TRACKING, 0x3b8b),
            (IOMMU_HWPT_GET_DIRTY_BITMAP, 0x3b8c),
            (IOMMU_HWPT_INVALIDATE, 0x3b8d),
            (IOMMU_FAULT_QUEUE_ALLOC, 0x3b8e),
            (IOMMU_TEST_CMD, 0x3ba0),
            (VFIO_GET_API_VERSION, 0x3b64),
            (VFIO_CHECK_EXTENSION, 0x3b65),
            (VFIO_SET_IOMMU, 0x3b66),
            (VFIO_IOMMU_GET_INFO, 0x3b70),
            (VFIO_IOMMU_MAP_DMA, 0x3b71),
            (VFIO_IOMMU_UNMAP_DMA, 0x3b72),
            (VFIO_IOMMU_DIRTY_PAGES, 0x3b75),
        ];
        for (i, (got, want)) in pinned.into_iter().enumerate() {
            assert_eq!(got, want, "entry {i}: {got:#x} != {want:#x}");
        }
    }

    #[test]
    fn command_nrs_are_consecutive_from_base() {
        let nrs = [
            IOMMUFD_CMD_DESTROY,
            IOMMUFD_CMD_IOAS_ALLOC,
            IOMMUFD_CMD_IOAS_ALLOW_IOVAS,
            IOMMUFD_CMD_IOAS_COPY,
            IOMMUFD_CMD_IOAS_IOVA_RANGES,
            IOMMUFD_CMD_IOAS_MAP,
            IOMMUFD_CMD_IOAS_UNMAP,
            IOMMUFD_CMD_OPTION,
            IOMMUFD_CMD_VFIO_IOAS,
            IOMMUFD_CMD_HWPT_ALLOC,
            IOMMUFD_CMD_GET_HW_INFO,
            IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING,
            IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP,
            IOMMUFD_CMD_HWPT_INVALIDATE,
            IOMMUFD_CMD_FAULT_QUEUE_ALLOC,
        ];
        for (i, nr) in nrs.into_iter().enumerate() {
            assert_eq!(usize::from(nr), 0x80 + i);
        }
        assert_eq!(IOMMUFD_CMD_TEST, 0xa0);
    }
}
