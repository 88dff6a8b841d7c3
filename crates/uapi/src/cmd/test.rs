//! The selftest uAPI: `IOMMU_TEST_CMD`, its per-op payloads, the mock driver's data
//! structs, and the constants the mock IOMMU and the selftests agree on.
//!
//! `struct iommu_test_cmd` carries an anonymous union of per-op structs. Here the union is
//! the opaque byte array [`TestCmd::payload`]; each union member is its own struct
//! implementing [`TestPayload`], read with [`TestCmd::payload_as`] and written with
//! [`TestCmd::set_payload`]. Offsets of member fields are relative to the union, which
//! starts at byte 16 of the command.
//!
//! Kernel: `drivers/iommu/iommufd/iommufd_test.h` (v6.12).

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

/// Test op: reserve an IOVA range in an IOAS ([`TestAddReserved`]).
pub const IOMMU_TEST_OP_ADD_RESERVED: u32 = 1;
/// Test op: create a mock device and attach it ([`TestMockDomain`]).
pub const IOMMU_TEST_OP_MOCK_DOMAIN: u32 = 2;
/// Test op: compare a mock domain's mappings with user memory ([`TestCheckMap`]).
pub const IOMMU_TEST_OP_MD_CHECK_MAP: u32 = 3;
/// Test op: check the pin count of user pages ([`TestCheckRefs`]).
pub const IOMMU_TEST_OP_MD_CHECK_REFS: u32 = 4;
/// Test op: create an in-kernel access and its fd ([`TestCreateAccess`]).
pub const IOMMU_TEST_OP_CREATE_ACCESS: u32 = 5;
/// Test op: unpin one item pinned through an access ([`TestDestroyAccessPages`]).
pub const IOMMU_TEST_OP_DESTROY_ACCESS_PAGES: u32 = 6;
/// Test op: pin pages through an access ([`TestAccessPages`]).
pub const IOMMU_TEST_OP_ACCESS_PAGES: u32 = 7;
/// Test op: read or write IOVA memory through an access ([`TestAccessRw`]).
pub const IOMMU_TEST_OP_ACCESS_RW: u32 = 8;
/// Test op: change the temporary-allocation size limit ([`TestMemoryLimit`]).
pub const IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT: u32 = 9;
/// Test op: move a mock device to another page table ([`TestMockDomainReplace`]).
pub const IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE: u32 = 10;
/// Test op: move an access to another IOAS ([`TestAccessReplaceIoas`]).
pub const IOMMU_TEST_OP_ACCESS_REPLACE_IOAS: u32 = 11;
/// Test op: like `MOCK_DOMAIN`, with device flags ([`TestMockDomainFlags`]).
pub const IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS: u32 = 12;
/// Test op: mark mock IOPTEs dirty from a bitmap ([`TestDirty`]).
pub const IOMMU_TEST_OP_DIRTY: u32 = 13;
/// Test op: check one IOTLB entry of a mock nested domain ([`TestCheckIotlb`]).
pub const IOMMU_TEST_OP_MD_CHECK_IOTLB: u32 = 14;
/// Test op: report an I/O page fault from a mock device ([`TestTriggerIopf`]).
pub const IOMMU_TEST_OP_TRIGGER_IOPF: u32 = 15;

/// First IOVA of a mock domain's aperture (16 MiB).
pub const MOCK_APERTURE_START: u64 = 1 << 24;
/// Last IOVA (inclusive) of a mock domain's aperture (2 GiB - 1).
pub const MOCK_APERTURE_LAST: u64 = (1 << 31) - 1;

/// [`TestAccessPages::flags`]: pin for writing.
pub const MOCK_FLAGS_ACCESS_WRITE: u32 = 1 << 0;
/// Access flag: `iova` encodes (area index, offset) as syzkaller produces it.
pub const MOCK_FLAGS_ACCESS_SYZ: u32 = 1 << 16;

/// [`TestAccessRw::flags`]: write to IOVA memory instead of reading it.
pub const MOCK_ACCESS_RW_WRITE: u32 = 1 << 0;
/// [`TestAccessRw::flags`]: force the page-pinning slow path.
pub const MOCK_ACCESS_RW_SLOW_PATH: u32 = 1 << 2;

/// [`TestCreateAccess::flags`]: the access pins pages (needs an unmap callback).
pub const MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES: u32 = 1 << 0;

/// [`TestMockDomainFlags::dev_flags`]: the mock device cannot track dirty IOVAs.
pub const MOCK_FLAGS_DEVICE_NO_DIRTY: u32 = 1 << 0;
/// [`TestMockDomainFlags::dev_flags`]: mock domains of this device also offer 1 MiB IOPTEs.
pub const MOCK_FLAGS_DEVICE_HUGE_IOVA: u32 = 1 << 1;
/// [`TestMockDomainFlags::dev_flags`] (**post-6.12 upstream addition**, rejected by 6.12):
/// the mock device supports PASIDs, [`MOCK_PASID_WIDTH`] bits wide.
pub const MOCK_FLAGS_DEVICE_PASID: u32 = 1 << 2;
/// PASID width in bits of a mock device created with [`MOCK_FLAGS_DEVICE_PASID`]
/// (**post-6.12 upstream addition**).
pub const MOCK_PASID_WIDTH: u32 = 20;

/// Highest valid IOTLB index of a mock nested domain.
pub const MOCK_NESTED_DOMAIN_IOTLB_ID_MAX: u32 = 3;
/// Number of IOTLB entries of a mock nested domain.
pub const MOCK_NESTED_DOMAIN_IOTLB_NUM: u32 = 4;

/// `HwInfo::out_data_type` of a mock device: the data is a [`TestHwInfo`].
pub const IOMMU_HW_INFO_TYPE_SELFTEST: u32 = 0xfeed_beef;
/// [`TestHwInfo::test_reg`] as reported by a mock device.
pub const IOMMU_HW_INFO_SELFTEST_REGVAL: u32 = 0xdead_beef;

/// `HwptAlloc::data_type` of a mock nested domain: the data is a [`HwptSelftest`].
pub const IOMMU_HWPT_DATA_SELFTEST: u32 = 0xdead;
/// The IOTLB value the selftests use when allocating a mock nested domain.
pub const IOMMU_TEST_IOTLB_DEFAULT: u32 = 0xbad_beef;

/// `HwptInvalidate::data_type` of a mock nested domain: entries are
/// [`HwptInvalidateSelftest`].
pub const IOMMU_HWPT_INVALIDATE_DATA_SELFTEST: u32 = 0xdead_beef;
/// An invalidation data type no driver supports, used to probe rejection.
pub const IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID: u32 = 0xdad_beef;

/// [`HwptInvalidateSelftest::flags`]: invalidate every IOTLB entry.
pub const IOMMU_TEST_INVALIDATE_FLAG_ALL: u32 = 1 << 0;

/// Size in bytes of the union inside [`TestCmd`] (its largest member, [`TestDirty`]).
pub const TEST_CMD_PAYLOAD_LEN: usize = 48;

/// Argument of `IOMMU_TEST_CMD` (`struct iommu_test_cmd`).
///
/// Manual edits relative to C: the anonymous union is `payload`, and the 4 bytes of tail
/// padding C leaves after `last` are the explicit field `__pad`.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct TestCmd {
    /// Size of this struct as known to the caller.
    pub size: u32,
    /// `IOMMU_TEST_OP_*`.
    pub op: u32,
    /// Object the op acts on; its kind (IOAS, HWPT, selftest object, access fd) depends on `op`.
    pub id: u32,
    /// Reserved; the kernel does not check it.
    pub __reserved: u32,
    /// The per-op union, as raw bytes; see [`TestCmd::payload_as`].
    pub payload: [u8; TEST_CMD_PAYLOAD_LEN],
    /// Unused; marks the end of the first ABI version (min size 68).
    pub last: u32,
    /// Not in C: the tail padding that makes the size 72, a multiple of the 8-byte alignment.
    pub __pad: u32,
}

assert_layout!(
    TestCmd,
    size = 72,
    align = 8,
    size = 0,
    op = 4,
    id = 8,
    __reserved = 12,
    payload = 16,
    last = 64,
    __pad = 68,
);
ioctl_cmd!(TestCmd, IOMMU_TEST_CMD, last = last, min_size = 68);

impl Default for TestCmd {
    fn default() -> Self {
        Self::new_zeroed()
    }
}

impl TestCmd {
    /// A full-size command for `P::OP` on object `id`, with `payload` in the union.
    pub fn new<P: TestPayload>(id: u32, payload: &P) -> Self {
        let mut cmd = Self {
            size: core::mem::size_of::<Self>() as u32,
            op: P::OP,
            id,
            ..Self::default()
        };
        cmd.set_payload(payload);
        cmd
    }

    /// Reads the union as member `P` (a copy of its first `size_of::<P>()` bytes).
    pub fn payload_as<P: TestPayload>(&self) -> P {
        const { assert!(core::mem::size_of::<P>() <= TEST_CMD_PAYLOAD_LEN) };
        P::read_from_prefix(&self.payload).map_or_else(|_| P::new_zeroed(), |(p, _)| p)
    }

    /// Writes member `P` into the union.
    ///
    /// Only the first `size_of::<P>()` bytes change, as a store to a C union member leaves
    /// the bytes beyond it alone: the kernel's response carries the caller's remaining
    /// input bytes back unchanged.
    pub fn set_payload<P: TestPayload>(&mut self, payload: &P) {
        const { assert!(core::mem::size_of::<P>() <= TEST_CMD_PAYLOAD_LEN) };
        let bytes = payload.as_bytes();
        if let Some(dst) = self.payload.get_mut(..bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }
}

/// A member of the [`TestCmd`] union, tied to the op that uses it.
pub trait TestPayload: FromBytes + IntoBytes + KnownLayout + Immutable {
    /// The `IOMMU_TEST_OP_*` whose payload this is.
    const OP: u32;
}

/// Declares the union members as `TestPayload` and checks that each fits in the union.
macro_rules! test_payloads {
    ($($ty:ty => $op:ident,)*) => {$(
        impl TestPayload for $ty {
            const OP: u32 = $op;
        }
        const _: () = assert!(core::mem::size_of::<$ty>() <= TEST_CMD_PAYLOAD_LEN);
    )*};
}

test_payloads! {
    TestAddReserved => IOMMU_TEST_OP_ADD_RESERVED,
    TestMockDomain => IOMMU_TEST_OP_MOCK_DOMAIN,
    TestCheckMap => IOMMU_TEST_OP_MD_CHECK_MAP,
    TestCheckRefs => IOMMU_TEST_OP_MD_CHECK_REFS,
    TestCreateAccess => IOMMU_TEST_OP_CREATE_ACCESS,
    TestDestroyAccessPages => IOMMU_TEST_OP_DESTROY_ACCESS_PAGES,
    TestAccessPages => IOMMU_TEST_OP_ACCESS_PAGES,
    TestAccessRw => IOMMU_TEST_OP_ACCESS_RW,
    TestMemoryLimit => IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT,
    TestMockDomainReplace => IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE,
    TestAccessReplaceIoas => IOMMU_TEST_OP_ACCESS_REPLACE_IOAS,
    TestMockDomainFlags => IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS,
    TestDirty => IOMMU_TEST_OP_DIRTY,
    TestCheckIotlb => IOMMU_TEST_OP_MD_CHECK_IOTLB,
    TestTriggerIopf => IOMMU_TEST_OP_TRIGGER_IOPF,
}

/// Union member `add_reserved`: reserve `[start, start + length - 1]` in IOAS `id`.
#[repr(C, align(8))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct TestAddReserved {
    /// First IOVA to reserve.
    pub start: u64,
    /// Number of bytes to reserve.
    pub length: u64,
}

assert_layout!(TestAddReserved, size = 16, align = 8, start = 0, length = 8);

/// Union member `mock_domain`: outputs of creating a mock device attached to `id`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct TestMockDomain {
    /// Output: ID of the selftest object owning the mock device.
    pub out_stdev_id: u32,
    /// Output: ID of the HWPT the device was attached to.
    pub out_hwpt_id: u32,
    /// Output: ID of the iommufd device object.
    pub out_idev_id: u32,
}

assert_layout!(
    TestMockDomain,
    size = 12,
    align = 4,
    out_stdev_id = 0,
    out_hwpt_id = 4,
    out_idev_id = 8,
);

/// Union member `mock_domain_flags`: [`TestMockDomain`] plus device flags.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct TestMockDomainFlags {
    /// Output: ID of the selftest object owning the mock device.
    pub out_stdev_id: u32,
    /// Output: ID of the HWPT the device was attached to.
    pub out_hwpt_id: u32,
    /// Output: ID of the iommufd device object.
    pub out_idev_id: u32,
    /// `MOCK_FLAGS_DEVICE_*` for the new device.
    pub dev_flags: u32,
}

assert_layout!(
    TestMockDomainFlags,
    size = 16,
    align = 4,
    out_stdev_id = 0,
    out_hwpt_id = 4,
    out_idev_id = 8,
    dev_flags = 12,
);

/// Union member `mock_domain_replace`: move the mock device of selftest object `id`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct TestMockDomainReplace {
    /// Input: IOAS or HWPT to attach to. Output: the HWPT now attached.
    pub pt_id: u32,
}

assert_layout!(TestMockDomainReplace, size = 4, align = 4, pt_id = 0);

/// Union member `check_map`: HWPT `id` must map `[iova, iova + length)` to the pages
/// currently backing `uptr`.
#[repr(C, align(8))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct TestCheckMap {
    /// First IOVA to check.
    pub iova: u64,
    /// Number of bytes to check.
    pub length: u64,
    /// User address whose pages the mapping must point at.
    pub uptr: u64,
}

assert_layout!(
    TestCheckMap,
    size = 24,
    align = 8,
    iova = 0,
    length = 8,
    uptr = 16
);

/// Union member `check_refs`: every user page in `[uptr, uptr + length)` must be pinned
/// exactly `refs` times.
///
/// Manual edit: C leaves 4 bytes of tail padding after `refs`; here they are `__pad`.
#[repr(C, align(8))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct TestCheckRefs {
    /// Number of bytes to check.
    pub length: u64,
    /// First user address to check.
    pub uptr: u64,
    /// Expected pin count of every page.
    pub refs: u32,
    /// Not in C: tail padding up to the 8-byte alignment.
    pub __pad: u32,
}

assert_layout!(
    TestCheckRefs,
    size = 24,
    align = 8,
    length = 0,
    uptr = 8,
    refs = 16,
    __pad = 20
);

/// Union member `create_access`: create an access on IOAS `id` and return its fd.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct TestCreateAccess {
    /// Output: the access fd, the handle of the other access ops.
    pub out_access_fd: u32,
    /// `MOCK_FLAGS_ACCESS_CREATE_*`.
    pub flags: u32,
}

assert_layout!(
    TestCreateAccess,
    size = 8,
    align = 4,
    out_access_fd = 0,
    flags = 4
);

/// Union member `destroy_access_pages`: unpin one item of access fd `id`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct TestDestroyAccessPages {
    /// Item returned by `ACCESS_PAGES` as `out_access_pages_id`.
    pub access_pages_id: u32,
}

assert_layout!(
    TestDestroyAccessPages,
    size = 4,
    align = 4,
    access_pages_id = 0
);

/// Union member `access_pages`: pin `[iova, iova + length)` through access fd `id`.
#[repr(C, align(8))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct TestAccessPages {
    /// `MOCK_FLAGS_ACCESS_WRITE` / `MOCK_FLAGS_ACCESS_SYZ`.
    pub flags: u32,
    /// Output: handle of the pinned item.
    pub out_access_pages_id: u32,
    /// First IOVA to pin.
    pub iova: u64,
    /// Number of bytes to pin.
    pub length: u64,
    /// If non-zero, the user address whose pages the pinned pages must be.
    pub uptr: u64,
}

assert_layout!(
    TestAccessPages,
    size = 32,
    align = 8,
    flags = 0,
    out_access_pages_id = 4,
    iova = 8,
    length = 16,
    uptr = 24,
);

/// Union member `access_rw`: copy between IOVA memory and `uptr` through access fd `id`.
///
/// Manual edit: C leaves 4 bytes of tail padding after `flags`; here they are `__pad`.
#[repr(C, align(8))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct TestAccessRw {
    /// First IOVA to access.
    pub iova: u64,
    /// Number of bytes to copy.
    pub length: u64,
    /// User buffer to copy from (write) or to (read).
    pub uptr: u64,
    /// `MOCK_ACCESS_RW_*` / `MOCK_FLAGS_ACCESS_SYZ`.
    pub flags: u32,
    /// Not in C: tail padding up to the 8-byte alignment.
    pub __pad: u32,
}

assert_layout!(
    TestAccessRw,
    size = 32,
    align = 8,
    iova = 0,
    length = 8,
    uptr = 16,
    flags = 24,
    __pad = 28,
);

/// Union member `memory_limit`: set the limit on temporary allocation sizes.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct TestMemoryLimit {
    /// New limit in bytes (at least 12).
    pub limit: u32,
}

assert_layout!(TestMemoryLimit, size = 4, align = 4, limit = 0);

/// Union member `access_replace_ioas`: move access fd `id` to another IOAS.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct TestAccessReplaceIoas {
    /// The IOAS to move to.
    pub ioas_id: u32,
}

assert_layout!(TestAccessReplaceIoas, size = 4, align = 4, ioas_id = 0);

/// Union member `dirty`: set the dirty bit of the mock IOPTEs of HWPT `id` selected by the
/// bitmap at `uptr`.
///
/// Manual edit: C leaves a 4-byte hole after `flags`; here it is `__pad`.
#[repr(C, align(8))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct TestDirty {
    /// Ignored by the kernel.
    pub flags: u32,
    /// Not in C: the hole before the 8-byte-aligned `iova`.
    pub __pad: u32,
    /// IOVA that bit 0 of the bitmap describes.
    pub iova: u64,
    /// Length of the IOVA range the bitmap covers.
    pub length: u64,
    /// Bytes of IOVA per bitmap bit.
    pub page_size: u64,
    /// User pointer to the bitmap.
    pub uptr: u64,
    /// Output: number of IOPTEs marked dirty.
    pub out_nr_dirty: u64,
}

assert_layout!(
    TestDirty,
    size = 48,
    align = 8,
    flags = 0,
    __pad = 4,
    iova = 8,
    length = 16,
    page_size = 24,
    uptr = 32,
    out_nr_dirty = 40,
);

/// Union member `check_iotlb`: IOTLB entry `id` of nested HWPT `TestCmd::id` must equal `iotlb`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct TestCheckIotlb {
    /// IOTLB index (at most `MOCK_NESTED_DOMAIN_IOTLB_ID_MAX`).
    pub id: u32,
    /// Expected value.
    pub iotlb: u32,
}

assert_layout!(TestCheckIotlb, size = 8, align = 4, id = 0, iotlb = 4);

/// Union member `trigger_iopf`: report an I/O page fault from mock device `dev_id`.
#[repr(C, align(8))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct TestTriggerIopf {
    /// iommufd device object ID of the mock device.
    pub dev_id: u32,
    /// PASID of the fault; non-zero sets `IOMMU_PGFAULT_FLAGS_PASID_VALID`.
    pub pasid: u32,
    /// Page request group index.
    pub grpid: u32,
    /// `IOMMU_PGFAULT_PERM_*`.
    pub perm: u32,
    /// Faulting address.
    pub addr: u64,
}

assert_layout!(
    TestTriggerIopf,
    size = 24,
    align = 8,
    dev_id = 0,
    pasid = 4,
    grpid = 8,
    perm = 12,
    addr = 16,
);

/// Driver data of a mock device's `IOMMU_GET_HW_INFO` (`struct iommu_test_hw_info`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct TestHwInfo {
    /// Zero.
    pub flags: u32,
    /// `IOMMU_HW_INFO_SELFTEST_REGVAL`.
    pub test_reg: u32,
}

assert_layout!(TestHwInfo, size = 8, align = 4, flags = 0, test_reg = 4);

/// Driver data of a mock nested HWPT allocation (`struct iommu_hwpt_selftest`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct HwptSelftest {
    /// Initial value of every IOTLB entry of the nested domain.
    pub iotlb: u32,
}

assert_layout!(HwptSelftest, size = 4, align = 4, iotlb = 0);

/// One invalidation request for a mock nested HWPT (`struct iommu_hwpt_invalidate_selftest`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct HwptInvalidateSelftest {
    /// `IOMMU_TEST_INVALIDATE_FLAG_*`.
    pub flags: u32,
    /// IOTLB entry to clear (at most `MOCK_NESTED_DOMAIN_IOTLB_ID_MAX`).
    pub iotlb_id: u32,
}

assert_layout!(
    HwptInvalidateSelftest,
    size = 8,
    align = 4,
    flags = 0,
    iotlb_id = 4
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_fills_size_op_id_and_payload() {
        let cmd = TestCmd::new(
            7,
            &TestAddReserved {
                start: 0x1000,
                length: 0x2000,
            },
        );
        assert_eq!(
            (cmd.size, cmd.op, cmd.id),
            (72, IOMMU_TEST_OP_ADD_RESERVED, 7)
        );
        assert_eq!(&cmd.as_bytes()[16..24], &0x1000u64.to_ne_bytes());
        assert_eq!(&cmd.as_bytes()[24..32], &0x2000u64.to_ne_bytes());
    }

    #[test]
    fn payload_round_trips_through_union_offsets() {
        let dirty = TestDirty {
            iova: 1,
            length: 2,
            page_size: 3,
            uptr: 4,
            out_nr_dirty: 5,
            ..TestDirty::default()
        };
        let mut cmd = TestCmd::default();
        cmd.set_payload(&dirty);
        // out_nr_dirty is at byte 56 of the command (union offset 40).
        assert_eq!(&cmd.as_bytes()[56..64], &5u64.to_ne_bytes());
        assert_eq!(cmd.payload_as::<TestDirty>(), dirty);
    }

    #[test]
    fn set_payload_keeps_bytes_beyond_the_member() {
        let mut cmd = TestCmd::new(
            1,
            &TestMockDomainFlags {
                dev_flags: 3,
                ..Default::default()
            },
        );
        cmd.set_payload(&TestMockDomain {
            out_stdev_id: 1,
            out_hwpt_id: 2,
            out_idev_id: 3,
        });
        assert_eq!(cmd.payload_as::<TestMockDomainFlags>().dev_flags, 3);
    }

    #[test]
    fn trigger_iopf_addr_is_at_command_offset_32() {
        let cmd = TestCmd::new(
            0,
            &TestTriggerIopf {
                addr: 0xabcd,
                ..Default::default()
            },
        );
        assert_eq!(&cmd.as_bytes()[32..40], &0xabcdu64.to_ne_bytes());
    }
}
