/* SPDX-License-Identifier: MIT */
/**
 * @file aiop/condition.h
 * Process-shared condition variable over a Lock or an RLock (Python's
 * multiprocessing.Condition; an RLock by default). notify() never blocks.
 * Every wait returns with the lock held again, whatever its result.
 * Coro variants: aiop/ev.h.
 */
#ifndef AIOP_CONDITION_H
#define AIOP_CONDITION_H

#include <aiop/common.h>
#include <aiop/lock.h>
#include <aiop/rlock.h>

#ifdef __cplusplus
extern "C" {
#endif

struct aiop_cond;

/** A predicate for wait_for: nonzero means true. Called with the lock held. */
typedef int (*aiop_cond_pred)(void *arg);

/**
 * Create a condition with an RLock of its own (freed with it).
 * @return 0, -EINVAL (out NULL), -ENOMEM, -EMFILE, ...
 */
AIOP_API int aiop_cond_new(struct aiop_cond **out);

/**
 * Create a condition over an existing Lock (which must outlive it: its
 * aiop_lock_free returns -EBUSY until the condition is freed).
 * @return as aiop_cond_new; -EINVAL if lock is not a valid Lock handle,
 *         -EPROTO if its shared object is corrupt
 */
AIOP_API int aiop_cond_new_lock(struct aiop_cond **out, struct aiop_lock *lock);

/**
 * Create a condition over an existing RLock (which must outlive it: its
 * aiop_rlock_free returns -EBUSY until the condition is freed).
 * @return as aiop_cond_new; -EINVAL if rlock is not a valid RLock handle,
 *         -EPROTO if its shared object is corrupt
 */
AIOP_API int aiop_cond_new_rlock(struct aiop_cond **out,
				 struct aiop_rlock *rlock);

/**
 * Drop this process's handle (and of its own RLock, if it made one).
 * @return 0 (also NULL), -EBUSY coro ops pending here, -EINVAL
 */
AIOP_API int aiop_cond_free(struct aiop_cond *cond);

/** Acquire the underlying lock. @return as aiop_lock/rlock_acquire */
AIOP_API int aiop_cond_acquire(struct aiop_cond *cond, int64_t timeout_ns);

/** Try to acquire the underlying lock. @return as its try_acquire */
AIOP_API int aiop_cond_try_acquire(struct aiop_cond *cond);

/** Release the underlying lock (one level). @return as its release */
AIOP_API int aiop_cond_release(struct aiop_cond *cond);

/**
 * Release the lock (every level), wait to be notified, re-take the lock.
 * @param timeout_ns AIOP_FOREVER, or relative ns (0 is a minimal wait; there
 *        is no "try" form of a wait). The lock re-take has no deadline.
 * @return 0 notified; -ETIMEDOUT; -EPERM the caller does not own the lock
 *         (nothing done); -EOVERFLOW 65535 waiters already registered
 *         (nothing done); -EOWNERDEAD the lock was re-taken from a holder
 *         that died; -EINVAL; -EPROTO. Except for -EPERM/-EINVAL/-EPROTO
 *         the lock is held again on return.
 */
AIOP_API int aiop_cond_wait(struct aiop_cond *cond, int64_t timeout_ns);

/**
 * Wait until pred(arg) is true, with one overall deadline across re-checks.
 * pred is first called before any waiting.
 * @return 1 the predicate is true; 0 it is still false at the deadline;
 *         -EPERM, -EOVERFLOW, -EOWNERDEAD, -EINVAL, -EPROTO as
 *         aiop_cond_wait
 */
AIOP_API int aiop_cond_wait_for(struct aiop_cond *cond, aiop_cond_pred pred,
				void *arg, int64_t timeout_ns);

/**
 * Wake up to n waiters; the caller must own the lock. Never blocks.
 * @return how many waiters were notified (>= 0), -EPERM, -EINVAL, -EPROTO
 */
AIOP_API int aiop_cond_notify(struct aiop_cond *cond, unsigned n);

/** Wake every waiter. @return as aiop_cond_notify */
AIOP_API int aiop_cond_notify_all(struct aiop_cond *cond);

/**
 * Send to another process over an AF_UNIX SEQPACKET/DGRAM socket.
 * @return as aiop_lock_send (docs/sharing.md)
 */
AIOP_API int aiop_cond_send(int sock, struct aiop_cond *cond,
			    int64_t timeout_ns);

/**
 * Receive one sent with aiop_cond_send(); checked as aiop_lock_recv
 * checks. The condition travels with its lock; the received handle
 * owns its copy of the lock handle (freed with it).
 * @return as aiop_lock_recv (-EBADMSG: not a message carrying this type)
 */
AIOP_API int aiop_cond_recv(int sock, struct aiop_cond **out,
			    int64_t timeout_ns);

#ifdef __cplusplus
}
#endif

#endif /* AIOP_CONDITION_H */
