/* SPDX-License-Identifier: MIT */
/**
 * @file aiop/semaphore.h
 * Process-shared counting semaphore and bounded semaphore (Python's
 * multiprocessing.Semaphore / BoundedSemaphore). Coro variant: aiop/ev.h.
 */
#ifndef AIOP_SEMAPHORE_H
#define AIOP_SEMAPHORE_H

#include <aiop/common.h>

#ifdef __cplusplus
extern "C" {
#endif

struct aiop_sem;

/** Largest value a semaphore can hold; release past it gives -EOVERFLOW. */
#define AIOP_SEM_VALUE_MAX 0x7fffffff

/**
 * Create a semaphore with an initial value. release() is unbounded up to
 * AIOP_SEM_VALUE_MAX.
 * @return 0, -EINVAL (out NULL or value > AIOP_SEM_VALUE_MAX), -ENOMEM, ...
 */
AIOP_API int aiop_sem_new(struct aiop_sem **out, unsigned value);

/**
 * Create a bounded semaphore: release() above the initial value fails with
 * -EOVERFLOW and leaves the count unchanged.
 * @return as aiop_sem_new
 */
AIOP_API int aiop_sem_new_bounded(struct aiop_sem **out, unsigned value);

/**
 * Drop this process's handle (the object lives on in other processes).
 * @return 0 (also for NULL), -EBUSY if coro ops on it are still pending in
 *         this process, -EINVAL if it is not a handle of this type
 */
AIOP_API int aiop_sem_free(struct aiop_sem *sem);

/**
 * Decrement, waiting up to timeout_ns for the value to be positive.
 * @return 0, -ETIMEDOUT, -EAGAIN (timeout 0), -EINVAL, -EPROTO
 */
AIOP_API int aiop_sem_acquire(struct aiop_sem *sem, int64_t timeout_ns);

/** Decrement without waiting. @return 0, -EAGAIN if zero, -EINVAL, -EPROTO */
AIOP_API int aiop_sem_try_acquire(struct aiop_sem *sem);

/**
 * Increment and wake one waiter.
 * @return 0; -EOVERFLOW over the bound (bounded) or AIOP_SEM_VALUE_MAX,
 *         value unchanged; -EINVAL; -EPROTO
 */
AIOP_API int aiop_sem_release(struct aiop_sem *sem);

/**
 * @return the current value (a snapshot; a count above AIOP_SEM_VALUE_MAX,
 *         which only a peer writing over the shared page leaves, reads as
 *         AIOP_SEM_VALUE_MAX) or -EINVAL/-EPROTO
 */
AIOP_API int aiop_sem_get_value(struct aiop_sem *sem);

/**
 * Send to another process over an AF_UNIX SEQPACKET/DGRAM socket.
 * @return as aiop_lock_send (docs/sharing.md)
 */
AIOP_API int aiop_sem_send(int sock, struct aiop_sem *sem,
			   int64_t timeout_ns);

/**
 * Receive one sent with aiop_sem_send(); checked as aiop_lock_recv
 * checks. A bounded semaphore keeps its bound.
 * @return as aiop_lock_recv (-EBADMSG: not a message carrying this type)
 */
AIOP_API int aiop_sem_recv(int sock, struct aiop_sem **out,
			   int64_t timeout_ns);

#ifdef __cplusplus
}
#endif

#endif /* AIOP_SEMAPHORE_H */
