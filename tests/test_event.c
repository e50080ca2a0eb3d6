/* SPDX-License-Identifier: MIT */
/* Event: set wakes every waiter, blocking and coro, in every process. */
#include <criterion/criterion.h>
#include <unistd.h>

#include "helpers.h"

static struct aiop_event *E;

static void
setup(void)
{
	cr_assert_eq(aiop_event_new(&E), 0);
}

static void
teardown(void)
{
	cr_assert_eq(aiop_event_free(E), 0);
}

TestSuite(event, .init = setup, .fini = teardown, .timeout = 120);

Test(event, flag)
{
	cr_assert_eq(aiop_event_is_set(E), 0);
	cr_assert_eq(aiop_event_try_wait(E), -EAGAIN);
	cr_assert_eq(aiop_event_wait(E, 0), -EAGAIN);
	cr_assert_eq(aiop_event_wait(E, 20 * T_MS), -ETIMEDOUT);
	cr_assert_eq(aiop_event_set(E), 0);
	cr_assert_eq(aiop_event_set(E), 0, "set twice is fine");
	cr_assert_eq(aiop_event_is_set(E), 1);
	cr_assert_eq(aiop_event_wait(E, AIOP_FOREVER), 0, "set: at once");
	cr_assert_eq(aiop_event_try_wait(E), 0);
	cr_assert_eq(aiop_event_clear(E), 0);
	cr_assert_eq(aiop_event_is_set(E), 0);
	cr_assert_eq(aiop_event_wait(E, -3), -EINVAL);
}

static int
child_set(void *arg)
{
	t_msleep((int)(intptr_t)arg);
	return aiop_event_set(E) == 0 ? 0 : 1;
}

Test(event, blocking_woken_by_other_process)
{
	pid_t pid = t_fork(child_set, (void *)50);

	cr_assert_eq(aiop_event_wait(E, 5 * T_SEC), 0);
	cr_assert_eq(t_reap(pid, T_REAP_MS), 0);
}

static int
child_set_clear(void *arg)
{
	volatile int *flag = arg;

	if (!t_wait_flag(flag, 5000))
		return 2;
	t_msleep(30); /* let the parent go to sleep */
	if (aiop_event_set(E) != 0 || aiop_event_clear(E) != 0)
		return 1;
	return 0;
}

Test(event, waiter_present_at_set_wins_over_clear)
{
	/* set() then clear() before the waiter runs: the waiter was there
	 * when the event was set, so it must return success (Python). */
	int *flag = t_shared(64);
	pid_t pid = t_fork(child_set_clear, flag);

	__atomic_store_n(flag, 1, __ATOMIC_SEQ_CST);
	cr_assert_eq(aiop_event_wait(E, 5 * T_SEC), 0);
	cr_assert_eq(t_reap(pid, T_REAP_MS), 0);
	cr_assert_eq(aiop_event_is_set(E), 0);
	t_unshared(flag, 64);
}

Test(event, coro_wait_set_clear_same_process)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 }, b = { 0 }, late = { 0 };

	a.in_start = true;
	cr_assert_eq(aiop_event_coro_wait(loop, &a.op, E, T_SEC, t_op_cb), 0);
	a.in_start = false;
	cr_assert_eq(aiop_event_coro_wait(loop, &b.op, E, T_SEC, t_op_cb), 0);
	cr_assert_eq(aiop_event_set(E), 0);
	cr_assert_eq(aiop_event_clear(E), 0);
	cr_assert_eq(aiop_event_coro_wait(loop, &late.op, E, 30 * T_MS,
					  t_op_cb), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(a.calls, 1);
	cr_assert_eq(b.calls, 1);
	cr_assert_eq(a.result, 0);
	cr_assert_eq(b.result, 0);
	cr_assert_eq(late.result, -ETIMEDOUT, "came after the clear");
	ev_loop_destroy(loop);
}

Test(event, coro_set_before_start_and_cancel)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 }, c = { 0 };

	cr_assert_eq(aiop_event_coro_wait(loop, &c.op, E, AIOP_FOREVER,
					  t_op_cb), 0);
	cr_assert_eq(aiop_op_cancel(&c.op), 0);
	cr_assert_eq(aiop_event_set(E), 0);
	cr_assert_eq(aiop_event_coro_wait(loop, &a.op, E, 0, t_op_cb), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(c.result, -ECANCELED);
	cr_assert_eq(a.result, 0);
	ev_loop_destroy(loop);
}

/* shared scoreboard for the broadcast test */
struct board {
	int ready;
	int woke[8];
};

static int
blocking_waiter(void *arg)
{
	struct board *b = arg;
	int idx = __atomic_fetch_add(&b->ready, 1, __ATOMIC_SEQ_CST);

	if (aiop_event_wait(E, 10 * T_SEC) != 0)
		return 1;
	__atomic_store_n(&b->woke[idx], 1, __ATOMIC_SEQ_CST);
	return 0;
}

static int
loop_waiter(void *arg)
{
	struct board *b = arg;
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op x = { 0 }, y = { 0 };
	int idx;

	if (aiop_event_coro_wait(loop, &x.op, E, 10 * T_SEC, t_op_cb) ||
	    aiop_event_coro_wait(loop, &y.op, E, 10 * T_SEC, t_op_cb))
		return 1;
	idx = __atomic_fetch_add(&b->ready, 1, __ATOMIC_SEQ_CST);
	if (!t_run(loop, 15000))
		return 2;
	if (x.calls != 1 || y.calls != 1 || x.result || y.result)
		return 3;
	__atomic_store_n(&b->woke[idx], 1, __ATOMIC_SEQ_CST);
	ev_loop_destroy(loop);
	return 0;
}

Test(event, one_set_wakes_three_processes_and_two_loops)
{
	struct board *b = t_shared(sizeof(*b));
	pid_t pid[5];
	uint64_t t0;
	int i;

	for (i = 0; i < 3; i++)
		pid[i] = t_fork(blocking_waiter, b);
	for (; i < 5; i++)
		pid[i] = t_fork(loop_waiter, b);
	t0 = t_now();
	while (__atomic_load_n(&b->ready, __ATOMIC_SEQ_CST) < 5 &&
	       t_now() - t0 < 5 * T_SEC)
		t_msleep(1);
	cr_assert_eq(b->ready, 5);
	t_msleep(50); /* let them all go to sleep */
	cr_assert_eq(aiop_event_set(E), 0);
	for (i = 0; i < 5; i++)
		cr_assert_eq(t_reap(pid[i], T_REAP_MS), 0, "waiter %d", i);
	for (i = 0; i < 5; i++)
		cr_assert_eq(b->woke[i], 1);
	t_unshared(b, sizeof(*b));
}
