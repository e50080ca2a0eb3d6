/* SPDX-License-Identifier: MIT */
/**
 * @file aiop/ev.h
 * Coro variants: every call that can wait, completed on a libev loop.
 *
 * Contract (same for every aiop_*_coro_* call):
 *  - the op is caller-allocated, zeroed before its first use (`= {0}`,
 *    memset, or aiop_op_init()), and must stay valid until its callback
 *    ran; a completed op may be started again without re-initialising;
 *  - a start call that returns < 0 never runs the callback;
 *  - otherwise the callback runs exactly once, from the loop, never inside
 *    the start call, with the result (>= 0 or -errno as the blocking call);
 *  - timeout_ns as the blocking call: AIOP_FOREVER, 0 = try (the callback
 *    then gets -EAGAIN), or relative ns (-ETIMEDOUT); Condition and
 *    Barrier waits have no try form: 0 is a minimal wait there;
 *  - aiop_op_cancel() makes the callback run with -ECANCELED; if the op had
 *    already been granted (lock taken, unit taken) the grant is undone first,
 *    so nothing is lost;
 *  - start and cancel are called on the loop's thread; the loop needs
 *    EV_MULTIPLICITY (libev's default).
 */
#ifndef AIOP_EV_H
#define AIOP_EV_H

#include <string.h>

#include <ev.h>

#include <aiop/common.h>
#include <aiop/lock.h>
#include <aiop/rlock.h>
#include <aiop/semaphore.h>
#include <aiop/event.h>
#include <aiop/condition.h>
#include <aiop/barrier.h>
#include <aiop/queue.h>

#if !EV_MULTIPLICITY
#error "aiop needs libev built with EV_MULTIPLICITY (the default)"
#endif

#ifdef __cplusplus
extern "C" {
#endif

struct aiop_op;

/**
 * Completion callback.
 * @param loop   the loop the op was started on
 * @param op     the op; it may be reused or freed inside the callback
 * @param result the operation's result, >= 0 or -errno
 */
typedef void (*aiop_op_cb)(struct ev_loop *loop, struct aiop_op *op,
			   int result);

/**
 * A coro operation. Allocate it yourself and zero it before its first use
 * (like libev's ev_init); only `data` is yours, every other field is
 * private to aiop.
 */
struct aiop_op {
	void *data; /* rw: user data, never touched by aiop */

	/* private: */
	ev_timer aiop_timer;
	struct aiop_op *aiop_next;
	struct aiop_op *aiop_prev;
	aiop_op_cb aiop_cb;
	const void *aiop_desc;
	void *aiop_obj;
	void *aiop_wq;
	void *aiop_reg;
	uint32_t aiop_state;
	int aiop_result;
	uint64_t aiop_args[6];
	void *aiop_reserved[4];
};

/** Prepare an op for its first start (same as zeroing it). */
static inline void
aiop_op_init(struct aiop_op *op)
{
	memset(op, 0, sizeof(*op));
}

/**
 * Cancel a pending op. Its callback then runs (from the loop) with
 * -ECANCELED; if it had been granted already, the grant is undone.
 * @return 0; -EALREADY if its callback already ran or is running;
 *         -EINVAL if op is NULL, was never started (zeroed), or is a
 *         copy, inherited through fork(), of the parent's op
 */
AIOP_API int aiop_op_cancel(struct aiop_op *op);

/** @return 1 if the op is started and its callback has not run yet, else 0 */
AIOP_API int aiop_op_pending(const struct aiop_op *op);

/**
 * Give back the doorbell this process claimed for a loop, which keeps
 * working and claims one again at its next start. ev_loop_destroy() gives
 * it back too (an ev_cleanup watcher). Do not destroy a loop with ops
 * pending: their callbacks never run; they are cancelled (what they were
 * granted goes back) and forgotten (coro.md). With a libev built
 * without cleanup watchers, call it before ev_loop_destroy(): otherwise
 * the doorbell stays claimed until the process exits, and a program that
 * makes many loops runs out of them (-EMFILE). Doorbells of a process
 * that died are reclaimed by the next claimant.
 * @return 0 (also if the loop never used aiop); -EBUSY if ops are pending
 *         or if called from inside an aiop callback of that loop;
 *         -EINVAL if loop is NULL
 */
AIOP_API int aiop_loop_detach(struct ev_loop *loop);

/*
 * Every start call below returns 0 (the callback will run exactly once) or,
 * with no callback ever: -EINVAL (NULL loop/op/cb, bad handle or timeout),
 * -EBUSY (op still pending), -EPROTO (corrupt object, or one from another
 * domain), -EMFILE (no free doorbell for this loop), -ENOMEM; a Condition
 * wait also -EPERM and -EOVERFLOW, as the blocking call.
 */

/** Coro aiop_lock_acquire(). */
AIOP_API int aiop_lock_coro_acquire(struct ev_loop *loop, struct aiop_op *op,
				    struct aiop_lock *lock, int64_t timeout_ns,
				    aiop_op_cb cb);

/** Coro aiop_rlock_acquire(); the owner is the loop's thread. */
AIOP_API int aiop_rlock_coro_acquire(struct ev_loop *loop, struct aiop_op *op,
				     struct aiop_rlock *rlock,
				     int64_t timeout_ns, aiop_op_cb cb);

/** Coro aiop_sem_acquire(). */
AIOP_API int aiop_sem_coro_acquire(struct ev_loop *loop, struct aiop_op *op,
				   struct aiop_sem *sem, int64_t timeout_ns,
				   aiop_op_cb cb);

/** Coro aiop_event_wait(). */
AIOP_API int aiop_event_coro_wait(struct ev_loop *loop, struct aiop_op *op,
				  struct aiop_event *event, int64_t timeout_ns,
				  aiop_op_cb cb);

/** Coro aiop_cond_acquire() (the underlying lock's coro acquire). */
AIOP_API int aiop_cond_coro_acquire(struct ev_loop *loop, struct aiop_op *op,
				    struct aiop_cond *cond, int64_t timeout_ns,
				    aiop_op_cb cb);

/**
 * Coro aiop_cond_wait(): the lock is released at start and re-taken
 * without blocking the loop; the callback runs with the lock held again
 * (also on -ETIMEDOUT and -ECANCELED). -EPERM at start if the loop's
 * thread does not own the lock, -EOVERFLOW if 65535 waiters are already
 * registered (the lock stays held). A cancelled waiter passes a
 * notification it consumed on to another waiter.
 */
AIOP_API int aiop_cond_coro_wait(struct ev_loop *loop, struct aiop_op *op,
				 struct aiop_cond *cond, int64_t timeout_ns,
				 aiop_op_cb cb);

/**
 * Coro aiop_cond_wait_for(): result 1 (true) or 0 (false at the deadline),
 * with the lock held. pred runs on the loop's thread with the lock held.
 */
AIOP_API int aiop_cond_coro_wait_for(struct ev_loop *loop, struct aiop_op *op,
				     struct aiop_cond *cond,
				     aiop_cond_pred pred, void *arg,
				     int64_t timeout_ns, aiop_op_cb cb);

/**
 * Coro aiop_barrier_wait(): result is the arrival index, or -EPIPE, or
 * -ETIMEDOUT (this party's deadline broke the barrier). Cancelling a party
 * that has arrived breaks the barrier for the others (-EPIPE).
 */
AIOP_API int aiop_barrier_coro_wait(struct ev_loop *loop, struct aiop_op *op,
				    struct aiop_barrier *barrier,
				    int64_t timeout_ns, aiop_op_cb cb);

/**
 * Coro aiop_queue_put(). buf must stay valid until the callback: the copy
 * may happen later, from the loop. A cancelled put puts nothing.
 */
AIOP_API int aiop_queue_coro_put(struct ev_loop *loop, struct aiop_op *op,
				 struct aiop_queue *q, const void *buf,
				 size_t len, int64_t timeout_ns,
				 aiop_op_cb cb);

/**
 * Coro aiop_queue_get(): the result is the message length. buf and msg_len
 * must stay valid until the callback; they are written only just before a
 * callback with a result >= 0 (or -EMSGSIZE for msg_len). A get cancelled
 * after it was granted a message gives it back, first in the queue.
 */
AIOP_API int aiop_queue_coro_get(struct ev_loop *loop, struct aiop_op *op,
				 struct aiop_queue *q, void *buf, size_t cap,
				 size_t *msg_len, int64_t timeout_ns,
				 aiop_op_cb cb);

/** Coro aiop_queue_put_many(); msgs and their buffers stay valid until the
 *  callback. Cancelled: none is put. */
AIOP_API int aiop_queue_coro_put_many(struct ev_loop *loop,
				      struct aiop_op *op, struct aiop_queue *q,
				      const struct iovec *msgs, unsigned n,
				      int64_t timeout_ns, aiop_op_cb cb);

/** Coro aiop_queue_get_many(); buf and lens stay valid until the callback.
 *  Cancelled after a grant: every message goes back. */
AIOP_API int aiop_queue_coro_get_many(struct ev_loop *loop,
				      struct aiop_op *op, struct aiop_queue *q,
				      void *buf, size_t cap, size_t *lens,
				      unsigned max, int64_t timeout_ns,
				      aiop_op_cb cb);

/** Coro aiop_queue_reserve(); msg is filled just before a callback with
 *  result 0. Cancelled after a grant: the reservation is dropped. */
AIOP_API int aiop_queue_coro_reserve(struct ev_loop *loop, struct aiop_op *op,
				     struct aiop_queue *q, size_t len,
				     struct aiop_msg *msg, int64_t timeout_ns,
				     aiop_op_cb cb);

/** Coro aiop_queue_peek(); msg is filled just before a callback with result
 *  0. Cancelled after a grant: the message goes back, first. */
AIOP_API int aiop_queue_coro_peek(struct ev_loop *loop, struct aiop_op *op,
				  struct aiop_queue *q, struct aiop_msg *msg,
				  int64_t timeout_ns, aiop_op_cb cb);

/** Coro aiop_queue_join(). */
AIOP_API int aiop_queue_coro_join(struct ev_loop *loop, struct aiop_op *op,
				  struct aiop_queue *q, int64_t timeout_ns,
				  aiop_op_cb cb);

/** Coro aiop_simplequeue_put() (no timeout; cancel works). */
AIOP_API int aiop_simplequeue_coro_put(struct ev_loop *loop,
				       struct aiop_op *op,
				       struct aiop_simplequeue *sq,
				       const void *buf, size_t len,
				       aiop_op_cb cb);

/** Coro aiop_simplequeue_get() (no timeout; cancel works). */
AIOP_API int aiop_simplequeue_coro_get(struct ev_loop *loop,
				       struct aiop_op *op,
				       struct aiop_simplequeue *sq, void *buf,
				       size_t cap, size_t *msg_len,
				       aiop_op_cb cb);

#ifdef __cplusplus
}
#endif

#endif /* AIOP_EV_H */
