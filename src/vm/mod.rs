//! Booting kernels under QEMU with a self-contained initramfs (issue 4).
