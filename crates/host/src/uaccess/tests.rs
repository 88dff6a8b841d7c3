//! Tests of the user-access API against real mappings.

use super::*;
use crate::sys::Mmap;
use libc::{PROT_NONE, PROT_READ, PROT_WRITE};

const P: usize = 4096;
const RW: i32 = PROT_READ | PROT_WRITE;

/// `n` RW pages followed by one page that faults on any access (at
/// `addr + n * P`). The hole stays reserved as `PROT_NONE` rather than unmapped:
/// an unmapped page could be handed to a concurrent test's `mmap` and become
/// accessible under our feet.
fn mapped_then_hole(n: usize) -> Mmap {
    let mut m = Mmap::anon((n + 1) * P, RW, 0).unwrap();
    m.protect_range(n * P, P, PROT_NONE).unwrap();
    m
}

/// Address of a page that faults on every access.
fn unmapped_page() -> (Mmap, u64) {
    let m = mapped_then_hole(1);
    let a = m.addr() + P as u64;
    (m, a)
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Reads `len` bytes at a user address known to be readable (via our own
/// copy, asserted to succeed).
fn peek(addr: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    copy_from_user(&mut v, addr).unwrap();
    v
}

#[test]
fn null_and_bad_ranges() {
    let mut b = [1u8; 16];
    assert_eq!(copy_from_user(&mut b, 0), Err(Errno::FAULT));
    assert_eq!(copy_to_user(0, &b), Err(Errno::FAULT));
    assert_eq!(
        copy_user_to_user(0, b.as_ptr() as u64, 4),
        Err(Errno::FAULT)
    );
    assert_eq!(
        copy_user_to_user(b.as_mut_ptr() as u64, 0, 4),
        Err(Errno::FAULT)
    );
    assert_eq!(clear_user(0, 4), Err(Errno::FAULT));
    assert_eq!(probe_read(0, 1), Err(Errno::FAULT));
    assert_eq!(probe_write(0, 1), Err(Errno::FAULT));
    assert_eq!(get_user_u32(0), Err(Errno::FAULT));
    assert_eq!(get_user_u64(0), Err(Errno::FAULT));
    assert_eq!(put_user_u32(0, 1), Err(Errno::FAULT));
    assert_eq!(put_user_u64(0, 1), Err(Errno::FAULT));
    assert_eq!(read_user::<u64>(0), Err(Errno::FAULT));
    assert_eq!(write_user(0, &7u32), Err(Errno::FAULT));
    // Small non-NULL addresses are never mapped (mmap_min_addr).
    assert_eq!(copy_from_user(&mut b, 8), Err(Errno::FAULT));
    // Kernel half, non-canonical, wrapping, crossing USER_END.
    for a in [
        0xffff_8000_0000_0000u64,
        0x0000_8000_0000_0000,
        0x8000_0000_0000_0000,
        u64::MAX - 3,
        USER_END - 8,
    ] {
        assert_eq!(copy_from_user(&mut b, a), Err(Errno::FAULT), "{a:#x}");
        assert_eq!(copy_to_user(a, &b), Err(Errno::FAULT), "{a:#x}");
        assert_eq!(probe_read(a, 16), Err(Errno::FAULT), "{a:#x}");
    }
    assert_eq!(probe_read(0x1000, u64::MAX), Err(Errno::FAULT));
    assert_eq!(b, [0u8; 16], "failed copy_from_user zero-fills");
    // Zero length: Ok whatever the address.
    assert_eq!(copy_from_user(&mut [], 0), Ok(()));
    assert_eq!(copy_to_user(0, &[]), Ok(()));
    assert_eq!(copy_user_to_user(0, 0, 0), Ok(()));
    assert_eq!(clear_user(u64::MAX, 0), Ok(()));
    assert_eq!(probe_read(0, 0), Ok(()));
    assert_eq!(probe_write(0, 0), Ok(()));
}

#[test]
fn fault_signals_removed_from_sets() {
    let mut set = core::mem::MaybeUninit::<libc::sigset_t>::zeroed();
    // SAFETY: sigfillset initializes the local set.
    let mut set = unsafe {
        libc::sigfillset(set.as_mut_ptr());
        set.assume_init()
    };
    remove_fault_signals(&mut set);
    // SAFETY: `set` is initialized; sigismember only reads it.
    let (segv, bus, usr1) = unsafe {
        (
            libc::sigismember(&set, libc::SIGSEGV),
            libc::sigismember(&set, libc::SIGBUS),
            libc::sigismember(&set, libc::SIGUSR1),
        )
    };
    assert_eq!((segv, bus, usr1), (0, 0, 1));
}

#[test]
fn unmapped_page_faults() {
    let (_m, a) = unmapped_page();
    let mut b = [0xaau8; 64];
    assert_eq!(copy_from_user(&mut b, a), Err(Errno::FAULT));
    assert_eq!(b, [0u8; 64]);
    assert_eq!(copy_to_user(a, &b), Err(Errno::FAULT));
    assert_eq!(clear_user(a, 10), Err(Errno::FAULT));
    assert_eq!(probe_read(a, 1), Err(Errno::FAULT));
    assert_eq!(probe_write(a, 1), Err(Errno::FAULT));
    assert_eq!(get_user_u64(a), Err(Errno::FAULT));
    assert_eq!(put_user_u32(a + 100, 1), Err(Errno::FAULT));
    let ok = Mmap::anon(P, RW, 0).unwrap();
    assert_eq!(copy_user_to_user(ok.addr(), a, 8), Err(Errno::FAULT));
    assert_eq!(copy_user_to_user(a, ok.addr(), 8), Err(Errno::FAULT));
}

#[test]
fn straddling_mapped_and_unmapped() {
    let m = mapped_then_hole(1);
    let a = m.addr();
    let edge = a + P as u64;
    let src = pattern(64, 3);
    // Read: the mapped prefix is copied, the rest zeroed, and it fails.
    copy_to_user(edge - 32, &src[..32]).unwrap();
    let mut b = [0xffu8; 64];
    assert_eq!(copy_from_user(&mut b, edge - 32), Err(Errno::FAULT));
    assert_eq!(&b[..32], &src[..32]);
    assert_eq!(&b[32..], &[0u8; 32]);
    // Write: fails; the mapped prefix was written (as the kernel does).
    clear_user(a, P).unwrap();
    assert_eq!(copy_to_user(edge - 32, &src), Err(Errno::FAULT));
    assert_eq!(peek(edge - 32, 32), &src[..32]);
    assert_eq!(clear_user(edge - 5, 10), Err(Errno::FAULT));
    assert_eq!(peek(edge - 5, 5), [0u8; 5]);
    assert_eq!(probe_read(edge - 1, 2), Err(Errno::FAULT));
    assert_eq!(probe_write(edge - 1, 2), Err(Errno::FAULT));
    assert_eq!(probe_read(a, P as u64 + 1), Err(Errno::FAULT));
    assert_eq!(probe_read(a + 7, P as u64 - 7), Ok(()));
    // u32/u64 across the edge.
    assert_eq!(get_user_u64(edge - 4), Err(Errno::FAULT));
    assert_eq!(get_user_u32(edge - 2), Err(Errno::FAULT));
    assert_eq!(put_user_u64(edge - 1, 5), Err(Errno::FAULT));
    assert_eq!(
        get_user_u32(edge - 9),
        Ok(u32::from_ne_bytes(src[23..27].try_into().unwrap()))
    );
    assert_eq!(get_user_u32(edge - 4), Ok(0));
    // Every short-copy class (4, 8, 16-byte moves) stops at the edge.
    for len in [2usize, 4, 5, 7, 8, 9, 15, 16, 17, 33, 63, 64] {
        let mapped = len / 2;
        copy_to_user(edge - mapped as u64, &src[..mapped]).unwrap();
        let mut b = vec![0xffu8; len];
        assert_eq!(
            copy_from_user(&mut b, edge - mapped as u64),
            Err(Errno::FAULT)
        );
        assert_eq!(&b[..mapped], &src[..mapped], "from len {len}");
        assert!(b[mapped..].iter().all(|&x| x == 0), "from len {len}");
        clear_user(a, P).unwrap();
        let at = edge - mapped as u64;
        assert_eq!(copy_to_user(at, &src[..len]), Err(Errno::FAULT));
        assert_eq!(peek(at, mapped), &src[..mapped], "to len {len}");
    }
}

#[test]
fn read_only_page_is_unchanged() {
    let mut m = Mmap::anon(2 * P, RW, 0).unwrap();
    let a = m.addr();
    let orig = pattern(2 * P, 9);
    m.as_mut_slice().unwrap().copy_from_slice(&orig);
    m.protect(PROT_READ).unwrap();
    assert_eq!(copy_to_user(a + 100, &[1, 2, 3]), Err(Errno::FAULT));
    assert_eq!(clear_user(a, 2 * P), Err(Errno::FAULT));
    assert_eq!(put_user_u64(a + 8, 0), Err(Errno::FAULT));
    assert_eq!(put_user_u32(a + 8, 0), Err(Errno::FAULT));
    assert_eq!(probe_write(a, 1), Err(Errno::FAULT));
    assert_eq!(probe_write(a + P as u64, P as u64), Err(Errno::FAULT));
    let other = Mmap::anon(P, RW, 0).unwrap();
    assert_eq!(copy_user_to_user(a, other.addr(), 64), Err(Errno::FAULT));
    assert_eq!(m.as_slice().unwrap(), &orig[..]);
    // Reads still work.
    assert_eq!(probe_read(a, 2 * P as u64), Ok(()));
    assert_eq!(peek(a + 1, 100), &orig[1..101]);
    assert_eq!(copy_user_to_user(other.addr(), a + 5, 64), Ok(()));
    assert_eq!(peek(other.addr(), 64), &orig[5..69]);
}

#[test]
fn prot_none_and_probes() {
    let mut m = Mmap::anon(3 * P, RW, 0).unwrap();
    let a = m.addr();
    m.as_mut_slice().unwrap().fill(0x5a);
    // Write probes preserve contents.
    assert_eq!(probe_write(a + 3, 3 * P as u64 - 3), Ok(()));
    assert!(m.as_slice().unwrap().iter().all(|&b| b == 0x5a));
    m.protect(PROT_NONE).unwrap();
    assert_eq!(probe_read(a, 1), Err(Errno::FAULT));
    assert_eq!(probe_read(a + 2 * P as u64 + 7, 1), Err(Errno::FAULT));
    assert_eq!(probe_write(a, 3 * P as u64), Err(Errno::FAULT));
    let mut b = [0u8; 4];
    assert_eq!(copy_from_user(&mut b, a), Err(Errno::FAULT));
    m.protect(PROT_READ).unwrap();
    assert_eq!(probe_read(a, 3 * P as u64), Ok(()));
    assert_eq!(probe_write(a, 1), Err(Errno::FAULT));
    m.protect(RW).unwrap();
    assert_eq!(probe_write(a, 3 * P as u64), Ok(()));
    assert!(m.as_slice().unwrap().iter().all(|&b| b == 0x5a));
}

#[test]
fn probe_write_breaks_cow_and_faults_in() {
    // A fresh private anonymous mapping: the write probe must populate every
    // page (resident afterwards), the read probe only maps the zero page.
    let m = Mmap::anon(16 * P, RW, 0).unwrap();
    probe_write(m.addr(), 16 * P as u64).unwrap();
    let mut vec = [0u8; 16];
    // SAFETY: mincore on our own page-aligned mapping into a 16-entry
    // vector, one byte per page.
    let rc = unsafe { libc::mincore(m.addr() as *mut libc::c_void, 16 * P, vec.as_mut_ptr()) };
    assert_eq!(rc, 0);
    assert!(vec.iter().all(|&v| v & 1 == 1), "{vec:?}");
}

#[test]
fn sigbus_beyond_eof_faults() {
    // A shared mapping of an empty memfd: access gives SIGBUS, not SIGSEGV.
    // SAFETY: memfd_create with a NUL-terminated name.
    let fd = unsafe { libc::memfd_create(c"host-sigbus".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0);
    // SAFETY: maps our own fd at a kernel-chosen address.
    let p = unsafe { libc::mmap(core::ptr::null_mut(), P, RW, libc::MAP_SHARED, fd, 0) };
    assert_ne!(p, libc::MAP_FAILED);
    let a = p as u64;
    let mut b = [1u8; 8];
    assert_eq!(copy_from_user(&mut b, a), Err(Errno::FAULT));
    assert_eq!(copy_to_user(a, &b), Err(Errno::FAULT));
    assert_eq!(probe_read(a, 1), Err(Errno::FAULT));
    assert_eq!(probe_write(a, 1), Err(Errno::FAULT));
    assert_eq!(get_user_u64(a), Err(Errno::FAULT));
    // SAFETY: our own mapping and fd.
    unsafe {
        libc::munmap(p, P);
        libc::close(fd);
    }
}

#[test]
fn byte_exact_all_sizes_odd_offsets() {
    let mut src = Mmap::anon(3 * P, RW, 0).unwrap();
    let mut dst = Mmap::anon(3 * P, RW, 0).unwrap();
    let pat = pattern(3 * P, 1);
    src.as_mut_slice().unwrap().copy_from_slice(&pat);
    let (sa, da) = (src.addr(), dst.addr());
    let mut local = vec![0u8; 3 * P];
    for len in 0..=4097usize {
        for (so, dof) in [(1usize, 3usize), (7, 5), (4095, 1)] {
            // from_user into the middle of a guarded local buffer.
            local.fill(0xee);
            copy_from_user(&mut local[dof..dof + len], sa + so as u64).unwrap();
            assert_eq!(&local[dof..dof + len], &pat[so..so + len], "from len {len}");
            assert!(
                local[..dof]
                    .iter()
                    .chain(&local[dof + len..])
                    .all(|&b| b == 0xee),
                "from guard {len}"
            );
            // to_user
            dst.as_mut_slice().unwrap().fill(0xee);
            copy_to_user(da + dof as u64, &pat[so..so + len]).unwrap();
            let d = dst.as_slice().unwrap();
            assert_eq!(&d[dof..dof + len], &pat[so..so + len], "to len {len}");
            assert!(
                d[..dof].iter().chain(&d[dof + len..]).all(|&b| b == 0xee),
                "to guard {len}"
            );
            // user_to_user
            dst.as_mut_slice().unwrap().fill(0xee);
            copy_user_to_user(da + dof as u64, sa + so as u64, len).unwrap();
            let d = dst.as_slice().unwrap();
            assert_eq!(&d[dof..dof + len], &pat[so..so + len], "u2u len {len}");
            assert!(
                d[..dof].iter().chain(&d[dof + len..]).all(|&b| b == 0xee),
                "u2u guard {len}"
            );
            // clear
            dst.as_mut_slice().unwrap().fill(0xee);
            clear_user(da + dof as u64, len).unwrap();
            let d = dst.as_slice().unwrap();
            assert!(d[dof..dof + len].iter().all(|&b| b == 0), "clear len {len}");
            assert!(
                d[..dof].iter().chain(&d[dof + len..]).all(|&b| b == 0xee),
                "clear guard {len}"
            );
        }
    }
}

#[test]
fn scalars_and_typed() {
    let m = mapped_then_hole(1);
    let a = m.addr();
    for off in [0u64, 1, 3, 4, 7, 4088] {
        put_user_u64(a + off, 0x0102_0304_0506_0708).unwrap();
        assert_eq!(get_user_u64(a + off), Ok(0x0102_0304_0506_0708));
        assert_eq!(peek(a + off, 8), 0x0102_0304_0506_0708u64.to_ne_bytes());
        put_user_u32(a + off + 1, 0xdead_beef).unwrap();
        assert_eq!(get_user_u32(a + off + 1), Ok(0xdead_beef));
    }
    #[derive(
        zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable, Debug, PartialEq, Clone, Copy,
    )]
    #[repr(C)]
    struct S {
        a: u32,
        b: u32,
        c: u64,
    }
    let s = S { a: 1, b: 2, c: 3 };
    write_user(a + 13, &s).unwrap();
    assert_eq!(read_user::<S>(a + 13), Ok(s));
    assert_eq!(read_user::<S>(a + P as u64 - 8), Err(Errno::FAULT));
}

#[cfg(target_arch = "x86_64")]
#[test]
fn extable_is_sane() {
    let t = x86_64::extable();
    assert_eq!(t.len(), 18);
    for e in t {
        // One instruction, or the few moves of a DMA copy block.
        assert!(e.start < e.end && e.end - e.start <= 64, "{e:?}");
        assert!(e.fixup > e.end && e.fixup - e.start < 256, "{e:?}");
    }
    // Ranges never overlap (a fault has one fixup).
    for (i, a) in t.iter().enumerate() {
        for b in &t[i + 1..] {
            assert!(a.end <= b.start || b.end <= a.start, "{a:?} {b:?}");
        }
    }
}

#[test]
fn concurrent_faulting_and_normal_copies() {
    let good = Mmap::anon(2 * P, RW, 0).unwrap();
    let pat = pattern(P, 77);
    copy_to_user(good.addr(), &pat).unwrap();
    let (_hole_map, hole) = unmapped_page();
    let ro = {
        let mut m = Mmap::anon(P, RW, 0).unwrap();
        m.protect(PROT_READ).unwrap();
        m
    };
    let (g, r) = (good.addr(), ro.addr());
    let pat = &pat;
    std::thread::scope(|s| {
        for t in 0..4u64 {
            s.spawn(move || {
                let mut buf = [0u8; 64];
                let scratch = g + P as u64 + t * 512;
                for i in 0..100_000u64 {
                    let off = (i * 7 + t) % (P as u64 - 64);
                    match i % 4 {
                        0 => {
                            copy_from_user(&mut buf, g + off).unwrap();
                            assert_eq!(&buf[..], &pat[off as usize..off as usize + 64]);
                        }
                        1 => assert_eq!(copy_from_user(&mut buf, hole + off), Err(Errno::FAULT)),
                        2 => {
                            copy_to_user(scratch, &i.to_ne_bytes()).unwrap();
                            assert_eq!(get_user_u64(scratch), Ok(i));
                        }
                        _ => {
                            assert_eq!(copy_to_user(r + off, &buf), Err(Errno::FAULT));
                            assert_eq!(probe_write(r, 1), Err(Errno::FAULT));
                        }
                    }
                }
            });
        }
    });
}

/// The `process_vm_*` fallback, exercised on every target.
mod pvm_fallback {
    use super::*;

    #[test]
    fn copies_and_faults() {
        let m = mapped_then_hole(2);
        let a = m.addr();
        let edge = a + 2 * P as u64;
        let pat = pattern(2 * P, 5);
        assert_eq!(pvm::copy_to_user(a, &pat), 0);
        let mut b = vec![0u8; 2 * P];
        assert_eq!(pvm::copy_from_user(&mut b, a), 0);
        assert_eq!(b, pat);
        // Straddling: partial with remaining > 0.
        let mut b = [0u8; 64];
        assert_eq!(pvm::copy_from_user(&mut b, edge - 16), 48);
        assert_eq!(&b[..16], &pat[2 * P - 16..]);
        assert_eq!(pvm::copy_to_user(edge - 16, &[0u8; 64]), 48);
        assert_eq!(pvm::copy_user_to_user(a + 3, edge, 10), 10);
        assert_eq!(pvm::copy_user_to_user(a + 1, a + P as u64, 4000), 0);
        assert_eq!(peek(a + 1, 4000), &pat[P..P + 4000]);
        assert_eq!(pvm::clear_user(a + 1, 2 * P - 1), 0);
        assert!(peek(a + 1, 2 * P - 1).iter().all(|&x| x == 0));
        assert_eq!(pvm::clear_user(edge - 1, 2), 1);
        assert_eq!(pvm::copy_to_user(edge - 2, &[7, 7]), 0);
        assert_eq!(pvm::copy_user_to_user(a + 9, edge - 2, 4), 2);
        assert_eq!(peek(a + 9, 3), [7, 7, 0]);
        assert_eq!(pvm::copy_user_to_user(edge - 2, a + 20, 4), 2);
        assert_eq!(peek(edge - 2, 2), [0, 0]);
        assert_eq!(pvm::probe_read(a + 1, 2 * P as u64 - 1), Ok(()));
        assert_eq!(pvm::probe_read(a + 1, 2 * P as u64), Err(Errno::FAULT));
        assert_eq!(pvm::probe_write(a, 2 * P as u64), Ok(()));
        assert_eq!(pvm::probe_write(a, 2 * P as u64 + 1), Err(Errno::FAULT));
        assert_eq!(pvm::get_user_u64(edge - 8), Ok(0));
        assert_eq!(pvm::get_user_u64(edge - 4), Err(Errno::FAULT));
        assert_eq!(pvm::put_user_u32(edge - 4, 9), Ok(()));
        assert_eq!(pvm::get_user_u32(edge - 4), Ok(9));
        assert_eq!(pvm::put_user_u64(edge - 4, 9), Err(Errno::FAULT));
    }

    #[test]
    fn protections_and_many_pages() {
        let mut m = Mmap::anon(200 * P, RW, 0).unwrap();
        let a = m.addr();
        // More pages than one probe batch.
        assert_eq!(pvm::probe_read(a, 200 * P as u64), Ok(()));
        m.protect(PROT_READ).unwrap();
        assert_eq!(pvm::copy_to_user(a, &[1]), 1);
        assert_eq!(pvm::probe_write(a, 1), Err(Errno::FAULT));
        assert_eq!(pvm::probe_read(a, 200 * P as u64), Ok(()));
        m.protect(PROT_NONE).unwrap();
        assert_eq!(pvm::probe_read(a + 150 * P as u64, 1), Err(Errno::FAULT));
        let mut b = [0u8; 1];
        assert_eq!(pvm::copy_from_user(&mut b, a), 1);
    }
}

/// The DMA copies (short vector path, 64-byte block loop, AVX2 blocks,
/// `rep movsb`, non-temporal stores) stop exactly at the first inaccessible byte, in both directions,
/// for every length class and alignment.
#[test]
fn dma_copies_stop_at_the_exact_faulting_byte() {
    let pages = 80;
    let m = mapped_then_hole(pages);
    let edge = m.addr() + (pages * P) as u64;
    let src = pattern(70 * 1024, 9);
    for nt in [false, true] {
        for len in [
            1usize,
            15,
            16,
            17,
            33,
            64,
            65,
            200,
            256,
            300,
            1000,
            2047,
            4096,
            5000,
            65536 + 7,
        ] {
            for mapped in [
                0usize,
                1,
                3,
                4,
                7,
                15,
                16,
                63,
                64,
                100,
                129,
                len / 2,
                len - 1,
                len,
            ] {
                if mapped > len {
                    continue;
                }
                for dst_mis in [0usize, 8] {
                    let at = edge - mapped as u64;
                    // Read into a buffer at offset `dst_mis` of a larger one.
                    copy_to_user(at, &src[..mapped]).unwrap();
                    let mut big = vec![0xeeu8; len + 16];
                    let dst = &mut big[dst_mis..dst_mis + len];
                    let r = dma_copy_from_user(dst, at, nt);
                    let what = format!("nt {nt} len {len} mapped {mapped} mis {dst_mis}");
                    if mapped == len {
                        assert_eq!(r, Ok(()), "{what}");
                        assert_eq!(&dst[..], &src[..len], "{what}");
                        continue;
                    }
                    assert_eq!(r, Err(Errno::FAULT), "{what}");
                    assert_eq!(&dst[..mapped], &src[..mapped], "{what}");
                    assert!(dst[mapped..].iter().all(|&b| b == 0), "{what}: rest zeroed");
                    // Write: the mapped prefix is written, nothing else changes.
                    clear_user(edge - P as u64 * 17, P * 17).unwrap();
                    let s = &src[dst_mis..dst_mis + len];
                    assert_eq!(dma_copy_to_user(at, s, nt), Err(Errno::FAULT), "{what}");
                    assert_eq!(peek(at, mapped), &s[..mapped], "{what}");
                }
            }
        }
    }
}

#[test]
fn dma_copies_copy_every_length_and_alignment() {
    let m = Mmap::anon(8 * P, RW, 0).unwrap();
    let src = pattern(3 * P, 77);
    for nt in [false, true] {
        for len in (1..300).chain((300..2100).step_by(37)).chain([
            2047,
            2048,
            4095,
            4096,
            4097,
            3 * P - 64,
        ]) {
            for off in [0u64, 1, 15, 16, 48, 63] {
                clear_user(m.addr(), 8 * P).unwrap();
                let at = m.addr() + 100 + off;
                dma_copy_to_user(at, &src[..len], nt).unwrap();
                assert_eq!(
                    peek(at, len),
                    &src[..len],
                    "to: nt {nt} len {len} off {off}"
                );
                assert_eq!(peek(at - 1, 1), [0], "no write before");
                assert_eq!(peek(at + len as u64, 1), [0], "no write after");
                let mut back = vec![0u8; len];
                dma_copy_from_user(&mut back, at, nt).unwrap();
                assert_eq!(back, &src[..len], "from: nt {nt} len {len} off {off}");
            }
        }
    }
    assert_eq!(
        dma_copy_from_user(&mut [0u8; 4], 0, false),
        Err(Errno::FAULT)
    );
    assert_eq!(dma_copy_to_user(0, &[], true), Ok(()));
}
