/* SPDX-License-Identifier: MIT */
/**
 * @file aiop/event.h
 * Process-shared event flag (Python's multiprocessing.Event). set() wakes
 * every waiter, blocking and coro alike. Coro variant: aiop/ev.h.
 */
#ifndef AIOP_EVENT_H
#define AIOP_EVENT_H

#include <aiop/common.h>

#ifdef __cplusplus
extern "C" {
#endif

struct aiop_event;

/** Create a cleared event. @return 0, -EINVAL, -ENOMEM, ... */
AIOP_API int aiop_event_new(struct aiop_event **out);

/**
 * Drop this process's handle (the object lives on in other processes).
 * @return 0 (also for NULL), -EBUSY if coro ops on it are still pending in
 *         this process, -EINVAL if it is not a handle of this type
 */
AIOP_API int aiop_event_free(struct aiop_event *event);

/** Set the flag and wake every waiter. @return 0, -EINVAL, -EPROTO */
AIOP_API int aiop_event_set(struct aiop_event *event);

/**
 * Clear the flag. Waiters that were present at the last set() still return
 * success. @return 0, -EINVAL, -EPROTO
 */
AIOP_API int aiop_event_clear(struct aiop_event *event);

/** @return 1 if set, 0 if not, -EINVAL/-EPROTO */
AIOP_API int aiop_event_is_set(struct aiop_event *event);

/**
 * Wait until the flag is set (returns at once if it is), up to timeout_ns.
 * @return 0 set (or was set while waiting), -ETIMEDOUT, -EAGAIN (timeout 0
 *         and not set), -EINVAL, -EPROTO
 */
AIOP_API int aiop_event_wait(struct aiop_event *event, int64_t timeout_ns);

/** @return 0 if set, -EAGAIN if not, -EINVAL, -EPROTO */
AIOP_API int aiop_event_try_wait(struct aiop_event *event);

/**
 * Send to another process over an AF_UNIX SEQPACKET/DGRAM socket.
 * @return as aiop_lock_send (docs/sharing.md)
 */
AIOP_API int aiop_event_send(int sock, struct aiop_event *event,
			     int64_t timeout_ns);

/**
 * Receive one sent with aiop_event_send(); checked as aiop_lock_recv
 * checks.
 * @return as aiop_lock_recv (-EBADMSG: not a message carrying this type)
 */
AIOP_API int aiop_event_recv(int sock, struct aiop_event **out,
			     int64_t timeout_ns);

#ifdef __cplusplus
}
#endif

#endif /* AIOP_EVENT_H */
