//! Platform descriptions: IOMMU instances (VT-d-like, SMMUv3-like, the selftest
//! mock) with their hardware properties, a PCI topology (segments, root ports,
//! switches and bridges with ACS, functions with PASIDs, DMA aliases and RMRRs)
//! and platform devices with stream IDs, written in TOML.
//!
//! [`Description::parse`] checks a description and fills in default properties;
//! [`Description::to_toml`] prints it back (parsing the output gives the same
//! description); [`Description::build`] creates the driver instances, registers
//! each device with its instance (the firmware tables: DMAR device scopes and
//! RMRRs, IORT / device-tree `iommus`), and probes every device on one
//! [`iommu::Platform`]. [`Built::report`] says what probing produced: groups,
//! default domains, reserved regions.
//!
//! [`Description::default_platform`] is the built-in description
//! (`src/default.toml`).
//!
//! Mirrors what firmware tells Linux: the ACPI DMAR table (Intel VT-d spec §8:
//! DRHD device scopes, RMRR), the ACPI IORT / device-tree `iommus` and
//! `iommu-map` bindings, PCI topology (PCIe base spec §6.12 ACS); the kernel
//! consumes them in `drivers/iommu/intel/dmar.c`, `drivers/acpi/arm64/iort.c`,
//! `drivers/iommu/of_iommu.c` and `drivers/iommu/iommu.c` (groups), v6.12.

#![forbid(unsafe_code)]

mod desc;
pub mod props;
mod report;

use std::collections::BTreeMap;
use std::sync::Arc;

use drivers::{SmmuV3, Vtd};
use iommu::{Device, IommuOps};
use mock::MockIommu;
use uapi::Errno;

use desc::InstanceConfig;
pub use desc::{
    parse_pci_addr, Addr, BridgeDesc, Description, FunctionDesc, IommuDesc, PciDesc,
    PlatformDeviceDesc, Policy, RmrrDesc, SegmentDesc, DRIVERS,
};

/// The built-in platform description.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// Why a description cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// Not valid TOML, or not the schema (the message has the location).
    Toml(String),
    /// An instance names a driver that does not exist.
    UnknownDriver {
        /// The instance.
        instance: String,
        /// The driver it names.
        driver: String,
    },
    /// An instance property is unknown, has the wrong type, or describes
    /// impossible hardware.
    BadProperty {
        /// The instance.
        instance: String,
        /// What is wrong.
        message: String,
    },
    /// Two instances, or two devices/bridges, share a name.
    DuplicateName {
        /// `"iommu"` or `"device"`.
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// Something names an instance that does not exist.
    UnknownInstance {
        /// The device (or segment).
        device: String,
        /// The instance it names.
        instance: String,
    },
    /// A PCI function names no instance and its segment has none.
    NoInstance {
        /// The function.
        device: String,
    },
    /// Two PCI functions or bridges share an address.
    DuplicateAddress {
        /// The address.
        address: String,
        /// The first user.
        first: String,
        /// The second user.
        second: String,
    },
    /// A parent bridge that does not exist.
    UnknownParent {
        /// The device or bridge.
        device: String,
        /// The parent it names.
        parent: String,
    },
    /// Any other bad entry.
    Invalid {
        /// The device, bridge or segment.
        what: String,
        /// What is wrong.
        message: String,
    },
    /// The instance refused the device at probe.
    Probe {
        /// The device.
        device: String,
        /// Its instance.
        instance: String,
        /// The errno.
        errno: Errno,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Toml(msg) => write!(f, "{}", msg.trim_end()),
            Error::UnknownDriver { instance, driver } => write!(
                f,
                "iommu {instance:?}: unknown driver {driver:?} (expected one of {})",
                DRIVERS.join(", ")
            ),
            Error::BadProperty { instance, message } => {
                write!(f, "iommu {instance:?}: bad property: {message}")
            }
            Error::DuplicateName { kind, name } => {
                write!(f, "duplicate {kind} name {name:?}")
            }
            Error::UnknownInstance { device, instance } => {
                write!(f, "{device:?}: unknown iommu instance {instance:?}")
            }
            Error::NoInstance { device } => write!(
                f,
                "{device:?}: no iommu instance (set `iommu`, or one for its PCI segment)"
            ),
            Error::DuplicateAddress {
                address,
                first,
                second,
            } => write!(
                f,
                "duplicate PCI address {address}: used by {first:?} and {second:?}"
            ),
            Error::UnknownParent { device, parent } => {
                write!(f, "{device:?}: unknown parent bridge {parent:?}")
            }
            Error::Invalid { what, message } => write!(f, "{what:?}: {message}"),
            Error::Probe {
                device,
                instance,
                errno,
            } => write!(f, "{device:?}: probe by {instance:?} failed: {errno:?}"),
        }
    }
}

impl std::error::Error for Error {}

impl Description {
    /// Parses and checks a description, filling in default properties.
    ///
    /// # Errors
    /// The first problem found, with a message naming the entry.
    pub fn parse(text: &str) -> Result<Description, Error> {
        let mut desc: Description = toml::from_str(text).map_err(|e| Error::Toml(e.to_string()))?;
        desc.normalize()?;
        desc.plan()?;
        Ok(desc)
    }

    /// The built-in description.
    pub fn default_platform() -> Description {
        match Description::parse(DEFAULT_TOML) {
            Ok(desc) => desc,
            Err(err) => unreachable!("the built-in description is valid: {err}"),
        }
    }

    /// Checks the description without building it.
    ///
    /// # Errors
    /// As [`Description::parse`].
    pub fn check(&self) -> Result<(), Error> {
        self.plan().map(|_| ())
    }

    /// The description as TOML; [`Description::parse`] of it gives it back.
    pub fn to_toml(&self) -> String {
        match toml::to_string(self) {
            Ok(text) => text,
            Err(err) => unreachable!("a description always serializes: {err}"),
        }
    }

    /// Creates the instances and probes every device (PCI functions in order, then
    /// platform devices).
    ///
    /// # Errors
    /// As [`Description::parse`]; [`Error::Probe`] if an instance refuses a device.
    pub fn build(&self) -> Result<Built, Error> {
        let plan = self.plan()?;
        let mut instances = BTreeMap::new();
        for (name, cfg) in &plan.instances {
            let bad = |e: drivers::ConfigError| Error::BadProperty {
                instance: name.clone(),
                message: e.0,
            };
            let inst = match cfg {
                InstanceConfig::Vtd(c) => Instance::Vtd(Vtd::new(c.clone()).map_err(bad)?),
                InstanceConfig::SmmuV3(c) => Instance::SmmuV3(SmmuV3::new(c.clone()).map_err(bad)?),
                InstanceConfig::Mock => Instance::Mock(MockIommu::new()),
            };
            instances.insert(name.clone(), inst);
        }
        for d in &plan.devices {
            match &instances[&d.instance] {
                Instance::Vtd(v) => v.add_device(&d.desc.name, &d.rmrrs),
                Instance::SmmuV3(s) => s.add_device(&d.desc.name),
                Instance::Mock(_) => {}
            }
        }
        let platform = iommu::Platform::new(self.policy.into());
        let mut devices = BTreeMap::new();
        let mut order = Vec::new();
        let mut instance_of = BTreeMap::new();
        for d in plan.devices {
            let ops = instances[&d.instance].ops();
            let name = d.desc.name.clone();
            let dev = platform.probe(&ops, d.desc).map_err(|errno| Error::Probe {
                device: name.clone(),
                instance: d.instance.clone(),
                errno,
            })?;
            order.push(name.clone());
            instance_of.insert(name.clone(), d.instance.clone());
            devices.insert(name, dev);
        }
        Ok(Built {
            policy: self.policy,
            platform,
            instances,
            devices,
            order,
            instance_of,
        })
    }
}

/// A driver instance of a built platform.
#[derive(Clone)]
pub enum Instance {
    /// A VT-d-like instance.
    Vtd(Arc<Vtd>),
    /// An SMMUv3-like instance.
    SmmuV3(Arc<SmmuV3>),
    /// The selftest mock IOMMU.
    Mock(Arc<MockIommu>),
}

impl Instance {
    /// The instance as the IOMMU core sees it.
    pub fn ops(&self) -> Arc<dyn IommuOps> {
        match self {
            Instance::Vtd(v) => v.clone(),
            Instance::SmmuV3(s) => s.clone(),
            Instance::Mock(m) => m.clone(),
        }
    }

    /// The driver name used in descriptions.
    pub fn driver(&self) -> &'static str {
        match self {
            Instance::Vtd(_) => "vtd",
            Instance::SmmuV3(_) => "smmuv3",
            Instance::Mock(_) => "mock",
        }
    }
}

/// A built platform: instances and probed devices.
pub struct Built {
    policy: Policy,
    /// The IOMMU core's platform holding every device.
    pub platform: iommu::Platform,
    /// Instances by name.
    pub instances: BTreeMap<String, Instance>,
    /// Probed devices by name.
    pub devices: BTreeMap<String, Arc<Device>>,
    order: Vec<String>,
    /// Device name → instance name.
    instance_of: BTreeMap<String, String>,
}

impl Built {
    /// The device named `name`.
    pub fn device(&self, name: &str) -> Option<&Arc<Device>> {
        self.devices.get(name)
    }

    /// The instance named `name`.
    pub fn instance(&self, name: &str) -> Option<&Instance> {
        self.instances.get(name)
    }

    /// The name of the instance behind device `name`.
    pub fn instance_of(&self, name: &str) -> Option<&str> {
        self.instance_of.get(name).map(String::as_str)
    }

    /// Device names in probe order.
    pub fn probe_order(&self) -> &[String] {
        &self.order
    }

    /// The groups, in order of their first device, each with its devices' names.
    pub fn groups(&self) -> Vec<(Arc<iommu::Group>, Vec<String>)> {
        let mut out: Vec<(Arc<iommu::Group>, Vec<String>)> = Vec::new();
        for name in &self.order {
            let dev = &self.devices[name];
            match out.iter_mut().find(|(g, _)| Arc::ptr_eq(g, dev.group())) {
                Some((_, names)) => names.push(name.clone()),
                None => out.push((dev.group().clone(), vec![name.clone()])),
            }
        }
        out
    }

    /// The default-domain policy it was built with.
    pub fn policy(&self) -> Policy {
        self.policy
    }
}
