#!/bin/bash
# Boots KERNEL with QEMU BOOTS times per TCG threading mode, the reproducer's
# initramfs as the whole userspace, and counts the boots whose console shows
# "Oops: int3".
#
#   ./run.sh QEMU VMLINUZ [BOOTS] [MODES]
#
#   QEMU     a qemu-system-x86_64 binary (or wrapper script)
#   VMLINUZ  an x86-64 kernel image (bzImage)
#   BOOTS    boots per mode (default 5)
#   MODES    TCG threading modes, space separated (default "multi single");
#            "kvm" boots with -accel kvm -cpu host instead, as a control
#
# Environment: SECS (seconds of flipping per boot, default 30), SMP (default 2),
# PARALLEL (VMs at a time, default 2), OUT (log directory, default out/),
# TIMEOUT (seconds per boot, default SECS+240), EXTRA_APPEND (more kernel
# parameters, e.g. REPRO_KEYS=features or REPRO_PIN=1), TAG (appended to the
# log directory's name).
#
# Per boot: out/<label>/<mode>-<n>.log (the console). Per run: one line per
# boot and a summary on stdout.
set -u
here=$(cd "$(dirname "$0")" && pwd)
qemu=${1:?usage: run.sh QEMU VMLINUZ [BOOTS] [MODES]}
kernel=${2:?usage: run.sh QEMU VMLINUZ [BOOTS] [MODES]}
boots=${3:-5}
modes=${4:-multi single}
secs=${SECS:-30}
smp=${SMP:-2}
parallel=${PARALLEL:-2}
timeout_s=${TIMEOUT:-$((secs + 240))}
initrd=$here/initramfs.cpio
[ -f "$initrd" ] || make -C "$here" >/dev/null || exit 1

qver=$("$qemu" --version | sed -n "1s/QEMU emulator version \([^ ]*\).*/\1/p")
kver=$(basename "$(dirname "$kernel")")
[ "$kver" = . ] && kver=$(basename "$kernel")
label="qemu-${qver}__${kver}__smp${smp}${TAG:+__$TAG}"
out=${OUT:-$here/out}/$label
mkdir -p "$out"
echo "# $("$qemu" --version | head -1); kernel $kernel; smp $smp; $secs s; $boots boots per mode ($modes); logs in $out"

classify() { # console log -> outcome
	local log=$1
	if grep -q 'Oops: int3' "$log"; then echo int3
	elif grep -q '^repro: done' "$log"; then echo ok
	elif grep -qE 'Kernel panic|Oops|BUG:' "$log"; then echo other-crash
	else echo incomplete
	fi
}

one() { # mode n
	local mode=$1 n=$2 log=$out/$1-$2.log t0 t1 rc outcome detail=""
	t0=$(date +%s)
	local accel=(-accel "tcg,thread=$mode" -cpu max)
	[ "$mode" = kvm ] && accel=(-accel kvm -cpu host)
	timeout -k 5 "$timeout_s" "$qemu" \
		"${accel[@]}" -m 1G -smp "$smp" \
		-nographic -no-reboot -monitor none -nic none \
		-kernel "$kernel" -initrd "$initrd" \
		-append "console=ttyS0 panic=-1 oops=panic REPRO_SECS=$secs ${EXTRA_APPEND:-}" \
		</dev/null >"$log" 2>&1
	rc=$?
	t1=$(date +%s)
	outcome=$(classify "$log")
	[ "$rc" = 124 ] && [ "$outcome" = incomplete ] && outcome=timeout
	if [ "$outcome" = int3 ]; then
		# Seconds into the flipping (guest clock), the RIP, and the bytes at the trap.
		local started at rip code
		started=$(grep -m1 -a 'repro: start at' "$log" | sed -n 's/.*repro: start at \([0-9.]*\) s.*/\1/p')
		at=$(grep -m1 'Oops: int3' "$log" | sed -n 's/^\[ *\([0-9.]*\)\].*/\1/p')
		rip=$(grep -m1 -o 'RIP: 0010:[^ ]*' "$log" | sed 's/RIP: 0010://')
		code=$(grep -m1 -o 'Code: .*' "$log" | grep -o '.. <..> .. .. .. ..')
		detail=" after=$(awk -v a="$at" -v s="$started" 'BEGIN{ if (a != "" && s != "") printf "%.1fs", a - s; else print "?" }') rip=$rip code=[$code]"
	fi
	echo "$mode #$n: $outcome wall=$((t1 - t0))s$detail" | tee -a "$out/boots.txt"
}

: >"$out/boots.txt"
running=0
for n in $(seq 1 "$boots"); do
	for mode in $modes; do
		one "$mode" "$n" &
		running=$((running + 1))
		if [ "$running" -ge "$parallel" ]; then
			wait -n
			running=$((running - 1))
		fi
	done
done
wait

echo "# summary ($label, $secs s per boot)"
for mode in $modes; do
	total=$(grep -c "^$mode #" "$out/boots.txt")
	crashed=$(grep -c "^$mode #.*: int3" "$out/boots.txt")
	others=$(grep "^$mode #" "$out/boots.txt" | grep -vcE ': (int3|ok) ')
	echo "$([ "$mode" = kvm ] && echo accel=kvm || echo "tcg=$mode"): $crashed/$total boots with Oops: int3 (other failures: $others)"
done | tee "$out/summary.txt"
