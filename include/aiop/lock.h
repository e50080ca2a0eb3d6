/* SPDX-License-Identifier: MIT */
/**
 * @file aiop/lock.h
 * Process-shared, non-recursive lock (Python's multiprocessing.Lock).
 * Any process may release it. The coro variant is in aiop/ev.h.
 */
#ifndef AIOP_LOCK_H
#define AIOP_LOCK_H

#include <aiop/common.h>

#ifdef __cplusplus
extern "C" {
#endif

struct aiop_lock;

/**
 * Create an unlocked lock in new shared memory. The handle stays valid in
 * children forked afterwards.
 * @param out receives the handle
 * @return 0, -EINVAL (out is NULL), -ENOMEM, -EMFILE or another -errno from
 *         memfd_create/posix_fallocate/mmap
 */
AIOP_API int aiop_lock_new(struct aiop_lock **out);

/**
 * Drop this process's handle (the lock lives on in other processes).
 * @return 0 (also for NULL), -EBUSY if coro ops on it are still pending in
 *         this process or a condition made over this handle
 *         (aiop_cond_new_lock) is not freed yet, -EINVAL if it is not a
 *         handle of this type
 */
AIOP_API int aiop_lock_free(struct aiop_lock *lock);

/**
 * Acquire, waiting up to timeout_ns.
 * @param timeout_ns relative ns; AIOP_FOREVER waits forever; 0 = try
 * @return 0 acquired; -EOWNERDEAD acquired, but the previous holder died
 *         while holding it (the data it guarded may be inconsistent);
 *         -ETIMEDOUT; -EAGAIN (timeout 0 and held); -EINVAL bad handle or
 *         timeout; -EPROTO the shared object is corrupt or of another version
 */
AIOP_API int aiop_lock_acquire(struct aiop_lock *lock, int64_t timeout_ns);

/** Acquire without waiting. @return as aiop_lock_acquire, -EAGAIN if held */
AIOP_API int aiop_lock_try_acquire(struct aiop_lock *lock);

/**
 * Release. Any process or thread may release (multiprocessing semantics).
 * @return 0, -EPERM if the lock is not held, -EINVAL, -EPROTO
 */
AIOP_API int aiop_lock_release(struct aiop_lock *lock);

/** @return 1 if held, 0 if free, or -EINVAL/-EPROTO (a snapshot). */
AIOP_API int aiop_lock_locked(struct aiop_lock *lock);

/**
 * Send the lock to another process over an AF_UNIX socket (SOCK_SEQPACKET
 * or SOCK_DGRAM), as one message carrying its memory and this process's
 * doorbells (docs/sharing.md). The handle stays valid here.
 * @param sock a connected socket (or a DGRAM socket with a default peer)
 * @param timeout_ns how long to wait for room in the socket; 0 = try,
 *        AIOP_FOREVER
 * @return 0; -EAGAIN (timeout 0, socket full); -ETIMEDOUT; -EINVAL bad
 *         handle or timeout; -EPROTO corrupt object; -ENOTSOCK, -EBADF;
 *         -EPROTOTYPE not an AF_UNIX SEQPACKET/DGRAM socket; -EPIPE the
 *         peer is gone; other -errno from sendmsg
 */
AIOP_API int aiop_lock_send(int sock, struct aiop_lock *lock,
			    int64_t timeout_ns);

/**
 * Receive a lock sent with aiop_lock_send(). Everything received is
 * checked before it is used: memory that is not a sealed memfd of this
 * user, of exactly the size and type announced, is refused, and so are
 * doorbells that are not non-blocking eventfds (docs/sharing.md). A
 * process with no aiop object yet joins the sender's domain.
 * @param out receives a new handle (free it with aiop_lock_free)
 * @param timeout_ns how long to wait for a message; 0 = try, AIOP_FOREVER
 * @return 0; -EAGAIN (timeout 0, nothing there); -ETIMEDOUT; -EINVAL (out
 *         NULL, bad timeout); -EBADMSG not a message carrying a Lock
 *         (it is consumed); -EPROTO the memory or doorbells were refused,
 *         or another ABI; -EXDEV this process already belongs to another
 *         domain; -EMFILE no room for the fds; -EPIPE the peer closed;
 *         -ENOMEM; -ENOTSOCK, -EBADF, -EPROTOTYPE as for send
 */
AIOP_API int aiop_lock_recv(int sock, struct aiop_lock **out,
			    int64_t timeout_ns);

#ifdef __cplusplus
}
#endif

#endif /* AIOP_LOCK_H */
