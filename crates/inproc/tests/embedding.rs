//! Embedding: the built-in platform description's devices bound to contexts through
//! the library API, with the IOMMU group rules, reserved regions and DMA through
//! the real-format drivers (the README's example, as a test).

mod support;

use iommufd::BoundDevice;
use support::{buffer, Fd, PAGE};
use uapi::Errno;

#[test]
fn default_platform_devices_bind_attach_and_dma_with_group_rules() {
    let built = platform::Description::default_platform().build().unwrap();
    let dev = |name: &str| built.device(name).unwrap().clone();
    let a = Fd::open();
    let b = Fd::open();

    // gpu0 and gpu1 sit below a switch without ACS: one group, one owner.
    let gpu0 = BoundDevice::bind(&a.file, &dev("gpu0")).unwrap();
    assert_eq!(
        BoundDevice::bind(&b.file, &dev("gpu1")).err(),
        Some(Errno::PERM),
        "the group belongs to context a"
    );
    let gpu1 = BoundDevice::bind(&a.file, &dev("gpu1")).unwrap();

    let ioas = a.ioas_alloc();
    let buf = buffer(8 * PAGE as usize);
    let iova = 0x4000_0000;
    a.map_fixed(ioas, buf.addr(), 8 * PAGE, iova).unwrap();
    let hwpt = gpu0.attach(ioas).unwrap();
    assert_eq!(gpu1.attach(ioas), Ok(hwpt), "the group's HWPT is reused");

    inproc::dma::write(gpu1.device(), iova + PAGE, b"from gpu1").unwrap();
    let mut got = [0u8; 9];
    inproc::dma::read(gpu0.device(), iova + PAGE, &mut got).unwrap();
    assert_eq!(&got, b"from gpu1");

    // The VT-d interrupt window is reserved in the IOAS once a device is attached
    // (a fixed map into a reserved range is EINVAL, iopt_check_iova).
    let other = buffer(PAGE as usize);
    assert_eq!(
        a.map_fixed(ioas, other.addr(), PAGE, 0xfee0_0000),
        Err(Errno::INVAL)
    );

    // An SMMUv3 platform device: its software MSI window is reserved too, and its
    // domain is finalized by the attach.
    let uart = BoundDevice::bind(&a.file, &dev("uart0")).unwrap();
    let ioas2 = a.ioas_alloc();
    a.map_fixed(ioas2, buf.addr(), 8 * PAGE, iova).unwrap();
    uart.attach(ioas2).unwrap();
    assert_eq!(
        a.map_fixed(ioas2, other.addr(), PAGE, 0x800_0000),
        Err(Errno::INVAL)
    );
    let mut b2 = [0u8; 9];
    inproc::dma::read(uart.device(), iova + PAGE, &mut b2).unwrap();
    assert_eq!(&b2, b"from gpu1");

    drop((gpu0, gpu1, uart));
    // Released: the other context may take the group now.
    BoundDevice::bind(&b.file, &dev("gpu1")).unwrap();
}
