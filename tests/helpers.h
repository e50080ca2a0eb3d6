/* SPDX-License-Identifier: MIT */
/* Test helpers (t_ prefix): bounded child processes, shared scratch memory,
 * loops that cannot hang. Every wait in a test has a bound. */
#ifndef AIOP_TEST_HELPERS_H
#define AIOP_TEST_HELPERS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <aiop.h>
#include <aiop/ev.h>

#define T_MS 1000000LL
#define T_SEC 1000000000LL
/* bound on reaping a child: generous, valgrind runs 20x slower */
#define T_REAP_MS 30000

/* Exit codes a child uses to report; 0 = ok. */
#define T_CHILD_TIMEOUT -1000 /* t_reap: child did not exit in time */

/* Run fn(arg) in a child process; the child exits with fn's return value. */
pid_t t_fork(int (*fn)(void *arg), void *arg);
/* Wait up to timeout_ms for pid; returns its exit code, -signal if it was
 * killed, or T_CHILD_TIMEOUT (after SIGKILLing and reaping it). */
int t_reap(pid_t pid, int timeout_ms);
/* Zeroed MAP_SHARED|MAP_ANONYMOUS memory, inherited by children. */
void *t_shared(size_t size);
void t_unshared(void *p, size_t size);
/* Open descriptors of this process (the count includes the directory's
 * own descriptor, the same every time), or -1 without /proc. */
int t_fd_count(void);

/* Monotonic nanoseconds. */
uint64_t t_now(void);
/* Sleep for ms milliseconds. */
void t_msleep(int ms);
/* Milliseconds from environment variable name (a positive integer), else
 * def: how long the stress and torture suites run (AIOP_STRESS_MS). */
int t_env_ms(const char *name, int def);
/* Run loop until it has nothing left or max_ms passed; returns false if
 * the bound was hit (the test should fail). */
bool t_run(struct ev_loop *loop, int max_ms);
/* Spin-wait (with sleeps) until *flag is non-zero, up to max_ms. */
bool t_wait_flag(volatile int *flag, int max_ms);
/* a pause instruction, to stretch a critical section */
static inline void
aiop__t_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* xorshift PRNG for reproducible random mixes */
uint32_t t_rand(uint64_t *state);

/* A coro op plus what its callback saw. */
struct t_op {
	struct aiop_op op;
	int result;
	int calls;
	bool in_start; /* set while the start call runs */
};
void t_op_cb(struct ev_loop *loop, struct aiop_op *op, int result);

#endif
