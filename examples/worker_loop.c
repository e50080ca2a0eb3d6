/* SPDX-License-Identifier: MIT */
/*
 * The README example: an event-loop process hands work to forked workers
 * and waits for them without ever blocking its loop.
 *
 * Workers use ordinary blocking calls; the loop uses coro calls.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <aiop.h>
#include <aiop/ev.h>

#define WORKERS 3
#define SECOND 1000000000LL

static int finished;

static void
on_worker_done(struct ev_loop *loop, struct aiop_op *op, int result)
{
	if (result < 0) {
		fprintf(stderr, "waiting for a worker: %s\n",
			aiop_strerror(result));
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	if (++finished == WORKERS)
		ev_break(loop, EVBREAK_ALL);
}

static void
on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	printf("loop is still responsive\n");
}

int
main(void)
{
	struct aiop_event *go;
	struct aiop_sem *done;
	struct aiop_lock *lock;
	struct aiop_op ops[WORKERS] = { 0 };
	/* not EV_DEFAULT: libev's default loop reaps every child on SIGCHLD,
	 * and waitpid() below would then find none (ECHILD) */
	struct ev_loop *loop = ev_loop_new(0);
	ev_timer tick;
	pid_t pids[WORKERS];
	long *total;
	int i, r, st, failed = 0;

	/* a plain shared counter, guarded by the aiop lock */
	total = mmap(NULL, sizeof(*total), PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (total == MAP_FAILED || !loop)
		return 1;
	if ((r = aiop_event_new(&go)) < 0 || (r = aiop_sem_new(&done, 0)) < 0 ||
	    (r = aiop_lock_new(&lock)) < 0) {
		fprintf(stderr, "create: %s\n", aiop_strerror(r));
		return 1;
	}

	for (i = 0; i < WORKERS; i++) {
		if ((pids[i] = fork()) == 0) {
			/* worker: plain blocking calls, each with a bound */
			if (aiop_event_wait(go, 5 * SECOND) < 0)
				_exit(1);
			for (int k = 0; k < 1000; k++) {
				AIOP_WITH_LOCK(lock, 5 * SECOND, r)
				{
					++*total;
				}
				if (!aiop_held(r))
					_exit(1);
			}
			_exit(aiop_sem_release(done) < 0);
		}
	}

	/* loop process: coro waits, plus a timer that keeps ticking */
	for (i = 0; i < WORKERS; i++) {
		r = aiop_sem_coro_acquire(loop, &ops[i], done, 5 * SECOND,
					  on_worker_done);
		if (r < 0) {
			fprintf(stderr, "coro acquire: %s\n", aiop_strerror(r));
			return 1;
		}
	}
	ev_timer_init(&tick, on_tick, 0.001, 0.);
	ev_timer_start(loop, &tick);
	aiop_event_set(go);
	ev_run(loop, 0);

	for (i = 0; i < WORKERS; i++)
		if (waitpid(pids[i], &st, 0) < 0 || !WIFEXITED(st) ||
		    WEXITSTATUS(st) != 0)
			failed++;
	printf("workers finished: %d, total: %ld (expected %d), failed: %d\n",
	       finished, *total, WORKERS * 1000, failed);
	r = finished == WORKERS && *total == WORKERS * 1000 && !failed ? 0 : 1;
	aiop_loop_detach(loop); /* give the loop's doorbell back */
	ev_loop_destroy(loop);
	aiop_event_free(go);
	aiop_sem_free(done);
	aiop_lock_free(lock);
	return r;
}
