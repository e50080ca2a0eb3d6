/* SPDX-License-Identifier: MIT */
/*
 * The coro API's lifecycle edges (coro.md): timeouts at their limits,
 * cancels from other callbacks, an op restarted or its object freed from
 * its own callback, ev_break() with ops pending. Each callback runs
 * exactly once and never inside the start call (t_op's in_start).
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

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
