/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

pid_t
t_fork(int (*fn)(void *arg), void *arg)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(fn(arg) & 0xff);
	return pid;
}

int
t_reap(pid_t pid, int timeout_ms)
{
	uint64_t end = t_now() + (uint64_t)timeout_ms * T_MS;
	int st;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			break;
		if (r < 0)
			return T_CHILD_TIMEOUT;
		if (t_now() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return T_CHILD_TIMEOUT;
		}
		t_msleep(1);
	}
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return WIFSIGNALED(st) ? -WTERMSIG(st) : -999;
}

void *
t_shared(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void
t_unshared(void *p, size_t size)
{
	munmap(p, size);
}

uint64_t
t_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int
t_env_ms(const char *name, int def)
{
	const char *s = getenv(name);
	int v = s ? atoi(s) : 0;

	return v > 0 ? v : def;
}

void
t_msleep(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0)
		;
}

static void
t_guard_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	*(bool *)w->data = true;
	ev_break(loop, EVBREAK_ALL);
}

bool
t_run(struct ev_loop *loop, int max_ms)
{
	ev_timer guard;
	bool hit = false;

	/* ev_now() is cached: a slow test body would start the guard in the
	 * past and have it fire at once */
	ev_now_update(loop);
	ev_timer_init(&guard, t_guard_cb, max_ms / 1000.0, 0.);
	guard.data = &hit;
	ev_timer_start(loop, &guard);
	/* the guard keeps the loop alive; stop once only it is left */
	ev_unref(loop);
	ev_run(loop, 0);
	ev_ref(loop);
	ev_timer_stop(loop, &guard);
	return !hit;
}

bool
t_wait_flag(volatile int *flag, int max_ms)
{
	uint64_t end = t_now() + (uint64_t)max_ms * T_MS;

	while (!__atomic_load_n(flag, __ATOMIC_SEQ_CST)) {
		if (t_now() > end)
			return false;
		t_msleep(1);
	}
	return true;
}

uint32_t
t_rand(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return (uint32_t)(x >> 11);
}

void
t_op_cb(struct ev_loop *loop, struct aiop_op *op, int result)
{
	struct t_op *t = (struct t_op *)op;

	t->result = result;
	t->calls++;
	if (t->in_start)
		t->calls += 1000; /* makes "ran inside start" visible */
}

int
t_fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}
