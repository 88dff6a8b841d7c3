//! Sequences that once diverged, replayed by name (the proptest seeds are in
//! `state_machine.proptest-regressions`).

use model::op::Op::*;
use model::op::*;

fn replay(ops: &[Op]) {
    let mut ex = model::Executor::new();
    for op in ops {
        if let Err(m) = ex.step(op) {
            panic!("{m}");
        }
    }
    ex.finish().unwrap();
}

/// A COPY's area in another IOAS shared the source area's key in the page
/// store; destroying the copy's IOAS unpinned pages the source's domain still
/// mapped, and the domain's removal unpinned them again.
#[test]
fn copy_area_keys_are_unique_across_ioases() {
    let ops = vec![
        Op::IoasAlloc { ctx: 0 },
        Op::IoasAlloc { ctx: 0 },
        Op::Map {
            ctx: 0,
            ioas: ObjSel(1),
            va: VaSel(0, 0),
            len: LenSel(0, 0),
            iova: IovaSel(0, 0),
            flags: 16,
        },
        Op::Copy {
            ctx: 0,
            dst: ObjSel(12),
            src: ObjSel(61),
            range: RangeSel {
                kind: 16,
                a: 0,
                b: 0,
                c: 155,
            },
            iova: IovaSel(0, 0),
            flags: 0,
        },
        Op::MockDomain {
            ctx: 0,
            pt: ObjSel(29),
            flags: 41,
        },
        Op::IoasAlloc { ctx: 0 },
    ];
    replay(&ops);
}

/// An ACCESS_RW write across three areas, two of them backed by overlapping
/// user memory: the executor's data check assumed user memory contiguous up to
/// the page end instead of the area end (a checker bug, found with the arena 1
/// page past a 2 MiB boundary).
#[test]
#[rustfmt::skip]
fn rw_across_areas_with_aliased_user_memory() {
    let ops: Vec<Op> = vec![
    Destroy {
        ctx: 0,
        obj: ObjSel(
            93,
        ),
    },
    Map {
        ctx: 0,
        ioas: ObjSel(
            0,
        ),
        va: VaSel(
            0,
            0,
        ),
        len: LenSel(
            0,
            0,
        ),
        iova: IovaSel(
            0,
            0,
        ),
        flags: 0,
    },
    Replace {
        ctx: 0,
        stdev: ObjSel(
            0,
        ),
        pt: ObjSel(
            0,
        ),
    },
    Unmap {
        ctx: 0,
        ioas: ObjSel(
            134,
        ),
        range: RangeSel {
            kind: 10,
            a: 0,
            b: 0,
            c: 0,
        },
    },
    Unmap {
        ctx: 0,
        ioas: ObjSel(
            0,
        ),
        range: RangeSel {
            kind: 0,
            a: 0,
            b: 0,
            c: 0,
        },
    },
    Destroy {
        ctx: 0,
        obj: ObjSel(
            76,
        ),
    },
    Destroy {
        ctx: 0,
        obj: ObjSel(
            46,
        ),
    },
    Replace {
        ctx: 0,
        stdev: ObjSel(
            0,
        ),
        pt: ObjSel(
            0,
        ),
    },
    AccessPages {
        ctx: 0,
        access: 0,
        range: RangeSel {
            kind: 0,
            a: 0,
            b: 0,
            c: 0,
        },
        flags: 0,
        check: 0,
    },
    Destroy {
        ctx: 0,
        obj: ObjSel(
            76,
        ),
    },
    Unmap {
        ctx: 0,
        ioas: ObjSel(
            0,
        ),
        range: RangeSel {
            kind: 0,
            a: 0,
            b: 0,
            c: 0,
        },
    },
    Replace {
        ctx: 0,
        stdev: ObjSel(
            0,
        ),
        pt: ObjSel(
            0,
        ),
    },
    Destroy {
        ctx: 0,
        obj: ObjSel(
            16,
        ),
    },
    Map {
        ctx: 0,
        ioas: ObjSel(
            72,
        ),
        va: VaSel(
            14,
            120,
        ),
        len: LenSel(
            1,
            119,
        ),
        iova: IovaSel(
            0,
            0,
        ),
        flags: 88,
    },
    Map {
        ctx: 0,
        ioas: ObjSel(
            0,
        ),
        va: VaSel(
            0,
            0,
        ),
        len: LenSel(
            0,
            8,
        ),
        iova: IovaSel(
            224,
            0,
        ),
        flags: 139,
    },
    Map {
        ctx: 0,
        ioas: ObjSel(
            0,
        ),
        va: VaSel(
            0,
            0,
        ),
        len: LenSel(
            0,
            0,
        ),
        iova: IovaSel(
            0,
            0,
        ),
        flags: 133,
    },
    Map {
        ctx: 0,
        ioas: ObjSel(
            5,
        ),
        va: VaSel(
            0,
            0,
        ),
        len: LenSel(
            0,
            0,
        ),
        iova: IovaSel(
            0,
            0,
        ),
        flags: 0,
    },
    CreateAccess {
        ctx: 0,
        ioas: ObjSel(
            0,
        ),
        flags: 19,
    },
    Map {
        ctx: 1,
        ioas: ObjSel(
            0,
        ),
        va: VaSel(
            0,
            0,
        ),
        len: LenSel(
            0,
            0,
        ),
        iova: IovaSel(
            0,
            0,
        ),
        flags: 0,
    },
    Map {
        ctx: 0,
        ioas: ObjSel(
            73,
        ),
        va: VaSel(
            0,
            0,
        ),
        len: LenSel(
            0,
            0,
        ),
        iova: IovaSel(
            0,
            0,
        ),
        flags: 0,
    },
    Copy {
        ctx: 0,
        dst: ObjSel(
            0,
        ),
        src: ObjSel(
            200,
        ),
        range: RangeSel {
            kind: 3,
            a: 116,
            b: 112,
            c: 36,
        },
        iova: IovaSel(
            3,
            174,
        ),
        flags: 107,
    },
    Unmap {
        ctx: 0,
        ioas: ObjSel(
            69,
        ),
        range: RangeSel {
            kind: 122,
            a: 226,
            b: 220,
            c: 226,
        },
    },
    AccessPages {
        ctx: 0,
        access: 167,
        range: RangeSel {
            kind: 165,
            a: 64,
            b: 1,
            c: 64,
        },
        flags: 13,
        check: 5,
    },
    CreateAccess {
        ctx: 0,
        ioas: ObjSel(
            219,
        ),
        flags: 28,
    },
    AccessPages {
        ctx: 0,
        access: 145,
        range: RangeSel {
            kind: 93,
            a: 109,
            b: 143,
            c: 135,
        },
        flags: 226,
        check: 105,
    },
    Unmap {
        ctx: 0,
        ioas: ObjSel(
            99,
        ),
        range: RangeSel {
            kind: 194,
            a: 81,
            b: 185,
            c: 233,
        },
    },
    CloseCtx {
        ctx: 2,
    },
    Destroy {
        ctx: 0,
        obj: ObjSel(
            6,
        ),
    },
    AccessPages {
        ctx: 0,
        access: 7,
        range: RangeSel {
            kind: 208,
            a: 3,
            b: 39,
            c: 58,
        },
        flags: 182,
        check: 107,
    },
    AccessPages {
        ctx: 0,
        access: 175,
        range: RangeSel {
            kind: 164,
            a: 201,
            b: 140,
            c: 198,
        },
        flags: 147,
        check: 160,
    },
    Map {
        ctx: 0,
        ioas: ObjSel(
            11,
        ),
        va: VaSel(
            193,
            183,
        ),
        len: LenSel(
            235,
            57,
        ),
        iova: IovaSel(
            5,
            151,
        ),
        flags: 86,
    },
    AccessPages {
        ctx: 0,
        access: 141,
        range: RangeSel {
            kind: 112,
            a: 3,
            b: 183,
            c: 130,
        },
        flags: 3,
        check: 173,
    },
    AddReserved {
        ctx: 0,
        ioas: ObjSel(
            221,
        ),
        start: IovaSel(
            203,
            205,
        ),
        len: LenSel(
            234,
            155,
        ),
    },
    Copy {
        ctx: 0,
        dst: ObjSel(
            161,
        ),
        src: ObjSel(
            101,
        ),
        range: RangeSel {
            kind: 101,
            a: 124,
            b: 18,
            c: 16,
        },
        iova: IovaSel(
            180,
            228,
        ),
        flags: 141,
    },
    IoasAlloc {
        ctx: 1,
    },
    AccessRw {
        ctx: 0,
        access: 217,
        range: RangeSel {
            kind: 140,
            a: 45,
            b: 122,
            c: 195,
        },
        flags: 120,
        seed: 154,
    },
    IoasAlloc {
        ctx: 2,
    },
    Unmap {
        ctx: 0,
        ioas: ObjSel(
            31,
        ),
        range: RangeSel {
            kind: 46,
            a: 125,
            b: 51,
            c: 21,
        },
    },
    AccessReplace {
        access: 233,
        ioas: ObjSel(
            39,
        ),
    },
    Map {
        ctx: 0,
        ioas: ObjSel(
            16,
        ),
        va: VaSel(
            75,
            157,
        ),
        len: LenSel(
            163,
            13,
        ),
        iova: IovaSel(
            55,
            32,
        ),
        flags: 143,
    },
    CheckRefs {
        ctx: 0,
        page: 251,
        npages: 114,
        delta: 20,
    },
    MockDomain {
        ctx: 0,
        pt: ObjSel(
            151,
        ),
        flags: 251,
    },
    Map {
        ctx: 1,
        ioas: ObjSel(
            51,
        ),
        va: VaSel(
            174,
            241,
        ),
        len: LenSel(
            169,
            125,
        ),
        iova: IovaSel(
            89,
            154,
        ),
        flags: 142,
    },
    AccessReplace {
        access: 19,
        ioas: ObjSel(
            22,
        ),
    },
    Map {
        ctx: 1,
        ioas: ObjSel(
            210,
        ),
        va: VaSel(
            8,
            240,
        ),
        len: LenSel(
            44,
            50,
        ),
        iova: IovaSel(
            11,
            121,
        ),
        flags: 200,
    },
    IovaRanges {
        ctx: 0,
        ioas: ObjSel(
            213,
        ),
        cap: 176,
    },
    HwptAlloc {
        ctx: 0,
        dev: ObjSel(
            60,
        ),
        pt: ObjSel(
            7,
        ),
        flags: 125,
    },
    AccessPages {
        ctx: 0,
        access: 226,
        range: RangeSel {
            kind: 19,
            a: 142,
            b: 107,
            c: 200,
        },
        flags: 63,
        check: 8,
    },
    Unmap {
        ctx: 0,
        ioas: ObjSel(
            206,
        ),
        range: RangeSel {
            kind: 74,
            a: 82,
            b: 2,
            c: 205,
        },
    },
    DestroyAccessPages {
        ctx: 0,
        access: 108,
        item: 131,
    },
    Unmap {
        ctx: 0,
        ioas: ObjSel(
            39,
        ),
        range: RangeSel {
            kind: 222,
            a: 236,
            b: 248,
            c: 171,
        },
    },
    AccessRw {
        ctx: 0,
        access: 247,
        range: RangeSel {
            kind: 28,
            a: 72,
            b: 20,
            c: 137,
        },
        flags: 225,
        seed: 13,
    },
    Map {
        ctx: 0,
        ioas: ObjSel(
            143,
        ),
        va: VaSel(
            46,
            5,
        ),
        len: LenSel(
            24,
            229,
        ),
        iova: IovaSel(
            6,
            158,
        ),
        flags: 123,
    },
    AccessRw {
        ctx: 2,
        access: 128,
        range: RangeSel {
            kind: 121,
            a: 17,
            b: 247,
            c: 211,
        },
        flags: 45,
        seed: 43,
    },
    HwptAlloc {
        ctx: 0,
        dev: ObjSel(
            150,
        ),
        pt: ObjSel(
            13,
        ),
        flags: 137,
    },
    CloseAccess {
        access: 192,
    },
    Copy {
        ctx: 0,
        dst: ObjSel(
            184,
        ),
        src: ObjSel(
            2,
        ),
        range: RangeSel {
            kind: 160,
            a: 241,
            b: 203,
            c: 174,
        },
        iova: IovaSel(
            216,
            253,
        ),
        flags: 178,
    },
    Map {
        ctx: 0,
        ioas: ObjSel(
            101,
        ),
        va: VaSel(
            112,
            182,
        ),
        len: LenSel(
            74,
            1,
        ),
        iova: IovaSel(
            39,
            133,
        ),
        flags: 255,
    },
    AccessPages {
        ctx: 0,
        access: 160,
        range: RangeSel {
            kind: 213,
            a: 53,
            b: 109,
            c: 187,
        },
        flags: 53,
        check: 183,
    },
    CreateAccess {
        ctx: 0,
        ioas: ObjSel(
            198,
        ),
        flags: 234,
    },
    AccessPages {
        ctx: 0,
        access: 6,
        range: RangeSel {
            kind: 29,
            a: 99,
            b: 119,
            c: 14,
        },
        flags: 53,
        check: 211,
    },
    AddReserved {
        ctx: 0,
        ioas: ObjSel(
            13,
        ),
        start: IovaSel(
            68,
            55,
        ),
        len: LenSel(
            68,
            59,
        ),
    },
    Unmap {
        ctx: 2,
        ioas: ObjSel(
            196,
        ),
        range: RangeSel {
            kind: 238,
            a: 16,
            b: 119,
            c: 208,
        },
    },
    CheckMap {
        ctx: 0,
        hwpt: ObjSel(
            212,
        ),
        range: RangeSel {
            kind: 11,
            a: 30,
            b: 104,
            c: 94,
        },
        skew: 246,
    },
];
    if let Err(e) = model::run_at(Some(1), &ops) {
        panic!("{e}");
    }
}
