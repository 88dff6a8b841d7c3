//! `iommufd platform`: the binary prints the built-in or a loaded description
//! and what probing produced, and refuses bad files with a message.

use std::path::PathBuf;
use std::process::{Command, Output};

fn iommufd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iommufd"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run iommufd")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A file in the temporary directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str, text: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "iommufd-platform-{}-{tag}.toml",
            std::process::id()
        ));
        std::fs::write(&path, text).expect("write the description");
        TempFile(path)
    }

    fn arg(&self) -> &str {
        self.0.to_str().expect("a UTF-8 path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn default_platform_report_shows_instances_groups_and_reserved_regions() {
    let out = iommufd(&["platform"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for needle in [
        "platform: built-in",
        "dmar0 (vtd): 48-bit",
        "smmu0 (smmuv3): stage 1+2",
        "group 0: gpu0, gpu1",
        "sata, sata-ide",
        "default domain: DMA (paging, 48-bit second stage, pages 4K 2M 1G)",
        "0x00000e0000..=0x00000fffff direct",
        "0x0008000000..=0x00080fffff sw-msi",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
}

#[test]
fn toml_output_is_the_description_and_parses_back() {
    let out = iommufd(&["platform", "--toml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let parsed = platform::Description::parse(&text).expect("the output parses");
    assert_eq!(parsed, platform::Description::default_platform());
    // Loading the printed description gives the same report as the built-in one.
    let file = TempFile::new("roundtrip", &text);
    let loaded = iommufd(&["platform", "--file", file.arg()]);
    let builtin = iommufd(&["platform"]);
    assert!(loaded.status.success(), "{}", stderr(&loaded));
    let strip = |s: String| s.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(strip(stdout(&loaded)), strip(stdout(&builtin)));
}

#[test]
fn loaded_file_is_probed() {
    let file = TempFile::new(
        "small",
        r#"
        [[iommu]]
        name = "arm-smmu"
        driver = "smmuv3"
        [iommu.properties]
        stages = [2]
        granules = ["64K"]
        [[platform_device]]
        name = "eth0"
        iommu = "arm-smmu"
        stream_ids = [0x42]
        "#,
    );
    let out = iommufd(&["platform", "--file", file.arg()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("arm-smmu (smmuv3): stage 2, pages 64K 512M"),
        "{text}"
    );
    assert!(
        text.contains("eth0: platform, stream IDs 0x42; iommu arm-smmu, group 0"),
        "{text}"
    );
    assert!(text.contains("DMA (paging, stage 2, 64K granule"), "{text}");
}

#[test]
fn bad_files_exit_nonzero_with_a_message() {
    let file = TempFile::new("bad", "[[iommu]]\nname = \"x\"\ndriver = \"amd\"\n");
    let out = iommufd(&["platform", "--file", file.arg()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty());
    let err = stderr(&out);
    assert!(
        err.contains("invalid platform description: iommu \"x\": unknown driver \"amd\""),
        "{err}"
    );
    assert!(!err.contains("backtrace"), "{err}");

    let syntax = TempFile::new("syntax", "[[iommu]\n");
    let out = iommufd(&["platform", "--file", syntax.arg(), "--toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("line 1"), "{}", stderr(&out));

    let out = iommufd(&["platform", "--file", "/nonexistent/platform.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot read /nonexistent/platform.toml"));

    let probe = TempFile::new(
        "probe",
        "[[iommu]]\nname = \"s\"\ndriver = \"smmuv3\"\n[iommu.properties]\nsid_bits = 2\n\
         [[platform_device]]\nname = \"d\"\niommu = \"s\"\nstream_ids = [9]\n",
    );
    let out = iommufd(&["platform", "--file", probe.arg()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("\"d\": probe by \"s\" failed: ERANGE"),
        "{}",
        stderr(&out)
    );
}
