/* SPDX-License-Identifier: MIT */
/*
 * Condition (docs/design.md 8.1): one 64-bit word, changed only by CAS,
 *   grp:16 (id of the open group) | open:16 | closed:16 | sig:16
 * New waiters join the open group. notify(n) closes the open group (its
 * waiters become eligible, grp moves on) and signals up to n eligible
 * waiters. Only a waiter whose group is closed may take a signal, so a
 * waiter that arrives after a notify (the notifier itself, say) never takes
 * it. A wait is a two-phase op for the engine: phase 0 waits until a
 * signal is there for it (on the condition's queue), phase 1 re-takes the
 * lock (on the lock's queue) and only then takes the signal: a waiter that
 * dies on the way takes none with it (design.md 8.1).
 * grp is 16 bits and wraps; gen, beside the word, counts the groups ever
 * closed (a lower bound, published after each close and each join), so a
 * waiter keeps its group's full id and never takes a wrapped grp for its
 * own (design.md 8.1).
 */
#include <stdlib.h>

#include "aiop/ev.h"
#include "internal.h"

struct cond_shm {
	struct aiop__shm_hdr hdr;
	struct aiop__waitq wq;
	_Atomic uint64_t word; /* grp | open | closed | sig, 16 bits each */
	_Atomic uint64_t gen;  /* groups closed: a lower bound of the open
				  group's full id, whose low 16 bits are grp */
};

struct aiop_cond {
	struct aiop__obj o;
	struct aiop__obj *lock;
	const struct aiop__lockish *ish;
	struct aiop__obj *own; /* a lock freed with it: the RLock made by
				  aiop_cond_new(), or the received one */
};

enum { MODE_WAIT, MODE_WAIT_FOR };

struct cond_args {
	uint8_t phase;   /* 0: wait for a signal; 1: re-take the lock */
	uint8_t mode;    /* MODE_WAIT or MODE_WAIT_FOR */
	uint8_t expired; /* the deadline passed */
	uint8_t took;    /* consumed a notification since registering */
	uint8_t left;    /* not registered any more: took a signal, or left */
	int32_t result;  /* reported once the lock is held again */
	uint32_t depth;  /* recursion depth to restore */
	uint64_t gid;    /* full id of the group it registered in */
	aiop_cond_pred pred;
	void *arg;
};

_Static_assert(sizeof(struct cond_args) <= sizeof(((struct aiop_op *)0)
							  ->aiop_args),
	       "cond args fit an op");

static inline struct cond_shm *
S(struct aiop__obj *o)
{
	return (struct cond_shm *)o->shm;
}

static inline struct aiop_cond *
C(struct aiop__obj *o)
{
	return (struct aiop_cond *)o;
}

static int
check(struct aiop_cond *c)
{
	int r = aiop__obj_check(c ? &c->o : NULL, AIOP__T_COND);

	if (r < 0)
		return r;
	return aiop__obj_check(c->lock, c->ish->type);
}

#define F_SIG(w) ((uint32_t)((w)&0xffff))
#define F_CLOSED(w) ((uint32_t)(((w) >> 16) & 0xffff))
#define F_OPEN(w) ((uint32_t)(((w) >> 32) & 0xffff))
#define F_GRP(w) ((uint16_t)((w) >> 48))
#define F_MAX 0xffffu

static inline uint64_t
mk(uint16_t grp, uint32_t open, uint32_t closed, uint32_t sig)
{
	return (uint64_t)grp << 48 | (uint64_t)open << 32 |
	       (uint64_t)closed << 16 | sig;
}

/* The smallest full group id >= g whose low 16 bits are grp: the open
 * group's id when g is gen read before grp (gen is never above it, and
 * never 65536 below it; design.md 8.1). */
static inline uint64_t
full_id(uint64_t g, uint16_t grp)
{
	return g + (uint16_t)(grp - (uint16_t)g);
}

/* gen = max(gen, v); v must be a lower bound of the open group's id. g:
 * gen as read before (it only grows: no store if it was already v) */
static void
publish(struct cond_shm *s, uint64_t g, uint64_t v)
{
	while (g < v && !atomic_compare_exchange_weak(&s->gen, &g, v))
		;
}

/* Is the group gid closed, the word being cur? grp moved on, or gen
 * already counts past it (grp came round to the same 16 bits again). gen
 * is read after the word: a gen above gid proves the group closed whenever
 * read; one read after cur, with grp equal, is at most a few below cur's
 * full id, so the group is open only if cur's full id is gid. */
static inline bool
closed_grp(struct cond_shm *s, uint64_t cur, uint64_t gid)
{
	return F_GRP(cur) != (uint16_t)gid || atomic_load(&s->gen) > gid;
}

/*
 * notify(n): returns how many waiters were signalled. Every waiter
 * registered before it becomes eligible: the open group is closed even
 * when enough closed waiters are counted, because some of those may be
 * dead (a killed waiter stays counted) and a signal meant for them must be
 * there for a live one to take (design.md 8.1).
 */
static int
notify_n(struct aiop__obj *o, uint32_t n)
{
	_Atomic uint64_t *w = &S(o)->word;
	/* read before the word: full_id() below is then a lower bound of
	 * the new group's id however long this call is held up */
	uint64_t g = atomic_load(&S(o)->gen);
	uint64_t cur = atomic_load(w);
	uint32_t open, closed, sig, k;
	uint16_t grp;

	if (n == 0)
		return 0;
	do {
		grp = F_GRP(cur);
		open = F_OPEN(cur);
		closed = F_CLOSED(cur);
		sig = F_SIG(cur);
		if (open > 0 && closed + open <= F_MAX) {
			closed += open; /* everyone waiting now is eligible */
			open = 0;
			grp++;
		}
		k = n < closed ? n : closed;
		if (k > F_MAX - sig) /* never wrap, even on hostile counts */
			k = F_MAX - sig;
		if (k == 0 && grp == F_GRP(cur))
			return 0;
	} while (!atomic_compare_exchange_weak(
		w, &cur, mk(grp, open, closed - k, sig + k)));
	/* a group closed: count it before the wake, so a woken waiter whose
	 * grp came round again finds its group closed by gen */
	if (grp != F_GRP(cur))
		publish(S(o), g, full_id(g, grp));
	if (k)
		aiop__wake(&S(o)->wq, (int)k);
	return (int)k;
}

/* Is a signal there for this waiter (its group closed)? Only a look: it is
 * taken once the lock is held again (cond_attempt()). */
static bool
signal_there(struct aiop__obj *o, uint64_t gid)
{
	uint64_t cur = atomic_load_explicit(&S(o)->word, memory_order_acquire);

	return F_SIG(cur) > 0 && closed_grp(S(o), cur, gid);
}

/* Take a signal, if this waiter's group is closed and one is there. */
static bool
take_signal(struct aiop__obj *o, uint64_t gid)
{
	_Atomic uint64_t *w = &S(o)->word;
	uint64_t cur = atomic_load(w);

	while (F_SIG(cur) > 0 && closed_grp(S(o), cur, gid))
		if (atomic_compare_exchange_weak(w, &cur, cur - 1))
			return true;
	return false;
}

/* Leave the waiting set: unregister, or take the signal that was meant
 * for us. Returns true if a signal was taken (we were notified). */
static bool
leave(struct aiop__obj *o, uint64_t gid)
{
	_Atomic uint64_t *w = &S(o)->word;
	uint64_t cur = atomic_load(w);
	bool closed;

	for (;;) {
		/* gen again on every turn, after the word it judges */
		closed = closed_grp(S(o), cur, gid);
		if (!closed && F_OPEN(cur) > 0) {
			if (atomic_compare_exchange_weak(w, &cur,
							 cur - (1ull << 32)))
				return false;
		} else if (closed && F_CLOSED(cur) > 0) {
			if (atomic_compare_exchange_weak(w, &cur,
							 cur - (1ull << 16)))
				return false;
		} else if (closed && F_SIG(cur) > 0) {
			if (atomic_compare_exchange_weak(w, &cur, cur - 1))
				return true;
		} else {
			return false; /* corrupt: nothing to give back */
		}
	}
}

/* Leave the waiting set (a deadline, a cancel, a lock re-taken from a dead
 * holder or not at all): the op is then past phase 0 for good. A waiter
 * that leaves a signal there wakes another: the wake-up sent for that
 * signal may have come to this one. */
static void
quit(struct aiop__obj *o, struct cond_args *a)
{
	a->took = leave(o, a->gid);
	if (!a->took && F_SIG(atomic_load(&S(o)->word)) > 0)
		aiop__wake(&S(o)->wq, 1);
	a->left = 1;
	a->phase = 1;
}

/* Join the open group, the lock held; -EOVERFLOW if it is full. *gid:
 * the group's full id, from gen read before the word (a lower bound of it,
 * at most a few groups behind: the lock keeps other joins, and so all but
 * one close, out until this returns). Published, so gen is never more than
 * a group or two behind the open group (design.md 8.1). */
static int
join(struct aiop__obj *o, uint64_t *gid)
{
	_Atomic uint64_t *w = &S(o)->word;
	uint64_t g = atomic_load(&S(o)->gen);
	uint64_t cur = atomic_load(w);

	do {
		if (F_OPEN(cur) >= F_MAX)
			return -EOVERFLOW;
	} while (!atomic_compare_exchange_weak(w, &cur, cur + (1ull << 32)));
	*gid = full_id(g, F_GRP(cur));
	publish(S(o), g, *gid);
	return 0;
}

/* Register and release the lock (the caller owns it). */
/* Register in the open group, the lock held: phase 0 from scratch.
 * again: a wait_for whose predicate is false, whose lock was just re-taken
 * (see cond_begin()) */
static int
enter(struct aiop__obj *o, struct cond_args *a, bool again)
{
	struct aiop_cond *c = C(o);
	int r;

	if (!c->ish->owned(c->lock))
		return -EPERM; /* again: the predicate released it */
	r = join(o, &a->gid);
	if (r < 0)
		return r;
	a->phase = 0;
	a->took = 0;
	a->left = 0;
	/* Waiting again gives back the levels this wait took again (its
	 * depth), not every level of the thread: a coro wait's re-take may
	 * have come on top of its loop's thread's own hold of an RLock (a
	 * recursive level), and releasing all of them freed the lock under
	 * that hold, which the op then restored at its completion */
	return again ? c->ish->release(c->lock, a->depth)
		     : c->ish->release_all(c->lock, &a->depth);
}

static int
cond_begin(struct aiop__obj *o, void *args)
{
	return enter(o, args, false);
}

static int
cond_attempt(struct aiop__obj *o, void *args, unsigned flags)
{
	struct aiop_cond *c = C(o);
	struct cond_args *a = args;
	int r, ok;

	if (a->phase == 0) {
		if (!signal_there(o, a->gid))
			return -EAGAIN;
		a->phase = 1;
	}
	r = c->ish->attempt(c->lock, NULL, flags);
	if (r == -EAGAIN)
		return -EAGAIN;
	if (r != 0 && r != -EOWNERDEAD) {
		/* nothing re-taken (an RLock at its depth limit): the op
		 * ends, and a notification it took goes to another */
		if (!a->left)
			quit(o, a);
		if (a->took)
			(void)notify_n(o, 1);
		a->took = 0;
		return r;
	}
	if (!a->left) {
		/* the lock is held: take the signal now. Taken before, it
		 * went with a waiter killed while it waited for the lock,
		 * and a notify(1) woke nobody */
		if (take_signal(o, a->gid)) {
			a->took = 1;
			a->left = 1;
			a->result = 0;
		} else if (r == 0) {
			/* another waiter took it: wait again */
			(void)c->ish->release(c->lock, 1);
			a->phase = 0;
			return -EAGAIN;
		} else {
			/* a dead holder's lock: kept (-EOWNERDEAD replaces
			 * the result), and the waiting set left */
			quit(o, a);
			a->result = a->took ? 0 : -ETIMEDOUT;
		}
	}
	c->ish->restore(c->lock, a->depth);
	if (r == -EOWNERDEAD)
		return r;
	if (a->mode != MODE_WAIT_FOR || a->result == -ECANCELED)
		return a->result;
	ok = a->pred(a->arg);
	/* a predicate that cancelled its own op (cond_cancel(): its
	 * notification is passed on, the callback gets -ECANCELED with the
	 * lock held): do not wait again, nor report what was cancelled */
	if (a->result == -ECANCELED)
		return -ECANCELED;
	if (ok)
		return 1;
	if (a->expired)
		return 0;
	/* not yet: wait again, within the same deadline. Back to the engine
	 * at once: it arms the new queue and checks the deadline (a peer
	 * refilling signals cannot keep us here) */
	r = enter(o, a, true);
	return r < 0 ? r : -EAGAIN;
}

static struct aiop__waitq *
cond_wq_of(struct aiop__obj *o, void *args)
{
	const struct cond_args *a = args;

	return a->phase == 0 ? &S(o)->wq : C(o)->ish->wq(C(o)->lock);
}

static int
cond_expire(struct aiop__obj *o, void *args)
{
	struct cond_args *a = args;

	a->expired = 1;
	if (!a->left) {
		quit(o, a);
		a->result = a->took ? 0 : -ETIMEDOUT;
	}
	return -EAGAIN; /* the lock is re-taken, with no deadline */
}

static int
cond_cancel(struct aiop__obj *o, void *args)
{
	struct cond_args *a = args;

	if (!a->left)
		quit(o, a);
	if (a->took && a->result != -ECANCELED)
		(void)notify_n(o, 1); /* pass the notification on */
	a->took = 0;
	a->result = -ECANCELED;
	return -EAGAIN; /* the callback runs once the lock is held again */
}

/* A granted op (lock held again, callback not run) is cancelled: it keeps
 * the lock, but a notification it consumed goes to another waiter. A lock
 * it took over from a dead holder stays with it too, so its callback must
 * still say so: -EOWNERDEAD wins over -ECANCELED, as for a waiting op
 * cancelled (cond_cancel) whose re-take finds the holder dead. */
static int
cond_undo(struct aiop__obj *o, void *args, int result)
{
	struct cond_args *a = args;

	if (a->took)
		(void)notify_n(o, 1);
	a->took = 0;
	return result == -EOWNERDEAD ? -EOWNERDEAD : -ECANCELED;
}

/* The result reaches the caller now (a coro callback; a blocking wait's
 * return, wait_common()). A re-take from a dead holder tells the thread
 * only here: a level it took before was told too (the RLock's mark,
 * rlock.c) */
static int
cond_finish(struct aiop__obj *o, void *args, int result)
{
	(void)args;
	if (result == -EOWNERDEAD && C(o)->ish->told)
		C(o)->ish->told(C(o)->lock);
	return result;
}

/* a wait releases the lock: it cannot be a try (no_try) */
#define COND_WAIT_HOOKS                                                      \
	.attempt = cond_attempt, .undo = cond_undo,                          \
	.recheck_ns = AIOP__RECHECK_OWNER_NS, .wq_of = cond_wq_of,           \
	.expire = cond_expire, .cancel = cond_cancel, .begin = cond_begin,   \
	.finish = cond_finish, .no_try = true

static const struct aiop__waitdesc cond_wait_desc = { COND_WAIT_HOOKS };

/* wait_for: an attempt whose predicate is still false registers the op in
 * the open group again, newer than ops behind it in a loop's list; its
 * failure then says nothing about theirs (they may hold closed groups) */
static const struct aiop__waitdesc cond_wait_for_desc = {
	COND_WAIT_HOOKS,
	.regroups = true,
};

static int
cond_new(struct aiop_cond **out, struct aiop__obj *lock,
	 const struct aiop__lockish *ish, struct aiop__obj *own)
{
	struct aiop_cond *c;
	int r;

	if (!out)
		return -EINVAL;
	r = aiop__obj_check(lock, ish->type);
	if (r < 0)
		return r;
	r = aiop__obj_new(AIOP__T_COND, sizeof(struct cond_shm), sizeof(*c),
			  (void **)&c);
	if (r < 0)
		return r;
	aiop__waitq_init(&S(&c->o)->wq);
	c->lock = lock;
	c->ish = ish;
	c->own = own;
	/* the caller's lock must outlive us: its free is refused until then
	 * (one we own goes with us) */
	if (!own)
		atomic_fetch_add(&lock->users, 1);
	*out = c;
	return 0;
}

AIOP_API int
aiop_cond_new(struct aiop_cond **out)
{
	struct aiop_rlock *rl;
	int r;

	if (!out)
		return -EINVAL;
	r = aiop_rlock_new(&rl);
	if (r < 0)
		return r;
	r = cond_new(out, (struct aiop__obj *)rl, &aiop__rlock_ish,
		     (struct aiop__obj *)rl);
	if (r < 0)
		aiop_rlock_free(rl);
	return r;
}

AIOP_API int
aiop_cond_new_lock(struct aiop_cond **out, struct aiop_lock *lock)
{
	return cond_new(out, (struct aiop__obj *)lock, &aiop__lock_ish, NULL);
}

AIOP_API int
aiop_cond_new_rlock(struct aiop_cond **out, struct aiop_rlock *rlock)
{
	return cond_new(out, (struct aiop__obj *)rlock, &aiop__rlock_ish,
			NULL);
}

AIOP_API int
aiop_cond_free(struct aiop_cond *cond)
{
	struct aiop__obj *own, *lock;
	int r;

	if (!cond)
		return 0;
	if (cond->o.hmagic != AIOP__HANDLE_MAGIC ||
	    cond->o.type != AIOP__T_COND)
		return -EINVAL;
	own = cond->own;
	/* coro acquires of its own lock count on that handle */
	if (own && aiop__pending(own) > 0)
		return -EBUSY;
	lock = cond->lock;
	r = aiop__obj_free(&cond->o, AIOP__T_COND);
	if (r == 0 && own)
		(void)aiop__obj_free(own, own->type);
	else if (r == 0)
		atomic_fetch_sub(&lock->users, 1);
	return r;
}

/* ---- to and from other processes (share.c) ---------------------------- */

static const struct aiop__share_type cond_share = {
	.type = AIOP__T_COND,
	.handle_size = sizeof(struct aiop_cond),
	.max_size = sizeof(struct cond_shm),
};

/* A Condition travels with its lock (one message, two memfds). */
AIOP_API int
aiop_cond_send(int sock, struct aiop_cond *cond, int64_t timeout_ns)
{
	int r = check(cond);

	if (r < 0)
		return r;
	return aiop__share_send(sock, &cond->o, AIOP__T_COND, 0, cond->lock,
				timeout_ns);
}

AIOP_API int
aiop_cond_recv(int sock, struct aiop_cond **out, int64_t timeout_ns)
{
	static const struct aiop__share_type *const locks[] = {
		&aiop__lock_share, &aiop__rlock_share, NULL};
	struct aiop__obj *lock;
	struct aiop_cond *c;
	int r;

	if (!out)
		return -EINVAL;
	*out = NULL;
	r = aiop__share_recv(sock, &cond_share, locks, (void **)&c,
			     (void **)&lock, timeout_ns);
	if (r < 0)
		return r;
	c->lock = lock;
	c->ish = lock->type == AIOP__T_LOCK ? &aiop__lock_ish
					    : &aiop__rlock_ish;
	c->own = lock;
	*out = c;
	return 0;
}

AIOP_API int
aiop_cond_acquire(struct aiop_cond *cond, int64_t timeout_ns)
{
	int r = check(cond);

	if (r < 0)
		return r;
	return cond->ish == &aiop__lock_ish
		       ? aiop_lock_acquire((struct aiop_lock *)cond->lock,
					   timeout_ns)
		       : aiop_rlock_acquire((struct aiop_rlock *)cond->lock,
					    timeout_ns);
}

AIOP_API int
aiop_cond_try_acquire(struct aiop_cond *cond)
{
	int r = check(cond);

	if (r < 0)
		return r;
	return cond->ish == &aiop__lock_ish
		       ? aiop_lock_try_acquire((struct aiop_lock *)cond->lock)
		       : aiop_rlock_try_acquire(
				 (struct aiop_rlock *)cond->lock);
}

AIOP_API int
aiop_cond_release(struct aiop_cond *cond)
{
	int r = check(cond);

	if (r < 0)
		return r;
	return cond->ish == &aiop__lock_ish
		       ? aiop_lock_release((struct aiop_lock *)cond->lock)
		       : aiop_rlock_release((struct aiop_rlock *)cond->lock);
}

static inline const struct aiop__waitdesc *
desc_of(const struct cond_args *a)
{
	return a->mode == MODE_WAIT_FOR ? &cond_wait_for_desc : &cond_wait_desc;
}

static int
wait_common(struct aiop_cond *cond, struct cond_args *a, int64_t timeout_ns)
{
	int r;

	if (timeout_ns < 0 && timeout_ns != AIOP_FOREVER)
		return -EINVAL;
	r = cond_begin(&cond->o, a);
	if (r < 0)
		return r;
	r = aiop__wait(&cond->o, &S(&cond->o)->wq, desc_of(a), a,
		       timeout_ns);
	return cond_finish(&cond->o, a, r);
}

AIOP_API int
aiop_cond_wait(struct aiop_cond *cond, int64_t timeout_ns)
{
	struct cond_args a = { .mode = MODE_WAIT };
	int r = check(cond);

	return r < 0 ? r : wait_common(cond, &a, timeout_ns);
}

/* Checks shared by both wait_for forms, then the predicate's first call
 * (before any waiting): < 0 error, 1 already true, 0 go and wait. */
static int
wait_for_first(struct aiop_cond *cond, aiop_cond_pred pred, void *arg,
	       int64_t timeout_ns)
{
	int r = check(cond);

	if (r < 0)
		return r;
	if (!pred || (timeout_ns < 0 && timeout_ns != AIOP_FOREVER))
		return -EINVAL;
	if (!cond->ish->owned(cond->lock))
		return -EPERM;
	return pred(arg) ? 1 : 0;
}

AIOP_API int
aiop_cond_wait_for(struct aiop_cond *cond, aiop_cond_pred pred, void *arg,
		   int64_t timeout_ns)
{
	struct cond_args a = { .mode = MODE_WAIT_FOR, .pred = pred,
			       .arg = arg };
	int r = wait_for_first(cond, pred, arg, timeout_ns);

	return r != 0 ? r : wait_common(cond, &a, timeout_ns);
}

AIOP_API int
aiop_cond_notify(struct aiop_cond *cond, unsigned n)
{
	int r = check(cond);

	if (r < 0)
		return r;
	if (!cond->ish->owned(cond->lock))
		return -EPERM;
	return notify_n(&cond->o, n);
}

AIOP_API int
aiop_cond_notify_all(struct aiop_cond *cond)
{
	return aiop_cond_notify(cond, 0xffffffffu);
}

/* ---- coro ---------------------------------------------------------------- */

static int
coro_common(struct ev_loop *loop, struct aiop_op *op, struct aiop_cond *cond,
	    struct cond_args *a, int64_t timeout_ns, aiop_op_cb cb)
{
	return aiop__coro_start(loop, op, &cond->o, &S(&cond->o)->wq,
				desc_of(a), a, sizeof(*a), timeout_ns, cb);
}

AIOP_API int
aiop_cond_coro_acquire(struct ev_loop *loop, struct aiop_op *op,
		       struct aiop_cond *cond, int64_t timeout_ns,
		       aiop_op_cb cb)
{
	int r = check(cond);

	if (r < 0)
		return r;
	return cond->ish == &aiop__lock_ish
		       ? aiop_lock_coro_acquire(loop, op,
						(struct aiop_lock *)cond->lock,
						timeout_ns, cb)
		       : aiop_rlock_coro_acquire(
				 loop, op, (struct aiop_rlock *)cond->lock,
				 timeout_ns, cb);
}

AIOP_API int
aiop_cond_coro_wait(struct ev_loop *loop, struct aiop_op *op,
		    struct aiop_cond *cond, int64_t timeout_ns, aiop_op_cb cb)
{
	struct cond_args a = { .mode = MODE_WAIT };
	int r = check(cond);

	return r < 0 ? r : coro_common(loop, op, cond, &a, timeout_ns, cb);
}

/*
 * The predicate is first evaluated here, with the lock held: if it is true
 * the op completes (from the loop, never inside this call) with 1 and the
 * lock is not released at all.
 */
static int
pred_true(struct aiop__obj *o, void *args, unsigned flags)
{
	(void)o;
	(void)args;
	(void)flags;
	return 1;
}

static const struct aiop__waitdesc cond_true_desc = {
	.attempt = pred_true,
	.recheck_ns = AIOP__RECHECK_NS,
};

AIOP_API int
aiop_cond_coro_wait_for(struct ev_loop *loop, struct aiop_op *op,
			struct aiop_cond *cond, aiop_cond_pred pred,
			void *arg, int64_t timeout_ns, aiop_op_cb cb)
{
	struct cond_args a = { .mode = MODE_WAIT_FOR, .pred = pred,
			       .arg = arg };
	int r;

	/* the start's own argument errors come before the predicate's
	 * first call: a start refused for them runs no user code (a
	 * predicate that cancels "its" op would cancel the op still
	 * pending, for a start that returns -EBUSY) */
	if (!loop || !op || !cb)
		return -EINVAL;
	if (aiop_op_pending(op))
		return -EBUSY;
	r = wait_for_first(cond, pred, arg, timeout_ns);
	if (r == 1)
		return aiop__coro_start(loop, op, &cond->o, &S(&cond->o)->wq,
					&cond_true_desc, NULL, 0, 0, cb);
	return r < 0 ? r : coro_common(loop, op, cond, &a, timeout_ns, cb);
}
