//! I/O page faults: routing a device's page request to the handler of the domain
//! attached where the fault belongs, grouping partial requests, and responding.
//!
//! Kernel: `drivers/iommu/io-pgfault.c`, `include/linux/iommu.h` (`struct
//! iommu_fault`, `iopf_group`), v6.12.

use std::sync::Arc;

use uapi::Errno;

use crate::device::{AttachHandle, Device, NO_PASID};
use crate::DomainType;

/// `IOMMU_FAULT_PAGE_REQUEST_PASID_VALID`.
pub const FAULT_PASID_VALID: u32 = 1 << 0;
/// `IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE`: the last request of a group.
pub const FAULT_LAST_PAGE: u32 = 1 << 1;
/// `IOMMU_FAULT_PAGE_RESPONSE_NEEDS_PASID`.
pub const FAULT_RESPONSE_NEEDS_PASID: u32 = 1 << 2;

/// `IOMMU_FAULT_PERM_READ`.
pub const FAULT_PERM_READ: u32 = 1 << 0;
/// `IOMMU_FAULT_PERM_WRITE`.
pub const FAULT_PERM_WRITE: u32 = 1 << 1;
/// `IOMMU_FAULT_PERM_EXEC`.
pub const FAULT_PERM_EXEC: u32 = 1 << 2;
/// `IOMMU_FAULT_PERM_PRIV`.
pub const FAULT_PERM_PRIV: u32 = 1 << 3;

/// One page request (`struct iommu_fault_page_request`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct IopfFault {
    /// `FAULT_*` flags.
    pub flags: u32,
    /// PASID, if `FAULT_PASID_VALID`.
    pub pasid: u32,
    /// Page request group index.
    pub grpid: u32,
    /// `FAULT_PERM_*` permissions requested.
    pub perm: u32,
    /// Faulting address.
    pub addr: u64,
}

/// How a page request group is completed (`enum iommu_page_response_code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageResponseCode {
    /// The fault was fixed; retry.
    Success,
    /// The fault cannot be fixed; do not retry.
    Invalid,
    /// Generic failure; stop issuing requests.
    Failure,
}

/// A complete page request group delivered to a handler (`struct iopf_group`).
pub struct IopfGroup {
    /// The faulting device.
    pub dev: Arc<Device>,
    /// The requests, the last (`FAULT_LAST_PAGE`) one last.
    pub faults: Vec<IopfFault>,
    /// The attach handle the fault was routed to.
    pub handle: AttachHandle,
}

impl IopfGroup {
    /// Completes the group at the device (`iopf_group_response`).
    pub fn respond(&self, code: PageResponseCode) {
        if let Some(last) = self.faults.last() {
            self.dev.ops().page_response(&self.dev, last, code);
        }
    }
}

/// The fault handler of a domain (`domain->iopf_handler`), carried by the attach
/// handle of whoever attached it.
pub trait IopfHandler: Send + Sync {
    /// Takes a group; must eventually call [`IopfGroup::respond`].
    ///
    /// # Errors
    /// On error the core answers the group with `Failure`.
    fn handle(&self, group: IopfGroup) -> Result<(), Errno>;
}

/// Routes a page request from `dev` (`iommu_report_device_fault`).
///
/// # Errors
/// `EINVAL` if no handler takes it (it is then answered `Invalid`); `ENOMEM`.
pub fn report_device_fault(dev: &Arc<Device>, fault: IopfFault) -> Result<(), Errno> {
    let Some(handle) = find_fault_handler(dev, &fault) else {
        dev.ops()
            .page_response(dev, &fault, PageResponseCode::Invalid);
        return Err(Errno::INVAL);
    };
    let Some(partial) = dev.iopf_partial() else {
        debug_assert!(false, "fault-capable domain attached without IOPF enabled");
        dev.ops()
            .page_response(dev, &fault, PageResponseCode::Invalid);
        return Err(Errno::INVAL);
    };
    if fault.flags & FAULT_LAST_PAGE == 0 {
        partial.push(fault);
        return Ok(());
    }
    let mut faults: Vec<IopfFault> = partial.take_group(fault.grpid);
    faults.push(fault);
    let Some(handler) = handle.iopf.clone() else {
        return Err(Errno::INVAL);
    };
    let group = IopfGroup {
        dev: dev.clone(),
        faults,
        handle,
    };
    let last = fault;
    if handler.handle(group).is_err() {
        dev.ops()
            .page_response(dev, &last, PageResponseCode::Failure);
    }
    Ok(())
}

/// `find_fault_handler`: the attach handle whose domain handles this fault.
fn find_fault_handler(dev: &Device, fault: &IopfFault) -> Option<AttachHandle> {
    let group = dev.group();
    let handle = if fault.flags & FAULT_PASID_VALID != 0 {
        match group.handle(fault.pasid) {
            Some(h) => h,
            None => {
                if !dev.ops().user_pasid_table() {
                    return None;
                }
                let h = group.handle(NO_PASID)?;
                if h.domain.domain_type() != DomainType::Nested {
                    return None;
                }
                h
            }
        }
    } else {
        group.handle(NO_PASID)?
    };
    handle.iopf.as_ref()?;
    Some(handle)
}
