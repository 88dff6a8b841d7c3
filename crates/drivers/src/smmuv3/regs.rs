//! The SMMUv3 ID registers (`SMMU_IDR0..5`, `SMMU_IIDR`, `SMMU_AIDR`), synthesized
//! from an instance's properties and decoded as the kernel's probe does.
//!
//! Spec: Arm SMMUv3 Architecture Specification (IHI 0070) §6.3.1 SMMU_IDR0,
//! §6.3.2 SMMU_IDR1, §6.3.4 SMMU_IDR3, §6.3.6 SMMU_IDR5, §6.3.7 SMMU_IIDR,
//! §6.3.8 SMMU_AIDR. Kernel: `drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h`
//! (`IDR0_*` ... `IDR5_*`), `arm_smmu_device_hw_probe`, v6.12.

use super::SmmuV3Config;

/// IDR0.S2P: stage 2 translation.
pub const IDR0_S2P: u32 = 1 << 0;
/// IDR0.S1P: stage 1 translation.
pub const IDR0_S1P: u32 = 1 << 1;
/// IDR0.TTF: AArch64 tables.
pub const IDR0_TTF_AARCH64: u32 = 2;
/// IDR0.TTF: AArch32 (LPAE) and AArch64 tables.
pub const IDR0_TTF_AARCH32_64: u32 = 3;
/// IDR0.COHACC: coherent access to tables and queues.
pub const IDR0_COHACC: u32 = 1 << 4;
/// IDR0.HTTU: hardware update of the access flag.
pub const IDR0_HTTU_ACCESS: u32 = 1;
/// IDR0.HTTU: hardware update of the access flag and dirty state.
pub const IDR0_HTTU_ACCESS_DIRTY: u32 = 2;
/// IDR5.GRAN4K.
pub const IDR5_GRAN4K: u32 = 1 << 4;
/// IDR5.GRAN16K.
pub const IDR5_GRAN16K: u32 = 1 << 5;
/// IDR5.GRAN64K.
pub const IDR5_GRAN64K: u32 = 1 << 6;
/// IIDR.Implementer of Arm (JEP106).
pub const IIDR_IMPLEMENTER_ARM: u32 = 0x43b;

/// The ID registers of one instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmmuRegs {
    /// `SMMU_IDR0` .. `SMMU_IDR5`.
    pub idr: [u32; 6],
    /// `SMMU_IIDR`.
    pub iidr: u32,
    /// `SMMU_AIDR`.
    pub aidr: u32,
}

/// IDR5.OAS encoding of an output address size.
pub fn oas_encoding(oas: u32) -> Option<u32> {
    Some(match oas {
        32 => 0,
        36 => 1,
        40 => 2,
        42 => 3,
        44 => 4,
        48 => 5,
        52 => 6,
        _ => return None,
    })
}

impl SmmuRegs {
    /// The registers of an instance with these properties.
    pub fn from_config(cfg: &SmmuV3Config) -> SmmuRegs {
        let httu = match (cfg.httu_access, cfg.httu_dirty) {
            (_, true) => IDR0_HTTU_ACCESS_DIRTY,
            (true, false) => IDR0_HTTU_ACCESS,
            _ => 0,
        };
        let ttf = if cfg.ttf_aarch32 {
            IDR0_TTF_AARCH32_64
        } else {
            IDR0_TTF_AARCH64
        };
        let idr0 = 1 << 27 // ST_LVL: 2-level stream table
            | 1 << 24 // STALL_MODEL: stall not supported
            | 2 << 21 // TTENDIAN: little endian
            | 1 << 19 // CD2L
            | 1 << 18 // VMID16
            | 1 << 14 // SEV
            | 1 << 13 // MSI
            | 1 << 12 // ASID16
            | 1 << 9 // HYP
            | httu << 6
            | if cfg.coherent { IDR0_COHACC } else { 0 }
            | ttf << 2
            | if cfg.stage1 { IDR0_S1P } else { 0 }
            | if cfg.stage2 { IDR0_S2P } else { 0 };
        let idr1 = 19 << 21 // CMDQS
            | 19 << 16 // EVTQS
            | 19 << 11 // PRIQS
            | (cfg.ssid_bits & 0x1f) << 6
            | (cfg.sid_bits & 0x3f);
        let idr3 = 1 << 10; // RIL: range invalidation
        let idr5 = if cfg.granule_4k { IDR5_GRAN4K } else { 0 }
            | if cfg.granule_16k { IDR5_GRAN16K } else { 0 }
            | if cfg.granule_64k { IDR5_GRAN64K } else { 0 }
            | oas_encoding(cfg.oas).unwrap_or(5);
        SmmuRegs {
            idr: [idr0, idr1, 0, idr3, 0, idr5],
            iidr: IIDR_IMPLEMENTER_ARM,
            aidr: 0x2, // SMMUv3.2
        }
    }

    /// IDR0.S1P.
    pub fn stage1(&self) -> bool {
        self.idr[0] & IDR0_S1P != 0
    }

    /// IDR0.S2P.
    pub fn stage2(&self) -> bool {
        self.idr[0] & IDR0_S2P != 0
    }

    /// IDR0.COHACC (`ARM_SMMU_FEAT_COHERENCY`).
    pub fn coherent(&self) -> bool {
        self.idr[0] & IDR0_COHACC != 0
    }

    /// IDR0.HTTU.
    pub fn httu(&self) -> u32 {
        (self.idr[0] >> 6) & 3
    }

    /// `ARM_SMMU_FEAT_HD`: hardware dirty-state update.
    pub fn hd(&self) -> bool {
        self.httu() == IDR0_HTTU_ACCESS_DIRTY
    }

    /// `arm_smmu_dbm_capable`: HD and coherency.
    pub fn dbm_capable(&self) -> bool {
        self.hd() && self.coherent()
    }

    /// IDR1.SSIDSIZE.
    pub fn ssid_bits(&self) -> u32 {
        (self.idr[1] >> 6) & 0x1f
    }

    /// IDR1.SIDSIZE.
    pub fn sid_bits(&self) -> u32 {
        self.idr[1] & 0x3f
    }

    /// The output address size in bits (`smmu->oas`).
    pub fn oas(&self) -> u32 {
        match self.idr[5] & 7 {
            0 => 32,
            1 => 36,
            2 => 40,
            3 => 42,
            4 => 44,
            6 => 52,
            _ => 48,
        }
    }

    /// The input address size of stage 2 and output of stage 1 (`smmu->ias`):
    /// at least 40 bits with AArch32 tables, at least the OAS.
    pub fn ias(&self) -> u32 {
        let ttf_ias = if (self.idr[0] >> 2) & 3 == IDR0_TTF_AARCH32_64 {
            40
        } else {
            0
        };
        self.oas().max(ttf_ias)
    }

    /// Page sizes of the supported granules (`smmu->pgsize_bitmap`).
    pub fn pgsize_bitmap(&self) -> u64 {
        let mut bitmap = 0;
        if self.idr[5] & IDR5_GRAN64K != 0 {
            bitmap |= 1 << 16 | 1 << 29;
        }
        if self.idr[5] & IDR5_GRAN16K != 0 {
            bitmap |= 1 << 14 | 1 << 25;
        }
        if self.idr[5] & IDR5_GRAN4K != 0 {
            bitmap |= 1 << 12 | 1 << 21 | 1 << 30;
        }
        bitmap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_decode_back_to_the_properties() {
        let cfg = SmmuV3Config {
            granule_4k: false,
            granule_16k: true,
            granule_64k: true,
            stage1: false,
            oas: 44,
            ttf_aarch32: false,
            httu_dirty: false,
            ssid_bits: 8,
            sid_bits: 12,
            ..SmmuV3Config::default()
        };
        let r = SmmuRegs::from_config(&cfg);
        assert!(!r.stage1() && r.stage2());
        assert_eq!(r.oas(), 44);
        assert_eq!(r.ias(), 44);
        assert_eq!(r.httu(), IDR0_HTTU_ACCESS);
        assert!(!r.dbm_capable());
        assert_eq!(r.ssid_bits(), 8);
        assert_eq!(r.sid_bits(), 12);
        assert_eq!(r.pgsize_bitmap(), 1 << 14 | 1 << 25 | 1 << 16 | 1 << 29);
    }

    #[test]
    fn aarch32_tables_raise_ias_to_40_bits() {
        let cfg = SmmuV3Config {
            oas: 32,
            ttf_aarch32: true,
            ..SmmuV3Config::default()
        };
        let r = SmmuRegs::from_config(&cfg);
        assert_eq!((r.oas(), r.ias()), (32, 40));
    }
}
