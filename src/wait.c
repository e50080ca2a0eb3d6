/* SPDX-License-Identifier: MIT */
/*
 * The one waiting mechanism (docs/design.md sections 2-4): blocking waits
 * on a shared futex, coro waits on a libev loop woken through a doorbell
 * eventfd, adaptive spin, deadlines, cancellation. Primitives only supply
 * their shared state and an attempt function (struct aiop__waitdesc).
 */
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "aiop/ev.h"
#include "internal.h"
#include "futex.h"

/* op states (aiop_state); 0 = zeroed, never started */
#define OP_WAITING 0x6f700001u /* linked in reg->wait, maybe armed */
#define OP_QUEUED 0x6f700002u  /* result decided, callback not yet run */
#define OP_DONE 0x6f700003u    /* callback ran or is running */
#define OP_CURSOR 0x6f700004u  /* dispatcher's place holder */

#define SPIN_MAX_NS 100000u       /* auto mode's ceiling (blocking) */
#define SPIN_FIXED_MAX_NS 1000000u /* aiop_spin_set() limit */
#define SPIN_START_NS 2000u
#define SPIN_PROBE_NS 500u
/* least budget after a spin that succeeded: short hiccups of the peer (an
 * interrupt, a host tick) then do not cost a sleep and a cross-CPU wake-up
 * (tens of us); with 2t + 1 us alone, 2 % of the queue's round trips slept */
#define SPIN_OK_MIN_NS 10000u
#define CORO_SPIN_MAX_NS 5000u
#define DELIVER_BUDGET_NS 200000u

/* ---- per-loop registration -------------------------------------------- */

struct aiop__reg {
	struct aiop__reg *next; /* all registrations of this process */
	struct ev_loop *loop;   /* NULL once detached (kept for reuse) */
	unsigned gen;           /* fork generation it belongs to */
	pid_t tid;              /* thread that runs the loop */
	int bell;
	int nwaiting, nowner;
	int in_dispatch;
	bool kicked;
	double rep;
	struct aiop_op wait;     /* sentinel of the circular waiting list */
	struct aiop_op *done_head, *done_tail;
	ev_io io;
	ev_check check;
	ev_idle idle;
	ev_timer recheck;
#if EV_CLEANUP_ENABLE
	ev_cleanup cleanup; /* ev_loop_destroy() of the loop */
#endif
};

static struct aiop__reg *regs;
static _Atomic(struct aiop__reg *) bell_reg[AIOP__DOORBELLS_MAX];
static __thread struct aiop__reg *t_reg;
static __thread unsigned t_probe;

static inline unsigned
cur_gen(void)
{
	return atomic_load_explicit(&aiop__fork_gen, memory_order_relaxed);
}

/* ---- adaptive spin ----------------------------------------------------- */

/*
 * Who woke this queue last: (1 + CPU) << 22 | tid (tids are below 2^22).
 * sched_getcpu() is a vDSO call, no syscall; only the wake slow path and
 * the spin decision pay for it.
 */
static inline uint32_t
cpu_plus1(void)
{
	int c = sched_getcpu();

	return c < 0 || c >= 1023 ? 0 : (uint32_t)c + 1;
}

static inline uint32_t
waker_tag(void)
{
	return cpu_plus1() << 22 | ((uint32_t)aiop__tid() & AIOP__TID_MASK);
}

/* Did the last waker of this queue, another thread, run on the CPU we run
 * on? Then the peer cannot run while we spin (design.md 4). Our own record
 * (we woke someone here earlier) says nothing about the peer. */
static inline bool
peer_on_my_cpu(struct aiop__waitq *wq)
{
	uint32_t lw = atomic_load_explicit(&wq->last_cpu,
					   memory_order_relaxed);

	if ((lw >> 22) == 0 ||
	    (lw & AIOP__TID_MASK) == ((uint32_t)aiop__tid() & AIOP__TID_MASK))
		return false;
	return (lw >> 22) == cpu_plus1();
}

/* The most a wait of timeout_ns (AIOP_FOREVER or > 0) may spin: a spin
 * never outlasts the timeout. */
static inline uint64_t
spin_cap(int64_t timeout_ns, uint64_t max_ns)
{
	return timeout_ns < 0 || (uint64_t)timeout_ns > max_ns
		       ? max_ns
		       : (uint64_t)timeout_ns;
}

/*
 * Poll the attempt for at most the budget (and cap_ns: the caller's
 * limit and timeout). *t0 is when the spin began, 0 if it did not: the
 * caller's clock, one read fewer.
 */
static int
spin(struct aiop__obj *obj, struct aiop__waitq *wq,
     const struct aiop__waitdesc *d, void *args, uint64_t cap_ns,
     uint64_t *t0)
{
	int mode = atomic_load_explicit(&aiop__spin_mode, memory_order_relaxed);
	uint64_t budget, t;
	int r;

	*t0 = 0;
	if (mode == AIOP_SPIN_OFF)
		return -EAGAIN;
	if (mode == AIOP_SPIN_FIXED) {
		budget = (uint64_t)atomic_load_explicit(&aiop__spin_fixed_ns,
							memory_order_relaxed);
	} else {
		/* no spin when the peer shares our CPU, or when a crowd is
		 * already asleep here (spinning would take the CPU from the
		 * processes that have to act first, e.g. barrier parties) */
		if (aiop__spin_single_cpu() || peer_on_my_cpu(wq) ||
		    (atomic_load_explicit(&wq->nsleep, memory_order_relaxed) &
		     AIOP__NSLEEP_COUNT))
			return -EAGAIN;
		budget = atomic_load_explicit(&wq->spin_ns,
					      memory_order_relaxed);
		if (budget > SPIN_MAX_NS)
			budget = SPIN_MAX_NS; /* a peer's word is a hint */
		if (budget == 0) {
			/* re-probe now and then: placement may change */
			if ((++t_probe & 15) != 0)
				return -EAGAIN;
			budget = SPIN_PROBE_NS;
		}
	}
	if (budget > cap_ns)
		budget = cap_ns;
	if (budget == 0)
		return -EAGAIN;
	t = *t0 = aiop__now_ns();
	for (unsigned i = 1;; i++) {
		/* poll after every pause; read the clock every 16 polls */
		aiop__cpu_relax();
		r = d->attempt(obj, args, AIOP__ATT_SPIN);
		if (r == -EAGAIN && (i & 15) != 0)
			continue;
		if (r != -EAGAIN) {
			if (mode == AIOP_SPIN_AUTO) {
				/* t is at most 16 polls old: no clock read
				 * between a hand-off and the caller's next
				 * step (23 ns here). The budget is written
				 * only when it moves (a quarter up, half
				 * down): the word shares its line with the
				 * waiter words every waker reads */
				uint64_t nb = 2 * (t - *t0) + 1000;
				uint32_t cur = atomic_load_explicit(
					&wq->spin_ns, memory_order_relaxed);

				if (nb < SPIN_OK_MIN_NS)
					nb = SPIN_OK_MIN_NS;
				if (nb > SPIN_MAX_NS)
					nb = SPIN_MAX_NS;
				if (nb > cur + cur / 4 || nb < cur / 2)
					atomic_store_explicit(
						&wq->spin_ns, (uint32_t)nb,
						memory_order_relaxed);
			}
			AIOP__COUNT_HOT(spins_ok);
			return r;
		}
		t = aiop__now_ns();
		if (t - *t0 >= budget)
			break;
	}
	if (mode == AIOP_SPIN_AUTO) {
		/* half the object's budget, not of this spin's: a spin capped
		 * by a coro start (5 us) or a timeout says nothing of longer
		 * ones, and halving its cap cut a blocking peer's 10 us to
		 * 2.5 us, which failed and slept in turn (design.md 4) */
		uint64_t nb = atomic_load_explicit(&wq->spin_ns,
						   memory_order_relaxed);

		nb = (nb > SPIN_MAX_NS ? SPIN_MAX_NS : nb) / 2;
		atomic_store_explicit(&wq->spin_ns,
				      (uint32_t)(nb < 250 ? 0 : nb),
				      memory_order_relaxed);
	}
	AIOP__COUNT(spins_failed);
	return -EAGAIN;
}

void
aiop__waitq_init(struct aiop__waitq *wq)
{
	atomic_store(&wq->seq, 0);
	atomic_store(&wq->nsleep, 0);
	atomic_store(&wq->spin_ns, SPIN_START_NS);
	for (int i = 0; i < AIOP__ARMED_WORDS; i++)
		atomic_store(&wq->armed[i], 0);
}

/* ---- waking ------------------------------------------------------------ */

static void reg_watch(struct aiop__reg *r);
static void reg_stop_all(struct aiop__reg *r);

static void
ring(int bell)
{
	struct aiop__reg *r;
	uint64_t one = 1;

	if (bell >= aiop__dom.nbells)
		return; /* garbage from shared memory: ignore */
	r = atomic_load_explicit(&bell_reg[bell], memory_order_acquire);
	if (r && r->gen == cur_gen() && r->bell == bell && r->loop &&
	    r->tid == aiop__tid() && r->nwaiting > 0) {
		/* our own loop, on its own thread: no syscall needed. Only
		 * while it has ops waiting: an idle loop may have moved to
		 * another thread since (design.md 6) and r->tid is then the
		 * old one until its next start; touching its watchers from
		 * here would race with ev_run() there. An idle loop's bit is
		 * a leftover: the write is harmless */
		r->kicked = true;
		reg_watch(r);
		return;
	}
	AIOP__COUNT(rings);
	if (write(aiop__dom.efd[bell], &one, sizeof(one)) < 0)
		(void)0; /* EAGAIN: counter saturated, already readable */
}

/*
 * The kernel had nobody queued on seq, although ns (loaded before our seq
 * bump) counted blocking waiters. Each of them is in transit (counted but
 * not yet queued: its futex_wait will see our bump and return), on its
 * way out (woken earlier, not yet uncounted), or dead. None needs its
 * count any more, so a new generation starts at count 0, if nsleep is
 * still ns: a waiter that armed since changed the arrivals tag even if
 * another left (found by the model, docs/model). Without this, a waiter
 * killed while counted made every later wake a futile FUTEX_WAKE and
 * switched the adaptive spin off for good (it does not spin while others
 * sleep). Design.md 2.2.
 */
static void
forget_sleepers(struct aiop__waitq *wq, uint32_t ns)
{
	uint32_t gen = (ns + AIOP__NSLEEP_GEN) & AIOP__NSLEEP_GEN_MASK;
	uint32_t next = (ns & ~(AIOP__NSLEEP_GEN_MASK | AIOP__NSLEEP_COUNT)) |
			gen;

	(void)atomic_compare_exchange_strong(&wq->nsleep, &ns, next);
}

/* Take our count back (mine: nsleep as our increment found it), unless
 * a waker started a new generation since: it forgot us with the rest. */
static void
sleeper_done(struct aiop__waitq *wq, uint32_t mine)
{
	uint32_t w = atomic_load_explicit(&wq->nsleep, memory_order_relaxed);

	do {
		if (((w ^ mine) & AIOP__NSLEEP_GEN_MASK) ||
		    !(w & AIOP__NSLEEP_COUNT))
			return;
	} while (!atomic_compare_exchange_weak(&wq->nsleep, &w, w - 1));
}

void
aiop__wake_slow(struct aiop__waitq *wq, uint32_t ns, int n)
{
	int saved = errno;

	atomic_store_explicit(&wq->last_cpu, waker_tag(), memory_order_relaxed);
	atomic_fetch_add(&wq->seq, 1);
	if (ns & AIOP__NSLEEP_COUNT) {
		AIOP__COUNT(futex_wakes);
		if (aiop__futex_wake(&wq->seq, n) == 0 && n > 0)
			forget_sleepers(wq, ns);
	}
	for (int w = 0; w < AIOP__ARMED_WORDS; w++) {
		uint64_t m;

		if (!atomic_load_explicit(&wq->armed[w], memory_order_relaxed))
			continue;
		m = atomic_exchange(&wq->armed[w], 0);
		while (m) {
			ring(w * 64 + __builtin_ctzll(m));
			m &= m - 1;
		}
	}
	errno = saved;
}

/*
 * Arming and the re-check that follows form the waiter's half of the
 * Dekker pair (design.md 2.1). Attempts read state with relaxed loads, so
 * a full fence keeps the re-check from being satisfied before the arming is
 * visible (free on x86 after a locked RMW; needed on weakly ordered CPUs).
 */
static inline void
arm(struct aiop__waitq *wq, int bell)
{
	atomic_fetch_or(&wq->armed[bell / 64], 1ull << (bell % 64));
	atomic_thread_fence(memory_order_seq_cst);
}

/* ---- blocking waits ---------------------------------------------------- */

static void
ns_to_ts(uint64_t ns, struct timespec *ts)
{
	ts->tv_sec = (time_t)(ns / 1000000000ull);
	ts->tv_nsec = (long)(ns % 1000000000ull);
}

/*
 * A wait that slept but was satisfied within SPIN_MAX_NS of its start would
 * have been caught by a spin twice that long: raise the budget (auto mode,
 * not when the waker shares our CPU). Called only after a sleep.
 */
static void
learn(struct aiop__waitq *wq, uint64_t start)
{
	uint64_t w;

	if (atomic_load_explicit(&aiop__spin_mode, memory_order_relaxed) !=
		    AIOP_SPIN_AUTO ||
	    aiop__spin_single_cpu())
		return;
	w = aiop__now_ns() - start;
	if (w >= SPIN_MAX_NS || peer_on_my_cpu(wq))
		return;
	w = 2 * w + 1000;
	atomic_store_explicit(&wq->spin_ns,
			      (uint32_t)(w > SPIN_MAX_NS ? SPIN_MAX_NS : w),
			      memory_order_relaxed);
}

/* A rate-limited PROBE, only for waits with a holder or parties that can
 * die (others must not use up the thread's probe budget). */
static inline unsigned
probe_flags(const struct aiop__waitdesc *d)
{
	return d->recheck_ns == AIOP__RECHECK_OWNER_NS ? aiop__try_flags() : 0;
}

static int wait_slow(struct aiop__obj *obj, struct aiop__waitq *wq,
		     const struct aiop__waitdesc *d, void *args,
		     int64_t timeout_ns);

int
aiop__wait(struct aiop__obj *obj, struct aiop__waitq *wq,
	   const struct aiop__waitdesc *d, void *args, int64_t timeout_ns)
{
	unsigned f;
	int r;

	if (timeout_ns < 0 && timeout_ns != AIOP_FOREVER)
		return -EINVAL;
	if (timeout_ns == 0 && d->no_try)
		timeout_ns = 1;
	r = d->attempt(obj, args, 0);
	if (r != -EAGAIN)
		return r;
	if (timeout_ns == 0) { /* a try: probes as the try calls do */
		if ((f = probe_flags(d)) != 0)
			r = d->attempt(obj, args, f);
		return r;
	}
	AIOP__SAVE_ERRNO(r = wait_slow(obj, wq, d, args, timeout_ns));
	return r;
}

static int
wait_slow(struct aiop__obj *obj, struct aiop__waitq *wq,
	  const struct aiop__waitdesc *d, void *args, int64_t timeout_ns)
{
	uint64_t start, deadline, next_probe, t;
	unsigned flags = 0;
	int r;

	r = spin(obj, wq, d, args, spin_cap(timeout_ns, SPIN_FIXED_MAX_NS),
		 &start);
	if (r != -EAGAIN)
		return r;
	if (!start)
		start = aiop__now_ns();
	deadline = timeout_ns == AIOP_FOREVER ||
				   (uint64_t)timeout_ns > UINT64_MAX - start
			   ? UINT64_MAX
			   : start + (uint64_t)timeout_ns;
	next_probe = start + (uint64_t)d->recheck_ns;
	/* look for a dead holder before the first sleep too, at most every
	 * 100 ms per thread: repeated short waits must recover as well */
	flags = probe_flags(d);
	for (;;) {
		uint32_t s, mine;

		if (d->wq_of) /* multi-phase: wait where the phase waits */
			wq = d->wq_of(obj, args);
		s = atomic_load(&wq->seq);

		mine = atomic_fetch_add(&wq->nsleep, 1 + AIOP__NSLEEP_ARRIVE);
		atomic_thread_fence(memory_order_seq_cst); /* see arm() */
		r = d->attempt(obj, args, flags);
		/* a multi-phase attempt may have moved on to another queue:
		 * then arm there first (next turn), never sleep here */
		if (r == -EAGAIN && (!d->wq_of || d->wq_of(obj, args) == wq)) {
			struct timespec ts;

			ns_to_ts(deadline < next_probe ? deadline : next_probe,
				 &ts);
			AIOP__COUNT(futex_waits);
			(void)aiop__futex_wait(&wq->seq, s, &ts);
		}
		sleeper_done(wq, mine);
		if (r != -EAGAIN) {
			learn(wq, start);
			return r;
		}
		t = aiop__now_ns();
		flags = 0;
		if (t >= next_probe) {
			flags = AIOP__ATT_PROBE;
			next_probe = t + (uint64_t)d->recheck_ns;
		}
		if (t >= deadline) {
			if (d->expire) {
				r = d->expire(obj, args);
				if (r != -EAGAIN)
					return r;
				deadline = UINT64_MAX; /* goes on, unbounded */
				continue;
			}
			r = d->attempt(obj, args, flags | AIOP__ATT_LAST);
			return r == -EAGAIN ? -ETIMEDOUT : r;
		}
	}
}

/* ---- coro: lists ------------------------------------------------------- */

static inline void
list_insert_before(struct aiop_op *pos, struct aiop_op *op)
{
	op->aiop_prev = pos->aiop_prev;
	op->aiop_next = pos;
	pos->aiop_prev->aiop_next = op;
	pos->aiop_prev = op;
}

static inline void
list_unlink(struct aiop_op *op)
{
	op->aiop_prev->aiop_next = op->aiop_next;
	op->aiop_next->aiop_prev = op->aiop_prev;
	op->aiop_next = op->aiop_prev = NULL;
}

static inline struct aiop__reg *
op_reg(const struct aiop_op *op)
{
	return op->aiop_reg;
}

/*
 * Take a dispatcher's cursor out of r's list after user code (an attempt's
 * predicate or action, a callback) ran. If that code forked and this is
 * the child, the list is the parent's, and the child may have zeroed the
 * copy of a neighbour and started it afresh (coro.md, Fork): its links are
 * then in the child's own list, and writing them corrupted that list (the
 * child crashed at its next pass). Only the parent's entries are relinked
 * there; the walk that stops the parent's timers ends at the others.
 */
static bool
parents_entry(struct aiop__reg *r, struct aiop_op *op)
{
	return op == &r->wait || op->aiop_state == OP_CURSOR ||
	       (op->aiop_state == OP_WAITING && op_reg(op) == r);
}

static void
cursor_unlink(struct aiop__reg *r, struct aiop_op *c)
{
	struct aiop_op *p = c->aiop_prev, *n = c->aiop_next;

	if (AIOP_LIKELY(r->gen == cur_gen())) {
		list_unlink(c);
		return;
	}
	if (parents_entry(r, p))
		p->aiop_next = n;
	if (parents_entry(r, n))
		n->aiop_prev = p;
	c->aiop_next = c->aiop_prev = NULL;
}

static inline const struct aiop__waitdesc *
op_desc(const struct aiop_op *op)
{
	return op->aiop_desc;
}

static inline struct aiop__waitq *
op_wq(struct aiop_op *op)
{
	const struct aiop__waitdesc *d = op_desc(op);

	return d->wq_of ? d->wq_of(op->aiop_obj, op->aiop_args)
			: (struct aiop__waitq *)op->aiop_wq;
}

/*
 * Arm the queue the op waits on and attempt once more: the waiter's half
 * of the Dekker pair (design.md 2.1). A multi-phase attempt may move the
 * op to another queue (a Condition wait: on to its lock's when a signal is
 * there, back to the condition's when another waiter took it), which is
 * then not armed: arm that one and attempt again. Without it the op waited
 * for the 100 ms recheck. A few rounds at most; past them the recheck
 * finds the op.
 */
static int
arm_attempt(struct aiop__reg *r, struct aiop_op *op)
{
	const struct aiop__waitdesc *d = op_desc(op);
	int res;

	for (unsigned k = 0;; k++) {
		struct aiop__waitq *wq = op_wq(op);

		arm(wq, r->bell);
		res = d->attempt(op->aiop_obj, op->aiop_args, 0);
		if (res != -EAGAIN || !d->wq_of || k == 3 ||
		    op->aiop_state != OP_WAITING || r->gen != cur_gen() ||
		    op_wq(op) == wq)
			return res;
	}
}

/* Count a coro op of this process on obj (aiop__pending()). A count of
 * another fork generation came with fork: it starts again at 1. */
static void
pend_add(struct aiop__obj *obj)
{
	uint64_t g = cur_gen(), v = atomic_load(&obj->pend), nv;

	do {
		nv = v >> 32 == g ? v + 1 : g << 32 | 1;
	} while (!atomic_compare_exchange_weak(&obj->pend, &v, nv));
}

/* Uncount a delivered op: started in this generation (a parent's op is
 * never delivered in a child), so the count is ours and above 0. */
static void
pend_drop(struct aiop__obj *obj)
{
	uint64_t v = atomic_load(&obj->pend);

	do {
		if (v >> 32 != cur_gen() || (uint32_t)v == 0)
			return;
	} while (!atomic_compare_exchange_weak(&obj->pend, &v, v - 1));
}

static void
queue_done(struct aiop__reg *r, struct aiop_op *op, int res)
{
	op->aiop_state = OP_QUEUED;
	op->aiop_result = res;
	op->aiop_next = NULL;
	if (r->done_tail)
		r->done_tail->aiop_next = op;
	else
		r->done_head = op;
	r->done_tail = op;
}

/* Take a waiting op off the list. If it was the loop's last waiting op,
 * clear our armed bit on its queue: a producer then need not ring a loop
 * that no longer waits (design.md 2.3). Not while other ops of the loop
 * wait: one of them may wait on the same queue (a Condition's re-take
 * waits on its lock's queue; a second handle of an object maps its queue
 * at another address), and a bit cleared under it would leave its
 * wake-up to the recheck. A bit left set costs one needless ring. */
static void
unwait(struct aiop__reg *r, struct aiop_op *op)
{
	list_unlink(op);
	ev_timer_stop(r->loop, &op->aiop_timer);
	r->nwaiting--;
	if (op_desc(op)->recheck_ns == AIOP__RECHECK_OWNER_NS)
		r->nowner--;
	if (r->nwaiting == 0 && r->bell >= 0) {
		struct aiop__waitq *wq = op_wq(op);

		atomic_fetch_and(&wq->armed[r->bell / 64],
				 ~(1ull << (r->bell % 64)));
	}
}

static void
deliver(struct aiop__reg *r, struct aiop_op *op, int res)
{
	aiop_op_cb cb = op->aiop_cb;
	struct aiop__obj *obj = op->aiop_obj;
	const struct aiop__waitdesc *d = op_desc(op);

	if (d->finish)
		res = d->finish(obj, op->aiop_args, res);
	op->aiop_state = OP_DONE;
	op->aiop_result = res;
	pend_drop(obj);
	cb(r->loop, op, res);
}

/*
 * A result decided now: deliver it at once, unless results decided earlier
 * are still queued; then it queues behind them, so that callbacks run in
 * the order their results were decided (a queue's messages reach one
 * loop's callbacks in the order they were taken).
 */
static void
complete(struct aiop__reg *r, struct aiop_op *op, int res)
{
	if (r->done_head)
		queue_done(r, op, res);
	else
		deliver(r, op, res);
}

/* ---- coro: watchers ---------------------------------------------------- */

static void
reg_watch(struct aiop__reg *r)
{
	struct ev_loop *loop = r->loop;
	bool busy = r->done_head || r->kicked;

	if (r->nwaiting > 0) {
		double rep = (double)(r->nowner ? AIOP__RECHECK_OWNER_NS
						: AIOP__RECHECK_NS) / 1e9;
		if (!ev_is_active(&r->io))
			ev_io_start(loop, &r->io);
		if (!ev_is_active(&r->recheck) || rep < r->rep) {
			/* start, or speed up; never push a due check later */
			ev_timer_stop(loop, &r->recheck);
			ev_timer_set(&r->recheck, rep, rep);
			ev_timer_start(loop, &r->recheck);
		} else if (rep > r->rep) {
			r->recheck.repeat = rep; /* slower from the next one */
		}
		r->rep = rep;
	} else {
		if (ev_is_active(&r->io))
			ev_io_stop(loop, &r->io);
		if (ev_is_active(&r->recheck))
			ev_timer_stop(loop, &r->recheck);
	}
	if (busy) {
		/* check delivers every iteration; idle keeps the poll from
		 * blocking while something is queued */
		if (!ev_is_active(&r->check))
			ev_check_start(loop, &r->check);
		if (!ev_is_active(&r->idle))
			ev_idle_start(loop, &r->idle);
	} else {
		if (ev_is_active(&r->check))
			ev_check_stop(loop, &r->check);
		if (ev_is_active(&r->idle))
			ev_idle_stop(loop, &r->idle);
	}
}

/*
 * The (handle, queue) pairs whose op failed in this pass: an op behind on
 * the same pair would fail the same way (design.md 2.3). Kept on the
 * stack, not in the handle, which loops in several threads may share. With
 * more pairs than slots an op is attempted needlessly, never skipped
 * wrongly.
 */
#define SKIP_SLOTS 8

struct skip {
	struct aiop__obj *obj;
	struct aiop__waitq *wq;
};

static bool
skipped(const struct skip *sk, unsigned n, const struct aiop__obj *obj,
	const struct aiop__waitq *wq)
{
	for (unsigned i = 0; i < n && i < SKIP_SLOTS; i++)
		if (sk[i].obj == obj && sk[i].wq == wq)
			return true;
	return false;
}

/* One pass over the waiting ops, oldest first (design.md 2.3). */
static void
pass_waiting(struct aiop__reg *r, unsigned flags)
{
	struct skip sk[SKIP_SLOTS];
	unsigned nsk = 0;
	struct aiop_op cursor;
	struct aiop_op *op;

	cursor.aiop_state = OP_CURSOR;
	op = r->wait.aiop_next;
	/* a callback that forked: in the child, the ops are the parent's
	 * (design.md 6) */
	while (r->gen == cur_gen() && op != &r->wait) {
		struct aiop__obj *obj = op->aiop_obj;
		const struct aiop__waitdesc *d = op_desc(op);
		int res;

		if (op->aiop_state != OP_WAITING ||
		    skipped(sk, nsk, obj, op_wq(op))) {
			op = op->aiop_next;
			continue;
		}
		/* the cursor goes in first: an attempt may run user code (a
		 * barrier's action, a predicate) that cancels this very op,
		 * which unlinks it and queues its -ECANCELED */
		list_insert_before(op->aiop_next, &cursor);
		res = d->attempt(obj, op->aiop_args, flags);
		if (res == -EAGAIN && op->aiop_state == OP_WAITING &&
		    r->gen == cur_gen())
			res = arm_attempt(r, op);
		if (AIOP_UNLIKELY(r->gen != cur_gen())) {
			/* the user code in the attempt forked, and this is
			 * the child: the ops are the parent's. Run nothing
			 * more, and give nothing back: what the attempt took
			 * before its user code ran (a Condition's signal and
			 * lock) is the parent's, whose copy of this op keeps
			 * it and completes with it; the steps after the user
			 * code fail in the child (the lock is not its own) or
			 * have nothing to undo (a Barrier's release) */
			cursor_unlink(r, &cursor);
			return;
		}
		if (op->aiop_state != OP_WAITING) {
			/* cancelled inside its attempt: its result is queued
			 * already; give back what this attempt granted */
			if (res != -EAGAIN && d->undo)
				(void)d->undo(obj, op->aiop_args, res);
		} else if (res == -EAGAIN) {
			/* later ops on this handle waiting on this queue would
			 * fail the same way; the queue is armed for them. Not
			 * after an attempt that may have registered the op
			 * anew, behind them (a Condition's wait_for) */
			if (!d->regroups) {
				sk[nsk % SKIP_SLOTS] =
					(struct skip){obj, op_wq(op)};
				nsk++;
			}
		} else {
			unwait(r, op);
			complete(r, op, res);
		}
		op = cursor.aiop_next;
		cursor_unlink(r, &cursor);
	}
}

static void
deliver_done(struct aiop__reg *r)
{
	uint64_t t0 = 0;
	unsigned n = 0;
	struct aiop_op *op;

	/* a callback that forked: in the child, the results are the
	 * parent's (design.md 6) */
	while (r->gen == cur_gen() && (op = r->done_head)) {
		r->done_head = op->aiop_next;
		if (!r->done_head)
			r->done_tail = NULL;
		deliver(r, op, op->aiop_result);
		/* callbacks that restart ops complete again at once; bound
		 * the time so other watchers of the loop still get served */
		if ((++n & 31) == 0) {
			uint64_t t = aiop__now_ns();
			if (!t0)
				t0 = t;
			else if (t - t0 > DELIVER_BUDGET_NS)
				break;
		}
	}
}

/*
 * A child that runs a loop it inherited still has our watchers in it; they
 * belong to the parent's registration and ops. They must do nothing here:
 * not read the parent's doorbell, not run the parent's ops.
 */
static bool
reg_stale(struct aiop__reg *r)
{
	if (AIOP_LIKELY(r->gen == cur_gen()))
		return false;
	reg_stop_all(r);
	return true;
}

/* The end of a dispatch: watch again, or, if a callback forked and this
 * is the child, stop the parent's watchers */
static void
dispatch_end(struct aiop__reg *r)
{
	r->in_dispatch--;
	if (!reg_stale(r))
		reg_watch(r);
}

static void
io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct aiop__reg *r = aiop__container_of(w, struct aiop__reg, io);
	uint64_t v;
	int saved = errno;

	(void)loop;
	(void)revents;
	if (reg_stale(r))
		return;
	AIOP__COUNT(reads);
	if (read(w->fd, &v, sizeof(v)) < 0)
		errno = saved; /* EAGAIN: another pass already drained it */
	r->in_dispatch++;
	pass_waiting(r, 0);
	dispatch_end(r);
}

static void
check_cb(struct ev_loop *loop, ev_check *w, int revents)
{
	struct aiop__reg *r = aiop__container_of(w, struct aiop__reg, check);

	(void)loop;
	(void)revents;
	if (reg_stale(r))
		return;
	r->in_dispatch++;
	deliver_done(r); /* first: those were decided before this pass */
	if (r->kicked) {
		r->kicked = false;
		pass_waiting(r, 0);
		deliver_done(r);
	}
	dispatch_end(r);
}

static void
idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
}

static void
recheck_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct aiop__reg *r = aiop__container_of(w, struct aiop__reg,
						 recheck);

	(void)loop;
	(void)revents;
	if (reg_stale(r))
		return;
	r->in_dispatch++;
	pass_waiting(r, AIOP__ATT_PROBE);
	dispatch_end(r);
}

static void
op_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct aiop_op *op = aiop__container_of(w, struct aiop_op, aiop_timer);
	struct aiop__reg *r = op_reg(op);
	int res;

	(void)revents;
	if (r->gen != cur_gen()) { /* the parent's op, in a child's loop */
		ev_timer_stop(loop, w);
		return;
	}
	if (op_desc(op)->expire) {
		res = op_desc(op)->expire(op->aiop_obj, op->aiop_args);
		if (res == -EAGAIN) { /* goes on, with no deadline */
			r->kicked = true; /* its next phase may be ready */
			reg_watch(r);
			return;
		}
	} else {
		/* a last attempt: a result available at the deadline wins; it
		 * also looks for a dead holder (rate-limited), so short waits
		 * recover */
		res = op_desc(op)->attempt(op->aiop_obj, op->aiop_args,
					   probe_flags(op_desc(op)) |
						   AIOP__ATT_LAST);
		if (res == -EAGAIN)
			res = -ETIMEDOUT;
	}
	unwait(r, op);
	r->in_dispatch++;
	complete(r, op, res);
	dispatch_end(r);
}

/* ---- coro: registrations ----------------------------------------------- */

/*
 * The first waiting op of r from op on, walking the parent's list in a
 * child (forward or back): a dispatcher's cursor is passed over (a
 * callback that forked and runs the loop in the child before returning
 * leaves it linked; it has no timer); NULL at the sentinel or at an entry
 * that is not a waiting op of r (a copy the child zeroed, and maybe
 * started afresh: op->aiop_reg is never a stale registration for a
 * child's op).
 */
static struct aiop_op *
inherited(struct aiop__reg *r, struct aiop_op *op, int fwd)
{
	while (op && op != &r->wait && op->aiop_state == OP_CURSOR)
		op = fwd ? op->aiop_next : op->aiop_prev;
	if (!op || op == &r->wait || op->aiop_state != OP_WAITING ||
	    op_reg(op) != r)
		return NULL;
	return op;
}

static void
reg_stop_all(struct aiop__reg *r)
{
	ev_io_stop(r->loop, &r->io);
	ev_check_stop(r->loop, &r->check);
	ev_idle_stop(r->loop, &r->idle);
	ev_timer_stop(r->loop, &r->recheck);
#if EV_CLEANUP_ENABLE
	ev_cleanup_stop(r->loop, &r->cleanup);
#endif
	if (r->gen != cur_gen()) {
		/* inherited: the ops' timers are the parent's, stop them in
		 * this copy of the loop. From both ends of the list: the
		 * child may have zeroed a copy of one op and started it
		 * afresh; its links then lead into the child's own list,
		 * which never comes back to ours (the walk spun for ever),
		 * and a walk that stopped there left the timers of the ops
		 * after it running, keeping ev_run() from returning until
		 * they expired. Only the ops between two such copies are
		 * out of reach: their timers stop themselves when they
		 * fire (op_timeout_cb) */
		struct aiop_op *op, *last = NULL;

		for (op = r->wait.aiop_next; (op = inherited(r, op, 1));
		     op = op->aiop_next) {
			ev_timer_stop(r->loop, &op->aiop_timer);
			last = op;
		}
		for (op = r->wait.aiop_prev;
		     (op = inherited(r, op, 0)) && op != last;
		     op = op->aiop_prev)
			ev_timer_stop(r->loop, &op->aiop_timer);
	}
}

/* Give the loop's doorbell back and forget the loop; reg_mu held */
static void
reg_detach(struct aiop__reg *r)
{
	reg_stop_all(r);
	atomic_store(&bell_reg[r->bell], NULL);
	aiop__bell_release(r->bell);
	r->bell = -1;
	r->loop = NULL; /* kept: other threads may cache the pointer */
}

#if EV_CLEANUP_ENABLE
/* An op whose callback can never run (its loop is being destroyed): it
 * ends here, with no callback, as if called back with -ECANCELED */
static void
op_forget(struct aiop_op *op)
{
	op->aiop_state = OP_DONE;
	op->aiop_result = -ECANCELED;
	op->aiop_next = op->aiop_prev = NULL;
	pend_drop(op->aiop_obj);
}

/*
 * ev_loop_destroy() of a loop this process registered: it is detached, as
 * by aiop_loop_detach(), and its doorbell comes back. Ops still pending
 * (coro.md: do not destroy the loop then) can never be called back: they
 * are cancelled as by aiop_op_cancel(), so what they were granted goes
 * back, and forgotten. The registration used to stay bound to the freed
 * loop: a release or set on its thread started watchers in it (a crash),
 * and a new loop at the same address took over the dead ops.
 */
static void
cleanup_cb(struct ev_loop *loop, ev_cleanup *w, int revents)
{
	struct aiop__reg *r = aiop__container_of(w, struct aiop__reg,
						 cleanup);
	struct aiop_op *op, *next;

	(void)loop;
	(void)revents;
	/* a parent's, in the child's copy; or destroyed from inside one of
	 * our callbacks (coro.md: do not), whose dispatcher goes on with r */
	if (r->gen != cur_gen() || r->in_dispatch)
		return;
	for (op = r->wait.aiop_next; op != &r->wait; op = next) {
		next = op->aiop_next;
		(void)aiop_op_cancel(op); /* waiting ones take nothing back */
	}
	/* left: Condition waits that would re-take their lock; they left the
	 * waiting set and hold nothing yet */
	while ((op = r->wait.aiop_next) != &r->wait) {
		unwait(r, op);
		op_forget(op);
	}
	while ((op = r->done_head)) {
		r->done_head = op->aiop_next;
		(void)aiop_op_cancel(op); /* a grant goes back (undo) */
		op_forget(op);
	}
	r->done_tail = NULL;
	r->kicked = false;
	pthread_mutex_lock(&aiop__reg_mu);
	reg_detach(r);
	pthread_mutex_unlock(&aiop__reg_mu);
}
#endif

static int
reg_get(struct ev_loop *loop, struct aiop__reg **out)
{
	unsigned g = cur_gen();
	struct aiop__reg *r = t_reg, *spare = NULL;
	int bell;

	/* the fast path only on the thread the registration names: a loop
	 * that moved away and back (A, B, A) must have its tid written
	 * again, or a waker on B takes ring()'s same-thread shortcut */
	if (AIOP_LIKELY(r && r->loop == loop && r->gen == g &&
			r->tid == aiop__tid())) {
		*out = r;
		return 0;
	}
	pthread_mutex_lock(&aiop__reg_mu);
	for (r = regs; r; r = r->next) {
		if (r->gen != g) {
			/* inherited from the parent: its ops are not ours and
			 * it is never matched nor reused (its ops must keep
			 * failing the generation check). It keeps its loop
			 * pointer so its watchers can stop themselves in the
			 * child's copy of that loop, at their first callback.
			 * They are not stopped from here: a loop at the same
			 * address need not be that copy (the child destroyed
			 * it and ev_loop_new() or ev_default_loop() gave the
			 * memory back), and stopping watchers in a loop they
			 * are not in corrupts it (libev asserts, or worse). */
			continue;
		}
		if (r->loop == loop)
			break;
		if (!r->loop && !spare)
			spare = r;
	}
	if (r)
		r->tid = aiop__tid(); /* the loop may have changed threads */
	if (!r) {
		bell = aiop__bell_claim();
		if (bell < 0) {
			pthread_mutex_unlock(&aiop__reg_mu);
			return bell;
		}
		if (spare) {
			r = spare;
		} else {
			r = calloc(1, sizeof(*r));
			if (!r) {
				aiop__bell_release(bell);
				pthread_mutex_unlock(&aiop__reg_mu);
				return -ENOMEM;
			}
			r->next = regs;
			regs = r;
		}
		r->loop = loop;
		r->gen = g;
		r->tid = aiop__tid();
		r->bell = bell;
		r->nwaiting = r->nowner = r->in_dispatch = 0;
		r->kicked = false;
		r->done_head = r->done_tail = NULL;
		r->wait.aiop_next = r->wait.aiop_prev = &r->wait;
		r->wait.aiop_state = OP_CURSOR;
		ev_io_init(&r->io, io_cb, aiop__dom.efd[bell], EV_READ);
		ev_check_init(&r->check, check_cb);
		ev_idle_init(&r->idle, idle_cb);
		ev_init(&r->recheck, recheck_cb);
		/* run after the user's own check watchers, before others' io */
		ev_set_priority(&r->check, EV_MINPRI);
#if EV_CLEANUP_ENABLE
		/* keeps no reference: ev_run() returns as before */
		ev_cleanup_init(&r->cleanup, cleanup_cb);
		ev_cleanup_start(loop, &r->cleanup);
#endif
		atomic_store_explicit(&bell_reg[bell], r, memory_order_release);
	}
	pthread_mutex_unlock(&aiop__reg_mu);
	t_reg = r;
	*out = r;
	return 0;
}

AIOP_API int
aiop_loop_detach(struct ev_loop *loop)
{
	struct aiop__reg *r;
	unsigned g = cur_gen();

	if (!loop)
		return -EINVAL;
	aiop__atfork_ensure(); /* before reg_mu (domain.c) */
	pthread_mutex_lock(&aiop__reg_mu);
	for (r = regs; r; r = r->next)
		if (r->loop == loop && r->gen == g)
			break;
	if (r && (r->nwaiting || r->done_head || r->in_dispatch)) {
		pthread_mutex_unlock(&aiop__reg_mu);
		return -EBUSY;
	}
	if (r)
		reg_detach(r);
	pthread_mutex_unlock(&aiop__reg_mu);
	return 0;
}

/* ---- coro: start and cancel -------------------------------------------- */

static void start_attempts(struct ev_loop *loop, struct aiop__reg *r,
			   struct aiop_op *op, struct aiop__obj *obj,
			   const struct aiop__waitdesc *d, int64_t timeout_ns);

int
aiop__coro_start(struct ev_loop *loop, struct aiop_op *op,
		 struct aiop__obj *obj, struct aiop__waitq *wq,
		 const struct aiop__waitdesc *d, const void *args,
		 size_t args_size, int64_t timeout_ns, aiop_op_cb cb)
{
	struct aiop__reg *r;
	int res;

	if (!loop || !op || !cb || args_size > sizeof(op->aiop_args))
		return -EINVAL;
	if (timeout_ns < 0 && timeout_ns != AIOP_FOREVER)
		return -EINVAL;
	if (timeout_ns == 0 && d->no_try)
		timeout_ns = 1;
	if (op->aiop_state == OP_WAITING || op->aiop_state == OP_QUEUED)
		return -EBUSY;
	if (atomic_load_explicit(&obj->shm->domain_id, memory_order_relaxed) !=
	    aiop__dom.id)
		return -EPROTO;
	AIOP__SAVE_ERRNO(res = reg_get(loop, &r));
	if (res < 0)
		return res;
	op->aiop_cb = cb;
	op->aiop_desc = d;
	op->aiop_obj = obj;
	op->aiop_wq = wq;
	op->aiop_reg = r;
	if (args_size)
		memcpy(op->aiop_args, args, args_size);
	if (d->begin && (res = d->begin(obj, op->aiop_args)) < 0)
		return res;
	pend_add(obj);
	/* the attempts below may run user code (a barrier's action, a
	 * predicate): aiop_loop_detach() from there must find the loop busy,
	 * as from a callback, even while nothing waits or is queued yet */
	r->in_dispatch++;
	start_attempts(loop, r, op, obj, d, timeout_ns);
	r->in_dispatch--;
	reg_watch(r);
	return 0;
}

static void
start_attempts(struct ev_loop *loop, struct aiop__reg *r, struct aiop_op *op,
	       struct aiop__obj *obj, const struct aiop__waitdesc *d,
	       int64_t timeout_ns)
{
	int res;

	res = d->attempt(obj, op->aiop_args, 0);
	if (res == -EAGAIN && timeout_ns == 0) {
		unsigned f = probe_flags(d); /* a try: probes as tries do */

		if (f)
			res = d->attempt(obj, op->aiop_args, f);
	}
	if (res == -EAGAIN && timeout_ns != 0) {
		uint64_t t0;

		res = spin(obj, op_wq(op), d, op->aiop_args,
			   spin_cap(timeout_ns, CORO_SPIN_MAX_NS), &t0);
		if (res == -EAGAIN) {
			op->aiop_state = OP_WAITING;
			ev_init(&op->aiop_timer, op_timeout_cb);
			list_insert_before(&r->wait, op);
			r->nwaiting++;
			if (d->recheck_ns == AIOP__RECHECK_OWNER_NS)
				r->nowner++;
			res = arm_attempt(r, op);
			if (op->aiop_state != OP_WAITING) {
				/* cancelled from inside the attempt (user code:
				 * a barrier's action): already queued */
				if (res != -EAGAIN && d->undo)
					(void)d->undo(obj, op->aiop_args, res);
				return;
			}
			if (res == -EAGAIN) {
				if (timeout_ns > 0) {
					/* from now, not the loop's time */
					double after =
						(double)timeout_ns / 1e9 +
						(ev_time() - ev_now(loop));
					ev_timer_set(&op->aiop_timer,
						     after < 0 ? 0 : after, 0.);
					ev_timer_start(loop, &op->aiop_timer);
				}
				return;
			}
			unwait(r, op);
		}
	}
	queue_done(r, op, res);
}

AIOP_API int
aiop_op_cancel(struct aiop_op *op)
{
	struct aiop__reg *r;
	const struct aiop__waitdesc *d;
	int res;

	if (!op)
		return -EINVAL;
	if ((op->aiop_state == OP_WAITING || op->aiop_state == OP_QUEUED) &&
	    op_reg(op)->gen != cur_gen())
		return -EINVAL; /* inherited through fork: the parent's op */
	switch (op->aiop_state) {
	case OP_WAITING:
		r = op_reg(op);
		d = op_desc(op);
		res = d->cancel ? d->cancel(op->aiop_obj, op->aiop_args)
				: -ECANCELED;
		if (res == -EAGAIN) {
			/* ends through its next phase; no deadline any more */
			ev_timer_stop(r->loop, &op->aiop_timer);
			r->kicked = true;
		} else {
			unwait(r, op);
			queue_done(r, op, res);
		}
		reg_watch(r);
		return 0;
	case OP_QUEUED:
		d = op_desc(op);
		/* a second cancel finds -ECANCELED; or -EOWNERDEAD again from
		 * an undo that keeps the grant (Condition), which is
		 * idempotent: it passed its notification on already */
		if (op->aiop_result != -ECANCELED) {
			op->aiop_result =
				d->undo ? d->undo(op->aiop_obj, op->aiop_args,
						  op->aiop_result)
					: -ECANCELED;
		}
		return 0;
	case OP_DONE:
		return -EALREADY;
	default:
		return -EINVAL;
	}
}

AIOP_API int
aiop_op_pending(const struct aiop_op *op)
{
	return op && (op->aiop_state == OP_WAITING ||
		      op->aiop_state == OP_QUEUED);
}
