/* SPDX-License-Identifier: MIT */
/* RLock: owner is (process, thread), recursion depth, -EPERM for others. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <unistd.h>

#include "helpers.h"

static struct aiop_rlock *R;

static void
setup(void)
{
	cr_assert_eq(aiop_rlock_new(&R), 0);
}

static void
teardown(void)
{
	cr_assert_eq(aiop_rlock_free(R), 0);
}

TestSuite(rlock, .init = setup, .fini = teardown, .timeout = 120);

Test(rlock, recursion)
{
	cr_assert_eq(aiop_rlock_depth(R), 0);
	cr_assert_eq(aiop_rlock_acquire(R, AIOP_FOREVER), 0);
	cr_assert_eq(aiop_rlock_acquire(R, 0), 0, "owner re-acquires at once");
	cr_assert_eq(aiop_rlock_try_acquire(R), 0);
	cr_assert_eq(aiop_rlock_depth(R), 3);
	cr_assert_eq(aiop_rlock_release(R), 0);
	cr_assert_eq(aiop_rlock_release(R), 0);
	cr_assert_eq(aiop_rlock_depth(R), 1);
	cr_assert_eq(aiop_rlock_release(R), 0);
	cr_assert_eq(aiop_rlock_depth(R), 0);
	cr_assert_eq(aiop_rlock_release(R), -EPERM, "not held any more");
}

static void *
thread_try(void *arg)
{
	intptr_t r1 = aiop_rlock_release(R);
	intptr_t r2 = aiop_rlock_try_acquire(R);
	intptr_t r3 = aiop_rlock_acquire(R, 30 * T_MS);
	intptr_t r4 = aiop_rlock_depth(R);

	(void)arg;
	return (void *)(intptr_t)(r1 == -EPERM && r2 == -EAGAIN &&
				  r3 == -ETIMEDOUT && r4 == 0);
}

Test(rlock, other_thread_is_not_owner)
{
	pthread_t th;
	void *ok;

	cr_assert_eq(aiop_rlock_acquire(R, AIOP_FOREVER), 0);
	pthread_create(&th, NULL, thread_try, NULL);
	pthread_join(th, &ok);
	cr_assert(ok, "another thread must not own or release it");
	cr_assert_eq(aiop_rlock_depth(R), 1);
	cr_assert_eq(aiop_rlock_release(R), 0);
}

static int
child_try(void *arg)
{
	volatile int *checked = arg;

	if (aiop_rlock_release(R) != -EPERM)
		return 1;
	if (aiop_rlock_try_acquire(R) != -EAGAIN)
		return 2;
	__atomic_store_n(checked, 1, __ATOMIC_SEQ_CST);
	/* waits until the parent has released both levels */
	if (aiop_rlock_acquire(R, 10 * T_SEC) != 0)
		return 3;
	return aiop_rlock_release(R) == 0 ? 0 : 4;
}

Test(rlock, other_process_waits_for_full_release)
{
	int *checked = t_shared(64);
	pid_t pid;

	cr_assert_eq(aiop_rlock_acquire(R, AIOP_FOREVER), 0);
	cr_assert_eq(aiop_rlock_acquire(R, AIOP_FOREVER), 0);
	pid = t_fork(child_try, checked);
	cr_assert(t_wait_flag(checked, 10000));
	cr_assert_eq(aiop_rlock_release(R), 0);
	t_msleep(20);
	cr_assert_eq(aiop_rlock_release(R), 0);
	cr_assert_eq(t_reap(pid, T_REAP_MS), 0);
	t_unshared(checked, 64);
}

Test(rlock, bad_timeout)
{
	cr_assert_eq(aiop_rlock_acquire(R, -7), -EINVAL);
	cr_assert_eq(aiop_rlock_depth(R), 0);
}

Test(rlock, coro_recursive_on_loop_thread)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 }, b = { 0 };

	cr_assert_eq(aiop_rlock_acquire(R, AIOP_FOREVER), 0);
	a.in_start = true;
	cr_assert_eq(aiop_rlock_coro_acquire(loop, &a.op, R, T_SEC, t_op_cb),
		     0);
	a.in_start = false;
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(a.calls, 1);
	cr_assert_eq(a.result, 0);
	cr_assert_eq(aiop_rlock_depth(R), 2);
	/* cancel of a granted recursive acquire undoes one level */
	cr_assert_eq(aiop_rlock_coro_acquire(loop, &b.op, R, T_SEC, t_op_cb),
		     0);
	cr_assert_eq(aiop_rlock_depth(R), 3);
	cr_assert_eq(aiop_op_cancel(&b.op), 0);
	cr_assert_eq(aiop_rlock_depth(R), 2);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(b.result, -ECANCELED);
	cr_assert_eq(aiop_rlock_release(R), 0);
	cr_assert_eq(aiop_rlock_release(R), 0);
	cr_assert_eq(aiop_rlock_depth(R), 0);
	ev_loop_destroy(loop);
}

static int
child_hold_then_release(void *arg)
{
	volatile int *flag = arg;

	if (aiop_rlock_acquire(R, T_SEC) || aiop_rlock_acquire(R, T_SEC))
		return 1;
	__atomic_store_n(flag, 1, __ATOMIC_SEQ_CST);
	t_msleep(80);
	aiop_rlock_release(R);
	t_msleep(20);
	return aiop_rlock_release(R) == 0 ? 0 : 2;
}

Test(rlock, coro_waits_for_other_process)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 }, t = { 0 };
	int *flag = t_shared(64);
	pid_t pid = t_fork(child_hold_then_release, flag);

	cr_assert(t_wait_flag(flag, 5000));
	cr_assert_eq(aiop_rlock_coro_acquire(loop, &t.op, R, 20 * T_MS,
					     t_op_cb), 0);
	cr_assert_eq(aiop_rlock_coro_acquire(loop, &a.op, R, 5 * T_SEC,
					     t_op_cb), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(t.result, -ETIMEDOUT);
	cr_assert_eq(a.result, 0);
	cr_assert_eq(aiop_rlock_depth(R), 1);
	cr_assert_eq(aiop_rlock_release(R), 0);
	cr_assert_eq(t_reap(pid, T_REAP_MS), 0);
	t_unshared(flag, 64);
	ev_loop_destroy(loop);
}
