//! The VT-d capability (CAP_REG) and extended capability (ECAP_REG) registers,
//! synthesized from an instance's properties and decoded with the kernel's macros.
//!
//! Spec: Intel VT-d Architecture Specification §11.4.2 "Capability Register" and
//! §11.4.3 "Extended Capability Register". Kernel: `drivers/iommu/intel/iommu.h`
//! (`cap_*`, `ecap_*`, `sm_supported`, `pasid_supported`, `ssads_supported`,
//! `nested_supported`), v6.12.

use super::VtdConfig;

/// The two capability registers of one instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VtdRegs {
    /// CAP_REG.
    pub cap: u64,
    /// ECAP_REG.
    pub ecap: u64,
}

const fn bit(b: u32) -> u64 {
    1 << b
}

const fn field(v: u64, shift: u32, mask: u64) -> u64 {
    (v & mask) << shift
}

const fn get(reg: u64, shift: u32, mask: u64) -> u64 {
    (reg >> shift) & mask
}

impl VtdRegs {
    /// The registers of an instance with these properties.
    pub fn from_config(cfg: &VtdConfig) -> VtdRegs {
        let width = u64::from(cfg.address_width);
        // SAGAW bit 1: 39-bit (3-level), bit 2: 48-bit (4-level), bit 3: 57-bit
        // (5-level); every level count up to the width is supported.
        let sagaw = match cfg.address_width {
            39 => 0b0010,
            48 => 0b0110,
            _ => 0b1110,
        };
        let sllps = u64::from(cfg.superpage_2m) | u64::from(cfg.superpage_1g) << 1;
        let first_stage = cfg.scalable_mode && (cfg.nesting || cfg.pasid_bits > 0);
        let cap = field(6, 0, 0x7) // ND: 2^16 domain IDs
            | bit(5) | bit(6) // PLMR, PHMR
            | field(sagaw, 8, 0x1f)
            | field(width - 1, 16, 0x3f) // MGAW
            | field(0x40, 24, 0x3ff) // FRO: fault recording at 0x400
            | field(sllps, 34, 0xf)
            | bit(39) // PSI
            | field(7, 40, 0xff) // NFR: 8 fault recording registers
            | field(18, 48, 0x3f) // MAMV
            | bit(54) | bit(55) // DWD, DRD
            | if first_stage { bit(56) } else { 0 } // FL1GP
            | if first_stage && cfg.address_width == 57 { bit(60) } else { 0 }; // FL5LP
        let pasid = cfg.scalable_mode && cfg.pasid_bits > 0;
        let ecap = u64::from(cfg.coherent) // C: page-walk coherency
            | bit(1) | bit(2) | bit(3) | bit(4) // QI, DT, IR, EIM
            | bit(6) // PT: pass-through
            | if cfg.snoop_control { bit(7) } else { 0 } // SC
            | field(0x50, 8, 0x3ff) // IRO: IOTLB registers at 0x500
            | field(0xf, 20, 0xf) // MHMV
            | if cfg.scalable_mode && cfg.nesting { bit(26) } else { 0 } // NEST
            | if pasid { bit(29) | bit(31) } else { 0 } // PRS, SRS
            | if pasid { field(u64::from(cfg.pasid_bits) - 1, 35, 0x1f) | bit(40) } else { 0 } // PSS, PASID
            | if cfg.scalable_mode { bit(43) | bit(46) } else { 0 } // SMTS, SLTS
            | if cfg.scalable_mode && cfg.dirty_tracking { bit(45) } else { 0 } // SLADS
            | if first_stage { bit(47) } else { 0 } // FLTS
            | if cfg.scalable_mode && cfg.coherent { bit(48) } else { 0 }; // SMPWC
        VtdRegs { cap, ecap }
    }

    /// `cap_sagaw`: supported adjusted guest address widths.
    pub fn sagaw(&self) -> u64 {
        get(self.cap, 8, 0x1f)
    }

    /// `cap_mgaw`: maximum guest address width in bits.
    pub fn mgaw(&self) -> u32 {
        get(self.cap, 16, 0x3f) as u32 + 1
    }

    /// `cap_super_page_val`: SLLPS (bit 0: 2 MiB, bit 1: 1 GiB).
    pub fn super_page_val(&self) -> u64 {
        get(self.cap, 34, 0xf)
    }

    /// `cap_fl5lp_support`: first-stage 5-level paging.
    pub fn fl5lp(&self) -> bool {
        get(self.cap, 60, 1) != 0
    }

    /// `ecap_coherent`: page-walk coherency.
    pub fn coherent(&self) -> bool {
        self.ecap & 1 != 0
    }

    /// `ecap_sc_support`: snoop control.
    pub fn sc(&self) -> bool {
        get(self.ecap, 7, 1) != 0
    }

    /// `ecap_nest`.
    pub fn nest(&self) -> bool {
        get(self.ecap, 26, 1) != 0
    }

    /// `ecap_srs`: supervisor requests.
    pub fn srs(&self) -> bool {
        get(self.ecap, 31, 1) != 0
    }

    /// `ecap_eafs`: extended accessed flag.
    pub fn eafs(&self) -> bool {
        get(self.ecap, 34, 1) != 0
    }

    /// `ecap_pss`: PASID size supported, minus one.
    pub fn pss(&self) -> u32 {
        get(self.ecap, 35, 0x1f) as u32
    }

    /// `ecap_pasid`.
    pub fn pasid(&self) -> bool {
        get(self.ecap, 40, 1) != 0
    }

    /// `ecap_smts`: scalable mode.
    pub fn smts(&self) -> bool {
        get(self.ecap, 43, 1) != 0
    }

    /// `ecap_slads`: second-stage accessed/dirty.
    pub fn slads(&self) -> bool {
        get(self.ecap, 45, 1) != 0
    }

    /// `ecap_smpwc`: scalable-mode page-walk coherency.
    pub fn smpwc(&self) -> bool {
        get(self.ecap, 48, 1) != 0
    }

    /// `sm_supported`.
    pub fn sm_supported(&self) -> bool {
        self.smts()
    }

    /// `pasid_supported`.
    pub fn pasid_supported(&self) -> bool {
        self.sm_supported() && self.pasid()
    }

    /// `ssads_supported`: second-stage dirty tracking.
    pub fn ssads_supported(&self) -> bool {
        self.sm_supported() && self.slads() && self.smpwc()
    }

    /// `nested_supported`.
    pub fn nested_supported(&self) -> bool {
        self.sm_supported() && self.nest()
    }

    /// The instance's address width: the widest SAGAW, capped by MGAW (`agaw_to_width`
    /// of `iommu->agaw`, then `cap_mgaw`).
    pub fn address_width(&self) -> u32 {
        let sagaw = self.sagaw();
        let agaw = (0..5).rev().find(|&a| sagaw & (1 << a) != 0).unwrap_or(0);
        (30 + 9 * agaw as u32).min(self.mgaw())
    }

    /// Second-stage superpage sizes as a page-size bitmap (`domain_super_pgsize_bitmap`
    /// of `iommu_superpage_capability`).
    pub fn superpage_bitmap(&self) -> u64 {
        match 64 - self.super_page_val().leading_zeros() {
            0 => 0,
            1 => 1 << 21,
            _ => 1 << 21 | 1 << 30,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_decode_back_to_the_properties() {
        let cfg = VtdConfig {
            address_width: 57,
            superpage_1g: false,
            snoop_control: false,
            pasid_bits: 16,
            ..VtdConfig::default()
        };
        let r = VtdRegs::from_config(&cfg);
        assert_eq!(r.address_width(), 57);
        assert_eq!(r.mgaw(), 57);
        assert_eq!(r.superpage_bitmap(), 1 << 21);
        assert!(!r.sc());
        assert!(r.pasid_supported());
        assert_eq!(r.pss() + 1, 16);
        assert!(r.ssads_supported());
        assert!(r.nested_supported());
        assert!(r.fl5lp());
    }

    #[test]
    fn legacy_mode_has_no_scalable_mode_features() {
        let cfg = VtdConfig {
            address_width: 39,
            scalable_mode: false,
            dirty_tracking: false,
            nesting: false,
            pasid_bits: 0,
            ..VtdConfig::default()
        };
        let r = VtdRegs::from_config(&cfg);
        assert_eq!(r.address_width(), 39);
        assert!(!r.sm_supported() && !r.pasid_supported());
        assert!(!r.ssads_supported() && !r.nested_supported());
        assert_eq!(r.superpage_bitmap(), 1 << 21 | 1 << 30);
    }
}
