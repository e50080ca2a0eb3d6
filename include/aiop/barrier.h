/* SPDX-License-Identifier: MIT */
/**
 * @file aiop/barrier.h
 * Process-shared cyclic barrier (Python's multiprocessing.Barrier), plus
 * dead-party detection: a party that dies while waiting breaks the barrier
 * for the others within about 100 ms. Coro variant: aiop/ev.h.
 */
#ifndef AIOP_BARRIER_H
#define AIOP_BARRIER_H

#include <aiop/common.h>

#ifdef __cplusplus
extern "C" {
#endif

struct aiop_barrier;

/** Largest number of parties. */
#define AIOP_BARRIER_PARTIES_MAX 32767

/**
 * Run by the last arriving party, in its own process, before the others are
 * released. Return 0 to release them; nonzero breaks the barrier (-EPIPE for
 * every waiter of that generation, including the last).
 */
typedef int (*aiop_barrier_action)(void *arg);

/**
 * Create a barrier for `parties` parties.
 * @param action NULL, or a function present in every process that may be
 *        the last to arrive (e.g. inherited through fork)
 * @return 0, -EINVAL (out NULL, parties 0 or > AIOP_BARRIER_PARTIES_MAX),
 *         -ENOMEM, -EMFILE, ...
 */
AIOP_API int aiop_barrier_new(struct aiop_barrier **out, unsigned parties,
			      aiop_barrier_action action, void *action_arg);

/** Drop this process's handle. @return 0 (also NULL), -EBUSY, -EINVAL */
AIOP_API int aiop_barrier_free(struct aiop_barrier *barrier);

/**
 * Arrive and wait for the other parties.
 * @param timeout_ns AIOP_FOREVER or relative ns; a party whose deadline
 *        passes breaks the barrier
 * @return the arrival index, 0 .. parties-1, distinct within a generation
 *         (first arrival 0); -EPIPE the barrier is or became broken (abort,
 *         reset, another party's timeout or cancel, a failing action, a
 *         party that died); -ETIMEDOUT this party's deadline passed (if it had
 *         arrived, the barrier is now broken; a caller still waiting to
 *         get into a full barrier breaks nothing); -EINVAL; -EPROTO
 */
AIOP_API int aiop_barrier_wait(struct aiop_barrier *barrier,
			       int64_t timeout_ns);

/**
 * Break the barrier: current and later waiters get -EPIPE until reset.
 * @return 0, -EINVAL, -EPROTO
 */
AIOP_API int aiop_barrier_abort(struct aiop_barrier *barrier);

/**
 * Re-arm the barrier: current waiters get -EPIPE, later ones start a new
 * generation. @return 0, -EINVAL, -EPROTO
 */
AIOP_API int aiop_barrier_reset(struct aiop_barrier *barrier);

/** @return the number of parties, or -EINVAL/-EPROTO */
AIOP_API int aiop_barrier_parties(struct aiop_barrier *barrier);

/** @return parties waiting now (0 when broken), or -EINVAL/-EPROTO */
AIOP_API int aiop_barrier_n_waiting(struct aiop_barrier *barrier);

/** @return 1 if broken, 0 if not, or -EINVAL/-EPROTO */
AIOP_API int aiop_barrier_broken(struct aiop_barrier *barrier);

/**
 * Send to another process over an AF_UNIX SEQPACKET/DGRAM socket.
 * @return as aiop_lock_send (docs/sharing.md)
 */
AIOP_API int aiop_barrier_send(int sock, struct aiop_barrier *barrier,
			       int64_t timeout_ns);

/**
 * Receive one sent with aiop_barrier_send(); checked as aiop_lock_recv
 * checks. The received handle has no action (an action is a function
 * of the process that made it).
 * @return as aiop_lock_recv (-EBADMSG: not a message carrying this type)
 */
AIOP_API int aiop_barrier_recv(int sock, struct aiop_barrier **out,
			       int64_t timeout_ns);

#ifdef __cplusplus
}
#endif

#endif /* AIOP_BARRIER_H */
