//! The host topology: IOMMU instances, the devices they probed, and the groups.
//!
//! Probing a device asks its IOMMU instance to take it, computes its PASID width,
//! puts it in a group (a new one, or the instance's group for the same key), and,
//! for the first device of a group, chooses and attaches the default domain.
//!
//! Kernel: `drivers/iommu/iommu.c` (`__iommu_probe_device`,
//! `iommu_get_default_domain_type`, `iommu_setup_default_domain`), v6.12.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use uapi::Errno;

use crate::device::{Device, DeviceDesc, Group};
use crate::ops::{alloc_flags, GroupKey, IommuOps, ProbeInfo};
use crate::resv::ResvType;
use crate::{Domain, DomainType};

/// The global default-domain policy (`iommu.passthrough`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DefaultPolicy {
    /// Translate DMA-API mappings (`IOMMU_DOMAIN_DMA`).
    #[default]
    Dma,
    /// Pass DMA through untranslated (`IOMMU_DOMAIN_IDENTITY`).
    Passthrough,
}

#[derive(Default)]
struct Inner {
    devices: BTreeMap<u64, Arc<Device>>,
    shared_groups: HashMap<(usize, u64), Weak<Group>>,
    next_dev_id: u64,
    next_group_id: u32,
}

/// A set of IOMMU instances and their devices.
#[derive(Default)]
pub struct Platform {
    policy: DefaultPolicy,
    inner: Mutex<Inner>,
}

fn instance_key(ops: &Arc<dyn IommuOps>) -> usize {
    Arc::as_ptr(ops) as *const () as usize
}

impl Platform {
    /// An empty platform with the given default-domain policy.
    pub fn new(policy: DefaultPolicy) -> Platform {
        Platform {
            policy,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Probes `desc` behind `ops` (`iommu_probe_device`) and returns the device,
    /// attached to its group's domain.
    ///
    /// # Errors
    /// `ENODEV` if the instance does not take it or no default domain fits; the
    /// driver's errno.
    pub fn probe(&self, ops: &Arc<dyn IommuOps>, desc: DeviceDesc) -> Result<Arc<Device>, Errno> {
        let info = ops.probe_device(&desc)?;
        let max_pasids = match desc.pasid_bits {
            0 => 0,
            bits => (1u32.checked_shl(bits).unwrap_or(u32::MAX)).min(info.max_pasids),
        };
        let mut inner = self.lock();
        let group = self.group_for(&mut inner, ops, ops.device_group(&desc));
        inner.next_dev_id += 1;
        let id = inner.next_dev_id;
        // The driver reports reserved regions of a probed device only; ask with a
        // provisional device, then build the real one.
        let probe_dev = Device::new(
            id,
            desc.clone(),
            ops.clone(),
            group.clone(),
            max_pasids,
            ProbeInfo {
                attach_deferred: false,
                ..info
            },
            false,
        );
        let require_direct = ops
            .get_resv_regions(&probe_dev)
            .iter()
            .any(|r| r.ty == ResvType::Direct);
        let dev = Arc::new(Device::new(
            id,
            desc,
            ops.clone(),
            group.clone(),
            max_pasids,
            info,
            require_direct,
        ));
        let mut g = group.add_device(dev.clone());
        let res = if g.default_domain.is_none() {
            self.alloc_default_domain(ops, &g.devices)
                .and_then(|domain| Group::setup_default_domain(&mut g, &group, domain))
        } else {
            Group::attach_new_device(&mut g, &group, &dev)
        };
        drop(g);
        if let Err(err) = res {
            group.remove_device(&dev);
            return Err(err);
        }
        inner.devices.insert(id, dev.clone());
        Ok(dev)
    }

    fn group_for(&self, inner: &mut Inner, ops: &Arc<dyn IommuOps>, key: GroupKey) -> Arc<Group> {
        let keys = match key {
            GroupKey::Singleton => Vec::new(),
            GroupKey::Shared(keys) => keys,
        };
        let instance = instance_key(ops);
        let existing = keys.iter().find_map(|&k| {
            inner
                .shared_groups
                .get(&(instance, k))
                .and_then(Weak::upgrade)
        });
        let group = existing.unwrap_or_else(|| {
            inner.next_group_id += 1;
            Arc::new(Group::new(inner.next_group_id - 1))
        });
        for k in keys {
            inner
                .shared_groups
                .entry((instance, k))
                .and_modify(|w| {
                    if w.strong_count() == 0 {
                        *w = Arc::downgrade(&group);
                    }
                })
                .or_insert_with(|| Arc::downgrade(&group));
        }
        group
    }

    /// Chooses and allocates a group's default domain (`iommu_get_default_domain_type`
    /// and `iommu_group_alloc_default_domain`).
    fn alloc_default_domain(
        &self,
        ops: &Arc<dyn IommuOps>,
        devices: &[Arc<Device>],
    ) -> Result<Arc<dyn Domain>, Errno> {
        if let Some(static_default) = ops.default_domain() {
            return Ok(static_default);
        }
        let mut driver_type: Option<DomainType> = None;
        let mut untrusted = false;
        for dev in devices {
            if let Some(ty) = ops.def_domain_type(dev) {
                driver_type = match driver_type {
                    None => Some(ty),
                    Some(cur) if cur == ty => Some(cur),
                    // Conflicting requests: identity takes precedence.
                    Some(_) if ty == DomainType::Identity => Some(ty),
                    Some(cur) => Some(cur),
                };
            }
            untrusted |= dev.desc().untrusted;
        }
        if untrusted {
            if driver_type.is_some_and(|t| t != DomainType::Dma) {
                return Err(Errno::NODEV);
            }
            driver_type = Some(DomainType::Dma);
        }
        let ty = driver_type.unwrap_or(match self.policy {
            DefaultPolicy::Dma => DomainType::Dma,
            DefaultPolicy::Passthrough => DomainType::Identity,
        });
        let dev = &devices[0];
        let pasid = devices.iter().any(|d| d.max_pasids() > 0);
        alloc_domain(ops, dev, ty, pasid).or_else(|err| {
            if ty == DomainType::Dma {
                Err(err)
            } else {
                alloc_domain(ops, dev, DomainType::Dma, pasid)
            }
        })
    }

    /// Removes a device (`iommu_release_device`).
    pub fn remove_device(&self, dev: &Arc<Device>) {
        dev.group().remove_device(dev);
        self.lock().devices.remove(&dev.id());
    }

    /// Every probed device, in probe order.
    pub fn devices(&self) -> Vec<Arc<Device>> {
        self.lock().devices.values().cloned().collect()
    }
}

/// `__iommu_domain_alloc`: a domain of `ty` for `dev` from its instance; a
/// PASID-compatible one if `pasid` (the group has PASID-capable devices).
fn alloc_domain(
    ops: &Arc<dyn IommuOps>,
    dev: &Device,
    ty: DomainType,
    pasid: bool,
) -> Result<Arc<dyn Domain>, Errno> {
    match ty {
        DomainType::Identity => match ops.identity_domain() {
            Some(d) => Ok(d),
            None => ops.domain_alloc(ty),
        },
        DomainType::Blocked => match ops.blocked_domain() {
            Some(d) => Ok(d),
            None => ops.domain_alloc(ty),
        },
        _ if pasid => ops.domain_alloc_paging_flags(dev, alloc_flags::PASID),
        _ => ops
            .domain_alloc_paging(dev)
            .or_else(|_| ops.domain_alloc(ty)),
    }
}

/// `iommu_paging_domain_alloc`: a paging domain for `dev` on its own instance.
///
/// # Errors
/// The driver's errno.
pub fn paging_domain_alloc(dev: &Device) -> Result<Arc<dyn Domain>, Errno> {
    dev.ops().domain_alloc_paging(dev)
}
