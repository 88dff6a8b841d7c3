//! IOMMU drivers over the real page-table formats of the `pt` crate, behind the
//! `iommu` crate's driver traits ([`iommu::IommuOps`], [`iommu::Domain`]):
//!
//! | driver | module | page table | mirrors |
//! |---|---|---|---|
//! | VT-d-like | [`vtd`] | `pt::fmt::VtdSs` (3/4/5-level second stage) | Intel VT-d spec §3.6–3.7, §9.8, §11.4.2–11.4.3 (CAP/ECAP); kernel `drivers/iommu/intel/iommu.c`, `nested.c`, `pasid.c` |
//! | SMMUv3-like | [`smmuv3`] | `pt::fmt::ArmV8` (stage 1/2, 4K/16K/64K) | Arm SMMUv3 spec (IHI 0070) §6.3.1–6.3.8 (IDR0–5, IIDR, AIDR); kernel `drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c` |
//!
//! Each instance is one `Arc<dyn IommuOps>` with its own hardware properties
//! (address width, page sizes, snoop control, dirty tracking, PASIDs, stages,
//! granules...), from which it synthesizes the ID registers it reports through
//! `IOMMU_GET_HW_INFO`; capabilities are decoded back from those registers with
//! the kernel's macros, so the two never disagree.
//!
//! Which devices an instance translates for is firmware knowledge (the DMAR
//! device scope, the IORT/device-tree `iommus` property): register a device by
//! name with `add_device` before probing it, or the instance's `probe_device`
//! refuses it with `ENODEV`.
//!
//! Kernel: v6.12 unless a module says otherwise; deviations are listed in each
//! module's documentation.

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};

/// The `Domain` methods of a domain without page tables (blocking, identity).
macro_rules! no_paging {
    () => {
        fn pgsize_bitmap(&self) -> u64 {
            0
        }
        fn map_pages(
            &self,
            _iova: u64,
            _pa: u64,
            _pgsize: u64,
            _pgcount: u64,
            _prot: Prot,
        ) -> Result<u64, (u64, Errno)> {
            Err((0, Errno::INVAL))
        }
        fn unmap_pages(&self, _iova: u64, _pgsize: u64, _pgcount: u64) -> u64 {
            0
        }
        fn iova_to_phys(&self, _iova: u64) -> u64 {
            0
        }
        fn as_any(&self) -> &dyn Any {
            self
        }
    };
}

pub mod smmuv3;
pub mod vtd;

pub use smmuv3::{SmmuDomain, SmmuV3, SmmuV3Config, SMMUV3_DRIVER};
pub use vtd::{Rmrr, Vtd, VtdConfig, VtdDomain, VtdNested, VTD_DRIVER};

/// An invalid instance configuration, with a message for the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// A process-unique number for an instance (the kernel compares instance pointers).
fn next_instance_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The `pt` dirty walk's sink feeding a `DirtyRecorder` (nothing without one):
/// granule leaves arrive a 64-bit word at a time.
struct DirtyFeed<'a, 'b>(&'a mut Option<&'b mut dyn iommu::DirtyRecorder>);

impl pt::DirtySink for DirtyFeed<'_, '_> {
    fn range(&mut self, iova: u64, len: u64) {
        if let Some(rec) = self.0.as_deref_mut() {
            rec.record(iova, len);
        }
    }
    fn bits(&mut self, iova: u64, granule_lg2: u32, bits: u64) {
        if let Some(rec) = self.0.as_deref_mut() {
            rec.record_bits(iova, granule_lg2, bits);
        }
    }
}

/// The DMA translation of a `pt` run: the bytes from `pa` its leaves map.
fn dma_run(r: pt::Run) -> iommu::DmaTranslation {
    iommu::DmaTranslation {
        pa: r.pa,
        len: r.len,
    }
}

/// `Domain::dma_translate_run` over a `pt` table: what the IOTLB answers
/// inline, the walk and the errno out of line (see `iommu::DmaRun` and
/// `pt::PageTable::translate_run_cached`).
#[inline(always)]
fn dma_translate_run<F: pt::Format>(
    pt: &pt::PageTable<F>,
    iova: u64,
    len: u64,
    write: bool,
) -> iommu::DmaRun {
    match pt.translate_run_cached(iova, len, write) {
        Some(run) => iommu::DmaRun::ok(dma_run(run)),
        None => dma_translate_run_slow(pt, iova, len, write),
    }
}

#[inline(never)]
fn dma_translate_run_slow<F: pt::Format>(
    pt: &pt::PageTable<F>,
    iova: u64,
    len: u64,
    write: bool,
) -> iommu::DmaRun {
    pt.translate_run(iova, len, write).map(dma_run).into()
}

/// The DMA translation of a `pt` translation: the bytes from `pa` to the leaf's end.
fn dma_translation(t: pt::Translation) -> iommu::DmaTranslation {
    iommu::DmaTranslation {
        pa: t.pa,
        len: t.leaf_size - (t.pa & (t.leaf_size - 1)),
    }
}
