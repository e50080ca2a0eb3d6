/* SPDX-License-Identifier: MIT */
/*
 * Library bug (issue 5, found while designing the queue torture's end of
 * run; fixed in 07df7ae): after close(), a message claimed by a consumer
 * that then died was never delivered again. Every get returned -EPIPE
 * ("closed and nothing left") while qsize() still counted the message,
 * against docs/queue.md ("Consumers get what is left, then -EPIPE"; "a
 * dead consumer's message stays in the queue for the next get"). Without
 * the close() it came back at the first get, as it should.
 *
 * Why: get_attempt() returned -EPIPE when claim() found nothing claimable
 * and no uncommitted record (saw_res false). Its first attempt does not
 * probe owners (flags 0) and skips CLAIM records; on a closed queue that
 * -EPIPE was final (aiop__wait only probes after -EAGAIN), so the dead
 * consumer's CLAIM was never turned back into COMMIT.
 *
 *   cc -I include -I build/include close-dead-claim.c build/src/libaiop.a \
 *      -lev -lpthread -o close-dead-claim && ./close-dead-claim
 *
 * Prints each get's result; exits 1 if the bug is back, 0 when the
 * message comes back.
 */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <aiop.h>

int
main(void)
{
	struct aiop_queue *q;
	struct aiop_msg m;
	char buf[64];
	size_t n;
	int r = -1, st;
	pid_t pid;

	if (aiop_queue_new(&q, NULL) != 0 ||
	    aiop_queue_put(q, "hello", 5, 0) != 0)
		return 2;
	pid = fork();
	if (pid < 0)
		return 2;
	if (pid == 0) { /* a consumer that dies holding the message */
		if (aiop_queue_peek(q, &m, 0) != 0)
			_exit(3);
		pause();
		_exit(0);
	}
	usleep(100000);
	kill(pid, SIGKILL);
	if (waitpid(pid, &st, 0) != pid)
		return 2;
	aiop_queue_close(q);
	usleep(150000); /* past the 100 ms owner probe period */
	for (int i = 0; i < 3 && r < 0; i++) {
		r = aiop_queue_get(q, buf, sizeof(buf), &n, 300 * 1000000LL);
		printf("get %d after close: %d (%s), qsize %d\n", i, r,
		       r < 0 ? aiop_strerror(r) : "the message",
		       aiop_queue_qsize(q));
	}
	aiop_queue_free(q);
	return r == 5 ? 0 : 1;
}
