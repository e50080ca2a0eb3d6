/* SPDX-License-Identifier: MIT */
/*
 * Stress: 8 processes hammer one primitive with a random mix of blocking,
 * try and coro calls (several coro ops at once, random short timeouts and
 * cancels) for a bounded time. Invariants are checked as they run: mutual
 * exclusion (an "inside" flag and a non-atomic shared counter), semaphore
 * holders never above the initial value, no lost Event wake-up. A long
 * wait that times out counts as a hang and fails the test.
 * AIOP_STRESS_MS sets the duration per test (default 2000).
 */
#include <criterion/criterion.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

#include "helpers.h"

#define PROCS 8
#define LONG_WAIT (8 * T_SEC) /* timing out on this = a hang */

TestSuite(stress, .timeout = 240);

struct shared {
	int inside;
	int holders;
	int violations;
	int errors;
	int last_error;
	long counter;
	long ops[PROCS];
	long coro_ops[PROCS];
	int stop;
};

/* One interface over Lock, RLock and Semaphore. */
struct prim {
	void *h;
	int limit; /* how many may hold at once */
	int (*acquire)(void *h, int64_t t);
	int (*try_acquire)(void *h);
	int (*coro)(struct ev_loop *l, struct aiop_op *op, void *h, int64_t t,
		    aiop_op_cb cb);
	int (*release)(void *h);
};

static struct shared *SH;
static struct prim P;
static int ME;

static int
stress_ms(void)
{
	return t_env_ms("AIOP_STRESS_MS", 2000);
}

static void
fail(int err)
{
	__atomic_fetch_add(&SH->errors, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&SH->last_error, err, __ATOMIC_SEQ_CST);
}

/* The critical section: checks the invariant, then a racy increment that
 * only mutual exclusion keeps exact. */
static void
critical(void)
{
	int h = __atomic_add_fetch(&SH->holders, 1, __ATOMIC_SEQ_CST);
	long c;

	if (h > P.limit)
		__atomic_fetch_add(&SH->violations, 1, __ATOMIC_SEQ_CST);
	if (P.limit == 1) {
		c = *(volatile long *)&SH->counter;
		for (int i = 0; i < 20; i++)
			aiop__t_relax();
		*(volatile long *)&SH->counter = c + 1;
	}
	SH->ops[ME]++;
	__atomic_sub_fetch(&SH->holders, 1, __ATOMIC_SEQ_CST);
}

struct sop {
	struct aiop_op op;
	int done;
	int64_t timeout;
};

static void
on_acquired(struct ev_loop *loop, struct aiop_op *op, int result)
{
	struct sop *s = (struct sop *)op;

	s->done = 1;
	if (aiop_held(result)) {
		critical();
		SH->coro_ops[ME]++;
		if (P.release(P.h) != 0)
			fail(-1001);
	} else if (result == -ETIMEDOUT && s->timeout == LONG_WAIT) {
		fail(result); /* a hang */
	} else if (result != -ETIMEDOUT && result != -ECANCELED &&
		   result != -EAGAIN) {
		fail(result);
	}
}

static int
worker(void *arg)
{
	struct ev_loop *loop = ev_loop_new(0);
	uint64_t seed = 0x9e3779b97f4a7c15ull * (uint64_t)(ME + 1) ^ t_now();
	uint64_t end = t_now() + (uint64_t)stress_ms() * T_MS;
	struct sop ops[3] = { 0 };
	int r;

	(void)arg;
	while (t_now() < end) {
		switch (t_rand(&seed) % 4) {
		case 0: /* blocking */
			r = P.acquire(P.h, LONG_WAIT);
			if (!aiop_held(r)) {
				fail(r);
				break;
			}
			critical();
			if (P.release(P.h) != 0)
				fail(-1002);
			break;
		case 1: /* try */
			r = P.try_acquire(P.h);
			if (r == -EAGAIN) {
				sched_yield();
				break;
			}
			if (!aiop_held(r)) {
				fail(r);
				break;
			}
			critical();
			if (P.release(P.h) != 0)
				fail(-1003);
			break;
		default: { /* coro: 1-3 ops at once, some cancelled */
			int n = 1 + (int)(t_rand(&seed) % 3);

			for (int i = 0; i < n; i++) {
				uint32_t x = t_rand(&seed) % 8;

				ops[i].done = 0;
				ops[i].timeout = x == 0   ? 0
						 : x == 1 ? 1 * T_MS
							  : LONG_WAIT;
				r = P.coro(loop, &ops[i].op, P.h,
					   ops[i].timeout, on_acquired);
				if (r < 0) {
					fail(r);
					ops[i].done = 1;
				}
			}
			if (t_rand(&seed) % 4 == 0) {
				int i = (int)(t_rand(&seed) % (uint32_t)n);
				r = aiop_op_cancel(&ops[i].op);
				if (r != 0 && r != -EALREADY)
					fail(r);
			}
			if (!t_run(loop, 20000))
				fail(-1004);
			for (int i = 0; i < n; i++)
				if (!ops[i].done)
					fail(-1005);
			break;
		}
		}
	}
	ev_loop_destroy(loop);
	return 0;
}

static void
run_workers(void)
{
	pid_t pid[PROCS];
	long total = 0, coro = 0;

	for (ME = 0; ME < PROCS; ME++)
		pid[ME] = t_fork(worker, NULL);
	for (int i = 0; i < PROCS; i++)
		cr_expect_eq(t_reap(pid[i], stress_ms() + 60000), 0,
			     "worker %d", i);
	for (int i = 0; i < PROCS; i++) {
		total += SH->ops[i];
		coro += SH->coro_ops[i];
	}
	cr_log_info("%ld critical sections (%ld by coro ops)\n", total,
		    coro);
	cr_assert_eq(SH->violations, 0, "exclusion violated");
	cr_assert_eq(SH->errors, 0, "%d errors, last %d (%s)", SH->errors,
		     SH->last_error, aiop_strerror(SH->last_error));
	if (P.limit == 1)
		cr_assert_eq(SH->counter, total, "lost increments");
	cr_assert_gt(total, PROCS, "made progress");
	cr_assert_gt(coro, 0);
}

static int w_lock_acq(void *h, int64_t t) { return aiop_lock_acquire(h, t); }
static int w_lock_try(void *h) { return aiop_lock_try_acquire(h); }
static int w_lock_rel(void *h) { return aiop_lock_release(h); }
static int
w_lock_coro(struct ev_loop *l, struct aiop_op *op, void *h, int64_t t,
	    aiop_op_cb cb)
{
	return aiop_lock_coro_acquire(l, op, h, t, cb);
}

static int w_rl_acq(void *h, int64_t t) { return aiop_rlock_acquire(h, t); }
static int w_rl_try(void *h) { return aiop_rlock_try_acquire(h); }
static int w_rl_rel(void *h) { return aiop_rlock_release(h); }
static int
w_rl_coro(struct ev_loop *l, struct aiop_op *op, void *h, int64_t t,
	  aiop_op_cb cb)
{
	return aiop_rlock_coro_acquire(l, op, h, t, cb);
}

static int w_sem_acq(void *h, int64_t t) { return aiop_sem_acquire(h, t); }
static int w_sem_try(void *h) { return aiop_sem_try_acquire(h); }
static int w_sem_rel(void *h) { return aiop_sem_release(h); }
static int
w_sem_coro(struct ev_loop *l, struct aiop_op *op, void *h, int64_t t,
	   aiop_op_cb cb)
{
	return aiop_sem_coro_acquire(l, op, h, t, cb);
}

Test(stress, lock)
{
	struct aiop_lock *l;

	SH = t_shared(sizeof(*SH));
	cr_assert_eq(aiop_lock_new(&l), 0);
	P = (struct prim){ l, 1, w_lock_acq, w_lock_try, w_lock_coro,
			   w_lock_rel };
	run_workers();
	cr_assert_eq(aiop_lock_locked(l), 0);
	cr_assert_eq(aiop_lock_free(l), 0);
	t_unshared(SH, sizeof(*SH));
}

Test(stress, rlock)
{
	struct aiop_rlock *l;

	SH = t_shared(sizeof(*SH));
	cr_assert_eq(aiop_rlock_new(&l), 0);
	P = (struct prim){ l, 1, w_rl_acq, w_rl_try, w_rl_coro, w_rl_rel };
	run_workers();
	cr_assert_eq(aiop_rlock_try_acquire(l), 0, "free at the end");
	cr_assert_eq(aiop_rlock_depth(l), 1);
	cr_assert_eq(aiop_rlock_release(l), 0);
	cr_assert_eq(aiop_rlock_free(l), 0);
	t_unshared(SH, sizeof(*SH));
}

Test(stress, semaphore)
{
	struct aiop_sem *s;

	SH = t_shared(sizeof(*SH));
	cr_assert_eq(aiop_sem_new_bounded(&s, 3), 0);
	P = (struct prim){ s, 3, w_sem_acq, w_sem_try, w_sem_coro,
			   w_sem_rel };
	run_workers();
	cr_assert_eq(aiop_sem_get_value(s), 3, "every unit came back");
	cr_assert_eq(aiop_sem_free(s), 0);
	t_unshared(SH, sizeof(*SH));
}

/* Event: a setter pulses set/clear every ~1 ms; every waiter, blocking or
 * coro, must come back well within LONG_WAIT (else a wake-up was lost). */
static struct aiop_event *EV;

static int
setter(void *arg)
{
	uint64_t seed = t_now();

	(void)arg;
	while (!__atomic_load_n(&SH->stop, __ATOMIC_SEQ_CST)) {
		if (aiop_event_set(EV) || aiop_event_clear(EV))
			fail(-2001);
		if (t_rand(&seed) % 2)
			sched_yield();
		else
			t_msleep(1);
	}
	return aiop_event_set(EV) != 0; /* release any last waiter */
}

static void
on_event(struct ev_loop *loop, struct aiop_op *op, int result)
{
	struct sop *s = (struct sop *)op;

	s->done = 1;
	if (result == 0) {
		SH->ops[ME]++;
		SH->coro_ops[ME]++;
	} else if (result == -ETIMEDOUT && s->timeout == LONG_WAIT) {
		fail(result);
	} else if (result != -ETIMEDOUT && result != -ECANCELED &&
		   result != -EAGAIN) {
		fail(result);
	}
}

static int
ev_worker(void *arg)
{
	struct ev_loop *loop = ev_loop_new(0);
	uint64_t seed = 0x2545f4914f6cdd1dull * (uint64_t)(ME + 1) ^ t_now();
	uint64_t end = t_now() + (uint64_t)stress_ms() * T_MS;
	struct sop ops[3] = { 0 };
	int r;

	(void)arg;
	while (t_now() < end) {
		if (t_rand(&seed) % 2) {
			r = aiop_event_wait(EV, LONG_WAIT);
			if (r != 0)
				fail(r);
			else
				SH->ops[ME]++;
			continue;
		}
		int n = 1 + (int)(t_rand(&seed) % 3);
		for (int i = 0; i < n; i++) {
			ops[i].done = 0;
			ops[i].timeout = t_rand(&seed) % 5 ? LONG_WAIT : T_MS;
			if (aiop_event_coro_wait(loop, &ops[i].op, EV,
						 ops[i].timeout,
						 on_event) < 0) {
				fail(-2002);
				ops[i].done = 1;
			}
		}
		if (t_rand(&seed) % 4 == 0)
			aiop_op_cancel(&ops[t_rand(&seed) % (uint32_t)n].op);
		if (!t_run(loop, 20000))
			fail(-2003);
	}
	ev_loop_destroy(loop);
	return 0;
}

Test(stress, event)
{
	pid_t set_pid, pid[PROCS - 1];
	long total = 0;

	SH = t_shared(sizeof(*SH));
	cr_assert_eq(aiop_event_new(&EV), 0);
	set_pid = t_fork(setter, NULL);
	for (ME = 0; ME < PROCS - 1; ME++)
		pid[ME] = t_fork(ev_worker, NULL);
	for (int i = 0; i < PROCS - 1; i++)
		cr_expect_eq(t_reap(pid[i], stress_ms() + 60000), 0);
	__atomic_store_n(&SH->stop, 1, __ATOMIC_SEQ_CST);
	cr_expect_eq(t_reap(set_pid, T_REAP_MS), 0);
	for (int i = 0; i < PROCS; i++)
		total += SH->ops[i];
	cr_log_info("%ld event waits completed\n", total);
	cr_assert_eq(SH->errors, 0, "%d errors, last %d (%s)", SH->errors,
		     SH->last_error, aiop_strerror(SH->last_error));
	cr_assert_gt(total, PROCS);
	cr_assert_eq(aiop_event_free(EV), 0);
	t_unshared(SH, sizeof(*SH));
}

/* Barrier: 8 parties (blocking and coro mixed) cycle for the test's time;
 * after each release every party must have arrived (cycle numbers), and
 * the action must have run exactly once per generation. */
static struct aiop_barrier *BAR;

struct bar_shared {
	int cycle[PROCS];
	int actions;
	int bad;
	int stop_at;
};
static struct bar_shared *BS;

static int
bar_action(void *arg)
{
	(void)arg;
	BS->actions++; /* only the last party runs it: no race */
	return 0;
}

static int
bar_worker(void *arg)
{
	struct ev_loop *loop = ev_loop_new(0);
	uint64_t seed = 0x853c49e6748fea9bull * (uint64_t)(ME + 1);
	struct t_op op = { 0 };
	int cycles = *(int *)arg;

	for (int c = 1; c <= cycles; c++) {
		int r;

		__atomic_store_n(&BS->cycle[ME], c, __ATOMIC_SEQ_CST);
		if (t_rand(&seed) % 2) {
			r = aiop_barrier_wait(BAR, LONG_WAIT);
		} else {
			if (aiop_barrier_coro_wait(loop, &op.op, BAR, LONG_WAIT,
						   t_op_cb) < 0 ||
			    !t_run(loop, 20000))
				return 1;
			r = op.result;
		}
		if (r < 0 || r >= PROCS)
			return 2;
		for (int i = 0; i < PROCS; i++)
			if (__atomic_load_n(&BS->cycle[i], __ATOMIC_SEQ_CST) <
			    c)
				__atomic_fetch_add(&BS->bad, 1,
						   __ATOMIC_SEQ_CST);
	}
	ev_loop_destroy(loop);
	return 0;
}

Test(stress, barrier)
{
	pid_t pid[PROCS];
	/* about 1 ms per cycle for 8 processes on 2 CPUs, at worst */
	int cycles = stress_ms() < 1000 ? 300 : 3000;

	BS = t_shared(sizeof(*BS));
	cr_assert_eq(aiop_barrier_new(&BAR, PROCS, bar_action, NULL), 0);
	for (ME = 0; ME < PROCS; ME++)
		pid[ME] = t_fork(bar_worker, &cycles);
	for (int i = 0; i < PROCS; i++)
		cr_expect_eq(t_reap(pid[i], 120000), 0, "party %d", i);
	cr_log_info("%d barrier cycles of %d parties\n", BS->actions, PROCS);
	cr_assert_eq(BS->bad, 0, "a party passed before all arrived");
	cr_assert_eq(BS->actions, cycles);
	cr_assert_eq(aiop_barrier_broken(BAR), 0);
	cr_assert_eq(aiop_barrier_free(BAR), 0);
	t_unshared(BS, sizeof(*BS));
}

/* Condition: producers add items to a shared count under the lock and
 * notify one; consumers (blocking and coro) wait_for an item and take it.
 * Every item produced is consumed exactly once; nobody hangs. */
static struct aiop_cond *CV;

struct cv_shared {
	int items;
	long produced, consumed;
	int errors;
	int producers_done;
};
static struct cv_shared *CS;

static int
has_item(void *arg)
{
	(void)arg;
	return CS->items > 0 || CS->producers_done == PROCS / 2;
}

static int
cv_producer(void *arg)
{
	int n = *(int *)arg;

	for (int i = 0; i < n; i++) {
		if (aiop_cond_acquire(CV, LONG_WAIT) != 0)
			return 1;
		CS->items++;
		CS->produced++;
		if (aiop_cond_notify(CV, 1) < 0)
			return 2;
		aiop_cond_release(CV);
	}
	if (aiop_cond_acquire(CV, LONG_WAIT) != 0)
		return 3;
	CS->producers_done++;
	aiop_cond_notify_all(CV);
	aiop_cond_release(CV);
	return 0;
}

struct cvop {
	struct aiop_op op;
	int done, r;
};

static void
cv_got(struct ev_loop *loop, struct aiop_op *op, int result)
{
	struct cvop *c = (struct cvop *)op;

	(void)loop;
	c->done = 1;
	c->r = result;
}

static int
cv_consumer(void *arg)
{
	struct ev_loop *loop = ev_loop_new(0);
	uint64_t seed = 0xda3e39cb94b95bdbull * (uint64_t)(ME + 1);
	struct cvop op = { 0 };

	(void)arg;
	for (;;) {
		int r;

		if (aiop_cond_acquire(CV, LONG_WAIT) != 0)
			return 1;
		if (t_rand(&seed) % 2) {
			r = aiop_cond_wait_for(CV, has_item, NULL, LONG_WAIT);
		} else {
			op.done = 0;
			if (aiop_cond_coro_wait_for(loop, &op.op, CV, has_item,
						    NULL, LONG_WAIT,
						    cv_got) < 0 ||
			    !t_run(loop, 20000) || !op.done)
				return 2;
			r = op.r;
		}
		if (r != 1) { /* timed out (a lost wake-up) or error */
			CS->errors++;
			aiop_cond_release(CV);
			return 3;
		}
		if (CS->items == 0) { /* producers done, nothing left */
			aiop_cond_release(CV);
			break;
		}
		CS->items--;
		CS->consumed++;
		aiop_cond_release(CV);
	}
	ev_loop_destroy(loop);
	return 0;
}

Test(stress, condition)
{
	pid_t pid[PROCS];
	int n = stress_ms() < 1000 ? 200 : 3000;

	CS = t_shared(sizeof(*CS));
	cr_assert_eq(aiop_cond_new(&CV), 0);
	for (ME = 0; ME < PROCS; ME++)
		pid[ME] = ME < PROCS / 2 ? t_fork(cv_producer, &n)
					 : t_fork(cv_consumer, NULL);
	for (int i = 0; i < PROCS; i++)
		cr_expect_eq(t_reap(pid[i], 120000), 0, "process %d", i);
	cr_log_info("%ld items produced, %ld consumed\n", CS->produced,
		    CS->consumed);
	cr_assert_eq(CS->errors, 0);
	cr_assert_eq(CS->produced, (long)n * (PROCS / 2));
	cr_assert_eq(CS->consumed, CS->produced, "exactly once");
	cr_assert_eq(aiop_cond_free(CV), 0);
	t_unshared(CS, sizeof(*CS));
}
