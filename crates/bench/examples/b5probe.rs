//! Scratch probe (not committed).
use bench::naive::NaiveRadix;
use pt::fmt::{AmdV1, AmdV1Config, ArmV8, ArmV8Config, VtdSs, VtdSsConfig};
use pt::{Format, PageTable, Prot};
use std::hint::black_box;
use std::time::Instant;

fn main() {
    match std::env::var("FMT").as_deref() {
        Ok("arm") => run::<ArmV8>(ArmV8Config::S1_4K),
        Ok("amd") => run::<AmdV1>(AmdV1Config::FOUR_LEVEL),
        _ => run::<VtdSs>(VtdSsConfig::FOUR_LEVEL),
    }
}

fn run<F: Format>(fcfg: F::Config) {
    let case = std::env::args().nth(1).unwrap_or("rand4k".into());
    let which = std::env::args().nth(2).unwrap_or("ours".into());
    let gib = 1u64 << 30;
    let iova0 = 1u64 << 40;
    let pa0 = 1u64 << 36;
    let rw = Prot::READ | Prot::WRITE;
    let pt = PageTable::<F>::new(fcfg).unwrap();
    let mut naive = NaiveRadix::new();
    if case == "rand2m" {
        pt.map_pages(iova0, pa0, 1 << 21, gib >> 21, rw).unwrap();
        for i in 0..gib >> 21 {
            naive.map_2m(iova0 + (i << 21), pa0 + (i << 21));
        }
    } else {
        pt.map_pages(iova0, pa0, 1 << 12, gib >> 12, rw).unwrap();
        for i in 0..gib >> 12 {
            naive.map(iova0 + (i << 12), pa0 + (i << 12));
        }
    }
    let mut s = 0x1234_5678_9abc_def1u64;
    let n = 1 << 20;
    let iovas: Vec<u64> = (0..n)
        .map(|i| {
            if case == "hit" {
                return iova0 + ((i % 64) << 12) + ((i * 64) & 0xfc0);
            }
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            iova0 + (s % gib & !7)
        })
        .collect();
    if which == "ideal" {
        let leaves: Vec<u64> = (0..512u64 * 512).map(|i| (i << 12) | 3).collect();
        let upper: Vec<u64> = (0..512u64).map(|i| (i * 7919) % 512).collect();
        let mut slots = vec![[0u64; 4]; 1024];
        let mut b = f64::MAX;
        for _ in 0..100 {
            b = b.min(ideal(&iovas, &leaves, &upper, &mut slots));
        }
        println!("{case} ideal: {b:.2} ns");
        let boxes: Vec<Box<[u64; 512]>> = (0..512u64)
            .map(|t| {
                let mut b = Box::new([0u64; 512]);
                for i in 0..512 {
                    b[i] = ((t * 512 + i as u64) << 12) | 3;
                }
                b
            })
            .collect();
        let mut b = f64::MAX;
        for _ in 0..100 {
            let t = Instant::now();
            for &iova in &iovas {
                let tag = iova >> 12;
                let i = (tag.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 54) as usize;
                let s = slots[i];
                if s[0] == tag {
                    black_box(s[2]);
                    continue;
                }
                let bl = (iova >> 21) as usize & 511;
                let tp = upper[bl] as usize;
                let pte = boxes[tp][(iova >> 12) as usize & 511];
                if pte & 3 == 0 {
                    black_box(0);
                    continue;
                }
                slots[i] = [tag, 1, pte & !0xfff, 12];
                black_box(pte & !0xfff);
            }
            b = b.min(t.elapsed().as_nanos() as f64 / iovas.len() as f64);
        }
        println!("{case} ideal-boxes: {b:.2} ns");
        return;
    }
    let mut best = f64::MAX;
    for _ in 0..200 {
        let t = Instant::now();
        match which.as_str() {
            "naive" => {
                for &i in &iovas {
                    black_box(naive.translate(i));
                }
            }
            "uncached" => {
                for &i in &iovas {
                    black_box(pt.translate_uncached(i, false).map(|t| t.pa).unwrap_or(0));
                }
            }
            _ => {
                for &i in &iovas {
                    black_box(pt.translate(i, false).map(|t| t.pa).unwrap_or(0));
                }
            }
        }
        best = best.min(t.elapsed().as_nanos() as f64 / n as f64);
    }
    println!("{case} {which}: {best:.2} ns");
}

#[allow(dead_code)]
pub fn ideal(iovas: &[u64], leaves: &[u64], upper: &[u64], slots: &mut [[u64; 4]]) -> f64 {
    let t = Instant::now();
    for &iova in iovas {
        let tag = iova >> 12;
        let i = (tag.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 54) as usize;
        let s = slots[i];
        if s[0] == tag {
            black_box(s[2]);
            continue;
        }
        let b = (iova >> 21) as usize & 511;
        let tp = upper[b] as usize; // leaf table index
        let pte = leaves[tp * 512 + ((iova >> 12) as usize & 511)];
        if pte & 3 == 0 {
            black_box(0);
            continue;
        }
        slots[i] = [tag, 1, pte & !0xfff, 12];
        black_box(pte & !0xfff);
    }
    t.elapsed().as_nanos() as f64 / iovas.len() as f64
}
