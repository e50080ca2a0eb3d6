/* SPDX-License-Identifier: MIT */
/*
 * Shared (never FUTEX_PRIVATE_FLAG) futex calls: objects live in MAP_SHARED
 * memory mapped at different addresses in each process, so waiter and waker
 * must match by (inode, offset), which only the shared form does.
 */
#ifndef AIOP_FUTEX_H
#define AIOP_FUTEX_H

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>
#include <sys/syscall.h>

/*
 * Sleep while *addr == val, until an absolute CLOCK_MONOTONIC deadline
 * (NULL = none). FUTEX_WAIT_BITSET takes an absolute time, so a retry never
 * stretches the timeout. Returns 0 (woken, maybe spuriously), -EAGAIN (value
 * changed), -ETIMEDOUT or -EINTR.
 */
static inline int
aiop__futex_wait(_Atomic uint32_t *addr, uint32_t val,
		 const struct timespec *abs_deadline)
{
	long r = syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_BITSET, val,
			 abs_deadline, NULL, FUTEX_BITSET_MATCH_ANY);
	return r < 0 ? -errno : 0;
}

/* Wake up to n sleepers; returns how many were woken or -errno. */
static inline int
aiop__futex_wake(_Atomic uint32_t *addr, int n)
{
	long r = syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE, n, NULL,
			 NULL, 0);
	return r < 0 ? -errno : (int)r;
}

#endif /* AIOP_FUTEX_H */
