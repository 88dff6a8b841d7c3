//! Abstract operations. Fields are small selectors that the executor resolves
//! against the model's current state (an existing object, an existing area, a
//! foreign or bogus ID, an edge-case IOVA), so random sequences stay meaningful
//! and shrink well. The same type feeds proptest and the fuzzer.

use arbitrary::Arbitrary;
use proptest::prelude::*;

/// Number of contexts (open iommufds) the executor keeps.
pub const NCTX: u8 = 3;

/// Selects an object ID: mostly an object of the type the parameter wants, else
/// any object of the context, an ID of another context, or a raw ID.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjSel(pub u8);

/// Selects a user address in the arena (page, sub-page offset) or an edge value.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub struct VaSel(pub u8, pub u8);

/// Selects a length: mostly whole pages or mock IO pages, else odd or edge values.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub struct LenSel(pub u8, pub u8);

/// Selects an IOVA: mostly inside the mock aperture's first MiB, else an edge value.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub struct IovaSel(pub u8, pub u8);

/// Selects an IOVA range: an existing area, a run of areas, a piece of an area,
/// or raw IOVA and length.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeSel {
    /// Which kind of range (mod 5).
    pub kind: u8,
    /// First selector (area index, IOVA).
    pub a: u8,
    /// Second selector (area index, offset, length).
    pub b: u8,
    /// Third selector (length).
    pub c: u8,
}

/// One operation of a sequence.
#[allow(missing_docs)]
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `IOMMU_IOAS_ALLOC`.
    IoasAlloc { ctx: u8 },
    /// `IOMMU_DESTROY`.
    Destroy { ctx: u8, obj: ObjSel },
    /// `IOMMU_IOAS_MAP`; `flags` bits 0-2 are the map flags, others rarely garbage.
    Map {
        ctx: u8,
        ioas: ObjSel,
        va: VaSel,
        len: LenSel,
        iova: IovaSel,
        flags: u8,
    },
    /// `IOMMU_IOAS_UNMAP`.
    Unmap {
        ctx: u8,
        ioas: ObjSel,
        range: RangeSel,
    },
    /// `IOMMU_IOAS_COPY`.
    Copy {
        ctx: u8,
        dst: ObjSel,
        src: ObjSel,
        range: RangeSel,
        iova: IovaSel,
        flags: u8,
    },
    /// `IOMMU_IOAS_ALLOW_IOVAS` with up to three ranges.
    AllowIovas {
        ctx: u8,
        ioas: ObjSel,
        n: u8,
        ranges: [(u8, u8); 3],
    },
    /// `IOMMU_TEST_OP_ADD_RESERVED`.
    AddReserved {
        ctx: u8,
        ioas: ObjSel,
        start: IovaSel,
        len: LenSel,
    },
    /// `IOMMU_IOAS_IOVA_RANGES`.
    IovaRanges { ctx: u8, ioas: ObjSel, cap: u8 },
    /// `IOMMU_OPTION` `HUGE_PAGES`.
    HugePages {
        ctx: u8,
        ioas: ObjSel,
        op: u8,
        val: u8,
    },
    /// `IOMMU_OPTION` `RLIMIT_MODE`.
    RlimitMode { ctx: u8, op: u8, val: u8 },
    /// `IOMMU_TEST_OP_MOCK_DOMAIN(_FLAGS)` on an IOAS or HWPT.
    MockDomain { ctx: u8, pt: ObjSel, flags: u8 },
    /// `IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE`.
    Replace { ctx: u8, stdev: ObjSel, pt: ObjSel },
    /// `IOMMU_HWPT_ALLOC` of a paging HWPT.
    HwptAlloc {
        ctx: u8,
        dev: ObjSel,
        pt: ObjSel,
        flags: u8,
    },
    /// `IOMMU_TEST_OP_MD_CHECK_MAP`.
    CheckMap {
        ctx: u8,
        hwpt: ObjSel,
        range: RangeSel,
        skew: u8,
    },
    /// `IOMMU_TEST_OP_MD_CHECK_REFS`.
    CheckRefs {
        ctx: u8,
        page: u8,
        npages: u8,
        delta: u8,
    },
    /// `IOMMU_TEST_OP_CREATE_ACCESS`.
    CreateAccess { ctx: u8, ioas: ObjSel, flags: u8 },
    /// `IOMMU_TEST_OP_ACCESS_PAGES`.
    AccessPages {
        ctx: u8,
        access: u8,
        range: RangeSel,
        flags: u8,
        check: u8,
    },
    /// `IOMMU_TEST_OP_ACCESS_RW`.
    AccessRw {
        ctx: u8,
        access: u8,
        range: RangeSel,
        flags: u8,
        seed: u8,
    },
    /// `IOMMU_TEST_OP_DESTROY_ACCESS_PAGES`.
    DestroyAccessPages { ctx: u8, access: u8, item: u8 },
    /// `IOMMU_TEST_OP_ACCESS_REPLACE_IOAS`.
    AccessReplace { access: u8, ioas: ObjSel },
    /// `close()` of a selftest access fd.
    CloseAccess { access: u8 },
    /// `close()` of an iommufd (and its access fds), then a fresh open.
    CloseCtx { ctx: u8 },
}

fn obj() -> impl Strategy<Value = ObjSel> {
    prop_oneof![
        12 => (0u8..200).prop_map(ObjSel),
        1 => (200u8..=255).prop_map(ObjSel),
    ]
}

fn va() -> impl Strategy<Value = VaSel> {
    (any::<u8>(), any::<u8>()).prop_map(|(a, b)| VaSel(a, b))
}

fn len() -> impl Strategy<Value = LenSel> {
    (any::<u8>(), any::<u8>()).prop_map(|(a, b)| LenSel(a, b))
}

fn iova() -> impl Strategy<Value = IovaSel> {
    (any::<u8>(), any::<u8>()).prop_map(|(a, b)| IovaSel(a, b))
}

fn range() -> impl Strategy<Value = RangeSel> {
    (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(kind, a, b, c)| RangeSel {
        kind,
        a,
        b,
        c,
    })
}

fn ctx() -> impl Strategy<Value = u8> {
    prop_oneof![4 => Just(0u8), 1 => 0..NCTX]
}

/// A proptest strategy for one op, weighted towards the ops that build state.
pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => ctx().prop_map(|ctx| Op::IoasAlloc { ctx }),
        4 => (ctx(), obj()).prop_map(|(ctx, obj)| Op::Destroy { ctx, obj }),
        14 => (ctx(), obj(), va(), len(), iova(), any::<u8>()).prop_map(
            |(ctx, ioas, va, len, iova, flags)| Op::Map { ctx, ioas, va, len, iova, flags }),
        7 => (ctx(), obj(), range()).prop_map(|(ctx, ioas, range)| Op::Unmap { ctx, ioas, range }),
        5 => (ctx(), obj(), obj(), range(), iova(), any::<u8>()).prop_map(
            |(ctx, dst, src, range, iova, flags)| Op::Copy { ctx, dst, src, range, iova, flags }),
        2 => (ctx(), obj(), any::<u8>(), any::<[(u8, u8); 3]>()).prop_map(
            |(ctx, ioas, n, ranges)| Op::AllowIovas { ctx, ioas, n, ranges }),
        2 => (ctx(), obj(), iova(), len()).prop_map(
            |(ctx, ioas, start, len)| Op::AddReserved { ctx, ioas, start, len }),
        2 => (ctx(), obj(), any::<u8>()).prop_map(|(ctx, ioas, cap)| Op::IovaRanges { ctx, ioas, cap }),
        2 => (ctx(), obj(), any::<u8>(), any::<u8>()).prop_map(
            |(ctx, ioas, op, val)| Op::HugePages { ctx, ioas, op, val }),
        1 => (ctx(), any::<u8>(), any::<u8>()).prop_map(|(ctx, op, val)| Op::RlimitMode { ctx, op, val }),
        6 => (ctx(), obj(), any::<u8>()).prop_map(|(ctx, pt, flags)| Op::MockDomain { ctx, pt, flags }),
        2 => (ctx(), obj(), obj()).prop_map(|(ctx, stdev, pt)| Op::Replace { ctx, stdev, pt }),
        2 => (ctx(), obj(), obj(), any::<u8>()).prop_map(
            |(ctx, dev, pt, flags)| Op::HwptAlloc { ctx, dev, pt, flags }),
        3 => (ctx(), obj(), range(), any::<u8>()).prop_map(
            |(ctx, hwpt, range, skew)| Op::CheckMap { ctx, hwpt, range, skew }),
        2 => (ctx(), any::<u8>(), any::<u8>(), any::<u8>()).prop_map(
            |(ctx, page, npages, delta)| Op::CheckRefs { ctx, page, npages, delta }),
        4 => (ctx(), obj(), any::<u8>()).prop_map(|(ctx, ioas, flags)| Op::CreateAccess { ctx, ioas, flags }),
        9 => (ctx(), any::<u8>(), range(), any::<u8>(), any::<u8>()).prop_map(
            |(ctx, access, range, flags, check)| Op::AccessPages { ctx, access, range, flags, check }),
        5 => (ctx(), any::<u8>(), range(), any::<u8>(), any::<u8>()).prop_map(
            |(ctx, access, range, flags, seed)| Op::AccessRw { ctx, access, range, flags, seed }),
        2 => (ctx(), any::<u8>(), any::<u8>()).prop_map(
            |(ctx, access, item)| Op::DestroyAccessPages { ctx, access, item }),
        2 => (any::<u8>(), obj()).prop_map(|(access, ioas)| Op::AccessReplace { access, ioas }),
        1 => any::<u8>().prop_map(|access| Op::CloseAccess { access }),
        1 => (0..NCTX).prop_map(|ctx| Op::CloseCtx { ctx }),
    ]
}

/// A proptest strategy for a sequence of `min..=max` ops.
pub fn ops(min: usize, max: usize) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), min.clamp(1, max)..=max)
}
