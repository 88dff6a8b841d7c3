//! VFIO type1 compatibility on the iommufd (UAPI.md §3.9 and §6).

mod support;

use support::{buffer, mock_domain, Fd, PAGE};
use uapi::ioctl::{
    VFIO_CHECK_EXTENSION, VFIO_GET_API_VERSION, VFIO_IOMMU_DIRTY_PAGES, VFIO_IOMMU_GET_INFO,
    VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA, VFIO_SET_IOMMU,
};
use uapi::{
    Errno, VFIO_TYPE1v2_IOMMU, VfioIoas, VfioIommuType1DmaMap, VfioIommuType1DmaUnmap,
    IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, IOMMU_VFIO_IOAS_CLEAR, IOMMU_VFIO_IOAS_GET,
    IOMMU_VFIO_IOAS_SET, MOCK_APERTURE_LAST, MOCK_APERTURE_START, VFIO_DMA_CC_IOMMU,
    VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_WRITE, VFIO_DMA_UNMAP_FLAG_ALL, VFIO_NOIOMMU_IOMMU,
    VFIO_TYPE1_IOMMU, VFIO_UNMAP_ALL, VFIO_UPDATE_VADDR,
};
use zerocopy::{FromZeros, IntoBytes};

fn vfio_ioas(fd: &Fd, op: u16, ioas: u32) -> Result<u32, Errno> {
    let mut cmd = VfioIoas::new_zeroed();
    cmd.op = op;
    cmd.ioas_id = ioas;
    fd.ioctl(&mut cmd).map(|_| cmd.ioas_id)
}

fn map_dma(
    fd: &Fd,
    argsz: u32,
    flags: u32,
    vaddr: u64,
    iova: u64,
    size: u64,
) -> Result<i64, Errno> {
    let mut m = VfioIommuType1DmaMap {
        argsz,
        flags,
        vaddr,
        iova,
        size,
    };
    fd.ioctl_ptr(VFIO_IOMMU_MAP_DMA, m.as_mut_bytes().as_mut_ptr() as u64)
}

fn unmap_dma(fd: &Fd, flags: u32, iova: u64, size: u64) -> (Result<i64, Errno>, u64) {
    let mut u = VfioIommuType1DmaUnmap {
        argsz: 24,
        flags,
        iova,
        size,
    };
    let r = fd.ioctl_ptr(VFIO_IOMMU_UNMAP_DMA, u.as_mut_bytes().as_mut_ptr() as u64);
    (r, u.size)
}

#[test]
fn vfio_ioas_get_set_clear() {
    let fd = Fd::open();
    assert_eq!(vfio_ioas(&fd, IOMMU_VFIO_IOAS_GET, 0), Err(Errno::NODEV));
    assert_eq!(vfio_ioas(&fd, IOMMU_VFIO_IOAS_SET, 99), Err(Errno::NOENT));
    assert_eq!(vfio_ioas(&fd, 3, 0), Err(Errno::OPNOTSUPP));
    let mut cmd = VfioIoas::new_zeroed();
    cmd.__reserved = 1;
    assert_eq!(fd.ioctl(&mut cmd), Err(Errno::OPNOTSUPP));
    let ioas = fd.ioas_alloc();
    vfio_ioas(&fd, IOMMU_VFIO_IOAS_SET, ioas).unwrap();
    assert_eq!(vfio_ioas(&fd, IOMMU_VFIO_IOAS_GET, 0), Ok(ioas));
    vfio_ioas(&fd, IOMMU_VFIO_IOAS_CLEAR, 0).unwrap();
    assert_eq!(vfio_ioas(&fd, IOMMU_VFIO_IOAS_GET, 0), Err(Errno::NODEV));
    vfio_ioas(&fd, IOMMU_VFIO_IOAS_SET, ioas).unwrap();
    fd.destroy(ioas).unwrap();
    assert_eq!(
        vfio_ioas(&fd, IOMMU_VFIO_IOAS_GET, 0),
        Err(Errno::NODEV),
        "destroy clears the pointer"
    );
}

#[test]
fn container_ioctls_without_compat_ioas() {
    let fd = Fd::open();
    assert_eq!(fd.ioctl_ptr(VFIO_GET_API_VERSION, 0), Ok(0));
    assert_eq!(
        fd.ioctl_ptr(VFIO_CHECK_EXTENSION, u64::from(VFIO_TYPE1v2_IOMMU)),
        Ok(1)
    );
    assert_eq!(
        fd.ioctl_ptr(VFIO_CHECK_EXTENSION, u64::from(VFIO_TYPE1_IOMMU)),
        Ok(1)
    );
    assert_eq!(
        fd.ioctl_ptr(VFIO_CHECK_EXTENSION, u64::from(VFIO_UNMAP_ALL)),
        Ok(1)
    );
    assert_eq!(
        fd.ioctl_ptr(VFIO_CHECK_EXTENSION, u64::from(VFIO_NOIOMMU_IOMMU)),
        Ok(0)
    );
    assert_eq!(
        fd.ioctl_ptr(VFIO_CHECK_EXTENSION, u64::from(VFIO_UPDATE_VADDR)),
        Ok(0)
    );
    assert_eq!(
        fd.ioctl_ptr(VFIO_CHECK_EXTENSION, u64::from(VFIO_DMA_CC_IOMMU)),
        Err(Errno::NODEV)
    );
    assert_eq!(
        fd.ioctl_ptr(VFIO_SET_IOMMU, u64::from(VFIO_TYPE1v2_IOMMU)),
        Err(Errno::NODEV)
    );
    assert_eq!(fd.ioctl_ptr(VFIO_SET_IOMMU, 7), Err(Errno::INVAL));
    assert_eq!(fd.ioctl_ptr(VFIO_IOMMU_DIRTY_PAGES, 0), Err(Errno::NOTTY));
    assert_eq!(map_dma(&fd, 1, 0, 0, 0, 0), Err(Errno::INVAL));
    assert_eq!(map_dma(&fd, 32, 4, 0, 0, 0), Err(Errno::INVAL));
    assert_eq!(map_dma(&fd, 32, 0, 0, 0, 0), Err(Errno::NODEV));
    assert_eq!(unmap_dma(&fd, 1, 0, 0).0, Err(Errno::INVAL));
    assert_eq!(unmap_dma(&fd, 0, 0, 0).0, Err(Errno::NODEV));
    assert_eq!(fd.ioctl_ptr(VFIO_IOMMU_MAP_DMA, 0), Err(Errno::FAULT));
    let mut info = [0u32; 4];
    assert_eq!(
        fd.ioctl_ptr(VFIO_IOMMU_GET_INFO, info.as_mut_ptr() as u64),
        Err(Errno::INVAL)
    );
    info[0] = 16;
    assert_eq!(
        fd.ioctl_ptr(VFIO_IOMMU_GET_INFO, info.as_mut_ptr() as u64),
        Err(Errno::NODEV)
    );
}

fn compat(fd: &Fd, ty: u32) -> u32 {
    let ioas = fd.ioas_alloc();
    mock_domain(fd, ioas, 0).unwrap();
    vfio_ioas(fd, IOMMU_VFIO_IOAS_SET, ioas).unwrap();
    fd.ioctl_ptr(VFIO_SET_IOMMU, u64::from(ty)).unwrap();
    ioas
}

#[test]
fn type1_disables_huge_pages_and_splits_on_unmap() {
    let fd = Fd::open();
    let ioas = compat(&fd, VFIO_TYPE1_IOMMU);
    assert_eq!(
        fd.option(IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, ioas, 0),
        Ok(0)
    );
    let buf = buffer(4 * PAGE as usize);
    let rw = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
    map_dma(&fd, 32, rw, buf.addr(), MOCK_APERTURE_START, 4 * PAGE).unwrap();
    assert_eq!(
        unmap_dma(&fd, 0, MOCK_APERTURE_START + PAGE, PAGE),
        (Ok(0), PAGE)
    );
    assert_eq!(
        unmap_dma(&fd, 0, MOCK_APERTURE_START + PAGE, PAGE),
        (Ok(0), 0),
        "nothing left there"
    );
    assert_eq!(
        unmap_dma(&fd, VFIO_DMA_UNMAP_FLAG_ALL, 1, 0).0,
        Err(Errno::INVAL)
    );
    assert_eq!(
        unmap_dma(&fd, VFIO_DMA_UNMAP_FLAG_ALL, 0, 0),
        (Ok(0), 3 * PAGE)
    );
}

#[test]
fn type1v2_refuses_unmapping_part_of_a_mapping() {
    let fd = Fd::open();
    let ioas = compat(&fd, VFIO_TYPE1v2_IOMMU);
    assert_eq!(
        fd.option(IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, ioas, 0),
        Ok(1)
    );
    let buf = buffer(4 * PAGE as usize);
    map_dma(&fd, 32, 0, buf.addr(), MOCK_APERTURE_START, 4 * PAGE).unwrap();
    assert_eq!(
        unmap_dma(&fd, 0, MOCK_APERTURE_START + PAGE, PAGE).0,
        Err(Errno::NOENT)
    );
    assert_eq!(
        fd.ioctl_ptr(VFIO_CHECK_EXTENSION, u64::from(VFIO_DMA_CC_IOMMU)),
        Ok(0)
    );
}

#[test]
fn get_info_capability_chain_respects_argsz() {
    let fd = Fd::open();
    compat(&fd, VFIO_TYPE1v2_IOMMU);
    // Full size: 24 header + 16 DMA_AVAIL + 32 IOVA_RANGE with one range.
    let mut buf = [0xaau8; 128];
    buf[..4].copy_from_slice(&24u32.to_ne_bytes());
    fd.ioctl_ptr(VFIO_IOMMU_GET_INFO, buf.as_mut_ptr() as u64)
        .unwrap();
    let u32_at = |b: &[u8], o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().unwrap());
    let u64_at = |b: &[u8], o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().unwrap());
    assert_eq!(u32_at(&buf, 0), 72, "argsz grows to the size needed");
    assert_eq!(u32_at(&buf, 4), 3);
    assert_eq!(u64_at(&buf, 8), 4096);
    assert_eq!(
        u32_at(&buf, 16),
        0,
        "no cap_offset when the caps did not fit"
    );
    assert_eq!(buf[24], 0xaa, "nothing written past argsz");
    for argsz in 24..72u32 {
        let mut b = [0xaau8; 128];
        b[..4].copy_from_slice(&argsz.to_ne_bytes());
        fd.ioctl_ptr(VFIO_IOMMU_GET_INFO, b.as_mut_ptr() as u64)
            .unwrap();
        assert!(
            b[argsz as usize..].iter().all(|&x| x == 0xaa),
            "wrote past argsz {argsz}"
        );
    }
    let mut b = [0u8; 72];
    b[..4].copy_from_slice(&72u32.to_ne_bytes());
    fd.ioctl_ptr(VFIO_IOMMU_GET_INFO, b.as_mut_ptr() as u64)
        .unwrap();
    assert_eq!(u32_at(&b, 16), 24, "cap_offset");
    assert_eq!(
        (
            u32_at(&b, 24) & 0xffff,
            u32_at(&b, 24) >> 16,
            u32_at(&b, 28)
        ),
        (3, 1, 40)
    );
    assert_eq!(u32_at(&b, 32), u32::MAX, "DMA_AVAIL");
    assert_eq!(
        (
            u32_at(&b, 40) & 0xffff,
            u32_at(&b, 40) >> 16,
            u32_at(&b, 44)
        ),
        (1, 1, 0)
    );
    assert_eq!(u32_at(&b, 48), 1, "one IOVA range");
    assert_eq!(
        (u64_at(&b, 56), u64_at(&b, 64)),
        (MOCK_APERTURE_START, MOCK_APERTURE_LAST)
    );
}
