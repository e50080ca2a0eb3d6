/* SPDX-License-Identifier: MIT */
/* Semaphore and BoundedSemaphore. */
#include <criterion/criterion.h>
#include <unistd.h>

#include "helpers.h"

TestSuite(sem, .timeout = 120);

Test(sem, counts)
{
	struct aiop_sem *s;

	cr_assert_eq(aiop_sem_new(&s, 2), 0);
	cr_assert_eq(aiop_sem_get_value(s), 2);
	cr_assert_eq(aiop_sem_acquire(s, AIOP_FOREVER), 0);
	cr_assert_eq(aiop_sem_try_acquire(s), 0);
	cr_assert_eq(aiop_sem_try_acquire(s), -EAGAIN);
	cr_assert_eq(aiop_sem_acquire(s, 0), -EAGAIN);
	cr_assert_eq(aiop_sem_acquire(s, 20 * T_MS), -ETIMEDOUT);
	cr_assert_eq(aiop_sem_get_value(s), 0);
	cr_assert_eq(aiop_sem_release(s), 0);
	cr_assert_eq(aiop_sem_release(s), 0);
	cr_assert_eq(aiop_sem_release(s), 0, "unbounded: may exceed start");
	cr_assert_eq(aiop_sem_get_value(s), 3);
	cr_assert_eq(aiop_sem_free(s), 0);
}

Test(sem, bounded_overflow_leaves_count)
{
	struct aiop_sem *s;

	cr_assert_eq(aiop_sem_new_bounded(&s, 1), 0);
	cr_assert_eq(aiop_sem_release(s), -EOVERFLOW);
	cr_assert_eq(aiop_sem_get_value(s), 1);
	cr_assert_eq(aiop_sem_acquire(s, T_SEC), 0);
	cr_assert_eq(aiop_sem_release(s), 0);
	cr_assert_eq(aiop_sem_release(s), -EOVERFLOW);
	cr_assert_eq(aiop_sem_get_value(s), 1);
	cr_assert_eq(aiop_sem_free(s), 0);
}

Test(sem, max_value)
{
	struct aiop_sem *s;

	cr_assert_eq(aiop_sem_new(&s, AIOP_SEM_VALUE_MAX + 1u), -EINVAL);
	cr_assert_eq(aiop_sem_new(&s, AIOP_SEM_VALUE_MAX), 0);
	cr_assert_eq(aiop_sem_release(s), -EOVERFLOW);
	cr_assert_eq(aiop_sem_get_value(s), AIOP_SEM_VALUE_MAX);
	cr_assert_eq(aiop_sem_free(s), 0);
}

static struct aiop_sem *S;

Test(sem, bounded_zero)
{
	struct aiop_sem *s;

	cr_assert_eq(aiop_sem_new_bounded(&s, 0), 0);
	cr_assert_eq(aiop_sem_release(s), -EOVERFLOW);
	cr_assert_eq(aiop_sem_try_acquire(s), -EAGAIN);
	cr_assert_eq(aiop_sem_free(s), 0);
}

static int
acquirer(void *arg)
{
	(void)arg;
	return aiop_sem_acquire(S, 5 * T_SEC) == 0 ? 0 : 1;
}

Test(sem, release_wakes_one_per_unit)
{
	pid_t w[3];
	int done = 0;

	cr_assert_eq(aiop_sem_new(&S, 0), 0);
	for (int i = 0; i < 3; i++)
		w[i] = t_fork(acquirer, NULL);
	t_msleep(50);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(aiop_sem_release(S), 0);
	for (int i = 0; i < 3; i++)
		done += t_reap(w[i], T_REAP_MS) == 0;
	cr_assert_eq(done, 3);
	cr_assert_eq(aiop_sem_get_value(S), 0);
	cr_assert_eq(aiop_sem_free(S), 0);
}

Test(sem, coro_pending_then_release_same_process)
{
	/* aioprocessing hangs here: the pending acquire holds the only
	 * executor thread that release needs */
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 }, b = { 0 }, c = { 0 };

	cr_assert_eq(aiop_sem_new(&S, 0), 0);
	a.in_start = true;
	cr_assert_eq(aiop_sem_coro_acquire(loop, &a.op, S, T_SEC, t_op_cb), 0);
	a.in_start = false;
	cr_assert_eq(aiop_sem_coro_acquire(loop, &b.op, S, T_SEC, t_op_cb), 0);
	cr_assert_eq(aiop_sem_coro_acquire(loop, &c.op, S, 30 * T_MS,
					   t_op_cb), 0);
	cr_assert_eq(aiop_sem_release(S), 0);
	cr_assert_eq(aiop_sem_release(S), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(a.calls, 1);
	cr_assert_eq(b.calls, 1);
	cr_assert_eq(c.calls, 1);
	cr_assert_eq(a.result, 0);
	cr_assert_eq(b.result, 0);
	cr_assert_eq(c.result, -ETIMEDOUT);
	cr_assert_eq(aiop_sem_get_value(S), 0);
	cr_assert_eq(aiop_sem_free(S), 0);
	ev_loop_destroy(loop);
}

Test(sem, coro_cancel_granted_posts_back)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 }, b = { 0 };

	cr_assert_eq(aiop_sem_new_bounded(&S, 1), 0);
	cr_assert_eq(aiop_sem_coro_acquire(loop, &a.op, S, T_SEC, t_op_cb), 0);
	cr_assert_eq(aiop_sem_get_value(S), 0, "granted at start");
	cr_assert_eq(aiop_sem_coro_acquire(loop, &b.op, S, T_SEC, t_op_cb), 0);
	cr_assert_eq(aiop_op_cancel(&a.op), 0);
	/* the unit a gave back goes to b, who was waiting */
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(a.result, -ECANCELED);
	cr_assert_eq(b.result, 0);
	cr_assert_eq(aiop_sem_get_value(S), 0);
	cr_assert_eq(aiop_sem_release(S), 0);
	cr_assert_eq(aiop_sem_free(S), 0);
	ev_loop_destroy(loop);
}

static int
child_release_late(void *arg)
{
	(void)arg;
	t_msleep(60);
	return aiop_sem_release(S) == 0 ? 0 : 1;
}

Test(sem, coro_woken_by_other_process)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 };
	pid_t pid;

	cr_assert_eq(aiop_sem_new(&S, 0), 0);
	pid = t_fork(child_release_late, NULL);
	cr_assert_eq(aiop_sem_coro_acquire(loop, &a.op, S, 5 * T_SEC,
					   t_op_cb), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(a.result, 0);
	cr_assert_eq(t_reap(pid, T_REAP_MS), 0);
	cr_assert_eq(aiop_sem_free(S), 0);
	ev_loop_destroy(loop);
}
