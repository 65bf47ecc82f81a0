// SPDX-License-Identifier: MIT
//
// repro.c - /init of an initramfs that makes a Linux x86-64 guest patch its
// own kernel text (static keys / jump labels) as fast as it can while both
// vCPUs run the patched code. On a correct machine it runs for REPRO_SECS
// seconds and powers off. Under QEMU's multi-threaded TCG the guest kernel
// soon dies with "Oops: int3: 0000 [#1] SMP NOPTI" at a static-key site.
//
// Build: gcc -static -O2 -pthread -o init repro.c   (see Makefile)
//
// Knobs, as init's environment (put NAME=VALUE on the kernel command line;
// the kernel hands unknown NAME=VALUE parameters to init as environment):
//   REPRO_SECS=30          seconds of flipping (default 30)
//   REPRO_KEYS=all         comma list of: schedstats, features, perf, all
//   REPRO_PINGPONG=1       0 turns the two context-switching threads off
//   REPRO_PIN=0            1 pins the two ping-pong threads to CPU 0 and CPU 1
//                          (every wake-up then crosses CPUs: ~100x fewer
//                          context switches under TCG, and far fewer crashes)
//
// What it flips (each flip makes the kernel rewrite every site of the key
// with text_poke_bp / smp_text_poke_batch_finish, arch/x86/kernel/alternative.c):
//   schedstats: /proc/sys/kernel/sched_schedstats 1/0 (key sched_schedstats,
//               sites in kernel/sched/fair.c, core.c, stats.h)
//   features:   /sys/kernel/debug/sched/features NO_X / X for every feature
//               (one key per feature, sched_feat_keys[], kernel/sched/debug.c)
//   perf:       open + close a task-bound software perf event: enables the
//               perf_sched_events key; the kernel disables it again one
//               second after the last such event is gone (perf_sched_delayed,
//               kernel/events/core.c). Its sites are the context-switch hooks
//               inlined into __schedule.
// Meanwhile two threads bounce a byte through a pair of pipes, so the vCPUs
// go through __schedule and the CFS enqueue / dequeue paths (the patched
// sites) all the time. They are left to the scheduler by default (see
// REPRO_PIN).

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <linux/reboot.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SCHEDSTATS "/proc/sys/kernel/sched_schedstats"
#define FEATURES "/sys/kernel/debug/sched/features"

static atomic_bool stop;
static atomic_ulong n_switch, n_schedstats, n_features, n_perf;
static double deadline;
static int pp_a[2], pp_b[2], pin_threads;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n = snprintf(buf, sizeof buf, "repro: ");
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof buf - n, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof buf - 2)
		n = sizeof buf - 2;
	buf[n++] = '\n';
	if (write(1, buf, n) < 0) { /* nothing to do */ }
}

static void power_off(void)
{
	sync();
	reboot(RB_POWER_OFF);
	for (;;)
		pause();
}

static void pin(int cpu)
{
	if (!pin_threads)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof set, &set))
		say("sched_setaffinity(cpu %d): %s (left unpinned)", cpu, strerror(errno));
}

// Ping: writes to a, waits on b. Pong: waits on a, writes to b. Every read
// blocks, so each round trip is a wake-up and a context switch on each CPU.
static void *ping(void *arg)
{
	(void)arg;
	pin(0);
	char c = 1;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		if (write(pp_a[1], &c, 1) != 1 || read(pp_b[0], &c, 1) != 1)
			break;
		atomic_fetch_add_explicit(&n_switch, 2, memory_order_relaxed);
	}
	close(pp_a[1]);
	return NULL;
}

static void *pong(void *arg)
{
	(void)arg;
	pin(1);
	char c;
	while (read(pp_a[0], &c, 1) == 1)
		if (write(pp_b[1], &c, 1) != 1)
			break;
	close(pp_b[1]);
	return NULL;
}

// The numeric sysctl is written at offset 0 each time: with the default
// kernel.sysctl_writes_strict=1 a write at a non-zero file position is
// silently ignored, so plain write() on one fd would flip only once.
static int write_at0(int fd, const char *s)
{
	size_t len = strlen(s);
	return pwrite(fd, s, len, 0) == (ssize_t)len ? 0 : -1;
}

static int read_int(const char *path)
{
	char buf[32] = { 0 };
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	return n > 0 ? atoi(buf) : -1;
}

#define MAX_FEAT 64
static char feat_name[MAX_FEAT][48];
static int feat_on[MAX_FEAT], n_feat;

static int read_features(void)
{
	static char buf[4096];
	int fd = open(FEATURES, O_RDONLY);
	if (fd < 0)
		return -1;
	ssize_t n = 0, r;
	while ((r = read(fd, buf + n, sizeof buf - 1 - n)) > 0)
		n += r;
	close(fd);
	buf[n] = 0;
	for (char *save, *w = strtok_r(buf, " \n", &save); w && n_feat < MAX_FEAT; w = strtok_r(NULL, " \n", &save)) {
		int on = strncmp(w, "NO_", 3) != 0;
		snprintf(feat_name[n_feat], sizeof feat_name[0], "%s", on ? w : w + 3);
		feat_on[n_feat++] = on;
	}
	return n_feat;
}

// schedstats and the scheduler feature keys, in turn, until the deadline.
static void flip_sysfs(int do_stats, int do_feat)
{
	int stats_fd = -1, feat_fd = -1;
	if (do_stats) {
		stats_fd = open(SCHEDSTATS, O_WRONLY);
		if (stats_fd < 0)
			say("%s: %s (schedstats not flipped)", SCHEDSTATS, strerror(errno));
		else {
			// Check once that a flip takes effect.
			write_at0(stats_fd, "1");
			int v1 = read_int(SCHEDSTATS);
			write_at0(stats_fd, "0");
			int v0 = read_int(SCHEDSTATS);
			say("schedstats check: wrote 1 read %d, wrote 0 read %d", v1, v0);
		}
	}
	if (do_feat) {
		if (read_features() <= 0)
			say("%s: %s (features not flipped)", FEATURES, strerror(errno));
		else if ((feat_fd = open(FEATURES, O_WRONLY)) < 0)
			say("%s: %s (features not flipped)", FEATURES, strerror(errno));
		else
			say("%d scheduler features", n_feat);
	}
	if (stats_fd < 0 && feat_fd < 0)
		return;
	unsigned long i = 0;
	double next_report = now() + 5;
	while (now() < deadline) {
		if (stats_fd >= 0 && write_at0(stats_fd, i % 2 ? "0" : "1") == 0)
			atomic_fetch_add(&n_schedstats, 1);
		if (feat_fd >= 0) {
			int k = i % n_feat;
			char flip[64], back[64];
			snprintf(flip, sizeof flip, "%s%s", feat_on[k] ? "NO_" : "", feat_name[k]);
			snprintf(back, sizeof back, "%s%s", feat_on[k] ? "" : "NO_", feat_name[k]);
			// A feature that refuses the write is skipped.
			if (write(feat_fd, flip, strlen(flip)) > 0 && write(feat_fd, back, strlen(back)) > 0)
				atomic_fetch_add(&n_features, 2);
		}
		i++;
		if (now() >= next_report) {
			say("%.0f s left: flips schedstats %lu, features %lu, perf_sched_events %lu; context switches %lu",
			    deadline - now(), atomic_load(&n_schedstats), atomic_load(&n_features), atomic_load(&n_perf),
			    atomic_load(&n_switch));
			next_report += 5;
		}
	}
	if (stats_fd >= 0)
		write_at0(stats_fd, "0");
}

// perf_sched_events: a task-bound event enables the key on open; the
// disable is delayed by one second (perf_sched_delayed), hence the sleep.
static void *flip_perf(void *arg)
{
	(void)arg;
	struct perf_event_attr attr;
	memset(&attr, 0, sizeof attr);
	attr.type = PERF_TYPE_SOFTWARE;
	attr.size = sizeof attr;
	attr.config = PERF_COUNT_SW_DUMMY;
	while (now() + 1.2 < deadline) {
		int fd = syscall(SYS_perf_event_open, &attr, 0 /* this task */, -1 /* any cpu */, -1, PERF_FLAG_FD_CLOEXEC);
		if (fd < 0) {
			say("perf_event_open: %s (perf_sched_events not flipped)", strerror(errno));
			return NULL;
		}
		close(fd);
		atomic_fetch_add(&n_perf, 2);
		usleep(1200 * 1000);
	}
	return NULL;
}

static int has_key(const char *list, const char *key)
{
	if (!list || !*list || strstr(list, "all"))
		return 1;
	return strstr(list, key) != NULL;
}

int main(void)
{
	mkdir("/dev", 0755);
	mkdir("/proc", 0755);
	mkdir("/sys", 0755);
	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	int con = open("/dev/console", O_RDWR);
	if (con >= 0) {
		dup2(con, 0);
		dup2(con, 1);
		dup2(con, 2);
	}
	if (mount("proc", "/proc", "proc", 0, NULL))
		say("mount proc: %s", strerror(errno));
	if (mount("sysfs", "/sys", "sysfs", 0, NULL))
		say("mount sysfs: %s", strerror(errno));
	if (mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL))
		say("mount debugfs: %s", strerror(errno));

	const char *s = getenv("REPRO_SECS");
	int secs = s ? atoi(s) : 30;
	const char *keys = getenv("REPRO_KEYS");
	const char *pp = getenv("REPRO_PINGPONG");
	int pingpong = !pp || atoi(pp) != 0;
	const char *pn = getenv("REPRO_PIN");
	pin_threads = pn && atoi(pn) != 0;
	int do_stats = has_key(keys, "schedstats"), do_feat = has_key(keys, "features"), do_perf = has_key(keys, "perf");
	say("start at %.3f s since boot: %d s, keys:%s%s%s, ping-pong %s, %ld CPUs online", now(), secs, do_stats ? " schedstats" : "",
	    do_feat ? " features" : "", do_perf ? " perf_sched_events" : "",
	    pingpong ? (pin_threads ? "on (pinned to CPU 0 and 1)" : "on (unpinned)") : "off",
	    sysconf(_SC_NPROCESSORS_ONLN));

	double t0 = now();
	deadline = t0 + secs;
	pthread_t t_ping, t_pong, t_perf;
	if (pingpong) {
		if (pipe(pp_a) || pipe(pp_b)) {
			say("pipe: %s", strerror(errno));
			power_off();
		}
		pthread_create(&t_ping, NULL, ping, NULL);
		pthread_create(&t_pong, NULL, pong, NULL);
	}
	if (do_perf)
		pthread_create(&t_perf, NULL, flip_perf, NULL);
	if (do_stats || do_feat)
		flip_sysfs(do_stats, do_feat);
	else
		while (now() < deadline)
			sleep(1);
	if (do_perf)
		pthread_join(t_perf, NULL);
	atomic_store(&stop, 1);
	if (pingpong) {
		pthread_join(t_ping, NULL);
		pthread_join(t_pong, NULL);
	}
	say("done: %.1f s, flips schedstats %lu, features %lu, perf_sched_events %lu; context switches %lu",
	    now() - t0, atomic_load(&n_schedstats), atomic_load(&n_features), atomic_load(&n_perf),
	    atomic_load(&n_switch));
	power_off();
	return 0;
}
