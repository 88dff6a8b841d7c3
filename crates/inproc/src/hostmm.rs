//! [`HostMm`]: the memory of this very process as iommufd's `UserMemory`.
//!
//! Physical addresses are user virtual addresses (identity): a pinned page's "PA"
//! is its VA, so page tables and DMA copies use user addresses directly. Pinning
//! checks the mapping with the kernel's GUP rules (present, readable, writable for
//! a write pin) and records a per-page pin count; it does not keep pages alive
//! after `munmap`, which is a documented limit of in-process mode. A run is
//! physically contiguous only within its backing page (4 KiB, or the hugetlb page
//! size), so IO page tables use large pages exactly where the kernel would.
//!
//! Every user access goes through `host::uaccess`, so bad addresses give `EFAULT`
//! and never crash the program.

use std::sync::atomic::{AtomicU64, Ordering};

use iommufd::mm::{AccountMode, Cap, PhysRun, UserMemory, PAGE_SIZE};
use uapi::Errno;

/// The per-user `locked_vm` (shared by every context of the process; the kernel
/// shares it with every process of the user).
static USER_LOCKED_VM: AtomicU64 = AtomicU64::new(0);

/// The environment variable that overrides capabilities of the emulated program.
pub const CAPS_ENV: &str = "IOMMUFD_CAPS";

/// Capability overrides from [`CAPS_ENV`]: a comma-separated list of `+name` (the
/// program is treated as having it) or `-name` (as lacking it), names
/// `ipc_lock`, `sys_resource`, `sys_rawio`. Like running the program with other
/// privileges; for environments whose bounding set lacks a capability a test needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapOverrides {
    grant: u8,
    deny: u8,
}

impl CapOverrides {
    fn bit(cap: Cap) -> u8 {
        match cap {
            Cap::IpcLock => 1,
            Cap::SysResource => 2,
            Cap::SysRawio => 4,
        }
    }

    /// Parses the [`CAPS_ENV`] syntax; unknown entries are ignored.
    pub fn parse(spec: &str) -> CapOverrides {
        let mut o = CapOverrides::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (grant, name) = match item.split_at(1) {
                ("+", name) => (true, name),
                ("-", name) => (false, name),
                _ => (true, item),
            };
            let cap = match name {
                "ipc_lock" => Cap::IpcLock,
                "sys_resource" => Cap::SysResource,
                "sys_rawio" => Cap::SysRawio,
                _ => continue,
            };
            if grant {
                o.grant |= Self::bit(cap);
                o.deny &= !Self::bit(cap);
            } else {
                o.deny |= Self::bit(cap);
                o.grant &= !Self::bit(cap);
            }
        }
        o
    }

    /// The override for `cap`, if any.
    pub fn get(&self, cap: Cap) -> Option<bool> {
        let b = Self::bit(cap);
        if self.grant & b != 0 {
            Some(true)
        } else if self.deny & b != 0 {
            Some(false)
        } else {
            None
        }
    }
}

/// This process's memory.
#[derive(Default)]
pub struct HostMm {
    /// The per-mm `locked_vm` charged in [`AccountMode::Mm`].
    mm_locked_vm: AtomicU64,
    caps: CapOverrides,
}

impl HostMm {
    /// A view of this process's memory, with capability overrides from [`CAPS_ENV`].
    pub fn new() -> HostMm {
        let caps = std::env::var(CAPS_ENV)
            .map(|s| CapOverrides::parse(&s))
            .unwrap_or_default();
        HostMm::with_caps(caps)
    }

    /// A view of this process's memory with explicit capability overrides.
    pub fn with_caps(caps: CapOverrides) -> HostMm {
        HostMm {
            mm_locked_vm: AtomicU64::new(0),
            caps,
        }
    }

    /// Pages currently charged to the user (for leak checks).
    pub fn user_locked_vm() -> u64 {
        USER_LOCKED_VM.load(Ordering::Acquire)
    }

    /// Pages currently charged to this mm (for leak checks).
    pub fn mm_locked_vm(&self) -> u64 {
        self.mm_locked_vm.load(Ordering::Acquire)
    }
}

/// Charges `npages` against `limit_pages`, atomically (`incr_user_locked_vm`).
fn charge(counter: &AtomicU64, npages: u64, limit_pages: u64) -> Result<(), Errno> {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
            cur.checked_add(npages).filter(|&new| new <= limit_pages)
        })
        .map(|_| ())
        .map_err(|_| Errno::NOMEM)
}

fn uncharge(counter: &AtomicU64, npages: u64) {
    let res = counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
        cur.checked_sub(npages)
    });
    debug_assert!(res.is_ok(), "locked_vm underflow");
}

impl UserMemory for HostMm {
    fn read(&self, va: u64, dst: &mut [u8]) -> Result<(), Errno> {
        fault::fail_point!(fault::Site::CopyFromUser, Errno::FAULT);
        host::uaccess::copy_from_user(dst, va)
    }

    fn read_ahead(&self, va: u64, dst: &mut [u8]) -> Result<(), Errno> {
        host::uaccess::copy_from_user(dst, va)
    }

    fn write(&self, va: u64, src: &[u8]) -> Result<(), Errno> {
        fault::fail_point!(fault::Site::CopyToUser, Errno::FAULT);
        host::uaccess::copy_to_user(va, src)
    }

    fn pin(&self, va: u64, npages: u64, write: bool, out: &mut Vec<PhysRun>) -> Result<(), Errno> {
        fault::fail_point!(fault::Site::Pin, Errno::NOMEM);
        let len = npages.checked_mul(PAGE_SIZE).ok_or(Errno::FAULT)?;
        for span in host::vma::check_range(va, len, write)? {
            out.push(PhysRun {
                pa: span.start,
                npages: (span.end - span.start) / PAGE_SIZE,
                max_pgsize: span.page_size,
            });
        }
        host::pins::pin(va, npages);
        Ok(())
    }

    fn unpin(&self, va: u64, npages: u64) {
        host::pins::unpin(va, npages);
    }

    fn read_phys(&self, pa: u64, dst: &mut [u8]) -> Result<(), Errno> {
        host::uaccess::copy_from_user(dst, pa)
    }

    fn write_phys(&self, pa: u64, src: &[u8]) -> Result<(), Errno> {
        host::uaccess::copy_to_user(pa, src)
    }

    fn resolve(&self, va: u64) -> Result<u64, Errno> {
        let page = va & !(PAGE_SIZE - 1);
        host::vma::check_range(page, PAGE_SIZE, false)?;
        Ok(page)
    }

    fn pin_count(&self, va: u64) -> Result<Option<u32>, Errno> {
        let page = va & !(PAGE_SIZE - 1);
        let spans = host::vma::check_range(page, PAGE_SIZE, false)?;
        if spans.iter().any(|s| s.page_size > PAGE_SIZE) {
            return Ok(None);
        }
        Ok(Some(host::pins::count(page)))
    }

    fn account(&self, mode: AccountMode, npages: u64, inc: bool) -> Result<(), Errno> {
        let counter = match mode {
            AccountMode::None => return Ok(()),
            AccountMode::User => &USER_LOCKED_VM,
            AccountMode::Mm => &self.mm_locked_vm,
        };
        if inc {
            fault::fail_point!(fault::Site::Account, Errno::NOMEM);
            charge(counter, npages, host::sys::rlimit_memlock() / PAGE_SIZE)
        } else {
            uncharge(counter, npages);
            Ok(())
        }
    }

    fn capable(&self, cap: Cap) -> bool {
        if let Some(v) = self.caps.get(cap) {
            return v;
        }
        let cap = match cap {
            Cap::IpcLock => host::sys::Cap::IpcLock,
            Cap::SysResource => host::sys::Cap::SysResource,
            Cap::SysRawio => host::sys::Cap::SysRawio,
        };
        host::sys::capable(cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_overrides_parse_grants_and_denials() {
        let o = CapOverrides::parse("+sys_resource, -ipc_lock,bogus");
        assert_eq!(o.get(Cap::SysResource), Some(true));
        assert_eq!(o.get(Cap::IpcLock), Some(false));
        assert_eq!(o.get(Cap::SysRawio), None);
    }

    #[test]
    fn cap_override_wins_over_host() {
        let mm = HostMm::with_caps(CapOverrides::parse("-ipc_lock,-sys_resource"));
        assert!(!mm.capable(Cap::IpcLock));
        assert!(!mm.capable(Cap::SysResource));
    }
}
