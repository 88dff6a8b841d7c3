//! Driver properties of an IOMMU instance in the description, and their mapping
//! to the drivers' configurations.

use serde::{Deserialize, Serialize};

use drivers::{SmmuV3Config, VtdConfig};

/// `[iommu.properties]` of a `driver = "vtd"` instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VtdProps {
    /// 39, 48 or 57.
    pub address_width: u32,
    /// Second-stage superpages: any of `"2M"`, `"1G"`.
    pub superpages: Vec<String>,
    /// Snoop control (ECAP.SC).
    pub snoop_control: bool,
    /// Second-stage A/D bits (ECAP.SLADS).
    pub dirty_tracking: bool,
    /// Nested translation (ECAP.NEST).
    pub nesting: bool,
    /// PASID width, 0 for none.
    pub pasid_bits: u32,
    /// Page-walk coherency.
    pub coherent: bool,
    /// Scalable mode.
    pub scalable_mode: bool,
    /// Interrupt remapping: MSIs isolated, so iommufd may bind the devices.
    pub interrupt_remapping: bool,
}

impl Default for VtdProps {
    fn default() -> Self {
        VtdProps::from_config(&VtdConfig::default())
    }
}

impl VtdProps {
    /// The properties of a driver configuration.
    pub fn from_config(c: &VtdConfig) -> VtdProps {
        let mut superpages = Vec::new();
        if c.superpage_2m {
            superpages.push("2M".into());
        }
        if c.superpage_1g {
            superpages.push("1G".into());
        }
        VtdProps {
            address_width: c.address_width,
            superpages,
            snoop_control: c.snoop_control,
            dirty_tracking: c.dirty_tracking,
            nesting: c.nesting,
            pasid_bits: c.pasid_bits,
            coherent: c.coherent,
            scalable_mode: c.scalable_mode,
            interrupt_remapping: c.interrupt_remapping,
        }
    }

    /// The driver configuration of instance `name`.
    ///
    /// # Errors
    /// A message for an unknown superpage size or impossible hardware.
    pub fn to_config(&self, name: &str) -> Result<VtdConfig, String> {
        for s in &self.superpages {
            if s != "2M" && s != "1G" {
                return Err(format!(
                    "superpages: unknown size {s:?} (expected \"2M\", \"1G\")"
                ));
            }
        }
        let cfg = VtdConfig {
            name: name.into(),
            address_width: self.address_width,
            superpage_2m: self.superpages.iter().any(|s| s == "2M"),
            superpage_1g: self.superpages.iter().any(|s| s == "1G"),
            snoop_control: self.snoop_control,
            dirty_tracking: self.dirty_tracking,
            nesting: self.nesting,
            pasid_bits: self.pasid_bits,
            coherent: self.coherent,
            scalable_mode: self.scalable_mode,
            interrupt_remapping: self.interrupt_remapping,
        };
        cfg.validate().map_err(|e| e.0)?;
        Ok(cfg)
    }
}

/// `[iommu.properties]` of a `driver = "smmuv3"` instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmmuV3Props {
    /// Any of `"4K"`, `"16K"`, `"64K"`.
    pub granules: Vec<String>,
    /// Any of 1, 2.
    pub stages: Vec<u32>,
    /// Output address size: 32, 36, 40, 42, 44 or 48.
    pub oas: u32,
    /// AArch32 tables too (IAS at least 40 bits).
    pub ttf_aarch32: bool,
    /// `"none"`, `"access"` or `"dirty"` (IDR0.HTTU).
    pub httu: String,
    /// Coherent table walks (IDR0.COHACC).
    pub coherent: bool,
    /// SSID (PASID) width, 0 for none.
    pub ssid_bits: u32,
    /// Stream ID width.
    pub sid_bits: u32,
    /// Implement `domain_alloc_user` (finalize at allocation), as 6.12 does.
    pub domain_alloc_user: bool,
    /// MSIs isolated by the interrupt controller (GICv3 ITS).
    pub isolated_msi: bool,
}

impl Default for SmmuV3Props {
    fn default() -> Self {
        SmmuV3Props::from_config(&SmmuV3Config::default())
    }
}

impl SmmuV3Props {
    /// The properties of a driver configuration.
    pub fn from_config(c: &SmmuV3Config) -> SmmuV3Props {
        let granules = [
            (c.granule_4k, "4K"),
            (c.granule_16k, "16K"),
            (c.granule_64k, "64K"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, g)| g.to_string())
        .collect();
        let stages = [(c.stage1, 1), (c.stage2, 2)]
            .into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, s)| s)
            .collect();
        let httu = match (c.httu_access, c.httu_dirty) {
            (_, true) => "dirty",
            (true, false) => "access",
            _ => "none",
        };
        SmmuV3Props {
            granules,
            stages,
            oas: c.oas,
            ttf_aarch32: c.ttf_aarch32,
            httu: httu.into(),
            coherent: c.coherent,
            ssid_bits: c.ssid_bits,
            sid_bits: c.sid_bits,
            domain_alloc_user: c.domain_alloc_user,
            isolated_msi: c.isolated_msi,
        }
    }

    /// The driver configuration of instance `name`.
    ///
    /// # Errors
    /// A message for an unknown granule, stage or HTTU level, or impossible hardware.
    pub fn to_config(&self, name: &str) -> Result<SmmuV3Config, String> {
        for g in &self.granules {
            if !["4K", "16K", "64K"].contains(&g.as_str()) {
                return Err(format!(
                    "granules: unknown granule {g:?} (expected \"4K\", \"16K\", \"64K\")"
                ));
            }
        }
        for s in &self.stages {
            if *s != 1 && *s != 2 {
                return Err(format!("stages: unknown stage {s} (expected 1, 2)"));
            }
        }
        let (httu_access, httu_dirty) = match self.httu.as_str() {
            "none" => (false, false),
            "access" => (true, false),
            "dirty" => (true, true),
            other => {
                return Err(format!(
                    "httu: unknown level {other:?} (expected \"none\", \"access\", \"dirty\")"
                ))
            }
        };
        let has = |g: &str| self.granules.iter().any(|x| x == g);
        let cfg = SmmuV3Config {
            name: name.into(),
            granule_4k: has("4K"),
            granule_16k: has("16K"),
            granule_64k: has("64K"),
            stage1: self.stages.contains(&1),
            stage2: self.stages.contains(&2),
            oas: self.oas,
            ttf_aarch32: self.ttf_aarch32,
            httu_access,
            httu_dirty,
            coherent: self.coherent,
            ssid_bits: self.ssid_bits,
            sid_bits: self.sid_bits,
            domain_alloc_user: self.domain_alloc_user,
            isolated_msi: self.isolated_msi,
        };
        cfg.validate().map_err(|e| e.0)?;
        Ok(cfg)
    }
}

/// `[iommu.properties]` of a `driver = "mock"` instance: none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockProps {}
