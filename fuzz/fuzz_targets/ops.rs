//! Operation sequences (decoded by `arbitrary`) run on the implementation and the
//! reference model; any mismatch, leak or panic is a finding.

#![no_main]

use libfuzzer_sys::fuzz_target;
use model::Op;

fuzz_target!(|ops: Vec<Op>| {
    let ops = &ops[..ops.len().min(64)];
    if let Err(e) = model::run(ops) {
        panic!("{e}");
    }
});
