/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the benchmarks: clock, shared pages, CPU placement, bounded
 * reaping of children, CPU time of another process, medians. Nothing here
 * knows about aiop, so the same helpers serve the raw baselines.
 */
#ifndef AIOP_BENCH_UTIL_H
#define AIOP_BENCH_UTIL_H

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define BENCH_NS_PER_S 1000000000ull
#define BENCH_NS_PER_MS 1000000ull
/* Rounds a benchmark may run: sizes the per-round arrays of its cells. */
#define BENCH_MAX_ROUNDS 15

static inline uint64_t
bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * BENCH_NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* One poll step of a busy wait: `pause` lets the sibling hyperthread (or,
 * in a VM, the host) run and avoids the memory-order flush on exit. */
static inline void
bench_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

/* Absolute CLOCK_MONOTONIC nanoseconds as a timespec. */
void bench_ts(uint64_t abs_ns, struct timespec *ts);

/* Sleep for ns (restarted after signals, so it really sleeps that long). */
void bench_sleep_ns(uint64_t ns);

/* Zeroed MAP_SHARED anonymous memory, inherited by fork(); NULL on error. */
void *bench_shm_new(size_t size);
void bench_shm_free(void *p, size_t size);

/* The CPUs this process may use when it starts, and two of them. */
struct bench_cpus {
	cpu_set_t orig; /* restored for the unpinned placement */
	int n;          /* CPUs in orig */
	int a, b;       /* first and second CPU of orig; b = -1 if only one */
};

int bench_cpus_init(struct bench_cpus *c);

/* Where the processes of a measurement run: where the scheduler puts
 * them, split over two CPUs, or all on one CPU. */
enum placement { PL_UNPINNED, PL_SPLIT, PL_PINNED, PL_N };

extern const char *const bench_pl_names[PL_N];

/* Place process k of a measurement: unpinned, or on CPU a (every process
 * if pinned, the even ones if split) or b (the odd ones if split); 0 or
 * -errno. */
int bench_place(const struct bench_cpus *c, enum placement pl, int k);
/* Pin the calling process to one CPU; 0 or -errno. */
int bench_pin(int cpu);
/* Give the calling process back its original CPUs; 0 or -errno. */
int bench_unpin(const struct bench_cpus *c);

/* fork() after flushing stdio, so the child cannot print the parent's
 * buffered output a second time. */
pid_t bench_fork(void);

/*
 * Wait for a child at most timeout_ms; kill it (SIGKILL) if it is late, so
 * the benchmark can never hang on a child. Returns 0 if the child exited
 * with status 0, -ETIMEDOUT if it had to be killed, -ECHILD on a wait
 * error, or a positive value (its exit code, or 128 + signal) otherwise.
 */
int bench_reap(pid_t pid, int timeout_ms);

/* Wait at most timeout_ns until *ready (bumped by children that are set
 * up) reaches want; 0 or -ETIMEDOUT. */
int bench_wait_ready(_Atomic uint32_t *ready, uint32_t want,
		     uint64_t timeout_ns);

/* Seconds for alarm() so that it fires only after the measurement's
 * deadline (absolute CLOCK_MONOTONIC ns): a stuck read() then ends. */
unsigned bench_alarm_secs(uint64_t deadline);

/* CPU time (user + system) consumed so far by another process; 0 or -errno */
int bench_cpu_ns(pid_t pid, uint64_t *out);

/* Voluntary context switches of a process (each is one sleep); -1 if
 * /proc cannot tell. */
long bench_vol_ctxsw(pid_t pid);

/* What an idle waiter cost while it was watched. */
struct bench_idle {
	double cpu_pct, wakes_s, cpu_ms, wall_s;
	int err; /* 0, or -errno if /proc could not tell */
};

#define BENCH_IDLE_MAX 8

/* Watch n (<= BENCH_IDLE_MAX) processes for idle_ns: their CPU time (from /proc) and their
 * voluntary context switches (wake-ups) per second, into out[0..n). */
void bench_idle_watch(const pid_t *pid, int n, uint64_t idle_ns,
		      struct bench_idle *out);

/* SIGALRM handler that only interrupts: a blocking read() then fails with
 * EINTR instead of hanging. Install once; arm with alarm(). */
int bench_alarm_init(void);

/* Median of n values (n >= 1); v is reordered. */
double bench_median(double *v, int n);

/* Smallest and largest of n values. */
void bench_minmax(const double *v, int n, double *lo, double *hi);

/* Median of the values of src[0..n) that are not NAN (n <=
 * BENCH_MAX_ROUNDS); NAN if there are none. src is left as it is. */
double bench_median_of(const double *src, int n);

/* The median of a cell's n rounds (NAN if n is 0) and, if lo_hi is not
 * NULL, their smallest and largest value. */
double bench_cell_median(const double *v, int n, double lo_hi[2]);

/* A latency in the unit that keeps three significant digits ("ERR" for
 * NAN), and the same without the space for the [min - max] ranges. */
void bench_fmt_time(char *buf, size_t len, double ns);
void bench_fmt_bare(char *buf, size_t len, double ns);

/* --only A,B: true if text contains any of the comma-separated words of
 * only, or if only is NULL. */
bool bench_selected(const char *only, const char *text);

/* "- load average <when>: ...": how busy the shared machine was. */
void bench_print_load(const char *when);

/* One eventfd ping: 0 or -errno. */
static inline int
bench_efd_put(int fd)
{
	uint64_t one = 1;

	return write(fd, &one, sizeof(one)) == sizeof(one) ? 0 : -errno;
}

/* One eventfd pong: 0 or -errno. A stuck blocking read ends with EINTR
 * from the alarm (bench_alarm_init). */
static inline int
bench_efd_get(int fd)
{
	uint64_t v;

	return read(fd, &v, sizeof(v)) == sizeof(v) ? 0 : -errno;
}

/* Two eventfds for a ping-pong: fd[0] one way (non-blocking if asked,
 * for a reader in a libev loop), fd[1] the other way; 0 or -errno. */
int bench_efd_pair(int fd[2], bool nonblock_first);

/* First "model name" of /proc/cpuinfo, whether the CPU flags say
 * "hypervisor", and the cpuidle driver ("?" if unknown). */
void bench_machine(char *model, size_t model_len, bool *vm, char *idle,
		   size_t idle_len);

#endif /* AIOP_BENCH_UTIL_H */
