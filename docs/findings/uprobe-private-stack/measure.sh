#!/bin/sh
# Boots build/initramfs.cpio (make initramfs) in QEMU, one kernel at a time, and
# prints the RESULT lines of repro. Usage:
#   ./measure.sh VMLINUZ 'REPRO ARGS' [EXTRA KERNEL CMDLINE]
# e.g.  ./measure.sh /boot/vmlinuz-6.18 '-n 2000 -r 100 -P lazy,full'
#       ./measure.sh /boot/vmlinuz-6.18 '-n 2000 -r 100' preempt=full
# TCG only (nested KVM is not assumed); -smp 2; 1 GB.
set -eu
kernel=$1
args=$2
extra=${3:-}
qemu-system-x86_64 -accel tcg,thread=single -cpu max -m 1G -smp 2 -nographic -no-reboot \
	-kernel "$kernel" -initrd "$(dirname "$0")/build/initramfs.cpio" \
	-append "console=ttyS0 panic=-1 quiet $extra -- $args" 2>&1 |
	tr -d '\r' | grep -E '^(RESULT|repro:|  bad record|\[ *[0-9.]+\] (Oops|BUG|Kernel panic|general protection))'
