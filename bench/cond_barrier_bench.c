/* SPDX-License-Identifier: MIT */
/*
 * Benchmark of the multi-phase primitives: Barrier cycle time for N
 * processes, and Condition notify -> wake latency between two processes,
 * next to the process-shared pthread objects measured in the same run.
 *
 * Same method as sync_bench.c: interleaved rounds (every round measures
 * every scenario once, in a rotated order), medians of the rounds, three
 * placements, every wait bounded, every child reaped. Figures are printed,
 * never asserted; there are no numeric targets for these two primitives.
 *
 * Usage: cond_barrier_bench [--quick] [--rounds N] [--only WORDS]
 * docs/performance.md explains the method and shows a run.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aiop.h>
#include <aiop/ev.h>

#include "bench_harness.h"

#define OP_TIMEOUT_NS ((int64_t)(10 * BENCH_NS_PER_S))
#define GRACE_NS (10 * BENCH_NS_PER_S)
#define MAX_PARTIES 8
#define FIX_SPIN_NS 20000

/* ---- configuration ------------------------------------------------------ */

struct cfg {
	int rounds;
	uint64_t warm_ns; /* untimed cycles before each figure */
	uint64_t meas_ns; /* timed part of each figure */
	bool quick;
	const char *only;
};

/* ---- the scenarios ------------------------------------------------------ */

enum impl {
	/* Barrier: N parties, one process each */
	I_PBARRIER,  /* pthread_barrier_t, PTHREAD_PROCESS_SHARED */
	I_BARRIER,   /* aiop_barrier_wait in every party */
	I_BARRIER_HC, /* half of the parties use aiop_barrier_coro_wait */
	/* Condition: a ping-pong between the parent and one child */
	I_PCOND,     /* pthread_mutex + pthread_cond_t, both pshared */
	I_EFD_EV,    /* eventfd, child in an ev_io loop (kernel baseline) */
	I_COND,      /* aiop_cond over an aiop Lock, both blocking */
	I_COND_CORO, /* the same; the child uses aiop_cond_coro_wait */
	I_COND_RL,   /* the same over an aiop RLock (Python's default) */
};

struct scen {
	char name[64];
	enum impl impl;
	int parties; /* 2 for a Condition */
	int spin;    /* aiop spin mode, or -1 for a baseline */
	int64_t spin_ns;
	int base;    /* scenario of the same run the ratio is taken to */
	int base2;   /* second baseline (coro rows: eventfd + ev_io), or -1 */
};

#define MAX_SCEN 32
static struct scen scens[MAX_SCEN];
static int nscen;

static int
add_scen(const char *name, enum impl impl, int parties, int spin,
	 int64_t spin_ns, int base, int base2)
{
	struct scen *s = &scens[nscen];

	snprintf(s->name, sizeof(s->name), "%s", name);
	s->impl = impl;
	s->parties = parties;
	s->spin = spin;
	s->spin_ns = spin_ns;
	s->base = base;
	s->base2 = base2;
	return nscen++;
}

static bool
is_barrier(const struct scen *s)
{
	return s->impl <= I_BARRIER_HC;
}

static void
make_scens(void)
{
	static const int ns[] = {2, 4, 8};
	char nm[64];
	int pc, efd;

	for (size_t k = 0; k < sizeof(ns) / sizeof(ns[0]); k++) {
		int n = ns[k], pb;

		snprintf(nm, sizeof(nm), "pthread_barrier pshared, N=%d", n);
		pb = add_scen(nm, I_PBARRIER, n, -1, 0, -1, -1);
		snprintf(nm, sizeof(nm), "aiop Barrier blocking, spin auto, "
			 "N=%d", n);
		add_scen(nm, I_BARRIER, n, AIOP_SPIN_AUTO, 0, pb, -1);
		snprintf(nm, sizeof(nm), "aiop Barrier half coro, spin auto, "
			 "N=%d", n);
		add_scen(nm, I_BARRIER_HC, n, AIOP_SPIN_AUTO, 0, pb, -1);
		snprintf(nm, sizeof(nm), "aiop Barrier blocking, spin off, "
			 "N=%d", n);
		add_scen(nm, I_BARRIER, n, AIOP_SPIN_OFF, 0, pb, -1);
		snprintf(nm, sizeof(nm), "aiop Barrier half coro, spin off, "
			 "N=%d", n);
		add_scen(nm, I_BARRIER_HC, n, AIOP_SPIN_OFF, 0, pb, -1);
	}
	pc = add_scen("pthread_cond + mutex pshared", I_PCOND, 2, -1, 0, -1,
		      -1);
	efd = add_scen("eventfd, child in ev_io loop", I_EFD_EV, 2, -1, 0, -1,
		       -1);
	add_scen("aiop Condition blocking, spin auto", I_COND, 2,
		 AIOP_SPIN_AUTO, 0, pc, -1);
	add_scen("aiop Condition coro, spin auto", I_COND_CORO, 2,
		 AIOP_SPIN_AUTO, 0, pc, efd);
	add_scen("aiop Condition blocking, spin off", I_COND, 2,
		 AIOP_SPIN_OFF, 0, pc, -1);
	add_scen("aiop Condition coro, spin off", I_COND_CORO, 2,
		 AIOP_SPIN_OFF, 0, pc, efd);
	add_scen("aiop Condition blocking, spin 20us", I_COND, 2,
		 AIOP_SPIN_FIXED, FIX_SPIN_NS, pc, -1);
	add_scen("aiop Condition coro, spin 20us", I_COND_CORO, 2,
		 AIOP_SPIN_FIXED, FIX_SPIN_NS, pc, efd);
	add_scen("aiop Condition (RLock) blocking, spin auto", I_COND_RL, 2,
		 AIOP_SPIN_AUTO, 0, pc, -1);
}

/* ---- state shared by the processes of a measurement --------------------- */

struct shared {
	/* 0, or the number of cycles after which every party stops */
	_Alignas(64) _Atomic uint64_t stop;
	_Atomic uint32_t ready;
	_Atomic int fail;         /* first error of any child */
	_Atomic uint64_t sc_sum;  /* aiop syscalls, every process */
	_Atomic uint64_t sp_sum;  /* aiop successful spins, every process */
	_Atomic uint64_t sf_sum;  /* aiop failed spins, every process */
	double ns_cycle;          /* written by the timing party */
	uint64_t cycles;
	_Alignas(64) _Atomic uint32_t turn; /* Condition: whose turn */
	_Alignas(64) pthread_mutex_t mtx;
	_Alignas(64) pthread_cond_t cv[2]; /* indexed by the waiter */
	_Alignas(64) pthread_barrier_t pb;
};

enum { T_PARENT = 0, T_CHILD = 1 };

/* What one process of a measurement works with (copied through fork). */
struct run {
	const struct cfg *cfg;
	const struct scen *s;
	struct shared *sh;
	struct aiop_barrier *bar;
	struct aiop_lock *lk;
	struct aiop_rlock *rl;
	struct aiop_cond *cond[2]; /* over one lock; indexed by the waiter */
	int efd[2];
	bool pb_init, pc_init;
	int party;             /* barrier: 0 is the timing party */
	uint64_t deadline;     /* absolute bound of the measurement */
	struct timespec dl_ts; /* the same, for the pthread timed waits */
	struct bench_loop lp;  /* loop side */
	uint64_t n;            /* cycles completed */
};

static bool
stop_now(struct run *r, uint64_t n)
{
	uint64_t s = atomic_load(&r->sh->stop);

	return s != 0 && n >= s;
}

/* Add this process's aiop counters to the shared sums. */
static void
stats_publish(struct shared *sh)
{
	struct aiop_stats st;

	if (aiop_stats_get(&st) < 0)
		return;
	atomic_fetch_add(&sh->sc_sum, bench_stats_syscalls(&st));
	atomic_fetch_add(&sh->sp_sum, st.spins_ok);
	atomic_fetch_add(&sh->sf_sum, st.spins_failed);
}

/*
 * The timing loop of sync_bench.c: the clock is read every `stride`
 * steps (widened until a stride lasts 5 us). Before the last step it
 * stores stop = number of steps, so every peer leaves after that step.
 */
static int
drive(struct run *r, int (*step)(struct run *r), double *ns_per,
      uint64_t *total)
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
				atomic_store(&r->sh->stop, i + 1);
				last = true;
			}
		}
		if ((rc = step(r)) < 0)
			return rc;
		i++;
		if (last)
			break;
	}
	t = bench_now();
	*ns_per = (double)(t - t_start) / (double)(i - i_start);
	*total = i;
	return 0;
}

/* ---- Barrier ------------------------------------------------------------ */

/* In the half-coro scenario parties 1, 2, 5, 6 run a libev loop: half of
 * them, and with the split placement (even parties on one CPU, odd on the
 * other) each CPU gets as many coro parties as blocking ones. */
static bool
party_is_coro(const struct scen *s, int k)
{
	return s->impl == I_BARRIER_HC && ((k + 1) / 2) % 2 == 1;
}

static int
bar_step(struct run *r)
{
	int rc;

	if (r->s->impl == I_PBARRIER) {
		/* no timed form exists: the supervising parent kills a
		 * party that outlives the measurement's deadline */
		rc = pthread_barrier_wait(&r->sh->pb);
		return rc == 0 || rc == PTHREAD_BARRIER_SERIAL_THREAD ? 0
								       : -rc;
	}
	rc = aiop_barrier_wait(r->bar, OP_TIMEOUT_NS);
	return rc < 0 ? rc : 0;
}

static void
on_bar(struct ev_loop *loop, struct aiop_op *op, int res)
{
	struct run *r = op->data;
	int rc;

	if (res < 0) {
		bench_loop_fail(&r->lp, res);
		return;
	}
	if (stop_now(r, ++r->n)) {
		bench_loop_done(&r->lp);
		return;
	}
	rc = aiop_barrier_coro_wait(loop, op, r->bar, OP_TIMEOUT_NS, on_bar);
	if (rc < 0)
		bench_loop_fail(&r->lp, rc);
}

static int
party_main(struct run *r)
{
	int rc;

	if (r->party == 0) {
		double ns;
		uint64_t n;

		rc = bench_wait_ready(&r->sh->ready,
				      (uint32_t)r->s->parties - 1,
				      5 * BENCH_NS_PER_S);
		if (rc < 0)
			return rc;
		rc = drive(r, bar_step, &ns, &n);
		if (rc == 0) {
			r->sh->ns_cycle = ns;
			r->sh->cycles = n;
		}
		return rc;
	}
	if (party_is_coro(r->s, r->party)) {
		if ((rc = bench_loop_open(&r->lp, r->deadline, r)) < 0)
			return rc;
		rc = aiop_barrier_coro_wait(r->lp.loop, &r->lp.op, r->bar,
					    OP_TIMEOUT_NS, on_bar);
		if (rc < 0)
			bench_loop_fail(&r->lp, rc);
		atomic_fetch_add(&r->sh->ready, 1);
		return bench_loop_run_close(&r->lp);
	}
	atomic_fetch_add(&r->sh->ready, 1);
	for (uint64_t n = 1;; n++) {
		if ((rc = bar_step(r)) < 0)
			return rc;
		if (stop_now(r, n))
			return 0;
	}
}

/* ---- Condition ping-pong ------------------------------------------------ */

/*
 * Each side holds the lock except inside its wait. One half of a round
 * trip: set the flag to the peer's turn, notify the peer, wait until the
 * flag says it is our turn again. The peer's wait returns once it got the
 * signal *and* re-took the lock, which the notifier gives up by entering
 * its own wait: that is the notify -> wake path users pay.
 *
 * Two conditions over the one lock, one per waiting side (cond[me]), for
 * aiop and pthread alike. With a single aiop condition the notifier, which
 * waits right after its notify, takes its own signal back (aiop_cond_notify
 * does not wait for the woken waiter to consume it) and the peer sleeps
 * until its timeout: see docs/performance.md.
 */
static int
c_lock(struct run *r)
{
	if (r->s->impl == I_PCOND)
		return -pthread_mutex_clocklock(&r->sh->mtx, CLOCK_MONOTONIC,
						&r->dl_ts);
	return aiop_cond_acquire(r->cond[0], OP_TIMEOUT_NS);
}

static int
c_unlock(struct run *r)
{
	if (r->s->impl == I_PCOND)
		return -pthread_mutex_unlock(&r->sh->mtx);
	return aiop_cond_release(r->cond[0]);
}

/* Notify the side `to` (the waiter of cond[to]). */
static int
c_notify(struct run *r, uint32_t to)
{
	int rc;

	if (r->s->impl == I_PCOND)
		return -pthread_cond_signal(&r->sh->cv[to]);
	rc = aiop_cond_notify(r->cond[to], 1);
	return rc < 0 ? rc : 0;
}

static int
c_wait(struct run *r, uint32_t me)
{
	if (r->s->impl == I_PCOND)
		return -pthread_cond_clockwait(&r->sh->cv[me], &r->sh->mtx,
					       CLOCK_MONOTONIC, &r->dl_ts);
	return aiop_cond_wait(r->cond[me], OP_TIMEOUT_NS);
}

/* One half-trip of either side: pass the turn, wait for it back. */
static int
c_pass(struct run *r, uint32_t me)
{
	int rc;

	atomic_store_explicit(&r->sh->turn, !me, memory_order_relaxed);
	if ((rc = c_notify(r, !me)) < 0)
		return rc;
	while (atomic_load_explicit(&r->sh->turn, memory_order_relaxed) !=
	       me)
		if ((rc = c_wait(r, me)) < 0)
			return rc;
	return 0;
}

static int
rt_cond(struct run *r)
{
	if (r->s->impl == I_EFD_EV) {
		uint64_t v;
		int rc = bench_efd_put(r->efd[0]);

		if (rc < 0)
			return rc;
		/* a stuck read ends with EINTR from the alarm */
		return read(r->efd[1], &v, sizeof(v)) == sizeof(v) ? 0
								  : -errno;
	}
	return c_pass(r, T_PARENT);
}

static int
child_cond(struct run *r)
{
	int rc;

	if ((rc = c_lock(r)) < 0)
		return rc;
	atomic_fetch_add(&r->sh->ready, 1);
	for (uint64_t n = 1;; n++) {
		while (atomic_load_explicit(&r->sh->turn,
					    memory_order_relaxed) != T_CHILD)
			if ((rc = c_wait(r, T_CHILD)) < 0)
				return rc;
		if (stop_now(r, n)) {
			atomic_store_explicit(&r->sh->turn, T_PARENT,
					      memory_order_relaxed);
			if ((rc = c_notify(r, T_PARENT)) < 0)
				return rc;
			return c_unlock(r);
		}
		atomic_store_explicit(&r->sh->turn, T_PARENT,
				      memory_order_relaxed);
		if ((rc = c_notify(r, T_PARENT)) < 0)
			return rc;
	}
}

static void on_cwait(struct ev_loop *loop, struct aiop_op *op, int res);

/* The loop side holds the lock; take a turn if it is ours, then wait. */
static void
cond_coro_step(struct run *r)
{
	int rc;

	if (atomic_load_explicit(&r->sh->turn, memory_order_relaxed) ==
	    T_CHILD) {
		bool stop = stop_now(r, ++r->n);

		atomic_store_explicit(&r->sh->turn, T_PARENT,
				      memory_order_relaxed);
		if ((rc = c_notify(r, T_PARENT)) < 0) {
			bench_loop_fail(&r->lp, rc);
			return;
		}
		if (stop) {
			if ((rc = aiop_cond_release(r->cond[0])) < 0) {
				bench_loop_fail(&r->lp, rc);
				return;
			}
			bench_loop_done(&r->lp);
			return;
		}
	}
	rc = aiop_cond_coro_wait(r->lp.loop, &r->lp.op, r->cond[T_CHILD],
				 OP_TIMEOUT_NS, on_cwait);
	if (rc < 0)
		bench_loop_fail(&r->lp, rc);
}

static void
on_cwait(struct ev_loop *loop, struct aiop_op *op, int res)
{
	struct run *r = op->data;

	(void)loop;
	if (res < 0)
		bench_loop_fail(&r->lp, res);
	else
		cond_coro_step(r);
}

static int
child_cond_coro(struct run *r)
{
	int rc = bench_loop_open(&r->lp, r->deadline, r);

	if (rc < 0)
		return rc;
	/* the coro acquire completes with the lock held: reuse on_cwait */
	rc = aiop_cond_coro_acquire(r->lp.loop, &r->lp.op, r->cond[T_CHILD],
				    OP_TIMEOUT_NS, on_cwait);
	if (rc < 0)
		bench_loop_fail(&r->lp, rc);
	atomic_fetch_add(&r->sh->ready, 1);
	return bench_loop_run_close(&r->lp);
}

static void
on_efd(struct ev_loop *loop, ev_io *w, int revents)
{
	struct run *r = w->data;
	uint64_t v;
	int rc;

	(void)loop;
	(void)revents;
	if (read(r->efd[0], &v, sizeof(v)) != sizeof(v)) {
		if (errno != EAGAIN)
			bench_loop_fail(&r->lp, -errno);
		return;
	}
	if ((rc = bench_efd_put(r->efd[1])) < 0) {
		bench_loop_fail(&r->lp, rc);
	} else if (stop_now(r, ++r->n)) {
		bench_loop_done(&r->lp);
	}
}

static int
child_efd_ev(struct run *r)
{
	int rc = bench_loop_open(&r->lp, r->deadline, r);

	if (rc < 0)
		return rc;
	bench_loop_watch(&r->lp, on_efd, r->efd[0], r);
	atomic_fetch_add(&r->sh->ready, 1);
	return bench_loop_run_close(&r->lp);
}

/* ---- set-up and teardown ------------------------------------------------ */

static int
run_setup(struct run *r)
{
	const struct scen *s = r->s;
	int rc = 0;

	switch (s->impl) {
	case I_PBARRIER: {
		pthread_barrierattr_t a;

		pthread_barrierattr_init(&a);
		pthread_barrierattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
		rc = -pthread_barrier_init(&r->sh->pb, &a,
					   (unsigned)s->parties);
		pthread_barrierattr_destroy(&a);
		r->pb_init = rc == 0;
		return rc;
	}
	case I_BARRIER:
	case I_BARRIER_HC:
		return aiop_barrier_new(&r->bar, (unsigned)s->parties, NULL,
					NULL);
	case I_PCOND: {
		pthread_mutexattr_t ma;
		pthread_condattr_t ca;

		pthread_mutexattr_init(&ma);
		pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
		pthread_condattr_init(&ca);
		pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
		rc = -pthread_mutex_init(&r->sh->mtx, &ma);
		if (rc == 0 && (rc = -pthread_cond_init(&r->sh->cv[0], &ca)) <
				       0)
			pthread_mutex_destroy(&r->sh->mtx);
		if (rc == 0 && (rc = -pthread_cond_init(&r->sh->cv[1], &ca)) <
				       0) {
			pthread_cond_destroy(&r->sh->cv[0]);
			pthread_mutex_destroy(&r->sh->mtx);
		}
		pthread_condattr_destroy(&ca);
		pthread_mutexattr_destroy(&ma);
		r->pc_init = rc == 0;
		return rc;
	}
	case I_EFD_EV:
		return bench_efd_pair(r->efd, true);
	case I_COND:
	case I_COND_CORO:
		if ((rc = aiop_lock_new(&r->lk)) < 0)
			return rc;
		for (int k = 0; k < 2 && rc == 0; k++)
			rc = aiop_cond_new_lock(&r->cond[k], r->lk);
		return rc;
	case I_COND_RL:
		if ((rc = aiop_rlock_new(&r->rl)) < 0)
			return rc;
		for (int k = 0; k < 2 && rc == 0; k++)
			rc = aiop_cond_new_rlock(&r->cond[k], r->rl);
		return rc;
	}
	return -EINVAL;
}

/* Process-local handles: every process drops its own. */
static void
run_drop(struct run *r)
{
	(void)aiop_barrier_free(r->bar);
	r->bar = NULL;
	for (int k = 0; k < 2; k++) { /* before the lock they use */
		(void)aiop_cond_free(r->cond[k]);
		r->cond[k] = NULL;
	}
	(void)aiop_lock_free(r->lk);
	r->lk = NULL;
	(void)aiop_rlock_free(r->rl);
	r->rl = NULL;
	for (int k = 0; k < 2; k++) {
		if (r->efd[k] >= 0)
			close(r->efd[k]);
		r->efd[k] = -1;
	}
}

/*
 * The pthread objects are destroyed once, by the parent, after every
 * child was reaped, and only if the measurement succeeded: glibc's
 * pthread_barrier_destroy waits for parties still inside a wait, which a
 * killed party never leaves. The next set-up initialises them again.
 */
static void
run_teardown(struct run *r, bool clean)
{
	run_drop(r);
	if (r->pb_init && clean)
		pthread_barrier_destroy(&r->sh->pb);
	if (r->pc_init && clean) {
		pthread_cond_destroy(&r->sh->cv[0]);
		pthread_cond_destroy(&r->sh->cv[1]);
		pthread_mutex_destroy(&r->sh->mtx);
	}
	r->pb_init = r->pc_init = false;
}

/* ---- one measurement ---------------------------------------------------- */

struct result {
	double ns;      /* per cycle (Barrier) or round trip (Condition) */
	double sc;      /* aiop syscalls per cycle, every process */
	double sp;      /* successful spins per cycle, every process */
	double sf;      /* failed spins per cycle, every process */
	int err;
};

static _Noreturn void
child_main(struct run *r, enum placement pl, const struct bench_cpus *cpus)
{
	int rc;

	rc = bench_place(cpus, pl, r->party);
	alarm(bench_alarm_secs(r->deadline));
	aiop_stats_reset();
	if (rc == 0) {
		if (is_barrier(r->s))
			rc = party_main(r);
		else if (r->s->impl == I_EFD_EV)
			rc = child_efd_ev(r);
		else if (r->s->impl == I_COND_CORO)
			rc = child_cond_coro(r);
		else
			rc = child_cond(r);
	}
	stats_publish(r->sh);
	if (rc < 0) {
		int z = 0;

		atomic_compare_exchange_strong(&r->sh->fail, &z, rc);
	}
	run_drop(r);
	_exit(rc < 0 ? 1 : 0);
}

/* The bound on reaping: the measurement's deadline, then a kill. */
static int
reap_ms(const struct run *r)
{
	uint64_t t = bench_now();

	return t >= r->deadline ? 100
				: (int)((r->deadline - t) / BENCH_NS_PER_MS) +
					  100;
}

/* The Condition and eventfd ping-pongs: the parent times, as in
 * sync_bench.c. */
static int
measure_pp(struct run *r, pid_t pid, struct result *out)
{
	uint64_t n = 0;
	bool locked = false;
	int rc;

	alarm(bench_alarm_secs(r->deadline));
	rc = bench_wait_ready(&r->sh->ready, 1, 5 * BENCH_NS_PER_S);
	if (rc == 0 && r->s->impl != I_EFD_EV) {
		rc = c_lock(r);
		locked = rc == 0;
	}
	if (rc == 0) {
		aiop_stats_reset();
		rc = drive(r, rt_cond, &out->ns, &n);
		stats_publish(r->sh);
	}
	if (locked) {
		int u = c_unlock(r);

		if (rc == 0)
			rc = u;
	}
	alarm(0);
	if (rc < 0)
		kill(pid, SIGKILL);
	r->sh->cycles = n;
	return rc;
}

static int
measure(const struct cfg *cfg, struct shared *sh,
	const struct bench_cpus *cpus, int id, enum placement pl,
	struct result *out)
{
	const struct scen *s = &scens[id];
	struct run r = {.cfg = cfg, .s = s, .sh = sh, .efd = {-1, -1}};
	pid_t pid[MAX_PARTIES];
	int rc, started = 0, st;
	bool pp = !is_barrier(s);

	out->ns = out->sc = out->sp = out->sf = NAN;
	atomic_store(&sh->stop, 0);
	atomic_store(&sh->ready, 0);
	atomic_store(&sh->fail, 0);
	atomic_store(&sh->sc_sum, 0);
	atomic_store(&sh->sp_sum, 0);
	atomic_store(&sh->sf_sum, 0);
	atomic_store(&sh->turn, T_PARENT);
	sh->ns_cycle = NAN;
	sh->cycles = 0;
	r.deadline = bench_now() + cfg->warm_ns + cfg->meas_ns + GRACE_NS;
	bench_ts(r.deadline, &r.dl_ts);

	rc = run_setup(&r);
	if (rc < 0)
		goto out;
	bench_spin_set(s->spin, s->spin_ns);
	/* Barrier: the parent only supervises; every party is a child
	 * (party 0 times). Condition: the parent is one side and times. */
	rc = pp ? bench_place(cpus, pl, 0) : bench_unpin(cpus);
	if (rc < 0)
		goto out;
	for (int k = pp ? 1 : 0; k < s->parties; k++) {
		pid_t p = bench_fork();

		if (p == 0) {
			r.party = k;
			child_main(&r, pl, cpus);
		}
		if (p < 0) {
			rc = -errno;
			break;
		}
		pid[started++] = p;
	}
	if (rc == 0 && pp)
		rc = measure_pp(&r, pid[0], out);
	if (rc < 0)
		for (int k = 0; k < started; k++)
			kill(pid[k], SIGKILL);
	/* the timing party first: once it is gone, the others are too */
	for (int k = 0; k < started; k++) {
		st = bench_reap(pid[k], reap_ms(&r));
		if (st != 0 && rc == 0) {
			rc = atomic_load(&sh->fail);
			if (rc == 0)
				rc = st < 0 ? st : -ECHILD;
			for (int j = k + 1; j < started; j++)
				kill(pid[j], SIGKILL);
		}
	}
	if (rc == 0 && !pp)
		out->ns = sh->ns_cycle;
	if (rc == 0 && s->spin >= 0 && sh->cycles) {
		out->sc = (double)atomic_load(&sh->sc_sum) /
			  (double)sh->cycles;
		out->sp = (double)atomic_load(&sh->sp_sum) /
			  (double)sh->cycles;
		out->sf = (double)atomic_load(&sh->sf_sum) /
			  (double)sh->cycles;
	}
out:
	if (rc < 0)
		out->ns = NAN;
	out->err = rc;
	run_teardown(&r, rc == 0);
	aiop_spin_set(AIOP_SPIN_AUTO, 0);
	bench_unpin(cpus);
	return rc;
}

/* ---- report ------------------------------------------------------------- */

struct cell {
	double v[BENCH_MAX_ROUNDS], sc[BENCH_MAX_ROUNDS];
	double sp[BENCH_MAX_ROUNDS], sf[BENCH_MAX_ROUNDS];
	int n, nerr, err;
};

static struct cell cells[MAX_SCEN][PL_N];
static bool have_split;

static bool
ran(int s)
{
	for (int p = 0; p < PL_N; p++)
		if (cells[s][p].n || cells[s][p].nerr)
			return true;
	return false;
}

static bool
shown(int s, bool barrier)
{
	return is_barrier(&scens[s]) == barrier && ran(s);
}

static void
print_figures(bool barrier)
{
	const char *unit = barrier ? "cycle" : "round trip";

	printf("| scenario | unpinned | split | pinned |\n");
	printf("|---|---|---|---|\n");
	for (int s = 0; s < nscen; s++) {
		if (!shown(s, barrier))
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
	printf("\naiop syscalls per %s, every process (futex waits + wakes "
	       "+ doorbell rings +\nreads + owner probes, from "
	       "aiop_stats_get, warm-up included); in brackets the\n"
	       "successful / failed spins per %s:\n\n", unit, unit);
	printf("| scenario | unpinned | split | pinned |\n");
	printf("|---|---|---|---|\n");
	for (int s = 0; s < nscen; s++) {
		if (scens[s].spin < 0 || !shown(s, barrier))
			continue;
		printf("| %s |", scens[s].name);
		for (int p = 0; p < PL_N; p++) {
			const struct cell *c = &cells[s][p];

			if (!c->n) {
				printf(" n/a |");
				continue;
			}
			printf(" %.2f [%.2f / %.2f] |",
			       bench_median_of(c->sc, c->n),
			       bench_median_of(c->sp, c->n),
			       bench_median_of(c->sf, c->n));
		}
		printf("\n");
	}
}

static double
cell_med(int s, int p)
{
	return bench_median_of(cells[s][p].v, cells[s][p].n);
}

static void
print_ratio_row(const char *what, int fig, int base, int p)
{
	char f[32], b[32];
	double vf = cell_med(fig, p), vb = cell_med(base, p);

	bench_fmt_time(f, sizeof(f), vf);
	bench_fmt_time(b, sizeof(b), vb);
	printf("| %s | %s | %s | %s | %s | %.2fx |\n", what,
	       bench_pl_names[p], f, b, scens[base].name, vf / vb);
}

static void
print_ratios(bool barrier)
{
	printf("| figure | placement | aiop | baseline | baseline is | "
	       "ratio |\n");
	printf("|---|---|---|---|---|---|\n");
	for (int s = 0; s < nscen; s++) {
		const struct scen *sc = &scens[s];

		if (sc->base < 0 || !shown(s, barrier) || !ran(sc->base))
			continue;
		for (int p = 0; p < PL_N; p++) {
			if (p == PL_SPLIT && !have_split)
				continue;
			print_ratio_row(sc->name, s, sc->base, p);
			if (sc->base2 >= 0 && ran(sc->base2))
				print_ratio_row(sc->name, s, sc->base2, p);
		}
	}
}

static void
print_report(const struct cfg *cfg)
{
	bool any_b = false, any_c = false;

	for (int s = 0; s < nscen; s++) {
		any_b |= shown(s, true);
		any_c |= shown(s, false);
	}
	if (any_b) {
		printf("\n## Barrier cycle time, N processes (ns per cycle, "
		       "median of %d rounds, [min - max])\n\n", cfg->rounds);
		printf("One cycle = every party arrives and is released once. "
		       "Each party is a process;\nsplit = parties "
		       "alternate between two CPUs; pinned = all on one CPU.\n"
		       "Half coro: parties 1, 2, 5, 6 wait with "
		       "aiop_barrier_coro_wait in a libev loop.\n\n");
		print_figures(true);
		printf("\n## Barrier: aiop vs pthread_barrier (ratio of the "
		       "medians above; no target)\n\n");
		print_ratios(true);
	}
	if (any_c) {
		printf("\n## Condition notify -> wake round trip, two "
		       "processes (median of %d rounds, [min - max])\n\n",
		       cfg->rounds);
		printf("One round trip = two notify -> wake hand-offs: each "
		       "side sets the flag for the\nother, notifies and waits "
		       "(releasing the lock) until the flag comes back.\nThe "
		       "coro rows: the child waits with aiop_cond_coro_wait in "
		       "a libev loop.\n\n");
		print_figures(false);
		printf("\n## Condition: aiop vs pthread_cond (ratio of the "
		       "medians above; no target)\n\n");
		print_ratios(false);
	}
}

static void
print_header(const struct cfg *cfg, const struct bench_cpus *cpus)
{
	printf("# aiop Condition and Barrier benchmark\n\n");
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
	cfg->rounds = cfg->quick ? 3 : 7;
	cfg->warm_ns = (cfg->quick ? 10 : 30) * BENCH_NS_PER_MS;
	cfg->meas_ns = (cfg->quick ? 30 : 120) * BENCH_NS_PER_MS;
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
	struct aiop_lock *keep = NULL;
	uint64_t t0 = bench_now();
	int rc, total;

	rc = parse_args(argc, argv, &cfg);
	if (rc != 0) {
		fprintf(rc < 0 ? stderr : stdout,
			"usage: %s [--quick] [--rounds 1..%d] [--only TEXT]\n"
			"  --quick: 3 short rounds, under 20 s "
			"(env AIOP_BENCH_QUICK=1 too)\n"
			"  --only: only the scenarios whose name contains "
			"TEXT\n"
			"          (several: --only 'N=2,Condition')\n",
			argv[0], BENCH_MAX_ROUNDS);
		return rc < 0 ? 2 : 0;
	}
	if ((rc = bench_cpus_init(&cpus)) < 0 ||
	    (rc = bench_alarm_init()) < 0) {
		fprintf(stderr, "cond_barrier_bench: %s\n", strerror(-rc));
		return 1;
	}
	have_split = cpus.b >= 0;
	make_scens();
	sh = bench_shm_new(sizeof(*sh));
	if (!sh) {
		fprintf(stderr, "cond_barrier_bench: mmap: %s\n",
			strerror(errno));
		return 1;
	}
	/* the domain (doorbells) must exist before the first fork */
	if ((rc = aiop_lock_new(&keep)) < 0) {
		fprintf(stderr, "cond_barrier_bench: set-up: %s\n",
			aiop_strerror(rc));
		bench_shm_free(sh, sizeof(*sh));
		return 1;
	}
	print_header(&cfg, &cpus);
	bench_print_load("at start");

	total = nscen * PL_N;
	for (int rd = 0; rd < cfg.rounds; rd++) {
		fprintf(stderr, "cond_barrier_bench: round %d/%d\n", rd + 1,
			cfg.rounds);
		for (int k = 0; k < total; k++) {
			int idx = (k + rd * 7) % total;
			int s = idx % nscen;
			enum placement p = (enum placement)(idx / nscen);
			struct cell *c = &cells[s][p];
			struct result res;

			if (p == PL_SPLIT && !have_split)
				continue;
			if (!bench_selected(cfg.only, scens[s].name))
				continue;
			if (measure(&cfg, sh, &cpus, s, p, &res) < 0) {
				c->nerr++;
				c->err = res.err;
				fprintf(stderr, "cond_barrier_bench: %s (%s): "
					"%s\n", scens[s].name,
					bench_pl_names[p],
					aiop_strerror(res.err));
				continue;
			}
			c->v[c->n] = res.ns;
			c->sc[c->n] = res.sc;
			c->sp[c->n] = res.sp;
			c->sf[c->n] = res.sf;
			c->n++;
		}
	}
	bench_print_load("at end");
	print_report(&cfg);
	printf("\ntotal time %.1f s\n", (double)(bench_now() - t0) / 1e9);

	(void)aiop_lock_free(keep);
	bench_shm_free(sh, sizeof(*sh));
	return 0;
}
