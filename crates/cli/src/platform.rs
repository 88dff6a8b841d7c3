//! `iommufd platform`: load a platform description (or the built-in one), probe
//! it, and print what probing produced; `--toml` prints the description itself.

use std::path::Path;

use anyhow::{Context, Result};

/// Runs the subcommand; a bad description is reported on one line (with its
/// causes) and exits with status 1.
pub(crate) fn run(file: Option<&Path>, toml: bool) -> Result<()> {
    if let Err(err) = show(file, toml) {
        eprintln!("iommufd platform: {err:#}");
        std::process::exit(1);
    }
    Ok(())
}

fn show(file: Option<&Path>, toml: bool) -> Result<()> {
    let desc = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            platform::Description::parse(&text)
                .with_context(|| format!("{}: invalid platform description", path.display()))?
        }
        None => platform::Description::default_platform(),
    };
    if toml {
        print!("{}", desc.to_toml());
        return Ok(());
    }
    let built = desc.build().context("cannot build the platform")?;
    let source = file.map_or_else(|| "built-in".to_string(), |p| p.display().to_string());
    println!("platform: {source}");
    print!("{}", built.report());
    Ok(())
}
