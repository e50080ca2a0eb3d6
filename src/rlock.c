/* SPDX-License-Identifier: MIT */
/*
 * RLock: owner tid plus a recursion depth that only the owner writes.
 * Ownership is (process, thread) because a kernel tid names exactly that.
 * The depth's top bit (NOTICE) says a previous owner died and the grant
 * that told of it was cancelled while the thread held further levels:
 * the last release then gives the lock back as abandoned, so the next
 * acquirer is still told (-EOWNERDEAD).
 */
#include "aiop/ev.h"
#include "internal.h"

struct rlock_shm {
	struct aiop__shm_hdr hdr;
	struct aiop__waitq wq;
	_Atomic uint32_t owner;
	_Atomic uint32_t depth;
};

struct aiop_rlock {
	struct aiop__obj o;
	/* the tid of an owner whose -EOWNERDEAD grant has not reached its
	 * caller yet (a coro grant whose callback has not run), else 0:
	 * levels it takes on top of that grant are told too (untold()) */
	_Atomic uint32_t untold;
};

#define NOTICE 0x80000000u /* above AIOP_RLOCK_DEPTH_MAX */

/* a coro acquire's op arguments: was its grant the recovery itself (not a
 * level on top of the thread's hold)? */
struct rlock_args {
	uint32_t recovery;
};

static inline struct rlock_shm *
S(struct aiop__obj *o)
{
	return (struct rlock_shm *)o->shm;
}

static inline struct aiop_rlock *
H(struct aiop__obj *o)
{
	return (struct aiop_rlock *)o;
}

/* The recovery's notice reached the caller (or was taken back): forget it.
 * Only our own mark is cleared. */
static inline void
told(struct aiop__obj *o)
{
	uint32_t me = (uint32_t)aiop__tid();

	if (atomic_load_explicit(&H(o)->untold, memory_order_relaxed) == me)
		atomic_store_explicit(&H(o)->untold, 0, memory_order_relaxed);
}

/* Does the calling thread own it? (also the Condition's owned hook) */
static bool
owned(struct aiop__obj *o)
{
	return atomic_load(&S(o)->owner) == (uint32_t)aiop__tid();
}

static int
rlock_attempt(struct aiop__obj *o, void *args, unsigned flags)
{
	struct rlock_shm *s = S(o);
	uint32_t me = (uint32_t)aiop__tid(), d;
	int r;

	if (args)
		((struct rlock_args *)args)->recovery = 0;
	if (atomic_load_explicit(&s->owner, memory_order_relaxed) == me) {
		d = atomic_load_explicit(&s->depth, memory_order_relaxed);
		if ((d & ~NOTICE) >= AIOP_RLOCK_DEPTH_MAX)
			return -EOVERFLOW;
		atomic_store_explicit(&s->depth, d + 1, memory_order_relaxed);
		/* a level on top of a recovery whose -EOWNERDEAD has not
		 * reached its caller (a coro grant, callback pending): it is
		 * told too, or a holder could use what the dead one left
		 * without knowing, if that grant were then cancelled */
		return atomic_load_explicit(&H(o)->untold,
					    memory_order_relaxed) == me
			       ? -EOWNERDEAD
			       : 0;
	}
	r = aiop__owner_take(&s->owner, me, UINT32_MAX, flags);
	if (r == 0 || r == -EOWNERDEAD)
		atomic_store_explicit(&s->depth, 1, memory_order_relaxed);
	/* a fresh grant finds no mark of ours: the last release, an undo
	 * or the delivery of the notice cleared it (told()) */
	if (r == -EOWNERDEAD) {
		atomic_store_explicit(&H(o)->untold, me, memory_order_relaxed);
		if (args)
			((struct rlock_args *)args)->recovery = 1;
	}
	return r;
}

static int
rlock_release(struct aiop__obj *o)
{
	struct rlock_shm *s = S(o);
	uint32_t d;

	if (!owned(o))
		return -EPERM;
	d = atomic_load_explicit(&s->depth, memory_order_relaxed);
	if ((d & ~NOTICE) > 1) {
		atomic_store_explicit(&s->depth, d - 1, memory_order_relaxed);
		return 0;
	}
	/* the last level, or a corrupt 0: release fully */
	atomic_store_explicit(&s->depth, 0, memory_order_relaxed);
	told(o);
	aiop__owner_give_back(&s->owner, &s->wq,
			      (d & NOTICE) ? -EOWNERDEAD : 0,
			      (uint32_t)aiop__tid());
	return 0;
}

static int
rlock_undo(struct aiop__obj *o, void *args, int result)
{
	/* one level (maybe a recursive one); a cancelled recovery keeps its
	 * notice for whoever acquires after the last level (NOTICE). Only
	 * the owner writes the depth: the grant made us the owner. A level
	 * told because it came on top of a recovery not yet told leaves the
	 * mark: that recovery may still be cancelled, and levels taken
	 * before then must be told too */
	if (result == -EOWNERDEAD && owned(o) &&
	    ((struct rlock_args *)args)->recovery) {
		atomic_fetch_or_explicit(&S(o)->depth, NOTICE,
					 memory_order_relaxed);
		told(o); /* levels granted on top were told themselves */
	}
	if (result == 0 || result == -EOWNERDEAD)
		(void)rlock_release(o);
	return -ECANCELED;
}

/* coro: the result reaches its callback now */
static int
rlock_finish(struct aiop__obj *o, void *args, int result)
{
	(void)args;
	if (result == -EOWNERDEAD)
		told(o);
	return result;
}

static const struct aiop__waitdesc rlock_wait = {
	.attempt = rlock_attempt,
	.undo = rlock_undo,
	.finish = rlock_finish,
	.recheck_ns = AIOP__RECHECK_OWNER_NS,
};

AIOP_API int
aiop_rlock_new(struct aiop_rlock **out)
{
	struct aiop_rlock *l;
	int r;

	if (!out)
		return -EINVAL;
	r = aiop__obj_new(AIOP__T_RLOCK, sizeof(struct rlock_shm), sizeof(*l),
			  (void **)&l);
	if (r < 0)
		return r;
	aiop__waitq_init(&S(&l->o)->wq);
	*out = l;
	return 0;
}

AIOP_API int
aiop_rlock_free(struct aiop_rlock *rlock)
{
	return rlock ? aiop__obj_free(&rlock->o, AIOP__T_RLOCK) : 0;
}

AIOP_API int
aiop_rlock_try_acquire(struct aiop_rlock *rlock)
{
	int r = aiop__obj_check(rlock ? &rlock->o : NULL, AIOP__T_RLOCK);

	unsigned f;

	if (r < 0)
		return r;
	r = rlock_attempt(&rlock->o, NULL, 0);
	/* a dead owner is only looked for once a try has failed */
	if (r == -EAGAIN && (f = aiop__try_flags()) != 0)
		r = rlock_attempt(&rlock->o, NULL, f);
	if (r == -EOWNERDEAD)
		told(&rlock->o);
	return r;
}

AIOP_API int
aiop_rlock_acquire(struct aiop_rlock *rlock, int64_t timeout_ns)
{
	int r = aiop__obj_check(rlock ? &rlock->o : NULL, AIOP__T_RLOCK);

	if (r < 0)
		return r;
	r = aiop__wait(&rlock->o, &S(&rlock->o)->wq, &rlock_wait, NULL,
		       timeout_ns);
	if (r == -EOWNERDEAD)
		told(&rlock->o);
	return r;
}

AIOP_API int
aiop_rlock_coro_acquire(struct ev_loop *loop, struct aiop_op *op,
			struct aiop_rlock *rlock, int64_t timeout_ns,
			aiop_op_cb cb)
{
	struct rlock_args a = { 0 };
	int r = aiop__obj_check(rlock ? &rlock->o : NULL, AIOP__T_RLOCK);

	if (r < 0)
		return r;
	return aiop__coro_start(loop, op, &rlock->o, &S(&rlock->o)->wq,
				&rlock_wait, &a, sizeof(a), timeout_ns, cb);
}

AIOP_API int
aiop_rlock_release(struct aiop_rlock *rlock)
{
	int r = aiop__obj_check(rlock ? &rlock->o : NULL, AIOP__T_RLOCK);

	return r < 0 ? r : rlock_release(&rlock->o);
}

AIOP_API int
aiop_rlock_depth(struct aiop_rlock *rlock)
{
	int r = aiop__obj_check(rlock ? &rlock->o : NULL, AIOP__T_RLOCK);

	if (r < 0)
		return r;
	if (!owned(&rlock->o))
		return 0;
	return (int)(atomic_load(&S(&rlock->o)->depth) & ~NOTICE);
}

/* ---- to and from other processes (share.c) ---------------------------- */

const struct aiop__share_type aiop__rlock_share = {
	.type = AIOP__T_RLOCK,
	.handle_size = sizeof(struct aiop_rlock),
	.max_size = sizeof(struct rlock_shm),
};

AIOP_API int
aiop_rlock_send(int sock, struct aiop_rlock *rlock, int64_t timeout_ns)
{
	return aiop__share_send(sock, rlock ? &rlock->o : NULL,
				AIOP__T_RLOCK, 0, NULL, timeout_ns);
}

AIOP_API int
aiop_rlock_recv(int sock, struct aiop_rlock **out, int64_t timeout_ns)
{
	return aiop__share_recv(sock, &aiop__rlock_share, NULL, (void **)out,
				NULL, timeout_ns);
}

/* ---- RLock as the lock of a Condition --------------------------------- */

static struct aiop__waitq *
ish_wq(struct aiop__obj *o)
{
	return &S(o)->wq;
}

static int
ish_release_all(struct aiop__obj *o, uint32_t *depth)
{
	struct rlock_shm *s = S(o);
	uint32_t d;

	if (!owned(o))
		return -EPERM;
	/* every level goes, the NOTICE with the last (rlock_release()) */
	d = atomic_load_explicit(&s->depth, memory_order_relaxed);
	*depth = (d & ~NOTICE) ? d & ~NOTICE : 1;
	atomic_store_explicit(&s->depth, 1 | (d & NOTICE),
			      memory_order_relaxed);
	return rlock_release(o);
}

static void
ish_restore(struct aiop__obj *o, uint32_t depth)
{
	struct rlock_shm *s = S(o);
	uint32_t d = atomic_load_explicit(&s->depth, memory_order_relaxed);

	/* a re-take from a dead holder leaves the thread's mark: the
	 * Condition wait says -EOWNERDEAD when it returns or its callback
	 * runs (ish_told()); until then a level the thread takes is told
	 * too, as on top of a coro acquire's recovery */
	if (depth > 1 && (d & ~NOTICE) + (depth - 1) <= AIOP_RLOCK_DEPTH_MAX)
		atomic_store_explicit(&s->depth, d + depth - 1,
				      memory_order_relaxed);
}

/* Give back the n levels this thread took last and keep the others: the
 * loop's thread may hold the lock itself when its Condition wait re-takes
 * it on top (condition.c) */
static int
ish_release(struct aiop__obj *o, uint32_t n)
{
	struct rlock_shm *s = S(o);
	uint32_t d;

	if (!owned(o))
		return -EPERM;
	d = atomic_load_explicit(&s->depth, memory_order_relaxed);
	if ((d & ~NOTICE) > n) {
		atomic_store_explicit(&s->depth, d - n, memory_order_relaxed);
		return 0;
	}
	/* all of them: the NOTICE goes with the last (rlock_release()) */
	atomic_store_explicit(&s->depth, 1 | (d & NOTICE),
			      memory_order_relaxed);
	return rlock_release(o);
}

const struct aiop__lockish aiop__rlock_ish = {
	.type = AIOP__T_RLOCK,
	.wq = ish_wq,
	.attempt = rlock_attempt,
	.owned = owned,
	.release_all = ish_release_all,
	.restore = ish_restore,
	.release = ish_release,
	.told = told,
};
