/* SPDX-License-Identifier: MIT */
/*
 * Semaphore and BoundedSemaphore: one counter. The bound lives in the
 * handle (set at creation, inherited by fork) so a peer that scribbles on
 * shared memory cannot lift it for this process.
 */
#include "aiop/ev.h"
#include "internal.h"

struct sem_shm {
	struct aiop__shm_hdr hdr;
	struct aiop__waitq wq;
	_Atomic uint32_t value;
	uint32_t bound; /* informational copy of the handle's limit */
};

struct aiop_sem {
	struct aiop__obj o;
	uint32_t limit; /* AIOP_SEM_VALUE_MAX, or the bound */
};

static inline struct sem_shm *
S(struct aiop__obj *o)
{
	return (struct sem_shm *)o->shm;
}

static int
sem_attempt(struct aiop__obj *o, void *args, unsigned flags)
{
	_Atomic uint32_t *v = &S(o)->value;
	uint32_t cur = atomic_load_explicit(v, memory_order_relaxed);

	(void)args;
	(void)flags;
	while (cur > 0)
		if (atomic_compare_exchange_weak(v, &cur, cur - 1))
			return 0;
	return -EAGAIN;
}

static int
sem_release(struct aiop_sem *sem)
{
	_Atomic uint32_t *v = &S(&sem->o)->value;
	uint32_t cur = atomic_load_explicit(v, memory_order_relaxed);

	do {
		if (cur >= sem->limit)
			return -EOVERFLOW;
	} while (!atomic_compare_exchange_weak(v, &cur, cur + 1));
	aiop__wake(&S(&sem->o)->wq, 1);
	return 0;
}

static int
sem_undo(struct aiop__obj *o, void *args, int result)
{
	(void)args;
	if (result == 0)
		(void)sem_release((struct aiop_sem *)o);
	return -ECANCELED;
}

static const struct aiop__waitdesc sem_wait = {
	.attempt = sem_attempt,
	.undo = sem_undo,
	.recheck_ns = AIOP__RECHECK_NS,
};

/* The bound is the handle's trusted copy, taken from the header once:
 * sem_new() writes it there, a receiver checks it. */
static int
sem_attach(struct aiop__obj *o)
{
	struct aiop_sem *s = (struct aiop_sem *)o;
	uint32_t bound = S(o)->bound;

	if (o->size != aiop__page_round(sizeof(struct sem_shm)) ||
	    bound > AIOP_SEM_VALUE_MAX)
		return -EPROTO;
	s->limit = bound;
	return 0;
}

static int
sem_new(struct aiop_sem **out, unsigned value, bool bounded)
{
	struct aiop_sem *s;
	int r;

	if (!out || value > AIOP_SEM_VALUE_MAX)
		return -EINVAL;
	r = aiop__obj_new(AIOP__T_SEM, sizeof(struct sem_shm), sizeof(*s),
			  (void **)&s);
	if (r < 0)
		return r;
	S(&s->o)->bound = bounded ? value : AIOP_SEM_VALUE_MAX;
	(void)sem_attach(&s->o); /* valid: checked above */
	aiop__waitq_init(&S(&s->o)->wq);
	atomic_store(&S(&s->o)->value, value);
	*out = s;
	return 0;
}

AIOP_API int
aiop_sem_new(struct aiop_sem **out, unsigned value)
{
	return sem_new(out, value, false);
}

AIOP_API int
aiop_sem_new_bounded(struct aiop_sem **out, unsigned value)
{
	return sem_new(out, value, true);
}

AIOP_API int
aiop_sem_free(struct aiop_sem *sem)
{
	return sem ? aiop__obj_free(&sem->o, AIOP__T_SEM) : 0;
}

AIOP_API int
aiop_sem_try_acquire(struct aiop_sem *sem)
{
	int r = aiop__obj_check(sem ? &sem->o : NULL, AIOP__T_SEM);

	return r < 0 ? r : sem_attempt(&sem->o, NULL, 0);
}

AIOP_API int
aiop_sem_acquire(struct aiop_sem *sem, int64_t timeout_ns)
{
	int r = aiop__obj_check(sem ? &sem->o : NULL, AIOP__T_SEM);

	if (r < 0)
		return r;
	if (AIOP_LIKELY(timeout_ns >= AIOP_FOREVER) &&
	    (r = sem_attempt(&sem->o, NULL, 0)) != -EAGAIN)
		return r;
	return aiop__wait(&sem->o, &S(&sem->o)->wq, &sem_wait, NULL,
			  timeout_ns);
}

AIOP_API int
aiop_sem_coro_acquire(struct ev_loop *loop, struct aiop_op *op,
		      struct aiop_sem *sem, int64_t timeout_ns, aiop_op_cb cb)
{
	int r = aiop__obj_check(sem ? &sem->o : NULL, AIOP__T_SEM);

	if (r < 0)
		return r;
	return aiop__coro_start(loop, op, &sem->o, &S(&sem->o)->wq, &sem_wait,
				NULL, 0, timeout_ns, cb);
}

AIOP_API int
aiop_sem_release(struct aiop_sem *sem)
{
	int r = aiop__obj_check(sem ? &sem->o : NULL, AIOP__T_SEM);

	return r < 0 ? r : sem_release(sem);
}

AIOP_API int
aiop_sem_get_value(struct aiop_sem *sem)
{
	int r = aiop__obj_check(sem ? &sem->o : NULL, AIOP__T_SEM);
	uint32_t v;

	if (r < 0)
		return r;
	/* above the max only if a peer wrote it: units are there to take,
	 * so it reads as the most an int says (a mask made 2^31 read 0) */
	v = atomic_load(&S(&sem->o)->value);
	return (int)(v > AIOP_SEM_VALUE_MAX ? AIOP_SEM_VALUE_MAX : v);
}

/* ---- to and from other processes (share.c) ---------------------------- */

static const struct aiop__share_type sem_share = {
	.type = AIOP__T_SEM,
	.handle_size = sizeof(struct aiop_sem),
	.max_size = sizeof(struct sem_shm),
	.attach = sem_attach,
};

AIOP_API int
aiop_sem_send(int sock, struct aiop_sem *sem, int64_t timeout_ns)
{
	return aiop__share_send(sock, sem ? &sem->o : NULL,
				AIOP__T_SEM, 0, NULL, timeout_ns);
}

AIOP_API int
aiop_sem_recv(int sock, struct aiop_sem **out, int64_t timeout_ns)
{
	return aiop__share_recv(sock, &sem_share, NULL, (void **)out,
				NULL, timeout_ns);
}
