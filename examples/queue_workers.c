/* SPDX-License-Identifier: MIT */
/*
 * The scenario aiop is for: an event loop hands jobs to worker processes
 * through a Queue and collects the results from another, without ever
 * blocking the loop. Workers use plain blocking calls.
 *
 * The loop keeps up to WINDOW jobs in flight (coro put), each job a
 * message of 1 KiB .. 256 KiB; a worker sums the bytes and puts back
 * (job id, sum); the loop checks every sum (coro get). A timer shows that
 * the loop stays responsive throughout.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <aiop.h>
#include <aiop/ev.h>

#define WORKERS 3
#define JOBS 600
#define WINDOW 16
#define JOB_MAX (256 * 1024)
#define SECOND 1000000000LL

struct result {
	uint32_t id;
	uint64_t sum;
};

static struct aiop_queue *jobs, *results;

static size_t
job_len(uint32_t id)
{
	return 1024 + (size_t)(id * 2654435761u) % (JOB_MAX - 1024);
}

static uint8_t
job_byte(uint32_t id, size_t i)
{
	return (uint8_t)(id + i * 7);
}

/* ---- worker: blocking calls only ----------------------------------------- */

static int
worker(void)
{
	static uint8_t buf[JOB_MAX];

	for (;;) {
		struct result res;
		int n = aiop_queue_get(jobs, buf, sizeof(buf), NULL,
				       10 * SECOND);

		if (n == -EPIPE)
			return 0; /* closed and drained: done */
		if (n < 4)
			return 1;
		memcpy(&res.id, buf, sizeof(res.id));
		res.sum = 0;
		for (int i = 4; i < n; i++)
			res.sum += buf[i];
		if (aiop_queue_put(results, &res, sizeof(res), 10 * SECOND) < 0)
			return 1;
	}
}

/* ---- the loop ----------------------------------------------------------- */

struct sender {
	struct aiop_op op;
	uint8_t buf[JOB_MAX];
};

static struct sender senders[WINDOW];
static struct aiop_op recv_op;
static struct result rbuf;
static uint32_t next_id, done_count, bad, ticks;
static ev_timer tick;

static void send_next(struct ev_loop *loop, struct sender *s);

static void
sent(struct ev_loop *loop, struct aiop_op *op, int r)
{
	struct sender *s = (struct sender *)op;

	if (r < 0) {
		fprintf(stderr, "put: %s\n", aiop_strerror(r));
		bad++;
		return;
	}
	send_next(loop, s);
}

static void
send_next(struct ev_loop *loop, struct sender *s)
{
	uint32_t id = next_id;
	size_t len = job_len(id);

	if (id == JOBS)
		return;
	next_id++;
	memcpy(s->buf, &id, sizeof(id));
	for (size_t i = 4; i < len; i++)
		s->buf[i] = job_byte(id, i);
	/* s->buf stays untouched until the callback: the copy into the
	 * ring may happen later, from the loop */
	if (aiop_queue_coro_put(loop, &s->op, jobs, s->buf, len, 10 * SECOND,
				sent) < 0)
		bad++;
}

static void
received(struct ev_loop *loop, struct aiop_op *op, int r)
{
	uint64_t want = 0;

	(void)op;
	if (r != (int)sizeof(rbuf) || rbuf.id >= JOBS) {
		fprintf(stderr, "get: %s\n", r < 0 ? aiop_strerror(r) : "?");
		bad++;
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	for (size_t i = 4; i < job_len(rbuf.id); i++)
		want += job_byte(rbuf.id, i);
	if (rbuf.sum != want)
		bad++;
	if (++done_count == JOBS) {
		ev_timer_stop(loop, &tick);
		return;
	}
	if (aiop_queue_coro_get(loop, &recv_op, results, &rbuf, sizeof(rbuf),
				NULL, 10 * SECOND, received) < 0)
		bad++;
}

static void
on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	ticks++; /* the loop is never blocked: this keeps firing */
}

int
main(void)
{
	struct aiop_queue_attr attr = {.capacity = 4u << 20,
				       .msg_max = JOB_MAX};
	/* not the default loop: it reaps every child that exits while it
	 * runs, and waitpid() below would then find none (coro.md) */
	struct ev_loop *loop = ev_loop_new(0);
	pid_t pids[WORKERS];
	int st, failed = 0;

	if (!loop || aiop_queue_new(&jobs, &attr) < 0 ||
	    aiop_queue_new(&results, NULL) < 0)
		return 1;
	for (int i = 0; i < WORKERS; i++) {
		pids[i] = fork();
		if (pids[i] == 0)
			_exit(worker());
	}

	ev_timer_init(&tick, on_tick, 0.001, 0.001);
	ev_timer_start(loop, &tick);
	for (int i = 0; i < WINDOW; i++)
		send_next(loop, &senders[i]);
	if (aiop_queue_coro_get(loop, &recv_op, results, &rbuf, sizeof(rbuf),
				NULL, 10 * SECOND, received) < 0)
		return 1;
	ev_run(loop, 0);

	aiop_queue_close(jobs); /* workers drain, then get -EPIPE */
	for (int i = 0; i < WORKERS; i++)
		if (waitpid(pids[i], &st, 0) < 0 || !WIFEXITED(st) ||
		    WEXITSTATUS(st) != 0)
			failed++;
	printf("%u jobs of 1..256 KiB done by %d workers, %u bad sums, "
	       "%u loop ticks meanwhile, %d workers failed\n",
	       done_count, WORKERS, bad, ticks, failed);
	aiop_loop_detach(loop);
	ev_loop_destroy(loop);
	aiop_queue_free(jobs);
	aiop_queue_free(results);
	return done_count == JOBS && !bad && !failed ? 0 : 1;
}
