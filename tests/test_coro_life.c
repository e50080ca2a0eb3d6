/* SPDX-License-Identifier: MIT */
/*
 * The coro API's lifecycle edges (coro.md): timeouts at their limits,
 * cancels from other callbacks, an op restarted or its object freed from
 * its own callback, ev_break() and ev_loop_destroy() with ops pending,
 * doorbells given back. Each callback runs exactly once and never inside
 * the start call (t_op's in_start).
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "internal.h"

TestSuite(coro_life, .timeout = 60);

static struct ev_loop *PL;

static int
start_lock(struct aiop_lock *l, struct t_op *o, int64_t to)
{
	int r;

	o->in_start = true;
	r = aiop_lock_coro_acquire(PL, &o->op, l, to, t_op_cb);
	o->in_start = false;
	return r;
}

/* 1 ns times out from the loop; 0 is a try; huge values wait (the
 * ev_timer takes them); any other negative value is refused */
Test(coro_life, timeouts_at_the_edges)
{
	struct aiop_lock *l;
	struct t_op a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 }, e = { 0 };

	PL = ev_loop_new(0);
	cr_assert_eq(aiop_lock_new(&l), 0);
	cr_assert_eq(aiop_lock_acquire(l, AIOP_FOREVER), 0);
	cr_assert_eq(start_lock(l, &a, 1), 0);
	cr_assert_eq(start_lock(l, &b, INT64_MAX), 0);
	cr_assert_eq(start_lock(l, &c, 0), 0);
	cr_assert_eq(start_lock(l, &d, -2), -EINVAL);
	cr_assert_eq(start_lock(l, &e, INT64_MIN), -EINVAL);
	cr_assert_eq(aiop_op_pending(&d.op), 0);
	cr_assert_eq(aiop_op_cancel(&d.op), -EINVAL);
	cr_assert_eq(start_lock(l, &d, INT64_MAX - 1), 0);
	cr_assert_eq(start_lock(l, &e, 1000000000LL * 86400 * 365 * 200), 0);
	for (int i = 0; i < 50 && !(a.calls && c.calls); i++)
		ev_run(PL, EVRUN_ONCE);
	cr_assert_eq(a.calls, 1);
	cr_assert_eq(a.result, -ETIMEDOUT);
	cr_assert_eq(c.calls, 1);
	cr_assert_eq(c.result, -EAGAIN);
	cr_assert_eq(b.calls, 0);
	cr_assert_eq(aiop_lock_release(l), 0);
	for (int i = 0; i < 50 && !b.calls; i++)
		ev_run(PL, EVRUN_ONCE);
	cr_assert_eq(b.calls, 1);
	cr_assert_eq(b.result, 0);
	cr_assert_eq(aiop_op_cancel(&d.op), 0);
	cr_assert_eq(aiop_op_cancel(&e.op), 0);
	cr_assert_eq(aiop_lock_release(l), 0);
	cr_assert(t_run(PL, 5000));
	cr_assert_eq(d.calls, 1);
	cr_assert_eq(e.calls, 1);
	cr_assert_eq(d.result, -ECANCELED);
	cr_assert_eq(e.result, -ECANCELED);
	cr_assert_eq(aiop_lock_locked(l), 0);
	cr_assert_eq(aiop_op_cancel(&d.op), -EALREADY);
	cr_assert_eq(aiop_loop_detach(PL), 0);
	cr_assert_eq(aiop_lock_free(l), 0);
	ev_loop_destroy(PL);
}

/* the waits with no try form: 0 and 1 ns are minimal waits */
Test(coro_life, condition_and_barrier_timeouts_at_the_edges)
{
	struct aiop_cond *cv;
	struct aiop_barrier *br;
	struct t_op a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };

	PL = ev_loop_new(0);
	cr_assert_eq(aiop_cond_new(&cv), 0);
	cr_assert_eq(aiop_barrier_new(&br, 2, NULL, NULL), 0);
	cr_assert_eq(aiop_cond_acquire(cv, AIOP_FOREVER), 0);
	cr_assert_eq(aiop_cond_coro_wait(PL, &a.op, cv, INT64_MAX, t_op_cb), 0);
	cr_assert_eq(aiop_barrier_coro_wait(PL, &b.op, br, INT64_MAX, t_op_cb),
		     0);
	cr_assert_eq(aiop_cond_coro_wait(PL, &c.op, cv, -5, t_op_cb), -EINVAL);
	ev_run(PL, EVRUN_NOWAIT);
	cr_assert_eq(a.calls + b.calls, 0);
	cr_assert_eq(aiop_op_cancel(&a.op), 0);
	cr_assert_eq(aiop_op_cancel(&b.op), 0);
	cr_assert(t_run(PL, 5000));
	cr_assert_eq(a.result, -ECANCELED);
	cr_assert_eq(b.result, -ECANCELED);
	cr_assert_eq(aiop_cond_coro_wait(PL, &c.op, cv, -5, t_op_cb), -EINVAL);
	cr_assert_eq(aiop_cond_coro_wait(PL, &c.op, cv, 1, t_op_cb), 0);
	cr_assert_eq(aiop_barrier_reset(br), 0);
	cr_assert_eq(aiop_barrier_coro_wait(PL, &d.op, br, 1, t_op_cb), 0);
	cr_assert(t_run(PL, 5000));
	cr_assert_eq(c.result, -ETIMEDOUT);
	cr_assert_eq(d.result, -ETIMEDOUT);
	cr_assert_eq(aiop_cond_release(cv), 0);
	cr_assert_eq(aiop_loop_detach(PL), 0);
	cr_assert_eq(aiop_cond_free(cv), 0);
	cr_assert_eq(aiop_barrier_free(br), 0);
	ev_loop_destroy(PL);
}

/* X2 cancelled from X1's callback: waiting (mode 0), granted by X1's
 * release but not called back (1), granted at its start (2). Nothing is
 * lost: a grant goes back */
static struct t_op X1, X2;
static struct aiop_sem *XS;
static int x_mode;

static void
x1_cb(struct ev_loop *loop, struct aiop_op *op, int result)
{
	t_op_cb(loop, op, result);
	if (x_mode == 1)
		(void)aiop_sem_release(XS); /* X2 may be granted now */
	cr_assert_eq(aiop_op_cancel(&X2.op), 0);
	cr_assert_eq(aiop_op_cancel(&X2.op), 0);
	cr_assert_eq(aiop_op_cancel(op), -EALREADY);
}

Test(coro_life, a_callback_cancels_another_op_in_each_state)
{
	PL = ev_loop_new(0);
	for (x_mode = 0; x_mode < 3; x_mode++) {
		memset(&X1, 0, sizeof(X1));
		memset(&X2, 0, sizeof(X2));
		cr_assert_eq(aiop_sem_new(&XS, x_mode == 2 ? 2 : 1), 0);
		cr_assert_eq(aiop_sem_coro_acquire(PL, &X1.op, XS, T_SEC,
						   x1_cb), 0);
		cr_assert_eq(aiop_sem_coro_acquire(PL, &X2.op, XS, T_SEC,
						   t_op_cb), 0);
		cr_assert(t_run(PL, 5000));
		cr_assert_eq(X1.calls, 1);
		cr_assert_eq(X2.calls, 1);
		cr_assert_eq(X1.result, 0);
		cr_assert_eq(X2.result, -ECANCELED, "mode %d: %d", x_mode,
			     X2.result);
		cr_assert_eq(aiop_sem_get_value(XS),
			     x_mode == 0 ? 0 : 1, "mode %d", x_mode);
		cr_assert_eq(aiop_sem_free(XS), 0);
	}
	cr_assert_eq(aiop_loop_detach(PL), 0);
	ev_loop_destroy(PL);
}

/* an op restarted from its own callback, on every path a callback
 * comes from: granted at start, woken, timed out, cancelled */
static int r_left;
static struct aiop_sem *RS;

static void
r_cb(struct ev_loop *loop, struct aiop_op *op, int result)
{
	struct t_op *t = (struct t_op *)op;
	int r;

	t_op_cb(loop, op, result);
	cr_assert_eq(aiop_op_pending(op), 0);
	if (result == 0)
		(void)aiop_sem_release(RS);
	if (--r_left <= 0)
		return;
	t->in_start = true;
	r = aiop_sem_coro_acquire(loop, op, RS, r_left % 3 ? 1 : T_MS, r_cb);
	t->in_start = false;
	cr_assert_eq(r, 0);
	if (r_left % 5 == 0)
		cr_assert_eq(aiop_op_cancel(op), 0);
}

Test(coro_life, an_op_restarted_from_its_own_callback)
{
	struct t_op a = { 0 };

	PL = ev_loop_new(0);
	cr_assert_eq(aiop_sem_new(&RS, 1), 0);
	r_left = 200;
	cr_assert_eq(aiop_sem_coro_acquire(PL, &a.op, RS, 1, r_cb), 0);
	cr_assert(t_run(PL, 10000));
	cr_assert_lt(a.calls, 1000);
	cr_assert_eq(a.calls, 200);
	cr_assert_eq(aiop_sem_get_value(RS), 1);
	/* now with the unit held elsewhere: every start waits */
	cr_assert_eq(aiop_sem_acquire(RS, 0), 0);
	r_left = 30;
	a.calls = 0;
	cr_assert_eq(aiop_sem_coro_acquire(PL, &a.op, RS, 1, r_cb), 0);
	cr_assert(t_run(PL, 10000));
	cr_assert_eq(a.calls, 30);
	cr_assert_eq(aiop_sem_release(RS), 0);
	cr_assert_eq(aiop_loop_detach(PL), 0);
	cr_assert_eq(aiop_sem_free(RS), 0);
	ev_loop_destroy(PL);
}

/* free the object from inside a callback of the last op on it */
static struct aiop_lock *FL;
static int f_frees;

static void
f_cb(struct ev_loop *loop, struct aiop_op *op, int result)
{
	t_op_cb(loop, op, result);
	if (result == 0)
		cr_assert_eq(aiop_lock_release(FL), 0);
	if (op->data) {
		int r = aiop_lock_free(FL);

		if (r == 0)
			f_frees++;
		else
			cr_assert_eq(r, -EBUSY);
	}
}

Test(coro_life, free_from_the_callback_of_the_last_op)
{
	for (int mode = 0; mode < 3; mode++) {
		struct t_op a = { 0 }, b = { 0 }, c = { 0 };

		PL = ev_loop_new(0);
		f_frees = 0;
		cr_assert_eq(aiop_lock_new(&FL), 0);
		a.op.data = b.op.data = c.op.data = &a;
		cr_assert_eq(aiop_lock_coro_acquire(PL, &a.op, FL,
						    AIOP_FOREVER, f_cb), 0);
		cr_assert_eq(aiop_lock_coro_acquire(PL, &b.op, FL,
						    mode == 1 ? T_MS : T_SEC,
						    f_cb), 0);
		cr_assert_eq(aiop_lock_coro_acquire(PL, &c.op, FL,
						    T_SEC, f_cb), 0);
		if (mode == 2) {
			cr_assert_eq(aiop_op_cancel(&c.op), 0);
			cr_assert_eq(aiop_op_cancel(&b.op), 0);
		}
		cr_assert(t_run(PL, 5000));
		cr_assert_eq(f_frees, 1);
		cr_assert_eq(a.calls + b.calls + c.calls, 3);
		cr_assert_eq(aiop_loop_detach(PL), 0);
		ev_loop_destroy(PL);
	}
}

static void
brk_cb(struct ev_loop *loop, struct aiop_op *op, int result)
{
	t_op_cb(loop, op, result);
	ev_break(loop, EVBREAK_ALL);
}

/* ev_break() from a callback leaves the other ops pending: the loop and
 * the objects stay busy until they are cancelled and called back */
Test(coro_life, ev_break_with_ops_pending)
{
	struct aiop_event *ev, *ev2;
	struct t_op a = { 0 }, b = { 0 }, c = { 0 };

	PL = ev_loop_new(0);
	cr_assert_eq(aiop_event_new(&ev), 0);
	cr_assert_eq(aiop_event_new(&ev2), 0);
	cr_assert_eq(aiop_event_coro_wait(PL, &a.op, ev, AIOP_FOREVER, brk_cb),
		     0);
	cr_assert_eq(aiop_event_coro_wait(PL, &b.op, ev2, AIOP_FOREVER, brk_cb),
		     0);
	cr_assert_eq(aiop_event_coro_wait(PL, &c.op, ev2, 50 * T_MS, brk_cb),
		     0);
	cr_assert_eq(aiop_event_set(ev), 0);
	ev_run(PL, 0);
	cr_assert_eq(a.calls + b.calls + c.calls, 1);
	cr_assert_eq(aiop_loop_detach(PL), -EBUSY);
	cr_assert_eq(aiop_event_free(ev2), -EBUSY);
	aiop_op_cancel(&b.op);
	aiop_op_cancel(&c.op);
	while (a.calls + b.calls + c.calls < 3)
		ev_run(PL, 0);
	cr_assert_eq(a.calls, 1);
	cr_assert_eq(b.calls, 1);
	cr_assert_eq(c.calls, 1);
	cr_assert_eq(aiop_loop_detach(PL), 0);
	cr_assert_eq(aiop_event_free(ev), 0);
	cr_assert_eq(aiop_event_free(ev2), 0);
	ev_loop_destroy(PL);
}

/*
 * A loop destroyed with ops pending (coro.md: do not) used to leave its
 * registration bound to the freed loop: a set on its thread then started
 * aiop's watchers in the freed loop (a crash, now and then), a cancel
 * queued a result there, and a new loop at the same address took over the
 * dead ops (libev asserted). Their callbacks cannot run; the ops are
 * cancelled instead, what they were granted goes back, and they are
 * forgotten: the objects and the op memory are free again.
 */
Test(coro_life, a_loop_destroyed_with_ops_pending_gives_their_grants_back)
{
	struct ev_loop *loop = ev_loop_new(0), *next;
	struct aiop_lock *l;
	struct aiop_sem *s;
	struct aiop_event *e;
	struct aiop_queue *q;
	struct aiop_cond *cv;
	struct aiop_barrier *br;
	struct aiop_rlock *rl;
	struct t_op ops[7], c = { 0 };
	char buf[8];
	size_t len = 0;

	memset(ops, 0, sizeof(ops));

	cr_assert_eq(aiop_lock_new(&l), 0);
	cr_assert_eq(aiop_sem_new(&s, 1), 0);
	cr_assert_eq(aiop_event_new(&e), 0);
	cr_assert_eq(aiop_queue_new(&q, NULL), 0);
	cr_assert_eq(aiop_cond_new(&cv), 0);
	cr_assert_eq(aiop_barrier_new(&br, 2, NULL, NULL), 0);
	cr_assert_eq(aiop_rlock_new(&rl), 0);
	cr_assert_eq(aiop_queue_try_put(q, "m", 2), 0);
	/* granted at their start, callbacks queued */
	cr_assert_eq(aiop_lock_coro_acquire(loop, &ops[0].op, l, AIOP_FOREVER,
					    t_op_cb), 0);
	cr_assert_eq(aiop_sem_coro_acquire(loop, &ops[1].op, s, AIOP_FOREVER,
					   t_op_cb), 0);
	cr_assert_eq(aiop_queue_coro_get(loop, &ops[2].op, q, buf, sizeof(buf),
					 &len, AIOP_FOREVER, t_op_cb), 0);
	cr_assert_eq(aiop_rlock_coro_acquire(loop, &ops[6].op, rl, AIOP_FOREVER,
					     t_op_cb), 0);
	/* waiting */
	cr_assert_eq(aiop_event_coro_wait(loop, &ops[3].op, e, T_SEC, t_op_cb),
		     0);
	cr_assert_eq(aiop_cond_acquire(cv, AIOP_FOREVER), 0);
	cr_assert_eq(aiop_cond_coro_wait(loop, &ops[4].op, cv, AIOP_FOREVER,
					 t_op_cb), 0);
	cr_assert_eq(aiop_barrier_coro_wait(loop, &ops[5].op, br, AIOP_FOREVER,
					    t_op_cb), 0);
	ev_loop_destroy(loop);
	cr_assert_eq(aiop_event_set(e), 0); /* rang the dead loop's thread */
	for (int i = 0; i < 7; i++) {
		cr_assert_eq(ops[i].calls, 0);
		cr_assert_eq(aiop_op_pending(&ops[i].op), 0);
		cr_assert_eq(aiop_op_cancel(&ops[i].op), -EALREADY);
	}
	/* the grants went back; the barrier party left (broke it) */
	cr_assert_eq(aiop_lock_locked(l), 0);
	cr_assert_eq(aiop_sem_get_value(s), 1);
	cr_assert_eq(aiop_rlock_release(rl), -EPERM); /* not held */
	cr_assert_eq(aiop_queue_try_get(q, buf, sizeof(buf), &len), 2);
	cr_assert_str_eq(buf, "m");
	cr_assert_eq(aiop_barrier_wait(br, 0), -EPIPE);
	/* the Condition wait left the waiting set: nobody to notify */
	cr_assert_eq(aiop_cond_acquire(cv, 0), 0);
	cr_assert_eq(aiop_cond_notify(cv, 1), 0);
	cr_assert_eq(aiop_cond_release(cv), 0);
	cr_assert_eq(aiop_loop_detach(loop), 0);
	/* a new loop (often at the same address) starts afresh */
	next = ev_loop_new(0);
	cr_assert_eq(aiop_event_coro_wait(next, &c.op, e, T_SEC, t_op_cb), 0);
	cr_assert(t_run(next, 5000));
	cr_assert_eq(c.calls, 1);
	cr_assert_eq(c.result, 0);
	cr_assert_eq(aiop_loop_detach(next), 0);
	ev_loop_destroy(next);
	cr_assert_eq(aiop_lock_free(l), 0);
	cr_assert_eq(aiop_sem_free(s), 0);
	cr_assert_eq(aiop_event_free(e), 0);
	cr_assert_eq(aiop_queue_free(q), 0);
	cr_assert_eq(aiop_cond_free(cv), 0);
	cr_assert_eq(aiop_barrier_free(br), 0);
	cr_assert_eq(aiop_rlock_free(rl), 0);
}

static int
bells_claimed(void)
{
	int n = 0;

	for (int i = 0; i < aiop__dom.nbells; i++)
		n += aiop__bell_owner(i) != 0;
	return n;
}

/* ev_loop_destroy() without aiop_loop_detach() gives the doorbell back:
 * it stayed claimed until the process exited, and a program that made
 * loops at new addresses ran out of doorbells (-EMFILE) */
Test(coro_life, a_destroyed_loop_gives_its_doorbell_back)
{
	struct ev_loop *l1, *l2;
	struct aiop_event *e;
	struct t_op a = { 0 }, b = { 0 };

	cr_assert_eq(aiop_event_new(&e), 0);
	cr_assert_eq(aiop_event_set(e), 0);
	l1 = ev_loop_new(0);
	l2 = ev_loop_new(0);
	cr_assert_eq(aiop_event_coro_wait(l1, &a.op, e, T_SEC, t_op_cb), 0);
	cr_assert_eq(aiop_event_coro_wait(l2, &b.op, e, T_SEC, t_op_cb), 0);
	cr_assert_eq(bells_claimed(), 2);
	cr_assert(t_run(l1, 5000));
	cr_assert(t_run(l2, 5000));
	cr_assert_eq(a.result, 0);
	cr_assert_eq(b.result, 0);
	ev_loop_destroy(l1);
	cr_assert_eq(bells_claimed(), 1);
	cr_assert_eq(aiop_loop_detach(l2), 0); /* detach first: still fine */
	ev_loop_destroy(l2);
	cr_assert_eq(bells_claimed(), 0);
	cr_assert_eq(aiop_event_free(e), 0);
}
