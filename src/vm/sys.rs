//! The few raw system calls the guest's init needs: mounting the API
//! filesystems, the memlock limit, a raw serial line, and leaving the VM.

use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;

/// The I/O port of QEMU's `-device isa-debug-exit,iobase=0xf4,iosize=0x04`.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;

/// `mount -t fstype source target`, creating `target` if needed.
pub fn mount(source: &str, target: &str, fstype: &str) -> io::Result<()> {
    let _ = std::fs::create_dir_all(target);
    let (s, t, f) = (CString::new(source)?, CString::new(target)?, CString::new(fstype)?);
    // SAFETY: three valid NUL-terminated strings that outlive the call; no data argument.
    let rc = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), 0, std::ptr::null()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// RLIMIT_MEMLOCK = infinity: kernels before 5.11 charge BPF maps to it.
pub fn unlimited_memlock() -> io::Result<()> {
    let lim = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: a valid rlimit struct, read by the kernel during the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// RLIMIT_NOFILE = 65536: each single kprobe/uprobe link is an fd, and the
/// attach-time bench holds 1000 of them (the default soft limit is 1024).
pub fn many_files() -> io::Result<()> {
    let lim = libc::rlimit { rlim_cur: 65536, rlim_max: 65536 };
    // SAFETY: a valid rlimit struct, read by the kernel during the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Raw mode on a tty: no `\n` → `\r\n`, no echo, 8 bits through. Not a tty
/// (a file, for tests) is fine.
pub fn make_raw(f: &std::fs::File) {
    let fd = f.as_raw_fd();
    // SAFETY: termios is plain old data; all-zero is a valid value to be overwritten.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open for the lifetime of `f`; t is a valid termios to fill.
    if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
        return;
    }
    // SAFETY: t was filled by tcgetattr.
    unsafe { libc::cfmakeraw(&mut t) };
    // SAFETY: fd is open; t is a valid termios.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) };
}

/// Waits until a tty has sent everything written to it (no-op for files).
pub fn drain(f: &std::fs::File) {
    // SAFETY: fd is open for the lifetime of `f`.
    unsafe { libc::tcdrain(f.as_raw_fd()) };
}

pub fn sync() {
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
}

/// Ends the VM with `code`: QEMU's isa-debug-exit makes QEMU exit with
/// `(code << 1) | 1`. Without that device, powers off (QEMU exits 0). Never
/// returns: init must not exit, the kernel would panic.
pub fn exit_vm(code: u8) -> ! {
    // SAFETY: ioperm only changes this process's I/O permission bitmap; we are
    // root (CAP_SYS_RAWIO) as PID 1 in our own VM.
    if unsafe { libc::ioperm(DEBUG_EXIT_PORT as libc::c_ulong, 4, 1) } == 0 {
        // SAFETY: the port was just granted; writing it only talks to the
        // emulated device (on a machine without one, the write is ignored).
        unsafe { std::arch::asm!("out dx, al", in("dx") DEBUG_EXIT_PORT, in("al") code, options(nomem, nostack, preserves_flags)) };
    }
    // SAFETY: reboot with RB_POWER_OFF; we are PID 1 and have synced.
    unsafe { libc::reboot(libc::RB_POWER_OFF) };
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
