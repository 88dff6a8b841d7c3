//! `iommufd run`: ordinary C programs, compiled here, run against the preload
//! library and must see what Linux 6.12 answers. Each program checks its own
//! expectations, which were confirmed by running it (built `-static`) in the
//! oracle VM on the real kernel, and exits 0 only if all held.
//!
//! Needs a C compiler (`cc`) and the preload library next to the `iommufd`
//! binary: `cargo build` makes it (`cargo test` alone does not build a
//! cdylib), or set `IOMMUFD_PRELOAD`. `scripts/test.sh` builds first.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a program may run.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Compiles `tests/programs/NAME.c` into the test's temporary directory.
fn compile(name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/programs")
        .join(format!("{name}.c"));
    let dir = std::env::temp_dir().join(format!("iommufd-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let exe = dir.join(name);
    let out = Command::new("cc")
        .args(["-O1", "-Wall", "-Werror", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .expect("run cc");
    assert!(
        out.status.success(),
        "cc {}: {}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// Runs `exe` through `iommufd run`; returns its stdout after checking it
/// exited 0.
fn run(exe: &Path) -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_iommufd"));
    let lib = bin.with_file_name("libiommufd_preload.so");
    assert!(
        lib.exists() || std::env::var_os("IOMMUFD_PRELOAD").is_some(),
        "{} is missing: run `cargo build` first",
        lib.display()
    );
    let mut child = Command::new(bin)
        .arg("run")
        .arg("--")
        .arg(exe)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run iommufd");
    // A call the emulation passes to the backing eventfd can block forever
    // (a read of a zero counter): a hang is a failure, not a stuck test.
    let deadline = Instant::now() + TIMEOUT;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collect output");
            panic!(
                "{} hung (killed after {TIMEOUT:?}):\n{}",
                exe.display(),
                String::from_utf8_lossy(&out.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("collect output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{} failed ({}):\n{stdout}{}",
        exe.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// read/write and their vectored and positioned variants, lseek, close_range
/// and closefrom on an iommufd and a fault queue; the emulation's own
/// descriptors are neither closed by the program nor visible to `close`.
#[test]
fn descriptor_syscalls_answer_as_the_kernel() {
    let exe = compile("fd_syscalls");
    let out = run(&exe);
    assert!(out.contains("all checks passed"), "{out}");
    let _ = std::fs::remove_dir_all(exe.parent().expect("a directory"));
}
