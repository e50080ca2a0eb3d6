/* SPDX-License-Identifier: MIT */
/*
 * The part of the benchmark harness that knows aiop and libev: the loop
 * of a process that waits in libev (with a watchdog, and the cancel that
 * lets a failed run free its handles), aiop's counters read as syscalls,
 * the spin mode of a scenario and the lines every report shares.
 * bench_util.h has the rest, which also serves the raw baselines.
 */
#ifndef AIOP_BENCH_HARNESS_H
#define AIOP_BENCH_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include <aiop.h>
#include <aiop/ev.h>

#include "bench_util.h"

/*
 * The libev side of a measurement: one loop with one aiop op or one fd
 * watcher, bounded by a watchdog that fails the run at its deadline.
 * Callbacks end the run with bench_loop_done() or bench_loop_fail().
 */
struct bench_loop {
	struct ev_loop *loop;
	struct aiop_op op; /* op.data is the caller's (bench_loop_open) */
	ev_io io;
	ev_timer watchdog;
	int err;           /* first failure, or 0 */
	bool done;         /* the run ended as planned */
};

/* A new loop whose watchdog fires at deadline (absolute CLOCK_MONOTONIC
 * ns); op.data = data. 0 or -ENOMEM. */
int bench_loop_open(struct bench_loop *l, uint64_t deadline, void *data);

/* Watch fd for reading with cb (io.data = data). */
void bench_loop_watch(struct bench_loop *l,
		      void (*cb)(struct ev_loop *, ev_io *, int), int fd,
		      void *data);

/* Run the loop until done or failed, then close it: a pending op is
 * cancelled and delivered first. 0 if done, else the failure (-EPROTO
 * if the loop ran dry). */
int bench_loop_run_close(struct bench_loop *l);

/* Inline: they sit in the callbacks of the timed loops. */
static inline void
bench_loop_fail(struct bench_loop *l, int err)
{
	if (!l->err)
		l->err = err < 0 ? err : -EPROTO;
	ev_break(l->loop, EVBREAK_ALL);
}

static inline void
bench_loop_done(struct bench_loop *l)
{
	l->done = true;
	ev_break(l->loop, EVBREAK_ALL);
}

/* The syscalls aiop counted: futex waits and wakes, doorbell rings and
 * reads, owner probes (at least one kill() each; counted as one). */
uint64_t bench_stats_syscalls(const struct aiop_stats *s);

/* Spin mode of a scenario: spin < 0 is a baseline, which runs with the
 * library default (the mode only touches aiop calls anyway). */
void bench_spin_set(int spin, int64_t spin_ns);

/* Reap a child of a measurement whose parent side ended with rc (killed
 * first if rc < 0). Returns rc, or if rc was 0 and the child failed, its
 * own error from *child_rc, or the reaping error, or -ECHILD. */
int bench_finish_child(pid_t pid, int rc, _Atomic int *child_rc,
		       int reap_ms);

/* The header lines about the machine: CPU and placement, kernel and
 * library versions. */
void bench_print_machine(const struct bench_cpus *cpus);

/* " (N err: message)" after a figure whose rounds failed N times. */
void bench_print_errs(int nerr, int err);

/* A latency cell: " median [min - max]" of n rounds, and its errors. */
void bench_print_latency(const double *v, int n, int nerr, int err);

#endif /* AIOP_BENCH_HARNESS_H */
