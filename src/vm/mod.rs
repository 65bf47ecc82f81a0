//! Booting kernels under QEMU with a self-contained initramfs (issue 4).
//!
//! The host builds an image ([`image`], written by [`initramfs`]) whose `/init`
//! is this very static binary; in the VM, `main` sees it is PID 1 and hands
//! over to [`guest`], which runs the suite in-process and streams JSON Lines
//! over the second serial port. [`qemu`] boots one image and collects those
//! lines, the console tail and how the VM ended; [`schedule`] boots many.
//! The guest's options travel on the kernel command line ([`cmdline`]).
//! Under TCG a boot skips SeaBIOS's bzImage path and the kernel's own
//! decompressor by booting the vmlinux inside the vmlinuz through PVH
//! ([`vmlinux`]): ~2 s to userspace instead of ~5 s.

pub mod cmdline;
pub mod guest;
pub mod image;
pub mod initramfs;
pub mod kconfig;
pub mod qemu;
pub mod schedule;
pub mod stress;
mod sys;
pub mod vmlinux;

pub use cmdline::{GuestMode, GuestOptions};
pub use image::ImageSpec;
pub use initramfs::Initramfs;
pub use qemu::{boot, boot_retrying, Accel, BootOptions, BootOutcome, BootStatus, TcgThreads};
pub use schedule::{boot_many, default_parallelism, run_pool};
