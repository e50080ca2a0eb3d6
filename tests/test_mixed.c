/* SPDX-License-Identifier: MIT */
/* Mixing variants across processes: a loop process and blocking workers. */
#include <criterion/criterion.h>
#include <unistd.h>

#include "helpers.h"

static struct aiop_lock *L;

TestSuite(mixed, .timeout = 120);

/* flags[0]: worker holds; flags[1]: loop is waiting; flags[2]: released */
static int
worker_hold(void *arg)
{
	volatile int *flags = arg;

	if (aiop_lock_acquire(L, 5 * T_SEC) != 0)
		return 1;
	__atomic_store_n(&flags[0], 1, __ATOMIC_SEQ_CST);
	if (!t_wait_flag(&flags[1], 10000))
		return 3;
	t_msleep(30);
	__atomic_store_n(&flags[2], 1, __ATOMIC_SEQ_CST);
	return aiop_lock_release(L) == 0 ? 0 : 2;
}

static void
check_released(struct ev_loop *loop, struct aiop_op *op, int result)
{
	t_op_cb(loop, op, result);
	/* granted only after the worker let go */
	if (!__atomic_load_n((int *)op->data, __ATOMIC_SEQ_CST))
		((struct t_op *)op)->result = -1;
}

Test(mixed, coro_acquire_while_worker_holds)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 };
	int *flags = t_shared(64);
	pid_t pid;
	int rc;

	cr_assert_eq(aiop_lock_new(&L), 0);
	pid = t_fork(worker_hold, flags);
	cr_assert(t_wait_flag(&flags[0], 5000));
	a.op.data = &flags[2];
	cr_assert_eq(aiop_lock_coro_acquire(loop, &a.op, L, 10 * T_SEC,
					    check_released), 0);
	__atomic_store_n(&flags[1], 1, __ATOMIC_SEQ_CST);
	cr_assert(t_run(loop, 10000));
	cr_assert_eq(a.calls, 1);
	cr_assert_eq(a.result, 0);
	cr_assert_eq(aiop_lock_release(L), 0);
	rc = t_reap(pid, T_REAP_MS);
	cr_assert_eq(rc, 0, "worker exit %d", rc);
	cr_assert_eq(aiop_lock_free(L), 0);
	t_unshared(flags, 64);
	ev_loop_destroy(loop);
}

struct rev {
	int got;    /* worker acquired */
	int waiting;
};

static int
worker_blocked(void *arg)
{
	struct rev *r = arg;

	__atomic_store_n(&r->waiting, 1, __ATOMIC_SEQ_CST);
	if (aiop_lock_acquire(L, 5 * T_SEC) != 0)
		return 1;
	__atomic_store_n(&r->got, 1, __ATOMIC_SEQ_CST);
	return aiop_lock_release(L) == 0 ? 0 : 2;
}

static void
on_release_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct rev *r = w->data;

	/* the worker must still be blocked: the loop holds the lock */
	if (__atomic_load_n(&r->got, __ATOMIC_SEQ_CST) == 0)
		aiop_lock_release(L);
}

Test(mixed, loop_holds_worker_blocks)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 };
	struct rev *r = t_shared(sizeof(*r));
	ev_timer tm;
	pid_t pid;

	cr_assert_eq(aiop_lock_new(&L), 0);
	cr_assert_eq(aiop_lock_coro_acquire(loop, &a.op, L, T_SEC, t_op_cb), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(a.result, 0);
	pid = t_fork(worker_blocked, r);
	cr_assert(t_wait_flag(&r->waiting, 5000));
	ev_timer_init(&tm, on_release_timer, 0.1, 0.);
	tm.data = r;
	ev_timer_start(loop, &tm);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(t_reap(pid, T_REAP_MS), 0);
	cr_assert_eq(r->got, 1);
	cr_assert_eq(aiop_lock_locked(L), 0);
	cr_assert_eq(aiop_lock_free(L), 0);
	t_unshared(r, sizeof(*r));
	ev_loop_destroy(loop);
}

/* Ping-pong between a blocking worker and a coro loop on two events:
 * 200 hand-offs each way, every one must arrive. */
static struct aiop_event *PING, *PONG;

static int
pinger(void *arg)
{
	for (int i = 0; i < 200; i++) {
		if (aiop_event_wait(PING, 5 * T_SEC) != 0)
			return 1;
		aiop_event_clear(PING);
		if (aiop_event_set(PONG) != 0)
			return 2;
	}
	return 0;
}

struct pp {
	struct aiop_op op;
	int n;
	int err;
};

static void
on_pong(struct ev_loop *loop, struct aiop_op *op, int result)
{
	struct pp *p = (struct pp *)op;

	if (result != 0) {
		p->err = result;
		return;
	}
	aiop_event_clear(PONG);
	if (++p->n == 200)
		return;
	if (aiop_event_coro_wait(loop, &p->op, PONG, 5 * T_SEC, on_pong) < 0)
		p->err = -1;
	else
		aiop_event_set(PING);
}

Test(mixed, event_ping_pong_worker_and_loop)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct pp p = { 0 };
	pid_t pid;

	cr_assert_eq(aiop_event_new(&PING), 0);
	cr_assert_eq(aiop_event_new(&PONG), 0);
	pid = t_fork(pinger, NULL);
	cr_assert_eq(aiop_event_coro_wait(loop, &p.op, PONG, 5 * T_SEC,
					  on_pong), 0);
	cr_assert_eq(aiop_event_set(PING), 0);
	cr_assert(t_run(loop, 20000));
	cr_assert_eq(p.err, 0);
	cr_assert_eq(p.n, 200);
	cr_assert_eq(t_reap(pid, T_REAP_MS), 0);
	aiop_event_free(PING);
	aiop_event_free(PONG);
	ev_loop_destroy(loop);
}
