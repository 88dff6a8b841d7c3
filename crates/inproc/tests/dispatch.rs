//! The ioctl dispatcher's rules: size field, minimum size, zero tail, response
//! truncation, bad pointers, unknown commands (UAPI.md §2).

mod support;

use support::{buffer, noaccess, Fd};
use uapi::ioctl::{io, IOMMUFD_TYPE};
use uapi::{
    Destroy, Errno, FaultAlloc, HwInfo, HwptAlloc, HwptGetDirtyBitmap, HwptInvalidate,
    HwptSetDirtyTracking, IoasAlloc, IoasAllowIovas, IoasCopy, IoasIovaRanges, IoasMap, IoasUnmap,
    IoctlCmd, IommuOption, TestCmd, VfioIoas, IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET,
};
use zerocopy::{FromZeros, IntoBytes};

/// An 8-byte aligned buffer holding a command of `T` followed by `tail` bytes.
fn cmd_buf<T: IoctlCmd>(size: u32, tail: u8) -> Vec<u64> {
    let mut buf = vec![0u64; (T::SIZE + 8).div_ceil(8) + 1];
    let bytes = buf.as_mut_bytes();
    bytes[T::SIZE..T::SIZE + 8].fill(tail);
    bytes[..4].copy_from_slice(&size.to_ne_bytes());
    buf
}

fn len_rules<T: IoctlCmd>(fd: &Fd) {
    let run = |size: u32, tail: u8| {
        let mut buf = cmd_buf::<T>(size, tail);
        fd.ioctl_ptr(T::IOCTL, buf.as_mut_ptr() as u64).map(|_| ())
    };
    // Smaller than the first ABI version: EINVAL.
    assert_eq!(
        run(T::MIN_SIZE as u32 - 1, 0xff),
        Err(Errno::INVAL),
        "{} below min",
        T::NAME
    );
    // Larger with a non-zero tail: E2BIG.
    assert_eq!(
        run(T::SIZE as u32 + 1, 0xff),
        Err(Errno::E2BIG),
        "{} non-zero tail",
        T::NAME
    );
    // Larger with a zero tail: the same result as the exact size.
    let exact = run(T::SIZE as u32, 0xff);
    assert_eq!(exact, run(T::SIZE as u32 + 8, 0), "{} zero tail", T::NAME);
}

#[test]
fn size_rules_hold_for_every_command() {
    let fd = Fd::open();
    len_rules::<Destroy>(&fd);
    len_rules::<IoasAlloc>(&fd);
    len_rules::<IoasAllowIovas>(&fd);
    len_rules::<IoasCopy>(&fd);
    len_rules::<IoasIovaRanges>(&fd);
    len_rules::<IoasMap>(&fd);
    len_rules::<IoasUnmap>(&fd);
    len_rules::<IommuOption>(&fd);
    len_rules::<VfioIoas>(&fd);
    len_rules::<HwptAlloc>(&fd);
    len_rules::<HwInfo>(&fd);
    len_rules::<HwptSetDirtyTracking>(&fd);
    len_rules::<HwptGetDirtyBitmap>(&fd);
    len_rules::<HwptInvalidate>(&fd);
    len_rules::<FaultAlloc>(&fd);
    len_rules::<TestCmd>(&fd);
}

#[test]
fn null_argument_returns_efault() {
    let fd = Fd::open();
    assert_eq!(
        fd.ioctl_ptr(uapi::ioctl::IOMMU_DESTROY, 0),
        Err(Errno::FAULT)
    );
}

#[test]
fn unreadable_argument_returns_efault() {
    let fd = Fd::open();
    let m = noaccess(4096);
    assert_eq!(
        fd.ioctl_ptr(uapi::ioctl::IOMMU_IOAS_ALLOC, m.addr()),
        Err(Errno::FAULT)
    );
}

#[test]
fn unreadable_tail_returns_efault() {
    let fd = Fd::open();
    let mut m = buffer(8192);
    // A Destroy whose size reaches into a page that becomes unreadable.
    let at = m.addr() + 4096 - 8;
    m.as_mut_slice().unwrap()[4096 - 8..4096 - 4].copy_from_slice(&64u32.to_ne_bytes());
    m.protect_range(4096, 4096, libc::PROT_NONE).unwrap();
    assert_eq!(
        fd.ioctl_ptr(uapi::ioctl::IOMMU_DESTROY, at),
        Err(Errno::FAULT)
    );
}

#[test]
fn unknown_command_in_table_hole_returns_enotty() {
    let fd = Fd::open();
    let mut d = Destroy::new_zeroed();
    d.size = 8;
    let arg = d.as_mut_bytes().as_mut_ptr() as u64;
    assert_eq!(fd.ioctl_ptr(io(IOMMUFD_TYPE, 0x8f), arg), Err(Errno::NOTTY));
    assert_eq!(fd.ioctl_ptr(io(IOMMUFD_TYPE, 0x9f), arg), Err(Errno::NOTTY));
}

#[test]
fn hole_with_bad_pointer_returns_efault_before_enotty() {
    let fd = Fd::open();
    assert_eq!(fd.ioctl_ptr(io(IOMMUFD_TYPE, 0x8f), 0), Err(Errno::FAULT));
}

#[test]
fn command_with_direction_bits_returns_enotty() {
    let fd = Fd::open();
    let mut d = Destroy::new_zeroed();
    d.size = 8;
    let arg = d.as_mut_bytes().as_mut_ptr() as u64;
    // _IOWR(';', 0x80, 8): same nr, different encoding.
    let cmd = uapi::ioctl::IOMMU_DESTROY | (3 << 30) | (8 << 16);
    assert_eq!(fd.ioctl_ptr(cmd, arg), Err(Errno::NOTTY));
}

#[test]
fn number_below_base_goes_to_vfio_and_returns_enotty() {
    let fd = Fd::open();
    let mut d = Destroy::new_zeroed();
    let arg = d.as_mut_bytes().as_mut_ptr() as u64;
    assert_eq!(fd.ioctl_ptr(io(IOMMUFD_TYPE, 0x7f), arg), Err(Errno::NOTTY));
    assert_eq!(fd.ioctl_ptr(io(b'T', 0x80), arg), Err(Errno::NOTTY));
}

#[test]
fn response_is_truncated_to_the_users_size() {
    let fd = Fd::open();
    // IOVA_RANGES answers num_iovas and out_iova_alignment; with a 24-byte size
    // (below min) it fails, with 40 bytes (zero tail) the tail stays untouched and
    // the whole struct is answered.
    let ioas = fd.ioas_alloc();
    let mut buf = cmd_buf::<IoasIovaRanges>(40, 0);
    buf.as_mut_bytes()[4..8].copy_from_slice(&ioas.to_ne_bytes());
    let arg = buf.as_mut_ptr() as u64;
    assert_eq!(
        fd.ioctl_ptr(uapi::ioctl::IOMMU_IOAS_IOVA_RANGES, arg),
        Err(Errno::MSGSIZE)
    );
    let bytes = buf.as_bytes();
    assert_eq!(u32::from_ne_bytes(bytes[8..12].try_into().unwrap()), 1);
    assert_eq!(u64::from_ne_bytes(bytes[24..32].try_into().unwrap()), 1);
    assert_eq!(&bytes[32..48], &[0u8; 16]);
}

#[test]
fn option_writes_back_only_val64() {
    let fd = Fd::open();
    let ioas = fd.ioas_alloc();
    let mut cmd = IommuOption::new_zeroed();
    cmd.option_id = IOMMU_OPTION_HUGE_PAGES;
    cmd.op = IOMMU_OPTION_OP_GET;
    cmd.object_id = ioas;
    cmd.size = IommuOption::SIZE as u32;
    let before = cmd;
    fd.ioctl_raw(&mut cmd).unwrap();
    assert_eq!(cmd.val64, 1);
    assert_eq!(
        (cmd.size, cmd.option_id, cmd.op, cmd.object_id),
        (before.size, before.option_id, before.op, before.object_id)
    );
}
