//! Operation sequences (decoded by `arbitrary`) run on the implementation and the
//! reference model; any mismatch, leak or panic is a finding.

#![no_main]

use libfuzzer_sys::fuzz_target;
use model::Op;

fuzz_target!(|ops: Vec<Op>| {
    let ops = &ops[..ops.len().min(64)];
    // The arena's placement (which automatic IOVAs follow) derives from the
    // input, so that every finding replays.
    let pages = (ops.len() * 41 % 512) as u16;
    if let Err(e) = model::run_at(Some(pages), ops) {
        panic!("{e}");
    }
});
