//! The reference model: the observable state of every context, written from the
//! specification (UAPI.md, SEMANTICS.md, MOCK.md) with plain data structures, and
//! [`Model::apply`], which predicts each command's errno and outputs and updates
//! the state as the kernel would.
//!
//! What is modelled: per-context object tables with lowest-free ID reuse (IOAS,
//! paging HWPT, device, selftest mock device, access), areas with their page
//! stores (MAP makes one store, COPY shares it), allowed and reserved ranges
//! (selftest and domain apertures), the IOVA alignment, huge-page and
//! accounting-mode options, automatic and user-allocated mock HWPTs, selftest
//! accesses with their pinned items, and from these: the pins on every page of
//! the arena and the pages charged to each accounting mode.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uapi::Errno;

use crate::mem::{Arena, LOCK_LIMIT_PAGES};

/// CPU page size.
pub const PAGE: u64 = 4096;
/// Mock IO page size.
pub const MOCK_PAGE: u64 = 2048;
/// Mock domain aperture.
pub const APERTURE: (u64, u64) = (1 << 24, (1 << 31) - 1);
const HPAGE: u64 = 2 << 20;
const MAX_ACCESS_LEN: u64 = 16 << 20;

/// The kinds an object selector may prefer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An IOAS.
    Ioas,
    /// A paging HWPT.
    Hwpt,
    /// A bound device.
    Idev,
    /// A selftest mock-device object.
    Selftest,
    /// An access object.
    Access,
}

/// Who reserved an IOVA range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// `IOMMU_TEST_OP_ADD_RESERVED`.
    Test,
    /// The aperture complement of the domain of this HWPT.
    Hwpt(u32),
}

/// An area: `[iova, last]` backed by bytes of a page store.
#[derive(Clone, Debug)]
pub struct Area {
    /// Last IOVA byte.
    pub last: u64,
    /// Page store index.
    pub store: usize,
    /// Offset of the area's first byte in the store.
    pub start_byte: u64,
    /// IOMMU_WRITE.
    pub write: bool,
    /// IOMMU_READ.
    pub read: bool,
}

/// An IOAS.
#[derive(Clone, Debug, Default)]
pub struct IoasM {
    /// Areas by first IOVA.
    pub areas: BTreeMap<u64, Area>,
    /// Allowed ranges.
    pub allowed: Vec<(u64, u64)>,
    /// Reserved ranges.
    pub reserved: Vec<(u64, u64, Owner)>,
    /// `IOMMU_OPTION_HUGE_PAGES` = 0.
    pub huge_disabled: bool,
    /// Paging HWPTs on this IOAS, in creation order.
    pub hwpts: Vec<u32>,
    /// Accesses attached (by access key).
    pub accesses: Vec<u32>,
}

/// A paging HWPT.
#[derive(Clone, Debug)]
pub struct HwptM {
    /// Its IOAS.
    pub ioas: u32,
    /// Created by attaching a device to an IOAS.
    pub auto: bool,
    /// Allocated with dirty tracking.
    pub dirty: bool,
    /// Devices attached.
    pub devs: u32,
}

/// A selftest mock device.
#[derive(Clone, Debug)]
pub struct StM {
    /// Its device object.
    pub idev: u32,
    /// The HWPT it is attached to.
    pub hwpt: u32,
    /// Created with `MOCK_FLAGS_DEVICE_NO_DIRTY`.
    pub no_dirty: bool,
}

/// An object.
#[derive(Clone, Debug)]
pub enum Obj {
    /// IOAS.
    Ioas(IoasM),
    /// Paging HWPT.
    Hwpt(HwptM),
    /// Device bound by a selftest object.
    Idev,
    /// Selftest mock device.
    Selftest(StM),
    /// Access (its key).
    Access(u32),
}

impl Obj {
    fn kind(&self) -> Kind {
        match self {
            Obj::Ioas(_) => Kind::Ioas,
            Obj::Hwpt(_) => Kind::Hwpt,
            Obj::Idev => Kind::Idev,
            Obj::Selftest(_) => Kind::Selftest,
            Obj::Access(_) => Kind::Access,
        }
    }
}

/// One context.
#[derive(Clone, Debug, Default)]
pub struct CtxM {
    /// Objects by ID.
    pub objs: BTreeMap<u32, Obj>,
    /// Accounting mode MM (else USER).
    pub mm_mode: bool,
}

impl CtxM {
    fn free_id(&self, taken: &[u32]) -> u32 {
        (1..)
            .find(|id| !self.objs.contains_key(id) && !taken.contains(id))
            .unwrap_or(u32::MAX)
    }

    /// IDs of objects of `kind`, ascending.
    pub fn ids(&self, kind: Option<Kind>) -> Vec<u32> {
        self.objs
            .iter()
            .filter(|(_, o)| kind.is_none_or(|k| o.kind() == k))
            .map(|(&id, _)| id)
            .collect()
    }

    fn ioas(&self, id: u32) -> Option<&IoasM> {
        match self.objs.get(&id) {
            Some(Obj::Ioas(i)) => Some(i),
            _ => None,
        }
    }

    fn ioas_mut(&mut self, id: u32) -> &mut IoasM {
        match self.objs.get_mut(&id) {
            Some(Obj::Ioas(i)) => i,
            _ => unreachable!("IOAS {id} checked before"),
        }
    }

    fn hwpt(&self, id: u32) -> Option<&HwptM> {
        match self.objs.get(&id) {
            Some(Obj::Hwpt(h)) => Some(h),
            _ => None,
        }
    }

    fn hwpt_mut(&mut self, id: u32) -> &mut HwptM {
        match self.objs.get_mut(&id) {
            Some(Obj::Hwpt(h)) => h,
            _ => unreachable!("HWPT {id} checked before"),
        }
    }
}

/// A page store.
#[derive(Clone, Copy, Debug)]
pub struct Store {
    /// Page-aligned user address of index 0.
    pub base: u64,
    /// Writable (mapped with WRITEABLE).
    pub writable: bool,
    /// Charged in MM mode (else USER).
    pub mm: bool,
}

/// A pinned range of a selftest access.
#[derive(Clone, Debug)]
pub struct Item {
    /// Item ID.
    pub id: u32,
    /// First IOVA.
    pub iova: u64,
    /// Length.
    pub len: u64,
    /// Store page-index ranges it pins.
    pub pieces: Vec<(usize, u64, u64)>,
}

/// A selftest access (an fd plus an access object).
#[derive(Clone, Debug)]
pub struct AccessM {
    /// Its context.
    pub ctx: usize,
    /// Its object ID.
    pub id: u32,
    /// The IOAS it is attached to.
    pub ioas: u32,
    /// Created with `MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES`.
    pub needs_pin: bool,
    /// Pinned items.
    pub items: Vec<Item>,
    /// Next item ID.
    pub next_item: u32,
}

/// A concrete command, resolved from an op.
#[derive(Clone, Debug)]
#[allow(missing_docs)]
pub enum Cmd {
    IoasAlloc {
        ctx: usize,
    },
    Destroy {
        ctx: usize,
        id: u32,
    },
    Map {
        ctx: usize,
        ioas: u32,
        flags: u32,
        va: u64,
        len: u64,
        iova: u64,
    },
    Unmap {
        ctx: usize,
        ioas: u32,
        iova: u64,
        len: u64,
    },
    Copy {
        ctx: usize,
        dst: u32,
        src: u32,
        flags: u32,
        src_iova: u64,
        len: u64,
        dst_iova: u64,
    },
    AllowIovas {
        ctx: usize,
        ioas: u32,
        ranges: Vec<(u64, u64)>,
    },
    AddReserved {
        ctx: usize,
        ioas: u32,
        start: u64,
        len: u64,
    },
    IovaRanges {
        ctx: usize,
        ioas: u32,
        cap: u32,
    },
    Option {
        ctx: usize,
        option: u32,
        op: u16,
        object: u32,
        val: u64,
    },
    MockDomain {
        ctx: usize,
        pt: u32,
        flags: Option<u32>,
    },
    Replace {
        ctx: usize,
        stdev: u32,
        pt: u32,
    },
    HwptAlloc {
        ctx: usize,
        dev: u32,
        pt: u32,
        flags: u32,
    },
    CheckMap {
        ctx: usize,
        hwpt: u32,
        iova: u64,
        len: u64,
        uptr: u64,
    },
    CheckRefs {
        ctx: usize,
        uptr: u64,
        len: u64,
        refs: u32,
    },
    CreateAccess {
        ctx: usize,
        ioas: u32,
        flags: u32,
    },
    /// `access` is the access key, `None` for a bogus fd.
    AccessPages {
        ctx: usize,
        access: Option<u32>,
        iova: u64,
        len: u64,
        flags: u32,
        uptr: u64,
    },
    AccessRw {
        ctx: usize,
        access: Option<u32>,
        iova: u64,
        len: u64,
        flags: u32,
        seed: u8,
    },
    DestroyAccessPages {
        ctx: usize,
        access: Option<u32>,
        item: u32,
    },
    AccessReplace {
        ctx: usize,
        access: Option<u32>,
        ioas: u32,
    },
    CloseAccess {
        access: u32,
    },
    CloseCtx {
        ctx: usize,
    },
}

/// What a successful (or `EMSGSIZE`) command returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Out {
    /// Nothing to compare.
    None,
    /// A new object ID.
    Id(u32),
    /// MOCK_DOMAIN: (stdev, hwpt, idev).
    Mock(u32, u32, u32),
    /// An IOVA.
    Iova(u64),
    /// A length.
    Len(u64),
    /// IOVA_RANGES: (total, alignment, the entries written).
    Ranges(u32, u64, Vec<(u64, u64)>),
    /// An option value.
    Val(u64),
    /// An access's item ID.
    Item(u32),
    /// A new access (its key; the fd is the implementation's).
    Access(u32),
    /// Data moved by ACCESS_RW (checked by the executor against memory).
    Rw,
}

/// A command's result: an errno (possibly with outputs, for `EMSGSIZE`) or outputs.
pub type Outcome = Result<Out, (Errno, Out)>;

fn err(e: Errno) -> Outcome {
    Err((e, Out::None))
}

/// The reference model of every context.
#[derive(Clone, Debug)]
pub struct Model {
    /// Contexts.
    pub ctxs: Vec<CtxM>,
    /// Page stores ever created (index = store id).
    pub stores: Vec<Store>,
    /// Open accesses by key.
    pub accesses: BTreeMap<u32, AccessM>,
    next_akey: u32,
    pub(crate) arena: ArenaInfo,
}

/// What the model needs to know of the arena.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ArenaInfo {
    pub(crate) base: u64,
}

impl ArenaInfo {
    fn pinnable(&self, va: u64, write: bool) -> bool {
        let Some(off) = va.checked_sub(self.base) else {
            return false;
        };
        if off >= crate::mem::ARENA_PAGES * PAGE {
            return false;
        }
        match crate::mem::page_kind(off / PAGE) {
            crate::mem::PageKind::Rw => true,
            crate::mem::PageKind::Ro => !write,
            crate::mem::PageKind::None => false,
        }
    }
}

/// Pinned page indices per store plus charges, for simulating one command.
struct PinSim<'a> {
    m: &'a Model,
    pinned: HashMap<usize, BTreeSet<u64>>,
    charged: [u64; 2],
}

impl PinSim<'_> {
    /// Pins `[s, l]` of `store` where not yet pinned, with the store's write
    /// permission (`pin_holes` + `update_pinned`).
    fn need(&mut self, store: usize, s: u64, l: u64) -> Result<(), Errno> {
        let st = self.m.stores[store];
        let set = self.pinned.entry(store).or_default();
        let new: Vec<u64> = (s..=l).filter(|i| !set.contains(i)).collect();
        if new.iter().any(|&i| {
            !self
                .m
                .arena
                .pinnable(st.base.wrapping_add(i * PAGE), st.writable)
        }) {
            return Err(Errno::FAULT);
        }
        let mode = usize::from(st.mm);
        if self.charged[mode] + new.len() as u64 > LOCK_LIMIT_PAGES {
            return Err(Errno::NOMEM);
        }
        self.charged[mode] += new.len() as u64;
        set.extend(new);
        Ok(())
    }

    fn is_pinned(&self, store: usize, i: u64) -> bool {
        self.pinned.get(&store).is_some_and(|s| s.contains(&i))
    }
}

/// Walks the areas that contiguously cover `[iova, last]` from `iova`: the pieces
/// (area iova, piece first, piece last) and whether `last` was reached.
fn contig(ioas: &IoasM, iova: u64, last: u64) -> (Vec<(u64, u64, u64)>, bool) {
    let mut out = Vec::new();
    let mut cur = iova;
    loop {
        let Some((&a, area)) = ioas.areas.range(..=cur).next_back() else {
            return (out, false);
        };
        if area.last < cur {
            return (out, false);
        }
        out.push((a, cur, area.last.min(last)));
        if last <= area.last {
            return (out, true);
        }
        cur = area.last + 1;
    }
}

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 <= b.1 && b.0 <= a.1
}

impl Model {
    /// An empty model of `nctx` fresh contexts over `arena`.
    pub fn new(nctx: usize, arena: &Arena) -> Model {
        Model {
            ctxs: vec![CtxM::default(); nctx],
            stores: Vec::new(),
            accesses: BTreeMap::new(),
            next_akey: 0,
            arena: ArenaInfo { base: arena.base() },
        }
    }

    // ---- derived state -----------------------------------------------------

    /// Pinned page indices of every store: indices under an area of an IOAS with
    /// a domain, or under an access item.
    pub fn pinned(&self) -> HashMap<usize, BTreeSet<u64>> {
        let mut out: HashMap<usize, BTreeSet<u64>> = HashMap::new();
        for c in &self.ctxs {
            for o in c.objs.values() {
                let Obj::Ioas(ioas) = o else { continue };
                if ioas.hwpts.is_empty() {
                    continue;
                }
                for (&a, area) in &ioas.areas {
                    let (s, l) = area_indexes(area, a, a, area.last);
                    out.entry(area.store).or_default().extend(s..=l);
                }
            }
        }
        for acc in self.accesses.values() {
            for item in &acc.items {
                for &(store, s, l) in &item.pieces {
                    out.entry(store).or_default().extend(s..=l);
                }
            }
        }
        out
    }

    /// Pins the model expects on the page at `va`, and charges per mode.
    pub fn pins_and_locked(&self) -> (HashMap<u64, u32>, [u64; 2]) {
        let mut pins: HashMap<u64, u32> = HashMap::new();
        let mut locked = [0u64; 2];
        for (store, set) in self.pinned() {
            let st = self.stores[store];
            locked[usize::from(st.mm)] += set.len() as u64;
            for i in set {
                *pins.entry(st.base.wrapping_add(i * PAGE)).or_default() += 1;
            }
        }
        (pins, locked)
    }

    fn sim(&self) -> PinSim<'_> {
        let pinned = self.pinned();
        let mut charged = [0u64; 2];
        for (&store, set) in &pinned {
            charged[usize::from(self.stores[store].mm)] += set.len() as u64;
        }
        PinSim {
            m: self,
            pinned,
            charged,
        }
    }

    /// IOVA alignment of an IOAS.
    pub fn alignment(&self, ioas: &IoasM) -> u64 {
        let mut a = if ioas.huge_disabled { PAGE } else { 1 };
        if !ioas.hwpts.is_empty() {
            a = a.max(MOCK_PAGE);
        }
        if ioas.accesses.iter().any(|k| self.accesses[k].needs_pin) {
            a = a.max(PAGE);
        }
        a
    }

    /// Holes of the reserved set of an IOAS.
    pub fn iova_ranges(ioas: &IoasM) -> Vec<(u64, u64)> {
        let mut used: Vec<(u64, u64)> = ioas.reserved.iter().map(|&(s, l, _)| (s, l)).collect();
        used.sort_unstable();
        holes(&used, 0, u64::MAX)
    }

    /// The VA that backs `iova` in `ioas` and the bytes left in its area, if mapped.
    pub fn va_run(&self, ioas: &IoasM, iova: u64) -> Option<(u64, u64)> {
        let (&a, area) = ioas.areas.range(..=iova).next_back()?;
        (iova <= area.last).then(|| {
            let va = self.stores[area.store]
                .base
                .wrapping_add(area.start_byte + (iova - a));
            (va, area.last - iova + 1)
        })
    }

    /// The VA that backs `iova` in `ioas`, if mapped.
    pub fn va_of(&self, ioas: &IoasM, iova: u64) -> Option<u64> {
        let (&a, area) = ioas.areas.range(..=iova).next_back()?;
        (iova <= area.last).then(|| {
            self.stores[area.store]
                .base
                .wrapping_add(area.start_byte + (iova - a))
        })
    }

    /// The IOAS an access key is attached to (its context and IOAS ID).
    fn access_ioas(&self, key: u32) -> (usize, u32) {
        let a = &self.accesses[&key];
        (a.ctx, a.ioas)
    }

    // ---- commands -----------------------------------------------------------

    /// Predicts `cmd`'s result and applies its effect.
    pub fn apply(&mut self, cmd: &Cmd) -> Outcome {
        match *cmd {
            Cmd::IoasAlloc { ctx } => {
                let c = &mut self.ctxs[ctx];
                let id = c.free_id(&[]);
                c.objs.insert(id, Obj::Ioas(IoasM::default()));
                Ok(Out::Id(id))
            }
            Cmd::Destroy { ctx, id } => self.destroy(ctx, id),
            Cmd::Map {
                ctx,
                ioas,
                flags,
                va,
                len,
                iova,
            } => self.map(ctx, ioas, flags, va, len, iova),
            Cmd::Unmap {
                ctx,
                ioas,
                iova,
                len,
            } => self.unmap(ctx, ioas, iova, len),
            Cmd::Copy {
                ctx,
                dst,
                src,
                flags,
                src_iova,
                len,
                dst_iova,
            } => self.copy(ctx, dst, src, flags, src_iova, len, dst_iova),
            Cmd::AllowIovas {
                ctx,
                ioas,
                ref ranges,
            } => self.allow(ctx, ioas, ranges),
            Cmd::AddReserved {
                ctx,
                ioas,
                start,
                len,
            } => self.add_reserved(ctx, ioas, start, len),
            Cmd::IovaRanges { ctx, ioas, cap } => {
                let Some(i) = self.ctxs[ctx].ioas(ioas) else {
                    return err(Errno::NOENT);
                };
                let holes = Self::iova_ranges(i);
                let out = Out::Ranges(
                    holes.len() as u32,
                    self.alignment(i),
                    holes.iter().take(cap as usize).copied().collect(),
                );
                if holes.len() > cap as usize {
                    Err((Errno::MSGSIZE, out))
                } else {
                    Ok(out)
                }
            }
            Cmd::Option {
                ctx,
                option,
                op,
                object,
                val,
            } => self.option(ctx, option, op, object, val),
            Cmd::MockDomain { ctx, pt, flags } => self.mock_domain(ctx, pt, flags),
            Cmd::Replace { ctx, stdev, pt } => self.replace(ctx, stdev, pt),
            Cmd::HwptAlloc {
                ctx,
                dev,
                pt,
                flags,
            } => self.hwpt_alloc(ctx, dev, pt, flags),
            Cmd::CheckMap {
                ctx,
                hwpt,
                iova,
                len,
                uptr,
            } => self.check_map(ctx, hwpt, iova, len, uptr),
            Cmd::CheckRefs {
                uptr, len, refs, ..
            } => self.check_refs(uptr, len, refs),
            Cmd::CreateAccess { ctx, ioas, flags } => self.create_access(ctx, ioas, flags),
            Cmd::AccessPages {
                access,
                iova,
                len,
                flags,
                uptr,
                ..
            } => self.access_pages(access, iova, len, flags, uptr),
            Cmd::AccessRw {
                access,
                iova,
                len,
                flags,
                ..
            } => self.access_rw(access, iova, len, flags),
            Cmd::DestroyAccessPages { access, item, .. } => {
                let Some(key) = access else {
                    return err(Errno::BADFD);
                };
                let a = self.accesses.get_mut(&key).expect("open access");
                let Some(pos) = a.items.iter().position(|i| i.id == item) else {
                    return err(Errno::NOENT);
                };
                a.items.remove(pos);
                Ok(Out::None)
            }
            Cmd::AccessReplace { access, ioas, .. } => self.access_replace(access, ioas),
            Cmd::CloseAccess { access } => {
                let a = self.accesses.remove(&access).expect("open access");
                let c = &mut self.ctxs[a.ctx];
                c.objs.remove(&a.id);
                c.ioas_mut(a.ioas).accesses.retain(|&k| k != access);
                Ok(Out::None)
            }
            Cmd::CloseCtx { ctx } => {
                self.accesses.retain(|_, a| a.ctx != ctx);
                self.ctxs[ctx] = CtxM::default();
                Ok(Out::None)
            }
        }
    }

    fn destroy(&mut self, ctx: usize, id: u32) -> Outcome {
        let c = &self.ctxs[ctx];
        let Some(obj) = c.objs.get(&id) else {
            return err(Errno::NOENT);
        };
        match obj.clone() {
            Obj::Ioas(i) => {
                if !i.hwpts.is_empty() || !i.accesses.is_empty() {
                    return err(Errno::BUSY);
                }
                self.ctxs[ctx].objs.remove(&id);
            }
            Obj::Hwpt(h) => {
                if h.devs != 0 {
                    return err(Errno::BUSY);
                }
                self.remove_hwpt(ctx, id);
            }
            Obj::Idev | Obj::Access(_) => return err(Errno::BUSY),
            Obj::Selftest(st) => {
                let c = &mut self.ctxs[ctx];
                c.objs.remove(&id);
                c.objs.remove(&st.idev);
                self.put_hwpt(ctx, st.hwpt);
            }
        }
        Ok(Out::None)
    }

    /// Drops a device's reference on a HWPT; an unused automatic HWPT goes.
    fn put_hwpt(&mut self, ctx: usize, hwpt: u32) {
        let h = self.ctxs[ctx].hwpt_mut(hwpt);
        h.devs -= 1;
        if h.auto && h.devs == 0 {
            self.remove_hwpt(ctx, hwpt);
        }
    }

    /// Removes a HWPT and its domain from its IOAS.
    fn remove_hwpt(&mut self, ctx: usize, hwpt: u32) {
        let c = &mut self.ctxs[ctx];
        let Some(Obj::Hwpt(h)) = c.objs.remove(&hwpt) else {
            unreachable!("HWPT {hwpt}")
        };
        let ioas = c.ioas_mut(h.ioas);
        ioas.hwpts.retain(|&x| x != hwpt);
        ioas.reserved.retain(|&(_, _, o)| o != Owner::Hwpt(hwpt));
    }

    /// Every area of `ioas` conforms to alignment `new`.
    fn areas_aligned(ioas: &IoasM, new: u64) -> bool {
        ioas.areas.iter().all(|(&a, area)| {
            a % new == 0
                && (area.last - a + 1) % new == 0
                && (area.start_byte % PAGE).is_multiple_of(new)
        })
    }

    /// Adds a new domain (HWPT `hwpt`) to IOAS `ioas` (`iopt_table_add_domain`).
    fn add_domain(&mut self, ctx: usize, ioas_id: u32, hwpt: u32) -> Result<(), Errno> {
        let ioas = self.ctxs[ctx].ioas(ioas_id).expect("IOAS");
        let cur = self.alignment(ioas);
        let new = cur.max(MOCK_PAGE);
        if new != cur && !Self::areas_aligned(ioas, new) {
            return Err(Errno::ADDRINUSE);
        }
        for r in [(0, APERTURE.0 - 1), (APERTURE.1 + 1, u64::MAX)] {
            let clash = ioas.areas.iter().any(|(&a, ar)| overlaps((a, ar.last), r))
                || ioas.allowed.iter().any(|&x| overlaps(x, r));
            if clash {
                return Err(Errno::ADDRINUSE);
            }
        }
        if ioas.hwpts.is_empty() {
            let mut sim = self.sim();
            for (&a, area) in &ioas.areas {
                let (s, l) = area_indexes(area, a, a, area.last);
                sim.need(area.store, s, l)?;
            }
        }
        let ioas = self.ctxs[ctx].ioas_mut(ioas_id);
        ioas.reserved.push((0, APERTURE.0 - 1, Owner::Hwpt(hwpt)));
        ioas.reserved
            .push((APERTURE.1 + 1, u64::MAX, Owner::Hwpt(hwpt)));
        ioas.hwpts.push(hwpt);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn map(&mut self, ctx: usize, ioas: u32, flags: u32, va: u64, len: u64, iova: u64) -> Outcome {
        if flags & !7 != 0 {
            return err(Errno::OPNOTSUPP);
        }
        if iova == u64::MAX || len == u64::MAX {
            return err(Errno::OVERFLOW);
        }
        if flags & 6 == 0 {
            return err(Errno::INVAL);
        }
        if self.ctxs[ctx].ioas(ioas).is_none() {
            return err(Errno::NOENT);
        }
        if len == 0 || len > u64::MAX - PAGE {
            return err(Errno::INVAL);
        }
        if va.checked_add(len).is_none() {
            return err(Errno::OVERFLOW);
        }
        let store = Store {
            base: va & !(PAGE - 1),
            writable: flags & 2 != 0,
            mm: self.ctxs[ctx].mm_mode,
        };
        self.stores.push(store);
        let sid = self.stores.len() - 1;
        let pieces = [(sid, va % PAGE, len)];
        match self.map_pieces(ctx, ioas, &pieces, len, iova, flags) {
            Ok(iova) => Ok(Out::Iova(iova)),
            Err(e) => err(e),
        }
    }

    /// Inserts areas for `pieces` (store, start byte, length) back to back at a
    /// fixed or allocated IOVA and fills the domains (`iopt_map_pages`).
    fn map_pieces(
        &mut self,
        ctx: usize,
        ioas_id: u32,
        pieces: &[(usize, u64, u64)],
        len: u64,
        iova: u64,
        flags: u32,
    ) -> Result<u64, Errno> {
        let ioas = self.ctxs[ctx].ioas(ioas_id).expect("IOAS");
        let align = self.alignment(ioas);
        if len == 0 || !len.is_multiple_of(align) {
            return Err(Errno::INVAL);
        }
        let iova = if flags & 1 == 0 {
            let (store, start_byte, _) = pieces[0];
            self.alloc_iova(ioas, self.stores[store].base + start_byte, len)?
        } else {
            if !iova.is_multiple_of(align) {
                return Err(Errno::INVAL);
            }
            let last = iova.checked_add(len - 1).ok_or(Errno::OVERFLOW)?;
            if ioas
                .reserved
                .iter()
                .any(|&(s, l, _)| overlaps((s, l), (iova, last)))
            {
                return Err(Errno::INVAL);
            }
            if ioas
                .areas
                .iter()
                .any(|(&a, ar)| overlaps((a, ar.last), (iova, last)))
            {
                return Err(Errno::EXIST);
            }
            iova
        };
        let write = flags & 2 != 0;
        let mut new = Vec::new();
        let mut cur = iova;
        for &(store, start_byte, plen) in pieces {
            if write && !self.stores[store].writable {
                return Err(Errno::PERM);
            }
            if !(start_byte % PAGE).is_multiple_of(align) {
                return Err(Errno::INVAL);
            }
            let last = cur.checked_add(plen - 1).ok_or(Errno::OVERFLOW)?;
            new.push((
                cur,
                Area {
                    last,
                    store,
                    start_byte,
                    write,
                    read: flags & 4 != 0,
                },
            ));
            cur = cur.wrapping_add(plen);
        }
        if !ioas.hwpts.is_empty() {
            let mut sim = self.sim();
            for (a, area) in &new {
                let (s, l) = area_indexes(area, *a, *a, area.last);
                sim.need(area.store, s, l)?;
            }
        }
        self.ctxs[ctx].ioas_mut(ioas_id).areas.extend(new);
        Ok(iova)
    }

    /// The automatic IOVA allocator (SEMANTICS.md §2.4).
    fn alloc_iova(&self, ioas: &IoasM, uptr: u64, len: u64) -> Result<u64, Errno> {
        if len == 0 || len >= u64::MAX / 2 {
            return Err(Errno::OVERFLOW);
        }
        let page_offset = uptr % PAGE;
        let mut align = len.next_power_of_two();
        if uptr != 0 {
            align = align.min(1 << uptr.trailing_zeros());
        }
        align = align.min(HPAGE);
        if align < self.alignment(ioas) {
            return Err(Errno::INVAL);
        }
        // Windows are the used spans of the allowed set (adjacent ranges merge)
        // clipped to [PAGE, MAX - PAGE], or that whole range.
        let windows: Vec<(u64, u64)> = if ioas.allowed.is_empty() {
            vec![(PAGE, u64::MAX - PAGE)]
        } else {
            let mut sorted = ioas.allowed.clone();
            sorted.sort_unstable();
            let mut merged: Vec<(u64, u64)> = Vec::new();
            for (s, l) in sorted {
                match merged.last_mut() {
                    Some(m) if s <= m.1.saturating_add(1) => m.1 = m.1.max(l),
                    _ => merged.push((s, l)),
                }
            }
            merged
                .into_iter()
                .map(|(s, l)| (s.max(PAGE), l.min(u64::MAX - PAGE)))
                .filter(|&(s, l)| s <= l)
                .collect()
        };
        let mut used: Vec<(u64, u64)> = ioas
            .areas
            .iter()
            .map(|(&a, ar)| (a, ar.last))
            .chain(ioas.reserved.iter().map(|&(s, l, _)| (s, l)))
            .collect();
        used.sort_unstable();
        let fit = |s: u64, l: u64| -> Option<u64> {
            let aligned = s.checked_add(align - 1)? & !(align - 1);
            let aligned = aligned | page_offset;
            (aligned < l && l - aligned >= len - 1).then_some(aligned)
        };
        for (ws, wl) in windows {
            let Some(start) = fit(ws, wl) else { continue };
            for (hs, hl) in holes(&used, start, wl) {
                if let Some(iova) = fit(hs, hl) {
                    return Ok(iova);
                }
            }
        }
        Err(Errno::NOSPC)
    }

    fn unmap(&mut self, ctx: usize, ioas_id: u32, iova: u64, len: u64) -> Outcome {
        if self.ctxs[ctx].ioas(ioas_id).is_none() {
            return err(Errno::NOENT);
        }
        let all = iova == 0 && len == u64::MAX;
        if !all {
            if iova == u64::MAX || len == u64::MAX {
                return err(Errno::OVERFLOW);
            }
            if len == 0 {
                return err(Errno::INVAL);
            }
        }
        let last = if all {
            u64::MAX
        } else {
            match iova.checked_add(len - 1) {
                Some(last) => last,
                None => return err(Errno::OVERFLOW),
            }
        };
        let (unmapped, res) = self.unmap_range(ctx, ioas_id, iova, last);
        match res {
            Err(e) => err(e),
            Ok(()) if unmapped == 0 && !all => err(Errno::NOENT),
            Ok(()) => Ok(Out::Len(unmapped)),
        }
    }

    /// Removes whole areas inside `[start, last]`, notifying accesses first.
    fn unmap_range(
        &mut self,
        ctx: usize,
        ioas_id: u32,
        start: u64,
        last: u64,
    ) -> (u64, Result<(), Errno>) {
        let mut unmapped = 0;
        loop {
            let ioas = self.ctxs[ctx].ioas(ioas_id).expect("IOAS");
            let first = ioas
                .areas
                .range(..=last)
                .find(|(&a, ar)| overlaps((a, ar.last), (start, last)))
                .map(|(&a, ar)| (a, ar.last));
            let Some((a, l)) = first else {
                return (unmapped, Ok(()));
            };
            if a < start || l > last {
                return (unmapped, Err(Errno::NOENT));
            }
            let keys = ioas.accesses.clone();
            for key in keys {
                self.accesses
                    .get_mut(&key)
                    .expect("attached access")
                    .items
                    .retain(|it| !overlaps((it.iova, it.iova + (it.len - 1)), (a, l)));
            }
            self.ctxs[ctx].ioas_mut(ioas_id).areas.remove(&a);
            unmapped += l - a + 1;
            if l >= last {
                return (unmapped, Ok(()));
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn copy(
        &mut self,
        ctx: usize,
        dst: u32,
        src: u32,
        flags: u32,
        src_iova: u64,
        len: u64,
        dst_iova: u64,
    ) -> Outcome {
        if flags & !7 != 0 {
            return err(Errno::OPNOTSUPP);
        }
        if len == u64::MAX || src_iova == u64::MAX || dst_iova == u64::MAX {
            return err(Errno::OVERFLOW);
        }
        if flags & 6 == 0 {
            return err(Errno::INVAL);
        }
        let Some(s) = self.ctxs[ctx].ioas(src) else {
            return err(Errno::NOENT);
        };
        if len == 0 {
            return err(Errno::INVAL);
        }
        let Some(last) = src_iova.checked_add(len - 1) else {
            return err(Errno::OVERFLOW);
        };
        let (pieces, done) = contig(s, src_iova, last);
        if !done {
            return err(Errno::NOENT);
        }
        let list: Vec<(usize, u64, u64)> = pieces
            .iter()
            .map(|&(a, cur, l)| {
                let area = &s.areas[&a];
                (area.store, area.start_byte + (cur - a), l - cur + 1)
            })
            .collect();
        if self.ctxs[ctx].ioas(dst).is_none() {
            return err(Errno::NOENT);
        }
        match self.map_pieces(ctx, dst, &list, len, dst_iova, flags) {
            Ok(iova) => Ok(Out::Iova(iova)),
            Err(e) => err(e),
        }
    }

    fn allow(&mut self, ctx: usize, ioas_id: u32, ranges: &[(u64, u64)]) -> Outcome {
        let Some(ioas) = self.ctxs[ctx].ioas(ioas_id) else {
            return err(Errno::NOENT);
        };
        let mut seen: Vec<(u64, u64)> = Vec::new();
        for &(s, l) in ranges {
            if s >= l || seen.iter().any(|&x| overlaps(x, (s, l))) {
                return err(Errno::INVAL);
            }
            seen.push((s, l));
        }
        if seen
            .iter()
            .any(|&r| ioas.reserved.iter().any(|&(s, l, _)| overlaps((s, l), r)))
        {
            return err(Errno::ADDRINUSE);
        }
        self.ctxs[ctx].ioas_mut(ioas_id).allowed = seen;
        Ok(Out::None)
    }

    fn add_reserved(&mut self, ctx: usize, ioas_id: u32, start: u64, len: u64) -> Outcome {
        if len == 0 {
            return err(Errno::INVAL);
        }
        let Some(last) = start.checked_add(len - 1) else {
            return err(Errno::OVERFLOW);
        };
        let Some(ioas) = self.ctxs[ctx].ioas(ioas_id) else {
            return err(Errno::NOENT);
        };
        let r = (start, last);
        if ioas.areas.iter().any(|(&a, ar)| overlaps((a, ar.last), r))
            || ioas.allowed.iter().any(|&x| overlaps(x, r))
        {
            return err(Errno::ADDRINUSE);
        }
        self.ctxs[ctx]
            .ioas_mut(ioas_id)
            .reserved
            .push((start, last, Owner::Test));
        Ok(Out::None)
    }

    fn option(&mut self, ctx: usize, option: u32, op: u16, object: u32, val: u64) -> Outcome {
        match option {
            0 => {
                if object != 0 {
                    return err(Errno::OPNOTSUPP);
                }
                match op {
                    1 => Ok(Out::Val(u64::from(self.ctxs[ctx].mm_mode))),
                    0 => {
                        if !self.ctxs[ctx].objs.is_empty() {
                            return err(Errno::BUSY);
                        }
                        match val {
                            0 | 1 => {
                                self.ctxs[ctx].mm_mode = val == 1;
                                Ok(Out::Val(val))
                            }
                            _ => err(Errno::INVAL),
                        }
                    }
                    _ => err(Errno::OPNOTSUPP),
                }
            }
            1 => {
                let Some(ioas) = self.ctxs[ctx].ioas(object) else {
                    return err(Errno::NOENT);
                };
                match (op, val) {
                    (1, _) => Ok(Out::Val(u64::from(!ioas.huge_disabled))),
                    (0, 0) => {
                        if ioas.huge_disabled {
                            return Ok(Out::Val(0));
                        }
                        if !ioas.hwpts.is_empty() && !ioas.areas.is_empty() {
                            return err(Errno::INVAL);
                        }
                        let cur = self.alignment(ioas);
                        let new = cur.max(PAGE);
                        if new != cur && !Self::areas_aligned(ioas, new) {
                            return err(Errno::ADDRINUSE);
                        }
                        self.ctxs[ctx].ioas_mut(object).huge_disabled = true;
                        Ok(Out::Val(0))
                    }
                    (0, 1) => {
                        self.ctxs[ctx].ioas_mut(object).huge_disabled = false;
                        Ok(Out::Val(1))
                    }
                    (0, _) => err(Errno::INVAL),
                    _ => err(Errno::OPNOTSUPP),
                }
            }
            _ => err(Errno::OPNOTSUPP),
        }
    }

    /// Attaches device `stdev` (not yet attached, flags `no_dirty`) to `pt`, for
    /// MOCK_DOMAIN (`attach`) or REPLACE; returns the HWPT it ends up on.
    fn attach(
        &mut self,
        ctx: usize,
        pt: u32,
        no_dirty: bool,
        current: Option<u32>,
        reserved_ids: &[u32],
    ) -> Result<u32, Errno> {
        let c = &self.ctxs[ctx];
        match c.objs.get(&pt) {
            None => Err(Errno::NOENT),
            Some(Obj::Hwpt(h)) => {
                if current == Some(pt) {
                    return Ok(pt);
                }
                if h.dirty && no_dirty {
                    return Err(Errno::INVAL);
                }
                self.ctxs[ctx].hwpt_mut(pt).devs += 1;
                Ok(pt)
            }
            Some(Obj::Ioas(ioas)) => {
                let auto = ioas
                    .hwpts
                    .iter()
                    .copied()
                    .find(|&h| c.hwpt(h).is_some_and(|h| h.auto));
                if let Some(h) = auto {
                    if current != Some(h) {
                        self.ctxs[ctx].hwpt_mut(h).devs += 1;
                    }
                    return Ok(h);
                }
                let id = c.free_id(reserved_ids);
                self.add_domain(ctx, pt, id)?;
                self.ctxs[ctx].objs.insert(
                    id,
                    Obj::Hwpt(HwptM {
                        ioas: pt,
                        auto: true,
                        dirty: false,
                        devs: 1,
                    }),
                );
                Ok(id)
            }
            Some(_) => Err(Errno::INVAL),
        }
    }

    fn mock_domain(&mut self, ctx: usize, pt: u32, flags: Option<u32>) -> Outcome {
        let f = flags.unwrap_or(0);
        if f & !7 != 0 {
            return err(Errno::INVAL);
        }
        let c = &self.ctxs[ctx];
        let stdev = c.free_id(&[]);
        let idev = c.free_id(&[stdev]);
        let no_dirty = f & 1 != 0;
        // The device is bound (visible) before it is attached.
        self.ctxs[ctx].objs.insert(idev, Obj::Idev);
        match self.attach(ctx, pt, no_dirty, None, &[stdev]) {
            Ok(hwpt) => {
                let c = &mut self.ctxs[ctx];
                c.objs.insert(
                    stdev,
                    Obj::Selftest(StM {
                        idev,
                        hwpt,
                        no_dirty,
                    }),
                );
                Ok(Out::Mock(stdev, hwpt, idev))
            }
            Err(e) => {
                self.ctxs[ctx].objs.remove(&idev);
                err(e)
            }
        }
    }

    fn replace(&mut self, ctx: usize, stdev: u32, pt: u32) -> Outcome {
        let Some(Obj::Selftest(st)) = self.ctxs[ctx].objs.get(&stdev).cloned() else {
            return err(Errno::NOENT);
        };
        match self.attach(ctx, pt, st.no_dirty, Some(st.hwpt), &[]) {
            Ok(hwpt) => {
                if hwpt != st.hwpt {
                    if let Some(Obj::Selftest(s)) = self.ctxs[ctx].objs.get_mut(&stdev) {
                        s.hwpt = hwpt;
                    }
                    self.put_hwpt(ctx, st.hwpt);
                }
                Ok(Out::Id(hwpt))
            }
            Err(e) => err(e),
        }
    }

    fn hwpt_alloc(&mut self, ctx: usize, dev: u32, pt: u32, flags: u32) -> Outcome {
        let c = &self.ctxs[ctx];
        if !matches!(c.objs.get(&dev), Some(Obj::Idev)) {
            return err(Errno::NOENT);
        }
        let no_dirty = c
            .objs
            .values()
            .any(|o| matches!(o, Obj::Selftest(s) if s.idev == dev && s.no_dirty));
        match c.objs.get(&pt) {
            None => err(Errno::INVAL),
            Some(Obj::Ioas(_)) => {
                if flags & !3 != 0 || (flags & 2 != 0 && no_dirty) {
                    return err(Errno::OPNOTSUPP);
                }
                let id = c.free_id(&[]);
                if let Err(e) = self.add_domain(ctx, pt, id) {
                    return err(e);
                }
                self.ctxs[ctx].objs.insert(
                    id,
                    Obj::Hwpt(HwptM {
                        ioas: pt,
                        auto: false,
                        dirty: flags & 2 != 0,
                        devs: 0,
                    }),
                );
                Ok(Out::Id(id))
            }
            // A nested HWPT needs driver data, which the ops never pass.
            Some(Obj::Hwpt(_)) => err(Errno::OPNOTSUPP),
            Some(_) => err(Errno::INVAL),
        }
    }

    fn check_map(&self, ctx: usize, hwpt: u32, mut iova: u64, len: u64, mut uptr: u64) -> Outcome {
        if !iova.is_multiple_of(MOCK_PAGE)
            || !len.is_multiple_of(MOCK_PAGE)
            || !uptr.is_multiple_of(MOCK_PAGE)
            || uptr.checked_add(len).is_none()
        {
            return err(Errno::INVAL);
        }
        let Some(h) = self.ctxs[ctx].hwpt(hwpt) else {
            return err(Errno::NOENT);
        };
        let ioas = self.ctxs[ctx].ioas(h.ioas).expect("HWPT's IOAS");
        for _ in 0..len / MOCK_PAGE {
            if !self.arena.pinnable(uptr & !(PAGE - 1), false) {
                return err(Errno::FAULT);
            }
            if self.va_of(ioas, iova) != Some(uptr) {
                return err(Errno::INVAL);
            }
            iova += MOCK_PAGE;
            uptr += MOCK_PAGE;
        }
        Ok(Out::None)
    }

    fn check_refs(&self, uptr: u64, len: u64, refs: u32) -> Outcome {
        if !len.is_multiple_of(PAGE)
            || !uptr.is_multiple_of(PAGE)
            || uptr.checked_add(len).is_none()
        {
            return err(Errno::INVAL);
        }
        let (pins, _) = self.pins_and_locked();
        for p in 0..len / PAGE {
            let va = uptr + p * PAGE;
            if !self.arena.pinnable(va, false) {
                return err(Errno::FAULT);
            }
            if pins.get(&va).copied().unwrap_or(0) != refs {
                return err(Errno::IO);
            }
        }
        Ok(Out::None)
    }

    fn create_access(&mut self, ctx: usize, ioas_id: u32, flags: u32) -> Outcome {
        if flags & !1 != 0 {
            return err(Errno::OPNOTSUPP);
        }
        let needs_pin = flags & 1 != 0;
        let Some(ioas) = self.ctxs[ctx].ioas(ioas_id) else {
            return err(Errno::NOENT);
        };
        if needs_pin {
            let cur = self.alignment(ioas);
            if cur < PAGE && !Self::areas_aligned(ioas, PAGE) {
                return err(Errno::ADDRINUSE);
            }
        }
        let id = self.ctxs[ctx].free_id(&[]);
        let key = self.next_akey;
        self.next_akey += 1;
        self.ctxs[ctx].objs.insert(id, Obj::Access(key));
        self.ctxs[ctx].ioas_mut(ioas_id).accesses.push(key);
        self.accesses.insert(
            key,
            AccessM {
                ctx,
                id,
                ioas: ioas_id,
                needs_pin,
                items: Vec::new(),
                next_item: 0,
            },
        );
        Ok(Out::Access(key))
    }

    fn access_pages(
        &mut self,
        access: Option<u32>,
        iova: u64,
        len: u64,
        flags: u32,
        uptr: u64,
    ) -> Outcome {
        if len > MAX_ACCESS_LEN {
            return err(Errno::NOMEM);
        }
        if flags & !1 != 0 {
            return err(Errno::OPNOTSUPP);
        }
        let Some(key) = access else {
            return err(Errno::BADFD);
        };
        if !self.accesses[&key].needs_pin {
            return err(Errno::OPNOTSUPP);
        }
        if len == 0 {
            return err(Errno::INVAL);
        }
        let Some(last) = iova.checked_add(len - 1) else {
            return err(Errno::OVERFLOW);
        };
        let write = flags & 1 != 0;
        let (ctx, ioas_id) = self.access_ioas(key);
        let ioas = self.ctxs[ctx].ioas(ioas_id).expect("access IOAS");
        let (pieces, done) = contig(ioas, iova, last);
        let mut sim = self.sim();
        let mut item_pieces = Vec::new();
        let mut pas = Vec::new();
        for &(a, cur, l) in &pieces {
            let area = &ioas.areas[&a];
            let start = area.start_byte + (cur - a);
            let final_piece = area.last >= last;
            let area_end = area.start_byte + (area.last - a);
            if !start.is_multiple_of(PAGE) || (!final_piece && area_end % PAGE != PAGE - 1) {
                return err(Errno::INVAL);
            }
            if !(if write { area.write } else { area.read }) {
                return err(Errno::PERM);
            }
            let st = self.stores[area.store];
            if write && !st.writable {
                return err(Errno::PERM);
            }
            let (s, li) = area_indexes(area, a, cur, l);
            let exists = self.accesses.values().any(|acc| {
                acc.items
                    .iter()
                    .any(|it| it.pieces.contains(&(area.store, s, li)))
            }) || item_pieces.contains(&(area.store, s, li));
            if !exists {
                if let Err(e) = sim.need(area.store, s, li) {
                    return err(e);
                }
            }
            item_pieces.push((area.store, s, li));
            pas.extend((s..=li).map(|i| st.base.wrapping_add(i * PAGE)));
        }
        if !done {
            return err(Errno::NOENT);
        }
        if uptr != 0 {
            let base = uptr.wrapping_sub(iova % PAGE);
            for (i, &pa) in pas.iter().enumerate() {
                let va = base.wrapping_add(i as u64 * PAGE);
                if !self.arena.pinnable(va & !(PAGE - 1), false) {
                    return err(Errno::FAULT);
                }
                if va & !(PAGE - 1) != pa {
                    return err(Errno::BADE);
                }
            }
        }
        let a = self.accesses.get_mut(&key).expect("access");
        let id = a.next_item;
        a.next_item = a.next_item.wrapping_add(1);
        a.items.push(Item {
            id,
            iova,
            len,
            pieces: item_pieces,
        });
        Ok(Out::Item(id))
    }

    fn access_rw(&self, access: Option<u32>, iova: u64, len: u64, flags: u32) -> Outcome {
        if len > MAX_ACCESS_LEN {
            return err(Errno::NOMEM);
        }
        if flags & !5 != 0 {
            return err(Errno::OPNOTSUPP);
        }
        let Some(key) = access else {
            return err(Errno::BADFD);
        };
        if len == 0 {
            return err(Errno::INVAL);
        }
        let Some(last) = iova.checked_add(len - 1) else {
            return err(Errno::OVERFLOW);
        };
        let write = flags & 1 != 0;
        let slow = flags & 4 != 0;
        let (ctx, ioas_id) = self.access_ioas(key);
        let ioas = self.ctxs[ctx].ioas(ioas_id).expect("access IOAS");
        let (pieces, done) = contig(ioas, iova, last);
        let sim = self.sim();
        for &(a, cur, l) in &pieces {
            let area = &ioas.areas[&a];
            if !(if write { area.write } else { area.read }) {
                return err(Errno::PERM);
            }
            let st = self.stores[area.store];
            if write && !st.writable {
                return err(Errno::PERM);
            }
            let start_byte = area.start_byte + (cur - a);
            let va = st.base.wrapping_add(start_byte);
            let bytes = l - cur + 1;
            let (s, li) = area_indexes(area, a, cur, l);
            let ok = if !slow {
                let first = va & !(PAGE - 1);
                let lastp = (va + (bytes - 1)) & !(PAGE - 1);
                (first..=lastp)
                    .step_by(PAGE as usize)
                    .all(|p| self.arena.pinnable(p, write))
            } else if s == li {
                self.arena.pinnable(st.base.wrapping_add(s * PAGE), write)
            } else {
                (s..=li).all(|i| {
                    sim.is_pinned(area.store, i)
                        || self
                            .arena
                            .pinnable(st.base.wrapping_add(i * PAGE), st.writable)
                })
            };
            if !ok {
                return err(Errno::FAULT);
            }
        }
        if !done {
            return err(Errno::NOENT);
        }
        Ok(Out::Rw)
    }

    fn access_replace(&mut self, access: Option<u32>, ioas_id: u32) -> Outcome {
        let Some(key) = access else {
            return err(Errno::BADFD);
        };
        let (ctx, cur) = self.access_ioas(key);
        let Some(new) = self.ctxs[ctx].ioas(ioas_id) else {
            return err(Errno::NOENT);
        };
        if cur == ioas_id {
            return Ok(Out::None);
        }
        if self.accesses[&key].needs_pin {
            let a = self.alignment(new);
            if a < PAGE && !Self::areas_aligned(new, PAGE) {
                return err(Errno::ADDRINUSE);
            }
        }
        let c = &mut self.ctxs[ctx];
        c.ioas_mut(ioas_id).accesses.push(key);
        c.ioas_mut(cur).accesses.retain(|&k| k != key);
        let a = self.accesses.get_mut(&key).expect("access");
        a.items.clear();
        a.ioas = ioas_id;
        Ok(Out::None)
    }
}

/// Store page indices under `[cur, l]` of an area that starts at IOVA `a`.
fn area_indexes(area: &Area, a: u64, cur: u64, l: u64) -> (u64, u64) {
    (
        (area.start_byte + (cur - a)) / PAGE,
        (area.start_byte + (l - a)) / PAGE,
    )
}

/// Holes of the sorted (possibly overlapping) `used` ranges inside `[lo, hi]`.
fn holes(used: &[(u64, u64)], lo: u64, hi: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut cur = lo;
    for &(s, l) in used {
        if l < cur {
            continue;
        }
        if s > hi {
            break;
        }
        if s > cur {
            out.push((cur, s - 1));
        }
        match l.checked_add(1) {
            Some(next) if next <= hi => cur = cur.max(next),
            _ => return out,
        }
    }
    out.push((cur, hi));
    out
}
