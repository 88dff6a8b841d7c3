//! Turns abstract [`Op`]s into concrete [`Cmd`]s against the model's state.

use crate::mem::{MAX_LEN_PAGES, VA_PAGES};
use crate::model::{Cmd, IoasM, Kind, Model, Obj, APERTURE, MOCK_PAGE, PAGE};
use crate::op::{IovaSel, LenSel, ObjSel, Op, RangeSel, VaSel, NCTX};

/// A user address no process maps (non-canonical).
pub(crate) const BAD_VA: u64 = 0xdead_0000_0000_0000;
/// An fd number that is never an access fd.
pub(crate) const BAD_FD: u32 = 1 << 30;

const IOVA_EDGES: [u64; 8] = [
    0,
    PAGE,
    APERTURE.0 - PAGE,
    APERTURE.1 + 1 - PAGE,
    APERTURE.1 + 1,
    u64::MAX - 0xfff,
    u64::MAX,
    1 << 63,
];

const LEN_EDGES: [u64; 8] = [
    0,
    1,
    MOCK_PAGE,
    PAGE - 1,
    u64::MAX,
    u64::MAX - 0xfff,
    u64::MAX - PAGE,
    (MAX_LEN_PAGES + 1) * PAGE,
];

const RAW_IDS: [u32; 8] = [0, 1, 2, 3, 7, 100, 0x7fff_ffff, u32::MAX];

impl Model {
    fn ctx_of(ctx: u8) -> usize {
        usize::from(ctx % NCTX)
    }

    /// Resolves an object selector in context `ctx` preferring `kind`.
    pub fn obj(&self, ctx: usize, sel: ObjSel, kind: Kind) -> u32 {
        let v = sel.0;
        let c = &self.ctxs[ctx];
        let pick = |ids: Vec<u32>, i: u8| ids.get(usize::from(i) % ids.len().max(1)).copied();
        match v {
            0..200 => pick(c.ids(Some(kind)), v).unwrap_or(u32::from(v % 6)),
            200..220 => pick(c.ids(None), v).unwrap_or(0),
            220..240 => {
                let other = &self.ctxs[(ctx + 1 + usize::from(v % 2)) % self.ctxs.len()];
                pick(other.ids(Some(kind)), v)
                    .or_else(|| pick(other.ids(None), v))
                    .unwrap_or(1)
            }
            _ => RAW_IDS[usize::from(v % 8)],
        }
    }

    fn va(&self, sel: VaSel) -> u64 {
        let VaSel(a, b) = sel;
        if a >= 250 {
            return [BAD_VA, u64::MAX - 0xfff][usize::from(a % 2)];
        }
        let off = match b % 8 {
            0..5 => 0,
            5 | 6 => MOCK_PAGE,
            _ => 0x10,
        };
        self.arena.base + (u64::from(a) % VA_PAGES) * PAGE + off
    }

    fn len(sel: LenSel) -> u64 {
        let LenSel(a, b) = sel;
        if a >= 224 {
            return LEN_EDGES[usize::from(a % 8)];
        }
        let pages = u64::from(a) % MAX_LEN_PAGES + 1;
        match b {
            255 => pages * PAGE - 1,
            _ if b % 8 == 7 => pages * PAGE - MOCK_PAGE,
            _ => pages * PAGE,
        }
    }

    fn iova(sel: IovaSel) -> u64 {
        let IovaSel(a, b) = sel;
        if a >= 224 {
            return IOVA_EDGES[usize::from(a % 8)];
        }
        let base = APERTURE.0 + (u64::from(a) % 96) * PAGE;
        match b {
            255 => base + 1,
            _ if b % 4 == 3 => base + MOCK_PAGE,
            _ => base,
        }
    }

    /// Resolves a range selector against `ioas` (or raw values without areas).
    fn range(ioas: Option<&IoasM>, sel: RangeSel) -> (u64, u64) {
        let RangeSel { kind, a, b, c } = sel;
        let areas: Vec<(u64, u64)> = ioas
            .map(|i| i.areas.iter().map(|(&s, ar)| (s, ar.last)).collect())
            .unwrap_or_default();
        let raw = (Self::iova(IovaSel(a, b)), Self::len(LenSel(c, a)));
        if areas.is_empty() {
            return raw;
        }
        let n = areas.len();
        let i = usize::from(a) % n;
        let (s, l) = areas[i];
        match kind % 6 {
            0 | 5 => (s, l - s + 1),
            1 => {
                let j = (i + 1 + usize::from(b % 3)).min(n - 1);
                (s, areas[j].1 - s + 1)
            }
            2 => {
                let len = l - s + 1;
                let unit = if len % PAGE == 0 && s % PAGE == 0 {
                    PAGE
                } else {
                    MOCK_PAGE
                };
                let units = (len / unit).max(1);
                let off = u64::from(b) % units.min(MAX_LEN_PAGES);
                let cnt = (u64::from(c) % (units - off).min(MAX_LEN_PAGES)) + 1;
                (s + off * unit, (cnt * unit).min(len - off * unit))
            }
            3 => raw,
            _ => {
                if c % 2 == 0 {
                    (0, u64::MAX)
                } else {
                    (areas[0].0, areas[n - 1].1 - areas[0].0 + 1)
                }
            }
        }
    }

    fn access_key(&self, sel: u8) -> Option<u32> {
        if sel >= 248 || self.accesses.is_empty() {
            return None;
        }
        let keys: Vec<u32> = self.accesses.keys().copied().collect();
        Some(keys[usize::from(sel) % keys.len()])
    }

    fn access_ioas_m(&self, key: Option<u32>) -> Option<&IoasM> {
        let a = self.accesses.get(&key?)?;
        match self.ctxs[a.ctx].objs.get(&a.ioas) {
            Some(Obj::Ioas(i)) => Some(i),
            _ => None,
        }
    }

    fn ioas_m(&self, ctx: usize, id: u32) -> Option<&IoasM> {
        match self.ctxs[ctx].objs.get(&id) {
            Some(Obj::Ioas(i)) => Some(i),
            _ => None,
        }
    }

    /// Resolves `op` into a concrete command; `None` if it has no target (closing
    /// an access when none is open).
    pub fn resolve(&self, op: &Op) -> Option<Cmd> {
        Some(match *op {
            Op::IoasAlloc { ctx } => Cmd::IoasAlloc {
                ctx: Self::ctx_of(ctx),
            },
            Op::Destroy { ctx, obj } => {
                let ctx = Self::ctx_of(ctx);
                let kind = [
                    Kind::Ioas,
                    Kind::Hwpt,
                    Kind::Selftest,
                    Kind::Idev,
                    Kind::Access,
                ][usize::from(obj.0 % 5)];
                Cmd::Destroy {
                    ctx,
                    id: self.obj(ctx, obj, kind),
                }
            }
            Op::Map {
                ctx,
                ioas,
                va,
                len,
                iova,
                flags,
            } => {
                let ctx = Self::ctx_of(ctx);
                let flags = match flags {
                    0..240 => {
                        [3, 7, 5, 6, 7, 1, 7, 3][usize::from(flags % 8)] ^ u32::from(flags / 8 % 2)
                    }
                    240..248 => 0,
                    _ => 1 << (flags % 8 + 3),
                };
                Cmd::Map {
                    ctx,
                    ioas: self.obj(ctx, ioas, Kind::Ioas),
                    flags,
                    va: self.va(va),
                    len: Self::len(len),
                    iova: Self::iova(iova),
                }
            }
            Op::Unmap { ctx, ioas, range } => {
                let ctx = Self::ctx_of(ctx);
                let id = self.obj(ctx, ioas, Kind::Ioas);
                let (iova, len) = Self::range(self.ioas_m(ctx, id), range);
                Cmd::Unmap {
                    ctx,
                    ioas: id,
                    iova,
                    len,
                }
            }
            Op::Copy {
                ctx,
                dst,
                src,
                range,
                iova,
                flags,
            } => {
                let ctx = Self::ctx_of(ctx);
                let src = self.obj(ctx, src, Kind::Ioas);
                let (src_iova, len) = Self::range(self.ioas_m(ctx, src), range);
                let flags = match flags {
                    0..248 => [6, 7, 4, 5, 2, 3, 7, 0][usize::from(flags % 8)],
                    _ => 1 << 4,
                };
                Cmd::Copy {
                    ctx,
                    dst: self.obj(ctx, dst, Kind::Ioas),
                    src,
                    flags,
                    src_iova,
                    len,
                    dst_iova: Self::iova(iova),
                }
            }
            Op::AllowIovas {
                ctx,
                ioas,
                n,
                ranges,
            } => {
                let ctx = Self::ctx_of(ctx);
                let ranges = ranges[..usize::from(n % 4)]
                    .iter()
                    .map(|&(a, b)| {
                        if a >= 240 {
                            let s = [
                                0,
                                PAGE,
                                APERTURE.1 - 0xffff,
                                APERTURE.1 + 1,
                                u64::MAX - 0xffff,
                                0x10_0000,
                                APERTURE.0 - 0x1000,
                                0,
                            ][usize::from(a % 8)];
                            (s, s + 0xffff)
                        } else {
                            let s = APERTURE.0 + u64::from(a % 48) * 0x2000;
                            let l = if b == 255 {
                                s
                            } else {
                                s + (u64::from(b % 24) + 1) * 0x2000 - 1
                            };
                            (s, l)
                        }
                    })
                    .collect();
                Cmd::AllowIovas {
                    ctx,
                    ioas: self.obj(ctx, ioas, Kind::Ioas),
                    ranges,
                }
            }
            Op::AddReserved {
                ctx,
                ioas,
                start,
                len,
            } => {
                let ctx = Self::ctx_of(ctx);
                Cmd::AddReserved {
                    ctx,
                    ioas: self.obj(ctx, ioas, Kind::Ioas),
                    start: Self::iova(start),
                    len: Self::len(len),
                }
            }
            Op::IovaRanges { ctx, ioas, cap } => {
                let ctx = Self::ctx_of(ctx);
                Cmd::IovaRanges {
                    ctx,
                    ioas: self.obj(ctx, ioas, Kind::Ioas),
                    cap: if cap >= 250 { 16 } else { u32::from(cap % 4) },
                }
            }
            Op::HugePages { ctx, ioas, op, val } => {
                let ctx = Self::ctx_of(ctx);
                Cmd::Option {
                    ctx,
                    option: 1,
                    op: [0, 1, 0, 7][usize::from(op % 4)],
                    object: self.obj(ctx, ioas, Kind::Ioas),
                    val: [0, 1, 0, 1, 5][usize::from(val % 5)],
                }
            }
            Op::RlimitMode { ctx, op, val } => Cmd::Option {
                ctx: Self::ctx_of(ctx),
                option: if op >= 250 { 9 } else { 0 },
                op: [0, 1, 0, 1, 3][usize::from(op % 5)],
                object: u32::from(val >= 250),
                val: [0, 1, 0, 1, 2][usize::from(val % 5)],
            },
            Op::MockDomain { ctx, pt, flags } => {
                let ctx = Self::ctx_of(ctx);
                let kind = if pt.0 % 4 == 3 {
                    Kind::Hwpt
                } else {
                    Kind::Ioas
                };
                Cmd::MockDomain {
                    ctx,
                    pt: self.obj(ctx, pt, kind),
                    flags: [None, Some(0), Some(1), Some(2), Some(1 << 4), Some(0)]
                        [usize::from(flags % 6)],
                }
            }
            Op::Replace { ctx, stdev, pt } => {
                let ctx = Self::ctx_of(ctx);
                let kind = if pt.0 % 2 == 1 {
                    Kind::Hwpt
                } else {
                    Kind::Ioas
                };
                Cmd::Replace {
                    ctx,
                    stdev: self.obj(ctx, stdev, Kind::Selftest),
                    pt: self.obj(ctx, pt, kind),
                }
            }
            Op::HwptAlloc {
                ctx,
                dev,
                pt,
                flags,
            } => {
                let ctx = Self::ctx_of(ctx);
                let kind = if pt.0 % 5 == 4 {
                    Kind::Hwpt
                } else {
                    Kind::Ioas
                };
                Cmd::HwptAlloc {
                    ctx,
                    dev: self.obj(ctx, dev, Kind::Idev),
                    pt: self.obj(ctx, pt, kind),
                    flags: [0, 1, 2, 3, 0, 4, 8][usize::from(flags % 7)],
                }
            }
            Op::CheckMap {
                ctx,
                hwpt,
                range,
                skew,
            } => {
                let ctx = Self::ctx_of(ctx);
                let id = self.obj(ctx, hwpt, Kind::Hwpt);
                let ioas = match self.ctxs[ctx].objs.get(&id) {
                    Some(Obj::Hwpt(h)) => self.ioas_m(ctx, h.ioas),
                    _ => None,
                };
                let (iova, len) = Self::range(ioas, range);
                let len = len.min(MAX_LEN_PAGES * 4 * PAGE);
                let va = ioas
                    .and_then(|i| self.va_of(i, iova))
                    .unwrap_or(self.arena.base);
                let uptr = match skew % 8 {
                    0 => va.wrapping_add(PAGE),
                    1 => va.wrapping_add(1),
                    _ => va,
                };
                Cmd::CheckMap {
                    ctx,
                    hwpt: id,
                    iova,
                    len,
                    uptr,
                }
            }
            Op::CheckRefs {
                ctx,
                page,
                npages,
                delta,
            } => {
                let uptr = self.arena.base + u64::from(page) % crate::mem::ARENA_PAGES * PAGE;
                let (pins, _) = self.pins_and_locked();
                let refs = if delta % 4 != 0 {
                    pins.get(&uptr).copied().unwrap_or(0)
                } else {
                    u32::from(delta / 4 % 3)
                };
                Cmd::CheckRefs {
                    ctx: Self::ctx_of(ctx),
                    uptr: if delta == 255 { uptr + 1 } else { uptr },
                    len: (u64::from(npages % 4) + 1)
                        .min(crate::mem::ARENA_PAGES - (uptr - self.arena.base) / PAGE)
                        * PAGE,
                    refs,
                }
            }
            Op::CreateAccess { ctx, ioas, flags } => {
                let ctx = Self::ctx_of(ctx);
                Cmd::CreateAccess {
                    ctx,
                    ioas: self.obj(ctx, ioas, Kind::Ioas),
                    flags: [1, 0, 1, 1, 1, 2][usize::from(flags % 6)],
                }
            }
            Op::AccessPages {
                ctx,
                access,
                range,
                flags,
                check,
            } => {
                let key = self.access_key(access);
                let ioas = self.access_ioas_m(key);
                let (iova, len) = Self::range(ioas, range);
                let va = ioas
                    .and_then(|i| self.va_of(i, iova))
                    .unwrap_or(self.arena.base);
                Cmd::AccessPages {
                    ctx: Self::ctx_of(ctx),
                    access: key,
                    iova,
                    len,
                    flags: [0, 1, 0, 1, 2][usize::from(flags % 5)],
                    uptr: match check % 4 {
                        2 => va,
                        3 => va.wrapping_add(PAGE),
                        _ => 0,
                    },
                }
            }
            Op::AccessRw {
                ctx,
                access,
                range,
                flags,
                seed,
            } => {
                let key = self.access_key(access);
                let (iova, len) = Self::range(self.access_ioas_m(key), range);
                Cmd::AccessRw {
                    ctx: Self::ctx_of(ctx),
                    access: key,
                    iova,
                    len,
                    flags: if seed == 255 {
                        8
                    } else {
                        [0, 1, 4, 5][usize::from(flags % 4)]
                    },
                    seed,
                }
            }
            Op::DestroyAccessPages { ctx, access, item } => {
                let key = self.access_key(access);
                let items: Vec<u32> = key
                    .map(|k| self.accesses[&k].items.iter().map(|i| i.id).collect())
                    .unwrap_or_default();
                let id = if item % 8 == 7 || items.is_empty() {
                    u32::from(item)
                } else {
                    items[usize::from(item) % items.len()]
                };
                Cmd::DestroyAccessPages {
                    ctx: Self::ctx_of(ctx),
                    access: key,
                    item: id,
                }
            }
            Op::AccessReplace { access, ioas } => {
                let key = self.access_key(access);
                let ctx = key.map_or(0, |k| self.accesses[&k].ctx);
                Cmd::AccessReplace {
                    ctx,
                    access: key,
                    ioas: self.obj(ctx, ioas, Kind::Ioas),
                }
            }
            Op::CloseAccess { access } => Cmd::CloseAccess {
                access: self.access_key(access % 248)?,
            },
            Op::CloseCtx { ctx } => Cmd::CloseCtx {
                ctx: Self::ctx_of(ctx),
            },
        })
    }
}
