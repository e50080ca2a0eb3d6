/* SPDX-License-Identifier: MIT */
/* Helpers for the benchmarks; see bench_util.h. */
#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"

void
bench_ts(uint64_t abs_ns, struct timespec *ts)
{
	ts->tv_sec = (time_t)(abs_ns / BENCH_NS_PER_S);
	ts->tv_nsec = (long)(abs_ns % BENCH_NS_PER_S);
}

void
bench_sleep_ns(uint64_t ns)
{
	struct timespec ts;

	bench_ts(bench_now() + ns, &ts);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR)
		;
}

void *
bench_shm_new(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

void
bench_shm_free(void *p, size_t size)
{
	if (p)
		munmap(p, size);
}

int
bench_cpus_init(struct bench_cpus *c)
{
	memset(c, 0, sizeof(*c));
	if (sched_getaffinity(0, sizeof(c->orig), &c->orig) < 0)
		return -errno;
	c->n = CPU_COUNT(&c->orig);
	c->a = c->b = -1;
	for (int i = 0; i < CPU_SETSIZE; i++) {
		if (!CPU_ISSET(i, &c->orig))
			continue;
		if (c->a < 0)
			c->a = i;
		else if (c->b < 0)
			c->b = i;
	}
	return c->a < 0 ? -ENODEV : 0;
}

const char *const bench_pl_names[PL_N] = {
	[PL_UNPINNED] = "unpinned",
	[PL_SPLIT] = "split",
	[PL_PINNED] = "pinned",
};

int
bench_place(const struct bench_cpus *c, enum placement pl, int k)
{
	if (pl == PL_UNPINNED)
		return bench_unpin(c);
	if (pl == PL_SPLIT && k % 2)
		return bench_pin(c->b);
	return bench_pin(c->a);
}

int
bench_pin(int cpu)
{
	cpu_set_t s;

	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	return sched_setaffinity(0, sizeof(s), &s) < 0 ? -errno : 0;
}

int
bench_unpin(const struct bench_cpus *c)
{
	return sched_setaffinity(0, sizeof(c->orig), &c->orig) < 0 ? -errno
								   : 0;
}

pid_t
bench_fork(void)
{
	fflush(stdout);
	fflush(stderr);
	return fork();
}

static int
status_code(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return 255;
}

int
bench_reap(pid_t pid, int timeout_ms)
{
	uint64_t deadline;
	int st, pfd;
	pid_t w;

	deadline = bench_now() + (uint64_t)timeout_ms * BENCH_NS_PER_MS;
	/* A pidfd lets us sleep until the exit instead of polling. */
	pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd >= 0) {
		struct pollfd p = {.fd = pfd, .events = POLLIN};
		int r;

		do {
			uint64_t t = bench_now();
			int ms = t >= deadline ? 0
					       : (int)((deadline - t) /
						       BENCH_NS_PER_MS) + 1;
			r = poll(&p, 1, ms);
		} while (r < 0 && errno == EINTR);
		close(pfd);
	}
	for (;;) {
		w = waitpid(pid, &st, WNOHANG);
		if (w == pid)
			return status_code(st);
		if (w < 0 && errno != EINTR)
			return -ECHILD;
		if (bench_now() >= deadline)
			break;
		bench_sleep_ns(BENCH_NS_PER_MS);
	}
	kill(pid, SIGKILL);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return -ETIMEDOUT;
}

int
bench_wait_ready(_Atomic uint32_t *ready, uint32_t want, uint64_t timeout_ns)
{
	uint64_t dl = bench_now() + timeout_ns;

	while (atomic_load(ready) < want) {
		if (bench_now() > dl)
			return -ETIMEDOUT;
		bench_sleep_ns(20000);
	}
	return 0;
}

unsigned
bench_alarm_secs(uint64_t deadline)
{
	return (unsigned)((deadline - bench_now()) / BENCH_NS_PER_S) + 2;
}

int
bench_cpu_ns(pid_t pid, uint64_t *out)
{
	struct timespec ts;
	clockid_t cid;
	int r;

	/* The process CPU clock has nanosecond resolution; /proc/<pid>/stat
	 * counts 10 ms ticks, too coarse to tell 0.01 % from 0.5 %. */
	r = clock_getcpuclockid(pid, &cid);
	if (r != 0)
		return -r;
	if (clock_gettime(cid, &ts) < 0)
		return -errno;
	*out = (uint64_t)ts.tv_sec * BENCH_NS_PER_S + (uint64_t)ts.tv_nsec;
	return 0;
}

long
bench_vol_ctxsw(pid_t pid)
{
	char path[64], line[256];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

static void
on_alarm(int sig)
{
	(void)sig;
}

void
bench_idle_watch(const pid_t *pid, int n, uint64_t idle_ns,
		 struct bench_idle *out)
{
	uint64_t c0[BENCH_IDLE_MAX] = {0}, c1[BENCH_IDLE_MAX] = {0}, w0, w1;
	long v0[BENCH_IDLE_MAX], v1[BENCH_IDLE_MAX];

	if (n > BENCH_IDLE_MAX) {
		for (int k = 0; k < n; k++)
			out[k].err = -EINVAL;
		return;
	}
	w0 = bench_now();
	for (int k = 0; k < n; k++) {
		out[k].err = bench_cpu_ns(pid[k], &c0[k]);
		v0[k] = bench_vol_ctxsw(pid[k]);
	}
	bench_sleep_ns(idle_ns);
	w1 = bench_now();
	for (int k = 0; k < n; k++) {
		if (!out[k].err)
			out[k].err = bench_cpu_ns(pid[k], &c1[k]);
		v1[k] = bench_vol_ctxsw(pid[k]);
		out[k].wall_s = (double)(w1 - w0) / 1e9;
		out[k].cpu_ms = (double)(c1[k] - c0[k]) / 1e6;
		out[k].cpu_pct = 100.0 * (double)(c1[k] - c0[k]) /
				 (double)(w1 - w0);
		out[k].wakes_s = v0[k] < 0 || v1[k] < 0
					 ? NAN
					 : (double)(v1[k] - v0[k]) /
						   out[k].wall_s;
	}
}

int
bench_alarm_init(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: a stuck read() returns EINTR */
	return sigaction(SIGALRM, &sa, NULL) < 0 ? -errno : 0;
}

static int
cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return (a > b) - (a < b);
}

double
bench_median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void
bench_minmax(const double *v, int n, double *lo, double *hi)
{
	*lo = *hi = v[0];
	for (int i = 1; i < n; i++) {
		if (v[i] < *lo)
			*lo = v[i];
		if (v[i] > *hi)
			*hi = v[i];
	}
}

double
bench_median_of(const double *src, int n)
{
	double v[BENCH_MAX_ROUNDS];
	int m = 0;

	for (int k = 0; k < n && m < BENCH_MAX_ROUNDS; k++)
		if (!isnan(src[k]))
			v[m++] = src[k];
	return m ? bench_median(v, m) : NAN;
}

double
bench_cell_median(const double *v, int n, double lo_hi[2])
{
	if (n == 0)
		return NAN;
	if (lo_hi)
		bench_minmax(v, n, &lo_hi[0], &lo_hi[1]);
	return bench_median_of(v, n);
}

void
bench_fmt_time(char *buf, size_t len, double ns)
{
	if (isnan(ns))
		snprintf(buf, len, "ERR");
	else if (ns < 1e3)
		snprintf(buf, len, "%.0f ns", ns);
	else if (ns < 1e4)
		snprintf(buf, len, "%.2f us", ns / 1e3);
	else if (ns < 1e6)
		snprintf(buf, len, "%.1f us", ns / 1e3);
	else
		snprintf(buf, len, "%.2f ms", ns / 1e6);
}

void
bench_fmt_bare(char *buf, size_t len, double ns)
{
	/* the unit of the median already says it; keep ranges short */
	if (isnan(ns))
		snprintf(buf, len, "?");
	else if (ns < 1e3)
		snprintf(buf, len, "%.0fn", ns);
	else if (ns < 1e6)
		snprintf(buf, len, "%.3gu", ns / 1e3);
	else
		snprintf(buf, len, "%.3gm", ns / 1e6);
}

bool
bench_selected(const char *only, const char *text)
{
	const char *w = only;

	if (!w)
		return true;
	while (*w) {
		size_t n = strcspn(w, ",");
		char word[64];

		if (n > 0 && n < sizeof(word)) {
			memcpy(word, w, n);
			word[n] = '\0';
			if (strstr(text, word))
				return true;
		}
		w += n + (w[n] == ',');
	}
	return false;
}

void
bench_print_load(const char *when)
{
	char buf[128] = "?";
	FILE *f = fopen("/proc/loadavg", "re");

	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			snprintf(buf, sizeof(buf), "?");
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = '\0';
	printf("- load average %s: %s\n", when, buf);
}

int
bench_efd_pair(int fd[2], bool nonblock_first)
{
	fd[0] = eventfd(0, EFD_CLOEXEC | (nonblock_first ? EFD_NONBLOCK : 0));
	fd[1] = eventfd(0, EFD_CLOEXEC);
	return fd[0] < 0 || fd[1] < 0 ? -errno : 0;
}

static void
chomp(char *s)
{
	size_t n = strlen(s);

	while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
}

void
bench_machine(char *model, size_t model_len, bool *vm, char *idle,
	      size_t idle_len)
{
	char line[4096];
	FILE *f;

	snprintf(model, model_len, "?");
	snprintf(idle, idle_len, "?");
	*vm = false;
	f = fopen("/proc/cpuinfo", "re");
	if (f) {
		bool got_model = false, got_flags = false;

		while (fgets(line, sizeof(line), f) &&
		       !(got_model && got_flags)) {
			char *colon = strchr(line, ':');

			if (!colon)
				continue;
			if (!got_model && !strncmp(line, "model name", 10)) {
				chomp(colon + 2);
				snprintf(model, model_len, "%s", colon + 2);
				got_model = true;
			} else if (!got_flags && !strncmp(line, "flags", 5)) {
				*vm = strstr(colon, " hypervisor") != NULL;
				got_flags = true;
			}
		}
		fclose(f);
	}
	f = fopen("/sys/devices/system/cpu/cpuidle/current_driver", "re");
	if (f) {
		if (fgets(line, sizeof(line), f)) {
			chomp(line);
			snprintf(idle, idle_len, "%s", line);
		}
		fclose(f);
	}
}
