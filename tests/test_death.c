/* SPDX-License-Identifier: MIT */
/* Peer death: a holder killed with SIGKILL must not wedge the others (the
 * next acquirer gets -EOWNERDEAD); a killed waiter must not hurt anyone. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "internal.h"

static struct aiop_lock *L;
static struct aiop_rlock *R;

TestSuite(death, .timeout = 120);

static int
hold_forever(void *arg)
{
	volatile int *flag = arg;

	if (aiop_lock_acquire(L, T_SEC) != 0)
		return 1;
	__atomic_store_n(flag, 1, __ATOMIC_SEQ_CST);
	for (;;)
		pause();
}

static pid_t
holder_killed(bool reap)
{
	int *flag = t_shared(64);
	pid_t pid = t_fork(hold_forever, flag);

	cr_assert(t_wait_flag(flag, 5000));
	t_unshared(flag, 64);
	kill(pid, SIGKILL);
	if (reap)
		cr_assert_eq(t_reap(pid, T_REAP_MS), -SIGKILL);
	return pid;
}

Test(death, lock_holder_killed_blocking)
{
	uint64_t t0;

	cr_assert_eq(aiop_lock_new(&L), 0);
	holder_killed(true);
	cr_assert_eq(aiop_lock_locked(L), 1);
	t0 = t_now();
	cr_assert_eq(aiop_lock_acquire(L, 5 * T_SEC), -EOWNERDEAD);
	cr_assert_lt(t_now() - t0, 2 * T_SEC, "recovered promptly");
	cr_assert_eq(aiop_lock_release(L), 0);
	cr_assert_eq(aiop_lock_try_acquire(L), 0, "healthy again");
	cr_assert_eq(aiop_lock_release(L), 0);
	cr_assert_eq(aiop_lock_free(L), 0);
}

Test(death, lock_holder_zombie_counts_as_dead)
{
	pid_t pid;

	cr_assert_eq(aiop_lock_new(&L), 0);
	pid = holder_killed(false); /* not reaped: a zombie */
	t_msleep(20);
	cr_assert_eq(aiop_lock_acquire(L, 5 * T_SEC), -EOWNERDEAD);
	cr_assert_eq(aiop_lock_release(L), 0);
	cr_assert_eq(t_reap(pid, T_REAP_MS), -SIGKILL);
	cr_assert_eq(aiop_lock_free(L), 0);
}

Test(death, lock_holder_killed_try)
{
	cr_assert_eq(aiop_lock_new(&L), 0);
	holder_killed(true);
	/* a try also recovers it (probing is rate-limited, so retry) */
	int r = -EAGAIN;
	for (int i = 0; i < 100 && r == -EAGAIN; i++) {
		r = aiop_lock_try_acquire(L);
		if (r == -EAGAIN)
			t_msleep(10);
	}
	cr_assert_eq(r, -EOWNERDEAD);
	cr_assert_eq(aiop_lock_release(L), 0);
	cr_assert_eq(aiop_lock_free(L), 0);
}

Test(death, lock_holder_killed_coro)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 };

	cr_assert_eq(aiop_lock_new(&L), 0);
	holder_killed(true);
	cr_assert_eq(aiop_lock_coro_acquire(loop, &a.op, L, 5 * T_SEC,
					    t_op_cb), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(a.calls, 1);
	cr_assert_eq(a.result, -EOWNERDEAD);
	cr_assert_eq(aiop_lock_locked(L), 1);
	cr_assert_eq(aiop_lock_release(L), 0);
	cr_assert_eq(aiop_lock_free(L), 0);
	ev_loop_destroy(loop);
}

Test(death, short_timeouts_still_recover)
{
	/* a retry loop of waits shorter than the recheck period */
	int r = -ETIMEDOUT, tries = 0;

	cr_assert_eq(aiop_lock_new(&L), 0);
	holder_killed(true);
	while (r == -ETIMEDOUT && tries++ < 40)
		r = aiop_lock_acquire(L, 20 * T_MS);
	cr_assert_eq(r, -EOWNERDEAD, "after %d tries", tries);
	cr_assert_eq(aiop_lock_release(L), 0);
	cr_assert_eq(aiop_lock_free(L), 0);
}

Test(death, short_coro_timeouts_still_recover)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 };
	int tries = 0;

	cr_assert_eq(aiop_lock_new(&L), 0);
	holder_killed(true);
	a.result = -ETIMEDOUT;
	while (a.result == -ETIMEDOUT && tries++ < 40) {
		cr_assert_eq(aiop_lock_coro_acquire(loop, &a.op, L, 20 * T_MS,
						    t_op_cb), 0);
		cr_assert(t_run(loop, 5000));
	}
	cr_assert_eq(a.result, -EOWNERDEAD, "after %d tries", tries);
	cr_assert_eq(aiop_lock_release(L), 0);
	cr_assert_eq(aiop_lock_free(L), 0);
	ev_loop_destroy(loop);
}

static int
rhold_forever(void *arg)
{
	volatile int *flag = arg;

	if (aiop_rlock_acquire(R, T_SEC) || aiop_rlock_acquire(R, T_SEC))
		return 1;
	__atomic_store_n(flag, 1, __ATOMIC_SEQ_CST);
	for (;;)
		pause();
}

Test(death, rlock_owner_killed_blocking_and_coro)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 };
	int *flag = t_shared(64);
	pid_t pid;

	cr_assert_eq(aiop_rlock_new(&R), 0);
	pid = t_fork(rhold_forever, flag);
	cr_assert(t_wait_flag(flag, 5000));
	kill(pid, SIGKILL);
	cr_assert_eq(t_reap(pid, T_REAP_MS), -SIGKILL);
	cr_assert_eq(aiop_rlock_coro_acquire(loop, &a.op, R, 5 * T_SEC,
					     t_op_cb), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(a.result, -EOWNERDEAD);
	cr_assert_eq(aiop_rlock_depth(R), 1, "depth restarts at 1");
	cr_assert_eq(aiop_rlock_release(R), 0);
	/* blocking, again */
	__atomic_store_n(flag, 0, __ATOMIC_SEQ_CST);
	pid = t_fork(rhold_forever, flag);
	cr_assert(t_wait_flag(flag, 5000));
	kill(pid, SIGKILL);
	cr_assert_eq(t_reap(pid, T_REAP_MS), -SIGKILL);
	cr_assert_eq(aiop_rlock_acquire(R, 5 * T_SEC), -EOWNERDEAD);
	cr_assert_eq(aiop_rlock_release(R), 0);
	cr_assert_eq(aiop_rlock_free(R), 0);
	t_unshared(flag, 64);
	ev_loop_destroy(loop);
}

static int
waiter(void *arg)
{
	volatile int *flag = arg;

	__atomic_fetch_add(flag, 1, __ATOMIC_SEQ_CST);
	return aiop_lock_acquire(L, 10 * T_SEC) == 0 &&
			       aiop_lock_release(L) == 0
		       ? 0
		       : 1;
}

static int
coro_waiter(void *arg)
{
	volatile int *flag = arg;
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 };

	if (aiop_lock_coro_acquire(loop, &a.op, L, 10 * T_SEC, t_op_cb))
		return 1;
	__atomic_fetch_add(flag, 1, __ATOMIC_SEQ_CST);
	if (!t_run(loop, 15000) || a.result != 0)
		return 2;
	return aiop_lock_release(L) == 0 ? 0 : 3;
}

Test(death, killed_waiters_hurt_nobody)
{
	int *flag = t_shared(64);
	pid_t victim_b, victim_c, good_b, good_c;

	cr_assert_eq(aiop_lock_new(&L), 0);
	cr_assert_eq(aiop_lock_acquire(L, T_SEC), 0);
	victim_b = t_fork(waiter, flag);
	victim_c = t_fork(coro_waiter, flag);
	good_b = t_fork(waiter, flag);
	good_c = t_fork(coro_waiter, flag);
	while (__atomic_load_n(flag, __ATOMIC_SEQ_CST) < 4)
		t_msleep(1);
	t_msleep(50); /* all asleep */
	kill(victim_b, SIGKILL);
	kill(victim_c, SIGKILL);
	cr_assert_eq(t_reap(victim_b, T_REAP_MS), -SIGKILL);
	cr_assert_eq(t_reap(victim_c, T_REAP_MS), -SIGKILL);
	cr_assert_eq(aiop_lock_release(L), 0);
	cr_assert_eq(t_reap(good_b, T_REAP_MS), 0);
	cr_assert_eq(t_reap(good_c, T_REAP_MS), 0);
	cr_assert_eq(aiop_lock_try_acquire(L), 0);
	cr_assert_eq(aiop_lock_release(L), 0);
	cr_assert_eq(aiop_lock_free(L), 0);
	t_unshared(flag, 64);
}

/*
 * A blocking waiter killed in its sleep stays counted in the lock's
 * sleeper count. It used to stay there for good: every later release made
 * a FUTEX_WAKE for nobody (and the adaptive spin stayed off, as it does
 * while others sleep). The first wake that finds nobody in the kernel now
 * forgets it, and the releases after it make no syscall.
 */
Test(death, a_killed_sleeper_is_forgotten)
{
	int *flag = t_shared(64);
	struct aiop_stats st;
	pid_t victim;

	cr_assert_eq(aiop_lock_new(&L), 0);
	cr_assert_eq(aiop_lock_acquire(L, T_SEC), 0);
	victim = t_fork(waiter, flag);
	cr_assert(t_wait_flag(flag, 5000));
	t_msleep(50); /* asleep */
	kill(victim, SIGKILL);
	cr_assert_eq(t_reap(victim, T_REAP_MS), -SIGKILL);
	aiop_stats_reset();
	cr_assert_eq(aiop_lock_release(L), 0); /* finds nobody: forgets */
	for (int i = 0; i < 100; i++) {
		cr_assert_eq(aiop_lock_try_acquire(L), 0);
		cr_assert_eq(aiop_lock_release(L), 0);
	}
	cr_assert_eq(aiop_stats_get(&st), 0);
	cr_assert_leq(st.futex_wakes, 1, "%llu FUTEX_WAKEs for a dead waiter",
		      (unsigned long long)st.futex_wakes);
	cr_assert_eq(aiop_lock_free(L), 0);
	t_unshared(flag, 64);
}

Test(death, cancelled_recovery_keeps_the_notice)
{
	/* a coro acquire granted with -EOWNERDEAD and then cancelled gives
	 * the lock back as abandoned: the next acquirer is still told */
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 };
	int r = -EAGAIN;

	cr_assert_eq(aiop_lock_new(&L), 0);
	holder_killed(true);
	for (int i = 0; i < 100 && r == -EAGAIN; i++) {
		a.calls = 0;
		cr_assert_eq(aiop_lock_coro_acquire(loop, &a.op, L, 0, t_op_cb),
			     0);
		cr_assert(t_run(loop, 5000));
		r = a.result;
		if (r == -EAGAIN)
			t_msleep(10); /* probes are rate-limited */
	}
	cr_assert_eq(r, -EOWNERDEAD);
	cr_assert_eq(aiop_lock_release(L), 0);
	/* again, but cancel the granted recovery before its callback; after
	 * the 100 ms probe rate limit the timeout-0 start surely probes */
	holder_killed(true);
	t_msleep(150);
	cr_assert_eq(aiop_lock_coro_acquire(loop, &a.op, L, 0, t_op_cb), 0);
	cr_assert_eq(aiop_op_cancel(&a.op), 0);
	cr_assert(t_run(loop, 5000));
	r = a.result;
	cr_assert_eq(r, -ECANCELED);
	cr_assert_eq(aiop_lock_locked(L), 1, "abandoned counts as held");
	cr_assert_eq(aiop_lock_acquire(L, 0), -EOWNERDEAD, "still told");
	cr_assert_eq(aiop_lock_release(L), 0);
	cr_assert_eq(aiop_lock_free(L), 0);
	ev_loop_destroy(loop);
}

/* ---- a Condition wait decided with -EOWNERDEAD, cancelled before its
 * callback: the lock stays with it, and so must the notice ----------------- */

struct cdead {
	int held, go;
};
static struct aiop_lock *L2;
static struct aiop_cond *CV;
static struct aiop_event *EV;
static struct t_op XO, YO, WO;

/* holds L2, then takes L, notifies the waiter, and dies holding both */
static int
notify_and_die(void *arg)
{
	struct cdead *cd = arg;

	if (aiop_lock_acquire(L2, 5 * T_SEC) != 0)
		return 1;
	__atomic_store_n(&cd->held, 1, __ATOMIC_SEQ_CST);
	if (!t_wait_flag(&cd->go, 10000))
		return 2;
	if (aiop_cond_acquire(CV, 5 * T_SEC) != 0 ||
	    aiop_cond_notify(CV, 1) != 1)
		return 3;
	raise(SIGKILL);
	return 4;
}

static void
cdead_w_cb(struct ev_loop *loop, struct aiop_op *op, int result)
{
	t_op_cb(loop, op, result);
	cr_assert_eq(aiop_lock_locked(L), 1, "the wait holds the lock again");
}

/* Y runs before W's callback, whose result is decided: it cancels W */
static void
cdead_y_cb(struct ev_loop *loop, struct aiop_op *op, int result)
{
	t_op_cb(loop, op, result);
	cr_assert(aiop_op_pending(&WO.op));
	cr_assert_eq(aiop_op_cancel(&WO.op), 0);
}

/* X (older than W) recovers L2 in the same probe pass and starts Y */
static void
cdead_x_cb(struct ev_loop *loop, struct aiop_op *op, int result)
{
	t_op_cb(loop, op, result);
	cr_assert_eq(aiop_lock_release(L2), 0);
	cr_assert_eq(aiop_event_coro_wait(loop, &YO.op, EV, 0, cdead_y_cb), 0);
}

/*
 * A Condition wait that took its lock over from a dead holder keeps the
 * lock when it is cancelled before its callback ran (a Condition wait
 * always returns holding it). Its callback used to get -ECANCELED and the
 * next acquirer 0: nobody learnt that the holder had died. -EOWNERDEAD now
 * wins, as it does for a waiting op cancelled whose re-take finds the
 * holder dead.
 */
Test(death, cancelled_decided_condition_wait_keeps_the_notice)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct cdead *cd = t_shared(sizeof(*cd));
	pid_t p;

	memset(&XO, 0, sizeof(XO));
	memset(&YO, 0, sizeof(YO));
	memset(&WO, 0, sizeof(WO));
	cr_assert_eq(aiop_lock_new(&L), 0);
	cr_assert_eq(aiop_lock_new(&L2), 0);
	cr_assert_eq(aiop_cond_new_lock(&CV, L), 0);
	cr_assert_eq(aiop_event_new(&EV), 0);
	cr_assert_eq(aiop_event_set(EV), 0);
	p = t_fork(notify_and_die, cd);
	cr_assert(t_wait_flag(&cd->held, 10000));
	cr_assert_eq(aiop_lock_coro_acquire(loop, &XO.op, L2, 10 * T_SEC,
					    cdead_x_cb), 0);
	cr_assert_eq(aiop_cond_acquire(CV, AIOP_FOREVER), 0);
	cr_assert_eq(aiop_cond_coro_wait(loop, &WO.op, CV, 10 * T_SEC,
					 cdead_w_cb), 0);
	__atomic_store_n(&cd->go, 1, __ATOMIC_SEQ_CST);
	cr_assert_eq(t_reap(p, T_REAP_MS), -SIGKILL);
	cr_assert(t_run(loop, 10000));
	cr_assert_eq(XO.result, -EOWNERDEAD);
	cr_assert_eq(YO.result, 0);
	cr_assert_eq(WO.calls, 1);
	cr_assert_eq(WO.result, -EOWNERDEAD, "the notice reaches the callback");
	cr_assert_eq(aiop_cond_release(CV), 0);
	cr_assert_eq(aiop_lock_try_acquire(L), 0, "healthy again");
	cr_assert_eq(aiop_lock_release(L), 0);
	cr_assert_eq(aiop_cond_free(CV), 0);
	cr_assert_eq(aiop_event_free(EV), 0);
	cr_assert_eq(aiop_lock_free(L2), 0);
	cr_assert_eq(aiop_lock_free(L), 0);
	t_unshared(cd, sizeof(*cd));
	ev_loop_destroy(loop);
}

static int
rlock_busy(void *arg)
{
	(void)arg;
	return aiop_rlock_try_acquire(R) == -EAGAIN ? 0 : 1;
}

static pid_t
rholder_killed(void)
{
	int *flag = t_shared(64);
	pid_t pid = t_fork(rhold_forever, flag);

	cr_assert(t_wait_flag(flag, 5000));
	t_unshared(flag, 64);
	kill(pid, SIGKILL);
	cr_assert_eq(t_reap(pid, T_REAP_MS), -SIGKILL);
	return pid;
}

/* An RLock whose holder was killed, a coro acquire of ours granted with
 * -EOWNERDEAD (a, the recovery; its callback not run yet) and a second
 * one of the same loop granted on top of it (b) */
static void
recovery_and_level(struct ev_loop *loop, struct t_op *a, struct t_op *b)
{
	cr_assert_eq(aiop_rlock_new(&R), 0);
	rholder_killed();
	t_msleep(150); /* past the probe rate limit: the start probes */
	cr_assert_eq(aiop_rlock_coro_acquire(loop, &a->op, R, 0, t_op_cb), 0);
	cr_assert_eq(aiop_rlock_coro_acquire(loop, &b->op, R, 0, t_op_cb), 0);
}

/*
 * RLock: a coro acquire granted with -EOWNERDEAD, then a second one of
 * the same loop granted recursively on top of it, then the first is
 * cancelled. The second still holds the lock: the cancel gives back one
 * level, not the lock (it used to give the whole lock back as abandoned
 * under the second holder's feet; the torture test saw another process
 * take it in about one CI run in fifteen). The second is told of the
 * death itself (-EOWNERDEAD), and the notice is also kept for whoever
 * acquires after the last level goes.
 */
Test(death, rlock_cancelled_recovery_under_a_recursive_grant)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 }, b = { 0 };

	recovery_and_level(loop, &a, &b);
	cr_assert_eq(aiop_op_cancel(&a.op), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(a.result, -ECANCELED);
	/* b took its level on top of a's recovery before a's callback ran:
	 * a's notice might never arrive (as here), so b is told too (with 0
	 * it used the data the dead holder left unknowing: the torture test
	 * caught it once in CI) */
	cr_assert_eq(b.result, -EOWNERDEAD, "granted on top of the recovery");
	cr_assert_eq(aiop_rlock_depth(R), 1, "b still holds it");
	cr_assert_eq(t_reap(t_fork(rlock_busy, NULL), T_REAP_MS), 0,
		     "held: another process cannot take it");
	cr_assert_eq(aiop_rlock_release(R), 0);
	/* the last level went: the next acquirer is told of the death */
	cr_assert_eq(aiop_rlock_acquire(R, 0), -EOWNERDEAD, "still told");
	cr_assert_eq(aiop_rlock_depth(R), 1);
	cr_assert_eq(aiop_rlock_release(R), 0);
	cr_assert_eq(aiop_rlock_acquire(R, 0), 0, "told once");
	cr_assert_eq(aiop_rlock_release(R), 0);
	cr_assert_eq(aiop_rlock_free(R), 0);
	ev_loop_destroy(loop);
}

/*
 * RLock: a coro recovery (a, -EOWNERDEAD) and a level of the same loop on
 * top of it (b, told too); b is cancelled. a's callback has not run, and
 * a may be cancelled in turn: a level the thread takes now must still be
 * told. b's cancel used to clear the thread's mark as if the recovery had
 * been given back: the blocking acquire got 0, a's cancel then took back
 * the recovery, and the thread held the lock never told of the death.
 */
Test(death, rlock_cancelled_level_on_a_recovery_keeps_telling)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 }, b = { 0 };

	recovery_and_level(loop, &a, &b);
	cr_assert_eq(aiop_op_cancel(&b.op), 0);
	cr_assert_eq(aiop_rlock_acquire(R, 0), -EOWNERDEAD,
		     "a's notice has reached nobody yet");
	cr_assert_eq(aiop_op_cancel(&a.op), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(a.result, -ECANCELED);
	cr_assert_eq(b.result, -ECANCELED);
	cr_assert_eq(aiop_rlock_depth(R), 1, "the blocking level");
	cr_assert_eq(aiop_rlock_release(R), 0);
	cr_assert_eq(aiop_rlock_acquire(R, 0), -EOWNERDEAD, "still told");
	cr_assert_eq(aiop_rlock_release(R), 0);
	cr_assert_eq(aiop_rlock_acquire(R, 0), 0, "healthy again");
	cr_assert_eq(aiop_rlock_release(R), 0);
	cr_assert_eq(aiop_rlock_free(R), 0);
	ev_loop_destroy(loop);
}

/* Once the recovery's -EOWNERDEAD reached its caller (a blocking acquire
 * returned it, a coro callback got it), the levels taken on top are
 * healthy grants again: the thread was told once. */
Test(death, rlock_levels_after_a_told_recovery_are_healthy)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 }, b = { 0 };

	cr_assert_eq(aiop_rlock_new(&R), 0);
	rholder_killed();
	cr_assert_eq(aiop_rlock_acquire(R, 5 * T_SEC), -EOWNERDEAD);
	cr_assert_eq(aiop_rlock_acquire(R, 0), 0, "told already");
	cr_assert_eq(aiop_rlock_release(R), 0);
	cr_assert_eq(aiop_rlock_release(R), 0);
	rholder_killed();
	t_msleep(150); /* past the probe rate limit: the start probes */
	cr_assert_eq(aiop_rlock_coro_acquire(loop, &a.op, R, 0, t_op_cb), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(a.result, -EOWNERDEAD);
	cr_assert_eq(aiop_rlock_coro_acquire(loop, &b.op, R, 0, t_op_cb), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(b.result, 0, "a's callback told the thread");
	cr_assert_eq(aiop_rlock_depth(R), 2);
	cr_assert_eq(aiop_rlock_release(R), 0);
	cr_assert_eq(aiop_rlock_release(R), 0);
	cr_assert_eq(aiop_rlock_acquire(R, 0), 0, "healthy");
	cr_assert_eq(aiop_rlock_release(R), 0);
	cr_assert_eq(aiop_rlock_free(R), 0);
	ev_loop_destroy(loop);
}

/*
 * The liveness probe itself (design.md 5). A leader thread that left while
 * its process runs on is dead for a thread probe: a Lock it held is
 * abandoned. A thread pidfd (Linux 6.9) does not report that case, which
 * is one reason the probe reads /proc/TID/stat.
 */

/* Bounded, so that a failed test leaves no process behind for long. */
static void *
park(void *arg)
{
	(void)arg;
	sleep(20);
	_exit(0);
}

static void *
t_tid_thread(void *arg)
{
	__atomic_store_n((int *)arg, (int)syscall(SYS_gettid),
			 __ATOMIC_SEQ_CST);
	for (;;)
		pause();
	return NULL;
}

/* Wait until /proc says this task is a zombie (a leader thread that left
 * shows Z while its process runs on). */
static bool
t_wait_zombie(pid_t pid, int max_ms)
{
	char path[48], buf[512], *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	for (int i = 0; i < max_ms; i++) {
		FILE *f = fopen(path, "r");
		size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

		if (f)
			fclose(f);
		buf[n] = '\0';
		p = strrchr(buf, ')');
		if (p && p[1] == ' ' && p[2] == 'Z')
			return true;
		t_msleep(1);
	}
	return false;
}

/* The main thread leaves, another thread lives on: the leader is a zombie
 * while the process runs. */
static int
leader_exits(void *arg)
{
	pthread_t t;

	(void)arg;
	if (pthread_create(&t, NULL, park, NULL) != 0)
		return 1;
	pthread_exit(NULL);
}

static void
probe_cases(void)
{
	pthread_t t;
	pid_t pid, tid = 0;
	int *flag = t_shared(64);
	bool zombie, alive;

	cr_assert(aiop__tid_alive(getpid()));
	cr_assert_not(aiop__tid_alive(0));
	cr_assert_not(aiop__tid_alive(-1));

	/* a thread of ours: alive; joined, its tid is gone */
	cr_assert_eq(pthread_create(&t, NULL, t_tid_thread, &tid), 0);
	cr_assert(t_wait_flag((volatile int *)&tid, 5000));
	cr_assert(aiop__tid_alive(tid), "a live thread");
	pthread_cancel(t);
	cr_assert_eq(pthread_join(t, NULL), 0);
	/* the join returns when the kernel clears the thread's tid word,
	 * early in its exit: the task is gone a moment later (a soak run
	 * under ASan saw it still there) */
	for (int i = 0; i < 2000 && aiop__tid_alive(tid); i++)
		t_msleep(1);
	cr_assert_not(aiop__tid_alive(tid), "an exited thread");

	/* a process: alive, a zombie (dead), reaped (dead) */
	pid = t_fork(hold_forever, flag);
	cr_assert(t_wait_flag(flag, 5000));
	cr_assert(aiop__tid_alive(pid), "a live process");
	kill(pid, SIGKILL);
	cr_assert(t_wait_zombie(pid, 5000));
	cr_assert_not(aiop__tid_alive(pid), "a zombie is dead");
	cr_assert_eq(t_reap(pid, T_REAP_MS), -SIGKILL);
	cr_assert_not(aiop__tid_alive(pid), "a reaped process");
	t_unshared(flag, 64);

	/* a thread probe of a leader that exited: dead, although its
	 * process runs on */
	pid = t_fork(leader_exits, NULL);
	zombie = t_wait_zombie(pid, 5000);
	alive = aiop__tid_alive(pid);
	kill(pid, SIGKILL);
	cr_assert_eq(t_reap(pid, T_REAP_MS), -SIGKILL);
	cr_assert(zombie);
	cr_assert_not(alive, "the leader thread left");
}

Test(death, the_liveness_probe)
{
	cr_assert_eq(aiop_lock_new(&L), 0); /* hold_forever's lock */
	probe_cases();
	cr_assert_eq(aiop_lock_free(L), 0);
}
