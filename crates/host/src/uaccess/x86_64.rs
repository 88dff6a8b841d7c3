//! x86-64 user access with an exception table, as in the kernel.
//!
//! Owns:
//! * the assembly routines (`global_asm!`): `rep movsb` copy, `rep stosb`
//!   fill, read probe (one load per 4 KiB page), write probe
//!   (`lock or byte ptr [p], 0` per 4 KiB page) and unaligned u32/u64
//!   loads/stores. Each has exactly one instruction that may fault on a user
//!   address, bracketed by labels;
//! * the exception table `__iommufd_host_extable`, an array of [`ExEntry`]
//!   `{start, end, fixup}` in `.data.rel.ro`: a fault with `start <= RIP <
//!   end` resumes at `fixup`, which returns the number of bytes not done
//!   (RCX for the string instructions, whose faults leave RCX/RSI/RDI at the
//!   faulting iteration) or 1 for the probes/loads/stores;
//! * the SIGSEGV/SIGBUS handler (`SA_SIGINFO | SA_ONSTACK | SA_NODEFER`) that
//!   applies the table for kernel-generated faults (`si_code > 0`) and
//!   otherwise chains to the program's action ([`ChainSlot`]), emulating what
//!   the kernel would have done with it;
//! * [`chained_sigaction`], through which the preload library routes the
//!   program's `sigaction` calls for SIGSEGV/SIGBUS.
//!
//! Locking: the chained actions are guarded by a spin lock. Normal-context
//! holders block all signals while holding it (a few instructions and one
//! `sigaction` call at install), so the handler (which takes it only on the
//! chaining path, never for fixups) never spins on a lock held by its own
//! thread.

#![allow(unsafe_code)]

use core::ffi::{c_int, c_void};
use core::mem::{offset_of, size_of, MaybeUninit};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use uapi::Errno;

use super::sig::{real_sigaction, resolve};

core::arch::global_asm!(
    r#"
    .pushsection .text.iommufd_host_uaccess,"ax",@progbits

    // size_t copy(void *dst /*rdi*/, const void *src /*rsi*/, size_t len /*rdx*/)
    // Returns the number of bytes NOT copied.
    .p2align 4
    .globl __iommufd_host_copy
    .hidden __iommufd_host_copy
    .type __iommufd_host_copy,@function
__iommufd_host_copy:
    mov rcx, rdx
__iommufd_host_copy_insn:
    rep movsb
__iommufd_host_copy_insn_end:
    xor eax, eax
    ret
__iommufd_host_copy_fixup:
    mov rax, rcx
    ret
    .size __iommufd_host_copy, . - __iommufd_host_copy

    // size_t copy_dma(void *dst /*rdi*/, const void *src /*rsi*/, size_t len /*rdx*/)
    // len > 0. Returns the number of bytes NOT copied. Copies of 4..=64
    // bytes use overlapping 4-, 8- or 16-byte moves (no `rep` start-up
    // cost; a fault redoes the copy with `rep movsb`); longer
    // ones a loop of 64-byte blocks (RDI/RSI/RDX advance once per block;
    // measured faster than `rep movsb` for 4 KiB pieces to a misaligned
    // destination) and `rep movsb` for the last bytes. A fault among the
    // moves redoes the copy from the start of the block (of the whole copy
    // for 16..=64 bytes) with `rep movsb`, which stops at the exact faulting
    // byte (re-copying is harmless: the source is unchanged).
    .p2align 4
    .globl __iommufd_host_copy_dma
    .hidden __iommufd_host_copy_dma
    .type __iommufd_host_copy_dma,@function
__iommufd_host_copy_dma:
    lea rax, [rdx - 16]
    cmp rax, 48
    ja 4f
__iommufd_host_copy_dma_vec:
    movdqu xmm0, xmmword ptr [rsi]
    movdqu xmm1, xmmword ptr [rsi + rdx - 16]
    cmp rdx, 32
    jbe 2f
    movdqu xmm2, xmmword ptr [rsi + 16]
    movdqu xmm3, xmmword ptr [rsi + rdx - 32]
    movdqu xmmword ptr [rdi + 16], xmm2
    movdqu xmmword ptr [rdi + rdx - 32], xmm3
2:
    movdqu xmmword ptr [rdi], xmm0
    movdqu xmmword ptr [rdi + rdx - 16], xmm1
__iommufd_host_copy_dma_vec_end:
    xor eax, eax
    ret
4:
    cmp rdx, 64
    ja 9f
    cmp rdx, 4
    jb __iommufd_host_copy_dma_rep
    cmp rdx, 8
    jb 6f
__iommufd_host_copy_dma_small8:
    mov rax, qword ptr [rsi]
    mov rcx, qword ptr [rsi + rdx - 8]
    mov qword ptr [rdi], rax
    mov qword ptr [rdi + rdx - 8], rcx
__iommufd_host_copy_dma_small8_end:
    xor eax, eax
    ret
6:
__iommufd_host_copy_dma_small4:
    mov eax, dword ptr [rsi]
    mov ecx, dword ptr [rsi + rdx - 4]
    mov dword ptr [rdi], eax
    mov dword ptr [rdi + rdx - 4], ecx
__iommufd_host_copy_dma_small4_end:
    xor eax, eax
    ret
9:
    mov rcx, rdx
    shr rcx, 6
    jz __iommufd_host_copy_dma_rep
    .p2align 4
3:
__iommufd_host_copy_dma_loop:
    movdqu xmm0, xmmword ptr [rsi]
    movdqu xmm1, xmmword ptr [rsi + 16]
    movdqu xmm2, xmmword ptr [rsi + 32]
    movdqu xmm3, xmmword ptr [rsi + 48]
    movdqu xmmword ptr [rdi], xmm0
    movdqu xmmword ptr [rdi + 16], xmm1
    movdqu xmmword ptr [rdi + 32], xmm2
    movdqu xmmword ptr [rdi + 48], xmm3
__iommufd_host_copy_dma_loop_end:
    add rsi, 64
    add rdi, 64
    sub rdx, 64
    dec rcx
    jnz 3b
    test rdx, rdx
    jz 5f
__iommufd_host_copy_dma_rep:
    mov rcx, rdx
__iommufd_host_copy_dma_insn:
    rep movsb
__iommufd_host_copy_dma_insn_end:
5:
    xor eax, eax
    ret
__iommufd_host_copy_dma_fixup:
    mov rax, rcx
    ret
    .size __iommufd_host_copy_dma, . - __iommufd_host_copy_dma

    // size_t copy_dma_avx2(void *dst /*rdi*/, const void *src /*rsi*/, size_t len /*rdx*/)
    // copy_dma for copies of 256 bytes and more on CPUs with AVX2 (shorter
    // ones go to copy_dma): `rep movsb` from 2 KiB (fast strings; measured
    // 5-15 % faster than vector loops for 4 KiB DMAs on this machine type,
    // aligned or not); below that the first 64 bytes by two unaligned
    // 32-byte moves, then 128-byte blocks to the destination aligned to 64
    // (no store splits a cache line), the last bytes by `rep movsb`. A fault among the AVX2 moves resumes (after
    // `vzeroupper`) with the `rep movsb` of copy_dma from the start of the
    // current block (RSI/RDI/RDX advance once per block), which stops at the
    // exact faulting byte.
    .p2align 4
    .globl __iommufd_host_copy_dma_avx2
    .hidden __iommufd_host_copy_dma_avx2
    .type __iommufd_host_copy_dma_avx2,@function
__iommufd_host_copy_dma_avx2:
    cmp rdx, 256
    jb __iommufd_host_copy_dma
    cmp rdx, 2048
    jae __iommufd_host_copy_dma_rep
8:
__iommufd_host_copy_dma_avx2_head:
    vmovdqu ymm0, ymmword ptr [rsi]
    vmovdqu ymm1, ymmword ptr [rsi + 32]
    vmovdqu ymmword ptr [rdi], ymm0
    vmovdqu ymmword ptr [rdi + 32], ymm1
__iommufd_host_copy_dma_avx2_head_end:
    mov rax, rdi
    neg rax
    and rax, 63
    add rsi, rax
    add rdi, rax
    sub rdx, rax
    mov rcx, rdx
    shr rcx, 7
    .p2align 4
3:
__iommufd_host_copy_dma_avx2_loop:
    vmovdqu ymm0, ymmword ptr [rsi]
    vmovdqu ymm1, ymmword ptr [rsi + 32]
    vmovdqu ymm2, ymmword ptr [rsi + 64]
    vmovdqu ymm3, ymmword ptr [rsi + 96]
    vmovdqa ymmword ptr [rdi], ymm0
    vmovdqa ymmword ptr [rdi + 32], ymm1
    vmovdqa ymmword ptr [rdi + 64], ymm2
    vmovdqa ymmword ptr [rdi + 96], ymm3
__iommufd_host_copy_dma_avx2_loop_end:
    sub rsi, -128
    sub rdi, -128
    add rdx, -128
    dec rcx
    jnz 3b
    vzeroupper
    test rdx, rdx
    jnz __iommufd_host_copy_dma_rep
    xor eax, eax
    ret
__iommufd_host_copy_dma_avx2_fixup:
    vzeroupper
    jmp __iommufd_host_copy_dma_rep
    .size __iommufd_host_copy_dma_avx2, . - __iommufd_host_copy_dma_avx2

    // size_t copy_nt(void *dst /*rdi*/, const void *src /*rsi*/, size_t len /*rdx*/)
    // len > 0. Returns the number of bytes NOT copied. Non-temporal stores
    // for the 64-byte aligned blocks (whole cache lines) of dst (head and tail by
    // `rep movsb`, skipped when empty: a `rep movsb` of nothing after the
    // streaming stores measured 0.3-0.6 us per 64 KiB copy here), then
    // `sfence`. RDI/RSI/RDX advance once per block, so a
    // fault inside a block resumes (after `sfence`) with `rep movsb` from
    // the block's start, which stops at the exact faulting byte.
    .p2align 4
    .globl __iommufd_host_copy_nt
    .hidden __iommufd_host_copy_nt
    .type __iommufd_host_copy_nt,@function
__iommufd_host_copy_nt:
    mov rcx, rdi
    neg rcx
    and rcx, 63
    cmp rcx, rdx
    cmova rcx, rdx
    sub rdx, rcx
    jrcxz 4f
__iommufd_host_copy_nt_head:
    rep movsb
__iommufd_host_copy_nt_head_end:
4:
    mov rcx, rdx
    shr rcx, 6
    jz 3f
    .p2align 4
2:
__iommufd_host_copy_nt_loop:
    movdqu xmm0, xmmword ptr [rsi]
    movdqu xmm1, xmmword ptr [rsi + 16]
    movdqu xmm2, xmmword ptr [rsi + 32]
    movdqu xmm3, xmmword ptr [rsi + 48]
    movntdq xmmword ptr [rdi], xmm0
    movntdq xmmword ptr [rdi + 16], xmm1
    movntdq xmmword ptr [rdi + 32], xmm2
    movntdq xmmword ptr [rdi + 48], xmm3
__iommufd_host_copy_nt_loop_end:
    add rsi, 64
    add rdi, 64
    sub rdx, 64
    dec rcx
    jnz 2b
3:
    sfence
    mov rcx, rdx
    jrcxz 5f
__iommufd_host_copy_nt_tail:
    rep movsb
__iommufd_host_copy_nt_tail_end:
5:
    xor eax, eax
    ret
__iommufd_host_copy_nt_head_fixup:
    lea rax, [rcx + rdx]
    ret
__iommufd_host_copy_nt_loop_fixup:
    sfence
    mov rcx, rdx
    jmp __iommufd_host_copy_nt_tail
__iommufd_host_copy_nt_tail_fixup:
    mov rax, rcx
    ret
    .size __iommufd_host_copy_nt, . - __iommufd_host_copy_nt

    // size_t fill(void *dst /*rdi*/, u32 byte /*esi*/, size_t len /*rdx*/)
    // Returns the number of bytes NOT written.
    .p2align 4
    .globl __iommufd_host_fill
    .hidden __iommufd_host_fill
    .type __iommufd_host_fill,@function
__iommufd_host_fill:
    mov eax, esi
    mov rcx, rdx
__iommufd_host_fill_insn:
    rep stosb
__iommufd_host_fill_insn_end:
    xor eax, eax
    ret
__iommufd_host_fill_fixup:
    mov rax, rcx
    ret
    .size __iommufd_host_fill, . - __iommufd_host_fill

    // size_t probe_read(const void *addr /*rdi*/, size_t len /*rsi*/), len > 0
    // One byte load per 4 KiB page. Returns 0, or 1 on a fault.
    .p2align 4
    .globl __iommufd_host_probe_read
    .hidden __iommufd_host_probe_read
    .type __iommufd_host_probe_read,@function
__iommufd_host_probe_read:
    lea rdx, [rdi + rsi - 1]
    and rdx, -4096
2:
__iommufd_host_probe_read_insn:
    movzx eax, byte ptr [rdi]
__iommufd_host_probe_read_insn_end:
    and rdi, -4096
    add rdi, 4096
    cmp rdi, rdx
    jbe 2b
    xor eax, eax
    ret
__iommufd_host_probe_read_fixup:
    mov eax, 1
    ret
    .size __iommufd_host_probe_read, . - __iommufd_host_probe_read

    // size_t probe_write(void *addr /*rdi*/, size_t len /*rsi*/), len > 0
    // One value-preserving locked write per 4 KiB page. Returns 0, or 1.
    .p2align 4
    .globl __iommufd_host_probe_write
    .hidden __iommufd_host_probe_write
    .type __iommufd_host_probe_write,@function
__iommufd_host_probe_write:
    lea rdx, [rdi + rsi - 1]
    and rdx, -4096
2:
__iommufd_host_probe_write_insn:
    lock or byte ptr [rdi], 0
__iommufd_host_probe_write_insn_end:
    and rdi, -4096
    add rdi, 4096
    cmp rdi, rdx
    jbe 2b
    xor eax, eax
    ret
__iommufd_host_probe_write_fixup:
    mov eax, 1
    ret
    .size __iommufd_host_probe_write, . - __iommufd_host_probe_write

    // size_t get_u32(const void *addr /*rdi*/, u32 *out /*rsi*/): 0, or 1.
    .p2align 4
    .globl __iommufd_host_get_u32
    .hidden __iommufd_host_get_u32
    .type __iommufd_host_get_u32,@function
__iommufd_host_get_u32:
__iommufd_host_get_u32_insn:
    mov eax, dword ptr [rdi]
__iommufd_host_get_u32_insn_end:
    mov dword ptr [rsi], eax
    xor eax, eax
    ret
__iommufd_host_get_u32_fixup:
    mov eax, 1
    ret
    .size __iommufd_host_get_u32, . - __iommufd_host_get_u32

    // size_t get_u64(const void *addr /*rdi*/, u64 *out /*rsi*/): 0, or 1.
    .p2align 4
    .globl __iommufd_host_get_u64
    .hidden __iommufd_host_get_u64
    .type __iommufd_host_get_u64,@function
__iommufd_host_get_u64:
__iommufd_host_get_u64_insn:
    mov rax, qword ptr [rdi]
__iommufd_host_get_u64_insn_end:
    mov qword ptr [rsi], rax
    xor eax, eax
    ret
__iommufd_host_get_u64_fixup:
    mov eax, 1
    ret
    .size __iommufd_host_get_u64, . - __iommufd_host_get_u64

    // size_t put_u32(void *addr /*rdi*/, u32 val /*esi*/): 0, or 1.
    .p2align 4
    .globl __iommufd_host_put_u32
    .hidden __iommufd_host_put_u32
    .type __iommufd_host_put_u32,@function
__iommufd_host_put_u32:
__iommufd_host_put_u32_insn:
    mov dword ptr [rdi], esi
__iommufd_host_put_u32_insn_end:
    xor eax, eax
    ret
__iommufd_host_put_u32_fixup:
    mov eax, 1
    ret
    .size __iommufd_host_put_u32, . - __iommufd_host_put_u32

    // size_t put_u64(void *addr /*rdi*/, u64 val /*rsi*/): 0, or 1.
    .p2align 4
    .globl __iommufd_host_put_u64
    .hidden __iommufd_host_put_u64
    .type __iommufd_host_put_u64,@function
__iommufd_host_put_u64:
__iommufd_host_put_u64_insn:
    mov qword ptr [rdi], rsi
__iommufd_host_put_u64_insn_end:
    xor eax, eax
    ret
__iommufd_host_put_u64_fixup:
    mov eax, 1
    ret
    .size __iommufd_host_put_u64, . - __iommufd_host_put_u64

    .popsection

    // The exception table: (start, end, fixup) per faulting instruction.
    .pushsection .data.rel.ro.iommufd_host_extable,"aw",@progbits
    .p2align 3
    .globl __iommufd_host_extable
    .hidden __iommufd_host_extable
__iommufd_host_extable:
    .quad __iommufd_host_copy_insn, __iommufd_host_copy_insn_end, __iommufd_host_copy_fixup
    .quad __iommufd_host_copy_dma_vec, __iommufd_host_copy_dma_vec_end, __iommufd_host_copy_dma_rep
    .quad __iommufd_host_copy_dma_small8, __iommufd_host_copy_dma_small8_end, __iommufd_host_copy_dma_rep
    .quad __iommufd_host_copy_dma_small4, __iommufd_host_copy_dma_small4_end, __iommufd_host_copy_dma_rep
    .quad __iommufd_host_copy_dma_loop, __iommufd_host_copy_dma_loop_end, __iommufd_host_copy_dma_rep
    .quad __iommufd_host_copy_dma_insn, __iommufd_host_copy_dma_insn_end, __iommufd_host_copy_dma_fixup
    .quad __iommufd_host_copy_dma_avx2_head, __iommufd_host_copy_dma_avx2_head_end, __iommufd_host_copy_dma_avx2_fixup
    .quad __iommufd_host_copy_dma_avx2_loop, __iommufd_host_copy_dma_avx2_loop_end, __iommufd_host_copy_dma_avx2_fixup
    .quad __iommufd_host_copy_nt_head, __iommufd_host_copy_nt_head_end, __iommufd_host_copy_nt_head_fixup
    .quad __iommufd_host_copy_nt_loop, __iommufd_host_copy_nt_loop_end, __iommufd_host_copy_nt_loop_fixup
    .quad __iommufd_host_copy_nt_tail, __iommufd_host_copy_nt_tail_end, __iommufd_host_copy_nt_tail_fixup
    .quad __iommufd_host_fill_insn, __iommufd_host_fill_insn_end, __iommufd_host_fill_fixup
    .quad __iommufd_host_probe_read_insn, __iommufd_host_probe_read_insn_end, __iommufd_host_probe_read_fixup
    .quad __iommufd_host_probe_write_insn, __iommufd_host_probe_write_insn_end, __iommufd_host_probe_write_fixup
    .quad __iommufd_host_get_u32_insn, __iommufd_host_get_u32_insn_end, __iommufd_host_get_u32_fixup
    .quad __iommufd_host_get_u64_insn, __iommufd_host_get_u64_insn_end, __iommufd_host_get_u64_fixup
    .quad __iommufd_host_put_u32_insn, __iommufd_host_put_u32_insn_end, __iommufd_host_put_u32_fixup
    .quad __iommufd_host_put_u64_insn, __iommufd_host_put_u64_insn_end, __iommufd_host_put_u64_fixup
    .globl __iommufd_host_extable_end
    .hidden __iommufd_host_extable_end
__iommufd_host_extable_end:
    .popsection
"#
);

/// One exception-table entry: a fault at `start <= RIP < end` resumes at
/// `fixup`. Layout shared with the assembly above.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(super) struct ExEntry {
    /// Address of the faulting instruction.
    pub(super) start: usize,
    /// Address just past it.
    pub(super) end: usize,
    /// Where to resume.
    pub(super) fixup: usize,
}

unsafe extern "C" {
    fn __iommufd_host_copy(dst: *mut u8, src: *const u8, len: usize) -> usize;
    fn __iommufd_host_copy_dma(dst: *mut u8, src: *const u8, len: usize) -> usize;
    fn __iommufd_host_copy_dma_avx2(dst: *mut u8, src: *const u8, len: usize) -> usize;
    fn __iommufd_host_copy_nt(dst: *mut u8, src: *const u8, len: usize) -> usize;
    fn __iommufd_host_fill(dst: *mut u8, byte: u32, len: usize) -> usize;
    fn __iommufd_host_probe_read(addr: *const u8, len: usize) -> usize;
    fn __iommufd_host_probe_write(addr: *mut u8, len: usize) -> usize;
    fn __iommufd_host_get_u32(addr: *const u8, out: *mut u32) -> usize;
    fn __iommufd_host_get_u64(addr: *const u8, out: *mut u64) -> usize;
    fn __iommufd_host_put_u32(addr: *mut u8, val: u32) -> usize;
    fn __iommufd_host_put_u64(addr: *mut u8, val: u64) -> usize;
    static __iommufd_host_extable: ExEntry;
    static __iommufd_host_extable_end: ExEntry;
}

/// The exception table.
pub(super) fn extable() -> &'static [ExEntry] {
    let start = &raw const __iommufd_host_extable;
    let end = &raw const __iommufd_host_extable_end;
    let n = (end as usize - start as usize) / size_of::<ExEntry>();
    // SAFETY: the assembly above emits `n` consecutive 8-aligned entries
    // from `start` to `end`, in `.data.rel.ro`: never written after
    // relocation, so a shared `'static` borrow is sound.
    unsafe { core::slice::from_raw_parts(start, n) }
}

/// The fixup for a fault at `rip`, if `rip` is one of our user-access
/// instructions. Async-signal-safe (reads immutable data only).
fn fixup_for(rip: usize) -> Option<usize> {
    extable()
        .iter()
        .find(|e| e.start <= rip && rip < e.end)
        .map(|e| e.fixup)
}

// ---------------------------------------------------------------------------
// Chained (program) actions.

/// The program's action for one of SIGSEGV/SIGBUS, as the kernel would hold
/// it. Fields are only accessed under [`LOCK`]; they are atomics merely so
/// that no `unsafe impl Sync` is needed.
struct ChainSlot {
    handler: AtomicUsize,
    flags: AtomicI32,
    restorer: AtomicUsize,
    /// Kernel signal mask: bit `n - 1` for signal `n`.
    mask: AtomicU64,
}

/// A snapshot of a [`ChainSlot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Action {
    handler: usize,
    flags: c_int,
    restorer: usize,
    mask: u64,
}

impl ChainSlot {
    const fn new() -> Self {
        ChainSlot {
            handler: AtomicUsize::new(libc::SIG_DFL),
            flags: AtomicI32::new(0),
            restorer: AtomicUsize::new(0),
            mask: AtomicU64::new(0),
        }
    }

    fn load(&self) -> Action {
        Action {
            handler: self.handler.load(Ordering::Relaxed),
            flags: self.flags.load(Ordering::Relaxed),
            restorer: self.restorer.load(Ordering::Relaxed),
            mask: self.mask.load(Ordering::Relaxed),
        }
    }

    fn store(&self, a: &Action) {
        self.handler.store(a.handler, Ordering::Relaxed);
        self.flags.store(a.flags, Ordering::Relaxed);
        self.restorer.store(a.restorer, Ordering::Relaxed);
        self.mask.store(a.mask, Ordering::Relaxed);
    }
}

/// Chained actions: `[SIGSEGV, SIGBUS]`.
static CHAIN: [ChainSlot; 2] = [ChainSlot::new(), ChainSlot::new()];
/// Spin lock over [`CHAIN`] and installation.
static LOCK: AtomicBool = AtomicBool::new(false);
/// Set once our handler is installed for both signals.
static INSTALLED: AtomicBool = AtomicBool::new(false);

fn slot(sig: c_int) -> Option<usize> {
    match sig {
        libc::SIGSEGV => Some(0),
        libc::SIGBUS => Some(1),
        _ => None,
    }
}

fn spin_lock() {
    while LOCK
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        core::hint::spin_loop();
    }
}

fn spin_unlock() {
    LOCK.store(false, Ordering::Release);
}

/// [`LOCK`] held from normal context, with all signals blocked: neither our
/// SIGSEGV/SIGBUS handler nor a program handler that calls `sigaction`
/// (async-signal-safe, so allowed) can then spin on a lock held by its own
/// thread.
struct NormalGuard {
    old: libc::sigset_t,
}

impl NormalGuard {
    fn lock() -> Self {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        let mut old = MaybeUninit::<libc::sigset_t>::zeroed();
        // SAFETY: `set` and `old` are writable sigset_t locals; sigfillset
        // initializes `set`; `old` starts zeroed (glibc writes only 8 bytes)
        // and pthread_sigmask (SIG_BLOCK, valid pointers: no error) fills it.
        let old = unsafe {
            libc::sigfillset(set.as_mut_ptr());
            libc::pthread_sigmask(libc::SIG_BLOCK, set.as_ptr(), old.as_mut_ptr());
            old.assume_init()
        };
        spin_lock();
        NormalGuard { old }
    }
}

impl Drop for NormalGuard {
    fn drop(&mut self) {
        spin_unlock();
        // SAFETY: `self.old` is the initialized mask saved by `lock`.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, core::ptr::null_mut());
        }
    }
}

/// Kernel mask bits of a `sigset_t` (signals 1..=64).
fn mask_of(set: &libc::sigset_t) -> u64 {
    let mut m = 0u64;
    for sig in 1..=64 {
        // SAFETY: `set` is a valid, initialized sigset_t; sigismember only
        // reads it.
        if unsafe { libc::sigismember(set, sig) } == 1 {
            m |= 1 << (sig - 1);
        }
    }
    m
}

/// A `sigset_t` with exactly the kernel mask bits `m` (that libc accepts).
fn set_of(m: u64) -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initializes the local `set`; sigaddset modifies it
    // (and rejects signals libc reserves, leaving them out).
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        for sig in 1..=64 {
            if m & (1 << (sig - 1)) != 0 {
                libc::sigaddset(set.as_mut_ptr(), sig);
            }
        }
        set.assume_init()
    }
}

/// Signals the kernel never lets a handler block.
const UNBLOCKABLE: u64 = (1 << (libc::SIGKILL - 1)) | (1 << (libc::SIGSTOP - 1));

impl Action {
    fn from_libc(sa: &libc::sigaction) -> Self {
        Action {
            handler: sa.sa_sigaction,
            flags: sa.sa_flags,
            restorer: sa.sa_restorer.map_or(0, |f| f as usize),
            mask: mask_of(&sa.sa_mask) & !UNBLOCKABLE,
        }
    }

    /// Parses a user `struct sigaction` (as raw bytes).
    fn from_bytes(b: &[u8; size_of::<libc::sigaction>()]) -> Self {
        let usize_at = |off: usize| {
            usize::from_ne_bytes(b[off..off + size_of::<usize>()].try_into().expect("len"))
        };
        let f = offset_of!(libc::sigaction, sa_flags);
        let m = offset_of!(libc::sigaction, sa_mask);
        Action {
            handler: usize_at(offset_of!(libc::sigaction, sa_sigaction)),
            flags: c_int::from_ne_bytes(b[f..f + 4].try_into().expect("len")),
            restorer: usize_at(offset_of!(libc::sigaction, sa_restorer)),
            // Kernel layout of the first word of a sigset_t: bit n-1 = signal n.
            mask: u64::from_ne_bytes(b[m..m + 8].try_into().expect("len")) & !UNBLOCKABLE,
        }
    }

    /// Serializes as a user `struct sigaction` (padding and the unused part
    /// of `sa_mask` zeroed).
    fn to_bytes(self) -> [u8; size_of::<libc::sigaction>()] {
        let mut b = [0u8; size_of::<libc::sigaction>()];
        let mut put = |off: usize, v: &[u8]| b[off..off + v.len()].copy_from_slice(v);
        put(
            offset_of!(libc::sigaction, sa_sigaction),
            &self.handler.to_ne_bytes(),
        );
        put(
            offset_of!(libc::sigaction, sa_mask),
            &self.mask.to_ne_bytes(),
        );
        put(
            offset_of!(libc::sigaction, sa_flags),
            &self.flags.to_ne_bytes(),
        );
        put(
            offset_of!(libc::sigaction, sa_restorer),
            &self.restorer.to_ne_bytes(),
        );
        b
    }
}

fn our_action() -> libc::sigaction {
    let mut sa = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: an all-zero `libc::sigaction` is valid (integers, a sigset_t
    // and an `Option<fn>` that is `None`); sigemptyset then initializes the
    // mask in place.
    let mut sa = unsafe {
        libc::sigemptyset(&raw mut (*sa.as_mut_ptr()).sa_mask);
        sa.assume_init()
    };
    sa.sa_sigaction = handler as extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) as usize;
    sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
    sa
}

#[inline]
pub(super) fn install() {
    if !INSTALLED.load(Ordering::Acquire) {
        install_slow();
    }
}

#[cold]
#[inline(never)]
fn install_slow() {
    resolve();
    let _g = NormalGuard::lock();
    if INSTALLED.load(Ordering::Relaxed) {
        return;
    }
    let ours = our_action();
    for sig in [libc::SIGSEGV, libc::SIGBUS] {
        let idx = slot(sig).expect("slot");
        let mut old = MaybeUninit::<libc::sigaction>::zeroed();
        // SAFETY: query only (`act` null); `old` is a zeroed writable local
        // (glibc leaves the tail of `sa_mask` unwritten) that sigaction
        // fills on success (checked).
        let rc = unsafe { real_sigaction(sig, core::ptr::null(), old.as_mut_ptr()) };
        assert_eq!(rc, 0, "sigaction query failed");
        // SAFETY: initialized by the successful sigaction call above.
        let old = unsafe { old.assume_init() };
        if old.sa_sigaction == ours.sa_sigaction {
            // Already ours (a fork child, or a re-install after a reset of
            // the other signal): the chained action is in CHAIN already.
            continue;
        }
        CHAIN[idx].store(&Action::from_libc(&old));
        let mut prev = MaybeUninit::<libc::sigaction>::zeroed();
        // SAFETY: `ours` is a fully initialized action whose handler is
        // async-signal-safe and expects SA_SIGINFO arguments; `prev` is a
        // zeroed writable local.
        let rc = unsafe { real_sigaction(sig, &ours, prev.as_mut_ptr()) };
        assert_eq!(rc, 0, "sigaction install failed");
        // SAFETY: initialized by the successful call above.
        let prev = unsafe { prev.assume_init() };
        if prev.sa_sigaction != old.sa_sigaction {
            // Someone used the real sigaction in between: theirs wins.
            CHAIN[idx].store(&Action::from_libc(&prev));
        }
    }
    INSTALLED.store(true, Ordering::Release);
}

fn set_errno(e: c_int) {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() = e };
}

/// See [`super::chained_sigaction`].
///
/// # Safety
/// See [`super::chained_sigaction`].
pub(super) unsafe fn chained_sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    oldact: *mut libc::sigaction,
) -> c_int {
    let Some(idx) = slot(sig) else {
        // SAFETY: forwarded contract of this function.
        return unsafe { real_sigaction(sig, act, oldact) };
    };
    install();
    let new = if act.is_null() {
        None
    } else {
        let mut b = [0u8; size_of::<libc::sigaction>()];
        if super::copy_from_user(&mut b, act as u64).is_err() {
            set_errno(libc::EFAULT);
            return -1;
        }
        Some(Action::from_bytes(&b))
    };
    let old = {
        let _g = NormalGuard::lock();
        let old = CHAIN[idx].load();
        if let Some(n) = &new {
            CHAIN[idx].store(n);
        }
        old
    };
    if !oldact.is_null() && super::copy_to_user(oldact as u64, &old.to_bytes()).is_err() {
        set_errno(libc::EFAULT);
        return -1;
    }
    0
}

// ---------------------------------------------------------------------------
// The handler.

extern "C" fn handler(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let code = unsafe { (*info).si_code };
    // Only kernel-generated faults (si_code > 0) can come from our
    // instructions; a SIGSEGV sent with kill() while a thread happens to be
    // copying must not turn into EFAULT.
    if code > 0 && !ctx.is_null() {
        let uc = ctx.cast::<libc::ucontext_t>();
        // SAFETY: `ctx` is the kernel's ucontext_t for this delivery, valid
        // and writable for the duration of the handler; sigreturn reloads
        // RIP from it.
        let gregs = unsafe { &mut (*uc).uc_mcontext.gregs };
        let rip = gregs[libc::REG_RIP as usize] as usize;
        if let Some(fixup) = fixup_for(rip) {
            gregs[libc::REG_RIP as usize] = fixup as i64;
            return;
        }
    }
    // SAFETY: __errno_location returns this thread's errno slot; the
    // chaining path makes syscalls, and the interrupted code must not see
    // errno change.
    let errno = unsafe { *libc::__errno_location() };
    // SAFETY: `info` and `ctx` are the kernel's arguments for this delivery.
    unsafe { chain(sig, info, ctx) };
    set_errno(errno);
}

/// Does with the signal what the kernel would have done with the program's
/// action.
///
/// # Safety
/// `info`/`ctx` are the arguments the kernel passed to [`handler`].
unsafe fn chain(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    let Some(idx) = slot(sig) else { return };
    spin_lock();
    let a = CHAIN[idx].load();
    if a.flags & libc::SA_RESETHAND != 0 && a.handler != libc::SIG_DFL && a.handler != libc::SIG_IGN
    {
        CHAIN[idx].handler.store(libc::SIG_DFL, Ordering::Relaxed);
    }
    spin_unlock();

    // SAFETY: valid siginfo from the kernel.
    let code = unsafe { (*info).si_code };
    // Sent by kill()/sigqueue()/tgkill() or an action-optional machine check:
    // not re-raised by re-executing the interrupted instruction.
    let async_sig = code <= 0 || (sig == libc::SIGBUS && code == libc::BUS_MCEERR_AO);

    match a.handler {
        libc::SIG_IGN if async_sig => {}
        libc::SIG_DFL | libc::SIG_IGN => {
            // The default action (a forced fault also overrides SIG_IGN, as
            // in the kernel's force_sig_fault). Restore SIG_DFL and let the
            // instruction fault again, or re-send an asynchronous signal.
            let mut dfl = MaybeUninit::<libc::sigaction>::zeroed();
            // SAFETY: a zeroed sigaction is SIG_DFL with no flags and an
            // empty mask (sigemptyset makes that explicit); the real
            // sigaction is async-signal-safe and was resolved by install().
            unsafe {
                libc::sigemptyset(&raw mut (*dfl.as_mut_ptr()).sa_mask);
                real_sigaction(sig, dfl.as_ptr(), core::ptr::null_mut());
            }
            // Our handler is gone: let the next copy re-install it should
            // the process survive (e.g. the page got mapped meanwhile).
            INSTALLED.store(false, Ordering::Release);
            if async_sig {
                // SAFETY: raise is async-signal-safe; the signal is not
                // blocked (SA_NODEFER), so it is delivered on return.
                unsafe { libc::raise(sig) };
            }
        }
        h => {
            let mut block = a.mask;
            if a.flags & libc::SA_NODEFER == 0 {
                block |= 1 << (sig - 1);
            }
            let set = set_of(block);
            let mut old = MaybeUninit::<libc::sigset_t>::zeroed();
            // SAFETY: pthread_sigmask is async-signal-safe, `set` initialized,
            // `old` a writable local (SIG_BLOCK cannot fail); `h` is the
            // program's handler, called as the kernel would (x86-64 passes
            // sig, info, ucontext either way) with the kernel's `info`/`ctx`.
            unsafe {
                libc::pthread_sigmask(libc::SIG_BLOCK, &set, old.as_mut_ptr());
                let f = core::mem::transmute::<
                    usize,
                    unsafe extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void),
                >(h);
                f(sig, info, ctx);
                libc::pthread_sigmask(libc::SIG_SETMASK, old.as_ptr(), core::ptr::null_mut());
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The operations (ranges already validated by the caller: non-empty,
// non-NULL, inside the user half).

/// The copy routine for `len` bytes: the register moves of the DMA copy up
/// to 64 bytes (ioctl structs; `rep movsb` costs more to start than such a
/// copy takes), `rep movsb` beyond.
#[inline]
fn copy_routine(len: usize) -> unsafe extern "C" fn(*mut u8, *const u8, usize) -> usize {
    if len <= 64 {
        __iommufd_host_copy_dma
    } else {
        __iommufd_host_copy
    }
}

pub(super) fn copy_from_user(dst: &mut [u8], src: u64) -> usize {
    install();
    let f = copy_routine(dst.len());
    // SAFETY: `dst` is borrowed exclusively, writable, non-empty; the routines
    // write only `[dst, dst + len)`, clobber only caller-saved registers; a
    // fault reading the validated user range `src` resumes at its fixup.
    unsafe { f(dst.as_mut_ptr(), src as *const u8, dst.len()) }
}

pub(super) fn copy_to_user(dst: u64, src: &[u8]) -> usize {
    install();
    let f = copy_routine(src.len());
    // SAFETY:
    // 1. `src` is a readable, non-empty buffer of `src.len()` bytes;
    // 2. `dst` is a validated user range; faults resume at the fixups of the
    //    exception table and the routine returns the bytes not copied.
    unsafe { f(dst as *mut u8, src.as_ptr(), src.len()) }
}

/// The DMA copy routine: non-temporal stores when `nt`, else AVX2 blocks
/// where the CPU has them, else SSE blocks.
#[inline]
fn dma_copy_routine(nt: bool) -> unsafe extern "C" fn(*mut u8, *const u8, usize) -> usize {
    if nt {
        __iommufd_host_copy_nt
    } else if std::arch::is_x86_feature_detected!("avx2") {
        __iommufd_host_copy_dma_avx2
    } else {
        __iommufd_host_copy_dma
    }
}

/// [`copy_from_user`] for emulated DMA: the short-copy fast path, or
/// non-temporal stores when `nt`.
#[inline]
pub(super) fn dma_copy_from_user(dst: &mut [u8], src: u64, nt: bool) -> usize {
    install();
    let f = dma_copy_routine(nt);
    // SAFETY: `dst` is borrowed exclusively, writable, non-empty; the routines
    // write only `[dst, dst + len)` (a fault may redo part), clobber only
    // caller-saved registers; a fault reading `src` resumes at its fixup.
    unsafe { f(dst.as_mut_ptr(), src as *const u8, dst.len()) }
}

/// [`copy_to_user`] for emulated DMA (see [`dma_copy_from_user`]).
#[inline]
pub(super) fn dma_copy_to_user(dst: u64, src: &[u8], nt: bool) -> usize {
    install();
    let f = dma_copy_routine(nt);
    // SAFETY:
    // 1. `src` is a readable, non-empty buffer of `src.len()` bytes;
    // 2. `dst` is a validated user range; faults resume at the fixups of the
    //    exception table and the routine returns the bytes not copied.
    unsafe { f(dst as *mut u8, src.as_ptr(), src.len()) }
}

pub(super) fn copy_user_to_user(dst: u64, src: u64, len: usize) -> usize {
    install();
    // SAFETY: both are validated user ranges of `len` bytes; faults on either
    // side resume at the fixup.
    unsafe { __iommufd_host_copy(dst as *mut u8, src as *const u8, len) }
}

pub(super) fn clear_user(dst: u64, len: usize) -> usize {
    install();
    // SAFETY: `dst` is a validated user range of `len` bytes; faults resume
    // at the fixup.
    unsafe { __iommufd_host_fill(dst as *mut u8, 0, len) }
}

fn status(r: usize) -> Result<(), Errno> {
    if r == 0 {
        Ok(())
    } else {
        Err(Errno::FAULT)
    }
}

pub(super) fn probe_read(addr: u64, len: u64) -> Result<(), Errno> {
    install();
    // SAFETY: `[addr, addr + len)` is a validated, non-empty user range (so
    // the page arithmetic cannot overflow); the routine only loads from it
    // and faults resume at the fixup.
    status(unsafe { __iommufd_host_probe_read(addr as *const u8, len as usize) })
}

pub(super) fn probe_write(addr: u64, len: u64) -> Result<(), Errno> {
    install();
    // SAFETY: as for probe_read; the locked `or 0` leaves every byte's value
    // unchanged, even under concurrent writers.
    status(unsafe { __iommufd_host_probe_write(addr as *mut u8, len as usize) })
}

pub(super) fn get_user_u32(addr: u64) -> Result<u32, Errno> {
    install();
    let mut v = 0u32;
    // SAFETY: `addr..addr+4` is a validated user range (faults resume at the
    // fixup); `v` is a writable local.
    status(unsafe { __iommufd_host_get_u32(addr as *const u8, &mut v) })?;
    Ok(v)
}

pub(super) fn get_user_u64(addr: u64) -> Result<u64, Errno> {
    install();
    let mut v = 0u64;
    // SAFETY: `addr..addr+8` is a validated user range (faults resume at the
    // fixup); `v` is a writable local.
    status(unsafe { __iommufd_host_get_u64(addr as *const u8, &mut v) })?;
    Ok(v)
}

pub(super) fn put_user_u32(addr: u64, val: u32) -> Result<(), Errno> {
    install();
    // SAFETY: `addr..addr+4` is a validated user range; faults resume at the
    // fixup.
    status(unsafe { __iommufd_host_put_u32(addr as *mut u8, val) })
}

pub(super) fn put_user_u64(addr: u64, val: u64) -> Result<(), Errno> {
    install();
    // SAFETY: `addr..addr+8` is a validated user range; faults resume at the
    // fixup.
    status(unsafe { __iommufd_host_put_u64(addr as *mut u8, val) })
}
