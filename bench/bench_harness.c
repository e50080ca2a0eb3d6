/* SPDX-License-Identifier: MIT */
/* The aiop and libev part of the benchmark harness; see bench_harness.h. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>

#include "bench_harness.h"

static void
on_watchdog(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	bench_loop_fail(w->data, -ETIMEDOUT);
}

int
bench_loop_open(struct bench_loop *l, uint64_t deadline, void *data)
{
	l->loop = ev_loop_new(EVFLAG_AUTO);
	if (!l->loop)
		return -ENOMEM;
	ev_timer_init(&l->watchdog, on_watchdog,
		      (double)(deadline - bench_now()) / 1e9, 0.);
	l->watchdog.data = l;
	ev_timer_start(l->loop, &l->watchdog);
	l->op.data = data;
	l->err = 0;
	l->done = false;
	return 0;
}

void
bench_loop_watch(struct bench_loop *l,
		 void (*cb)(struct ev_loop *, ev_io *, int), int fd,
		 void *data)
{
	ev_io_init(&l->io, cb, fd, EV_READ);
	l->io.data = data;
	ev_io_start(l->loop, &l->io);
}

int
bench_loop_run_close(struct bench_loop *l)
{
	/* a failed start already broke the loop: ev_run would cancel that
	 * break and wait for the watchdog */
	if (!l->err)
		ev_run(l->loop, 0);
	/* after a failure an op may still be pending: cancel it and let the
	 * loop deliver it, or its handle could not be freed */
	if (aiop_op_pending(&l->op)) {
		(void)aiop_op_cancel(&l->op);
		for (int k = 0; k < 100 && aiop_op_pending(&l->op); k++)
			ev_run(l->loop, EVRUN_NOWAIT);
	}
	ev_timer_stop(l->loop, &l->watchdog);
	if (ev_is_active(&l->io))
		ev_io_stop(l->loop, &l->io);
	(void)aiop_loop_detach(l->loop);
	ev_loop_destroy(l->loop);
	l->loop = NULL;
	if (l->err)
		return l->err;
	return l->done ? 0 : -EPROTO;
}

uint64_t
bench_stats_syscalls(const struct aiop_stats *s)
{
	return s->futex_waits + s->futex_wakes + s->doorbell_rings +
	       s->doorbell_reads + s->owner_probes;
}

void
bench_spin_set(int spin, int64_t spin_ns)
{
	aiop_spin_set(spin >= 0 ? (enum aiop_spin_mode)spin : AIOP_SPIN_AUTO,
		      spin_ns);
}

int
bench_finish_child(pid_t pid, int rc, _Atomic int *child_rc, int reap_ms)
{
	int st;

	if (rc < 0)
		kill(pid, SIGKILL);
	st = bench_reap(pid, reap_ms);
	if (rc == 0 && st != 0) {
		int crc = atomic_load(child_rc);

		rc = crc < 0 ? crc : st < 0 ? st : -ECHILD;
	}
	return rc;
}

void
bench_print_machine(const struct bench_cpus *cpus)
{
	char model[128], idle[64];
	struct utsname u;
	bool vm;

	bench_machine(model, sizeof(model), &vm, idle, sizeof(idle));
	if (uname(&u) < 0)
		snprintf(u.release, sizeof(u.release), "?");
	printf("- CPU: %s, %d online, %d allowed (split/pinned use CPU %d"
	       " and %d), %s, cpuidle %s\n", model, get_nprocs(), cpus->n,
	       cpus->a, cpus->b, vm ? "virtual machine" : "no hypervisor flag",
	       idle);
	printf("- kernel %s, libev %d.%d, aiop %s\n", u.release,
	       ev_version_major(), ev_version_minor(), aiop_version());
}

void
bench_print_errs(int nerr, int err)
{
	if (nerr)
		printf(" (%d err: %s)", nerr, aiop_strerror(err));
}

void
bench_print_latency(const double *v, int n, int nerr, int err)
{
	char m[32], lo[16], hi[16];
	double lh[2] = {NAN, NAN};
	double med = bench_cell_median(v, n, lh);

	bench_fmt_time(m, sizeof(m), med);
	bench_fmt_bare(lo, sizeof(lo), lh[0]);
	bench_fmt_bare(hi, sizeof(hi), lh[1]);
	printf(" %s [%s - %s]", m, lo, hi);
	bench_print_errs(nerr, err);
}
