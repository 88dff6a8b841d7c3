//! The user command buffer of one ioctl, with the extensible-struct rules.
//!
//! `Ucmd` implements `copy_struct_from_user` (smaller user structs are zero
//! filled, larger ones must have an all-zero tail, else `E2BIG`) and the kernel's
//! "respond" (the whole struct copied back, truncated to the user's size). No other
//! code applies the size rules.
//!
//! Kernel: `drivers/iommu/iommufd/main.c` (`iommufd_ucmd`, `iommufd_ucmd_respond`),
//! `include/linux/uaccess.h` (`copy_struct_from_user`), v6.12.

use std::sync::Arc;

use uapi::{Errno, IoctlCmd};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::ctx::{Ctx, IommufdFile};
use crate::mm::{UserMemory, PAGE_SIZE};

/// One ioctl call: the file, the user pointer and the user's `size` field.
pub(crate) struct Ucmd<'a> {
    pub(crate) file: &'a Arc<IommufdFile>,
    pub(crate) ictx: &'a Arc<Ctx>,
    pub(crate) ubuffer: u64,
    pub(crate) user_size: u32,
}

impl Ucmd<'_> {
    /// The memory of the calling process.
    pub(crate) fn mm(&self) -> &Arc<dyn UserMemory> {
        self.ictx.mm()
    }

    /// Copies the command struct in (`copy_struct_from_user`).
    ///
    /// # Errors
    /// `E2BIG` if the user struct is larger and its tail is not zero; `EFAULT`.
    pub(crate) fn copy_in<T: IoctlCmd>(&self) -> Result<T, Errno> {
        let usize = self.user_size as u64;
        let ksize = T::SIZE as u64;
        if usize > ksize {
            check_zeroed(self.mm().as_ref(), self.ubuffer + ksize, usize - ksize)?;
        }
        let mut cmd = T::new_zeroed();
        let n = usize.min(ksize) as usize;
        self.mm().read(self.ubuffer, &mut cmd.as_mut_bytes()[..n])?;
        Ok(cmd)
    }

    /// Finishes [`Ucmd::copy_in`] for a struct already read whole (its
    /// `T::SIZE` bytes were readable): zeroes what lies beyond the user's
    /// size, or checks that the user's bytes beyond `T::SIZE` are zero.
    ///
    /// # Errors
    /// `E2BIG`, `EFAULT` as [`Ucmd::copy_in`].
    pub(crate) fn complete_copy_in<T: IoctlCmd>(&self, cmd: &mut T) -> Result<(), Errno> {
        let usize = self.user_size as u64;
        let ksize = T::SIZE as u64;
        if usize > ksize {
            check_zeroed(self.mm().as_ref(), self.ubuffer + ksize, usize - ksize)?;
        } else {
            cmd.as_mut_bytes()[usize as usize..].fill(0);
        }
        // The kernel's copy of the struct (already read ahead).
        fault::fail_point!(fault::Site::CopyFromUser, Errno::FAULT);
        Ok(())
    }

    /// Copies the whole command struct back, truncated to the user's size
    /// (`iommufd_ucmd_respond`).
    ///
    /// # Errors
    /// `EFAULT`.
    pub(crate) fn respond<T: IoctlCmd>(&self, cmd: &T) -> Result<(), Errno> {
        let n = (self.user_size as usize).min(T::SIZE);
        self.mm().write(self.ubuffer, &cmd.as_bytes()[..n])
    }

    /// Reads a plain struct from user memory.
    ///
    /// # Errors
    /// `EFAULT`.
    pub(crate) fn read_user<T: FromBytes + IntoBytes>(&self, uptr: u64) -> Result<T, Errno> {
        let mut v = T::new_zeroed();
        self.mm().read(uptr, v.as_mut_bytes())?;
        Ok(v)
    }

    /// Writes a plain struct to user memory.
    ///
    /// # Errors
    /// `EFAULT`.
    pub(crate) fn write_user<T: IntoBytes + Immutable>(
        &self,
        uptr: u64,
        v: &T,
    ) -> Result<(), Errno> {
        self.mm().write(uptr, v.as_bytes())
    }
}

/// `check_zeroed_user`: `E2BIG` at the first non-zero byte, `EFAULT` at the first
/// unreadable byte, whichever comes first. Reads never cross a page, so a fault
/// cannot hide a non-zero byte in front of it.
fn check_zeroed(mm: &dyn UserMemory, mut addr: u64, mut len: u64) -> Result<(), Errno> {
    let mut buf = [0u8; 512];
    while len != 0 {
        let to_page_end = PAGE_SIZE - addr % PAGE_SIZE;
        let n = len.min(to_page_end).min(buf.len() as u64) as usize;
        mm.read(addr, &mut buf[..n])?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Err(Errno::E2BIG);
        }
        addr = addr.checked_add(n as u64).ok_or(Errno::FAULT)?;
        len -= n as u64;
    }
    Ok(())
}
