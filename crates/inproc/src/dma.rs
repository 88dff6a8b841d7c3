//! DMA by an emulated device through the IOMMU: each access is translated by the
//! domain the device's group is attached to (checking permissions and setting
//! accessed/dirty flags as hardware does), and the bytes move to or from this
//! process's memory at the translated address (physical addresses are user
//! virtual addresses here, see [`crate::HostMm`]).
//!
//! A DMA stops at the first fault: nothing after it is transferred, as a device
//! would see a completion error at that point.
//!
//! Two entry points: [`read`]/[`write`] take a `&Device` and look its domain up
//! under the group lock per leaf; a [`DmaHandle`] (one per DMA engine) caches
//! the domain, revalidated by one load per DMA, and the last run of leaves it
//! translated in each direction, revalidated by one more (a device TLB, see
//! [`iommu::DmaHandle`]); it is the fast path for devices issuing many DMAs.
//! Both translate leaf by leaf (through the domain's software IOTLB, see
//! `pt::iotlb`) and copy runs of leaves that are physically contiguous with
//! one fault-safe copy, using non-temporal stores for copies of at least
//! [`NT_THRESHOLD`] bytes (see [`host::uaccess::dma_copy_to_user`]).

use std::sync::Arc;

use iommu::{Device, DmaTranslation};
use uapi::Errno;

/// Copies of at least this many bytes (one run of physically contiguous
/// leaves) use non-temporal stores by default: they do not displace the
/// CPU's caches, as a device's DMA does not.
pub const NT_THRESHOLD: usize = 32 << 10;

/// Reads `buf.len()` bytes at `iova` into `buf`, as a device DMA read.
///
/// # Errors
/// `ENOENT` if an IOVA is not mapped (a DMA fault); `EPERM` if a mapping forbids
/// reads; `EFAULT` if the memory behind the mapping is gone.
pub fn read(dev: &Device, iova: u64, buf: &mut [u8]) -> Result<(), Errno> {
    read_via(DeviceLeaves { dev, write: false }, iova, buf, NT_THRESHOLD)
}

/// Writes `buf` at `iova`, as a device DMA write (marks IOPTEs dirty when the
/// domain tracks dirty pages).
///
/// # Errors
/// As [`read`], with `EPERM` for mappings without write permission.
pub fn write(dev: &Device, iova: u64, buf: &[u8]) -> Result<(), Errno> {
    write_via(DeviceLeaves { dev, write: true }, iova, buf, NT_THRESHOLD)
}

/// The DMA engine of one emulated device: [`read`] and [`write`] with the
/// device's domain and its last runs cached between DMAs (see
/// [`iommu::DmaHandle`]: a DMA that starts after an attach, replace, detach
/// or unmap returned never uses what was cached before).
#[derive(Debug)]
pub struct DmaHandle {
    h: iommu::DmaHandle,
    nt_threshold: usize,
}

impl DmaHandle {
    /// A DMA engine for `dev`.
    pub fn new(dev: Arc<Device>) -> DmaHandle {
        DmaHandle {
            h: iommu::DmaHandle::new(dev),
            nt_threshold: NT_THRESHOLD,
        }
    }

    /// The device.
    pub fn device(&self) -> &Arc<Device> {
        self.h.device()
    }

    /// Copies of at least `bytes` use non-temporal stores (`usize::MAX`: never).
    pub fn set_nt_threshold(&mut self, bytes: usize) {
        self.nt_threshold = bytes;
    }

    /// Drops the cached domain (see [`iommu::DmaHandle::release`]).
    pub fn release(&mut self) {
        self.h.release();
    }

    /// As [`read`]. Inlined into the device model's loop: see [`walk`].
    ///
    /// # Errors
    /// As [`read`].
    #[inline(always)]
    pub fn read(&mut self, iova: u64, buf: &mut [u8]) -> Result<(), Errno> {
        let nt = self.nt_threshold;
        let h = HandleRuns {
            h: &mut self.h,
            write: false,
        };
        read_via(h, iova, buf, nt)
    }

    /// As [`write`]. Inlined into the device model's loop: see [`walk`].
    ///
    /// # Errors
    /// As [`write`].
    #[inline(always)]
    pub fn write(&mut self, iova: u64, buf: &[u8]) -> Result<(), Errno> {
        let nt = self.nt_threshold;
        let h = HandleRuns {
            h: &mut self.h,
            write: true,
        };
        write_via(h, iova, buf, nt)
    }
}

/// How [`walk`] translates one DMA: its first translation, then (when that
/// did not cover the DMA) each of the rest, every one given the IOVA and the
/// bytes left and answering for as many contiguous leaves as it can.
trait Translate {
    fn first(&mut self, iova: u64, len: u64) -> Result<DmaTranslation, Errno>;
    fn rest(&mut self, iova: u64, len: u64) -> Result<DmaTranslation, Errno>;
}

/// [`read`] and [`write`]: the device's domain looked up per leaf.
struct DeviceLeaves<'a> {
    dev: &'a Device,
    write: bool,
}

impl Translate for DeviceLeaves<'_> {
    #[inline(always)]
    fn first(&mut self, iova: u64, _len: u64) -> Result<DmaTranslation, Errno> {
        self.dev.dma_translate(iova, self.write)
    }

    #[inline(always)]
    fn rest(&mut self, iova: u64, len: u64) -> Result<DmaTranslation, Errno> {
        self.first(iova, len)
    }
}

/// [`DmaHandle`]: the first translation through the handle's kept runs and
/// generation check, the rest in the domain it was made in.
struct HandleRuns<'a> {
    h: &'a mut iommu::DmaHandle,
    write: bool,
}

impl Translate for HandleRuns<'_> {
    #[inline(always)]
    fn first(&mut self, iova: u64, len: u64) -> Result<DmaTranslation, Errno> {
        self.h.dma_translate_run(iova, len, self.write)
    }

    #[inline(always)]
    fn rest(&mut self, iova: u64, len: u64) -> Result<DmaTranslation, Errno> {
        let domain = self.h.domain_of_dma()?;
        domain.dma_translate_run(iova, len, self.write).get()
    }
}

/// A run of leaves whose physical addresses are contiguous: `len` bytes of
/// the buffer from `off` go to/come from `pa`.
#[derive(Clone, Copy)]
struct Run {
    off: usize,
    pa: u64,
    len: usize,
}

/// Walks the leaves of `[iova, iova + len)` with `translate`, calling `copy`
/// once per physically contiguous run; stops at the first fault, after
/// copying everything before it.
///
/// Every leaf is translated (so permissions are checked and accessed/dirty
/// flags set per leaf), but a run is copied only when the next leaf does not
/// continue it: when a copy faults (`EFAULT`, the memory behind a mapping is
/// gone), the following leaves of its run were already translated, as a
/// device that translates ahead would have.
///
/// The common case, one translation covering the whole DMA, goes straight
/// to its copy: no loop state lives across the copy, so nothing is stored
/// between one DMA's copy and the next one's translation.
#[inline(always)]
fn walk(
    mut translate: impl Translate,
    iova: u64,
    len: usize,
    mut copy: impl FnMut(Run) -> Result<(), Errno>,
) -> Result<(), Errno> {
    if len == 0 {
        return Ok(());
    }
    let t = translate.first(iova, len as u64)?;
    if t.len >= len as u64 {
        return copy(Run {
            off: 0,
            pa: t.pa,
            len,
        });
    }
    // `t.len < len`: it fits a usize.
    walk_rest(translate, iova, len, t.pa, t.len as usize, copy)
}

/// [`walk`] after a first translation of `first_len` bytes at `first_pa`,
/// shorter than the DMA (passed as scalars: a `Run` would be built in
/// memory on the fast path).
#[inline(never)]
fn walk_rest(
    mut translate: impl Translate,
    iova: u64,
    len: usize,
    first_pa: u64,
    first_len: usize,
    mut copy: impl FnMut(Run) -> Result<(), Errno>,
) -> Result<(), Errno> {
    let mut run = Run {
        off: 0,
        pa: first_pa,
        len: first_len,
    };
    let mut done = run.len;
    while done < len {
        let t = match iova
            .checked_add(done as u64)
            .ok_or(Errno::NOENT)
            .and_then(|at| translate.rest(at, (len - done) as u64))
        {
            Ok(t) => t,
            Err(e) => {
                copy(run)?;
                return Err(e);
            }
        };
        let n = (len - done).min(usize::try_from(t.len).unwrap_or(usize::MAX));
        if run.pa.wrapping_add(run.len as u64) == t.pa {
            run.len += n;
        } else {
            copy(run)?;
            run = Run {
                off: done,
                pa: t.pa,
                len: n,
            };
        }
        done += n;
    }
    copy(run)
}

#[inline(always)]
fn read_via(translate: impl Translate, iova: u64, buf: &mut [u8], nt: usize) -> Result<(), Errno> {
    walk(translate, iova, buf.len(), |r| {
        host::uaccess::dma_copy_from_user(&mut buf[r.off..r.off + r.len], r.pa, r.len >= nt)
    })
}

#[inline(always)]
fn write_via(translate: impl Translate, iova: u64, buf: &[u8], nt: usize) -> Result<(), Errno> {
    walk(translate, iova, buf.len(), |r| {
        host::uaccess::dma_copy_to_user(r.pa, &buf[r.off..r.off + r.len], r.len >= nt)
    })
}
