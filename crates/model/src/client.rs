//! Typed ioctls on an open iommufd, for the concurrency and stress tests.

use std::sync::Arc;

use iommufd::{Env, IommufdFile};
use uapi::{
    Destroy, Errno, IoasAlloc, IoasIovaRanges, IoasMap, IoasUnmap, IoctlCmd, IovaRange,
    TestAccessPages, TestAccessRw, TestCheckRefs, TestCmd, TestCreateAccess,
    TestDestroyAccessPages, TestMockDomain, TestPayload,
};
use zerocopy::FromZeros;

use crate::mem::ModelMm;

/// Map flags: readable and writable.
pub const RW: u32 = 6;
/// Map flags: readable, writable, fixed IOVA.
pub const FIXED_RW: u32 = 7;

/// An open iommufd of this process over `mm`.
pub fn open(mm: &Arc<ModelMm>) -> Arc<IommufdFile> {
    let mut env: Env = inproc::env();
    env.mm = mm.clone();
    IommufdFile::open(env, false)
}

/// `ioctl(fd, T::IOCTL, cmd)` with `cmd.size = sizeof(T)`.
///
/// # Errors
/// The ioctl's errno.
pub fn ioctl<T: IoctlCmd>(f: &Arc<IommufdFile>, cmd: &mut T) -> Result<(), Errno> {
    let size = T::SIZE as u32;
    zerocopy::IntoBytes::as_mut_bytes(cmd)[..4].copy_from_slice(&size.to_ne_bytes());
    let arg = zerocopy::IntoBytes::as_mut_bytes(cmd).as_mut_ptr() as u64;
    f.ioctl(T::IOCTL, arg).map(|_| ())
}

/// `IOMMU_TEST_CMD` with payload `p` on object `id`.
///
/// # Errors
/// The ioctl's errno.
pub fn test<P: TestPayload>(f: &Arc<IommufdFile>, id: u32, p: &P) -> Result<TestCmd, Errno> {
    let mut cmd = TestCmd::new(id, p);
    ioctl(f, &mut cmd).map(|()| cmd)
}

/// `IOMMU_IOAS_ALLOC`.
///
/// # Errors
/// The ioctl's errno.
pub fn ioas_alloc(f: &Arc<IommufdFile>) -> Result<u32, Errno> {
    let mut c = IoasAlloc::new_zeroed();
    ioctl(f, &mut c).map(|()| c.out_ioas_id)
}

/// `IOMMU_DESTROY`.
///
/// # Errors
/// The ioctl's errno.
pub fn destroy(f: &Arc<IommufdFile>, id: u32) -> Result<(), Errno> {
    let mut c = Destroy::new_zeroed();
    c.id = id;
    ioctl(f, &mut c)
}

/// `IOMMU_IOAS_MAP`; returns the IOVA.
///
/// # Errors
/// The ioctl's errno.
pub fn map(
    f: &Arc<IommufdFile>,
    ioas: u32,
    va: u64,
    len: u64,
    iova: u64,
    flags: u32,
) -> Result<u64, Errno> {
    let mut c = IoasMap::new_zeroed();
    c.ioas_id = ioas;
    c.flags = flags;
    c.user_va = va;
    c.length = len;
    c.iova = iova;
    ioctl(f, &mut c).map(|()| c.iova)
}

/// `IOMMU_IOAS_UNMAP`; returns the bytes unmapped.
///
/// # Errors
/// The ioctl's errno.
pub fn unmap(f: &Arc<IommufdFile>, ioas: u32, iova: u64, len: u64) -> Result<u64, Errno> {
    let mut c = IoasUnmap::new_zeroed();
    c.ioas_id = ioas;
    c.iova = iova;
    c.length = len;
    ioctl(f, &mut c).map(|()| c.length)
}

/// `IOMMU_IOAS_IOVA_RANGES` (up to 8 ranges).
///
/// # Errors
/// The ioctl's errno.
pub fn iova_ranges(f: &Arc<IommufdFile>, ioas: u32) -> Result<Vec<(u64, u64)>, Errno> {
    let mut out = [IovaRange::new_zeroed(); 8];
    let mut c = IoasIovaRanges::new_zeroed();
    c.ioas_id = ioas;
    c.num_iovas = 8;
    c.allowed_iovas = out.as_mut_ptr() as u64;
    ioctl(f, &mut c)?;
    Ok(out[..c.num_iovas as usize]
        .iter()
        .map(|r| (r.start, r.last))
        .collect())
}

/// `IOMMU_TEST_OP_MOCK_DOMAIN` on `pt`: (stdev, hwpt, idev).
///
/// # Errors
/// The ioctl's errno.
pub fn mock_domain(f: &Arc<IommufdFile>, pt: u32) -> Result<(u32, u32, u32), Errno> {
    let c = test(f, pt, &TestMockDomain::new_zeroed())?;
    let o: TestMockDomain = c.payload_as();
    Ok((o.out_stdev_id, o.out_hwpt_id, o.out_idev_id))
}

/// `IOMMU_TEST_OP_CREATE_ACCESS` (pinning access) on `ioas`: the access fd.
///
/// # Errors
/// The ioctl's errno.
pub fn create_access(f: &Arc<IommufdFile>, ioas: u32, needs_pin: bool) -> Result<i32, Errno> {
    let p = TestCreateAccess {
        out_access_fd: 0,
        flags: u32::from(needs_pin),
    };
    let c = test(f, ioas, &p)?;
    Ok(c.payload_as::<TestCreateAccess>().out_access_fd as i32)
}

/// `IOMMU_TEST_OP_ACCESS_PAGES`: the item id.
///
/// # Errors
/// The ioctl's errno.
pub fn access_pages(
    f: &Arc<IommufdFile>,
    afd: i32,
    iova: u64,
    len: u64,
    write: bool,
) -> Result<u32, Errno> {
    let p = TestAccessPages {
        flags: u32::from(write),
        out_access_pages_id: 0,
        iova,
        length: len,
        uptr: 0,
    };
    let c = test(f, afd as u32, &p)?;
    Ok(c.payload_as::<TestAccessPages>().out_access_pages_id)
}

/// `IOMMU_TEST_OP_DESTROY_ACCESS_PAGES`.
///
/// # Errors
/// The ioctl's errno.
pub fn destroy_access_pages(f: &Arc<IommufdFile>, afd: i32, item: u32) -> Result<(), Errno> {
    test(
        f,
        afd as u32,
        &TestDestroyAccessPages {
            access_pages_id: item,
        },
    )
    .map(|_| ())
}

/// `IOMMU_TEST_OP_ACCESS_RW` between `buf` and `iova`.
///
/// # Errors
/// The ioctl's errno.
pub fn access_rw(
    f: &Arc<IommufdFile>,
    afd: i32,
    iova: u64,
    buf: &mut [u8],
    write: bool,
) -> Result<(), Errno> {
    let p = TestAccessRw {
        iova,
        length: buf.len() as u64,
        uptr: buf.as_mut_ptr() as u64,
        flags: u32::from(write),
        ..FromZeros::new_zeroed()
    };
    test(f, afd as u32, &p).map(|_| ())
}

/// `IOMMU_TEST_OP_MD_CHECK_REFS`.
///
/// # Errors
/// The ioctl's errno (`EIO` for a wrong count).
pub fn check_refs(f: &Arc<IommufdFile>, uptr: u64, len: u64, refs: u32) -> Result<(), Errno> {
    let p = TestCheckRefs {
        length: len,
        uptr,
        refs,
        ..FromZeros::new_zeroed()
    };
    test(f, 0, &p).map(|_| ())
}

/// `close()` of an emulated fd (an access fd).
///
/// # Errors
/// The errno of `close`.
pub fn close(fd: i32) -> Result<(), Errno> {
    inproc::FdTable::global().close(fd)
}
