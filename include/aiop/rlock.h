/* SPDX-License-Identifier: MIT */
/**
 * @file aiop/rlock.h
 * Process-shared recursive lock (Python's multiprocessing.RLock). The owner
 * is (process, thread); coro ops started on one loop thread share its
 * ownership. The coro variant is in aiop/ev.h.
 */
#ifndef AIOP_RLOCK_H
#define AIOP_RLOCK_H

#include <aiop/common.h>

#ifdef __cplusplus
extern "C" {
#endif

struct aiop_rlock;

/** Maximum recursion depth; one more acquire returns -EOVERFLOW. */
#define AIOP_RLOCK_DEPTH_MAX 0x7fffffff

/**
 * Create an unlocked recursive lock in new shared memory.
 * @return 0, -EINVAL, -ENOMEM, -EMFILE or another -errno
 */
AIOP_API int aiop_rlock_new(struct aiop_rlock **out);

/**
 * Drop this process's handle (the object lives on in other processes).
 * @return 0 (also for NULL), -EBUSY if coro ops on it are still pending in
 *         this process or a condition made over this handle
 *         (aiop_cond_new_rlock) is not freed yet, -EINVAL if it is not a
 *         handle of this type
 */
AIOP_API int aiop_rlock_free(struct aiop_rlock *rlock);

/**
 * Acquire (again, if this thread already owns it), waiting up to timeout_ns.
 * @return 0; -EOWNERDEAD acquired after the owner died (depth is 1; or
 *         a level on top of this thread's coro recovery whose callback
 *         has not run, docs/rlock.md);
 *         -ETIMEDOUT; -EAGAIN (timeout 0); -EOVERFLOW depth limit;
 *         -EINVAL; -EPROTO
 */
AIOP_API int aiop_rlock_acquire(struct aiop_rlock *rlock, int64_t timeout_ns);

/** Acquire without waiting. @return as aiop_rlock_acquire, -EAGAIN if held */
AIOP_API int aiop_rlock_try_acquire(struct aiop_rlock *rlock);

/**
 * Release one level.
 * @return 0, -EPERM if the calling thread does not own it, -EINVAL, -EPROTO
 */
AIOP_API int aiop_rlock_release(struct aiop_rlock *rlock);

/**
 * @return the recursion depth if the calling thread owns it, 0 if it does
 *         not, -EINVAL/-EPROTO
 */
AIOP_API int aiop_rlock_depth(struct aiop_rlock *rlock);

/**
 * Send to another process over an AF_UNIX SEQPACKET/DGRAM socket.
 * @return as aiop_lock_send (docs/sharing.md)
 */
AIOP_API int aiop_rlock_send(int sock, struct aiop_rlock *rlock,
			     int64_t timeout_ns);

/**
 * Receive one sent with aiop_rlock_send(); checked as aiop_lock_recv
 * checks.
 * @return as aiop_lock_recv (-EBADMSG: not a message carrying this type)
 */
AIOP_API int aiop_rlock_recv(int sock, struct aiop_rlock **out,
			     int64_t timeout_ns);

#ifdef __cplusplus
}
#endif

#endif /* AIOP_RLOCK_H */
