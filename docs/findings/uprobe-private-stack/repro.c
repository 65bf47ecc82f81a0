// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * repro: shows that, from Linux 6.13 on x86-64, a uprobe BPF program whose
 * frame is >= 64 bytes runs on a per-CPU private stack that two preempted
 * runs on one CPU share, so records built on the stack get corrupted.
 *
 * It attaches one uprobe program at a time (repro.bpf.c: rec_stack builds the
 * record on the stack, rec_reserve in the ring-buffer reservation, rec_sleep is
 * a sleepable rec_stack that sleeps mid-frame, rec_sleep_reserve its control)
 * to traced() in itself, starts
 * THREADS threads that call traced(arg, 3 * arg + 1, k, page) CALLS times
 * each, thread i with its own arg, and checks every record:
 * the arguments must belong to the thread that submitted the record, the tid
 * read when the record was started must be the submitter's, and every call
 * must be recorded exactly once.
 *
 *   repro [-t THREADS] [-n CALLS] [-r RUNS] [-p PROG[,PROG...]]
 *         [-s SPIN] [-S USEC] [-P MODE[,MODE...]] [-1] [-v]
 *   repro --initramfs FILE    write a newc initramfs whose /init is this program
 *
 * -P switches the kernel's preemption model at run time through
 * /sys/kernel/debug/sched/preempt (PREEMPT_DYNAMIC kernels; debugfs is mounted
 * if needed) and measures each mode in turn; without it the current model is
 * measured. As PID 1 (the initramfs) it mounts proc, sysfs and debugfs, takes
 * its options from the kernel command line after `--`, and powers off.
 *
 * Output: one `RESULT key=value ...` line per (mode, program); exit status 1
 * when a reserve-built record (rec_reserve, rec_sleep_reserve) was inconsistent
 * (that would be a different bug).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

/* The BPF object, embedded so that one static binary is all a VM needs. */
__asm__(".section .rodata\n"
	".balign 8\n"
	".global repro_bpf_o\n"
	"repro_bpf_o:\n"
	".incbin \"" BPF_OBJ "\"\n"
	".global repro_bpf_o_end\n"
	"repro_bpf_o_end:\n"
	".previous\n");
extern const char repro_bpf_o[], repro_bpf_o_end[];

#define NPAD 5
struct record {
	uint64_t tid_at_entry;
	uint64_t arg0;
	uint64_t arg1;
	uint64_t pad[NPAD];
	uint64_t seq;
	uint64_t tid_at_submit;
};

#define MAX_THREADS 64
#define ARG_BASE 0x10000
#define ARG_STEP 0x1000

/* The traced function. noinline + used: a real call with a symbol to attach to.
 * `page` is what rec_sleep reads (the others ignore it). */
__attribute__((noinline, used)) long traced(long a, long b, long k, const void *page)
{
	__asm__ volatile("" : : "r"(page) : "memory");
	return a + b + k;
}

static struct {
	int threads;
	long calls;
	int runs;
	int spin;
	int one_cpu;
	int verbose;
	int sleep_us;
	const char *progs;
	char modes[256];
} opt = { 4, 2000, 20, 0, 0, 0, 2000, "stack,reserve", "" };

/*
 * rec_sleep's pages: one per (thread, call), registered with a userfaultfd in
 * "missing" mode, so the program's read of its page faults and the fault
 * waits until the handler thread answers (after opt.sleep_us). Emptied
 * (MADV_DONTNEED) before every run so that every read faults again.
 */
static char *uffd_pages;
static size_t uffd_len;
static int uffd = -1;
static long uffd_faults;
#define PAGE 4096

struct worker {
	pthread_t thread;
	int index;
	pid_t tid;
	pthread_barrier_t *start;
};

static void *worker_main(void *p)
{
	struct worker *w = p;
	long a = ARG_BASE + (long)w->index * ARG_STEP;

	w->tid = (pid_t)syscall(SYS_gettid);
	if (opt.one_cpu) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(0, &set);
		sched_setaffinity(0, sizeof(set), &set);
	}
	pthread_barrier_wait(w->start);
	for (long k = 0; k < opt.calls; k++)
		traced(a, 3 * a + 1, k, uffd_pages ? uffd_pages + ((size_t)w->index * opt.calls + k) * PAGE : NULL);
	return NULL;
}

static void *uffd_main(void *unused)
{
	(void)unused;
	for (;;) {
		struct uffd_msg msg;
		struct pollfd p = { .fd = uffd, .events = POLLIN };

		if (poll(&p, 1, -1) < 0 || read(uffd, &msg, sizeof(msg)) != sizeof(msg))
			continue;
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		if (opt.sleep_us)
			usleep(opt.sleep_us);
		struct uffdio_zeropage z = { .range = { .start = msg.arg.pagefault.address & ~(__u64)(PAGE - 1), .len = PAGE } };
		ioctl(uffd, UFFDIO_ZEROPAGE, &z);
		__atomic_add_fetch(&uffd_faults, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

/* Sets up rec_sleep's pages and their fault handler (once). */
static void uffd_setup(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg;
	pthread_t t;

	uffd_len = (size_t)opt.threads * opt.calls * PAGE;
	uffd_pages = mmap(NULL, uffd_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd_pages == MAP_FAILED || uffd < 0 || ioctl(uffd, UFFDIO_API, &api)) {
		fprintf(stderr, "repro: userfaultfd: %s (needs CONFIG_USERFAULTFD)\n", strerror(errno));
		exit(2);
	}
	reg = (struct uffdio_register){ .range = { .start = (unsigned long)uffd_pages, .len = uffd_len },
					.mode = UFFDIO_REGISTER_MODE_MISSING };
	if (ioctl(uffd, UFFDIO_REGISTER, &reg)) {
		fprintf(stderr, "repro: UFFDIO_REGISTER: %s\n", strerror(errno));
		exit(2);
	}
	pthread_create(&t, NULL, uffd_main, NULL);
}

/* What one run's records showed. */
struct tally {
	long records;
	long bad;      /* inconsistent records */
	long foreign;  /* ... of which the contents were another thread's */
	long lost;     /* calls with no consistent record */
	long dup;      /* calls recorded more than once */
	int nthreads;
	struct worker *w;
	unsigned char *seen; /* threads * calls */
	int printed;
};

static int owner_of(struct tally *t, uint32_t tid)
{
	for (int i = 0; i < t->nthreads; i++)
		if ((uint32_t)t->w[i].tid == tid)
			return i;
	return -1;
}

static int on_record(void *ctx, void *data, size_t size)
{
	struct tally *t = ctx;
	const struct record *r = data;
	int idx, bad = 0;
	long a;

	t->records++;
	if (size < sizeof(*r)) {
		t->bad++;
		return 0;
	}
	idx = owner_of(t, (uint32_t)r->tid_at_submit);
	if (idx < 0) {
		t->bad++;
		return 0;
	}
	a = ARG_BASE + (long)idx * ARG_STEP;
	if (r->tid_at_entry != r->tid_at_submit || (long)r->arg0 != a || (long)r->arg1 != 3 * a + 1)
		bad = 1;
	for (int i = 0; i < NPAD; i++)
		if ((long)r->pad[i] != a + 1 + i)
			bad = 1;
	if ((long)r->seq < 0 || (long)r->seq >= opt.calls)
		bad = 1;
	if (bad) {
		t->bad++;
		if (owner_of(t, (uint32_t)r->tid_at_entry) >= 0 && owner_of(t, (uint32_t)r->tid_at_entry) != idx)
			t->foreign++;
		if (t->printed < 3) {
			t->printed++;
			printf("  bad record: submitted by thread %d (tid %u), started by tid %u, arg0 %#lx (thread %d's is %#lx), seq %ld\n",
			       idx, (uint32_t)r->tid_at_submit, (uint32_t)r->tid_at_entry, (long)r->arg0, idx, a, (long)r->seq);
		}
		return 0;
	}
	if (t->seen[(size_t)idx * opt.calls + r->seq]++)
		t->dup++;
	return 0;
}

static char *read_file(const char *path, char *buf, size_t n)
{
	int fd = open(path, O_RDONLY);
	ssize_t got;

	buf[0] = 0;
	if (fd < 0)
		return NULL;
	got = read(fd, buf, n - 1);
	close(fd);
	if (got < 0)
		return NULL;
	buf[got] = 0;
	while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == ' '))
		buf[--got] = 0;
	return buf;
}

#define PREEMPT_FILE "/sys/kernel/debug/sched/preempt"

/* The current preemption model, e.g. "full", from "none voluntary (full) lazy". */
static const char *preempt_now(char *out, size_t n)
{
	char buf[256], *l, *r;

	if (!read_file(PREEMPT_FILE, buf, sizeof(buf)) || !(l = strchr(buf, '(')) || !(r = strchr(l, ')'))) {
		snprintf(out, n, "unknown");
		return out;
	}
	*r = 0;
	snprintf(out, n, "%s", l + 1);
	return out;
}

static void ensure_debugfs(void)
{
	struct stat st;

	if (stat("/sys/kernel/debug/sched", &st) == 0)
		return;
	if (mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL) && errno != EBUSY)
		fprintf(stderr, "repro: mount debugfs: %s\n", strerror(errno));
}

static int set_preempt(const char *mode)
{
	char now[64];
	int fd = open(PREEMPT_FILE, O_WRONLY);

	if (fd < 0 || write(fd, mode, strlen(mode)) < 0) {
		fprintf(stderr, "repro: cannot switch preemption to %s via %s: %s (needs CONFIG_PREEMPT_DYNAMIC and debugfs)\n",
			mode, PREEMPT_FILE, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	if (strcmp(preempt_now(now, sizeof(now)), mode)) {
		fprintf(stderr, "repro: asked for preempt=%s, kernel says %s\n", mode, now);
		return -1;
	}
	return 0;
}

/*
 * The program's stack depth from the verifier's stats log: "stack depth 88"
 * (6.18), or "subprog 0 (rec_stack) main ... stack 88" (7.3, which prints the
 * call chain's rounded maximum as "stack depth max 96" first).
 */
#define NPROGS 4
static const char *const prog_names[NPROGS] = { "rec_stack", "rec_reserve", "rec_sleep", "rec_sleep_reserve" };
#define SLEEPS(which) ((which) >= 2)
static char logbuf[NPROGS][1 << 16];

static void stack_depth(int which, char *out, size_t n)
{
	char *p = strstr(logbuf[which], "subprog 0 (");

	if (p && (p = strstr(p, " stack "))) {
		p += strlen(" stack ");
	} else if ((p = strstr(logbuf[which], "stack depth "))) {
		p += strlen("stack depth ");
	} else {
		snprintf(out, n, "?");
		return;
	}
	snprintf(out, n, "%.*s", (int)strcspn(p, "\n "), p);
}

/*
 * Whether the JIT gave the program a private stack: x86-64's
 * emit_priv_frame_ptr() emits `add r9, gs:[this_cpu_off]` (65 4c 03 0c 25)
 * right after loading the per-CPU stack address into r9.
 */
static const char *jit_private_stack(int prog_fd, const char *name)
{
	static unsigned char img[1 << 16];
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);
	static const unsigned char pat[] = { 0x65, 0x4c, 0x03, 0x0c, 0x25 };

	if (bpf_prog_get_info_by_fd(prog_fd, &info, &len) || !info.jited_prog_len || info.jited_prog_len > sizeof(img))
		return "unknown";
	__u32 jlen = info.jited_prog_len;
	memset(&info, 0, sizeof(info));
	info.jited_prog_len = jlen;
	info.jited_prog_insns = (__u64)(unsigned long)img;
	len = sizeof(info);
	if (bpf_prog_get_info_by_fd(prog_fd, &info, &len))
		return "unknown";
	if (getenv("REPRO_DUMP_JIT")) {
		/* REPRO_DUMP_JIT=DIR: DIR/NAME.jit holds the x86 code (objdump -D -b binary -mi386:x86-64). */
		char path[512];
		FILE *f;

		snprintf(path, sizeof(path), "%s/%s.jit", getenv("REPRO_DUMP_JIT"), name);
		if ((f = fopen(path, "wb"))) {
			fwrite(img, 1, jlen, f);
			fclose(f);
		}
	}
	for (__u32 i = 0; i + sizeof(pat) <= jlen; i++)
		if (!memcmp(img + i, pat, sizeof(pat)))
			return "yes";
	return "no";
}

static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return level == LIBBPF_WARN ? vfprintf(stderr, fmt, ap) : 0;
}

/* rec_sleep's failed user reads so far (its .bss counter), then reset. */
static unsigned long long read_errors(struct bpf_object *obj)
{
	struct bpf_map *m;
	unsigned long long n = 0;

	bpf_object__for_each_map(m, obj) {
		const char *name = bpf_map__name(m);
		size_t sz;
		__u64 *v;

		if (strlen(name) >= 4 && !strcmp(name + strlen(name) - 4, ".bss") && (v = bpf_map__initial_value(m, &sz)) &&
		    sz >= 8) {
			n = __atomic_exchange_n(v, 0, __ATOMIC_RELAXED);
		}
	}
	return n;
}

/* Runs the workload opt.runs times with `prog` attached; prints one RESULT line.
 * Returns the number of inconsistent records. */
static long measure(struct bpf_object *obj, struct bpf_program *prog, int which, const char *mode_label)
{
	struct ring_buffer *rb;
	struct bpf_link *link;
	struct tally t = {};
	struct worker w[MAX_THREADS];
	long bad = 0, foreign = 0, lost = 0, dup = 0, records = 0;
	int bad_runs = 0;
	char depth[64], cpu[128] = "", line[256];
	struct utsname u;
	LIBBPF_OPTS(bpf_uprobe_opts, uo, .func_name = "traced");
	__u64 dropped = 0;
	__u32 zero = 0;

	link = bpf_program__attach_uprobe_opts(prog, 0, "/proc/self/exe", 0, &uo);
	if (!link) {
		fprintf(stderr, "repro: attach %s: %s\n", bpf_program__name(prog), strerror(errno));
		exit(2);
	}
	rb = ring_buffer__new(bpf_map__fd(bpf_object__find_map_by_name(obj, "events")), on_record, &t, NULL);
	if (!rb) {
		fprintf(stderr, "repro: ring buffer: %s\n", strerror(errno));
		exit(2);
	}
	t.seen = malloc((size_t)opt.threads * opt.calls);
	if (SLEEPS(which) && !uffd_pages)
		uffd_setup();
	long faults_before = uffd_faults;
	for (int run = 0; run < opt.runs; run++) {
		pthread_barrier_t start;
		long before = t.bad;

		if (SLEEPS(which) && madvise(uffd_pages, uffd_len, MADV_DONTNEED)) /* every page faults again */
			perror("repro: madvise");

		pthread_barrier_init(&start, NULL, opt.threads);
		for (int i = 0; i < opt.threads; i++) {
			w[i] = (struct worker){ .index = i, .start = &start };
			pthread_create(&w[i].thread, NULL, worker_main, &w[i]);
		}
		for (int i = 0; i < opt.threads; i++)
			pthread_join(w[i].thread, NULL);
		pthread_barrier_destroy(&start);
		memset(t.seen, 0, (size_t)opt.threads * opt.calls);
		t.w = w;
		t.nthreads = opt.threads;
		ring_buffer__consume(rb);
		for (long i = 0; i < (long)opt.threads * opt.calls; i++)
			t.lost += !t.seen[i];
		if (t.bad > before)
			bad_runs++;
	}
	records = t.records;
	bad = t.bad;
	foreign = t.foreign;
	lost = t.lost;
	dup = t.dup;
	bpf_map__lookup_elem(bpf_object__find_map_by_name(obj, "dropped"), &zero, sizeof(zero), &dropped, sizeof(dropped), 0);
	ring_buffer__free(rb);
	bpf_link__destroy(link);
	free(t.seen);

	uname(&u);
	{
		FILE *f = fopen("/proc/cpuinfo", "r");

		while (f && fgets(line, sizeof(line), f))
			if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
				snprintf(cpu, sizeof(cpu), "%s", strchr(line, ':') + 2);
				cpu[strcspn(cpu, "\n")] = 0;
				break;
			}
		if (f)
			fclose(f);
	}
	stack_depth(which, depth, sizeof(depth));
	char sleep_info[96] = "";

	if (SLEEPS(which))
		snprintf(sleep_info, sizeof(sleep_info), "sleep_us=%d faults=%ld read_errors=%llu ", opt.sleep_us,
			 uffd_faults - faults_before, (unsigned long long)read_errors(obj));
	printf("RESULT kernel=%s preempt=%s prog=%s stack_depth=%s jit_private_stack=%s threads=%d calls=%ld runs=%d spin=%d "
	       "one_cpu=%d %srecords=%ld bad=%ld foreign=%ld lost=%ld dup=%ld bad_runs=%d dropped=%llu cpu=\"%s\"\n",
	       u.release, mode_label, bpf_program__name(prog), depth, jit_private_stack(bpf_program__fd(prog), bpf_program__name(prog)), opt.threads,
	       opt.calls, opt.runs, opt.spin, opt.one_cpu, sleep_info, records, bad, foreign, lost, dup, bad_runs,
	       (unsigned long long)dropped, cpu);
	fflush(stdout);
	/* Reset the drop counter for the next measurement. */
	dropped = 0;
	bpf_map__update_elem(bpf_object__find_map_by_name(obj, "dropped"), &zero, sizeof(zero), &dropped, sizeof(dropped), 0);
	return bad;
}

/* ---- initramfs: a newc archive with this program as /init ---- */

static void cpio_entry(FILE *f, const char *name, unsigned mode, unsigned rmaj, unsigned rmin, const void *data, size_t len)
{
	static unsigned ino = 1;
	size_t namesize = strlen(name) + 1, hdr;

	hdr = (size_t)fprintf(f, "070701%08X%08X%08X%08X%08X%08X%08lX%08X%08X%08X%08X%08lX%08X", ino++, mode, 0, 0, 1, 0,
			      (unsigned long)len, 0, 0, rmaj, rmin, (unsigned long)namesize, 0);
	fwrite(name, 1, namesize, f);
	for (size_t p = (hdr + namesize) % 4; p && p < 4; p++)
		fputc(0, f);
	if (len) {
		fwrite(data, 1, len, f);
		for (size_t p = len % 4; p && p < 4; p++)
			fputc(0, f);
	}
}

static int write_initramfs(const char *out)
{
	FILE *self = fopen("/proc/self/exe", "rb"), *f = fopen(out, "wb");
	char *bin;
	long n;

	if (!self || !f) {
		perror("repro: initramfs");
		return 2;
	}
	fseek(self, 0, SEEK_END);
	n = ftell(self);
	rewind(self);
	bin = malloc(n);
	if (fread(bin, 1, n, self) != (size_t)n) {
		perror("repro: read self");
		return 2;
	}
	cpio_entry(f, "dev", 040755, 0, 0, NULL, 0);
	cpio_entry(f, "dev/console", 020600, 5, 1, NULL, 0);
	cpio_entry(f, "proc", 040755, 0, 0, NULL, 0);
	cpio_entry(f, "sys", 040755, 0, 0, NULL, 0);
	cpio_entry(f, "init", 0100755, 0, 0, bin, n);
	cpio_entry(f, "TRAILER!!!", 0, 0, 0, NULL, 0);
	fclose(f);
	fclose(self);
	printf("wrote %s (%ld-byte /init)\n", out, n);
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: repro [-t THREADS] [-n CALLS] [-r RUNS] [-p PROG[,PROG...]] [-s SPIN] [-S USEC] [-P MODE[,MODE...]] [-1] [-v]\n"
		"       repro --initramfs FILE\n"
		"  -t  threads calling traced() at once, each with its own argument (default 4)\n"
		"  -n  calls per thread per run (default 2000)\n"
		"  -r  runs per measurement (default 20)\n"
		"  -p  programs, in turn (default stack,reserve): stack = rec_stack (record on the BPF stack),\n"
		"      reserve = rec_reserve (in the reservation), sleep = rec_sleep (sleepable rec_stack that\n"
		"      faults on a userfaultfd page mid-frame), sleep-reserve = rec_sleep_reserve (the same\n"
		"      with the record in the reservation)\n"
		"  -s  bpf_ktime_get_ns() calls between building and copying the record (default 0; max 256)\n"
		"  -S  rec_sleep: microseconds before a fault is answered (default 2000)\n"
		"  -P  preemption models to switch to in turn via " PREEMPT_FILE "\n"
		"  -1  pin every thread to CPU 0\n"
		"  -v  print the verifier's stats log of both programs\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int init = getpid() == 1, c, status = 0;
	struct bpf_object *obj;
	struct bpf_program *progs[NPROGS];
	int want[NPROGS] = { 0 };
	char now[64], cmdline[1024];
	struct utsname u;

	if (argc == 3 && !strcmp(argv[1], "--initramfs"))
		return write_initramfs(argv[2]);
	if (init) {
		mount("proc", "/proc", "proc", 0, NULL);
		mount("sysfs", "/sys", "sysfs", 0, NULL);
		mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL);
		setvbuf(stdout, NULL, _IOLBF, 0);
	}
	while ((c = getopt(argc, argv, "t:n:r:p:s:S:P:1vh")) != -1) {
		switch (c) {
		case 't': opt.threads = atoi(optarg); break;
		case 'n': opt.calls = atol(optarg); break;
		case 'r': opt.runs = atoi(optarg); break;
		case 'p': opt.progs = optarg; break;
		case 's': opt.spin = atoi(optarg); break;
		case 'S': opt.sleep_us = atoi(optarg); break;
		case 'P': snprintf(opt.modes, sizeof(opt.modes), "%s", optarg); break;
		case '1': opt.one_cpu = 1; break;
		case 'v': opt.verbose = 1; break;
		default: usage();
		}
	}
	if (opt.threads < 1 || opt.threads > MAX_THREADS || opt.calls < 1 || opt.runs < 1 || opt.spin < 0 || opt.spin > 256 ||
	    opt.sleep_us < 0)
		usage();
	{
		char list[128], *sv = NULL, *w;

		snprintf(list, sizeof(list), "%s", !strcmp(opt.progs, "both") ? "stack,reserve" : opt.progs);
		for (w = strtok_r(list, ",", &sv); w; w = strtok_r(NULL, ",", &sv)) {
			int k = !strcmp(w, "stack") ? 0 : !strcmp(w, "reserve") ? 1 : !strcmp(w, "sleep") ? 2 : !strcmp(w, "sleep-reserve") ? 3 : -1;

			if (k < 0)
				usage();
			want[k] = 1;
		}
	}

	uname(&u);
	read_file("/proc/cmdline", cmdline, sizeof(cmdline));
	printf("repro: kernel %s, cmdline: %s\n", u.release, cmdline);
	libbpf_set_print(libbpf_quiet);

	LIBBPF_OPTS(bpf_object_open_opts, oo, .object_name = "repro");
	obj = bpf_object__open_mem(repro_bpf_o, repro_bpf_o_end - repro_bpf_o, &oo);
	if (!obj) {
		fprintf(stderr, "repro: open BPF object: %s\n", strerror(errno));
		return 2;
	}
	for (int i = 0; i < NPROGS; i++) {
		progs[i] = bpf_object__find_program_by_name(obj, prog_names[i]);
		/* Only what was asked for: rec_sleep needs sleepable uprobes (6.0+). */
		bpf_program__set_autoload(progs[i], want[i]);
		bpf_program__set_log_level(progs[i], 4); /* BPF_LOG_STATS: "stack depth N" */
		bpf_program__set_log_buf(progs[i], logbuf[i], sizeof(logbuf[i]));
	}
	{
		struct bpf_map *m;

		bpf_object__for_each_map(m, obj) {
			size_t sz;
			const char *name = bpf_map__name(m);
			void *v;

			if (strlen(name) >= 7 && !strcmp(name + strlen(name) - 7, ".rodata") && (v = bpf_map__initial_value(m, &sz)) &&
			    sz >= 4)
				*(uint32_t *)v = (uint32_t)opt.spin; /* `spin`, the only .rodata variable */
		}
	}
	if (bpf_object__load(obj)) {
		fprintf(stderr, "repro: load BPF object: %s\n", strerror(errno));
		return 2;
	}
	if (opt.verbose)
		for (int i = 0; i < NPROGS; i++)
			if (want[i])
				printf("verifier stats log of %s:\n%s\n", bpf_program__name(progs[i]), logbuf[i]);

	/* Each mode in -P (or the current one), each program asked for. */
	char modes[256], *save = NULL, *mode;

	snprintf(modes, sizeof(modes), "%s", opt.modes[0] ? opt.modes : "-");
	if (opt.modes[0])
		ensure_debugfs();
	for (mode = strtok_r(modes, ",", &save); mode; mode = strtok_r(NULL, ",", &save)) {
		if (strcmp(mode, "-") && set_preempt(mode)) {
			printf("RESULT kernel=%s preempt=%s unavailable\n", u.release, mode);
			continue;
		}
		preempt_now(now, sizeof(now));
		if (!strcmp(now, "unknown") && !strcmp(mode, "-"))
			snprintf(now, sizeof(now), "unknown(boot)");
		for (int i = 0; i < NPROGS; i++) {
			if (!want[i])
				continue;
			if (measure(obj, progs[i], i, now) && (i == 1 || i == 3))
				status = 1;
		}
	}
	bpf_object__close(obj);
	if (init) {
		printf("repro: done, powering off\n");
		fflush(stdout);
		sync();
		reboot(RB_POWER_OFF);
	}
	return status;
}
