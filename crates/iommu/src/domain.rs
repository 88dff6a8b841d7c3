//! IOMMU domains: one I/O page table and the operations a driver implements on it.
//!
//! A domain is the kernel's `struct iommu_domain` with its `iommu_domain_ops`;
//! here it is a trait object (`Arc<dyn Domain>`) that the driver implements and
//! that iommufd reaches only through this trait.
//!
//! Kernel: `include/linux/iommu.h` (`struct iommu_domain`, `iommu_domain_ops`,
//! `iommu_dirty_ops`), v6.12.

use core::any::Any;

use uapi::Errno;

use crate::device::Device;
use crate::msi::MsiCookie;
use crate::user::UserDataArray;
use crate::{DriverId, Prot};

/// What a domain is for (the kernel's `IOMMU_DOMAIN_*` types).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DomainType {
    /// All DMA is blocked; `iova_to_phys` returns 0.
    Blocked,
    /// DMA addresses are physical addresses (passthrough).
    Identity,
    /// A paging domain managed by its user (iommufd, VFIO): `IOMMU_DOMAIN_UNMANAGED`.
    Unmanaged,
    /// A paging domain used by the kernel DMA API.
    Dma,
    /// A DMA domain with a flush queue.
    DmaFq,
    /// A user-managed first stage nested on a paging parent.
    Nested,
    /// Shared virtual addressing with a process address space.
    Sva,
    /// A driver-private domain (legacy platform drivers).
    Platform,
}

impl DomainType {
    /// True for the types that `iommu_map()` accepts (`__IOMMU_DOMAIN_PAGING`).
    pub const fn is_paging(self) -> bool {
        matches!(
            self,
            DomainType::Unmanaged | DomainType::Dma | DomainType::DmaFq
        )
    }
}

/// The IOVA range a domain can translate, inclusive at both ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// First IOVA the domain can map.
    pub aperture_start: u64,
    /// Last IOVA the domain can map (inclusive).
    pub aperture_end: u64,
    /// DMA outside the aperture is blocked.
    pub force_aperture: bool,
}

impl Geometry {
    /// The whole 64-bit IOVA space.
    pub const FULL: Geometry = Geometry {
        aperture_start: 0,
        aperture_end: u64::MAX,
        force_aperture: false,
    };
}

/// Where one DMA lands: the physical address of `iova` and how many bytes from
/// there the same leaf maps contiguously.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaTranslation {
    /// Physical address of the IOVA.
    pub pa: u64,
    /// Bytes from `pa` to the end of the leaf (at least 1).
    pub len: u64,
}

/// What [`Domain::dma_translate_run`] answers: a [`DmaTranslation`], or the
/// errno of the DMA fault, packed in two words so that it is returned in two
/// registers (a `Result<DmaTranslation, Errno>` is returned through memory,
/// and a store issued right after a long DMA copy waits behind the copy's
/// stores). [`DmaRun::get`] unpacks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaRun {
    /// The physical address; the errno when `len` is 0.
    pa_or_errno: u64,
    /// Bytes from `pa` (at least 1); 0 for a fault.
    len: u64,
}

impl DmaRun {
    /// A translation (`t.len > 0`).
    #[inline(always)]
    pub fn ok(t: DmaTranslation) -> DmaRun {
        debug_assert!(t.len > 0, "empty DMA translation");
        DmaRun {
            pa_or_errno: t.pa,
            len: t.len,
        }
    }

    /// A DMA fault.
    #[inline(always)]
    pub fn fault(e: Errno) -> DmaRun {
        DmaRun {
            pa_or_errno: e.raw() as u64,
            len: 0,
        }
    }

    /// The translation or the fault's errno.
    ///
    /// # Errors
    /// The errno of [`DmaRun::fault`].
    #[inline(always)]
    pub fn get(self) -> Result<DmaTranslation, Errno> {
        if self.len == 0 {
            return Err(Errno::from_raw(self.pa_or_errno as i32).unwrap_or(Errno::FAULT));
        }
        Ok(DmaTranslation {
            pa: self.pa_or_errno,
            len: self.len,
        })
    }
}

impl From<Result<DmaTranslation, Errno>> for DmaRun {
    #[inline(always)]
    fn from(r: Result<DmaTranslation, Errno>) -> DmaRun {
        match r {
            Ok(t) => DmaRun::ok(t),
            Err(e) => DmaRun::fault(e),
        }
    }
}

/// Dirty ranges reported by `read_and_clear_dirty`, in IOVA bytes.
pub trait DirtyRecorder {
    /// Record that `[iova, iova + len)` was written by the device.
    fn record(&mut self, iova: u64, len: u64);

    /// Record up to 64 dirty IO pages of `1 << page_lg2` bytes at once: bit `i`
    /// of `bits` stands for the page at `iova + (i << page_lg2)`. Same meaning
    /// as one [`Self::record`] per set bit, which is what the default does;
    /// recorders that can take a word at a time (the user bitmap) override it.
    fn record_bits(&mut self, iova: u64, page_lg2: u32, mut bits: u64) {
        while bits != 0 {
            let i = u64::from(bits.trailing_zeros());
            self.record(iova + (i << page_lg2), 1 << page_lg2);
            bits &= bits - 1;
        }
    }
}

impl<F: FnMut(u64, u64)> DirtyRecorder for F {
    fn record(&mut self, iova: u64, len: u64) {
        self(iova, len);
    }
}

/// `IOMMU_DIRTY_NO_CLEAR`: report dirty state without clearing it.
pub const DIRTY_NO_CLEAR: u32 = 1;

/// Dirty tracking of a paging domain (`struct iommu_dirty_ops`).
pub trait DirtyOps: Send + Sync {
    /// Turns hardware dirty tracking on or off.
    ///
    /// # Errors
    /// Driver specific; the mock refuses to enable without dirty support.
    fn set_dirty_tracking(&self, enable: bool) -> Result<(), Errno>;

    /// Reports dirty IOVA ranges in `[iova, iova + size)` and clears them unless
    /// `flags` has [`DIRTY_NO_CLEAR`]. `dirty` is `None` for the clear-only pass
    /// that runs when tracking is enabled.
    ///
    /// # Errors
    /// Driver specific (the mock: `EINVAL` if tracking is off and a recorder is given).
    fn read_and_clear_dirty(
        &self,
        iova: u64,
        size: u64,
        flags: u32,
        dirty: Option<&mut dyn DirtyRecorder>,
    ) -> Result<(), Errno>;
}

/// The IOMMU core's own state of a domain, embedded by every driver's domain
/// (the core fields of `struct iommu_domain`: owner, MSI cookie).
#[derive(Debug)]
pub struct DomainCore {
    owner: DriverId,
    msi: MsiCookie,
}

impl DomainCore {
    /// Core state for a domain allocated by driver `owner`.
    pub fn new(owner: DriverId) -> DomainCore {
        LIVE_DOMAINS.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        DomainCore {
            owner,
            msi: MsiCookie::default(),
        }
    }

    /// The driver that allocated the domain (`domain->owner`).
    pub fn owner(&self) -> DriverId {
        self.owner
    }

    /// The software-MSI cookie (`domain->iova_cookie`).
    pub fn msi(&self) -> &MsiCookie {
        &self.msi
    }
}

impl Drop for DomainCore {
    fn drop(&mut self) {
        LIVE_DOMAINS.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

static LIVE_DOMAINS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Domains alive in this process, of every driver (leak checks in tests).
#[doc(hidden)]
pub fn live_domains() -> usize {
    LIVE_DOMAINS.load(std::sync::atomic::Ordering::Acquire)
}

/// One IOMMU domain as its driver implements it (`iommu_domain` + `iommu_domain_ops`).
///
/// Map and unmap follow the kernel's `map_pages`/`unmap_pages` contract: the IOMMU
/// core ([`crate::map`]) chooses the page size and count, the driver writes entries.
pub trait Domain: Send + Sync + Any {
    /// The core's state of this domain.
    fn core(&self) -> &DomainCore;

    /// The domain's type.
    fn domain_type(&self) -> DomainType;

    /// Attaches the domain to `dev` (`attach_dev`).
    ///
    /// # Errors
    /// `EINVAL` means "incompatible with this device" (callers may try another
    /// domain); other errnos are failures.
    fn attach_dev(&self, dev: &Device) -> Result<(), Errno>;

    /// Whether PASID attach is supported (`ops->set_dev_pasid != NULL`).
    fn supports_pasid(&self) -> bool {
        false
    }

    /// Attaches the domain to `pasid` of `dev` (`set_dev_pasid`).
    ///
    /// # Errors
    /// Driver specific.
    fn set_dev_pasid(&self, _dev: &Device, _pasid: u32) -> Result<(), Errno> {
        Err(Errno::OPNOTSUPP)
    }

    /// Removes the domain from `pasid` of `dev` (`remove_dev_pasid`).
    fn remove_dev_pasid(&self, _dev: &Device, _pasid: u32) {}

    /// The IOVA window the domain translates.
    fn geometry(&self) -> Geometry {
        Geometry::FULL
    }

    /// Every IO page size the domain supports, as a bitmap of sizes.
    fn pgsize_bitmap(&self) -> u64;

    /// Maps `pgcount` pages of `pgsize` bytes from `iova` to `pa`.
    ///
    /// Returns the bytes mapped. On failure, `Err((mapped, errno))` reports how much
    /// was mapped before the error so that the core can unwind it.
    fn map_pages(
        &self,
        iova: u64,
        pa: u64,
        pgsize: u64,
        pgcount: u64,
        prot: Prot,
    ) -> Result<u64, (u64, Errno)>;

    /// Unmaps `pgcount` pages of `pgsize` bytes at `iova`; returns the bytes unmapped.
    fn unmap_pages(&self, iova: u64, pgsize: u64, pgcount: u64) -> u64;

    /// The physical address `iova` translates to, or 0 if it is not mapped.
    fn iova_to_phys(&self, iova: u64) -> u64;

    /// Translates one DMA of a device at `iova` as the hardware would: checks the
    /// permission for the direction, sets accessed (and, with dirty tracking on, dirty)
    /// flags in the leaf. Lock-free in the drivers over `pt`.
    ///
    /// # Errors
    /// `ENOENT` if nothing is mapped at `iova` (a DMA fault); `EPERM` if the mapping
    /// forbids the direction.
    fn dma_translate(&self, iova: u64, write: bool) -> Result<DmaTranslation, Errno> {
        let _ = write;
        match self.domain_type() {
            DomainType::Identity => Ok(DmaTranslation {
                pa: iova,
                len: 0x1000 - (iova & 0xfff),
            }),
            DomainType::Blocked => Err(Errno::NOENT),
            _ => {
                let pa = self.iova_to_phys(iova);
                if pa == 0 {
                    return Err(Errno::NOENT);
                }
                let bitmap = self.pgsize_bitmap();
                let page = if bitmap == 0 {
                    1
                } else {
                    1u64 << bitmap.trailing_zeros()
                };
                Ok(DmaTranslation {
                    pa,
                    len: page - (iova & (page - 1)),
                })
            }
        }
    }

    /// Translates the DMA of `len` bytes at `iova` (`len > 0`) as far as its
    /// leaves map contiguously: as [`Domain::dma_translate`] for the leaf of
    /// `iova`, and then for each following leaf that the DMA reaches into
    /// while the run continues (each one's permission checked and flags
    /// set). The result's `len` counts from `iova` and covers whole leaves;
    /// it may end before the request (the caller translates the rest, which
    /// decides the errno) and exceed it within the last leaf the DMA reaches
    /// into. The default translates the first leaf only.
    ///
    /// The errors of [`Domain::dma_translate`] for `iova` come back as a
    /// [`DmaRun::fault`]. This is the per-DMA call of an emulated device: a
    /// driver keeps its common case short and free of stores (see
    /// [`DmaRun`]).
    fn dma_translate_run(&self, iova: u64, len: u64, write: bool) -> DmaRun {
        let _ = len;
        self.dma_translate(iova, write).into()
    }

    /// A number that names the domain's present translations for DMA in the
    /// given direction, or `None` (the default) if a DMA engine must not
    /// reuse a translation: a run [`Self::dma_translate_run`] returned stays
    /// valid while the token read before that call is unchanged. Every unmap
    /// changes it before returning; tokens are never 0 and never reused, by
    /// this domain or another (see [`crate::DmaHandle`]).
    fn dma_cache_token(&self, write: bool) -> Option<u64> {
        let _ = write;
        None
    }

    /// Flushes the IOTLB after unmaps.
    fn iotlb_sync(&self) {}

    /// Makes every later mapping snoop CPU caches regardless of `Prot::CACHE`.
    /// Returns false if the domain cannot (or can no longer) enforce it.
    fn enforce_cache_coherency(&self) -> bool {
        false
    }

    /// Dirty tracking, if the domain was allocated with it.
    fn dirty_ops(&self) -> Option<&dyn DirtyOps> {
        None
    }

    /// Whether the domain implements user cache invalidation (nested domains).
    fn has_cache_invalidate_user(&self) -> bool {
        false
    }

    /// Invalidates caches as described by an array of driver-defined entries
    /// (`cache_invalidate_user`); sets `array.entry_num` to the entries handled.
    ///
    /// # Errors
    /// Driver specific (`EINVAL` wrong type/length, `EFAULT`, `EOPNOTSUPP`).
    fn cache_invalidate_user(&self, array: &mut UserDataArray<'_>) -> Result<(), Errno> {
        array.entry_num = 0;
        Err(Errno::OPNOTSUPP)
    }

    /// Downcast support for drivers and test commands.
    fn as_any(&self) -> &dyn Any;
}

#[cfg(test)]
mod tests {
    use super::{DmaRun, DmaTranslation};
    use uapi::Errno;

    #[test]
    fn dma_runs_unpack_to_what_was_packed() {
        for t in [
            DmaTranslation { pa: 0, len: 1 },
            DmaTranslation {
                pa: 0x7fff_dead_b000,
                len: 0x20_0000,
            },
            DmaTranslation {
                pa: u64::MAX,
                len: u64::MAX,
            },
        ] {
            assert_eq!(DmaRun::ok(t).get(), Ok(t));
            assert_eq!(DmaRun::from(Ok(t)).get(), Ok(t));
        }
        for e in [Errno::NOENT, Errno::PERM, Errno::FAULT] {
            assert_eq!(DmaRun::fault(e).get(), Err(e));
            assert_eq!(DmaRun::from(Err(e)).get(), Err(e));
        }
    }
}
