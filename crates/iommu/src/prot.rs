//! IOMMU mapping permissions (`IOMMU_READ`, `IOMMU_WRITE`, ...).
//!
//! Kernel: `include/linux/iommu.h` (v6.12).

bitflags::bitflags! {
    /// The protection bits of one IOMMU mapping; values equal the kernel's `IOMMU_*` prot bits.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct Prot: u32 {
        /// The device may read.
        const READ = 1 << 0;
        /// The device may write.
        const WRITE = 1 << 1;
        /// DMA is cache coherent with the CPU.
        const CACHE = 1 << 2;
        /// The device may not execute from the mapping.
        const NOEXEC = 1 << 3;
        /// The mapping is MMIO (e.g. an MSI doorbell).
        const MMIO = 1 << 4;
        /// Privileged access only.
        const PRIV = 1 << 5;
    }
}
