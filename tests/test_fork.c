/* SPDX-License-Identifier: MIT */
/* fork(): handles stay valid in children; what is per process (pending ops,
 * loop registrations, doorbells) does not leak into the child. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "internal.h"

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

/* ---- the pending count of a handle, started on in two threads at once -- */

static struct aiop_sem *TS;
static pthread_barrier_t TB;
static int t_go[2];
static int t_rounds;

struct tside {
	int me;
	struct ev_loop *loop;
	struct t_op op;
	int bad;
};

static void
tside_wait_done(struct tside *t)
{
	uint64_t t0 = t_now();

	while (!t->op.calls && t_now() - t0 < 10 * T_SEC)
		ev_run(t->loop, EVRUN_ONCE);
	if (t->op.result != -ECANCELED)
		t->bad++;
}

static void *
tside_run(void *arg)
{
	struct tside *t = arg;

	t->loop = ev_loop_new(0);
	for (int i = 0; i < t_rounds; i++) {
		pthread_barrier_wait(&TB); /* a fresh TS */
		memset(&t->op, 0, sizeof(t->op));
		/* both first starts on the handle at the same instant */
		__atomic_store_n(&t_go[t->me], i + 1, __ATOMIC_SEQ_CST);
		while (__atomic_load_n(&t_go[!t->me], __ATOMIC_SEQ_CST) < i + 1)
			;
		if (aiop_sem_coro_acquire(t->loop, &t->op.op, TS, AIOP_FOREVER,
					  t_op_cb) != 0)
			t->bad++;
		pthread_barrier_wait(&TB); /* both started */
		if (t->me == 0) {
			aiop_op_cancel(&t->op.op);
			tside_wait_done(t);
		}
		pthread_barrier_wait(&TB); /* main tries the free */
		pthread_barrier_wait(&TB);
		if (t->me == 1) {
			aiop_op_cancel(&t->op.op);
			tside_wait_done(t);
		}
		pthread_barrier_wait(&TB); /* main frees */
	}
	aiop_loop_detach(t->loop);
	ev_loop_destroy(t->loop);
	return NULL;
}

/*
 * Two loops in two threads make their first coro start on a handle at the
 * same instant. The count of pending ops was reset for a new fork
 * generation (which a fresh handle also is) apart from its increment, so
 * one thread could wipe the other's: free() then succeeded under a pending
 * op (a use-after-free when that op was cancelled). It failed within 200
 * rounds here.
 */
Test(fork, first_starts_in_two_threads_both_count)
{
	struct tside side[2] = { { .me = 0 }, { .me = 1 } };
	pthread_t th[2];
	int busy = 0;

	t_rounds = 1000;
	pthread_barrier_init(&TB, NULL, 3);
	for (int k = 0; k < 2; k++)
		cr_assert_eq(pthread_create(&th[k], NULL, tside_run, &side[k]),
			     0);
	for (int i = 0; i < t_rounds; i++) {
		int r;

		cr_assert_eq(aiop_sem_new(&TS, 0), 0);
		pthread_barrier_wait(&TB);
		pthread_barrier_wait(&TB);
		pthread_barrier_wait(&TB);
		/* thread 1's op is still pending */
		r = aiop_sem_free(TS);
		/* a lost count: stop here, before thread 1 cancels its op on
		 * the freed handle (the test process ends with its threads) */
		cr_assert_neq(r, 0, "free succeeded under a pending op (%d)",
			      i);
		busy += r == -EBUSY;
		pthread_barrier_wait(&TB);
		pthread_barrier_wait(&TB);
		cr_assert_eq(aiop_sem_free(TS), 0);
	}
	for (int k = 0; k < 2; k++) {
		pthread_join(th[k], NULL);
		cr_assert_eq(side[k].bad, 0);
	}
	cr_assert_eq(busy, t_rounds);
	pthread_barrier_destroy(&TB);
}

/* ---- found by review ---------------------------------------------------- */

/*
 * The parent has an op pending on a loop when it forks. The child destroys
 * its copy of that loop and makes a new one, which malloc often places at
 * the same address. Its first coro start used to "stop" the parent's
 * watchers in that new loop, which they were never in: libev asserted, or
 * the child crashed. A new loop is always safe (coro.md).
 */
static struct ev_loop *parent_loop;

static int
child_new_loop(void *arg)
{
	struct t_op b = { 0 };
	struct ev_loop *nl;

	(void)arg;
	ev_loop_destroy(parent_loop);
	nl = ev_loop_new(0);
	if (!nl)
		return 1;
	if (aiop_sem_coro_acquire(nl, &b.op, S, T_SEC, t_op_cb) != 0)
		return 2;
	if (aiop_sem_release(S) != 0)
		return 3;
	if (!t_run(nl, 5000) || b.result != 0)
		return 4;
	ev_loop_destroy(nl);
	return 0;
}

Test(fork, a_child_may_replace_an_inherited_loop)
{
	struct t_op a = { 0 };

	for (int round = 0; round < 4; round++) {
		parent_loop = ev_loop_new(0);
		cr_assert_eq(aiop_sem_new(&S, 0), 0);
		cr_assert_eq(aiop_sem_coro_acquire(parent_loop, &a.op, S,
						   10 * T_SEC, t_op_cb),
			     0);
		cr_assert_eq(t_reap(t_fork(child_new_loop, NULL), T_REAP_MS),
			     0, "round %d", round);
		cr_assert_eq(aiop_op_cancel(&a.op), 0);
		cr_assert(t_run(parent_loop, 5000));
		cr_assert_eq(a.result, -ECANCELED);
		cr_assert_eq(aiop_sem_free(S), 0);
		ev_loop_destroy(parent_loop);
	}
}

/*
 * A thread forks while another makes the process's first object: the
 * domain's creation holds its mutex, and the fork handlers were registered
 * only once it existed. The child inherited the mutex locked, and its own
 * first object waited for it for good (5 of 300 rounds in the reviewer's
 * run). Each round is a fresh process, so that its first object makes the
 * domain.
 */
static volatile int creator_go;

static void *
creator(void *arg)
{
	struct aiop_event *e;

	(void)arg;
	while (!creator_go)
		;
	return aiop_event_new(&e) == 0 && aiop_event_free(e) == 0 ? NULL
								 : (void *)1;
}

static int
grandchild(void *arg)
{
	struct aiop_event *e;

	(void)arg;
	return aiop_event_new(&e) == 0 && aiop_event_free(e) == 0 ? 0 : 1;
}

static int
fork_while_creating(void *arg)
{
	int spin = (int)(intptr_t)arg, r;
	pthread_t t;
	void *tr;

	creator_go = 0;
	if (pthread_create(&t, NULL, creator, NULL) != 0)
		return 90;
	creator_go = 1;
	for (volatile int k = 0; k < spin; k++)
		;
	/* a hang is for ever: the bound only has to outlast a slow run
	 * (valgrind on a loaded machine took more than 3 s once) */
	r = t_reap(t_fork(grandchild, NULL),
		   getenv("AIOP_UNDER_VALGRIND") ? 30000 : 3000);
	pthread_join(t, &tr);
	return r == 0 ? (tr ? 91 : 0) : 1;
}

Test(fork, a_fork_during_the_first_objects_creation)
{
	int hung = 0;

	for (int i = 0; i < 200; i++) {
		int r = t_reap(t_fork(fork_while_creating,
				      (void *)(intptr_t)((i % 50) * 200)),
			       getenv("AIOP_UNDER_VALGRIND") ? 60000 : 10000);

		cr_assert(r == 0 || r == 1, "round %d: %d", i, r);
		hung += r == 1;
	}
	cr_assert_eq(hung, 0, "%d of 200 children hung in their first "
			      "object", hung);
}

/*
 * fork() from inside an aiop callback: the child returns into the
 * dispatcher, which went on delivering the parent's queued results and
 * attempting the parent's waiting ops there: a parent op's callback ran
 * in the child, and the child took a Lock for the parent's op (found by
 * review). The dispatcher now stops once it finds itself in a child.
 */
static int *ran_in_child;
static pid_t cb_parent, cb_child;

static void
cb_forks(struct ev_loop *l, struct aiop_op *op, int res)
{
	t_op_cb(l, op, res);
	cb_child = fork();
	if (cb_child == 0)
		alarm(10); /* a child that hangs must not outlive the test */
	else
		t_msleep(50); /* the child's dispatcher goes first */
}

static void
cb_counts(struct ev_loop *l, struct aiop_op *op, int res)
{
	if (getpid() != cb_parent)
		__atomic_fetch_add(ran_in_child, 1, __ATOMIC_SEQ_CST);
	t_op_cb(l, op, res);
}

/* in the child: leave; in the parent: reap it */
static void
end_child(void)
{
	if (getpid() != cb_parent)
		_exit(0);
	cr_assert_eq(t_reap(cb_child, T_REAP_MS), 0);
}

/* Take L, then start a coro wait on x (ecb) and, behind it on the same
 * loop, a coro acquire of L (lcb): both wait */
static void
event_then_lock(struct ev_loop *loop, struct aiop_op *e, struct aiop_event *x,
		aiop_op_cb ecb, struct aiop_op *l, aiop_op_cb lcb)
{
	cr_assert_eq(aiop_lock_acquire(L, T_SEC), 0);
	cr_assert_eq(aiop_event_coro_wait(loop, e, x, 5 * T_SEC, ecb), 0);
	cr_assert_eq(aiop_lock_coro_acquire(loop, l, L, 5 * T_SEC, lcb), 0);
}

Test(fork, a_callback_that_forks)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };
	struct aiop_event *x;

	ran_in_child = t_shared(64);
	cb_parent = getpid();
	cr_assert_eq(aiop_event_new(&x), 0);
	cr_assert_eq(aiop_lock_new(&L), 0);

	/* two results queued at their start calls: the first callback forks
	 * while the second is still to be delivered */
	cr_assert_eq(aiop_event_set(x), 0);
	cr_assert_eq(aiop_event_coro_wait(loop, &a.op, x, T_SEC, cb_forks),
		     0);
	cr_assert_eq(aiop_event_coro_wait(loop, &b.op, x, T_SEC, cb_counts),
		     0);
	cr_assert(t_run(loop, 5000));
	end_child();
	cr_assert_eq(*ran_in_child, 0, "a parent op's callback ran here");
	cr_assert_eq(b.result, 0);

	/* both wait; one pass completes the first, whose callback forks;
	 * the child's pass must not go on to take the lock */
	cr_assert_eq(aiop_event_clear(x), 0);
	event_then_lock(loop, &c.op, x, cb_forks, &d.op, cb_counts);
	cr_assert_eq(aiop_lock_release(L), 0);
	cr_assert_eq(aiop_event_set(x), 0);
	cr_assert(t_run(loop, 8000));
	end_child();
	cr_assert_eq(*ran_in_child, 0, "a parent op's callback ran here");
	cr_assert_eq(d.result, 0, "the parent's lock op: %d", d.result);
	cr_assert_eq(aiop_lock_release(L), 0);
	cr_assert_eq(aiop_lock_free(L), 0);
	cr_assert_eq(aiop_event_free(x), 0);
	t_unshared(ran_in_child, 64);
	ev_loop_destroy(loop);
}

/*
 * aiop_loop_detach() takes the registration mutex even before any object
 * exists ("0, also for a loop that never used aiop"), when no fork handler
 * was registered yet: a fork meanwhile left the child that mutex locked,
 * and its first coro start waited for good (found by review).
 */
static _Atomic int detacher_stop;
static struct ev_loop *detached;

static void *
detacher(void *arg)
{
	(void)arg;
	while (!atomic_load(&detacher_stop))
		(void)aiop_loop_detach(detached);
	return NULL;
}

static int
first_coro_start(void *arg)
{
	struct ev_loop *l = ev_loop_new(0);
	struct aiop_event *x;
	struct t_op a = { 0 };

	(void)arg;
	if (aiop_event_new(&x) != 0 || aiop_event_set(x) != 0)
		return 2;
	if (aiop_event_coro_wait(l, &a.op, x, T_SEC, t_op_cb) != 0)
		return 3;
	if (!t_run(l, 5000) || a.result != 0)
		return 4;
	ev_loop_destroy(l);
	return aiop_event_free(x) == 0 ? 0 : 5;
}

Test(fork, a_fork_while_a_thread_detaches_a_loop)
{
	pthread_t t;
	int hung = 0;

	cr_assert_null(aiop__dom.shm, "no domain yet");
	detached = ev_loop_new(0);
	cr_assert_eq(pthread_create(&t, NULL, detacher, NULL), 0);
	for (int i = 0; i < 100 && !hung; i++) {
		int r = t_reap(t_fork(first_coro_start, NULL), 3000);

		cr_assert(r == 0 || r == T_CHILD_TIMEOUT, "round %d: %d", i,
			  r);
		hung += r != 0;
	}
	atomic_store(&detacher_stop, 1);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(hung, 0, "a child hung in its first coro start");
	ev_loop_destroy(detached);
}

/*
 * A Condition wait_for predicate that forks inside a pass: the signal and
 * the lock were taken before the predicate ran, for the parent's op, whose
 * copy in the parent completes with them. The child's dispatcher used to
 * give the signal back (cond_undo: notify(1)): one notify woke two
 * waiters. W registers after the only notify and must time out.
 */
static struct aiop_cond *pf_cond;
static int pf_calls;
static _Atomic int pf_w_registered, pf_w_res;

static int
pf_pred(void *arg)
{
	(void)arg;
	if (++pf_calls == 1)
		return 0; /* wait_for_first() */
	if (getpid() == cb_parent && cb_child == 0) {
		cb_child = fork();
		if (cb_child == 0)
			alarm(10);
	}
	return 1;
}

static void
pf_cb(struct ev_loop *l, struct aiop_op *op, int res)
{
	t_op_cb(l, op, res);
	if (getpid() == cb_parent)
		(void)aiop_cond_release(pf_cond);
}

static void *
pf_waiter(void *arg)
{
	(void)arg;
	if (aiop_cond_acquire(pf_cond, AIOP_FOREVER) != 0)
		return NULL;
	atomic_store(&pf_w_registered, 1);
	atomic_store(&pf_w_res, aiop_cond_wait(pf_cond, T_SEC));
	(void)aiop_cond_release(pf_cond);
	return NULL;
}

Test(fork, a_predicate_that_forks_gives_nothing_back)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 };
	pthread_t t;

	cb_parent = getpid();
	cb_child = 0;
	cr_assert_eq(aiop_cond_new(&pf_cond), 0);
	cr_assert_eq(aiop_cond_acquire(pf_cond, AIOP_FOREVER), 0);
	cr_assert_eq(aiop_cond_coro_wait_for(loop, &a.op, pf_cond, pf_pred,
					     NULL, 5 * T_SEC, pf_cb),
		     0);
	cr_assert_eq(aiop_cond_acquire(pf_cond, AIOP_FOREVER), 0);
	cr_assert_eq(aiop_cond_notify(pf_cond, 1), 1);
	cr_assert_eq(aiop_cond_release(pf_cond), 0);
	cr_assert_eq(pthread_create(&t, NULL, pf_waiter, NULL), 0);
	while (!atomic_load(&pf_w_registered))
		t_msleep(1);
	t_msleep(100); /* W sleeps in its wait, in a group of its own */
	cr_assert(t_run(loop, 5000));
	end_child();
	cr_assert_eq(a.result, 1);
	pthread_join(t, NULL);
	cr_assert_eq(atomic_load(&pf_w_res), -ETIMEDOUT,
		     "W was never notified, got %d", atomic_load(&pf_w_res));
	cr_assert_eq(aiop_cond_free(pf_cond), 0);
	ev_loop_destroy(loop);
}

/*
 * A callback run by a pass forks, and the child runs the inherited loop
 * from inside that callback (a worker that never returns). The first
 * stale watcher stops the parent's op timers, walking the waiting list
 * while the pass's cursor, on the stack, is still in it: it used to stop
 * the cursor's timer too, never initialised (a crash when the stack held
 * garbage there, as left by any earlier call: dirty_stack()).
 */
static void
nr_guard(struct ev_loop *l, ev_timer *w, int rev)
{
	(void)w;
	(void)rev;
	ev_break(l, EVBREAK_ALL);
}

static void
nr_forks(struct ev_loop *l, struct aiop_op *op, int res)
{
	t_op_cb(l, op, res);
	cb_child = fork();
	if (cb_child == 0) {
		ev_timer g;

		alarm(10);
		ev_loop_fork(l);
		ev_timer_init(&g, nr_guard, 0.5, 0.);
		ev_timer_start(l, &g);
		ev_run(l, 0);
		_exit(0);
	}
}

/* a user check watcher, run just before aiop's (EV_MINPRI) at the same
 * depth: it leaves garbage where the pass's frame then lies */
static void
dirty_check(struct ev_loop *l, ev_check *w, int rev)
{
	volatile unsigned char buf[16 * 1024];

	(void)rev;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = 0xa5;
	ev_check_stop(l, w);
}

Test(fork, a_child_may_run_the_loop_inside_a_callback)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct t_op a = { 0 }, b = { 0 };
	struct aiop_event *x;
	ev_check dirty;

	cb_parent = getpid();
	cb_child = 0;
	cr_assert_eq(aiop_event_new(&x), 0);
	cr_assert_eq(aiop_lock_new(&L), 0);
	event_then_lock(loop, &a.op, x, nr_forks, &b.op, t_op_cb);
	ev_check_init(&dirty, dirty_check);
	ev_check_start(loop, &dirty);
	cr_assert_eq(aiop_event_set(x), 0);
	ev_run(loop, EVRUN_ONCE);
	cr_assert_eq(a.calls, 1);
	cr_assert_eq(t_reap(cb_child, T_REAP_MS), 0, "the child crashed");
	cr_assert_eq(aiop_lock_release(L), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(b.result, 0);
	cr_assert_eq(aiop_lock_release(L), 0);
	cr_assert_eq(aiop_lock_free(L), 0);
	cr_assert_eq(aiop_event_free(x), 0);
	ev_loop_destroy(loop);
}

/* ---- a child that zeroes its copy of a parent's op and uses it ------- */

static struct aiop_event *ZE;
static struct t_op ZOP;

static int
child_rezeroes(void *arg)
{
	struct ev_loop *loop = arg;

	ev_loop_fork(loop);
	/* the copy of the parent's op is the child's memory: zeroed, it is
	 * a new op (coro.md, Fork) */
	aiop_op_init(&ZOP.op);
	ZOP.calls = 0;
	if (aiop_event_coro_wait(loop, &ZOP.op, ZE, 1500 * T_MS, t_op_cb) < 0)
		return 1;
	/* the parent's registration's recheck (1 s) fires in this copy of
	 * the loop meanwhile, and stops the parent's watchers */
	if (!t_run(loop, 10000))
		return 2;
	return ZOP.calls == 1 && ZOP.result == -ETIMEDOUT ? 0 : 3;
}

/*
 * The parent's watchers, stopping themselves in the child's copy of the
 * loop, walked the parent's list of waiting ops to stop their timers. The
 * child had zeroed its copy of the first one and started it afresh: its
 * links led into the child's own list, which never comes back to the
 * parent's sentinel, and the walk spun for ever (found by review; the
 * child was killed at the reap bound).
 */
Test(fork, a_child_may_zero_a_parents_op_and_reuse_it)
{
	struct ev_loop *loop = ev_loop_new(0);
	pid_t pid;

	cr_assert_eq(aiop_event_new(&ZE), 0);
	cr_assert_eq(aiop_event_coro_wait(loop, &ZOP.op, ZE, AIOP_FOREVER,
					  t_op_cb), 0);
	pid = t_fork(child_rezeroes, loop);
	cr_assert_gt(pid, 0);
	cr_assert_eq(t_reap(pid, T_REAP_MS), 0, "the child hung or failed");
	cr_assert_eq(aiop_op_cancel(&ZOP.op), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(ZOP.calls, 1);
	cr_assert_eq(ZOP.result, -ECANCELED);
	cr_assert_eq(aiop_loop_detach(loop), 0);
	cr_assert_eq(aiop_event_free(ZE), 0);
	ev_loop_destroy(loop);
}

/* ---- ... and the parent's other ops keep no timer in the child ------- */

static struct aiop_event *TE;
static struct t_op TOPS[3];
static int TZERO;

static int
child_rezeroes_one_of_three(void *arg)
{
	struct ev_loop *loop = arg;
	struct t_op *z = &TOPS[TZERO];

	ev_loop_fork(loop);
	aiop_op_init(&z->op);
	z->calls = 0;
	if (aiop_event_coro_wait(loop, &z->op, TE, 1500 * T_MS, t_op_cb) < 0)
		return 1;
	/* the parent's ops around it wait 60 s: their timers in this copy
	 * of the loop must be stopped with the parent's other watchers, or
	 * they keep ev_run() from returning until then */
	if (!t_run(loop, 10000))
		return 2;
	return z->calls == 1 && z->result == -ETIMEDOUT ? 0 : 3;
}

/*
 * The walk that stops the parent's op timers in the child's copy of the
 * loop ended at the copy the child had zeroed and started afresh: the
 * timers of the parent's ops after it stayed in the loop, and the child's
 * ev_run() did not return until they expired (60 s here; found by review:
 * the child's run hit its 10 s bound, for the first and for the middle op
 * of three). It now walks back from the sentinel too.
 */
Test(fork, a_child_that_zeroes_a_parents_op_keeps_no_timer_of_the_others)
{
	for (TZERO = 0; TZERO < 3; TZERO++) {
		struct ev_loop *loop = ev_loop_new(0);
		pid_t pid;

		memset(TOPS, 0, sizeof(TOPS));
		cr_assert_eq(aiop_event_new(&TE), 0);
		/* only the one the child zeroes may have no timeout
		 * (coro.md, Fork) */
		for (int i = 0; i < 3; i++)
			cr_assert_eq(aiop_event_coro_wait(
					     loop, &TOPS[i].op, TE,
					     i == TZERO ? AIOP_FOREVER
							: 60 * T_SEC,
					     t_op_cb),
				     0);
		pid = t_fork(child_rezeroes_one_of_three, loop);
		cr_assert_gt(pid, 0);
		cr_assert_eq(t_reap(pid, T_REAP_MS), 0, "op %d: the child's "
			     "loop ran on, or failed", TZERO);
		for (int i = 0; i < 3; i++)
			cr_assert_eq(aiop_op_cancel(&TOPS[i].op), 0);
		cr_assert(t_run(loop, 5000));
		for (int i = 0; i < 3; i++) {
			cr_assert_eq(TOPS[i].calls, 1);
			cr_assert_eq(TOPS[i].result, -ECANCELED);
		}
		cr_assert_eq(aiop_loop_detach(loop), 0);
		cr_assert_eq(aiop_event_free(TE), 0);
		ev_loop_destroy(loop);
	}
}

/* ---- a child that destroys the inherited loop ------------------------ */

static struct aiop_lock *DL_L;
static struct aiop_sem *DL_S, *DL_MINE;
static struct aiop_event *DL_E;
static struct aiop_barrier *DL_B;
static struct aiop_cond *DL_C;
static struct aiop_queue *DL_Q;
static struct t_op DL_OPS[6];
static char dl_buf[8];
static size_t dl_len;

static int
bells_of(pid_t p)
{
	int n = 0;

	for (int i = 0; i < aiop__dom.nbells; i++)
		n += aiop__bell_owner(i) == p;
	return n;
}

static int
child_destroys_the_loop(void *arg)
{
	struct ev_loop *loop = arg;
	struct t_op a = { 0 }, b = { 0 };

	ev_loop_fork(loop);
	/* ops of its own on that loop: granted, and waiting */
	if (aiop_sem_coro_acquire(loop, &a.op, DL_MINE, AIOP_FOREVER,
				  t_op_cb) < 0 ||
	    aiop_event_coro_wait(loop, &b.op, DL_E, 60 * T_SEC, t_op_cb) < 0)
		return 1;
	if (aiop_sem_get_value(DL_MINE) != 0 || bells_of(getpid()) != 1)
		return 2;
	ev_loop_destroy(loop);
	/* its own: cancelled, the unit back, the doorbell back */
	if (a.calls || b.calls || aiop_op_pending(&a.op) ||
	    aiop_op_pending(&b.op) || aiop_sem_get_value(DL_MINE) != 1 ||
	    bells_of(getpid()) != 0)
		return 3;
	/* the parent's: still pending, holding what they were granted, and
	 * the parent's doorbell still the parent's */
	if (bells_of(getppid()) != 1)
		return 4;
	for (int i = 0; i < 6; i++)
		if (!aiop_op_pending(&DL_OPS[i].op) || DL_OPS[i].calls ||
		    aiop_op_cancel(&DL_OPS[i].op) != -EINVAL)
			return 10 + i;
	if (aiop_lock_locked(DL_L) != 1 || aiop_sem_get_value(DL_S) != 0 ||
	    aiop_barrier_broken(DL_B) != 0 ||
	    aiop_barrier_n_waiting(DL_B) != 1 ||
	    aiop_queue_try_get(DL_Q, dl_buf, sizeof(dl_buf), &dl_len) !=
		    -EAGAIN)
		return 20;
	return 0;
}

/*
 * ev_loop_destroy() cancels and forgets the ops left pending on the loop,
 * giving their grants back (bb818d2). In a child, the inherited loop's
 * parent's ops are the parent's: the child's destroy must cancel only its
 * own, give back only the doorbell it claimed, and leave the parent's
 * ops, their grants and the parent's doorbell alone (review of bb818d2:
 * with cleanup_cb's generation check removed, the child gave the parent's
 * grants back and this test failed).
 */
Test(fork, a_child_that_destroys_the_inherited_loop_leaves_the_parents_ops)
{
	struct ev_loop *loop = ev_loop_new(0);
	pid_t pid;

	memset(DL_OPS, 0, sizeof(DL_OPS));
	cr_assert_eq(aiop_lock_new(&DL_L), 0);
	cr_assert_eq(aiop_sem_new(&DL_S, 1), 0);
	cr_assert_eq(aiop_sem_new(&DL_MINE, 1), 0);
	cr_assert_eq(aiop_event_new(&DL_E), 0);
	cr_assert_eq(aiop_barrier_new(&DL_B, 2, NULL, NULL), 0);
	cr_assert_eq(aiop_cond_new(&DL_C), 0);
	cr_assert_eq(aiop_queue_new(&DL_Q, NULL), 0);
	cr_assert_eq(aiop_queue_try_put(DL_Q, "q", 2), 0);
	/* granted at their start (callbacks queued) */
	cr_assert_eq(aiop_lock_coro_acquire(loop, &DL_OPS[0].op, DL_L,
					    AIOP_FOREVER, t_op_cb), 0);
	cr_assert_eq(aiop_sem_coro_acquire(loop, &DL_OPS[1].op, DL_S,
					   AIOP_FOREVER, t_op_cb), 0);
	cr_assert_eq(aiop_queue_coro_get(loop, &DL_OPS[2].op, DL_Q, dl_buf,
					 sizeof(dl_buf), &dl_len,
					 AIOP_FOREVER, t_op_cb), 0);
	/* waiting */
	cr_assert_eq(aiop_event_coro_wait(loop, &DL_OPS[3].op, DL_E,
					  60 * T_SEC, t_op_cb), 0);
	cr_assert_eq(aiop_barrier_coro_wait(loop, &DL_OPS[4].op, DL_B,
					    60 * T_SEC, t_op_cb), 0);
	cr_assert_eq(aiop_cond_acquire(DL_C, AIOP_FOREVER), 0);
	cr_assert_eq(aiop_cond_coro_wait(loop, &DL_OPS[5].op, DL_C,
					 60 * T_SEC, t_op_cb), 0);
	pid = t_fork(child_destroys_the_loop, loop);
	cr_assert_gt(pid, 0);
	cr_assert_eq(t_reap(pid, T_REAP_MS), 0);
	cr_assert_eq(bells_of(getpid()), 1);
	/* the parent's ops complete as if nothing had happened */
	cr_assert_eq(aiop_event_set(DL_E), 0);
	cr_assert_geq(aiop_barrier_wait(DL_B, 5 * T_SEC), 0);
	cr_assert_eq(aiop_cond_acquire(DL_C, 5 * T_SEC), 0);
	cr_assert_eq(aiop_cond_notify(DL_C, 1), 1);
	cr_assert_eq(aiop_cond_release(DL_C), 0);
	cr_assert(t_run(loop, 5000));
	for (int i = 0; i < 6; i++)
		cr_assert_eq(DL_OPS[i].calls, 1, "op %d", i);
	cr_assert_eq(DL_OPS[0].result, 0);
	cr_assert_eq(DL_OPS[1].result, 0);
	cr_assert_eq(DL_OPS[2].result, 2);
	cr_assert_str_eq(dl_buf, "q");
	cr_assert_eq(DL_OPS[3].result, 0);
	cr_assert_geq(DL_OPS[4].result, 0);
	cr_assert_eq(DL_OPS[5].result, 0);
	cr_assert_eq(aiop_cond_release(DL_C), 0);
	cr_assert_eq(aiop_lock_release(DL_L), 0);
	ev_loop_destroy(loop);
	cr_assert_eq(bells_of(getpid()), 0);
	cr_assert_eq(aiop_lock_free(DL_L), 0);
	cr_assert_eq(aiop_sem_free(DL_S), 0);
	cr_assert_eq(aiop_sem_free(DL_MINE), 0);
	cr_assert_eq(aiop_event_free(DL_E), 0);
	cr_assert_eq(aiop_barrier_free(DL_B), 0);
	cr_assert_eq(aiop_cond_free(DL_C), 0);
	cr_assert_eq(aiop_queue_free(DL_Q), 0);
}

/* ---- a forking callback's child restarts the parent's next op -------- */

static pid_t RC_PARENT, RC_CHILD;
static struct aiop_event *RC_X, *RC_Y, *RC_Z;
static struct t_op RC_A, RC_NEXT, RC_MORE;

static void
rc_forks(struct ev_loop *l, struct aiop_op *op, int res)
{
	t_op_cb(l, op, res);
	RC_CHILD = fork();
	if (RC_CHILD != 0) {
		t_msleep(50); /* the child's dispatcher goes first */
		return;
	}
	alarm(10); /* a child that hangs must not outlive the test */
	ev_loop_fork(l);
	/* the copy of the parent's op after this one in the list (the
	 * pass's cursor sits between them): zeroed, and started afresh
	 * (coro.md, Fork: it had no timeout) */
	aiop_op_init(&RC_NEXT.op);
	if (aiop_event_coro_wait(l, &RC_NEXT.op, RC_Z, 300 * T_MS,
				 t_op_cb) < 0)
		_exit(1);
}

/* in the child, once the forking callback has returned to the pass */
static int
rc_child_goes_on(struct ev_loop *loop)
{
	if (!t_run(loop, 5000))
		return 2;
	if (RC_NEXT.calls != 1 || RC_NEXT.result != -ETIMEDOUT)
		return 3;
	/* a pass over the child's own list */
	if (aiop_event_coro_wait(loop, &RC_MORE.op, RC_Z, 2 * T_SEC,
				 t_op_cb) < 0 ||
	    aiop_event_set(RC_Z) < 0)
		return 4;
	if (!t_run(loop, 5000))
		return 5;
	return RC_MORE.calls == 1 && RC_MORE.result == 0 ? 0 : 6;
}

/*
 * A callback run by a pass forks, and the child restarts, inside that
 * callback, its zeroed copy of the parent's op that comes next in the
 * list, on the same loop. Back in the pass, the child took the pass's
 * cursor out of the parent's list, which wrote the restarted op's links:
 * they are in the child's own list now, which that write corrupted, and
 * the child crashed (SIGSEGV) at its next pass over it (found by review).
 */
Test(fork, a_child_that_restarts_the_next_op_in_a_forking_callback)
{
	struct ev_loop *loop = ev_loop_new(0);
	int rc;

	RC_PARENT = getpid();
	cr_assert_eq(aiop_event_new(&RC_X), 0);
	cr_assert_eq(aiop_event_new(&RC_Y), 0);
	cr_assert_eq(aiop_event_new(&RC_Z), 0);
	cr_assert_eq(aiop_event_coro_wait(loop, &RC_A.op, RC_X, 5 * T_SEC,
					  rc_forks), 0);
	cr_assert_eq(aiop_event_coro_wait(loop, &RC_NEXT.op, RC_Y,
					  AIOP_FOREVER, t_op_cb), 0);
	cr_assert_eq(aiop_event_set(RC_X), 0);
	ev_run(loop, EVRUN_ONCE);
	if (getpid() != RC_PARENT)
		_exit(rc_child_goes_on(loop));
	cr_assert_eq(RC_A.calls, 1);
	rc = t_reap(RC_CHILD, T_REAP_MS);
	cr_assert_eq(rc, 0, "the child failed: %d", rc);
	/* the parent's op is untouched */
	cr_assert_eq(aiop_op_cancel(&RC_NEXT.op), 0);
	cr_assert(t_run(loop, 5000));
	cr_assert_eq(RC_NEXT.calls, 1);
	cr_assert_eq(RC_NEXT.result, -ECANCELED);
	cr_assert_eq(aiop_loop_detach(loop), 0);
	ev_loop_destroy(loop);
	cr_assert_eq(aiop_event_free(RC_X), 0);
	cr_assert_eq(aiop_event_free(RC_Y), 0);
	cr_assert_eq(aiop_event_free(RC_Z), 0);
}
