//! IOAS objects and their ioctls: ALLOC, IOVA_RANGES, ALLOW_IOVAS, MAP, COPY,
//! UNMAP, OPTION, and DESTROY. Handlers validate, convert to domain types and call
//! the io_pagetable.
//!
//! Kernel: `drivers/iommu/iommufd/ioas.c`, `main.c` (`iommufd_destroy`,
//! `iommufd_option`), v6.12.

use crate::sync::{Arc, Mutex};

use iommu::Prot;
use itree::IntervalTree;
use uapi::{
    Destroy, Errno, IoasAlloc, IoasAllowIovas, IoasCopy, IoasIovaRanges, IoasMap, IoasUnmap,
    IommuOption, IovaRange, IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_READABLE,
    IOMMU_IOAS_MAP_WRITEABLE, IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, IOMMU_OPTION_OP_SET,
    IOMMU_OPTION_RLIMIT_MODE,
};

use crate::iopt::IoPagetable;
use crate::object::{ObjKind, Object};
use crate::ucmd::Ucmd;

/// An I/O address space (`struct iommufd_ioas`).
pub struct Ioas {
    pub(crate) iopt: IoPagetable,
    /// The paging HWPTs on this IOAS in creation order (`hwpt_list`, under `ioas->mutex`).
    pub(crate) hwpt_list: Mutex<Vec<Arc<Object>>>,
}

impl Ioas {
    fn new() -> Ioas {
        Ioas {
            iopt: IoPagetable::new(),
            hwpt_list: Mutex::new(Vec::new()),
        }
    }

    /// Destroy hook (`iommufd_ioas_destroy`).
    pub(crate) fn destroy(&self) {
        self.iopt.destroy();
    }
}

const MAP_FLAGS: u32 =
    IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE;

/// `conv_iommu_prot`: iommufd always maps cache coherent.
fn conv_prot(flags: u32) -> Prot {
    let mut prot = Prot::CACHE;
    if flags & IOMMU_IOAS_MAP_WRITEABLE != 0 {
        prot |= Prot::WRITE;
    }
    if flags & IOMMU_IOAS_MAP_READABLE != 0 {
        prot |= Prot::READ;
    }
    prot
}

/// `IOMMU_DESTROY`.
pub(crate) fn destroy(ucmd: &Ucmd<'_>, cmd: &mut Destroy) -> Result<(), Errno> {
    ucmd.ictx.destroy_id(cmd.id)
}

/// `IOMMU_IOAS_ALLOC`.
pub(crate) fn alloc(ucmd: &Ucmd<'_>, cmd: &mut IoasAlloc) -> Result<(), Errno> {
    if cmd.flags != 0 {
        return Err(Errno::OPNOTSUPP);
    }
    let resv = ucmd.ictx.reserve()?;
    let obj = resv.object(ObjKind::Ioas(Ioas::new()));
    cmd.out_ioas_id = obj.id();
    if let Err(err) = ucmd.respond(cmd) {
        resv.abort_and_destroy(&obj);
        return Err(err);
    }
    resv.finalize(&obj);
    Ok(())
}

/// `IOMMU_IOAS_IOVA_RANGES`.
pub(crate) fn iova_ranges(ucmd: &Ucmd<'_>, cmd: &mut IoasIovaRanges) -> Result<(), Errno> {
    if cmd.__reserved != 0 {
        return Err(Errno::OPNOTSUPP);
    }
    let ioas = ucmd.ictx.get::<Ioas>(cmd.ioas_id)?;
    let capacity = u64::from(cmd.num_iovas);
    let mut count = 0u64;
    let alignment = ioas.iopt.for_each_iova_range(|start, last| {
        if count < capacity {
            let uptr = cmd.allowed_iovas.wrapping_add(16 * count);
            ucmd.write_user(uptr, &IovaRange { start, last })?;
        }
        count += 1;
        Ok(())
    })?;
    cmd.num_iovas = count as u32;
    cmd.out_iova_alignment = alignment;
    ucmd.respond(cmd)?;
    if count > capacity {
        return Err(Errno::MSGSIZE);
    }
    Ok(())
}

/// `IOMMU_IOAS_ALLOW_IOVAS`.
pub(crate) fn allow_iovas(ucmd: &Ucmd<'_>, cmd: &mut IoasAllowIovas) -> Result<(), Errno> {
    if cmd.__reserved != 0 {
        return Err(Errno::OPNOTSUPP);
    }
    let ioas = ucmd.ictx.get::<Ioas>(cmd.ioas_id)?;
    let mut allowed = IntervalTree::new();
    for i in 0..u64::from(cmd.num_iovas) {
        let range: IovaRange = ucmd.read_user(cmd.allowed_iovas.wrapping_add(16 * i))?;
        if range.start >= range.last {
            return Err(Errno::INVAL);
        }
        if allowed.first_overlapping(range.start, range.last).is_some() {
            return Err(Errno::INVAL);
        }
        allowed.insert(range.start, range.last, ());
    }
    ioas.iopt.set_allow_iova(allowed)
}

/// `IOMMU_IOAS_MAP`.
pub(crate) fn map(ucmd: &Ucmd<'_>, cmd: &mut IoasMap) -> Result<(), Errno> {
    if cmd.flags & !MAP_FLAGS != 0 || cmd.__reserved != 0 {
        return Err(Errno::OPNOTSUPP);
    }
    if cmd.iova == u64::MAX || cmd.length == u64::MAX {
        return Err(Errno::OVERFLOW);
    }
    if cmd.flags & (IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE) == 0 {
        return Err(Errno::INVAL);
    }
    let ioas = ucmd.ictx.get::<Ioas>(cmd.ioas_id)?;
    let mut iova = cmd.iova;
    ioas.iopt.map_user_pages(
        ucmd.mm(),
        ucmd.ictx.account_mode(),
        &mut iova,
        cmd.user_va,
        cmd.length,
        conv_prot(cmd.flags),
        cmd.flags & IOMMU_IOAS_MAP_FIXED_IOVA == 0,
    )?;
    cmd.iova = iova;
    ucmd.respond(cmd)
}

/// `IOMMU_IOAS_COPY`.
pub(crate) fn copy(ucmd: &Ucmd<'_>, cmd: &mut IoasCopy) -> Result<(), Errno> {
    #[cfg(feature = "selftest")]
    crate::test_cmd::syz_conv_iova_id(
        ucmd.ictx,
        cmd.src_ioas_id,
        &mut cmd.src_iova,
        &mut cmd.flags,
    );
    if cmd.flags & !MAP_FLAGS != 0 {
        return Err(Errno::OPNOTSUPP);
    }
    if cmd.length == u64::MAX || cmd.src_iova == u64::MAX || cmd.dst_iova == u64::MAX {
        return Err(Errno::OVERFLOW);
    }
    if cmd.flags & (IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE) == 0 {
        return Err(Errno::INVAL);
    }
    let list = {
        let src = ucmd.ictx.get::<Ioas>(cmd.src_ioas_id)?;
        src.iopt.get_pages(cmd.src_iova, cmd.length)?
    };
    let dst = ucmd.ictx.get::<Ioas>(cmd.dst_ioas_id)?;
    let mut iova = cmd.dst_iova;
    dst.iopt.map_pages(
        &list,
        cmd.length,
        &mut iova,
        conv_prot(cmd.flags),
        cmd.flags & IOMMU_IOAS_MAP_FIXED_IOVA == 0,
    )?;
    cmd.dst_iova = iova;
    ucmd.respond(cmd)
}

/// `IOMMU_IOAS_UNMAP`.
pub(crate) fn unmap(ucmd: &Ucmd<'_>, cmd: &mut IoasUnmap) -> Result<(), Errno> {
    let ioas = ucmd.ictx.get::<Ioas>(cmd.ioas_id)?;
    let unmapped = if cmd.iova == 0 && cmd.length == u64::MAX {
        let (unmapped, res) = ioas.iopt.unmap_all();
        res?;
        unmapped
    } else {
        if cmd.iova == u64::MAX || cmd.length == u64::MAX {
            return Err(Errno::OVERFLOW);
        }
        let (unmapped, res) = unmap_iova(&ioas.iopt, cmd.iova, cmd.length);
        res?;
        if unmapped == 0 {
            return Err(Errno::NOENT);
        }
        unmapped
    };
    cmd.length = unmapped;
    ucmd.respond(cmd)
}

/// `iopt_unmap_iova`: range checks, then unmap whole areas inside the range.
pub(crate) fn unmap_iova(iopt: &IoPagetable, iova: u64, length: u64) -> (u64, Result<(), Errno>) {
    if length == 0 {
        return (0, Err(Errno::INVAL));
    }
    let Some(last) = iova.checked_add(length - 1) else {
        return (0, Err(Errno::OVERFLOW));
    };
    iopt.unmap_range(iova, last)
}

/// `IOMMU_OPTION`; on success only `val64` is written back.
pub(crate) fn option(ucmd: &Ucmd<'_>, cmd: &mut IommuOption) -> Result<(), Errno> {
    if cmd.__reserved != 0 {
        return Err(Errno::OPNOTSUPP);
    }
    match cmd.option_id {
        IOMMU_OPTION_RLIMIT_MODE => option_rlimit_mode(ucmd, cmd)?,
        IOMMU_OPTION_HUGE_PAGES => option_huge_pages(ucmd, cmd)?,
        _ => return Err(Errno::OPNOTSUPP),
    }
    let val64_offset = core::mem::offset_of!(IommuOption, val64) as u64;
    ucmd.write_user(ucmd.ubuffer + val64_offset, &cmd.val64)
}

fn option_rlimit_mode(ucmd: &Ucmd<'_>, cmd: &mut IommuOption) -> Result<(), Errno> {
    if cmd.object_id != 0 {
        return Err(Errno::OPNOTSUPP);
    }
    match cmd.op {
        IOMMU_OPTION_OP_GET => {
            cmd.val64 = u64::from(ucmd.ictx.account_mode() == crate::mm::AccountMode::Mm);
            Ok(())
        }
        IOMMU_OPTION_OP_SET => ucmd.ictx.set_account_mode(cmd.val64),
        _ => Err(Errno::OPNOTSUPP),
    }
}

fn option_huge_pages(ucmd: &Ucmd<'_>, cmd: &mut IommuOption) -> Result<(), Errno> {
    let ioas = ucmd.ictx.get::<Ioas>(cmd.object_id)?;
    match cmd.op {
        IOMMU_OPTION_OP_GET => {
            cmd.val64 = u64::from(ioas.iopt.large_pages_enabled());
            Ok(())
        }
        IOMMU_OPTION_OP_SET => match cmd.val64 {
            0 => ioas.iopt.disable_large_pages(),
            1 => {
                ioas.iopt.enable_large_pages();
                Ok(())
            }
            _ => Err(Errno::INVAL),
        },
        _ => Err(Errno::OPNOTSUPP),
    }
}
