//! Per-program kernel counters, read by program id so that one code path
//! serves every loader (each reports the ids of the programs it attached).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

fn info_of(fd: BorrowedFd<'_>) -> Option<libbpf_rs::libbpf_sys::bpf_prog_info> {
    let mut info = libbpf_rs::libbpf_sys::bpf_prog_info::default();
    let mut len = size_of::<libbpf_rs::libbpf_sys::bpf_prog_info>() as u32;
    // SAFETY: `info` is a zeroed bpf_prog_info of `len` bytes that the kernel
    // fills; no pointer fields are set, so it writes nothing else.
    let r = unsafe { libbpf_rs::libbpf_sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
    (r == 0).then_some(info)
}

/// The kernel's id of a loaded program.
pub fn prog_id(fd: BorrowedFd<'_>) -> Option<u32> {
    info_of(fd).map(|i| i.id)
}

/// `recursion_misses` of the program with this id: runs the kernel skipped
/// because another BPF program was already running on the CPU.
pub fn recursion_misses(id: u32) -> Option<u64> {
    // SAFETY: plain syscall wrapper; returns a new fd or a negative errno.
    let fd = unsafe { libbpf_rs::libbpf_sys::bpf_prog_get_fd_by_id(id) };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd is a fresh descriptor we own; OwnedFd closes it once.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    use std::os::fd::AsFd;
    info_of(owned.as_fd()).map(|i| i.recursion_misses)
}
