/* SPDX-License-Identifier: MIT */
/*
 * Lock: shared state is the owner word (internal.h): the holder's kernel
 * tid and a grant serial, 0 = free. Any process may release. A dead owner
 * is found by the engine's periodic PROBE attempt and the lock is taken
 * over with -EOWNERDEAD (docs/design.md 5).
 */
#include "aiop/ev.h"
#include "internal.h"

struct lock_shm {
	struct aiop__shm_hdr hdr;
	struct aiop__waitq wq;
	_Atomic uint32_t owner;
};

struct aiop_lock {
	struct aiop__obj o;
};

/* a coro acquire's op arguments: the word its grant wrote */
struct lock_args {
	uint32_t word;
};

static inline struct lock_shm *
S(struct aiop__obj *o)
{
	return (struct lock_shm *)o->shm;
}

/* Take a free lock, or (on a probe) one whose owner died. Shared by RLock,
 * whose word is the bare tid. */
int
aiop__owner_take(_Atomic uint32_t *owner, uint32_t word, uint32_t tid_mask,
		 unsigned flags)
{
	uint32_t cur = atomic_load_explicit(owner, memory_order_relaxed);
	uint32_t tid;

	if (cur == 0 && atomic_compare_exchange_strong(owner, &cur, word))
		return 0;
	if (cur == AIOP__OWNER_ABANDONED &&
	    atomic_compare_exchange_strong(owner, &cur, word))
		return -EOWNERDEAD;
	/* an RLock's word is the bare tid (tid_mask ~0): bits above 22 name
	 * no thread there, and a word with them is a dead owner's */
	tid = cur & tid_mask;
	if ((flags & AIOP__ATT_PROBE) && cur != 0 &&
	    tid != (word & tid_mask) && !aiop__tid_alive((pid_t)tid) &&
	    atomic_compare_exchange_strong(owner, &cur, word))
		return -EOWNERDEAD;
	return -EAGAIN;
}

/* Blocking, try, and a Condition re-taking its lock (none of which gives
 * a grant back): the bare tid. The blocking hand-off's attempt is then
 * what it was before serials. */
static int
lock_attempt(struct aiop__obj *o, void *args, unsigned flags)
{
	(void)args;
	return aiop__owner_take(&S(o)->owner, (uint32_t)aiop__tid(),
				AIOP__TID_MASK, flags);
}

/* A coro acquire (args: its struct lock_args), whose grant a cancel may
 * have to give back: the word carries a serial, 1..1023, the thread's
 * next, and the op records it (internal.h) */
static int
lock_coro_attempt(struct aiop__obj *o, void *args, unsigned flags)
{
	uint32_t word = (uint32_t)aiop__tid() | aiop__owner_serial();
	int r = aiop__owner_take(&S(o)->owner, word, AIOP__TID_MASK,
				 flags);

	if (r != -EAGAIN) {
		aiop__t_serial++; /* this thread's next grant differs */
		((struct lock_args *)args)->word = word;
	}
	return r;
}

/* The owner word was just cleared; prev is what it held. */
static int
lock_released(struct aiop__obj *o, uint32_t prev)
{
	if (prev == 0)
		return -EPERM;
	aiop__wake(&S(o)->wq, 1);
	return 0;
}

static int
lock_release(struct aiop__obj *o)
{
	return lock_released(o, atomic_exchange(&S(o)->owner, 0));
}

/*
 * The write first, the header check after it (design.md 1, 7): the line,
 * which a waiter on another CPU keeps polling, then comes over once, ready
 * to be written. Checking first read it shared and then upgraded it for
 * the xchg: two transfers on the hand-off's path (sync_bench's Lock ring
 * across CPUs: 176-194 -> 144-170 ns a round trip). Writing the owner word
 * of a mapping whose header a peer corrupted is harmless: the mapping is
 * this handle's own.
 */
static int
lock_release_checked(struct aiop__obj *o)
{
	uint32_t prev;

	if (!aiop__handle_ok(o, AIOP__T_LOCK))
		return -EINVAL;
	prev = atomic_exchange(&S(o)->owner, 0);
	if (!aiop__ident_ok(o, AIOP__T_LOCK))
		return -EPROTO;
	return lock_released(o, prev);
}

/* Give back what was granted: `word`, the owner word the grant wrote. A
 * recovery from a dead holder is given back as "abandoned", so the next
 * acquirer still learns about the death. Only if the word is still there:
 * any process may release a Lock, and one that did so between a coro grant
 * and its cancel must not have a hold taken since released under it, by
 * another process or by this very thread (a coro grant's word carries a
 * serial that no blocking hold and no next 1022 grants of this thread
 * share). */
void
aiop__owner_give_back(_Atomic uint32_t *owner, struct aiop__waitq *wq,
		      int result, uint32_t word)
{
	if (result != 0 && result != -EOWNERDEAD)
		return;
	if (!atomic_compare_exchange_strong(
		    owner, &word, result == 0 ? 0 : AIOP__OWNER_ABANDONED))
		return;
	aiop__wake(wq, 1);
}

static int
lock_undo(struct aiop__obj *o, void *args, int result)
{
	aiop__owner_give_back(&S(o)->owner, &S(o)->wq, result,
			      ((struct lock_args *)args)->word);
	return -ECANCELED;
}

/* blocking waits (a coro op's grant is given back: lock_coro_wait) */
static const struct aiop__waitdesc lock_wait = {
	.attempt = lock_attempt,
	.recheck_ns = AIOP__RECHECK_OWNER_NS,
};

static const struct aiop__waitdesc lock_coro_wait = {
	.attempt = lock_coro_attempt,
	.undo = lock_undo,
	.recheck_ns = AIOP__RECHECK_OWNER_NS,
};

AIOP_API int
aiop_lock_new(struct aiop_lock **out)
{
	struct aiop_lock *l;
	int r;

	if (!out)
		return -EINVAL;
	r = aiop__obj_new(AIOP__T_LOCK, sizeof(struct lock_shm), sizeof(*l),
			  (void **)&l);
	if (r < 0)
		return r;
	aiop__waitq_init(&S(&l->o)->wq);
	*out = l;
	return 0;
}

AIOP_API int
aiop_lock_free(struct aiop_lock *lock)
{
	return lock ? aiop__obj_free(&lock->o, AIOP__T_LOCK) : 0;
}

AIOP_API int
aiop_lock_try_acquire(struct aiop_lock *lock)
{
	int r = aiop__obj_check(lock ? &lock->o : NULL, AIOP__T_LOCK);

	unsigned f;

	if (r < 0)
		return r;
	r = lock_attempt(&lock->o, NULL, 0);
	/* a dead owner is only looked for once a try has failed */
	if (r == -EAGAIN && (f = aiop__try_flags()) != 0)
		r = lock_attempt(&lock->o, NULL, f);
	return r;
}

AIOP_API int
aiop_lock_acquire(struct aiop_lock *lock, int64_t timeout_ns)
{
	int r = aiop__obj_check(lock ? &lock->o : NULL, AIOP__T_LOCK);

	if (r < 0)
		return r;
	/* uncontended fast path, inlined; aiop__wait validates the rest */
	if (AIOP_LIKELY(timeout_ns >= AIOP_FOREVER) &&
	    (r = lock_attempt(&lock->o, NULL, 0)) != -EAGAIN)
		return r;
	return aiop__wait(&lock->o, &S(&lock->o)->wq, &lock_wait, NULL,
			  timeout_ns);
}

AIOP_API int
aiop_lock_coro_acquire(struct ev_loop *loop, struct aiop_op *op,
		       struct aiop_lock *lock, int64_t timeout_ns,
		       aiop_op_cb cb)
{
	struct lock_args a = { 0 };
	int r = aiop__obj_check(lock ? &lock->o : NULL, AIOP__T_LOCK);

	if (r < 0)
		return r;
	return aiop__coro_start(loop, op, &lock->o, &S(&lock->o)->wq,
				&lock_coro_wait, &a, sizeof(a), timeout_ns, cb);
}

AIOP_API int
aiop_lock_release(struct aiop_lock *lock)
{
	return lock_release_checked(lock ? &lock->o : NULL);
}

AIOP_API int
aiop_lock_locked(struct aiop_lock *lock)
{
	int r = aiop__obj_check(lock ? &lock->o : NULL, AIOP__T_LOCK);

	if (r < 0)
		return r;
	return atomic_load(&S(&lock->o)->owner) != 0;
}

/* ---- to and from other processes (share.c) ---------------------------- */

const struct aiop__share_type aiop__lock_share = {
	.type = AIOP__T_LOCK,
	.handle_size = sizeof(struct aiop_lock),
	.max_size = sizeof(struct lock_shm),
};

AIOP_API int
aiop_lock_send(int sock, struct aiop_lock *lock, int64_t timeout_ns)
{
	return aiop__share_send(sock, lock ? &lock->o : NULL,
				AIOP__T_LOCK, 0, NULL, timeout_ns);
}

AIOP_API int
aiop_lock_recv(int sock, struct aiop_lock **out, int64_t timeout_ns)
{
	return aiop__share_recv(sock, &aiop__lock_share, NULL, (void **)out,
				NULL, timeout_ns);
}

/* ---- Lock as the lock of a Condition ---------------------------------- */

static struct aiop__waitq *
ish_wq(struct aiop__obj *o)
{
	return &S(o)->wq;
}

static bool
ish_owned(struct aiop__obj *o)
{
	return aiop__owner_tid(atomic_load(&S(o)->owner)) ==
	       (uint32_t)aiop__tid();
}

static int
ish_release_all(struct aiop__obj *o, uint32_t *depth)
{
	*depth = 1;
	return lock_release(o);
}

static void
ish_restore(struct aiop__obj *o, uint32_t depth)
{
	(void)o;
	(void)depth;
}

static int
ish_release(struct aiop__obj *o, uint32_t n)
{
	(void)n; /* one level: a Lock has no other */
	return lock_release(o);
}

const struct aiop__lockish aiop__lock_ish = {
	.type = AIOP__T_LOCK,
	.wq = ish_wq,
	.attempt = lock_attempt,
	.owned = ish_owned,
	.release_all = ish_release_all,
	.restore = ish_restore,
	.release = ish_release,
};
