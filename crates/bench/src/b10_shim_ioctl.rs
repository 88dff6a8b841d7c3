//! B10 `shim_ioctl`: a C program (`c/shim_ioctl.c`) issuing small ioctls on
//! `/dev/iommu` (`IOMMU_IOAS_IOVA_RANGES`, and `IOMMU_DESTROY` of an ID that
//! does not exist) through the preload library, run with `iommufd run`.
//!
//! Floor in the same run: the same program's `getppid()` loop, timed right
//! before and right after each measured loop inside the program. Target: an
//! emulated ioctl costs no more than one real syscall (there is no kernel
//! crossing). The program is compiled with the system C compiler at run time;
//! without one, or without the preload library next to the `iommufd` binary,
//! B10 reports why and adds no row.

use std::path::PathBuf;
use std::process::Command;

use crate::harness::{median, Config, Report, Target};

const NAME: &str = "B10 shim_ioctl";
const SOURCE: &str = include_str!("../c/shim_ioctl.c");

fn compile() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("iommufd-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let src = dir.join("shim_ioctl.c");
    let bin = dir.join("shim_ioctl");
    std::fs::write(&src, SOURCE).map_err(|e| format!("{}: {e}", src.display()))?;
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .map_err(|e| format!("{cc}: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(bin)
}

/// The whole of B10.
pub fn run(cfg: &Config, rep: &mut Report) {
    let bin = match compile() {
        Ok(bin) => bin,
        Err(e) => {
            eprintln!("   B10 skipped: cannot compile the C program: {e}");
            return;
        }
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("   B10 skipped: {e}");
            return;
        }
    };
    let count: u64 = cfg.pick(1_000_000, 200_000);
    let out = Command::new(&exe)
        .arg("run")
        .arg("--")
        .arg(&bin)
        .arg(count.to_string())
        .arg(cfg.reps().to_string())
        .output();
    if let Some(dir) = bin.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
    let out = match out {
        Ok(out) if out.status.success() => out,
        Ok(out) => {
            eprintln!(
                "   B10 failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
        Err(e) => {
            eprintln!("   B10 skipped: {}: {e}", exe.display());
            return;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    for case in ["iova_ranges", "destroy_bad_id"] {
        let (mut ours, mut floor): (Vec<f64>, Vec<f64>) = text
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                (f.next()? == case).then_some(())?;
                Some((
                    f.next()?.parse::<f64>().ok()?,
                    f.next()?.parse::<f64>().ok()?,
                ))
            })
            .unzip();
        if ours.is_empty() {
            eprintln!("   B10: no result for {case}");
            continue;
        }
        let label = match case {
            "iova_ranges" => "IOAS_IOVA_RANGES via preload",
            _ => "DESTROY of a bad id via preload",
        };
        rep.add(
            NAME,
            label,
            median(&mut ours),
            median(&mut floor),
            "ns",
            Target::RatioAtMost(1.0),
            "floor=getppid() loop in the same program",
        );
    }
}
