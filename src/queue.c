/* SPDX-License-Identifier: MIT */
/*
 * Queue, JoinableQueue and SimpleQueue: a ring of variable-length records
 * in shared memory (docs/design.md section 9, docs/queue.md).
 *
 * Producers reserve space under a micro-lock (plock: a few stores, never a
 * copy), which makes every header below `tail` a header written in this
 * lap. Copies run outside it. Each record's state word moves by CAS:
 *
 *   RES(tid) -> COMMIT -> CLAIM(tid) -> FREE        (PAD: skipped)
 *   RES(dead or aborted) -> PAD; CLAIM(dead or given back) -> COMMIT
 *
 * Consumers claim the first COMMIT record, stopping at the first RES so
 * that each producer's messages come out in order. `release` advances over
 * FREE and PAD records; it is what gives space back to producers.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "aiop/ev.h"
#include "internal.h"

/* ---- shared layout ------------------------------------------------------- */

#include "queue_shm.h"
#include "share_wire.h"

/*
 * The reservations and peeks handed out through a handle, written down in
 * the handle (process-local) so that aiop_queue_free() can end the ones
 * left open. The ring's state word names the thread that holds a record,
 * not the handle it came through: two handles of one queue in a process
 * are told apart only here. A slot is taken by one CAS on `key` (fork
 * generation << 32 | tid, 0 free), so no thread ever takes another's;
 * pos and tag follow, written by the owner. A slot of another fork
 * generation is the parent's (inherited with the handle): free for the
 * taking, and never ended here, since the record is the parent's.
 */
#define OPEN_SLOTS 8

struct q_open {
	_Atomic uint64_t key;
	_Atomic uint64_t pos;
	_Atomic uint64_t tag; /* the record's state word when handed out */
};

struct q_opens {
	struct q_open s[OPEN_SLOTS];
	/* more when all are taken; freed with the handle */
	struct q_opens *_Atomic next;
};

struct aiop_queue {
	struct aiop__obj o;
	/* trusted copies, fixed at creation and inherited by fork */
	uint64_t cap, mask;
	unsigned shift;
	uint32_t msg_max, maxsize, flags;
	bool simple;
	unsigned char *ring;
	struct q_opens open;
	/* in open_list (open_thread_exit()), under aiop__reg_mu */
	_Atomic bool open_listed;
	struct aiop_queue *open_next;
};

static inline struct q_shm *
Q(const struct aiop_queue *q)
{
	return (struct q_shm *)q->o.shm;
}

static inline struct rec *
REC(const struct aiop_queue *q, uint64_t pos)
{
	return (struct rec *)(q->ring + (pos & q->mask));
}

static inline uint64_t
mk(const struct aiop_queue *q, uint64_t pos, unsigned kind, uint32_t tid)
{
	return (pos >> q->shift) << 32 | (uint64_t)kind << 28 |
	       (tid & TID_MASK);
}

static inline bool
lap_ok(const struct aiop_queue *q, uint64_t st, uint64_t pos)
{
	return (uint32_t)(st >> 32) == (uint32_t)(pos >> q->shift);
}

static inline unsigned
kind_of(uint64_t st)
{
	return (unsigned)(st >> 28) & 15u;
}

static inline uint64_t
rsize_of(size_t len)
{
	return HDR + (((uint64_t)len + 15u) & ~(uint64_t)15u);
}

static inline uint32_t
me(void)
{
	return (uint32_t)aiop__tid() & TID_MASK;
}

/* ---- the claim hint ------------------------------------------------------ */


/* The hint as a position in [rel, tail]; rel if it is stale or garbage. */
static inline uint64_t
head_pos(uint64_t hv, uint64_t rel, uint64_t tail)
{
	uint64_t d = ((hv & H_MASK) - ((rel >> 4) & H_MASK)) & H_MASK;
	uint64_t p = rel + (d << 4);

	return p > tail ? rel : p;
}

static inline uint64_t
head_enc(uint64_t ver, uint64_t pos)
{
	return (ver & 0xffffull) << H_BITS | ((pos >> 4) & H_MASK);
}

/*
 * A record went back to COMMIT at pos: move the hint to it, and bump the
 * version in any case, so that a scanner which passed pos while it was
 * CLAIM cannot then move the hint beyond it with a stale CAS.
 */
static void
head_lower(struct aiop_queue *q, uint64_t pos)
{
	struct q_shm *s = Q(q);
	uint64_t hv = atomic_load(&s->head), nv;

	do {
		uint64_t rel = atomic_load(&s->release);
		uint64_t cur = head_pos(hv, rel, atomic_load(&s->tail));

		nv = head_enc((hv >> H_BITS) + 1, cur < pos ? cur : pos);
	} while (!atomic_compare_exchange_weak(&s->head, &hv, nv));
}

/* ---- producer micro-lock ------------------------------------------------- */

/*
 * Held for a few stores (never a copy), so contention is rare and short.
 * A holder that was preempted gets the CPU back through sched_yield(); one
 * that died is replaced. A peer that scribbles a live tid here forever can
 * only make our attempt report -EAGAIN (the caller's deadline holds).
 */
#define PLOCK_WAIT_NS 1000000u

/* `closed` as set by a close() that could not take plock (queue_close()) */
#define CLOSED_UNLOCKED 2u

static uint64_t plock_settle(struct aiop_queue *q);

static int
plock_take(struct aiop_queue *q, unsigned flags)
{
	_Atomic uint32_t *l = &Q(q)->plock;
	uint32_t self = me(), h;
	uint64_t t0 = 0;

	for (unsigned i = 0;; i++) {
		h = atomic_load_explicit(l, memory_order_relaxed);
		if (h == 0) {
			/* seq_cst, not acquire: reserve() then reads
			 * `closed`, and a close that could not take plock
			 * relies on that read not passing this write (the
			 * Dekker pair of design.md 9.3; an acquire CAS lets
			 * the load pass its store on ARMv8/POWER). The same
			 * lock cmpxchg on x86 */
			if (atomic_compare_exchange_weak_explicit(
				    l, &h, self, memory_order_seq_cst,
				    memory_order_relaxed))
				return 0;
			continue;
		}
		/* a poll of the engine's spin fails at once: it may make
		 * 16 of them before it reads its clock (a stopped holder
		 * made a spin of 5 us last 16 ms, found by review) */
		if (flags & AIOP__ATT_SPIN)
			return -EAGAIN;
		if (i < 100) {
			aiop__cpu_relax();
			continue;
		}
		/* test the holder when we start yielding, every 64 yields,
		 * and before giving up: a dead holder must be replaced even
		 * when a busy CPU makes each yield slow */
		bool late = false;
		if (((i - 100) & 15) == 0) {
			uint64_t t = aiop__now_ns();
			if (!t0)
				t0 = t;
			late = t - t0 > PLOCK_WAIT_NS;
		}
		if ((((i - 100) & 63) == 0 || late) &&
		    (h == self || !aiop__tid_alive((pid_t)(h & TID_MASK))) &&
		    atomic_compare_exchange_strong_explicit(
			    l, &h, self, memory_order_seq_cst,
			    memory_order_relaxed)) {
			AIOP__COUNT(owner_probes);
			/* its holder died: its work below tail was complete,
			 * the rest is rewritten; the counts it was updating
			 * are settled from its journal */
			(void)plock_settle(q);
			return 0;
		}
		if (late) {
			/* a holder that lives and holds on (stopped, or a
			 * hostile peer) costs us at most PLOCK_WAIT_NS per
			 * attempt. Our caller sleeps on not_full: ask the
			 * holder to wake it (Dekker pair with plock_drop) */
			atomic_store(&Q(q)->plock_wait, 1);
			if (atomic_load(l) == 0)
				continue;
			return -EAGAIN;
		}
		(void)sched_yield();
	}
}

static inline void
plock_drop(struct aiop_queue *q)
{
	struct q_shm *s = Q(q);

	atomic_store(&s->plock, 0);
	if (AIOP_UNLIKELY(atomic_load(&s->plock_wait)) &&
	    atomic_exchange(&s->plock_wait, 0))
		aiop__wake(&s->not_full, AIOP__WAKE_ALL);
	/* consumers of a close that could not take plock wait for it to be
	 * free (get_attempt()): the same Dekker pair, on plock and their
	 * waiter words. (`closed` sits on the header line, which every call
	 * reads anyway.) */
	if (AIOP_UNLIKELY(atomic_load(&s->closed) == CLOSED_UNLOCKED))
		aiop__wake(&s->not_empty, AIOP__WAKE_ALL);
}

/* ---- counts that survive a death ----------------------------------------- */

/*
 * nres and ndrop are written under plock by a holder that may die between
 * any two of its stores. Each update writes a journal first, so that what
 * it did can be told whenever it died:
 *
 *  reserve: j_tail, j_nres (low 32 bits of the new tail and nres), then
 *	     tail, then nres. If tail shows the journal's value, nres is the
 *	     journal's (a reservation is never a multiple of 2^32 bytes).
 *  drop:    j_dpos, j_ndrop (ndrop + 1), the record's CAS to a PAD that
 *	     carries that count, then ndrop. If j_ndrop differs and the
 *	     record is that PAD, ndrop is j_ndrop.
 *
 * Readers compute the counts so (nres_now(), ndrop_now()); a holder that
 * takes plock over from a dead one stores them (plock_settle()), before a
 * lap of reservations can rewrite the PAD (design.md 9.7). The
 * JoinableQueue's count depends on both (join_count()): a producer killed
 * between counting a message and publishing it used to leave join()
 * waiting for a message that no longer existed.
 */
static inline uint64_t
nres_fix(uint64_t tail, uint32_t jt, uint32_t jn, uint64_t nres)
{
	if ((uint32_t)tail == jt)
		nres += (uint32_t)(jn - (uint32_t)nres);
	return nres;
}

/* nres as the tail we read makes it. */
static uint64_t
nres_now(struct q_shm *s)
{
	for (unsigned i = 0; i < 64; i++) {
		uint64_t t = atomic_load(&s->tail);
		uint32_t jt = atomic_load(&s->j_tail);
		uint32_t jn = atomic_load(&s->j_nres);
		uint64_t n = atomic_load(&s->nres);

		/* the journal we read is the one of tail t, or of the next
		 * reservation, not yet published (its j_tail is not t's, so
		 * nres is t's). Re-read j_tail too: a j_nres read after the
		 * next holder wrote it, with the j_tail read before, would
		 * count that reservation early (found by review) */
		if (atomic_load(&s->tail) == t &&
		    atomic_load(&s->j_tail) == jt)
			return nres_fix(t, jt, jn, n);
	}
	return atomic_load(&s->nres); /* a peer flaps tail: any value */
}

/* The PAD a drop writes carries its count (in the tid field), so that a
 * journal can tell it from a PAD that was there before (found by review:
 * a prober whose CAS failed on a record already dropped made the journal
 * count one drop more until it restored it). */
static inline uint64_t
drop_pad(const struct aiop_queue *q, uint64_t pos, uint64_t count)
{
	return mk(q, pos, K_PAD, (uint32_t)count);
}

static uint64_t
ndrop_now(struct aiop_queue *q)
{
	struct q_shm *s = Q(q);

	for (unsigned i = 0; i < 64; i++) {
		uint64_t jn = atomic_load(&s->j_ndrop);
		uint64_t nd = atomic_load(&s->ndrop), jp, st;

		if (nd == jn)
			return nd; /* no drop in flight (the usual case) */
		jp = atomic_load(&s->j_dpos) & ~15ull;
		st = atomic_load(&REC(q, jp)->st);
		/* a new drop began, or this one was counted meanwhile (then
		 * j_dpos and the record may be a later drop's): read again */
		if (atomic_load(&s->j_ndrop) != jn ||
		    atomic_load(&s->ndrop) != nd)
			continue;
		/* done and not yet counted, or not done */
		return st == drop_pad(q, jp, jn) ? jn : nd;
	}
	return atomic_load(&s->ndrop);
}

/*
 * JoinableQueue: messages reserved and not task_done'd (a put counts from
 * its reservation: a producer cannot die between counting and reserving).
 * Read in this order, each count no later than the next, it may read high
 * for a moment, never low.
 */
static int64_t
join_count(struct aiop_queue *q)
{
	uint64_t done = atomic_load(&Q(q)->ndone);
	uint64_t drop = ndrop_now(q);

	return (int64_t)(nres_now(Q(q)) - drop - done);
}

/*
 * Under plock, taken over from a dead holder: store the counts its journal
 * says. Now, before any reservation: a lap of them would rewrite the PAD
 * that tells a drop was done (found by review: a drop killed after its
 * CAS was forgotten after one lap, and join() waited for good).
 */
static uint64_t
plock_settle(struct aiop_queue *q)
{
	struct q_shm *s = Q(q);
	uint64_t nd = ndrop_now(q);

	atomic_store(&s->nres, nres_now(s));
	atomic_store(&s->ndrop, nd);
	atomic_store(&s->j_ndrop, nd);
	return nd;
}

/* Under plock: the record at pos, in state `from` (RES), becomes PAD and
 * is counted in ndrop, journaled (see above). */
static bool
drop_locked(struct aiop_queue *q, uint64_t pos, uint64_t from)
{
	struct q_shm *s = Q(q);
	/* settle what a holder that died left (the takeover did, unless a
	 * peer cleared plock instead of taking it over) */
	uint64_t nd = plock_settle(q);

	/* under plock only its producer could change a RES record, and
	 * that is a dead one or us: a record no longer as the caller read
	 * it (another prober dropped it first) is left, no journal. Nor one
	 * `release` passed (it never passes a RES): the caller read it a
	 * lap ago, and payload there may now look just like it (found by
	 * review, reproduced with a prober held for a lap) */
	if (atomic_load(&REC(q, pos)->st) != from ||
	    atomic_load(&s->release) > pos)
		return false;
	atomic_store(&s->j_dpos, pos);
	atomic_store(&s->j_ndrop, nd + 1);
	if (!atomic_compare_exchange_strong(&REC(q, pos)->st, &from,
					    drop_pad(q, pos, nd + 1))) {
		atomic_store(&s->j_ndrop, nd); /* only a hostile peer */
		return false;
	}
	atomic_store(&s->ndrop, nd + 1);
	return true;
}

/* ---- reading records safely ---------------------------------------------- */

/*
 * Has `release` passed pos? Then the record there is no one's any more:
 * its bytes may already be the next lap's, and a consumed record may have
 * kept its CLAIM header (release_ours()).
 */
static inline bool
behind_release(struct aiop_queue *q, uint64_t pos)
{
	return atomic_load(&Q(q)->release) > pos;
}

/* Are release and tail a plausible pair (tail at most a ring ahead, both
 * 16-aligned)? */
static inline bool
ends_ok(const struct aiop_queue *q, uint64_t rel, uint64_t tail)
{
	return tail - rel <= q->cap && !((rel | tail) & 15u);
}

/*
 * Read the record header at pos (rel <= pos < tail) and check it: its lap,
 * its size against the ring and tail. Then re-read `release`: if it passed
 * pos meanwhile, the header may be a producer's half-written one from the
 * next lap, so the caller starts over (-ESTALE). -EPROTO: corrupt.
 */
static int
rec_read(struct aiop_queue *q, uint64_t pos, uint64_t tail, uint64_t *st,
	 uint64_t *rs, uint32_t *len)
{
	struct rec *r = REC(q, pos);
	uint64_t off = pos & q->mask, v, sz;
	uint32_t ln;

	v = atomic_load_explicit(&r->st, memory_order_acquire);
	sz = atomic_load_explicit(&r->rsize, memory_order_acquire);
	ln = atomic_load_explicit(&r->len, memory_order_acquire);
	if (behind_release(q, pos))
		return -ESTALE;
	if (!lap_ok(q, v, pos) || sz < HDR || (sz & 15u) ||
	    sz > q->cap - off || sz > tail - pos || ln > q->msg_max ||
	    ln > sz - HDR)
		return -EPROTO;
	*st = v;
	*rs = sz;
	*len = ln;
	return 0;
}

static inline void *
rec_data(struct aiop_queue *q, uint64_t pos)
{
	return q->ring + (pos & q->mask) + HDR;
}

/*
 * A length or size of one of our own records, read again after it was
 * checked: a peer may have changed it since. Clamp so that positions stay
 * 16-aligned and the payload stays inside the ring.
 */
static inline uint64_t
rsize_safe(struct aiop_queue *q, uint64_t pos)
{
	uint64_t rs = atomic_load_explicit(&REC(q, pos)->rsize,
					   memory_order_relaxed) & ~15ull;

	return rs < HDR ? HDR : rs;
}

static inline uint32_t
len_safe(struct aiop_queue *q, uint64_t pos)
{
	uint64_t room = q->cap - (pos & q->mask) - HDR;
	uint32_t len = atomic_load_explicit(&REC(q, pos)->len,
					    memory_order_relaxed);

	if (len > q->msg_max)
		len = q->msg_max;
	return len > room ? (uint32_t)room : len;
}

/*
 * Load release and tail and check them; -EPROTO if they are nonsense.
 * Between the two loads both may move on (tail up to a lap past the
 * release we read): only a release that did not move proves corruption.
 */
static inline int
ends(struct aiop_queue *q, uint64_t *rel, uint64_t *tail)
{
	struct q_shm *s = Q(q);

	*rel = atomic_load_explicit(&s->release, memory_order_acquire);
	for (unsigned i = 0;; i++) {
		uint64_t r2;

		*tail = atomic_load_explicit(&s->tail, memory_order_acquire);
		if (AIOP_LIKELY(ends_ok(q, *rel, *tail)))
			return 0;
		r2 = atomic_load_explicit(&s->release, memory_order_acquire);
		if (r2 == *rel || i == 64)
			return -EPROTO;
		*rel = r2;
	}
}

/*
 * The consumers' view of tail. `tail` sits on the producers' line, which a
 * producer writes for every message: a consumer read of it moves the line
 * to the consumer's CPU and makes the next put pay the miss. So consumers
 * read `tail_seen` (their own line: a tail some consumer loaded, a lower
 * bound of the real one) and load the real tail only when they reach the
 * bound with a record reserved beyond it (reserved_at()).
 */
static int
tail_fresh(struct aiop_queue *q, uint64_t *rel, uint64_t *tail)
{
	struct q_shm *s = Q(q);
	int r = ends(q, rel, tail);

	if (r == 0 &&
	    atomic_load_explicit(&s->tail_seen, memory_order_relaxed) != *tail)
		atomic_store_explicit(&s->tail_seen, *tail,
				      memory_order_release);
	return r;
}

/* release, and tail_seen if it is plausible for it (else the real tail:
 * *fresh says which). A tail_seen a peer forged too high only makes us
 * read records that fail their checks. */
static int
ends_seen(struct aiop_queue *q, uint64_t *rel, uint64_t *tail, bool *fresh)
{
	struct q_shm *s = Q(q);

	*rel = atomic_load_explicit(&s->release, memory_order_acquire);
	*tail = atomic_load_explicit(&s->tail_seen, memory_order_acquire);
	*fresh = false;
	if (AIOP_LIKELY(ends_ok(q, *rel, *tail)))
		return 0;
	*fresh = true;
	return tail_fresh(q, rel, tail);
}

/*
 * Was a record reserved at p in this lap (p at or past a tail we knew)?
 * Only a hint for whether to load tail: the bytes at p may be the payload
 * of an earlier lap that looks like a header, which costs one load of tail
 * for nothing. A reservation whose header store we see is never missed.
 */
static inline unsigned
reserved_at(struct aiop_queue *q, uint64_t p, uint64_t *st)
{
	unsigned k;

	*st = atomic_load_explicit(&REC(q, p)->st, memory_order_acquire);
	k = kind_of(*st);
	return lap_ok(q, *st, p) && k >= K_RES && k <= K_PAD ? k : 0;
}

/* ---- giving space back --------------------------------------------------- */

/*
 * `need`: gen << 32 | bytes, the least room a producer out of room waits
 * for (NEED_NONE: none). Producers only lower the bytes; a consumer clears
 * them and bumps gen (room_given()) once there is that much room and
 * either ROOM_BATCH bytes of it or nothing more for that consumer to take
 * (it is about to wait). While gen is what a producer saw when it found
 * no room, it waits without reading `release` or taking plock
 * (put_attempt()): in a full ring, a producer polling the consumers' line
 * for every freed record made the consumers miss on it for every message
 * (lock-step hand-off, 3-4x slower). Its periodic probe (100 ms) and its
 * last attempt at its deadline look at the ring itself, so a put never
 * times out while it fits, and room held back waits at most 100 ms.
 */
#define NEED_NONE 0xffffffffull
#define ROOM_BATCH 65536u

static inline uint64_t
room_batch(const struct aiop_queue *q)
{
	return q->cap / 8 < ROOM_BATCH ? q->cap / 8 : ROOM_BATCH;
}

static inline uint64_t
need_bytes(uint64_t w)
{
	return w & NEED_NONE;
}

static inline uint32_t
need_gen(uint64_t w)
{
	return (uint32_t)(w >> 32);
}

/*
 * Clear `need` if there is room enough (see above); idle: the caller has
 * nothing more to take, so waits for no batch. @return cleared (the
 * caller wakes not_full).
 */
static bool
room_given(struct aiop_queue *q, bool idle)
{
	struct q_shm *s = Q(q);
	uint64_t w = atomic_load(&s->need), rel, tail, want;

	/* a CAS: a producer may lower the bytes meanwhile, or a consumer
	 * clear and a producer ask again (a new gen) */
	while (need_bytes(w) != NEED_NONE && ends(q, &rel, &tail) == 0) {
		want = need_bytes(w);
		if (!idle && want < room_batch(q))
			want = room_batch(q);
		if (rel != tail && q->cap - (tail - rel) < want)
			return false;
		if (atomic_compare_exchange_strong(
			    &s->need, &w,
			    (uint64_t)(need_gen(w) + 1u) << 32 | NEED_NONE))
			return true;
	}
	return false;
}

/*
 * Advance `release` over FREE and PAD records (moved: the caller already
 * moved it, over its own records). Producers out of room are
 * woken (all of them) only once there is as much room as the least of them
 * asked for, or the ring is empty: waking them for every freed record
 * would cost a futex wake per message while the ring is full. The Dekker
 * pair: the producer stores `need` and then reads `release`; we move
 * `release` and then read `need` (all seq_cst).
 */
static void
advance_release(struct aiop_queue *q, bool wake_anyway, bool moved)
{
	struct q_shm *s = Q(q);
	uint64_t rel, tail, seen;

	/* A record is checked against tail_seen, on our line (tail_fresh()),
	 * and only one beyond it against tail: the bytes at or past tail are
	 * an earlier lap's, and a message's payload can look like a FREE
	 * header of this lap. A PAD always is: reserve() writes the PAD that
	 * ends a lap under plock, before it publishes tail. */
	rel = atomic_load(&s->release);
	seen = atomic_load_explicit(&s->tail_seen, memory_order_acquire);
	for (unsigned guard = 0; guard < 1u << 20; guard++) {
		struct rec *rc = REC(q, rel);
		uint64_t st, rs, nrel;
		unsigned k;

		if (rel & 15u)
			break; /* corrupt: others report it */
		/* the next record is usually the next one we claim: fetch
		 * it for writing, as claim() would (not the line a producer
		 * may be writing now, at or past the tail we know) */
		if (rel < seen)
			__builtin_prefetch(rc, 1, 3);
		/* seq_cst: the second half of the Dekker pairs between
		 * neighbours (design.md 9.4); a plain load on x86 */
		st = atomic_load(&rc->st);
		rs = atomic_load_explicit(&rc->rsize, memory_order_acquire);
		nrel = atomic_load(&s->release);
		if (nrel != rel) {
			/* moved under us: the header may be of the next lap */
			rel = nrel;
			continue;
		}
		k = kind_of(st);
		if (!lap_ok(q, st, rel) || (k != K_FREE && k != K_PAD) ||
		    rs < HDR || (rs & 15u) || rs > q->cap - (rel & q->mask))
			break;
		if (k == K_PAD || rel + rs > seen) {
			/* seq_cst: the other half of reserve()'s lead PAD
			 * pair (a plain load on x86) */
			tail = atomic_load(&s->tail);
			if (tail <= rel)
				break;
			if (tail > seen) {
				/* the header was read before this tail: it
				 * may be stale payload a producer has since
				 * overwritten. Read it again, below a tail
				 * we know (found by review, reproduced) */
				seen = tail;
				continue;
			}
			if (rs > tail - rel)
				break;
		}
		/* success: release never moved since the header was read,
		 * so no producer could write that header meanwhile */
		if (atomic_compare_exchange_strong(&s->release, &rel,
						   rel + rs)) {
			moved = true;
			rel += rs;
		}
	}
	if (moved && room_given(q, false))
		wake_anyway = true;
	if (wake_anyway)
		aiop__wake(&s->not_full, AIOP__WAKE_ALL);
}

/* Out of room: ask to be woken when `need` bytes are free (see above).
 * @return the word as it is after our request */
static uint64_t
want_room(struct q_shm *s, uint64_t need)
{
	uint64_t cur = atomic_load(&s->need), nw;

	do {
		if (need_bytes(cur) <= need)
			return cur;
		nw = (cur & ~NEED_NONE) | need;
	} while (!atomic_compare_exchange_weak(&s->need, &cur, nw));
	return nw;
}

/* n records were dropped: count them, give their room back, and wake
 * consumers that stopped behind them (the FIFO stop is gone), and joiners
 * if the last unfinished message was one of them. */
static void
dropped(struct aiop_queue *q, unsigned n)
{
	struct q_shm *s = Q(q);

	atomic_fetch_add(&s->nfin, n);
	advance_release(q, q->maxsize != 0, false);
	aiop__wake(&s->not_empty, AIOP__WAKE_ALL);
	if ((q->flags & AIOP_QUEUE_JOINABLE) && join_count(q) <= 0)
		aiop__wake(&s->all_done, AIOP__WAKE_ALL);
}

/*
 * Records in state RES(tid) from pos (n of them, PADs between) are dropped:
 * never delivered. Under plock (drop_locked()); if a live holder keeps it
 * (stopped, or a hostile peer), they are abandoned instead: RES with no
 * owner (tid 0, never alive), which the next probe drops as it drops a
 * dead producer's. @return records dropped or abandoned
 */
static uint64_t next_rec(struct aiop_queue *q, uint64_t pos);

static unsigned
drop_res(struct aiop_queue *q, uint64_t pos, unsigned n, uint32_t tid)
{
	uint64_t p = pos;
	unsigned done = 0;
	bool locked = plock_take(q, 0) == 0;

	for (unsigned i = 0; i < n; i++) {
		uint64_t nx = next_rec(q, p), from = mk(q, p, K_RES, tid);

		if (locked ? drop_locked(q, p, from)
			   : atomic_compare_exchange_strong(
				     &REC(q, p)->st, &from,
				     mk(q, p, K_RES, 0)))
			done++;
		p = nx;
	}
	if (locked) {
		plock_drop(q);
		if (done)
			dropped(q, done);
	}
	return done;
}

static unsigned
drop_own(struct aiop_queue *q, uint64_t pos, unsigned n)
{
	return drop_res(q, pos, n, me());
}

/* A dead producer's record (RES, as read in `from`) is dropped. -EAGAIN:
 * plock is held by a live holder (the next probe tries again). */
static int
rec_drop_dead(struct aiop_queue *q, uint64_t pos, uint64_t from)
{
	bool ok;

	if (plock_take(q, 0) < 0)
		return -EAGAIN;
	ok = drop_locked(q, pos, from);
	plock_drop(q);
	if (!ok)
		return -EPROTO;
	dropped(q, 1);
	return 0;
}

/*
 * A claimed record goes back to COMMIT, first in line again. Not one that
 * `release` passed: its consumer took it and left the header as CLAIM
 * (release_ours()). A prober reaches this after its owner's death, and a
 * dead owner moves `release` no more, so the load below tells (found by
 * review: a prober that read the header before the owner's move and its
 * death gave back a consumed message, a phantom in ncommit that made
 * every later publish skip its wake).
 */
static int
rec_unclaim(struct aiop_queue *q, uint64_t pos, uint64_t from)
{
	if (behind_release(q, pos))
		return -ESTALE;
	if (!atomic_compare_exchange_strong(&REC(q, pos)->st, &from,
					    mk(q, pos, K_COMMIT, 0)))
		return -EPROTO;
	atomic_fetch_add(&Q(q)->ncommit, 1);
	head_lower(q, pos);
	aiop__wake(&Q(q)->not_empty, 1);
	return 0;
}

/*
 * May a COMMIT record lie in front of pos? The hint says none lies in
 * [release, head); a hint past pos reads as `release` (our own record was
 * claimed already, or the hint is garbage). A hint at the PAD that fills
 * the end of the ring up to our record (once a lap: the tail stood there
 * when we reserved) is no message either (found by review). Read only to
 * skip a wake: a wrong answer costs a wake-up or a recheck, never a
 * message.
 */
static bool
claimable_before(struct aiop_queue *q, uint64_t pos)
{
	struct q_shm *s = Q(q);
	uint64_t h = head_pos(atomic_load(&s->head), atomic_load(&s->release),
			      pos);
	uint64_t st;

	if (h >= pos)
		return false;
	/* h is only as aligned as `release` (read unchecked): a header is
	 * read at a 16-aligned h only (found by fuzz_queue) */
	if ((pos & q->mask) != 0 || pos - h >= q->cap || (h & 15u))
		return true;
	st = atomic_load_explicit(&REC(q, h)->st, memory_order_acquire);
	return !(kind_of(st) == K_PAD && lap_ok(q, st, h) &&
		 rsize_safe(q, h) == pos - h);
}

/*
 * n messages were committed from pos: wake consumers, but only if none was
 * waiting to be claimed before them. If some were, a consumer was woken for
 * those (or all were awake) and has not claimed yet; waking another now mostly
 * hits one that is already awake, a futex wake for nothing. Instead the
 * consumer that claims passes the wake on while messages remain
 * (passed_on()). The two sides are a Dekker pair on ncommit and nclaimed
 * (seq_cst): either the producer sees no backlog, or the claimer sees our
 * message. Only read when someone sleeps, so the consumers' line is not
 * touched at saturation.
 * The counts alone can lie: a consumer killed between its claim and
 * counting it leaves a phantom in the backlog once its message is given
 * back, and every later put into an empty queue would skip its wake
 * (sleepers then got messages at their 100 ms recheck). So a skip also
 * needs the hint to leave room for a message in front of ours; the hint
 * is on the line that holds nclaimed, read here anyway.
 */
static void
published(struct aiop_queue *q, uint64_t pos, unsigned n)
{
	struct q_shm *s = Q(q);
	struct aiop__waitq *wq = &s->not_empty;
	uint64_t old = atomic_fetch_add(&s->ncommit, n);
	uint32_t ns;

	if (AIOP_LIKELY(!aiop__has_waiters(wq, &ns)))
		return;
	/* skip if a backlog exists, unless a consumer stopped behind an
	 * uncommitted record (maybe ours): the backlog behind it was not
	 * claimable, so no claimer will pass a wake on */
	if ((int64_t)(old - atomic_load(&s->nclaimed)) > 0 &&
	    claimable_before(q, pos) &&
	    !(atomic_load(&s->res_stop) && atomic_exchange(&s->res_stop, 0)))
		return;
	aiop__wake_slow(wq, ns, (int)n);
}

/* A consumer stopped behind an uncommitted record: tell producers
 * (published()). Read first: the word is written once, not per look. */
static inline void
res_stopped(struct q_shm *s)
{
	if (!atomic_load(&s->res_stop))
		atomic_store(&s->res_stop, 1);
}

/* Committed messages nobody has claimed yet (a snapshot). */
static inline bool
backlog(struct q_shm *s)
{
	return (int64_t)(atomic_load(&s->ncommit) -
			 atomic_load(&s->nclaimed)) > 0;
}

/* We claimed n: if messages are still waiting, wake the next consumer. */
static void
passed_on(struct aiop_queue *q, unsigned n)
{
	struct q_shm *s = Q(q);
	uint32_t ns;

	atomic_fetch_add(&s->nclaimed, n);
	/* waiters first: ncommit is on the producers' line. Safe: a waiter
	 * that arms after this check re-checks and sees the backlog itself;
	 * one the producer saw when it skipped its wake armed before its
	 * check, which came before our increment, so we see it (seq_cst) */
	if (aiop__has_waiters(&s->not_empty, &ns) && backlog(s))
		aiop__wake_slow(&s->not_empty, ns, 1);
}

/* ---- producing ----------------------------------------------------------- */

/*
 * Reserve n records (lens[i] bytes each) in one go. On success *first is
 * the first record's position; the records follow it, with at most one
 * PAD record where they wrap. -EMSGSIZE if they can never fit; -ENOBUFS
 * if they do not fit now (*needw: the `need` word after our request). A
 * batch that fits only from the start of a lap goes there, behind a PAD
 * to the end of this lap, published first;
 * -EAGAIN if maxsize messages are queued or plock is held too long.
 */
static int
reserve(struct aiop_queue *q, const struct iovec *v, size_t one_len,
	unsigned n, uint64_t *first, uint64_t *needw, unsigned flags)
{
	struct q_shm *s = Q(q);
	uint64_t rel, tail, p, need, sum, lead = 0, nfin, nres, nres0;
	uint32_t self = me();
	int r;

	if ((r = plock_take(q, flags)) < 0)
		return r;
again:
	/* seq_cst, after plock's CAS: a consumer that reads `closed` set by
	 * a close that could not take plock and then plock free sees our
	 * reservation, or we see `closed` (get_attempt()) */
	if (atomic_load(&s->closed)) {
		r = -EPIPE;
		goto out;
	}
	/* tail is ours while we hold plock. release is read through the
	 * cache rel_seen, and only loaded when the cache shows too little
	 * room: the consumers' cache line stays theirs (one miss fewer per
	 * message). The cached value was loaded with acquire by a producer
	 * that dropped plock since, so the consumers' copies out of that
	 * space still happen before our writes. */
	tail = atomic_load_explicit(&s->tail, memory_order_relaxed);
	rel = atomic_load_explicit(&s->rel_seen, memory_order_relaxed);
	p = tail;
	sum = 0;
	for (unsigned i = 0; i < n; i++) {
		uint64_t rs = rsize_of(v ? v[i].iov_len : one_len);

		if (q->cap - (p & q->mask) < rs)
			p += q->cap - (p & q->mask); /* PAD to the end */
		p += rs;
		sum += rs;
	}
	need = p - tail;
	if (sum > q->cap) {
		r = -EMSGSIZE; /* never fits, wherever the tail stands */
		goto out;
	}
	/* A batch that would fit from the start of a lap but not from here
	 * (the PADs where its messages wrap make it longer than the ring):
	 * first a PAD to the end of the lap, alone, then the batch from the
	 * start (again:). It used to get -EMSGSIZE, by where the tail stood */
	lead = need > q->cap ? q->cap - (tail & q->mask) : 0;
	if (lead)
		need = lead;
	/* nres as a holder that died may have left it (nres_now()) */
	nres0 = atomic_load_explicit(&s->nres, memory_order_relaxed);
	nres = nres_fix(tail,
			atomic_load_explicit(&s->j_tail, memory_order_relaxed),
			atomic_load_explicit(&s->j_nres, memory_order_relaxed),
			nres0);
	if (q->maxsize) {
		nfin = atomic_load_explicit(&s->nfin, memory_order_acquire);
		if (n > q->maxsize) {
			r = -EMSGSIZE;
			goto out;
		}
		/* the counts say full: believe them unless the ring is
		 * empty. A process killed between consuming a record and
		 * counting it leaves nfin one short for good, and without
		 * this a maxsize 1 queue would refuse every put after it
		 * (tail is ours: release == tail means not even a RES) */
		if (nres - nfin > q->maxsize - n &&
		    atomic_load(&s->release) != tail) {
			r = -EAGAIN;
			goto out;
		}
	}
	if (!ends_ok(q, rel, tail) || need > q->cap - (tail - rel)) {
		if ((r = ends(q, &rel, &tail)) < 0)
			goto out;
		if (need > q->cap - (tail - rel)) {
			*needw = want_room(s, need);
			/* re-read release after publishing the need */
			rel = atomic_load(&s->release);
			if (tail - rel > q->cap) {
				r = -EPROTO;
				goto out;
			}
		}
		atomic_store_explicit(&s->rel_seen, rel, memory_order_relaxed);
		if (need > q->cap - (tail - rel)) {
			r = -ENOBUFS;
			goto out;
		}
	}
	if (AIOP_UNLIKELY(nres != nres0))
		atomic_store_explicit(&s->nres, nres, memory_order_release);
	if (AIOP_UNLIKELY(lead)) {
		/* the lead PAD, published alone (the journal says nres did
		 * not move); then the batch, from the start of the lap */
		struct rec *rc = REC(q, tail);

		atomic_store_explicit(&rc->len, 0, memory_order_relaxed);
		atomic_store_explicit(&rc->rsize, (uint32_t)lead,
				      memory_order_relaxed);
		atomic_store_explicit(&rc->st, mk(q, tail, K_PAD, 0),
				      memory_order_release);
		atomic_store_explicit(&s->j_tail, (uint32_t)(tail + lead),
				      memory_order_release);
		atomic_store_explicit(&s->j_nres, (uint32_t)nres,
				      memory_order_release);
		/* seq_cst, and advance_release() then reads release: a
		 * Dekker pair with a consumer that moves release up to the
		 * PAD and then reads tail (advance_release()). Each sees the
		 * other's write, so one of them passes the PAD; with a plain
		 * store both could stop in front of it, and the batch waited
		 * for a probe (found by review: 34-96 of 20 000 put_many
		 * timed out into an empty queue) */
		atomic_store(&s->tail, tail + lead);
		advance_release(q, false, false);
		goto again;
	}
	p = tail;
	for (unsigned i = 0; i < n; i++) {
		size_t len = v ? v[i].iov_len : one_len;
		uint64_t rs = rsize_of(len), left = q->cap - (p & q->mask);
		struct rec *rc;

		if (left < rs) {
			rc = REC(q, p);
			atomic_store_explicit(&rc->len, 0,
					      memory_order_relaxed);
			atomic_store_explicit(&rc->rsize, (uint32_t)left,
					      memory_order_relaxed);
			atomic_store_explicit(&rc->st, mk(q, p, K_PAD, 0),
					      memory_order_release);
			p += left;
		}
		if (i == 0)
			*first = p;
		rc = REC(q, p);
		atomic_store_explicit(&rc->len, (uint32_t)len,
				      memory_order_relaxed);
		atomic_store_explicit(&rc->rsize, (uint32_t)rs,
				      memory_order_relaxed);
		atomic_store_explicit(&rc->st, mk(q, p, K_RES, self),
				      memory_order_release);
		p += rs;
	}
	/* the journal, then tail, then nres (nres_fix()): each store
	 * ordered after the one before (release: plain stores on x86) */
	atomic_store_explicit(&s->j_tail, (uint32_t)p, memory_order_release);
	atomic_store_explicit(&s->j_nres, (uint32_t)(nres + n),
			      memory_order_release);
	atomic_store_explicit(&s->tail, p, memory_order_release);
	atomic_store_explicit(&s->nres, nres + n, memory_order_release);
	r = 0;
out:
	plock_drop(q);
	return r;
}

/* The position of the record after ours at pos, skipping a PAD. */
static uint64_t
next_rec(struct aiop_queue *q, uint64_t pos)
{
	uint64_t p = pos + rsize_safe(q, pos);

	/* records dropped between two of a run are PADs, any number of them
	 * (at most a lap of them: a peer may have forged some) */
	for (uint64_t seen = 0; seen < q->cap;) {
		uint64_t st = atomic_load_explicit(&REC(q, p)->st,
						   memory_order_relaxed);
		uint64_t rs;

		if (kind_of(st) != K_PAD || !lap_ok(q, st, p))
			break;
		rs = rsize_safe(q, p);
		seen += rs;
		p += rs;
	}
	return p;
}

/* Publish one reserved record (no wake-up: the caller wakes once). */
static int
commit_one(struct aiop_queue *q, uint64_t pos, uint32_t self)
{
	uint64_t from = mk(q, pos, K_RES, self);

	/* seq_cst: one side of the Dekker pairs with a consumer that arms
	 * or sets res_stop and then reads this header (design.md 2.1,
	 * 9.4a); a locked cmpxchg either way on x86 */
	if (!atomic_compare_exchange_strong_explicit(
		    &REC(q, pos)->st, &from, mk(q, pos, K_COMMIT, 0),
		    memory_order_seq_cst, memory_order_relaxed))
		return -EPROTO; /* only corrupt memory takes it from us */
	return 0;
}

/* ---- consuming ----------------------------------------------------------- */

#ifndef PREFETCH_AHEAD
#define PREFETCH_AHEAD 512u
#endif

struct claim {
	uint64_t pos;   /* first record claimed */
	unsigned n;     /* records claimed (consecutive, PADs between) */
	size_t bytes;   /* their payload bytes, 16-aligned each but the
			   last (what a get_many copy needs) */
	uint32_t first_len;
	bool saw_res;   /* stopped at an uncommitted record */
};

/*
 * Claim up to max consecutive COMMIT records whose payloads fit cap (a
 * batch is copied back to back, each message 1-aligned). Scans from the
 * hint, or (PROBE) from `release`, testing RES and CLAIM owners for death.
 * @return records claimed (>= 1), -EAGAIN, -EMSGSIZE (first too large,
 *         c->first_len set), -EPROTO
 */
static int
claim(struct aiop_queue *q, struct claim *c, size_t cap, unsigned max,
      unsigned flags)
{
	struct q_shm *s = Q(q);
	uint32_t self = me();

	c->pos = 0;
	c->first_len = 0;
	c->n = 0;
	c->bytes = 0;
	c->saw_res = false;
	for (unsigned retry = 0; retry < 64; retry++) {
		uint64_t rel, tail, hv, h, p, st, rs, adv_to = 0;
		bool fresh, stale = false;
		int r;

		/* a probe looks at everything: the real tail */
		r = (flags & AIOP__ATT_PROBE)
			    ? (fresh = true, tail_fresh(q, &rel, &tail))
			    : ends_seen(q, &rel, &tail, &fresh);
		if (r < 0)
			return r;
		hv = atomic_load(&s->head);
		if (flags & AIOP__ATT_PROBE) {
			h = rel;
		} else {
			h = head_pos(hv, rel, UINT64_MAX);
			if (h > tail && !fresh) {
				if ((r = tail_fresh(q, &rel, &tail)) < 0)
					return r;
				fresh = true;
				h = head_pos(hv, rel, UINT64_MAX);
			}
			if (h > tail)
				h = rel; /* stale or garbage */
		}
		p = h;
		for (;;) {
			unsigned k;
			uint32_t len;

			if (p >= tail) {
				/* At the tail we knew: load the real one only
				 * if a record was reserved here, and not while
				 * it is in flight (RES): that would pull the
				 * producers' line while they write it. We stop
				 * there as at a RES (below); that the header
				 * may be stale payload does not matter. */
				unsigned rk;

				if (fresh)
					break;
				rk = reserved_at(q, p, &st);
				/* as in rec_read(): if release passed p, the
				 * header may be of the next lap: walk again */
				if (behind_release(q, p)) {
					stale = true;
					break;
				}
				if (!rk)
					break;
				if (rk == K_RES) {
					res_stopped(s);
					if (atomic_load(&REC(q, p)->st) == st)
						break;
				}
				if ((r = tail_fresh(q, &rel, &tail)) < 0)
					return r;
				fresh = true;
				if (p >= tail) {
					/* its producer has not published
					 * tail yet (a PAD, or a RES committed
					 * since): stop behind it likewise */
					res_stopped(s);
					r = tail_fresh(q, &rel, &tail);
					if (r < 0)
						return r;
					if (p >= tail)
						break;
				}
				continue;
			}
			/* for writing: the CAS below then needs no second
			 * transfer of the line from the producer's CPU */
			__builtin_prefetch(REC(q, p), 1, 3);
			r = rec_read(q, p, tail, &st, &rs, &len);
			if (r == -ESTALE)
				break;
			if (r < 0)
				return r;
			k = kind_of(st);
			if (k == K_COMMIT) {
				if (c->n == 0 && len > cap) {
					c->first_len = len;
					return -EMSGSIZE;
				}
				if (c->n > 0 && len > cap - c->bytes)
					break;
				if (!atomic_compare_exchange_strong(
					    &REC(q, p)->st, &st,
					    mk(q, p, K_CLAIM, self)))
					continue; /* changed: look again */
				if (c->n == 0) {
					c->pos = p;
					c->first_len = len;
					/* a consumer behind a full ring reads
					 * lines long written: fetch ahead, but
					 * only below the tail we know (never
					 * the header a producer writes next) */
					uint64_t pf = p + PREFETCH_AHEAD;

					if (tail - p > PREFETCH_AHEAD + 64) {
						__builtin_prefetch(REC(q, pf),
								   1, 3);
						__builtin_prefetch(
							REC(q, pf + 64), 1, 3);
					}
				}
				c->n++;
				c->bytes += len;
				p += rs;
				adv_to = p;
				if (c->n == max)
					break;
				continue;
			}
			if (c->n > 0 && k != K_PAD)
				break; /* a batch is one run */
			if (k == K_RES) {
				uint32_t t = (uint32_t)st & TID_MASK;

				if ((flags & AIOP__ATT_PROBE) && t != self &&
				    !aiop__tid_alive((pid_t)t)) {
					AIOP__COUNT(owner_probes);
					if (rec_drop_dead(q, p, st) == 0)
						continue;
				}
				/* tell producers a consumer waits behind it
				 * (published()), then look again: it may have
				 * been committed before the flag was seen */
				res_stopped(s);
				if (atomic_load(&REC(q, p)->st) != st)
					continue;
				c->saw_res = true;
				break; /* FIFO: nothing passes a RES */
			}
			if (k == K_CLAIM && (flags & AIOP__ATT_PROBE)) {
				uint32_t t = (uint32_t)st & TID_MASK;

				if (t != self && !aiop__tid_alive((pid_t)t) &&
				    rec_unclaim(q, p, st) == 0) {
					AIOP__COUNT(owner_probes);
					continue; /* now COMMIT: take it */
				}
			}
			if (k != K_CLAIM && k != K_FREE && k != K_PAD)
				return -EPROTO;
			p += rs;
			adv_to = p;
		}
		if (c->n == 0 && !c->saw_res &&
		    (stale || (p < tail && behind_release(q, p))))
			continue; /* -ESTALE before anything was claimed */
		/* every record before adv_to is past: move the hint (a
		 * version change since hv means someone gave one back) */
		if (adv_to > head_pos(hv, rel, tail))
			(void)atomic_compare_exchange_strong(
				&s->head, &hv, head_enc(hv >> H_BITS, adv_to));
		return c->n ? (int)c->n : -EAGAIN;
	}
	return c->n ? (int)c->n : -EAGAIN;
}

/*
 * Our claimed record at pos stands at `release` (*rel == pos): move
 * `release` past it, with no FREE mark (design.md 9.4). Nobody else moves
 * `release` over a CLAIM record, so only a corrupt ring makes the CAS
 * fail. The header must still say ours (only a prober that took us for
 * dead, or a peer, changes it) and a size a peer changed since the claim
 * must fit the ring and tail_seen; else the caller frees as usual, and
 * its CAS reports what happened.
 */
static bool
release_ours(struct aiop_queue *q, uint64_t *rel, uint64_t pos, uint64_t st)
{
	struct q_shm *s = Q(q);
	uint64_t rs = rsize_safe(q, pos);
	uint64_t seen = atomic_load_explicit(&s->tail_seen,
					     memory_order_relaxed);

	if (atomic_load_explicit(&REC(q, pos)->st, memory_order_relaxed) !=
		    st ||
	    rs > q->cap - (pos & q->mask) || seen < pos || rs > seen - pos ||
	    !atomic_compare_exchange_strong(&s->release, rel, pos + rs)) {
		*rel = 1; /* no position: frees from here on */
		return false;
	}
	*rel = pos + rs;
	return true;
}

/* Free n records of ours from pos (copying them out first if buf). */
static int
consume(struct aiop_queue *q, uint64_t pos, unsigned n, bool copy,
	unsigned char *buf, size_t cap, size_t *lens)
{
	struct q_shm *s = Q(q);
	uint32_t self = me();
	uint64_t p = pos, rel;
	bool moved = false;
	int r = 0;

	/* every copy before the first free: a consumer that dies in a copy
	 * (killed, or a fault on buf) then leaves all n claimed, given back
	 * whole by a probe. Freeing as it copied, it left the ones already
	 * freed uncounted in nfin for good (a maxsize queue a message
	 * smaller for each, found by review) for a whole memcpy, not for
	 * the few instructions between a free and the count below */
	for (unsigned i = 0; copy && i < n; i++) {
		/* the next header only if it is ours: it may be the one a
		 * producer writes right now */
		uint64_t nx = i + 1 < n ? next_rec(q, p) : 0;
		uint32_t len = len_safe(q, p);

		/* len was checked at claim time; one that a peer changed
		 * since is clamped to what is left of buf */
		if (len > cap)
			len = (uint32_t)cap;
		if (len) {
			memcpy(buf, rec_data(q, p), len);
			buf += len;
		}
		cap -= len;
		if (lens)
			lens[i] = len;
		p = nx;
	}
	/* where `release` stands while it is at our records */
	rel = atomic_load_explicit(&s->release, memory_order_relaxed);
	p = pos;
	for (unsigned i = 0; i < n; i++) {
		uint64_t from = mk(q, p, K_CLAIM, self);
		uint64_t nx = i + 1 < n ? next_rec(q, p) : 0;

		/* at `release`: move it, one locked instruction fewer than a
		 * FREE mark and a move (the release CAS orders our copy
		 * before a producer's writes, as the free CAS did) */
		if (rel == p && release_ours(q, &rel, p, from)) {
			moved = true;
			p = nx;
			continue;
		}
		/* seq_cst: another consumer's advance_release() reads it
		 * after its own free or move (which of the two moves
		 * release on) */
		if (!atomic_compare_exchange_strong_explicit(
			    &REC(q, p)->st, &from, mk(q, p, K_FREE, 0),
			    memory_order_seq_cst, memory_order_relaxed))
			r = -EPROTO;
		p = nx;
	}
	atomic_fetch_add(&s->nfin, n);
	advance_release(q, q->maxsize != 0, moved);
	return r;
}

/* Give back n claimed records from pos (cancel after a grant). */
static void
unclaim_run(struct aiop_queue *q, uint64_t pos, unsigned n)
{
	uint32_t self = me();
	uint64_t p = pos;

	for (unsigned i = 0; i < n; i++) {
		uint64_t nx = next_rec(q, p);
		uint64_t from = mk(q, p, K_CLAIM, self);

		/* only corrupt memory makes it fail: nothing to give back */
		(void)atomic_compare_exchange_strong(&REC(q, p)->st, &from,
						     mk(q, p, K_COMMIT, 0));
		p = nx;
	}
	atomic_fetch_add(&Q(q)->ncommit, n);
	head_lower(q, pos);
	aiop__wake(&Q(q)->not_empty, (int)n);
}

/*
 * Walk from `release` to `tail` and recover the records of dead threads:
 * a dead producer's reservation is dropped, a dead consumer's claim goes
 * back to COMMIT. Producers out of room call it on their periodic probe
 * (consumers' probes do the same inside claim()).
 */
static void
probe_dead(struct aiop_queue *q)
{
	uint64_t rel, tail, p, st, rs;

	if (ends(q, &rel, &tail) < 0)
		return;
	for (p = rel; p < tail;) {
		unsigned k;
		uint32_t t, len;

		if (rec_read(q, p, tail, &st, &rs, &len) < 0)
			return; /* moved on (others act) or garbage */
		k = kind_of(st);
		t = (uint32_t)st & TID_MASK;
		if ((k == K_RES || k == K_CLAIM) && t != me() &&
		    !aiop__tid_alive((pid_t)t)) {
			AIOP__COUNT(owner_probes);
			if (k == K_RES)
				(void)rec_drop_dead(q, p, st);
			else
				(void)rec_unclaim(q, p, st);
		}
		p += rs;
	}
	advance_release(q, false, false);
}

/* ---- zero-copy messages open through a handle (struct q_opens) ---------- */

static inline uint64_t
open_key(void)
{
	uint32_t tid = (uint32_t)aiop__tid(); /* first: may see a fork */

	return (uint64_t)atomic_load_explicit(&aiop__fork_gen,
					      memory_order_relaxed) << 32 |
	       tid;
}

/*
 * A thread that exits gives up its slots in every handle (a pthread key's
 * destructor), and its records are the death probes' to recover, as a dead
 * process's are. A slot left behind would outlive the tid it names: once a
 * probe had given its peek back and the kernel had given the tid to a new
 * thread that peeked the same message through another handle, the state
 * word was again the one written down, and free() took that live thread's
 * peek away (found by review: the message came twice, and its holder's
 * release failed). The handles that ever had a slot taken are listed,
 * under aiop__reg_mu (fork() never leaves it held in the child); each
 * leaves the list in queue_free(), before its slots are freed.
 */
static struct aiop_queue *open_list;
static pthread_key_t open_exit_key;
static pthread_once_t open_exit_once = PTHREAD_ONCE_INIT;
static bool open_exit_ok;
static __thread bool t_open_armed;

static void
open_thread_exit(void *unused)
{
	uint64_t key = open_key();

	(void)unused;
	/* a destructor of another key may still peek or reserve (a later
	 * round): its slot must arm this one again, or it outlives us */
	t_open_armed = false;
	pthread_mutex_lock(&aiop__reg_mu);
	for (struct aiop_queue *q = open_list; q; q = q->open_next)
		for (struct q_opens *c = &q->open; c; c = atomic_load(&c->next))
			for (unsigned i = 0; i < OPEN_SLOTS; i++) {
				uint64_t k = key;

				atomic_compare_exchange_strong(&c->s[i].key,
							       &k, 0);
			}
	pthread_mutex_unlock(&aiop__reg_mu);
}

static void
open_exit_key_make(void)
{
	open_exit_ok = pthread_key_create(&open_exit_key, open_thread_exit) ==
		       0;
}

/* The key's destructor is code of this library: a dlclose() that unmaps
 * it must not leave threads that exit later calling into the hole. */
__attribute__((destructor)) static void
open_exit_key_drop(void)
{
	if (open_exit_ok)
		(void)pthread_key_delete(open_exit_key);
}

/* Once per thread, and per handle: then each open_add() reads two flags.
 * Without a key or the memory for its value, this thread's slots outlive
 * it, as they did before. */
static void
open_arm(struct aiop_queue *q)
{
	if (AIOP_UNLIKELY(!t_open_armed)) {
		pthread_once(&open_exit_once, open_exit_key_make);
		if (open_exit_ok)
			(void)pthread_setspecific(open_exit_key, (void *)1);
		t_open_armed = true;
	}
	if (AIOP_UNLIKELY(!atomic_load_explicit(&q->open_listed,
						memory_order_relaxed))) {
		aiop__atfork_ensure(); /* before reg_mu (domain.c) */
		pthread_mutex_lock(&aiop__reg_mu);
		if (!atomic_load_explicit(&q->open_listed,
					  memory_order_relaxed)) {
			q->open_next = open_list;
			open_list = q;
			atomic_store(&q->open_listed, true);
		}
		pthread_mutex_unlock(&aiop__reg_mu);
	}
}

static void
open_unlist(struct aiop_queue *q)
{
	if (!atomic_load(&q->open_listed))
		return;
	pthread_mutex_lock(&aiop__reg_mu);
	for (struct aiop_queue **pp = &open_list; *pp; pp = &(*pp)->open_next)
		if (*pp == q) {
			*pp = q->open_next;
			break;
		}
	atomic_store(&q->open_listed, false);
	pthread_mutex_unlock(&aiop__reg_mu);
}

/*
 * Write down a record handed out through q (tag: its state word then).
 * With every slot taken and no memory for more, it is not written down:
 * free cannot end it then (as before it could end none), but the call
 * keeps the errors docs/errors.md lists for it.
 */
static void
open_add(struct aiop_queue *q, uint64_t pos, uint64_t tag)
{
	uint64_t key = open_key();
	uint32_t gen = (uint32_t)(key >> 32);
	struct q_opens *c = &q->open, *nc, *none;

	open_arm(q);
	for (;;) {
		for (unsigned i = 0; i < OPEN_SLOTS; i++) {
			struct q_open *o = &c->s[i];
			uint64_t k = atomic_load_explicit(
				&o->key, memory_order_relaxed);

			if ((k == 0 || (uint32_t)(k >> 32) != gen) &&
			    atomic_compare_exchange_strong(&o->key, &k, key)) {
				atomic_store_explicit(&o->pos, pos,
						      memory_order_relaxed);
				atomic_store_explicit(&o->tag, tag,
						      memory_order_relaxed);
				return;
			}
		}
		nc = atomic_load(&c->next);
		if (!nc) {
			/* once per OPEN_SLOTS records open at the same
			 * time, at most: never per operation */
			if (!(nc = calloc(1, sizeof(*nc))))
				return;
			none = NULL;
			if (!atomic_compare_exchange_strong(&c->next, &none,
							    nc)) {
				free(nc); /* another thread's came first */
				nc = none;
			}
		}
		c = nc;
	}
}

/* The record at pos, handed out to this thread through q, is ended. */
static void
open_drop(struct aiop_queue *q, uint64_t pos)
{
	uint64_t key = open_key();

	for (struct q_opens *c = &q->open; c; c = atomic_load(&c->next))
		for (unsigned i = 0; i < OPEN_SLOTS; i++)
			if (atomic_load_explicit(&c->s[i].key,
						 memory_order_relaxed) == key &&
			    atomic_load_explicit(&c->s[i].pos,
						 memory_order_relaxed) == pos) {
				atomic_store(&c->s[i].key, 0);
				return;
			}
}

/*
 * The handle goes: end what this process left open through it, whatever
 * the thread (no call can end it once the handle is gone), if `end`; and
 * free the extra slots. A reservation is dropped as abort drops it, a peek
 * goes back as unpeek gives it; a record no longer in the state it was
 * handed out in (its thread died and a peer recovered it) is left alone.
 * The parent's records, inherited with the handle, are not ours to end.
 */
static void
open_end_all(struct aiop_queue *q, bool end)
{
	uint32_t gen = atomic_load(&aiop__fork_gen);
	struct q_opens *c, *nx;

	for (c = &q->open; c; c = nx) {
		for (unsigned i = 0; i < OPEN_SLOTS && end; i++) {
			struct q_open *o = &c->s[i];
			uint64_t k = atomic_load(&o->key), pos, tag;

			if (k == 0 || (uint32_t)(k >> 32) != gen)
				continue;
			pos = atomic_load(&o->pos);
			tag = atomic_load(&o->tag);
			if (kind_of(tag) == K_RES)
				(void)drop_res(q, pos, 1,
					       (uint32_t)tag & TID_MASK);
			else
				(void)rec_unclaim(q, pos, tag);
			atomic_store(&o->key, 0);
		}
		nx = atomic_load(&c->next);
		if (c != &q->open)
			free(c);
	}
	atomic_store(&q->open.next, NULL);
}

/* ---- the operations as attempts ------------------------------------------ */

static int qsize(struct aiop_queue *q);

enum q_op { QO_PUT, QO_PUTV, QO_GET, QO_GETV, QO_RESERVE, QO_PEEK };

/* Everything an op needs, copied into the coro op (<= 48 bytes). */
struct qargs {
	void *buf;      /* put: data or iovec; get: dest; reserve/peek: msg */
	size_t len;     /* put: length; get: capacity; reserve: length */
	size_t *lens;   /* get: msg_len out; get_many: lens */
	uint64_t pos;   /* granted: first record */
	uint32_t n;     /* put_many: count; get_many: max; granted: count */
	uint8_t op;
	uint8_t coro;   /* second half in finish() */
	uint8_t granted;
	uint8_t room_wait; /* put: found no room, with `need` gen room_gen */
	uint32_t room_gen;
};
_Static_assert(sizeof(struct qargs) <= 48, "qargs must fit struct aiop_op");

static void
fill_msg(struct aiop_queue *q, struct aiop_msg *m, uint64_t pos,
	 unsigned kind)
{
	m->data = rec_data(q, pos);
	m->len = len_safe(q, pos);
	m->aiop_pos = pos;
	m->aiop_tag = mk(q, pos, kind, me());
}

/* The part after the grant: copy in/out and publish or free. */
static int
second_half(struct aiop_queue *q, struct qargs *a)
{
	uint64_t p;
	int r = 0;

	switch (a->op) {
	case QO_PUT:
		r = commit_one(q, a->pos, me());
		if (r == 0)
			published(q, a->pos, 1);
		return r < 0 ? r : 0;
	case QO_PUTV:
		p = a->pos;
		for (unsigned i = 0; i < a->n; i++) {
			uint64_t nx = next_rec(q, p);
			if (commit_one(q, p, me()) < 0)
				r = -EPROTO;
			p = nx;
		}
		published(q, a->pos, a->n);
		return r < 0 ? r : (int)a->n;
	case QO_GET: {
		size_t len = 0;

		r = consume(q, a->pos, 1, true, a->buf, a->len, &len);
		if (a->lens)
			*a->lens = len;
		return r < 0 ? r : (int)len;
	}
	case QO_GETV:
		r = consume(q, a->pos, a->n, true, a->buf, a->len, a->lens);
		return r < 0 ? r : (int)a->n;
	case QO_RESERVE:
		open_add(q, a->pos, mk(q, a->pos, K_RES, me()));
		fill_msg(q, a->buf, a->pos, K_RES);
		/* the length asked for, not the header's (a peer's to write) */
		((struct aiop_msg *)a->buf)->len = a->len;
		return 0;
	case QO_PEEK:
		open_add(q, a->pos, mk(q, a->pos, K_CLAIM, me()));
		fill_msg(q, a->buf, a->pos, K_CLAIM);
		return 0;
	}
	return -EINVAL;
}

/* Copy a put's payload in, right after the reservation. */
static void
copy_in(struct aiop_queue *q, struct qargs *a)
{
	if (a->op == QO_PUT) {
		if (a->len)
			memcpy(rec_data(q, a->pos), a->buf, a->len);
	} else if (a->op == QO_PUTV) {
		const struct iovec *v = a->buf;
		uint64_t p = a->pos;

		/* positions as reserve() laid them out, not as the ring's
		 * headers say (a peer may have changed those) */
		for (unsigned i = 0; i < a->n; i++) {
			if (v[i].iov_len)
				memcpy(rec_data(q, p), v[i].iov_base,
				       v[i].iov_len);
			p += rsize_of(v[i].iov_len);
			if (i + 1 < a->n &&
			    q->cap - (p & q->mask) < rsize_of(v[i + 1].iov_len))
				p += q->cap - (p & q->mask);
		}
	}
}

static int
put_attempt(struct aiop__obj *o, void *args, unsigned flags)
{
	struct aiop_queue *q = (struct aiop_queue *)o;
	struct qargs *a = args;
	unsigned n = a->op == QO_PUTV ? a->n : 1;
	uint64_t w = 0;
	int r;

	/* here, not at start: a coro start fails only on bad arguments */
	if (a->op == QO_PUTV) {
		const struct iovec *v = a->buf;
		for (unsigned i = 0; i < n; i++)
			if (v[i].iov_len > q->msg_max)
				return -EMSGSIZE;
	} else if (a->len > q->msg_max) {
		return -EMSGSIZE;
	}
	if (a->room_wait && !(flags & (AIOP__ATT_PROBE | AIOP__ATT_LAST))) {
		/* still no room since we looked (see need_bytes()): wait
		 * without touching the consumers' line or plock */
		struct q_shm *s = Q(q);

		w = atomic_load(&s->need);
		if (need_gen(w) == a->room_gen &&
		    need_bytes(w) != NEED_NONE &&
		    !atomic_load_explicit(&s->closed, memory_order_relaxed))
			return -EAGAIN;
	}
	r = reserve(q, a->op == QO_PUTV ? a->buf : NULL, a->len, n, &a->pos,
		    &w, flags);
	if ((r == -EAGAIN || r == -ENOBUFS) && (flags & AIOP__ATT_PROBE)) {
		/* out of room: a dead peer's record may hold `release` */
		probe_dead(q);
		r = reserve(q, a->op == QO_PUTV ? a->buf : NULL, a->len, n,
			    &a->pos, &w, flags);
	}
	a->room_wait = r == -ENOBUFS;
	if (r == -ENOBUFS) {
		a->room_gen = need_gen(w);
		r = -EAGAIN;
	}
	if (r < 0)
		return r;
	copy_in(q, a);
	if (a->coro) { /* published in finish(); undo drops it */
		a->granted = 1;
		return a->op == QO_PUTV ? (int)n : 0;
	}
	return second_half(q, a);
}

/*
 * A close that could not take plock (its holder, alive, kept it 1 ms:
 * descheduled, stopped) proves "every put that will publish has reserved"
 * only once plock is seen free after it: the holder may have passed its
 * closed check and not yet published (found by review: its put succeeded
 * after every consumer had drained and got -EPIPE). Read before the walk,
 * so that the walk sees what a holder published before dropping plock. A
 * dead holder publishes nothing more (a PROBE looks). A hostile peer that
 * keeps a live tid in plock makes consumers wait for their deadline, as it
 * does producers (plock_take()).
 */
static bool
plock_busy(struct aiop_queue *q, unsigned flags)
{
	uint32_t h = atomic_load(&Q(q)->plock);

	return h != 0 && (!(flags & AIOP__ATT_PROBE) ||
			  aiop__tid_alive((pid_t)(h & TID_MASK)));
}

static int
get_attempt(struct aiop__obj *o, void *args, unsigned flags)
{
	struct aiop_queue *q = (struct aiop_queue *)o;
	struct qargs *a = args;
	unsigned max = a->op == QO_GETV ? a->n : 1;
	size_t cap = a->op == QO_PEEK ? SIZE_MAX : a->len;
	struct claim c;
	uint32_t cl;
	int r;

	r = claim(q, &c, cap, max, flags);
	if (r == -EAGAIN && !c.saw_res &&
	    (cl = atomic_load(&Q(q)->closed)) != 0) {
		/* closed: every put that will ever publish has reserved by
		 * now, and we see its reservation. Look again (it may have
		 * landed after our first look); -EPIPE is final, so first
		 * give back what dead consumers hold (claims sit behind the
		 * hint, so walk from release). */
		bool held = cl == CLOSED_UNLOCKED && plock_busy(q, flags);

		r = claim(q, &c, cap, max, flags);
		if (r == -EAGAIN && !c.saw_res && qsize(q) > 0 &&
		    !(flags & AIOP__ATT_PROBE)) {
			/* the holders' liveness costs syscalls (and a dead
			 * one's record takes plock): not a spin poll's work,
			 * and no -EPIPE without it; the next attempt looks */
			if (flags & AIOP__ATT_SPIN)
				held = true;
			else
				r = claim(q, &c, cap, max, AIOP__ATT_PROBE);
		}
		if (r == -EAGAIN && !c.saw_res && !held)
			r = -EPIPE;
	}
	if (r == -EAGAIN &&
	    need_bytes(atomic_load_explicit(
		    &Q(q)->need, memory_order_relaxed)) != NEED_NONE &&
	    room_given(q, true))
		/* nothing for us: room held back for a batch goes now */
		aiop__wake(&Q(q)->not_full, AIOP__WAKE_ALL);
	if (r == -EMSGSIZE) {
		/* a coro op writes the caller's memory only just before its
		 * callback (q_finish()), never inside its start call nor
		 * before a cancel: keep the size until then */
		if (a->coro)
			a->pos = c.first_len;
		else if (a->lens)
			a->lens[0] = c.first_len;
		/* we take nothing: another consumer may fit it */
		aiop__wake(&Q(q)->not_empty, 1);
		return r;
	}
	if (r < 0)
		return r;
	a->pos = c.pos;
	a->n = (uint32_t)r;
	passed_on(q, (unsigned)r);
	if (a->coro) { /* copied and freed in finish(); undo gives back */
		a->granted = 1;
		return a->op == QO_GET	? (int)c.first_len
		       : a->op == QO_GETV ? r
					  : 0;
	}
	return second_half(q, a);
}

static int
q_finish(struct aiop__obj *o, void *args, int res)
{
	struct aiop_queue *q = (struct aiop_queue *)o;
	struct qargs *a = args;

	if (!a->granted) {
		if (res == -EMSGSIZE && a->lens &&
		    (a->op == QO_GET || a->op == QO_GETV))
			a->lens[0] = (size_t)a->pos;
		return res;
	}
	a->granted = 0;
	return second_half(q, a);
}

static int
q_undo(struct aiop__obj *o, void *args, int result)
{
	struct aiop_queue *q = (struct aiop_queue *)o;
	struct qargs *a = args;

	(void)result;
	if (!a->granted)
		return -ECANCELED;
	a->granted = 0;
	switch (a->op) {
	case QO_PUT:
	case QO_RESERVE:
		(void)drop_own(q, a->pos, 1);
		break;
	case QO_PUTV:
		(void)drop_own(q, a->pos, a->n);
		break;
	default:
		unclaim_run(q, a->pos, a->op == QO_GETV ? a->n : 1);
		break;
	}
	return -ECANCELED;
}

static const struct aiop__waitdesc put_wait = {
	.attempt = put_attempt,
	.undo = q_undo,
	.finish = q_finish,
	.recheck_ns = AIOP__RECHECK_OWNER_NS,
};

/* A waiting coro get cancelled: a wake meant for it must not be lost. */
static int
get_cancel(struct aiop__obj *o, void *args)
{
	struct q_shm *s = Q((struct aiop_queue *)o);

	(void)args;
	if (backlog(s))
		aiop__wake(&s->not_empty, 1);
	return -ECANCELED;
}

static const struct aiop__waitdesc get_wait = {
	.attempt = get_attempt,
	.undo = q_undo,
	.finish = q_finish,
	.cancel = get_cancel,
	.recheck_ns = AIOP__RECHECK_OWNER_NS,
};

#define JOIN_PROBE_MAX 256

static int
join_attempt(struct aiop__obj *o, void *args, unsigned flags)
{
	struct aiop_queue *q = (struct aiop_queue *)o;

	(void)args;
	if (join_count(q) <= 0)
		return 0;
	/* a dead producer's reservation counts until it is dropped. With
	 * many messages queued, consumers reach it and probe themselves;
	 * a walk over all of them every 100 ms would cost for nothing */
	if ((flags & AIOP__ATT_PROBE) && qsize(q) <= JOIN_PROBE_MAX) {
		probe_dead(q);
		if (join_count(q) <= 0)
			return 0;
	}
	return -EAGAIN;
}

/* probes (100 ms): a producer that dies holds up the count */
static const struct aiop__waitdesc join_wait = {
	.attempt = join_attempt,
	.recheck_ns = AIOP__RECHECK_OWNER_NS,
};

/* ---- handles ------------------------------------------------------------- */

static inline int
check(struct aiop_queue *q, bool simple)
{
	int r = aiop__obj_check(q ? &q->o : NULL, AIOP__T_QUEUE);

	if (r == 0 && q->simple != simple)
		return -EINVAL;
	return r;
}

/* the header's pages, then the ring */
#define RING_OFF ((sizeof(struct q_shm) + 4095) & ~(size_t)4095)

/*
 * The handle's trusted copies come from the header's informational ones,
 * once (queue_new() writes them, a receiver checks them), and only if
 * queue_new() could have made them: a capacity that is a power of two in
 * range, a msg_max it allows, known flags, and a size that is exactly the
 * header's pages plus the ring, in whole pages.
 */
static int
queue_attach(struct aiop__obj *o)
{
	struct aiop_queue *q = (struct aiop_queue *)o;
	uint32_t cap = Q(q)->capacity, mmax = Q(q)->msg_max;
	uint32_t maxsize = Q(q)->maxsize, flags = Q(q)->flags;

	if (cap < 4096 || cap > AIOP_QUEUE_CAPACITY_MAX || (cap & (cap - 1)) ||
	    mmax == 0 || mmax > cap / 2 - 32 || maxsize > INT32_MAX ||
	    (flags & ~AIOP_QUEUE_JOINABLE) ||
	    o->size != aiop__page_round(RING_OFF + cap))
		return -EPROTO;
	q->cap = cap;
	q->mask = cap - 1;
	q->shift = (unsigned)__builtin_ctz(cap);
	q->msg_max = mmax;
	q->maxsize = maxsize;
	q->flags = flags;
	q->ring = (unsigned char *)o->shm + RING_OFF;
	return 0;
}

static int
queue_new(struct aiop_queue **out, const struct aiop_queue_attr *attr,
	  bool simple)
{
	struct aiop_queue_attr a = {0};
	struct aiop_queue *q;
	size_t cap, mmax;
	unsigned shift = 12;
	int r;

	if (!out)
		return -EINVAL;
	if (attr)
		a = *attr;
	if ((a.flags & ~AIOP_QUEUE_JOINABLE) || a.maxsize > INT32_MAX ||
	    a.capacity > AIOP_QUEUE_CAPACITY_MAX)
		return -EINVAL;
	cap = a.capacity ? a.capacity : AIOP_QUEUE_CAPACITY_DEFAULT;
	while (((size_t)1 << shift) < cap)
		shift++;
	cap = (size_t)1 << shift;
	if (a.msg_max > cap / 2 - 32)
		return -EINVAL;
	mmax = a.msg_max ? a.msg_max : AIOP_QUEUE_MSG_MAX_DEFAULT;
	if (mmax > cap / 2 - 32)
		mmax = cap / 2 - 32;
	r = aiop__obj_new(AIOP__T_QUEUE, RING_OFF + cap, sizeof(*q),
			  (void **)&q);
	if (r < 0)
		return r;
	Q(q)->capacity = (uint32_t)cap;
	Q(q)->msg_max = (uint32_t)mmax;
	Q(q)->maxsize = a.maxsize;
	Q(q)->flags = a.flags;
	(void)queue_attach(&q->o); /* valid: checked above */
	q->simple = simple;
	aiop__waitq_init(&Q(q)->not_empty);
	aiop__waitq_init(&Q(q)->not_full);
	aiop__waitq_init(&Q(q)->all_done);
	atomic_store(&Q(q)->need, UINT64_MAX); /* gen 0xffffffff, none */
	*out = q;
	return 0;
}

AIOP_API int
aiop_queue_new(struct aiop_queue **out, const struct aiop_queue_attr *attr)
{
	return queue_new(out, attr, false);
}

/*
 * Reservations and peeks left open through the handle are ended first
 * (open_end_all()), and only once free cannot fail: a failed free leaves
 * the handle as it was. Pending coro ops make it fail (-EBUSY): a granted
 * one is still the loop's to deliver or give back.
 */
static int
queue_free(struct aiop_queue *q, bool simple)
{
	if (!q)
		return 0;
	if (!aiop__handle_ok(&q->o, AIOP__T_QUEUE) || q->simple != simple)
		return -EINVAL;
	if (aiop__pending(&q->o) > 0)
		return -EBUSY;
	/* first, so that no exiting thread walks the slots freed here */
	open_unlist(q);
	/* a peer that broke the header: leave its ring alone */
	open_end_all(q, aiop__ident_ok(&q->o, AIOP__T_QUEUE));
	return aiop__obj_free(&q->o, AIOP__T_QUEUE);
}

AIOP_API int
aiop_queue_free(struct aiop_queue *q)
{
	return queue_free(q, false);
}

/* ---- to and from other processes (share.c) ---------------------------- */

static const struct aiop__share_type queue_share = {
	.type = AIOP__T_QUEUE,
	.handle_size = sizeof(struct aiop_queue),
	.max_size = RING_OFF + AIOP_QUEUE_CAPACITY_MAX,
	.attach = queue_attach,
};

static const struct aiop__share_type simplequeue_share = {
	.type = AIOP__T_QUEUE,
	.flags = AIOP__WIRE_SIMPLE,
	.handle_size = sizeof(struct aiop_queue),
	.max_size = RING_OFF + AIOP_QUEUE_CAPACITY_MAX,
	.attach = queue_attach,
};

static int
queue_send(int sock, struct aiop_queue *q, bool simple, int64_t timeout_ns)
{
	int r = check(q, simple);

	if (r < 0)
		return r;
	return aiop__share_send(sock, &q->o, AIOP__T_QUEUE,
				simple ? AIOP__WIRE_SIMPLE : 0, NULL,
				timeout_ns);
}

static int
queue_recv(int sock, struct aiop_queue **out, bool simple,
	   int64_t timeout_ns)
{
	int r = aiop__share_recv(sock,
				 simple ? &simplequeue_share : &queue_share,
				 NULL, (void **)out, NULL, timeout_ns);

	if (r == 0)
		(*out)->simple = simple;
	return r;
}

AIOP_API int
aiop_queue_send(int sock, struct aiop_queue *q, int64_t timeout_ns)
{
	return queue_send(sock, q, false, timeout_ns);
}

AIOP_API int
aiop_queue_recv(int sock, struct aiop_queue **out, int64_t timeout_ns)
{
	return queue_recv(sock, out, false, timeout_ns);
}

/* ---- put ----------------------------------------------------------------- */

static int
do_put(struct aiop_queue *q, struct qargs *a, int64_t timeout_ns)
{
	return aiop__wait(&q->o, &Q(q)->not_full, &put_wait, a, timeout_ns);
}

static int
put_args(struct qargs *a, const void *buf, size_t len)
{
	if (!buf && len)
		return -EINVAL;
	*a = (struct qargs){.buf = (void *)buf, .len = len, .op = QO_PUT};
	return 0;
}

static int
putv_args(struct qargs *a, const struct iovec *v, unsigned n)
{
	if (!v || n == 0)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++)
		if (!v[i].iov_base && v[i].iov_len)
			return -EINVAL;
	*a = (struct qargs){.buf = (void *)v, .n = n, .op = QO_PUTV};
	return 0;
}

AIOP_API int
aiop_queue_put(struct aiop_queue *q, const void *buf, size_t len,
	       int64_t timeout_ns)
{
	struct qargs a;
	int r = check(q, false);

	if (r < 0 || (r = put_args(&a, buf, len)) < 0)
		return r;
	return do_put(q, &a, timeout_ns);
}

AIOP_API int
aiop_queue_try_put(struct aiop_queue *q, const void *buf, size_t len)
{
	return aiop_queue_put(q, buf, len, 0);
}

AIOP_API int
aiop_queue_put_many(struct aiop_queue *q, const struct iovec *msgs,
		    unsigned n, int64_t timeout_ns)
{
	struct qargs a;
	int r = check(q, false);

	if (r < 0 || (r = putv_args(&a, msgs, n)) < 0)
		return r;
	return do_put(q, &a, timeout_ns);
}

AIOP_API int
aiop_queue_try_put_many(struct aiop_queue *q, const struct iovec *msgs,
			unsigned n)
{
	return aiop_queue_put_many(q, msgs, n, 0);
}

AIOP_API int
aiop_queue_reserve(struct aiop_queue *q, size_t len, struct aiop_msg *msg,
		   int64_t timeout_ns)
{
	struct qargs a;
	int r = check(q, false);

	if (r < 0)
		return r;
	if (!msg)
		return -EINVAL;
	a = (struct qargs){.buf = msg, .len = len, .op = QO_RESERVE};
	return do_put(q, &a, timeout_ns);
}

AIOP_API int
aiop_queue_try_reserve(struct aiop_queue *q, size_t len, struct aiop_msg *msg)
{
	return aiop_queue_reserve(q, len, msg, 0);
}

/* A msg handed out by reserve or peek, still in the state it was given. */
static int
msg_check(struct aiop_queue *q, struct aiop_msg *m, unsigned kind)
{
	uint64_t p, st;
	int r = check(q, false);

	if (r < 0)
		return r;
	if (!m || (m->aiop_pos & 15u) || kind_of(m->aiop_tag) != kind)
		return -EINVAL;
	p = m->aiop_pos;
	st = atomic_load(&REC(q, p)->st);
	if (st != m->aiop_tag || ((uint32_t)st & TID_MASK) != me())
		return -EINVAL;
	/* released already: a consumed record can keep its CLAIM header
	 * behind `release` (release_ours()), so a copy of the message
	 * would still match */
	if (kind == K_CLAIM && behind_release(q, p))
		return -EINVAL;
	if (m->data != rec_data(q, p))
		return -EINVAL;
	return 0;
}

AIOP_API int
aiop_queue_commit(struct aiop_queue *q, struct aiop_msg *msg)
{
	int r = msg_check(q, msg, K_RES);
	uint32_t rlen;

	if (r < 0)
		return r;
	rlen = atomic_load_explicit(&REC(q, msg->aiop_pos)->len,
				    memory_order_relaxed);
	if (msg->len > rlen)
		return -EINVAL;
	atomic_store_explicit(&REC(q, msg->aiop_pos)->len, (uint32_t)msg->len,
			      memory_order_relaxed);
	r = commit_one(q, msg->aiop_pos, me());
	open_drop(q, msg->aiop_pos); /* taken away, if r < 0: not ours */
	if (r < 0)
		return r;
	published(q, msg->aiop_pos, 1);
	msg->aiop_tag = 0;
	return 0;
}

AIOP_API int
aiop_queue_abort(struct aiop_queue *q, struct aiop_msg *msg)
{
	int r = msg_check(q, msg, K_RES);

	if (r < 0)
		return r;
	r = drop_own(q, msg->aiop_pos, 1) == 1 ? 0 : -EPROTO;
	open_drop(q, msg->aiop_pos);
	msg->aiop_tag = 0;
	return r;
}

/* ---- get ----------------------------------------------------------------- */

static int
do_get(struct aiop_queue *q, struct qargs *a, int64_t timeout_ns)
{
	return aiop__wait(&q->o, &Q(q)->not_empty, &get_wait, a, timeout_ns);
}

static int
get_args(struct qargs *a, void *buf, size_t cap, size_t *msg_len)
{
	if (!buf && cap)
		return -EINVAL;
	if (cap > INT32_MAX)
		cap = INT32_MAX;
	*a = (struct qargs){.buf = buf, .len = cap, .lens = msg_len,
			    .op = QO_GET};
	return 0;
}

AIOP_API int
aiop_queue_get(struct aiop_queue *q, void *buf, size_t cap, size_t *msg_len,
	       int64_t timeout_ns)
{
	struct qargs a;
	int r = check(q, false);

	if (r < 0 || (r = get_args(&a, buf, cap, msg_len)) < 0)
		return r;
	return do_get(q, &a, timeout_ns);
}

AIOP_API int
aiop_queue_try_get(struct aiop_queue *q, void *buf, size_t cap,
		   size_t *msg_len)
{
	return aiop_queue_get(q, buf, cap, msg_len, 0);
}

static int
getv_args(struct qargs *a, void *buf, size_t cap, size_t *lens, unsigned max)
{
	if ((!buf && cap) || !lens || max == 0)
		return -EINVAL;
	if (cap > INT32_MAX)
		cap = INT32_MAX;
	*a = (struct qargs){.buf = buf, .len = cap, .lens = lens, .n = max,
			    .op = QO_GETV};
	return 0;
}

AIOP_API int
aiop_queue_get_many(struct aiop_queue *q, void *buf, size_t cap, size_t *lens,
		    unsigned max, int64_t timeout_ns)
{
	struct qargs a;
	int r = check(q, false);

	if (r < 0 || (r = getv_args(&a, buf, cap, lens, max)) < 0)
		return r;
	return do_get(q, &a, timeout_ns);
}

AIOP_API int
aiop_queue_try_get_many(struct aiop_queue *q, void *buf, size_t cap,
			size_t *lens, unsigned max)
{
	return aiop_queue_get_many(q, buf, cap, lens, max, 0);
}

AIOP_API int
aiop_queue_peek(struct aiop_queue *q, struct aiop_msg *msg,
		int64_t timeout_ns)
{
	struct qargs a;
	int r = check(q, false);

	if (r < 0)
		return r;
	if (!msg)
		return -EINVAL;
	a = (struct qargs){.buf = msg, .op = QO_PEEK};
	return do_get(q, &a, timeout_ns);
}

AIOP_API int
aiop_queue_try_peek(struct aiop_queue *q, struct aiop_msg *msg)
{
	return aiop_queue_peek(q, msg, 0);
}

AIOP_API int
aiop_queue_release(struct aiop_queue *q, struct aiop_msg *msg)
{
	int r = msg_check(q, msg, K_CLAIM);

	if (r < 0)
		return r;
	r = consume(q, msg->aiop_pos, 1, false, NULL, 0, NULL);
	open_drop(q, msg->aiop_pos);
	msg->aiop_tag = 0;
	return r;
}

AIOP_API int
aiop_queue_unpeek(struct aiop_queue *q, struct aiop_msg *msg)
{
	int r = msg_check(q, msg, K_CLAIM);

	if (r < 0)
		return r;
	r = rec_unclaim(q, msg->aiop_pos, msg->aiop_tag);
	open_drop(q, msg->aiop_pos);
	msg->aiop_tag = 0;
	return r;
}

/* ---- close, sizes, join -------------------------------------------------- */

static int
queue_close(struct aiop_queue *q)
{
	struct q_shm *s = Q(q);
	int r;

	/* under plock: a put that passed the closed check has published
	 * its reservation before we return, so consumers see it. If the
	 * holder keeps plock (plock_take() gives up after 1 ms), consumers
	 * wait for it to be free before they believe the queue empty
	 * (plock_busy()), and its plock_drop() wakes them */
	r = plock_take(q, 0);
	atomic_store(&s->closed, r == 0 ? 1u : CLOSED_UNLOCKED);
	if (r == 0)
		plock_drop(q);
	aiop__wake(&s->not_empty, AIOP__WAKE_ALL);
	aiop__wake(&s->not_full, AIOP__WAKE_ALL);
	aiop__wake(&s->all_done, AIOP__WAKE_ALL);
	return 0;
}

AIOP_API int
aiop_queue_close(struct aiop_queue *q)
{
	int r = check(q, false);

	return r < 0 ? r : queue_close(q);
}

static int
qsize(struct aiop_queue *q)
{
	uint64_t d = nres_now(Q(q)) - atomic_load(&Q(q)->nfin);
	uint64_t rel, tail;

	/* A ring with nothing between release and tail holds no message,
	 * whatever the counts say: a process killed between consuming (or
	 * dropping) a record and counting it leaves nfin one short for good
	 * (docs/queue.md, "When a process dies"); the torture test saw
	 * qsize 1 after its final drain in about one run in ten */
	if (ends(q, &rel, &tail) == 0 && rel == tail)
		return 0;
	if (d > INT32_MAX)
		return 0; /* nfin read late: can pass */
	/* a put may take an empty ring while a consumer has not yet counted
	 * the message it took (reserve()): maxsize + 1 for a moment */
	return q->maxsize && d > q->maxsize ? (int)q->maxsize : (int)d;
}

AIOP_API int
aiop_queue_qsize(struct aiop_queue *q)
{
	int r = check(q, false);

	return r < 0 ? r : qsize(q);
}

AIOP_API int
aiop_queue_empty(struct aiop_queue *q)
{
	int r = check(q, false);

	return r < 0 ? r : qsize(q) == 0;
}

AIOP_API int
aiop_queue_full(struct aiop_queue *q)
{
	uint64_t rel, tail;
	int r = check(q, false);

	if (r < 0)
		return r;
	if (q->maxsize && qsize(q) >= (int)q->maxsize)
		return 1;
	if (ends(q, &rel, &tail) < 0)
		return -EPROTO;
	return q->cap - (tail - rel) < HDR;
}

AIOP_API int
aiop_queue_msg_max(struct aiop_queue *q)
{
	int r = check(q, false);

	return r < 0 ? r : (int)q->msg_max;
}

static int
joinable(struct aiop_queue *q)
{
	int r = check(q, false);

	if (r == 0 && !(q->flags & AIOP_QUEUE_JOINABLE))
		r = -EINVAL;
	return r;
}

AIOP_API int
aiop_queue_task_done(struct aiop_queue *q)
{
	struct q_shm *s;
	uint64_t done;
	uint32_t ns;
	int r = joinable(q);

	if (r < 0)
		return r;
	s = Q(q);
	done = atomic_load(&s->ndone);
	do {
		/* read after done: high for a moment, never low. nres is
		 * on the producers' line, which every reserve writes: read
		 * the cache nres_seen first (nres only grows, so it is a
		 * lower bound) and the line only when the cache says none
		 * is left */
		uint64_t drop = ndrop_now(q);
		uint64_t n = atomic_load_explicit(&s->nres_seen,
						  memory_order_relaxed);

		if ((int64_t)(n - drop - done) <= 0) {
			n = nres_now(s);
			atomic_store_explicit(&s->nres_seen, n,
					      memory_order_relaxed);
			if ((int64_t)(n - drop - done) <= 0)
				return -EOVERFLOW;
		}
	} while (!atomic_compare_exchange_weak(&s->ndone, &done, done + 1));
	/* the Dekker pair with a joiner that arms, then counts (seq_cst):
	 * it sees our ndone, or we see it waiting */
	if (aiop__has_waiters(&s->all_done, &ns) && join_count(q) <= 0)
		aiop__wake_slow(&s->all_done, ns, AIOP__WAKE_ALL);
	return 0;
}

AIOP_API int
aiop_queue_join(struct aiop_queue *q, int64_t timeout_ns)
{
	int r = joinable(q);

	if (r < 0)
		return r;
	return aiop__wait(&q->o, &Q(q)->all_done, &join_wait, NULL,
			  timeout_ns);
}

AIOP_API int
aiop_queue_try_join(struct aiop_queue *q)
{
	return aiop_queue_join(q, 0);
}

/* ---- coro ---------------------------------------------------------------- */

static int
coro(struct ev_loop *loop, struct aiop_op *op, struct aiop_queue *q,
     struct aiop__waitq *wq, const struct aiop__waitdesc *d, struct qargs *a,
     int64_t timeout_ns, aiop_op_cb cb)
{
	a->coro = 1;
	return aiop__coro_start(loop, op, &q->o, wq, d, a, sizeof(*a),
				timeout_ns, cb);
}

AIOP_API int
aiop_queue_coro_put(struct ev_loop *loop, struct aiop_op *op,
		    struct aiop_queue *q, const void *buf, size_t len,
		    int64_t timeout_ns, aiop_op_cb cb)
{
	struct qargs a;
	int r = check(q, false);

	if (r < 0 || (r = put_args(&a, buf, len)) < 0)
		return r;
	return coro(loop, op, q, &Q(q)->not_full, &put_wait, &a, timeout_ns,
		    cb);
}

AIOP_API int
aiop_queue_coro_put_many(struct ev_loop *loop, struct aiop_op *op,
			 struct aiop_queue *q, const struct iovec *msgs,
			 unsigned n, int64_t timeout_ns, aiop_op_cb cb)
{
	struct qargs a;
	int r = check(q, false);

	if (r < 0 || (r = putv_args(&a, msgs, n)) < 0)
		return r;
	return coro(loop, op, q, &Q(q)->not_full, &put_wait, &a, timeout_ns,
		    cb);
}

AIOP_API int
aiop_queue_coro_reserve(struct ev_loop *loop, struct aiop_op *op,
			struct aiop_queue *q, size_t len,
			struct aiop_msg *msg, int64_t timeout_ns,
			aiop_op_cb cb)
{
	struct qargs a;
	int r = check(q, false);

	if (r < 0)
		return r;
	if (!msg)
		return -EINVAL;
	a = (struct qargs){.buf = msg, .len = len, .op = QO_RESERVE};
	return coro(loop, op, q, &Q(q)->not_full, &put_wait, &a, timeout_ns,
		    cb);
}

AIOP_API int
aiop_queue_coro_get(struct ev_loop *loop, struct aiop_op *op,
		    struct aiop_queue *q, void *buf, size_t cap,
		    size_t *msg_len, int64_t timeout_ns, aiop_op_cb cb)
{
	struct qargs a;
	int r = check(q, false);

	if (r < 0 || (r = get_args(&a, buf, cap, msg_len)) < 0)
		return r;
	return coro(loop, op, q, &Q(q)->not_empty, &get_wait, &a, timeout_ns,
		    cb);
}

AIOP_API int
aiop_queue_coro_get_many(struct ev_loop *loop, struct aiop_op *op,
			 struct aiop_queue *q, void *buf, size_t cap,
			 size_t *lens, unsigned max, int64_t timeout_ns,
			 aiop_op_cb cb)
{
	struct qargs a;
	int r = check(q, false);

	if (r < 0 || (r = getv_args(&a, buf, cap, lens, max)) < 0)
		return r;
	return coro(loop, op, q, &Q(q)->not_empty, &get_wait, &a, timeout_ns,
		    cb);
}

AIOP_API int
aiop_queue_coro_peek(struct ev_loop *loop, struct aiop_op *op,
		     struct aiop_queue *q, struct aiop_msg *msg,
		     int64_t timeout_ns, aiop_op_cb cb)
{
	struct qargs a;
	int r = check(q, false);

	if (r < 0)
		return r;
	if (!msg)
		return -EINVAL;
	a = (struct qargs){.buf = msg, .op = QO_PEEK};
	return coro(loop, op, q, &Q(q)->not_empty, &get_wait, &a, timeout_ns,
		    cb);
}

AIOP_API int
aiop_queue_coro_join(struct ev_loop *loop, struct aiop_op *op,
		     struct aiop_queue *q, int64_t timeout_ns, aiop_op_cb cb)
{
	int r = joinable(q);

	if (r < 0)
		return r;
	return aiop__coro_start(loop, op, &q->o, &Q(q)->all_done, &join_wait,
				NULL, 0, timeout_ns, cb);
}

/* ---- SimpleQueue: the same object, default ring, no timeouts ------------- */

static inline struct aiop_queue *
SQ(struct aiop_simplequeue *sq)
{
	return (struct aiop_queue *)sq;
}

AIOP_API int
aiop_simplequeue_new(struct aiop_simplequeue **out)
{
	return queue_new((struct aiop_queue **)out, NULL, true);
}

AIOP_API int
aiop_simplequeue_free(struct aiop_simplequeue *sq)
{
	return queue_free(SQ(sq), true);
}

AIOP_API int
aiop_simplequeue_send(int sock, struct aiop_simplequeue *sq,
		      int64_t timeout_ns)
{
	return queue_send(sock, SQ(sq), true, timeout_ns);
}

AIOP_API int
aiop_simplequeue_recv(int sock, struct aiop_simplequeue **out,
		      int64_t timeout_ns)
{
	return queue_recv(sock, (struct aiop_queue **)out, true, timeout_ns);
}

static int
sq_put(struct aiop_simplequeue *sq, const void *buf, size_t len,
       int64_t timeout_ns)
{
	struct qargs a;
	int r = check(SQ(sq), true);

	if (r < 0 || (r = put_args(&a, buf, len)) < 0)
		return r;
	return do_put(SQ(sq), &a, timeout_ns);
}

AIOP_API int
aiop_simplequeue_put(struct aiop_simplequeue *sq, const void *buf, size_t len)
{
	return sq_put(sq, buf, len, AIOP_FOREVER);
}

AIOP_API int
aiop_simplequeue_try_put(struct aiop_simplequeue *sq, const void *buf,
			 size_t len)
{
	return sq_put(sq, buf, len, 0);
}

static int
sq_get(struct aiop_simplequeue *sq, void *buf, size_t cap, size_t *msg_len,
       int64_t timeout_ns)
{
	struct qargs a;
	int r = check(SQ(sq), true);

	if (r < 0 || (r = get_args(&a, buf, cap, msg_len)) < 0)
		return r;
	return do_get(SQ(sq), &a, timeout_ns);
}

AIOP_API int
aiop_simplequeue_get(struct aiop_simplequeue *sq, void *buf, size_t cap,
		     size_t *msg_len)
{
	return sq_get(sq, buf, cap, msg_len, AIOP_FOREVER);
}

AIOP_API int
aiop_simplequeue_try_get(struct aiop_simplequeue *sq, void *buf, size_t cap,
			 size_t *msg_len)
{
	return sq_get(sq, buf, cap, msg_len, 0);
}

AIOP_API int
aiop_simplequeue_empty(struct aiop_simplequeue *sq)
{
	int r = check(SQ(sq), true);

	return r < 0 ? r : qsize(SQ(sq)) == 0;
}

AIOP_API int
aiop_simplequeue_close(struct aiop_simplequeue *sq)
{
	int r = check(SQ(sq), true);

	return r < 0 ? r : queue_close(SQ(sq));
}

AIOP_API int
aiop_simplequeue_coro_put(struct ev_loop *loop, struct aiop_op *op,
			  struct aiop_simplequeue *sq, const void *buf,
			  size_t len, aiop_op_cb cb)
{
	struct qargs a;
	int r = check(SQ(sq), true);

	if (r < 0 || (r = put_args(&a, buf, len)) < 0)
		return r;
	return coro(loop, op, SQ(sq), &Q(SQ(sq))->not_full, &put_wait, &a,
		    AIOP_FOREVER, cb);
}

AIOP_API int
aiop_simplequeue_coro_get(struct ev_loop *loop, struct aiop_op *op,
			  struct aiop_simplequeue *sq, void *buf, size_t cap,
			  size_t *msg_len, aiop_op_cb cb)
{
	struct qargs a;
	int r = check(SQ(sq), true);

	if (r < 0 || (r = get_args(&a, buf, cap, msg_len)) < 0)
		return r;
	return coro(loop, op, SQ(sq), &Q(SQ(sq))->not_empty, &get_wait, &a,
		    AIOP_FOREVER, cb);
}
