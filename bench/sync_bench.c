/* SPDX-License-Identifier: MIT */
/*
 * Benchmark of issue 2: aiop Lock and Event between two forked processes,
 * next to raw kernel and libc baselines measured in the same run.
 *
 * Every figure is a ping-pong between the parent (which times it) and a
 * forked child; each round trip is two real hand-offs, one each way. The
 * rounds are interleaved (every round measures every scenario once, in a
 * rotated order) and the table shows medians, because this machine is a
 * small shared VM whose noise moves in bursts. Figures are printed, never
 * asserted: the PASS/MISS column compares them with the targets.
 *
 * Usage: sync_bench [--quick] [--rounds N] [--only WORDS]
 *        (env AIOP_BENCH_QUICK=1 is --quick; --help lists the options)
 * docs/performance.md explains the method and shows a run.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/futex.h>

#include <aiop.h>
#include <aiop/ev.h>

#include "bench_harness.h"

/* No wait of the benchmark may outlive this; a late peer is a failure. */
#define OP_TIMEOUT_NS ((int64_t)(10 * BENCH_NS_PER_S))
#define GRACE_NS (10 * BENCH_NS_PER_S)
#define REAP_MS 20000

/* ---- configuration ------------------------------------------------------ */

struct cfg {
	int rounds;
	uint64_t warm_ns;  /* untimed round trips before each figure */
	uint64_t meas_ns;  /* timed part of each figure */
	uint64_t idle_ns;  /* how long the idle waiters are watched */
	long uncont_ops;   /* iterations of each uncontended loop */
	bool quick;
	const char *only; /* --only: the scenarios and sections to run */
};

/* ---- state shared by the two processes of a measurement ----------------- */

struct padded_mutex {
	_Alignas(64) pthread_mutex_t m;
};

struct padded_sem {
	_Alignas(64) sem_t s;
};

struct padded_word {
	_Alignas(64) _Atomic uint32_t w;
};

/*
 * One MAP_SHARED mapping reused by every measurement. Every word that
 * bounces between the processes has its own cache line, as the aiop
 * objects (one page each) do, so no baseline pays for false sharing.
 */
struct shared {
	_Alignas(64) _Atomic uint32_t stop; /* parent: this is the last ping */
	_Atomic uint32_t ready;             /* child: set up, waiting */
	_Atomic int child_rc;
	struct aiop_stats child_stats;
	_Alignas(64) _Atomic uint32_t spin_word;
	_Alignas(64) _Atomic uint32_t futex_word;
	struct padded_mutex mtx[3];
	struct padded_sem sem[2];
	struct padded_word slk[3]; /* raw spinlocks */
	/* uncontended loops (parent only, but process-shared like the rest) */
	struct padded_mutex umtx;
	struct padded_sem usem;
};

/* What one measurement works with; the child gets a copy through fork(). */
struct run {
	const struct cfg *cfg;
	struct shared *sh;
	struct aiop_lock *lk[3];
	struct aiop_event *ev[2];
	int efd[2];
	bool mtx_init, sem_init;
	uint64_t deadline;     /* absolute CLOCK_MONOTONIC bound of the run */
	struct timespec dl_ts; /* the same, for the raw timed waits */
	struct bench_loop lp;  /* loop side (child) */
	uint64_t i;
};

/* ---- raw futex ---------------------------------------------------------- */

/* Shared (not FUTEX_PRIVATE_FLAG) with an absolute deadline: exactly what
 * the aiop engine uses, so the comparison is with the same kernel call. */
static int
futex_wait_abs(_Atomic uint32_t *w, uint32_t val, const struct timespec *ts)
{
	long r = syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT_BITSET, val, ts,
			 NULL, FUTEX_BITSET_MATCH_ANY);

	if (r < 0 && errno == ETIMEDOUT)
		return -ETIMEDOUT;
	return 0;
}

static void
futex_wake_one(_Atomic uint32_t *w)
{
	syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* ---- set-up shared by the scenarios ------------------------------------- */

static int
setup_none(struct run *r)
{
	(void)r;
	return 0;
}

static int
setup_efd(struct run *r)
{
	return bench_efd_pair(r->efd, false);
}

/* The loop side reads without blocking; the timing side blocks. */
static int
setup_efd_ev(struct run *r)
{
	return bench_efd_pair(r->efd, true);
}

static int
setup_mutex(struct run *r)
{
	pthread_mutexattr_t a;
	int rc = 0;

	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	for (int k = 0; k < 3 && rc == 0; k++)
		rc = pthread_mutex_init(&r->sh->mtx[k].m, &a);
	pthread_mutexattr_destroy(&a);
	if (rc)
		return -rc;
	r->mtx_init = true;
	/* three-lock ring: the parent starts holding 0 and 1 */
	pthread_mutex_lock(&r->sh->mtx[0].m);
	pthread_mutex_lock(&r->sh->mtx[1].m);
	return 0;
}

static int
setup_sem(struct run *r)
{
	if (sem_init(&r->sh->sem[0].s, 1, 0) < 0 ||
	    sem_init(&r->sh->sem[1].s, 1, 0) < 0)
		return -errno;
	r->sem_init = true;
	return 0;
}

static int
setup_lock(struct run *r)
{
	int rc;

	for (int k = 0; k < 3; k++)
		if ((rc = aiop_lock_new(&r->lk[k])) < 0)
			return rc;
	if ((rc = aiop_lock_try_acquire(r->lk[0])) < 0 ||
	    (rc = aiop_lock_try_acquire(r->lk[1])) < 0)
		return rc;
	return 0;
}

static int
setup_event(struct run *r)
{
	int rc;

	for (int k = 0; k < 2; k++)
		if ((rc = aiop_event_new(&r->ev[k])) < 0)
			return rc;
	return 0;
}

/* Process-local resources: both processes drop their own. */
static void
run_drop(struct run *r)
{
	for (int k = 0; k < 3; k++) {
		(void)aiop_lock_free(r->lk[k]);
		r->lk[k] = NULL;
	}
	for (int k = 0; k < 2; k++) {
		(void)aiop_event_free(r->ev[k]);
		r->ev[k] = NULL;
		if (r->efd[k] >= 0)
			close(r->efd[k]);
		r->efd[k] = -1;
	}
}

/* Shared libc objects are destroyed once, by the parent, after the child
 * has been reaped. */
static void
run_teardown(struct run *r)
{
	run_drop(r);
	if (r->mtx_init)
		for (int k = 0; k < 3; k++)
			pthread_mutex_destroy(&r->sh->mtx[k].m);
	if (r->sem_init)
		for (int k = 0; k < 2; k++)
			sem_destroy(&r->sh->sem[k].s);
	r->mtx_init = r->sem_init = false;
}

static void
set_ready(struct run *r)
{
	atomic_store(&r->sh->ready, 1);
}

static bool
stop_seen(struct run *r)
{
	return atomic_load(&r->sh->stop) != 0;
}

/* ---- scenario: cache-line spin (the floor) ------------------------------ */

static int
spin_until(_Atomic uint32_t *w, uint32_t want, uint64_t deadline)
{
	unsigned k = 0;

	while (atomic_load_explicit(w, memory_order_acquire) != want) {
		bench_relax();
		if ((++k & 4095) == 0 && bench_now() > deadline)
			return -ETIMEDOUT;
	}
	return 0;
}

static int
rt_spin(struct run *r, uint64_t i)
{
	_Atomic uint32_t *w = &r->sh->spin_word;

	atomic_store_explicit(w, (uint32_t)(2 * i + 1), memory_order_release);
	return spin_until(w, (uint32_t)(2 * i + 2), r->deadline);
}

static int
child_spin(struct run *r)
{
	_Atomic uint32_t *w = &r->sh->spin_word;

	set_ready(r);
	for (uint64_t i = 0;; i++) {
		int rc = spin_until(w, (uint32_t)(2 * i + 1), r->deadline);
		bool stop;

		if (rc < 0)
			return rc;
		stop = stop_seen(r);
		atomic_store_explicit(w, (uint32_t)(2 * i + 2),
				      memory_order_release);
		if (stop)
			return 0;
	}
}

/* ---- scenario: raw spinlock, three-lock ring ----------------------------- */

/*
 * The floor of a lock hand-off, as opposed to a flag hand-off: the waiter
 * must see the release and then win an atomic read-modify-write, so the
 * line moves at least twice. Same ring as pthread_mutex and aiop Lock.
 */
static int
slk_take(_Atomic uint32_t *w, uint64_t deadline)
{
	unsigned k = 0;

	for (;;) {
		uint32_t z = 0;

		if (atomic_load_explicit(w, memory_order_relaxed) == 0 &&
		    atomic_compare_exchange_weak_explicit(
			    w, &z, 1, memory_order_acquire,
			    memory_order_relaxed))
			return 0;
		bench_relax();
		if ((++k & 4095) == 0 && bench_now() > deadline)
			return -ETIMEDOUT;
	}
}

static void
slk_drop(_Atomic uint32_t *w)
{
	atomic_store_explicit(w, 0, memory_order_release);
}

static int
setup_spinlock(struct run *r)
{
	for (int k = 0; k < 3; k++)
		atomic_store(&r->sh->slk[k].w, k < 2);
	return 0;
}

static int
rt_spinlock(struct run *r, uint64_t i)
{
	slk_drop(&r->sh->slk[i % 3].w);
	return slk_take(&r->sh->slk[(i + 2) % 3].w, r->deadline);
}

static void
finish_spinlock(struct run *r, uint64_t n)
{
	slk_drop(&r->sh->slk[n % 3].w);
	slk_drop(&r->sh->slk[(n + 1) % 3].w);
}

static int
child_spinlock(struct run *r)
{
	int rc = slk_take(&r->sh->slk[2].w, r->deadline);

	if (rc < 0)
		return rc;
	set_ready(r);
	for (uint64_t i = 0;; i++) {
		bool stop;

		if ((rc = slk_take(&r->sh->slk[i % 3].w, r->deadline)) < 0)
			return rc;
		stop = stop_seen(r);
		slk_drop(&r->sh->slk[(i + 2) % 3].w);
		if (stop) {
			slk_drop(&r->sh->slk[i % 3].w);
			return 0;
		}
	}
}

/* ---- scenario: raw futex ------------------------------------------------ */

/* The word says whose turn it is; each side always calls FUTEX_WAKE (no
 * waiter count), which is the plain textbook ping-pong. */
static int
rt_futex(struct run *r, uint64_t i)
{
	_Atomic uint32_t *w = &r->sh->futex_word;

	(void)i;
	atomic_store(w, 1);
	futex_wake_one(w);
	while (atomic_load(w) != 0)
		if (futex_wait_abs(w, 1, &r->dl_ts) < 0)
			return -ETIMEDOUT;
	return 0;
}

static int
child_futex(struct run *r)
{
	_Atomic uint32_t *w = &r->sh->futex_word;

	set_ready(r);
	for (;;) {
		bool stop;

		while (atomic_load(w) != 1)
			if (futex_wait_abs(w, 0, &r->dl_ts) < 0)
				return -ETIMEDOUT;
		stop = stop_seen(r);
		atomic_store(w, 0);
		futex_wake_one(w);
		if (stop)
			return 0;
	}
}

/* ---- scenario: eventfd, both sides blocking in read() -------------------- */

static int
rt_efd(struct run *r, uint64_t i)
{
	int rc;

	(void)i;
	if ((rc = bench_efd_put(r->efd[0])) < 0)
		return rc;
	return bench_efd_get(r->efd[1]);
}

static int
child_efd(struct run *r)
{
	set_ready(r);
	for (;;) {
		int rc = bench_efd_get(r->efd[0]);
		bool stop;

		if (rc < 0)
			return rc;
		stop = stop_seen(r);
		if ((rc = bench_efd_put(r->efd[1])) < 0)
			return rc;
		if (stop)
			return 0;
	}
}

/* ---- scenario: eventfd, child in a libev loop (ev_io) -------------------- */

/* The fair kernel baseline of a coro figure: the same loop, the same
 * epoll wake-up, with nothing of aiop in between. */
static void
on_efd(struct ev_loop *loop, ev_io *w, int revents)
{
	struct run *r = w->data;
	uint64_t v;
	bool stop;
	int rc;

	(void)loop;
	(void)revents;
	if (read(r->efd[0], &v, sizeof(v)) != sizeof(v)) {
		if (errno != EAGAIN)
			bench_loop_fail(&r->lp, -errno);
		return;
	}
	stop = stop_seen(r);
	if ((rc = bench_efd_put(r->efd[1])) < 0)
		bench_loop_fail(&r->lp, rc);
	else if (stop)
		bench_loop_done(&r->lp);
}

static int
child_efd_ev(struct run *r)
{
	int rc = bench_loop_open(&r->lp, r->deadline, r);

	if (rc < 0)
		return rc;
	bench_loop_watch(&r->lp, on_efd, r->efd[0], r);
	set_ready(r);
	return bench_loop_run_close(&r->lp);
}

/* ---- scenario: pthread_mutex, three-lock ring ------------------------ */

/*
 * Strict alternation with locks that are only unlocked by their owner:
 * the parent holds {i, i+1}, unlocks i (waking the child blocked on it)
 * and blocks on i+2, which the child unlocks once it got i. Each round
 * trip is two lock hand-offs; the same ring is used for the aiop Lock.
 */
static int
rt_mutex(struct run *r, uint64_t i)
{
	int rc;

	pthread_mutex_unlock(&r->sh->mtx[i % 3].m);
	rc = pthread_mutex_clocklock(&r->sh->mtx[(i + 2) % 3].m,
				     CLOCK_MONOTONIC, &r->dl_ts);
	return -rc;
}

static void
finish_mutex(struct run *r, uint64_t n)
{
	pthread_mutex_unlock(&r->sh->mtx[n % 3].m);
	pthread_mutex_unlock(&r->sh->mtx[(n + 1) % 3].m);
}

static int
child_mutex(struct run *r)
{
	int rc = pthread_mutex_clocklock(&r->sh->mtx[2].m, CLOCK_MONOTONIC,
					 &r->dl_ts);

	if (rc)
		return -rc;
	set_ready(r);
	for (uint64_t i = 0;; i++) {
		bool stop;

		rc = pthread_mutex_clocklock(&r->sh->mtx[i % 3].m,
					     CLOCK_MONOTONIC, &r->dl_ts);
		if (rc)
			return -rc;
		stop = stop_seen(r);
		pthread_mutex_unlock(&r->sh->mtx[(i + 2) % 3].m);
		if (stop) {
			pthread_mutex_unlock(&r->sh->mtx[i % 3].m);
			return 0;
		}
	}
}

/* ---- scenario: sem_t ---------------------------------------------------- */

static int
rt_sem(struct run *r, uint64_t i)
{
	(void)i;
	sem_post(&r->sh->sem[0].s);
	if (sem_clockwait(&r->sh->sem[1].s, CLOCK_MONOTONIC, &r->dl_ts) < 0)
		return -errno;
	return 0;
}

static int
child_sem(struct run *r)
{
	set_ready(r);
	for (;;) {
		bool stop;

		if (sem_clockwait(&r->sh->sem[0].s, CLOCK_MONOTONIC,
				  &r->dl_ts) < 0)
			return -errno;
		stop = stop_seen(r);
		sem_post(&r->sh->sem[1].s);
		if (stop)
			return 0;
	}
}

/* ---- scenario: aiop Lock, three-lock ring (as pthread_mutex) ------------- */

static int
rt_lock(struct run *r, uint64_t i)
{
	int rc = aiop_lock_release(r->lk[i % 3]);

	if (rc < 0)
		return rc;
	return aiop_lock_acquire(r->lk[(i + 2) % 3], OP_TIMEOUT_NS);
}

static void
finish_lock(struct run *r, uint64_t n)
{
	(void)aiop_lock_release(r->lk[n % 3]);
	(void)aiop_lock_release(r->lk[(n + 1) % 3]);
}

static int
child_lock(struct run *r)
{
	int rc = aiop_lock_acquire(r->lk[2], OP_TIMEOUT_NS);

	if (rc < 0)
		return rc;
	set_ready(r);
	for (uint64_t i = 0;; i++) {
		bool stop;

		if ((rc = aiop_lock_acquire(r->lk[i % 3], OP_TIMEOUT_NS)) < 0)
			return rc;
		stop = stop_seen(r);
		if ((rc = aiop_lock_release(r->lk[(i + 2) % 3])) < 0)
			return rc;
		if (stop)
			return aiop_lock_release(r->lk[i % 3]);
	}
}

static void
on_lock(struct ev_loop *loop, struct aiop_op *op, int res)
{
	struct run *r = op->data;
	uint64_t i = r->i;
	bool stop;
	int rc;

	if (res != 0) {
		bench_loop_fail(&r->lp, res);
		return;
	}
	stop = stop_seen(r);
	if ((rc = aiop_lock_release(r->lk[(i + 2) % 3])) < 0) {
		bench_loop_fail(&r->lp, rc);
		return;
	}
	if (stop) {
		(void)aiop_lock_release(r->lk[i % 3]);
		bench_loop_done(&r->lp);
		return;
	}
	r->i = ++i;
	rc = aiop_lock_coro_acquire(loop, op, r->lk[i % 3], OP_TIMEOUT_NS,
				    on_lock);
	if (rc < 0)
		bench_loop_fail(&r->lp, rc);
}

static int
child_lock_coro(struct run *r)
{
	int rc = aiop_lock_acquire(r->lk[2], OP_TIMEOUT_NS);

	if (rc < 0)
		return rc;
	if ((rc = bench_loop_open(&r->lp, r->deadline, r)) < 0)
		return rc;
	rc = aiop_lock_coro_acquire(r->lp.loop, &r->lp.op, r->lk[0],
				    OP_TIMEOUT_NS, on_lock);
	if (rc < 0)
		bench_loop_fail(&r->lp, rc);
	set_ready(r);
	return bench_loop_run_close(&r->lp);
}

/* ---- scenario: aiop Event, two events ------------------------------------ */

/* The parent sets 0 and waits for 1; the child waits for 0, clears it and
 * sets 1. A clear always precedes the next set of the same event. */
static int
rt_event(struct run *r, uint64_t i)
{
	int rc;

	(void)i;
	if ((rc = aiop_event_set(r->ev[0])) < 0 ||
	    (rc = aiop_event_wait(r->ev[1], OP_TIMEOUT_NS)) < 0)
		return rc;
	return aiop_event_clear(r->ev[1]);
}

static int
child_event(struct run *r)
{
	set_ready(r);
	for (;;) {
		bool stop;
		int rc;

		if ((rc = aiop_event_wait(r->ev[0], OP_TIMEOUT_NS)) < 0 ||
		    (rc = aiop_event_clear(r->ev[0])) < 0)
			return rc;
		stop = stop_seen(r);
		if ((rc = aiop_event_set(r->ev[1])) < 0)
			return rc;
		if (stop)
			return 0;
	}
}

static void
on_event(struct ev_loop *loop, struct aiop_op *op, int res)
{
	struct run *r = op->data;
	bool stop;
	int rc;

	if (res != 0) {
		bench_loop_fail(&r->lp, res);
		return;
	}
	if ((rc = aiop_event_clear(r->ev[0])) < 0) {
		bench_loop_fail(&r->lp, rc);
		return;
	}
	stop = stop_seen(r);
	if ((rc = aiop_event_set(r->ev[1])) < 0) {
		bench_loop_fail(&r->lp, rc);
		return;
	}
	if (stop) {
		bench_loop_done(&r->lp);
		return;
	}
	rc = aiop_event_coro_wait(loop, op, r->ev[0], OP_TIMEOUT_NS,
				  on_event);
	if (rc < 0)
		bench_loop_fail(&r->lp, rc);
}

static int
child_event_coro(struct run *r)
{
	int rc = bench_loop_open(&r->lp, r->deadline, r);

	if (rc < 0)
		return rc;
	rc = aiop_event_coro_wait(r->lp.loop, &r->lp.op, r->ev[0],
				  OP_TIMEOUT_NS, on_event);
	if (rc < 0)
		bench_loop_fail(&r->lp, rc);
	set_ready(r);
	return bench_loop_run_close(&r->lp);
}

/* ---- the scenario table ------------------------------------------------- */

enum sid {
	S_SPIN,
	S_SPINLOCK,
	S_FUTEX,
	S_EFD,
	S_EFD_EV,
	S_MUTEX,
	S_SEMT,
	S_LOCK,
	S_LOCK_CORO,
	S_EVENT,
	S_EVENT_CORO,
	S_LOCK_OFF,
	S_LOCK_CORO_OFF,
	S_EVENT_OFF,
	S_EVENT_CORO_OFF,
	S_LOCK_FIX,
	S_LOCK_CORO_FIX,
	S_EVENT_FIX,
	S_EVENT_CORO_FIX,
	S_N,
};

/* A fixed spin long enough to bridge a cross-CPU hand-off: it shows what
 * the hand-off path costs once both sides do spin, whatever auto decides.
 * Coro waiters are capped at 5 us by the engine. */
#define FIX_SPIN_NS 20000

struct scen {
	const char *name;
	int spin; /* aiop spin mode, or -1 for a baseline */
	int64_t spin_ns; /* for AIOP_SPIN_FIXED */
	int (*setup)(struct run *r);
	int (*rt)(struct run *r, uint64_t i);      /* parent: one round trip */
	void (*finish)(struct run *r, uint64_t n); /* parent: drop holds */
	int (*child)(struct run *r);
};

static const struct scen scens[S_N] = {
	[S_SPIN] = {"cache-line spin (floor)", -1, 0, setup_none, rt_spin,
		    NULL, child_spin},
	[S_SPINLOCK] = {"raw spinlock, 3-ring", -1, 0, setup_spinlock,
			rt_spinlock, finish_spinlock, child_spinlock},
	[S_FUTEX] = {"raw futex wait/wake", -1, 0, setup_none, rt_futex, NULL,
		     child_futex},
	[S_EFD] = {"eventfd, blocking read", -1, 0, setup_efd, rt_efd, NULL,
		   child_efd},
	[S_EFD_EV] = {"eventfd, child in ev_io loop", -1, 0, setup_efd_ev,
		      rt_efd, NULL, child_efd_ev},
	[S_MUTEX] = {"pthread_mutex pshared, 3-ring", -1, 0, setup_mutex,
		     rt_mutex, finish_mutex, child_mutex},
	[S_SEMT] = {"sem_t pshared", -1, 0, setup_sem, rt_sem, NULL,
		    child_sem},
	[S_LOCK] = {"aiop Lock blocking, spin auto", AIOP_SPIN_AUTO, 0,
		    setup_lock, rt_lock, finish_lock, child_lock},
	[S_LOCK_CORO] = {"aiop Lock coro, spin auto", AIOP_SPIN_AUTO, 0,
			 setup_lock, rt_lock, finish_lock, child_lock_coro},
	[S_EVENT] = {"aiop Event blocking, spin auto", AIOP_SPIN_AUTO, 0,
		     setup_event, rt_event, NULL, child_event},
	[S_EVENT_CORO] = {"aiop Event coro, spin auto", AIOP_SPIN_AUTO, 0,
			  setup_event, rt_event, NULL, child_event_coro},
	[S_LOCK_OFF] = {"aiop Lock blocking, spin off", AIOP_SPIN_OFF, 0,
			setup_lock, rt_lock, finish_lock, child_lock},
	[S_LOCK_CORO_OFF] = {"aiop Lock coro, spin off", AIOP_SPIN_OFF, 0,
			     setup_lock, rt_lock, finish_lock,
			     child_lock_coro},
	[S_EVENT_OFF] = {"aiop Event blocking, spin off", AIOP_SPIN_OFF, 0,
			 setup_event, rt_event, NULL, child_event},
	[S_EVENT_CORO_OFF] = {"aiop Event coro, spin off", AIOP_SPIN_OFF, 0,
			      setup_event, rt_event, NULL, child_event_coro},
	[S_LOCK_FIX] = {"aiop Lock blocking, spin 20us", AIOP_SPIN_FIXED,
			FIX_SPIN_NS, setup_lock, rt_lock, finish_lock,
			child_lock},
	[S_LOCK_CORO_FIX] = {"aiop Lock coro, spin 20us", AIOP_SPIN_FIXED,
			     FIX_SPIN_NS, setup_lock, rt_lock, finish_lock,
			     child_lock_coro},
	[S_EVENT_FIX] = {"aiop Event blocking, spin 20us", AIOP_SPIN_FIXED,
			 FIX_SPIN_NS, setup_event, rt_event, NULL,
			 child_event},
	[S_EVENT_CORO_FIX] = {"aiop Event coro, spin 20us", AIOP_SPIN_FIXED,
			      FIX_SPIN_NS, setup_event, rt_event, NULL,
			      child_event_coro},
};

/* ---- one measurement ---------------------------------------------------- */

struct result {
	double ns_rt;     /* ns per round trip, NAN on failure */
	double sc_rt;     /* aiop-counted syscalls per round trip, both sides */
	double spin_rt;   /* successful spins per round trip, both sides */
	int err;
};

/*
 * The timing loop. The parent reads the clock only every `stride` round
 * trips (the stride widens until a stride lasts 5 us), so the floor is not
 * inflated by the clock itself. The stop flag is stored before the last
 * ping; the child reads it after receiving that ping, answers, and exits.
 */
static int
drive(struct run *r, const struct scen *s, double *ns_rt, uint64_t *total)
{
	const struct cfg *cfg = r->cfg;
	uint64_t i = 0, next = 1, stride = 1, t, t_last, t_start = 0;
	uint64_t i_start = 0, end;
	bool timed = false, last = false;
	int rc;

	t_last = bench_now();
	end = t_last + cfg->warm_ns;
	for (;;) {
		if (i == next) {
			t = bench_now();
			if (t - t_last < 5000 && stride < 4096)
				stride *= 2;
			else if (t - t_last > 100000 && stride > 1)
				stride /= 2;
			t_last = t;
			next = i + stride;
			if (t >= end && !timed) {
				timed = true;
				t_start = t;
				i_start = i;
				end = t + cfg->meas_ns;
			} else if (t >= end) {
				atomic_store(&r->sh->stop, 1);
				last = true;
			}
		}
		rc = s->rt(r, i);
		if (rc < 0)
			return rc;
		i++;
		if (last)
			break;
	}
	t = bench_now();
	*ns_rt = (double)(t - t_start) / (double)(i - i_start);
	*total = i;
	return 0;
}

static _Noreturn void
child_main(struct run *r, const struct scen *s, enum placement pl,
	   const struct bench_cpus *cpus)
{
	int rc = 0;

	if (pl == PL_SPLIT)
		rc = bench_pin(cpus->b);
	alarm(bench_alarm_secs(r->deadline));
	aiop_stats_reset();
	if (rc == 0)
		rc = s->child(r);
	aiop_stats_get(&r->sh->child_stats);
	atomic_store(&r->sh->child_rc, rc);
	run_drop(r);
	_exit(rc < 0 ? 1 : 0);
}

static int
measure(const struct cfg *cfg, struct shared *sh,
	const struct bench_cpus *cpus, enum sid id, enum placement pl,
	struct result *out)
{
	const struct scen *s = &scens[id];
	struct run r = {.cfg = cfg, .sh = sh, .efd = {-1, -1}};
	struct aiop_stats ps = {0};
	uint64_t n = 0;
	pid_t pid;
	int rc;

	out->ns_rt = out->sc_rt = out->spin_rt = NAN;
	atomic_store(&sh->stop, 0);
	atomic_store(&sh->ready, 0);
	atomic_store(&sh->child_rc, 0);
	memset(&sh->child_stats, 0, sizeof(sh->child_stats));
	atomic_store(&sh->spin_word, 0);
	atomic_store(&sh->futex_word, 0);
	r.deadline = bench_now() + cfg->warm_ns + cfg->meas_ns + GRACE_NS;
	bench_ts(r.deadline, &r.dl_ts);

	rc = s->setup(&r);
	if (rc < 0)
		goto out;
	bench_spin_set(s->spin, s->spin_ns);
	rc = bench_place(cpus, pl, 0);
	if (rc < 0)
		goto out;
	pid = bench_fork();
	if (pid == 0)
		child_main(&r, s, pl, cpus);
	if (pid < 0) {
		rc = -errno;
		goto out;
	}
	alarm(bench_alarm_secs(r.deadline));
	rc = bench_wait_ready(&sh->ready, 1, 5 * BENCH_NS_PER_S);
	if (rc == 0) {
		aiop_stats_reset();
		rc = drive(&r, s, &out->ns_rt, &n);
		aiop_stats_get(&ps);
	}
	alarm(0);
	rc = bench_finish_child(pid, rc, &sh->child_rc, REAP_MS);
	if (rc == 0 && s->finish)
		s->finish(&r, n);
	if (rc == 0 && s->spin >= 0) {
		const struct aiop_stats *cs = &sh->child_stats;

		out->sc_rt = (double)(bench_stats_syscalls(&ps) +
				      bench_stats_syscalls(cs)) / (double)n;
		out->spin_rt = (double)(ps.spins_ok + cs->spins_ok) /
			       (double)n;
	}
out:
	if (rc < 0)
		out->ns_rt = NAN;
	out->err = rc;
	run_teardown(&r);
	aiop_spin_set(AIOP_SPIN_AUTO, 0);
	bench_unpin(cpus);
	return rc;
}

/* ---- uncontended cost --------------------------------------------------- */

enum uid {
	U_LOCK,
	U_LOCK_TRY,
	U_MUTEX,
	U_SEM,
	U_SEMT,
	U_LOCK_CORO,
	U_N,
};

static const char *const u_names[U_N] = {
	[U_LOCK] = "aiop Lock acquire+release",
	[U_LOCK_TRY] = "aiop Lock try_acquire+release",
	[U_MUTEX] = "pthread_mutex lock+unlock (pshared)",
	[U_SEM] = "aiop Semaphore acquire+release",
	[U_SEMT] = "sem_t wait+post (pshared)",
	[U_LOCK_CORO] = "aiop Lock coro acquire+release",
};

struct uobjs {
	struct aiop_lock *lock;
	struct aiop_sem *sem;
	struct shared *sh;
	struct ev_loop *loop;
	struct aiop_op op;
	long left;
	int err;
};

/* An uncontended coro acquire completes from the loop, not in the start
 * call; the callback releases and starts the next one. */
static void
on_ulock(struct ev_loop *loop, struct aiop_op *op, int res)
{
	struct uobjs *u = op->data;
	int rc;

	rc = res != 0 ? res : aiop_lock_release(u->lock);
	if (rc < 0) {
		u->err = rc;
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	if (--u->left <= 0) {
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	rc = aiop_lock_coro_acquire(loop, op, u->lock, OP_TIMEOUT_NS,
				    on_ulock);
	if (rc < 0) {
		u->err = rc;
		ev_break(loop, EVBREAK_ALL);
	}
}

static int
uncont_loop(struct uobjs *u, enum uid id, long n)
{
	int bad = 0;

	switch (id) {
	case U_LOCK:
		for (long k = 0; k < n; k++)
			bad |= aiop_lock_acquire(u->lock, AIOP_FOREVER) |
			       aiop_lock_release(u->lock);
		break;
	case U_LOCK_TRY:
		for (long k = 0; k < n; k++)
			bad |= aiop_lock_try_acquire(u->lock) |
			       aiop_lock_release(u->lock);
		break;
	case U_MUTEX:
		for (long k = 0; k < n; k++)
			bad |= pthread_mutex_lock(&u->sh->umtx.m) |
			       pthread_mutex_unlock(&u->sh->umtx.m);
		break;
	case U_SEM:
		for (long k = 0; k < n; k++)
			bad |= aiop_sem_acquire(u->sem, AIOP_FOREVER) |
			       aiop_sem_release(u->sem);
		break;
	case U_SEMT:
		for (long k = 0; k < n; k++)
			bad |= sem_wait(&u->sh->usem.s) |
			       sem_post(&u->sh->usem.s);
		break;
	case U_LOCK_CORO:
		u->left = n;
		u->err = 0;
		u->op.data = u;
		bad = aiop_lock_coro_acquire(u->loop, &u->op, u->lock,
					     OP_TIMEOUT_NS, on_ulock);
		if (bad == 0) {
			ev_run(u->loop, 0);
			bad = u->err;
		}
		break;
	case U_N:
		break;
	}
	return bad ? -EPROTO : 0;
}

/* ns per acquire+release pair; NAN on failure */
static double
uncont_once(struct uobjs *u, enum uid id, long n)
{
	uint64_t t0;

	if (uncont_loop(u, id, n / 10) < 0) /* warm-up */
		return NAN;
	t0 = bench_now();
	if (uncont_loop(u, id, n) < 0)
		return NAN;
	return (double)(bench_now() - t0) / (double)n;
}

static int
uobjs_open(struct uobjs *u, struct shared *sh)
{
	pthread_mutexattr_t a;
	int rc;

	memset(u, 0, sizeof(*u));
	u->sh = sh;
	if ((rc = aiop_lock_new(&u->lock)) < 0 ||
	    (rc = aiop_sem_new(&u->sem, 1)) < 0)
		return rc;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	rc = pthread_mutex_init(&sh->umtx.m, &a);
	pthread_mutexattr_destroy(&a);
	if (rc)
		return -rc;
	if (sem_init(&sh->usem.s, 1, 1) < 0)
		return -errno;
	u->loop = ev_loop_new(EVFLAG_AUTO);
	return u->loop ? 0 : -ENOMEM;
}

static void
uobjs_close(struct uobjs *u)
{
	if (u->loop) {
		(void)aiop_loop_detach(u->loop);
		ev_loop_destroy(u->loop);
	}
	(void)aiop_lock_free(u->lock);
	(void)aiop_sem_free(u->sem);
	pthread_mutex_destroy(&u->sh->umtx.m);
	sem_destroy(&u->sh->usem.s);
}

/* ---- syscalls per uncontended operation --------------------------------- */

enum zid { Z_LOCK, Z_LOCK_TRY, Z_RLOCK, Z_SEM, Z_EVENT, Z_LOCK_CORO, Z_N };

static const char *const z_names[Z_N] = {
	[Z_LOCK] = "Lock acquire+release",
	[Z_LOCK_TRY] = "Lock try_acquire+release",
	[Z_RLOCK] = "RLock acquire x2 + release x2",
	[Z_SEM] = "Semaphore acquire+release",
	[Z_EVENT] = "Event set+wait+is_set+clear",
	[Z_LOCK_CORO] = "Lock coro acquire+release",
};

struct zres {
	struct aiop_stats st;
	long ops;
	double per_op;
	int err;
};

static int
zero_loop(struct uobjs *u, struct aiop_rlock *rl, struct aiop_event *ev,
	  enum zid id, long n)
{
	int bad = 0;

	switch (id) {
	case Z_LOCK:
		return uncont_loop(u, U_LOCK, n);
	case Z_LOCK_TRY:
		return uncont_loop(u, U_LOCK_TRY, n);
	case Z_SEM:
		return uncont_loop(u, U_SEM, n);
	case Z_LOCK_CORO:
		return uncont_loop(u, U_LOCK_CORO, n);
	case Z_RLOCK:
		for (long k = 0; k < n; k++)
			bad |= aiop_rlock_acquire(rl, AIOP_FOREVER) |
			       aiop_rlock_acquire(rl, AIOP_FOREVER) |
			       aiop_rlock_release(rl) | aiop_rlock_release(rl);
		break;
	case Z_EVENT:
		for (long k = 0; k < n; k++)
			bad |= aiop_event_set(ev) |
			       aiop_event_wait(ev, AIOP_FOREVER) |
			       (aiop_event_is_set(ev) - 1) |
			       aiop_event_clear(ev);
		break;
	case Z_N:
		break;
	}
	return bad ? -EPROTO : 0;
}

static void
zero_syscalls(struct uobjs *u, long n, struct zres *zr)
{
	struct aiop_rlock *rl = NULL;
	struct aiop_event *ev = NULL;
	int rc;

	if ((rc = aiop_rlock_new(&rl)) < 0 || (rc = aiop_event_new(&ev)) < 0) {
		for (int z = 0; z < Z_N; z++)
			zr[z].err = rc;
		goto out;
	}
	for (int z = 0; z < Z_N; z++) {
		aiop_stats_reset();
		zr[z].err = zero_loop(u, rl, ev, (enum zid)z, n);
		aiop_stats_get(&zr[z].st);
		zr[z].ops = n;
		zr[z].per_op = (double)bench_stats_syscalls(&zr[z].st) /
			       (double)n;
	}
out:
	(void)aiop_rlock_free(rl);
	(void)aiop_event_free(ev);
}

/* ---- idle CPU ----------------------------------------------------------- */

enum iid { I_LOCK, I_LOCK_CORO, I_EVENT, I_EVENT_CORO, I_N };

static const char *const i_names[I_N] = {
	[I_LOCK] = "Lock acquire, blocked",
	[I_LOCK_CORO] = "Lock coro acquire pending in ev_run",
	[I_EVENT] = "Event wait, blocked",
	[I_EVENT_CORO] = "Event coro wait pending in ev_run",
};

struct idle_ctx {
	struct shared *sh;
	struct aiop_lock *lock[2];
	struct aiop_event *ev;
	int64_t timeout;
	int result;
	bool done;
};

static void
on_idle_op(struct ev_loop *loop, struct aiop_op *op, int res)
{
	struct idle_ctx *c = op->data;

	c->result = res;
	c->done = true;
	ev_break(loop, EVBREAK_ALL);
}

static int
idle_child(struct idle_ctx *c, enum iid id)
{
	struct ev_loop *loop;
	struct aiop_op op = {.data = c};
	int rc;

	switch (id) {
	case I_LOCK:
		atomic_fetch_add(&c->sh->ready, 1);
		rc = aiop_lock_acquire(c->lock[0], c->timeout);
		return rc < 0 ? rc : aiop_lock_release(c->lock[0]);
	case I_EVENT:
		atomic_fetch_add(&c->sh->ready, 1);
		return aiop_event_wait(c->ev, c->timeout);
	case I_LOCK_CORO:
	case I_EVENT_CORO:
		break;
	case I_N:
		return -EINVAL;
	}
	loop = ev_loop_new(EVFLAG_AUTO);
	if (!loop)
		return -ENOMEM;
	if (id == I_LOCK_CORO)
		rc = aiop_lock_coro_acquire(loop, &op, c->lock[1], c->timeout,
					    on_idle_op);
	else
		rc = aiop_event_coro_wait(loop, &op, c->ev, c->timeout,
					  on_idle_op);
	if (rc == 0) {
		atomic_fetch_add(&c->sh->ready, 1);
		/* the op's own timeout bounds this run */
		ev_run(loop, 0);
		rc = c->done ? c->result : -EPROTO;
		if (rc == 0 && id == I_LOCK_CORO)
			rc = aiop_lock_release(c->lock[1]);
	}
	(void)aiop_loop_detach(loop);
	ev_loop_destroy(loop);
	return rc;
}

static void
idle_cpu(const struct cfg *cfg, struct shared *sh, struct bench_idle *ir)
{
	struct idle_ctx c = {.sh = sh};
	pid_t pid[I_N];
	int rc = 0, started = 0;

	for (int k = 0; k < I_N; k++)
		ir[k] = (struct bench_idle){NAN, NAN, NAN, NAN, 0};
	c.timeout = (int64_t)(cfg->idle_ns + GRACE_NS);
	atomic_store(&sh->ready, 0);
	if ((rc = aiop_lock_new(&c.lock[0])) < 0 ||
	    (rc = aiop_lock_new(&c.lock[1])) < 0 ||
	    (rc = aiop_event_new(&c.ev)) < 0 ||
	    (rc = aiop_lock_try_acquire(c.lock[0])) < 0 ||
	    (rc = aiop_lock_try_acquire(c.lock[1])) < 0)
		goto out;
	for (; started < I_N; started++) {
		pid[started] = bench_fork();
		if (pid[started] == 0) {
			int r = idle_child(&c, (enum iid)started);

			(void)aiop_lock_free(c.lock[0]);
			(void)aiop_lock_free(c.lock[1]);
			(void)aiop_event_free(c.ev);
			_exit(r < 0 ? 1 : 0);
		}
		if (pid[started] < 0) {
			rc = -errno;
			break;
		}
	}
	if (rc == 0)
		rc = bench_wait_ready(&sh->ready, I_N, 5 * BENCH_NS_PER_S);
	if (rc == 0) {
		/* let any spin and the first futex/epoll sleep settle */
		bench_sleep_ns(100 * BENCH_NS_PER_MS);
		bench_idle_watch(pid, I_N, cfg->idle_ns, ir);
	}
	/* wake them all; each child checks it got what it waited for */
	(void)aiop_lock_release(c.lock[0]);
	(void)aiop_lock_release(c.lock[1]);
	(void)aiop_event_set(c.ev);
	for (int k = 0; k < started; k++) {
		int st = bench_reap(pid[k], REAP_MS);

		if (st != 0 && !ir[k].err)
			ir[k].err = st < 0 ? st : -EPROTO;
	}
out:
	if (rc < 0)
		for (int k = 0; k < I_N; k++)
			if (!ir[k].err)
				ir[k].err = rc;
	(void)aiop_lock_free(c.lock[0]);
	(void)aiop_lock_free(c.lock[1]);
	(void)aiop_event_free(c.ev);
}

/* ---- report ------------------------------------------------------------- */

struct cell {
	double v[BENCH_MAX_ROUNDS], sc[BENCH_MAX_ROUNDS], sp[BENCH_MAX_ROUNDS];
	int n, nerr, err;
};

static struct cell cells[S_N][PL_N];
static double ucells[U_N][BENCH_MAX_ROUNDS];

static const char *
verdict(double ratio, double target)
{
	if (isnan(ratio))
		return "ERR";
	if (target <= 0)
		return "info";
	return ratio <= target ? "PASS" : "MISS";
}

static bool have_split;

static bool ran(enum sid s);

static bool
any_ran(void)
{
	for (int s = 0; s < S_N; s++)
		if (ran((enum sid)s))
			return true;
	return false;
}

/* Was the scenario measured at all (--only may have left it out)? */
static bool
ran(enum sid s)
{
	for (int p = 0; p < PL_N; p++)
		if (cells[s][p].n || cells[s][p].nerr)
			return true;
	return false;
}

static void
print_latency(const struct cfg *cfg)
{
	printf("\n## Round-trip latency between two processes "
	       "(median of %d rounds, [min - max])\n\n", cfg->rounds);
	printf("One round trip = two hand-offs (parent -> child -> parent). "
	       "split = parent on one CPU,\nchild on another; pinned = both "
	       "on one CPU; unpinned = the scheduler decides.\n\n");
	printf("| scenario | unpinned | split | pinned |\n");
	printf("|---|---|---|---|\n");
	for (int s = 0; s < S_N; s++) {
		if (!ran((enum sid)s))
			continue;
		printf("| %s |", scens[s].name);
		for (int p = 0; p < PL_N; p++) {
			const struct cell *c = &cells[s][p];

			if (p == PL_SPLIT && !have_split) {
				printf(" n/a |");
				continue;
			}
			bench_print_latency(c->v, c->n, c->nerr, c->err);
			printf(" |");
		}
		printf("\n");
	}
	printf("\naiop syscalls per round trip, both processes (futex "
	       "waits + wakes + doorbell\nrings + reads + owner probes, from "
	       "aiop_stats_get, warm-up included); in brackets\nthe "
	       "successful spins per round trip:\n\n");
	printf("| scenario | unpinned | split | pinned |\n");
	printf("|---|---|---|---|\n");
	for (int s = 0; s < S_N; s++) {
		if (scens[s].spin < 0 || !ran((enum sid)s))
			continue;
		printf("| %s |", scens[s].name);
		for (int p = 0; p < PL_N; p++) {
			if (!cells[s][p].n) {
				printf(" n/a |");
				continue;
			}
			printf(" %.2f [%.2f] |",
			       bench_median_of(cells[s][p].sc, cells[s][p].n),
			       bench_median_of(cells[s][p].sp, cells[s][p].n));
		}
		printf("\n");
	}
}

struct cmp {
	const char *what;
	enum sid fig, base;
	enum placement pl;
	double target; /* <= 0: for information */
};

static void
print_cmp_row(const struct cmp *c)
{
	char f[32], b[32];
	double vf = bench_cell_median(cells[c->fig][c->pl].v,
					 cells[c->fig][c->pl].n, NULL);
	double vb = bench_cell_median(cells[c->base][c->pl].v,
					 cells[c->base][c->pl].n, NULL);
	double ratio = vf / vb;

	if ((c->pl == PL_SPLIT && !have_split) || !ran(c->fig) ||
	    !ran(c->base))
		return;
	bench_fmt_time(f, sizeof(f), vf);
	bench_fmt_time(b, sizeof(b), vb);
	printf("| %s | %s | %s | %s | %s | %.2fx |", c->what,
	       bench_pl_names[c->pl], f, b, scens[c->base].name, ratio);
	if (c->target > 0)
		printf(" <= %.1fx | %s |\n", c->target,
		       verdict(ratio, c->target));
	else
		printf(" - | %s |\n", verdict(ratio, 0));
}

#define ON(p) (1u << (p))
#define ALL_PL (ON(PL_UNPINNED) | ON(PL_SPLIT) | ON(PL_PINNED))
#define CROSS_PL (ON(PL_UNPINNED) | ON(PL_SPLIT))

/*
 * The targets, one row per placement where they apply. "Peer on
 * another CPU" is judged on the library default (spin auto) and, to
 * separate policy from path, with a fixed spin that keeps both sides
 * awake. Rows with target 0 are context, not targets.
 */
static const struct {
	const char *what;
	enum sid fig, base;
	unsigned pls;
	double target;
} targets[] = {
	{"coro wake, both asleep (Event)", S_EVENT_CORO_OFF, S_EFD_EV, ALL_PL,
	 1.2},
	{"coro hand-off, both asleep (Lock)", S_LOCK_CORO_OFF, S_EFD_EV,
	 ALL_PL, 1.2},
	{"hand-off, other CPU (Lock)", S_LOCK, S_SPIN, CROSS_PL, 2.0},
	{"wake, other CPU (Event)", S_EVENT, S_SPIN, CROSS_PL, 2.0},
	{"coro hand-off, other CPU (Lock)", S_LOCK_CORO, S_SPIN, CROSS_PL,
	 2.0},
	{"coro wake, other CPU (Event)", S_EVENT_CORO, S_SPIN, CROSS_PL, 2.0},
	{"same, spin 20us (Lock)", S_LOCK_FIX, S_SPIN, CROSS_PL, 2.0},
	{"same, spin 20us (Event)", S_EVENT_FIX, S_SPIN, CROSS_PL, 2.0},
	{"same, spin 20us (Lock coro)", S_LOCK_CORO_FIX, S_SPIN, CROSS_PL,
	 2.0},
	{"same, spin 20us (Event coro)", S_EVENT_CORO_FIX, S_SPIN, CROSS_PL,
	 2.0},
	{"one CPU, spin auto vs off (Lock)", S_LOCK, S_LOCK_OFF, ON(PL_PINNED),
	 1.2},
	{"one CPU, spin auto vs off (Lock coro)", S_LOCK_CORO,
	 S_LOCK_CORO_OFF, ON(PL_PINNED), 1.2},
	{"one CPU, spin auto vs off (Event)", S_EVENT, S_EVENT_OFF,
	 ON(PL_PINNED), 1.2},
	{"one CPU, spin auto vs off (Event coro)", S_EVENT_CORO,
	 S_EVENT_CORO_OFF, ON(PL_PINNED), 1.2},
	{"Lock spin 20us vs raw spinlock", S_LOCK_FIX, S_SPINLOCK, CROSS_PL,
	 0},
	{"raw spinlock vs cache-line spin", S_SPINLOCK, S_SPIN, CROSS_PL, 0},
	{"Lock, both asleep vs pthread_mutex", S_LOCK_OFF, S_MUTEX, ALL_PL,
	 0},
	{"Lock, spin auto vs pthread_mutex", S_LOCK, S_MUTEX, ALL_PL, 0},
	{"Event, both asleep vs raw futex", S_EVENT_OFF, S_FUTEX, ALL_PL, 0},
	{"Event, both asleep vs sem_t", S_EVENT_OFF, S_SEMT, ALL_PL, 0},
};

static void
print_targets(void)
{
	printf("\n## Latency targets (ratio of the medians above)\n\n");
	printf("| figure | placement | aiop | baseline | baseline is | "
	       "ratio | target | verdict |\n");
	printf("|---|---|---|---|---|---|---|---|\n");
	for (size_t k = 0; k < sizeof(targets) / sizeof(targets[0]); k++)
		for (int p = 0; p < PL_N; p++)
			if (targets[k].pls & ON(p))
				print_cmp_row(&(struct cmp){
					targets[k].what, targets[k].fig,
					targets[k].base, (enum placement)p,
					targets[k].target});
}

static double
min_of(const double *src, int n)
{
	double m = NAN;

	for (int k = 0; k < n; k++)
		if (!isnan(src[k]) && (isnan(m) || src[k] < m))
			m = src[k];
	return m;
}

static void
print_uncont(const struct cfg *cfg)
{
	static const struct {
		enum uid fig, base;
		double target;
	} rows[] = {
		{U_LOCK, U_MUTEX, 1.2},
		{U_LOCK_TRY, U_MUTEX, 1.2},
		{U_SEM, U_SEMT, 0},
		{U_LOCK_CORO, U_MUTEX, 0},
	};
	double med[U_N], lo[U_N];

	for (int u = 0; u < U_N; u++) {
		med[u] = bench_median_of(ucells[u], cfg->rounds);
		lo[u] = min_of(ucells[u], cfg->rounds);
	}
	/* The verdict uses the medians, like every other figure; the
	 * minimum is shown because noise can only add to a tight loop. */
	printf("\n## Uncontended acquire+release, one process "
	       "(%ld pairs per round; ns per pair, median [min])\n\n",
	       cfg->uncont_ops);
	printf("| operation | ns/pair | baseline | ns/pair | ratio | "
	       "ratio of mins | target | verdict |\n");
	printf("|---|---|---|---|---|---|---|---|\n");
	for (size_t k = 0; k < sizeof(rows) / sizeof(rows[0]); k++) {
		enum uid f = rows[k].fig, b = rows[k].base;
		double ratio = med[f] / med[b];

		printf("| %s | %.2f [%.2f] | %s | %.2f [%.2f] | %.2fx | "
		       "%.2fx |", u_names[f], med[f], lo[f], u_names[b],
		       med[b], lo[b], ratio, lo[f] / lo[b]);
		if (rows[k].target > 0)
			printf(" <= %.1fx | %s |\n", rows[k].target,
			       verdict(ratio, rows[k].target));
		else
			printf(" - | info |\n");
	}
}

static void
print_zero(const struct zres *zr)
{
	printf("\n## Syscalls per uncontended operation (aiop_stats_get "
	       "around the loop)\n\n");
	printf("| operation | ops | futex waits | futex wakes | rings | "
	       "reads | owner probes | syscalls/op | target | verdict |\n");
	printf("|---|---|---|---|---|---|---|---|---|---|\n");
	for (int z = 0; z < Z_N; z++) {
		const struct aiop_stats *s = &zr[z].st;

		printf("| %s | %ld | %" PRIu64 " | %" PRIu64 " | %" PRIu64
		       " | %" PRIu64 " | %" PRIu64 " | %.6f | 0 | %s |\n",
		       z_names[z], zr[z].ops, s->futex_waits, s->futex_wakes,
		       s->doorbell_rings, s->doorbell_reads, s->owner_probes,
		       zr[z].per_op,
		       zr[z].err ? "ERR" : zr[z].per_op == 0 ? "PASS" : "MISS");
	}
	printf("\nThe coro row counts aiop's own calls only; the libev loop "
	       "that delivers the\ncompletions makes its own epoll_wait "
	       "calls (see docs/performance.md, strace).\n");
}

/* "About zero": a waiter may wake for its periodic recheck (design.md 5),
 * a few times a second, but must not burn a measurable share of a CPU. */
#define IDLE_TARGET_PCT 0.1

static void
print_idle(const struct bench_idle *ir)
{
	printf("\n## Idle CPU of a waiter that never gets what it waits "
	       "for\n\n");
	printf("| waiter | watched | CPU used | %% of one CPU | wake-ups/s | "
	       "target | verdict |\n");
	printf("|---|---|---|---|---|---|---|\n");
	for (int k = 0; k < I_N; k++) {
		if (ir[k].err) {
			printf("| %s | - | - | - | - | <= %.1f %% | ERR (%s) "
			       "|\n", i_names[k], IDLE_TARGET_PCT,
			       aiop_strerror(ir[k].err));
			continue;
		}
		printf("| %s | %.2f s | %.3f ms | %.4f %% | %.1f | <= %.1f %% "
		       "| %s |\n", i_names[k], ir[k].wall_s, ir[k].cpu_ms,
		       ir[k].cpu_pct, ir[k].wakes_s, IDLE_TARGET_PCT,
		       verdict(ir[k].cpu_pct, IDLE_TARGET_PCT));
	}
}

static void
print_header(const struct cfg *cfg, const struct bench_cpus *cpus)
{
	printf("# aiop sync benchmark (issue 2)\n\n");
	printf("- mode: %s, %d interleaved rounds, each figure = %" PRIu64
	       " ms warm-up + %" PRIu64 " ms timed\n",
	       cfg->quick ? "quick" : "full", cfg->rounds,
	       (uint64_t)(cfg->warm_ns / BENCH_NS_PER_MS),
	       (uint64_t)(cfg->meas_ns / BENCH_NS_PER_MS));
	bench_print_machine(cpus);
	printf("- the benchmark sets the aiop spin mode per scenario "
	       "(AIOP_SPIN is overridden)\n");
}

/* ---- main --------------------------------------------------------------- */

static int
parse_args(int argc, char **argv, struct cfg *cfg)
{
	const char *q = getenv("AIOP_BENCH_QUICK");
	int rounds = 0;

	cfg->quick = q && *q && strcmp(q, "0") != 0;
	cfg->only = NULL;
	for (int k = 1; k < argc; k++) {
		if (!strcmp(argv[k], "--help")) {
			return 1;
		} else if (!strcmp(argv[k], "--quick")) {
			cfg->quick = true;
		} else if (!strcmp(argv[k], "--only") && k + 1 < argc) {
			cfg->only = argv[++k];
		} else if (!strcmp(argv[k], "--rounds") && k + 1 < argc) {
			rounds = atoi(argv[++k]);
			if (rounds < 1 || rounds > BENCH_MAX_ROUNDS)
				return -EINVAL;
		} else {
			return -EINVAL;
		}
	}
	if (cfg->quick) {
		cfg->rounds = 3;
		cfg->warm_ns = 10 * BENCH_NS_PER_MS;
		cfg->meas_ns = 30 * BENCH_NS_PER_MS;
		cfg->idle_ns = 500 * BENCH_NS_PER_MS;
		cfg->uncont_ops = 300000;
	} else {
		cfg->rounds = 7;
		cfg->warm_ns = 30 * BENCH_NS_PER_MS;
		cfg->meas_ns = 120 * BENCH_NS_PER_MS;
		cfg->idle_ns = 2000 * BENCH_NS_PER_MS;
		cfg->uncont_ops = 2000000;
	}
	if (rounds)
		cfg->rounds = rounds;
	return 0;
}

int
main(int argc, char **argv)
{
	struct cfg cfg;
	struct bench_cpus cpus;
	struct shared *sh;
	struct uobjs u;
	struct zres zr[Z_N];
	struct bench_idle ir[I_N];
	uint64_t t0 = bench_now();
	bool do_unc, do_zero, do_idle;
	int rc;

	rc = parse_args(argc, argv, &cfg);
	if (rc != 0) {
		fprintf(rc < 0 ? stderr : stdout,
			"usage: %s [--quick] [--rounds 1..%d] [--only TEXT]\n"
			"  --quick: 3 short rounds, under 20 s "
			"(env AIOP_BENCH_QUICK=1 too)\n"
			"  --only: only the latency scenarios whose name "
			"contains TEXT,\n"
			"          or the sections 'uncontended', 'syscalls', "
			"'idle'\n"
			"          (several: --only 'floor,20us,idle')\n",
			argv[0], BENCH_MAX_ROUNDS);
		return rc < 0 ? 2 : 0;
	}
	if ((rc = bench_cpus_init(&cpus)) < 0 ||
	    (rc = bench_alarm_init()) < 0) {
		fprintf(stderr, "sync_bench: %s\n", strerror(-rc));
		return 1;
	}
	have_split = cpus.b >= 0;
	do_unc = bench_selected(cfg.only, "uncontended");
	do_zero = bench_selected(cfg.only, "syscalls");
	do_idle = bench_selected(cfg.only, "idle");
	sh = bench_shm_new(sizeof(*sh));
	if (!sh) {
		fprintf(stderr, "sync_bench: mmap: %s\n", strerror(errno));
		return 1;
	}
	/* the domain (doorbells) must exist before the first fork */
	if ((rc = uobjs_open(&u, sh)) < 0) {
		fprintf(stderr, "sync_bench: set-up: %s\n", aiop_strerror(rc));
		uobjs_close(&u);
		bench_shm_free(sh, sizeof(*sh));
		return 1;
	}
	print_header(&cfg, &cpus);
	bench_print_load("at start");

	for (int rd = 0; rd < cfg.rounds; rd++) {
		fprintf(stderr, "sync_bench: round %d/%d\n", rd + 1,
			cfg.rounds);
		/* rotate the order so no scenario always runs first or
		 * right after the same neighbour */
		for (int k = 0; k < S_N * PL_N; k++) {
			int idx = (k + rd * 7) % (S_N * PL_N);
			enum sid s = (enum sid)(idx % S_N);
			enum placement p = (enum placement)(idx / S_N);
			struct cell *c = &cells[s][p];
			struct result res;

			if (p == PL_SPLIT && !have_split)
				continue;
			if (!bench_selected(cfg.only, scens[s].name))
				continue;
			if (measure(&cfg, sh, &cpus, s, p, &res) < 0) {
				c->nerr++;
				c->err = res.err;
				fprintf(stderr, "sync_bench: %s (%s): %s\n",
					scens[s].name, bench_pl_names[p],
					aiop_strerror(res.err));
				continue;
			}
			c->v[c->n] = res.ns_rt;
			c->sc[c->n] = res.sc_rt;
			c->sp[c->n] = res.spin_rt;
			c->n++;
		}
		for (int k = 0; k < U_N && do_unc; k++) {
			enum uid id = (enum uid)((k + rd) % U_N);

			ucells[id][rd] = uncont_once(&u, id, cfg.uncont_ops);
		}
	}
	fprintf(stderr, "sync_bench: syscall count and idle CPU\n");
	if (do_zero)
		zero_syscalls(&u, cfg.uncont_ops / 4, zr);
	if (do_idle)
		idle_cpu(&cfg, sh, ir);

	bench_print_load("at end");
	if (any_ran()) {
		print_latency(&cfg);
		print_targets();
	}
	if (do_unc)
		print_uncont(&cfg);
	if (do_zero)
		print_zero(zr);
	if (do_idle)
		print_idle(ir);
	printf("\ntotal time %.1f s\n", (double)(bench_now() - t0) / 1e9);

	uobjs_close(&u);
	bench_shm_free(sh, sizeof(*sh));
	return 0;
}
