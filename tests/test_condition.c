/* SPDX-License-Identifier: MIT */
/* Condition over RLock (default) and Lock: blocking and coro waits,
 * notify(n)/notify_all, wait_for, timeouts, cancel, peer death. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "internal.h"

static struct aiop_cond *C;

TestSuite(cond, .timeout = 120);

struct shared {
	int counter;
	int ready;
	int woke;
};
static struct shared *SH;

static void
setup(void)
{
	SH = t_shared(sizeof(*SH));
	cr_assert_eq(aiop_cond_new(&C), 0);
}

static void
teardown(void)
{
	cr_assert_eq(aiop_cond_free(C), 0);
	t_unshared(SH, sizeof(*SH));
}

Test(cond, requires_the_lock, .init = setup, .fini = teardown)
{
	cr_assert_eq(aiop_cond_wait(C, T_MS), -EPERM);
	cr_assert_eq(aiop_cond_notify(C, 1), -EPERM);
	cr_assert_eq(aiop_cond_notify_all(C), -EPERM);
	cr_assert_eq(aiop_cond_release(C), -EPERM);
	cr_assert_eq(aiop_cond_wait(C, -3), -EINVAL);
}

Test(cond, timeout_reholds_all_levels, .init = setup, .fini = teardown)
{
	uint64_t t0;

	cr_assert_eq(aiop_cond_acquire(C, AIOP_FOREVER), 0);
	cr_assert_eq(aiop_cond_acquire(C, AIOP_FOREVER), 0);
	t0 = t_now();
	cr_assert_eq(aiop_cond_wait(C, 30 * T_MS), -ETIMEDOUT);
	cr_assert_geq(t_now() - t0, 30 * T_MS);
	cr_assert_eq(aiop_cond_wait(C, 0), -ETIMEDOUT, "0: minimal wait");
	cr_assert_eq(aiop_cond_notify(C, 1), 0, "nobody waits");
	cr_assert_eq(aiop_cond_release(C), 0);
	cr_assert_eq(aiop_cond_release(C), 0, "depth 2 was restored");
	cr_assert_eq(aiop_cond_release(C), -EPERM);
}

static int
waiter(void *arg)
{
	int r;

	(void)arg;
	if (aiop_cond_acquire(C, 5 * T_SEC) != 0)
		return 10;
	__atomic_fetch_add(&SH->ready, 1, __ATOMIC_SEQ_CST);
	r = aiop_cond_wait(C, (int64_t)(intptr_t)arg * T_MS);
	if (r == 0)
		__atomic_fetch_add(&SH->woke, 1, __ATOMIC_SEQ_CST);
	if (aiop_cond_release(C) != 0)
		return 11;
	return r == 0 ? 0 : r == -ETIMEDOUT ? 1 : 12;
}

static void
wait_ready(int n)
{
	uint64_t t0 = t_now();

	while (__atomic_load_n(&SH->ready, __ATOMIC_SEQ_CST) < n &&
	       t_now() - t0 < 10 * T_SEC)
		t_msleep(1);
	cr_assert_eq(SH->ready, n);
}

Test(cond, notify_one_wakes_exactly_one, .init = setup, .fini = teardown)
{
	pid_t a = t_fork(waiter, (void *)(intptr_t)1500);
	pid_t b = t_fork(waiter, (void *)(intptr_t)1500);
	int ra, rb;

	wait_ready(2);
	/* both are registered once they released the lock */
	cr_assert_eq(aiop_cond_acquire(C, 5 * T_SEC), 0);
	cr_assert_eq(aiop_cond_notify(C, 1), 1);
	cr_assert_eq(aiop_cond_release(C), 0);
	ra = t_reap(a, T_REAP_MS);
	rb = t_reap(b, T_REAP_MS);
	cr_assert_eq(ra + rb, 1, "one notified (0), one timed out (1)");
	cr_assert_eq(SH->woke, 1);
}

Test(cond, notify_all_wakes_all, .init = setup, .fini = teardown)
{
	pid_t p[3];

	for (int i = 0; i < 3; i++)
		p[i] = t_fork(waiter, (void *)(intptr_t)10000);
	wait_ready(3);
	cr_assert_eq(aiop_cond_acquire(C, 5 * T_SEC), 0);
	cr_assert_eq(aiop_cond_notify_all(C), 3);
	cr_assert_eq(aiop_cond_release(C), 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(t_reap(p[i], T_REAP_MS), 0);
	cr_assert_eq(SH->woke, 3);
}

static int
at_least_3(void *arg)
{
	(void)arg;
	return SH->counter >= 3;
}

static int
bumper(void *arg)
{
	(void)arg;
	for (int i = 0; i < 3; i++) {
		t_msleep(10);
		if (aiop_cond_acquire(C, 5 * T_SEC) != 0)
			return 1;
		SH->counter++;
		aiop_cond_notify_all(C);
		aiop_cond_release(C);
	}
	return 0;
}

Test(cond, wait_for_predicate, .init = setup, .fini = teardown)
{
	pid_t p;

	cr_assert_eq(aiop_cond_acquire(C, AIOP_FOREVER), 0);
	cr_assert_eq(aiop_cond_wait_for(C, at_least_3, NULL, 20 * T_MS), 0,
		     "false at the deadline");
	p = t_fork(bumper, NULL);
	cr_assert_eq(aiop_cond_wait_for(C, at_least_3, NULL, 10 * T_SEC), 1);
	cr_assert_eq(SH->counter, 3);
	cr_assert_eq(aiop_cond_wait_for(C, at_least_3, NULL, 0), 1,
		     "true at once");
	cr_assert_eq(aiop_cond_release(C), 0);
	cr_assert_eq(t_reap(p, T_REAP_MS), 0);
}

Test(cond, over_a_plain_lock)
{
	struct aiop_lock *l;
	struct aiop_cond *c;

	cr_assert_eq(aiop_lock_new(&l), 0);
	cr_assert_eq(aiop_cond_new_lock(&c, l), 0);
	cr_assert_eq(aiop_cond_new_lock(&c, (struct aiop_lock *)c), -EINVAL);
	cr_assert_eq(aiop_cond_acquire(c, AIOP_FOREVER), 0);
	cr_assert_eq(aiop_lock_locked(l), 1);
	cr_assert_eq(aiop_cond_wait(c, 10 * T_MS), -ETIMEDOUT);
	cr_assert_eq(aiop_lock_locked(l), 1, "held again");
	cr_assert_eq(aiop_cond_release(c), 0);
	cr_assert_eq(aiop_lock_locked(l), 0);
	cr_assert_eq(aiop_cond_free(c), 0);
	cr_assert_eq(aiop_lock_free(l), 0);
}

/* coro waiter and coro notifier in one process (aioprocessing misses the
 * wake-up there) */
static struct t_op W, N;

static void
on_notifier_locked(struct ev_loop *loop, struct aiop_op *op, int result)
{
	t_op_cb(loop, op, result);
	if (result == 0) {
		SH->counter = 42;
		aiop_cond_notify(C, 1);
		aiop_cond_release(C);
	}
}

static void
on_waiter_locked(struct ev_loop *loop, struct aiop_op *op, int result)
{
	t_op_cb(loop, op, result);
	if (result != 0)
		return;
	/* holds the lock: wait, then let the notifier in */
	W.in_start = true;
	if (aiop_cond_coro_wait(loop, &W.op, C, 5 * T_SEC, t_op_cb) < 0)
		W.result = -1000;
	W.in_start = false;
	aiop_cond_coro_acquire(loop, &N.op, C, 5 * T_SEC, on_notifier_locked);
}

Test(cond, coro_waiter_and_notifier_same_process, .init = setup,
     .fini = teardown)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op first = { 0 };

	cr_assert_eq(aiop_cond_coro_acquire(loop, &first.op, C, T_SEC,
					    on_waiter_locked), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(W.calls, 1);
	cr_assert_eq(W.result, 0);
	cr_assert_eq(N.result, 0);
	cr_assert_eq(SH->counter, 42);
	/* the waiter's callback ran with the lock held again */
	cr_assert_eq(aiop_cond_release(C), 0);
	cr_assert_eq(aiop_cond_release(C), -EPERM);
	ev_loop_destroy(loop);
}

Test(cond, coro_timeout_cancel_and_errors, .init = setup, .fini = teardown)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 }, b = { 0 }, e = { 0 };

	cr_assert_eq(aiop_cond_coro_wait(loop, &e.op, C, T_SEC, t_op_cb),
		     -EPERM, "lock not held: refused, no callback");
	cr_assert_eq(aiop_cond_acquire(C, AIOP_FOREVER), 0);
	cr_assert_eq(aiop_cond_coro_wait(loop, &a.op, C, 20 * T_MS, t_op_cb),
		     0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(a.result, -ETIMEDOUT);
	cr_assert_eq(aiop_cond_release(C), 0, "held again after timeout");
	cr_assert_eq(aiop_cond_acquire(C, AIOP_FOREVER), 0);
	cr_assert_eq(aiop_cond_coro_wait(loop, &b.op, C, AIOP_FOREVER,
					 t_op_cb), 0);
	cr_assert_eq(aiop_op_cancel(&b.op), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(b.calls, 1);
	cr_assert_eq(b.result, -ECANCELED);
	cr_assert_eq(aiop_cond_release(C), 0, "held again after cancel");
	cr_assert_eq(e.calls, 0);
	ev_loop_destroy(loop);
}

static void
wf_cb(struct ev_loop *loop, struct aiop_op *op, int result)
{
	t_op_cb(loop, op, result);
	aiop_cond_release(C);
}

Test(cond, coro_wait_for, .init = setup, .fini = teardown)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 }, b = { 0 };
	pid_t p;

	cr_assert_eq(aiop_cond_acquire(C, AIOP_FOREVER), 0);
	cr_assert_eq(aiop_cond_coro_wait_for(loop, &a.op, C, at_least_3, NULL,
					     20 * T_MS, wf_cb), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(a.result, 0, "false at the deadline");
	p = t_fork(bumper, NULL);
	cr_assert_eq(aiop_cond_acquire(C, AIOP_FOREVER), 0);
	cr_assert_eq(aiop_cond_coro_wait_for(loop, &b.op, C, at_least_3, NULL,
					     10 * T_SEC, wf_cb), 0);
	cr_assert(t_run(loop, 15000));
	cr_assert_eq(b.result, 1);
	cr_assert_eq(t_reap(p, T_REAP_MS), 0);
	ev_loop_destroy(loop);
}

/* The holder notifies while it holds the lock and then dies holding it:
 * the notified waiter is re-taking the lock when the holder dies. */
static int
notify_hold_and_die(void *arg)
{
	(void)arg;
	if (aiop_cond_acquire(C, 10 * T_SEC) != 0)
		return 1;
	if (aiop_cond_notify(C, 1) != 1)
		return 2;
	__atomic_store_n(&SH->ready, 1, __ATOMIC_SEQ_CST);
	for (;;)
		pause();
}

struct kill_args {
	pid_t victim;
};

static int
killer(void *arg)
{
	struct kill_args *k = arg;

	if (!t_wait_flag(&SH->ready, 20000))
		return 1;
	t_msleep(50); /* the waiter is now re-taking the lock */
	kill(k->victim, SIGKILL);
	return 0;
}

Test(cond, lock_holder_killed_mid_wait, .init = setup, .fini = teardown)
{
	struct kill_args *k = t_shared(sizeof(*k));
	pid_t holder, kp;

	cr_assert_eq(aiop_cond_acquire(C, AIOP_FOREVER), 0);
	holder = t_fork(notify_hold_and_die, NULL);
	k->victim = holder;
	kp = t_fork(killer, k);
	/* the wait releases the lock; the child takes it, notifies us and is
	 * killed while we re-take the lock */
	cr_assert_eq(aiop_cond_wait(C, 20 * T_SEC), -EOWNERDEAD);
	cr_assert_eq(aiop_cond_release(C), 0, "held again");
	cr_assert_eq(t_reap(kp, T_REAP_MS), 0);
	cr_assert_eq(t_reap(holder, T_REAP_MS), -SIGKILL);
	t_unshared(k, sizeof(*k));
}

static int
wait_then_die(void *arg)
{
	(void)arg;
	if (aiop_cond_acquire(C, 5 * T_SEC) != 0)
		return 1;
	__atomic_fetch_add(&SH->ready, 1, __ATOMIC_SEQ_CST);
	aiop_cond_wait(C, AIOP_FOREVER);
	return 2;
}

Test(cond, killed_waiter_does_not_eat_notifications, .init = setup,
     .fini = teardown)
{
	pid_t dead = t_fork(wait_then_die, NULL), live;

	wait_ready(1);
	live = t_fork(waiter, (void *)(intptr_t)10000);
	wait_ready(2);
	t_msleep(20);
	kill(dead, SIGKILL);
	cr_assert_eq(t_reap(dead, T_REAP_MS), -SIGKILL);
	cr_assert_eq(aiop_cond_acquire(C, 5 * T_SEC), 0);
	aiop_cond_notify(C, 1);
	cr_assert_eq(aiop_cond_release(C), 0);
	cr_assert_eq(t_reap(live, T_REAP_MS), 0, "the live waiter woke");
}

/* A waiter that got its notification while the notifier still holds the
 * lock must be woken by the release itself, not by a periodic recheck
 * (100 ms): the blocking wait moves from the condition's queue to the
 * lock's and must arm the lock's queue before it sleeps. */
static int
notify_then_hold(void *arg)
{
	long long *released = arg;

	t_msleep(10);
	if (aiop_cond_acquire(C, 5 * T_SEC) != 0)
		return 1;
	aiop_cond_notify(C, 1);
	t_msleep(5);
	__atomic_store_n(released, (long long)t_now(), __ATOMIC_SEQ_CST);
	return aiop_cond_release(C) == 0 ? 0 : 2;
}

Test(cond, notified_waiter_woken_by_the_release, .init = setup,
     .fini = teardown)
{
	long long *released = t_shared(sizeof(*released));

	for (int i = 0; i < 5; i++) {
		pid_t p;
		uint64_t t;

		cr_assert_eq(aiop_cond_acquire(C, AIOP_FOREVER), 0);
		p = t_fork(notify_then_hold, released);
		cr_assert_eq(aiop_cond_wait(C, 10 * T_SEC), 0);
		t = t_now();
		cr_assert_eq(aiop_cond_release(C), 0);
		cr_assert_eq(t_reap(p, T_REAP_MS), 0);
		cr_assert_lt(t - (uint64_t)*released, 60 * T_MS,
			     "woken %.1f ms after the release",
			     (t - (uint64_t)*released) / 1e6);
	}
	t_unshared(released, sizeof(*released));
}

Test(cond, free_refuses_while_its_lock_has_pending_ops)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct aiop_cond *c;
	struct t_op a = { 0 };

	cr_assert_eq(aiop_cond_new(&c), 0);
	cr_assert_eq(aiop_cond_coro_acquire(loop, &a.op, c, T_SEC, t_op_cb), 0);
	cr_assert_eq(aiop_cond_free(c), -EBUSY, "its own RLock has an op");
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(a.result, 0);
	cr_assert_eq(aiop_cond_release(c), 0);
	cr_assert_eq(aiop_cond_free(c), 0);
	ev_loop_destroy(loop);
}

/*
 * The lock must outlive the conditions made over it: a free of the lock
 * while one exists used to succeed, and the condition's next call read
 * the freed handle (ASan: heap-use-after-free; plain: whatever the memory
 * held). The free is now refused while a condition of this process uses
 * the handle, for a Lock and an RLock alike.
 */
Test(cond, a_lock_is_not_freed_under_its_conditions)
{
	struct aiop_lock *l;
	struct aiop_rlock *rl;
	struct aiop_cond *c1, *c2, *c3;

	cr_assert_eq(aiop_lock_new(&l), 0);
	cr_assert_eq(aiop_cond_new_lock(&c1, l), 0);
	cr_assert_eq(aiop_cond_new_lock(&c2, l), 0);
	cr_assert_eq(aiop_lock_free(l), -EBUSY);
	cr_assert_eq(aiop_cond_free(c1), 0);
	cr_assert_eq(aiop_lock_free(l), -EBUSY, "c2 still uses it");
	cr_assert_eq(aiop_cond_acquire(c2, T_SEC), 0);
	cr_assert_eq(aiop_cond_notify(c2, 1), 0);
	cr_assert_eq(aiop_cond_release(c2), 0);
	cr_assert_eq(aiop_cond_free(c2), 0);
	cr_assert_eq(aiop_lock_free(l), 0);

	cr_assert_eq(aiop_rlock_new(&rl), 0);
	cr_assert_eq(aiop_cond_new_rlock(&c3, rl), 0);
	cr_assert_eq(aiop_rlock_free(rl), -EBUSY);
	cr_assert_eq(aiop_cond_free(c3), 0);
	cr_assert_eq(aiop_rlock_free(rl), 0);
}

/* notify then wait: the notification is for the waiter that was there,
 * never for the notifier's own later wait (it registers after the notify) */
Test(cond, notifier_never_takes_its_own_signal, .init = setup,
     .fini = teardown)
{
	pid_t p = t_fork(waiter, (void *)(intptr_t)5000);

	wait_ready(1);
	cr_assert_eq(aiop_cond_acquire(C, 5 * T_SEC), 0);
	cr_assert_eq(aiop_cond_notify(C, 1), 1);
	cr_assert_eq(aiop_cond_wait(C, 100 * T_MS), -ETIMEDOUT,
		     "the notifier's own wait must not take it");
	cr_assert_eq(aiop_cond_release(C), 0);
	cr_assert_eq(t_reap(p, T_REAP_MS), 0, "the waiter was notified");
	cr_assert_eq(SH->woke, 1);
}

/* the coro form of the same ping-pong on one condition */
static int
ponger(void *arg)
{
	(void)arg;
	for (int i = 0; i < 50; i++) {
		if (aiop_cond_acquire(C, 5 * T_SEC) != 0)
			return 1;
		aiop_cond_notify(C, 1);
		if (aiop_cond_wait(C, 5 * T_SEC) != 0) {
			aiop_cond_release(C);
			return 2;
		}
		aiop_cond_release(C);
	}
	if (aiop_cond_acquire(C, 5 * T_SEC) != 0)
		return 3;
	aiop_cond_notify(C, 1);
	aiop_cond_release(C);
	return 0;
}

Test(cond, ping_pong_on_one_condition, .init = setup, .fini = teardown)
{
	pid_t p;
	int n = 0;

	cr_assert_eq(aiop_cond_acquire(C, AIOP_FOREVER), 0);
	p = t_fork(ponger, NULL);
	for (; n < 50; n++) {
		/* wait for the ponger's notify, answer with ours */
		cr_assert_eq(aiop_cond_wait(C, 5 * T_SEC), 0, "round %d", n);
		cr_assert_eq(aiop_cond_notify(C, 1), 1);
	}
	cr_assert_eq(aiop_cond_wait(C, 5 * T_SEC), 0);
	cr_assert_eq(aiop_cond_release(C), 0);
	cr_assert_eq(t_reap(p, T_REAP_MS), 0);
}

/* ---- found by review: a wait_for that registers anew, a leaving op that
 * disarms a re-take, a dead waiter that takes a later notify ------------- */

static int
never_true(void *arg)
{
	(void)arg;
	return 0;
}

struct skip_case {
	struct t_op w1, w2;
	uint64_t t_notify, t_w2;
};
static struct skip_case *SK;

static void
skip_w1_cb(struct ev_loop *loop, struct aiop_op *op, int result)
{
	t_op_cb(loop, op, result);
	aiop_cond_release(C);
}

static void
skip_w2_cb(struct ev_loop *loop, struct aiop_op *op, int result)
{
	t_op_cb(loop, op, result);
	SK->t_w2 = t_now();
	aiop_cond_release(C);
	aiop_op_cancel(&SK->w1.op); /* ends W1: it re-takes the lock */
}

static void
skip_notify(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	cr_assert_eq(aiop_cond_acquire(C, 5 * T_SEC), 0);
	SK->t_notify = t_now();
	cr_assert_eq(aiop_cond_notify_all(C), 2);
	cr_assert_eq(aiop_cond_release(C), 0);
}

/*
 * W1 (wait_for, predicate false) and W2 (wait) wait on one loop;
 * notify_all gives each a notification. W1 takes its own, finds the
 * predicate false and registers again, in the new open group: its attempt
 * fails. The loop's pass used to take that failure for W2's too and skip
 * it, in every pass, so W2 ran only at its deadline (never, with none).
 */
Test(cond, a_wait_for_that_waits_again_hides_no_later_waiter,
     .init = setup, .fini = teardown)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct skip_case sk = { 0 };

	SK = &sk;
	for (int i = 0; i < 3; i++) {
		ev_timer t;

		memset(&sk, 0, sizeof(sk));
		cr_assert_eq(aiop_cond_acquire(C, AIOP_FOREVER), 0);
		cr_assert_eq(aiop_cond_coro_wait_for(loop, &sk.w1.op, C,
						     never_true, NULL,
						     AIOP_FOREVER, skip_w1_cb),
			     0);
		cr_assert_eq(aiop_cond_acquire(C, AIOP_FOREVER), 0);
		cr_assert_eq(aiop_cond_coro_wait(loop, &sk.w2.op, C,
						 AIOP_FOREVER, skip_w2_cb),
			     0);
		ev_timer_init(&t, skip_notify, 0.005, 0.);
		ev_timer_start(loop, &t);
		cr_assert(t_run(loop, 10000), "W2 never ran (round %d)", i);
		cr_assert_eq(sk.w2.calls, 1);
		cr_assert_eq(sk.w2.result, 0);
		cr_assert_eq(sk.w1.calls, 1);
		cr_assert_eq(sk.w1.result, -ECANCELED);
		cr_assert_lt(sk.t_w2 - sk.t_notify, T_SEC,
			     "W2 ran %.1f ms after the notify",
			     (sk.t_w2 - sk.t_notify) / 1e6);
	}
	ev_loop_destroy(loop);
}

struct retake {
	int notified, release, rings;
};

static struct aiop_cond *CL; /* over a plain Lock */

static int
notify_then_release_on_cue(void *arg)
{
	struct retake *rt = arg;
	struct aiop_stats st;

	if (aiop_cond_acquire(CL, 5 * T_SEC) != 0)
		return 1;
	if (aiop_cond_notify(CL, 1) != 1)
		return 2;
	__atomic_store_n(&rt->notified, 1, __ATOMIC_SEQ_CST);
	if (!t_wait_flag(&rt->release, 10000))
		return 3;
	aiop_stats_reset();
	if (aiop_cond_release(CL) != 0)
		return 4;
	aiop_stats_get(&st);
	rt->rings = (int)st.doorbell_rings;
	return 0;
}

static void
release_cl(struct ev_loop *loop, struct aiop_op *op, int result)
{
	t_op_cb(loop, op, result);
	aiop_cond_release(CL);
}

/*
 * A Condition wait re-taking its Lock waits on the Lock's queue. Another op
 * of the same loop on the Lock's own handle leaves (times out): it was the
 * last op on that handle, and its leaving used to clear the loop's armed
 * bit on the Lock's queue, which the re-take still needed. The release
 * then rang nobody, and the re-take waited for the 100 ms recheck.
 */
Test(cond, a_leaving_op_does_not_disarm_a_retake)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct retake *rt = t_shared(sizeof(*rt));
	struct aiop_lock *lk;
	struct t_op w = { 0 }, a = { 0 };
	uint64_t t0;
	pid_t p;

	cr_assert_eq(aiop_lock_new(&lk), 0);
	cr_assert_eq(aiop_cond_new_lock(&CL, lk), 0);
	cr_assert_eq(aiop_cond_acquire(CL, AIOP_FOREVER), 0);
	cr_assert_eq(aiop_cond_coro_wait(loop, &w.op, CL, AIOP_FOREVER,
					 release_cl), 0);
	p = t_fork(notify_then_release_on_cue, rt);
	cr_assert(t_wait_flag(&rt->notified, 10000));
	/* the child holds the lock: A waits, then times out; meanwhile the
	 * loop's pass moves W on to re-taking the lock */
	cr_assert_eq(aiop_lock_coro_acquire(loop, &a.op, lk, 20 * T_MS,
					    t_op_cb), 0);
	t0 = t_now();
	while (!a.calls && t_now() - t0 < 10 * T_SEC)
		ev_run(loop, EVRUN_ONCE);
	cr_assert_eq(a.result, -ETIMEDOUT);
	cr_assert_eq(w.calls, 0);
	__atomic_store_n(&rt->release, 1, __ATOMIC_SEQ_CST);
	cr_assert(t_run(loop, 10000));
	cr_assert_eq(w.calls, 1);
	cr_assert_eq(w.result, 0);
	cr_assert_eq(t_reap(p, T_REAP_MS), 0);
	cr_assert_eq(rt->rings, 1, "the release must ring the loop");
	cr_assert_eq(aiop_cond_free(CL), 0);
	cr_assert_eq(aiop_lock_free(lk), 0);
	t_unshared(rt, sizeof(*rt));
	ev_loop_destroy(loop);
}

/*
 * D and X wait; D is stopped, notify(1) makes both eligible and X takes the
 * notification; D is killed, still counted as an eligible waiter. Then W
 * waits and notify(1) comes: it used to go to D's count only (enough
 * eligible waiters were counted, so W's group stayed open) and W, the only
 * live waiter registered before it, could not take it.
 */
Test(cond, a_dead_waiter_does_not_take_a_later_notify, .init = setup,
     .fini = teardown)
{
	pid_t d = t_fork(waiter, (void *)(intptr_t)60000), x, w;

	wait_ready(1);
	x = t_fork(waiter, (void *)(intptr_t)10000);
	wait_ready(2);
	cr_assert_eq(kill(d, SIGSTOP), 0);
	cr_assert_eq(aiop_cond_acquire(C, 5 * T_SEC), 0);
	cr_assert_eq(aiop_cond_notify(C, 1), 1);
	cr_assert_eq(aiop_cond_release(C), 0);
	cr_assert_eq(t_reap(x, T_REAP_MS), 0, "X took the first notify");
	cr_assert_eq(kill(d, SIGKILL), 0);
	cr_assert_eq(t_reap(d, T_REAP_MS), -SIGKILL);
	w = t_fork(waiter, (void *)(intptr_t)5000);
	wait_ready(3);
	cr_assert_eq(aiop_cond_acquire(C, 5 * T_SEC), 0);
	cr_assert_eq(aiop_cond_notify(C, 1), 1);
	cr_assert_eq(aiop_cond_release(C), 0);
	cr_assert_eq(t_reap(w, T_REAP_MS), 0, "W must get the notify");
}

/*
 * A coro wait_for's predicate runs inside the op's attempt, with the lock
 * held again. A predicate that cancels its own op: the cancel must hold.
 * It used to be lost: a false predicate registered the op again (and the
 * cancel had stopped its deadline, so it waited for good); a true one
 * completed it with 1 after the cancel had passed its notification on.
 */
static struct aiop_op *pred_op;
static int pred_calls, pred_value, pred_cancel_r;

static int
cancels_its_own_wait(void *arg)
{
	(void)arg;
	if (++pred_calls == 1) /* in the start call: false, so it waits */
		return 0;
	if (pred_calls == 2)
		pred_cancel_r = aiop_op_cancel(pred_op);
	return pred_value;
}

Test(cond, a_predicate_may_cancel_its_own_wait, .init = setup,
     .fini = teardown)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a;
	int r;

	for (pred_value = 0; pred_value <= 1; pred_value++) {
		memset(&a, 0, sizeof(a));
		pred_op = &a.op;
		pred_calls = 0;
		pred_cancel_r = 1;
		cr_assert_eq(aiop_cond_acquire(C, AIOP_FOREVER), 0);
		cr_assert_eq(aiop_cond_coro_wait_for(loop, &a.op, C,
						     cancels_its_own_wait,
						     NULL, 10 * T_SEC,
						     t_op_cb),
			     0);
		cr_assert_eq(aiop_cond_acquire(C, T_SEC), 0, "released");
		r = aiop_cond_notify(C, 1);
		cr_assert_eq(r, 1, "notify: %d", r);
		cr_assert_eq(aiop_cond_release(C), 0);
		cr_assert(t_run(loop, 3000), "predicate %d: no callback",
			  pred_value);
		cr_assert_eq(pred_cancel_r, 0);
		cr_assert_eq(a.calls, 1);
		cr_assert_eq(a.result, -ECANCELED, "predicate %d: %d",
			     pred_value, a.result);
		cr_assert_eq(aiop_cond_release(C), 0, "held at the callback");
	}
	ev_loop_destroy(loop);
}

/*
 * A coro wait_for start refused for its own arguments (NULL loop, op or
 * callback; an op still pending) must not run the predicate: it used to
 * make its first call first, so a predicate that cancels its op cancelled
 * the pending one for a start that returned -EBUSY.
 */
static int refused_calls;

static int
counts_and_cancels(void *arg)
{
	refused_calls++;
	(void)aiop_op_cancel(arg);
	return 1;
}

Test(cond, a_refused_wait_for_start_runs_no_predicate, .init = setup,
     .fini = teardown)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct aiop_event *e;
	struct t_op first = { 0 };
	struct aiop_op op = { 0 };

	cr_assert_eq(aiop_event_new(&e), 0);
	cr_assert_eq(aiop_cond_acquire(C, 0), 0);
	cr_assert_eq(aiop_cond_coro_wait_for(NULL, &op, C, counts_and_cancels,
					     &op, AIOP_FOREVER, t_op_cb),
		     -EINVAL);
	cr_assert_eq(aiop_cond_coro_wait_for(loop, NULL, C,
					     counts_and_cancels, &op,
					     AIOP_FOREVER, t_op_cb),
		     -EINVAL);
	cr_assert_eq(aiop_cond_coro_wait_for(loop, &op, C, counts_and_cancels,
					     &op, AIOP_FOREVER, NULL),
		     -EINVAL);
	/* an op still pending (on an event): the refused start leaves it */
	cr_assert_eq(aiop_event_coro_wait(loop, &first.op, e, 5 * T_SEC,
					  t_op_cb),
		     0);
	cr_assert_eq(aiop_cond_coro_wait_for(loop, &first.op, C,
					     counts_and_cancels, &first.op,
					     AIOP_FOREVER, t_op_cb),
		     -EBUSY);
	cr_assert_eq(refused_calls, 0, "the predicate ran %d times",
		     refused_calls);
	cr_assert_eq(aiop_op_pending(&first.op), 1);
	cr_assert_eq(aiop_event_set(e), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(first.calls, 1);
	cr_assert_eq(first.result, 0, "not cancelled: %d", first.result);
	cr_assert_eq(aiop_cond_release(C), 0);
	cr_assert_eq(aiop_loop_detach(loop), 0);
	ev_loop_destroy(loop);
	cr_assert_eq(aiop_event_free(e), 0);
}

/*
 * A notified waiter that dies before it holds the lock again must not take
 * the notification with it. A (blocking, another process) and B (coro,
 * here) wait; notify(1) while we hold the lock; A gets going first (our
 * loop does not run) and then sleeps on the lock's queue; A is killed.
 * B, registered before the notify too, must get it. A used to take the
 * signal before the lock, so it died with it and B timed out.
 */
struct t_rlock_shm {
	struct aiop__shm_hdr hdr;
	struct aiop__waitq wq;
	_Atomic uint32_t owner;
	_Atomic uint32_t depth;
};

Test(cond, a_waiter_killed_before_the_retake_loses_no_notify)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct aiop_rlock *rl;
	struct t_rlock_shm *s;
	struct t_op b = { 0 };
	uint64_t t0;
	pid_t a;

	SH = t_shared(sizeof(*SH));
	cr_assert_eq(aiop_rlock_new(&rl), 0);
	cr_assert_eq(aiop_cond_new_rlock(&C, rl), 0);
	s = (struct t_rlock_shm *)((struct aiop__obj *)rl)->shm;
	a = t_fork(waiter, (void *)(intptr_t)60000);
	wait_ready(1);
	cr_assert_eq(aiop_cond_acquire(C, 5 * T_SEC), 0, "A registered");
	cr_assert_eq(aiop_cond_coro_wait(loop, &b.op, C, 3 * T_SEC, t_op_cb),
		     0);
	cr_assert_eq(aiop_cond_acquire(C, 5 * T_SEC), 0);
	cr_assert_eq(aiop_cond_notify(C, 1), 1);
	/* A, woken, sleeps on the lock's queue (ours, held) */
	t0 = t_now();
	while (!(atomic_load(&s->wq.nsleep) & AIOP__NSLEEP_COUNT) &&
	       t_now() - t0 < 10 * T_SEC)
		t_msleep(1);
	cr_assert(atomic_load(&s->wq.nsleep) & AIOP__NSLEEP_COUNT);
	cr_assert_eq(kill(a, SIGKILL), 0);
	cr_assert_eq(t_reap(a, T_REAP_MS), -SIGKILL);
	cr_assert_eq(aiop_cond_release(C), 0);
	cr_assert(t_run(loop, 10000));
	cr_assert_eq(b.calls, 1);
	cr_assert_eq(b.result, 0, "B must get the notify: %d", b.result);
	cr_assert_eq(aiop_cond_release(C), 0, "held at the callback");
	cr_assert_eq(aiop_cond_free(C), 0);
	cr_assert_eq(aiop_rlock_free(rl), 0);
	t_unshared(SH, sizeof(*SH));
	ev_loop_destroy(loop);
}

/*
 * The loop's thread holds the RLock (two levels of its own) when its coro
 * wait_for re-takes it (a recursive level) and finds the predicate false:
 * the op waits again and gives back the level it took, not the thread's
 * two. It used to release every level, so the lock was free (another
 * process could take it) while the thread's code still held it, whose
 * releases then failed with -EPERM; and the op restored all three levels
 * at its completion.
 */
static int regroup_flag;

static int
regroup_pred(void *arg)
{
	(void)arg;
	return regroup_flag;
}

static int
try_takes(void *arg)
{
	int r = aiop_cond_try_acquire(C);

	(void)arg;
	if (r == 0)
		(void)aiop_cond_release(C);
	return r == -EAGAIN ? 0 : 1;
}

Test(cond, a_regrouped_wait_for_keeps_the_threads_other_levels)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct aiop_rlock *rl;
	struct t_op w = { 0 };
	int depth;

	cr_assert_eq(aiop_rlock_new(&rl), 0);
	cr_assert_eq(aiop_cond_new_rlock(&C, rl), 0);
	regroup_flag = 0;
	cr_assert_eq(aiop_cond_acquire(C, AIOP_FOREVER), 0);
	cr_assert_eq(aiop_cond_coro_wait_for(loop, &w.op, C, regroup_pred,
					     NULL, 10 * T_SEC, t_op_cb),
		     0);
	cr_assert_eq(aiop_rlock_depth(rl), 0, "the start released it");
	/* the thread's own code takes it, twice, and notifies */
	cr_assert_eq(aiop_cond_acquire(C, T_SEC), 0);
	cr_assert_eq(aiop_cond_acquire(C, T_SEC), 0);
	cr_assert_eq(aiop_cond_notify(C, 1), 1);
	/* the loop runs while the thread holds it: the op re-takes it on
	 * top, takes the notification, finds the predicate false */
	for (int i = 0; i < 5; i++)
		ev_run(loop, EVRUN_NOWAIT);
	cr_assert_eq(w.calls, 0);
	depth = aiop_rlock_depth(rl);
	cr_assert_eq(depth, 2, "the thread's levels: %d", depth);
	cr_assert_eq(t_reap(t_fork(try_takes, NULL), T_REAP_MS), 0,
		     "another process took the lock the thread holds");
	cr_assert_eq(aiop_cond_release(C), 0);
	cr_assert_eq(aiop_cond_release(C), 0);
	cr_assert_eq(aiop_rlock_depth(rl), 0);
	/* now true: the op completes with its own level */
	cr_assert_eq(aiop_cond_acquire(C, T_SEC), 0);
	regroup_flag = 1;
	cr_assert_eq(aiop_cond_notify(C, 1), 1);
	cr_assert_eq(aiop_cond_release(C), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(w.calls, 1);
	cr_assert_eq(w.result, 1, "%d", w.result);
	depth = aiop_rlock_depth(rl);
	cr_assert_eq(depth, 1, "the op's level only: %d", depth);
	cr_assert_eq(aiop_cond_release(C), 0);
	cr_assert_eq(aiop_loop_detach(loop), 0);
	ev_loop_destroy(loop);
	cr_assert_eq(aiop_cond_free(C), 0);
	cr_assert_eq(aiop_rlock_free(rl), 0);
}

/*
 * The word's group id (grp) is 16 bits. A waiter that did not run while
 * 65536 groups were closed (stopped here) found grp equal to its own again:
 * it took its group for open, could not take the notify(1) meant for it
 * (woken by nobody, it waited to its deadline) and then found nothing to
 * give back, so its count stayed in `closed` for good. A full group id
 * kept beside the word (gen) tells the two apart (design.md 8.1).
 */
struct t_cond_shm {
	struct aiop__shm_hdr hdr;
	struct aiop__waitq wq;
	_Atomic uint64_t word;
};

static uint64_t
cond_word(void)
{
	return atomic_load(&((struct t_cond_shm *)((struct aiop__obj *)C)
				     ->shm)->word);
}

/* open, closed and sig of the word, none of them counted */
#define COUNTS(w) ((w) & 0xffffffffffffull)

/* a round's check: an assertion only when it fails, as Criterion's
 * --full-stats sends every assertion made to its runner, and 65536 rounds
 * of them took ~80 s, past the stopped waiter's 60 s bound */
#define ROUND_CHECK(cond, what)						\
	do {								\
		if (!(cond))						\
			cr_assert_fail("round %u: %s", i, what);	\
	} while (0)

/* Close n groups of this thread's coro waits: each round one op joins the
 * open group, notify(1) closes it and the op takes the signal. */
static void
close_groups(unsigned n)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op op;

	for (unsigned i = 0; i < n; i++) {
		memset(&op, 0, sizeof(op));
		ROUND_CHECK(aiop_cond_try_acquire(C) == 0, "acquire");
		ROUND_CHECK(aiop_cond_coro_wait(loop, &op.op, C, 5 * T_SEC,
						t_op_cb) == 0, "coro_wait");
		ROUND_CHECK(aiop_cond_try_acquire(C) == 0, "reacquire");
		ROUND_CHECK(aiop_cond_notify(C, 1) == 1, "notify(1) != 1");
		ROUND_CHECK(aiop_cond_release(C) == 0, "release");
		ROUND_CHECK(t_run(loop, 5000), "the op did not complete");
		ROUND_CHECK(op.calls == 1, "callback count");
		if (op.result != 0)
			cr_assert_fail("round %u: %d", i, op.result);
		ROUND_CHECK(aiop_cond_release(C) == 0, "held at the callback");
	}
	cr_assert_eq(aiop_loop_detach(loop), 0);
	ev_loop_destroy(loop);
}

/* a coro waiter in a child: ready once registered, 0 if notified */
static int
coro_waiter(void *arg)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op op = { 0 };

	(void)arg;
	if (aiop_cond_acquire(C, 5 * T_SEC) != 0)
		return 10;
	if (aiop_cond_coro_wait(loop, &op.op, C, 60 * T_SEC, t_op_cb) != 0)
		return 11;
	__atomic_fetch_add(&SH->ready, 1, __ATOMIC_SEQ_CST);
	if (!t_run(loop, 60000) || op.calls != 1)
		return 12;
	if (aiop_cond_release(C) != 0)
		return 13;
	if (op.result == 0)
		__atomic_fetch_add(&SH->woke, 1, __ATOMIC_SEQ_CST);
	return op.result == 0 ? 0 : 14;
}

static void
stopped_across_a_wrap(int (*fn)(void *))
{
	pid_t s, x;
	uint64_t w;
	int st;

	if (getenv("AIOP_UNDER_VALGRIND"))
		cr_skip_test("65536 rounds: far too slow under valgrind");
	s = t_fork(fn, (void *)(intptr_t)60000);
	wait_ready(1);
	cr_assert_eq(kill(s, SIGSTOP), 0);
	cr_assert_eq(waitpid(s, &st, WUNTRACED), s);
	cr_assert(WIFSTOPPED(st));
	cr_assert_eq(aiop_cond_acquire(C, 5 * T_SEC), 0);
	w = cond_word();
	cr_assert_eq(aiop_cond_release(C), 0);
	/* S's group is the open one; 65536 closes bring grp back to it */
	close_groups(65536);
	cr_assert_eq(aiop_cond_acquire(C, 5 * T_SEC), 0);
	cr_assert_eq(cond_word() >> 48, w >> 48, "grp came round");
	cr_assert_eq(aiop_cond_notify(C, 1), 1);
	cr_assert_eq(aiop_cond_release(C), 0);
	cr_assert_eq(kill(s, SIGCONT), 0);
	/* S waits 60 s: only the notify ends it within the bound */
	cr_assert_eq(t_reap(s, 5000), 0, "S must get the notify");
	cr_assert_eq(SH->woke, 1);
	cr_assert_eq(COUNTS(cond_word()), 0, "counts clean: %#llx",
		     (unsigned long long)cond_word());
	/* and the condition works as before: one waiter, one wake */
	x = t_fork(waiter, (void *)(intptr_t)5000);
	wait_ready(2);
	cr_assert_eq(aiop_cond_acquire(C, 5 * T_SEC), 0);
	cr_assert_eq(aiop_cond_notify(C, 1), 1);
	cr_assert_eq(aiop_cond_release(C), 0);
	cr_assert_eq(t_reap(x, T_REAP_MS), 0, "X must get the notify");
	cr_assert_eq(aiop_cond_acquire(C, 5 * T_SEC), 0);
	cr_assert_eq(aiop_cond_notify_all(C), 0, "nobody is left counted");
	cr_assert_eq(aiop_cond_release(C), 0);
	cr_assert_eq(COUNTS(cond_word()), 0);
}

Test(cond, a_waiter_stopped_across_65536_groups_gets_its_notify,
     .init = setup, .fini = teardown)
{
	stopped_across_a_wrap(waiter);
}

Test(cond, a_coro_waiter_stopped_across_65536_groups_gets_its_notify,
     .init = setup, .fini = teardown)
{
	stopped_across_a_wrap(coro_waiter);
}
