/* SPDX-License-Identifier: MIT */
/* Barrier: indices, action, cyclic use, timeout/abort/reset/failing action
 * break it, coro parties in one loop, mixed parties, a dying party. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

TestSuite(barrier, .timeout = 120);

#define MAXP 8
struct shared {
	int actions;
	int action_before_release; /* set by the action, read by waiters */
	int seen_before[MAXP];
	int idx[MAXP];
	int res[MAXP];
	int cycle[MAXP];
	int bad;
	int ready;
};
static struct shared *SH;
static struct aiop_barrier *B;

static int
count_action(void *arg)
{
	(void)arg;
	__atomic_fetch_add(&SH->actions, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&SH->action_before_release, 1, __ATOMIC_SEQ_CST);
	return 0;
}

static int
fail_action(void *arg)
{
	(void)arg;
	return -1;
}

static int
party(void *arg)
{
	int me = (int)(intptr_t)arg;
	int r = aiop_barrier_wait(B, 10 * T_SEC);

	SH->res[me] = r;
	SH->idx[me] = r;
	SH->seen_before[me] = __atomic_load_n(&SH->action_before_release,
					      __ATOMIC_SEQ_CST);
	return 0;
}

static void
setup(void)
{
	SH = t_shared(sizeof(*SH));
}

static void
teardown(void)
{
	cr_assert_eq(aiop_barrier_free(B), 0);
	t_unshared(SH, sizeof(*SH));
}

Test(barrier, bad_arguments)
{
	struct aiop_barrier *b;

	cr_assert_eq(aiop_barrier_new(NULL, 2, NULL, NULL), -EINVAL);
	cr_assert_eq(aiop_barrier_new(&b, 0, NULL, NULL), -EINVAL);
	cr_assert_eq(aiop_barrier_new(&b, AIOP_BARRIER_PARTIES_MAX + 1, NULL,
				      NULL), -EINVAL);
	cr_assert_eq(aiop_barrier_wait(NULL, 0), -EINVAL);
	cr_assert_eq(aiop_barrier_parties(NULL), -EINVAL);
	cr_assert_eq(aiop_barrier_new(&b, 1, NULL, NULL), 0);
	cr_assert_eq(aiop_barrier_wait(b, -5), -EINVAL);
	cr_assert_eq(aiop_barrier_wait(b, AIOP_FOREVER), 0, "one party");
	cr_assert_eq(aiop_barrier_wait(b, 0), 0, "cyclic");
	cr_assert_eq(aiop_barrier_parties(b), 1);
	cr_assert_eq(aiop_barrier_free(b), 0);
}

Test(barrier, three_processes_indices_and_action, .init = setup,
     .fini = teardown)
{
	pid_t p[2];
	int r, seen = 0;

	cr_assert_eq(aiop_barrier_new(&B, 3, count_action, NULL), 0);
	cr_assert_eq(aiop_barrier_n_waiting(B), 0);
	for (int i = 0; i < 2; i++)
		p[i] = t_fork(party, (void *)(intptr_t)i);
	r = aiop_barrier_wait(B, 10 * T_SEC);
	cr_assert_geq(r, 0);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(t_reap(p[i], T_REAP_MS), 0);
	seen = (1 << r) | (1 << SH->idx[0]) | (1 << SH->idx[1]);
	cr_assert_eq(seen, 7, "indices 0, 1, 2 each once (%d %d %d)", r,
		     SH->idx[0], SH->idx[1]);
	cr_assert_eq(SH->actions, 1, "the action ran once");
	cr_assert(SH->seen_before[0] && SH->seen_before[1],
		  "the action ran before the others were released");
	cr_assert_eq(aiop_barrier_broken(B), 0);
}

Test(barrier, timeout_breaks_until_reset, .init = setup, .fini = teardown)
{
	pid_t p;

	cr_assert_eq(aiop_barrier_new(&B, 3, NULL, NULL), 0);
	p = t_fork(party, (void *)0); /* waits 10 s */
	while (aiop_barrier_n_waiting(B) < 1)
		t_msleep(1);
	cr_assert_eq(aiop_barrier_wait(B, 30 * T_MS), -ETIMEDOUT);
	cr_assert_eq(t_reap(p, T_REAP_MS), 0);
	cr_assert_eq(SH->res[0], -EPIPE, "the other waiter: broken");
	cr_assert_eq(aiop_barrier_broken(B), 1);
	cr_assert_eq(aiop_barrier_n_waiting(B), 0);
	cr_assert_eq(aiop_barrier_wait(B, T_SEC), -EPIPE, "later: broken");
	cr_assert_eq(aiop_barrier_reset(B), 0);
	cr_assert_eq(aiop_barrier_broken(B), 0);
	p = t_fork(party, (void *)0);
	t_fork(party, (void *)1);
	cr_assert_geq(aiop_barrier_wait(B, 10 * T_SEC), 0, "usable again");
	cr_assert_eq(t_reap(p, T_REAP_MS), 0);
	while (wait(NULL) > 0)
		;
}

Test(barrier, abort_and_reset_release_waiters, .init = setup,
     .fini = teardown)
{
	pid_t p;

	cr_assert_eq(aiop_barrier_new(&B, 3, NULL, NULL), 0);
	p = t_fork(party, (void *)0);
	while (aiop_barrier_n_waiting(B) < 1)
		t_msleep(1);
	cr_assert_eq(aiop_barrier_abort(B), 0);
	cr_assert_eq(t_reap(p, T_REAP_MS), 0);
	cr_assert_eq(SH->res[0], -EPIPE);
	cr_assert_eq(aiop_barrier_reset(B), 0);
	p = t_fork(party, (void *)1);
	while (aiop_barrier_n_waiting(B) < 1)
		t_msleep(1);
	cr_assert_eq(aiop_barrier_reset(B), 0, "reset with a waiter");
	cr_assert_eq(t_reap(p, T_REAP_MS), 0);
	cr_assert_eq(SH->res[1], -EPIPE, "current waiters: broken");
	cr_assert_eq(aiop_barrier_broken(B), 0, "but re-armed");
	cr_assert_eq(aiop_barrier_n_waiting(B), 0);
}

Test(barrier, failing_action_breaks, .init = setup, .fini = teardown)
{
	pid_t p;

	cr_assert_eq(aiop_barrier_new(&B, 2, fail_action, NULL), 0);
	p = t_fork(party, (void *)0);
	cr_assert_eq(aiop_barrier_wait(B, 10 * T_SEC), -EPIPE);
	cr_assert_eq(t_reap(p, T_REAP_MS), 0);
	cr_assert_eq(SH->res[0], -EPIPE);
	cr_assert_eq(aiop_barrier_broken(B), 1);
}

Test(barrier, two_coro_parties_one_loop, .init = setup, .fini = teardown)
{
	/* aioprocessing hangs here: one executor thread per object */
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 }, b = { 0 };

	cr_assert_eq(aiop_barrier_new(&B, 2, count_action, NULL), 0);
	a.in_start = true;
	cr_assert_eq(aiop_barrier_coro_wait(loop, &a.op, B, 5 * T_SEC,
					    t_op_cb), 0);
	a.in_start = false;
	b.in_start = true;
	cr_assert_eq(aiop_barrier_coro_wait(loop, &b.op, B, 5 * T_SEC,
					    t_op_cb), 0);
	b.in_start = false;
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(a.calls, 1);
	cr_assert_eq(b.calls, 1);
	cr_assert_eq((1 << a.result) | (1 << b.result), 3);
	cr_assert_eq(SH->actions, 1);
	ev_loop_destroy(loop);
}

Test(barrier, coro_timeout_cancel, .init = setup, .fini = teardown)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 }, c = { 0 };

	cr_assert_eq(aiop_barrier_new(&B, 2, NULL, NULL), 0);
	cr_assert_eq(aiop_barrier_coro_wait(loop, &a.op, B, 20 * T_MS,
					    t_op_cb), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(a.result, -ETIMEDOUT);
	cr_assert_eq(aiop_barrier_broken(B), 1);
	cr_assert_eq(aiop_barrier_reset(B), 0);
	cr_assert_eq(aiop_barrier_coro_wait(loop, &c.op, B, AIOP_FOREVER,
					    t_op_cb), 0);
	cr_assert_eq(aiop_op_cancel(&c.op), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(c.result, -ECANCELED);
	cr_assert_eq(aiop_barrier_broken(B), 1, "an arrived party left");
	ev_loop_destroy(loop);
}

/* mixed parties across processes, cycling: every cycle each party records
 * its cycle number; after the barrier nobody may be a cycle behind */
static int
cycles(void)
{
	/* fewer under valgrind (its test setup sets AIOP_STRESS_MS) */
	return getenv("AIOP_STRESS_MS") ? 200 : 2000;
}

static int
cycler(void *arg)
{
	int me = (int)(intptr_t)arg;
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op op = { 0 };

	for (int c = 1; c <= cycles(); c++) {
		int r;

		__atomic_store_n(&SH->cycle[me], c, __ATOMIC_SEQ_CST);
		if (me % 2) {
			r = aiop_barrier_wait(B, 10 * T_SEC);
		} else {
			if (aiop_barrier_coro_wait(loop, &op.op, B, 10 * T_SEC,
						   t_op_cb) < 0 ||
			    !t_run(loop, 15000))
				return 1;
			r = op.result;
		}
		if (r < 0)
			return 2;
		for (int i = 0; i < 4; i++)
			if (__atomic_load_n(&SH->cycle[i], __ATOMIC_SEQ_CST) <
			    c)
				__atomic_fetch_add(&SH->bad, 1,
						   __ATOMIC_SEQ_CST);
		/* nobody starts cycle c+2 before I finish c: barrier c+1 */
	}
	ev_loop_destroy(loop);
	return 0;
}

Test(barrier, cycles_mixed_blocking_and_coro, .init = setup,
     .fini = teardown)
{
	pid_t p[4];

	cr_assert_eq(aiop_barrier_new(&B, 4, count_action, NULL), 0);
	for (int i = 0; i < 4; i++)
		p[i] = t_fork(cycler, (void *)(intptr_t)i);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(t_reap(p[i], 120000), 0, "party %d", i);
	cr_assert_eq(SH->bad, 0, "a party passed before all arrived");
	cr_assert_eq(SH->actions, cycles());
}

static int
arrive_then_die(void *arg)
{
	(void)arg;
	aiop_barrier_wait(B, AIOP_FOREVER);
	return 1;
}

/*
 * As arrive_then_die, but says when its slot is recorded (a coro start
 * arrives and records before it returns): a party killed between its
 * arrival and its record is not seen (barrier.md), and a test that kills
 * a party once aiop_barrier_n_waiting() counts it can land in that window
 * (seen under valgrind on a loaded machine).
 */
static int
arrive_recorded_then_die(void *arg)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 };

	(void)arg;
	if (aiop_barrier_coro_wait(loop, &a.op, B, AIOP_FOREVER,
				   t_op_cb) < 0)
		return 2;
	__atomic_store_n(&SH->ready, 1, __ATOMIC_SEQ_CST);
	t_run(loop, 60000); /* killed long before */
	return 1;
}

/* Fork a party that arrives, records its slot and waits to be killed */
static pid_t
fork_recorded_party(void)
{
	pid_t p;

	__atomic_store_n(&SH->ready, 0, __ATOMIC_SEQ_CST);
	p = t_fork(arrive_recorded_then_die, NULL);
	cr_assert_gt(p, 0);
	cr_assert(t_wait_flag(&SH->ready, 10000), "the party arrived");
	return p;
}

Test(barrier, dead_party_breaks_it_promptly, .init = setup,
     .fini = teardown)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 };
	pid_t victim;
	uint64_t t0;

	cr_assert_eq(aiop_barrier_new(&B, 4, NULL, NULL), 0);
	victim = t_fork(arrive_then_die, NULL);
	while (aiop_barrier_n_waiting(B) < 1)
		t_msleep(1);
	t_fork(party, (void *)0); /* a blocking party, 10 s timeout */
	cr_assert_eq(aiop_barrier_coro_wait(loop, &a.op, B, AIOP_FOREVER,
					    t_op_cb), 0);
	while (aiop_barrier_n_waiting(B) < 3)
		t_msleep(1);
	kill(victim, SIGKILL);
	cr_assert_eq(t_reap(victim, T_REAP_MS), -SIGKILL);
	t0 = t_now();
	cr_assert(t_run(loop, 5000), "the coro party must not hang");
	cr_assert_eq(a.result, -EPIPE);
	cr_assert_lt(t_now() - t0, 2 * T_SEC, "promptly (bound ~100 ms)");
	while (wait(NULL) > 0)
		;
	cr_assert_eq(SH->res[0], -EPIPE, "the blocking party too");
	ev_loop_destroy(loop);
}

Test(barrier, no_pass_without_proof, .init = setup, .fini = teardown)
{
	/* a party whose generation ended more than 32 generations ago (here
	 * by reset) cannot prove it passed: -EPIPE, never its index */
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 };

	cr_assert_eq(aiop_barrier_new(&B, 1, NULL, NULL), 0);
	aiop_barrier_free(B);
	cr_assert_eq(aiop_barrier_new(&B, 2, NULL, NULL), 0);
	cr_assert_eq(aiop_barrier_coro_wait(loop, &a.op, B, 5 * T_SEC,
					    t_op_cb), 0);
	for (int i = 0; i < 32; i++)
		cr_assert_eq(aiop_barrier_reset(B), 0);
	/* generation 32 ends by a release, reusing the history bit of 0 */
	cr_assert_eq(aiop_barrier_n_waiting(B), 0);
	{
		struct ev_loop *l2 = ev_loop_new(0);
		struct t_op x = { 0 }, y = { 0 };

		cr_assert_eq(aiop_barrier_coro_wait(l2, &x.op, B, T_SEC,
						    t_op_cb), 0);
		cr_assert_eq(aiop_barrier_coro_wait(l2, &y.op, B, T_SEC,
						    t_op_cb), 0);
		cr_assert(t_run(l2, 5000));
		cr_assert_geq(x.result, 0);
		ev_loop_destroy(l2);
	}
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(a.result, -EPIPE);
	ev_loop_destroy(loop);
}

/* ---- found by review (each fails on the code before its fix) ----------- */

static int
slow_action(void *arg)
{
	(void)arg;
	__atomic_store_n(&SH->ready, 1, __ATOMIC_SEQ_CST);
	t_msleep(300);
	return 0;
}

static int
wait_then_exit(void *arg)
{
	(void)arg;
	return aiop_barrier_wait(B, 10 * T_SEC) < 0;
}

/*
 * Two coro parties of one loop both start while the barrier is full (the
 * last party of the generation runs its action). The older one arrives in
 * the next generation and still has to wait: its failed attempt said
 * nothing about the younger one, which completes the generation. The
 * dispatcher used to skip the younger op after the older one failed (the
 * per-pass skip), in every pass: both waited for their timeout.
 */
Test(barrier, two_loop_parties_that_find_it_full_meet, .init = setup,
     .fini = teardown)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 }, b = { 0 };
	pid_t p[2];

	cr_assert_eq(aiop_barrier_new(&B, 2, slow_action, NULL), 0);
	p[0] = t_fork(wait_then_exit, NULL);
	p[1] = t_fork(wait_then_exit, NULL);
	for (int i = 0; i < 5000 && !__atomic_load_n(&SH->ready,
						      __ATOMIC_SEQ_CST); i++)
		t_msleep(1);
	cr_assert(SH->ready, "the generation's action runs");
	cr_assert_eq(aiop_barrier_coro_wait(loop, &a.op, B, 5 * T_SEC,
					    t_op_cb), 0);
	cr_assert_eq(aiop_barrier_coro_wait(loop, &b.op, B, 5 * T_SEC,
					    t_op_cb), 0);
	cr_assert(t_run(loop, 8000));
	cr_assert_eq((1 << a.result) | (1 << b.result), 3,
		     "the loop's parties met: %d %d", a.result, b.result);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(t_reap(p[i], T_REAP_MS), 0);
	ev_loop_destroy(loop);
}

static int
hang_action(void *arg)
{
	(void)arg;
	__atomic_store_n(&SH->ready, 1, __ATOMIC_SEQ_CST);
	for (;;)
		pause();
	return 0;
}

/*
 * Every party of a generation dies, the last one inside its action: the
 * barrier stays full. The next caller cannot arrive, and it is the one
 * who must find the dead parties (barrier.md: -EPIPE within about 100 ms).
 * It used to wait for its timeout, forever with AIOP_FOREVER.
 */
Test(barrier, a_full_barrier_of_dead_parties_breaks, .init = setup,
     .fini = teardown)
{
	for (unsigned parties = 1; parties <= 2; parties++) {
		pid_t kid[2];
		uint64_t t0;

		SH->ready = 0;
		cr_assert_eq(aiop_barrier_new(&B, parties, hang_action, NULL),
			     0);
		for (unsigned i = 0; i < parties; i++) {
			kid[i] = t_fork(wait_then_exit, NULL);
			while (i + 1 < parties &&
			       aiop_barrier_n_waiting(B) < (int)i + 1)
				t_msleep(1);
		}
		for (int i = 0; i < 5000 && !__atomic_load_n(
						    &SH->ready,
						    __ATOMIC_SEQ_CST); i++)
			t_msleep(1);
		for (unsigned i = 0; i < parties; i++) {
			kill(kid[i], SIGKILL);
			cr_assert_eq(t_reap(kid[i], T_REAP_MS), -SIGKILL);
		}
		t0 = t_now();
		cr_assert_eq(aiop_barrier_wait(B, 3 * T_SEC), -EPIPE,
			     "%u parties", parties);
		cr_assert_lt(t_now() - t0, 2 * T_SEC, "promptly");
		cr_assert_eq(aiop_barrier_broken(B), 1);
		if (parties == 1)
			cr_assert_eq(aiop_barrier_free(B), 0);
	}
}

static struct aiop_op *to_cancel;

static int
cancel_action(void *arg)
{
	(void)arg;
	if (to_cancel) /* the loop's process: cancel its own party */
		SH->res[0] = aiop_op_cancel(to_cancel);
	else /* the child: keep the barrier full a moment */
		slow_action(NULL);
	return 0;
}

/*
 * A barrier's action runs inside the attempt of the party that arrives
 * last. An action that cancels that very op (say, "cancel my pending
 * parties") unlinked it under the dispatcher, which then completed it a
 * second time: a crash. The op now gets one callback, -ECANCELED.
 */
Test(barrier, an_action_may_cancel_its_own_party, .init = setup,
     .fini = teardown)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 };
	pid_t p;

	to_cancel = NULL;
	cr_assert_eq(aiop_barrier_new(&B, 1, cancel_action, NULL), 0);
	SH->res[0] = 1;
	p = t_fork(wait_then_exit, NULL);
	for (int i = 0; i < 5000 && !__atomic_load_n(&SH->ready,
						      __ATOMIC_SEQ_CST); i++)
		t_msleep(1);
	to_cancel = &a.op;
	/* full now: the op waits and arrives from the loop's pass */
	cr_assert_eq(aiop_barrier_coro_wait(loop, &a.op, B, 5 * T_SEC,
					    t_op_cb), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(SH->res[0], 0, "the cancel from the action");
	cr_assert_eq(a.calls, 1);
	cr_assert_eq(a.result, -ECANCELED);
	cr_assert_eq(aiop_op_pending(&a.op), 0);
	cr_assert_eq(t_reap(p, T_REAP_MS), 0);
	to_cancel = NULL;
	ev_loop_destroy(loop);
}

/*
 * An action run by a start call's own attempt (the starter is the last
 * party) that detaches the loop: nothing waited or was queued yet, so the
 * detach succeeded and the start call went on with a detached
 * registration: a crash (found by review). The start call's attempts now
 * count as dispatch, as callbacks do: the detach gets -EBUSY.
 */
static struct ev_loop *detach_loop;

static int
detach_action(void *arg)
{
	(void)arg;
	SH->res[1] = aiop_loop_detach(detach_loop);
	return 0;
}

Test(barrier, an_action_in_a_start_call_cannot_detach_the_loop,
     .init = setup, .fini = teardown)
{
	struct t_op a = { 0 };

	detach_loop = ev_loop_new(0);
	cr_assert_eq(aiop_barrier_new(&B, 1, detach_action, NULL), 0);
	for (int i = 0; i < 2; i++) {
		memset(&a, 0, sizeof(a));
		SH->res[1] = 1;
		cr_assert_eq(aiop_barrier_coro_wait(detach_loop, &a.op, B,
						    AIOP_FOREVER, t_op_cb),
			     0);
		cr_assert_eq(SH->res[1], -EBUSY, "detach: %d", SH->res[1]);
		cr_assert(t_run(detach_loop, 5000));
		cr_assert_eq(a.calls, 1);
		cr_assert_eq(a.result, 0);
	}
	cr_assert_eq(aiop_loop_detach(detach_loop), 0, "idle now");
	ev_loop_destroy(detach_loop);
}

/* ---- review h11 --------------------------------------------------------- */

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

/* what the processes of late_slot_write tell each other (in SH) */
enum { LATE_TRAPPED = 1, LATE_GO, LATE_NO_SECCOMP };

static _Atomic int late_listener = -1;

/* A party thread whose gettid() waits for the test: the first one after
 * its filter is the tid of its slot record, written right after its
 * arrival CAS (a thread's tid is asked for once, and lazily). */
static void *
late_party(void *arg)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_gettid, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };
	int fd;

	(void)arg;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    (fd = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
			       SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog)) < 0) {
		late_listener = -2;
		return NULL;
	}
	late_listener = fd;
	SH->res[0] = aiop_barrier_wait(B, 10 * T_SEC);
	return NULL;
}

/* The party process: its party thread is held between its arrival and
 * its slot record until the test says go. */
static int
late_process(void *arg)
{
	struct seccomp_notif n;
	struct seccomp_notif_resp resp;
	pthread_t th;
	int fd;

	(void)arg;
	if (pthread_create(&th, NULL, late_party, NULL) != 0)
		return 1;
	while ((fd = late_listener) == -1)
		t_msleep(1);
	if (fd < 0) {
		pthread_join(th, NULL);
		__atomic_store_n(&SH->ready, LATE_NO_SECCOMP,
				 __ATOMIC_SEQ_CST);
		return 0;
	}
	for (;;) {
		memset(&n, 0, sizeof(n));
		if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, &n) < 0)
			return 2;
		if (aiop_barrier_n_waiting(B) == 1) {
			/* arrived, not yet recorded: hold it there */
			__atomic_store_n(&SH->ready, LATE_TRAPPED,
					 __ATOMIC_SEQ_CST);
			for (int i = 0; i < 10000 &&
					__atomic_load_n(&SH->ready,
							__ATOMIC_SEQ_CST) !=
						LATE_GO;
			     i++)
				t_msleep(1);
		}
		memset(&resp, 0, sizeof(resp));
		resp.id = n.id;
		resp.val = n.pid; /* the thread's tid, as gettid() says */
		if (ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &resp) < 0)
			return 3;
		if (aiop_barrier_n_waiting(B) != 0 ||
		    __atomic_load_n(&SH->ready, __ATOMIC_SEQ_CST) == LATE_GO)
			break;
	}
	pthread_join(th, NULL);
	close(fd);
	return SH->res[0] == 0 ? 0 : 4;
}

/* a party of the next generation whose record must survive: it arrives in
 * its start call (which writes its slot), then says so and waits */
static int
recorded_party(void *arg)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 };

	(void)arg;
	if (aiop_barrier_coro_wait(loop, &a.op, B, AIOP_FOREVER, t_op_cb) != 0)
		return 1;
	__atomic_store_n(&SH->bad, 1, __ATOMIC_SEQ_CST);
	ev_run(loop, 0);
	return 2;
}

/*
 * A party records (generation, tid) in its slot right after its arrival
 * CAS. Its generation can end before that store (the others arrive and
 * the last releases them: a release does not wait for records), and a
 * party of the next generation can arrive at the same index and record
 * itself first. The late store then overwrote the newer record, so when
 * that newer party died nobody saw it: the others waited for their
 * timeout (forever with AIOP_FOREVER). Here the late party is held
 * between its CAS and its store by a seccomp listener on its gettid().
 */
Test(barrier, a_late_record_keeps_a_later_partys_record, .init = setup,
     .fini = teardown)
{
	pid_t late, other[2], recorded;
	uint64_t t0;
	int r;

	cr_assert_eq(aiop_barrier_new(&B, 3, NULL, NULL), 0);
	late = t_fork(late_process, NULL);
	for (int i = 0; i < 5000 && !__atomic_load_n(&SH->ready,
						      __ATOMIC_SEQ_CST); i++)
		t_msleep(1);
	if (SH->ready == LATE_NO_SECCOMP) {
		cr_assert_eq(t_reap(late, T_REAP_MS), 0);
		cr_skip_test("no seccomp user notification here");
	}
	cr_assert_eq(SH->ready, LATE_TRAPPED, "the party is held");
	/* generation 0 completes without the late party's record */
	for (int i = 0; i < 2; i++)
		other[i] = t_fork(wait_then_exit, NULL);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(t_reap(other[i], T_REAP_MS), 0);
	/* generation 1: a party arrives at index 0 and records itself */
	recorded = t_fork(recorded_party, NULL);
	for (int i = 0; i < 5000 && !__atomic_load_n(&SH->bad,
						      __ATOMIC_SEQ_CST); i++)
		t_msleep(1);
	cr_assert_eq(SH->bad, 1, "a party of generation 1 arrived");
	/* now the late party writes its record of generation 0 */
	__atomic_store_n(&SH->ready, LATE_GO, __ATOMIC_SEQ_CST);
	cr_assert_eq(t_reap(late, T_REAP_MS), 0, "the late party passed");
	kill(recorded, SIGKILL);
	cr_assert_eq(t_reap(recorded, T_REAP_MS), -SIGKILL);
	t0 = t_now();
	r = aiop_barrier_wait(B, 3 * T_SEC);
	cr_assert_eq(r, -EPIPE, "the dead party of generation 1 is seen "
				"(got %d)", r);
	cr_assert_lt(t_now() - t0, 2 * T_SEC, "promptly");
}

/* ends 65 536 generations (by reset): the 16-bit generation is back */
static void
come_round(struct aiop_barrier *b)
{
	int bad = 0;

	for (int i = 0; i < 65536; i++)
		bad |= aiop_barrier_reset(b);
	cr_assert_eq(bad, 0);
}

/*
 * Generations are counted in 16 bits. A coro party whose loop does not
 * run while 65 536 generations end (here by reset; more processes than
 * parties do it in well under a second) saw its generation number again
 * and took the new generation for its own: it got an index for a
 * generation that had been reset, and its timeout broke the new
 * generation under parties that had nothing to do with it. It now gets
 * -EPIPE (barrier.md: never a pass it cannot prove) and breaks nothing.
 */
Test(barrier, a_party_whose_generation_came_round_again, .init = setup,
     .fini = teardown)
{
	struct ev_loop *loop = ev_loop_new(0), *l2 = ev_loop_new(0);
	struct t_op a = { 0 }, x = { 0 }, y = { 0 };

	/* its generation 0 was reset; generation 65 536 is released */
	cr_assert_eq(aiop_barrier_new(&B, 2, NULL, NULL), 0);
	cr_assert_eq(aiop_barrier_coro_wait(loop, &a.op, B, 5 * T_SEC,
					    t_op_cb), 0);
	come_round(B);
	cr_assert_eq(aiop_barrier_coro_wait(l2, &x.op, B, T_SEC, t_op_cb), 0);
	cr_assert_eq(aiop_barrier_coro_wait(l2, &y.op, B, T_SEC, t_op_cb), 0);
	cr_assert(t_run(l2, 5000));
	cr_assert_eq((1 << x.result) | (1 << y.result), 3);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(a.result, -EPIPE, "no pass for a reset generation "
				       "(got %d)", a.result);
	cr_assert_eq(aiop_barrier_free(B), 0);

	/* its timeout comes while generation 65 536 waits for its parties */
	memset(&a, 0, sizeof(a));
	memset(&x, 0, sizeof(x));
	cr_assert_eq(aiop_barrier_new(&B, 2, NULL, NULL), 0);
	cr_assert_eq(aiop_barrier_coro_wait(loop, &a.op, B, 50 * T_MS,
					    t_op_cb), 0);
	come_round(B);
	cr_assert_eq(aiop_barrier_coro_wait(l2, &x.op, B, 5 * T_SEC, t_op_cb),
		     0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(a.result, -EPIPE, "got %d", a.result);
	cr_assert_eq(aiop_barrier_broken(B), 0, "nothing of its own to break");
	cr_assert_eq(aiop_barrier_n_waiting(B), 1);
	cr_assert_eq(aiop_op_cancel(&x.op), 0);
	cr_assert(t_run(l2, 5000));
	ev_loop_destroy(l2);
	ev_loop_destroy(loop);
}

#include "internal.h" /* aiop__cnt.owner_probes */

#define CROWD 32

static void *
crowd_party(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)aiop_barrier_wait(B, 10 * T_SEC);
}

/*
 * Every waiting party probed every arrived party for death, every 100 ms
 * (kill() plus a read of /proc/<tid>/stat each): parties squared probes
 * per period. 256 threads waiting one second on a 257-party barrier
 * burned 0.8 s of CPU on it, and at a few thousand parties (the maximum
 * is 32 767) a probe round outlasts its period. Now one waiter at a time
 * probes every slot, at most once every 50 ms (probe_turn()): a death
 * still breaks the barrier within about a period, at O(parties) probes
 * a period for all of them.
 */
Test(barrier, waiting_parties_do_not_probe_each_other_all, .init = setup,
     .fini = teardown)
{
	pthread_t th[CROWD];
	uint64_t p0, p1, t0, rounds;

	cr_assert_eq(aiop_barrier_new(&B, CROWD + 1, NULL, NULL), 0);
	for (int i = 0; i < CROWD; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, crowd_party, NULL),
			     0);
	for (int i = 0; i < 5000 && aiop_barrier_n_waiting(B) < CROWD; i++)
		t_msleep(1);
	cr_assert_eq(aiop_barrier_n_waiting(B), CROWD);
	t_msleep(150); /* past every waiter's probe before its first sleep */
	t0 = t_now();
	p0 = atomic_load(&aiop__cnt.owner_probes);
	t_msleep(500); /* about 5 periods */
	p1 = atomic_load(&aiop__cnt.owner_probes);
	/* one round of CROWD probes every 50 ms at most (a sleep that ran
	 * long under load allows more), and one more begun before t0 */
	rounds = (t_now() - t0) / (50 * T_MS) + 2;
	cr_assert_eq(aiop_barrier_abort(B), 0);
	for (int i = 0; i < CROWD; i++) {
		void *r;

		pthread_join(th[i], &r);
		cr_assert_eq((int)(intptr_t)r, -EPIPE);
	}
	/* every waiter probing every slot made about 1500 probes here */
	cr_assert_leq(p1 - p0, CROWD * rounds, "%llu probes",
		      (unsigned long long)(p1 - p0));
}

static pid_t first_party;

static int
kill_first_action(void *arg)
{
	(void)arg;
	kill(first_party, SIGKILL);
	t_reap(first_party, T_REAP_MS);
	/* the others' probes run meanwhile (bounded: a miss fails below) */
	for (int i = 0; i < 5000 && aiop_barrier_broken(B) != 1; i++)
		t_msleep(1);
	return 0;
}

/*
 * The first party dies while the last one runs the action: a waiter that
 * runs must still find it (a design where each waiter probed only the
 * party after it left this death to the last party, busy in the action).
 */
Test(barrier, the_first_party_dying_during_the_action_is_seen,
     .init = setup, .fini = teardown)
{
	pid_t mid;

	cr_assert_eq(aiop_barrier_new(&B, 3, kill_first_action, NULL), 0);
	first_party = fork_recorded_party();
	mid = t_fork(party, (void *)0);
	while (aiop_barrier_n_waiting(B) < 2)
		t_msleep(1);
	cr_assert_eq(aiop_barrier_wait(B, 5 * T_SEC), -EPIPE,
		     "the death broke the generation");
	cr_assert_eq(t_reap(mid, T_REAP_MS), 0);
	cr_assert_eq(SH->res[0], -EPIPE);
}

/* ---- review h13 --------------------------------------------------------- */

/*
 * A loop holds two parties: index 1 and the last one, whose action runs in
 * that loop's thread. The party at index 2 dies during the action. When
 * each waiter probed only the party after it, its prober was index 1, the
 * other op of the action's loop, which cannot probe while the action runs;
 * index 0 (another process) probed only index 1. The death went unseen;
 * the action ended and every live party passed. A waiter that runs (index
 * 0) must find it and break the generation.
 */
Test(barrier, a_death_behind_a_party_of_the_actions_loop_is_seen,
     .init = setup, .fini = teardown)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 }, last = { 0 };
	pid_t first;

	cr_assert_eq(aiop_barrier_new(&B, 4, kill_first_action, NULL), 0);
	first = t_fork(party, (void *)0); /* index 0, another process */
	while (aiop_barrier_n_waiting(B) < 1)
		t_msleep(1);
	cr_assert_eq(aiop_barrier_coro_wait(loop, &a.op, B, 10 * T_SEC,
					    t_op_cb), 0); /* index 1 */
	cr_assert_eq(aiop_barrier_n_waiting(B), 2);
	first_party = fork_recorded_party(); /* index 2 */
	cr_assert_eq(aiop_barrier_n_waiting(B), 3);
	/* index 3: the action runs in this start call, in a's thread */
	cr_assert_eq(aiop_barrier_coro_wait(loop, &last.op, B, 10 * T_SEC,
					    t_op_cb), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(t_reap(first, T_REAP_MS), 0);
	cr_assert_eq(SH->res[0], -EPIPE, "the death broke the generation "
					 "(index 0 got %d)", SH->res[0]);
	cr_assert_eq(a.result, -EPIPE);
	cr_assert_eq(last.result, -EPIPE);
	ev_loop_destroy(loop);
}

#include <sys/mman.h>
#include <time.h>

/* a party process held inside its slot record (see hold_segv()) */
struct hold {
	int stage; /* 1: held before its record, 2: between its two steps */
	int go;    /* the stage it may leave */
	int res;
};
static struct hold *HOLD;
static char *hold_st;   /* the barrier's first page: its state word */
static char *hold_slot; /* the page of the held party's slot */
static long hold_pg;
static int hold_me;

/*
 * The held party's slot is on the mapping's second page, its state word
 * on the first. Its process takes the slot's page away before arriving:
 * the record's first touch of the slot faults here and waits for go 1,
 * then the state word's page is taken instead, so its next look at the
 * state word (after its first step on the slot) waits for go 2.
 */
static void
hold_segv(int sig, siginfo_t *si, void *uc)
{
	struct timespec ms = { 0, 1000000 };
	struct hold *h = &HOLD[hold_me];
	char *a = si->si_addr;
	int stage = a >= hold_slot && a < hold_slot + hold_pg ? 1
		    : a >= hold_st && a < hold_st + hold_pg  ? 2
							      : 0;

	(void)sig;
	(void)uc;
	if (!stage) {
		signal(SIGSEGV, SIG_DFL); /* a real fault: die of it */
		return;
	}
	__atomic_store_n(&h->stage, stage, __ATOMIC_SEQ_CST);
	for (int i = 0; i < 10000 && __atomic_load_n(&h->go, __ATOMIC_SEQ_CST) <
					     stage;
	     i++)
		nanosleep(&ms, NULL);
	if (stage == 1) {
		mprotect(hold_slot, (size_t)hold_pg, PROT_READ | PROT_WRITE);
		mprotect(hold_st, (size_t)hold_pg, PROT_NONE);
	} else {
		mprotect(hold_st, (size_t)hold_pg, PROT_READ | PROT_WRITE);
	}
}

static int
held_party(void *arg)
{
	struct sigaction sa;

	hold_me = (int)(intptr_t)arg;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = hold_segv;
	sa.sa_flags = SA_SIGINFO;
	if (sigaction(SIGSEGV, &sa, NULL) < 0 ||
	    mprotect(hold_slot, (size_t)hold_pg, PROT_NONE) < 0)
		return 1;
	HOLD[hold_me].res = aiop_barrier_wait(B, 10 * T_SEC);
	return 0;
}

static bool
hold_reached(int k, int stage)
{
	for (int i = 0; i < 5000 && __atomic_load_n(&HOLD[k].stage,
						    __ATOMIC_SEQ_CST) < stage;
	     i++)
		t_msleep(1);
	return HOLD[k].stage == stage;
}

/* n coro parties of this loop arrive (in their start calls) */
static void
arrive_n(struct ev_loop *loop, struct t_op *ops, unsigned n, int64_t tmo)
{
	memset(ops, 0, n * sizeof(*ops));
	for (unsigned i = 0; i < n; i++)
		cr_assert_eq(aiop_barrier_coro_wait(loop, &ops[i].op, B, tmo,
						    t_op_cb), 0);
	cr_assert_eq(aiop_barrier_n_waiting(B), (int)n);
}

/*
 * Two late parties at one index. X arrived in generation 0 and Y in
 * generation 1 at index I, and both were held before their slot record
 * while their generations ended (reset); Z of generation 2 arrived at I
 * and recorded itself. Then X exchanged (displacing Z), Y exchanged
 * (displacing X), X found its generation over and tried to put Z back
 * (its CAS failed: the slot held Y), and Y put back what it displaced:
 * X's record. Z's record was gone: its death went unseen, and the others
 * waited for their timeout. The parties are held with page protection
 * (the slot on the second page of the mapping), which needs I parties
 * before them in each generation: coro ops of one loop.
 */
Test(barrier, two_late_records_keep_the_current_partys_record,
     .init = setup, .fini = teardown)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op *ops;
	unsigned idx;
	pid_t late[2], z;
	int timedout = 0, piped = 0;

	/* valgrind reports a bad fault address for an atomic access */
	if (getenv("AIOP_UNDER_VALGRIND"))
		cr_skip_test("page protection faults under valgrind");
	hold_pg = sysconf(_SC_PAGESIZE);
	if (hold_pg > 16384)
		cr_skip_test("pages too large for the slot layout");
	idx = (unsigned)hold_pg / 8; /* its slot: on the second page */
	ops = calloc(idx, sizeof(*ops));
	HOLD = t_shared(2 * sizeof(*HOLD));
	cr_assert(ops && HOLD);
	cr_assert_eq(aiop_barrier_new(&B, idx + 2, NULL, NULL), 0);
	hold_st = (char *)((struct aiop__obj *)B)->shm;
	hold_slot = hold_st + hold_pg;
	cr_assert_geq(((struct aiop__obj *)B)->size, 2 * (size_t)hold_pg);
	for (int k = 0; k < 2; k++) {
		/* generation k: idx parties, then the late one, held */
		arrive_n(loop, ops, idx, 10 * T_SEC);
		late[k] = t_fork(held_party, (void *)(intptr_t)k);
		cr_assert(hold_reached(k, 1), "late party %d held", k);
		cr_assert_eq(aiop_barrier_n_waiting(B), (int)idx + 1);
		cr_assert_eq(aiop_barrier_reset(B), 0);
		cr_assert(t_run(loop, 5000));
		for (unsigned i = 0; i < idx; i++)
			cr_assert_eq(ops[i].result, -EPIPE);
	}
	/* generation 2: Z arrives at idx and records itself */
	arrive_n(loop, ops, idx, 3 * T_SEC);
	z = t_fork(recorded_party, NULL);
	cr_assert(t_wait_flag(&SH->bad, 5000), "Z arrived");
	/* X then Y take their first step on the slot, then X, Y finish */
	for (int k = 0; k < 2; k++) {
		__atomic_store_n(&HOLD[k].go, 1, __ATOMIC_SEQ_CST);
		cr_assert(hold_reached(k, 2), "late party %d held again", k);
	}
	for (int k = 0; k < 2; k++) {
		__atomic_store_n(&HOLD[k].go, 2, __ATOMIC_SEQ_CST);
		cr_assert_eq(t_reap(late[k], T_REAP_MS), 0);
		cr_assert_eq(HOLD[k].res, -EPIPE, "its generation was reset");
	}
	kill(z, SIGKILL);
	cr_assert_eq(t_reap(z, T_REAP_MS), -SIGKILL);
	cr_assert(t_run(loop, 10000));
	for (unsigned i = 0; i < idx; i++) {
		timedout += ops[i].result == -ETIMEDOUT;
		piped += ops[i].result == -EPIPE;
	}
	cr_assert_eq(timedout, 0, "Z's death is seen before any timeout");
	cr_assert_eq(piped, (int)idx);
	t_unshared(HOLD, 2 * sizeof(*HOLD));
	free(ops);
	ev_loop_destroy(loop);
}

/* a coro party of its own loop, which exits (its thread dies) once three
 * parties have arrived */
static int
arrive_then_exit(void *arg)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 };

	(void)arg;
	if (aiop_barrier_coro_wait(loop, &a.op, B, AIOP_FOREVER, t_op_cb) != 0)
		return 1;
	for (int i = 0; i < 5000 && aiop_barrier_n_waiting(B) < 3; i++)
		t_msleep(1);
	_exit(0);
}

/*
 * A thread holds a coro party (index 0) and then makes a blocking wait on
 * the same barrier (index 2): its loop does not run meanwhile, so the coro
 * party probes nobody. The party at index 1 dies. When each waiter probed
 * only the party after it, the blocking waiter probed index 0 (itself) and
 * waited for its timeout; a waiter that runs must find the death.
 */
Test(barrier, a_blocking_wait_probes_for_its_threads_coro_party,
     .init = setup, .fini = teardown)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 };
	pid_t victim;
	uint64_t t0;
	int r;

	cr_assert_eq(aiop_barrier_new(&B, 4, NULL, NULL), 0);
	cr_assert_eq(aiop_barrier_coro_wait(loop, &a.op, B, 10 * T_SEC,
					    t_op_cb), 0); /* index 0 */
	victim = t_fork(arrive_then_exit, NULL);     /* index 1 */
	while (aiop_barrier_n_waiting(B) < 2)
		t_msleep(1);
	t0 = t_now();
	r = aiop_barrier_wait(B, 3 * T_SEC); /* index 2 */
	cr_assert_eq(r, -EPIPE, "the death is seen (got %d)", r);
	cr_assert_lt(t_now() - t0, 2 * T_SEC, "promptly");
	cr_assert_eq(t_reap(victim, T_REAP_MS), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(a.result, -EPIPE);
	ev_loop_destroy(loop);
}
