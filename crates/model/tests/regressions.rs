//! Sequences that once diverged, replayed by name (the proptest seeds are in
//! `state_machine.proptest-regressions`).

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
