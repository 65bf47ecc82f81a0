// SPDX-License-Identifier: Apache-2.0
/*
 * probe-target: the program every case traces. Its functions have known
 * behaviour, and a step list drives it deterministically, so two loaders see
 * exactly the same workload.
 *
 *   probe-target [--wait] 'STEP; STEP; ...'     (or steps on stdin with -)
 *
 * With --wait it prints "ready" and blocks until it reads a line on stdin: the
 * runner reads /proc/PID/maps and attaches with this pid in that window.
 *
 * Every traced function takes two longs, so arg0 and arg1 are always defined
 * (a one-argument function would leave garbage in the second register).
 * Steps: see usage() below.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <sched.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <time.h>
#include <unistd.h>

#include "probe_target.h"

#define TRACED __attribute__((noinline, noclone, used, visibility("default")))

/* leaf(a, b) = a * 10 + b */
TRACED long pc_leaf(long a, long b)
{
	__asm__ volatile("" ::: "memory");
	return a * 10 + b;
}

/* recurse(n, b) = n + (n-1) + ... + 1 (+ b at the bottom); one frame per level. */
TRACED long pc_recurse(long n, long b)
{
	long r;

	if (n <= 0)
		return b;
	r = pc_recurse(n - 1, b);
	/* A barrier after the call keeps it a real call (no tail-recursion elimination). */
	__asm__ volatile("" : "+r"(r) : : "memory");
	return r + n;
}

/* Defined in nops.S: first instruction is a 5-byte nop / a 1-byte nop / a nop5
 * that straddles a page boundary. Each returns a + b. */
long pc_nop5(long a, long b);
long pc_nop1(long a, long b);
long pc_nop5_pagecross(long a, long b);
long pc_nop10(long a, long b);
long pc_nop10cs(long a, long b);

struct traced_fn {
	const char *name;
	long (*fn)(long, long);
};

static const struct traced_fn traced_fns[] = {
	{ "leaf", pc_leaf },
	{ "recurse", pc_recurse },
	{ "nop5", pc_nop5 },
	{ "nop1", pc_nop1 },
	{ "nop5_pagecross", pc_nop5_pagecross },
	{ "nop10", pc_nop10 },
	{ "nop10cs", pc_nop10cs },
	{ "lib_add", pc_lib_add },
	{ "usdt_args", pc_usdt_args },
	{ "usdt_sema", pc_usdt_sema },
	{ "usdt_rip", pc_usdt_rip },
	{ "usdt_nop5", pc_usdt_nop5 },
	{ "usdt_nop10", pc_usdt_nop10 },
};

static void usage(void)
{
	fprintf(stderr,
		"usage: probe-target [--wait] 'STEP; STEP; ...' | -\n"
		"steps:\n"
		"  call FN A [B]           call FN(A, B) once (B defaults to 0)\n"
		"  repeat N FN A [B]       call FN(A, B) N times\n"
		"  recurse N               call recurse(N, 0)\n"
		"  threads N FN A [B]      N threads, started together, each call FN(A, B) once\n"
		"  threads-distinct N M FN A [B]\n"
		"                          N threads, started together; thread i (0..N-1) calls\n"
		"                            FN(A + i, B) M times, so every thread's records are\n"
		"                            told apart by their arguments (and return values)\n"
		"  fork STEP               a child process runs STEP and exits; the parent waits\n"
		"  sleep MS                sleep MS milliseconds\n"
		"  inspect FN [OFF]        print `observe FN[+OFF] first=KIND trampoline=yes|no`:\n"
		"                            the instruction at FN+OFF read through /proc/self/mem\n"
		"                            (nop5, nop1, int3, call, other) and whether\n"
		"                            [uprobes-trampoline] is mapped (/proc/self/maps)\n"
		"  seccomp strict          install a filter that allows only the syscalls this\n"
		"                            program needs and kills the process on any other\n"
		"                            (the uretprobe/uprobe syscalls 335/336 included)\n"
		"  syscall NAME [ARG]      make a syscall with a known result, for kprobes:\n"
		"                            close FD, dup FD, getpgid PID, getppid,\n"
		"                            openat DFD (opens /nonexistent-probeconf: -ENOENT)\n"
		"  sema                    print `observe sema=N`: the probeconf:sema semaphore\n"
		"  bench N FN A            time N calls of FN(A, 0): print\n"
		"                            `observe bench FN calls=N ns=T` (CLOCK_MONOTONIC)\n"
		"  repeat-syscall N NAME [ARG]\n"
		"                          N raw syscalls NAME(ARG) (getpgid, close, dup), untimed\n"
		"  bench-syscall N NAME [ARG]\n"
		"                          time N raw syscalls NAME(ARG) (getpgid, close, dup):\n"
		"                            `observe bench sys_NAME calls=N ns=T`\n"
		"  pin CPU                 pin this thread to CPU (sched_setaffinity)\n"
		"functions: leaf recurse nop5 nop10 nop10cs nop1 nop5_pagecross lib_add\n"
		"           usdt_args usdt_sema usdt_rip usdt_nop5 usdt_nop10 (USDT sites)\n");
}

static const struct traced_fn *find_fn(const char *name)
{
	for (size_t i = 0; i < sizeof(traced_fns) / sizeof(traced_fns[0]); i++)
		if (!strcmp(traced_fns[i].name, name))
			return &traced_fns[i];
	fprintf(stderr, "probe-target: unknown function '%s'\n", name);
	usage();
	exit(2);
}

static long parse_long(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 0);
	if (errno || *end) {
		fprintf(stderr, "probe-target: not a number: '%s'\n", s);
		exit(2);
	}
	return v;
}

struct thread_arg {
	const struct traced_fn *fn;
	long a, b;
	long calls;
	pthread_barrier_t *start;
};

static void *thread_main(void *p)
{
	struct thread_arg *t = p;

	pthread_barrier_wait(t->start);
	for (long i = 0; i < t->calls; i++)
		t->fn->fn(t->a, t->b);
	return NULL;
}

/* n threads started together; thread i calls fn(a + i * step, b) `calls` times. */
static void run_threads(int n, long calls, long step, const struct traced_fn *fn, long a, long b)
{
	pthread_t tids[256];
	struct thread_arg args[256];
	pthread_barrier_t start;

	if (n < 1 || n > 256) {
		fprintf(stderr, "probe-target: threads: N must be 1..256\n");
		exit(2);
	}
	pthread_barrier_init(&start, NULL, n);
	for (int i = 0; i < n; i++) {
		args[i] = (struct thread_arg){ fn, a + i * step, b, calls, &start };
		if (pthread_create(&tids[i], NULL, thread_main, &args[i])) {
			perror("pthread_create");
			exit(3);
		}
	}
	for (int i = 0; i < n; i++)
		pthread_join(tids[i], NULL);
	pthread_barrier_destroy(&start);
}

/* The number of a one-argument syscall bench-syscall may loop on. */
static long syscall_nr(const char *name)
{
	if (!strcmp(name, "getpgid"))
		return SYS_getpgid;
	if (!strcmp(name, "close"))
		return SYS_close;
	if (!strcmp(name, "dup"))
		return SYS_dup;
	fprintf(stderr, "probe-target: bench-syscall: unknown syscall '%s' (getpgid, close, dup)\n", name);
	exit(2);
}

/*
 * Raw syscalls (no libc wrapper logic in between) whose return values are
 * deterministic for the arguments cases use, e.g. close(-1) = -EBADF.
 */
static void run_syscall(char **w, int n)
{
	long arg = n > 2 ? parse_long(w[2]) : 0;

	if (!strcmp(w[1], "close"))
		syscall(SYS_close, arg);
	else if (!strcmp(w[1], "dup"))
		syscall(SYS_dup, arg);
	else if (!strcmp(w[1], "getpgid"))
		syscall(SYS_getpgid, arg);
	else if (!strcmp(w[1], "getppid"))
		syscall(SYS_getppid);
	else if (!strcmp(w[1], "openat"))
		syscall(SYS_openat, arg, "/nonexistent-probeconf", O_RDONLY, 0);
	else {
		fprintf(stderr, "probe-target: unknown syscall '%s'\n", w[1]);
		usage();
		exit(2);
	}
}

/* The first instruction of fn as the process sees it now, via /proc/self/mem
 * (so a uprobe's int3 or an optimised uprobe's call shows). */
static const char *first_insn(const void *fn)
{
	unsigned char b[5] = { 0 };
	int fd = open("/proc/self/mem", O_RDONLY);

	if (fd < 0 || pread(fd, b, sizeof(b), (off_t)(unsigned long)fn) != sizeof(b)) {
		perror("probe-target: /proc/self/mem");
		exit(3);
	}
	close(fd);
	if (b[0] == 0x0f && b[1] == 0x1f && b[2] == 0x44 && b[3] == 0 && b[4] == 0)
		return "nop5";
	if (b[0] == 0x66 && (b[1] == 0x2e || b[1] == 0x66) && b[2] == 0x0f && b[3] == 0x1f && b[4] == 0x84)
		return "nop10";
	if (b[0] == 0x90)
		return "nop1";
	if (b[0] == 0xcc)
		return "int3";
	if (b[0] == 0xe8)
		return "call";
	return "other";
}

static int trampoline_mapped(void)
{
	char line[512];
	FILE *f = fopen("/proc/self/maps", "r");
	int found = 0;

	if (!f) {
		perror("probe-target: /proc/self/maps");
		exit(3);
	}
	while (fgets(line, sizeof(line), f))
		found |= strstr(line, "[uprobes-trampoline]") != NULL;
	fclose(f);
	return found;
}

static void run_inspect(const struct traced_fn *fn, long off)
{
	const char *at = (const char *)fn->fn + off;

	if (off)
		printf("observe %s+%ld first=%s trampoline=%s\n", fn->name, off, first_insn(at),
		       trampoline_mapped() ? "yes" : "no");
	else
		printf("observe %s first=%s trampoline=%s\n", fn->name, first_insn(at),
		       trampoline_mapped() ? "yes" : "no");
	fflush(stdout);
}

/*
 * A filter like a container runtime's default: an allow-list of what this
 * program needs after this point, default KILL_PROCESS. The uretprobe (335) and
 * uprobe (336) syscalls are deliberately absent: whether a traced process
 * survives then depends on whether the kernel lets them through seccomp.
 */
static void install_strict_seccomp(void)
{
	static const int allowed[] = {
		SYS_read, SYS_write, SYS_close, SYS_fstat, SYS_newfstatat, SYS_lseek,
		SYS_mmap, SYS_munmap, SYS_mprotect, SYS_brk, SYS_rt_sigreturn,
		SYS_rt_sigprocmask, SYS_rt_sigaction, SYS_futex, SYS_clone, SYS_clone3,
		SYS_set_robust_list, SYS_rseq, SYS_madvise, SYS_exit, SYS_exit_group,
		SYS_nanosleep, SYS_clock_nanosleep, SYS_getpid, SYS_gettid, SYS_wait4,
		SYS_openat, SYS_pread64, SYS_dup, SYS_getpgid, SYS_getppid,
	};
	struct sock_filter f[4 + 2 * (sizeof(allowed) / sizeof(allowed[0])) + 1];
	size_t n = 0;

	f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
		f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, allowed[i], 0, 1);
		f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	}
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
	struct sock_fprog prog = { .len = (unsigned short)n, .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog)) {
		perror("probe-target: seccomp");
		exit(3);
	}
}

static void run_step(char **w, int n);

static void run_fork(char **w, int n)
{
	pid_t pid = fork();
	int status;

	if (pid < 0) {
		perror("fork");
		exit(3);
	}
	if (pid == 0) {
		run_step(w, n);
		fflush(NULL);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "probe-target: forked child failed (status 0x%x)\n", status);
		exit(3);
	}
}

static void need(int n, int lo, int hi, const char *step)
{
	if (n < lo || n > hi) {
		fprintf(stderr, "probe-target: wrong number of words for '%s'\n", step);
		usage();
		exit(2);
	}
}

static void run_step(char **w, int n)
{
	if (n == 0)
		return;
	if (!strcmp(w[0], "call")) {
		need(n, 3, 4, "call");
		find_fn(w[1])->fn(parse_long(w[2]), n > 3 ? parse_long(w[3]) : 0);
	} else if (!strcmp(w[0], "repeat")) {
		need(n, 4, 5, "repeat");
		long count = parse_long(w[1]);
		const struct traced_fn *fn = find_fn(w[2]);
		long a = parse_long(w[3]), b = n > 4 ? parse_long(w[4]) : 0;

		for (long i = 0; i < count; i++)
			fn->fn(a, b);
	} else if (!strcmp(w[0], "recurse")) {
		need(n, 2, 2, "recurse");
		pc_recurse(parse_long(w[1]), 0);
	} else if (!strcmp(w[0], "threads")) {
		need(n, 4, 5, "threads");
		run_threads(parse_long(w[1]), 1, 0, find_fn(w[2]), parse_long(w[3]),
			    n > 4 ? parse_long(w[4]) : 0);
	} else if (!strcmp(w[0], "threads-distinct")) {
		need(n, 5, 6, "threads-distinct");
		long calls = parse_long(w[2]);

		if (calls < 0) {
			fprintf(stderr, "probe-target: threads-distinct: M must be >= 0\n");
			exit(2);
		}
		run_threads(parse_long(w[1]), calls, 1, find_fn(w[3]), parse_long(w[4]),
			    n > 5 ? parse_long(w[5]) : 0);
	} else if (!strcmp(w[0], "fork")) {
		need(n, 2, 64, "fork");
		run_fork(w + 1, n - 1);
	} else if (!strcmp(w[0], "bench")) {
		need(n, 4, 4, "bench");
		long count = parse_long(w[1]);
		const struct traced_fn *fn = find_fn(w[2]);
		long a = parse_long(w[3]);
		struct timespec t0, t1;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (long i = 0; i < count; i++)
			fn->fn(a, 0);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		printf("observe bench %s calls=%ld ns=%ld\n", fn->name, count,
		       (t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec));
		fflush(stdout);
	} else if (!strcmp(w[0], "repeat-syscall")) {
		need(n, 3, 4, "repeat-syscall");
		long count = parse_long(w[1]);
		long nr = syscall_nr(w[2]);
		long arg = n > 3 ? parse_long(w[3]) : 0;

		for (long i = 0; i < count; i++)
			syscall(nr, arg);
	} else if (!strcmp(w[0], "bench-syscall")) {
		need(n, 3, 4, "bench-syscall");
		long count = parse_long(w[1]);
		long nr = syscall_nr(w[2]);
		long arg = n > 3 ? parse_long(w[3]) : 0;
		struct timespec t0, t1;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (long i = 0; i < count; i++)
			syscall(nr, arg);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		printf("observe bench sys_%s calls=%ld ns=%ld\n", w[2], count,
		       (t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec));
		fflush(stdout);
	} else if (!strcmp(w[0], "pin")) {
		need(n, 2, 2, "pin");
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(parse_long(w[1]), &set);
		if (sched_setaffinity(0, sizeof(set), &set))
			perror("probe-target: pin (continuing unpinned)");
	} else if (!strcmp(w[0], "sema")) {
		need(n, 1, 1, "sema");
		printf("observe sema=%ld\n", pc_usdt_sema_value() ? 1L : 0L);
		fflush(stdout);
	} else if (!strcmp(w[0], "inspect")) {
		need(n, 2, 3, "inspect");
		run_inspect(find_fn(w[1]), n > 2 ? parse_long(w[2]) : 0);
	} else if (!strcmp(w[0], "seccomp")) {
		need(n, 2, 2, "seccomp");
		if (strcmp(w[1], "strict")) {
			fprintf(stderr, "probe-target: seccomp: only `strict` exists\n");
			exit(2);
		}
		install_strict_seccomp();
	} else if (!strcmp(w[0], "syscall")) {
		need(n, 2, 3, "syscall");
		run_syscall(w, n);
	} else if (!strcmp(w[0], "sleep")) {
		need(n, 2, 2, "sleep");
		long ms = parse_long(w[1]);
		struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

		nanosleep(&ts, NULL);
	} else {
		fprintf(stderr, "probe-target: unknown step '%s'\n", w[0]);
		usage();
		exit(2);
	}
}

/* Splits on ';' and newlines into steps, and steps on blanks into words. */
static void run_script(char *script)
{
	char *save_step, *step;

	for (step = strtok_r(script, ";\n", &save_step); step;
	     step = strtok_r(NULL, ";\n", &save_step)) {
		char *words[64], *save_word, *w;
		int n = 0;

		for (w = strtok_r(step, " \t", &save_word); w && n < 64;
		     w = strtok_r(NULL, " \t", &save_word))
			words[n++] = w;
		run_step(words, n);
	}
}

static char *read_all(FILE *f)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);

	for (;;) {
		size_t got = fread(buf + len, 1, cap - len - 1, f);

		len += got;
		if (got == 0)
			break;
		if (cap - len < 2)
			buf = realloc(buf, cap *= 2);
	}
	buf[len] = 0;
	return buf;
}

int main(int argc, char **argv)
{
	int wait_for_go = 0;
	char *script;
	int i = 1;

	if (i < argc && !strcmp(argv[i], "--wait")) {
		wait_for_go = 1;
		i++;
	}
	if (i != argc - 1 || !strcmp(argv[i], "--help")) {
		usage();
		return 2;
	}
	script = !strcmp(argv[i], "-") ? read_all(stdin) : strdup(argv[i]);
	if (wait_for_go) {
		char line[64];

		printf("ready %d\n", getpid());
		fflush(stdout);
		if (!fgets(line, sizeof(line), stdin))
			return 4; /* the runner went away: do nothing */
	}
	run_script(script);
	printf("done\n");
	fflush(stdout);
	return 0;
}
