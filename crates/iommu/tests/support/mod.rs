//! A configurable IOMMU driver for testing the core: a map-based page table, an
//! event log of every attach the core asks for, and knobs for the driver features
//! the core must handle (static default domains, deferred attach, PASID, reserved
//! regions, instance-specific page sizes, attach failures).

#![allow(dead_code, unreachable_pub)]

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};

use iommu::ops::alloc_flags;
use iommu::{
    Cap, Device, DeviceDesc, DmaRun, DmaTranslation, Domain, DomainCore, DomainType, DriverId,
    Geometry, IommuOps, ProbeInfo, Prot, ResvRegion,
};
use uapi::Errno;

pub const DRIVER: DriverId = DriverId("test-iommu");
pub const OTHER_DRIVER: DriverId = DriverId("other-iommu");

static NEXT_DOMAIN: AtomicU64 = AtomicU64::new(1);

/// What the driver of an instance supports.
#[derive(Clone)]
pub struct Config {
    pub driver: DriverId,
    pub name: &'static str,
    pub pgsize_bitmap: u64,
    pub aperture_end: u64,
    /// `default_domain` op: a static platform domain instead of DMA domains.
    pub static_platform_default: bool,
    pub identity: bool,
    pub max_pasids: u32,
    /// Paging domains support PASID attach only when asked with `alloc_flags::PASID`.
    pub pasid_needs_flag: bool,
    pub attach_deferred: bool,
    pub coherency: bool,
    pub resv: Vec<(&'static str, ResvRegion)>,
    pub def_domain_type: Vec<(&'static str, DomainType)>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            driver: DRIVER,
            name: "test0",
            pgsize_bitmap: 0x1000 | 0x20_0000,
            aperture_end: (1 << 48) - 1,
            static_platform_default: false,
            identity: true,
            max_pasids: 0,
            pasid_needs_flag: false,
            attach_deferred: false,
            coherency: true,
            resv: Vec::new(),
            def_domain_type: Vec::new(),
        }
    }
}

/// One attach the core asked of a driver: (device name, domain id, pasid).
pub type Event = (String, u64, Option<u32>);

pub struct TestIommu {
    pub cfg: Config,
    pub events: Arc<Mutex<Vec<Event>>>,
    /// Device name → (errno, domain id): attaching that domain to the device fails.
    pub fail_attach: Mutex<BTreeMap<String, (Errno, u64)>>,
    platform_domain: Arc<TestDomain>,
    blocked: Arc<TestDomain>,
    identity: Arc<TestDomain>,
    pub allocs: Mutex<Vec<(DomainType, u32)>>,
}

impl TestIommu {
    pub fn new(cfg: Config) -> Arc<TestIommu> {
        let events = Arc::new(Mutex::new(Vec::new()));
        let make = |ty| TestDomain::new(&cfg, ty, events.clone(), false);
        Arc::new(TestIommu {
            platform_domain: make(DomainType::Platform),
            blocked: make(DomainType::Blocked),
            identity: make(DomainType::Identity),
            cfg,
            events,
            fail_attach: Mutex::new(BTreeMap::new()),
            allocs: Mutex::new(Vec::new()),
        })
    }

    pub fn ops(self: &Arc<Self>) -> Arc<dyn IommuOps> {
        self.clone()
    }

    /// The attach events so far, then clears them.
    pub fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }

    fn paging(&self, dev: &Device, pasid: bool) -> Arc<TestDomain> {
        let _ = dev;
        TestDomain::new(&self.cfg, DomainType::Dma, self.events.clone(), pasid)
    }
}

/// A paging domain over a `BTreeMap` of leaves.
pub struct TestDomain {
    core: DomainCore,
    pub id: u64,
    ty: DomainType,
    /// The instance (driver config name) it was allocated on.
    instance: &'static str,
    pgsize_bitmap: u64,
    aperture_end: u64,
    pasid: bool,
    coherency_capable: bool,
    pub enforced: Mutex<bool>,
    pub leaves: Mutex<BTreeMap<u64, (u64, u64, Prot)>>,
    events: Arc<Mutex<Vec<Event>>>,
    /// When set, `map_pages` waits here twice (to stop a mapper mid-way).
    pub map_gate: Mutex<Option<Arc<Barrier>>>,
    /// `dma_cache_token`: `None` while 0; every unmap bumps a non-zero one.
    pub dma_token: AtomicU64,
    /// Every `dma_translate_run` call: (iova, len, write).
    pub dma_translations: Mutex<Vec<(u64, u64, bool)>>,
}

impl TestDomain {
    fn new(
        cfg: &Config,
        ty: DomainType,
        events: Arc<Mutex<Vec<Event>>>,
        pasid: bool,
    ) -> Arc<TestDomain> {
        Arc::new(TestDomain {
            core: DomainCore::new(cfg.driver),
            id: NEXT_DOMAIN.fetch_add(1, Ordering::Relaxed),
            ty,
            instance: cfg.name,
            pgsize_bitmap: cfg.pgsize_bitmap,
            aperture_end: cfg.aperture_end,
            pasid,
            coherency_capable: cfg.coherency,
            enforced: Mutex::new(false),
            leaves: Mutex::new(BTreeMap::new()),
            events,
            map_gate: Mutex::new(None),
            dma_token: AtomicU64::new(0),
            dma_translations: Mutex::new(Vec::new()),
        })
    }

    pub fn of(domain: &Arc<dyn Domain>) -> &TestDomain {
        domain.as_any().downcast_ref().expect("a test domain")
    }
}

/// The test domain id of any domain.
pub fn id(domain: &Arc<dyn Domain>) -> u64 {
    TestDomain::of(domain).id
}

impl Domain for TestDomain {
    fn core(&self) -> &DomainCore {
        &self.core
    }
    fn domain_type(&self) -> DomainType {
        self.ty
    }
    fn attach_dev(&self, dev: &Device) -> Result<(), Errno> {
        let ops: &TestIommu = dev.ops().as_any().downcast_ref().expect("test iommu");
        if ops.cfg.name != self.instance {
            // Per-instance formats: a domain is usable only on its own instance.
            return Err(Errno::INVAL);
        }
        if let Some(&(err, domain)) = ops.fail_attach.lock().unwrap().get(&dev.desc().name) {
            if domain == self.id {
                return Err(err);
            }
        }
        self.events
            .lock()
            .unwrap()
            .push((dev.desc().name.clone(), self.id, None));
        Ok(())
    }
    fn supports_pasid(&self) -> bool {
        self.pasid
    }
    fn set_dev_pasid(&self, dev: &Device, pasid: u32) -> Result<(), Errno> {
        self.events
            .lock()
            .unwrap()
            .push((dev.desc().name.clone(), self.id, Some(pasid)));
        Ok(())
    }
    fn geometry(&self) -> Geometry {
        Geometry {
            aperture_start: 0,
            aperture_end: self.aperture_end,
            force_aperture: true,
        }
    }
    fn pgsize_bitmap(&self) -> u64 {
        if self.ty.is_paging() {
            self.pgsize_bitmap
        } else {
            0
        }
    }
    fn map_pages(
        &self,
        iova: u64,
        pa: u64,
        pgsize: u64,
        pgcount: u64,
        prot: Prot,
    ) -> Result<u64, (u64, Errno)> {
        let gate = self.map_gate.lock().unwrap().clone();
        if let Some(gate) = gate {
            gate.wait();
            gate.wait();
        }
        let mut leaves = self.leaves.lock().unwrap();
        for i in 0..pgcount {
            let at = iova + i * pgsize;
            if leaves
                .range(..=at)
                .next_back()
                .is_some_and(|(&s, &(_, len, _))| at < s + len)
                || at + pgsize - 1 > self.aperture_end
            {
                return Err((i * pgsize, Errno::EXIST));
            }
            leaves.insert(at, (pa + i * pgsize, pgsize, prot));
        }
        Ok(pgsize * pgcount)
    }
    fn unmap_pages(&self, iova: u64, pgsize: u64, pgcount: u64) -> u64 {
        let mut leaves = self.leaves.lock().unwrap();
        let mut done = 0;
        while done < pgsize * pgcount {
            match leaves.remove(&(iova + done)) {
                Some((_, len, _)) => done += len,
                None => break,
            }
        }
        let token = self.dma_token.load(Ordering::Relaxed);
        if token != 0 {
            self.dma_token.store(token + 1, Ordering::Release);
        }
        done
    }
    fn iova_to_phys(&self, iova: u64) -> u64 {
        let leaves = self.leaves.lock().unwrap();
        match leaves.range(..=iova).next_back() {
            Some((&s, &(pa, len, _))) if iova < s + len => pa + (iova - s),
            _ => 0,
        }
    }
    /// The leaves from `iova` on while they continue each other's output,
    /// up to `len` bytes.
    fn dma_translate_run(&self, iova: u64, len: u64, write: bool) -> DmaRun {
        self.dma_translations
            .lock()
            .unwrap()
            .push((iova, len, write));
        let needed = if write { Prot::WRITE } else { Prot::READ };
        let leaves = self.leaves.lock().unwrap();
        let mut run: Option<DmaTranslation> = None;
        let mut at = iova;
        while run.map_or(0, |r| r.len) < len {
            let Some((&s, &(pa, size, prot))) = leaves.range(..=at).next_back() else {
                break;
            };
            if at >= s + size || !prot.contains(needed) {
                break;
            }
            let (pa, n) = (pa + (at - s), s + size - at);
            match &mut run {
                None => run = Some(DmaTranslation { pa, len: n }),
                Some(r) if r.pa + r.len == pa => r.len += n,
                Some(_) => break,
            }
            at += n;
        }
        match run {
            Some(r) => DmaRun::ok(r),
            None if leaves
                .range(..=iova)
                .next_back()
                .is_some_and(|(&s, &(_, size, _))| iova < s + size) =>
            {
                DmaRun::fault(Errno::PERM)
            }
            None => DmaRun::fault(Errno::NOENT),
        }
    }
    fn dma_cache_token(&self, write: bool) -> Option<u64> {
        let _ = write;
        Some(self.dma_token.load(Ordering::Acquire)).filter(|&t| t != 0)
    }
    fn enforce_cache_coherency(&self) -> bool {
        if !self.coherency_capable {
            return false;
        }
        *self.enforced.lock().unwrap() = true;
        true
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl IommuOps for TestIommu {
    fn driver(&self) -> DriverId {
        self.cfg.driver
    }
    fn name(&self) -> &str {
        self.cfg.name
    }
    fn probe_device(&self, desc: &DeviceDesc) -> Result<ProbeInfo, Errno> {
        if desc.name.starts_with("absent") {
            return Err(Errno::NODEV);
        }
        Ok(ProbeInfo {
            max_pasids: self.cfg.max_pasids,
            attach_deferred: self.cfg.attach_deferred,
            isolated_msi: true,
        })
    }
    fn capable(&self, _dev: &Device, cap: Cap) -> bool {
        match cap {
            Cap::CacheCoherency | Cap::EnforceCacheCoherency => self.cfg.coherency,
            _ => false,
        }
    }
    fn default_domain(&self) -> Option<Arc<dyn Domain>> {
        self.cfg
            .static_platform_default
            .then(|| self.platform_domain.clone() as Arc<dyn Domain>)
    }
    fn blocked_domain(&self) -> Option<Arc<dyn Domain>> {
        Some(self.blocked.clone())
    }
    fn identity_domain(&self) -> Option<Arc<dyn Domain>> {
        self.cfg
            .identity
            .then(|| self.identity.clone() as Arc<dyn Domain>)
    }
    fn def_domain_type(&self, dev: &Device) -> Option<DomainType> {
        self.cfg
            .def_domain_type
            .iter()
            .find(|(n, _)| *n == dev.desc().name)
            .map(|(_, t)| *t)
    }
    fn domain_alloc_paging(&self, dev: &Device) -> Result<Arc<dyn Domain>, Errno> {
        self.allocs.lock().unwrap().push((DomainType::Dma, 0));
        Ok(self.paging(dev, !self.cfg.pasid_needs_flag))
    }
    fn domain_alloc_paging_flags(
        &self,
        dev: &Device,
        flags: u32,
    ) -> Result<Arc<dyn Domain>, Errno> {
        if flags & !alloc_flags::PASID != 0 {
            return Err(Errno::OPNOTSUPP);
        }
        self.allocs.lock().unwrap().push((DomainType::Dma, flags));
        let pasid = flags & alloc_flags::PASID != 0 || !self.cfg.pasid_needs_flag;
        Ok(self.paging(dev, pasid))
    }
    fn get_resv_regions(&self, dev: &Device) -> Vec<ResvRegion> {
        self.cfg
            .resv
            .iter()
            .filter(|(n, _)| *n == dev.desc().name)
            .map(|(_, r)| *r)
            .collect()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A device description with just a name.
pub fn desc(name: &str) -> DeviceDesc {
    DeviceDesc {
        name: name.to_string(),
        ..DeviceDesc::default()
    }
}
