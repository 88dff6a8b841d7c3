//! The executor: runs commands on the implementation through the ioctl path of
//! several contexts and on the [`Model`], and compares errno and outputs after
//! every operation, plus the pins of every arena page and the charged pages.

use std::collections::BTreeMap;
use std::sync::Arc;

use iommufd::mm::UserMemory;
use iommufd::{Env, IommufdFile};
use uapi::{
    Destroy, Errno, IoasAlloc, IoasAllowIovas, IoasCopy, IoasIovaRanges, IoasMap, IoasUnmap,
    IoctlCmd, IommuOption, IovaRange, TestAccessPages, TestAccessReplaceIoas, TestAccessRw,
    TestAddReserved, TestCheckMap, TestCheckRefs, TestCmd, TestCreateAccess,
    TestDestroyAccessPages, TestMockDomain, TestMockDomainFlags, TestMockDomainReplace,
    TestPayload,
};
use zerocopy::FromZeros;

use crate::mem::{Arena, ModelMm, ARENA_PAGES};
use crate::model::{Cmd, Model, Out, Outcome, PAGE};
use crate::op::{Op, NCTX};
use crate::resolve::BAD_FD;

/// A divergence between the implementation and the model.
#[derive(Debug)]
pub struct Mismatch {
    /// Index of the op in the sequence.
    pub step: usize,
    /// The op and its concrete command.
    pub what: String,
    /// Details.
    pub detail: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "step {}: {}: {}", self.step, self.what, self.detail)
    }
}

/// Runs op sequences on fresh contexts and the model side by side.
pub struct Executor {
    arena: Arena,
    mm: Arc<ModelMm>,
    files: Vec<Option<Arc<IommufdFile>>>,
    /// Access key → (context, fd).
    fds: BTreeMap<u32, (usize, i32)>,
    model: Model,
    step: usize,
}

/// Outcome counts per command kind and result, summed over runs (for checking
/// that sequences reach deep states, not only early errors).
pub static STATS: std::sync::Mutex<BTreeMap<String, u64>> = std::sync::Mutex::new(BTreeMap::new());

fn record(cmd: &Cmd, got: &Outcome) {
    let name = format!("{cmd:?}");
    let name = name.split([' ', '{']).next().unwrap_or("?");
    let res = match got {
        Ok(_) => "ok".to_string(),
        Err((e, _)) => format!("{e:?}"),
    };
    let mut stats = STATS.lock().unwrap_or_else(|e| e.into_inner());
    *stats.entry(format!("{name} {res}")).or_default() += 1;
}

fn set_size<T: IoctlCmd>(cmd: &mut T) {
    let size = T::SIZE as u32;
    cmd.as_mut_bytes()[..4].copy_from_slice(&size.to_ne_bytes());
}

impl Executor {
    /// Fresh contexts over a fresh arena.
    pub fn new() -> Executor {
        Executor::with_arena(Arena::new())
    }

    /// Fresh contexts over an arena placed `pages` pages past a 2 MiB boundary
    /// (reproducible automatic IOVAs).
    pub fn at(pages: u16) -> Executor {
        Executor::with_arena(Arena::at(pages))
    }

    fn with_arena(arena: Arena) -> Executor {
        let mm = ModelMm::new();
        let model = Model::new(usize::from(NCTX), &arena);
        let mut ex = Executor {
            arena,
            mm,
            files: Vec::new(),
            fds: BTreeMap::new(),
            model,
            step: 0,
        };
        for p in 0..ARENA_PAGES {
            let va = ex.arena.base() + p * PAGE;
            assert_eq!(host::pins::count(va), 0, "stale pins on a new arena page");
        }
        for _ in 0..NCTX {
            let f = ex.open();
            ex.files.push(Some(f));
        }
        ex
    }

    fn open(&self) -> Arc<IommufdFile> {
        let mut env: Env = inproc::env();
        env.mm = self.mm.clone();
        IommufdFile::open(env, false)
    }

    /// The model (for inspection by tests).
    pub fn model(&self) -> &Model {
        &self.model
    }

    fn file(&self, ctx: usize) -> &Arc<IommufdFile> {
        self.files[ctx].as_ref().expect("context open")
    }

    fn ioctl<T: IoctlCmd>(&self, ctx: usize, cmd: &mut T) -> Result<(), Errno> {
        set_size(cmd);
        let arg = cmd.as_mut_bytes().as_mut_ptr() as u64;
        self.file(ctx).ioctl(T::IOCTL, arg).map(|_| ())
    }

    fn test<P: TestPayload>(&self, ctx: usize, id: u32, p: &P) -> Result<TestCmd, Errno> {
        let mut cmd = TestCmd::new(id, p);
        self.ioctl(ctx, &mut cmd).map(|()| cmd)
    }

    fn fd(&self, key: Option<u32>) -> u32 {
        key.map_or(BAD_FD, |k| self.fds[&k].1 as u32)
    }

    /// Runs `cmd` on the implementation.
    fn issue(&mut self, cmd: &Cmd) -> Result<Outcome, String> {
        let r = match *cmd {
            Cmd::IoasAlloc { ctx } => {
                let mut c = IoasAlloc::new_zeroed();
                self.ioctl(ctx, &mut c).map(|()| Out::Id(c.out_ioas_id))
            }
            Cmd::Destroy { ctx, id } => {
                let mut c = Destroy::new_zeroed();
                c.id = id;
                self.ioctl(ctx, &mut c).map(|()| Out::None)
            }
            Cmd::Map {
                ctx,
                ioas,
                flags,
                va,
                len,
                iova,
            } => {
                let mut c = IoasMap::new_zeroed();
                c.ioas_id = ioas;
                c.flags = flags;
                c.user_va = va;
                c.length = len;
                c.iova = iova;
                self.ioctl(ctx, &mut c).map(|()| Out::Iova(c.iova))
            }
            Cmd::Unmap {
                ctx,
                ioas,
                iova,
                len,
            } => {
                let mut c = IoasUnmap::new_zeroed();
                c.ioas_id = ioas;
                c.iova = iova;
                c.length = len;
                self.ioctl(ctx, &mut c).map(|()| Out::Len(c.length))
            }
            Cmd::Copy {
                ctx,
                dst,
                src,
                flags,
                src_iova,
                len,
                dst_iova,
            } => {
                let mut c = IoasCopy::new_zeroed();
                c.dst_ioas_id = dst;
                c.src_ioas_id = src;
                c.flags = flags;
                c.src_iova = src_iova;
                c.length = len;
                c.dst_iova = dst_iova;
                self.ioctl(ctx, &mut c).map(|()| Out::Iova(c.dst_iova))
            }
            Cmd::AllowIovas {
                ctx,
                ioas,
                ref ranges,
            } => {
                let list: Vec<IovaRange> = ranges
                    .iter()
                    .map(|&(start, last)| IovaRange { start, last })
                    .collect();
                let mut c = IoasAllowIovas::new_zeroed();
                c.ioas_id = ioas;
                c.num_iovas = list.len() as u32;
                c.allowed_iovas = list.as_ptr() as u64;
                self.ioctl(ctx, &mut c).map(|()| Out::None)
            }
            Cmd::AddReserved {
                ctx,
                ioas,
                start,
                len,
            } => self
                .test(ctx, ioas, &TestAddReserved { start, length: len })
                .map(|_| Out::None),
            Cmd::IovaRanges { ctx, ioas, cap } => {
                let mut out = [IovaRange::new_zeroed(); 16];
                let mut c = IoasIovaRanges::new_zeroed();
                c.ioas_id = ioas;
                c.num_iovas = cap;
                c.allowed_iovas = out.as_mut_ptr() as u64;
                let res = self.ioctl(ctx, &mut c);
                let n = c.num_iovas.min(cap) as usize;
                let o = Out::Ranges(
                    c.num_iovas,
                    c.out_iova_alignment,
                    out[..n].iter().map(|r| (r.start, r.last)).collect(),
                );
                return Ok(match res {
                    Ok(()) => Ok(o),
                    Err(Errno::MSGSIZE) => Err((Errno::MSGSIZE, o)),
                    Err(e) => Err((e, Out::None)),
                });
            }
            Cmd::Option {
                ctx,
                option,
                op,
                object,
                val,
            } => {
                let mut c = IommuOption::new_zeroed();
                c.option_id = option;
                c.op = op;
                c.object_id = object;
                c.val64 = val;
                self.ioctl(ctx, &mut c).map(|()| Out::Val(c.val64))
            }
            Cmd::MockDomain { ctx, pt, flags } => {
                let r = match flags {
                    None => self.test(ctx, pt, &TestMockDomain::new_zeroed()),
                    Some(dev_flags) => self.test(
                        ctx,
                        pt,
                        &TestMockDomainFlags {
                            dev_flags,
                            ..FromZeros::new_zeroed()
                        },
                    ),
                };
                r.map(|c| {
                    let o: TestMockDomain = c.payload_as();
                    Out::Mock(o.out_stdev_id, o.out_hwpt_id, o.out_idev_id)
                })
            }
            Cmd::Replace { ctx, stdev, pt } => self
                .test(ctx, stdev, &TestMockDomainReplace { pt_id: pt })
                .map(|c| Out::Id(c.payload_as::<TestMockDomainReplace>().pt_id)),
            Cmd::HwptAlloc {
                ctx,
                dev,
                pt,
                flags,
            } => {
                let mut c = uapi::HwptAlloc::new_zeroed();
                c.dev_id = dev;
                c.pt_id = pt;
                c.flags = flags;
                self.ioctl(ctx, &mut c).map(|()| Out::Id(c.out_hwpt_id))
            }
            Cmd::CheckMap {
                ctx,
                hwpt,
                iova,
                len,
                uptr,
            } => self
                .test(
                    ctx,
                    hwpt,
                    &TestCheckMap {
                        iova,
                        length: len,
                        uptr,
                    },
                )
                .map(|_| Out::None),
            Cmd::CheckRefs {
                ctx,
                uptr,
                len,
                refs,
            } => self
                .test(
                    ctx,
                    0,
                    &TestCheckRefs {
                        length: len,
                        uptr,
                        refs,
                        ..FromZeros::new_zeroed()
                    },
                )
                .map(|_| Out::None),
            Cmd::CreateAccess { ctx, ioas, flags } => self
                .test(
                    ctx,
                    ioas,
                    &TestCreateAccess {
                        out_access_fd: 0,
                        flags,
                    },
                )
                .map(|c| {
                    let fd = c.payload_as::<TestCreateAccess>().out_access_fd as i32;
                    // The model's key for the new access is its next key.
                    Out::Access(fd as u32)
                }),
            Cmd::AccessPages {
                ctx,
                access,
                iova,
                len,
                flags,
                uptr,
            } => self
                .test(
                    ctx,
                    self.fd(access),
                    &TestAccessPages {
                        flags,
                        out_access_pages_id: 0,
                        iova,
                        length: len,
                        uptr,
                    },
                )
                .map(|c| Out::Item(c.payload_as::<TestAccessPages>().out_access_pages_id)),
            Cmd::AccessRw {
                ctx,
                access,
                iova,
                len,
                flags,
                seed,
            } => return self.access_rw(ctx, access, iova, len, flags, seed),
            Cmd::DestroyAccessPages { ctx, access, item } => self
                .test(
                    ctx,
                    self.fd(access),
                    &TestDestroyAccessPages {
                        access_pages_id: item,
                    },
                )
                .map(|_| Out::None),
            Cmd::AccessReplace { ctx, access, ioas } => self
                .test(
                    ctx,
                    self.fd(access),
                    &TestAccessReplaceIoas { ioas_id: ioas },
                )
                .map(|_| Out::None),
            Cmd::CloseAccess { access } => {
                let (_, fd) = self.fds.remove(&access).expect("open access");
                inproc::FdTable::global()
                    .close(fd)
                    .map_err(|e| format!("close({fd}): {e:?}"))?;
                Ok(Out::None)
            }
            Cmd::CloseCtx { ctx } => {
                self.close_ctx(ctx)?;
                let f = self.open();
                self.files[ctx] = Some(f);
                Ok(Out::None)
            }
        };
        Ok(r.map_err(|e| (e, Out::None)))
    }

    fn close_ctx(&mut self, ctx: usize) -> Result<(), String> {
        let keys: Vec<u32> = self
            .fds
            .iter()
            .filter(|(_, &(c, _))| c == ctx)
            .map(|(&k, _)| k)
            .collect();
        for k in keys {
            if let Some((_, fd)) = self.fds.remove(&k) {
                inproc::FdTable::global()
                    .close(fd)
                    .map_err(|e| format!("close({fd}): {e:?}"))?;
            }
        }
        let file = self.files[ctx].take().expect("context open");
        if Arc::strong_count(&file) != 1 {
            return Err(format!(
                "context {ctx} still referenced {} times at close",
                Arc::strong_count(&file)
            ));
        }
        drop(file);
        Ok(())
    }

    /// ACCESS_RW, checking the data moved against the arena.
    fn access_rw(
        &mut self,
        ctx: usize,
        access: Option<u32>,
        iova: u64,
        len: u64,
        flags: u32,
        seed: u8,
    ) -> Result<Outcome, String> {
        let n = if len <= 16 << 20 { len as usize } else { 0 };
        let mut buf: Vec<u8> = (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect();
        let p = TestAccessRw {
            iova,
            length: len,
            uptr: buf.as_mut_ptr() as u64,
            flags,
            ..FromZeros::new_zeroed()
        };
        let res = self.test(ctx, self.fd(access), &p);
        if res.is_ok() {
            // Compare the buffer with the memory behind the IOVAs. Several IOVAs
            // may be backed by the same user byte (two maps of one buffer): a
            // write leaves the last value written there.
            let (actx, ioas) = {
                let a = &self.model.accesses[&access.expect("success needs an access")];
                (a.ctx, a.ioas)
            };
            let Some(crate::model::Obj::Ioas(i)) = self.model.ctxs[actx].objs.get(&ioas) else {
                return Err("access without IOAS".into());
            };
            let write = flags & 1 != 0;
            let mut want: BTreeMap<u64, u8> = BTreeMap::new();
            let mut off = 0usize;
            while off < n {
                let (va, in_area) = self
                    .model
                    .va_run(i, iova + off as u64)
                    .ok_or("rw succeeded on an unmapped IOVA")?;
                // Contiguous in user memory only within one area.
                let chunk = (in_area.min((n - off) as u64)) as usize;
                for (k, &b) in buf[off..off + chunk].iter().enumerate() {
                    if write {
                        want.insert(va + k as u64, b);
                    } else if let Some(&old) = want.get(&(va + k as u64)) {
                        if old != b {
                            return Err(format!("ACCESS_RW read one byte two ways at {va:#x}"));
                        }
                    } else {
                        want.insert(va + k as u64, b);
                    }
                }
                off += chunk;
            }
            let mut mem = [0u8; 1];
            for (&va, &b) in &want {
                self.mm
                    .read(va, &mut mem)
                    .map_err(|e| format!("reading back {va:#x}: {e:?}"))?;
                if mem[0] != b {
                    return Err(format!(
                        "ACCESS_RW data differs from memory at user address {va:#x}"
                    ));
                }
            }
        }
        Ok(res.map(|_| Out::Rw).map_err(|e| (e, Out::None)))
    }

    /// Runs one op on both sides and compares.
    ///
    /// # Errors
    /// The first mismatch.
    pub fn step(&mut self, op: &Op) -> Result<(), Mismatch> {
        let step = self.step;
        self.step += 1;
        let Some(cmd) = self.model.resolve(op) else {
            return Ok(());
        };
        let mismatch = |detail: String| Mismatch {
            step,
            what: format!("{op:?} => {cmd:?}"),
            detail,
        };
        let before = self.model.clone();
        let expect = self.model.apply(&cmd);
        let got = self.issue(&cmd).map_err(mismatch)?;
        let got = match (&expect, got) {
            (Ok(Out::Access(key)), Ok(Out::Access(fd))) => {
                let ctx = self.model.accesses[key].ctx;
                self.fds.insert(*key, (ctx, fd as i32));
                Ok(Out::Access(*key))
            }
            (_, Ok(Out::Access(fd))) => {
                inproc::FdTable::global().close(fd as i32).ok();
                Ok(Out::Access(u32::MAX))
            }
            (_, got) => got,
        };
        if std::env::var_os("MODEL_STATS").is_some() {
            record(&cmd, &got);
        }
        if got != expect {
            let _ = before;
            return Err(mismatch(format!("expected {expect:?}, got {got:?}")));
        }
        self.check_state().map_err(mismatch)
    }

    /// Compares pins on every arena page and the charged pages with the model.
    ///
    /// # Errors
    /// A description of the first difference.
    pub fn check_state(&self) -> Result<(), String> {
        let (pins, locked) = self.model.pins_and_locked();
        for p in 0..ARENA_PAGES {
            let va = self.arena.base() + p * PAGE;
            let want = pins.get(&va).copied().unwrap_or(0);
            let got = host::pins::count(va);
            if want != got {
                return Err(format!("page {p}: {got} pins, model {want}"));
            }
        }
        let (user, mm) = self.mm.locked();
        if [user, mm] != locked {
            return Err(format!(
                "locked pages (user, mm) = ({user}, {mm}), model {locked:?}"
            ));
        }
        Ok(())
    }

    /// Closes every context and checks that nothing stays pinned or charged.
    ///
    /// # Errors
    /// A description of a leak.
    pub fn finish(mut self) -> Result<(), String> {
        for ctx in 0..self.files.len() {
            self.close_ctx(ctx)?;
            self.model.apply(&Cmd::CloseCtx { ctx }).ok();
        }
        self.check_state()?;
        for p in 0..ARENA_PAGES {
            let va = self.arena.base() + p * PAGE;
            if host::pins::count(va) != 0 {
                return Err(format!("page {p} pinned after close"));
            }
        }
        if self.mm.locked() != (0, 0) {
            return Err(format!("pages charged after close: {:?}", self.mm.locked()));
        }
        Ok(())
    }
}

impl Drop for Executor {
    /// Closes the access fds (which hold their contexts) so that an aborted run
    /// releases everything.
    fn drop(&mut self) {
        for (_, (_, fd)) in std::mem::take(&mut self.fds) {
            let _ = inproc::FdTable::global().close(fd);
        }
    }
}

impl Default for Executor {
    fn default() -> Self {
        Executor::new()
    }
}

/// What every run starts with, so random ops find objects to work on: two IOASes
/// in context 0, one in context 1.
pub const PRELUDE: [Op; 3] = [
    Op::IoasAlloc { ctx: 0 },
    Op::IoasAlloc { ctx: 0 },
    Op::IoasAlloc { ctx: 1 },
];

/// Runs a whole sequence (after [`PRELUDE`]) on a fresh executor and checks for leaks at the end.
///
/// # Errors
/// The first mismatch or leak.
pub fn run(ops: &[Op]) -> Result<(), String> {
    run_at(None, ops)
}

/// [`run`] with the arena placed `pages` pages past a 2 MiB boundary (`None`:
/// wherever `mmap` puts it).
///
/// # Errors
/// The first mismatch or leak.
pub fn run_at(pages: Option<u16>, ops: &[Op]) -> Result<(), String> {
    let mut ex = pages.map_or_else(Executor::new, Executor::at);
    for op in PRELUDE.iter().chain(ops) {
        ex.step(op).map_err(|m| m.to_string())?;
    }
    ex.finish()
}
