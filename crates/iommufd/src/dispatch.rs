//! The ioctl dispatcher of `/dev/iommu`: one row per command.
//!
//! Order of checks, as the kernel has it: a number outside the table goes to the
//! VFIO compatibility dispatcher; then the `size` field is read (`EFAULT`), then
//! the exact command number is checked (`ENOTTY`), then `size >= min_size`
//! (`EINVAL`), then the struct is copied in with the extensible-struct rules.
//!
//! Kernel: `drivers/iommu/iommufd/main.c` (`iommufd_fops_ioctl`, `iommufd_ioctl_ops`), v6.12.

use std::sync::Arc;

use uapi::ioctl::IOMMUFD_CMD_BASE;
use uapi::{Errno, IoctlCmd};

use crate::ctx::IommufdFile;
use crate::ucmd::Ucmd;
use crate::{ioas, vfio_compat};

/// Entries in the command table: `0x80..=0x8e`, plus up to `0xa0` with the test command.
#[cfg(feature = "selftest")]
const TABLE_LEN: u32 = 33;
#[cfg(not(feature = "selftest"))]
const TABLE_LEN: u32 = 15;

type Handler<T> = fn(&Ucmd<'_>, &mut T) -> Result<(), Errno>;

/// Runs one table row: exact number, minimum size, copy in, handler.
fn exec<T: IoctlCmd>(
    file: &Arc<IommufdFile>,
    arg: u64,
    cmd: u32,
    handler: Handler<T>,
) -> Result<(), Errno> {
    let ictx = file.ctx();
    // One read of the whole struct where it is readable (the common case);
    // where it is not, the kernel's sequence of reads decides the errno. The
    // read ahead stands for the kernel's read of the size here and of the
    // struct below, which stay fault points.
    let mut buf = T::new_zeroed();
    let whole = ictx.mm().read_ahead(arg, buf.as_mut_bytes()).is_ok();
    let user_size = if whole {
        fault::fail_point!(fault::Site::CopyFromUser, Errno::FAULT);
        let mut size = [0u8; 4];
        size.copy_from_slice(&buf.as_bytes()[..4]);
        u32::from_ne_bytes(size)
    } else {
        let mut size = [0u8; 4];
        ictx.mm().read(arg, &mut size)?;
        u32::from_ne_bytes(size)
    };
    let ucmd = Ucmd {
        file,
        ictx,
        ubuffer: arg,
        user_size,
    };
    if cmd != T::IOCTL {
        return Err(Errno::NOTTY);
    }
    if (user_size as usize) < T::MIN_SIZE {
        return Err(Errno::INVAL);
    }
    if whole {
        ucmd.complete_copy_in(&mut buf)?;
    } else {
        buf = ucmd.copy_in::<T>()?;
    }
    handler(&ucmd, &mut buf)
}

pub(crate) fn ioctl(file: &Arc<IommufdFile>, cmd: u32, arg: u64) -> Result<i64, Errno> {
    let ictx = file.ctx();
    let nr = cmd & 0xff;
    let base = u32::from(IOMMUFD_CMD_BASE);
    if nr < base || nr - base >= TABLE_LEN {
        return vfio_compat::ioctl(ictx, cmd, arg);
    }
    let res = match nr - base {
        0x00 => exec(file, arg, cmd, crate::ioas::destroy),
        0x01 => exec(file, arg, cmd, ioas::alloc),
        0x02 => exec(file, arg, cmd, ioas::allow_iovas),
        0x03 => exec(file, arg, cmd, ioas::copy),
        0x04 => exec(file, arg, cmd, ioas::iova_ranges),
        0x05 => exec(file, arg, cmd, ioas::map),
        0x06 => exec(file, arg, cmd, ioas::unmap),
        0x07 => exec(file, arg, cmd, ioas::option),
        0x08 => exec(file, arg, cmd, vfio_compat::vfio_ioas),
        0x09 => exec(file, arg, cmd, crate::hwpt::alloc),
        0x0a => exec(file, arg, cmd, crate::hwpt::get_hw_info),
        0x0b => exec(file, arg, cmd, crate::hwpt::set_dirty_tracking),
        0x0c => exec(file, arg, cmd, crate::hwpt::get_dirty_bitmap),
        0x0d => exec(file, arg, cmd, crate::hwpt::invalidate),
        0x0e => exec(file, arg, cmd, crate::fault::fault_alloc),
        #[cfg(feature = "selftest")]
        0x20 => exec(file, arg, cmd, crate::test_cmd::test_cmd),
        // A number inside the table without a command: the size is still
        // read first (EFAULT before ENOTTY).
        _ => ictx.mm().read(arg, &mut [0u8; 4]).and(Err(Errno::NOTTY)),
    };
    res.map(|()| 0)
}
