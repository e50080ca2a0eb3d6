/* SPDX-License-Identifier: MIT */
/* Mixing variants across processes: a loop process and blocking workers. */
#include <criterion/criterion.h>
#include <unistd.h>

#include "helpers.h"

static struct aiop_lock *L;

TestSuite(mixed, .timeout = 60);

static int
worker_hold(void *arg)
{
	volatile int *flag = arg;

	if (aiop_lock_acquire(L, 5 * T_SEC) != 0)
		return 1;
	__atomic_store_n(flag, 1, __ATOMIC_SEQ_CST);
	t_msleep(100);
	return aiop_lock_release(L) == 0 ? 0 : 2;
}

Test(mixed, coro_acquire_while_worker_holds)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 };
	int *flag = t_shared(64);
	pid_t pid;
	uint64_t t0;

	cr_assert_eq(aiop_lock_new(&L), 0);
	pid = t_fork(worker_hold, flag);
	cr_assert(t_wait_flag(flag, 5000));
	t0 = t_now();
	cr_assert_eq(aiop_lock_coro_acquire(loop, &a.op, L, 5 * T_SEC,
					    t_op_cb), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(a.calls, 1);
	cr_assert_eq(a.result, 0);
	cr_assert_geq(t_now() - t0, 30 * T_MS, "waited for the worker");
	cr_assert_eq(aiop_lock_release(L), 0);
	cr_assert_eq(t_reap(pid, 5000), 0);
	cr_assert_eq(aiop_lock_free(L), 0);
	t_unshared(flag, 64);
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
	cr_assert_eq(t_reap(pid, 5000), 0);
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
	cr_assert_eq(t_reap(pid, 5000), 0);
	aiop_event_free(PING);
	aiop_event_free(PONG);
	ev_loop_destroy(loop);
}
