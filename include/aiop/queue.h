/* SPDX-License-Identifier: MIT */
/**
 * @file aiop/queue.h
 * Process-shared message queues of byte messages (Python's
 * multiprocessing.Queue, JoinableQueue and SimpleQueue). Coro variants:
 * aiop/ev.h. Semantics, guarantees and limits: docs/queue.md.
 *
 * Messages are byte strings of 0..msg_max bytes in a ring of shared
 * memory. Each producer's messages are received in the order it put them.
 * A message is delivered exactly once: a consumer that is cancelled or
 * dies before it consumed a message gives it back at the head of the queue.
 */
#ifndef AIOP_QUEUE_H
#define AIOP_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <aiop/common.h>

#ifdef __cplusplus
extern "C" {
#endif

struct aiop_queue;
struct aiop_simplequeue;

/** Default ring size in bytes: 8 MiB, the smallest power of two that takes
 * the default largest message (msg_max <= capacity / 2 - 32): room for 3
 * messages of 2 MiB in flight (each also takes a 16-byte header). */
#define AIOP_QUEUE_CAPACITY_DEFAULT (8u << 20)
/** Default largest message in bytes. */
#define AIOP_QUEUE_MSG_MAX_DEFAULT (2u << 20)
/** Smallest and largest ring sizes accepted. */
#define AIOP_QUEUE_CAPACITY_MIN 4096u
#define AIOP_QUEUE_CAPACITY_MAX (1u << 30)

/** aiop_queue_attr.flags: a JoinableQueue (task_done, join). */
#define AIOP_QUEUE_JOINABLE 1u

/** Creation parameters; a zeroed struct (or NULL) gives the defaults. */
struct aiop_queue_attr {
	/** ring bytes; 0: AIOP_QUEUE_CAPACITY_DEFAULT; rounded up to a power
	 * of two within [AIOP_QUEUE_CAPACITY_MIN, AIOP_QUEUE_CAPACITY_MAX] */
	size_t capacity;
	/** largest message; 0: AIOP_QUEUE_MSG_MAX_DEFAULT, or less if the
	 * ring is small (at most capacity / 2 - 32) */
	size_t msg_max;
	/** most messages in the queue at once (Python's maxsize); 0: only
	 * the ring's bytes bound it. At most INT32_MAX. */
	unsigned maxsize;
	/** AIOP_QUEUE_JOINABLE or 0 */
	unsigned flags;
};

/**
 * A message in place in the ring (zero-copy API). Fill nothing yourself:
 * reserve() and peek() fill it. Another process that can write the queue's
 * memory can also change these bytes: copy what must stay stable.
 */
struct aiop_msg {
	void *data;  /**< the message bytes, inside the ring */
	size_t len;  /**< reserve: bytes you may write (lower it before
		      *   commit to send less); peek: the message length */
	uint64_t aiop_pos; /* private */
	uint64_t aiop_tag; /* private */
};

/**
 * Create a queue.
 * @param attr NULL or the parameters (zero fields take the defaults)
 * @return 0; -EINVAL (out NULL, unknown flag, msg_max too large for the
 *         ring, maxsize > INT32_MAX, capacity above the maximum); -ENOMEM;
 *         -EMFILE
 */
AIOP_API int aiop_queue_new(struct aiop_queue **out,
			    const struct aiop_queue_attr *attr);

/**
 * Drop this process's handle (the queue lives on in other processes).
 * Reservations and peeks this process left open through the handle, in
 * any of its live threads, are ended first (no call could end them later;
 * those of a thread that exited are left to the death probes): a
 * reservation as aiop_queue_abort() ends it, a peek given back as
 * aiop_queue_unpeek() gives it. Their struct aiop_msg are dead after.
 * Those of the parent, inherited by a fork()ed child, stay the parent's.
 * No other call on the handle may run meanwhile.
 * @return 0 (also for NULL), -EBUSY if coro ops on it are pending in this
 *         process (nothing is ended then), -EINVAL if it is not a queue
 *         handle
 */
AIOP_API int aiop_queue_free(struct aiop_queue *q);

/**
 * Put a copy of a message, waiting up to timeout_ns for room.
 * @return 0; -EMSGSIZE (len > msg_max, nothing put); -EPIPE (closed);
 *         -ETIMEDOUT; -EAGAIN (timeout 0); -EINVAL; -EPROTO
 */
AIOP_API int aiop_queue_put(struct aiop_queue *q, const void *buf,
			    size_t len, int64_t timeout_ns);

/** aiop_queue_put() without waiting: -EAGAIN if there is no room. */
AIOP_API int aiop_queue_try_put(struct aiop_queue *q, const void *buf,
				size_t len);

/**
 * Take the next message, copying it into buf, waiting up to timeout_ns.
 * @param msg_len NULL, or receives the message's length on success and on
 *        -EMSGSIZE (the size buf needs)
 * @return the message length (>= 0); -EMSGSIZE (cap too small: nothing is
 *         taken, the message stays first); -EPIPE (closed and empty);
 *         -ETIMEDOUT; -EAGAIN (timeout 0); -EINVAL; -EPROTO
 */
AIOP_API int aiop_queue_get(struct aiop_queue *q, void *buf, size_t cap,
			    size_t *msg_len, int64_t timeout_ns);

/** aiop_queue_get() without waiting: -EAGAIN if no message is ready. */
AIOP_API int aiop_queue_try_get(struct aiop_queue *q, void *buf, size_t cap,
				size_t *msg_len);

/**
 * Put n messages at once (one reservation, one wake-up): all or none.
 * @return n; -EMSGSIZE (one is over msg_max, or together they can never fit
 *         the ring or maxsize); -EINVAL (n == 0, msgs NULL); others as put
 */
AIOP_API int aiop_queue_put_many(struct aiop_queue *q,
				 const struct iovec *msgs, unsigned n,
				 int64_t timeout_ns);

/** aiop_queue_put_many() without waiting. */
AIOP_API int aiop_queue_try_put_many(struct aiop_queue *q,
				     const struct iovec *msgs, unsigned n);

/**
 * Take up to max messages (at least one), copied back to back into buf;
 * lens[i] receives the length of message i. Stops early at a message that
 * does not fit what is left of buf.
 * @return the number taken (>= 1); -EMSGSIZE if the first does not fit
 *         (lens[0] receives its length, nothing is taken); others as get
 */
AIOP_API int aiop_queue_get_many(struct aiop_queue *q, void *buf, size_t cap,
				 size_t *lens, unsigned max,
				 int64_t timeout_ns);

/** aiop_queue_get_many() without waiting. */
AIOP_API int aiop_queue_try_get_many(struct aiop_queue *q, void *buf,
				     size_t cap, size_t *lens, unsigned max);

/**
 * Zero-copy put, step 1: reserve len bytes in the ring, waiting up to
 * timeout_ns. Write msg->data[0..msg->len), then aiop_queue_commit() or
 * aiop_queue_abort(). Consumers behind an uncommitted message wait for it
 * (FIFO): commit soon. If this thread dies first, the message is dropped
 * (within 100 ms of a consumer waiting on it).
 * @return 0; errors as put
 */
AIOP_API int aiop_queue_reserve(struct aiop_queue *q, size_t len,
				struct aiop_msg *msg, int64_t timeout_ns);

/** aiop_queue_reserve() without waiting. */
AIOP_API int aiop_queue_try_reserve(struct aiop_queue *q, size_t len,
				    struct aiop_msg *msg);

/**
 * Zero-copy put, step 2: publish the reserved message, msg->len bytes
 * (msg->len may have been lowered, never raised). Call from the thread
 * that reserved it.
 * @return 0; -EINVAL (not a live reservation of this thread, or len
 *         raised); -EPROTO (the record was taken away: corrupt memory)
 */
AIOP_API int aiop_queue_commit(struct aiop_queue *q, struct aiop_msg *msg);

/** Give up a reservation: nothing is delivered. @return as commit */
AIOP_API int aiop_queue_abort(struct aiop_queue *q, struct aiop_msg *msg);

/**
 * Zero-copy get, step 1: take the next message in place, waiting up to
 * timeout_ns. Read msg->data[0..msg->len), then aiop_queue_release() (it
 * is consumed) or aiop_queue_unpeek() (it goes back, first in the queue).
 * If this thread dies first, the message is delivered again (within
 * 100 ms of someone waiting on the queue).
 * @return 0; errors as get (no -EMSGSIZE)
 */
AIOP_API int aiop_queue_peek(struct aiop_queue *q, struct aiop_msg *msg,
			     int64_t timeout_ns);

/** aiop_queue_peek() without waiting. */
AIOP_API int aiop_queue_try_peek(struct aiop_queue *q, struct aiop_msg *msg);

/** Zero-copy get, step 2: the message is consumed. @return as commit */
AIOP_API int aiop_queue_release(struct aiop_queue *q, struct aiop_msg *msg);

/** Give a peeked message back, first in the queue. @return as commit */
AIOP_API int aiop_queue_unpeek(struct aiop_queue *q, struct aiop_msg *msg);

/**
 * Close: later puts (and reserves) fail with -EPIPE; consumers get what is
 * left, then -EPIPE. Wakes every waiter, blocking and coro. Idempotent.
 * @return 0, -EINVAL, -EPROTO
 */
AIOP_API int aiop_queue_close(struct aiop_queue *q);

/** @return messages in the queue (approximate: counts those in flight),
 *          or -EINVAL/-EPROTO */
AIOP_API int aiop_queue_qsize(struct aiop_queue *q);

/** @return 1 if no message is in the queue, 0 if some are (approximate),
 *          or -EINVAL/-EPROTO */
AIOP_API int aiop_queue_empty(struct aiop_queue *q);

/** @return 1 if maxsize messages are in the queue or the ring has no room
 *          for an empty message, else 0 (approximate); -EINVAL/-EPROTO */
AIOP_API int aiop_queue_full(struct aiop_queue *q);

/** @return the largest message this queue takes, or -EINVAL/-EPROTO */
AIOP_API int aiop_queue_msg_max(struct aiop_queue *q);

/**
 * JoinableQueue: mark one message taken by get as processed. A put counts
 * from its reservation until its task_done (or until an uncommitted
 * reservation is aborted or dropped).
 * @return 0; -EOVERFLOW (called more times than messages were put; nothing
 *         changes); -EINVAL (not a joinable queue); -EPROTO
 */
AIOP_API int aiop_queue_task_done(struct aiop_queue *q);

/**
 * JoinableQueue: wait up to timeout_ns until every message put has been
 * marked done (at once if none is unfinished).
 * @return 0; -ETIMEDOUT; -EAGAIN (timeout 0); -EINVAL (not joinable); -EPROTO
 */
AIOP_API int aiop_queue_join(struct aiop_queue *q, int64_t timeout_ns);

/** aiop_queue_join() without waiting. */
AIOP_API int aiop_queue_try_join(struct aiop_queue *q);

/**
 * Send to another process over an AF_UNIX SEQPACKET/DGRAM socket.
 * @return as aiop_lock_send (docs/sharing.md)
 */
AIOP_API int aiop_queue_send(int sock, struct aiop_queue *q,
			     int64_t timeout_ns);

/**
 * Receive one sent with aiop_queue_send(); checked as aiop_lock_recv
 * checks. A JoinableQueue stays joinable.
 * @return as aiop_lock_recv (-EBADMSG: not a message carrying this type)
 */
AIOP_API int aiop_queue_recv(int sock, struct aiop_queue **out,
			     int64_t timeout_ns);

/*
 * SimpleQueue: a queue with the default ring, no maxsize and no timeouts
 * (put waits for room as long as it takes). Same guarantees as Queue.
 */

/** @return 0, -EINVAL, -ENOMEM, -EMFILE */
AIOP_API int aiop_simplequeue_new(struct aiop_simplequeue **out);
/** @return as aiop_queue_free */
AIOP_API int aiop_simplequeue_free(struct aiop_simplequeue *sq);
/** @return 0, -EMSGSIZE, -EPIPE, -EINVAL, -EPROTO */
AIOP_API int aiop_simplequeue_put(struct aiop_simplequeue *sq,
				  const void *buf, size_t len);
/** @return as aiop_simplequeue_put, or -EAGAIN */
AIOP_API int aiop_simplequeue_try_put(struct aiop_simplequeue *sq,
				      const void *buf, size_t len);
/** @return as aiop_queue_get with AIOP_FOREVER */
AIOP_API int aiop_simplequeue_get(struct aiop_simplequeue *sq, void *buf,
				  size_t cap, size_t *msg_len);
/** @return as aiop_queue_try_get */
AIOP_API int aiop_simplequeue_try_get(struct aiop_simplequeue *sq, void *buf,
				      size_t cap, size_t *msg_len);
/** @return as aiop_queue_empty */
AIOP_API int aiop_simplequeue_empty(struct aiop_simplequeue *sq);
/** @return as aiop_queue_close */
AIOP_API int aiop_simplequeue_close(struct aiop_simplequeue *sq);

/**
 * Send to another process over an AF_UNIX SEQPACKET/DGRAM socket.
 * @return as aiop_lock_send (docs/sharing.md)
 */
AIOP_API int aiop_simplequeue_send(int sock, struct aiop_simplequeue *sq,
				   int64_t timeout_ns);

/**
 * Receive one sent with aiop_simplequeue_send(); checked as aiop_lock_recv
 * checks.
 * @return as aiop_lock_recv (-EBADMSG: not a message carrying this type)
 */
AIOP_API int aiop_simplequeue_recv(int sock, struct aiop_simplequeue **out,
				   int64_t timeout_ns);

#ifdef __cplusplus
}
#endif

#endif /* AIOP_QUEUE_H */
