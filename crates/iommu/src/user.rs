//! Driver-specific data passed from userspace through iommufd (`struct
//! iommu_user_data` and `iommu_user_data_array`), with the kernel's copy rules.
//!
//! Kernel: `include/linux/iommu.h` (`iommu_copy_struct_from_user`,
//! `iommu_copy_struct_from_user_array`), v6.12.

use uapi::Errno;

/// Reads user memory on behalf of a driver.
pub trait UserRead {
    /// Copies `dst.len()` bytes from user address `uptr`.
    ///
    /// # Errors
    /// `EFAULT` if any byte is unreadable.
    fn read_user(&self, uptr: u64, dst: &mut [u8]) -> Result<(), Errno>;
}

/// Copies a user struct of `len` bytes into `dst` with `copy_struct_from_user`
/// rules (zero fill if shorter, zero tail required if longer).
fn copy_struct(mem: &dyn UserRead, dst: &mut [u8], uptr: u64, len: usize) -> Result<(), Errno> {
    let n = len.min(dst.len());
    dst[n..].fill(0);
    if len > dst.len() {
        let mut tail = vec![0u8; len - dst.len()];
        mem.read_user(uptr + dst.len() as u64, &mut tail)?;
        if tail.iter().any(|&b| b != 0) {
            return Err(Errno::E2BIG);
        }
    }
    mem.read_user(uptr, &mut dst[..n])
}

/// Driver data for a domain allocation (`struct iommu_user_data`).
pub struct UserData<'a> {
    /// `IOMMU_HWPT_DATA_*` type.
    pub data_type: u32,
    /// User address of the data.
    pub uptr: u64,
    /// Length the user gave.
    pub len: u32,
    /// The user's memory.
    pub mem: &'a dyn UserRead,
}

impl UserData<'_> {
    /// `iommu_copy_struct_from_user`: checks the type and that `len` lies in
    /// `[min_len, dst.len()]`, then copies.
    ///
    /// # Errors
    /// `EINVAL` for a type or length mismatch; `EFAULT`.
    pub fn copy_struct(&self, data_type: u32, dst: &mut [u8], min_len: usize) -> Result<(), Errno> {
        if self.data_type != data_type {
            return Err(Errno::INVAL);
        }
        let len = self.len as usize;
        if len < min_len || len > dst.len() {
            return Err(Errno::INVAL);
        }
        copy_struct(self.mem, dst, self.uptr, len)
    }
}

/// An array of driver entries for cache invalidation (`struct iommu_user_data_array`).
pub struct UserDataArray<'a> {
    /// `IOMMU_HWPT_INVALIDATE_DATA_*` type.
    pub data_type: u32,
    /// User address of entry 0.
    pub uptr: u64,
    /// Bytes per entry as the user laid them out.
    pub entry_len: u32,
    /// In: entries given; out: entries handled.
    pub entry_num: u32,
    /// The user's memory.
    pub mem: &'a dyn UserRead,
}

impl UserDataArray<'_> {
    /// `iommu_copy_struct_from_user_array`: copies entry `index`.
    ///
    /// # Errors
    /// `EINVAL` for a type mismatch or an `entry_len` outside `[min_len,
    /// dst.len()]`; `EFAULT`.
    pub fn copy_entry(
        &self,
        data_type: u32,
        dst: &mut [u8],
        index: u32,
        min_len: usize,
    ) -> Result<(), Errno> {
        if self.data_type != data_type {
            return Err(Errno::INVAL);
        }
        let len = self.entry_len as usize;
        if len < min_len || len > dst.len() {
            return Err(Errno::INVAL);
        }
        let uptr = self
            .uptr
            .checked_add(u64::from(index) * u64::from(self.entry_len))
            .ok_or(Errno::FAULT)?;
        copy_struct(self.mem, dst, uptr, len)
    }
}
