//! A reference model of the iommufd uAPI's observable state and an executor that
//! applies random operation sequences to the implementation (through the ioctl
//! path, several contexts at once) and to the model, comparing errno and outputs
//! after every operation, plus the pin count of every page and the pages charged
//! against `RLIMIT_MEMLOCK`.
//!
//! Used by the property state-machine test (`tests/state_machine.rs`), the
//! cargo-fuzz target (`fuzz/`), and the stress test.

#![forbid(unsafe_code)]

pub mod client;
pub mod exec;
pub mod mem;
pub mod model;
pub mod op;
mod resolve;

pub use exec::{run, run_at, Executor, Mismatch};
pub use op::{op, ops, Op};
