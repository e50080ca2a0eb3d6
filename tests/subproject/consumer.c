/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include <aiop.h>
#include <aiop/ev.h>

static void
on_set(struct ev_loop *loop, struct aiop_op *op, int result)
{
	*(int *)op->data = result;
}

int
main(void)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct aiop_event *ev;
	struct aiop_op op = {0};
	int got = 1, r;

	if ((r = aiop_event_new(&ev)) < 0) {
		fprintf(stderr, "aiop_event_new: %s\n", aiop_strerror(r));
		return 1;
	}
	op.data = &got;
	if (aiop_event_coro_wait(loop, &op, ev, 1000000000LL, on_set) < 0)
		return 1;
	aiop_event_set(ev);
	ev_run(loop, 0);
	printf("aiop %s from a subproject: event wait -> %s\n", aiop_version(),
	       aiop_strerror(got));
	aiop_event_free(ev);
	aiop_loop_detach(loop);
	ev_loop_destroy(loop);
	return got != 0;
}
