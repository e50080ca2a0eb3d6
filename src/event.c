/* SPDX-License-Identifier: MIT */
/*
 * Event: one word, generation << 1 | flag. set() bumps the generation as it
 * raises the flag, so a waiter that was present at a set() succeeds even if
 * clear() ran before it woke up (Python's semantics).
 */
#include "aiop/ev.h"
#include "internal.h"

struct event_shm {
	struct aiop__shm_hdr hdr;
	struct aiop__waitq wq;
	_Atomic uint32_t word;
};

struct aiop_event {
	struct aiop__obj o;
};

struct event_args {
	uint32_t snap; /* word when the wait began */
};

static inline struct event_shm *
S(struct aiop__obj *o)
{
	return (struct event_shm *)o->shm;
}

static int
event_attempt(struct aiop__obj *o, void *args, unsigned flags)
{
	uint32_t w = atomic_load(&S(o)->word);
	const struct event_args *a = args;

	(void)flags;
	if ((w & 1) || (a && (w >> 1) != (a->snap >> 1)))
		return 0;
	return -EAGAIN;
}

static const struct aiop__waitdesc event_wait = {
	.attempt = event_attempt,
	.undo = NULL, /* waiting takes nothing */
	.recheck_ns = AIOP__RECHECK_NS,
};

AIOP_API int
aiop_event_new(struct aiop_event **out)
{
	struct aiop_event *e;
	int r;

	if (!out)
		return -EINVAL;
	r = aiop__obj_new(AIOP__T_EVENT, sizeof(struct event_shm), sizeof(*e),
			  (void **)&e);
	if (r < 0)
		return r;
	aiop__waitq_init(&S(&e->o)->wq);
	*out = e;
	return 0;
}

AIOP_API int
aiop_event_free(struct aiop_event *event)
{
	return event ? aiop__obj_free(&event->o, AIOP__T_EVENT) : 0;
}

AIOP_API int
aiop_event_set(struct aiop_event *event)
{
	int r = aiop__obj_check(event ? &event->o : NULL, AIOP__T_EVENT);
	_Atomic uint32_t *word;
	uint32_t cur;

	if (r < 0)
		return r;
	word = &S(&event->o)->word;
	cur = atomic_load(word);
	do {
		if (cur & 1)
			return 0; /* already set: nobody can be waiting */
	} while (!atomic_compare_exchange_weak(word, &cur,
					       (((cur >> 1) + 1) << 1) | 1));
	aiop__wake(&S(&event->o)->wq, AIOP__WAKE_ALL);
	return 0;
}

AIOP_API int
aiop_event_clear(struct aiop_event *event)
{
	int r = aiop__obj_check(event ? &event->o : NULL, AIOP__T_EVENT);

	if (r < 0)
		return r;
	atomic_fetch_and(&S(&event->o)->word, ~1u);
	return 0;
}

AIOP_API int
aiop_event_is_set(struct aiop_event *event)
{
	int r = aiop__obj_check(event ? &event->o : NULL, AIOP__T_EVENT);

	return r < 0 ? r : (int)(atomic_load(&S(&event->o)->word) & 1);
}

AIOP_API int
aiop_event_try_wait(struct aiop_event *event)
{
	int r = aiop__obj_check(event ? &event->o : NULL, AIOP__T_EVENT);

	return r < 0 ? r : event_attempt(&event->o, NULL, 0);
}

AIOP_API int
aiop_event_wait(struct aiop_event *event, int64_t timeout_ns)
{
	int r = aiop__obj_check(event ? &event->o : NULL, AIOP__T_EVENT);
	struct event_args a;

	if (r < 0)
		return r;
	a.snap = atomic_load(&S(&event->o)->word);
	return aiop__wait(&event->o, &S(&event->o)->wq, &event_wait, &a,
			  timeout_ns);
}

AIOP_API int
aiop_event_coro_wait(struct ev_loop *loop, struct aiop_op *op,
		     struct aiop_event *event, int64_t timeout_ns,
		     aiop_op_cb cb)
{
	int r = aiop__obj_check(event ? &event->o : NULL, AIOP__T_EVENT);
	struct event_args a;

	if (r < 0)
		return r;
	a.snap = atomic_load(&S(&event->o)->word);
	return aiop__coro_start(loop, op, &event->o, &S(&event->o)->wq,
				&event_wait, &a, sizeof(a), timeout_ns,
				cb);
}

/* ---- to and from other processes (share.c) ---------------------------- */

static const struct aiop__share_type event_share = {
	.type = AIOP__T_EVENT,
	.handle_size = sizeof(struct aiop_event),
	.max_size = sizeof(struct event_shm),
};

AIOP_API int
aiop_event_send(int sock, struct aiop_event *event, int64_t timeout_ns)
{
	return aiop__share_send(sock, event ? &event->o : NULL,
				AIOP__T_EVENT, 0, NULL, timeout_ns);
}

AIOP_API int
aiop_event_recv(int sock, struct aiop_event **out, int64_t timeout_ns)
{
	return aiop__share_recv(sock, &event_share, NULL, (void **)out,
				NULL, timeout_ns);
}
