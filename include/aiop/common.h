/* SPDX-License-Identifier: MIT */
/**
 * @file aiop/common.h
 * Definitions shared by every aiop header: export macro, timeouts, errors,
 * version, spin configuration and debug counters.
 */
#ifndef AIOP_COMMON_H
#define AIOP_COMMON_H

#include <stdint.h>
#include <errno.h>

#include <aiop/version.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && !defined(AIOP_API)
#define AIOP_API __attribute__((visibility("default")))
#elif !defined(AIOP_API)
#define AIOP_API
#endif

/** Wait without a deadline (timeouts are relative nanoseconds; 0 = try). */
#define AIOP_FOREVER ((int64_t)-1)

/**
 * Describe an aiop return value.
 * @param err a value returned by an aiop call (negative errno, or >= 0)
 * @return a static string; never NULL
 */
AIOP_API const char *aiop_strerror(int err);

/** @return the library version as "MAJOR.MINOR.PATCH". */
AIOP_API const char *aiop_version(void);

/** How waiters spin before they sleep (see docs/design.md section 4). */
enum aiop_spin_mode {
	AIOP_SPIN_OFF = 0,   /**< never spin: sleep at once */
	AIOP_SPIN_AUTO = 1,  /**< adaptive (default) */
	AIOP_SPIN_FIXED = 2, /**< spin a fixed number of nanoseconds */
};

/**
 * Set this process's spin policy (also settable with env AIOP_SPIN=off|auto|N).
 * Blocking waits spin up to the fixed length; coro waiters never spin more
 * than 5 us (the loop must not be held); auto mode never above 100 us.
 * @param mode one of enum aiop_spin_mode
 * @param ns   spin length for AIOP_SPIN_FIXED, 0..1000000; ignored otherwise
 * @return 0, or -EINVAL for an unknown mode or an out-of-range ns
 */
AIOP_API int aiop_spin_set(enum aiop_spin_mode mode, int64_t ns);

/**
 * Per-process counters of what the engine asked of the kernel. They exist to
 * check the "no syscall when nobody waits" promise; they cost nothing on the
 * fast path (only the slow paths count).
 */
struct aiop_stats {
	uint64_t futex_waits;    /**< FUTEX_WAIT calls (a blocking sleep) */
	uint64_t futex_wakes;    /**< FUTEX_WAKE calls */
	uint64_t doorbell_rings; /**< eventfd writes to wake a loop */
	uint64_t doorbell_reads; /**< eventfd reads (drains) by a woken loop */
	uint64_t spins_ok;       /**< spins that ended with success (counted
				      without a locked instruction: threads
				      of a process spinning at the same
				      instant may lose a count) */
	uint64_t spins_failed;   /**< spins that ended in a sleep */
	uint64_t owner_probes;   /**< liveness checks (lock holders, doorbell
				      owners) */
};

/**
 * Copy this process's counters.
 * @param out where to store them
 * @return 0, or -EINVAL if out is NULL
 */
AIOP_API int aiop_stats_get(struct aiop_stats *out);

/** Reset this process's counters to zero. */
AIOP_API void aiop_stats_reset(void);

#ifdef __cplusplus
}
#endif

#endif /* AIOP_COMMON_H */
