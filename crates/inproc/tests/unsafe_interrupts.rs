//! `allow_unsafe_interrupts` (a process-wide module parameter, so a test binary of
//! its own): devices without isolated MSIs can be bound once it is set.

use std::sync::Arc;

use iommufd::BoundDevice;

#[test]
fn allow_unsafe_interrupts_lets_devices_without_isolated_msi_bind() {
    let vtd = drivers::Vtd::new(drivers::VtdConfig {
        interrupt_remapping: false,
        ..drivers::VtdConfig::default()
    })
    .unwrap();
    vtd.add_device("nic", &[]);
    let platform = iommu::Platform::new(iommu::DefaultPolicy::Dma);
    let dev: Arc<iommu::Device> = platform
        .probe(
            &vtd.ops(),
            iommu::DeviceDesc {
                name: "nic".into(),
                ..Default::default()
            },
        )
        .unwrap();
    let file = inproc::open(false);
    assert_eq!(
        BoundDevice::bind(&file, &dev).err(),
        Some(uapi::Errno::PERM)
    );
    iommufd::set_allow_unsafe_interrupts(true);
    let bound = BoundDevice::bind(&file, &dev).unwrap();
    assert!(dev.group().owner().is_some());
    drop(bound);
    iommufd::set_allow_unsafe_interrupts(false);
    assert_eq!(dev.group().owner(), None, "unbind released ownership");
}
