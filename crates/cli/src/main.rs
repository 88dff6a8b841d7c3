//! `iommufd`: the command line of the userspace iommufd.
//!
//! `iommufd run -- PROGRAM [ARGS]` runs an unmodified program with
//! `libiommufd_preload.so` preloaded, so its `/dev/iommu` is this implementation.
//! `iommufd platform [--file FILE] [--toml]` probes a platform description.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

mod platform;

/// The preload library's file name, installed next to this binary.
const PRELOAD_LIB: &str = "libiommufd_preload.so";

#[derive(Parser)]
#[command(name = "iommufd", version, about = "Linux's iommufd, in userspace")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run PROGRAM with /dev/iommu served by this implementation (LD_PRELOAD).
    Run {
        /// Treat the program as having (+name) or lacking (-name) a capability:
        /// ipc_lock, sys_resource, sys_rawio. Repeatable.
        #[arg(long = "cap", value_name = "+NAME|-NAME", allow_hyphen_values = true)]
        caps: Vec<String>,
        /// The program and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        program: Vec<OsString>,
    },
    /// Print the path of the preload library.
    Lib,
    /// Run the benchmark suite (B1-B10, see PERFORMANCE.md) and print one table.
    Bench {
        /// Smaller sizes and fewer repetitions (under a minute).
        #[arg(long)]
        quick: bool,
        /// Also write the table as JSON to FILE.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Only benchmarks whose name contains NAME (e.g. b5, translate).
        #[arg(long, value_name = "NAME")]
        filter: Option<String>,
    },
    /// Probe a platform description (default: the built-in one) and print its
    /// IOMMU instances, devices, groups, default domains and reserved regions.
    Platform {
        /// A platform description in TOML.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Print the description as TOML instead (defaults filled in).
        #[arg(long)]
        toml: bool,
    },
}

/// Finds the preload library next to the running binary (or `IOMMUFD_PRELOAD`).
fn preload_lib() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("IOMMUFD_PRELOAD") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().context("cannot find the iommufd binary")?;
    let dir = exe
        .parent()
        .context("the iommufd binary has no directory")?;
    let lib = dir.join(PRELOAD_LIB);
    if !lib.is_file() {
        bail!("{} not found next to {}", PRELOAD_LIB, exe.display());
    }
    Ok(lib)
}

fn run(program: &[OsString], caps: &[String]) -> Result<()> {
    let lib = preload_lib()?;
    let mut preload = OsString::from(lib);
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|v| !v.is_empty()) {
        preload.push(":");
        preload.push(old);
    }
    let mut cmd = Command::new(&program[0]);
    cmd.args(&program[1..]).env("LD_PRELOAD", preload);
    if !caps.is_empty() {
        cmd.env("IOMMUFD_CAPS", caps.join(","));
    }
    let err = cmd.exec();
    Err(err).with_context(|| format!("cannot run {}", program[0].to_string_lossy()))
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Run { program, caps } => run(&program, &caps),
        Cmd::Bench {
            quick,
            json,
            filter,
        } => bench::main(quick, json.as_deref(), filter).context("bench"),
        Cmd::Lib => {
            println!("{}", preload_lib()?.display());
            Ok(())
        }
        Cmd::Platform { file, toml } => platform::run(file.as_deref(), toml),
    }
}
