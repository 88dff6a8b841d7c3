//! B6 `dma_rw`: an emulated device copies 1 GiB (64 MiB in quick mode)
//! between its own buffer and user memory through IOVAs, with
//! [`inproc::dma::DmaHandle`], in DMAs of 64 B, 4 KiB, 64 KiB and 1 MiB, in
//! both directions, over two layouts of the same user memory:
//!
//! - *huge*: one IOAS_MAP of hugetlb memory (as much as the host has free,
//!   up to 64 MiB) into an IOAS attached to a VT-d device: 2 MiB IOPTEs;
//! - *contiguous*: one IOAS_MAP of the whole (2 MiB aligned) anonymous region
//!   into an IOAS attached to a VT-d device: 4 KiB IOPTEs (anonymous memory is
//!   never taken as physically contiguous beyond a page);
//! - *scattered*: one 4 KiB IOAS_MAP per page at consecutive IOVAs, of the
//!   region's pages in shuffled order, into an IOAS attached to a VT-d device.
//!
//! The device is VT-d (second-stage 4-level tables), the real format an
//! emulated PCI device of an x86 VMM translates through.
//!
//! Floors in the same run, bracketing ours in every repetition: a plain
//! `memcpy` (`copy_from_slice`) with the same chunking and layout (for
//! scattered, the same shuffled 4 KiB pieces), and for 64 KiB and 1 MiB DMAs
//! a non-temporal-store copy ([`host::mem::copy_nt`]) with the same pieces.
//! Rows: throughput (GB/s, ratio = ours / floor, target >= 0.9) for DMAs of
//! 4 KiB and more; ns per DMA (target: at most 25 ns more than the floor)
//! for 64 B DMAs.

use std::hint::black_box;

use iommufd::BoundDevice;

use crate::b1_map_bulk::{free_hugetlb_bytes, Client};
use crate::harness::{median, time_ns, Config, Report, Rng, Target};

const NAME: &str = "B6 dma_rw";
const GIB: usize = 1 << 30;
const PAGE: usize = 4096;
const IOVA: u64 = 1 << 30;
/// DMA sizes.
const SIZES: [usize; 4] = [64, 4 << 10, 64 << 10, 1 << 20];
/// Sizes that also get the non-temporal-store floor.
const NT_FROM: usize = 64 << 10;

/// One IOVA layout of user memory, with its device.
struct Layout {
    name: &'static str,
    /// For scattered: IOVA page `i` maps user page `perm[i]`.
    perm: Option<Vec<u32>>,
    dma: inproc::dma::DmaHandle,
    // Dropped after `dma`, in this order: the device detaches, then the
    // context goes, then the memory is unmapped.
    _dev: BoundDevice,
    _client: Client,
    mem: Memory,
}

/// 2 MiB aligned anonymous (or hugetlb) memory of `len` bytes, touched.
struct Memory {
    map: host::sys::Mmap,
    off: usize,
    len: usize,
}

impl Memory {
    fn new(len: usize, hugetlb: bool) -> Option<Memory> {
        let align = 2 << 20;
        let extra = if hugetlb {
            libc::MAP_HUGETLB
        } else {
            libc::MAP_NORESERVE
        };
        let map = host::sys::Mmap::anon(
            if hugetlb { len } else { len + align },
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | extra,
        )
        .ok()?;
        let off = (map.addr() as usize).next_multiple_of(align) - map.addr() as usize;
        let mut m = Memory { map, off, len };
        for (i, b) in m.slice_mut().iter_mut().enumerate() {
            // Differs between pages and within them.
            *b = (i ^ (i >> 12).wrapping_mul(131)) as u8;
        }
        Some(m)
    }

    fn addr(&self) -> u64 {
        self.map.addr() + self.off as u64
    }

    fn slice(&self) -> &[u8] {
        &self.map.as_slice().expect("mapped")[self.off..self.off + self.len]
    }

    fn slice_mut(&mut self) -> &mut [u8] {
        let (off, len) = (self.off, self.len);
        &mut self.map.as_mut_slice().expect("mapped")[off..off + len]
    }
}

/// A VT-d device alone on a platform of its own.
fn vtd_device() -> std::sync::Arc<iommu::Device> {
    let vtd = drivers::Vtd::new(drivers::VtdConfig::default()).expect("vtd");
    vtd.add_device("dma-engine", &[]);
    let platform = iommu::Platform::new(iommu::DefaultPolicy::Dma);
    let desc = iommu::DeviceDesc {
        name: "dma-engine".into(),
        ..Default::default()
    };
    platform.probe(&vtd.ops(), desc).expect("probe")
}

/// A layout: a VT-d device attached to a fresh IOAS, then `map` run to fill
/// the IOAS (after the attach, so the domain gets each contiguous run at once
/// and can use its large IO pages).
fn layout(name: &'static str, mem: Memory, perm: Option<Vec<u32>>) -> Layout {
    let client = Client::open();
    let ioas = client.ioas();
    let dev = vtd_device();
    let bound = BoundDevice::bind(&client.file, &dev).expect("bind");
    bound.attach(ioas).expect("attach");
    match &perm {
        None => {
            client
                .map(ioas, mem.addr(), mem.len as u64, Some(IOVA))
                .expect("IOAS_MAP");
        }
        Some(perm) => {
            for (i, &p) in perm.iter().enumerate() {
                client
                    .map(
                        ioas,
                        mem.addr() + u64::from(p) * PAGE as u64,
                        PAGE as u64,
                        Some(IOVA + (i * PAGE) as u64),
                    )
                    .expect("IOAS_MAP");
            }
        }
    }
    Layout {
        name,
        perm,
        dma: inproc::dma::DmaHandle::new(dev),
        _dev: bound,
        _client: client,
        mem,
    }
}

fn shuffled(pages: usize) -> Vec<u32> {
    let mut perm: Vec<u32> = (0..pages as u32).collect();
    let mut rng = Rng::new(0xb6);
    for i in (1..pages).rev() {
        perm.swap(i, rng.below(i as u64 + 1) as usize);
    }
    perm
}

/// The pieces `(device buffer offset, user memory offset, length)` of DMA
/// `[off, off + size)` in `layout`: one for contiguous, one per 4 KiB page
/// for scattered.
#[inline(always)]
fn pieces(perm: Option<&[u32]>, off: usize, size: usize, mut f: impl FnMut(usize, usize, usize)) {
    match perm {
        None => f(off, off, size),
        Some(perm) => {
            let mut d = 0;
            while d < size {
                let o = off + d;
                let in_page = o % PAGE;
                let k = (size - d).min(PAGE - in_page);
                f(o, perm[o / PAGE] as usize * PAGE + in_page, k);
                d += k;
            }
        }
    }
}

/// One pass of the floor copy `copy` over the whole buffer: ns per DMA.
fn floor_pass(
    perm: Option<&[u32]>,
    read: bool,
    size: usize,
    mem: &mut [u8],
    dev: &mut [u8],
    copy: fn(&mut [u8], &[u8]),
) -> f64 {
    let n = dev.len() / size;
    let ns = time_ns(|| {
        for i in 0..n {
            pieces(perm, i * size, size, |d, m, k| {
                if read {
                    copy(&mut dev[d..d + k], &mem[m..m + k]);
                } else {
                    copy(&mut mem[m..m + k], &dev[d..d + k]);
                }
            });
        }
    });
    black_box(&mut *dev);
    black_box(&mut *mem);
    ns / n as f64
}

/// One pass of our DMAs over the whole buffer: ns per DMA.
fn ours_pass(dma: &mut inproc::dma::DmaHandle, read: bool, size: usize, dev: &mut [u8]) -> f64 {
    let n = dev.len() / size;
    let ns = time_ns(|| {
        for i in 0..n {
            let off = i * size;
            let iova = IOVA + off as u64;
            let r = if read {
                dma.read(iova, &mut dev[off..off + size])
            } else {
                dma.write(iova, &dev[off..off + size])
            };
            r.expect("DMA");
        }
    });
    black_box(&mut *dev);
    ns / n as f64
}

fn memcpy(d: &mut [u8], s: &[u8]) {
    d.copy_from_slice(s);
}

/// The whole of B6.
pub fn run(cfg: &Config, rep: &mut Report) {
    let len = cfg.pick(GIB, 64 << 20);
    let huge_len = cfg
        .pick(64 << 20, 32 << 20)
        .min(free_hugetlb_bytes() as usize);
    let mut dev = vec![0xa5u8; len];
    let setup = std::time::Instant::now();
    let mut layouts = Vec::new();
    // Huge IOPTEs need memory the host pins in large pages (hugetlb): anonymous
    // 4 KiB pages are never taken as physically contiguous.
    match (huge_len != 0)
        .then(|| Memory::new(huge_len, true))
        .flatten()
    {
        Some(m) => layouts.push(layout("huge", m, None)),
        None => eprintln!("   no hugetlb pages: skipping the huge-IOPTE layout"),
    }
    let contig = Memory::new(len, false).expect("mmap");
    layouts.push(layout("contig", contig, None));
    let scattered = Memory::new(len, false).expect("mmap");
    let perm = shuffled(len / PAGE);
    layouts.push(layout("scattered", scattered, Some(perm)));
    eprintln!("   (setup {:.2} s)", setup.elapsed().as_secs_f64());
    for mut l in layouts {
        let n = l.mem.len;
        // Correctness once: our reads see the layout the floor copies.
        check_layout(&mut l, &mut dev[..n]);
        for read in [true, false] {
            for size in SIZES {
                run_case(cfg, rep, &mut l, read, size, &mut dev[..n]);
            }
        }
    }
}

fn check_layout(l: &mut Layout, dev: &mut [u8]) {
    for probe in [0, 3 * PAGE + 100, 7 * PAGE - 50, (1 << 20) - 3000] {
        l.dma
            .read(IOVA + probe as u64, &mut dev[..8192])
            .expect("DMA");
        let mut want = Vec::new();
        pieces(l.perm.as_deref(), probe, 8192, |_, m, k| {
            want.extend_from_slice(&l.mem.slice()[m..m + k]);
        });
        assert_eq!(&dev[..8192], &want[..], "{}: DMA read mismatch", l.name);
    }
}

fn run_case(
    cfg: &Config,
    rep: &mut Report,
    l: &mut Layout,
    read: bool,
    size: usize,
    dev: &mut [u8],
) {
    let perm = l.perm.as_deref();
    let with_nt = size >= NT_FROM;
    let mem = l.mem.slice_mut();
    let pass_memcpy =
        |mem: &mut [u8], dev: &mut [u8]| floor_pass(perm, read, size, mem, dev, memcpy);
    let pass_nt =
        |mem: &mut [u8], dev: &mut [u8]| floor_pass(perm, read, size, mem, dev, host::mem::copy_nt);
    // Warm-up, then per repetition: memcpy, NT, ours, NT, memcpy.
    pass_memcpy(mem, dev);
    if with_nt {
        pass_nt(mem, dev);
    }
    ours_pass(&mut l.dma, read, size, dev);
    let (mut o, mut f, mut n) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..cfg.reps() {
        let f1 = pass_memcpy(mem, dev);
        let n1 = if with_nt { pass_nt(mem, dev) } else { 0.0 };
        o.push(ours_pass(&mut l.dma, read, size, dev));
        let n2 = if with_nt { pass_nt(mem, dev) } else { 0.0 };
        let f2 = pass_memcpy(mem, dev);
        f.push((f1 + f2) / 2.0);
        n.push((n1 + n2) / 2.0);
    }
    let (ours, floor, nt) = (median(&mut o), median(&mut f), median(&mut n));
    let dir = if read { "read" } else { "write" };
    let size_text = match size {
        s if s >= 1 << 20 => format!("{}M", s >> 20),
        s if s >= 1 << 10 => format!("{}K", s >> 10),
        s => format!("{s}B"),
    };
    let case = format!("{} {dir} {size_text}", l.name);
    if size < PAGE {
        rep.add(
            NAME,
            &case,
            ours,
            floor,
            "ns/DMA",
            Target::ExtraAtMost(25.0),
            &format!(
                "floor=memcpy, same chunks; extra {:.1} ns/DMA",
                ours - floor
            ),
        );
        return;
    }
    let gbs = |ns_per_dma: f64| size as f64 / ns_per_dma;
    rep.add(
        NAME,
        &case,
        gbs(ours),
        gbs(floor),
        "GB/s",
        Target::RatioAtLeast(0.9),
        "floor=memcpy, same chunks",
    );
    if with_nt {
        rep.add(
            NAME,
            &format!("{case} vs NT"),
            gbs(ours),
            gbs(nt),
            "GB/s",
            Target::RatioAtLeast(0.9),
            "floor=non-temporal-store copy, same chunks",
        );
    }
}
