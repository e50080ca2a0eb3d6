/* SPDX-License-Identifier: MIT */
/*
 * A loop may move to another thread while no aiop op is pending on it
 * (design.md 6). Its registration still names the old thread until its
 * next start call, and an armed bit may be left over (an op that timed out
 * while another op of the loop waited on another object keeps the bit).
 * A waker on the old thread used to take that for "my own loop, on my own
 * thread" and start the loop's check and idle watchers itself, from a
 * thread that no longer runs the loop, racing with ev_run() there (found
 * by review). The loop's libev calls are wrapped here (-Wl,--wrap) to
 * catch any made from the wrong thread.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "helpers.h"

TestSuite(loop_threads, .timeout = 60);

static struct ev_loop *L;
static pthread_t runner;
static _Atomic int running, foreign;

void __real_ev_check_start(struct ev_loop *l, ev_check *w);
void __real_ev_idle_start(struct ev_loop *l, ev_idle *w);
void __wrap_ev_check_start(struct ev_loop *l, ev_check *w);
void __wrap_ev_idle_start(struct ev_loop *l, ev_idle *w);

static void
note(struct ev_loop *l)
{
	if (l == L && atomic_load(&running) &&
	    !pthread_equal(pthread_self(), runner))
		atomic_fetch_add(&foreign, 1);
}

void
__wrap_ev_check_start(struct ev_loop *l, ev_check *w)
{
	note(l);
	__real_ev_check_start(l, w);
}

void
__wrap_ev_idle_start(struct ev_loop *l, ev_idle *w)
{
	note(l);
	__real_ev_idle_start(l, w);
}

static void
tick(struct ev_loop *l, ev_timer *w, int revents)
{
	(void)l;
	(void)w;
	(void)revents;
}

static void *
run_elsewhere(void *arg)
{
	ev_timer t;

	(void)arg;
	runner = pthread_self();
	ev_timer_init(&t, tick, 0.3, 0.);
	ev_timer_start(L, &t);
	atomic_store(&running, 1);
	ev_run(L, 0); /* the user's own timer; no aiop op */
	atomic_store(&running, 0);
	return NULL;
}

Test(loop_threads, a_moved_loop_is_rung_not_touched)
{
	struct aiop_event *x, *y;
	struct t_op a = { 0 }, b = { 0 };
	pthread_t t;

	L = ev_loop_new(0);
	runner = pthread_self();
	cr_assert_eq(aiop_event_new(&x), 0);
	cr_assert_eq(aiop_event_new(&y), 0);
	/* a times out and leaves x armed, while b still waits on y */
	cr_assert_eq(aiop_event_coro_wait(L, &a.op, x, 20 * T_MS, t_op_cb),
		     0);
	cr_assert_eq(aiop_event_coro_wait(L, &b.op, y, AIOP_FOREVER,
					  t_op_cb),
		     0);
	for (uint64_t end = t_now() + 5 * T_SEC; !a.calls && t_now() < end;)
		ev_run(L, EVRUN_ONCE); /* b keeps the loop busy */
	cr_assert_eq(a.result, -ETIMEDOUT);
	cr_assert_eq(aiop_event_set(y), 0);
	cr_assert(t_run(L, 5000));
	cr_assert_eq(b.result, 0);
	/* nothing pending: the loop moves to another thread */
	cr_assert_eq(pthread_create(&t, NULL, run_elsewhere, NULL), 0);
	while (!atomic_load(&running))
		t_msleep(1);
	t_msleep(50);
	cr_assert_eq(aiop_event_set(x), 0); /* from the old thread */
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(atomic_load(&foreign), 0,
		     "libev calls on the loop from a thread not running it");
	cr_assert_eq(aiop_event_free(x), 0);
	cr_assert_eq(aiop_event_free(y), 0);
	ev_loop_destroy(L);
}

/*
 * The loop moves A -> B -> A, idle in between. Back on A, the start call
 * found A's cached registration and kept the tid B had written: a waker on
 * B then took the "own loop, own thread" shortcut, touched the loop from B
 * and wrote no doorbell, so A slept until its 1 s recheck (found by
 * review). The start call now writes the tid whenever it changed.
 */
static struct aiop_event *mx;
static _Atomic int phase;

static void *
b_side(void *arg)
{
	struct t_op b = { 0 };

	(void)arg;
	runner = pthread_self();
	if (aiop_event_coro_wait(L, &b.op, mx, AIOP_FOREVER, t_op_cb) != 0 ||
	    aiop_event_set(mx) != 0 || !t_run(L, 5000) || b.result != 0 ||
	    aiop_event_clear(mx) != 0)
		return (void *)1;
	atomic_store(&phase, 1); /* the loop goes back to A */
	while (atomic_load(&phase) != 2)
		t_msleep(1);
	t_msleep(50); /* A sleeps in ev_run by now */
	return aiop_event_set(mx) == 0 ? NULL : (void *)2;
}

Test(loop_threads, a_loop_moved_away_and_back_is_rung)
{
	struct t_op a = { 0 }, a2 = { 0 };
	pthread_t t;
	void *tr;
	uint64_t t0;

	L = ev_loop_new(0);
	runner = pthread_self();
	cr_assert_eq(aiop_event_new(&mx), 0);
	cr_assert_eq(aiop_event_coro_wait(L, &a.op, mx, AIOP_FOREVER,
					  t_op_cb),
		     0);
	cr_assert_eq(aiop_event_set(mx), 0);
	cr_assert(t_run(L, 5000));
	cr_assert_eq(aiop_event_clear(mx), 0);
	atomic_store(&running, 1);
	cr_assert_eq(pthread_create(&t, NULL, b_side, NULL), 0);
	while (atomic_load(&phase) != 1)
		t_msleep(1);
	runner = pthread_self();
	cr_assert_eq(aiop_event_coro_wait(L, &a2.op, mx, AIOP_FOREVER,
					  t_op_cb),
		     0);
	atomic_store(&phase, 2);
	t0 = t_now();
	cr_assert(t_run(L, 5000));
	cr_assert_eq(pthread_join(t, &tr), 0);
	atomic_store(&running, 0);
	cr_assert_null(tr);
	cr_assert_eq(a2.result, 0);
	cr_assert_eq(atomic_load(&foreign), 0,
		     "libev calls on the loop from a thread not running it");
	/* the doorbell, not the 1 s recheck (50 ms of it is B's pause) */
	cr_assert_lt(t_now() - t0, 700 * T_MS, "woken by the recheck");
	cr_assert_eq(aiop_event_free(mx), 0);
	ev_loop_destroy(L);
}
