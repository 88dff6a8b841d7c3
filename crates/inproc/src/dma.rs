//! DMA by an emulated device through the IOMMU: each access is translated by the
//! domain the device's group is attached to (checking permissions and setting
//! accessed/dirty flags as hardware does), and the bytes move to or from this
//! process's memory at the translated address (physical addresses are user
//! virtual addresses here, see [`crate::HostMm`]).
//!
//! A DMA stops at the first fault: nothing after it is transferred, as a device
//! would see a completion error at that point.

use iommu::Device;
use uapi::Errno;

/// Reads `buf.len()` bytes at `iova` into `buf`, as a device DMA read.
///
/// # Errors
/// `ENOENT` if an IOVA is not mapped (a DMA fault); `EPERM` if a mapping forbids
/// reads; `EFAULT` if the memory behind the mapping is gone.
pub fn read(dev: &Device, iova: u64, buf: &mut [u8]) -> Result<(), Errno> {
    let mut done = 0usize;
    while done < buf.len() {
        let at = iova.checked_add(done as u64).ok_or(Errno::NOENT)?;
        let t = dev.dma_translate(at, false)?;
        let n = (buf.len() - done).min(usize::try_from(t.len).unwrap_or(usize::MAX));
        host::uaccess::copy_from_user(&mut buf[done..done + n], t.pa)?;
        done += n;
    }
    Ok(())
}

/// Writes `buf` at `iova`, as a device DMA write (marks IOPTEs dirty when the
/// domain tracks dirty pages).
///
/// # Errors
/// As [`read`], with `EPERM` for mappings without write permission.
pub fn write(dev: &Device, iova: u64, buf: &[u8]) -> Result<(), Errno> {
    let mut done = 0usize;
    while done < buf.len() {
        let at = iova.checked_add(done as u64).ok_or(Errno::NOENT)?;
        let t = dev.dma_translate(at, true)?;
        let n = (buf.len() - done).min(usize::try_from(t.len).unwrap_or(usize::MAX));
        host::uaccess::copy_to_user(t.pa, &buf[done..done + n])?;
        done += n;
    }
    Ok(())
}
