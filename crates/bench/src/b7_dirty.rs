//! B7 `dirty_read_clear`: `IOMMU_HWPT_GET_DIRTY_BITMAP` over 16 GiB of IOVA
//! through the library's ioctl entry (as B1), on a dirty-tracking HWPT of the
//! VT-d driver (real second-stage format; the selftest mock's aperture is only
//! 2 GiB), with 4 KiB and 2 MiB IOPTEs at 0.1 / 1 / 10 / 100 % dirty.
//!
//! The 16 GiB are one user buffer (256 MiB of anonymous memory, or the hugetlb
//! pages the host has reserved) mapped at consecutive IOVAs, so no more than
//! the buffer is ever populated. Pages are made dirty by emulated device writes
//! (`inproc::dma::write`, one byte per dirty IO page, which sets the accessed
//! and dirty flags as hardware does), outside the timed region; the user
//! bitmap (4 KiB page size) is zeroed outside it too.
//!
//! Floor in the same run: a linear scan-and-clear of the dirty bit in as many
//! u64 words as the range has IOPTEs, with the same dirty pattern.

use std::hint::black_box;

use iommufd::BoundDevice;
use uapi::{
    HwptAlloc, HwptGetDirtyBitmap, HwptSetDirtyTracking, IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
    IOMMU_HWPT_DIRTY_TRACKING_ENABLE,
};
use zerocopy::FromZeros;

use crate::b1_map_bulk::Client;
use crate::harness::{measure, time_ns, Config, Report, Target};

const NAME: &str = "B7 dirty_read_clear";
const GIB: u64 = 1 << 30;
/// First IOVA of the tracked range (above the 4 GiB MSI window).
const BASE: u64 = 1 << 34;
const PAGE: u64 = 4096;
/// The dirty flag of the floor's words (VT-d second stage D, bit 9).
const D: u64 = 1 << 9;
/// The dirty fractions: one IO page in `stride` is dirty.
const DENSITIES: [(&str, u64); 4] = [("0.1%", 1000), ("1%", 100), ("10%", 10), ("100%", 1)];

/// A VT-d device behind its own instance and platform.
fn vtd_device() -> std::sync::Arc<iommu::Device> {
    let vtd = drivers::Vtd::new(drivers::VtdConfig::default()).expect("vtd config");
    vtd.add_device("b7", &[]);
    let platform = iommu::Platform::new(iommu::DefaultPolicy::Dma);
    let desc = iommu::DeviceDesc {
        name: "b7".into(),
        ..Default::default()
    };
    platform.probe(&vtd.ops(), desc).expect("probe")
}

/// A dirty-tracking HWPT over `span` bytes of IOVA at [`BASE`], `mem` mapped
/// again and again.
struct Rig {
    c: Client,
    dev: BoundDevice,
    hwpt: u32,
    span: u64,
    bitmap: Vec<u64>,
}

impl Rig {
    fn new(mem: &host::sys::Mmap, span: u64) -> Option<Rig> {
        let c = Client::open();
        let ioas = c.ioas();
        let dev = BoundDevice::bind(&c.file, &vtd_device()).ok()?;
        let mut alloc = HwptAlloc::new_zeroed();
        alloc.flags = IOMMU_HWPT_ALLOC_DIRTY_TRACKING;
        alloc.dev_id = dev.id();
        alloc.pt_id = ioas;
        c.ioctl(&mut alloc).ok()?;
        let hwpt = alloc.out_hwpt_id;
        dev.attach(hwpt).ok()?;
        let len = mem.len() as u64;
        for k in 0..span / len {
            c.map(ioas, mem.addr(), len, Some(BASE + k * len)).ok()?;
        }
        let mut cmd = HwptSetDirtyTracking::new_zeroed();
        cmd.hwpt_id = hwpt;
        cmd.flags = IOMMU_HWPT_DIRTY_TRACKING_ENABLE;
        c.ioctl(&mut cmd).ok()?;
        let bitmap = vec![0u64; (span / PAGE / 64) as usize];
        Some(Rig {
            c,
            dev,
            hwpt,
            span,
            bitmap,
        })
    }

    /// Device writes to one IO page (of `io_page` bytes) in `stride`.
    fn dirty(&self, io_page: u64, stride: u64) -> u64 {
        let mut n = 0;
        let mut iova = BASE;
        while iova < BASE + self.span {
            inproc::dma::write(self.dev.device(), iova, &[1]).expect("DMA write");
            n += 1;
            iova += io_page * stride;
        }
        n
    }

    /// The timed ioctl: GET_DIRTY_BITMAP over the whole span, clearing.
    fn read_and_clear(&mut self) -> f64 {
        self.bitmap.fill(0);
        let mut cmd = HwptGetDirtyBitmap::new_zeroed();
        cmd.hwpt_id = self.hwpt;
        cmd.iova = BASE;
        cmd.length = self.span;
        cmd.page_size = PAGE;
        cmd.data = self.bitmap.as_mut_ptr() as u64;
        time_ns(|| {
            self.c.ioctl(&mut cmd).expect("GET_DIRTY_BITMAP");
        })
    }

    fn bits_set(&self) -> u64 {
        self.bitmap.iter().map(|w| u64::from(w.count_ones())).sum()
    }
}

/// The floor: `n` PTE-like words, one in `stride` dirty; scan-and-clear them.
struct Floor {
    words: Vec<u64>,
    stride: usize,
}

impl Floor {
    fn new(n: u64, stride: u64) -> Floor {
        // Realistic, distinct, non-zero entries (no shared zero page).
        let words = (0..n).map(|i| (i << 12) | 0x103).collect();
        Floor {
            words,
            stride: stride as usize,
        }
    }

    fn run(&mut self) -> f64 {
        for w in self.words.iter_mut().step_by(self.stride) {
            *w |= D;
        }
        let words = black_box(&mut self.words);
        time_ns(|| {
            for w in words.iter_mut() {
                *w &= !D;
            }
        })
    }
}

/// The whole of B7.
pub fn run(cfg: &Config, rep: &mut Report) {
    let span = cfg.pick(16 * GIB, 2 * GIB);
    let per_16g = (16 * GIB) as f64 / span as f64;
    // 4 KiB IOPTEs: anonymous memory.
    let len = cfg.pick(256u64 << 20, 64 << 20);
    match host::sys::Mmap::anon(
        len as usize,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
    ) {
        Ok(mem) => run_case(cfg, rep, "vtd 4K", &mem, span, PAGE, per_16g),
        Err(e) => eprintln!("   no memory for the 4K case: {e:?}"),
    }
    // 2 MiB IOPTEs: as much hugetlb memory as the host has reserved (reserved
    // at mmap time, so the device writes cannot fault).
    let mut huge = None;
    let mut hl = 64u64 << 20;
    while hl >= 2 << 20 && huge.is_none() {
        huge = host::sys::Mmap::anon(
            hl as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_HUGETLB,
        )
        .ok();
        hl /= 2;
    }
    match huge {
        Some(mem) => run_case(cfg, rep, "vtd 2M", &mem, span, 2 << 20, per_16g),
        None => eprintln!("   no hugetlb pages reserved: 2M case skipped"),
    }
}

fn run_case(
    cfg: &Config,
    rep: &mut Report,
    label: &str,
    mem: &host::sys::Mmap,
    span: u64,
    io_page: u64,
    per_16g: f64,
) {
    let Some(mut rig) = Rig::new(mem, span) else {
        eprintln!("   {label}: cannot set up the dirty-tracking HWPT");
        return;
    };
    let dom = rig.dev.device().group().domain().expect("attached");
    let vtd = drivers::VtdDomain::from_domain(&*dom).expect("a VT-d domain");
    let leaf = vtd.page_table().lookup(BASE).expect("mapped").size;
    if leaf != io_page {
        eprintln!("   {label}: the domain maps {leaf}-byte IOPTEs, not {io_page}");
        return;
    }
    let bits_per_page = io_page / PAGE;
    for (density, stride) in DENSITIES {
        // Verify once (untimed): every dirty IO page is reported, whole.
        let n = rig.dirty(io_page, stride);
        rig.read_and_clear();
        assert_eq!(rig.bits_set(), n * bits_per_page, "{label} {density}");
        rig.read_and_clear();
        assert_eq!(rig.bits_set(), 0, "{label} {density}: cleared");

        let mut floor = Floor::new(span / io_page, stride);
        let (ours, fl) = measure(
            cfg.reps(),
            || floor.run() * per_16g / 1e3,
            || {
                rig.dirty(io_page, stride);
                rig.read_and_clear() * per_16g / 1e3
            },
        );
        let (unit, ours, fl, target) = if io_page == PAGE {
            ("ms/16G", ours / 1e3, fl / 1e3, Target::RatioAtMost(2.0))
        } else {
            ("us/16G", ours, fl, Target::AbsAtMost(50.0))
        };
        rep.add(
            NAME,
            &format!("{label} {density} dirty"),
            ours,
            fl,
            unit,
            target,
            "floor=linear scan-and-clear of one u64 per IOPTE (target 4K: <= 2x and <= 7.5 ms/16G)",
        );
    }
}
