//! IOMMU page-table formats behind one [`Format`] trait, driven by one generic walker.
//!
//! Kernel: `drivers/iommu/generic_pt/` (the format/walker split, level numbering and
//! the unmap rules), `drivers/iommu/io-pgtable-arm.c` (ARM block splitting, v6.12).
//!
//! The crate owns real hardware page-table formats that emulated IOMMUs walk for
//! emulated DMA:
//!
//! | format | module | spec |
//! |---|---|---|
//! | Intel VT-d second stage, 3/4/5 levels | [`fmt::vtdss`] | VT-d spec §3.7, §9.8 |
//! | x86-64 / VT-d first stage, 4/5 levels | [`fmt::x86_64`] | Intel SDM vol. 3A §4.5; VT-d §9.7 |
//! | AMD IOMMU v1 host tables, 1–6 levels | [`fmt::amdv1`] | AMD IOMMU spec §2.2.3 |
//! | ARMv8 VMSA (LPAE), 4K/16K/64K, stage 1/2 | [`fmt::armv8`] | Arm ARM D8.3–D8.6 |
//! | iommufd selftest mock (AMDv1, 2 KiB granule) | [`fmt::mock`] | AMD §2.2.3, generic_pt `iommu_mock.c` |
//!
//! Key types: [`Format`] (what a format tells the walker), [`PageTable`] (the
//! table: map, unmap, translate, dirty tracking), [`Prot`] and [`Translation`].
//!
//! Levels are numbered as in generic_pt: level 0 holds the smallest leaves (the
//! granule), the top table has level `levels - 1`.
//!
//! Table memory is a safe arena of `AtomicU64` words indexed by fake physical
//! addresses (see [`PageTable`]'s "Memory and concurrency"); there is no `unsafe`
//! in this crate.
#![forbid(unsafe_code)]

mod arena;
mod audit;
pub mod fmt;
mod format;
mod iotlb;
pub mod log2;
mod lookup;
mod table;
mod walk;

pub use audit::LeafEntry;
pub use format::{EntryKind, Format, Geometry, PartialUnmap};
pub use iotlb::SMALL as IOTLB_SLOTS;
pub use table::{DirtySink, PageTable, Run, Translation};
pub use uapi::Errno;

bitflags::bitflags! {
    /// Mapping permissions and attributes, bit-compatible with Linux's `IOMMU_READ` ...
    /// `IOMMU_PRIV` (`include/linux/iommu.h`), so callers convert with `from_bits`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct Prot: u32 {
        /// `IOMMU_READ`: DMA reads allowed.
        const READ = 1;
        /// `IOMMU_WRITE`: DMA writes allowed.
        const WRITE = 2;
        /// `IOMMU_CACHE`: coherent (snooped / write-back cacheable) access.
        const CACHE = 4;
        /// `IOMMU_NOEXEC`: no instruction fetch.
        const NOEXEC = 8;
        /// `IOMMU_MMIO`: device memory.
        const MMIO = 16;
        /// `IOMMU_PRIV`: privileged-only access.
        const PRIV = 32;
    }
}
