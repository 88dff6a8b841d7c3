//! Fault queues: I/O page-fault groups delivered to userspace through an fd.
//!
//! A FAULT object owns a FIFO of page-request groups not yet read and a table of
//! groups read but not yet answered, keyed by a cookie. `read()` on its fd returns
//! whole groups as `struct iommu_hwpt_pgfault` records; `write()` takes
//! `struct iommu_hwpt_page_response` records and completes the groups. Groups of a
//! device that detaches, and every group when the object is destroyed, are answered
//! `INVALID` automatically.
//!
//! Kernel: `drivers/iommu/iommufd/fault.c` (v6.12).

use crate::sync::{Arc, Mutex, MutexGuard};
use std::collections::{BTreeMap, VecDeque};

use iommu::fault::{IopfGroup, IopfHandler, PageResponseCode};
use iommu::AttachHandle;
use uapi::{
    Errno, FaultAlloc, HwptPageResponse, HwptPgfault, IOMMUFD_PAGE_RESP_INVALID,
    IOMMUFD_PAGE_RESP_SUCCESS,
};
use zerocopy::{FromZeros, IntoBytes};

use crate::ctx::IommufdFile;
use crate::mm::{FileOps, PollMask};
use crate::object::{ObjKind, Object};
use crate::ucmd::Ucmd;

/// The callback that mirrors readiness into the fd.
type Notify = Arc<dyn Fn(PollMask) + Send + Sync>;

#[derive(Default)]
struct Queues {
    /// Groups not yet read, oldest first (`deliver`).
    deliver: VecDeque<IopfGroup>,
    /// Groups read and awaiting a response, by cookie (`response`).
    response: BTreeMap<u32, IopfGroup>,
}

/// The FAULT object (`struct iommufd_fault`).
pub(crate) struct Fault {
    queues: Mutex<Queues>,
    notify: Mutex<Option<Notify>>,
}

impl Fault {
    fn lock(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn poll_mask(q: &Queues) -> PollMask {
        PollMask {
            readable: !q.deliver.is_empty(),
            writable: true,
        }
    }

    fn notify(&self, mask: PollMask) {
        let notify = self
            .notify
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(notify) = notify {
            notify(mask);
        }
    }

    /// Destroy hook (`iommufd_fault_destroy`): every pending group is answered
    /// `INVALID`.
    pub(crate) fn destroy(&self) {
        let (deliver, response) = {
            let mut q = self.lock();
            (
                std::mem::take(&mut q.deliver),
                std::mem::take(&mut q.response),
            )
        };
        for group in deliver.into_iter().chain(response.into_values()) {
            group.respond(PageResponseCode::Invalid);
        }
    }
}

fn fault_of(obj: &Arc<Object>) -> &Fault {
    match obj.get::<Fault>() {
        Some(f) => f,
        None => unreachable!("not a fault object"),
    }
}

/// Delivers groups of a fault-capable HWPT to its FAULT (`iommufd_fault_iopf_handler`).
struct FaultHandler {
    fault: Arc<Object>,
}

impl IopfHandler for FaultHandler {
    fn handle(&self, group: IopfGroup) -> Result<(), Errno> {
        let fault = fault_of(&self.fault);
        let mask = {
            let mut q = fault.lock();
            q.deliver.push_back(group);
            Fault::poll_mask(&q)
        };
        fault.notify(mask);
        Ok(())
    }
}

/// The handler attach handles of HWPTs using `fault` carry.
pub(crate) fn handler(fault: &Arc<Object>) -> Arc<dyn IopfHandler> {
    Arc::new(FaultHandler {
        fault: fault.clone(),
    })
}

fn same_handle(a: &AttachHandle, b: &AttachHandle) -> bool {
    let data_eq = match (&a.data, &b.data) {
        (Some(x), Some(y)) => Arc::ptr_eq(x, y),
        (None, None) => true,
        _ => false,
    };
    data_eq && std::ptr::addr_eq(Arc::as_ptr(&a.domain), Arc::as_ptr(&b.domain))
}

/// Answers `INVALID` every group of `handle` (`iommufd_auto_response_faults`).
pub(crate) fn auto_response(fault_obj: &Arc<Object>, handle: &AttachHandle) {
    let fault = fault_of(fault_obj);
    let (dropped, mask) = {
        let mut q = fault.lock();
        let mut dropped = Vec::new();
        let deliver = std::mem::take(&mut q.deliver);
        for group in deliver {
            if same_handle(&group.handle, handle) {
                dropped.push(group);
            } else {
                q.deliver.push_back(group);
            }
        }
        let cookies: Vec<u32> = q
            .response
            .iter()
            .filter(|(_, g)| same_handle(&g.handle, handle))
            .map(|(&c, _)| c)
            .collect();
        for cookie in cookies {
            if let Some(g) = q.response.remove(&cookie) {
                dropped.push(g);
            }
        }
        (dropped, Fault::poll_mask(&q))
    };
    for group in dropped {
        group.respond(PageResponseCode::Invalid);
    }
    fault.notify(mask);
}

/// The `[iommufd-pgfault]` file.
struct FaultFile {
    fault: Arc<Object>,
    /// The context reference the file holds (`iommufd_ctx_get`).
    _ictx: Arc<IommufdFile>,
}

const FAULT_SIZE: u64 = core::mem::size_of::<HwptPgfault>() as u64;
const RESPONSE_SIZE: u64 = core::mem::size_of::<HwptPageResponse>() as u64;

impl FaultFile {
    fn mm(&self) -> &Arc<dyn crate::mm::UserMemory> {
        self._ictx.ctx().mm()
    }

    /// `iommufd_fault_fops_read`: whole groups only, never blocks.
    fn read_groups(&self, buf: u64, count: u64) -> Result<u64, Errno> {
        let fault = fault_of(&self.fault);
        let mut done = 0u64;
        let mut rc = Ok(());
        let mut q = fault.lock();
        while let Some(group) = q.deliver.pop_front() {
            let size = group.faults.len() as u64 * FAULT_SIZE;
            if done >= count || size > count - done {
                q.deliver.push_front(group);
                if done == 0 {
                    rc = Err(Errno::INVAL);
                }
                break;
            }
            let cookie = (1..=u32::MAX).find(|c| !q.response.contains_key(c));
            let Some(cookie) = cookie else {
                q.deliver.push_front(group);
                rc = Err(Errno::BUSY);
                break;
            };
            match self.write_group(&group, cookie, buf + done) {
                Ok(()) => {
                    done += size;
                    q.response.insert(cookie, group);
                }
                Err(err) => {
                    q.deliver.push_front(group);
                    rc = Err(err);
                    break;
                }
            }
        }
        let mask = Fault::poll_mask(&q);
        drop(q);
        fault.notify(mask);
        if done == 0 {
            rc.map(|()| 0)
        } else {
            Ok(done)
        }
    }

    fn write_group(&self, group: &IopfGroup, cookie: u32, buf: u64) -> Result<(), Errno> {
        let dev_id = group
            .handle
            .data
            .as_ref()
            .and_then(|d| d.downcast_ref::<Object>())
            .map_or(0, Object::id);
        for (i, f) in group.faults.iter().enumerate() {
            let mut rec = HwptPgfault::new_zeroed();
            rec.flags = f.flags;
            rec.dev_id = dev_id;
            rec.pasid = f.pasid;
            rec.grpid = f.grpid;
            rec.perm = f.perm;
            rec.addr = f.addr;
            rec.length = 0;
            rec.cookie = cookie;
            self.mm()
                .write(buf + i as u64 * FAULT_SIZE, rec.as_bytes())?;
        }
        Ok(())
    }

    /// `iommufd_fault_fops_write`: responses in order.
    fn write_responses(&self, buf: u64, count: u64) -> Result<u64, Errno> {
        let fault = fault_of(&self.fault);
        let mut done = 0u64;
        let mut rc = Ok(());
        while count > done {
            let mut resp = HwptPageResponse::new_zeroed();
            if let Err(err) = self.mm().read(buf + done, resp.as_mut_bytes()) {
                rc = Err(err);
                break;
            }
            let code = match resp.code {
                IOMMUFD_PAGE_RESP_SUCCESS => PageResponseCode::Success,
                IOMMUFD_PAGE_RESP_INVALID => PageResponseCode::Invalid,
                _ => {
                    rc = Err(Errno::INVAL);
                    break;
                }
            };
            let group = fault.lock().response.remove(&resp.cookie);
            let Some(group) = group else {
                rc = Err(Errno::INVAL);
                break;
            };
            group.respond(code);
            done += RESPONSE_SIZE;
        }
        if done == 0 {
            rc.map(|()| 0)
        } else {
            Ok(done)
        }
    }
}

impl FileOps for FaultFile {
    fn read(&self, buf: u64, count: u64) -> Result<u64, Errno> {
        if !count.is_multiple_of(FAULT_SIZE) {
            return Err(Errno::SPIPE);
        }
        self.read_groups(buf, count)
    }

    fn write(&self, buf: u64, count: u64) -> Result<u64, Errno> {
        if !count.is_multiple_of(RESPONSE_SIZE) {
            return Err(Errno::SPIPE);
        }
        self.write_responses(buf, count)
    }

    fn has_read(&self) -> bool {
        true
    }

    fn has_write(&self) -> bool {
        true
    }

    fn poll(&self) -> PollMask {
        Fault::poll_mask(&fault_of(&self.fault).lock())
    }

    fn set_notify(&self, notify: Arc<dyn Fn(PollMask) + Send + Sync>) {
        *fault_of(&self.fault)
            .notify
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(notify);
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl Drop for FaultFile {
    /// `iommufd_fault_fops_release`.
    fn drop(&mut self) {
        *fault_of(&self.fault)
            .notify
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
        self.fault.users_dec();
    }
}

/// `IOMMU_FAULT_QUEUE_ALLOC`.
pub(crate) fn fault_alloc(ucmd: &Ucmd<'_>, cmd: &mut FaultAlloc) -> Result<(), Errno> {
    if cmd.flags != 0 {
        return Err(Errno::OPNOTSUPP);
    }
    let ictx = ucmd.ictx;
    let resv = ictx.reserve()?;
    let obj = resv.object(ObjKind::Fault(Fault {
        queues: Mutex::new(Queues::default()),
        notify: Mutex::new(None),
    }));
    obj.users_inc();
    let file = Arc::new(FaultFile {
        fault: obj.clone(),
        _ictx: ucmd.file.clone(),
    });
    let files = &ictx.env().files;
    let fd = match files.reserve_fd() {
        Ok(fd) => fd,
        Err(err) => {
            drop(file);
            resv.abort_and_destroy(&obj);
            return Err(err);
        }
    };
    cmd.out_fault_id = obj.id();
    cmd.out_fault_fd = fd as u32;
    if let Err(err) = ucmd.respond(cmd) {
        files.unreserve_fd(fd);
        drop(file);
        resv.abort_and_destroy(&obj);
        return Err(err);
    }
    resv.finalize(&obj);
    files.install(fd, file);
    Ok(())
}
