/* SPDX-License-Identifier: MIT */
/* fork(): handles stay valid in children; what is per process (pending ops,
 * loop registrations, doorbells) does not leak into the child. */
#include <criterion/criterion.h>
#include <unistd.h>

#include "helpers.h"

TestSuite(fork, .timeout = 120);

static struct aiop_lock *L;
static struct aiop_sem *S;

static int
child_free(void *arg)
{
	(void)arg;
	/* the parent's pending op is not this process's: free works */
	return aiop_lock_free(L) == 0 ? 0 : 1;
}

Test(fork, child_does_not_inherit_pending_count)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 };

	cr_assert_eq(aiop_lock_new(&L), 0);
	cr_assert_eq(aiop_lock_acquire(L, 0), 0);
	cr_assert_eq(aiop_lock_coro_acquire(loop, &a.op, L, T_SEC, t_op_cb), 0);
	cr_assert_eq(t_reap(t_fork(child_free, NULL), T_REAP_MS), 0);
	cr_assert_eq(aiop_op_cancel(&a.op), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(aiop_lock_release(L), 0);
	cr_assert_eq(aiop_lock_free(L), 0);
	ev_loop_destroy(loop);
}

static int
child_with_own_loop(void *arg)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 };

	(void)arg;
	/* a coro op of its own first, so the child has a registration */
	if (aiop_lock_coro_acquire(loop, &a.op, L, T_SEC, t_op_cb) < 0 ||
	    !t_run(loop, 5000) || a.result != 0)
		return 1;
	t_msleep(50);
	/* released from the child's loop thread: must ring the parent */
	if (aiop_sem_release(S) != 0)
		return 2;
	return aiop_lock_release(L) == 0 ? 0 : 3;
}

Test(fork, child_wakes_parents_loop)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 }, warm = { 0 };
	uint64_t t0;
	pid_t pid;

	cr_assert_eq(aiop_lock_new(&L), 0);
	cr_assert_eq(aiop_sem_new(&S, 0), 0);
	/* the parent registers its loop before the fork */
	cr_assert_eq(aiop_lock_coro_acquire(loop, &warm.op, L, T_SEC,
					    t_op_cb), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(aiop_lock_release(L), 0);
	pid = t_fork(child_with_own_loop, NULL);
	t0 = t_now();
	/* a wake-up routed anywhere but here would only be seen by the 1 s
	 * recheck; the timeout is shorter than that */
	cr_assert_eq(aiop_sem_coro_acquire(loop, &a.op, S, 900 * T_MS,
					   t_op_cb), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(a.result, 0, "woken after %.3f s: %s",
		     (t_now() - t0) / 1e9, aiop_strerror(a.result));
	cr_assert_eq(t_reap(pid, T_REAP_MS), 0);
	cr_assert_eq(aiop_sem_free(S), 0);
	cr_assert_eq(aiop_lock_free(L), 0);
	ev_loop_destroy(loop);
}

struct seen {
	int parent_cb_in_child;
};
static struct seen *SEEN;
static pid_t PARENT;

static void
parent_cb(struct ev_loop *loop, struct aiop_op *op, int result)
{
	if (getpid() != PARENT)
		__atomic_store_n(&SEEN->parent_cb_in_child, 1,
				 __ATOMIC_SEQ_CST);
	t_op_cb(loop, op, result);
}

static struct ev_loop *LOOP;

static int
child_reuses_loop(void *arg)
{
	struct t_op mine = { 0 };

	(void)arg;
	ev_loop_fork(LOOP);
	/* the parent's op (a sem acquire with a 200 ms timeout) is in this
	 * copy of the loop; it must neither run nor take a unit here */
	if (aiop_sem_coro_acquire(LOOP, &mine.op, S, 2 * T_SEC, t_op_cb) < 0)
		return 1;
	if (!t_run(LOOP, 5000))
		return 2;
	return mine.result == 0 ? 0 : 3;
}

Test(fork, child_reusing_loop_never_runs_parents_ops)
{
	struct t_op a = { 0 };
	pid_t pid;

	SEEN = t_shared(sizeof(*SEEN));
	PARENT = getpid();
	LOOP = ev_loop_new(0);
	cr_assert_eq(aiop_sem_new(&S, 0), 0);
	cr_assert_eq(aiop_sem_coro_acquire(LOOP, &a.op, S, 300 * T_MS,
					   parent_cb), 0);
	pid = t_fork(child_reuses_loop, NULL);
	t_msleep(100);
	cr_assert_eq(aiop_sem_release(S), 0); /* one unit: for either */
	cr_assert(t_run(LOOP, 5000));
	t_msleep(400);
	cr_assert_eq(aiop_sem_release(S), 0); /* the child's, if needed */
	cr_assert_eq(t_reap(pid, T_REAP_MS), 0);
	cr_assert_eq(SEEN->parent_cb_in_child, 0);
	cr_assert_eq(a.calls, 1);
	/* two units: the child took one; the parent at most one */
	cr_assert_eq(aiop_sem_get_value(S), a.result == 0 ? 0 : 1);
	cr_assert_eq(aiop_sem_free(S), 0);
	ev_loop_destroy(LOOP);
	t_unshared(SEEN, sizeof(*SEEN));
}
