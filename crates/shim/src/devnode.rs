//! What `stat` and `access` say of the emulated device nodes, `/dev/iommu` and
//! `/dev/vfio/vfio`, and `fstat` of an emulated iommufd.
//!
//! Where the host has the node, it is the node: its own stat is returned.
//! Where it has none (the usual case: no iommufd in the host kernel), the node
//! is described as Linux 6.12 creates it in devtmpfs: a character device of the
//! misc major, `/dev/iommu` mode 0660 with the first dynamic misc minor (257),
//! `/dev/vfio/vfio` mode 0666 with `VFIO_MINOR` (196), owned by root; the rest
//! (the filesystem, times, block size) is taken from the host's `/dev/null`.
//! A program that checks for the node before opening it (`access`, `stat`)
//! then finds it, and `fstat` of the fd agrees with `stat` of the path. Its
//! extended attributes are read from `/dev/null` ([`stand_in`]), so that
//! `ls -l` finds none, as on the same filesystem.

#![allow(unsafe_code)]

use std::ffi::CStr;

use libc::c_int;

/// An emulated device node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Node {
    /// `/dev/iommu`.
    Iommu,
    /// `/dev/vfio/vfio`.
    Vfio,
}

/// The misc character devices' major (`MISC_MAJOR`).
const MISC_MAJOR: u32 = 10;
/// An inode number for a described node: devtmpfs numbers its own; this one
/// only has to be the same for `stat` and `fstat`.
const INO_BASE: u64 = 0x1_0000_0000;

impl Node {
    /// The node `path` names exactly, if any.
    pub(crate) fn of_path(path: &[u8]) -> Option<Node> {
        match path {
            b"/dev/iommu" => Some(Node::Iommu),
            b"/dev/vfio/vfio" => Some(Node::Vfio),
            _ => None,
        }
    }

    fn path(self) -> &'static CStr {
        match self {
            Node::Iommu => c"/dev/iommu",
            Node::Vfio => c"/dev/vfio/vfio",
        }
    }

    /// `(minor, permissions)`.
    fn minor_and_mode(self) -> (u32, u32) {
        match self {
            Node::Iommu => (257, 0o660),
            Node::Vfio => (196, 0o666),
        }
    }
}

fn errno() -> c_int {
    // SAFETY: reads the calling thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// `fstatat(AT_FDCWD, path, buf, 0)` as a system call (not through the
/// interposed libc functions).
fn sys_stat(path: &CStr) -> Result<libc::stat, c_int> {
    // SAFETY: all-zero is a valid `struct stat`.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` a live, writable `struct stat`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_newfstatat,
            libc::AT_FDCWD,
            path.as_ptr(),
            &mut st as *mut libc::stat,
            0,
        )
    };
    if r < 0 {
        return Err(errno());
    }
    Ok(st)
}

/// `statx(AT_FDCWD, path, 0, mask, buf)` as a system call.
fn sys_statx(path: &CStr, mask: u32) -> Result<libc::statx, c_int> {
    // SAFETY: all-zero is a valid `struct statx`.
    let mut stx: libc::statx = unsafe { core::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `stx` a live, writable `struct statx`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_statx,
            libc::AT_FDCWD,
            path.as_ptr(),
            0,
            mask,
            &mut stx as *mut libc::statx,
        )
    };
    if r < 0 {
        return Err(errno());
    }
    Ok(stx)
}

/// The path that answers for `node` where only the node's existence matters
/// (extended attributes): the node itself where the host has it, else
/// `/dev/null`, a character device on the same filesystem.
pub(crate) fn stand_in(node: Node) -> &'static CStr {
    match sys_stat(node.path()) {
        Err(libc::ENOENT) => c"/dev/null",
        _ => node.path(),
    }
}

/// The stat of `node` (see the module documentation).
///
/// # Errors
/// The errno (raw) of stat on the host's node other than `ENOENT`, or of
/// `/dev/null`.
pub(crate) fn stat(node: Node) -> Result<libc::stat, c_int> {
    match sys_stat(node.path()) {
        Err(libc::ENOENT) => {}
        other => return other,
    }
    let mut st = sys_stat(c"/dev/null")?;
    let (minor, perm) = node.minor_and_mode();
    st.st_mode = libc::S_IFCHR | perm;
    st.st_rdev = libc::makedev(MISC_MAJOR, minor);
    st.st_ino = INO_BASE + u64::from(minor);
    st.st_uid = 0;
    st.st_gid = 0;
    st.st_nlink = 1;
    st.st_size = 0;
    st.st_blocks = 0;
    Ok(st)
}

/// The statx of `node` for `mask` (see the module documentation).
///
/// # Errors
/// As [`stat`].
pub(crate) fn statx(node: Node, mask: u32) -> Result<libc::statx, c_int> {
    match sys_statx(node.path(), mask) {
        Err(libc::ENOENT) => {}
        other => return other,
    }
    let mut stx = sys_statx(c"/dev/null", mask)?;
    let (minor, perm) = node.minor_and_mode();
    stx.stx_mode = (libc::S_IFCHR | perm) as u16;
    stx.stx_rdev_major = MISC_MAJOR;
    stx.stx_rdev_minor = minor;
    stx.stx_ino = INO_BASE + u64::from(minor);
    stx.stx_uid = 0;
    stx.stx_gid = 0;
    stx.stx_nlink = 1;
    stx.stx_size = 0;
    stx.stx_blocks = 0;
    Ok(stx)
}

/// `access(node, mode)`: the host's answer where it has the node, else as
/// for root: any of `F_OK`, `R_OK`, `W_OK`, but not `X_OK` (no execute bit).
/// The emulation lets any user open the node, so it does not refuse others.
///
/// # Errors
/// `EACCES` for `X_OK`, `EINVAL` for an unknown mode bit, else the host's.
pub(crate) fn access(node: Node, mode: c_int) -> Result<(), c_int> {
    if mode & !(libc::F_OK | libc::R_OK | libc::W_OK | libc::X_OK) != 0 {
        return Err(libc::EINVAL);
    }
    // SAFETY: a NUL-terminated path and an int, as the system call takes them.
    let r = unsafe {
        libc::syscall(
            libc::SYS_faccessat,
            libc::AT_FDCWD,
            node.path().as_ptr(),
            mode,
        )
    };
    if r == 0 {
        return Ok(());
    }
    match errno() {
        libc::ENOENT if mode & libc::X_OK != 0 => Err(libc::EACCES),
        libc::ENOENT => Ok(()),
        err => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_node_is_a_misc_character_device_on_the_dev_filesystem() {
        if sys_stat(c"/dev/iommu").is_ok() {
            eprintln!("skipping: the host has /dev/iommu");
            return;
        }
        let null = sys_stat(c"/dev/null").expect("/dev/null");
        let st = stat(Node::Iommu).expect("stat");
        assert_eq!(st.st_mode, libc::S_IFCHR | 0o660);
        assert_eq!(
            (libc::major(st.st_rdev), libc::minor(st.st_rdev)),
            (10, 257)
        );
        assert_eq!(st.st_dev, null.st_dev);
        let stx = statx(Node::Iommu, libc::STATX_BASIC_STATS).expect("statx");
        assert_eq!(u32::from(stx.stx_mode), st.st_mode);
        assert_eq!((stx.stx_rdev_major, stx.stx_rdev_minor), (10, 257));
        assert_eq!(stx.stx_ino, st.st_ino);
        assert_eq!(access(Node::Iommu, libc::R_OK | libc::W_OK), Ok(()));
        assert_eq!(access(Node::Iommu, libc::X_OK), Err(libc::EACCES));
        assert_eq!(access(Node::Iommu, 0x40), Err(libc::EINVAL));
        if sys_stat(c"/dev/vfio/vfio").is_err() {
            let st = stat(Node::Vfio).expect("stat");
            assert_eq!(st.st_mode, libc::S_IFCHR | 0o666);
            assert_eq!(libc::minor(st.st_rdev), 196);
        }
    }
}
