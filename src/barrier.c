/* SPDX-License-Identifier: MIT */
/*
 * Barrier (docs/design.md 8.2): every transition is one CAS of a 64-bit
 * word gen:16 | count:15 | broken:1 | hist:32, so arrival, release, break
 * and reset never tear. slot[] records who arrived, for death detection.
 */
#include "aiop/ev.h"
#include "internal.h"

struct barrier_shm {
	struct aiop__shm_hdr hdr;
	struct aiop__waitq wq;
	_Atomic uint64_t st;
	uint32_t parties; /* informational; the handle's copy is used */
	/* generations ended (released or reset), counted after the CAS that
	 * ends one: tells a party whose 16-bit generation came round again
	 * (65 536 ended while it did not look) from one of the current one */
	_Atomic uint32_t ended;
	/* when a waiter last took its turn to probe every slot for a dead
	 * party (CLOCK_MONOTONIC ns; design.md 8.2) */
	_Atomic uint64_t probed;
	_Atomic uint64_t slot[]; /* (gen << 32) | tid of each arrival */
};

struct aiop_barrier {
	struct aiop__obj o;
	uint32_t parties;
	aiop_barrier_action action;
	void *action_arg;
};

struct barrier_args {
	uint8_t phase; /* 0: arriving; 1: arrived, waiting for release */
	uint16_t gen;
	uint32_t idx;
	uint32_t ended; /* barrier_shm.ended read after arriving */
};

#define GEN(s) ((uint16_t)((s) & 0xffff))
#define COUNT(s) ((uint32_t)(((s) >> 16) & 0x7fff))
#define BROKEN(s) (((s) >> 31) & 1)
#define HIST(s, g) (((s) >> (32 + ((g) % 32))) & 1)
#define BROKEN_BIT (1ull << 31)
/* More generations than this ended since a party arrived: its own ended
 * long ago, whatever its 16 bits say. Far below 65 536, so that enders
 * that have not counted yet (stalled between their CAS and their count)
 * can neither hide a wrap nor make a current party look stale. */
#define STALE_ENDS 32768u

static inline struct barrier_shm *
S(struct aiop__obj *o)
{
	return (struct barrier_shm *)o->shm;
}

static inline struct aiop_barrier *
B(struct aiop__obj *o)
{
	return (struct aiop_barrier *)o;
}

/* gen + 1, count 0, not broken; hist bit of the ending generation says
 * whether it ended by a reset (1) or a release (0). */
static uint64_t
next_gen(uint64_t s, bool by_reset)
{
	uint16_t g = GEN(s);
	uint64_t hist = s >> 32;

	hist &= ~(1ull << (g % 32));
	if (by_reset)
		hist |= 1ull << (g % 32);
	return (hist << 32) | (uint16_t)(g + 1);
}

/* Break generation g if it is still current; wake everyone. Returns 1 if
 * this call broke it, 0 if it was broken already, -1 if g had already
 * ended (released or reset) and nothing changed. */
static int
break_gen(struct aiop__obj *o, uint16_t g)
{
	_Atomic uint64_t *st = &S(o)->st;
	uint64_t s = atomic_load(st);
	int r = 0;

	while (GEN(s) == g && !BROKEN(s))
		if (atomic_compare_exchange_weak(st, &s, s | BROKEN_BIT)) {
			r = 1;
			break;
		}
	aiop__wake(&S(o)->wq, AIOP__WAKE_ALL);
	return GEN(s) == g ? r : -1;
}

/* Has the generation counter come round since this party arrived? Then
 * its gen bits name a later generation, not its own. */
static bool
stale(struct aiop__obj *o, const struct barrier_args *a)
{
	return atomic_load(&S(o)->ended) - a->ended > STALE_ENDS;
}

/* Outcome for a party of generation g, or -EAGAIN if still pending. */
static int
outcome(struct aiop__obj *o, uint64_t s, const struct barrier_args *a)
{
	if (GEN(s) != a->gen) {
		/* hist keeps 32 generations: beyond that the outcome cannot
		 * be proved, and a pass is never reported without proof */
		if ((uint16_t)(GEN(s) - a->gen) > 32 ||
		    HIST(s, a->gen) || stale(o, a))
			return -EPIPE;
		return (int)a->idx;
	}
	return BROKEN(s) ? -EPIPE : -EAGAIN;
}

/* Arrived parties of generation GEN(s); never trust the shared count. */
static uint32_t
arrived(struct aiop__obj *o, uint64_t s)
{
	return COUNT(s) < B(o)->parties ? COUNT(s) : B(o)->parties;
}

/* Did the party recorded in slot i for generation GEN(s) die? *rec: was
 * there a record of that generation (PROBE rechecks). */
static bool
slot_dead(struct aiop__obj *o, uint64_t s, uint32_t i, bool *rec)
{
	uint64_t v = atomic_load_explicit(&S(o)->slot[i],
					  memory_order_relaxed);

	/* tid 0: not written yet in this object's life (a zeroed slot
	 * reads as generation 0), so nobody to test */
	*rec = (uint16_t)(v >> 32) == GEN(s) && (uint32_t)v != 0;
	return *rec && !aiop__tid_alive((pid_t)(uint32_t)v);
}

/* A party of this generation that died breaks it. Every slot: for the
 * waiter whose turn it is (probe_turn()), and for a caller outside a full
 * barrier whose last party left no record. */
static bool
dead_party(struct aiop__obj *o, uint64_t s)
{
	uint32_t n = arrived(o, s), i;
	bool rec;

	for (i = 0; i < n; i++)
		if (slot_dead(o, s, i, &rec))
			return true;
	return false;
}

/*
 * Is it this waiter's turn to probe every slot? One waiter a PROBE_GAP_NS
 * does, whichever rechecks first once the gap has passed: every waiter
 * probing every slot each period cost parties squared probes (a kill()
 * and a /proc read each), and 256 waiting parties burned 0.8 s of CPU a
 * second. The turn goes to a waiter that runs, so a stalled one (its loop
 * busy, its process stopped, its thread in the action) never keeps the
 * others from looking. A time ahead of ours is a peer's garbage: taken.
 */
#define PROBE_GAP_NS (AIOP__RECHECK_OWNER_NS / 2)

static bool
probe_turn(struct aiop__obj *o)
{
	_Atomic uint64_t *w = &S(o)->probed;
	uint64_t now = aiop__now_ns(), last = atomic_load(w);

	if (last <= now && now - last < PROBE_GAP_NS)
		return false;
	return atomic_compare_exchange_strong(w, &last, now);
}

/* A caller outside a full barrier: if its last party (in its action)
 * died, nobody else may be left to look. Its death is enough to break
 * the generation; if it left no record, look at every party. */
static bool
dead_full(struct aiop__obj *o, uint64_t s)
{
	bool rec;

	if (slot_dead(o, s, B(o)->parties - 1, &rec))
		return true;
	return !rec && dead_party(o, s);
}

/* Record this party for the death probes, only while its generation is
 * current: it may have ended before (a release does not wait for records,
 * and a reset ends it too), and a party of a later generation may have
 * recorded itself in this slot. The slot is read, then the generation,
 * then the CAS: a later record written after that read fails it, and one
 * written before it means the generation had ended by the check. Writing
 * first and putting the displaced record back when the generation had
 * ended lost the current record when two late parties crossed (each put
 * back what the other had written). */
static void
record(struct aiop__obj *o, const struct barrier_args *a)
{
	_Atomic uint64_t *slot = &S(o)->slot[a->idx];
	uint64_t mine = ((uint64_t)a->gen << 32) | (uint32_t)aiop__tid();
	uint64_t old = atomic_load(slot);

	while (GEN(atomic_load(&S(o)->st)) == a->gen &&
	       !atomic_compare_exchange_weak(slot, &old, mine))
		;
}

static int
release_last(struct aiop__obj *o, struct barrier_args *a)
{
	struct aiop_barrier *b = B(o);
	_Atomic uint64_t *st = &S(o)->st;
	bool ok = !b->action || b->action(b->action_arg) == 0;
	uint64_t s = atomic_load(st), ns;

	for (;;) {
		if (GEN(s) != a->gen || BROKEN(s))
			break; /* reset or broken while the action ran */
		ns = ok ? next_gen(s, false) : s | BROKEN_BIT;
		if (atomic_compare_exchange_weak(st, &s, ns)) {
			if (ok)
				atomic_fetch_add(&S(o)->ended, 1);
			s = ns;
			break;
		}
	}
	aiop__wake(&S(o)->wq, AIOP__WAKE_ALL);
	return ok ? outcome(o, s, a) : -EPIPE;
}

static int
barrier_attempt(struct aiop__obj *o, void *args, unsigned flags)
{
	struct barrier_args *a = args;
	struct aiop_barrier *b = B(o);
	_Atomic uint64_t *st = &S(o)->st;
	uint64_t s = atomic_load(st);
	int r;

	if (a->phase == 0) {
		for (;;) {
			if (BROKEN(s))
				return -EPIPE;
			if (COUNT(s) >= b->parties) {
				/* full: wait for the next generation; but if
				 * its parties all died (the last one in its
				 * action), nobody else would ever look */
				if (!(flags & AIOP__ATT_PROBE) ||
				    !dead_full(o, s))
					return -EAGAIN;
				if (break_gen(o, GEN(s)) >= 0)
					return -EPIPE;
				s = atomic_load(st); /* it ended: again */
				continue;
			}
			if (atomic_compare_exchange_weak(st, &s,
							 s + (1ull << 16)))
				break;
		}
		a->phase = 1;
		a->gen = GEN(s);
		a->idx = COUNT(s);
		a->ended = atomic_load(&S(o)->ended);
		record(o, a);
		if (a->idx + 1 == b->parties)
			return release_last(o, a);
		s = atomic_load(st);
	}
	r = outcome(o, s, a);
	if (r == -EAGAIN && (flags & AIOP__ATT_PROBE) && stale(o, a))
		return -EPIPE; /* its generation ended long ago */
	if (r == -EAGAIN && (flags & AIOP__ATT_PROBE) &&
	    probe_turn(o) && dead_party(o, s)) {
		/* the probe takes a while: a release that landed meanwhile
		 * wins (the generation was never broken) */
		if (break_gen(o, a->gen) >= 0)
			return -EPIPE;
		return outcome(o, atomic_load(st), a);
	}
	return r;
}

static int
leave_broken(struct aiop__obj *o, void *args, int why)
{
	struct barrier_args *a = args;
	int r;

	if (a->phase == 0)
		return why; /* never arrived: not a party, nothing breaks */
	r = outcome(o, atomic_load(&S(o)->st), a);
	if (r != -EAGAIN)
		return r; /* released or broken in the meantime */
	if (stale(o, a))
		return -EPIPE; /* the current generation is not its own */
	/* released, reset or broken by another just now: that wins */
	if (break_gen(o, a->gen) < 1)
		return outcome(o, atomic_load(&S(o)->st), a);
	return why;
}

static int
barrier_expire(struct aiop__obj *o, void *args)
{
	return leave_broken(o, args, -ETIMEDOUT);
}

static int
barrier_cancel(struct aiop__obj *o, void *args)
{
	return leave_broken(o, args, -ECANCELED);
}

static const struct aiop__waitdesc barrier_wait_desc = {
	.attempt = barrier_attempt,
	.recheck_ns = AIOP__RECHECK_OWNER_NS, /* parties can die */
	.expire = barrier_expire,
	.cancel = barrier_cancel,
	.no_try = true, /* arriving commits: it cannot be a try */
	/* an attempt that fails may have arrived (phase 0 -> 1): a younger op
	 * of the same handle, still outside a full barrier, may now be able
	 * to arrive and complete the generation, so a failure proves nothing
	 * for the ops behind it (design.md 2.3) */
	.regroups = true,
};

static int
check(struct aiop_barrier *b)
{
	return aiop__obj_check(b ? &b->o : NULL, AIOP__T_BARRIER);
}

/* parties is the handle's trusted copy, taken from the header once
 * (aiop_barrier_new() writes it there, a receiver checks it); the size
 * must be the one new() maps for it. A received barrier has no action
 * (it is per process). */
static int
barrier_attach(struct aiop__obj *o)
{
	uint32_t parties = S(o)->parties;

	if (parties == 0 || parties > AIOP_BARRIER_PARTIES_MAX ||
	    o->size != aiop__page_round(sizeof(struct barrier_shm) +
					parties * sizeof(uint64_t)))
		return -EPROTO;
	B(o)->parties = parties;
	return 0;
}

AIOP_API int
aiop_barrier_new(struct aiop_barrier **out, unsigned parties,
		 aiop_barrier_action action, void *action_arg)
{
	struct aiop_barrier *b;
	int r;

	if (!out || parties == 0 || parties > AIOP_BARRIER_PARTIES_MAX)
		return -EINVAL;
	r = aiop__obj_new(AIOP__T_BARRIER,
			  sizeof(struct barrier_shm) +
				  parties * sizeof(uint64_t),
			  sizeof(*b), (void **)&b);
	if (r < 0)
		return r;
	aiop__waitq_init(&S(&b->o)->wq);
	S(&b->o)->parties = parties;
	(void)barrier_attach(&b->o); /* valid: checked above */
	b->action = action;
	b->action_arg = action_arg;
	*out = b;
	return 0;
}

AIOP_API int
aiop_barrier_free(struct aiop_barrier *barrier)
{
	return barrier ? aiop__obj_free(&barrier->o, AIOP__T_BARRIER) : 0;
}

AIOP_API int
aiop_barrier_wait(struct aiop_barrier *barrier, int64_t timeout_ns)
{
	struct barrier_args a = { 0 };
	int r = check(barrier);

	if (r < 0)
		return r;
	return aiop__wait(&barrier->o, &S(&barrier->o)->wq,
			  &barrier_wait_desc, &a, timeout_ns);
}

AIOP_API int
aiop_barrier_coro_wait(struct ev_loop *loop, struct aiop_op *op,
		       struct aiop_barrier *barrier, int64_t timeout_ns,
		       aiop_op_cb cb)
{
	struct barrier_args a = { 0 };
	int r = check(barrier);

	if (r < 0)
		return r;
	return aiop__coro_start(loop, op, &barrier->o, &S(&barrier->o)->wq,
				&barrier_wait_desc, &a, sizeof(a), timeout_ns,
				cb);
}

static uint64_t
set_broken(uint64_t s)
{
	return s | BROKEN_BIT;
}

static uint64_t
reset_gen(uint64_t s)
{
	return next_gen(s, true);
}

/* Apply f to whatever state is current when the CAS lands; wake all. */
static int
transition(struct aiop_barrier *barrier, uint64_t (*f)(uint64_t))
{
	_Atomic uint64_t *st;
	uint64_t s;
	int r = check(barrier);

	if (r < 0)
		return r;
	st = &S(&barrier->o)->st;
	s = atomic_load(st);
	while (!atomic_compare_exchange_weak(st, &s, f(s)))
		;
	aiop__wake(&S(&barrier->o)->wq, AIOP__WAKE_ALL);
	return 0;
}

AIOP_API int
aiop_barrier_abort(struct aiop_barrier *barrier)
{
	return transition(barrier, set_broken);
}

AIOP_API int
aiop_barrier_reset(struct aiop_barrier *barrier)
{
	int r = transition(barrier, reset_gen);

	if (r == 0)
		atomic_fetch_add(&S(&barrier->o)->ended, 1);
	return r;
}

AIOP_API int
aiop_barrier_parties(struct aiop_barrier *barrier)
{
	int r = check(barrier);

	return r < 0 ? r : (int)barrier->parties;
}

AIOP_API int
aiop_barrier_n_waiting(struct aiop_barrier *barrier)
{
	uint64_t s;
	int r = check(barrier);

	if (r < 0)
		return r;
	s = atomic_load(&S(&barrier->o)->st);
	if (BROKEN(s))
		return 0;
	return (int)(COUNT(s) < barrier->parties ? COUNT(s)
						 : barrier->parties);
}

AIOP_API int
aiop_barrier_broken(struct aiop_barrier *barrier)
{
	int r = check(barrier);

	return r < 0 ? r : (int)BROKEN(atomic_load(&S(&barrier->o)->st));
}

/* ---- to and from other processes (share.c) ---------------------------- */

static const struct aiop__share_type barrier_share = {
	.type = AIOP__T_BARRIER,
	.handle_size = sizeof(struct aiop_barrier),
	.max_size = sizeof(struct barrier_shm) +
		    AIOP_BARRIER_PARTIES_MAX * sizeof(uint64_t),
	.attach = barrier_attach,
};

AIOP_API int
aiop_barrier_send(int sock, struct aiop_barrier *barrier, int64_t timeout_ns)
{
	return aiop__share_send(sock, barrier ? &barrier->o : NULL,
				AIOP__T_BARRIER, 0, NULL, timeout_ns);
}

AIOP_API int
aiop_barrier_recv(int sock, struct aiop_barrier **out, int64_t timeout_ns)
{
	return aiop__share_recv(sock, &barrier_share, NULL, (void **)out,
				NULL, timeout_ns);
}
