//! Checks every entry of the ABI dumps in `abi/` against the Rust definitions.
//!
//! `uapi-6.12-layout.txt` and `uapi-6.12-extra-layout.txt` list struct sizes, alignments,
//! field offsets and sizes, ioctl numbers and constant values; `uapi-6.12-pahole.txt` also
//! lists the members of the `iommu_test_cmd` union. Every entry must be covered by a table
//! below (or listed in [`UNMAPPED`] with a reason), and every Rust field must appear in the
//! dumps, so that nothing is skipped silently in either direction.

use std::collections::{BTreeMap, BTreeSet};
use std::mem::{align_of, offset_of, size_of};

/// Dump entries deliberately without a Rust counterpart, with the reason.
const UNMAPPED: &[(&str, &str)] = &[
    (
        "vfio_iommu_type1_info_cap_iova_range.iova_ranges",
        "flexible array member; the ranges start at size_of::<VfioIommuType1InfoCapIovaRange>()",
    ),
    (
        "vfio_iommu_type1_dma_unmap.data",
        "flexible array member, only used by the unsupported dirty-bitmap flag",
    ),
];

/// Rust fields that do not exist in C: explicit padding (see the crate docs).
const SYNTHETIC_FIELDS: &[&str] = &["__pad"];

/// Rust fields that stand for an anonymous C member: (struct, Rust field).
const ANONYMOUS_ALIASES: &[(&str, &str)] = &[("iommu_test_cmd", "payload")];

const LAYOUT: &str = include_str!("../abi/uapi-6.12-layout.txt");
const EXTRA: &str = include_str!("../abi/uapi-6.12-extra-layout.txt");
const PAHOLE: &str = include_str!("../abi/uapi-6.12-pahole.txt");

#[derive(Debug)]
struct Field {
    offset: usize,
    size: usize,
}

#[derive(Debug)]
struct StructInfo {
    size: usize,
    align: usize,
    fields: BTreeMap<&'static str, Field>,
}

fn field_size<T, F>(_project: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

/// Builds the C name → Rust layout table; the field names are the Rust (= C) names.
macro_rules! structs {
    ($($cname:literal => $ty:ident { $($field:ident),* $(,)? })*) => {{
        let mut table = BTreeMap::new();
        $(
            let fields = BTreeMap::from([$((
                stringify!($field),
                Field {
                    offset: offset_of!(uapi::$ty, $field),
                    size: field_size(|s: &uapi::$ty| &s.$field),
                },
            )),*]);
            let info = StructInfo {
                size: size_of::<uapi::$ty>(),
                align: align_of::<uapi::$ty>(),
                fields,
            };
            assert!(table.insert($cname, info).is_none(), "duplicate {}", $cname);
        )*
        table
    }};
}

/// Builds the C name → value table of ioctl numbers and constants.
macro_rules! consts {
    ($($path:ident)::+ : [$($name:ident),* $(,)?]) => {{
        use $($path)::+ as module;
        [$((stringify!($name), module::$name as u64)),*]
    }};
}

fn struct_table() -> BTreeMap<&'static str, StructInfo> {
    structs! {
        "iommu_destroy" => Destroy { size, id }
        "iommu_ioas_alloc" => IoasAlloc { size, flags, out_ioas_id }
        "iommu_iova_range" => IovaRange { start, last }
        "iommu_ioas_iova_ranges" => IoasIovaRanges {
            size, ioas_id, num_iovas, __reserved, allowed_iovas, out_iova_alignment
        }
        "iommu_ioas_allow_iovas" => IoasAllowIovas {
            size, ioas_id, num_iovas, __reserved, allowed_iovas
        }
        "iommu_ioas_map" => IoasMap {
            size, flags, ioas_id, __reserved, user_va, length, iova
        }
        "iommu_ioas_copy" => IoasCopy {
            size, flags, dst_ioas_id, src_ioas_id, length, dst_iova, src_iova
        }
        "iommu_ioas_unmap" => IoasUnmap { size, ioas_id, iova, length }
        "iommu_option" => IommuOption { size, option_id, op, __reserved, object_id, val64 }
        "iommu_vfio_ioas" => VfioIoas { size, ioas_id, op, __reserved }
        "iommu_hwpt_vtd_s1" => HwptVtdS1 { flags, pgtbl_addr, addr_width, __reserved }
        "iommu_hwpt_alloc" => HwptAlloc {
            size, flags, dev_id, pt_id, out_hwpt_id, __reserved, data_type, data_len,
            data_uptr, fault_id, __reserved2
        }
        "iommu_hw_info_vtd" => HwInfoVtd { flags, __reserved, cap_reg, ecap_reg }
        "iommu_hw_info" => HwInfo {
            size, flags, dev_id, data_len, data_uptr, out_data_type, out_max_pasid_log2,
            __reserved, out_capabilities
        }
        "iommu_hwpt_set_dirty_tracking" => HwptSetDirtyTracking {
            size, flags, hwpt_id, __reserved
        }
        "iommu_hwpt_get_dirty_bitmap" => HwptGetDirtyBitmap {
            size, hwpt_id, flags, __reserved, iova, length, page_size, data
        }
        "iommu_hwpt_vtd_s1_invalidate" => HwptVtdS1Invalidate { addr, npages, flags, __reserved }
        "iommu_hwpt_invalidate" => HwptInvalidate {
            size, hwpt_id, data_uptr, data_type, entry_len, entry_num, __reserved
        }
        "iommu_hwpt_pgfault" => HwptPgfault {
            flags, dev_id, pasid, grpid, perm, __reserved, addr, length, cookie
        }
        "iommu_hwpt_page_response" => HwptPageResponse { cookie, code }
        "iommu_fault_alloc" => FaultAlloc { size, flags, out_fault_id, out_fault_fd }
        "iommu_test_cmd" => TestCmd { size, op, id, __reserved, payload, last, __pad }
        "iommu_test_hw_info" => TestHwInfo { flags, test_reg }
        "iommu_hwpt_selftest" => HwptSelftest { iotlb }
        "iommu_hwpt_invalidate_selftest" => HwptInvalidateSelftest { flags, iotlb_id }
        // Members of the iommu_test_cmd union, offsets relative to the union.
        "iommu_test_cmd.add_reserved" => TestAddReserved { start, length }
        "iommu_test_cmd.mock_domain" => TestMockDomain { out_stdev_id, out_hwpt_id, out_idev_id }
        "iommu_test_cmd.mock_domain_flags" => TestMockDomainFlags {
            out_stdev_id, out_hwpt_id, out_idev_id, dev_flags
        }
        "iommu_test_cmd.mock_domain_replace" => TestMockDomainReplace { pt_id }
        "iommu_test_cmd.check_map" => TestCheckMap { iova, length, uptr }
        "iommu_test_cmd.check_refs" => TestCheckRefs { length, uptr, refs, __pad }
        "iommu_test_cmd.create_access" => TestCreateAccess { out_access_fd, flags }
        "iommu_test_cmd.destroy_access_pages" => TestDestroyAccessPages { access_pages_id }
        "iommu_test_cmd.access_pages" => TestAccessPages {
            flags, out_access_pages_id, iova, length, uptr
        }
        "iommu_test_cmd.access_rw" => TestAccessRw { iova, length, uptr, flags, __pad }
        "iommu_test_cmd.memory_limit" => TestMemoryLimit { limit }
        "iommu_test_cmd.access_replace_ioas" => TestAccessReplaceIoas { ioas_id }
        "iommu_test_cmd.dirty" => TestDirty {
            flags, __pad, iova, length, page_size, uptr, out_nr_dirty
        }
        "iommu_test_cmd.check_iotlb" => TestCheckIotlb { id, iotlb }
        "iommu_test_cmd.trigger_iopf" => TestTriggerIopf { dev_id, pasid, grpid, perm, addr }
        // VFIO type1 container subset.
        "vfio_info_cap_header" => VfioInfoCapHeader { id, version, next }
        "vfio_iommu_type1_info" => VfioIommuType1Info {
            argsz, flags, iova_pgsizes, cap_offset, pad
        }
        "vfio_iova_range" => VfioIovaRange { start, end }
        "vfio_iommu_type1_info_cap_iova_range" => VfioIommuType1InfoCapIovaRange {
            header, nr_iovas, reserved
        }
        "vfio_iommu_type1_info_dma_avail" => VfioIommuType1InfoDmaAvail { header, avail }
        "vfio_iommu_type1_dma_map" => VfioIommuType1DmaMap { argsz, flags, vaddr, iova, size }
        "vfio_iommu_type1_dma_unmap" => VfioIommuType1DmaUnmap { argsz, flags, iova, size }
    }
}

fn const_table() -> BTreeMap<&'static str, u64> {
    let ioctls = consts!(uapi::ioctl: [
        IOMMU_DESTROY, IOMMU_IOAS_ALLOC, IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_ALLOW_IOVAS,
        IOMMU_IOAS_MAP, IOMMU_IOAS_COPY, IOMMU_IOAS_UNMAP, IOMMU_OPTION, IOMMU_VFIO_IOAS,
        IOMMU_HWPT_ALLOC, IOMMU_GET_HW_INFO, IOMMU_HWPT_SET_DIRTY_TRACKING,
        IOMMU_HWPT_GET_DIRTY_BITMAP, IOMMU_HWPT_INVALIDATE, IOMMU_FAULT_QUEUE_ALLOC,
        IOMMU_TEST_CMD, IOMMUFD_CMD_BASE, IOMMUFD_CMD_DESTROY, IOMMUFD_CMD_IOAS_ALLOC,
        IOMMUFD_CMD_IOAS_ALLOW_IOVAS, IOMMUFD_CMD_IOAS_COPY, IOMMUFD_CMD_IOAS_IOVA_RANGES,
        IOMMUFD_CMD_IOAS_MAP, IOMMUFD_CMD_IOAS_UNMAP, IOMMUFD_CMD_OPTION,
        IOMMUFD_CMD_VFIO_IOAS, IOMMUFD_CMD_HWPT_ALLOC, IOMMUFD_CMD_GET_HW_INFO,
        IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING, IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP,
        IOMMUFD_CMD_HWPT_INVALIDATE, IOMMUFD_CMD_FAULT_QUEUE_ALLOC,
        VFIO_GET_API_VERSION, VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU, VFIO_IOMMU_GET_INFO,
        VFIO_IOMMU_MAP_DMA, VFIO_IOMMU_UNMAP_DMA, VFIO_IOMMU_DIRTY_PAGES,
    ]);
    let values = consts!(uapi: [
        IOMMU_IOAS_MAP_FIXED_IOVA, IOMMU_IOAS_MAP_WRITEABLE, IOMMU_IOAS_MAP_READABLE,
        IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_SET,
        IOMMU_OPTION_OP_GET, IOMMU_VFIO_IOAS_GET, IOMMU_VFIO_IOAS_SET, IOMMU_VFIO_IOAS_CLEAR,
        IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_ALLOC_DIRTY_TRACKING, IOMMU_HWPT_FAULT_ID_VALID,
        IOMMU_VTD_S1_SRE, IOMMU_VTD_S1_EAFE, IOMMU_VTD_S1_WPE, IOMMU_HWPT_DATA_NONE,
        IOMMU_HWPT_DATA_VTD_S1, IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17, IOMMU_HW_INFO_TYPE_NONE,
        IOMMU_HW_INFO_TYPE_INTEL_VTD, IOMMU_HW_CAP_DIRTY_TRACKING, IOMMU_HW_CAP_PCI_PASID_EXEC,
        IOMMU_HW_CAP_PCI_PASID_PRIV, IOMMU_HWPT_DIRTY_TRACKING_ENABLE,
        IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR, IOMMU_HWPT_INVALIDATE_DATA_VTD_S1,
        IOMMU_VTD_INV_FLAGS_LEAF, IOMMU_PGFAULT_FLAGS_PASID_VALID, IOMMU_PGFAULT_FLAGS_LAST_PAGE,
        IOMMU_PGFAULT_PERM_READ, IOMMU_PGFAULT_PERM_WRITE, IOMMU_PGFAULT_PERM_EXEC,
        IOMMU_PGFAULT_PERM_PRIV, IOMMUFD_PAGE_RESP_SUCCESS, IOMMUFD_PAGE_RESP_INVALID,
        IOMMU_TEST_OP_ADD_RESERVED, IOMMU_TEST_OP_MOCK_DOMAIN, IOMMU_TEST_OP_MD_CHECK_MAP,
        IOMMU_TEST_OP_MD_CHECK_REFS, IOMMU_TEST_OP_CREATE_ACCESS,
        IOMMU_TEST_OP_DESTROY_ACCESS_PAGES, IOMMU_TEST_OP_ACCESS_PAGES, IOMMU_TEST_OP_ACCESS_RW,
        IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT, IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE,
        IOMMU_TEST_OP_ACCESS_REPLACE_IOAS, IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS, IOMMU_TEST_OP_DIRTY,
        IOMMU_TEST_OP_MD_CHECK_IOTLB, IOMMU_TEST_OP_TRIGGER_IOPF, MOCK_APERTURE_START,
        MOCK_APERTURE_LAST, MOCK_FLAGS_ACCESS_WRITE, MOCK_FLAGS_ACCESS_SYZ, MOCK_ACCESS_RW_WRITE,
        MOCK_ACCESS_RW_SLOW_PATH, MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES,
        MOCK_FLAGS_DEVICE_NO_DIRTY, MOCK_FLAGS_DEVICE_HUGE_IOVA, MOCK_NESTED_DOMAIN_IOTLB_ID_MAX,
        MOCK_NESTED_DOMAIN_IOTLB_NUM, VFIO_API_VERSION, VFIO_TYPE1_IOMMU, VFIO_SPAPR_TCE_IOMMU,
        VFIO_TYPE1v2_IOMMU, VFIO_DMA_CC_IOMMU, VFIO_EEH, VFIO_TYPE1_NESTING_IOMMU,
        VFIO_SPAPR_TCE_v2_IOMMU, VFIO_NOIOMMU_IOMMU, VFIO_UNMAP_ALL, VFIO_UPDATE_VADDR,
        VFIO_IOMMU_INFO_PGSIZES, VFIO_IOMMU_INFO_CAPS, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
        VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
        VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_WRITE, VFIO_DMA_MAP_FLAG_VADDR,
        VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, VFIO_DMA_UNMAP_FLAG_ALL, VFIO_DMA_UNMAP_FLAG_VADDR,
        IOMMU_HW_INFO_TYPE_SELFTEST, IOMMU_HW_INFO_SELFTEST_REGVAL, IOMMU_HWPT_DATA_SELFTEST,
        IOMMU_TEST_IOTLB_DEFAULT, IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
        IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID, IOMMU_TEST_INVALIDATE_FLAG_ALL,
    ]);
    let mut table = BTreeMap::new();
    for (name, value) in ioctls.into_iter().chain(values) {
        assert!(table.insert(name, value).is_none(), "duplicate {name}");
    }
    table
}

/// One entry of a `*-layout.txt` dump.
#[derive(Debug)]
enum Entry {
    Struct {
        name: String,
        size: usize,
        align: Option<usize>,
    },
    Field {
        strct: String,
        name: String,
        offset: usize,
        size: usize,
    },
    Const {
        name: String,
        value: u64,
    },
}

fn parse_num(s: &str) -> u64 {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("{s}: {e}")),
        None => s.parse().unwrap_or_else(|e| panic!("{s}: {e}")),
    }
}

/// The value of `key=` among whitespace-separated `words`.
fn keyed(words: &[&str], key: &str) -> Option<usize> {
    let prefix = format!("{key}=");
    words
        .iter()
        .find_map(|w| w.strip_prefix(&prefix))
        .map(|v| parse_num(v) as usize)
}

/// Parses `NAME = 0xVALUE [(decimal)]`.
fn parse_assignment(rest: &str) -> Entry {
    let (name, value) = rest
        .split_once('=')
        .unwrap_or_else(|| panic!("no '=': {rest}"));
    let value = value.split_whitespace().next().unwrap_or_default();
    Entry::Const {
        name: name.trim().to_owned(),
        value: parse_num(value),
    }
}

fn parse_layout(text: &str) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.trim().is_empty() || line.starts_with('#') || line.starts_with("===") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("struct ") {
            let (name, attrs) = rest.split_once(':').expect("struct line without ':'");
            let words: Vec<&str> = attrs.split_whitespace().collect();
            let size = keyed(&words, "sizeof").expect("struct without sizeof");
            current = Some(name.to_owned());
            entries.push(Entry::Struct {
                name: name.to_owned(),
                size,
                align: keyed(&words, "alignof"),
            });
        } else if line.starts_with("  ") {
            let words: Vec<&str> = line.split_whitespace().collect();
            let strct = current.clone().expect("field outside a struct");
            let offset = keyed(&words, "offset").expect("field without offset");
            let size = keyed(&words, "size").expect("field without size");
            entries.push(Entry::Field {
                strct,
                name: words[0].to_owned(),
                offset,
                size,
            });
        } else if let Some(rest) = line
            .strip_prefix("ioctl ")
            .or_else(|| line.strip_prefix("define "))
        {
            entries.push(parse_assignment(rest));
        } else if let Some(rest) = line.strip_prefix("enum ") {
            let (_, rest) = rest.split_once(": ").expect("enum line without ': '");
            entries.push(parse_assignment(rest));
        } else {
            panic!("unrecognised layout line: {line:?}");
        }
    }
    entries
}

fn unmapped(key: &str) -> bool {
    UNMAPPED.iter().any(|(k, _)| *k == key)
}

/// Compares the layout dump entries with the tables; returns the mismatches and records
/// which table entries were seen.
fn check_layout(
    text: &str,
    structs: &BTreeMap<&str, StructInfo>,
    consts: &BTreeMap<&str, u64>,
    seen: &mut BTreeSet<String>,
) -> Vec<String> {
    let mut errors = Vec::new();
    let mut listed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in parse_layout(text) {
        match entry {
            Entry::Struct { name, size, align } => {
                listed.entry(name.clone()).or_default();
                let Some(info) = structs.get(name.as_str()) else {
                    errors.push(format!("struct {name}: not in the Rust table"));
                    continue;
                };
                seen.insert(name.clone());
                if info.size != size {
                    errors.push(format!("struct {name}: sizeof {size}, Rust {}", info.size));
                }
                if align.is_some_and(|a| a != info.align) {
                    errors.push(format!(
                        "struct {name}: alignof {align:?}, Rust {}",
                        info.align
                    ));
                }
            }
            Entry::Field {
                strct,
                name,
                offset,
                size,
            } => {
                let key = format!("{strct}.{name}");
                listed
                    .entry(strct.clone())
                    .or_default()
                    .insert(name.clone());
                if unmapped(&key) {
                    seen.insert(key);
                    continue;
                }
                let field = structs
                    .get(strct.as_str())
                    .and_then(|s| s.fields.get(name.as_str()));
                match field {
                    None => errors.push(format!("{key}: not in the Rust table")),
                    Some(f) if (f.offset, f.size) != (offset, size) => errors.push(format!(
                        "{key}: offset {offset} size {size}, Rust offset {} size {}",
                        f.offset, f.size
                    )),
                    Some(_) => {}
                }
            }
            Entry::Const { name, value } => match consts.get(name.as_str()) {
                None if unmapped(&name) => {
                    seen.insert(name);
                }
                None => errors.push(format!("{name}: not in the Rust table")),
                Some(&v) if v != value => errors.push(format!("{name}: {value:#x}, Rust {v:#x}")),
                Some(_) => {
                    seen.insert(name);
                }
            },
        }
    }
    // Reverse direction: every Rust field of a struct whose fields the dump lists. A struct
    // listed without fields (the nested union of iommu_test_cmd) is covered by pahole.
    errors.extend(missing_rust_fields(&listed, structs, "layout"));
    errors
}

/// A member of a struct in the pahole dump; `path` is `field`, `member` or `member.field`.
#[derive(Debug)]
struct PaholeEntry {
    path: String,
    offset: usize,
    size: usize,
    nested: bool,
}

#[derive(Debug, Default)]
struct PaholeStruct {
    size: Option<usize>,
    entries: Vec<PaholeEntry>,
}

/// Removes every `__attribute__((...))` from a declaration.
fn strip_attributes(mut decl: String) -> String {
    while let Some(start) = decl.find("__attribute__((") {
        let end = decl[start..]
            .find("))")
            .map(|e| start + e + 2)
            .expect("unbalanced attribute");
        let end = if decl[end..].starts_with(')') {
            end + 1
        } else {
            end
        };
        decl.replace_range(start..end, " ");
    }
    decl
}

/// Splits `decl; /* off size */` into the declared name (possibly empty) and the numbers.
fn split_member(line: &str) -> Option<(String, usize, usize)> {
    let (decl, comment) = line.split_once("/*")?;
    let nums: Vec<usize> = comment
        .trim_end()
        .trim_end_matches("*/")
        .split_whitespace()
        .map(|w| w.parse().ok())
        .collect::<Option<_>>()?;
    let [offset, size] = nums[..] else {
        return None;
    };
    let decl = strip_attributes(
        decl.trim()
            .trim_end_matches(';')
            .trim_start_matches('}')
            .to_owned(),
    );
    let name = decl.split_whitespace().last().unwrap_or_default();
    let name = name.split('[').next().unwrap_or_default().to_owned();
    Some((name, offset, size))
}

fn parse_pahole(text: &str) -> BTreeMap<String, PaholeStruct> {
    let mut out = BTreeMap::new();
    let mut name = String::new();
    // One frame per open nested struct/union; the outermost is the top-level struct.
    let mut frames: Vec<Vec<PaholeEntry>> = Vec::new();
    let mut top = PaholeStruct::default();
    for raw in text.lines() {
        let line = raw.trim();
        if let Some(rest) = line.strip_prefix("struct ").filter(|_| frames.is_empty()) {
            name = rest.trim_end_matches('{').trim().to_owned();
            frames.push(Vec::new());
            top = PaholeStruct::default();
        } else if line == "union {" || line == "struct {" {
            frames.push(Vec::new());
        } else if let Some(size) = line.strip_prefix("/* size: ") {
            let size = size.split(',').next().expect("size comment");
            top.size = Some(parse_num(size) as usize);
        } else if line.starts_with('}') && frames.len() == 1 {
            top.entries = frames.pop().expect("frame");
            out.insert(std::mem::take(&mut name), std::mem::take(&mut top));
        } else if line.starts_with('}') {
            let (member, offset, size) = split_member(line).expect("nested member close");
            let inner = frames.pop().expect("frame");
            let parent = frames.last_mut().expect("parent frame");
            let path = if member.is_empty() {
                "(anonymous)".to_owned()
            } else {
                member.clone()
            };
            parent.push(PaholeEntry {
                path,
                offset,
                size,
                nested: true,
            });
            for e in inner {
                let path = if member.is_empty() {
                    e.path
                } else {
                    format!("{member}.{}", e.path)
                };
                parent.push(PaholeEntry { path, ..e });
            }
        } else if let Some((field, offset, size)) = split_member(line) {
            frames
                .last_mut()
                .expect("field outside struct")
                .push(PaholeEntry {
                    path: field,
                    offset,
                    size,
                    nested: false,
                });
        } else {
            assert!(
                line.is_empty() || line.starts_with("/*"),
                "unrecognised pahole line: {raw:?}"
            );
        }
    }
    assert!(frames.is_empty(), "unterminated struct {name}");
    out
}

/// Where a pahole entry lives in the Rust table: (owning table key, field, base offset).
///
/// Union member fields (`member.field`) are relative to the union, at `union_base`; the
/// anonymous union itself maps to its alias field (`payload`).
fn pahole_owner(
    name: &str,
    e: &PaholeEntry,
    alias: Option<&'static str>,
    union_base: Option<usize>,
) -> (String, String, Option<usize>) {
    match e.path.split_once('.') {
        Some((member, field)) => (format!("{name}.{member}"), field.to_owned(), union_base),
        None if e.path == "(anonymous)" => {
            let field = alias.unwrap_or("(anonymous)");
            (name.to_owned(), field.to_owned(), Some(0))
        }
        None => (name.to_owned(), e.path.clone(), Some(0)),
    }
}

/// Checks one union member (a nested struct) against its Rust struct.
fn check_union_member(
    key: &str,
    e: &PaholeEntry,
    union_base: Option<usize>,
    structs: &BTreeMap<&str, StructInfo>,
    seen: &mut BTreeSet<String>,
) -> Option<String> {
    let Some(member) = structs.get(key) else {
        return Some(format!("{key}: union member not in the Rust table"));
    };
    seen.insert(key.to_owned());
    let ok = Some(e.offset) == union_base && member.size == e.size;
    let (offset, size, rust) = (e.offset, e.size, member.size);
    (!ok).then(|| format!("{key}: offset {offset} size {size}, Rust size {rust}"))
}

/// Reports Rust fields (other than synthetic padding) that a dump does not list.
fn missing_rust_fields(
    listed: &BTreeMap<String, BTreeSet<String>>,
    structs: &BTreeMap<&str, StructInfo>,
    dump: &str,
) -> Vec<String> {
    let mut errors = Vec::new();
    for (owner, names) in listed.iter().filter(|(_, names)| !names.is_empty()) {
        let Some(info) = structs.get(owner.as_str()) else {
            continue;
        };
        for field in info.fields.keys() {
            if !names.contains(*field) && !SYNTHETIC_FIELDS.contains(field) {
                errors.push(format!(
                    "{owner}.{field}: Rust field missing from the {dump} dump"
                ));
            }
        }
    }
    errors
}

fn check_pahole_struct(
    name: &str,
    pahole: &PaholeStruct,
    structs: &BTreeMap<&str, StructInfo>,
    seen: &mut BTreeSet<String>,
) -> Vec<String> {
    let Some(info) = structs.get(name) else {
        return vec![format!("pahole struct {name}: not in the Rust table")];
    };
    let mut errors = Vec::new();
    if pahole.size != Some(info.size) {
        let (size, rust) = (pahole.size, info.size);
        errors.push(format!("pahole struct {name}: size {size:?}, Rust {rust}"));
    }
    let alias = ANONYMOUS_ALIASES
        .iter()
        .find(|(s, _)| *s == name)
        .map(|(_, f)| *f);
    let union_base = alias.and_then(|f| info.fields.get(f)).map(|f| f.offset);
    let mut listed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in &pahole.entries {
        if e.nested && e.path != "(anonymous)" && !e.path.contains('.') {
            let key = format!("{name}.{}", e.path);
            errors.extend(check_union_member(&key, e, union_base, structs, seen));
            continue;
        }
        let (owner, field, base) = pahole_owner(name, e, alias, union_base);
        listed
            .entry(owner.clone())
            .or_default()
            .insert(field.clone());
        let rust = structs
            .get(owner.as_str())
            .and_then(|s| s.fields.get(field.as_str()));
        match (rust, base) {
            (Some(f), Some(base)) if (base + f.offset, f.size) == (e.offset, e.size) => {}
            (Some(f), base) => errors.push(format!(
                "pahole {owner}.{field}: offset {} size {}, Rust offset {base:?}+{} size {}",
                e.offset, e.size, f.offset, f.size
            )),
            (None, _) => errors.push(format!("pahole {owner}.{field}: not in the Rust table")),
        }
    }
    errors.extend(missing_rust_fields(&listed, structs, "pahole"));
    errors
}

fn report(errors: &[String]) {
    assert!(
        errors.is_empty(),
        "{} mismatches:\n{}",
        errors.len(),
        errors.join("\n")
    );
}

#[test]
fn layout_dumps_match_rust_definitions() {
    let structs = struct_table();
    let consts = const_table();
    let mut seen = BTreeSet::new();
    let mut errors = check_layout(LAYOUT, &structs, &consts, &mut seen);
    errors.extend(check_layout(EXTRA, &structs, &consts, &mut seen));
    report(&errors);
    // Every table entry must have been checked against some dump.
    let unchecked_structs: Vec<_> = structs
        .keys()
        .filter(|k| !k.contains('.') && !seen.contains(**k))
        .collect();
    let unchecked_consts: Vec<_> = consts.keys().filter(|k| !seen.contains(**k)).collect();
    assert!(
        unchecked_structs.is_empty(),
        "structs in no dump: {unchecked_structs:?}"
    );
    assert!(
        unchecked_consts.is_empty(),
        "constants in no dump: {unchecked_consts:?}"
    );
    let stale: Vec<_> = UNMAPPED
        .iter()
        .filter(|(k, _)| !seen.contains(*k))
        .collect();
    assert!(
        stale.is_empty(),
        "UNMAPPED entries not in any dump: {stale:?}"
    );
}

#[test]
fn pahole_dump_matches_rust_definitions() {
    let structs = struct_table();
    let pahole = parse_pahole(PAHOLE);
    assert_eq!(pahole.len(), 25, "21 iommufd.h + 4 iommufd_test.h structs");
    let mut seen = BTreeSet::new();
    let mut errors = Vec::new();
    for (name, s) in &pahole {
        errors.extend(check_pahole_struct(name, s, &structs, &mut seen));
    }
    report(&errors);
    let members: Vec<_> = structs.keys().filter(|k| k.contains('.')).collect();
    let unchecked: Vec<_> = members.iter().filter(|k| !seen.contains(***k)).collect();
    assert!(
        unchecked.is_empty(),
        "union members in no dump: {unchecked:?}"
    );
    assert_eq!(
        members.len(),
        15,
        "one struct per iommu_test_cmd union member"
    );
}

#[test]
fn parser_rejects_a_wrong_offset() {
    let structs = struct_table();
    let consts = const_table();
    let bad = "struct iommu_destroy: sizeof=8 alignof=4\n  size offset=0 size=4 type=__u32\n  id offset=0 size=4 type=__u32\n";
    let errors = check_layout(bad, &structs, &consts, &mut BTreeSet::new());
    assert_eq!(errors.len(), 1, "{errors:?}");
}

#[test]
fn parser_rejects_an_unknown_entry() {
    let structs = struct_table();
    let consts = const_table();
    let bad = "struct iommu_destroy: sizeof=8 alignof=4\n  size offset=0 size=4 type=__u32\n  id offset=4 size=4 type=__u32\n  extra offset=8 size=4 type=__u32\nenum x: IOMMU_NEW_THING = 0x1 (1)\n";
    let errors = check_layout(bad, &structs, &consts, &mut BTreeSet::new());
    assert_eq!(errors.len(), 2, "{errors:?}");
}

#[test]
fn pahole_parser_reads_union_members() {
    let pahole = parse_pahole(PAHOLE);
    let cmd = &pahole["iommu_test_cmd"];
    let find = |p: &str| {
        cmd.entries
            .iter()
            .find(|e| e.path == p)
            .map(|e| (e.offset, e.size))
    };
    assert_eq!(cmd.size, Some(72));
    assert_eq!(find("(anonymous)"), Some((16, 48)));
    assert_eq!(find("dirty.out_nr_dirty"), Some((56, 8)));
    assert_eq!(find("last"), Some((64, 4)));
    assert_eq!(
        pahole["iommu_hw_info"]
            .entries
            .iter()
            .find(|e| e.path == "__reserved")
            .map(|e| e.size),
        Some(3)
    );
}
