//! VFIO type1 container compatibility, served on the iommufd itself.
//!
//! The container ioctls act on the context's compat IOAS (set by
//! `IOMMU_VFIO_IOAS`); TYPE1 is emulated by disabling large pages so that any
//! page-aligned piece of a mapping can be unmapped by splitting its area.
//!
//! Kernel: `drivers/iommu/iommufd/vfio_compat.c` (v6.12; `CONFIG_VFIO_NOIOMMU` off,
//! as in the reference kernel).

use std::sync::Arc;

use iommu::Prot;
use uapi::ioctl::{
    VFIO_CHECK_EXTENSION, VFIO_GET_API_VERSION, VFIO_IOMMU_GET_INFO, VFIO_IOMMU_MAP_DMA,
    VFIO_IOMMU_UNMAP_DMA, VFIO_SET_IOMMU,
};
use uapi::{
    Errno, VFIO_TYPE1v2_IOMMU, VfioInfoCapHeader, VfioIoas, VfioIommuType1DmaMap,
    VfioIommuType1DmaUnmap, VfioIommuType1Info, VfioIommuType1InfoCapIovaRange,
    VfioIommuType1InfoDmaAvail, VfioIovaRange, IOMMU_VFIO_IOAS_CLEAR, IOMMU_VFIO_IOAS_GET,
    IOMMU_VFIO_IOAS_SET, VFIO_API_VERSION, VFIO_DMA_CC_IOMMU, VFIO_DMA_MAP_FLAG_READ,
    VFIO_DMA_MAP_FLAG_WRITE, VFIO_DMA_UNMAP_FLAG_ALL, VFIO_IOMMU_INFO_CAPS,
    VFIO_IOMMU_INFO_PGSIZES, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
    VFIO_NOIOMMU_IOMMU, VFIO_TYPE1_IOMMU, VFIO_TYPE1_NESTING_IOMMU, VFIO_UNMAP_ALL,
};
use zerocopy::{FromBytes, IntoBytes};

use crate::ctx::Ctx;
use crate::ioas::Ioas;
use crate::mm::{UserMemory, PAGE_SIZE};
use crate::object::{ObjRef, Typed};
use crate::ucmd::Ucmd;

/// `CONFIG_VFIO_NOIOMMU`: off in the reference kernel.
const VFIO_NOIOMMU: bool = false;

/// The compat IOAS, taken temporarily (`get_compat_ioas`).
///
/// # Errors
/// `ENODEV` if none is set or it is being destroyed.
fn get_compat_ioas(ictx: &Ctx) -> Result<Typed<Ioas>, Errno> {
    let table = ictx.lock_table();
    let obj = table.vfio_ioas.as_ref().ok_or(Errno::NODEV)?;
    if !obj.lock_obj() {
        return Err(Errno::NODEV);
    }
    ObjRef::from_locked(obj.clone())
        .downcast::<Ioas>()
        .map_err(|_| Errno::NODEV)
}

/// `IOMMU_VFIO_IOAS`.
pub(crate) fn vfio_ioas(ucmd: &Ucmd<'_>, cmd: &mut VfioIoas) -> Result<(), Errno> {
    if cmd.__reserved != 0 {
        return Err(Errno::OPNOTSUPP);
    }
    match cmd.op {
        IOMMU_VFIO_IOAS_GET => {
            let ioas = get_compat_ioas(ucmd.ictx)?;
            cmd.ioas_id = ioas.obj().id();
            drop(ioas);
            ucmd.respond(cmd)
        }
        IOMMU_VFIO_IOAS_SET => {
            let ioas = ucmd.ictx.get::<Ioas>(cmd.ioas_id)?;
            ucmd.ictx.lock_table().vfio_ioas = Some(ioas.obj().clone());
            Ok(())
        }
        IOMMU_VFIO_IOAS_CLEAR => {
            ucmd.ictx.lock_table().vfio_ioas = None;
            Ok(())
        }
        _ => Err(Errno::OPNOTSUPP),
    }
}

/// The container ioctls (`iommufd_vfio_ioctl`); anything else is `ENOTTY`.
pub(crate) fn ioctl(ictx: &Arc<Ctx>, cmd: u32, arg: u64) -> Result<i64, Errno> {
    match cmd {
        VFIO_GET_API_VERSION => Ok(i64::from(VFIO_API_VERSION)),
        VFIO_SET_IOMMU => set_iommu(ictx, arg).map(|()| 0),
        VFIO_CHECK_EXTENSION => check_extension(ictx, arg),
        VFIO_IOMMU_GET_INFO => get_info(ictx, arg).map(|()| 0),
        VFIO_IOMMU_MAP_DMA => map_dma(ictx, arg).map(|()| 0),
        VFIO_IOMMU_UNMAP_DMA => unmap_dma(ictx, arg).map(|()| 0),
        _ => Err(Errno::NOTTY),
    }
}

fn read_prefix<T: FromBytes + IntoBytes>(
    mm: &dyn UserMemory,
    arg: u64,
    minsz: usize,
) -> Result<T, Errno> {
    let mut v = T::new_zeroed();
    mm.read(arg, &mut v.as_mut_bytes()[..minsz])?;
    Ok(v)
}

fn map_dma(ictx: &Ctx, arg: u64) -> Result<(), Errno> {
    let minsz = core::mem::size_of::<VfioIommuType1DmaMap>();
    let map: VfioIommuType1DmaMap = read_prefix(ictx.mm().as_ref(), arg, minsz)?;
    if (map.argsz as usize) < minsz
        || map.flags & !(VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE) != 0
    {
        return Err(Errno::INVAL);
    }
    let mut prot = Prot::CACHE;
    if map.flags & VFIO_DMA_MAP_FLAG_READ != 0 {
        prot |= Prot::READ;
    }
    if map.flags & VFIO_DMA_MAP_FLAG_WRITE != 0 {
        prot |= Prot::WRITE;
    }
    let ioas = get_compat_ioas(ictx)?;
    let mut iova = map.iova;
    ioas.iopt.map_user_pages(
        ictx.mm(),
        ictx.account_mode(),
        &mut iova,
        map.vaddr,
        map.size,
        prot,
        false,
    )
}

fn unmap_dma(ictx: &Ctx, arg: u64) -> Result<(), Errno> {
    let minsz = core::mem::size_of::<VfioIommuType1DmaUnmap>();
    let mut unmap: VfioIommuType1DmaUnmap = read_prefix(ictx.mm().as_ref(), arg, minsz)?;
    if (unmap.argsz as usize) < minsz || unmap.flags & !VFIO_DMA_UNMAP_FLAG_ALL != 0 {
        return Err(Errno::INVAL);
    }
    let ioas = get_compat_ioas(ictx)?;
    let (unmapped, res) = if unmap.flags & VFIO_DMA_UNMAP_FLAG_ALL != 0 {
        if unmap.iova != 0 || unmap.size != 0 {
            return Err(Errno::INVAL);
        }
        ioas.iopt.unmap_all()
    } else {
        if !ioas.iopt.large_pages_enabled() {
            let cuts = [
                unmap.iova.wrapping_add(unmap.size).wrapping_sub(1),
                unmap.iova.wrapping_sub(1),
            ];
            let n = if unmap.iova != 0 { 2 } else { 1 };
            ioas.iopt.cut_iova(&cuts[..n])?;
        }
        crate::ioas::unmap_iova(&ioas.iopt, unmap.iova, unmap.size)
    };
    unmap.size = unmapped;
    ictx.mm().write(arg, &unmap.as_bytes()[..minsz])?;
    res
}

/// `VFIO_DMA_CC_IOMMU`: every paging HWPT of the compat IOAS enforces coherency.
fn cc_iommu(ictx: &Ctx) -> Result<i64, Errno> {
    let ioas = get_compat_ioas(ictx)?;
    let list = ioas.hwpt_list.lock().unwrap_or_else(|e| e.into_inner());
    let all = list.iter().all(crate::hwpt::enforces_cache_coherency);
    Ok(i64::from(all))
}

#[expect(non_upper_case_globals, reason = "VFIO_TYPE1v2_IOMMU is the C name")]
fn check_extension(ictx: &Ctx, ext: u64) -> Result<i64, Errno> {
    let ext = u32::try_from(ext).unwrap_or(u32::MAX);
    match ext {
        VFIO_TYPE1_IOMMU | VFIO_TYPE1v2_IOMMU | VFIO_UNMAP_ALL => {
            Ok(i64::from(!ictx.no_iommu_mode()))
        }
        VFIO_NOIOMMU_IOMMU => Ok(i64::from(VFIO_NOIOMMU)),
        VFIO_DMA_CC_IOMMU => cc_iommu(ictx),
        VFIO_TYPE1_NESTING_IOMMU => Ok(0),
        _ => Ok(0),
    }
}

fn set_iommu(ictx: &Ctx, ty: u64) -> Result<(), Errno> {
    let no_iommu = ictx.no_iommu_mode();
    if ty != u64::from(VFIO_TYPE1_IOMMU) && ty != u64::from(VFIO_TYPE1v2_IOMMU) || no_iommu {
        return Err(Errno::INVAL);
    }
    let ioas = get_compat_ioas(ictx)?;
    if ty == u64::from(VFIO_TYPE1_IOMMU) {
        return ioas.iopt.disable_large_pages();
    }
    Ok(())
}

/// `iommufd_get_pagesizes`.
fn pagesizes(ioas: &Ioas) -> u64 {
    let mut bitmap = u64::MAX;
    for domain in ioas.iopt.domains() {
        bitmap &= domain.pgsize_bitmap();
    }
    let page_mask = !(PAGE_SIZE - 1);
    if bitmap & !page_mask != 0 {
        bitmap &= page_mask;
        bitmap |= PAGE_SIZE;
    }
    let (_, alignment) = ioas.iopt.iova_ranges();
    bitmap.max(alignment)
}

/// Writes the DMA_AVAIL capability if it fits; returns its size.
fn fill_cap_dma_avail(mm: &dyn UserMemory, cur: u64, avail: u64) -> Result<u64, Errno> {
    let cap = VfioIommuType1InfoDmaAvail {
        header: VfioInfoCapHeader {
            id: VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
            version: 1,
            next: 0,
        },
        avail: u32::MAX,
    };
    let size = core::mem::size_of_val(&cap) as u64;
    if avail >= size {
        mm.write(cur, cap.as_bytes())?;
    }
    Ok(size)
}

/// Writes the IOVA_RANGE capability, each range as far as it fits; returns its size.
fn fill_cap_iova(mm: &dyn UserMemory, ioas: &Ioas, cur: u64, avail: u64) -> Result<u64, Errno> {
    let header = core::mem::size_of::<VfioIommuType1InfoCapIovaRange>() as u64;
    let entry = core::mem::size_of::<VfioIovaRange>() as u64;
    let (holes, _) = ioas.iopt.iova_ranges();
    for (i, &(start, last)) in holes.iter().enumerate() {
        let i = i as u64;
        if avail >= header + entry * (i + 1) {
            let range = VfioIovaRange { start, end: last };
            mm.write(cur + header + entry * i, range.as_bytes())?;
        }
    }
    let n = holes.len() as u64;
    if avail >= header + entry * n {
        let cap = VfioIommuType1InfoCapIovaRange {
            header: VfioInfoCapHeader {
                id: VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
                version: 1,
                next: 0,
            },
            nr_iovas: n as u32,
            reserved: 0,
        };
        mm.write(cur, cap.as_bytes())?;
    }
    Ok(header + entry * n)
}

fn get_info(ictx: &Ctx, arg: u64) -> Result<(), Errno> {
    let mm = ictx.mm().as_ref();
    let minsz = core::mem::offset_of!(VfioIommuType1Info, iova_pgsizes) + 8;
    let mut info: VfioIommuType1Info = read_prefix(mm, arg, minsz)?;
    if (info.argsz as usize) < minsz {
        return Err(Errno::INVAL);
    }
    let out_len = (info.argsz as usize).min(core::mem::size_of::<VfioIommuType1Info>());
    let ioas = get_compat_ioas(ictx)?;
    info.flags = VFIO_IOMMU_INFO_PGSIZES;
    info.iova_pgsizes = pagesizes(&ioas);
    info.cap_offset = 0;

    let argsz = u64::from(info.argsz);
    let mut total = core::mem::size_of::<VfioIommuType1Info>() as u64;
    let mut last_cap: Option<u64> = None;
    for i in 0..2 {
        let (cur, avail) = if argsz > total {
            (arg + total, argsz - total)
        } else {
            (0, 0)
        };
        let size = if i == 0 {
            fill_cap_dma_avail(mm, cur, avail)?
        } else {
            fill_cap_iova(mm, &ioas, cur, avail)?
        };
        let size = size.next_multiple_of(8);
        if let Some(prev) = last_cap {
            if argsz >= total {
                let next_off = core::mem::offset_of!(VfioInfoCapHeader, next) as u64;
                mm.write(prev + next_off, &(total as u32).to_ne_bytes())?;
            }
        }
        last_cap = Some(arg + total);
        total += size;
    }
    if argsz >= total {
        info.cap_offset = core::mem::size_of::<VfioIommuType1Info>() as u32;
    }
    info.argsz = total as u32;
    info.flags |= VFIO_IOMMU_INFO_CAPS;
    mm.write(arg, &info.as_bytes()[..out_len])
}
