/* SPDX-License-Identifier: MIT */
/* Lock: blocking, try and coro variants; success, timeout, cancel, errors. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "helpers.h"

static struct aiop_lock *L;

static void
setup(void)
{
	cr_assert_eq(aiop_lock_new(&L), 0);
}

static void
teardown(void)
{
	cr_assert_eq(aiop_lock_free(L), 0);
}

TestSuite(lock, .init = setup, .fini = teardown, .timeout = 120);

static int
start_acquire(struct ev_loop *loop, struct t_op *t, int64_t timeout)
{
	int r;

	t->in_start = true;
	t->calls = 0;
	r = aiop_lock_coro_acquire(loop, &t->op, L, timeout, t_op_cb);
	t->in_start = false;
	return r;
}

Test(lock, acquire_release)
{
	cr_assert_eq(aiop_lock_locked(L), 0);
	cr_assert_eq(aiop_lock_acquire(L, AIOP_FOREVER), 0);
	cr_assert_eq(aiop_lock_locked(L), 1);
	cr_assert_eq(aiop_lock_try_acquire(L), -EAGAIN);
	cr_assert_eq(aiop_lock_acquire(L, 0), -EAGAIN, "0 means try");
	cr_assert_eq(aiop_lock_release(L), 0);
	cr_assert_eq(aiop_lock_try_acquire(L), 0);
	cr_assert_eq(aiop_lock_release(L), 0);
}

Test(lock, release_unlocked_is_eperm)
{
	cr_assert_eq(aiop_lock_release(L), -EPERM);
	cr_assert_eq(aiop_lock_acquire(L, T_SEC), 0);
	cr_assert_eq(aiop_lock_release(L), 0);
	cr_assert_eq(aiop_lock_release(L), -EPERM);
}

Test(lock, bad_timeout_is_einval)
{
	cr_assert_eq(aiop_lock_acquire(L, -2), -EINVAL);
	cr_assert_eq(aiop_lock_locked(L), 0, "a bad call takes nothing");
}

Test(lock, timeout_honoured)
{
	uint64_t t0;
	int r;

	cr_assert_eq(aiop_lock_acquire(L, AIOP_FOREVER), 0);
	t0 = t_now();
	/* same thread: the lock is not recursive, so this must time out */
	r = aiop_lock_acquire(L, 50 * T_MS);
	cr_assert_eq(r, -ETIMEDOUT);
	cr_assert_geq(t_now() - t0, 50 * T_MS);
	cr_assert_lt(t_now() - t0, 2 * T_SEC);
	cr_assert_eq(aiop_lock_release(L), 0);
}

static int
child_release(void *arg)
{
	(void)arg;
	return aiop_lock_release(L) == 0 ? 0 : 1;
}

Test(lock, any_process_may_release)
{
	cr_assert_eq(aiop_lock_acquire(L, AIOP_FOREVER), 0);
	cr_assert_eq(t_reap(t_fork(child_release, NULL), T_REAP_MS), 0);
	cr_assert_eq(aiop_lock_locked(L), 0);
}

static void *
thread_release(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)aiop_lock_release(L);
}

Test(lock, any_thread_may_release)
{
	pthread_t th;
	void *ret;

	cr_assert_eq(aiop_lock_acquire(L, AIOP_FOREVER), 0);
	pthread_create(&th, NULL, thread_release, NULL);
	pthread_join(th, &ret);
	cr_assert_eq((intptr_t)ret, 0);
	cr_assert_eq(aiop_lock_locked(L), 0);
}

/* flags[0]: child holds; flags[1]: parent is about to wait;
 * flags[2]: child is releasing */
static int
child_hold(void *arg)
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

Test(lock, blocking_waiter_woken_by_other_process)
{
	int *flags = t_shared(64);
	pid_t pid = t_fork(child_hold, flags);

	cr_assert(t_wait_flag(&flags[0], 5000));
	__atomic_store_n(&flags[1], 1, __ATOMIC_SEQ_CST);
	cr_assert_eq(aiop_lock_acquire(L, 10 * T_SEC), 0);
	cr_assert_eq(flags[2], 1, "acquired before the holder released");
	cr_assert_eq(aiop_lock_release(L), 0);
	cr_assert_eq(t_reap(pid, T_REAP_MS), 0);
	t_unshared(flags, 64);
}

Test(lock, coro_immediate_never_inside_start)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 };

	cr_assert_eq(start_acquire(loop, &a, AIOP_FOREVER), 0);
	cr_assert_eq(a.calls, 0, "callback ran inside the start call");
	cr_assert_eq(aiop_op_pending(&a.op), 1);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(a.calls, 1);
	cr_assert_eq(a.result, 0);
	cr_assert_eq(aiop_op_pending(&a.op), 0);
	cr_assert_eq(aiop_lock_locked(L), 1);
	cr_assert_eq(aiop_lock_release(L), 0);
	cr_assert_eq(aiop_loop_detach(loop), 0);
	ev_loop_destroy(loop);
}

Test(lock, coro_timeout_and_zero)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 }, z = { 0 };
	uint64_t t0;

	cr_assert_eq(aiop_lock_acquire(L, AIOP_FOREVER), 0);
	t0 = t_now();
	cr_assert_eq(start_acquire(loop, &a, 50 * T_MS), 0);
	cr_assert_eq(start_acquire(loop, &z, 0), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(a.calls, 1);
	cr_assert_eq(a.result, -ETIMEDOUT);
	cr_assert_geq(t_now() - t0, 45 * T_MS);
	cr_assert_eq(z.calls, 1);
	cr_assert_eq(z.result, -EAGAIN, "timeout 0 means try");
	cr_assert_eq(aiop_lock_release(L), 0);
	ev_loop_destroy(loop);
}

Test(lock, coro_cancel_pending)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 };

	cr_assert_eq(aiop_lock_acquire(L, AIOP_FOREVER), 0);
	cr_assert_eq(start_acquire(loop, &a, AIOP_FOREVER), 0);
	cr_assert_eq(aiop_lock_free(L), -EBUSY, "handle has a pending op");
	cr_assert_eq(aiop_op_cancel(&a.op), 0);
	cr_assert_eq(a.calls, 0, "cancel must not call back synchronously");
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(a.calls, 1);
	cr_assert_eq(a.result, -ECANCELED);
	cr_assert_eq(aiop_op_cancel(&a.op), -EALREADY);
	/* the cancelled op must not take the lock later */
	cr_assert_eq(aiop_lock_release(L), 0);
	cr_assert(t_run(loop, 100));
	cr_assert_eq(aiop_lock_locked(L), 0);
	cr_assert_eq(a.calls, 1);
	ev_loop_destroy(loop);
}

Test(lock, coro_cancel_granted_gives_it_back)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 };

	/* granted at start: the lock is taken before the callback runs */
	cr_assert_eq(start_acquire(loop, &a, AIOP_FOREVER), 0);
	cr_assert_eq(aiop_lock_locked(L), 1);
	cr_assert_eq(aiop_op_cancel(&a.op), 0);
	cr_assert_eq(aiop_lock_locked(L), 0, "undo must release it");
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(a.calls, 1);
	cr_assert_eq(a.result, -ECANCELED);
	ev_loop_destroy(loop);
}

struct relay {
	int taken, done;
};

/* releases the lock (any process may) and takes it for itself */
static int
release_and_take(void *arg)
{
	struct relay *rl = arg;
	int r;

	if (aiop_lock_release(L) != 0 || aiop_lock_acquire(L, 0) != 0)
		return 1;
	__atomic_store_n(&rl->taken, 1, __ATOMIC_SEQ_CST);
	if (!t_wait_flag(&rl->done, 10000))
		return 2;
	r = aiop_lock_release(L);
	return r == 0 ? 0 : r == -EPERM ? 3 : 4;
}

/*
 * A coro acquire is granted; before its callback, another process releases
 * the lock and takes it. Cancelling the grant must not release the lock
 * under that process: the undo gives the lock back only if it is still
 * the loop thread's (it used to store 0 whatever the owner).
 */
Test(lock, a_cancelled_grant_spares_a_later_holder)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct relay *rl = t_shared(sizeof(*rl));
	struct t_op a = { 0 };
	pid_t p;

	cr_assert_eq(start_acquire(loop, &a, AIOP_FOREVER), 0);
	cr_assert_eq(aiop_lock_locked(L), 1, "granted at start");
	p = t_fork(release_and_take, rl);
	cr_assert(t_wait_flag(&rl->taken, 10000));
	cr_assert_eq(aiop_op_cancel(&a.op), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(a.result, -ECANCELED);
	cr_assert_eq(aiop_lock_locked(L), 1, "still the child's");
	__atomic_store_n(&rl->done, 1, __ATOMIC_SEQ_CST);
	cr_assert_eq(t_reap(p, T_REAP_MS), 0, "the child's release worked");
	cr_assert_eq(aiop_lock_locked(L), 0);
	t_unshared(rl, sizeof(*rl));
	ev_loop_destroy(loop);
}

/*
 * The same, but the loop's own thread takes the lock again after it was
 * released under the grant: the cancel must still leave that hold alone.
 * The owner word carries a serial per hold; with the tid alone the cancel
 * released this thread's later hold (a documented limit until then).
 */
Test(lock, a_cancelled_grant_spares_the_same_threads_later_hold)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 }, b = { 0 };

	for (int round = 0; round < 3; round++) {
		cr_assert_eq(start_acquire(loop, &a, AIOP_FOREVER), 0);
		cr_assert_eq(aiop_lock_release(L), 0, "released under it");
		if (round == 0) {
			cr_assert_eq(aiop_lock_try_acquire(L), 0);
		} else if (round == 1) {
			cr_assert_eq(aiop_lock_acquire(L, T_SEC), 0);
		} else {
			/* a second op of the same loop, granted too */
			cr_assert_eq(start_acquire(loop, &b, AIOP_FOREVER),
				     0);
		}
		cr_assert_eq(aiop_op_cancel(&a.op), 0);
		cr_assert(t_run(loop, 5000));
		cr_assert_eq(a.result, -ECANCELED);
		if (round == 2)
			cr_assert_eq(b.result, 0, "the later op holds it");
		cr_assert_eq(aiop_lock_locked(L), 1,
			     "round %d: the later hold was released", round);
		cr_assert_eq(aiop_lock_release(L), 0);
		cr_assert_eq(aiop_lock_release(L), -EPERM);
	}
	ev_loop_destroy(loop);
}

Test(lock, coro_double_start_is_ebusy)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 };

	cr_assert_eq(start_acquire(loop, &a, AIOP_FOREVER), 0);
	cr_assert_eq(start_acquire(loop, &a, AIOP_FOREVER), -EBUSY);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(a.calls, 1);
	cr_assert_eq(aiop_lock_release(L), 0);
	/* a completed op may be started again */
	cr_assert_eq(start_acquire(loop, &a, AIOP_FOREVER), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(a.calls, 1);
	cr_assert_eq(a.result, 0);
	cr_assert_eq(aiop_lock_release(L), 0);
	ev_loop_destroy(loop);
}

static void
release_and_count(struct ev_loop *loop, struct aiop_op *op, int result)
{
	t_op_cb(loop, op, result);
	if (result == 0)
		aiop_lock_release(L);
}

Test(lock, two_coro_ops_one_process)
{
	/* aioprocessing deadlocks here: one executor thread per object */
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 }, b = { 0 };

	cr_assert_eq(aiop_lock_coro_acquire(loop, &a.op, L, T_SEC,
					    release_and_count), 0);
	cr_assert_eq(aiop_lock_coro_acquire(loop, &b.op, L, T_SEC,
					    release_and_count), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(a.calls, 1);
	cr_assert_eq(b.calls, 1);
	cr_assert_eq(a.result, 0);
	cr_assert_eq(b.result, 0);
	cr_assert_eq(aiop_lock_locked(L), 0);
	ev_loop_destroy(loop);
}

Test(lock, uncontended_makes_no_syscall)
{
	struct aiop_stats s;

	aiop_stats_reset();
	for (int i = 0; i < 10000; i++) {
		cr_assert_eq(aiop_lock_acquire(L, AIOP_FOREVER), 0);
		cr_assert_eq(aiop_lock_release(L), 0);
		cr_assert_eq(aiop_lock_try_acquire(L), 0);
		cr_assert_eq(aiop_lock_release(L), 0);
	}
	aiop_stats_get(&s);
	cr_assert_eq(s.futex_waits + s.futex_wakes + s.doorbell_rings +
			     s.doorbell_reads + s.owner_probes, 0);
}
